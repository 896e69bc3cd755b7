//! Changes from several peers to one document, applied together.
//!
//! Applying changes makes automerge walk every operation of each changed object, its
//! history included, once per apply: on a busy document that walk was most of the node's
//! time (perf, 10 writers on one document). When the host has several inputs at hand it
//! calls [`Engine::defer_applies`]; then consecutive sync messages carrying changes to the
//! same document, from different connections with the same principal and checked the same
//! way, are kept and applied together when anything else comes (or the outputs are taken):
//! one apply, one policy check, one write, one relay.
//!
//! The result is what applying them one after another gives: automerge's merge does not
//! depend on the order, each peer's sync state is updated from its own message, and the
//! policy judges the combined change for the one principal that could have made all of it.
//! If the combined change is refused (or automerge rejects it), nothing of it is kept and
//! the messages are applied one at a time, so only the offending peer hears about it.
//!
//! Kept changes are applied before anything that could see the document without them:
//! another frame from a peer in the batch, any input that is not a frame, a protocol
//! failure, the host's own document API, and taking the outputs. Frames from other peers
//! (the acknowledgements that other writers send meanwhile, mostly) are taken in first, as
//! if they had come before: nothing orders one connection's frames against another's, and
//! what we send in answer is made when the outputs are taken, after the changes are in.
//!
//! Left out of the wasm build: the browser talks to one node, so it never has changes from
//! several peers to apply together, and the app stays within its size budget. There the
//! engine's `apply_incoming` and friends do nothing (see the bottom of `mod.rs`).
#![cfg(not(target_arch = "wasm32"))]

use automerge::sync;

use super::apply::{undo, Check};
use super::document::Status;
use super::policy::Policy;
use super::receive::receive_together;
use super::{ConnectionId, Engine};
use crate::DocumentId;

/// Sync messages with changes to one document, waiting to be applied together.
#[derive(Debug)]
pub(super) struct Incoming {
    document: DocumentId,
    check: Check,
    messages: Vec<(ConnectionId, sync::Message)>,
}

impl<P: Policy> Engine<P>
where
    P::Principal: PartialEq,
{
    /// Until the outputs are next taken, changes that several peers send to the same
    /// document one after another are applied together. Hosts that handle a run of queued
    /// inputs before taking outputs call this first. Until then, [`Engine::document`] may
    /// not show changes received since; every other method sees them.
    pub fn defer_applies(&mut self) {
        self.deferring = true;
    }

    /// Applies the changes kept by [`Engine::defer_applies`] now.
    pub fn apply_deferred(&mut self) {
        self.apply_incoming();
    }

    /// Whether changes from `conn` are waiting to be applied.
    pub(super) fn keeps_incoming_from(&self, conn: ConnectionId) -> bool {
        self.incoming
            .as_ref()
            .is_some_and(|batch| batch.messages.iter().any(|(c, _)| *c == conn))
    }

    /// Whether a message from `conn` with changes to `id`, checked as `check`, may join
    /// the changes kept: the same document and check, and a peer not among them yet with
    /// the same principal as theirs.
    fn joins_incoming(&self, conn: ConnectionId, id: DocumentId, check: Check) -> bool {
        let Some(batch) = &self.incoming else {
            return false;
        };
        let principal_of = |c: ConnectionId| self.connections.get(&c).map(|c| c.principal());
        let first = batch.messages.first().map(|(c, _)| *c);
        batch.document == id
            && batch.check == check
            && !self.keeps_incoming_from(conn)
            && principal_of(conn).is_some()
            && first.and_then(principal_of) == principal_of(conn)
    }

    /// Keeps a message with changes for applying together with the next ones; gives it
    /// back when it must be applied now.
    pub(super) fn defer_incoming(
        &mut self,
        conn: ConnectionId,
        id: DocumentId,
        check: Check,
        message: sync::Message,
    ) -> Option<sync::Message> {
        let ready = self
            .documents
            .get(&id)
            .is_some_and(|d| matches!(d.status, Status::Ready) && d.has_content());
        if !self.deferring || message.changes.is_empty() || !ready {
            return Some(message);
        }
        if !self.joins_incoming(conn, id, check) {
            self.apply_incoming();
        }
        match &mut self.incoming {
            Some(batch) => batch.messages.push((conn, message)),
            None => {
                self.incoming = Some(Incoming {
                    document: id,
                    check,
                    messages: vec![(conn, message)],
                })
            }
        }
        None
    }

    /// Applies the kept messages: together, or one at a time if together they are
    /// refused.
    pub(super) fn apply_incoming(&mut self) {
        let Some(Incoming {
            document,
            check,
            messages,
        }) = self.incoming.take()
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
        let principal = first.principal();
        let before = entry.doc.get_heads();
        let batch = states.iter_mut().zip(messages.iter().map(|(_, m)| m));
        let accepted = match check {
            Check::None => {
                receive_together(&mut entry.doc, batch).is_ok()
                    && within_limit(entry, None, self.config.max_document_bytes)
            }
            Check::InPlace => {
                receive_together(&mut entry.doc, batch).is_ok()
                    && self
                        .policy
                        .check_in_place(principal, &id, &before, &entry.doc)
                        .is_ok()
                    && within_limit(entry, None, self.config.max_document_bytes)
            }
            Check::Scratch => {
                let mut scratch = entry.doc.clone();
                let accepted = receive_together(&mut scratch, batch).is_ok()
                    && self
                        .policy
                        .check_write(principal, &id, &entry.doc, &scratch)
                        .is_ok()
                    && within_limit(entry, Some(&scratch), self.config.max_document_bytes);
                if accepted {
                    entry.doc = scratch;
                }
                accepted
            }
        };
        if !accepted {
            // (One by one, the offending message is refused alone.)
            if check != Check::Scratch && entry.doc.get_heads() != before {
                match undo(&entry.doc, &before) {
                    Ok(doc) => entry.doc = doc,
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

/// True if storage would hold `doc` (the document in memory, if `None`) within the size
/// limit for one document.
fn within_limit(
    entry: &mut super::document::Document,
    doc: Option<&automerge::Automerge>,
    limit: Option<usize>,
) -> bool {
    limit.is_none_or(|limit| match doc {
        Some(doc) => entry.stored_size_with(doc, limit) <= limit,
        None => entry.stored_size(limit) <= limit,
    })
}
