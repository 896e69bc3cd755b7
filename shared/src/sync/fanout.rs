//! Changes going out: a changed document is persisted first, then every peer that shares it
//! is owed a sync message ([`Engine::document_changed`]); owed messages are generated as the
//! host takes the outputs ([`super::io::Outputs`], [`Engine::sync_one`]), paced by answers
//! ([`super::pacer`]).

use crate::protocol::Message;
use crate::DocumentId;

use super::channel::{Channel, Generated, PeerHas};
use super::document::Status;
use super::io::{ChangeOrigin, Notification};
use super::memo::SyncMemo;
use super::policy::Policy;
use super::{ConnectionId, Engine};

impl<P: Policy> Engine<P>
where
    P::Principal: PartialEq,
{
    /// Makes sure the connection has a live sync state for the (loaded) document, starting
    /// from the state saved for this peer's storage id if there is one, and records the
    /// connection's interest in the document.
    pub(super) fn open_channel(&mut self, conn: ConnectionId, id: DocumentId) {
        let (Some(c), Some(entry)) = (self.connections.get_mut(&conn), self.documents.get(&id))
        else {
            return;
        };
        c.open_channel(id, Some(entry.saved_sync_states()))
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
        if matches!(entry.status(), Status::Loading { .. } | Status::Corrupt) {
            return false;
        }
        if entry.has_content() {
            if !self.policy.may_read(c.principal(), &id, entry.doc()) {
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
            .is_some_and(|channel| channel.has_something_to_send(entry.doc()))
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
            .and_then(|channel| channel.generate(id, entry.doc(), memo))
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
        let write = entry.persist(id, &self.config);
        if !entry.is_ready() {
            entry.set_status(Status::Ready);
        }
        if let Some(op) = write {
            self.stored.insert(id);
            self.store(op);
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
}
