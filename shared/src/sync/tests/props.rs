//! Convergence under any schedule: random edits on random replicas, frames delivered in
//! random order across links (each link stays ordered, as a WebSocket is), duplicated sync
//! frames, links cut and restored, replicas restarted from storage, storage answering late,
//! documents evicted mid-sync. After healing, every replica holds identical documents.

use automerge::{transaction::Transactable, ReadDoc, ROOT};
use proptest::prelude::*;

use super::id;
use super::sim::*;
use crate::protocol::{self, Message};
use crate::sync::{EngineError, PeerRole};

const DOCS: u8 = 3;
const KEYS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Write {
        replica: usize,
        doc: u8,
        key: usize,
        value: u8,
    },
    Open {
        replica: usize,
        doc: u8,
    },
    Deliver {
        link: usize,
        side: usize,
    },
    DeliverTwice {
        link: usize,
        side: usize,
    },
    Cut {
        link: usize,
    },
    Heal {
        link: usize,
    },
    Restart {
        replica: usize,
    },
    AnswerLoad {
        replica: usize,
    },
    Advance {
        ms: u64,
    },
}

/// A random step. `cold` favours restarts, opens and idle time, so replicas often ask for
/// documents their peers hold only in storage (what `sync::stored_answer` serves unloaded).
fn op(replicas: usize, links: usize, cold: bool) -> impl Strategy<Value = Op> {
    let (write, open, restart, advance) = if cold { (3, 4, 3, 3) } else { (4, 1, 1, 1) };
    prop_oneof![
        write => (0..replicas, 0..DOCS, 0..KEYS, any::<u8>())
            .prop_map(|(replica, doc, key, value)| Op::Write { replica, doc, key, value }),
        open => (0..replicas, 0..DOCS).prop_map(|(replica, doc)| Op::Open { replica, doc }),
        12 => (0..links, 0..2usize).prop_map(|(link, side)| Op::Deliver { link, side }),
        1 => (0..links, 0..2usize).prop_map(|(link, side)| Op::DeliverTwice { link, side }),
        1 => (0..links).prop_map(|link| Op::Cut { link }),
        1 => (0..links).prop_map(|link| Op::Heal { link }),
        restart => (0..replicas).prop_map(|replica| Op::Restart { replica }),
        3 => (0..replicas).prop_map(|replica| Op::AnswerLoad { replica }),
        advance => (1..4_000u64).prop_map(|ms| Op::Advance { ms }),
    ]
}

/// A topology: replica names, and links as (dialer, listener, dialer sees, listener sees).
struct Topology {
    names: &'static [&'static str],
    links: &'static [(usize, usize, PeerRole, PeerRole)],
}

use PeerRole::{Client, Replica as Rep};

/// Three nodes in a triangle, each with a browser.
const MESH: Topology = Topology {
    names: &["node-a", "node-b", "node-c", "browser-a", "browser-b"],
    links: &[
        (0, 1, Rep, Rep),
        (1, 2, Rep, Rep),
        (2, 0, Rep, Rep),
        (3, 0, Rep, Client),
        (4, 1, Rep, Client),
    ],
};

/// browser A ↔ node B ↔ node C ↔ browser D: the browsers never meet and the nodes at the
/// ends relay everything.
const CHAIN: Topology = Topology {
    names: &["browser-a", "node-b", "node-c", "browser-d"],
    links: &[(0, 1, Rep, Client), (1, 2, Rep, Rep), (3, 2, Rep, Client)],
};

/// A ↔ B ↔ C where B treats both as clients: only requests and what they sent flow.
const RELAY: Topology = Topology {
    names: &["a", "b", "c"],
    links: &[(0, 1, Rep, Client), (2, 1, Rep, Client)],
};

struct World {
    sim: Sim,
    topology: &'static Topology,
    /// Index in `sim.links` of the current link for each topology link.
    current: Vec<usize>,
    /// Every change a replica made, as (document, change hash): none may be lost.
    written: Vec<(u8, automerge::ChangeHash)>,
}

impl World {
    /// `read_any`: every peer may read everything, so what storage holds is served to
    /// fresh peers without loading it (`sync::stored_answer`).
    fn new(topology: &'static Topology, read_any: bool) -> Self {
        let mut sim = Sim::new();
        for name in topology.names {
            let mut cfg = config(name);
            cfg.evict_idle_after = Some(3_000);
            cfg.sync_window = 2;
            sim.add_with(
                cfg,
                RolePolicy {
                    read_any,
                    ..RolePolicy::default()
                },
            );
        }
        let mut current = Vec::new();
        for (from, to, from_sees, to_sees) in topology.links {
            current.push(sim.connect(*from, *to, *from_sees, *to_sees));
        }
        Self {
            sim,
            topology,
            current,
            written: Vec::new(),
        }
    }

    fn heal(&mut self, link: usize) {
        if !self.sim.links[self.current[link]].open {
            let (from, to, from_sees, to_sees) = self.topology.links[link];
            self.current[link] = self.sim.connect(from, to, from_sees, to_sees);
        }
    }

    fn apply(&mut self, op: &Op) {
        let sim = &mut self.sim;
        match *op {
            Op::Write {
                replica,
                doc,
                key,
                value,
            } => {
                let now = sim.now;
                let result = sim.replicas[replica].engine.change(now, id(doc), |d| {
                    let mut tx = d.transaction();
                    tx.put(ROOT, format!("k{key}"), i64::from(value))
                        .expect("put on the root map");
                    tx.commit();
                });
                match result {
                    Ok(()) => {
                        let hash = sim.replicas[replica]
                            .engine
                            .document(&id(doc))
                            .and_then(|d| d.get_last_local_change())
                            .map(|c| c.hash());
                        self.written.extend(hash.map(|h| (doc, h)));
                    }
                    Err(EngineError::NotLoaded(_)) => {}
                    Err(e) => panic!("write failed: {e}"),
                }
                sim.collect(replica);
            }
            Op::Open { replica, doc } => sim.open(replica, id(doc)),
            Op::Deliver { link, side } => {
                sim.deliver(self.current[link], side);
            }
            Op::DeliverTwice { link, side } => {
                let l = self.current[link];
                let dup = sim.links[l].queues[side].front().cloned().filter(|f| {
                    matches!(
                        protocol::decode(f, &protocol::Limits::default()),
                        Ok(Message::Sync { .. } | Message::Ephemeral { .. })
                    )
                });
                if sim.deliver(l, side) {
                    if let Some(frame) = dup {
                        sim.inject(l, 1 - side, frame);
                    }
                }
            }
            Op::Cut { link } => sim.close_link(self.current[link]),
            Op::Heal { link } => self.heal(link),
            Op::Restart { replica } => {
                sim.restart(replica);
                for link in 0..self.current.len() {
                    self.heal(link);
                }
            }
            Op::AnswerLoad { replica } => {
                sim.answer_load(replica);
            }
            Op::Advance { ms } => sim.advance(ms),
        }
    }

    /// Heals every link, lets every timer fire, opens every document everywhere, and runs
    /// until quiet.
    fn settle(&mut self) {
        for _ in 0..3 {
            for link in 0..self.current.len() {
                self.heal(link);
            }
            self.sim.run();
            for r in 0..self.sim.replicas.len() {
                for doc in 0..DOCS {
                    self.sim.open(r, id(doc));
                }
            }
            self.sim.run();
            self.sim.advance(11_000);
            self.sim.run();
        }
    }

    fn assert_converged(&self) {
        for doc in 0..DOCS {
            let states: Vec<_> = self
                .sim
                .replicas
                .iter()
                .map(|r| {
                    let values: Vec<Option<String>> = (0..KEYS)
                        .map(|k| {
                            r.engine.document(&id(doc)).and_then(|d| {
                                d.get(ROOT, format!("k{k}"))
                                    .ok()
                                    .flatten()
                                    .map(|(v, _)| v.to_string())
                            })
                        })
                        .collect();
                    let mut heads = r.heads(&id(doc));
                    heads.sort();
                    (r.name.clone(), heads, values)
                })
                .collect();
            for s in &states[1..] {
                assert_eq!(
                    (&s.1, &s.2),
                    (&states[0].1, &states[0].2),
                    "document {doc}: {} differs from {}",
                    s.0,
                    states[0].0
                );
            }
        }
        // Durability: storage kept every change, so restarts lost nothing.
        for (doc, hash) in &self.written {
            let kept = self.sim.replicas[0]
                .engine
                .document(&id(*doc))
                .is_some_and(|d| d.get_change_by_hash(hash).is_some());
            assert!(kept, "change {hash} to document {doc} was lost");
        }
        for r in &self.sim.replicas {
            assert!(
                // A handshake the schedule starved of frames may time out; nothing else may
                // look like a protocol violation.
                !r.notes.iter().any(|n| matches!(
                    n,
                    super::Notification::ProtocolViolation { reason, .. }
                        if reason != "handshake timed out"
                )),
                "{} saw a protocol violation: {:?}",
                r.name,
                r.closed
            );
        }
    }
}

fn check(topology: &'static Topology, ops: Vec<Op>) {
    check_with(topology, ops, false);
}

fn check_with(topology: &'static Topology, ops: Vec<Op>, read_any: bool) {
    let mut world = World::new(topology, read_any);
    for op in &ops {
        world.apply(op);
    }
    world.settle();
    world.assert_converged();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn mesh_of_nodes_and_browsers_converges(ops in prop::collection::vec(op(5, 5, false), 0..150)) {
        check(&MESH, ops);
    }

    #[test]
    fn relay_chain_converges(ops in prop::collection::vec(op(4, 3, false), 0..150)) {
        check(&CHAIN, ops);
    }

    #[test]
    fn clients_of_one_relay_converge(ops in prop::collection::vec(op(3, 2, false), 0..150)) {
        check(&RELAY, ops);
    }

    #[test]
    fn a_mesh_serving_stored_documents_unloaded_converges(
        ops in prop::collection::vec(op(5, 5, true), 0..150)
    ) {
        check_with(&MESH, ops, true);
    }

    #[test]
    fn clients_served_stored_documents_unloaded_converge(
        ops in prop::collection::vec(op(3, 2, true), 0..150)
    ) {
        check_with(&RELAY, ops, true);
    }
}
