//! One document in memory: its Automerge state, where it is in its life (loading, ready,
//! being requested from peers, unavailable), and what storage already holds of it.

use std::collections::BTreeMap;

use automerge::{Automerge, ChangeHash};

use crate::protocol::StorageId;
use crate::DocumentId;

use super::config::EngineConfig;
use super::io::{StoreOp, StoredDocument};
use super::{ConnectionId, Millis};

/// Work that waits for a document to finish loading from storage.
#[derive(Debug)]
pub(crate) enum AfterLoad {
    /// A `sync` or `request` from a peer.
    Sync {
        conn: ConnectionId,
        data: Vec<u8>,
        is_request: bool,
    },
    /// The bulk sync wants to offer the document to this replica peer.
    Offer { conn: ConnectionId },
    /// The host asked for the document.
    Open,
}

#[derive(Debug)]
pub(crate) enum Status {
    /// Waiting for storage; work queues up.
    Loading { after_load: Vec<AfterLoad> },
    /// In memory. May still be empty (a placeholder that nobody asked peers about yet).
    Ready,
    /// Empty; we asked replica peers and wait for their answers until `deadline`.
    Requesting { deadline: Millis },
    /// Empty; storage and every peer we asked lack it. Becomes ready if it ever arrives.
    Unavailable,
    /// Storage holds data for it that does not load. Left untouched; peers are told it is
    /// unavailable.
    Corrupt,
}

#[derive(Debug)]
pub(crate) struct Document {
    doc: Automerge,
    status: Status,
    /// Storage holds chunks for this document.
    persisted: bool,
    /// The heads storage holds.
    saved_heads: Vec<ChangeHash>,
    snapshot_bytes: usize,
    incremental_bytes: usize,
    incremental_chunks: usize,
    /// The increments have outgrown the snapshot: replace them with a new one at the next
    /// tick (a snapshot re-encodes the whole document, which must not delay a relay).
    compact_due: bool,
    /// Sync states saved for peers (by their storage id), for when they reconnect.
    saved_sync_states: BTreeMap<StorageId, Vec<u8>>,
    last_used: Millis,
    /// The host has the document open: keep it in memory.
    pinned: bool,
    /// The next write's bytes, encoded by a size check for the persist that follows (both
    /// encode the same changes; a whole document's, for a first sync), with the heads
    /// they bring storage to.
    encoded: Option<(Vec<ChangeHash>, Vec<u8>)>,
}

impl Document {
    pub fn loading(now: Millis) -> Self {
        Self {
            doc: Automerge::new(),
            status: Status::Loading {
                after_load: Vec::new(),
            },
            persisted: false,
            saved_heads: Vec::new(),
            snapshot_bytes: 0,
            incremental_bytes: 0,
            incremental_chunks: 0,
            compact_due: false,
            saved_sync_states: BTreeMap::new(),
            last_used: now,
            pinned: false,
            encoded: None,
        }
    }

    /// An empty document that storage does not have.
    pub fn empty(now: Millis) -> Self {
        Self {
            status: Status::Ready,
            ..Self::loading(now)
        }
    }

    /// Fills a loading entry from what storage returned.
    pub fn load_stored(&mut self, stored: StoredDocument) -> Result<(), automerge::AutomergeError> {
        let total: usize = stored.chunks.iter().map(Vec::len).sum();
        let mut bytes = Vec::with_capacity(total);
        for chunk in &stored.chunks {
            bytes.extend_from_slice(chunk);
        }
        self.doc = Automerge::load(&bytes)?;
        self.persisted = !stored.chunks.is_empty();
        self.saved_heads = self.doc.get_heads();
        self.snapshot_bytes = stored.chunks.first().map_or(0, Vec::len);
        self.incremental_bytes = total - self.snapshot_bytes;
        self.incremental_chunks = stored.chunks.len().saturating_sub(1);
        self.saved_sync_states = stored.sync_states.into_iter().collect();
        Ok(())
    }

    /// About how many bytes storage would hold of the document if `doc` were it: what it
    /// holds now plus the increment `doc` adds (or `doc`'s snapshot, if storage has
    /// nothing yet). Past `limit`, the compacted size is worked out (a whole save, so only
    /// then) and returned instead when it is smaller. What was encoded is kept for
    /// [`Self::persist`], which writes the same bytes if the document then has `doc`'s heads.
    pub fn stored_size_with(&mut self, doc: &Automerge, limit: usize) -> usize {
        let held = Held {
            persisted: self.persisted,
            saved_heads: &self.saved_heads,
            bytes: self.snapshot_bytes + self.incremental_bytes,
        };
        held.size_with(doc, limit, &mut self.encoded)
    }

    /// [`Self::stored_size_with`] the document as it is in memory.
    pub fn stored_size(&mut self, limit: usize) -> usize {
        let held = Held {
            persisted: self.persisted,
            saved_heads: &self.saved_heads,
            bytes: self.snapshot_bytes + self.incremental_bytes,
        };
        held.size_with(&self.doc, limit, &mut self.encoded)
    }

    pub fn doc(&self) -> &Automerge {
        &self.doc
    }

    /// The document, to change in place.
    pub fn doc_mut(&mut self) -> &mut Automerge {
        &mut self.doc
    }

    /// The document replaced (a scratch copy kept, or a change undone).
    pub fn set_doc(&mut self, doc: Automerge) {
        self.doc = doc;
    }

    pub fn status(&self) -> &Status {
        &self.status
    }

    pub fn set_status(&mut self, status: Status) {
        self.status = status;
    }

    /// The work queued while the document loaded, taken (`None` if it is not loading).
    pub fn take_after_load(&mut self) -> Option<Vec<AfterLoad>> {
        match &mut self.status {
            Status::Loading { after_load } => Some(std::mem::take(after_load)),
            _ => None,
        }
    }

    /// Storage holds chunks for this document.
    pub fn is_persisted(&self) -> bool {
        self.persisted
    }

    /// Storage holds everything in memory (nothing to lose by eviction).
    pub fn is_saved(&self) -> bool {
        self.doc.get_heads() == self.saved_heads
    }

    /// The increments are due to be replaced by a snapshot ([`Self::compact`]).
    pub fn is_compact_due(&self) -> bool {
        self.compact_due
    }

    /// Sync states saved for peers, by their storage id.
    pub fn saved_sync_states(&self) -> &BTreeMap<StorageId, Vec<u8>> {
        &self.saved_sync_states
    }

    /// Remembers the sync state saved for a peer; false when it was that already.
    pub fn remember_sync_state(&mut self, peer: &StorageId, state: &[u8]) -> bool {
        if self.saved_sync_states.get(peer).map(Vec::as_slice) == Some(state) {
            return false;
        }
        self.saved_sync_states.insert(peer.clone(), state.to_vec());
        true
    }

    pub fn last_used(&self) -> Millis {
        self.last_used
    }

    /// The document was used now (eviction takes the least recently used first).
    pub fn touch(&mut self, now: Millis) {
        self.last_used = now;
    }

    /// The host has the document open: it stays in memory.
    pub fn is_pinned(&self) -> bool {
        self.pinned
    }

    pub fn set_pinned(&mut self, pinned: bool) {
        self.pinned = pinned;
    }

    /// Work to do once the document has loaded (none if it is not loading).
    pub fn after_load(&mut self, work: AfterLoad) {
        if let Status::Loading { after_load } = &mut self.status {
            after_load.push(work);
        }
    }

    pub fn has_content(&self) -> bool {
        !self.doc.get_heads().is_empty()
    }

    pub fn is_ready(&self) -> bool {
        matches!(self.status, Status::Ready)
    }

    pub fn is_loading(&self) -> bool {
        matches!(self.status, Status::Loading { .. })
    }

    /// The write that brings storage up to date with memory, if any: an incremental chunk
    /// (or the first snapshot). Once the increments outgrow the last snapshot, the document
    /// is marked for [`Self::compact`], so each byte is rewritten a bounded number of times,
    /// not after every few edits.
    pub fn persist(&mut self, id: DocumentId, config: &EngineConfig) -> Option<StoreOp> {
        let heads = self.doc.get_heads();
        if heads == self.saved_heads || heads.is_empty() {
            return None;
        }
        let encoded = self
            .encoded
            .take()
            .filter(|(at, _)| *at == heads)
            .map(|(_, bytes)| bytes);
        let op = if self.persisted {
            let chunk = encoded.unwrap_or_else(|| next_write(&self.doc, true, &self.saved_heads));
            self.incremental_bytes += chunk.len();
            self.incremental_chunks += 1;
            self.compact_due = self.incremental_bytes
                > self.snapshot_bytes.max(config.compact_min_bytes)
                || self.incremental_chunks > config.compact_after_chunks;
            StoreOp::AppendChanges {
                document: id,
                chunk,
            }
        } else {
            self.snapshot(id, encoded)
        };
        self.persisted = true;
        self.saved_heads = heads;
        Some(op)
    }

    /// The snapshot that replaces everything stored, when the increments are due for it.
    /// It holds everything in memory, so it also covers anything not yet persisted.
    pub fn compact(&mut self, id: DocumentId) -> Option<StoreOp> {
        if !self.compact_due || !self.has_content() {
            return None;
        }
        let op = self.snapshot(id, None);
        self.persisted = true;
        self.saved_heads = self.doc.get_heads();
        Some(op)
    }

    /// A snapshot of the document (`encoded`, if a size check already made it).
    fn snapshot(&mut self, id: DocumentId, encoded: Option<Vec<u8>>) -> StoreOp {
        self.encoded = None;
        let snapshot = encoded.unwrap_or_else(|| self.doc.save());
        self.snapshot_bytes = snapshot.len();
        self.incremental_bytes = 0;
        self.incremental_chunks = 0;
        self.compact_due = false;
        StoreOp::ReplaceWithSnapshot {
            document: id,
            snapshot,
        }
    }
}

/// The bytes that bring storage from `saved_heads` to `doc`'s heads: an increment after
/// what storage holds, or the whole document's snapshot if storage holds nothing of it.
fn next_write(doc: &Automerge, persisted: bool, saved_heads: &[ChangeHash]) -> Vec<u8> {
    if persisted {
        doc.save_after(saved_heads)
    } else {
        doc.save()
    }
}

/// What storage holds of a document.
struct Held<'a> {
    persisted: bool,
    saved_heads: &'a [ChangeHash],
    bytes: usize,
}

impl Held<'_> {
    /// See [`Document::stored_size_with`]; the write it encodes goes into `encoded`.
    fn size_with(
        &self,
        doc: &Automerge,
        limit: usize,
        encoded: &mut Option<(Vec<ChangeHash>, Vec<u8>)>,
    ) -> usize {
        let heads = doc.get_heads();
        if heads == self.saved_heads {
            return self.bytes;
        }
        let write = next_write(doc, self.persisted, self.saved_heads);
        let estimate = if self.persisted {
            self.bytes + write.len()
        } else {
            write.len()
        };
        // Kept only for a write that will happen: a refused, oversized one would otherwise
        // stay in memory (up to the limit and more, per document) until the next persist.
        *encoded = (estimate <= limit).then_some((heads, write));
        if estimate <= limit || !self.persisted {
            return estimate;
        }
        estimate.min(doc.save().len())
    }
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{Automerge, ROOT};

    use super::Document;

    /// A document holding `len` letters that do not compress.
    fn with_text(len: usize) -> Automerge {
        let mut seed = 12_345u32;
        let text: String = (0..len)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                char::from(b'a' + (seed >> 16) as u8 % 26)
            })
            .collect();
        let mut doc = Automerge::new();
        let mut tx = doc.transaction();
        tx.put(ROOT, "text", text).expect("put");
        tx.commit();
        doc
    }

    #[test]
    fn a_size_check_keeps_its_encoding_for_the_write_only_within_the_limit() {
        let mut within = Document::empty(0);
        within.set_doc(with_text(100));
        let size = within.stored_size(1_000_000);
        assert!(within
            .encoded
            .as_ref()
            .is_some_and(|(_, b)| b.len() == size));

        // Refused as too large: nothing of it is kept in memory.
        let mut oversized = Document::empty(0);
        oversized.set_doc(with_text(100_000));
        assert!(oversized.stored_size(1_000) > 1_000);
        assert!(oversized.encoded.is_none());
    }
}
