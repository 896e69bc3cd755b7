//! Dialing partner nodes: connect, sync until the connection drops, wait, try again. The wait
//! doubles from one second up to thirty (with jitter, so a network of nodes restarting
//! together does not reconnect in lockstep) and starts over after a connection that lasted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::SinkExt;

use std::sync::atomic::Ordering;

use ibis_shared::sync::{Direction, Policy};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::connection::{pump, PumpOptions};
use crate::federation::{
    accept_message, dial_message, nonce, NodeKey, NodePublicKey, AUTH_PREFIX, HEADER_CHALLENGE,
    HEADER_NODE, HEADER_SIGNATURE,
};
use crate::host::Host;
use crate::limits::ConnectionLimits;
use crate::revocation::{Credential, Revocations};

const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(30);
/// A connection that lasted this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(30);

/// How this node presents itself when it dials.
#[derive(Clone, Default)]
pub struct DialIdentity {
    /// Appended to the peer URL's query (credentials for a client).
    pub query: String,
    /// Our node key, when dialing as a node: the partner authenticates us by it.
    pub key: Option<Arc<NodeKey>>,
    /// The key the partner must present. `None` for a plain automerge-repo server, or a
    /// partner whose key we do not know yet (then whatever key it proves is accepted).
    pub expect: Option<NodePublicKey>,
}

#[derive(Debug, thiserror::Error)]
enum DialError {
    #[error("{0}")]
    Connect(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("{0}")]
    Federation(#[from] crate::federation::FederationError),
    #[error("the partner presented key {found}, not the expected {expected}")]
    WrongKey { found: String, expected: String },
    #[error("the partner did not authenticate as an ibis node")]
    NotANode,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects, and when dialing as a node runs the challenge-response (see
/// [`crate::federation`]).
async fn connect(
    url: &str,
    identity: &DialIdentity,
    config: WebSocketConfig,
) -> Result<Socket, DialError> {
    let Some(key) = &identity.key else {
        let (socket, _) =
            tokio_tungstenite::connect_async_with_config(url, Some(config), true).await?;
        return Ok(socket);
    };
    let ours = key.public();
    let cnonce = nonce()?;
    let sep = if url.contains('?') { '&' } else { '?' };
    let target = format!("{url}{sep}node={ours}&cnonce={cnonce}");
    let (mut socket, response) =
        tokio_tungstenite::connect_async_with_config(target, Some(config), true).await?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let Some(theirs) = header(HEADER_NODE) else {
        // A plain automerge-repo server: nothing to prove, unless we expected a node.
        if identity.expect.is_some() {
            return Err(DialError::NotANode);
        }
        return Ok(socket);
    };
    let theirs = NodePublicKey::parse(&theirs)?;
    if let Some(expected) = identity.expect {
        if expected != theirs {
            return Err(DialError::WrongKey {
                found: theirs.to_string(),
                expected: expected.to_string(),
            });
        }
    }
    let signature = header(HEADER_SIGNATURE).unwrap_or_default();
    theirs.verify(&accept_message(&cnonce, &theirs, &ours), &signature)?;
    let challenge = header(HEADER_CHALLENGE).unwrap_or_default();
    let proof = key.sign(&dial_message(&challenge, &ours, &theirs));
    socket
        .send(tokio_tungstenite::tungstenite::Message::Text(
            format!("{AUTH_PREFIX}{proof}").into(),
        ))
        .await?;
    Ok(socket)
}

/// What bounds a dialed connection, and when to stop dialing.
pub struct DialOptions {
    pub limits: ConnectionLimits,
    /// The partner's registration: once it is revoked, its connection closes and it is
    /// no longer dialed.
    pub registration: Option<(Arc<Revocations>, Credential)>,
    /// While storage fails (`healthy` false), nothing is dialed: nothing could be kept.
    pub healthy: Option<Arc<crate::metrics::Metrics>>,
}

impl DialOptions {
    pub fn new(limits: ConnectionLimits) -> Self {
        Self {
            limits,
            registration: None,
            healthy: None,
        }
    }
}

/// Dials `url` until shutdown; each connection's principal comes from `principal`.
pub fn spawn<P>(
    url: String,
    identity: DialIdentity,
    host: Host<P>,
    principal: P::Principal,
    options: DialOptions,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()>
where
    P: Policy + Send + 'static,
    P::Principal: PartialEq + Send + Sync + Clone,
{
    tokio::spawn(async move {
        let url = with_path(&url);
        let target = match (identity.query.is_empty(), url.contains('?')) {
            (true, _) => url.clone(),
            (false, true) => format!("{url}&{}", identity.query),
            (false, false) => format!("{url}?{}", identity.query),
        };
        let max = options.limits.engine.max_frame_bytes;
        let mut config = WebSocketConfig::default();
        config.max_message_size = Some(max);
        config.max_frame_size = Some(max);
        config.read_buffer_size = crate::server::sync::READ_BUFFER_BYTES;
        let mut delay = FIRST_DELAY;
        loop {
            if *shutdown.borrow() {
                return;
            }
            if let Some((revocations, credential)) = &options.registration {
                let (revocations, credential) = (revocations.clone(), credential.clone());
                let gone = tokio::task::spawn_blocking(move || revocations.revoked(&credential))
                    .await
                    .ok()
                    .flatten();
                if let Some(reason) = gone {
                    tracing::info!(peer = %url, %reason, "no longer dialing this partner");
                    return;
                }
            }
            if options
                .healthy
                .as_ref()
                .is_some_and(|m| !m.healthy.load(Ordering::Relaxed))
            {
                tokio::select! {
                    _ = tokio::time::sleep(FIRST_DELAY) => continue,
                    _ = shutdown.changed() => return,
                }
            }
            let attempt = connect(&target, &identity, config);
            let started = Instant::now();
            tokio::select! {
                result = attempt => match result {
                    Ok(socket) => {
                        tracing::info!(peer = %url, "connected to partner");
                        let mut pump_options = PumpOptions::new(options.limits);
                        let _watched = options.registration.as_ref().map(|(revocations, credential)| {
                            let (rx, watched) = revocations.watch(pump_options.conn, credential.clone());
                            pump_options.revoked = Some(rx);
                            watched
                        });
                        pump(socket, host.clone(), Direction::Outgoing, principal.clone(), pump_options).await;
                        tracing::info!(peer = %url, "connection to partner ended");
                        if started.elapsed() >= STABLE_AFTER {
                            delay = FIRST_DELAY;
                        }
                    }
                    Err(e) => tracing::warn!(peer = %url, error = %e, retry_in = ?delay, "cannot reach partner"),
                },
                _ = shutdown.changed() => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(jittered(delay)) => {}
                _ = shutdown.changed() => return,
            }
            delay = (delay * 2).min(MAX_DELAY);
        }
    })
}

/// `ws://host:port` → `ws://host:port/`: a query string needs a path in front of it.
fn with_path(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if rest[authority_end..].starts_with('/') {
        url.to_owned()
    } else {
        format!(
            "{scheme}://{}/{}",
            &rest[..authority_end],
            &rest[authority_end..]
        )
    }
}

/// `delay` give or take a quarter, from the clock's nanoseconds (no randomness source
/// needed for this).
fn jittered(delay: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let quarter = delay / 4;
    let spread = quarter.as_nanos().max(1) as u64 * 2;
    delay - quarter + Duration::from_nanos(u64::from(nanos) % spread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_get_a_path() {
        assert_eq!(with_path("ws://127.0.0.1:9"), "ws://127.0.0.1:9/");
        assert_eq!(with_path("ws://h:9?x=1"), "ws://h:9/?x=1");
        assert_eq!(with_path("wss://h/sync"), "wss://h/sync");
        assert_eq!(with_path("ws://h:9/"), "ws://h:9/");
    }

    #[test]
    fn jitter_stays_within_a_quarter() {
        for _ in 0..100 {
            let d = jittered(Duration::from_secs(4));
            assert!(
                d >= Duration::from_secs(3) && d <= Duration::from_secs(5),
                "{d:?}"
            );
        }
    }
}
