//! The sync engine: automerge-repo protocol v1, sans-IO.
//!
//! The engine owns the documents in memory and the protocol state of every connection. It
//! never touches a socket, a clock, a file or a thread: the host feeds it [`Input`]s (a
//! connection opened, a frame arrived, storage answered, time passed) and carries out the
//! [`Output`]s it produces (send a frame, close a connection, store or load something, tell
//! the application). Given the same inputs it produces the same outputs, so tests can replay
//! any schedule. The ibis node (tokio + SQLite) and the ibis app (browser WebSocket +
//! IndexedDB) are two thin hosts around this one engine.
//!
//! Code map. Orchestration (`impl Engine`, the engine's own fields):
//! - `mod.rs`: the engine, [`Engine::handle`] (the way in), helpers the others share.
//! - `io`: inputs and outputs (what the host is asked to do, and the ordering rule it must
//!   keep), and taking the outputs ([`Engine::drain_outputs`]), with the sync messages owed
//!   generated as they are taken.
//! - `connections`: a connection's life: opened, the `join` / `peer` handshake, frames
//!   dispatched by phase, closed.
//! - `inbound`: a peer's `sync` / `request`, checked before it is read.
//! - `apply`: a peer's changes applied, checked by the policy (the one match of the kind of
//!   check); `deferred`: several peers' changes to one document applied together.
//! - `fanout`: a changed document persisted, then every sharing peer owed a message; the
//!   owed messages generated.
//! - `loading`: documents loaded from storage, and the work that waits for them.
//! - `stored_answer`: a peer that has nothing answered straight from what storage holds,
//!   without loading the document (`snapshot` reads the heads from the stored chunks).
//! - `missing`: documents we lack, found through other peers; `doc-unavailable`.
//! - `ephemeral`: presence messages, passed on.
//! - `bulk`: offering every document to a replica peer, a window at a time, with progress.
//! - `upkeep`: timers (handshake, requests, bulk items), compaction, eviction.
//! - `local`: the host's own use of documents (open, close, insert, change, erase).
//!
//! State, each type with private fields and its own methods:
//! - `peer`: one connection (phase, principal, rate limit, bulk window, its channels).
//! - `channel`: one peer × one document (sync state, has / asked / refused).
//! - `pacer`: at most one message with changes in flight per peer and document.
//! - `document`: one document in memory (status, what storage holds, persistence).
//! - `seen_sessions`: presence sessions heard from.
//!
//! Rules and settings: [`config`] (limits, windows, timeouts), [`policy`] (who may read
//! and write what: the host's rules), `errors` ([`Violation`], [`Refusal`]).
//!
//! Pure functions over automerge: `receive` (taking in sync messages, alone or together,
//! without walking the whole history), `memo` (one generated message per distinct peer
//! state), `snapshot` (heads read from stored chunks).

mod apply;
mod bulk;
mod channel;
pub mod config;
mod connections;
mod deferred;
mod document;
mod ephemeral;
mod errors;
mod fanout;
mod inbound;
mod io;
mod loading;
mod local;
mod memo;
mod missing;
mod pacer;
mod peer;
pub mod policy;
mod receive;
mod seen_sessions;
mod snapshot;
mod stored_answer;
mod upkeep;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::protocol::{self, Message, PeerId};
use crate::DocumentId;

pub use config::EngineConfig;
pub use errors::{Refusal, Violation};
pub use io::{ChangeOrigin, Input, Notification, Output, Outputs, StoreOp, StoredDocument};
pub use policy::{OpenPolicy, PeerLimits, PeerRole, Policy};
pub use receive::receive_sync_message;

use document::Document;
use peer::Connection;

/// Milliseconds on the host's clock. The engine only compares and adds them.
pub type Millis = u64;

/// The host's handle for one connection. Never reused by a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

/// Who opened the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// We dialed: we send `join`.
    Outgoing,
    /// They dialed: we wait for `join`.
    Incoming,
}

/// Errors of the host-facing document API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("document {0} is not loaded; open it first")]
    NotLoaded(DocumentId),
    #[error("stored data for document {0} is corrupt")]
    Corrupt(DocumentId),
    #[error("automerge rejected the document: {0}")]
    Automerge(String),
    #[error("document {0} was erased here")]
    Erased(DocumentId),
    /// The change was undone: the document would have outgrown the size limit.
    #[error("{0}")]
    TooLarge(Refusal),
}

/// Counters for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub frames_in: u64,
    pub frames_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub sync_messages_in: u64,
    pub sync_messages_out: u64,
    pub changes_rejected: u64,
    pub protocol_violations: u64,
    pub documents_loaded: u64,
    pub documents_evicted: u64,
    /// Scans for documents to drop when more than `max_loaded_documents` were in memory.
    pub memory_budget_scans: u64,
    /// Fresh peers answered straight from storage (snapshot and increments), without
    /// loading the document.
    pub snapshots_served: u64,
    /// `Store` outputs (changes, snapshots, sync states) queued so far.
    pub writes: u64,
    /// Sync messages whose changes were applied together with others' to the same
    /// document (see [`Engine::defer_applies`]).
    pub sync_messages_applied_together: u64,
}

/// A snapshot of the engine's size, for metrics and health.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineGauges {
    pub connections: usize,
    pub ready_peers: usize,
    pub documents_in_memory: usize,
    pub documents_known: usize,
}

pub struct Engine<P: Policy> {
    config: EngineConfig,
    policy: P,
    now: Millis,
    connections: BTreeMap<ConnectionId, Connection<P::Principal>>,
    documents: BTreeMap<DocumentId, Document>,
    /// Every document storage holds (the host tells us at start; we add what we store).
    stored: BTreeSet<DocumentId>,
    /// Documents erased here: never loaded, stored, served or taken in again.
    erased: BTreeSet<DocumentId>,
    /// Connections that share each document (synced it, asked for it), kept while the
    /// document itself is evicted so changes still reach them.
    interest: BTreeMap<DocumentId, BTreeSet<ConnectionId>>,
    /// Presence sessions heard from (bounded), to drop repeats.
    ephemeral_seen: seen_sessions::SeenSessions,
    ephemeral_count: u64,
    outputs: VecDeque<Output>,
    /// (peer, document) pairs owed a sync message: generated when the host next takes
    /// outputs, so a burst of inputs costs one message per peer and document, not one per
    /// input (each generation walks the document's change graph).
    owed: BTreeSet<(ConnectionId, DocumentId)>,
    /// At most one message with changes in flight per peer and document ([`pacer`]).
    pacer: pacer::Pacer,
    /// Set by [`Engine::defer_applies`] until the outputs are taken.
    #[cfg(not(target_arch = "wasm32"))]
    deferring: bool,
    /// Changes deferred to be applied together ([`deferred`]).
    #[cfg(not(target_arch = "wasm32"))]
    deferred: Option<deferred::Deferred>,
    /// How many documents were in memory after the last memory-budget scan ([`upkeep`]).
    budget_scanned_at: usize,
    stats: EngineStats,
}

impl<P: Policy> Engine<P>
where
    P::Principal: PartialEq,
{
    /// A new engine. `stored` lists the documents storage already holds.
    pub fn new(
        config: EngineConfig,
        policy: P,
        stored: impl IntoIterator<Item = DocumentId>,
        now: Millis,
    ) -> Self {
        Self {
            pacer: pacer::Pacer::new(config.answer_wait),
            config,
            policy,
            now,
            connections: BTreeMap::new(),
            documents: BTreeMap::new(),
            stored: stored.into_iter().collect(),
            erased: BTreeSet::new(),
            interest: BTreeMap::new(),
            ephemeral_seen: seen_sessions::SeenSessions::default(),
            ephemeral_count: 0,
            outputs: VecDeque::new(),
            owed: BTreeSet::new(),
            #[cfg(not(target_arch = "wasm32"))]
            deferring: false,
            #[cfg(not(target_arch = "wasm32"))]
            deferred: None,
            budget_scanned_at: 0,
            stats: EngineStats::default(),
        }
    }

    /// Documents erased before this engine started (the host reads them from storage).
    pub fn with_erased(mut self, erased: impl IntoIterator<Item = DocumentId>) -> Self {
        self.erased.extend(erased);
        for id in &self.erased {
            self.stored.remove(id);
        }
        self
    }

    /// True for a document erased here.
    pub fn is_erased(&self, id: &DocumentId) -> bool {
        self.erased.contains(id)
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// Feeds one input. Outputs queue up until [`Engine::drain_outputs`].
    pub fn handle(&mut self, now: Millis, input: Input<P::Principal>) {
        self.now = self.now.max(now);
        if !matches!(input, Input::Frame { .. } | Input::StorageFailed) {
            self.apply_deferred();
        }
        // Messages whose wait for an answer is over are owed again.
        self.owed.extend(self.pacer.take_due(self.now));
        match input {
            Input::Connected {
                conn,
                direction,
                principal,
            } => self.on_connected(conn, direction, principal),
            Input::Frame { conn, frame } => self.on_frame(conn, &frame),
            Input::TextFrame { conn } => {
                if self.connections.contains_key(&conn) {
                    self.fail(conn, Violation::TextFrame);
                }
            }
            Input::Disconnected { conn } => self.remove_connection(conn),
            Input::Loaded { document, result } => self.on_loaded(document, result),
            Input::Tick => self.on_tick(),
            Input::Wake => {}
            Input::StorageFailed => self.on_storage_failed(),
        }
    }

    /// Everything queued, in order; the sync messages owed are generated as they are taken
    /// (see [`Outputs`]).
    pub fn drain_outputs(&mut self) -> Outputs<'_, P> {
        Outputs::new(self)
    }

    /// When the host must wake the engine ([`Input::Wake`]) next: the earliest time a
    /// message stops waiting for a peer's answer ([`pacer`]). `None`: nothing waits.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.pacer.next_deadline()
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// (sender, session) pairs of presence remembered, to drop repeats (bounded).
    pub fn ephemeral_sessions(&self) -> usize {
        self.ephemeral_seen.len()
    }

    pub fn gauges(&self) -> EngineGauges {
        EngineGauges {
            connections: self.connections.len(),
            ready_peers: self
                .connections
                .values()
                .filter(|c| c.ready().is_some())
                .count(),
            documents_in_memory: self.documents.len(),
            // Counted without walking storage's list: this runs after every input.
            documents_known: self.stored.len() + self.in_memory_only().count(),
        }
    }

    /// The peers that completed the handshake, by connection.
    pub fn peers(&self) -> impl Iterator<Item = (ConnectionId, &PeerId)> {
        self.connections
            .iter()
            .filter_map(|(id, c)| c.ready().map(|p| (*id, p.peer_id())))
    }

    /// True when storage holds the document (whether or not it is in memory).
    pub fn is_stored(&self, id: &DocumentId) -> bool {
        self.stored.contains(id)
    }

    /// Every document with content, in storage or in memory.
    pub fn known_documents(&self) -> impl Iterator<Item = DocumentId> + '_ {
        self.stored.iter().copied().chain(self.in_memory_only())
    }

    /// Documents with content that storage does not hold yet.
    fn in_memory_only(&self) -> impl Iterator<Item = DocumentId> + '_ {
        self.documents
            .iter()
            .filter(|(id, d)| !self.stored.contains(id) && d.has_content())
            .map(|(id, _)| *id)
    }

    /// True when the document is in memory and every connected peer sharing it has told us
    /// it holds exactly our heads (so what we have is safe with them).
    pub fn in_sync_with_peers(&self, id: &DocumentId) -> bool {
        let Some(entry) = self.documents.get(id) else {
            return false;
        };
        let heads = entry.doc().get_heads();
        let mut shared = false;
        for conn in self.interest.get(id).into_iter().flatten() {
            let Some(c) = self.connections.get(conn) else {
                continue;
            };
            if c.ready().is_none() {
                continue;
            }
            shared = true;
            if !c.channel(id).is_some_and(|ch| ch.in_sync_at(&heads)) {
                return false;
            }
        }
        shared
    }

    // ---- helpers shared by the submodules ----

    /// Encodes and queues a message on a connection.
    fn send(&mut self, conn: ConnectionId, message: &Message) {
        let frame = protocol::encode(message);
        self.stats.frames_out += 1;
        self.stats.bytes_out += frame.len() as u64;
        if matches!(message, Message::Sync { .. } | Message::Request { .. }) {
            self.stats.sync_messages_out += 1;
        }
        self.outputs.push_back(Output::Send { conn, frame });
    }

    /// Queues a write to storage.
    fn store(&mut self, op: StoreOp) {
        self.stats.writes += 1;
        self.outputs.push_back(Output::Store(op));
    }

    fn notify(&mut self, notification: Notification) {
        self.outputs.push_back(Output::Notify(notification));
    }

    /// The peer said something about the document: a message that waited for its answer
    /// ([`pacer`]) is owed now.
    fn heard_from(&mut self, conn: ConnectionId, id: DocumentId) {
        if self.pacer.heard_from(conn, id) {
            self.owed.insert((conn, id));
        }
    }

    /// What we know of this peer for this document, if anything.
    fn channel_mut(&mut self, conn: ConnectionId, id: DocumentId) -> Option<&mut channel::Channel> {
        self.connections
            .get_mut(&conn)
            .and_then(|c| c.channel_mut(&id))
    }

    pub(super) fn peer_id_of(&self, conn: ConnectionId) -> Option<PeerId> {
        self.connections
            .get(&conn)
            .and_then(|c| c.ready())
            .map(|p| p.peer_id().clone())
    }

    fn our_id(&self) -> PeerId {
        self.config.peer_id.clone()
    }

    /// The peer broke the protocol: tell it why, close the connection, forget it. Other
    /// connections and documents are untouched.
    fn fail(&mut self, conn: ConnectionId, violation: Violation) {
        let reason = violation.to_string();
        // Whatever the peer sent before is kept, as if applied when it came.
        self.apply_deferred();
        tracing::debug!(?conn, %reason, "protocol violation");
        self.stats.protocol_violations += 1;
        self.send(
            conn,
            &Message::Error {
                sender_id: Some(self.our_id()),
                message: reason.clone(),
            },
        );
        self.notify(Notification::ProtocolViolation {
            conn,
            reason: reason.clone(),
        });
        self.outputs.push_back(Output::Close { conn, reason });
        self.remove_connection(conn);
    }

    /// Storage failed (see [`Input::StorageFailed`]): every connection closes and every
    /// document leaves memory; nothing queued to be sent or applied survives. Documents
    /// load again from storage when asked for, so nothing is built on a change that was
    /// not kept.
    fn on_storage_failed(&mut self) {
        self.drop_deferred();
        let conns: Vec<ConnectionId> = self.connections.keys().copied().collect();
        for conn in conns {
            if self
                .connections
                .get(&conn)
                .and_then(|c| c.ready())
                .is_some()
            {
                self.notify(Notification::PeerDisconnected { conn });
            }
            self.outputs.push_back(Output::Close {
                conn,
                reason: "storage failure: the node cannot keep changes right now; try again later"
                    .into(),
            });
        }
        self.connections.clear();
        self.interest.clear();
        self.owed.clear();
        self.pacer.clear();
        self.documents.clear();
    }

    /// Closes a connection without blaming the peer.
    fn close_connection(&mut self, conn: ConnectionId, reason: String) {
        self.outputs.push_back(Output::Close { conn, reason });
        self.remove_connection(conn);
    }
}
