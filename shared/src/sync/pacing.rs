//! Pacing by answers: at most one message carrying changes in flight per peer and document.
//!
//! A peer that receives changes applies them and answers with its new heads (automerge's
//! sync protocol does so whenever its heads move). Until that answer comes, further changes
//! for the peer wait, and go out together in one message when it does. A peer that keeps
//! up sees no difference: each change finds the last one answered and goes at once. A
//! peer that falls behind (a slow link, a busy device, many writers on one document) gets
//! one message for the changes of a whole round trip instead of one per change, so neither
//! side spends its time on messages the other cannot take in yet: one `apply` of a batch
//! instead of one per change, one sync message generated instead of many.
//!
//! An answer can fail to come: a peer that already had every change we sent (it got them
//! by another path, as nodes of a federation do) has nothing to say. So nothing waits
//! longer than [`EngineConfig::answer_wait`](super::EngineConfig::answer_wait); the host
//! wakes the engine at [`Engine::next_deadline`] with [`Input::Wake`](super::Input::Wake).

use crate::DocumentId;

use super::policy::Policy;
use super::{ConnectionId, Engine, Millis};

impl<P: Policy> Engine<P>
where
    P::Principal: PartialEq,
{
    /// Whether a sync message to this peer for this document must wait for its answer to
    /// the last one. If so, it is owed again when the answer comes or the wait is over.
    pub(super) fn must_wait_for_answer(&mut self, conn: ConnectionId, id: DocumentId) -> bool {
        let since = self
            .connections
            .get(&conn)
            .and_then(|c| c.docs.get(&id))
            .and_then(|peer| peer.unanswered_since);
        let Some(since) = since else {
            return false;
        };
        let until = since.saturating_add(self.config.answer_wait);
        if self.now >= until {
            return false;
        }
        self.waiting_for_answers.insert((until, conn, id));
        true
    }

    /// We sent this peer changes for the document: the next ones wait for its answer.
    pub(super) fn sent_changes(&mut self, conn: ConnectionId, id: DocumentId) {
        if let Some(peer) = self
            .connections
            .get_mut(&conn)
            .and_then(|c| c.docs.get_mut(&id))
        {
            peer.unanswered_since = Some(self.now);
        }
    }

    /// The peer said something about the document: whatever waited for it is owed now.
    pub(super) fn heard_from(&mut self, conn: ConnectionId, id: DocumentId) {
        let Some(peer) = self
            .connections
            .get_mut(&conn)
            .and_then(|c| c.docs.get_mut(&id))
        else {
            return;
        };
        let Some(since) = peer.unanswered_since.take() else {
            return;
        };
        let until = since.saturating_add(self.config.answer_wait);
        if self.waiting_for_answers.remove(&(until, conn, id)) {
            self.pending_sync.insert((conn, id));
        }
    }

    /// Owes again every message whose wait for an answer is over.
    pub(super) fn stop_waiting_for_late_answers(&mut self) {
        while let Some(&(until, conn, id)) = self.waiting_for_answers.first() {
            if until > self.now {
                break;
            }
            self.waiting_for_answers.pop_first();
            self.pending_sync.insert((conn, id));
        }
    }

    /// Documents with a message waiting for an answer (they stay in memory until it goes).
    pub(super) fn documents_waiting_for_answers(&self) -> impl Iterator<Item = DocumentId> + '_ {
        self.waiting_for_answers.iter().map(|(_, _, id)| *id)
    }

    /// When the host must wake the engine ([`Input::Wake`](super::Input::Wake)) next: the
    /// earliest time a message stops waiting for an answer. `None`: nothing waits.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.waiting_for_answers.first().map(|(until, _, _)| *until)
    }
}
