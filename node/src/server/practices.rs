//! The read-only practice API: search with facets, one practice, CSV export, and an Atom
//! feed of newly published practices. Anonymous callers see published and archived
//! practices; members of this organization also see drafts.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ibis_shared::model::facets::Facet;
use ibis_shared::model::record::CSV_COLUMNS;
use ibis_shared::model::review::ReviewState;
use ibis_shared::{AutomergeUrl, DocumentId};
use serde_json::json;

use super::{access, AppState};
use crate::index::{self, SearchResult};
use crate::policy::Access;

/// Longest search text.
const MAX_QUERY_CHARS: usize = 500;
/// Most rows in one CSV export.
const MAX_EXPORT_ROWS: usize = 10_000;
/// Entries in the Atom feed.
const FEED_ENTRIES: usize = 50;

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn visible_states(state: &AppState, headers: &HeaderMap) -> Vec<ReviewState> {
    match access(state, headers, &HashMap::new()).await {
        Ok(Access::Member { .. }) => ReviewState::ALL.to_vec(),
        _ => vec![ReviewState::Published, ReviewState::Archived],
    }
}

/// Reads `q`, facet filters, `limit` and `offset`; unknown parameters are an error.
fn parse_query(
    params: &[(String, String)],
    visible: Vec<ReviewState>,
) -> Result<index::Query, String> {
    let mut q = index::Query {
        visible,
        limit: 50,
        ..index::Query::default()
    };
    for (key, value) in params {
        match key.as_str() {
            "q" => {
                if value.chars().count() > MAX_QUERY_CHARS {
                    return Err(format!("q is longer than {MAX_QUERY_CHARS} characters"));
                }
                q.text = value.clone();
            }
            "limit" => {
                q.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=index::MAX_PAGE).contains(n))
                    .ok_or(format!("limit must be 1 to {}", index::MAX_PAGE))?;
            }
            "offset" => {
                q.offset = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n <= 1_000_000)
                    .ok_or("offset must be a number up to 1000000")?;
            }
            other => {
                let Some(facet) = Facet::from_key(other) else {
                    let known: Vec<&str> = Facet::ALL.iter().map(|f| f.key()).collect();
                    return Err(format!(
                        "unknown parameter `{other}`; use q, limit, offset or {}",
                        known.join(", ")
                    ));
                };
                if value.len() > 200 {
                    return Err(format!("{other} value too long"));
                }
                let value = if facet == Facet::Country {
                    value.to_ascii_uppercase()
                } else {
                    value.clone()
                };
                q.filters.entry(facet).or_default().insert(value);
            }
        }
    }
    Ok(q)
}

async fn run_search(state: &AppState, q: index::Query) -> Result<SearchResult, Response> {
    let index = state.index.clone();
    match tokio::task::spawn_blocking(move || index.search(&q)).await {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "search failed");
            Err(error(StatusCode::INTERNAL_SERVER_ERROR, "search failed"))
        }
        Err(_) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, "search failed")),
    }
}

pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let visible = visible_states(&state, &headers).await;
    let q = match parse_query(&params, visible) {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match run_search(&state, q).await {
        Ok(result) => Json(result).into_response(),
        Err(response) => response,
    }
}

fn parse_id(text: &str) -> Option<DocumentId> {
    if text.starts_with("automerge:") {
        AutomergeUrl::parse(text).ok().map(|u| u.document_id)
    } else {
        DocumentId::parse(text).ok()
    }
}

pub async fn one(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(id) = parse_id(&id) else {
        return error(StatusCode::BAD_REQUEST, "not a document id");
    };
    let visible = visible_states(&state, &headers).await;
    let index = state.index.clone();
    match tokio::task::spawn_blocking(move || index.get(&id, &visible)).await {
        Ok(Ok(Some(record))) => Json(record).into_response(),
        Ok(Ok(None)) => error(StatusCode::NOT_FOUND, "no such practice"),
        _ => error(StatusCode::INTERNAL_SERVER_ERROR, "lookup failed"),
    }
}

pub async fn csv(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let visible = visible_states(&state, &headers).await;
    let q = match parse_query(&params, visible) {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let index = state.index.clone();
    let records =
        match tokio::task::spawn_blocking(move || index.records(&q, MAX_EXPORT_ROWS)).await {
            Ok(Ok(records)) => records,
            _ => return error(StatusCode::INTERNAL_SERVER_ERROR, "export failed"),
        };
    let write = || -> Result<Vec<u8>, csv::Error> {
        let mut out = csv::Writer::from_writer(Vec::new());
        out.write_record(CSV_COLUMNS)?;
        for r in &records {
            out.write_record(r.csv_fields())?;
        }
        out.into_inner()
            .map_err(|e| csv::Error::from(e.into_error()))
    };
    match write() {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"practices.csv\"",
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "export failed"),
    }
}

fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => {}
            c => out.push(c),
        }
    }
    out
}

/// RFC 3339 for milliseconds since the epoch (UTC).
fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub async fn feed(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let index = state.index.clone();
    let entries =
        match tokio::task::spawn_blocking(move || index.recently_published(FEED_ENTRIES)).await {
            Ok(Ok(entries)) => entries,
            _ => return error(StatusCode::INTERNAL_SERVER_ERROR, "feed failed"),
        };
    let base = if state.config.node.public_url.is_empty() {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        format!("http://{host}")
    } else {
        state
            .config
            .node
            .public_url
            .trim_end_matches('/')
            .to_owned()
    };
    let updated = entries.first().map_or(0, |(_, at)| *at);
    let mut body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\n\
         <title>{} — newly published practices</title>\n<id>{}/feed.atom</id>\n\
         <link rel=\"self\" href=\"{}/feed.atom\"/>\n<updated>{}</updated>\n",
        xml(&state.info.organization_name),
        xml(&base),
        xml(&base),
        rfc3339(updated)
    );
    for (r, at) in entries {
        let id = r.id.clone().unwrap_or_default();
        let path = id.trim_start_matches("automerge:");
        body.push_str(&format!(
            "<entry>\n<title>{}</title>\n<id>{}</id>\n<link href=\"{}/practices/{}\"/>\n\
             <updated>{}</updated>\n<summary>{}</summary>\n<category term=\"{}\"/>\n</entry>\n",
            xml(&r.title),
            xml(&id),
            xml(&base),
            xml(path),
            rfc3339(at),
            xml(&r.summary),
            xml(&r.country)
        ));
    }
    body.push_str("</feed>\n");
    (
        [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_escaping() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(
            xml("<a href=\"x\">&'\u{1}"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;"
        );
    }

    #[test]
    fn queries_are_validated() {
        let p = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let q = parse_query(
            &p(&[("q", "housing"), ("theme", "health"), ("country", "fr")]),
            vec![],
        )
        .unwrap();
        assert_eq!(q.text, "housing");
        assert!(q.filters[&Facet::Country].contains("FR"));
        assert!(parse_query(&p(&[("limit", "0")]), vec![]).is_err());
        assert!(parse_query(&p(&[("limit", "5000")]), vec![]).is_err());
        let err = parse_query(&p(&[("colour", "red")]), vec![]).unwrap_err();
        assert!(err.contains("unknown parameter `colour`"), "{err}");
        assert!(parse_query(&p(&[("q", &"x".repeat(501))]), vec![]).is_err());
    }
}
