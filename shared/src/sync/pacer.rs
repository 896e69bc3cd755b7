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
//! wakes the engine at [`Engine::next_deadline`](super::Engine::next_deadline) with
//! [`Input::Wake`](super::Input::Wake).
//!
//! [`Pacer`] holds all of it: when each peer was last sent changes for each document and
//! has not answered since, and the messages waiting, by when they stop waiting. The engine
//! asks it before sending, tells it what it sent and heard, and owes again what it hands
//! back.

use std::collections::{BTreeMap, BTreeSet};

use crate::DocumentId;

use super::{ConnectionId, Millis};

#[derive(Debug)]
pub(super) struct Pacer {
    /// How long a message waits for an answer at most.
    answer_wait: Millis,
    /// When we last sent each peer changes to each document, if it has not said anything
    /// about the document since.
    unanswered_since: BTreeMap<ConnectionId, BTreeMap<DocumentId, Millis>>,
    /// Messages waiting for a peer's answer, by when they stop waiting.
    waiting: BTreeSet<(Millis, ConnectionId, DocumentId)>,
}

impl Pacer {
    pub fn new(answer_wait: Millis) -> Self {
        Self {
            answer_wait,
            unanswered_since: BTreeMap::new(),
            waiting: BTreeSet::new(),
        }
    }

    /// Whether a sync message to this peer for this document must wait for its answer to
    /// the last one. If so, it is owed again when the answer comes
    /// ([`Self::heard_from`]) or the wait is over ([`Self::take_due`]).
    pub fn must_wait(&mut self, conn: ConnectionId, id: DocumentId, now: Millis) -> bool {
        let Some(&since) = self.unanswered_since.get(&conn).and_then(|d| d.get(&id)) else {
            return false;
        };
        let until = since.saturating_add(self.answer_wait);
        if now >= until {
            return false;
        }
        self.waiting.insert((until, conn, id));
        true
    }

    /// We sent this peer changes for the document: the next ones wait for its answer.
    pub fn sent_changes(&mut self, conn: ConnectionId, id: DocumentId, now: Millis) {
        self.unanswered_since
            .entry(conn)
            .or_default()
            .insert(id, now);
    }

    /// The peer said something about the document. True when a message waited for it:
    /// it is owed now.
    pub fn heard_from(&mut self, conn: ConnectionId, id: DocumentId) -> bool {
        let Some(docs) = self.unanswered_since.get_mut(&conn) else {
            return false;
        };
        let Some(since) = docs.remove(&id) else {
            return false;
        };
        if docs.is_empty() {
            self.unanswered_since.remove(&conn);
        }
        let until = since.saturating_add(self.answer_wait);
        self.waiting.remove(&(until, conn, id))
    }

    /// Every message whose wait for an answer is over by `now`, taken out: owed again.
    pub fn take_due(&mut self, now: Millis) -> Vec<(ConnectionId, DocumentId)> {
        let mut due = Vec::new();
        while let Some(&(until, conn, id)) = self.waiting.first() {
            if until > now {
                break;
            }
            self.waiting.pop_first();
            due.push((conn, id));
        }
        due
    }

    /// Documents with a message waiting for an answer (they stay in memory until it goes).
    pub fn waiting_documents(&self) -> impl Iterator<Item = DocumentId> + '_ {
        self.waiting.iter().map(|(_, _, id)| *id)
    }

    /// The earliest time a message stops waiting for an answer. `None`: nothing waits.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.waiting.first().map(|(until, _, _)| *until)
    }

    /// The connection is gone: nothing it was sent is answered any more. (Messages owed
    /// to it still stop waiting in time, and find it gone.)
    pub fn forget_connection(&mut self, conn: ConnectionId) {
        self.unanswered_since.remove(&conn);
    }

    /// The document was erased: nothing of it waits.
    pub fn forget_document(&mut self, id: DocumentId) {
        self.unanswered_since.retain(|_, docs| {
            docs.remove(&id);
            !docs.is_empty()
        });
        self.waiting.retain(|(_, _, d)| *d != id);
    }

    /// Every connection is gone.
    pub fn clear(&mut self) {
        self.unanswered_since.clear();
        self.waiting.clear();
    }
}
