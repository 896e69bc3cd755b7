//! Changes from several peers to one document applied together
//! ([`crate::sync::deferred`]): one apply, one write, and the same result as one by one.

use super::sim::*;
use super::*;

// On a link, side 0 is the client's (frames it sends), side 1 the node's.
const FROM_CLIENT: usize = 0;
const FROM_NODE: usize = 1;

/// Two writers and a reader on one node, all with the document.
struct Setup {
    sim: Sim,
    node: usize,
    writers: [usize; 2],
    links: [usize; 2],
    reader: usize,
    reader_link: usize,
}

fn setup(policy: RolePolicy) -> Setup {
    let mut sim = Sim::new();
    let node = sim.add_with(config("node"), policy);
    let writers = [sim.add("writer-a"), sim.add("writer-b")];
    let reader = sim.add("reader");
    let links = [
        sim.connect_client(writers[0], node),
        sim.connect_client(writers[1], node),
    ];
    let reader_link = sim.connect_client(reader, node);
    sim.write(writers[0], id(1), "title", "v0");
    sim.run();
    for r in [writers[1], reader] {
        sim.open(r, id(1));
    }
    sim.run();
    Setup {
        sim,
        node,
        writers,
        links,
        reader,
        reader_link,
    }
}

impl Setup {
    /// Each writer sets a key; the node takes both messages in one run of inputs (as its
    /// host does with what is queued), then the outputs.
    fn write_both(&mut self, keys: [&str; 2]) {
        self.write_both_around(keys, None);
    }

    /// The same, with the next frame queued on `between` (a link) taken in between.
    fn write_both_around(&mut self, keys: [&str; 2], between: Option<usize>) {
        for (w, key) in keys.into_iter().enumerate() {
            self.sim.write(self.writers[w], id(1), key, "x");
        }
        let node = self.node;
        self.sim.replicas[node].engine.defer_applies();
        let [first, second] = self.links;
        for l in [Some(first), between, Some(second)].into_iter().flatten() {
            let frame = self.sim.links[l].queues[FROM_CLIENT]
                .pop_front()
                .expect("the writer sent its change");
            let (_, conn) = self.sim.links[l].ends[1];
            let now = self.sim.now;
            self.sim.replicas[node]
                .engine
                .handle(now, Input::Frame { conn, frame });
        }
        self.sim.collect(node);
    }

    fn has(&self, r: usize, key: &str) -> bool {
        let doc = self.sim.replicas[r].engine.document(&id(1)).unwrap();
        matches!(doc.get(ROOT, key), Ok(Some(_)))
    }

    fn together(&self) -> u64 {
        self.sim.replicas[self.node]
            .engine
            .stats()
            .sync_messages_applied_together
    }

    /// Whether the node sent the writer an error.
    fn told_off(&self, w: usize) -> bool {
        self.sim
            .queued(self.links[w], FROM_NODE)
            .iter()
            .any(|m| matches!(m, Message::Error { .. }))
    }
}

#[test]
fn changes_from_two_writers_are_applied_stored_and_relayed_once() {
    let mut s = setup(RolePolicy::default());
    let node = s.node;
    let writes = s.sim.replicas[node].storage.writes;
    s.write_both(["a", "b"]);

    assert_eq!(s.together(), 2);
    assert!(s.has(node, "a") && s.has(node, "b"));
    // One write holds both, and each author is named (its host holds its answer until
    // that write is committed).
    assert_eq!(s.sim.replicas[node].storage.writes, writes + 1);
    for l in s.links {
        let (_, conn) = s.sim.links[l].ends[1];
        assert!(has_note(&s.sim.replicas[node], |n| matches!(
            n,
            Notification::DocumentChanged { origin: ChangeOrigin::Remote(c), .. } if *c == conn
        )));
    }

    s.sim.run();
    let heads = s.sim.replicas[node].heads(&id(1));
    for r in [s.writers[0], s.writers[1], s.reader] {
        assert_eq!(s.sim.replicas[r].heads(&id(1)), heads);
        assert!(s.has(r, "a") && s.has(r, "b"));
    }
}

#[test]
fn an_answer_from_another_peer_in_between_does_not_keep_them_apart() {
    let mut s = setup(RolePolicy::default());
    // The reader gets a change and owes the node its answer.
    s.sim.write(s.writers[0], id(1), "earlier", "x");
    while s.sim.deliver(s.links[0], FROM_CLIENT) || s.sim.deliver(s.links[0], FROM_NODE) {}
    assert!(s.sim.deliver(s.reader_link, FROM_NODE));
    assert!(!s.sim.links[s.reader_link].queues[FROM_CLIENT].is_empty());

    s.write_both_around(["a", "b"], Some(s.reader_link));
    assert_eq!(s.together(), 2);
    s.sim.run();
    assert_eq!(
        s.sim.replicas[s.reader].heads(&id(1)),
        s.sim.replicas[s.node].heads(&id(1))
    );
    assert!(s.has(s.reader, "a") && s.has(s.reader, "b"));
}

/// A policy that refuses writes setting `key`, checked in place or on a scratch copy.
fn checking(key: &str, in_place: bool) -> RolePolicy {
    RolePolicy {
        forbidden_key: Some(key.into()),
        in_place,
        ..RolePolicy::default()
    }
}

#[test]
fn a_refused_change_among_others_is_refused_alone() {
    for in_place in [false, true] {
        let mut s = setup(checking("forbidden", in_place));
        s.write_both(["fine", "forbidden"]);

        assert_eq!(s.together(), 0, "in place: {in_place}");
        assert!(s.has(s.node, "fine"), "in place: {in_place}");
        assert!(!s.has(s.node, "forbidden"), "in place: {in_place}");
        assert!(!s.told_off(0) && s.told_off(1), "in place: {in_place}");

        s.sim.run();
        assert!(s.has(s.reader, "fine") && !s.has(s.reader, "forbidden"));
        assert_eq!(
            s.sim.replicas[s.writers[0]].heads(&id(1)),
            s.sim.replicas[s.node].heads(&id(1))
        );
    }
}

#[test]
fn allowed_changes_are_checked_together_and_kept() {
    for in_place in [false, true] {
        let mut s = setup(checking("forbidden", in_place));
        s.write_both(["a", "b"]);
        assert_eq!(s.together(), 2, "in place: {in_place}");
        assert!(s.has(s.node, "a") && s.has(s.node, "b"));
        assert!(!s.told_off(0) && !s.told_off(1));
    }
}

#[test]
fn changes_from_peers_with_different_rights_are_applied_one_at_a_time() {
    let mut s = setup(RolePolicy::default());
    // A replica peer (another node) writes alongside a browser client.
    let other_node = s.sim.add("other-node");
    let replica_link = s.sim.connect_replicas(other_node, s.node);
    s.sim.run();
    s.links[1] = replica_link;
    s.writers[1] = other_node;
    // The replica link's node end is side 1, like a client's.
    assert_eq!(s.sim.links[replica_link].ends[1].0, s.node);
    s.write_both(["a", "b"]);

    assert_eq!(s.together(), 0);
    assert!(s.has(s.node, "a") && s.has(s.node, "b"));
}

#[test]
fn changes_kept_for_applying_together_are_in_before_anything_else_happens() {
    let mut s = setup(RolePolicy::default());
    let node = s.node;
    s.sim.write(s.writers[0], id(1), "a", "x");
    s.sim.replicas[node].engine.defer_applies();
    let frame = s.sim.links[s.links[0]].queues[FROM_CLIENT]
        .pop_front()
        .unwrap();
    let (_, conn) = s.sim.links[s.links[0]].ends[1];
    let now = s.sim.now;
    s.sim.replicas[node]
        .engine
        .handle(now, Input::Frame { conn, frame });

    // The host's own change is made on top of the writer's.
    let seen = s.sim.replicas[node]
        .engine
        .change(now, id(1), |doc| matches!(doc.get(ROOT, "a"), Ok(Some(_))))
        .unwrap();
    assert!(seen);

    // And a writer that goes away right after sending keeps its change.
    s.sim.write(s.writers[1], id(1), "b", "x");
    s.sim.replicas[node].engine.defer_applies();
    let frame = s.sim.links[s.links[1]].queues[FROM_CLIENT]
        .pop_front()
        .unwrap();
    let (_, conn) = s.sim.links[s.links[1]].ends[1];
    s.sim.replicas[node]
        .engine
        .handle(now, Input::Frame { conn, frame });
    s.sim.replicas[node]
        .engine
        .handle(now, Input::Disconnected { conn });
    assert!(s.has(node, "b"));
}
