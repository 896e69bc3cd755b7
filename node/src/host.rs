//! The node's host for the sync engine.
//!
//! One tokio task owns the [`Engine`]; connections and timers send it [`HostInput`]s over a
//! channel. What the engine outputs goes, in order, to one storage thread as a job: the
//! thread commits the writes of every job it has queued in a single SQLite transaction (a
//! group commit: one fsync for many changes), answers loads from inside that transaction,
//! and only then releases the jobs' frames to their connections. So no peer ever hears of a
//! change before it is on disk, and frames leave in the order the engine produced them.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ibis_shared::sync::{
    ConnectionId, Direction, Engine, EngineConfig, Input, Millis, Notification, Output, Policy,
    StoreOp, StoredDocument,
};
use ibis_shared::DocumentId;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// Frames queued for one connection before it counts as too slow and is dropped.
pub const OUTBOUND_QUEUE: usize = 8_192;

/// What a connection task receives from the host.
#[derive(Debug)]
pub enum Outbound {
    Frame(Vec<u8>),
    Close(String),
}

/// What a host runs on: the node's SQLite store, or memory (a client in a test or a
/// benchmark). Writes and the loads that follow them happen atomically: all or nothing.
pub trait Storage: Send + 'static {
    fn apply_and_load(
        &mut self,
        writes: &[&StoreOp],
        loads: &[DocumentId],
    ) -> Result<Vec<Result<Option<StoredDocument>, String>>, String>;
}

impl Storage for Store {
    fn apply_and_load(
        &mut self,
        writes: &[&StoreOp],
        loads: &[DocumentId],
    ) -> Result<Vec<Result<Option<StoredDocument>, String>>, String> {
        let mut run = || -> Result<_, StoreError> {
            let batch = self.transaction()?;
            for op in writes {
                batch.write(op)?;
            }
            let loaded = loads
                .iter()
                .map(|id| batch.load(id).map_err(|e| e.to_string()))
                .collect();
            batch.commit()?;
            Ok(loaded)
        };
        run().map_err(|e| e.to_string())
    }
}

/// Storage that forgets everything when the process ends.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    chunks: HashMap<DocumentId, Vec<Vec<u8>>>,
    sync_states: HashMap<DocumentId, Vec<(ibis_shared::protocol::StorageId, Vec<u8>)>>,
}

impl Storage for MemoryStorage {
    fn apply_and_load(
        &mut self,
        writes: &[&StoreOp],
        loads: &[DocumentId],
    ) -> Result<Vec<Result<Option<StoredDocument>, String>>, String> {
        for op in writes {
            match op {
                StoreOp::AppendChanges { document, chunk } => self
                    .chunks
                    .entry(*document)
                    .or_default()
                    .push(chunk.clone()),
                StoreOp::ReplaceWithSnapshot { document, snapshot } => {
                    self.chunks.insert(*document, vec![snapshot.clone()]);
                }
                StoreOp::SaveSyncState {
                    document,
                    peer,
                    state,
                } => {
                    let states = self.sync_states.entry(*document).or_default();
                    states.retain(|(p, _)| p != peer);
                    states.push((peer.clone(), state.clone()));
                }
            }
        }
        Ok(loads
            .iter()
            .map(|id| {
                Ok(self.chunks.get(id).map(|chunks| StoredDocument {
                    chunks: chunks.clone(),
                    sync_states: self.sync_states.get(id).cloned().unwrap_or_default(),
                }))
            })
            .collect())
    }
}

/// Work for the engine task.
pub enum HostInput<P: Policy> {
    Open {
        conn: ConnectionId,
        direction: Direction,
        principal: P::Principal,
        outbound: mpsc::Sender<Outbound>,
    },
    Frame {
        conn: ConnectionId,
        frame: Vec<u8>,
    },
    Text {
        conn: ConnectionId,
    },
    Closed {
        conn: ConnectionId,
    },
    Loaded {
        document: DocumentId,
        result: Result<Option<StoredDocument>, String>,
    },
    /// Runs a closure with the engine (reads for the API, the node's own edits).
    Run(EngineJob<P>),
    Shutdown(oneshot::Sender<()>),
}

/// Work run on the engine task with the engine and the current time.
pub type EngineJob<P> = Box<dyn FnOnce(&mut Engine<P>, Millis) + Send>;

/// A cheap handle for talking to the engine task.
pub struct Host<P: Policy> {
    tx: mpsc::UnboundedSender<HostInput<P>>,
    notifications: broadcast::Sender<Notification>,
}

impl<P: Policy> Clone for Host<P> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            notifications: self.notifications.clone(),
        }
    }
}

impl<P: Policy + Send + 'static> Host<P>
where
    P::Principal: PartialEq + Send,
{
    /// Everything the engine notifies from now on (missed ones are reported as lagged).
    pub fn subscribe(&self) -> broadcast::Receiver<Notification> {
        self.notifications.subscribe()
    }

    pub fn send(&self, input: HostInput<P>) {
        // The engine task only ends at shutdown, when nobody needs an answer any more.
        let _ = self.tx.send(input);
    }

    /// Runs `f` on the engine task and returns its result.
    pub async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Engine<P>, Millis) -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = oneshot::channel();
        self.send(HostInput::Run(Box::new(move |engine, now| {
            let _ = tx.send(f(engine, now));
        })));
        rx.await.ok()
    }

    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        self.send(HostInput::Shutdown(tx));
        let _ = rx.await;
    }
}

type Connections = Arc<Mutex<HashMap<ConnectionId, mpsc::Sender<Outbound>>>>;

/// One batch of engine output, in order.
#[derive(Default)]
struct Job {
    writes: Vec<StoreOp>,
    loads: Vec<DocumentId>,
    deliveries: Vec<(ConnectionId, Outbound)>,
}

impl Job {
    fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.loads.is_empty() && self.deliveries.is_empty()
    }
}

enum StorageMessage {
    Job(Job),
    Stop,
}

/// Starts the engine task and the storage thread. Returns the handle and a future that
/// completes when both have stopped (after [`Host::shutdown`]).
pub fn start<P, S>(
    config: EngineConfig,
    policy: P,
    store: S,
    stored: Vec<DocumentId>,
    metrics: Arc<Metrics>,
) -> (Host<P>, tokio::task::JoinHandle<()>)
where
    P: Policy + Send + 'static,
    P::Principal: PartialEq + Send,
    S: Storage,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let (notifications, _) = broadcast::channel(4_096);
    let host = Host { tx, notifications };
    let connections: Connections = Arc::default();
    let (storage_tx, storage_rx) = std::sync::mpsc::channel();
    let storage = {
        let host = host.clone();
        let connections = connections.clone();
        let metrics = metrics.clone();
        std::thread::Builder::new()
            .name("ibis-storage".into())
            .spawn(move || storage_thread(store, storage_rx, host, connections, metrics))
    };
    let host_notifications = host.notifications.clone();
    let task = tokio::spawn(async move {
        let storage = match storage {
            Ok(handle) => handle,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the storage thread");
                return;
            }
        };
        let clock = Instant::now();
        let engine = Engine::new(config, policy, stored, 1_000);
        let mut task = EngineTask {
            engine,
            clock,
            storage: storage_tx,
            connections,
            metrics,
            notifications: host_notifications,
        };
        task.run(rx).await;
        let _ = task.storage.send(StorageMessage::Stop);
        let _ = tokio::task::spawn_blocking(move || storage.join()).await;
    });
    (host, task)
}

struct EngineTask<P: Policy> {
    engine: Engine<P>,
    clock: Instant,
    storage: std::sync::mpsc::Sender<StorageMessage>,
    connections: Connections,
    metrics: Arc<Metrics>,
    notifications: broadcast::Sender<Notification>,
}

impl<P: Policy> EngineTask<P>
where
    P::Principal: PartialEq,
{
    fn now(&self) -> Millis {
        1_000 + self.clock.elapsed().as_millis() as Millis
    }

    async fn run(&mut self, mut rx: mpsc::UnboundedReceiver<HostInput<P>>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                input = rx.recv() => {
                    let Some(input) = input else { break };
                    if let Some(done) = self.handle(input) {
                        self.close_all();
                        self.flush();
                        let _ = done.send(());
                        return;
                    }
                    // Take whatever else is already queued, so one storage job (one
                    // commit) covers many inputs under load.
                    for _ in 0..1024 {
                        let Ok(input) = rx.try_recv() else { break };
                        if let Some(done) = self.handle(input) {
                            self.close_all();
                            self.flush();
                            let _ = done.send(());
                            return;
                        }
                    }
                }
                _ = tick.tick() => {
                    let now = self.now();
                    let evicted = self.engine.stats().documents_evicted;
                    self.engine.handle(now, Input::Tick);
                    if self.engine.stats().documents_evicted > evicted {
                        release_freed_memory();
                    }
                }
            }
            self.flush();
        }
    }

    /// Feeds one input; returns the shutdown acknowledgement when asked to stop.
    fn handle(&mut self, input: HostInput<P>) -> Option<oneshot::Sender<()>> {
        let now = self.now();
        match input {
            HostInput::Open {
                conn,
                direction,
                principal,
                outbound,
            } => {
                if let Ok(mut map) = self.connections.lock() {
                    map.insert(conn, outbound);
                }
                self.engine.handle(
                    now,
                    Input::Connected {
                        conn,
                        direction,
                        principal,
                    },
                );
            }
            HostInput::Frame { conn, frame } => {
                self.engine.handle(now, Input::Frame { conn, frame })
            }
            HostInput::Text { conn } => self.engine.handle(now, Input::TextFrame { conn }),
            HostInput::Closed { conn } => {
                self.engine.handle(now, Input::Disconnected { conn });
                if let Ok(mut map) = self.connections.lock() {
                    map.remove(&conn);
                }
            }
            HostInput::Loaded { document, result } => {
                self.engine.handle(now, Input::Loaded { document, result })
            }
            HostInput::Run(f) => f(&mut self.engine, now),
            HostInput::Shutdown(done) => return Some(done),
        }
        None
    }

    /// Tells every peer we are going, and lets the engine save their sync states.
    fn close_all(&mut self) {
        let now = self.now();
        let conns: Vec<ConnectionId> = match self.connections.lock() {
            Ok(map) => map.keys().copied().collect(),
            Err(_) => Vec::new(),
        };
        for conn in conns {
            if let Ok(map) = self.connections.lock() {
                if let Some(tx) = map.get(&conn) {
                    let _ = tx.try_send(Outbound::Close("node shutting down".into()));
                }
            }
            self.engine.handle(now, Input::Disconnected { conn });
        }
    }

    /// Hands everything the engine produced to the storage thread, in order.
    fn flush(&mut self) {
        let mut job = Job::default();
        for output in self.engine.drain_outputs() {
            match output {
                Output::Send { conn, frame } => job.deliveries.push((conn, Outbound::Frame(frame))),
                Output::Close { conn, reason } => {
                    job.deliveries.push((conn, Outbound::Close(reason)))
                }
                Output::Store(op) => job.writes.push(op),
                Output::Load { document } => job.loads.push(document),
                Output::Notify(n) => {
                    if self.notifications.receiver_count() > 0 {
                        let _ = self.notifications.send(n.clone());
                    }
                    note(&self.metrics, n)
                }
            }
        }
        self.metrics.observe_engine(&self.engine);
        if !job.is_empty() && self.storage.send(StorageMessage::Job(job)).is_err() {
            tracing::error!("the storage thread has stopped; output dropped");
        }
    }
}

/// Hands memory freed by evicted documents back to the operating system. glibc keeps
/// freed memory in its arenas, so without this a node's RSS stays at its busiest level
/// long after the documents have left memory (measured: 217 MB with 3,000 practices
/// loaded, still 163 MB after all were evicted).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    tokio::task::spawn_blocking(|| {
        // SAFETY: malloc_trim only walks glibc's own heap structures under its locks;
        // it has no preconditions.
        unsafe {
            libc::malloc_trim(0);
        }
    });
}

fn note(metrics: &Metrics, n: Notification) {
    match n {
        Notification::PeerConnected {
            conn,
            peer_id,
            metadata,
        } => {
            tracing::info!(?conn, %peer_id, storage_id = ?metadata.storage_id, "peer connected")
        }
        Notification::PeerDisconnected { conn } => tracing::info!(?conn, "peer disconnected"),
        Notification::ProtocolViolation { conn, reason } => {
            tracing::warn!(?conn, %reason, "protocol violation; connection closed")
        }
        Notification::ChangeRejected {
            conn,
            document,
            reason,
        } => tracing::warn!(?conn, %document, %reason, "change rejected"),
        Notification::PeerError { conn, message } => {
            tracing::warn!(?conn, %message, "peer reported an error")
        }
        Notification::DocumentCorrupt { document, error } => {
            tracing::error!(%document, %error, "stored document does not load")
        }
        Notification::SyncProgress { conn, done, total } => {
            if done == total {
                tracing::info!(?conn, total, "bulk sync with replica settled");
            }
        }
        Notification::DocumentChanged { .. } => {
            metrics.documents_changed.fetch_add(1, Ordering::Relaxed);
        }
        Notification::DocumentReady { .. }
        | Notification::DocumentUnavailable { .. }
        | Notification::Ephemeral { .. } => {}
    }
}

fn storage_thread<P, S>(
    mut store: S,
    rx: std::sync::mpsc::Receiver<StorageMessage>,
    host: Host<P>,
    connections: Connections,
    metrics: Arc<Metrics>,
) where
    P: Policy + Send + 'static,
    P::Principal: PartialEq + Send,
    S: Storage,
{
    loop {
        let Ok(first) = rx.recv() else { return };
        let mut jobs = Vec::new();
        let mut stop = false;
        match first {
            StorageMessage::Job(job) => jobs.push(job),
            StorageMessage::Stop => stop = true,
        }
        while !stop {
            match rx.try_recv() {
                Ok(StorageMessage::Job(job)) => jobs.push(job),
                Ok(StorageMessage::Stop) => stop = true,
                Err(_) => break,
            }
        }
        if !jobs.is_empty() {
            run_jobs(&mut store, jobs, &host, &connections, &metrics);
        }
        if stop {
            return;
        }
    }
}

fn run_jobs<P, S>(
    store: &mut S,
    jobs: Vec<Job>,
    host: &Host<P>,
    connections: &Connections,
    metrics: &Metrics,
) where
    P: Policy + Send + 'static,
    P::Principal: PartialEq + Send,
    S: Storage,
{
    let started = Instant::now();
    let writes: Vec<&StoreOp> = jobs.iter().flat_map(|j| &j.writes).collect();
    let loads: Vec<DocumentId> = jobs.iter().flat_map(|j| j.loads.iter().copied()).collect();
    let outcome = store.apply_and_load(&writes, &loads);
    let writes = writes.len();
    if writes > 0 {
        metrics.observe_commit(started.elapsed(), writes);
    }
    let loaded = match outcome {
        Ok(results) => loads.into_iter().zip(results).collect::<Vec<_>>(),
        Err(e) => {
            // Nothing of these jobs is durable: their frames must not go out. Close every
            // connection so peers resync from what is actually stored, and stop serving.
            tracing::error!(error = %e, "storage commit failed; closing all connections");
            metrics.storage_failures.fetch_add(1, Ordering::Relaxed);
            metrics.healthy.store(false, Ordering::Relaxed);
            if let Ok(map) = connections.lock() {
                for tx in map.values() {
                    let _ = tx.try_send(Outbound::Close("storage failure".into()));
                }
            }
            for document in loads {
                host.send(HostInput::Loaded {
                    document,
                    result: Err(format!("storage failure: {e}")),
                });
            }
            return;
        }
    };
    let mut too_slow = Vec::new();
    if let Ok(map) = connections.lock() {
        for job in jobs {
            for (conn, out) in job.deliveries {
                let Some(tx) = map.get(&conn) else { continue };
                if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(out) {
                    too_slow.push(conn);
                }
            }
        }
    }
    for conn in too_slow {
        tracing::warn!(?conn, "peer reads too slowly; disconnecting it");
        if let Ok(mut map) = connections.lock() {
            map.remove(&conn);
        }
        host.send(HostInput::Closed { conn });
    }
    for (document, result) in loaded {
        host.send(HostInput::Loaded { document, result });
    }
}
