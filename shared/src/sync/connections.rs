//! A connection's life: opened, the `join` / `peer` handshake, frames dispatched by the
//! connection's phase, and closed (its sync states saved for its next visit).

use crate::protocol::{self, Message, PeerId, PeerMetadata, PROTOCOL_V1};

use super::errors::Violation;
use super::io::StoreOp;
use super::peer::{Connection, Phase, ReadyPeer};
use super::policy::Policy;
use super::{ConnectionId, Direction, Engine, Notification};

impl<P: Policy> Engine<P>
where
    P::Principal: PartialEq,
{
    pub(super) fn on_connected(
        &mut self,
        conn: ConnectionId,
        direction: Direction,
        principal: P::Principal,
    ) {
        let deadline = self.now + self.config.handshake_timeout;
        let phase = match direction {
            Direction::Incoming => Phase::AwaitingJoin { deadline },
            Direction::Outgoing => Phase::AwaitingPeer { deadline },
        };
        // The policy's limits for this principal, within the engine's own.
        let wanted = self.policy.limits(&principal);
        let limits = super::policy::PeerLimits {
            max_frame_bytes: wanted
                .max_frame_bytes
                .min(self.config.limits.max_frame_bytes),
            messages_per_second: wanted
                .messages_per_second
                .min(self.config.max_messages_per_second),
            message_burst: wanted.message_burst.min(self.config.message_burst),
            ..wanted
        };
        self.connections.insert(
            conn,
            Connection::new(direction, principal, phase, limits, self.now),
        );
        if direction == Direction::Outgoing {
            let join = Message::Join {
                sender_id: self.our_id(),
                supported_protocol_versions: vec![PROTOCOL_V1.to_owned()],
                peer_metadata: Some(self.our_metadata()),
            };
            self.send(conn, &join);
        }
    }

    fn our_metadata(&self) -> PeerMetadata {
        PeerMetadata {
            storage_id: self.config.storage_id.clone(),
            is_ephemeral: self.config.is_ephemeral,
        }
    }

    pub(super) fn on_frame(&mut self, conn: ConnectionId, frame: &[u8]) {
        let now = self.now;
        // What this peer sent before goes in first. Frames from other peers may come before
        // it: nothing orders one connection's frames against another's.
        if self.defers_from(conn) {
            self.apply_deferred();
        }
        let Some(c) = self.connections.get_mut(&conn) else {
            return;
        };
        self.stats.frames_in += 1;
        self.stats.bytes_in += frame.len() as u64;
        if !c.allow_message(now) {
            self.fail(conn, Violation::RateLimited);
            return;
        }
        let limits = crate::protocol::Limits {
            max_frame_bytes: c.limits().max_frame_bytes,
            ..self.config.limits
        };
        let message = match protocol::decode(frame, &limits) {
            Ok(m) => m,
            Err(e) => {
                self.fail(conn, Violation::Undecodable(e));
                return;
            }
        };
        self.dispatch(conn, message);
    }

    /// Routes a decoded message by the connection's phase.
    pub(super) fn dispatch(&mut self, conn: ConnectionId, message: Message) {
        let Some(c) = self.connections.get(&conn) else {
            return;
        };
        match (c.phase(), message) {
            (
                Phase::AwaitingJoin { .. },
                Message::Join {
                    sender_id,
                    supported_protocol_versions,
                    peer_metadata,
                },
            ) => self.on_join(
                conn,
                sender_id,
                &supported_protocol_versions,
                peer_metadata.unwrap_or_default(),
            ),
            (
                Phase::AwaitingPeer { .. },
                Message::Peer {
                    sender_id,
                    selected_protocol_version,
                    peer_metadata,
                    ..
                },
            ) => {
                if selected_protocol_version != PROTOCOL_V1 {
                    self.fail(
                        conn,
                        Violation::UnsupportedVersion(selected_protocol_version),
                    );
                    return;
                }
                self.admit(conn, sender_id, peer_metadata.unwrap_or_default());
            }
            (Phase::AwaitingPeer { .. }, Message::Error { message, .. }) => {
                self.close_connection(conn, format!("peer refused the connection: {message}"));
            }
            (Phase::AwaitingJoin { .. } | Phase::AwaitingPeer { .. }, other) => {
                let expected = if c.direction() == Direction::Incoming {
                    "join"
                } else {
                    "peer"
                };
                self.fail(
                    conn,
                    Violation::BeforeHandshake {
                        expected,
                        got: other.type_name(),
                    },
                );
            }
            (Phase::Ready(_), message) => self.on_ready_message(conn, message),
        }
    }

    fn on_ready_message(&mut self, conn: ConnectionId, message: Message) {
        match message {
            Message::Join { .. } | Message::Peer { .. } => {
                self.fail(conn, Violation::AfterHandshake(message.type_name()));
            }
            Message::Sync {
                document_id, data, ..
            } => {
                self.stats.sync_messages_in += 1;
                self.on_sync(conn, document_id, data, false);
            }
            Message::Request {
                document_id, data, ..
            } => {
                self.stats.sync_messages_in += 1;
                self.on_sync(conn, document_id, data, true);
            }
            Message::DocUnavailable { document_id, .. } => {
                self.heard_from(conn, document_id);
                self.on_doc_unavailable(conn, document_id)
            }
            message @ Message::Ephemeral { .. } => self.on_ephemeral(conn, message),
            // An error is the peer's complaint (a rejected change, or the reason it is about
            // to hang up). The peer closes the connection itself if it means to.
            Message::Error { message, .. } => {
                self.notify(Notification::PeerError { conn, message });
            }
            Message::Leave { .. } => self.close_connection(conn, "peer left".into()),
            Message::Gossip { .. } => {}
        }
    }

    fn on_join(
        &mut self,
        conn: ConnectionId,
        sender_id: PeerId,
        versions: &[String],
        metadata: PeerMetadata,
    ) {
        if !versions.iter().any(|v| v == PROTOCOL_V1) {
            self.fail(conn, Violation::NoCommonVersion);
            return;
        }
        if !self.admit(conn, sender_id.clone(), metadata) {
            return;
        }
        let peer = Message::Peer {
            sender_id: self.our_id(),
            target_id: sender_id,
            selected_protocol_version: PROTOCOL_V1.to_owned(),
            peer_metadata: Some(self.our_metadata()),
        };
        self.send(conn, &peer);
        self.after_handshake(conn);
    }

    /// Checks the peer against the policy and against other connections, and marks the
    /// connection ready. False when the peer was refused (and disconnected).
    fn admit(&mut self, conn: ConnectionId, peer_id: PeerId, metadata: PeerMetadata) -> bool {
        let Some(c) = self.connections.get(&conn) else {
            return false;
        };
        let role = match self
            .policy
            .admit(c.principal(), c.direction(), &peer_id, &metadata)
        {
            Ok(role) => role,
            Err(reason) => {
                self.fail(conn, Violation::NotAdmitted(reason));
                return false;
            }
        };
        // The same peer id on another connection: a reconnect from the same principal
        // replaces the old connection, and so does a principal that outranks the old one
        // (a partner that proved its key, over a socket that only claimed its peer id);
        // anyone else claiming that id is refused.
        let existing = self.connections.iter().find_map(|(id, other)| {
            (*id != conn && other.ready().is_some_and(|p| *p.peer_id() == peer_id)).then(|| {
                let same = other.principal() == c.principal();
                (
                    *id,
                    same || self.policy.outranks(c.principal(), other.principal()),
                    same,
                )
            })
        });
        match existing {
            Some((old, true, same)) => self.close_connection(
                old,
                if same {
                    "replaced by a new connection from the same peer".into()
                } else {
                    format!("peer id {peer_id} was claimed by a peer that proved who it is")
                },
            ),
            Some((_, false, _)) => {
                self.fail(conn, Violation::PeerIdTaken(peer_id));
                return false;
            }
            None => {}
        }
        if let Some(c) = self.connections.get_mut(&conn) {
            c.set_ready(ReadyPeer::new(peer_id.clone(), metadata.clone(), role));
        }
        self.notify(Notification::PeerConnected {
            conn,
            peer_id,
            metadata,
        });
        // Outgoing connections are ready when `peer` arrives; incoming ones once our `peer`
        // reply is queued (see on_join).
        let outgoing = self
            .connections
            .get(&conn)
            .is_some_and(|c| c.direction() == Direction::Outgoing);
        if outgoing {
            self.after_handshake(conn);
        }
        true
    }

    fn after_handshake(&mut self, conn: ConnectionId) {
        if self.connections.get(&conn).is_some_and(|c| c.is_replica()) {
            self.start_bulk_sync(conn);
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
                if !entry.remember_sync_state(storage_id, &state) {
                    continue;
                }
            }
            self.store(StoreOp::SaveSyncState {
                document: id,
                peer: storage_id.clone(),
                state,
            });
        }
        if was_ready {
            self.notify(Notification::PeerDisconnected { conn });
        }
        for id in waiting_on_it {
            self.check_request(id);
        }
    }
}
