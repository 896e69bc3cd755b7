//! The world the `/map` page draws practices on: Natural Earth's countries at 1:110m
//! (`node/data/countries-110m.json`, TopoJSON from npm `world-atlas`; the data is public
//! domain), drawn once, on first use, as SVG paths in an equirectangular projection.
//! Antarctica is left out (no practice is there; it would take a third of the height).

use std::fmt::Write;
use std::sync::OnceLock;

use serde_json::Value;

static DATA: &str = include_str!("../../data/countries-110m.json");

/// The map's width in SVG units (360° of longitude).
pub const WIDTH: f64 = 1000.0;
/// The latitudes at the map's top and bottom.
const NORTH: f64 = 84.0;
const SOUTH: f64 = -58.0;
/// Natural Earth's (ISO 3166 numeric) id of Antarctica.
const ANTARCTICA: &str = "010";

/// The map's height in SVG units.
pub fn height() -> f64 {
    (NORTH - SOUTH) / 360.0 * WIDTH
}

/// Where a point (latitude, longitude) is on the map.
pub fn project(lat: f64, lon: f64) -> (f64, f64) {
    let scale = WIDTH / 360.0;
    (
        (lon + 180.0) * scale,
        (NORTH - lat.clamp(SOUTH, NORTH)) * scale,
    )
}

/// Every country as an SVG `<path>` (with its name as a `<title>`), in one string.
pub fn countries() -> &'static str {
    static SVG: OnceLock<String> = OnceLock::new();
    SVG.get_or_init(|| match draw(DATA) {
        Ok(svg) => svg,
        Err(e) => {
            // Built into the binary: cannot happen unless the build is broken.
            tracing::error!(error = %e, "the world map does not read");
            String::new()
        }
    })
}

fn draw(topojson: &str) -> Result<String, String> {
    let v: Value = serde_json::from_str(topojson).map_err(|e| e.to_string())?;
    let number = |v: &Value| v.as_f64().ok_or("a number");
    let scale = (
        number(&v["transform"]["scale"][0])?,
        number(&v["transform"]["scale"][1])?,
    );
    let translate = (
        number(&v["transform"]["translate"][0])?,
        number(&v["transform"]["translate"][1])?,
    );
    // Arcs are delta-encoded, quantized positions.
    let arcs: Vec<Vec<(f64, f64)>> = v["arcs"]
        .as_array()
        .ok_or("no arcs")?
        .iter()
        .map(|arc| {
            let (mut x, mut y) = (0.0, 0.0);
            arc.as_array()
                .map(|points| {
                    points
                        .iter()
                        .map(|p| {
                            x += p[0].as_f64().unwrap_or(0.0);
                            y += p[1].as_f64().unwrap_or(0.0);
                            project(y * scale.1 + translate.1, x * scale.0 + translate.0)
                        })
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect();
    let ring = |indices: &Value| -> Vec<(f64, f64)> {
        let mut points: Vec<(f64, f64)> = Vec::new();
        for i in indices
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_i64)
        {
            // A negative index is the arc `!i`, reversed.
            let (arc, reversed) = if i < 0 { (!i, true) } else { (i, false) };
            let Some(arc) = arcs.get(arc as usize) else {
                continue;
            };
            let mut arc = arc.clone();
            if reversed {
                arc.reverse();
            }
            // Each arc starts where the last ended.
            let skip = usize::from(!points.is_empty());
            points.extend(arc.into_iter().skip(skip));
        }
        points
    };
    let mut svg = String::new();
    let geometries = v["objects"]["countries"]["geometries"]
        .as_array()
        .ok_or("no countries")?;
    for g in geometries {
        if g["id"].as_str() == Some(ANTARCTICA) {
            continue;
        }
        let polygons: Vec<&Value> = match g["type"].as_str() {
            Some("Polygon") => vec![&g["arcs"]],
            Some("MultiPolygon") => g["arcs"].as_array().into_iter().flatten().collect(),
            _ => continue,
        };
        let mut d = String::new();
        for polygon in polygons {
            for indices in polygon.as_array().into_iter().flatten() {
                path(&mut d, &ring(indices));
            }
        }
        let name = super::super::pages::escape(g["properties"]["name"].as_str().unwrap_or(""));
        let _ = write!(svg, "<path d=\"{d}\"><title>{name}</title></path>");
    }
    Ok(svg)
}

/// Appends a closed ring as path data: its first point, then steps to the next ones, a
/// tenth of a unit apart at least (about 0.04°).
fn path(d: &mut String, points: &[(f64, f64)]) {
    let tenths = |v: f64| (v * 10.0).round() as i64;
    let Some(first) = points.first() else { return };
    let (mut x, mut y) = (tenths(first.0), tenths(first.1));
    let _ = write!(d, "M{} {}", x as f64 / 10.0, y as f64 / 10.0);
    for p in &points[1..] {
        let (nx, ny) = (tenths(p.0), tenths(p.1));
        if (nx, ny) != (x, y) {
            let _ = write!(d, "l{} {}", (nx - x) as f64 / 10.0, (ny - y) as f64 / 10.0);
            (x, y) = (nx, ny);
        }
    }
    d.push('z');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_world_is_drawn_and_points_land_in_it() {
        let svg = countries();
        assert!(svg.matches("<path").count() > 150, "every country");
        assert!(svg.contains("<title>France</title>") && svg.contains("<title>Brazil</title>"));
        assert!(!svg.contains("Antarctica"));
        let (x, y) = project(45.76, 4.84);
        assert!(
            (500.0..530.0).contains(&x) && (100.0..120.0).contains(&y),
            "Lyon: {x},{y}"
        );
        let (_, bottom) = project(-90.0, 0.0);
        assert!((bottom - height()).abs() < 1e-9, "clamped to the map");
    }
}
