//! `sync` and `request`: taking in a peer's message (its changes are applied by
//! [`super::apply`]), persisting changes before anyone hears of them, and sending every
//! peer that shares the document what it lacks.

use automerge::sync;

use crate::protocol::Message;
use crate::DocumentId;

use super::apply::Check;
use super::channel::{Channel, Generated, PeerHas};
use super::document::{AfterLoad, Status};
use super::errors::Violation;
use super::io::{ChangeOrigin, Notification, Output, StoreOp};
use super::memo::SyncMemo;
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
                self.fail(
                    conn,
                    Violation::InvalidSyncMessage {
                        document: id,
                        error: e.to_string(),
                    },
                );
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
                self.fail(
                    conn,
                    Violation::InvalidSyncMessage {
                        document: id,
                        error: e.to_string(),
                    },
                );
                return;
            }
        };
        if self.pacer.heard_from(conn, id) {
            self.owed.insert((conn, id));
        }
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
        if matches!(entry.status, Status::Corrupt)
            || (entry.has_content() && !self.policy.may_read(c.principal(), &id, &entry.doc))
        {
            self.refuse(conn, id);
            return;
        }
        if !message.changes.is_empty() {
            // Whose document this is comes from what we store, before the changes are read.
            if let Err(reason) = self.policy.may_change(c.principal(), &id, &entry.doc) {
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
                .may_check_in_place(c.principal(), &id, &entry.doc)
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

    /// `doc-unavailable`, keeping nothing about it.
    pub(super) fn send_unavailable(&mut self, conn: ConnectionId, id: DocumentId) {
        if let Some(target_id) = self.peer_id_of(conn) {
            self.send(
                conn,
                &Message::DocUnavailable {
                    sender_id: self.config.peer_id.clone(),
                    target_id,
                    document_id: id,
                },
            );
        }
    }

    /// Tells a peer it may not have a document (or that ours cannot be read).
    pub(super) fn refuse(&mut self, conn: ConnectionId, id: DocumentId) {
        if self.peer_id_of(conn).is_none() {
            return;
        }
        self.send_unavailable(conn, id);
        if let Some(channel) = self.channel_mut(conn, id) {
            channel.told_unavailable();
        }
        self.settle(conn, id);
    }

    pub(super) fn peer_id_of(&self, conn: ConnectionId) -> Option<crate::protocol::PeerId> {
        self.connections
            .get(&conn)
            .and_then(|c| c.ready())
            .map(|p| p.peer_id().clone())
    }

    /// Makes sure the connection has a live sync state for the (loaded) document, starting
    /// from the state saved for this peer's storage id if there is one, and records the
    /// connection's interest in the document.
    pub(super) fn open_channel(&mut self, conn: ConnectionId, id: DocumentId) {
        let (Some(c), Some(entry)) = (self.connections.get_mut(&conn), self.documents.get(&id))
        else {
            return;
        };
        c.open_channel(id, Some(&entry.saved_sync_states))
            .make_live(id);
        self.interest.entry(id).or_default().insert(conn);
    }

    /// Sends the peer a sync message for the document if there is anything to say. True
    /// when something was sent. `memo` shares messages between peers in the same state
    /// (when several are owed one at once).
    pub(super) fn sync_one(
        &mut self,
        conn: ConnectionId,
        id: DocumentId,
        memo: Option<&mut SyncMemo>,
    ) -> bool {
        let (Some(c), Some(entry)) = (self.connections.get(&conn), self.documents.get(&id)) else {
            return false;
        };
        let Some(target_id) = c.ready().map(|p| p.peer_id().clone()) else {
            return false;
        };
        if matches!(entry.status, Status::Loading { .. } | Status::Corrupt) {
            return false;
        }
        if entry.has_content() {
            if !self.policy.may_read(c.principal(), &id, &entry.doc) {
                return false;
            }
        } else {
            // Two empty replicas have nothing to tell each other; only answer a peer that
            // has the document, so it sends it.
            let peer_has = c.channel(&id).map(Channel::has);
            if peer_has != Some(PeerHas::Has) {
                return false;
            }
        }
        self.open_channel(conn, id);
        let (Some(c), Some(entry)) = (self.connections.get_mut(&conn), self.documents.get(&id))
        else {
            return false;
        };
        if !c
            .channel(&id)
            .is_some_and(|channel| channel.has_something_to_send(&entry.doc))
        {
            return false;
        }
        if self.pacer.must_wait(conn, id, self.now) {
            return false;
        }
        let (Some(c), Some(entry)) = (self.connections.get_mut(&conn), self.documents.get(&id))
        else {
            return false;
        };
        let Some(Generated {
            data,
            carries_changes,
        }) = c
            .channel_mut(&id)
            .and_then(|channel| channel.generate(id, &entry.doc, memo))
        else {
            return false;
        };
        if carries_changes {
            self.pacer.sent_changes(conn, id, self.now);
        }
        let message = Message::Sync {
            sender_id: self.config.peer_id.clone(),
            target_id,
            document_id: id,
            data,
        };
        self.send(conn, &message);
        true
    }

    /// A document's content changed: persist it first, tell the host, then bring every
    /// sharing peer up to date (when the host next takes outputs). `first_content` is true
    /// when it was empty before.
    pub(super) fn document_changed(
        &mut self,
        id: DocumentId,
        origin: ChangeOrigin,
        first_content: bool,
    ) {
        let Some(entry) = self.documents.get_mut(&id) else {
            return;
        };
        if let Some(op) = entry.persist(id, &self.config) {
            self.stored.insert(id);
            self.stats.writes += 1;
            self.outputs.push_back(Output::Store(op));
        }
        if !entry.is_ready() {
            entry.status = Status::Ready;
        }
        if first_content {
            self.notify(Notification::DocumentReady { document: id });
            for conn in self.interest.get(&id).into_iter().flatten() {
                if let Some(c) = self.connections.get_mut(conn) {
                    c.known_now(&id);
                }
            }
        }
        self.notify(Notification::DocumentChanged {
            document: id,
            origin,
        });
        let mut targets: Vec<ConnectionId> = self
            .interest
            .get(&id)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        for (cid, c) in &self.connections {
            if c.is_replica() && !targets.contains(cid) {
                targets.push(*cid);
            }
        }
        for conn in targets {
            self.owed.insert((conn, id));
        }
    }

    /// Forgets a connection: saves its sync states for its next visit, drops its interest,
    /// and counts it as an answer to any request waiting on it.
    pub(super) fn remove_connection(&mut self, conn: ConnectionId) {
        let Some(c) = self.connections.remove(&conn) else {
            return;
        };
        self.pacer.forget_connection(conn);
        let storage_id = c.kept_storage_id().cloned();
        let was_ready = c.ready().is_some();
        let mut waiting_on_it = Vec::new();
        for (id, channel) in c.into_channels() {
            if let Some(set) = self.interest.get_mut(&id) {
                set.remove(&conn);
                if set.is_empty() {
                    self.interest.remove(&id);
                }
            }
            if channel.asked() {
                waiting_on_it.push(id);
            }
            let Some(storage_id) = &storage_id else {
                continue;
            };
            let Some(state) = channel.into_saved_state() else {
                continue;
            };
            if let Some(entry) = self.documents.get_mut(&id) {
                if entry.saved_sync_states.get(storage_id) == Some(&state) {
                    continue;
                }
                entry
                    .saved_sync_states
                    .insert(storage_id.clone(), state.clone());
            }
            self.stats.writes += 1;
            self.outputs
                .push_back(Output::Store(StoreOp::SaveSyncState {
                    document: id,
                    peer: storage_id.clone(),
                    state,
                }));
        }
        if was_ready {
            self.notify(Notification::PeerDisconnected { conn });
        }
        for id in waiting_on_it {
            self.check_request(id);
        }
    }
}
