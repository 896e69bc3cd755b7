//! `receive_sync_message` against automerge's own, message by message, on random histories:
//! concurrent edits, empty changes, lost messages and peers that lose everything.

use automerge::sync::{BloomFilter, State, SyncDoc};
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, Automerge, ChangeHash, ROOT};
use proptest::prelude::*;

use super::{nothing_to_send, receive_sync_message, receive_together};

const PEERS: usize = 3;

#[derive(Debug, Clone)]
enum Step {
    Edit(usize),
    EmptyChange(usize),
    /// `from` generates a message for `to`, which is delivered unless `lost`.
    Send {
        from: usize,
        to: usize,
        lost: bool,
    },
    /// Every other peer generates a message for `to`, which takes them all in at once.
    SendTogether {
        to: usize,
    },
    /// The peer starts over with an empty document and no sync states.
    Forget(usize),
    /// Bend `peer`'s state for `other` into one no honest exchange produces, so the
    /// shortcut is also checked where only automerge's own logic says what to do.
    Bend {
        peer: usize,
        other: usize,
        how: Bend,
    },
}

#[derive(Debug, Clone, Copy)]
enum Bend {
    /// The peer claims our heads.
    TheirHeadsAreOurs,
    /// Its summary's filter is empty.
    EmptyBloom,
    /// Its summary starts from a change we never saw.
    UnknownLastSync,
    /// Our last message counts as unanswered.
    InFlight,
}

fn step() -> impl Strategy<Value = Step> {
    let peer = 0..PEERS;
    prop_oneof![
        3 => peer.clone().prop_map(Step::Edit),
        1 => peer.clone().prop_map(Step::EmptyChange),
        8 => (peer.clone(), peer.clone(), prop::bool::weighted(0.15))
            .prop_filter("to another peer", |(from, to, _)| from != to)
            .prop_map(|(from, to, lost)| Step::Send { from, to, lost }),
        3 => peer.clone().prop_map(|to| Step::SendTogether { to }),
        1 => peer.clone().prop_map(Step::Forget),
        2 => (peer.clone(), peer, prop_oneof![
                Just(Bend::TheirHeadsAreOurs),
                Just(Bend::EmptyBloom),
                Just(Bend::UnknownLastSync),
                Just(Bend::InFlight),
            ])
            .prop_filter("another peer", |(peer, other, _)| peer != other)
            .prop_map(|(peer, other, how)| Step::Bend { peer, other, how }),
    ]
}

struct Peer {
    doc: Automerge,
    /// Our sync state with each other peer.
    states: Vec<State>,
}

struct World {
    peers: Vec<Peer>,
    actors: u8,
    edits: i64,
    /// Times `nothing_to_send` said so (and was checked).
    shortcuts: usize,
}

impl World {
    fn new() -> Self {
        let mut world = World {
            peers: Vec::new(),
            actors: 0,
            edits: 0,
            shortcuts: 0,
        };
        for _ in 0..PEERS {
            let peer = world.fresh_peer();
            world.peers.push(peer);
        }
        world
    }

    fn fresh_peer(&mut self) -> Peer {
        self.actors += 1;
        Peer {
            doc: Automerge::new().with_actor(ActorId::from(vec![self.actors])),
            states: (0..PEERS).map(|_| State::new()).collect(),
        }
    }

    fn run(&mut self, step: &Step) -> Result<(), TestCaseError> {
        match *step {
            Step::Edit(p) => {
                self.edits += 1;
                let edit = self.edits;
                let mut tx = self.peers[p].doc.transaction();
                tx.put(ROOT, format!("k{}", edit % 5), edit)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                tx.commit();
            }
            Step::EmptyChange(p) => {
                self.peers[p].doc.empty_commit(CommitOptions::default());
            }
            Step::Forget(p) => self.peers[p] = self.fresh_peer(),
            Step::Bend { peer, other, how } => {
                let heads = self.peers[peer].doc.get_heads();
                let state = &mut self.peers[peer].states[other];
                match how {
                    Bend::TheirHeadsAreOurs => state.their_heads = Some(heads),
                    Bend::EmptyBloom => {
                        for have in state.their_have.iter_mut().flatten() {
                            have.bloom = BloomFilter::default();
                        }
                    }
                    Bend::UnknownLastSync => {
                        for have in state.their_have.iter_mut().flatten() {
                            have.last_sync = vec![ChangeHash([7; 32])];
                        }
                    }
                    Bend::InFlight => state.in_flight = true,
                }
            }
            Step::Send { from, to, lost } => {
                self.send(from, to, lost)?;
            }
            Step::SendTogether { to } => self.send_together(to)?,
        }
        Ok(())
    }

    /// `receive_together` against taking the same messages one after another: the same
    /// document, and the same sync states except for what we know the peer holds. Taken
    /// together, a message is read with the others' changes already in, so it may show
    /// that the peer holds more than it did one by one (its heads are now changes we know);
    /// never a change the peer does not hold.
    fn send_together(&mut self, to: usize) -> Result<(), TestCaseError> {
        let mut messages = Vec::new();
        for from in (0..PEERS).filter(|from| *from != to) {
            let sender = &mut self.peers[from];
            let Some(message) = sender.doc.generate_sync_message(&mut sender.states[to]) else {
                continue;
            };
            if message.changes.is_empty() {
                // The engine applies together only messages with changes; the others are
                // taken in on their own, before.
                let receiver = &mut self.peers[to];
                receive_sync_message(&mut receiver.doc, &mut receiver.states[from], message)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
            } else {
                messages.push((from, message));
            }
        }
        let receiver = &self.peers[to];
        let mut one_by_one = receiver.doc.clone();
        let mut expected = receiver.states.clone();
        for (from, message) in &messages {
            let applied = one_by_one.receive_sync_message(&mut expected[*from], message.clone());
            prop_assert!(applied.is_ok());
        }
        let mut states = receiver.states.clone();
        let batch = states.iter_mut().enumerate().filter_map(|(peer, state)| {
            messages
                .iter()
                .find(|(from, _)| *from == peer)
                .map(|(_, message)| (state, message))
        });
        let mut doc = receiver.doc.clone();
        prop_assert!(receive_together(&mut doc, batch).is_ok());
        prop_assert_eq!(one_by_one.get_heads(), doc.get_heads());
        for (from, _) in &messages {
            let (want, got) = (&expected[*from], &states[*from]);
            let holds = |h: &ChangeHash| self.peers[*from].doc.get_change_meta_by_hash(h).is_some();
            prop_assert!(got
                .shared_heads
                .iter()
                .all(|h| want.shared_heads.contains(h) || holds(h)));
            prop_assert!(got.sent_hashes.is_subset(&want.sent_hashes));
            prop_assert!(want.sent_hashes.difference(&got.sent_hashes).all(holds));
            let mut rest = got.clone();
            rest.shared_heads.clone_from(&want.shared_heads);
            rest.sent_hashes.clone_from(&want.sent_hashes);
            prop_assert_eq!(&rest, want);
        }
        let receiver = &mut self.peers[to];
        receiver.doc = doc;
        receiver.states = states;
        Ok(())
    }

    /// Returns whether a message was generated.
    fn send(&mut self, from: usize, to: usize, lost: bool) -> Result<bool, TestCaseError> {
        let sender = &mut self.peers[from];
        if nothing_to_send(&sender.doc, &sender.states[to]) {
            self.shortcuts += 1;
            let mut state = sender.states[to].clone();
            prop_assert!(sender.doc.generate_sync_message(&mut state).is_none());
            prop_assert_eq!(&state, &sender.states[to]);
        }
        let Some(message) = sender.doc.generate_sync_message(&mut sender.states[to]) else {
            return Ok(false);
        };
        if lost {
            return Ok(true);
        }
        let receiver = &mut self.peers[to];
        let mut theirs = receiver.doc.clone();
        let mut their_state = receiver.states[from].clone();
        let expected = theirs.receive_sync_message(&mut their_state, message.clone());
        let got = receive_sync_message(&mut receiver.doc, &mut receiver.states[from], message);
        prop_assert_eq!(expected.is_ok(), got.is_ok());
        prop_assert_eq!(theirs.get_heads(), receiver.doc.get_heads());
        prop_assert_eq!(&their_state, &receiver.states[from]);
        Ok(true)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn same_document_and_state_as_automerge(steps in prop::collection::vec(step(), 1..120)) {
        let mut world = World::new();
        for step in &steps {
            world.run(step)?;
        }
        // Lost messages stall a sync until the peers reconnect, which starts their states
        // over from what is kept across connections. After that everyone converges, taking
        // messages in only through ours.
        for peer in &mut world.peers {
            for state in &mut peer.states {
                *state = State::decode(&state.encode())
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
        }
        for _round in 0..20 {
            let mut sent = false;
            for from in 0..PEERS {
                for to in 0..PEERS {
                    if from != to {
                        sent |= world.send(from, to, false)?;
                    }
                }
            }
            if !sent {
                break;
            }
        }
        let heads = world.peers[0].doc.get_heads();
        for peer in &world.peers[1..] {
            prop_assert_eq!(&heads, &peer.doc.get_heads());
        }
    }
}

#[test]
fn an_acknowledged_change_leaves_nothing_to_send_or_resend() {
    // One writer, one reader, as in a relay: after the reader acknowledges each change,
    // nothing stays in `sent_hashes` (to grow without bound) and the writer knows without
    // generating that it has nothing to say.
    let mut world = World::new();
    for _ in 0..50 {
        world.run(&Step::Edit(0)).unwrap_or_else(|e| panic!("{e}"));
        loop {
            let there = world.send(0, 1, false).unwrap_or_else(|e| panic!("{e}"));
            let back = world.send(1, 0, false).unwrap_or_else(|e| panic!("{e}"));
            if !there && !back {
                break;
            }
        }
        let writer = &world.peers[0];
        assert_eq!(writer.doc.get_heads(), world.peers[1].doc.get_heads());
        assert!(writer.states[1].sent_hashes.is_empty());
        assert!(!writer.states[1].in_flight);
        assert!(nothing_to_send(&writer.doc, &writer.states[1]));
    }
    assert!(world.shortcuts >= 50, "{} shortcuts", world.shortcuts);
}

#[test]
fn a_summary_missing_the_writers_next_change_is_not_covered() {
    // The reader's summary starts at the writer's first change; the writer's second
    // change (same author, later) is not in its filter, so automerge would send it.
    let mut world = World::new();
    world.run(&Step::Edit(0)).unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..4 {
        world.send(0, 1, false).unwrap_or_else(|e| panic!("{e}"));
        world.send(1, 0, false).unwrap_or_else(|e| panic!("{e}"));
    }
    let first = world.peers[0].doc.get_heads();
    world.run(&Step::Edit(0)).unwrap_or_else(|e| panic!("{e}"));
    world.send(0, 1, true).unwrap_or_else(|e| panic!("{e}"));
    let writer = &mut world.peers[0];
    let heads = writer.doc.get_heads();
    let state = &mut writer.states[1];
    state.their_heads = Some(heads);
    state.in_flight = false;
    state.sent_hashes.clear();
    state.their_have = Some(vec![automerge::sync::Have {
        last_sync: first,
        bloom: BloomFilter::default(),
    }]);
    assert!(!nothing_to_send(&writer.doc, state));
    assert!(writer
        .doc
        .generate_sync_message(&mut state.clone())
        .is_some());
}

#[test]
fn a_queued_change_is_not_held_and_does_not_hide_the_ones_that_are() {
    let mut writer = Automerge::new();
    let mut changes = Vec::new();
    for i in 0..3 {
        let mut tx = writer.transaction();
        tx.put(ROOT, "n", i).unwrap();
        tx.commit();
        changes.push(writer.get_last_local_change().unwrap().clone());
    }
    let mut doc = Automerge::new();
    doc.apply_changes([changes[0].clone()]).unwrap();
    // The third change arrives before the second: automerge queues it.
    doc.apply_changes([changes[2].clone()]).unwrap();
    assert!(super::has_change(&doc, &changes[0].hash()));
    assert!(
        !super::has_change(&doc, &changes[1].hash()),
        "never received"
    );
    assert!(
        !super::has_change(&doc, &changes[2].hash()),
        "queued, not applied"
    );
    doc.apply_changes([changes[1].clone()]).unwrap();
    assert!(changes.iter().all(|c| super::has_change(&doc, &c.hash())));
}
