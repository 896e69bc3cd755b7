//! What a peer may make the engine spend, by who it is: changes refused before they are
//! read, made-up document ids and presence bounded per connection, a peer that proved who it
//! is winning over one that only claimed its id, and the size of one document.

use automerge::{transaction::Transactable, Automerge, ROOT};

use super::sim::*;
use super::{has_note, id};
use crate::bounds::hostile::compressed_zeros_message;
use crate::protocol::{self, Message, PeerId, PeerMetadata, PROTOCOL_V1};
use crate::sync::*;

fn policy() -> RolePolicy {
    RolePolicy {
        read_only_clients: true,
        ..RolePolicy::default()
    }
}

fn node_with(policy: RolePolicy) -> (Sim, usize) {
    let mut sim = Sim::new();
    let node = sim.add_with(config("node"), policy);
    sim.write(node, id(1), "text", "v1");
    (sim, node)
}

fn sync_frame(doc: DocumentId, data: Vec<u8>, from: &str) -> Vec<u8> {
    protocol::encode(&Message::Sync {
        sender_id: PeerId::new(from),
        target_id: PeerId::new("node"),
        document_id: doc,
        data,
    })
}

fn loads(sim: &Sim, node: usize) -> usize {
    sim.replicas[node].engine.stats().documents_loaded as usize
}

#[test]
fn a_client_that_may_not_write_is_refused_before_its_changes_are_read() {
    let (mut sim, node) = node_with(policy());
    let browser = sim.add("browser");
    let link = sim.connect_client(browser, node);
    sim.run();
    // Nothing of id(1) is in memory on the node yet: the refusal needs no load either.
    sim.restart(node);
    sim.run();
    let link = sim.connect_client(browser, node).max(link);
    sim.run();
    let loaded = loads(&sim, node);
    // 64 MiB of zeros, compressed: refused for who sent it, never inflated.
    sim.inject(
        link,
        1,
        sync_frame(id(1), compressed_zeros_message(64), "browser"),
    );
    let node_r = &sim.replicas[node];
    assert!(has_note(node_r, |n| matches!(
        n,
        Notification::ChangeRejected { reason, .. } if reason == "clients may not change documents"
    )));
    assert_eq!(loads(&sim, node), loaded, "nothing was loaded for it");
    assert!(sim.links[link].open, "the visitor stays connected");
    let told: Vec<String> = sim
        .queued(link, 1)
        .into_iter()
        .filter_map(|m| match m {
            Message::Error { message, .. } => Some(message),
            _ => None,
        })
        .collect();
    assert_eq!(
        told,
        vec![format!(
            "change to {} rejected: clients may not change documents",
            id(1)
        )]
    );
}

#[test]
fn a_writer_whose_changes_inflate_past_the_bounds_is_disconnected() {
    let (mut sim, node) = node_with(RolePolicy::default());
    let good = sim.add("good");
    let evil = sim.add("evil");
    let good_link = sim.connect_client(good, node);
    let evil_link = sim.connect_client(evil, node);
    sim.run();
    sim.open(good, id(1));
    sim.run();
    sim.inject(
        evil_link,
        1,
        sync_frame(id(1), compressed_zeros_message(1024), "evil"),
    );
    let closed = &sim.replicas[node].closed;
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert!(
        closed[0]
            .1
            .contains("a compressed change inflates the input to more than"),
        "{closed:?}"
    );
    assert!(!sim.links[evil_link].open);
    // The document and the other client are untouched.
    sim.write(node, id(1), "text", "v2");
    sim.run();
    assert!(sim.links[good_link].open);
    assert_eq!(sim.replicas[good].text(&id(1)).as_deref(), Some("\"v2\""));
}

#[test]
fn who_owns_a_document_is_read_from_what_is_stored() {
    let policy = RolePolicy {
        owned_key: Some("owner".into()),
        ..RolePolicy::default()
    };
    let (mut sim, node) = node_with(policy);
    let now = sim.now;
    sim.replicas[node]
        .engine
        .change(now, id(2), |doc| {
            let mut tx = doc.transaction();
            tx.put(ROOT, "owner", "node").unwrap();
            tx.commit();
        })
        .unwrap();
    sim.collect(node);
    let browser = sim.add("browser");
    sim.connect_client(browser, node);
    sim.run();
    sim.open(browser, id(2));
    sim.run();
    // The browser deletes the owner key in the same change as its edit: the node decides
    // on the stored document, so the change is refused all the same.
    let now = sim.now;
    sim.replicas[browser]
        .engine
        .change(now, id(2), |doc| {
            let mut tx = doc.transaction();
            tx.delete(ROOT, "owner").unwrap();
            tx.put(ROOT, "text", "mine now").unwrap();
            tx.commit();
        })
        .unwrap();
    sim.collect(browser);
    sim.run();
    assert!(has_note(&sim.replicas[node], |n| matches!(
        n,
        Notification::ChangeRejected { reason, .. } if reason.contains("is not the client's to change")
    )));
    assert_eq!(sim.replicas[node].text(&id(2)), None);
    // A document it creates is its own.
    sim.write(browser, id(3), "text", "new");
    sim.run();
    assert_eq!(sim.replicas[node].text(&id(3)).as_deref(), Some("\"new\""));
}

fn request_frame(doc: DocumentId, from: &str) -> Vec<u8> {
    let empty = Automerge::new();
    let mut state = automerge::sync::State::new();
    let data = automerge::sync::SyncDoc::generate_sync_message(&empty, &mut state)
        .map(|m| m.encode())
        .unwrap_or_default();
    protocol::encode(&Message::Request {
        sender_id: PeerId::new(from),
        target_id: PeerId::new("node"),
        document_id: doc,
        data,
    })
}

#[test]
fn made_up_ids_cost_a_bounded_amount_and_are_not_forwarded_for_visitors() {
    let policy = RolePolicy {
        client_limits: Some(PeerLimits {
            max_unknown_documents: 3,
            forward_requests: false,
            ..PeerLimits::default()
        }),
        ..RolePolicy::default()
    };
    let (mut sim, node) = node_with(policy);
    let partner = sim.add("partner");
    let browser = sim.add("browser");
    let partner_link = sim.connect_replicas(node, partner);
    let link = sim.connect_client(browser, node);
    sim.run();
    sim.links[partner_link].queues[0].clear();
    for n in 100..120u8 {
        sim.inject(link, 1, request_frame(id(n), "browser"));
    }
    // Every request is answered at once, nothing asked of the partner.
    let answered = sim
        .queued(link, 1)
        .into_iter()
        .filter(|m| matches!(m, Message::DocUnavailable { .. }))
        .count();
    assert_eq!(answered, 20);
    assert!(
        sim.queued(partner_link, 0)
            .iter()
            .all(|m| !matches!(m, Message::Request { .. })),
        "{:?}",
        sim.queued(partner_link, 0)
    );
    assert!(sim.links[link].open);
    // Nothing of them stays in memory to push real documents out.
    assert!(
        sim.replicas[node].engine.gauges().documents_in_memory <= 1,
        "{:?}",
        sim.replicas[node].engine.gauges()
    );
    // Still served what exists.
    sim.run();
    sim.open(browser, id(1));
    sim.run();
    assert_eq!(
        sim.replicas[browser].text(&id(1)).as_deref(),
        Some("\"v1\"")
    );
}

#[test]
fn a_peer_that_proved_who_it_is_takes_its_id_back_from_an_impostor() {
    let (mut sim, node) = node_with(RolePolicy {
        replicas_outrank_clients: true,
        ..RolePolicy::default()
    });
    let impostor = sim.add("impostor");
    let link = sim.connect(impostor, node, PeerRole::Replica, PeerRole::Client);
    sim.links[link].queues[0].clear();
    sim.inject(
        link,
        1,
        protocol::encode(&Message::Join {
            sender_id: PeerId::new("partner"),
            supported_protocol_versions: vec![PROTOCOL_V1.into()],
            peer_metadata: Some(PeerMetadata::default()),
        }),
    );
    assert!(sim.links[link].open);
    // The real partner (a replica here, as a verified partner is) connects with its id.
    let partner = sim.add("partner");
    let partner_link = sim.connect_replicas(partner, node);
    sim.run();
    assert!(sim.links[partner_link].open);
    assert!(!sim.links[link].open, "the impostor was closed");
    assert!(sim.replicas[node]
        .closed
        .iter()
        .any(|(_, why)| why == "peer id partner was claimed by a peer that proved who it is"));
    // The other way round, the impostor is refused.
    let late = sim.add("late");
    let late_link = sim.connect(late, node, PeerRole::Replica, PeerRole::Client);
    sim.links[late_link].queues[0].clear();
    sim.inject(
        late_link,
        1,
        protocol::encode(&Message::Join {
            sender_id: PeerId::new("partner"),
            supported_protocol_versions: vec![PROTOCOL_V1.into()],
            peer_metadata: None,
        }),
    );
    assert!(!sim.links[late_link].open);
    assert!(sim.links[partner_link].open);
}

fn ephemeral(sender: &str, session: &str, doc: DocumentId) -> Vec<u8> {
    protocol::encode(&Message::Ephemeral {
        sender_id: PeerId::new(sender),
        target_id: PeerId::new("node"),
        document_id: doc,
        session_id: session.into(),
        count: 1,
        data: vec![1],
    })
}

#[test]
fn presence_speaks_for_its_own_peer_about_shared_documents_within_a_bound() {
    let (mut sim, node) = node_with(RolePolicy::default());
    let a = sim.add("a");
    let b = sim.add("b");
    let link_a = sim.connect_client(a, node);
    let link_b = sim.connect_client(b, node);
    sim.run();
    sim.open(a, id(1));
    sim.open(b, id(1));
    sim.run();
    // About a document it does not share: nobody hears of it.
    sim.inject(link_a, 1, ephemeral("a", "s", id(9)));
    sim.run();
    assert!(!has_note(&sim.replicas[b], |n| matches!(
        n,
        Notification::Ephemeral { .. }
    )));
    // Many sessions: the node remembers a bounded number.
    for n in 0..5_000 {
        sim.inject(link_a, 1, ephemeral("a", &format!("s{n}"), id(1)));
    }
    assert!(sim.replicas[node].engine.ephemeral_sessions() <= 4_096);
    assert!(sim.links[link_b].open);
    // Speaking for someone else: nobody hears it.
    let heard = |sim: &Sim| {
        sim.replicas[b]
            .notes
            .iter()
            .filter(|n| matches!(n, Notification::Ephemeral { .. }))
            .count()
    };
    sim.run();
    let before = heard(&sim);
    sim.inject(link_a, 1, ephemeral("b", "spoofed", id(1)));
    sim.run();
    assert_eq!(heard(&sim), before);
    assert!(sim.links[link_a].open);
}

#[test]
fn sync_states_are_kept_only_for_peers_whose_storage_id_is_trusted() {
    let policy = RolePolicy {
        client_limits: Some(PeerLimits {
            keep_sync_states: false,
            ..PeerLimits::default()
        }),
        ..RolePolicy::default()
    };
    let (mut sim, node) = node_with(policy);
    for n in 0..3 {
        let browser = sim.add(&format!("browser-{n}"));
        let link = sim.connect_client(browser, node);
        sim.run();
        sim.open(browser, id(1));
        sim.run();
        sim.close_link(link);
        sim.run();
    }
    assert!(sim.replicas[node].storage.sync_states.is_empty());
}

/// `n` bytes that do not compress.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

fn put_blob(sim: &mut Sim, r: usize, key: &'static str, blob: Vec<u8>) -> Result<(), EngineError> {
    let now = sim.now;
    let result = sim.replicas[r].engine.change(now, id(1), move |doc| {
        let mut tx = doc.transaction();
        tx.put(ROOT, key, blob).unwrap();
        tx.commit();
    });
    sim.collect(r);
    result
}

fn rejected(sim: &Sim, node: usize) -> Vec<String> {
    sim.replicas[node]
        .notes
        .iter()
        .filter_map(|n| match n {
            Notification::ChangeRejected { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_document_may_not_outgrow_its_limit() {
    let mut cfg = config("node");
    cfg.max_document_bytes = Some(64 * 1024);
    let mut sim = Sim::new();
    let node = sim.add_with(cfg.clone(), RolePolicy::default());
    let browser = sim.add("browser");
    sim.connect_client(browser, node);
    sim.run();
    sim.write(browser, id(1), "text", "small");
    sim.run();
    // A change larger than any document may be: refused before it is applied.
    put_blob(&mut sim, browser, "huge", noise(100 * 1024, 1)).unwrap();
    sim.run();
    assert_eq!(
        rejected(&sim, node),
        vec!["the change is 101 KiB, more than a whole document may be (64 KiB)".to_owned()]
    );
    assert_eq!(
        sim.replicas[node].text(&id(1)).as_deref(),
        Some("\"small\"")
    );

    // Changes that fit, until the document would not.
    let mut sim = Sim::new();
    let node = sim.add_with(cfg, RolePolicy::default());
    let browser = sim.add("browser");
    sim.connect_client(browser, node);
    sim.run();
    sim.write(browser, id(1), "text", "small");
    sim.run();
    put_blob(&mut sim, browser, "first", noise(40 * 1024, 2)).unwrap();
    sim.run();
    assert!(rejected(&sim, node).is_empty());
    put_blob(&mut sim, browser, "second", noise(40 * 1024, 3)).unwrap();
    sim.run();
    let reasons = rejected(&sim, node);
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].starts_with("the document would be")
            && reasons[0].ends_with("over the limit of 64 KiB for one document"),
        "{reasons:?}"
    );
    let stored = sim.replicas[node].engine.document(&id(1)).unwrap();
    assert!(automerge::ReadDoc::get(stored, ROOT, "second")
        .unwrap()
        .is_none());
    // The host's own change: refused and undone.
    let refused = put_blob(&mut sim, node, "third", noise(40 * 1024, 4));
    assert!(
        matches!(refused, Err(EngineError::TooLarge(_))),
        "{refused:?}"
    );
    let stored = sim.replicas[node].engine.document(&id(1)).unwrap();
    assert!(automerge::ReadDoc::get(stored, ROOT, "third")
        .unwrap()
        .is_none());
}

#[test]
fn an_erased_document_is_deleted_and_never_taken_in_or_served_again() {
    let (mut sim, node) = node_with(RolePolicy::default());
    let browser = sim.add("browser");
    let link = sim.connect_client(browser, node);
    sim.run();
    sim.open(browser, id(1));
    sim.run();
    let now = sim.now;
    sim.replicas[node].engine.erase(now, id(1));
    sim.collect(node);
    assert!(!sim.replicas[node].storage.chunks.contains_key(&id(1)));
    assert!(sim.replicas[node].engine.is_erased(&id(1)));
    // The browser's copy offers it again: refused, not stored.
    sim.write(browser, id(1), "text", "again");
    sim.run();
    assert!(!sim.replicas[node].storage.chunks.contains_key(&id(1)));
    assert!(sim.links[link].open);
    // A fresh client asking for it hears it is unavailable.
    let other = sim.add("other");
    sim.connect_client(other, node);
    sim.run();
    sim.open(other, id(1));
    sim.run();
    assert!(has_note(&sim.replicas[other], |n| matches!(
        n,
        Notification::DocumentUnavailable { document } if *document == id(1)
    )));
    let now = sim.now;
    assert!(matches!(
        sim.replicas[node].engine.change(now, id(1), |_| ()),
        Err(EngineError::Erased(_))
    ));
}
