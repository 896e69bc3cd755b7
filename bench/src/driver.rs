//! A lean automerge-repo v1 client for load: one WebSocket, a map of documents, automerge's
//! sync protocol, nothing else. It does not use ibis's engine, so it measures any server
//! the same way (and checks ibis against the protocol independently). A fresh client's
//! many documents are fetched with a pool of worker threads ([`fetch`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use automerge::sync::{self, SyncDoc};
use automerge::{Automerge, ChangeHash, ReadDoc};
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use ibis_shared::protocol::{decode, encode, Limits, Message, PeerId, PeerMetadata, StorageId};
use ibis_shared::sync::receive_sync_message;
use ibis_shared::DocumentId;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Ws;

mod fetch;

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct DocState {
    pub doc: Automerge,
    pub sync: sync::State,
    /// The server said it does not have the document.
    pub unavailable: bool,
}

impl DocState {
    /// A document we have nothing of yet.
    fn empty() -> Self {
        Self {
            doc: Automerge::new(),
            sync: sync::State::new(),
            unavailable: false,
        }
    }

    /// Applies an encoded sync message: whether the heads changed, and how many changes
    /// were applied.
    fn receive(&mut self, data: &[u8]) -> anyhow::Result<(bool, u64)> {
        let message = sync::Message::decode(data).context("a malformed sync message")?;
        let before = self.doc.get_heads();
        // Counted by the change graph's size: listing the new changes
        // (`get_changes_meta`, let alone `get_changes`) walks the graph, which cost
        // this driver a noticeable share of what the server spent serving them.
        let changes_before = self.doc.stats().num_changes;
        // The engine's receive (same result as automerge's, without its walk of the
        // whole history per message), so the clients' share of the two cores stays
        // small next to the server's.
        receive_sync_message(&mut self.doc, &mut self.sync, message)
            .context("applying a sync message")?;
        let changed = self.doc.get_heads() != before;
        let applied = self.doc.stats().num_changes.saturating_sub(changes_before);
        Ok((changed, applied))
    }

    /// The encoded sync message to send next, if there is anything to say.
    fn outgoing(&mut self) -> Option<Vec<u8>> {
        self.doc
            .generate_sync_message(&mut self.sync)
            .map(|m| m.encode())
    }
}

/// What one incoming frame did.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A document's content changed (the server sent changes).
    Changed(DocumentId),
    /// A sync message that changed nothing (an acknowledgement).
    Acked(DocumentId),
    Unavailable(DocumentId),
    Ephemeral(DocumentId),
    Other,
}

/// One connection. A task reads the socket all the time (so pings are answered even
/// while a workload is busy elsewhere: the JS server drops peers that miss a pong) and
/// queues the frames for [`Conn::recv`].
pub struct Conn {
    sink: SplitSink<Socket, Ws>,
    /// Frames as they came off the socket, with when they did.
    frames: mpsc::UnboundedReceiver<Result<(Ws, Instant), String>>,
    reader: tokio::task::JoinHandle<()>,
    me: PeerId,
    server: PeerId,
    pub docs: HashMap<DocumentId, DocState>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub frames_in: u64,
    pub frames_out: u64,
    /// Changes received from the server and applied, over all documents.
    pub changes_applied: u64,
    limits: Limits,
}

impl Conn {
    /// Connects and completes the handshake. A storage id makes the server keep sync
    /// states for us across connections.
    pub async fn connect(url: &str, name: &str, storage: Option<&str>) -> anyhow::Result<Self> {
        let mut config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default();
        config.max_message_size = Some(64 << 20);
        config.max_frame_size = Some(64 << 20);
        // tungstenite zero-fills the whole read buffer before every read (128 KiB by
        // default): with 100 clients in this process that alone was a core's worth of work.
        config.read_buffer_size = 16 * 1024;
        let (ws, _) = tokio::time::timeout(
            Duration::from_secs(20),
            tokio_tungstenite::connect_async_with_config(url, Some(config), true),
        )
        .await
        .context("connect timed out")??;
        let (sink, mut stream) = ws.split();
        let (tx, frames) = mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            while let Some(frame) = stream.next().await {
                let end = frame.is_err();
                let frame = frame
                    .map(|f| (f, Instant::now()))
                    .map_err(|e| e.to_string());
                if tx.send(frame).is_err() || end {
                    break;
                }
            }
        });
        let mut conn = Self {
            sink,
            frames,
            reader,
            // Unique per connection: servers route by peer id, and a workload that
            // reconnects must not have its frames sent to an older connection.
            me: PeerId::new(format!("{name}-{}", DocumentId::random())),
            server: PeerId::new(""),
            docs: HashMap::new(),
            bytes_in: 0,
            bytes_out: 0,
            frames_in: 0,
            frames_out: 0,
            changes_applied: 0,
            limits: Limits {
                max_frame_bytes: 64 << 20,
                ..Limits::default()
            },
        };
        conn.send(&Message::Join {
            sender_id: conn.me.clone(),
            supported_protocol_versions: vec!["1".into()],
            peer_metadata: Some(PeerMetadata {
                storage_id: storage.map(StorageId::new),
                is_ephemeral: storage.is_none(),
            }),
        })
        .await?;
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(20), conn.recv())
                .await
                .context("no answer to join")?
                .context("closed during the handshake")?;
            if let Ws::Binary(bytes) = frame {
                conn.bytes_in += bytes.len() as u64;
                conn.frames_in += 1;
                if let Message::Peer { sender_id, .. } = decode(&bytes, &conn.limits)? {
                    conn.server = sender_id;
                    return Ok(conn);
                }
            }
        }
    }

    async fn send(&mut self, message: &Message) -> anyhow::Result<()> {
        let frame = encode(message);
        self.bytes_out += frame.len() as u64;
        self.frames_out += 1;
        self.sink.send(Ws::Binary(frame.into())).await?;
        Ok(())
    }

    /// Adds a document made here and offers it to the server.
    pub async fn create(&mut self, doc: Automerge) -> anyhow::Result<DocumentId> {
        let id = DocumentId::random();
        self.docs.insert(
            id,
            DocState {
                doc,
                ..DocState::empty()
            },
        );
        self.sync(id, false).await?;
        Ok(id)
    }

    /// Asks the server for a document we do not have.
    pub async fn request(&mut self, id: DocumentId) -> anyhow::Result<()> {
        self.docs.entry(id).or_insert_with(DocState::empty);
        self.sync(id, true).await
    }

    /// Starts from a saved sync state (a reconnect).
    pub fn restore(&mut self, id: DocumentId, doc: Automerge, saved: &[u8]) -> anyhow::Result<()> {
        self.docs.insert(
            id,
            DocState {
                doc,
                sync: sync::State::decode(saved)?,
                unavailable: false,
            },
        );
        Ok(())
    }

    /// Sends a sync (or request) message for the document if there is anything to say.
    pub async fn sync(&mut self, id: DocumentId, request: bool) -> anyhow::Result<()> {
        let Some(state) = self.docs.get_mut(&id) else {
            bail!("unknown document {id}");
        };
        let Some(data) = state.outgoing() else {
            return Ok(());
        };
        self.send_sync(id, data, request).await
    }

    /// Wraps an encoded sync message for the server and sends it.
    async fn send_sync(
        &mut self,
        id: DocumentId,
        data: Vec<u8>,
        request: bool,
    ) -> anyhow::Result<()> {
        let message = if request {
            Message::Request {
                sender_id: self.me.clone(),
                target_id: self.server.clone(),
                document_id: id,
                data,
            }
        } else {
            Message::Sync {
                sender_id: self.me.clone(),
                target_id: self.server.clone(),
                document_id: id,
                data,
            }
        };
        self.send(&message).await
    }

    /// Changes a document here and sends the change.
    pub async fn change(
        &mut self,
        id: DocumentId,
        f: impl FnOnce(&mut automerge::transaction::Transaction<'_>),
    ) -> anyhow::Result<()> {
        let Some(state) = self.docs.get_mut(&id) else {
            bail!("unknown document {id}");
        };
        let mut tx = state.doc.transaction();
        f(&mut tx);
        tx.commit();
        self.sync(id, false).await
    }

    /// Reads and handles the next frame (answering sync messages as the protocol wants).
    pub async fn next(&mut self, timeout: Duration) -> anyhow::Result<Event> {
        let frame = tokio::time::timeout(timeout, self.recv())
            .await
            .context("nothing from the server in time")?
            .context("the server closed the connection")?;
        self.handle(frame).await
    }

    /// The next frame; `None` once the connection has ended.
    pub async fn recv(&mut self) -> anyhow::Result<Ws> {
        Ok(self.recv_stamped().await?.0)
    }

    /// The next frame and when it was read off the socket.
    pub async fn recv_stamped(&mut self) -> anyhow::Result<(Ws, Instant)> {
        match self.frames.recv().await {
            Some(Ok(frame)) => Ok(frame),
            Some(Err(e)) => bail!("WebSocket error: {e}"),
            None => bail!("the connection ended"),
        }
    }

    /// A frame that has already arrived, if any (never waits).
    pub fn try_recv(&mut self) -> Option<Ws> {
        match self.frames.try_recv() {
            Ok(Ok((frame, _))) => Some(frame),
            _ => None,
        }
    }

    /// Handles one WebSocket message (for callers that select on the socket themselves).
    pub async fn handle(&mut self, frame: Ws) -> anyhow::Result<Event> {
        let Ws::Binary(bytes) = frame else {
            return Ok(Event::Other);
        };
        self.bytes_in += bytes.len() as u64;
        self.frames_in += 1;
        match decode(&bytes, &self.limits)? {
            Message::Sync {
                document_id, data, ..
            }
            | Message::Request {
                document_id, data, ..
            } => {
                let state = self.docs.entry(document_id).or_insert_with(DocState::empty);
                let (changed, applied) = state
                    .receive(&data)
                    .with_context(|| format!("document {document_id}"))?;
                self.changes_applied += applied;
                self.sync(document_id, false).await?;
                Ok(if changed {
                    Event::Changed(document_id)
                } else {
                    Event::Acked(document_id)
                })
            }
            Message::DocUnavailable { document_id, .. } => {
                if let Some(state) = self.docs.get_mut(&document_id) {
                    state.unavailable = true;
                }
                Ok(Event::Unavailable(document_id))
            }
            Message::Ephemeral { document_id, .. } => Ok(Event::Ephemeral(document_id)),
            Message::Error { message, .. } => bail!("the server reported an error: {message}"),
            _ => Ok(Event::Other),
        }
    }

    /// Whether `frame` is a sync message that brings changes this client lacks (read
    /// without applying it): it carries changes, and the sender's heads include one we do
    /// not have. A server may send changes again that we already have.
    pub fn brings_news(&self, frame: &Ws) -> bool {
        let Ws::Binary(bytes) = frame else {
            return false;
        };
        let Ok(
            Message::Sync {
                document_id, data, ..
            }
            | Message::Request {
                document_id, data, ..
            },
        ) = decode(bytes, &self.limits)
        else {
            return false;
        };
        let Ok(message) = sync::Message::decode(&data) else {
            return false;
        };
        !message.changes.is_empty()
            && self.docs.get(&document_id).is_none_or(|state| {
                message
                    .heads
                    .iter()
                    .any(|h| state.doc.get_change_meta_by_hash(h).is_none())
            })
    }

    /// The server has told us it holds exactly our heads of this document.
    pub fn in_sync(&self, id: &DocumentId) -> bool {
        self.docs.get(id).is_some_and(|s| {
            let heads = s.doc.get_heads();
            !heads.is_empty() && s.sync.their_heads.as_deref() == Some(heads.as_slice())
        })
    }

    pub fn heads(&self, id: &DocumentId) -> Vec<ChangeHash> {
        self.docs
            .get(id)
            .map(|s| s.doc.get_heads())
            .unwrap_or_default()
    }

    pub async fn close(mut self) {
        let _ = self.sink.close().await;
        self.reader.abort();
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // The reader task holds the socket's other half: end it with the connection.
        self.reader.abort();
    }
}
