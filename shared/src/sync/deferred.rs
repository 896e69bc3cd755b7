//! Changes from several peers to one document, deferred and applied together.
//!
//! Applying changes makes automerge walk every operation of each changed object, its
//! history included, once per apply: on a busy document that walk was most of the node's
//! time (perf, 10 writers on one document). When the host has several inputs at hand it
//! calls [`Engine::defer_applies`]; then consecutive sync messages carrying changes to the
//! same document, from different connections with the same principal and checked the same
//! way, are deferred and applied together when anything else comes (or the outputs are
//! taken): one apply, one policy check, one write, one relay.
//!
//! The result is what applying them one after another gives: automerge's merge does not
//! depend on the order, each peer's sync state is updated from its own message, and the
//! policy judges the combined change for the one principal that could have made all of it.
//! If the combined change is refused (or automerge rejects it), nothing of it is kept and
//! the messages are applied one at a time, so only the offending peer hears about it.
//!
//! Deferred changes are applied ([`Engine::apply_deferred`]) before anything that could see
//! the document without them: another frame from a peer in the batch, any input that is not
//! a frame, a protocol failure, the host's own document API, and taking the outputs. Frames
//! from other peers (the acknowledgements that other writers send meanwhile, mostly) are
//! taken in first, as if they had come before: nothing orders one connection's frames
//! against another's, and what we send in answer is made when the outputs are taken, after
//! the changes are in.
//!
//! Left out of the wasm build: the browser talks to one node, so it never has changes from
//! several peers to apply together, and the app stays within its size budget. There the
//! same methods do nothing (the block at the bottom).

use automerge::sync;

use super::apply::Check;
use super::policy::Policy;
use super::{ConnectionId, Engine};
use crate::DocumentId;

/// Sync messages with changes to one document, deferred to be applied together.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug)]
pub(super) struct Deferred {
    document: DocumentId,
    check: Check,
    messages: Vec<(ConnectionId, sync::Message)>,
}

#[cfg(not(target_arch = "wasm32"))]
impl<P: Policy> Engine<P>
where
    P::Principal: PartialEq,
{
    /// Until the outputs are next taken, changes that several peers send to the same
    /// document one after another are deferred and applied together. Hosts that handle a
    /// run of queued inputs before taking outputs call this first. Until then,
    /// [`Engine::document`] may not show changes received since; every other method sees
    /// them.
    pub fn defer_applies(&mut self) {
        self.deferring = true;
    }

    /// Applies the deferred changes now: together, or one at a time if together they are
    /// refused.
    pub fn apply_deferred(&mut self) {
        let Some(Deferred {
            document,
            check,
            messages,
        }) = self.deferred.take()
        else {
            return;
        };
        if messages.len() > 1 && self.apply_together(document, check, &messages) {
            return;
        }
        for (conn, message) in messages {
            self.apply_one(conn, document, check, message);
        }
    }

    /// The outputs are taken: deferred changes go in, and nothing more is deferred until
    /// the host asks again.
    pub(super) fn stop_deferring(&mut self) {
        self.apply_deferred();
        self.deferring = false;
    }

    /// Storage failed: deferred changes are dropped with everything else in memory.
    pub(super) fn drop_deferred(&mut self) {
        self.deferred = None;
    }

    /// Whether changes from `conn` are deferred.
    pub(super) fn defers_from(&self, conn: ConnectionId) -> bool {
        self.deferred
            .as_ref()
            .is_some_and(|batch| batch.messages.iter().any(|(c, _)| *c == conn))
    }

    /// Whether a message from `conn` with changes to `id`, checked as `check`, may join
    /// the deferred ones: the same document and check, and a peer not among them yet with
    /// the same principal as theirs.
    fn joins_deferred(&self, conn: ConnectionId, id: DocumentId, check: Check) -> bool {
        let Some(batch) = &self.deferred else {
            return false;
        };
        let principal_of = |c: ConnectionId| self.connections.get(&c).map(|c| c.principal());
        let first = batch.messages.first().map(|(c, _)| *c);
        batch.document == id
            && batch.check == check
            && !self.defers_from(conn)
            && principal_of(conn).is_some()
            && first.and_then(principal_of) == principal_of(conn)
    }

    /// Defers a message with changes, to be applied together with the next ones; gives it
    /// back when it must be applied now.
    pub(super) fn defer_apply(
        &mut self,
        conn: ConnectionId,
        id: DocumentId,
        check: Check,
        message: sync::Message,
    ) -> Option<sync::Message> {
        let ready = self
            .documents
            .get(&id)
            .is_some_and(|d| d.is_ready() && d.has_content());
        if !self.deferring || message.changes.is_empty() || !ready {
            return Some(message);
        }
        if !self.joins_deferred(conn, id, check) {
            self.apply_deferred();
        }
        match &mut self.deferred {
            Some(batch) => batch.messages.push((conn, message)),
            None => {
                self.deferred = Some(Deferred {
                    document: id,
                    check,
                    messages: vec![(conn, message)],
                })
            }
        }
        None
    }

    /// One apply and one check for all the messages. False, with the document and every
    /// sync state as they were, if automerge or the policy refuses the result (then the
    /// caller applies them one by one). True when they were applied, and also when a
    /// refused result could not be undone: those peers are then disconnected, as the
    /// single-message path does.
    fn apply_together(
        &mut self,
        id: DocumentId,
        check: Check,
        messages: &[(ConnectionId, sync::Message)],
    ) -> bool {
        let conns: Vec<ConnectionId> = messages.iter().map(|(c, _)| *c).collect();
        let mut states = Vec::with_capacity(messages.len());
        for conn in &conns {
            match self
                .connections
                .get(conn)
                .and_then(|c| c.channel(&id))
                .and_then(|ch| ch.live_state())
            {
                Some(state) => states.push(state.clone()),
                None => return false,
            }
        }
        let (Some(first), Some(entry)) =
            (self.connections.get(&conns[0]), self.documents.get_mut(&id))
        else {
            return false;
        };
        let before = entry.doc().get_heads();
        let batch = states.iter_mut().zip(messages.iter().map(|(_, m)| m));
        let outcome = super::apply::receive_checked(
            &self.policy,
            first.principal(),
            &id,
            entry,
            check,
            self.config.max_document_bytes,
            |doc| super::receive::receive_together(doc, batch),
        );
        if !outcome.is_applied() {
            // (One by one, the offending message is refused alone.)
            if check != Check::Scratch && entry.doc().get_heads() != before {
                match super::apply::undo(entry.doc(), &before) {
                    Ok(doc) => entry.set_doc(doc),
                    Err(e) => {
                        // Cannot happen short of a bug in automerge: the document keeps
                        // what it took, and the peers start over.
                        tracing::error!(document = %id, error = %e, "changes applied together could not be undone");
                        for conn in conns {
                            self.fail(conn, super::Violation::NotUndone(id));
                        }
                        return true;
                    }
                }
            }
            return false;
        }
        for (conn, state) in conns.iter().zip(states) {
            if let Some(live) = self
                .channel_mut(*conn, id)
                .and_then(|ch| ch.live_state_mut())
            {
                *live = state;
            }
        }
        self.stats.sync_messages_applied_together += messages.len() as u64;
        self.after_apply(id, &conns, &before);
        true
    }
}

/// The browser's engine talks to one node: it never defers changes to apply together.
#[cfg(target_arch = "wasm32")]
impl<P: Policy> Engine<P>
where
    P::Principal: PartialEq,
{
    /// Nothing is deferred in the browser.
    pub fn apply_deferred(&mut self) {}

    pub(super) fn stop_deferring(&mut self) {}

    pub(super) fn drop_deferred(&mut self) {}

    pub(super) fn defers_from(&self, _: ConnectionId) -> bool {
        false
    }

    pub(super) fn defer_apply(
        &mut self,
        _: ConnectionId,
        _: DocumentId,
        _: Check,
        message: sync::Message,
    ) -> Option<sync::Message> {
        Some(message)
    }
}
