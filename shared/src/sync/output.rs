//! What the engine asks its host to do.
//!
//! Outputs come out in the order they must take effect. The one ordering rule a host must
//! keep: a [`StoreOp`] is durable before any [`Output::Send`] that follows it goes out. A
//! host may batch (commit all stores of a batch in one transaction, then send), which only
//! makes things more durable, never less.

use crate::protocol::{PeerId, PeerMetadata, StorageId};
use crate::DocumentId;

use super::ConnectionId;

#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send this binary frame on the connection.
    Send { conn: ConnectionId, frame: Vec<u8> },
    /// Close the connection (after sending what was queued before this).
    Close { conn: ConnectionId, reason: String },
    /// Persist something.
    Store(StoreOp),
    /// Load a document's chunks and saved sync states, then answer with
    /// [`super::Input::Loaded`].
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
