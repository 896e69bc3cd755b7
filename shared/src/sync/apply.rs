//! Applying a peer's changes to a document: checked by the policy (in place, or on a
//! scratch copy), then persisted and relayed, and the peer answered. Used for one message
//! at a time, and by [`super::incoming`] when several are applied together.

use automerge::sync;
use automerge::Automerge;

use crate::protocol::Message;
use crate::DocumentId;

use super::errors::{Refusal, Violation};
use super::io::{ChangeOrigin, Notification};
use super::policy::Policy;
use super::receive::receive_sync_message;
use super::{ConnectionId, Engine};

impl<P: Policy> Engine<P>
where
    P::Principal: PartialEq,
{
    /// Applies one peer's sync message to the document (checked as `check` says), then
    /// persists and relays what changed.
    pub(super) fn apply_one(
        &mut self,
        conn: ConnectionId,
        id: DocumentId,
        check: Check,
        message: sync::Message,
    ) {
        let (before, outcome) = {
            let (Some(c), Some(entry)) =
                (self.connections.get_mut(&conn), self.documents.get_mut(&id))
            else {
                return;
            };
            let Some((principal, channel)) = c.principal_and_channel_mut(&id) else {
                return;
            };
            let Some(state) = channel.live_state_mut() else {
                return;
            };
            let before = entry.doc.get_heads();
            let outcome = match check {
                Check::Scratch => {
                    // Apply to a scratch copy; keep it only if the policy accepts the result.
                    let mut scratch = entry.doc.clone();
                    let mut scratch_state = state.clone();
                    match receive_sync_message(&mut scratch, &mut scratch_state, message) {
                        Err(e) => Outcome::Invalid(e.to_string()),
                        Ok(()) => {
                            match self
                                .policy
                                .check_write(principal, &id, &entry.doc, &scratch)
                            {
                                Ok(()) => {
                                    entry.doc = scratch;
                                    *state = scratch_state;
                                    Outcome::Applied
                                }
                                Err(reason) => Outcome::Rejected(reason),
                            }
                        }
                    }
                }
                Check::InPlace => {
                    // Apply to the document itself; undo by rebuilding it at `before` if
                    // the policy refuses the result.
                    let mut new_state = state.clone();
                    match receive_sync_message(&mut entry.doc, &mut new_state, message) {
                        Err(e) => Outcome::Invalid(e.to_string()),
                        Ok(()) => {
                            match self
                                .policy
                                .check_in_place(principal, &id, &before, &entry.doc)
                            {
                                Ok(()) => {
                                    *state = new_state;
                                    Outcome::Applied
                                }
                                Err(reason) => match undo(&entry.doc, &before) {
                                    Ok(doc) => {
                                        entry.doc = doc;
                                        Outcome::Rejected(reason)
                                    }
                                    Err(e) => Outcome::Invalid(format!(
                                        "{reason}; and the change could not be undone: {e}"
                                    )),
                                },
                            }
                        }
                    }
                }
                Check::None => match receive_sync_message(&mut entry.doc, state, message) {
                    Ok(()) => Outcome::Applied,
                    Err(e) => Outcome::Invalid(e.to_string()),
                },
            };
            (before, outcome)
        };
        let outcome = match outcome {
            Outcome::Applied => match self.oversized(id, &before) {
                Some(reason) => Outcome::Rejected(reason),
                None => Outcome::Applied,
            },
            other => other,
        };
        match outcome {
            Outcome::Applied => {}
            Outcome::Invalid(error) => {
                self.fail(
                    conn,
                    Violation::NotApplicable {
                        document: id,
                        error,
                    },
                );
                return;
            }
            Outcome::Rejected(reason) => {
                self.reject_change(conn, id, reason);
                return;
            }
        }
        self.after_apply(id, &[conn], &before);
    }

    /// A peer's change is refused: nothing of it is kept or relayed; the sender hears why
    /// and stays connected, but this document no longer syncs with it until it reconnects.
    pub(super) fn reject_change(&mut self, conn: ConnectionId, id: DocumentId, reason: Refusal) {
        if let Some(channel) = self.channel_mut(conn, id) {
            channel.refuse();
        }
        self.stats.changes_rejected += 1;
        self.send(
            conn,
            &Message::Error {
                sender_id: Some(self.config.peer_id.clone()),
                message: format!("change to {id} rejected: {reason}"),
            },
        );
        self.notify(Notification::ChangeRejected {
            conn,
            document: id,
            reason: reason.to_string(),
        });
    }

    /// If the document, as it is now in memory, would be stored larger than
    /// [`super::EngineConfig::max_document_bytes`]: it is put back as it was at `before`
    /// and the reason is returned.
    pub(super) fn oversized(
        &mut self,
        id: DocumentId,
        before: &[automerge::ChangeHash],
    ) -> Option<Refusal> {
        let limit = self.config.max_document_bytes?;
        let entry = self.documents.get_mut(&id)?;
        let size = entry.stored_size(limit);
        if size <= limit {
            return None;
        }
        let restored = if before.is_empty() {
            Ok(Automerge::new().with_actor(entry.doc.get_actor().clone()))
        } else {
            undo(&entry.doc, before)
        };
        match restored {
            Ok(doc) => entry.doc = doc,
            Err(e) => {
                tracing::error!(document = %id, error = %e, "an oversized change could not be undone")
            }
        }
        Some(Refusal::DocumentTooLarge { size, limit })
    }

    /// After the changes of the peers on `conns` were applied to the document (which had
    /// `before` as its heads): persist and relay what changed, and answer those peers.
    pub(super) fn after_apply(
        &mut self,
        id: DocumentId,
        conns: &[ConnectionId],
        before: &[automerge::ChangeHash],
    ) {
        let Some(entry) = self.documents.get_mut(&id) else {
            return;
        };
        let Some((&first, others)) = conns.split_first() else {
            return;
        };
        entry.last_used = self.now;
        let now_has_content = entry.has_content();
        if entry.doc.get_heads() != before {
            self.document_changed(id, ChangeOrigin::Remote(first), before.is_empty());
            // One write and one relay for all of them; each author is named, so its host
            // knows whose changes that write holds.
            for &conn in others {
                self.notify(Notification::DocumentChanged {
                    document: id,
                    origin: ChangeOrigin::Remote(conn),
                });
            }
        } else {
            self.owed.extend(conns.iter().map(|&conn| (conn, id)));
        }
        if !now_has_content {
            self.want_document(id, Some(first));
        }
        for &conn in conns {
            self.settle_if_in_sync(conn, id);
        }
    }
}

/// What became of a peer's sync message.
enum Outcome {
    Applied,
    /// The policy (or the size limit) refused the resulting document.
    Rejected(Refusal),
    /// Automerge could not apply it.
    Invalid(String),
}

/// How an incoming change is checked before it is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Check {
    /// The policy trusts the sender with this document.
    None,
    /// Applied to a copy, kept if the policy accepts the copy.
    Scratch,
    /// Applied in place, undone if the policy refuses the result.
    InPlace,
}

/// The document as it was at `heads`, with the same actor (undoing a refused change).
pub(super) fn undo(doc: &Automerge, heads: &[automerge::ChangeHash]) -> Result<Automerge, String> {
    let actor = doc.get_actor().clone();
    doc.fork_at(heads)
        .map(|d| d.with_actor(actor))
        .map_err(|e| e.to_string())
}
