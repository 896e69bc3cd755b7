//! The host's ordering and durability rules: relayed changes go out before the commit,
//! acknowledgements after it, and every connection gets its frames in order.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use automerge::{transaction::Transactable, Automerge, ReadDoc, ROOT};
use ibis_shared::protocol::PeerId;
use ibis_shared::sync::{
    ConnectionId, Direction, Engine, EngineConfig, Input, OpenPolicy, Output, StoreOp,
};
use ibis_shared::DocumentId;
use tokio::sync::mpsc;

use super::outlets::Outlets;
use super::*;

/// Memory storage whose commits wait while the gate is shut.
#[derive(Clone, Default)]
struct GatedStorage {
    inner: Arc<Mutex<MemoryStorage>>,
    /// `true` while commits must wait.
    shut: Arc<(Mutex<bool>, Condvar)>,
    commits: Arc<Mutex<usize>>,
    /// `true` while writes fail (a full disk, an I/O error).
    failing: Arc<std::sync::atomic::AtomicBool>,
}

impl GatedStorage {
    fn set_shut(&self, shut: bool) {
        let (lock, wake) = &*self.shut;
        *lock.lock().unwrap() = shut;
        wake.notify_all();
    }

    fn commits(&self) -> usize {
        *self.commits.lock().unwrap()
    }

    fn set_failing(&self, failing: bool) {
        self.failing
            .store(failing, std::sync::atomic::Ordering::SeqCst);
    }

    fn is_failing(&self) -> bool {
        self.failing.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Storage for GatedStorage {
    fn apply_and_load(
        &mut self,
        writes: &[&StoreOp],
        loads: &[DocumentId],
    ) -> Result<Vec<Loaded>, StorageError> {
        if !writes.is_empty() {
            let (lock, wake) = &*self.shut;
            let mut shut = lock.lock().unwrap();
            while *shut {
                shut = wake.wait(shut).unwrap();
            }
        }
        if !writes.is_empty() && self.is_failing() {
            return Err("database or disk is full".into());
        }
        let result = self.inner.lock().unwrap().apply_and_load(writes, loads);
        if !writes.is_empty() {
            *self.commits.lock().unwrap() += 1;
        }
        result
    }

    fn probe(&mut self) -> Result<(), StorageError> {
        if self.is_failing() {
            Err("database or disk is full".into())
        } else {
            Ok(())
        }
    }
}

/// A peer: an engine of its own, joined to the host under test by two channels.
struct Peer {
    engine: Engine<OpenPolicy>,
    /// The connection as the host knows it.
    conn: ConnectionId,
    from_host: mpsc::Receiver<Outbound>,
    frames_received: usize,
}

/// The peer's side of its connection.
const UPLINK: ConnectionId = ConnectionId(1);

impl Peer {
    fn connect(host: &Host<OpenPolicy>, name: &str, conn: ConnectionId) -> Self {
        let mut config = EngineConfig::new(PeerId::new(name), None);
        config.is_ephemeral = true;
        let mut engine = Engine::new(config, OpenPolicy, Vec::new(), 1_000);
        let (tx, from_host) = mpsc::channel(OUTBOUND_QUEUE);
        host.send(HostInput::Open {
            conn,
            direction: Direction::Incoming,
            principal: (),
            outbound: tx,
        });
        engine.handle(
            1_000,
            Input::Connected {
                conn: UPLINK,
                direction: Direction::Outgoing,
                principal: (),
            },
        );
        Self {
            engine,
            conn,
            from_host,
            frames_received: 0,
        }
    }

    /// Moves frames both ways; returns whether anything moved.
    fn pump(&mut self, host: &Host<OpenPolicy>) -> bool {
        let mut moved = false;
        for output in self.engine.drain_outputs().collect::<Vec<_>>() {
            if let Output::Send { frame, .. } = output {
                host.send(HostInput::Frame {
                    conn: self.conn,
                    frame,
                    permit: None,
                });
                moved = true;
            }
        }
        while let Ok(out) = self.from_host.try_recv() {
            if let Outbound::Frame(frame) = out {
                self.frames_received += 1;
                self.engine.handle(
                    1_000,
                    Input::Frame {
                        conn: UPLINK,
                        frame,
                    },
                );
                moved = true;
            }
        }
        moved
    }

    /// The connection dropped (the peer's side notices) and a new one is made.
    fn reconnect(&mut self, host: &Host<OpenPolicy>, conn: ConnectionId) {
        self.engine
            .handle(1_000, Input::Disconnected { conn: UPLINK });
        let (tx, from_host) = mpsc::channel(OUTBOUND_QUEUE);
        host.send(HostInput::Open {
            conn,
            direction: Direction::Incoming,
            principal: (),
            outbound: tx,
        });
        self.engine.handle(
            1_000,
            Input::Connected {
                conn: UPLINK,
                direction: Direction::Outgoing,
                principal: (),
            },
        );
        self.conn = conn;
        self.from_host = from_host;
    }

    /// True once the host closed this connection.
    fn closed(&mut self) -> bool {
        loop {
            match self.from_host.try_recv() {
                Ok(Outbound::Close(_)) => return true,
                Ok(Outbound::Frame(_)) => continue,
                Err(mpsc::error::TryRecvError::Disconnected) => return true,
                Err(mpsc::error::TryRecvError::Empty) => return false,
            }
        }
    }

    fn number(&self, id: &DocumentId) -> Option<i64> {
        self.engine
            .document(id)?
            .get(ROOT, "n")
            .ok()
            .flatten()
            .and_then(|(v, _)| v.as_i64())
    }
}

/// Pumps every peer until `done` holds; panics after five seconds.
async fn pump_until(
    host: &Host<OpenPolicy>,
    peers: &mut [&mut Peer],
    what: &str,
    done: impl Fn(&[&mut Peer]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !done(peers) {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        for peer in peers.iter_mut() {
            peer.pump(host);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Pumps every peer for `period`, whatever happens.
async fn pump_for(host: &Host<OpenPolicy>, peers: &mut [&mut Peer], period: Duration) {
    let until = tokio::time::Instant::now() + period;
    while tokio::time::Instant::now() < until {
        for peer in peers.iter_mut() {
            peer.pump(host);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn set_n(doc: &mut Automerge, n: i64) {
    let mut tx = doc.transaction();
    tx.put(ROOT, "n", n).unwrap();
    tx.commit();
}

/// A host with gated storage, a writer and a reader who both hold document `n = 0`.
async fn writer_and_reader() -> (Host<OpenPolicy>, GatedStorage, Peer, Peer, DocumentId) {
    let (host, storage, writer, reader, id, _) = writer_and_reader_with_metrics().await;
    (host, storage, writer, reader, id)
}

async fn writer_and_reader_with_metrics() -> (
    Host<OpenPolicy>,
    GatedStorage,
    Peer,
    Peer,
    DocumentId,
    Arc<Metrics>,
) {
    let storage = GatedStorage::default();
    let mut config = EngineConfig::new(PeerId::new("node"), None);
    config.evict_idle_after = None;
    let metrics = Arc::new(Metrics::default());
    let (host, _task) = start(
        config,
        OpenPolicy,
        storage.clone(),
        super::Held::default(),
        metrics.clone(),
    );
    let mut writer = Peer::connect(&host, "writer", ConnectionId(10));
    let mut reader = Peer::connect(&host, "reader", ConnectionId(11));
    let id = DocumentId::random();
    let mut doc = Automerge::new();
    set_n(&mut doc, 0);
    writer.engine.insert(1_000, id, doc).unwrap();
    pump_until(
        &host,
        &mut [&mut writer, &mut reader],
        "the node holds it",
        |p| p[0].engine.in_sync_with_peers(&id),
    )
    .await;
    reader.engine.open(1_000, id);
    pump_until(
        &host,
        &mut [&mut writer, &mut reader],
        "the reader has it",
        |p| p[1].number(&id) == Some(0) && p[1].engine.in_sync_with_peers(&id),
    )
    .await;
    (host, storage, writer, reader, id, metrics)
}

/// Shuts the storage gate, lets the writer set `n = 1`, and waits until the reader has it
/// (which it must get while the commit waits).
async fn change_while_the_commit_waits(
    host: &Host<OpenPolicy>,
    storage: &GatedStorage,
    writer: &mut Peer,
    reader: &mut Peer,
    id: DocumentId,
) {
    storage.set_shut(true);
    writer.engine.change(1_000, id, |d| set_n(d, 1)).unwrap();
    pump_until(host, &mut [writer, reader], "the relay", |p| {
        p[1].number(&id) == Some(1)
    })
    .await;
}

#[tokio::test]
async fn a_change_reaches_other_peers_before_its_commit_and_is_acknowledged_after() {
    let (host, storage, mut writer, mut reader, id) = writer_and_reader().await;
    let commits = storage.commits();
    let acked = writer.frames_received;
    // The reader gets the change while the commit waits...
    change_while_the_commit_waits(&host, &storage, &mut writer, &mut reader, id).await;
    // ...but the writer hears nothing until the change is on disk.
    pump_for(
        &host,
        &mut [&mut writer, &mut reader],
        Duration::from_millis(100),
    )
    .await;
    assert_eq!(
        writer.frames_received, acked,
        "acknowledged before the commit"
    );
    assert!(!writer.engine.in_sync_with_peers(&id));
    assert_eq!(storage.commits(), commits);

    storage.set_shut(false);
    pump_until(
        &host,
        &mut [&mut writer, &mut reader],
        "the acknowledgement",
        |p| p[0].engine.in_sync_with_peers(&id),
    )
    .await;
    assert!(storage.commits() > commits);
    host.shutdown().await;
}

#[tokio::test]
async fn frames_wait_behind_a_connections_held_frames() {
    let (host, storage, mut writer, mut reader, id) = writer_and_reader().await;
    change_while_the_commit_waits(&host, &storage, &mut writer, &mut reader, id).await;
    // The reader's change would go to the writer at once, but the writer's
    // acknowledgement is still held: it must wait behind it.
    let before = writer.frames_received;
    reader.engine.change(1_000, id, |d| set_n(d, 2)).unwrap();
    pump_for(
        &host,
        &mut [&mut writer, &mut reader],
        Duration::from_millis(100),
    )
    .await;
    assert_eq!(writer.frames_received, before, "overtook a held frame");
    assert_eq!(writer.number(&id), Some(1));

    storage.set_shut(false);
    pump_until(&host, &mut [&mut writer, &mut reader], "both settle", |p| {
        p[0].number(&id) == Some(2)
            && p[0].engine.in_sync_with_peers(&id)
            && p[1].engine.in_sync_with_peers(&id)
    })
    .await;
    host.shutdown().await;
}

/// A reader that stops answering still gets each change once the engine's wait for its
/// answer is over ([`EngineConfig::answer_wait`], 25 ms), not at the next once-a-second
/// tick: the host wakes the engine at its deadline.
#[tokio::test]
async fn changes_for_a_reader_that_stopped_answering_go_when_the_wait_is_over() {
    let (host, _storage, mut writer, mut reader, id) = writer_and_reader().await;
    // From here on the reader's frames are only counted, never answered.
    for n in 1..=3 {
        writer.engine.change(1_000, id, |d| set_n(d, n)).unwrap();
        let started = std::time::Instant::now();
        loop {
            writer.pump(&host);
            if matches!(reader.from_host.try_recv(), Ok(Outbound::Frame(_))) {
                break;
            }
            // Waiting for the tick would take up to a second (always, from the second
            // change on: each wait starts just after the tick that ended the last one).
            assert!(
                started.elapsed() < Duration::from_millis(700),
                "change {n} waited for the tick"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    host.shutdown().await;
}

/// One job's deliveries, each through [`Outlets::send_or_hold`] as the host sends them:
/// what the job holds, and the connections whose queue was full.
fn dispatch(
    outlets: &Outlets,
    deliveries: Vec<(ConnectionId, Outbound)>,
    must_wait: impl Fn(ConnectionId) -> bool,
) -> (outlets::Held, Vec<ConnectionId>) {
    let mut dispatched = outlets::Dispatched::default();
    for (conn, out) in deliveries {
        outlets.send_or_hold(&mut dispatched, conn, out, must_wait(conn));
    }
    (dispatched.held, dispatched.too_slow)
}

fn frames(rx: &mut mpsc::Receiver<Outbound>) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    while let Ok(out) = rx.try_recv() {
        if let Outbound::Frame(f) = out {
            got.push(f);
        }
    }
    got
}

#[test]
fn outlets_keep_each_connections_order_across_held_and_early_frames() {
    let outlets = Outlets::default();
    let (x, y) = (ConnectionId(1), ConnectionId(2));
    let (tx_x, mut rx_x) = mpsc::channel(16);
    let (tx_y, mut rx_y) = mpsc::channel(16);
    outlets.open(x, tx_x);
    outlets.open(y, tx_y);
    let frame = |n: u8| Outbound::Frame(vec![n]);

    // Job 1: x must wait for the commit, y need not.
    let (held1, slow) = dispatch(&outlets, vec![(x, frame(1)), (y, frame(2))], |c| c == x);
    assert!(slow.is_empty());
    assert_eq!(frames(&mut rx_y), vec![vec![2]]);
    assert!(frames(&mut rx_x).is_empty());
    // Job 2: nothing must wait, but x still has job 1's frame held.
    let (held2, _) = dispatch(&outlets, vec![(x, frame(3)), (y, frame(4))], |_| false);
    assert_eq!(frames(&mut rx_y), vec![vec![4]]);
    assert!(frames(&mut rx_x).is_empty());

    assert!(outlets.release(held1).is_empty());
    assert_eq!(frames(&mut rx_x), vec![vec![1]]);
    // Still behind job 2.
    let (held3, _) = dispatch(&outlets, vec![(x, frame(5))], |_| false);
    assert!(frames(&mut rx_x).is_empty());
    outlets.release(held2);
    assert_eq!(frames(&mut rx_x), vec![vec![3]]);
    outlets.release(held3);
    assert_eq!(frames(&mut rx_x), vec![vec![5]]);
    // Nothing held any more: straight out.
    let (held4, _) = dispatch(&outlets, vec![(x, frame(6))], |_| false);
    assert!(held4.is_empty());
    assert_eq!(frames(&mut rx_x), vec![vec![6]]);
}

#[test]
fn a_full_queue_marks_its_connection_too_slow() {
    let outlets = Outlets::default();
    let x = ConnectionId(1);
    let (tx, _rx) = mpsc::channel(1);
    outlets.open(x, tx);
    let deliveries = vec![
        (x, Outbound::Frame(vec![1])),
        (x, Outbound::Frame(vec![2])),
        (x, Outbound::Frame(vec![3])),
    ];
    let (_, slow) = dispatch(&outlets, deliveries, |_| false);
    assert_eq!(slow, vec![x]);
}

/// The engine runs on a thread of its own, but it belongs to the runtime that started it:
/// a runtime that shuts down without `Host::shutdown` (a test ending, a client dropped)
/// stops its engine, as it would stop a task, instead of leaving the thread behind.
#[test]
fn the_engine_stops_with_the_runtime_that_started_it() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let host = runtime.block_on(async {
        let config = EngineConfig::new(PeerId::new("node"), None);
        let (host, _task) = start(
            config,
            OpenPolicy,
            MemoryStorage::default(),
            super::Held::default(),
            Arc::new(Metrics::default()),
        );
        // The engine answers while its runtime runs.
        assert_eq!(host.run(|_, _| 7).await, Some(7));
        host
    });
    assert!(!host.tx.is_closed());
    drop(runtime);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !host.tx.is_closed() {
        assert!(
            std::time::Instant::now() < deadline,
            "the engine outlived the runtime that started it"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A commit that fails (a full disk) is never acknowledged, every connection closes, the
/// node refuses service until storage works again, and nothing is then built on the lost
/// change: after the authors reconnect, storage holds every change they made, in a form
/// that loads.
#[tokio::test]
async fn a_failed_commit_is_never_acknowledged_and_nothing_is_built_on_it() {
    let (host, storage, mut writer, mut reader, id, metrics) =
        writer_and_reader_with_metrics().await;
    let healthy = |m: &Metrics| m.healthy.load(std::sync::atomic::Ordering::SeqCst);
    assert!(healthy(&metrics));
    storage.set_failing(true);
    let acked = writer.frames_received;
    writer.engine.change(1_000, id, |d| set_n(d, 1)).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while healthy(&metrics) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the failure was noticed"
        );
        writer.pump(&host);
        reader.pump(&host);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Both connections were closed; the writer was never told the node has its change.
    assert!(writer.closed() && reader.closed());
    assert_eq!(writer.frames_received, acked);
    assert!(!writer.engine.in_sync_with_peers(&id));

    // Storage works again: the node notices (a probe) and serves.
    storage.set_failing(false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !healthy(&metrics) {
        assert!(tokio::time::Instant::now() < deadline, "the node recovered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    writer.reconnect(&host, ConnectionId(20));
    reader.reconnect(&host, ConnectionId(21));
    reader.engine.open(1_000, id);
    writer.engine.change(1_000, id, |d| set_n(d, 2)).unwrap();
    pump_until(
        &host,
        &mut [&mut writer, &mut reader],
        "the resent changes are kept",
        |p| p[0].engine.in_sync_with_peers(&id) && p[1].number(&id) == Some(2),
    )
    .await;
    let stored = storage
        .inner
        .lock()
        .unwrap()
        .apply_and_load(&[], &[id])
        .unwrap()
        .remove(0)
        .unwrap()
        .unwrap();
    let doc = Automerge::load(&stored.chunks.concat()).expect("what is stored loads");
    let written = writer.engine.document(&id).unwrap().get_heads();
    assert_eq!(
        doc.get_heads(),
        written,
        "every change the writer made is stored"
    );
    host.shutdown().await;
}
