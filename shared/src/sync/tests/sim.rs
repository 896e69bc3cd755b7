//! A deterministic network of engines for tests: in-memory storage, ordered per-link queues
//! (a WebSocket never reorders), and full control over which frame is delivered when.

use std::collections::{BTreeMap, VecDeque};

use automerge::{transaction::Transactable, Automerge, ReadDoc, ROOT};

use crate::protocol::{self, Message, PeerId, StorageId};
use crate::sync::*;
use crate::DocumentId;

/// A policy whose principal *is* the role the host decided on, so tests can wire any
/// topology (node ↔ node replicas, browser clients).
#[derive(Debug, Clone, Default)]
pub struct RolePolicy {
    /// Reject writes that set this key (to test the write check).
    pub forbidden_key: Option<String>,
    /// Check writes in place (undoing refused ones) instead of on a scratch copy.
    pub in_place: bool,
    /// Every peer may read every document whatever it holds (`secret` or not), so fresh
    /// peers are answered from stored snapshots.
    pub read_any: bool,
    /// Clients may not send changes at all (as anonymous visitors).
    pub read_only_clients: bool,
    /// Clients may not change a stored document holding this key (as another
    /// organization's document).
    pub owned_key: Option<String>,
    /// The limits of a client's connection (the engine's defaults otherwise).
    pub client_limits: Option<PeerLimits>,
    /// A replica claiming a client's peer id takes it (as a partner that proved its key
    /// takes its id back from an anonymous socket).
    pub replicas_outrank_clients: bool,
}

impl Policy for RolePolicy {
    type Principal = PeerRole;

    fn admit(
        &self,
        role: &PeerRole,
        _: Direction,
        peer_id: &PeerId,
        _: &protocol::PeerMetadata,
    ) -> Result<PeerRole, String> {
        if peer_id.as_str().starts_with("banned") {
            return Err("banned peer".into());
        }
        Ok(*role)
    }

    fn limits(&self, role: &PeerRole) -> PeerLimits {
        match (role, self.client_limits) {
            (PeerRole::Client, Some(limits)) => limits,
            _ => PeerLimits::default(),
        }
    }

    fn outranks(&self, new: &PeerRole, old: &PeerRole) -> bool {
        self.replicas_outrank_clients && *new == PeerRole::Replica && *old == PeerRole::Client
    }

    fn may_write(&self, role: &PeerRole) -> Result<(), Refusal> {
        if self.read_only_clients && *role == PeerRole::Client {
            return Err("clients may not change documents".into());
        }
        Ok(())
    }

    fn may_change(
        &self,
        role: &PeerRole,
        _: &DocumentId,
        current: &Automerge,
    ) -> Result<(), Refusal> {
        match &self.owned_key {
            Some(key)
                if *role == PeerRole::Client
                    && matches!(current.get(ROOT, key.as_str()), Ok(Some(_))) =>
            {
                Err(format!("a document with `{key}` is not the client's to change").into())
            }
            _ => Ok(()),
        }
    }

    fn may_read(&self, _: &PeerRole, _: &DocumentId, doc: &Automerge) -> bool {
        !matches!(doc.get(ROOT, "secret"), Ok(Some(_)))
    }

    fn may_read_any(&self, _: &PeerRole, _: &DocumentId) -> bool {
        self.read_any
    }

    fn needs_write_check(&self, _: &PeerRole, _: &DocumentId) -> bool {
        self.forbidden_key.is_some()
    }

    fn check_write(
        &self,
        _: &PeerRole,
        _: &DocumentId,
        _: &Automerge,
        after: &Automerge,
    ) -> Result<(), Refusal> {
        match &self.forbidden_key {
            Some(key) if matches!(after.get(ROOT, key.as_str()), Ok(Some(_))) => {
                Err(format!("`{key}` may not be set").into())
            }
            _ => Ok(()),
        }
    }

    fn may_check_in_place(&self, _: &PeerRole, _: &DocumentId, _: &Automerge) -> bool {
        self.in_place
    }

    fn check_in_place(
        &self,
        role: &PeerRole,
        id: &DocumentId,
        _: &[automerge::ChangeHash],
        after: &Automerge,
    ) -> Result<(), Refusal> {
        self.check_write(role, id, after, after)
    }
}

#[derive(Debug, Default, Clone)]
pub struct MemStorage {
    pub chunks: BTreeMap<DocumentId, Vec<Vec<u8>>>,
    pub sync_states: BTreeMap<(DocumentId, StorageId), Vec<u8>>,
    pub writes: usize,
}

impl MemStorage {
    fn apply(&mut self, op: StoreOp) {
        self.writes += 1;
        match op {
            StoreOp::AppendChanges { document, chunk } => {
                self.chunks.entry(document).or_default().push(chunk)
            }
            StoreOp::ReplaceWithSnapshot { document, snapshot } => {
                self.chunks.insert(document, vec![snapshot]);
            }
            StoreOp::SaveSyncState {
                document,
                peer,
                state,
            } => {
                self.sync_states.insert((document, peer), state);
            }
            StoreOp::Erase { document } => {
                self.chunks.remove(&document);
                self.sync_states.retain(|(d, _), _| *d != document);
            }
        }
    }

    fn load(&self, id: &DocumentId) -> Option<StoredDocument> {
        let chunks = self.chunks.get(id)?.clone();
        let sync_states = self
            .sync_states
            .iter()
            .filter(|((d, _), _)| d == id)
            .map(|((_, s), state)| (s.clone(), state.clone()))
            .collect();
        Some(StoredDocument {
            chunks,
            sync_states,
        })
    }
}

pub struct Replica {
    pub name: String,
    pub engine: Engine<RolePolicy>,
    pub storage: MemStorage,
    pub notes: Vec<Notification>,
    pub config: EngineConfig,
    pub policy: RolePolicy,
    /// Loads asked for and not yet answered (answered by `Sim::step`).
    pub loads: VecDeque<DocumentId>,
    pub closed: Vec<(ConnectionId, String)>,
    pub up: bool,
    /// How many times it was restarted: part of the actor its writes are made by.
    pub incarnation: u32,
}

impl Replica {
    pub fn text(&self, id: &DocumentId) -> Option<String> {
        let doc = self.engine.document(id)?;
        doc.get(ROOT, "text")
            .ok()
            .flatten()
            .map(|(v, _)| v.to_string())
    }

    pub fn heads(&self, id: &DocumentId) -> Vec<automerge::ChangeHash> {
        self.engine
            .document(id)
            .map(|d| d.get_heads())
            .unwrap_or_default()
    }
}

#[derive(Debug)]
pub struct Link {
    pub ends: [(usize, ConnectionId); 2],
    /// queues[0]: frames from ends[0] to ends[1]; queues[1]: the other way.
    pub queues: [VecDeque<Vec<u8>>; 2],
    pub open: bool,
}

pub struct Sim {
    pub replicas: Vec<Replica>,
    pub links: Vec<Link>,
    pub now: Millis,
    next_conn: u64,
    /// Every frame that crossed a link: (from replica, to replica, bytes).
    pub traffic: Vec<(usize, usize, usize)>,
}

pub fn config(name: &str) -> EngineConfig {
    let mut c = EngineConfig::new(
        PeerId::new(name),
        Some(StorageId::new(format!("store-{name}"))),
    );
    c.ephemeral_session_id = format!("session-{name}");
    c
}

impl Sim {
    pub fn new() -> Self {
        Self {
            replicas: Vec::new(),
            links: Vec::new(),
            now: 1_000,
            next_conn: 1,
            traffic: Vec::new(),
        }
    }

    pub fn add(&mut self, name: &str) -> usize {
        self.add_with(config(name), RolePolicy::default())
    }

    pub fn add_with(&mut self, config: EngineConfig, policy: RolePolicy) -> usize {
        let engine = Engine::new(config.clone(), policy.clone(), [], self.now);
        self.replicas.push(Replica {
            name: config.peer_id.to_string(),
            engine,
            storage: MemStorage::default(),
            notes: Vec::new(),
            config,
            policy,
            loads: VecDeque::new(),
            closed: Vec::new(),
            up: true,
            incarnation: 0,
        });
        self.replicas.len() - 1
    }

    /// `from` dials `to`. Each side treats the other with the given role.
    pub fn connect(
        &mut self,
        from: usize,
        to: usize,
        from_sees: PeerRole,
        to_sees: PeerRole,
    ) -> usize {
        let a = ConnectionId(self.next_conn);
        let b = ConnectionId(self.next_conn + 1);
        self.next_conn += 2;
        self.links.push(Link {
            ends: [(from, a), (to, b)],
            queues: [VecDeque::new(), VecDeque::new()],
            open: true,
        });
        let now = self.now;
        self.replicas[to].engine.handle(
            now,
            Input::Connected {
                conn: b,
                direction: Direction::Incoming,
                principal: to_sees,
            },
        );
        self.replicas[from].engine.handle(
            now,
            Input::Connected {
                conn: a,
                direction: Direction::Outgoing,
                principal: from_sees,
            },
        );
        self.collect(to);
        self.collect(from);
        self.links.len() - 1
    }

    /// Two nodes that replicate everything with each other.
    pub fn connect_replicas(&mut self, from: usize, to: usize) -> usize {
        self.connect(from, to, PeerRole::Replica, PeerRole::Replica)
    }

    /// A browser (`client`) dials its node: it treats the node as a replica, the node
    /// treats it as a client.
    pub fn connect_client(&mut self, client: usize, node: usize) -> usize {
        self.connect(client, node, PeerRole::Replica, PeerRole::Client)
    }

    /// The link and side of a replica's connection.
    pub fn link_of(&self, replica: usize, conn: ConnectionId) -> Option<(usize, usize)> {
        self.links.iter().enumerate().find_map(|(i, l)| {
            l.ends
                .iter()
                .position(|e| *e == (replica, conn))
                .map(|side| (i, side))
        })
    }

    /// Carries out a replica's queued outputs.
    pub fn collect(&mut self, r: usize) {
        let outputs: Vec<Output> = self.replicas[r].engine.drain_outputs().collect();
        for out in outputs {
            match out {
                Output::Send { conn, frame } => {
                    if let Some((l, side)) = self.link_of(r, conn) {
                        if self.links[l].open {
                            self.links[l].queues[side].push_back(frame);
                        }
                    }
                }
                Output::Close { conn, reason } => {
                    self.replicas[r].closed.push((conn, reason));
                    if let Some((l, side)) = self.link_of(r, conn) {
                        // Frames queued before the close still go out (the error message);
                        // then the link dies.
                        self.flush_then_close(l, side);
                    }
                }
                Output::Store(op) => self.replicas[r].storage.apply(op),
                Output::Load { document } => self.replicas[r].loads.push_back(document),
                Output::Notify(n) => self.replicas[r].notes.push(n),
            }
        }
    }

    fn flush_then_close(&mut self, l: usize, side: usize) {
        let frames: Vec<Vec<u8>> = self.links[l].queues[side].drain(..).collect();
        let (to, to_conn) = self.links[l].ends[1 - side];
        let now = self.now;
        for frame in frames {
            if self.replicas[to].up {
                self.replicas[to].engine.handle(
                    now,
                    Input::Frame {
                        conn: to_conn,
                        frame,
                    },
                );
            }
        }
        self.close_link(l);
    }

    /// Cuts a link: queued frames are lost, both ends hear `Disconnected`.
    pub fn close_link(&mut self, l: usize) {
        if !self.links[l].open {
            return;
        }
        self.links[l].open = false;
        self.links[l].queues = [VecDeque::new(), VecDeque::new()];
        let now = self.now;
        for (r, conn) in self.links[l].ends {
            if self.replicas[r].up {
                self.replicas[r]
                    .engine
                    .handle(now, Input::Disconnected { conn });
                self.collect(r);
            }
        }
    }

    /// Delivers the next frame on one direction of a link; false if there was none.
    pub fn deliver(&mut self, l: usize, side: usize) -> bool {
        if !self.links[l].open {
            return false;
        }
        let Some(frame) = self.links[l].queues[side].pop_front() else {
            return false;
        };
        let (from, _) = self.links[l].ends[side];
        let (to, conn) = self.links[l].ends[1 - side];
        self.traffic.push((from, to, frame.len()));
        let now = self.now;
        self.replicas[to]
            .engine
            .handle(now, Input::Frame { conn, frame });
        self.collect(to);
        true
    }

    /// Answers one pending load of a replica; false if there was none.
    pub fn answer_load(&mut self, r: usize) -> bool {
        let Some(id) = self.replicas[r].loads.pop_front() else {
            return false;
        };
        let result = Ok(self.replicas[r].storage.load(&id));
        let now = self.now;
        self.replicas[r].engine.handle(
            now,
            Input::Loaded {
                document: id,
                result,
            },
        );
        self.collect(r);
        true
    }

    /// Delivers everything in a fixed order until nothing moves.
    pub fn run(&mut self) {
        let mut rounds = 0;
        loop {
            let mut moved = false;
            for r in 0..self.replicas.len() {
                while self.answer_load(r) {
                    moved = true;
                }
            }
            for l in 0..self.links.len() {
                for side in 0..2 {
                    while self.deliver(l, side) {
                        moved = true;
                    }
                }
            }
            if !moved {
                return;
            }
            rounds += 1;
            assert!(rounds < 100_000, "the network never went quiet");
        }
    }

    pub fn advance(&mut self, ms: Millis) {
        self.now += ms;
        let now = self.now;
        for r in 0..self.replicas.len() {
            if self.replicas[r].up {
                self.replicas[r].engine.handle(now, Input::Tick);
                self.collect(r);
            }
        }
    }

    /// Stops a replica (its links die) and starts it again from its storage.
    pub fn restart(&mut self, r: usize) {
        for l in 0..self.links.len() {
            if self.links[l].open && self.links[l].ends.iter().any(|(x, _)| *x == r) {
                self.close_link(l);
            }
        }
        let rep = &mut self.replicas[r];
        let stored: Vec<DocumentId> = rep.storage.chunks.keys().copied().collect();
        rep.engine = Engine::new(rep.config.clone(), rep.policy.clone(), stored, self.now);
        rep.loads.clear();
        rep.incarnation += 1;
    }

    /// Sets `text` (and `by`) on a document of a replica, creating it if needed.
    ///
    /// Writes are made by an actor named after the replica (and its restarts), so change
    /// hashes, and with them the sync protocol's Bloom filters, are the same at every run:
    /// with random actors a filter's false positive now and then held a change back for a
    /// round and a test that counts rounds failed one run in ten.
    pub fn write(&mut self, r: usize, id: DocumentId, key: &str, value: &str) {
        let now = self.now;
        let rep = &mut self.replicas[r];
        let actor =
            automerge::ActorId::from(format!("{}/{}", rep.name, rep.incarnation).into_bytes());
        let result = rep.engine.change(now, id, |doc| {
            doc.set_actor(actor);
            let mut tx = doc.transaction();
            tx.put(ROOT, key, value).unwrap();
            tx.commit();
        });
        assert!(result.is_ok(), "write failed: {result:?}");
        self.collect(r);
    }

    /// Opens a document on a replica (loads it, or asks its replica peers).
    pub fn open(&mut self, r: usize, id: DocumentId) {
        let now = self.now;
        self.replicas[r].engine.open(now, id);
        self.collect(r);
    }

    /// Sends a raw frame to replica `to` as if it came over link `l` from the other end.
    pub fn inject(&mut self, l: usize, to_side: usize, frame: Vec<u8>) {
        let (to, conn) = self.links[l].ends[to_side];
        let now = self.now;
        self.replicas[to]
            .engine
            .handle(now, Input::Frame { conn, frame });
        self.collect(to);
    }

    /// Frames queued on a link towards `to_side`, decoded.
    pub fn queued(&self, l: usize, from_side: usize) -> Vec<Message> {
        self.links[l].queues[from_side]
            .iter()
            .map(|f| protocol::decode(f, &protocol::Limits::default()).unwrap())
            .collect()
    }
}
