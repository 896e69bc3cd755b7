//! The node API: who the node and the user are, logging in and out, partners joining by
//! invitation, health and metrics.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::client_address::ClientAddress;
use super::login_guard::Refusal;
use super::{access, credential, AppState, SESSION_COOKIE};
use crate::policy::Access;
use crate::registry::{Acl, Peer, MAX_PASSWORD_BYTES, SESSION_DAYS};

pub async fn healthz(State(state): State<AppState>) -> Response {
    let healthy = state.metrics.healthy.load(Ordering::Relaxed);
    let body = json!({
        "status": if healthy { "ok" } else { "failing" },
        "connections": state.metrics.connections.load(Ordering::Relaxed),
        "documents": state.metrics.documents_known.load(Ordering::Relaxed),
    });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

pub async fn node_info(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let info = &state.info;
    // An expired cookie on this page just means "not logged in".
    let access = access(&state, &headers, &query)
        .await
        .unwrap_or(Access::Anonymous);
    let (user, workspace) = match access {
        Access::Member { name, role } => (
            json!({ "name": name, "role": role.key() }),
            json!(info.workspace),
        ),
        Access::Anonymous => (serde_json::Value::Null, serde_json::Value::Null),
    };
    Json(json!({
        "peer_id": info.peer_id,
        "storage_id": info.storage_id,
        "organization": { "id": info.organization_id, "name": info.organization_name },
        // Who may change a published practice here: the app hides editing from the rest.
        "published_edits": state.config.organization.published_edits,
        "directory": info.directory,
        "catalogue": info.catalogue,
        "workspace": workspace,
        "auth": state.config.auth.mode.as_str(),
        "user": user,
        "node_key": state.key.public().to_string(),
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    name: String,
    password: String,
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    state.config.node.public_url.starts_with("https://")
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn session_cookie(value: &str, max_age: i64, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"
    ))
    .ok()
}

fn refused_login(refusal: &Refusal) -> Response {
    let status = match refusal {
        Refusal::Busy => StatusCode::SERVICE_UNAVAILABLE,
        Refusal::NameLocked { .. } | Refusal::AddressLocked { .. } => StatusCode::TOO_MANY_REQUESTS,
    };
    let mut response = error(status, &refusal.message());
    if let Ok(value) = HeaderValue::from_str(&refusal.retry_after().to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Logs a member in. Each attempt is an argon2 hash, so logins go through
/// [`LoginGuard`](super::login_guard::LoginGuard): a few hashes at once, a bounded
/// waiting room, failures counted per name and client address.
pub async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    body: Result<Json<Login>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(login)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "send {\"name\": …, \"password\": …} as JSON",
        );
    };
    if login.name.len() > 200 || login.password.len() > MAX_PASSWORD_BYTES {
        return error(StatusCode::BAD_REQUEST, "name or password too long");
    }
    let guard = state.login_guard.clone();
    let admission = match guard.admit() {
        Ok(admission) => admission,
        Err(refusal) => {
            state.metrics.logins_busy.fetch_add(1, Ordering::Relaxed);
            return refused_login(&refusal);
        }
    };
    let attempt = match guard.attempt(&login.name, address, Instant::now()) {
        Ok(attempt) => attempt,
        Err(refusal) => {
            state.metrics.logins_locked.fetch_add(1, Ordering::Relaxed);
            tracing::info!(client = %address, "login refused after too many failures");
            return refused_login(&refusal);
        }
    };
    let Some(permit) = admission.turn().await else {
        guard.release(attempt);
        return refused_login(&Refusal::Busy);
    };
    let registry = state.registry.clone();
    let metrics = state.metrics.clone();
    let checked = tokio::task::spawn_blocking(move || {
        // Held until the hash is done, even if the client has gone.
        let _permit = permit;
        let _hashing = metrics.login_hash_started();
        let user = registry.verify_password(&login.name, &login.password)?;
        match user {
            Some(user) => registry.start_session(&user.name).map(|s| Some((user, s))),
            None => Ok(None),
        }
    })
    .await;
    match checked {
        Ok(Ok(Some((user, secret)))) => {
            guard.succeeded(attempt);
            let mut response =
                Json(json!({ "name": user.name, "role": user.role.key() })).into_response();
            if let Some(cookie) =
                session_cookie(&secret, SESSION_DAYS * 24 * 3600, secure(&state, &headers))
            {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        // The attempt stays counted as a failure.
        Ok(Ok(None)) => error(StatusCode::UNAUTHORIZED, "wrong name or password"),
        Ok(Err(e)) => {
            guard.release(attempt);
            tracing::error!(error = %e, "login failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "login failed")
        }
        Err(_) => {
            guard.release(attempt);
            error(StatusCode::INTERNAL_SERVER_ERROR, "login failed")
        }
    }
}

pub async fn logout(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(secret) = credential(&headers, &query) {
        let registry = state.registry.clone();
        let _ = tokio::task::spawn_blocking(move || registry.end_session(&secret)).await;
        // The sockets this session opened close now, not at the next poll.
        state.revocations.check_now();
    }
    let mut response = Json(json!({ "ok": true })).into_response();
    if let Some(cookie) = session_cookie("", 0, secure(&state, &headers)) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Join {
    invite: String,
    /// The joining organization's name.
    name: String,
    /// The joining node's public key.
    public_key: String,
    /// Where this node can dial the joining node, if it is reachable.
    #[serde(default)]
    url: String,
}

/// A new partner redeems an invitation: it becomes a peer of this node, and learns which
/// network it joined and this node's key.
pub async fn federation_join(
    State(state): State<AppState>,
    body: Result<Json<Join>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(join)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "send {\"invite\", \"name\", \"public_key\", \"url\"} as JSON",
        );
    };
    let registry = state.registry.clone();
    // One transaction: a partner refused here leaves the invitation usable.
    let outcome = tokio::task::spawn_blocking(move || {
        // Bound to the organization it was invited as, never to one it names itself.
        registry.join_with_invite(&join.invite, |invited| Peer {
            name: if join.name.trim().is_empty() {
                invited.name
            } else {
                join.name.trim().to_owned()
            },
            url: join.url,
            public_key: join.public_key,
            organization: invited.organization,
            acl: Acl::FULL,
        })
    })
    .await;
    match outcome {
        Ok(Ok(Some(peer))) => Json(json!({
            "directory": state.info.directory,
            "node_key": state.key.public().to_string(),
            "organization": state.info.organization_name,
            "inviter_organization": state.info.organization_id,
            "organization_id": peer.organization,
        }))
        .into_response(),
        Ok(Ok(None)) => error(
            StatusCode::FORBIDDEN,
            "the invitation is unknown, used or expired",
        ),
        Ok(Err(e)) => error(StatusCode::BAD_REQUEST, &e.to_string()),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "joining failed"),
    }
}
