//! What attackers send, byte by byte: raw WebSockets from a chosen loopback address
//! (127.0.0.x all reach `lo` on Linux, so per-address rules can be seen from one machine),
//! protocol frames built with `ibis_shared::protocol::encode`, a partner's challenge-response
//! done by hand, and a small HTTP/1.1 client.

use std::net::SocketAddr;
use std::time::Duration;

use automerge::sync::SyncDoc;
use automerge::transaction::Transactable;
use futures_util::{SinkExt, StreamExt};
use ibis_node::federation::{
    accept_message, dial_message, nonce, NodeKey, NodePublicKey, AUTH_PREFIX, HEADER_CHALLENGE,
    HEADER_NODE, HEADER_SIGNATURE,
};
use ibis_shared::protocol::{self, Limits, Message, PeerId, PeerMetadata, StorageId, PROTOCOL_V1};
use ibis_shared::DocumentId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::harness::WAIT;

pub type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

pub const HERE: [u8; 4] = [127, 0, 0, 1];
pub const ELSEWHERE: [u8; 4] = [127, 0, 0, 2];

/// A TCP connection to `addr` from the loopback address `from`.
pub async fn tcp_from(from: [u8; 4], addr: SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket
        .bind(SocketAddr::from((from, 0)))
        .expect("bind a loopback address");
    tokio::time::timeout(WAIT, socket.connect(addr))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// An upgrade the node refused: its HTTP status and body (status 0: no HTTP answer).
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub body: String,
}

/// A WebSocket upgrade of `path` (with its query) from `from`, with extra headers; the
/// socket and the response's headers, or the refusal.
pub async fn upgrade(
    from: [u8; 4],
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(Ws, Vec<(String, String)>), Refused> {
    let mut request = format!("ws://{addr}{path}")
        .into_client_request()
        .expect("a request");
    for (name, value) in headers {
        request.headers_mut().insert(
            HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
            HeaderValue::from_str(value).expect("a header value"),
        );
    }
    let stream = tcp_from(from, addr).await;
    let handshake = tokio_tungstenite::client_async(request, stream);
    match tokio::time::timeout(WAIT, handshake).await {
        Err(_) => Err(Refused {
            status: 0,
            body: "no answer to the upgrade".into(),
        }),
        Ok(Ok((ws, response))) => {
            let headers = response
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        v.to_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            Ok((ws, headers))
        }
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response))) => Err(Refused {
            status: response.status().as_u16(),
            body: String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned(),
        }),
        Ok(Err(e)) => Err(Refused {
            status: 0,
            body: e.to_string(),
        }),
    }
}

/// Frames in this suite's limits (the node sends at most 16 MiB).
fn limits() -> Limits {
    Limits {
        max_frame_bytes: 64 * 1024 * 1024,
        ..Limits::default()
    }
}

pub fn decode(frame: &[u8]) -> Message {
    protocol::decode(frame, &limits()).expect("the node sends valid frames")
}

/// `join`, with a storage id in its metadata if given.
pub fn join(me: &str, storage_id: Option<&str>) -> Vec<u8> {
    protocol::encode(&Message::Join {
        sender_id: PeerId::new(me),
        supported_protocol_versions: vec![PROTOCOL_V1.to_owned()],
        peer_metadata: Some(PeerMetadata {
            storage_id: storage_id.map(StorageId::new),
            is_ephemeral: storage_id.is_none(),
        }),
    })
}

/// The first sync message of a peer that has nothing of a document.
pub fn first_sync_message() -> Vec<u8> {
    let doc = automerge::Automerge::new();
    let mut state = automerge::sync::State::new();
    doc.generate_sync_message(&mut state)
        .expect("a first message")
        .encode()
}

/// One side of automerge's sync protocol for one document, done by hand.
pub struct DocSync {
    pub doc: automerge::Automerge,
    pub state: automerge::sync::State,
}

impl Default for DocSync {
    fn default() -> Self {
        Self {
            doc: automerge::Automerge::new(),
            state: automerge::sync::State::new(),
        }
    }
}

impl DocSync {
    /// The next message to send, if any.
    pub fn generate(&mut self) -> Option<Vec<u8>> {
        self.doc
            .generate_sync_message(&mut self.state)
            .map(|m| m.encode())
    }

    /// Takes in the node's message; the answer to send, if any.
    pub fn receive(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        let message = automerge::sync::Message::decode(data).expect("a sync message");
        self.doc
            .receive_sync_message(&mut self.state, message)
            .expect("the node's changes apply");
        self.generate()
    }

    /// Both sides hold the same changes, as far as this side knows.
    pub fn caught_up(&self) -> bool {
        let heads = self.doc.get_heads();
        !heads.is_empty() && self.state.their_heads.as_ref() == Some(&heads)
    }
}

/// What a raw socket saw next.
#[derive(Debug)]
pub enum Event {
    Message(Message),
    /// The node closed the connection with a close frame (with this reason, if it gave one).
    Closed(Option<String>),
    /// The connection ended without a close frame: what the socket said.
    Dropped(String),
    TimedOut,
}

/// How a connection ended: the `error` frames that came before, and the close frame's
/// reason (or, if the node sent no close frame, what the socket said).
#[derive(Debug, Default)]
pub struct Closing {
    pub errors: Vec<String>,
    pub reason: Option<String>,
    pub dropped: Option<String>,
}

/// A raw protocol connection, past the handshake.
pub struct Raw {
    pub ws: Ws,
    pub me: PeerId,
    /// The node's peer id, from its `peer` message.
    pub node: PeerId,
}

impl Raw {
    /// Upgrades `path` from `from` and joins as `me`; panics if refused.
    pub async fn join(
        from: [u8; 4],
        addr: SocketAddr,
        path: &str,
        me: &str,
        storage_id: Option<&str>,
    ) -> Self {
        let (ws, _) = upgrade(from, addr, path, &[])
            .await
            .unwrap_or_else(|r| panic!("upgrade of {path} refused: {r:?}"));
        Self::handshake(ws, me, storage_id).await
    }

    /// Sends `join` on an upgraded socket and waits for the node's `peer`.
    pub async fn handshake(ws: Ws, me: &str, storage_id: Option<&str>) -> Self {
        let mut raw = Self {
            ws,
            me: PeerId::new(me),
            node: PeerId::new(""),
        };
        raw.send(join(me, storage_id)).await;
        let peer = raw
            .expect("the node's `peer`", |m| matches!(m, Message::Peer { .. }))
            .await;
        if let Message::Peer { sender_id, .. } = peer {
            raw.node = sender_id;
        }
        raw
    }

    /// Dials the node at `addr` as a partner with `key` (`/sync?node=…&cnonce=…`), checks
    /// that the node proves `expect`, answers its challenge, and joins as `me`.
    pub async fn partner(addr: SocketAddr, key: &NodeKey, expect: &str, me: &str) -> Self {
        let ours = key.public();
        let cnonce = nonce().expect("a nonce");
        let path = format!("/sync?node={ours}&cnonce={cnonce}");
        let (mut ws, headers) = upgrade(HERE, addr, &path, &[])
            .await
            .unwrap_or_else(|r| panic!("the partner upgrade was refused: {r:?}"));
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let theirs = NodePublicKey::parse(&header(HEADER_NODE)).expect("the node's key");
        assert_eq!(theirs.to_string(), expect, "the node proves its own key");
        theirs
            .verify(
                &accept_message(&cnonce, &theirs, &ours),
                &header(HEADER_SIGNATURE),
            )
            .expect("the node's signature");
        let proof = key.sign(&dial_message(&header(HEADER_CHALLENGE), &ours, &theirs));
        ws.send(WsMessage::Text(format!("{AUTH_PREFIX}{proof}").into()))
            .await
            .expect("send the proof");
        Self::handshake(ws, me, Some(&format!("{me}-storage"))).await
    }

    pub async fn send(&mut self, frame: Vec<u8>) {
        tokio::time::timeout(WAIT, self.ws.send(WsMessage::Binary(frame.into())))
            .await
            .expect("send in time")
            .expect("send a frame");
    }

    /// Sends a frame; false if the socket is closed already.
    pub async fn try_send(&mut self, frame: Vec<u8>) -> bool {
        matches!(
            tokio::time::timeout(WAIT, self.ws.send(WsMessage::Binary(frame.into()))).await,
            Ok(Ok(()))
        )
    }

    /// Fetches a document through the sync protocol, answering every message, until both
    /// sides hold the same changes; then makes sure the node has taken in the last answer
    /// (a request for a made-up id, answered `doc-unavailable`, comes back after it).
    pub async fn sync_document(&mut self, document: DocumentId) -> automerge::Automerge {
        self.replica(document).await.doc
    }

    /// The same, keeping the sync state: a replica that can go on syncing the document.
    pub async fn replica(&mut self, document: DocumentId) -> DocSync {
        let mut sync = DocSync::default();
        let first = sync.generate().expect("a first message");
        let request = protocol::encode(&Message::Request {
            sender_id: self.me.clone(),
            target_id: self.node.clone(),
            document_id: document,
            data: first,
        });
        self.send(request).await;
        while !sync.caught_up() {
            let message = self
                .expect("the node's sync message", |m| match m {
                    Message::Sync { document_id, .. } => *document_id == document,
                    Message::DocUnavailable { document_id, .. } => *document_id == document,
                    _ => false,
                })
                .await;
            let Message::Sync { data, .. } = message else {
                panic!("the node does not have {document}");
            };
            if let Some(answer) = sync.receive(&data) {
                self.send(self.sync(document, answer)).await;
            }
        }
        let probe = DocumentId::random();
        self.send(self.request(probe)).await;
        self.expect(
            "the probe's answer",
            |m| matches!(m, Message::DocUnavailable { document_id, .. } if *document_id == probe),
        )
        .await;
        sync
    }

    pub fn request(&self, document: DocumentId) -> Vec<u8> {
        protocol::encode(&Message::Request {
            sender_id: self.me.clone(),
            target_id: self.node.clone(),
            document_id: document,
            data: first_sync_message(),
        })
    }

    pub fn sync(&self, document: DocumentId, data: Vec<u8>) -> Vec<u8> {
        protocol::encode(&Message::Sync {
            sender_id: self.me.clone(),
            target_id: self.node.clone(),
            document_id: document,
            data,
        })
    }

    pub fn ephemeral(
        &self,
        sender: &str,
        document: DocumentId,
        session: String,
        count: u64,
        data: Vec<u8>,
    ) -> Vec<u8> {
        protocol::encode(&Message::Ephemeral {
            sender_id: PeerId::new(sender),
            target_id: self.node.clone(),
            document_id: document,
            session_id: session,
            count,
            data,
        })
    }

    /// The next message, close or timeout within `within`.
    pub async fn next(&mut self, within: Duration) -> Event {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Event::TimedOut,
                Ok(None) => return Event::Dropped("the stream ended".into()),
                Ok(Some(Err(e))) => return Event::Dropped(e.to_string()),
                Ok(Some(Ok(WsMessage::Binary(frame)))) => {
                    return Event::Message(decode(&frame));
                }
                Ok(Some(Ok(WsMessage::Close(frame)))) => {
                    return Event::Closed(frame.map(|f| f.reason.to_string()));
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Reads until a message matches `wanted` (within [`WAIT`]); panics, saying what came
    /// instead, if the connection closes or nothing matches in time.
    pub async fn expect(
        &mut self,
        what: &str,
        mut wanted: impl FnMut(&Message) -> bool,
    ) -> Message {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut skipped = 0usize;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Event::Message(m) if wanted(&m) => return m,
                Event::Message(Message::Error { message, .. }) => {
                    panic!("waiting for {what}, the node sent an error: {message}")
                }
                Event::Message(_) => skipped += 1,
                Event::Closed(reason) => {
                    panic!("waiting for {what}, the node closed the connection: {reason:?}")
                }
                Event::Dropped(why) => {
                    panic!("waiting for {what}, the connection ended without a close frame: {why}")
                }
                Event::TimedOut => {
                    panic!("{what} did not come within {WAIT:?} ({skipped} other messages)")
                }
            }
        }
    }

    /// Reads until the node closes the connection (within [`WAIT`]), collecting the
    /// `error` messages before the close.
    pub async fn expect_close(&mut self) -> Closing {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut closing = Closing::default();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Event::Message(Message::Error { message, .. }) => closing.errors.push(message),
                Event::Message(_) => {}
                Event::Closed(reason) => {
                    closing.reason = reason;
                    return closing;
                }
                Event::Dropped(why) => {
                    closing.dropped = Some(why);
                    return closing;
                }
                Event::TimedOut => panic!(
                    "the node did not close the connection within {WAIT:?} (errors so far: {:?})",
                    closing.errors
                ),
            }
        }
    }

    /// True if nothing but ordinary messages (no `error`, no close) comes for `quiet`.
    pub async fn stays_open(&mut self, quiet: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + quiet;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Event::TimedOut => return true,
                Event::Message(Message::Error { .. }) | Event::Closed(_) | Event::Dropped(_) => {
                    return false
                }
                Event::Message(_) => {}
            }
        }
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Undoes `Transfer-Encoding: chunked`.
fn unchunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            return out;
        };
        if size == 0 {
            return out;
        }
        let start = line_end + 2;
        let end = (start + size).min(body.len());
        out.extend_from_slice(&body[start..end]);
        body = body.get(end + 2..).unwrap_or_default();
    }
}

/// One HTTP/1.1 request from the loopback address `from` (`Connection: close`, the whole
/// answer read), within [`WAIT`].
pub async fn http(
    from: [u8; 4],
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let exchange = async {
        let mut stream = tcp_from(from, addr).await;
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(WAIT, exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no answer within {WAIT:?}"))
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {path}: no response head"));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: no status line in {head}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = &raw[split + 4..];
    let body = if chunked {
        unchunk(body)
    } else {
        body.to_vec()
    };
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// `GET path` from 127.0.0.1.
pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    http(HERE, addr, "GET", path, &[], "").await
}

/// A number from the node's `/metrics`.
pub async fn metric(node: &crate::harness::Node, name: &str) -> u64 {
    let text = get(node.addr, "/metrics").await.body;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// A random id for a made-up peer.
pub fn made_up(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Sleeps so that `sent` messages since `started` keep to `per_second`.
pub async fn pace(started: tokio::time::Instant, sent: usize, per_second: usize) {
    let due = started + Duration::from_secs_f64(sent as f64 / per_second as f64);
    tokio::time::sleep_until(due).await;
}

/// What a [`RawPeer`] has seen so far.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// The integer at `n` in its copy of the document.
    pub n: i64,
    pub syncs: usize,
    pub ephemerals: usize,
    /// Who the ephemeral messages relayed to it came from, and the last one's session.
    pub senders: std::collections::BTreeSet<String>,
    pub last_session: String,
    /// `error` messages, and the close reason once the node closed the connection.
    pub errors: Vec<String>,
    pub closed: Option<Option<String>>,
}

/// A raw socket that shares one document and keeps it in sync on a task of its own,
/// reading everything the node sends (so a flood relayed to it never backs up): a
/// well-behaved peer that costs the test process little.
pub struct RawPeer {
    put: tokio::sync::mpsc::UnboundedSender<i64>,
    seen: tokio::sync::watch::Receiver<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl RawPeer {
    /// Fetches `document` on `raw` and keeps it in sync.
    pub async fn start(mut raw: Raw, document: DocumentId) -> Self {
        let mut sync = DocSync::default();
        let first = sync.generate().expect("a first message");
        let request = protocol::encode(&Message::Request {
            sender_id: raw.me.clone(),
            target_id: raw.node.clone(),
            document_id: document,
            data: first,
        });
        raw.send(request).await;
        let (put, mut puts) = tokio::sync::mpsc::unbounded_channel::<i64>();
        let (seen_tx, seen) = tokio::sync::watch::channel(Seen::default());
        let task = tokio::spawn(async move {
            let mut state = Seen::default();
            loop {
                tokio::select! {
                    k = puts.recv() => {
                        let Some(k) = k else { return };
                        let mut tx = sync.doc.transaction();
                        tx.put(automerge::ROOT, "n", k).expect("put");
                        tx.commit();
                        if let Some(message) = sync.generate() {
                            if !raw.try_send(raw.sync(document, message)).await {
                                return;
                            }
                        }
                    }
                    event = raw.next(Duration::from_secs(3600)) => match event {
                        Event::Message(Message::Sync { document_id, data, .. }) if document_id == document => {
                            state.syncs += 1;
                            if let Some(answer) = sync.receive(&data) {
                                if !raw.try_send(raw.sync(document, answer)).await {
                                    return;
                                }
                            }
                            state.n = crate::peers::int_at(&sync.doc, "n").unwrap_or_default();
                            seen_tx.send_replace(state.clone());
                        }
                        Event::Message(Message::Ephemeral { sender_id, session_id, .. }) => {
                            state.ephemerals += 1;
                            if !state.senders.contains(sender_id.as_str()) {
                                state.senders.insert(sender_id.to_string());
                            }
                            state.last_session = session_id;
                            seen_tx.send_replace(state.clone());
                        }
                        Event::Message(Message::Error { message, .. }) => {
                            state.errors.push(message);
                            seen_tx.send_replace(state.clone());
                        }
                        Event::Message(_) => {}
                        Event::Closed(reason) => {
                            state.closed = Some(reason);
                            seen_tx.send_replace(state);
                            return;
                        }
                        Event::Dropped(why) => {
                            state.closed = Some(Some(format!("dropped: {why}")));
                            seen_tx.send_replace(state);
                            return;
                        }
                        Event::TimedOut => return,
                    },
                }
            }
        });
        let peer = Self { put, seen, task };
        let mut seen = peer.seen.clone();
        tokio::time::timeout(WAIT, seen.wait_for(|s| s.syncs > 0 || s.closed.is_some()))
            .await
            .expect("the document comes in time")
            .expect("the peer's task");
        peer
    }

    /// Sets `n` in the document (a change sent to the node).
    pub fn put(&self, k: i64) {
        let _ = self.put.send(k);
    }

    /// Waits (at most [`WAIT`]) until its copy has `n >= k`.
    pub async fn sees(&self, k: i64) -> Result<(), String> {
        let mut seen = self.seen.clone();
        let waited = tokio::time::timeout(WAIT, async {
            seen.wait_for(|s| s.n >= k || s.closed.is_some())
                .await
                .map(|s| s.clone())
        })
        .await;
        match waited {
            Ok(Ok(s)) if s.n >= k => Ok(()),
            Ok(Ok(s)) => Err(format!("closed before seeing {k}: {s:?}")),
            Ok(Err(_)) => Err("the peer's task ended".into()),
            Err(_) => Err(format!(
                "did not see n = {k} within {WAIT:?}: {:?}",
                *self.seen.borrow()
            )),
        }
    }

    /// Waits (at most [`WAIT`]) until an ephemeral message of `session` has reached it.
    pub async fn hears(&self, session: &str) -> Result<(), String> {
        let mut seen = self.seen.clone();
        let waited = tokio::time::timeout(
            WAIT,
            seen.wait_for(|s| s.last_session == session || s.closed.is_some()),
        )
        .await;
        match waited {
            Ok(Ok(s)) if s.last_session == session => Ok(()),
            _ => Err(format!(
                "did not hear session {session} within {WAIT:?}: {:?}",
                *self.seen.borrow()
            )),
        }
    }

    pub fn seen(&self) -> Seen {
        self.seen.borrow().clone()
    }

    pub fn stop(self) -> Seen {
        self.task.abort();
        self.seen.borrow().clone()
    }
}
