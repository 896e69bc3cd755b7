//! Every way a peer can break the protocol: it gets an `error` saying exactly what, its
//! connection (only that one) is closed, and everyone else carries on.

use automerge::sync;

use super::sim::*;
use super::{id, Notification};
use crate::protocol::{self, Message, PeerId, PeerMetadata};
use crate::sync::{ConnectionId, Input, PeerRole};

struct Setup {
    sim: Sim,
    node: usize,
    good: usize,
    good_link: usize,
    evil: usize,
    evil_link: usize,
}

/// A node with a well-behaved client that has a document open, and a second peer whose
/// link we abuse. With `handshake` the evil peer's join/peer exchange is delivered first.
fn setup(handshake: bool) -> Setup {
    let mut sim = Sim::new();
    let node = sim.add("node");
    let good = sim.add("good");
    let evil = sim.add("evil");
    sim.write(node, id(1), "text", "v1");
    let good_link = sim.connect_client(good, node);
    sim.run();
    sim.open(good, id(1));
    sim.run();
    let evil_link = sim.connect_client(evil, node);
    if handshake {
        sim.run();
    }
    Setup {
        sim,
        node,
        good,
        good_link,
        evil,
        evil_link,
    }
}

impl Setup {
    fn node_conn_for_evil(&self) -> ConnectionId {
        self.sim.links[self.evil_link].ends[1].1
    }

    /// Asserts the node reported this violation, told the peer, closed exactly that
    /// connection, and still serves the good client.
    fn assert_failed_with(mut self, reason: &str) {
        let conn = self.node_conn_for_evil();
        let node = &self.sim.replicas[self.node];
        assert_eq!(
            node.closed.last(),
            Some(&(conn, reason.to_owned())),
            "closed: {:?}",
            node.closed
        );
        assert!(node.notes.iter().any(|n| matches!(
            n,
            Notification::ProtocolViolation { conn: c, reason: r } if *c == conn && r == reason
        )));
        assert_eq!(node.closed.len(), 1, "only the offending connection closes");
        let evil = &self.sim.replicas[self.evil];
        let told = evil.notes.iter().any(|n| {
            matches!(
                n,
                Notification::PeerError { message, .. } if message == reason
            )
        }) || evil.closed.iter().any(|(_, r)| r.ends_with(reason));
        assert!(told, "the peer was told why: {:?}", evil.closed);
        assert!(!self.sim.links[self.evil_link].open);
        assert!(self.sim.links[self.good_link].open);

        // The good client still syncs.
        self.sim.write(self.good, id(1), "text", "still working");
        self.sim.run();
        assert_eq!(
            self.sim.replicas[self.node].text(&id(1)).as_deref(),
            Some("\"still working\"")
        );
    }

    fn inject(&mut self, frame: Vec<u8>) {
        self.sim.inject(self.evil_link, 1, frame);
    }
}

fn sync_frame(data: Vec<u8>) -> Vec<u8> {
    protocol::encode(&Message::Sync {
        sender_id: PeerId::new("evil"),
        target_id: PeerId::new("node"),
        document_id: id(1),
        data,
    })
}

#[test]
fn malformed_cbor() {
    let mut s = setup(true);
    s.inject(vec![0xa1, 0x64, 0x74]);
    s.assert_failed_with("invalid message: malformed CBOR: end of input bytes");
}

#[test]
fn text_frames() {
    let mut s = setup(true);
    let conn = s.node_conn_for_evil();
    let now = s.sim.now;
    s.sim.replicas[s.node]
        .engine
        .handle(now, Input::TextFrame { conn });
    s.sim.collect(s.node);
    s.assert_failed_with("text frames are not part of the protocol");
}

#[test]
fn unknown_message_type() {
    let mut s = setup(true);
    let mut e = minicbor::Encoder::new(Vec::new());
    e.map(2).unwrap();
    e.str("type").unwrap().str("teleport").unwrap();
    e.str("senderId").unwrap().str("evil").unwrap();
    s.inject(e.into_writer());
    s.assert_failed_with("invalid message: unknown message type `teleport`");
}

#[test]
fn bad_document_id() {
    let mut s = setup(true);
    let mut e = minicbor::Encoder::new(Vec::new());
    e.map(5).unwrap();
    e.str("type").unwrap().str("sync").unwrap();
    e.str("senderId").unwrap().str("evil").unwrap();
    e.str("targetId").unwrap().str("node").unwrap();
    e.str("documentId")
        .unwrap()
        .str("11111111111111114Ki9Gy")
        .unwrap();
    e.str("data").unwrap().bytes(&[0x42]).unwrap();
    s.inject(e.into_writer());
    s.assert_failed_with(
        "invalid message: invalid documentId: document id checksum does not match",
    );
}

#[test]
fn sync_data_that_is_not_a_sync_message() {
    let mut s = setup(true);
    s.inject(sync_frame(vec![0x99, 1, 2, 3]));
    s.assert_failed_with(&format!(
        "invalid sync message for {}: not a sync message: its first byte is 0x99, not 0x42 or 0x43",
        id(1)
    ));
}

#[test]
fn sync_data_automerge_cannot_apply() {
    use automerge::{transaction::Transactable, ActorId, Automerge, ROOT};
    let mut s = setup(true);
    // Two different changes claiming the same (actor, seq): automerge refuses the second.
    let actor = ActorId::from(b"same actor".as_slice());
    let change = |value: &str| {
        let mut doc = Automerge::new().with_actor(actor.clone());
        let mut tx = doc.transaction();
        tx.put(ROOT, "text", value).unwrap();
        tx.commit();
        doc.get_last_local_change().unwrap().raw_bytes().to_vec()
    };
    let send = |s: &mut Setup, chunk: Vec<u8>| {
        let message = sync::Message {
            heads: vec![],
            need: vec![],
            have: vec![sync::Have::default()],
            changes: vec![chunk].into(),
            flags: None,
            version: sync::MessageVersion::V1,
        };
        s.inject(sync_frame(message.encode()));
    };
    send(&mut s, change("first"));
    assert!(s.sim.links[s.evil_link].open);
    send(&mut s, change("second"));
    s.assert_failed_with(&format!(
        "automerge rejected the sync message for {}: duplicate seq 1 found for actor {}",
        id(1),
        actor
    ));
}

#[test]
fn a_message_before_join() {
    let mut s = setup(false);
    s.inject(sync_frame(vec![0x42, 0, 0, 0, 0]));
    s.assert_failed_with("expected `join` before any other message, got `sync`");
}

#[test]
fn join_twice() {
    let mut s = setup(true);
    s.inject(protocol::encode(&Message::Join {
        sender_id: PeerId::new("evil"),
        supported_protocol_versions: vec!["1".into()],
        peer_metadata: None,
    }));
    s.assert_failed_with("unexpected `join` after the handshake");
}

#[test]
fn no_common_protocol_version() {
    let mut s = setup(false);
    s.inject(protocol::encode(&Message::Join {
        sender_id: PeerId::new("evil"),
        supported_protocol_versions: vec!["2".into()],
        peer_metadata: None,
    }));
    s.assert_failed_with("unsupported protocol version");
}

#[test]
fn a_join_claiming_another_peers_id() {
    let mut s = setup(false);
    // "good" is connected as a client; this connection is a replica principal: a different
    // identity claiming the same peer id.
    let conn = ConnectionId(999);
    let now = s.sim.now;
    let node = s.node;
    s.sim.replicas[node].engine.handle(
        now,
        Input::Connected {
            conn,
            direction: crate::sync::Direction::Incoming,
            principal: PeerRole::Replica,
        },
    );
    s.sim.replicas[node].engine.handle(
        now,
        Input::Frame {
            conn,
            frame: protocol::encode(&Message::Join {
                sender_id: PeerId::new("good"),
                supported_protocol_versions: vec!["1".into()],
                peer_metadata: Some(PeerMetadata::default()),
            }),
        },
    );
    let outputs: Vec<_> = s.sim.replicas[node].engine.drain_outputs().collect();
    assert!(outputs.iter().any(|o| matches!(
        o,
        crate::sync::Output::Close { conn: c, reason } if *c == conn && reason == "peer id good is already connected"
    )));
    assert!(
        s.sim.links[s.good_link].open,
        "the real peer keeps its connection"
    );
}

#[test]
fn a_peer_the_policy_refuses() {
    let mut sim = Sim::new();
    let node = sim.add("node");
    let banned = sim.add("banned-peer");
    let link = sim.connect_client(banned, node);
    sim.run();
    let conn = sim.links[link].ends[1].1;
    assert_eq!(
        sim.replicas[node].closed,
        vec![(conn, "not admitted: banned peer".to_owned())]
    );
}

#[test]
fn oversized_frames() {
    let mut s = setup(true);
    let limit = s.sim.replicas[s.node].config.limits.max_frame_bytes;
    s.inject(vec![0; limit + 1]);
    s.assert_failed_with(&format!(
        "invalid message: frame of {} bytes exceeds the limit of {limit} bytes",
        limit + 1
    ));
}

#[test]
fn too_many_messages() {
    let mut sim = Sim::new();
    let mut cfg = config("node");
    cfg.max_messages_per_second = 10;
    cfg.message_burst = 20;
    let node = sim.add_with(cfg, RolePolicy::default());
    let good = sim.add("good");
    let evil = sim.add("evil");
    sim.write(node, id(1), "text", "v1");
    let good_link = sim.connect_client(good, node);
    let evil_link = sim.connect_client(evil, node);
    sim.run();
    sim.open(good, id(1));
    sim.run();
    let leave = protocol::encode(&Message::Gossip {
        kind: protocol::GossipKind::RemoteHeadsChanged,
        sender_id: PeerId::new("evil"),
    });
    // The join used one token; 19 more fit in the burst, the 20th does not.
    for _ in 0..19 {
        sim.inject(evil_link, 1, leave.clone());
    }
    assert!(sim.links[evil_link].open);
    sim.inject(evil_link, 1, leave.clone());
    let s = Setup {
        sim,
        node,
        good,
        good_link,
        evil,
        evil_link,
    };
    s.assert_failed_with("message rate limit exceeded");
}

#[test]
fn the_rate_limit_refills_over_time() {
    let mut sim = Sim::new();
    let mut cfg = config("node");
    cfg.max_messages_per_second = 10;
    cfg.message_burst = 10;
    let node = sim.add_with(cfg, RolePolicy::default());
    let peer = sim.add("peer");
    let link = sim.connect_client(peer, node);
    sim.run();
    let gossip = protocol::encode(&Message::Gossip {
        kind: protocol::GossipKind::RemoteHeadsChanged,
        sender_id: PeerId::new("peer"),
    });
    for _ in 0..50 {
        sim.advance(150);
        sim.inject(link, 1, gossip.clone());
    }
    assert!(sim.links[link].open, "{:?}", sim.replicas[node].closed);
}

#[test]
fn oversized_ephemeral_messages() {
    let mut s = setup(true);
    let limit = s.sim.replicas[s.node].config.max_ephemeral_bytes;
    s.inject(protocol::encode(&Message::Ephemeral {
        sender_id: PeerId::new("evil"),
        target_id: PeerId::new("node"),
        document_id: id(1),
        session_id: "s".into(),
        count: 1,
        data: vec![0; limit + 1],
    }));
    s.assert_failed_with(&format!(
        "ephemeral message of {} bytes exceeds the limit of {limit}",
        limit + 1
    ));
}

#[test]
fn a_handshake_that_never_completes() {
    let mut s = setup(false);
    // The evil peer's join never arrives.
    s.sim.links[s.evil_link].queues[0].clear();
    s.sim.advance(11_000);
    s.assert_failed_with("handshake timed out");
}
