//! Pacing by answers ([`crate::sync::pacer`]): changes for a peer that has not answered
//! the last ones wait, and go together when it answers or when the wait is over.

use super::sim::*;
use super::*;

/// A writer and a reader on one node, both with the document.
struct Setup {
    sim: Sim,
    node: usize,
    writer: usize,
    reader: usize,
    writer_link: usize,
    reader_link: usize,
}

// On a link, side 0 is the client's (frames it sends), side 1 the node's.
const FROM_CLIENT: usize = 0;
const FROM_NODE: usize = 1;

fn setup() -> Setup {
    setup_with(config("node"))
}

fn setup_with(node_config: EngineConfig) -> Setup {
    let mut sim = Sim::new();
    let node = sim.add_with(node_config, RolePolicy::default());
    let writer = sim.add("writer");
    let reader = sim.add("reader");
    let writer_link = sim.connect_client(writer, node);
    let reader_link = sim.connect_client(reader, node);
    // A history long enough that a few changes are sent as changes (automerge sends the
    // whole document instead when a message would carry more than a third of it).
    for n in 0..10 {
        sim.write(writer, id(1), "earlier", &n.to_string());
    }
    sim.write(writer, id(1), "text", "v0");
    sim.run();
    sim.open(reader, id(1));
    sim.run();
    assert_eq!(sim.replicas[reader].text(&id(1)).as_deref(), Some("\"v0\""));
    Setup {
        sim,
        node,
        writer,
        reader,
        writer_link,
        reader_link,
    }
}

impl Setup {
    /// The writer changes the document and everything between it and the node is
    /// delivered; the reader's link is left alone.
    fn write(&mut self, value: &str) {
        self.sim.write(self.writer, id(1), "text", value);
        while self.sim.deliver(self.writer_link, FROM_CLIENT)
            || self.sim.deliver(self.writer_link, FROM_NODE)
        {}
    }

    /// How many sync messages are queued from the node to the reader.
    fn queued_for_reader(&self) -> usize {
        let queued = self.sim.queued(self.reader_link, FROM_NODE);
        assert!(queued.iter().all(|m| matches!(m, Message::Sync { .. })));
        queued.len()
    }

    /// Wakes the node at `at` (as its host would at its deadline).
    fn wake_node(&mut self, at: Millis) {
        self.sim.now = at;
        self.sim.replicas[self.node].engine.handle(at, Input::Wake);
        self.sim.collect(self.node);
    }

    /// When the node's first waiting message may go without an answer.
    fn node_deadline(&self) -> Option<Millis> {
        self.sim.replicas[self.node].engine.next_deadline()
    }

    /// Everything delivered: the reader has what the node has.
    fn settle(&mut self) {
        self.sim.run();
        assert_eq!(
            self.sim.replicas[self.node].heads(&id(1)),
            self.sim.replicas[self.reader].heads(&id(1))
        );
    }

    /// Delivers the next frame from the node to the reader; what the reader has then.
    fn reader_takes_one(&mut self) -> Option<String> {
        assert!(self.sim.deliver(self.reader_link, FROM_NODE));
        self.sim.replicas[self.reader].text(&id(1))
    }
}

#[test]
fn changes_for_a_peer_that_has_not_answered_wait_and_go_in_one_message_when_it_does() {
    let mut s = setup();
    s.write("v1");
    assert_eq!(s.queued_for_reader(), 1, "the first change goes at once");
    s.write("v2");
    s.write("v3");
    assert_eq!(
        s.queued_for_reader(),
        1,
        "the next ones wait for the reader's answer"
    );
    let answer_wait = s.sim.replicas[s.node].config.answer_wait;
    assert_eq!(s.node_deadline(), Some(s.sim.now + answer_wait));

    // The reader takes in v1 and answers; the answer brings it v2 and v3 in one message.
    assert_eq!(s.reader_takes_one().as_deref(), Some("\"v1\""));
    assert!(s.sim.deliver(s.reader_link, FROM_CLIENT));
    assert_eq!(s.queued_for_reader(), 1);
    assert_eq!(s.node_deadline(), None);
    assert_eq!(s.reader_takes_one().as_deref(), Some("\"v3\""));
    s.settle();
}

#[test]
fn changes_for_a_peer_whose_answer_is_late_go_when_the_wait_is_over() {
    let mut s = setup();
    s.write("v1");
    s.write("v2");
    s.write("v3");
    assert_eq!(s.queued_for_reader(), 1);
    // The reader takes in v1; its answer is on the way but not there yet.
    assert_eq!(s.reader_takes_one().as_deref(), Some("\"v1\""));
    assert_eq!(s.sim.queued(s.reader_link, FROM_CLIENT).len(), 1);

    let deadline = s.node_deadline().expect("a message waits");
    s.wake_node(deadline - 1);
    assert_eq!(s.queued_for_reader(), 0, "not before time");
    s.wake_node(deadline);
    assert_eq!(s.queued_for_reader(), 1);
    assert_eq!(s.node_deadline(), None);
    assert_eq!(
        s.reader_takes_one().as_deref(),
        Some("\"v3\""),
        "v2 and v3 together"
    );
    s.settle();
}

#[test]
fn a_peer_that_keeps_up_gets_every_change_at_once() {
    let mut s = setup();
    for value in ["v1", "v2", "v3"] {
        s.write(value);
        assert_eq!(s.queued_for_reader(), 1, "{value} goes at once");
        assert_eq!(s.reader_takes_one(), Some(format!("\"{value}\"")));
        s.sim.run();
        assert_eq!(s.node_deadline(), None);
    }
}

#[test]
fn a_document_with_a_message_waiting_for_an_answer_stays_in_memory() {
    // A wait longer than documents stay in memory when idle.
    let mut node_config = config("node");
    node_config.answer_wait = 10 * 60_000;
    let mut s = setup_with(node_config);
    s.write("v1");
    s.write("v2");
    s.sim.advance(120_000);
    assert!(
        s.sim.replicas[s.node].engine.document(&id(1)).is_some(),
        "not evicted while v2 waits"
    );
    s.wake_node(s.node_deadline().expect("v2 waits"));
    assert_eq!(s.queued_for_reader(), 2);
    s.sim.run();
    assert_eq!(
        s.sim.replicas[s.reader].text(&id(1)).as_deref(),
        Some("\"v2\"")
    );
    // With nothing waiting, the idle document leaves memory as usual.
    s.sim.advance(120_000);
    assert!(s.sim.replicas[s.node].engine.document(&id(1)).is_none());
}
