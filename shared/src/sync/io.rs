//! What goes into the engine and what comes out.
//!
//! Inputs are what happened outside ([`Input`]). Outputs come out in the order they must
//! take effect. The one ordering rule a host must keep: a [`StoreOp`] is durable before any
//! [`Output::Send`] that follows it goes out. A host may batch (commit all stores of a batch
//! in one transaction, then send), which only makes things more durable, never less.
//!
//! Taking the outputs ([`Outputs`]): what is queued, then the sync messages owed, generated
//! one peer at a time as the host takes them. A change to a document shared by many peers
//! owes each of them a sync message. Were they all generated before the host took the
//! first, the first peer would wait for the last one's message to be made (about 0.3 ms for
//! 99 peers). Generated on demand, the host can put each frame on the wire while the next
//! is made. The order is the same either way: what was queued before comes first, then the
//! owed messages, one peer after another.

use std::collections::{HashMap, VecDeque};

use crate::protocol::{PeerId, PeerMetadata, StorageId};
use crate::DocumentId;

use super::memo::SyncMemo;
use super::{ConnectionId, Direction, Engine, Policy};

/// Something that happened outside the engine.
#[derive(Debug)]
pub enum Input<Principal> {
    /// A connection is open. `principal` is whoever the host authenticated it as.
    Connected {
        conn: ConnectionId,
        direction: Direction,
        principal: Principal,
    },
    /// A binary frame arrived.
    Frame { conn: ConnectionId, frame: Vec<u8> },
    /// A text frame arrived (always a protocol error).
    TextFrame { conn: ConnectionId },
    /// The connection is gone.
    Disconnected { conn: ConnectionId },
    /// Storage answered an [`Output::Load`]: `Ok(None)` when it has nothing for the
    /// document, `Err` when what it has could not be read.
    Loaded {
        document: DocumentId,
        result: Result<Option<StoredDocument>, String>,
    },
    /// Time passed; run timers. Once a second is enough.
    Tick,
    /// [`Engine::next_deadline`] has come.
    Wake,
    /// Storage failed to make writes durable: what the engine holds in memory may be
    /// ahead of what is stored. Every connection is closed and every document leaves
    /// memory, to be loaded again from what storage really holds; peers resend what they
    /// have when they reconnect.
    StorageFailed,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send this binary frame on the connection.
    Send { conn: ConnectionId, frame: Vec<u8> },
    /// Close the connection (after sending what was queued before this).
    Close { conn: ConnectionId, reason: String },
    /// Persist something.
    Store(StoreOp),
    /// Load a document's chunks and saved sync states, then answer with
    /// [`Input::Loaded`].
    Load { document: DocumentId },
    /// Tell the application something happened.
    Notify(Notification),
}

/// A write to storage.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreOp {
    /// Append these changes (an incremental chunk) to the document.
    AppendChanges {
        document: DocumentId,
        chunk: Vec<u8>,
    },
    /// Replace every chunk of the document with this snapshot, atomically.
    ReplaceWithSnapshot {
        document: DocumentId,
        snapshot: Vec<u8>,
    },
    /// Remember how far we are in sync with the peer whose store is `peer`.
    SaveSyncState {
        document: DocumentId,
        peer: StorageId,
        state: Vec<u8>,
    },
    /// Delete everything stored of the document (its chunks and sync states) and remember
    /// that it was erased: it is never stored again ([`super::Engine::erase`]).
    Erase { document: DocumentId },
}

impl StoreOp {
    pub fn document(&self) -> DocumentId {
        match self {
            StoreOp::AppendChanges { document, .. }
            | StoreOp::ReplaceWithSnapshot { document, .. }
            | StoreOp::SaveSyncState { document, .. }
            | StoreOp::Erase { document } => *document,
        }
    }
}

/// What storage holds for one document, handed back by the host after [`Output::Load`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredDocument {
    /// The chunks in the order they were stored (a snapshot first, if there is one).
    pub chunks: Vec<Vec<u8>>,
    /// Saved sync states, by the storage id of the peer they are for.
    pub sync_states: Vec<(StorageId, Vec<u8>)>,
}

/// Who made a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOrigin {
    /// The host, through [`super::Engine::change`] or [`super::Engine::insert`].
    Local,
    /// A peer, over this connection.
    Remote(ConnectionId),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Notification {
    /// A handshake completed.
    PeerConnected {
        conn: ConnectionId,
        peer_id: PeerId,
        metadata: PeerMetadata,
    },
    /// A connection ended (closed by either side, or failed).
    PeerDisconnected { conn: ConnectionId },
    /// A document is in memory and has content (after a load or the first sync).
    DocumentReady { document: DocumentId },
    /// A document's content changed.
    DocumentChanged {
        document: DocumentId,
        origin: ChangeOrigin,
    },
    /// Neither storage nor any peer we asked has the document.
    DocumentUnavailable { document: DocumentId },
    /// Stored data for a document could not be loaded; it is left untouched in storage.
    DocumentCorrupt { document: DocumentId, error: String },
    /// An ephemeral message (presence) about a document.
    Ephemeral {
        document: DocumentId,
        sender: PeerId,
        data: Vec<u8>,
    },
    /// Progress of the bulk sync with a replica peer: `done` of `total` documents settled.
    SyncProgress {
        conn: ConnectionId,
        done: usize,
        total: usize,
    },
    /// A peer's change was refused by the policy; nothing of it was stored or relayed.
    ChangeRejected {
        conn: ConnectionId,
        document: DocumentId,
        reason: String,
    },
    /// A peer sent us an `error` (for instance, it refused one of our changes).
    PeerError { conn: ConnectionId, message: String },
    /// A peer broke the protocol and was disconnected.
    ProtocolViolation { conn: ConnectionId, reason: String },
    /// A document was erased ([`super::Engine::erase`]).
    DocumentErased { document: DocumentId },
}

/// The engine's outputs, in order (see [`Engine::drain_outputs`]). Dropping it early keeps
/// what it had not generated yet: the next call takes that up.
pub struct Outputs<'a, P: Policy> {
    engine: &'a mut Engine<P>,
    /// This round's owed messages, taken from the engine and not generated yet.
    round: VecDeque<(ConnectionId, DocumentId)>,
    /// How many of `round` are for each document (a document owed to one peer only is not
    /// worth remembering in the memo).
    peers: HashMap<DocumentId, usize>,
    /// Messages already generated in this round; valid while no document changes, which no
    /// input can do while this borrows the engine.
    memo: SyncMemo,
    /// The memory budget was enforced after the last owed message.
    budget_enforced: bool,
}

impl<'a, P: Policy> Outputs<'a, P>
where
    P::Principal: PartialEq,
{
    pub(super) fn new(engine: &'a mut Engine<P>) -> Self {
        // Changes deferred to be applied together go in before anything is sent.
        engine.stop_deferring();
        Self {
            engine,
            round: VecDeque::new(),
            peers: HashMap::new(),
            memo: SyncMemo::default(),
            budget_enforced: false,
        }
    }

    /// Does the next piece of owed work; false when none is left.
    fn generate_next(&mut self) -> bool {
        if let Some((conn, id)) = self.round.pop_front() {
            let shared = self.peers.get(&id).is_some_and(|&n| n > 1);
            self.engine
                .sync_one(conn, id, shared.then_some(&mut self.memo));
            return true;
        }
        // Generating can owe more (a peer's state reset): a new round, with a new memo.
        if !self.engine.owed.is_empty() {
            self.round = std::mem::take(&mut self.engine.owed).into_iter().collect();
            self.peers.clear();
            for (_, id) in &self.round {
                *self.peers.entry(*id).or_default() += 1;
            }
            self.memo = SyncMemo::default();
            return true;
        }
        if !self.budget_enforced {
            // Drops documents past the memory budget (a bulk sync loads them faster than
            // ticks come).
            self.budget_enforced = true;
            self.engine.enforce_document_budget_as_it_grows();
            return true;
        }
        false
    }
}

impl<P: Policy> Iterator for Outputs<'_, P>
where
    P::Principal: PartialEq,
{
    type Item = Output;

    fn next(&mut self) -> Option<Output> {
        loop {
            if let Some(output) = self.engine.outputs.pop_front() {
                return Some(output);
            }
            if !self.generate_next() {
                return None;
            }
        }
    }
}

impl<P: Policy> Drop for Outputs<'_, P> {
    fn drop(&mut self) {
        self.engine.owed.extend(self.round.drain(..));
    }
}
