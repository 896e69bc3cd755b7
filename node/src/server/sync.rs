//! `/sync`: a WebSocket becomes an engine connection once we know who is on the other end.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ibis_shared::sync::Direction;

use super::client_address::ClientAddress;
use super::connection_slots::{Client, Slot};
use super::origin::is_own;
use super::{access, credential_source, AppState, CredentialSource};
use crate::config::AuthMode;
use crate::connection::{pump, PumpOptions};
use crate::federation::{
    accept_message, dial_message, nonce, NodePublicKey, AUTH_PREFIX, HEADER_CHALLENGE, HEADER_NODE,
    HEADER_SIGNATURE,
};
use crate::policy::{Access, Principal};
use crate::registry::Acl;
use crate::revocation::Credential;

/// How much a WebSocket reads from its socket at a time. tungstenite zero-fills this much
/// before every read; at its 128 KiB default that memset was a quarter of the node's time
/// relaying one change to 99 peers. Sync frames are mostly small; larger ones take more
/// reads.
pub(crate) const READ_BUFFER_BYTES: usize = 16 * 1024;

/// How long a dialing partner has to answer our challenge.
const CHALLENGE_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn upgrade(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    // Storage failed: nothing could be kept, so nothing is taken in until it works.
    let busy = if !state.metrics.healthy.load(Ordering::Relaxed) {
        Some("the node cannot store changes right now; try again later")
    } else if state.metrics.connections.load(Ordering::Relaxed) as usize
        >= state.config.node.max_connections
    {
        Some("too many connections; try again later")
    } else {
        None
    };
    if let Some(why) = busy {
        state
            .metrics
            .connections_refused
            .fetch_add(1, Ordering::Relaxed);
        return (StatusCode::SERVICE_UNAVAILABLE, why).into_response();
    }
    let max = state.limits.max_frame_bytes;
    let upgrade = upgrade
        .max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(READ_BUFFER_BYTES);
    if let Some(node) = query.get("node") {
        return partner(state, node, query.get("cnonce"), upgrade).await;
    }
    let source = credential_source(&headers, &query);
    let open_mode = state.config.auth.mode == AuthMode::Open;
    // A browser sends the session cookie whichever page opens the socket, and in open mode
    // a socket without credentials is an admin: such sockets must come from our own pages.
    // (A token is sent on purpose; an anonymous visitor has nothing a page could borrow.)
    if source == Some(CredentialSource::Cookie) || (source.is_none() && open_mode) {
        if let Err(refusal) = same_origin(&state, &headers) {
            return refusal.into_response();
        }
    }
    let access = match access(&state, &headers, &query).await {
        Ok(access) => access,
        Err(refusal) => return refusal.into_response(),
    };
    let limits = &state.config.limits;
    let client = match (&access, source) {
        (Access::Member { name, .. }, Some(_)) => Some((
            Client::Member(name.clone()),
            limits.sync_connections_per_member,
        )),
        // Open mode's visitors are admins of a node meant for demos and tests on a trusted
        // machine (the benchmark opens a hundred sockets from one address): only the
        // node-wide cap applies.
        (_, None) if open_mode => None,
        _ => Some((
            Client::Address(address),
            limits.sync_connections_per_address,
        )),
    };
    let slot = match client {
        Some((client, cap)) => match take_slot(&state, client, cap) {
            Ok(slot) => Some(slot),
            Err(refusal) => return refusal.into_response(),
        },
        None => None,
    };
    let principal = Principal::Visitor(access);
    let limits = principal.limits();
    let max = limits.engine.max_frame_bytes;
    let upgrade = upgrade.max_message_size(max).max_frame_size(max);
    let mut options = PumpOptions::new(limits);
    // A member's connection lives as long as its session or token (and its role) does.
    let watched = match (&principal, super::credential(&headers, &query)) {
        (Principal::Visitor(Access::Member { name, role }), Some(secret)) if source.is_some() => {
            let (rx, watched) = state.revocations.watch(
                options.conn,
                Credential::Member {
                    secret,
                    name: name.clone(),
                    role: *role,
                },
            );
            options.revoked = Some(rx);
            Some(watched)
        }
        _ => None,
    };
    upgrade.on_upgrade(move |socket| async move {
        // Given back when the connection ends (or with this closure, if the upgrade fails).
        let _slot = slot;
        let _watched = watched;
        pump(socket, state.host, Direction::Incoming, principal, options).await
    })
}

/// A refusal: the status and the reason, as the response's body.
type Refused = (StatusCode, String);

/// A slot among `client`'s open connections, or 429.
fn take_slot(state: &AppState, client: Client, cap: usize) -> Result<Slot, Refused> {
    let kind = client.kind();
    match state.connection_slots.acquire(client.clone(), cap) {
        Some(slot) => Ok(slot),
        None => {
            state.metrics.refuse_over_client_cap(kind);
            tracing::info!(
                client = kind.label(),
                cap,
                "connection refused: client at its cap"
            );
            Err((StatusCode::TOO_MANY_REQUESTS, client.refusal(cap)))
        }
    }
}

/// Refuses a browser page from another origin (a request without `Origin` is not from a
/// browser page, and passes).
fn same_origin(state: &AppState, headers: &HeaderMap) -> Result<(), Refused> {
    let Some(value) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = String::from_utf8_lossy(value.as_bytes());
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if is_own(&origin, &state.config.node.public_url, host) {
        return Ok(());
    }
    state
        .metrics
        .connections_refused
        .fetch_add(1, Ordering::Relaxed);
    state
        .metrics
        .connections_refused_cross_origin
        .fetch_add(1, Ordering::Relaxed);
    // Shown to the page's developer; kept short and printable.
    let shown: String = origin
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    tracing::info!(origin = %shown, "cross-origin WebSocket refused");
    Err((
        StatusCode::FORBIDDEN,
        format!("cross-origin WebSocket refused: {shown}"),
    ))
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
    let (name, organization, acl, registered) = match known {
        Ok(Ok(Some(peer))) => (
            peer.name,
            (!peer.organization.is_empty()).then_some(peer.organization),
            peer.acl,
            true,
        ),
        Ok(Ok(None)) if state.config.auth.mode == AuthMode::Open => {
            // The parsed key, not the query text (which may have had whitespace trimmed),
            // cut by characters. Unknown, so bound to no organization: a relay.
            let short: String = dialer.to_string().chars().take(8).collect();
            (format!("node {short}"), None, Acl::FULL, false)
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
    // Counted by key: connections still proving it count too.
    let slot = match take_slot(
        &state,
        Client::Partner(dialer.to_string()),
        state.config.limits.sync_connections_per_partner,
    ) {
        Ok(slot) => slot,
        Err(refusal) => {
            tracing::warn!(partner = %name, "partner connection refused: too many open");
            return refusal.into_response();
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
    let revocations = state.revocations.clone();
    let mut response = upgrade.on_upgrade(move |mut socket: WebSocket| async move {
        // Given back when the connection ends, the challenge failed included (or with
        // this closure, if the upgrade fails).
        let _slot = slot;
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
        let principal = Principal::Partner {
            name,
            organization: organization.clone(),
            acl,
        };
        let mut options = PumpOptions::new(principal.limits());
        // A registered partner's connection lives as long as its registration does.
        let _watched = registered.then(|| {
            let (rx, watched) = revocations.watch(
                options.conn,
                Credential::Partner {
                    key: dialer,
                    organization: organization.unwrap_or_default(),
                    acl,
                },
            );
            options.revoked = Some(rx);
            watched
        });
        pump(socket, host, Direction::Incoming, principal, options).await;
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
