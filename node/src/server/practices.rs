//! The read-only practice API: search with facets, one practice, CSV export, and an Atom
//! feed of newly published practices. Anonymous callers see published and archived
//! practices; members of this organization also see drafts.

use std::collections::HashMap;

use crate::pages::caching::{cached, Audience};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ibis_shared::model::facets::Facet;
use ibis_shared::model::record::{PracticeRecord, CSV_COLUMNS};
use ibis_shared::model::review::ReviewState;
use ibis_shared::DocumentId;
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

/// The review states the caller may see, and who the answer is for (a member also sees
/// drafts: their answer is theirs alone).
async fn visible_states(state: &AppState, headers: &HeaderMap) -> (Vec<ReviewState>, Audience) {
    match access(state, headers, &HashMap::new()).await {
        Ok(Access::Member { .. }) => (ReviewState::ALL.to_vec(), Audience::Member),
        _ => (
            vec![ReviewState::Published, ReviewState::Archived],
            Audience::Visitors,
        ),
    }
}

/// `value` as JSON, with its caching headers.
fn json_for(value: &impl serde::Serialize, request: &HeaderMap, audience: Audience) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => cached(StatusCode::OK, "application/json", body, request, audience),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "cannot write JSON"),
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
    let (visible, audience) = visible_states(&state, &headers).await;
    let q = match parse_query(&params, visible) {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match run_search(&state, q).await {
        Ok(result) => json_for(&result, &headers, audience),
        Err(response) => response,
    }
}

pub async fn one(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(id) = DocumentId::parse_id_or_url(&id).ok() else {
        return error(StatusCode::BAD_REQUEST, "not a document id");
    };
    let (visible, audience) = visible_states(&state, &headers).await;
    let index = state.index.clone();
    match tokio::task::spawn_blocking(move || index.get(&id, &visible)).await {
        Ok(Ok(Some(record))) => json_for(&record, &headers, audience),
        Ok(Ok(None)) => error(StatusCode::NOT_FOUND, "no such practice"),
        _ => error(StatusCode::INTERNAL_SERVER_ERROR, "lookup failed"),
    }
}

pub async fn csv(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let (visible, audience) = visible_states(&state, &headers).await;
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
    let Ok(text) = write().map(|bytes| String::from_utf8_lossy(&bytes).into_owned()) else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "export failed");
    };
    let mut response = cached(
        StatusCode::OK,
        "text/csv; charset=utf-8",
        text,
        &headers,
        audience,
    );
    response.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        axum::http::HeaderValue::from_static("attachment; filename=\"practices.csv\""),
    );
    response
}

/// Whether XML 1.0 allows `c` in a document: tab, newline, carriage return, and
/// U+0020–U+D7FF, U+E000–U+FFFD, U+10000 and up (Rust's `char` has no surrogates).
fn xml_allowed(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Text for an XML text node or attribute value: escaped, and without the characters
/// XML 1.0 forbids (which no escape can carry).
pub(crate) fn xml(text: &str) -> String {
    // HTML's escaping is XML's too; XML also forbids some characters outright.
    crate::pages::escape(&text.chars().filter(|c| xml_allowed(*c)).collect::<String>())
}

/// RFC 3339 for milliseconds since the epoch (UTC).
pub(crate) fn rfc3339(ms: i64) -> String {
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
    let body = atom(
        &state.info.organization_name,
        &state.config.node.public_url,
        &state.info.catalogue,
        &entries,
    );
    cached(
        StatusCode::OK,
        "application/atom+xml; charset=utf-8",
        body,
        &headers,
        Audience::Everyone { lang: None },
    )
}

/// The Atom feed of `entries` (newest first, with when each was published).
///
/// Links and ids never come from the request (its `Host` is whatever the client sent).
/// With a `public_url`, links are absolute under it and the feed's id is its own URL.
/// Without one, the node does not know its address: links are relative (`/practices/…`,
/// resolved by readers against the feed's own URL, as RFC 4287 allows), and the feed's id
/// is the catalogue's `automerge:` URL. Entries' ids are always the practices'
/// `automerge:` URLs, which do not depend on where the node is reached.
fn atom(
    organization: &str,
    public_url: &str,
    catalogue: &str,
    entries: &[(PracticeRecord, i64)],
) -> String {
    let base = public_url.trim_end_matches('/');
    let feed_id = if base.is_empty() {
        catalogue.to_owned()
    } else {
        format!("{base}/feed.atom")
    };
    let updated = entries.first().map_or(0, |(_, at)| *at);
    let mut body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\n\
         <title>{} — newly published practices</title>\n<id>{}</id>\n\
         <link rel=\"self\" href=\"{}/feed.atom\"/>\n<updated>{}</updated>\n",
        xml(organization),
        xml(&feed_id),
        xml(base),
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
            xml(base),
            xml(path),
            rfc3339(*at),
            xml(&r.summary),
            xml(&r.country)
        ));
    }
    body.push_str("</feed>\n");
    body
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
        assert_eq!(
            xml("a\u{0}b\u{8}c\u{b}d\u{c}e\u{1f}f\u{FFFE}g\u{FFFF}h"),
            "abcdefgh"
        );
        assert_eq!(
            xml("tab\tnl\ncr\r \u{7f}\u{85}\u{D7FF}\u{E000}\u{FFFD}\u{10000}\u{10FFFF}"),
            "tab\tnl\ncr\r \u{7f}\u{85}\u{D7FF}\u{E000}\u{FFFD}\u{10000}\u{10FFFF}",
            "what XML 1.0 allows stays"
        );
    }

    /// Every character of `text` is one XML 1.0 allows, checked against the grammar's
    /// `Char` production independently of [`xml_allowed`].
    fn only_xml_chars(text: &str) -> Result<(), char> {
        for c in text.chars() {
            let n = c as u32;
            let ok = n == 0x9
                || n == 0xA
                || n == 0xD
                || (0x20..=0xD7FF).contains(&n)
                || (0xE000..=0xFFFD).contains(&n)
                || (0x10000..=0x10FFFF).contains(&n);
            if !ok {
                return Err(c);
            }
        }
        Ok(())
    }

    /// A strict check that `feed` is a well-formed tree of the elements we write: tags
    /// balance, attribute values are quoted, and `&` only starts the five entities.
    fn well_formed(feed: &str) -> Result<(), String> {
        only_xml_chars(feed).map_err(|c| format!("forbidden character {c:?}"))?;
        let body = feed
            .strip_prefix("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n")
            .ok_or("no XML declaration")?;
        let mut open: Vec<&str> = Vec::new();
        let mut rest = body;
        while let Some(lt) = rest.find('<') {
            check_text(&rest[..lt])?;
            let gt = rest[lt..].find('>').ok_or("unclosed tag")? + lt;
            let tag = &rest[lt + 1..gt];
            if let Some(name) = tag.strip_prefix('/') {
                if open.pop() != Some(name) {
                    return Err(format!("</{name}> closes nothing"));
                }
            } else {
                let self_closing = tag.ends_with('/');
                let tag = tag.trim_end_matches('/');
                let (name, attributes) = tag.split_once(' ').unwrap_or((tag, ""));
                let mut attributes = attributes.trim();
                while !attributes.is_empty() {
                    let (_, value) = attributes.split_once("=\"").ok_or("unquoted attribute")?;
                    let end = value.find('"').ok_or("unterminated attribute")?;
                    if value[..end].contains('<') {
                        return Err("< in an attribute".into());
                    }
                    check_text(&value[..end])?;
                    attributes = value[end + 1..].trim();
                }
                if !self_closing {
                    open.push(name);
                }
            }
            rest = &rest[gt + 1..];
        }
        check_text(rest)?;
        if open.is_empty() {
            Ok(())
        } else {
            Err(format!("unclosed: {open:?}"))
        }
    }

    fn check_text(text: &str) -> Result<(), String> {
        let mut rest = text;
        while let Some(amp) = rest.find('&') {
            rest = &rest[amp..];
            if !["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                .iter()
                .any(|e| rest.starts_with(e))
            {
                return Err(format!("a bare & in {text:?}"));
            }
            rest = &rest[1..];
        }
        Ok(())
    }

    fn entry(title: &str) -> (PracticeRecord, i64) {
        let id = DocumentId::random();
        (
            PracticeRecord {
                id: Some(id.url()),
                title: title.to_owned(),
                summary: "Sum\u{1b}mary & <more>".into(),
                country: "F\u{FFFF}R".into(),
                ..PracticeRecord::default()
            },
            1_700_000_000_000,
        )
    }

    #[test]
    fn the_feed_is_well_formed_whatever_the_text() {
        let entries = [
            entry("Bad \u{1}\u{FFFE}\u{FFFF} title"),
            entry("\"quoted\" & 'apostrophes' <tags>"),
        ];
        let feed = atom(
            "IOM \u{0}& co",
            "https://ibis.example.org/",
            "automerge:x",
            &entries,
        );
        well_formed(&feed).unwrap_or_else(|e| panic!("{e}:\n{feed}"));
        assert!(feed.contains("<title>Bad  title</title>"), "{feed}");
        assert!(feed.contains("<category term=\"FR\"/>"), "{feed}");
        assert!(feed.contains("<id>https://ibis.example.org/feed.atom</id>"));
        let id = entries[0].0.id.clone().unwrap_or_default();
        assert!(feed.contains(&format!("<id>{id}</id>")));
        assert!(feed.contains(&format!(
            "<link href=\"https://ibis.example.org/practices/{}\"/>",
            id.trim_start_matches("automerge:")
        )));
        // The checker itself refuses what it should.
        assert!(well_formed(&feed.replace("FR", "F\u{FFFE}R")).is_err());
        assert!(well_formed(&feed.replace("&amp; co", "& co")).is_err());
        assert!(well_formed(&feed.replace("</entry>", "")).is_err());
    }

    #[test]
    fn without_a_public_url_links_are_relative_and_ids_are_automerge_urls() {
        let entries = [entry("A practice")];
        let feed = atom("IOM", "", "automerge:catalogue", &entries);
        well_formed(&feed).unwrap_or_else(|e| panic!("{e}:\n{feed}"));
        assert!(feed.contains("<id>automerge:catalogue</id>"), "{feed}");
        assert!(
            feed.contains("<link rel=\"self\" href=\"/feed.atom\"/>"),
            "{feed}"
        );
        let id = entries[0].0.id.clone().unwrap_or_default();
        assert!(feed.contains(&format!("<id>{id}</id>")), "{feed}");
        assert!(feed.contains("<link href=\"/practices/"), "{feed}");
        assert!(!feed.contains("href=\"http"), "{feed}");
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
