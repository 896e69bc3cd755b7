//! Documents we lack: finding them through other peers, and `doc-unavailable` (heard, and
//! told to peers that may not have a document or asked for one nobody has).
//!
//! When a peer (or the host) wants a document that neither memory nor storage has, we ask
//! every replica peer except the one asking and those known not to have it. A peer that asks
//! us for the same document while we are asking it counts as "does not have it" — that is
//! what stops requests from looping around a cycle of nodes. When every peer we asked has
//! answered (or disconnected, or the request timed out) without the document, everyone who
//! asked hears `doc-unavailable`. If the document turns up later, whoever asked still gets it:
//! their sync state stays, and [`Engine::document_changed`] sends to every interested peer.

use crate::protocol::Message;
use crate::DocumentId;

use super::channel::PeerHas;
use super::document::Status;
use super::io::Notification;
use super::policy::Policy;
use super::{ConnectionId, Engine};

impl<P: Policy> Engine<P>
where
    P::Principal: PartialEq,
{
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

    /// Someone wants a document that is in memory but empty. `requester` is the peer that
    /// asked, or `None` for the host.
    pub(super) fn want_document(&mut self, id: DocumentId, requester: Option<ConnectionId>) {
        let Some(entry) = self.documents.get(&id) else {
            return;
        };
        if entry.has_content() {
            return;
        }
        match entry.status() {
            Status::Requesting { .. } => {
                // Already asking; the requester is answered with everyone else.
                self.check_request(id);
                return;
            }
            Status::Loading { .. } | Status::Corrupt => return,
            Status::Ready | Status::Unavailable => {}
        }
        // A peer whose requests are not worth our partners' time (an anonymous visitor
        // asking for made-up ids) hears at once that we do not have it.
        let forwarded = requester.is_none_or(|conn| {
            self.connections
                .get(&conn)
                .is_some_and(|c| c.limits().forward_requests)
        });
        if !forwarded {
            self.resolve_unavailable(id);
            return;
        }
        let candidates: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|(cid, c)| {
                Some(**cid) != requester
                    && c.is_replica()
                    && !matches!(
                        c.channel(&id).map(|ch| ch.has()),
                        Some(PeerHas::Unavailable | PeerHas::Wants)
                    )
            })
            .map(|(cid, _)| *cid)
            .collect();
        if let Some(entry) = self.documents.get_mut(&id) {
            entry.set_status(Status::Requesting {
                deadline: self.now + self.config.request_timeout,
            });
        }
        for conn in candidates {
            self.send_request(conn, id);
        }
        self.check_request(id);
    }

    /// Asks one peer for a document we do not have.
    pub(super) fn send_request(&mut self, conn: ConnectionId, id: DocumentId) {
        let Some(target_id) = self.peer_id_of(conn) else {
            return;
        };
        self.open_channel(conn, id);
        let (Some(c), Some(entry)) = (self.connections.get_mut(&conn), self.documents.get(&id))
        else {
            return;
        };
        let Some(data) = c.channel_mut(&id).and_then(|ch| ch.request(entry.doc())) else {
            return;
        };
        self.send(
            conn,
            &Message::Request {
                sender_id: self.config.peer_id.clone(),
                target_id,
                document_id: id,
                data,
            },
        );
    }

    /// Resolves a pending request once no asked peer is still expected to answer.
    pub(super) fn check_request(&mut self, id: DocumentId) {
        let Some(entry) = self.documents.get(&id) else {
            return;
        };
        if !matches!(entry.status(), Status::Requesting { .. }) || entry.has_content() {
            return;
        }
        let waiting = self
            .connections
            .values()
            .any(|c| c.channel(&id).is_some_and(|ch| ch.awaiting_answer()));
        if !waiting {
            self.resolve_unavailable(id);
        }
    }

    /// Nobody has the document: tell everyone who asked.
    fn resolve_unavailable(&mut self, id: DocumentId) {
        let pinned = match self.documents.get_mut(&id) {
            Some(entry) => {
                entry.set_status(Status::Unavailable);
                entry.is_pinned()
            }
            None => return,
        };
        let wanting: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|(_, c)| c.channel(&id).is_some_and(|ch| ch.has() == PeerHas::Wants))
            .map(|(cid, _)| *cid)
            .collect();
        for conn in wanting {
            if let Some(channel) = self.channel_mut(conn, id) {
                channel.unavailable();
            }
            self.send_unavailable(conn, id);
        }
        let someone_has_it = self
            .connections
            .values()
            .any(|c| c.channel(&id).is_some_and(|ch| ch.has() == PeerHas::Has));
        if pinned {
            self.notify(Notification::DocumentUnavailable { document: id });
        } else if !someone_has_it {
            // Nothing to keep in memory for it: made-up ids must not push real documents
            // out of the budget of loaded documents. Whoever asked still gets it if it
            // appears (their interest is kept, within their limit).
            self.documents.remove(&id);
        }
    }

    pub(super) fn on_doc_unavailable(&mut self, conn: ConnectionId, id: DocumentId) {
        if let Some(channel) = self.channel_mut(conn, id) {
            channel.unavailable();
        }
        self.settle(conn, id);
        self.check_request(id);
    }

    /// Requests that waited too long count as answered "unavailable".
    pub(super) fn expire_requests(&mut self) {
        let now = self.now;
        let expired: Vec<DocumentId> = self
            .documents
            .iter()
            .filter(
                |(_, d)| matches!(d.status(), Status::Requesting { deadline } if *deadline <= now),
            )
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            for c in self.connections.values_mut() {
                if let Some(channel) = c.channel_mut(&id) {
                    channel.request_expired();
                }
            }
            self.check_request(id);
        }
    }
}
