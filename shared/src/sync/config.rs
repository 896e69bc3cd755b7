//! Engine settings. Every number that bounds memory, time or traffic lives here.

use crate::protocol::{Limits, PeerId, StorageId};

use super::Millis;

/// How an engine presents itself and what it tolerates.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Our id in `join`/`peer` and as `senderId`.
    pub peer_id: PeerId,
    /// Our persistent store, announced so peers can keep sync states for us.
    pub storage_id: Option<StorageId>,
    /// True for a peer that keeps nothing (a test client); ibis nodes and apps are not.
    pub is_ephemeral: bool,
    /// Our ephemeral-message session (random per process), so peers can de-duplicate.
    pub ephemeral_session_id: String,
    /// Frame and field size limits.
    pub limits: Limits,
    /// What a sync message may claim and come to once inflated (checked before automerge
    /// reads it).
    pub bounds: crate::bounds::Bounds,
    /// Sustained messages per second a connection may send us.
    pub max_messages_per_second: u32,
    /// Messages a connection may send in a burst above the sustained rate.
    pub message_burst: u32,
    /// Largest `data` in an ephemeral message.
    pub max_ephemeral_bytes: usize,
    /// Documents announced to one replica peer at a time during a bulk sync.
    pub sync_window: usize,
    /// How long a document may stay in flight in a bulk sync without an answer.
    pub sync_item_timeout: Millis,
    /// How long we wait for peers to answer a forwarded `request`.
    pub request_timeout: Millis,
    /// How long a connection may take to complete the `join`/`peer` handshake.
    pub handshake_timeout: Millis,
    /// Documents untouched for this long are dropped from memory (they stay in storage).
    /// `None` keeps everything loaded.
    pub evict_idle_after: Option<Millis>,
    /// At most this many documents stay in memory: past it, the least recently used ones
    /// that are saved and not mid-sync are dropped (they stay in storage). `None`: no limit.
    /// The default, 500, held a node serving a fresh replica's sync of 5,000 practices to
    /// 149 MB at its peak (612 MB at 2,000) in the same 1.8 s.
    pub max_loaded_documents: Option<usize>,
    /// Incremental chunks are folded into a snapshot once they add up to more bytes than the
    /// snapshot (never less than this), or number more than `compact_after_chunks`.
    pub compact_min_bytes: usize,
    pub compact_after_chunks: usize,
    /// Largest a document may grow to in storage (`None`: no limit). A change that would
    /// take it past is refused, with the sizes in the reason; the host's own changes too
    /// ([`super::EngineError::TooLarge`]).
    pub max_document_bytes: Option<usize>,
    /// How long changes for a peer wait for its answer to the changes we sent it last
    /// before they go anyway (see `sync::pacer`): a bound on the latency pacing can add
    /// when an answer does not come.
    pub answer_wait: Millis,
}

impl EngineConfig {
    pub fn new(peer_id: PeerId, storage_id: Option<StorageId>) -> Self {
        Self {
            peer_id,
            storage_id,
            is_ephemeral: false,
            ephemeral_session_id: uuid::Uuid::new_v4().simple().to_string(),
            limits: Limits::default(),
            bounds: crate::bounds::Bounds::default(),
            max_messages_per_second: 20_000,
            message_burst: 40_000,
            max_ephemeral_bytes: 64 * 1024,
            sync_window: 64,
            sync_item_timeout: 30_000,
            request_timeout: 10_000,
            handshake_timeout: 10_000,
            evict_idle_after: Some(60_000),
            max_loaded_documents: Some(500),
            compact_min_bytes: 16 * 1024,
            compact_after_chunks: 64,
            answer_wait: 25,
            max_document_bytes: Some(crate::model::validation::MAX_DOCUMENT_BYTES),
        }
    }
}
