//! The automerge-repo wire protocol, version 1: message types.
//!
//! Every message is one CBOR map in one binary WebSocket frame. [`codec`] turns frames into
//! [`Message`]s and back; it knows nothing about what the messages mean (that is the sync
//! engine's job, in [`crate::sync`]).

pub mod codec;

use std::fmt;

use crate::DocumentId;

pub use codec::{decode, encode, DecodeError, Limits};

/// The only protocol version there is.
pub const PROTOCOL_V1: &str = "1";

/// The id a peer gives itself in `join`/`peer`. Arbitrary text; ibis bounds its length.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct PeerId(String);

impl PeerId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({})", self.0)
    }
}

/// Names a persistent store (a node's database, a browser's IndexedDB). Peers that present
/// the same storage id across connections hold the same data, which is what makes saved sync
/// states reusable.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct StorageId(String);

impl StorageId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }
    /// A fresh random storage id (a UUID string, as automerge-repo makes them).
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StorageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StorageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StorageId({})", self.0)
    }
}

/// What a peer says about itself at the handshake.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerMetadata {
    pub storage_id: Option<StorageId>,
    /// An ephemeral peer keeps nothing between connections.
    pub is_ephemeral: bool,
}

/// One protocol message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// First message of the connecting side.
    Join {
        sender_id: PeerId,
        supported_protocol_versions: Vec<String>,
        peer_metadata: Option<PeerMetadata>,
    },
    /// The accepting side's answer to `join`.
    Peer {
        sender_id: PeerId,
        target_id: PeerId,
        selected_protocol_version: String,
        peer_metadata: Option<PeerMetadata>,
    },
    /// "I have no copy of this document"; `data` is the first sync message.
    Request {
        sender_id: PeerId,
        target_id: PeerId,
        document_id: DocumentId,
        data: Vec<u8>,
    },
    /// An encoded `automerge::sync::Message`.
    Sync {
        sender_id: PeerId,
        target_id: PeerId,
        document_id: DocumentId,
        data: Vec<u8>,
    },
    /// Neither the sender nor any peer it asked has the document.
    DocUnavailable {
        sender_id: PeerId,
        target_id: PeerId,
        document_id: DocumentId,
    },
    /// Opaque bytes about a document (presence), gossiped to peers sharing it.
    Ephemeral {
        sender_id: PeerId,
        target_id: PeerId,
        document_id: DocumentId,
        session_id: String,
        count: u64,
        data: Vec<u8>,
    },
    /// Something was wrong; the connection is about to close.
    Error {
        sender_id: Option<PeerId>,
        message: String,
    },
    /// The peer is going away.
    Leave { sender_id: PeerId },
    /// `remote-subscription-change` / `remote-heads-changed`: optional heads gossip that ibis
    /// accepts and ignores.
    Gossip { kind: GossipKind, sender_id: PeerId },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GossipKind {
    RemoteSubscriptionChange,
    RemoteHeadsChanged,
}

impl GossipKind {
    pub fn type_name(self) -> &'static str {
        match self {
            GossipKind::RemoteSubscriptionChange => "remote-subscription-change",
            GossipKind::RemoteHeadsChanged => "remote-heads-changed",
        }
    }
}

impl Message {
    /// The `type` field on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            Message::Join { .. } => "join",
            Message::Peer { .. } => "peer",
            Message::Request { .. } => "request",
            Message::Sync { .. } => "sync",
            Message::DocUnavailable { .. } => "doc-unavailable",
            Message::Ephemeral { .. } => "ephemeral",
            Message::Error { .. } => "error",
            Message::Leave { .. } => "leave",
            Message::Gossip { kind, .. } => kind.type_name(),
        }
    }

    /// The document this message is about, if any.
    pub fn document_id(&self) -> Option<DocumentId> {
        match self {
            Message::Request { document_id, .. }
            | Message::Sync { document_id, .. }
            | Message::DocUnavailable { document_id, .. }
            | Message::Ephemeral { document_id, .. } => Some(*document_id),
            _ => None,
        }
    }
}
