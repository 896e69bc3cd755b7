//! HTTP: the sync endpoint, health and metrics, the node API, and the app's files.
//!
//! - `sync.rs`: `/sync`, where people (cookie, token or anonymous) and partner nodes
//!   (challenge-response) become engine connections.
//! - `api.rs`: `/api/node`, login and logout, partner invitations; `/healthz`, `/metrics`.
//! - `practices.rs`: `/api/practices` (search, facets), one practice, CSV, `/feed.atom`.

mod api;
mod practices;
pub(crate) mod sync;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use ibis_shared::protocol::Limits;

use crate::config::{AuthMode, Config};
use crate::federation::NodeKey;
use crate::host::Host;
use crate::init::NodeInfo;
use crate::metrics::Metrics;
use crate::policy::{Access, NodePolicy};
use crate::registry::Registry;

pub const SESSION_COOKIE: &str = "ibis_session";

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub host: Host<NodePolicy>,
    pub metrics: Arc<Metrics>,
    pub config: Arc<Config>,
    pub info: Arc<NodeInfo>,
    pub limits: Limits,
    pub registry: Arc<Registry>,
    pub key: Arc<NodeKey>,
    pub login_failures: Arc<Mutex<HashMap<String, (u32, std::time::Instant)>>>,
    pub index: Arc<crate::index::PracticeIndex>,
}

pub fn router(state: AppState, app_dir: Option<PathBuf>) -> Router {
    let router = Router::new()
        .route("/sync", get(sync::upgrade))
        .route("/healthz", get(api::healthz))
        .route("/metrics", get(api::metrics))
        .route("/api/node", get(api::node_info))
        .route("/api/login", post(api::login))
        .route("/api/logout", post(api::logout))
        .route("/api/federation/join", post(api::federation_join))
        .route("/api/practices", get(practices::list))
        .route("/api/practices.csv", get(practices::csv))
        .route("/api/practices/{id}", get(practices::one))
        .route("/feed.atom", get(practices::feed))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024));
    let router = match app_dir {
        Some(dir) => {
            let index = dir.join("index.html");
            router.fallback_service(
                tower_http::services::ServeDir::new(dir)
                    .fallback(tower_http::services::ServeFile::new(index)),
            )
        }
        None => router.fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "this node serves no app (start it with --app-dir)",
            )
        }),
    };
    router
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// A credential presented with a request: the session cookie, or a `token` query
/// parameter (browsers cannot set headers on a WebSocket).
fn credential(headers: &HeaderMap, query: &HashMap<String, String>) -> Option<String> {
    if let Some(token) = query.get("token") {
        return Some(token.clone());
    }
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// Who is asking: a member (valid credential), anonymous (none), or refused (a credential
/// that is not valid). In open mode everyone without credentials is an admin.
async fn access(
    state: &AppState,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<Access, (StatusCode, &'static str)> {
    if let Some(secret) = credential(headers, query) {
        let registry = state.registry.clone();
        let user = tokio::task::spawn_blocking(move || registry.authenticate(&secret))
            .await
            .map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, "authentication failed"))?
            .map_err(|e| {
                tracing::error!(error = %e, "cannot check credentials");
                (StatusCode::INTERNAL_SERVER_ERROR, "authentication failed")
            })?;
        return match user {
            Some(user) => Ok(Access::Member {
                name: user.name,
                role: user.role,
            }),
            None => {
                state
                    .metrics
                    .connections_refused
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Err((
                    StatusCode::UNAUTHORIZED,
                    "invalid or expired credentials; log in again",
                ))
            }
        };
    }
    Ok(match state.config.auth.mode {
        AuthMode::Open => Access::Member {
            name: "Visitor".into(),
            role: ibis_shared::model::Role::Admin,
        },
        AuthMode::Accounts => Access::Anonymous,
    })
}
