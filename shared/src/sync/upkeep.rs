//! Timers and memory: handshakes that never finish, requests nobody answers, bulk-sync items
//! that stall, ephemeral sessions long gone, stored increments due for a snapshot, and
//! documents nobody has touched for a while (dropped from memory; storage keeps them and
//! they load again on demand).

use crate::DocumentId;

use super::document::Status;
use super::policy::Policy;
use super::{ConnectionId, Engine};

impl<P: Policy> Engine<P>
where
    P::Principal: PartialEq,
{
    pub(super) fn on_tick(&mut self) {
        let now = self.now;
        let stalled: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|(_, c)| c.handshake_deadline().is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        for conn in stalled {
            self.fail(conn, super::Violation::HandshakeTimedOut);
        }
        self.expire_requests();
        self.expire_bulk_items();
        self.forget_old_ephemeral_sessions();
        self.compact_documents();
        self.evict_idle_documents();
        self.enforce_document_budget();
    }

    /// Replaces the stored increments of documents that outgrew their snapshot (marked by
    /// `persist`) with one snapshot each. Done here, once a second, rather than when the
    /// change that tipped the balance arrived: encoding a whole document took ~0.4 ms for
    /// 400 changes, on the path of a change everyone was waiting for.
    fn compact_documents(&mut self) {
        let due: Vec<DocumentId> = self
            .documents
            .iter()
            .filter(|(_, d)| d.is_compact_due())
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some(op) = self.documents.get_mut(&id).and_then(|d| d.compact(id)) else {
                continue;
            };
            self.stored.insert(id);
            self.store(op);
        }
    }

    fn evict_idle_documents(&mut self) {
        let Some(idle) = self.config.evict_idle_after else {
            return;
        };
        let cutoff = self.now.saturating_sub(idle);
        let idle_documents: Vec<DocumentId> = self
            .evictable()
            .into_iter()
            .filter(|(_, last_used)| *last_used <= cutoff)
            .map(|(id, _)| id)
            .collect();
        for id in idle_documents {
            self.evict(id);
        }
    }

    /// Keeps at most `max_loaded_documents` in memory, dropping the least recently used
    /// (a bulk sync can briefly exceed it by the documents in flight).
    pub(super) fn enforce_document_budget(&mut self) {
        let Some(max) = self.config.max_loaded_documents else {
            return;
        };
        if self.documents.len() <= max {
            return;
        }
        // Down to 90% of the budget, so the scan below runs once per many loads, not at
        // every one.
        self.stats.memory_budget_scans += 1;
        let mut candidates = self.evictable();
        candidates.sort_by_key(|(_, last_used)| *last_used);
        let excess = self.documents.len() - max * 9 / 10;
        for (id, _) in candidates.into_iter().take(excess) {
            self.evict(id);
        }
        self.budget_scanned_at = self.documents.len();
    }

    /// [`Self::enforce_document_budget`] between ticks, once a tenth of the budget came
    /// into memory since the last scan: when a scan finds too little to drop (thousands of
    /// documents requested at once, waiting for peers), it is not repeated at every output.
    pub(super) fn enforce_document_budget_as_it_grows(&mut self) {
        let Some(max) = self.config.max_loaded_documents else {
            return;
        };
        if self.documents.len() >= self.budget_scanned_at + max / 10 {
            self.enforce_document_budget();
        }
    }

    /// Documents that could leave memory now (saved, not loading, not mid-bulk-sync, no
    /// message waiting for an answer), with when each was last used.
    fn evictable(&self) -> Vec<(DocumentId, super::Millis)> {
        let busy: std::collections::BTreeSet<DocumentId> = self
            .connections
            .values()
            .flat_map(|c| c.bulk().in_flight().map(|(id, _)| id))
            .chain(self.pacer.waiting_documents())
            .collect();
        self.documents
            .iter()
            .filter(|(id, d)| {
                !d.is_pinned()
                    && !busy.contains(id)
                    && match d.status() {
                        Status::Ready => !d.has_content() || d.is_saved(),
                        Status::Unavailable | Status::Corrupt => true,
                        Status::Loading { .. } | Status::Requesting { .. } => false,
                    }
            })
            .map(|(id, d)| (*id, d.last_used()))
            .collect()
    }

    /// Drops a document from memory; peers' sync states for it are parked (encoded).
    fn evict(&mut self, id: DocumentId) {
        if let Some(conns) = self.interest.get(&id) {
            for conn in conns {
                if let Some(channel) = self
                    .connections
                    .get_mut(conn)
                    .and_then(|c| c.channel_mut(&id))
                {
                    channel.park();
                }
            }
        }
        if self.documents.remove(&id).is_some() {
            self.stats.documents_evicted += 1;
        }
    }
}
