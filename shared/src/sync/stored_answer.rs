//! A fresh peer's request answered straight from what storage holds.
//!
//! A peer that has nothing of a document (a new browser, a script fetching the catalogue)
//! asks with empty heads, and automerge answers such a peer with the whole document: its
//! saved form, our heads, and a summary of what we have. What storage holds (a snapshot,
//! then increments of changes) is a saved form a peer loads just as well, and our heads
//! can be read from it without loading it ([`stored_heads`]: the snapshot's header and the
//! increments' change hashes and dependencies). So the engine answers from the bytes it
//! read: a load rebuilds and hashes every change, which was most of the node's work in a
//! full sync, and the document never takes memory.
//!
//! The bytes are checked as they are read (every chunk's checksum) but not loaded here.
//! They load: storage only holds what automerge saved after loading or applying it (the
//! node's archive restore loads a file before storing it), so bytes whose checksums hold
//! are bytes automerge wrote.
//!
//! What the answer says about us is exact: "I have everything up to these heads"
//! (`have.last_sync` = our heads, an empty bloom filter for nothing since). A peer that made
//! changes of its own meanwhile sends them all in return, as it would to any peer that
//! lacks them.
//!
//! The peer's acknowledgement (our heads back, no changes, nothing needed) is taken the
//! same way, without a load; its sync state is then parked as eviction parks states. The
//! invariant that makes this sound: a *live* sync state for a document that is not in memory
//! exists only between such an answer and its acknowledgement, and its `last_sent_heads` are
//! what storage holds (storage only changes through a document in memory, and evicting one
//! parks every live state for it). Anything else (a peer that has content, a policy that must
//! look at the content, stored bytes that do not read as they should) takes the usual
//! path: load, then sync.

use automerge::sync::{self, ChunkList, Have, MessageFlags, MessageVersion, SyncDoc};
use automerge::{Automerge, ChangeHash};

use crate::protocol::Message;
use crate::DocumentId;

use super::document::AfterLoad;
use super::io::StoredDocument;
use super::policy::Policy;
use super::snapshot::stored_heads;
use super::{ConnectionId, Engine};

impl<P: Policy> Engine<P>
where
    P::Principal: PartialEq,
{
    /// Answers every message that waited for the document's load from what storage
    /// returned, if they all can be (see the module docs). True when they were: the caller then drops
    /// the loading entry instead of loading.
    pub(super) fn serve_from_snapshot(
        &mut self,
        id: DocumentId,
        stored: &StoredDocument,
        after_load: &[AfterLoad],
    ) -> bool {
        if after_load.is_empty() || stored.chunks.is_empty() {
            return false;
        }
        let mut requests = Vec::with_capacity(after_load.len());
        for work in after_load {
            let AfterLoad::Sync { conn, data, .. } = work else {
                return false;
            };
            if !self.connections.contains_key(conn) {
                continue; // gone while we read storage
            }
            if requests.iter().any(|(c, _)| c == conn) {
                return false;
            }
            let Some(request) = self.fresh_request(*conn, id, data) else {
                return false;
            };
            requests.push((*conn, request));
        }
        let Some(heads) = stored_heads(&stored.chunks) else {
            return false;
        };
        // What a peer loads: the snapshot and the increments after it, as they are stored.
        let saved = stored.chunks.concat();
        for (conn, request) in requests {
            self.answer_from_snapshot(conn, id, request, &heads, &saved);
        }
        true
    }

    /// The decoded message, if it is a fresh peer's request this connection may have
    /// answered without looking at the document.
    fn fresh_request(
        &self,
        conn: ConnectionId,
        id: DocumentId,
        data: &[u8],
    ) -> Option<sync::Message> {
        let c = self.connections.get(&conn)?;
        c.ready()?;
        if !self.policy.may_read_any(c.principal(), &id) {
            return None;
        }
        if c.channel(&id).is_some_and(|ch| !ch.may_answer_fresh()) {
            return None;
        }
        let message = sync::Message::decode(data).ok()?;
        let flags = message.flags?; // only peers that take whole documents send flags
        let fresh = message.heads.is_empty()
            && message.changes.is_empty()
            && message.need.is_empty()
            && message.have.iter().all(|h| h.last_sync.is_empty())
            && !flags.contains(MessageFlags::READ_ONLY);
        fresh.then_some(message)
    }

    fn answer_from_snapshot(
        &mut self,
        conn: ConnectionId,
        id: DocumentId,
        request: sync::Message,
        heads: &[ChangeHash],
        saved: &[u8],
    ) {
        let Some(target_id) = self.peer_id_of(conn) else {
            return;
        };
        // Taking in a message with no heads and no changes does not look at the document:
        // an empty one leaves the state exactly as ours would.
        let mut state = sync::State::new();
        if Automerge::new()
            .receive_sync_message(&mut state, request)
            .is_err()
        {
            return;
        }
        // What generating the answer records (bar `sent_hashes`, which only saves sending
        // a change twice).
        state.have_responded = true;
        state.last_sent_heads = heads.to_vec();
        state.in_flight = true;
        let mut flags = MessageFlags::new();
        flags.set(MessageFlags::SUPPORTS_SYNC_RESET);
        let answer = sync::Message {
            heads: heads.to_vec(),
            need: Vec::new(),
            have: vec![Have {
                last_sync: heads.to_vec(),
                bloom: sync::BloomFilter::default(),
            }],
            changes: ChunkList::from(saved.to_vec()),
            flags: Some(flags),
            version: MessageVersion::V2,
        };
        let Some(c) = self.connections.get_mut(&conn) else {
            return;
        };
        c.open_channel(id, None).answered_fresh(state);
        self.interest.entry(id).or_default().insert(conn);
        self.stats.snapshots_served += 1;
        self.send(
            conn,
            &Message::Sync {
                sender_id: self.config.peer_id.clone(),
                target_id,
                document_id: id,
                data: answer.encode(),
            },
        );
    }

    /// Takes a peer's acknowledgement of such an answer for a document still not in
    /// memory. True when it was one (and nothing is owed in return).
    pub(super) fn take_snapshot_ack(
        &mut self,
        conn: ConnectionId,
        id: DocumentId,
        message: &sync::Message,
    ) -> bool {
        if self.documents.contains_key(&id) {
            return false;
        }
        let Some(c) = self.connections.get_mut(&conn) else {
            return false;
        };
        if !self.policy.may_read_any(c.principal(), &id) {
            return false;
        }
        let Some(channel) = c.channel_mut(&id) else {
            return false;
        };
        let Some(state) = channel.live_state() else {
            return false;
        };
        let ours = &state.last_sent_heads;
        let acknowledged = state.have_responded
            && !ours.is_empty()
            && !channel.is_refused()
            && message.heads == *ours
            && message.changes.is_empty()
            && message.need.is_empty()
            && message
                .have
                .iter()
                .all(|h| h.last_sync.iter().all(|hash| ours.contains(hash)));
        if !acknowledged {
            return false;
        }
        channel.acknowledged_at(message.heads.clone());
        self.settle(conn, id);
        true
    }
}
