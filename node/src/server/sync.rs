//! `/sync`: a WebSocket becomes an engine connection once we know who is on the other end.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ibis_shared::sync::Direction;

use super::{access, AppState};
use crate::config::AuthMode;
use crate::connection::pump;
use crate::federation::{
    accept_message, dial_message, nonce, NodePublicKey, AUTH_PREFIX, HEADER_CHALLENGE, HEADER_NODE,
    HEADER_SIGNATURE,
};
use crate::policy::Principal;
use crate::registry::Acl;

/// How much a WebSocket reads from its socket at a time. tungstenite zero-fills this much
/// before every read; at its 128 KiB default that memset was a quarter of the node's time
/// relaying one change to 99 peers. Sync frames are mostly small; larger ones take more
/// reads.
pub(crate) const READ_BUFFER_BYTES: usize = 16 * 1024;

/// How long a dialing partner has to answer our challenge.
const CHALLENGE_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn upgrade(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let open = state.metrics.connections.load(Ordering::Relaxed) as usize;
    if open >= state.config.node.max_connections {
        state
            .metrics
            .connections_refused
            .fetch_add(1, Ordering::Relaxed);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many connections; try again later",
        )
            .into_response();
    }
    let max = state.limits.max_frame_bytes;
    let upgrade = upgrade
        .max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(READ_BUFFER_BYTES);
    if let Some(node) = query.get("node") {
        return partner(state, node, query.get("cnonce"), upgrade).await;
    }
    match access(&state, &headers, &query).await {
        Ok(access) => upgrade.on_upgrade(move |socket| {
            pump(
                socket,
                state.host,
                Direction::Incoming,
                Principal::Visitor(access),
            )
        }),
        Err(refusal) => refusal.into_response(),
    }
}

/// A partner node dialing in: check its key, prove ours, challenge it.
async fn partner(
    state: AppState,
    node: &str,
    cnonce: Option<&String>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let refuse = |status: StatusCode, why: String| {
        state
            .metrics
            .connections_refused
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%why, "partner connection refused");
        (status, why).into_response()
    };
    let dialer = match NodePublicKey::parse(node) {
        Ok(key) => key,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("bad node key: {e}")),
    };
    let Some(cnonce) = cnonce.filter(|c| !c.is_empty() && c.len() <= 128) else {
        return refuse(StatusCode::BAD_REQUEST, "missing cnonce".into());
    };
    let registry = state.registry.clone();
    let known = tokio::task::spawn_blocking(move || registry.peer_by_key(&dialer)).await;
    let (name, acl) = match known {
        Ok(Ok(Some(peer))) => (peer.name, peer.acl),
        Ok(Ok(None)) if state.config.auth.mode == AuthMode::Open => {
            (format!("node {}", &node[..node.len().min(8)]), Acl::FULL)
        }
        Ok(Ok(None)) => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "unknown node key; its operator must be added with `ibis-node peer add`".into(),
            )
        }
        _ => {
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot check the node key".into(),
            )
        }
    };
    let challenge = match nonce() {
        Ok(n) => n,
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let ours = state.key.public();
    let signature = state.key.sign(&accept_message(cnonce, &ours, &dialer));
    let expected = dial_message(&challenge, &dialer, &ours);
    let host = state.host.clone();
    let metrics = state.metrics.clone();
    let mut response = upgrade.on_upgrade(move |mut socket: WebSocket| async move {
        let proof = tokio::time::timeout(CHALLENGE_TIMEOUT, socket.recv()).await;
        let verified = match proof {
            Ok(Some(Ok(Message::Text(text)))) => text
                .strip_prefix(AUTH_PREFIX)
                .map(|sig| dialer.verify(&expected, sig).is_ok())
                .unwrap_or(false),
            _ => false,
        };
        if !verified {
            metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(partner = %name, "partner failed the challenge; closing");
            let _ = socket
                .send(<Message as crate::connection::WsMessage>::close(
                    "authentication failed".into(),
                ))
                .await;
            return;
        }
        tracing::info!(partner = %name, acl = acl.describe(), "partner authenticated");
        pump(
            socket,
            host,
            Direction::Incoming,
            Principal::Partner { name, acl },
        )
        .await;
    });
    for (header, value) in [
        (HEADER_NODE, ours.to_string()),
        (HEADER_SIGNATURE, signature),
        (HEADER_CHALLENGE, challenge),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(header, value);
        }
    }
    response
}
