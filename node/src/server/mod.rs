//! HTTP: the sync endpoint, health and metrics, the node API, and the app's files.
//!
//! - `sync.rs`: `/sync`, where people (cookie, token or anonymous) and partner nodes
//!   (challenge-response) become engine connections.
//! - `api.rs`: `/api/node`, login and logout, partner invitations; `/healthz`, `/metrics`.
//! - `practices.rs`: `/api/practices` (search, facets), one practice, CSV, `/feed.atom`.
//! - `client_address.rs`: the client's address (the TCP peer, or what a trusted reverse
//!   proxy reports); `login_guard.rs`: what logins may cost and how failures lock out;
//!   `connection_slots.rs`: `/sync` connections per client; `origin.rs`: the node's own
//!   origin, for browsers' WebSockets.

mod api;
pub mod client_address;
pub mod connection_slots;
pub mod login_guard;
pub mod origin;
mod places;
pub(crate) mod practices;
pub(crate) mod sync;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::http::{HeaderMap, Request, StatusCode};
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
    pub index: Arc<crate::index::PracticeIndex>,
    /// Password hashes at once, waiting logins, failed logins.
    pub login_guard: Arc<login_guard::LoginGuard>,
    /// `[node] trusted_proxies`, parsed.
    pub proxies: Arc<client_address::TrustedProxies>,
    /// `/sync` connections open per client.
    pub connection_slots: Arc<connection_slots::ConnectionSlots>,
    /// Live connections' credentials, closed when revoked.
    pub revocations: Arc<crate::revocation::Revocations>,
}

impl AppState {
    /// What every handler shares, for a node with this configuration; the configuration
    /// has been validated (its trusted proxies parse).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        host: Host<NodePolicy>,
        metrics: Arc<Metrics>,
        config: Arc<Config>,
        info: Arc<NodeInfo>,
        limits: Limits,
        registry: Arc<Registry>,
        key: Arc<NodeKey>,
        index: Arc<crate::index::PracticeIndex>,
    ) -> Result<Self, String> {
        let proxies = client_address::TrustedProxies::parse(&config.node.trusted_proxies)?;
        let revocations = crate::revocation::Revocations::new(registry.clone());
        Ok(Self {
            revocations,
            host,
            metrics,
            config,
            info,
            limits,
            registry,
            key,
            index,
            login_guard: Arc::default(),
            proxies: Arc::new(proxies),
            connection_slots: Arc::default(),
        })
    }
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
        .route("/api/places", get(places::locate))
        .route("/feed.atom", get(practices::feed))
        .merge(crate::pages::routes())
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024));
    // The app's files, and for any other address a real 404 page (in the app's shell, so
    // the app shows its own "not found" once loaded).
    let shell = Arc::new(crate::pages::Shell::new(app_dir.as_deref()));
    let not_found = get(crate::pages::not_found);
    let router = match app_dir {
        Some(dir) => router.fallback_service(
            tower_http::services::ServeDir::new(dir).fallback(not_found.with_state(state.clone())),
        ),
        None => router.fallback(not_found),
    };
    let router = router.layer(axum::Extension(shell));
    // Request spans name the method and the path only: the query may hold a credential
    // (`?token=`, which browsers' WebSockets must use), and headers hold cookies.
    let trace = tower_http::trace::TraceLayer::new_for_http().make_span_with(
        |request: &Request<axum::body::Body>| {
            tracing::debug_span!(
                "request",
                method = %request.method(),
                path = %request.uri().path(),
            )
        },
    );
    router.layer(trace).with_state(state)
}

/// Where a request's credential came from (see [`credential`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CredentialSource {
    /// `?token=`: sent on purpose by a script or the app.
    Query,
    /// The session cookie: the browser sends it by itself, whichever page asks.
    Cookie,
}

/// Where [`credential`] finds a request's credential, if it has one.
pub(crate) fn credential_source(
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Option<CredentialSource> {
    if query.contains_key("token") {
        return Some(CredentialSource::Query);
    }
    session_cookie(headers).map(|_| CredentialSource::Cookie)
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// A credential presented with a request: the session cookie, or a `token` query
/// parameter (browsers cannot set headers on a WebSocket).
fn credential(headers: &HeaderMap, query: &HashMap<String, String>) -> Option<String> {
    if let Some(token) = query.get("token") {
        return Some(token.clone());
    }
    session_cookie(headers)
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
