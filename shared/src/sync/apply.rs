//! Applying a peer's changes to a document: checked by the policy (in place, or on a
//! scratch copy: [`receive_checked`]), then persisted and relayed, and the peer answered.
//! Used for one message at a time, and by [`super::deferred`] when several are applied
//! together.

use automerge::sync;
use automerge::{Automerge, AutomergeError};

use crate::protocol::Message;
use crate::DocumentId;

use super::document::Document;
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
            let Some(live) = channel.live_state_mut() else {
                return;
            };
            let before = entry.doc().get_heads();
            // Unchecked, the message goes straight into the peer's sync state; checked,
            // into a copy of it, kept only if the change is.
            let mut state = if check == Check::None {
                std::mem::take(live)
            } else {
                live.clone()
            };
            let outcome =
                receive_checked(&self.policy, principal, &id, entry, check, None, |doc| {
                    receive_sync_message(doc, &mut state, message)
                });
            if check == Check::None || outcome.is_applied() {
                *live = state;
            }
            // A change refused in place is undone by rebuilding the document at `before`.
            let outcome = match outcome {
                Outcome::Rejected(reason) if check == Check::InPlace => {
                    match undo(entry.doc(), &before) {
                        Ok(doc) => {
                            entry.set_doc(doc);
                            Outcome::Rejected(reason)
                        }
                        Err(e) => Outcome::Invalid(format!(
                            "{reason}; and the change could not be undone: {e}"
                        )),
                    }
                }
                other => other,
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
        let refusal = too_large(entry.stored_size(limit), limit)?;
        let restored = if before.is_empty() {
            Ok(Automerge::new().with_actor(entry.doc().get_actor().clone()))
        } else {
            undo(entry.doc(), before)
        };
        match restored {
            Ok(doc) => entry.set_doc(doc),
            Err(e) => {
                tracing::error!(document = %id, error = %e, "an oversized change could not be undone")
            }
        }
        Some(refusal)
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
        entry.touch(self.now);
        let now_has_content = entry.has_content();
        if entry.doc().get_heads() != before {
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

/// Takes changes into the document as `check` says, and says what became of them.
/// `receive` takes them into the document it is given: the document itself, or a scratch
/// copy that replaces it only if the policy accepts the result. Changes taken in place stay
/// in when they are refused or invalid: the caller undoes them. With a `limit`, a result
/// that storage would hold larger than it is refused too.
///
/// This is the one place the kind of check is acted on, for one message
/// ([`Engine::apply_one`]) and for several applied together ([`super::deferred`]).
pub(super) fn receive_checked<P: Policy>(
    policy: &P,
    principal: &P::Principal,
    id: &DocumentId,
    entry: &mut Document,
    check: Check,
    limit: Option<usize>,
    receive: impl FnOnce(&mut Automerge) -> Result<(), AutomergeError>,
) -> Outcome {
    match check {
        Check::Scratch => {
            let mut scratch = entry.doc().clone();
            if let Err(e) = receive(&mut scratch) {
                return Outcome::Invalid(e.to_string());
            }
            if let Err(reason) = policy.check_write(principal, id, entry.doc(), &scratch) {
                return Outcome::Rejected(reason);
            }
            if let Some(refusal) =
                limit.and_then(|limit| too_large(entry.stored_size_with(&scratch, limit), limit))
            {
                return Outcome::Rejected(refusal);
            }
            entry.set_doc(scratch);
        }
        Check::InPlace | Check::None => {
            let before = (check == Check::InPlace).then(|| entry.doc().get_heads());
            if let Err(e) = receive(entry.doc_mut()) {
                return Outcome::Invalid(e.to_string());
            }
            if let Some(before) = before {
                if let Err(reason) = policy.check_in_place(principal, id, &before, entry.doc()) {
                    return Outcome::Rejected(reason);
                }
            }
            if let Some(refusal) =
                limit.and_then(|limit| too_large(entry.stored_size(limit), limit))
            {
                return Outcome::Rejected(refusal);
            }
        }
    }
    Outcome::Applied
}

/// `Some` refusal when a document stored at `size` bytes would be over `limit`.
fn too_large(size: usize, limit: usize) -> Option<Refusal> {
    (size > limit).then_some(Refusal::DocumentTooLarge { size, limit })
}

/// What became of a peer's changes.
pub(super) enum Outcome {
    Applied,
    /// The policy (or the size limit) refused the resulting document.
    Rejected(Refusal),
    /// Automerge could not apply it.
    Invalid(String),
}

impl Outcome {
    pub(super) fn is_applied(&self) -> bool {
        matches!(self, Outcome::Applied)
    }
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
