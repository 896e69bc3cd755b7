//! Fresh peers answered from stored snapshots (`sync::stored_answer`).

use automerge::{ReadDoc, ROOT};

use super::id;
use super::sim::*;

/// A node whose peers may read anything, so what it stores may be served unread.
fn trusting_node(sim: &mut Sim) -> usize {
    sim.add_with(
        config("node"),
        RolePolicy {
            read_any: true,
            ..RolePolicy::default()
        },
    )
}

/// A trusting node holding one document written once (stored as a single snapshot),
/// restarted so it is not in memory.
fn node_with_a_stored_snapshot(sim: &mut Sim) -> usize {
    let node = trusting_node(sim);
    sim.write(node, id(1), "text", "welcome desks");
    assert_eq!(sim.replicas[node].storage.chunks[&id(1)].len(), 1);
    sim.restart(node);
    node
}

/// A new browser that connects to `node` and fetches document 1.
fn fresh_browser(sim: &mut Sim, name: &str, node: usize) -> usize {
    let browser = sim.add(name);
    sim.connect_client(browser, node);
    sim.open(browser, id(1));
    sim.run();
    browser
}

#[test]
fn fresh_peers_get_the_stored_snapshot_without_a_load() {
    let mut sim = Sim::new();
    let node = node_with_a_stored_snapshot(&mut sim);
    let heads = {
        let chunks = &sim.replicas[node].storage.chunks[&id(1)];
        automerge::Automerge::load(&chunks[0]).unwrap().get_heads()
    };
    // Two browsers ask while the node reads storage once.
    let browsers = [sim.add("browser-1"), sim.add("browser-2")];
    for b in browsers {
        sim.connect_client(b, node);
        sim.open(b, id(1));
    }
    sim.run();
    for b in browsers {
        assert_eq!(
            sim.replicas[b].text(&id(1)).as_deref(),
            Some("\"welcome desks\"")
        );
        assert_eq!(sim.replicas[b].heads(&id(1)), heads);
    }
    let stats = sim.replicas[node].engine.stats().clone();
    assert_eq!(stats.snapshots_served, 2);
    // Neither the answers nor the browsers' acknowledgements loaded the document.
    assert_eq!(stats.documents_loaded, 0);
    assert_eq!(sim.replicas[node].engine.gauges().documents_in_memory, 0);

    // A browser's edit loads it, is stored, and reaches the other browser.
    sim.write(browsers[0], id(1), "text", "one-stop desks");
    sim.run();
    assert_eq!(sim.replicas[node].engine.stats().documents_loaded, 1);
    assert_eq!(
        sim.replicas[browsers[1]].text(&id(1)).as_deref(),
        Some("\"one-stop desks\"")
    );
    assert_eq!(
        sim.replicas[node].heads(&id(1)),
        sim.replicas[browsers[0]].heads(&id(1))
    );
    sim.restart(node);
    let late = fresh_browser(&mut sim, "browser-3", node);
    assert_eq!(
        sim.replicas[late].text(&id(1)).as_deref(),
        Some("\"one-stop desks\"")
    );
}

#[test]
fn a_change_made_while_the_answer_travels_reaches_the_node() {
    let mut sim = Sim::new();
    let node = node_with_a_stored_snapshot(&mut sim);
    let browser = sim.add("browser");
    sim.connect_client(browser, node);
    sim.open(browser, id(1));
    // Deliver only the request and the node's answer, so the browser has the document.
    sim.run();
    assert_eq!(sim.replicas[node].engine.stats().snapshots_served, 1);
    // The browser edits; the node, still without the document in memory, hears of a head
    // it lacks, loads, and takes the change.
    sim.write(browser, id(1), "country", "FR");
    sim.run();
    let doc = sim.replicas[node].engine.document(&id(1)).unwrap();
    assert_eq!(
        doc.get(ROOT, "country")
            .unwrap()
            .map(|(v, _)| v.to_string()),
        Some("\"FR\"".into())
    );
}

#[test]
fn a_snapshot_with_increments_is_served_unloaded_too() {
    let mut sim = Sim::new();
    let node = trusting_node(&mut sim);
    sim.write(node, id(1), "text", "v1");
    sim.write(node, id(1), "city", "Lyon");
    sim.write(node, id(1), "text", "v2");
    assert_eq!(sim.replicas[node].storage.chunks[&id(1)].len(), 3);
    let heads = sim.replicas[node].heads(&id(1));
    sim.restart(node);
    let browser = fresh_browser(&mut sim, "browser", node);
    assert_eq!(
        sim.replicas[browser].text(&id(1)).as_deref(),
        Some("\"v2\"")
    );
    assert_eq!(sim.replicas[browser].heads(&id(1)), heads);
    let stats = sim.replicas[node].engine.stats();
    assert_eq!((stats.snapshots_served, stats.documents_loaded), (1, 0));
    // And the browser's edit after is taken as usual.
    sim.write(browser, id(1), "text", "v3");
    sim.run();
    assert_eq!(sim.replicas[node].text(&id(1)).as_deref(), Some("\"v3\""));
}

#[test]
fn corrupt_data_and_content_bound_policies_take_a_load() {
    // A corrupt snapshot is not sent on: the load reports it, the peer hears unavailable.
    let mut sim = Sim::new();
    let node = node_with_a_stored_snapshot(&mut sim);
    let snapshot = &mut sim.replicas[node].storage.chunks.get_mut(&id(1)).unwrap()[0];
    let last = snapshot.len() - 1;
    snapshot[last] ^= 0xff;
    let browser = fresh_browser(&mut sim, "browser", node);
    assert_eq!(sim.replicas[browser].text(&id(1)), None);
    assert_eq!(sim.replicas[node].engine.stats().snapshots_served, 0);

    // A policy that must read the content to decide (the default here) loads it.
    let mut sim = Sim::new();
    let node = sim.add("node");
    sim.write(node, id(1), "text", "v1");
    sim.restart(node);
    let browser = fresh_browser(&mut sim, "browser", node);
    assert_eq!(
        sim.replicas[browser].text(&id(1)).as_deref(),
        Some("\"v1\"")
    );
    let stats = sim.replicas[node].engine.stats();
    assert_eq!((stats.snapshots_served, stats.documents_loaded), (0, 1));
}

#[test]
fn a_secret_is_served_unread_only_where_the_policy_says_anyone_may_read_anything() {
    // The sim's policy hides documents with a `secret` key unless `read_any` is set: the
    // snapshot path must not bypass it when it is not.
    let mut sim = Sim::new();
    let node = sim.add("node");
    sim.write(node, id(1), "secret", "x");
    sim.restart(node);
    let browser = fresh_browser(&mut sim, "browser", node);
    assert_eq!(sim.replicas[browser].text(&id(1)), None);
    let doc = sim.replicas[browser].engine.document(&id(1));
    assert!(doc.is_none_or(|d| d.get(ROOT, "secret").unwrap().is_none()));
}
