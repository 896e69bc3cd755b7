//! The node API: who the node and the user are, logging in and out, partners joining by
//! invitation, health and metrics.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{access, credential, AppState, SESSION_COOKIE};
use crate::policy::Access;
use crate::registry::{Acl, Peer, MAX_PASSWORD_BYTES, SESSION_DAYS};

/// Failed logins for one name before it is locked for a while.
const MAX_FAILED_LOGINS: u32 = 5;
const LOCKOUT: Duration = Duration::from_secs(15 * 60);

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

pub async fn login(
    State(state): State<AppState>,
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
    let locked = state.login_failures.lock().ok().and_then(|map| {
        map.get(&login.name)
            .filter(|(n, since)| *n >= MAX_FAILED_LOGINS && since.elapsed() < LOCKOUT)
            .map(|(_, since)| LOCKOUT - since.elapsed())
    });
    if let Some(wait) = locked {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "too many failed logins for this name; try again in {} minutes",
                wait.as_secs() / 60 + 1
            ),
        );
    }
    let registry = state.registry.clone();
    let name = login.name.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let user = registry.verify_password(&login.name, &login.password)?;
        match user {
            Some(user) => registry.start_session(&user.name).map(|s| Some((user, s))),
            None => Ok(None),
        }
    })
    .await;
    match checked {
        Ok(Ok(Some((user, secret)))) => {
            if let Ok(mut map) = state.login_failures.lock() {
                map.remove(&name);
            }
            let mut response =
                Json(json!({ "name": user.name, "role": user.role.key() })).into_response();
            if let Some(cookie) =
                session_cookie(&secret, SESSION_DAYS * 24 * 3600, secure(&state, &headers))
            {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        Ok(Ok(None)) => {
            if let Ok(mut map) = state.login_failures.lock() {
                let entry = map.entry(name).or_insert((0, Instant::now()));
                if entry.1.elapsed() >= LOCKOUT {
                    *entry = (0, Instant::now());
                }
                entry.0 += 1;
            }
            error(StatusCode::UNAUTHORIZED, "wrong name or password")
        }
        _ => error(StatusCode::INTERNAL_SERVER_ERROR, "login failed"),
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
    let outcome = tokio::task::spawn_blocking(move || {
        let Some(invited) = registry.redeem_invite(&join.invite)? else {
            return Ok(None);
        };
        registry.add_peer(&Peer {
            name: if join.name.trim().is_empty() {
                invited
            } else {
                join.name.trim().to_owned()
            },
            url: join.url,
            public_key: join.public_key,
            acl: Acl::FULL,
        })?;
        Ok::<_, crate::registry::RegistryError>(Some(()))
    })
    .await;
    match outcome {
        Ok(Ok(Some(()))) => Json(json!({
            "directory": state.info.directory,
            "node_key": state.key.public().to_string(),
            "organization": state.info.organization_name,
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
