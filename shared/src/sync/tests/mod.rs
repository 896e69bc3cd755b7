mod errors;
mod fresh;
mod limits;
mod pacing;
mod props;
mod sim;
mod together;

use automerge::{transaction::Transactable, ReadDoc, ROOT};

use crate::protocol::{Message, PeerId};
use crate::sync::*;
use crate::DocumentId;
use sim::*;

fn id(n: u8) -> DocumentId {
    DocumentId::from_bytes([n; 16])
}

fn has_note(r: &Replica, f: impl Fn(&Notification) -> bool) -> bool {
    r.notes.iter().any(f)
}

#[test]
fn a_document_written_on_one_node_reaches_its_replica() {
    let mut sim = Sim::new();
    let a = sim.add("a");
    let b = sim.add("b");
    sim.write(a, id(1), "text", "hello");
    sim.connect_replicas(a, b);
    sim.run();
    assert_eq!(sim.replicas[b].text(&id(1)).as_deref(), Some("\"hello\""));
    // Stored on b before anyone was told.
    assert!(sim.replicas[b].storage.chunks.contains_key(&id(1)));

    // Live changes flow both ways after the bulk sync.
    sim.write(b, id(1), "text", "bonjour");
    sim.run();
    assert_eq!(sim.replicas[a].text(&id(1)), sim.replicas[b].text(&id(1)));
    assert_eq!(sim.replicas[a].heads(&id(1)), sim.replicas[b].heads(&id(1)));
}

#[test]
fn a_client_gets_only_what_it_asks_for() {
    let mut sim = Sim::new();
    let node = sim.add("node");
    let browser = sim.add("browser");
    sim.write(node, id(1), "text", "one");
    sim.write(node, id(2), "text", "two");
    sim.connect_client(browser, node);
    sim.run();
    assert!(sim.replicas[browser].engine.document(&id(1)).is_none());

    sim.open(browser, id(2));
    sim.run();
    assert_eq!(
        sim.replicas[browser].text(&id(2)).as_deref(),
        Some("\"two\"")
    );
    assert!(sim.replicas[browser].engine.document(&id(1)).is_none());
    assert!(has_note(&sim.replicas[browser], |n| matches!(
        n,
        Notification::DocumentReady { document } if *document == id(2)
    )));

    // The node pushes later changes to the browser that has the document.
    sim.write(node, id(2), "text", "deux");
    sim.run();
    assert_eq!(
        sim.replicas[browser].text(&id(2)).as_deref(),
        Some("\"deux\"")
    );
}

#[test]
fn a_browser_edit_travels_browser_node_node_browser() {
    let mut sim = Sim::new();
    let alice = sim.add("alice");
    let node_a = sim.add("node-a");
    let node_b = sim.add("node-b");
    let bob = sim.add("bob");
    sim.connect_client(alice, node_a);
    sim.connect_replicas(node_a, node_b);
    sim.connect_client(bob, node_b);
    sim.run();

    sim.write(alice, id(7), "text", "from alice");
    sim.run();
    // Bob asks his node, which has it from node A by now.
    sim.open(bob, id(7));
    sim.run();
    assert_eq!(
        sim.replicas[bob].text(&id(7)).as_deref(),
        Some("\"from alice\"")
    );

    // And live edits keep flowing along the chain, both ways.
    sim.write(bob, id(7), "reply", "from bob");
    sim.write(alice, id(7), "text", "edited by alice");
    sim.run();
    assert_eq!(
        sim.replicas[alice].heads(&id(7)),
        sim.replicas[bob].heads(&id(7))
    );
    let doc = sim.replicas[alice].engine.document(&id(7)).unwrap();
    assert!(doc.get(ROOT, "reply").unwrap().is_some());
}

#[test]
fn a_request_is_forwarded_along_a_chain_and_answered() {
    // alice -> node A -> node B, and the document only exists on node B, which A has not
    // seen yet because it was created after their bulk sync settled... and not announced
    // because B treats A as a client.
    let mut sim = Sim::new();
    let alice = sim.add("alice");
    let node_a = sim.add("node-a");
    let node_b = sim.add("node-b");
    sim.connect_client(alice, node_a);
    sim.connect(node_a, node_b, PeerRole::Replica, PeerRole::Client);
    sim.run();
    sim.write(node_b, id(3), "text", "only on b");
    sim.run();
    assert!(sim.replicas[node_a].engine.document(&id(3)).is_none());

    sim.open(alice, id(3));
    sim.run();
    assert_eq!(
        sim.replicas[alice].text(&id(3)).as_deref(),
        Some("\"only on b\"")
    );
    // Node A kept a copy on the way.
    assert!(sim.replicas[node_a].storage.chunks.contains_key(&id(3)));
}

#[test]
fn a_missing_document_is_unavailable_then_delivered_when_it_appears() {
    let mut sim = Sim::new();
    let alice = sim.add("alice");
    let node_a = sim.add("node-a");
    let node_b = sim.add("node-b");
    let node_c = sim.add("node-c");
    sim.connect_client(alice, node_a);
    // A triangle of replicas: requests must not loop.
    sim.connect_replicas(node_a, node_b);
    sim.connect_replicas(node_b, node_c);
    sim.connect_replicas(node_c, node_a);
    sim.run();

    sim.open(alice, id(9));
    sim.run();
    assert!(has_note(&sim.replicas[alice], |n| matches!(
        n,
        Notification::DocumentUnavailable { document } if *document == id(9)
    )));
    let frames_before = sim.traffic.len();
    sim.run();
    assert_eq!(
        sim.traffic.len(),
        frames_before,
        "requests must not keep circulating"
    );

    // Later, someone on node C creates it: Alice, who asked, gets it.
    sim.write(node_c, id(9), "text", "late");
    sim.run();
    assert_eq!(
        sim.replicas[alice].text(&id(9)).as_deref(),
        Some("\"late\"")
    );
}

#[test]
fn an_unanswered_request_times_out() {
    let mut sim = Sim::new();
    let alice = sim.add("alice");
    let node = sim.add("node");
    let link = sim.connect_client(alice, node);
    sim.run();
    sim.open(alice, id(4));
    // The node never answers (its frames are withheld).
    assert!(sim.deliver(link, 0));
    sim.links[link].queues[1].clear();
    sim.advance(9_000);
    assert!(!has_note(&sim.replicas[alice], |n| matches!(
        n,
        Notification::DocumentUnavailable { .. }
    )));
    sim.advance(2_000);
    assert!(has_note(&sim.replicas[alice], |n| matches!(
        n,
        Notification::DocumentUnavailable { document } if *document == id(4)
    )));
}

#[test]
fn concurrent_edits_merge() {
    let mut sim = Sim::new();
    let a = sim.add("a");
    let b = sim.add("b");
    sim.write(a, id(1), "text", "base");
    let link = sim.connect_replicas(a, b);
    sim.run();
    sim.close_link(link);
    sim.write(a, id(1), "left", "from a");
    sim.write(b, id(1), "right", "from b");
    sim.connect_replicas(a, b);
    sim.run();
    for r in [a, b] {
        let doc = sim.replicas[r].engine.document(&id(1)).unwrap();
        assert!(doc.get(ROOT, "left").unwrap().is_some());
        assert!(doc.get(ROOT, "right").unwrap().is_some());
    }
    assert_eq!(sim.replicas[a].heads(&id(1)), sim.replicas[b].heads(&id(1)));
}

#[test]
fn a_restarted_node_serves_what_it_stored() {
    let mut sim = Sim::new();
    let a = sim.add("a");
    let b = sim.add("b");
    sim.write(a, id(1), "text", "durable");
    sim.connect_replicas(a, b);
    sim.run();
    sim.restart(b);
    let c = sim.add("c");
    sim.connect_client(c, b);
    sim.open(c, id(1));
    sim.run();
    assert_eq!(sim.replicas[c].text(&id(1)).as_deref(), Some("\"durable\""));
}

#[test]
fn a_saved_sync_state_makes_a_reconnect_cheap() {
    let mut sim = Sim::new();
    let node = sim.add("node");
    let browser = sim.add("browser");
    // A document with a long history.
    for i in 0..300 {
        sim.write(node, id(1), "text", &format!("version {i}"));
    }
    let link = sim.connect_client(browser, node);
    sim.open(browser, id(1));
    sim.run();
    sim.close_link(link);
    sim.write(node, id(1), "text", "one more edit");

    // Reconnect: the browser offers its documents; the node has the saved state.
    let before = sim.traffic.len();
    sim.connect_client(browser, node);
    sim.run();
    let frames: Vec<usize> = sim.traffic[before..].iter().map(|t| t.2).collect();
    let bytes: usize = frames.iter().sum();
    assert_eq!(
        sim.replicas[browser].text(&id(1)).as_deref(),
        Some("\"one more edit\"")
    );
    // join + peer + one round trip of sync messages, carrying one change.
    assert!(
        bytes < 1024,
        "reconnect cost {bytes} bytes in {} frames",
        frames.len()
    );

    // Without saved states (fresh storage ids) the same reconnect sends a Bloom filter of
    // the whole history and costs more.
    let mut sim2 = Sim::new();
    let node2 = sim2.add("node");
    let browser2 = sim2.add("browser");
    for i in 0..300 {
        sim2.write(node2, id(1), "text", &format!("version {i}"));
    }
    let link2 = sim2.connect_client(browser2, node2);
    sim2.open(browser2, id(1));
    sim2.run();
    sim2.close_link(link2);
    sim2.replicas[node2].storage.sync_states.clear();
    sim2.restart(node2);
    sim2.open(node2, id(1));
    sim2.run();
    sim2.write(node2, id(1), "text", "one more edit");
    let before2 = sim2.traffic.len();
    sim2.connect_client(browser2, node2);
    sim2.run();
    let bytes2: usize = sim2.traffic[before2..].iter().map(|t| t.2).sum();
    assert!(
        bytes2 > bytes,
        "without saved state: {bytes2}, with: {bytes}"
    );
}

#[test]
fn bulk_sync_is_windowed_and_reports_progress() {
    let mut sim = Sim::new();
    let mut cfg = config("browser");
    cfg.sync_window = 8;
    let browser = sim.add_with(cfg, RolePolicy::default());
    let node = sim.add("node");
    for n in 0..100u8 {
        sim.write(browser, id(n), "text", &format!("doc {n}"));
    }
    let link = sim.connect_client(browser, node);
    // Deliver the join/peer exchange, then count what the browser queued at once.
    assert!(sim.deliver(link, 0));
    assert!(sim.deliver(link, 1));
    let offered = sim
        .queued(link, 0)
        .iter()
        .filter(|m| matches!(m, Message::Sync { .. }))
        .count();
    assert_eq!(offered, 8, "only a window of documents is in flight");
    sim.run();
    let progress: Vec<(usize, usize)> = sim.replicas[browser]
        .notes
        .iter()
        .filter_map(|n| match n {
            Notification::SyncProgress { done, total, .. } => Some((*done, *total)),
            _ => None,
        })
        .collect();
    assert_eq!(progress.first(), Some(&(0, 100)));
    assert_eq!(progress.last(), Some(&(100, 100)));
    assert!(progress.windows(2).all(|w| w[1].0 == w[0].0 + 1));
    for n in 0..100u8 {
        assert!(sim.replicas[node].storage.chunks.contains_key(&id(n)));
    }
}

#[test]
fn idle_documents_are_evicted_and_reload_on_demand() {
    let mut sim = Sim::new();
    let mut cfg = config("node");
    cfg.evict_idle_after = Some(5_000);
    let node = sim.add_with(cfg, RolePolicy::default());
    let browser = sim.add("browser");
    sim.write(node, id(1), "text", "v1");
    sim.connect_client(browser, node);
    sim.open(browser, id(1));
    sim.run();
    sim.advance(6_000);
    assert_eq!(sim.replicas[node].engine.gauges().documents_in_memory, 0);

    // A change from the browser loads it again and is applied on top of what was stored.
    sim.write(browser, id(1), "text", "v2");
    sim.run();
    assert_eq!(sim.replicas[node].text(&id(1)).as_deref(), Some("\"v2\""));
    assert_eq!(
        sim.replicas[node].heads(&id(1)),
        sim.replicas[browser].heads(&id(1))
    );

    // ... and after another eviction, a change on the node reaches the browser, whose
    // interest survived the eviction.
    sim.advance(6_000);
    assert_eq!(sim.replicas[node].engine.gauges().documents_in_memory, 0);
    sim.open(node, id(1));
    sim.run();
    sim.write(node, id(1), "text", "v3");
    sim.run();
    assert_eq!(
        sim.replicas[browser].text(&id(1)).as_deref(),
        Some("\"v3\"")
    );
}

#[test]
fn compaction_replaces_increments_with_a_snapshot() {
    let mut sim = Sim::new();
    let mut cfg = config("node");
    cfg.compact_after_chunks = 10;
    let node = sim.add_with(cfg, RolePolicy::default());
    for i in 0..25 {
        sim.write(node, id(1), "text", &format!("edit {i}"));
    }
    // Each change is stored as it comes (a snapshot would hold up its relay) ...
    assert_eq!(sim.replicas[node].storage.chunks[&id(1)].len(), 25);
    // ... and the next tick replaces the increments with one snapshot.
    sim.advance(1_000);
    let chunks = &sim.replicas[node].storage.chunks[&id(1)];
    assert_eq!(chunks.len(), 1);
    for i in 25..30 {
        sim.write(node, id(1), "text", &format!("edit {i}"));
    }
    sim.advance(1_000);
    let chunks = &sim.replicas[node].storage.chunks[&id(1)];
    assert_eq!(
        chunks.len(),
        6,
        "five increments are not due for a snapshot yet"
    );
    // What is stored loads to the same document.
    let mut bytes = Vec::new();
    for c in chunks {
        bytes.extend(c);
    }
    let loaded = automerge::Automerge::load(&bytes).unwrap();
    assert_eq!(loaded.get_heads(), sim.replicas[node].heads(&id(1)));
}

#[test]
fn ephemeral_messages_reach_every_peer_sharing_the_document_once() {
    let mut sim = Sim::new();
    let alice = sim.add("alice");
    let node_a = sim.add("node-a");
    let node_b = sim.add("node-b");
    let bob = sim.add("bob");
    let carol = sim.add("carol");
    sim.write(node_a, id(5), "text", "shared");
    sim.connect_client(alice, node_a);
    sim.connect_replicas(node_a, node_b);
    sim.connect_client(bob, node_b);
    sim.connect_client(carol, node_b);
    sim.run();
    for r in [alice, bob] {
        sim.open(r, id(5));
    }
    sim.run();

    sim.replicas[alice]
        .engine
        .send_ephemeral(id(5), b"alice is editing".to_vec());
    sim.collect(alice);
    sim.run();
    let got = |r: &Replica| {
        r.notes
            .iter()
            .filter(|n| matches!(n, Notification::Ephemeral { data, .. } if data == b"alice is editing"))
            .count()
    };
    assert_eq!(got(&sim.replicas[node_a]), 1);
    assert_eq!(got(&sim.replicas[node_b]), 1);
    assert_eq!(got(&sim.replicas[bob]), 1);
    assert_eq!(
        got(&sim.replicas[carol]),
        0,
        "carol does not share the document"
    );
    assert_eq!(got(&sim.replicas[alice]), 0, "no echo to the sender");
}

#[test]
fn duplicate_ephemeral_messages_are_dropped() {
    let mut sim = Sim::new();
    let node = sim.add("node");
    let alice = sim.add("alice");
    let bob = sim.add("bob");
    sim.write(node, id(5), "text", "shared");
    let link = sim.connect_client(alice, node);
    sim.connect_client(bob, node);
    sim.run();
    sim.open(alice, id(5));
    sim.open(bob, id(5));
    sim.run();
    let frame = |count: u64| {
        crate::protocol::encode(&Message::Ephemeral {
            sender_id: PeerId::new("alice"),
            target_id: PeerId::new("node"),
            document_id: id(5),
            session_id: "s".into(),
            count,
            data: vec![count as u8],
        })
    };
    for count in [1, 2, 2, 1, 3] {
        sim.inject(link, 1, frame(count));
    }
    sim.run();
    let seen: Vec<u8> = sim.replicas[bob]
        .notes
        .iter()
        .filter_map(|n| match n {
            Notification::Ephemeral { data, .. } => Some(data[0]),
            _ => None,
        })
        .collect();
    assert_eq!(seen, vec![1, 2, 3]);
}

#[test]
fn unreadable_documents_are_not_shared() {
    let mut sim = Sim::new();
    let node = sim.add("node");
    let partner = sim.add("partner");
    sim.write(node, id(1), "text", "public");
    sim.write(node, id(2), "secret", "draft");
    sim.connect_replicas(node, partner);
    sim.run();
    assert!(sim.replicas[partner].engine.document(&id(1)).is_some());
    assert!(!sim.replicas[partner].storage.chunks.contains_key(&id(2)));

    // Asking for it explicitly gets doc-unavailable, not the document.
    let browser = sim.add("browser");
    sim.connect_client(browser, node);
    sim.open(browser, id(2));
    sim.run();
    assert!(sim.replicas[browser].engine.document(&id(2)).is_none());
    assert!(has_note(&sim.replicas[browser], |n| matches!(
        n,
        Notification::DocumentUnavailable { document } if *document == id(2)
    )));
}

#[test]
fn a_rejected_change_is_neither_stored_nor_relayed_and_the_sender_hears_why() {
    rejected_change(false);
}

#[test]
fn a_change_refused_after_applying_in_place_is_undone_and_the_document_keeps_working() {
    rejected_change(true);
}

fn rejected_change(in_place: bool) {
    let mut sim = Sim::new();
    let node = sim.add_with(
        config("node"),
        RolePolicy {
            forbidden_key: Some("published".into()),
            in_place,
            ..RolePolicy::default()
        },
    );
    let alice = sim.add("alice");
    let bob = sim.add("bob");
    sim.write(node, id(1), "text", "draft");
    let alice_link = sim.connect_client(alice, node);
    sim.connect_client(bob, node);
    sim.run();
    sim.open(alice, id(1));
    sim.open(bob, id(1));
    sim.run();
    let stored_before = sim.replicas[node].storage.chunks[&id(1)].clone();

    sim.write(alice, id(1), "published", "yes");
    // Deliver alice's change to the node and look at the node's answer before it arrives.
    // Her first message may carry only her heads (the change's hash can be a false positive
    // in the node's Bloom filter, about 1 in 100), so let the node ask for it if need be.
    let refused = |m: &Message| {
        matches!(
            m,
            Message::Error { message, .. } if message.contains("rejected") && message.contains("`published` may not be set")
        )
    };
    let mut answered = false;
    for _ in 0..5 {
        while sim.deliver(alice_link, 0) {}
        if sim.queued(alice_link, 1).iter().any(refused) {
            answered = true;
            break;
        }
        while sim.deliver(alice_link, 1) {}
    }
    assert!(answered, "the node answers a refused change with an error");
    sim.run();
    assert_eq!(sim.replicas[node].storage.chunks[&id(1)], stored_before);
    let node_doc = sim.replicas[node].engine.document(&id(1)).unwrap();
    assert!(node_doc.get(ROOT, "published").unwrap().is_none());
    let bob_doc = sim.replicas[bob].engine.document(&id(1)).unwrap();
    assert!(bob_doc.get(ROOT, "published").unwrap().is_none());
    // The document itself still takes accepted changes, and they travel.
    sim.write(bob, id(1), "text", "reviewed draft");
    sim.run();
    assert_eq!(
        sim.replicas[node].text(&id(1)).as_deref(),
        Some("\"reviewed draft\"")
    );
    assert!(
        sim.links[alice_link].open,
        "a rejected change is not a protocol violation"
    );
    assert_eq!(sim.replicas[node].engine.stats().changes_rejected, 1);

    // Alice's app heard why.
    assert!(has_note(&sim.replicas[alice], |n| matches!(
        n,
        Notification::PeerError { message, .. } if message.contains("may not be set")
    )));
    // Her later edits to that document build on the refused change, so the node cannot take
    // them either (her app must drop its branch and reload), and it stops syncing that
    // document with her rather than refuse it again at every message; the connection itself
    // keeps working for everything else.
    assert_eq!(sim.replicas[node].engine.stats().changes_rejected, 1);
    sim.write(alice, id(2), "text", "another practice");
    sim.run();
    sim.open(bob, id(2));
    sim.run();
    assert_eq!(
        sim.replicas[bob].text(&id(2)).as_deref(),
        Some("\"another practice\"")
    );
}

#[test]
fn corrupt_stored_data_is_reported_and_left_alone() {
    let mut sim = Sim::new();
    let node = sim.add("node");
    sim.replicas[node]
        .storage
        .chunks
        .insert(id(1), vec![b"not an automerge document".to_vec()]);
    sim.restart(node);
    let browser = sim.add("browser");
    sim.connect_client(browser, node);
    sim.open(browser, id(1));
    sim.run();
    assert!(has_note(&sim.replicas[node], |n| matches!(
        n,
        Notification::DocumentCorrupt { document, .. } if *document == id(1)
    )));
    assert!(has_note(&sim.replicas[browser], |n| matches!(
        n,
        Notification::DocumentUnavailable { document } if *document == id(1)
    )));
    assert_eq!(
        sim.replicas[node].storage.chunks[&id(1)],
        vec![b"not an automerge document".to_vec()]
    );
    let result = sim.replicas[node].engine.change(sim.now, id(1), |doc| {
        doc.transact::<_, _, automerge::AutomergeError>(|tx| tx.put(ROOT, "x", 1))
            .ok();
    });
    assert_eq!(result, Err(EngineError::Corrupt(id(1))));
}

#[test]
fn the_same_peer_reconnecting_replaces_its_old_connection() {
    let mut sim = Sim::new();
    let node = sim.add("node");
    let browser = sim.add("browser");
    let first = sim.connect_client(browser, node);
    sim.run();
    let second = sim.connect_client(browser, node);
    sim.run();
    assert!(!sim.links[first].open);
    assert!(sim.links[second].open);
    assert_eq!(sim.replicas[node].engine.gauges().ready_peers, 1);
}

#[test]
fn a_burst_of_changes_costs_one_sync_message_per_peer() {
    let mut sim = Sim::new();
    let node = sim.add("node");
    let writers: Vec<usize> = (0..3).map(|i| sim.add(&format!("writer-{i}"))).collect();
    let observer = sim.add("observer");
    let links: Vec<usize> = writers
        .iter()
        .map(|w| sim.connect_client(*w, node))
        .collect();
    let watch = sim.connect_client(observer, node);
    sim.run();
    sim.write(writers[0], id(9), "title", "first");
    sim.run();
    for r in writers[1..].iter().chain([&observer]) {
        sim.open(*r, id(9));
    }
    sim.run();

    // Every writer changes the document; the node takes all three changes as one burst
    // (as its host does with whatever is queued) before it is asked for outputs.
    for (i, w) in writers.iter().enumerate() {
        sim.write(*w, id(9), "title", &format!("by writer {i}"));
    }
    let now = sim.now;
    for l in &links {
        let side = usize::from(sim.links[*l].ends[0].0 == node);
        let conn = sim.links[*l].ends[1 - side].1;
        while let Some(frame) = sim.links[*l].queues[side].pop_front() {
            sim.replicas[node]
                .engine
                .handle(now, Input::Frame { conn, frame });
        }
    }
    sim.collect(node);
    let node_side = usize::from(sim.links[watch].ends[0].0 != node);
    let syncs = sim
        .queued(watch, node_side)
        .into_iter()
        .filter(|m| matches!(m, Message::Sync { .. }))
        .count();
    assert_eq!(syncs, 1, "one message carries the three changes");
    sim.run();
    assert_eq!(
        sim.replicas[observer].heads(&id(9)),
        sim.replicas[node].heads(&id(9))
    );
    assert_eq!(
        sim.replicas[node].heads(&id(9)).len(),
        3,
        "three concurrent heads"
    );
}

#[test]
fn a_memory_budget_keeps_few_documents_loaded_and_everything_reachable() {
    let mut sim = Sim::new();
    let mut cfg = config("node");
    cfg.max_loaded_documents = Some(4);
    cfg.sync_window = 2;
    let node = sim.add_with(cfg, RolePolicy::default());
    for n in 0..20 {
        sim.write(node, id(n), "text", &format!("practice {n}"));
    }
    assert!(sim.replicas[node].engine.gauges().documents_in_memory <= 4);

    // A new replica's bulk sync loads every document in turn; the budget still holds.
    let replica = sim.add("replica");
    sim.connect_replicas(replica, node);
    sim.run();
    assert!(sim.replicas[node].engine.gauges().documents_in_memory <= 4);
    for n in 0..20 {
        assert_eq!(
            sim.replicas[replica].text(&id(n)),
            Some(format!("\"practice {n}\"")),
            "document {n}"
        );
    }
    // An evicted document still takes changes and relays them.
    sim.write(replica, id(0), "text", "edited");
    sim.run();
    assert_eq!(
        sim.replicas[node].heads(&id(0)),
        sim.replicas[replica].heads(&id(0))
    );
}

#[test]
fn a_relayed_change_is_made_for_one_peer_at_a_time_and_none_is_lost_if_the_host_stops_early() {
    let mut sim = Sim::new();
    let node = sim.add("node");
    let mut readers = Vec::new();
    for i in 0..5 {
        let r = sim.add(&format!("reader-{i}"));
        sim.connect_client(r, node);
        readers.push(r);
    }
    let writer = sim.add("writer");
    let writer_link = sim.connect_client(writer, node);
    sim.write(writer, id(8), "text", "first");
    sim.run();
    for &r in &readers {
        sim.open(r, id(8));
    }
    sim.run();

    sim.write(writer, id(8), "text", "third");
    let frame = sim.links[writer_link].queues[0]
        .pop_front()
        .expect("the writer sends its change");
    let (_, conn) = sim.links[writer_link].ends[1];
    let engine = &mut sim.replicas[node].engine;
    engine.handle(sim.now, Input::Frame { conn, frame });
    let sent_before = engine.stats().sync_messages_out;

    // The host takes outputs until the first sync message, then stops.
    let mut taken = Vec::new();
    for output in engine.drain_outputs() {
        let is_send = matches!(output, Output::Send { .. });
        taken.push(output);
        if is_send {
            break;
        }
    }
    assert_eq!(
        engine.stats().sync_messages_out - sent_before,
        1,
        "only the message taken was made"
    );
    // What it did not take is made the next time, one message per reader (and the
    // writer's acknowledgement).
    taken.extend(engine.drain_outputs());
    let mut to: Vec<ConnectionId> = taken
        .iter()
        .filter_map(|o| match o {
            Output::Send { conn, .. } => Some(*conn),
            _ => None,
        })
        .collect();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), readers.len() + 1, "every reader and the writer");
    assert!(engine.drain_outputs().next().is_none());

    // Carried out, they bring every reader the change.
    for output in taken {
        if let Output::Send { conn, frame } = output {
            let (l, side) = sim
                .link_of(node, conn)
                .expect("a link for every connection");
            sim.links[l].queues[side].push_back(frame);
        }
    }
    sim.run();
    for &r in &readers {
        assert_eq!(sim.replicas[r].text(&id(8)).as_deref(), Some("\"third\""));
    }
}

#[test]
fn thousands_of_documents_requested_at_once_are_not_scanned_for_eviction_at_every_output() {
    let mut sim = Sim::new();
    let node = sim.add("node");
    for n in 0..250 {
        sim.write(node, id(n), "text", &format!("practice {n}"));
    }
    let mut cfg = config("browser");
    cfg.max_loaded_documents = Some(50);
    let browser = sim.add_with(cfg, RolePolicy::default());
    sim.connect_client(browser, node);
    sim.run();
    // A fresh browser opens every practice its catalogue lists; each is closed once the
    // host has read it, as the app does.
    for n in 0..250 {
        sim.open(browser, id(n));
    }
    for n in 0..250 {
        sim.replicas[browser].engine.close(&id(n));
    }
    sim.run();
    sim.advance(1_000);
    sim.run();
    let engine = &sim.replicas[browser].engine;
    for n in [0, 124, 249] {
        assert!(engine.is_stored(&id(n)), "document {n} is stored");
    }
    assert!(engine.gauges().documents_in_memory <= 50);
    // Two hundred and fifty answers came in, each taken out of the engine: a scan of everything
    // in memory at each would be quadratic in the catalogue.
    let scans = engine.stats().memory_budget_scans;
    assert!(scans <= 60, "{scans} scans for 250 documents");
}
