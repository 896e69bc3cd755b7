//! `GET /api/places?country=FR&city=Lyon`: where a city is, from the gazetteer that ships
//! with the node ([`crate::geo::gazetteer`]), for the app to place a practice made in the
//! browser as an import places one. Public data, the same for everyone: any visitor may ask,
//! and shared caches may keep the answer.

use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;

use crate::geo::gazetteer;
use crate::pages::caching::{cached, Audience};

/// The longest city name asked about (the practice form's own limit).
const MAX_CITY_BYTES: usize = 200;

pub async fn locate(Query(params): Query<Vec<(String, String)>>, headers: HeaderMap) -> Response {
    // The first question reads the gazetteer (a second or so): not on a server thread.
    let answered = tokio::task::spawn_blocking(move || answer(&params)).await;
    let (status, body) = match answered {
        Ok(Ok(Some((lat, lon)))) => (StatusCode::OK, json!({ "lat": lat, "lon": lon })),
        Ok(Ok(None)) => (StatusCode::NOT_FOUND, json!({ "error": "no such place" })),
        Ok(Err(e)) => (StatusCode::BAD_REQUEST, json!({ "error": e })),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({ "error": "lookup failed" }),
        ),
    };
    let audience = Audience::Everyone { lang: None };
    cached(
        status,
        "application/json",
        body.to_string(),
        &headers,
        audience,
    )
}

/// The coordinates asked for; an error for a malformed question.
fn answer(params: &[(String, String)]) -> Result<Option<(f64, f64)>, String> {
    let (mut country, mut city) = (None, None);
    for (key, value) in params {
        match key.as_str() {
            "country" if country.is_none() => country = Some(value),
            "city" if city.is_none() => city = Some(value),
            _ => return Err(format!("unexpected parameter `{key}`")),
        }
    }
    let (Some(country), Some(city)) = (country, city) else {
        return Err("`country` and `city` are both needed".into());
    };
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err("`country` is a two-letter ISO 3166 code".into());
    }
    if city.len() > MAX_CITY_BYTES {
        return Err(format!("`city` is longer than {MAX_CITY_BYTES} bytes"));
    }
    // Read on its first question, then searched in memory (a binary search).
    Ok(gazetteer::locate(country, city))
}

#[cfg(test)]
mod tests {
    use super::answer;

    fn ask(pairs: &[(&str, &str)]) -> Result<Option<(f64, f64)>, String> {
        let params: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        answer(&params)
    }

    #[test]
    fn a_known_city_is_placed_and_bad_questions_are_refused() {
        let (lat, lon) = ask(&[("country", "fr"), ("city", "lyon")])
            .unwrap()
            .expect("Lyon is in the gazetteer");
        assert!(
            (45.0..46.5).contains(&lat) && (4.0..5.5).contains(&lon),
            "{lat} {lon}"
        );
        assert_eq!(
            ask(&[("country", "FR"), ("city", "Nowhere-on-Loire")]),
            Ok(None)
        );
        assert!(ask(&[("country", "FRA"), ("city", "Lyon")]).is_err());
        assert!(ask(&[("city", "Lyon")]).is_err());
        assert!(ask(&[("country", "FR"), ("city", "Lyon"), ("x", "1")]).is_err());
        assert!(ask(&[("country", "FR"), ("city", &"a".repeat(201))]).is_err());
    }
}
