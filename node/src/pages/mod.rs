//! Server-rendered pages at the app's own addresses: what a visitor, a search engine or a
//! link preview gets before (or without) the app's WebAssembly.
//!
//! - `list.rs`: `/` — search, facets and paging as query parameters.
//! - `practice.rs`: `/practices/{id}`.
//! - `directory.rs`: `/organizations`, `/organizations/{id}`, `/events`, `/events/{id}`.
//! - `map.rs`: `/map` — the practices a search finds, on a world map.
//! - `sitemap.rs`: `/sitemap.xml`, `/robots.txt`.
//! - `page.rs`: what every page has — its language, `<head>` (title, description, Open
//!   Graph, hreflang alternates, JSON-LD), the app's shell around it, HTTP caching.
//! - `caching.rs`: `ETag`, `Cache-Control` and `Vary` for pages and the JSON API.
//! - `html.rs`: escaping.
//!
//! Pages show what an anonymous visitor may see (published and archived practices, contact
//! details only with consent), to everyone: a page is the same for a member and a
//! visitor, so a shared cache may keep it. Members see more once the app has taken over.

pub mod caching;
mod directory;
mod html;
mod list;
mod map;
mod page;
mod practice;
mod sitemap;
mod visit;

use axum::routing::get;
use axum::Router;

use crate::server::AppState;
pub use html::escape;
pub use page::Shell;

/// The pages' routes (the app's files and the 404 page are the server's fallback).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(list::page))
        .route("/practices/{id}", get(practice::page))
        .route("/organizations", get(directory::organizations))
        .route("/organizations/{id}", get(directory::organization))
        .route("/events", get(directory::events))
        .route("/events/{id}", get(directory::event))
        .route("/map", get(map::page))
        .route("/sitemap.xml", get(sitemap::sitemap))
        .route("/robots.txt", get(sitemap::robots))
}

pub use page::not_found;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ibis_shared::model::review::ReviewState;

/// What pages show: what an anonymous visitor may see.
const VISIBLE: &[ReviewState] = &[ReviewState::Published, ReviewState::Archived];

/// A search over what visitors may see.
async fn public_search(
    state: &AppState,
    mut query: crate::index::Query,
) -> Result<crate::index::SearchResult, Response> {
    query.visible = VISIBLE.to_vec();
    let index = state.index.clone();
    match tokio::task::spawn_blocking(move || index.search(&query)).await {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(e)) => Err(failed(&e.to_string())),
        Err(e) => Err(failed(&e.to_string())),
    }
}

/// The answer when the node cannot read what a page needs; the reason goes to the log.
fn failed(reason: &str) -> Response {
    tracing::error!(%reason, "cannot render a page");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "this page cannot be shown right now; try again shortly",
    )
        .into_response()
}
