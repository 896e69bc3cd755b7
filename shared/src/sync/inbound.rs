//! A peer's `sync` or `request` taken in. What it may cost is decided before it is read:
//! the envelope is checked, a sender that may not write is refused before the document is
//! loaded, one that may not change this document before the changes are decoded, and the
//! changes' inflated size is measured before automerge reads them. Then the channel hears
//! of it and the changes are applied ([`super::apply`]), now or deferred to be applied with
//! others' ([`super::deferred`]).

use automerge::sync;

use crate::DocumentId;

use super::apply::Check;
use super::channel::Channel;
use super::document::{AfterLoad, Status};
use super::errors::Violation;
use super::policy::Policy;
use super::{ConnectionId, Engine};

impl<P: Policy> Engine<P>
where
    P::Principal: PartialEq,
{
    pub(super) fn on_sync(
        &mut self,
        conn: ConnectionId,
        id: DocumentId,
        data: Vec<u8>,
        is_request: bool,
    ) {
        // The envelope first: what the message claims (hash lists, Bloom filters, how many
        // changes it carries) is checked without reading a change, so a malformed or
        // oversized message costs no storage work and nothing is inflated. (Not in the
        // browser's wasm, which talks to its own node only: it stays within its size budget.)
        #[cfg(not(target_arch = "wasm32"))]
        let envelope = match crate::bounds::check_envelope(&data, &self.config.bounds) {
            Ok(envelope) => envelope,
            Err(e) => {
                self.fail(conn, Violation::invalid_sync_message(id, e));
                return;
            }
        };
        if self.erased.contains(&id) {
            // Withdrawn by its organization: nothing of it is taken in or given out.
            self.send_unavailable(conn, id);
            return;
        }
        let Some(c) = self.connections.get(&conn) else {
            return;
        };
        // A document whose change from this peer was refused: nothing more of it is read
        // until the peer reconnects (see `Channel::refuse`), at no cost beyond the
        // envelope.
        if c.channel(&id).is_some_and(Channel::is_refused) {
            return;
        }
        // Someone who may not write anything is refused before we load the document, and
        // changes that alone are larger than a document may be, before they are applied.
        #[cfg(not(target_arch = "wasm32"))]
        if envelope.change_chunks > 0 {
            if let Err(reason) = self.policy.may_write(c.principal()) {
                self.reject_change(conn, id, reason);
                return;
            }
            if let Some(limit) = self
                .config
                .max_document_bytes
                .filter(|limit| envelope.change_bytes > *limit)
            {
                self.reject_change(
                    conn,
                    id,
                    super::Refusal::ChangeTooLarge {
                        change_bytes: envelope.change_bytes,
                        limit,
                    },
                );
                return;
            }
        }
        let message = match sync::Message::decode(&data) {
            Ok(m) => m,
            Err(e) => {
                self.fail(conn, Violation::invalid_sync_message(id, e));
                return;
            }
        };
        self.heard_from(conn, id);
        if self.take_snapshot_ack(conn, id, &message) {
            return;
        }
        // A document we have nothing of, asked for: within the peer's limit, or answered
        // at once without keeping anything (not even an empty entry in memory).
        let nothing_here = !self.stored.contains(&id)
            && self
                .documents
                .get(&id)
                .is_none_or(|d| !d.has_content() && !d.is_loading());
        if message.changes.is_empty() && nothing_here && !self.note_unknown(conn, id) {
            return;
        }
        if self.ensure_document(id) {
            let work = AfterLoad::Sync {
                conn,
                data,
                is_request,
            };
            self.after_load(id, work);
            return;
        }
        let (Some(c), Some(entry)) = (self.connections.get(&conn), self.documents.get(&id)) else {
            return;
        };
        if matches!(entry.status(), Status::Corrupt)
            || (entry.has_content() && !self.policy.may_read(c.principal(), &id, entry.doc()))
        {
            self.refuse(conn, id);
            return;
        }
        if !message.changes.is_empty() {
            // Whose document this is comes from what we store, before the changes are read.
            if let Err(reason) = self.policy.may_change(c.principal(), &id, entry.doc()) {
                self.reject_change(conn, id, reason);
                return;
            }
            // What the changes come to once inflated, measured within a bounded budget.
            #[cfg(not(target_arch = "wasm32"))]
            if let Err(e) = crate::bounds::measure_sync_message(&data, &self.config.bounds) {
                self.fail(
                    conn,
                    Violation::Unbounded {
                        document: id,
                        error: e,
                    },
                );
                return;
            }
        }
        let (Some(c), Some(entry)) = (self.connections.get(&conn), self.documents.get(&id)) else {
            return;
        };
        let check =
            if message.changes.is_empty() || !self.policy.needs_write_check(c.principal(), &id) {
                Check::None
            } else if self
                .policy
                .may_check_in_place(c.principal(), &id, entry.doc())
            {
                Check::InPlace
            } else {
                Check::Scratch
            };
        let their_heads_empty = message.heads.is_empty();

        self.open_channel(conn, id);
        let asks = is_request || their_heads_empty;
        if !self
            .channel_mut(conn, id)
            .is_some_and(|channel| channel.heard_sync(asks))
        {
            return;
        }
        if let Some(message) = self.defer_apply(conn, id, check, message) {
            self.apply_one(conn, id, check, message);
        }
    }

    /// Notes that a peer waits for a document we have nothing of. False (and the peer told
    /// at once that we do not have it, keeping nothing) when it already waits for as many
    /// as its limits allow: made-up ids cost a bounded amount per connection.
    fn note_unknown(&mut self, conn: ConnectionId, id: DocumentId) -> bool {
        let Some(c) = self.connections.get_mut(&conn) else {
            return false;
        };
        if c.note_unknown(id) {
            return true;
        }
        self.send_unavailable(conn, id);
        false
    }
}
