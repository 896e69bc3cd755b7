//! Where a city is: GeoNames' places of over 1,000 people and administrative seats
//! (`node/data/cities.tsv.gz`, made by `cargo xtask geodata`; CC BY 4.0), looked up by
//! country and name with case and accents ignored ("sao paulo" finds São Paulo).
//!
//! Read into memory on the first lookup (about 8 MB, for the rest of the process's life):
//! only an import or a new practice asks, so a node that is not asked never holds it.

use std::io::Read;
use std::sync::OnceLock;

use ibis_shared::model::facets::words;

static DATA: &[u8] = include_bytes!("../../data/cities.tsv.gz");

/// Places by key (`country<TAB>folded name`), sorted; the first place of a name wins.
struct Places(Vec<(Box<str>, f32, f32)>);

fn key(country: &str, city: &str) -> String {
    format!(
        "{}\t{}",
        country.trim().to_ascii_uppercase(),
        words(city).join(" ")
    )
}

fn places() -> &'static Places {
    static PLACES: OnceLock<Places> = OnceLock::new();
    PLACES.get_or_init(|| {
        let mut text = String::new();
        if let Err(e) = flate2::read::GzDecoder::new(DATA).read_to_string(&mut text) {
            // Built into the binary: cannot happen unless the build is broken.
            tracing::error!(error = %e, "the gazetteer does not read");
        }
        let mut places: Vec<(Box<str>, f32, f32)> = text
            .lines()
            .filter_map(|line| {
                let mut fields = line.split('\t');
                let (country, name) = (fields.next()?, fields.next()?);
                let lat = fields.next()?.parse().ok()?;
                let lon = fields.next()?.parse().ok()?;
                Some((key(country, name).into_boxed_str(), lat, lon))
            })
            .collect();
        places.sort_by(|a, b| a.0.cmp(&b.0));
        places.dedup_by(|later, first| later.0 == first.0);
        Places(places)
    })
}

/// The coordinates (latitude, longitude) of `city` in `country` (ISO 3166 alpha-2), if
/// the gazetteer knows it.
pub fn locate(country: &str, city: &str) -> Option<(f64, f64)> {
    if country.trim().len() != 2 || words(city).is_empty() {
        return None;
    }
    let places = &places().0;
    let wanted = key(country, city);
    let at = places
        .binary_search_by(|p| p.0.as_ref().cmp(wanted.as_str()))
        .ok()?;
    let (_, lat, lon) = &places[at];
    // Two decimals, as the data holds them (f32 would add noise digits).
    let round = |v: f32| (f64::from(v) * 100.0).round() / 100.0;
    Some((round(*lat), round(*lon)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cities_are_found_by_country_and_name_without_case_or_accents() {
        let (lat, lon) = locate("FR", "Lyon").expect("Lyon");
        assert!(
            (45.0..46.5).contains(&lat) && (4.0..5.5).contains(&lon),
            "{lat},{lon}"
        );
        let (lat, lon) = locate("br", "sao paulo").expect("São Paulo");
        assert!((-24.0..-23.0).contains(&lat) && (-47.0..-46.0).contains(&lon));
        assert!(locate("PT", "Lisboa").is_some() || locate("PT", "Lisbon").is_some());
        assert_eq!(locate("FR", "Atlantis"), None);
        assert_eq!(locate("", "Lyon"), None);
        assert_eq!(locate("FR", "  "), None);
    }
}
