//! What every page starts from: the node, the shell to fill, the visitor's language, and
//! the request's query and headers — one extractor instead of five in each handler.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::Response;

use super::page::{Page, PageLang, Shell};
use crate::server::AppState;

/// Query parameters read from one address (the rest are ignored).
const MAX_PARAMS: usize = 64;

pub struct Visit {
    pub state: AppState,
    pub shell: Arc<Shell>,
    pub lang: PageLang,
    pub params: Vec<(String, String)>,
    pub headers: HeaderMap,
}

impl FromRequestParts<AppState> for Visit {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let params: Vec<(String, String)> = parts
            .uri
            .query()
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .take(MAX_PARAMS)
                    .collect()
            })
            .unwrap_or_default();
        let shell = parts
            .extensions
            .get::<Arc<Shell>>()
            .cloned()
            .unwrap_or_else(|| Arc::new(Shell::new(None)));
        let lang = PageLang::of(&params, &parts.headers);
        Ok(Self {
            state: state.clone(),
            shell,
            lang,
            params,
            headers: parts.headers.clone(),
        })
    }
}

impl Visit {
    /// The page, in the shell, with its caching headers.
    pub fn respond(&self, page: Page) -> Response {
        page.respond(&self.state, &self.shell, &self.headers)
    }

    /// The 404 page at `path`.
    pub fn missing(&self, path: &str) -> Response {
        self.respond(Page::not_found(self.lang, path))
    }
}
