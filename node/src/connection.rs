//! One WebSocket connection's task: frames in go to the engine, frames out come from the
//! host. The same loop serves connections peers open to us (axum) and connections we dial
//! (tokio-tungstenite); [`WsMessage`] papers over their two message types.

use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use ibis_shared::sync::{ConnectionId, Direction, Policy};
use tokio::sync::mpsc;

use crate::host::{Host, HostInput, Outbound, OUTBOUND_QUEUE};

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
    /// Pings and pongs: answered by the WebSocket library.
    Ignore,
}

pub trait WsMessage: Sized {
    fn classify(self) -> Incoming;
    fn binary(bytes: Vec<u8>) -> Self;
    fn close(reason: String) -> Self;
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

/// Runs a connection until either side ends it.
pub async fn pump<S, M, E, P>(
    socket: S,
    host: Host<P>,
    direction: Direction,
    principal: P::Principal,
) where
    S: Stream<Item = Result<M, E>> + Sink<M> + Unpin,
    M: WsMessage,
    E: std::fmt::Display,
    P: Policy + Send + 'static,
    P::Principal: PartialEq + Send,
{
    let conn = next_connection_id();
    let (outbound_tx, mut outbound) = mpsc::channel(OUTBOUND_QUEUE);
    host.send(HostInput::Open {
        conn,
        direction,
        principal,
        outbound: outbound_tx,
    });
    let (mut sink, mut stream) = socket.split();
    loop {
        tokio::select! {
            message = stream.next() => match message {
                Some(Ok(m)) => match m.classify() {
                    Incoming::Binary(frame) => host.send(HostInput::Frame { conn, frame }),
                    Incoming::Text => host.send(HostInput::Text { conn }),
                    Incoming::Close => break,
                    Incoming::Ignore => {}
                },
                Some(Err(e)) => {
                    tracing::debug!(?conn, error = %e, "connection failed");
                    break;
                }
                None => break,
            },
            out = outbound.recv() => match out {
                Some(Outbound::Frame(frame)) => {
                    if sink.send(M::binary(frame)).await.is_err() {
                        break;
                    }
                }
                Some(Outbound::Close(reason)) => {
                    let _ = sink.send(M::close(reason)).await;
                    break;
                }
                // The host dropped us (too slow, or shutting down).
                None => {
                    let _ = sink.send(M::close("closed by the node".into())).await;
                    break;
                }
            },
        }
    }
    let _ = sink.close().await;
    host.send(HostInput::Closed { conn });
}
