//! `/sitemap.xml` (every public page: published and archived practices, organizations,
//! events) and `/robots.txt`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::caching::{cached, Audience};
use super::directory::{event_path, network, organization_path};
use super::practice::practice_path;
use super::{failed, VISIBLE};
use crate::index;
use crate::server::practices::{rfc3339, xml};
use crate::server::AppState;

/// A sitemap holds at most 50,000 addresses (sitemaps.org); the catalogue's newest are
/// listed first.
const MAX_URLS: usize = 50_000;

pub async fn sitemap(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let base = state
        .config
        .node
        .public_url
        .trim_end_matches('/')
        .to_owned();
    let Some(network) = network(&state).await else {
        return failed("the directory is not readable");
    };
    let index = state.index.clone();
    let query = index::Query {
        visible: VISIBLE.to_vec(),
        ..index::Query::default()
    };
    let records = match tokio::task::spawn_blocking(move || index.records(&query, MAX_URLS)).await {
        Ok(Ok(records)) => records,
        Ok(Err(e)) => return failed(&e.to_string()),
        Err(e) => return failed(&e.to_string()),
    };
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n",
    );
    let mut url = |path: &str, updated: Option<i64>| {
        out.push_str(&format!(
            "<url><loc>{}</loc>",
            xml(&format!("{base}{path}"))
        ));
        if let Some(ms) = updated.filter(|ms| *ms > 0) {
            out.push_str(&format!("<lastmod>{}</lastmod>", rfc3339(ms)));
        }
        out.push_str("</url>\n");
    };
    for path in ["/", "/organizations", "/events", "/map"] {
        url(path, None);
    }
    let mut left = MAX_URLS.saturating_sub(4);
    for r in &records {
        if left == 0 {
            break;
        }
        url(&practice_path(r), Some(r.updated_at));
        left -= 1;
    }
    for id in network.organizations.keys().take(left) {
        url(&organization_path(id), None);
        left -= 1;
    }
    for e in network.events.iter().take(left) {
        url(&event_path(&e.id), None);
    }
    out.push_str("</urlset>\n");
    cached(
        StatusCode::OK,
        "application/xml; charset=utf-8",
        out,
        &headers,
        Audience::Everyone { lang: None },
    )
}

pub async fn robots(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let base = state.config.node.public_url.trim_end_matches('/');
    let mut out = String::from("User-agent: *\nAllow: /\nDisallow: /api/\nDisallow: /sync\n");
    // Crawlers need an absolute address; a node that does not know its own (no
    // `public_url`) lists none.
    if !base.is_empty() {
        out.push_str(&format!("Sitemap: {base}/sitemap.xml\n"));
    }
    cached(
        StatusCode::OK,
        "text/plain; charset=utf-8",
        out,
        &headers,
        Audience::Everyone { lang: None },
    )
}
