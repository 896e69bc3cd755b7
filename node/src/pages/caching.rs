//! HTTP caching of what the node answers to readers: its pages, its sitemap, its JSON
//! API. A response every visitor gets alike may be kept by a shared cache (a reverse proxy
//! or CDN in front of the node) for a minute; one made for a member is `private`. Either
//! way it carries an `ETag` of its body, and a request that already holds it gets `304`.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ibis_shared::i18n::Lang;
use sha2::{Digest, Sha256};

/// How long a shared cache may serve a public answer without asking again: an edit shows
/// within a minute, and the cache answers the rest.
const PUBLIC: &str = "public, max-age=60, stale-while-revalidate=600";
/// A member's answer: theirs alone, checked again each time.
const PRIVATE: &str = "private, no-cache";

/// Who an answer is for.
#[derive(Debug, Clone, Copy)]
pub enum Audience {
    /// The same for everyone: a page (in `lang`, which `Accept-Language` chose unless the
    /// address named it), the sitemap.
    Everyone { lang: Option<Lang> },
    /// What anonymous visitors get from an address whose answer is different for a member
    /// (the API shows members drafts): shared caches keep it apart from members' answers
    /// (`Vary: Cookie`; the nginx set-up in `deploy/` also never caches a request with a
    /// session).
    Visitors,
    /// A member's own answer.
    Member,
}

pub fn cached(
    status: StatusCode,
    content_type: &'static str,
    body: String,
    request: &HeaderMap,
    audience: Audience,
) -> Response {
    let digest = Sha256::digest(body.as_bytes());
    let etag = format!(
        "\"{}\"",
        digest[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let fresh = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim().trim_start_matches("W/") == etag);
    let mut response = if fresh && status == StatusCode::OK {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (status, body).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let (cache_control, vary) = match audience {
        Audience::Everyone { lang: Some(lang) } => {
            headers.insert(
                header::CONTENT_LANGUAGE,
                HeaderValue::from_static(lang.code()),
            );
            (PUBLIC, Some("Accept-Language"))
        }
        Audience::Everyone { lang: None } => (PUBLIC, None),
        Audience::Visitors => (PUBLIC, Some("Cookie")),
        Audience::Member => (PRIVATE, Some("Cookie")),
    };
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    if let Some(vary) = vary {
        headers.insert(header::VARY, HeaderValue::from_static(vary));
    }
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    response
}
