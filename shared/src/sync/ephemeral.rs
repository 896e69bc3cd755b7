//! Ephemeral messages (presence): taken from a peer, handed to the host, and passed on to
//! every other peer sharing the document; and the host's own, sent to them all. Repeats
//! are dropped by (sender, session, count).

use crate::protocol::Message;
use crate::DocumentId;

use super::io::Notification;
use super::policy::Policy;
use super::{ConnectionId, Engine};

/// Ephemeral de-duplication entries older than this are forgotten.
const EPHEMERAL_MEMORY_MS: u64 = 10 * 60 * 1000;

impl<P: Policy> Engine<P>
where
    P::Principal: PartialEq,
{
    pub(super) fn on_ephemeral(&mut self, conn: ConnectionId, message: Message) {
        let Message::Ephemeral {
            sender_id,
            document_id,
            session_id,
            count,
            data,
            ..
        } = message
        else {
            return;
        };
        if data.len() > self.config.max_ephemeral_bytes {
            self.fail(
                conn,
                super::Violation::EphemeralTooLarge {
                    size: data.len(),
                    limit: self.config.max_ephemeral_bytes,
                },
            );
            return;
        }
        let Some(c) = self.connections.get(&conn) else {
            return;
        };
        // A peer that dialed us speaks for itself only: what it says in someone else's name
        // is dropped (samod clients hand back what they were sent, under its original
        // sender; nobody hears it twice, and nobody can put words in another's mouth). A
        // server we dialed relays others'.
        if c.direction() == super::Direction::Incoming
            && c.ready().is_some_and(|p| *p.peer_id() != sender_id)
        {
            return;
        }
        // Only about a document this peer shares with us (one it may read): nobody else
        // hears of it otherwise.
        if c.channel(&document_id).is_none() {
            return;
        }
        if !self
            .ephemeral_seen
            .take(&sender_id, &session_id, count, self.now)
        {
            return;
        }
        self.notify(Notification::Ephemeral {
            document: document_id,
            sender: sender_id.clone(),
            data: data.clone(),
        });
        let targets = self.sharing_peers(document_id, Some(conn));
        for target in targets {
            self.send_ephemeral_to(target, document_id, &sender_id, &session_id, count, &data);
        }
    }

    /// Sends our own ephemeral message (presence) to every peer sharing the document.
    pub fn send_ephemeral(&mut self, id: DocumentId, data: Vec<u8>) {
        self.ephemeral_count += 1;
        let count = self.ephemeral_count;
        let me = self.config.peer_id.clone();
        let session = self.config.ephemeral_session_id.clone();
        for target in self.sharing_peers(id, None) {
            self.send_ephemeral_to(target, id, &me, &session, count, &data);
        }
    }

    fn sharing_peers(&self, id: DocumentId, except: Option<ConnectionId>) -> Vec<ConnectionId> {
        self.interest
            .get(&id)
            .map(|s| s.iter().copied().filter(|c| Some(*c) != except).collect())
            .unwrap_or_default()
    }

    fn send_ephemeral_to(
        &mut self,
        conn: ConnectionId,
        id: DocumentId,
        sender: &crate::protocol::PeerId,
        session_id: &str,
        count: u64,
        data: &[u8],
    ) {
        let Some(c) = self.connections.get(&conn) else {
            return;
        };
        let Some(peer) = c.ready() else {
            return;
        };
        if peer.peer_id() == sender {
            return;
        }
        // A server we dialed (automerge-repo's WebSocketServerAdapter among them) only
        // accepts frames whose senderId is the peer on that socket; relayed messages go out
        // under our id, keeping the original session and count.
        let sender_id = if c.direction() == super::Direction::Outgoing {
            self.config.peer_id.clone()
        } else {
            sender.clone()
        };
        let message = Message::Ephemeral {
            sender_id,
            target_id: peer.peer_id().clone(),
            document_id: id,
            session_id: session_id.to_owned(),
            count,
            data: data.to_vec(),
        };
        self.send(conn, &message);
    }

    pub(super) fn forget_old_ephemeral_sessions(&mut self) {
        let cutoff = self.now.saturating_sub(EPHEMERAL_MEMORY_MS);
        self.ephemeral_seen.forget_before(cutoff);
    }
}
