//! One WebSocket connection's task: frames in go to the engine, frames out come from the
//! host. The same loop serves connections peers open to us (axum) and connections we dial
//! (tokio-tungstenite); [`WsMessage`] papers over their two message types.

use std::sync::atomic::{AtomicU64, Ordering};

use std::sync::Arc;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use ibis_shared::sync::{ConnectionId, Direction, Policy};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::Instant;

use crate::host::{Host, HostInput, Outbound, OUTBOUND_QUEUE};
use crate::limits::{ConnectionLimits, DEAD_AFTER, PING_EVERY};

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// A fresh connection id; never reused within the process.
pub fn next_connection_id() -> ConnectionId {
    ConnectionId(NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed))
}

/// What a WebSocket message is, to the pump.
pub enum Incoming {
    Binary(Vec<u8>),
    Text,
    Close,
    /// Pings and pongs: answered by the WebSocket library (a pong shows the peer is there).
    Ignore,
}

pub trait WsMessage: Sized {
    fn classify(self) -> Incoming;
    fn binary(bytes: Vec<u8>) -> Self;
    /// A close frame with code 1008 (policy violation) and `reason`.
    fn close(reason: String) -> Self;
    /// A close frame with code 1009 (message too big) and `reason`.
    fn close_too_big(reason: String) -> Self;
    fn ping() -> Self;
}

/// A socket's read error, to the pump: a message over the connection's size limit is
/// answered with close code 1009, any other failure with 1008.
pub trait SocketError: std::fmt::Display {
    fn message_too_big(&self) -> bool;
}

impl SocketError for axum::Error {
    fn message_too_big(&self) -> bool {
        // axum wraps its own tungstenite (another version than ours), so its capacity
        // error cannot be named here; its message is tungstenite's `CapacityError`'s.
        self.to_string().contains("Message too long")
    }
}

impl SocketError for tokio_tungstenite::tungstenite::Error {
    fn message_too_big(&self) -> bool {
        use tokio_tungstenite::tungstenite::error::CapacityError;
        matches!(self, Self::Capacity(CapacityError::MessageTooLong { .. }))
    }
}

impl WsMessage for axum::extract::ws::Message {
    fn classify(self) -> Incoming {
        use axum::extract::ws::Message as M;
        match self {
            M::Binary(b) => Incoming::Binary(b.to_vec()),
            M::Text(_) => Incoming::Text,
            M::Close(_) => Incoming::Close,
            M::Ping(_) | M::Pong(_) => Incoming::Ignore,
        }
    }
    fn binary(bytes: Vec<u8>) -> Self {
        Self::Binary(bytes.into())
    }
    fn close(reason: String) -> Self {
        Self::Close(Some(axum::extract::ws::CloseFrame {
            code: axum::extract::ws::close_code::POLICY,
            reason: truncate_reason(reason).into(),
        }))
    }
    fn close_too_big(reason: String) -> Self {
        Self::Close(Some(axum::extract::ws::CloseFrame {
            code: axum::extract::ws::close_code::SIZE,
            reason: truncate_reason(reason).into(),
        }))
    }
    fn ping() -> Self {
        Self::Ping(Vec::new().into())
    }
}

impl WsMessage for tokio_tungstenite::tungstenite::Message {
    fn classify(self) -> Incoming {
        use tokio_tungstenite::tungstenite::Message as M;
        match self {
            M::Binary(b) => Incoming::Binary(b.to_vec()),
            M::Text(_) => Incoming::Text,
            M::Close(_) => Incoming::Close,
            M::Ping(_) | M::Pong(_) | M::Frame(_) => Incoming::Ignore,
        }
    }
    fn binary(bytes: Vec<u8>) -> Self {
        Self::Binary(bytes.into())
    }
    fn close(reason: String) -> Self {
        use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
        use tokio_tungstenite::tungstenite::protocol::CloseFrame;
        Self::Close(Some(CloseFrame {
            code: CloseCode::Policy,
            reason: truncate_reason(reason).into(),
        }))
    }
    fn close_too_big(reason: String) -> Self {
        use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
        use tokio_tungstenite::tungstenite::protocol::CloseFrame;
        Self::Close(Some(CloseFrame {
            code: CloseCode::Size,
            reason: truncate_reason(reason).into(),
        }))
    }
    fn ping() -> Self {
        Self::Ping(Vec::new().into())
    }
}

/// A close frame's reason is at most 123 bytes.
fn truncate_reason(mut reason: String) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason.truncate(end);
    reason
}

/// Frames written with one flush at most: the rest wait for the next turn of the loop, so
/// a long queue does not keep the connection from reading.
const FRAMES_PER_WRITE: usize = 64;

/// Writes `first` and whatever else is already queued for the connection, then flushes
/// once: frames owed at the same moment (an acknowledgement and another peer's change,
/// say) leave in one write instead of one system call each, and reach the peer in one
/// read. Nothing waits for company: a lone frame is flushed at once. `Err(Some(reason))`
/// asks for a close frame, `Err(None)` means the socket failed.
async fn write_queued<K, M>(
    sink: &mut K,
    first: Outbound,
    queued: &mut mpsc::Receiver<Outbound>,
) -> Result<(), Option<String>>
where
    K: Sink<M> + Unpin,
    M: WsMessage,
{
    let mut next = Some(first);
    let mut written = 0;
    while let Some(out) = next.take() {
        match out {
            Outbound::Frame(frame) => {
                sink.feed(M::binary(frame)).await.map_err(|_| None)?;
                written += 1;
            }
            Outbound::Close(reason) => {
                sink.flush().await.map_err(|_| None)?;
                return Err(Some(reason));
            }
        }
        if written < FRAMES_PER_WRITE {
            next = queued.try_recv().ok();
        }
    }
    sink.flush().await.map_err(|_| None)
}

/// What bounds one connection's pump, besides the engine's own limits.
#[derive(Debug)]
pub struct PumpOptions {
    /// The connection's id (made by [`next_connection_id`], so the caller can register it
    /// before the pump starts).
    pub conn: ConnectionId,
    pub limits: ConnectionLimits,
    /// Says why, when the connection's credential is revoked ([`crate::revocation`]).
    pub revoked: Option<watch::Receiver<Option<String>>>,
}

impl PumpOptions {
    pub fn new(limits: ConnectionLimits) -> Self {
        Self {
            conn: next_connection_id(),
            limits,
            revoked: None,
        }
    }
}

/// Runs a connection until either side ends it, the node revokes it, or it goes quiet.
///
/// - Frames read and not yet taken in by the engine hold a share of the connection's
///   budget (`max_queued_inbound_bytes`): past it the pump stops reading, and TCP pushes
///   back on the sender. A busy engine costs each connection at most its budget.
/// - Every [`PING_EVERY`] the peer is pinged; one that has sent nothing, pongs included,
///   for [`DEAD_AFTER`] is gone. One that has sent no frame for `idle_timeout` is closed.
pub async fn pump<S, M, E, P>(
    socket: S,
    host: Host<P>,
    direction: Direction,
    principal: P::Principal,
    options: PumpOptions,
) where
    S: Stream<Item = Result<M, E>> + Sink<M> + Unpin,
    M: WsMessage,
    E: SocketError,
    P: Policy + Send + 'static,
    P::Principal: PartialEq + Send,
{
    let PumpOptions {
        conn,
        limits,
        mut revoked,
    } = options;
    let budget = Arc::new(Semaphore::new(limits.max_queued_inbound_bytes));
    let (outbound_tx, mut outbound) = mpsc::channel(OUTBOUND_QUEUE);
    host.send(HostInput::Open {
        conn,
        direction,
        principal,
        outbound: outbound_tx,
    });
    let (mut sink, mut stream) = socket.split();
    let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = Instant::now();
    let mut last_frame = Instant::now();
    // A frame read while the budget was spent, waiting for its share.
    let mut waiting: Option<Vec<u8>> = None;
    // Reading pauses until then when the peer sends faster than its byte rate.
    let mut rate = ByteRate::new(limits.max_inbound_bytes_per_second);
    let mut resume_at: Option<Instant> = None;
    let end: Option<String> = loop {
        let wanted = waiting.as_ref().map(|f| permits(f.len(), &limits));
        tokio::select! {
            permit = budget.clone().acquire_many_owned(wanted.unwrap_or(0)), if waiting.is_some() => {
                let (Ok(permit), Some(frame)) = (permit, waiting.take()) else { break None };
                host.send(HostInput::Frame { conn, frame, permit: Some(permit) });
            }
            _ = tokio::time::sleep_until(resume_at.unwrap_or_else(Instant::now)), if resume_at.is_some() => {
                resume_at = None;
            }
            message = stream.next(), if waiting.is_none() && resume_at.is_none() => match message {
                Some(Ok(m)) => {
                    heard = Instant::now();
                    match m.classify() {
                        Incoming::Binary(frame) => {
                            last_frame = heard;
                            resume_at = rate.take(frame.len(), heard);
                            match budget.clone().try_acquire_many_owned(permits(frame.len(), &limits)) {
                                Ok(permit) => host.send(HostInput::Frame { conn, frame, permit: Some(permit) }),
                                Err(_) => waiting = Some(frame),
                            }
                        }
                        Incoming::Text => {
                            last_frame = heard;
                            host.send(HostInput::Text { conn });
                        }
                        Incoming::Close => break None,
                        Incoming::Ignore => {}
                    }
                }
                Some(Err(e)) => {
                    // Say why, where the socket still listens (a frame over this
                    // connection's size limit ends here, and its sender should know).
                    tracing::debug!(?conn, error = %e, "connection failed");
                    let reason = format!("connection error: {e}");
                    if e.message_too_big() {
                        let _ = sink.send(M::close_too_big(reason)).await;
                        break None;
                    }
                    break Some(reason);
                }
                None => break None,
            },
            out = outbound.recv() => match out {
                Some(first) => {
                    if let Err(end) = write_queued(&mut sink, first, &mut outbound).await {
                        break end;
                    }
                }
                // The host dropped us (too slow, or shutting down).
                None => break Some("closed by the node".into()),
            },
            _ = ping.tick() => {
                if heard.elapsed() >= DEAD_AFTER {
                    break Some(format!("no answer for {} seconds", DEAD_AFTER.as_secs()));
                }
                if let Some(idle) = limits.idle_timeout {
                    if last_frame.elapsed() >= idle {
                        break Some(format!("idle for {} minutes", idle.as_secs() / 60));
                    }
                }
                if sink.send(M::ping()).await.is_err() {
                    break None;
                }
            }
            reason = wait_revoked(&mut revoked) => break Some(reason),
        }
    };
    if let Some(reason) = end {
        let _ = sink.send(M::close(reason)).await;
    }
    let _ = sink.close().await;
    host.send(HostInput::Closed { conn });
}

/// A token bucket of bytes: `rate` a second, four seconds' worth saved up at most.
struct ByteRate {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl ByteRate {
    fn new(rate: usize) -> Self {
        let rate = rate.max(1) as f64;
        Self {
            rate,
            burst: rate * 4.0,
            tokens: rate * 4.0,
            last: Instant::now(),
        }
    }

    /// Takes `len` bytes; when the bucket went below empty, when reading may resume.
    fn take(&mut self, len: usize, now: Instant) -> Option<Instant> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst) - len as f64;
        (self.tokens < 0.0)
            .then(|| now + std::time::Duration::from_secs_f64(-self.tokens / self.rate))
    }
}

/// Permits a frame of `len` bytes takes of the connection's budget: at least one, and at
/// most the whole budget (a frame within the frame limit always fits, alone).
fn permits(len: usize, limits: &ConnectionLimits) -> u32 {
    len.clamp(1, limits.max_queued_inbound_bytes.max(1))
        .min(u32::MAX as usize) as u32
}

/// The reason, once the connection's credential is revoked; never, without a watch.
async fn wait_revoked(revoked: &mut Option<watch::Receiver<Option<String>>>) -> String {
    let Some(rx) = revoked else {
        return std::future::pending().await;
    };
    loop {
        if let Some(reason) = rx.borrow_and_update().clone() {
            return reason;
        }
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

#[cfg(test)]
mod tests;
