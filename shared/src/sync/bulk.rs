//! The bulk sync with a replica peer: right after the handshake we offer it every document
//! it may read, `sync_window` at a time, so a reconnect with thousands of documents neither
//! floods the socket nor loads everything into memory at once. A document is settled when
//! both sides have said they hold the same heads (or the peer refused it, or it timed out);
//! each settled document advances the progress the host can show.

use crate::DocumentId;

use super::channel::PeerHas;
use super::document::{AfterLoad, Status};
use super::io::Notification;
use super::policy::Policy;
use super::{ConnectionId, Engine};

impl<P: Policy> Engine<P>
where
    P::Principal: PartialEq,
{
    pub(super) fn start_bulk_sync(&mut self, conn: ConnectionId) {
        let documents: Vec<DocumentId> = self.known_documents().collect();
        // Documents someone here wants but nobody had: ask the new replica too.
        let missing: Vec<DocumentId> = self
            .documents
            .iter()
            .filter(|(id, d)| {
                !d.has_content()
                    && matches!(d.status(), Status::Unavailable | Status::Requesting { .. })
                    && (d.is_pinned() || self.interest.contains_key(id))
            })
            .map(|(id, _)| *id)
            .collect();
        let Some(c) = self.connections.get_mut(&conn) else {
            return;
        };
        let total = c.bulk_mut().start(documents);
        self.notify(Notification::SyncProgress {
            conn,
            done: 0,
            total,
        });
        for id in missing {
            self.send_request(conn, id);
            if let Some(d) = self.documents.get_mut(&id) {
                if matches!(d.status(), Status::Unavailable) {
                    d.set_status(Status::Requesting {
                        deadline: self.now + self.config.request_timeout,
                    });
                }
            }
        }
        self.fill_window(conn);
    }

    /// Offers documents until the window is full.
    fn fill_window(&mut self, conn: ConnectionId) {
        loop {
            let now = self.now;
            let window = self.config.sync_window;
            let Some(c) = self.connections.get_mut(&conn) else {
                return;
            };
            let Some(id) = c.bulk_mut().next_to_offer(window, now) else {
                return;
            };
            if self.ensure_document(id) {
                self.after_load(id, AfterLoad::Offer { conn });
            } else {
                self.offer(conn, id);
            }
        }
    }

    /// Offers one loaded document to the peer, or settles it at once if there is nothing to
    /// offer.
    pub(super) fn offer(&mut self, conn: ConnectionId, id: DocumentId) {
        let in_flight = self
            .connections
            .get(&conn)
            .is_some_and(|c| c.bulk().is_in_flight(&id));
        if !in_flight {
            return;
        }
        let already_syncing = self.connections.get(&conn).is_some_and(|c| {
            c.channel(&id)
                .is_some_and(|ch| ch.has() != PeerHas::Unknown)
        });
        if already_syncing || !self.sync_one(conn, id, None) {
            self.settle(conn, id);
        }
    }

    /// After a message from the peer: settle the document if both sides now hold the same
    /// heads.
    pub(super) fn settle_if_in_sync(&mut self, conn: ConnectionId, id: DocumentId) {
        let (Some(c), Some(entry)) = (self.connections.get(&conn), self.documents.get(&id)) else {
            return;
        };
        if !c.bulk().is_in_flight(&id) {
            return;
        }
        let in_sync = c
            .channel(&id)
            .is_some_and(|ch| ch.in_sync_at(&entry.doc().get_heads()));
        if in_sync {
            self.settle(conn, id);
        }
    }

    /// Counts a document of the bulk sync as done and offers the next.
    pub(super) fn settle(&mut self, conn: ConnectionId, id: DocumentId) {
        let Some(c) = self.connections.get_mut(&conn) else {
            return;
        };
        let Some((done, total)) = c.bulk_mut().settle(&id) else {
            return;
        };
        self.notify(Notification::SyncProgress { conn, done, total });
        self.fill_window(conn);
    }

    /// Bulk-sync items with no answer for too long are settled so the window moves on.
    pub(super) fn expire_bulk_items(&mut self) {
        let cutoff = self.now.saturating_sub(self.config.sync_item_timeout);
        let expired: Vec<(ConnectionId, DocumentId)> = self
            .connections
            .iter()
            .flat_map(|(cid, c)| {
                c.bulk()
                    .in_flight()
                    .filter(move |(_, since)| *since <= cutoff)
                    .map(move |(id, _)| (*cid, id))
            })
            .collect();
        for (conn, id) in expired {
            self.settle(conn, id);
        }
    }
}
