//! The node's host for the sync engine.
//!
//! One task, on a thread of its own, owns the [`Engine`]; connections and timers send it
//! [`HostInput`]s over a channel. Frames go to each connection's task as soon as the
//! engine has made them ([`Engine::drain_outputs`] makes the sync messages a change owes
//! its peers one at a time), so the first peers have a relayed change while the engine
//! still makes the rest. What the engine asks storage to do goes, in order, to one storage
//! thread as a job ([`storage`]): it commits the writes of every job it has queued in a
//! single SQLite transaction (a group commit: one fsync for many changes) and answers loads
//! from inside that transaction.
//!
//! **Durable before acknowledged.** Once a connection's frame has made the engine store
//! something (it is that change's author; our reply says "the node has your change"),
//! every frame to that connection from the same batch is held until the batch is
//! committed. Frames to everyone else (relaying the change to the other peers) go out at
//! once, without waiting for the fsync: if the node crashed before the commit, nothing is
//! lost, because the author has the change and was not told the node keeps it, and the
//! peers that got it resend it when they reconnect. Each connection still gets its frames
//! in the order the engine produced them ([`outlets`]).

mod outlets;
mod storage;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ibis_shared::sync::{
    ChangeOrigin, ConnectionId, Direction, Engine, EngineConfig, Input, Millis, Notification,
    Output, Policy, StoredDocument,
};
use ibis_shared::DocumentId;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::metrics::Metrics;
use outlets::{Dispatched, Outlets};
use storage::{storage_thread, Job, StorageMessage};
pub use storage::{Loaded, MemoryStorage, Storage, StorageError};

/// How stale the metrics' copy of the engine's counters may be while the node is busy
/// (when idle, the next tick refreshes it).
const OBSERVE_EVERY: Duration = Duration::from_millis(100);

/// Frames queued for one connection before it counts as too slow and is dropped.
pub const OUTBOUND_QUEUE: usize = 8_192;

/// What a connection task receives from the host.
#[derive(Debug)]
pub enum Outbound {
    Frame(Vec<u8>),
    Close(String),
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
        /// The frame's share of its connection's inbound budget, given back once the
        /// engine has taken the frame in (see `connection::pump`).
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
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
    /// Storage failed to commit (see `Input::StorageFailed`).
    StorageFailed,
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

/// What storage holds when the engine starts.
#[derive(Debug, Default)]
pub struct Held {
    /// Documents with stored chunks.
    pub stored: Vec<DocumentId>,
    /// Documents erased here, never to be taken in again.
    pub erased: Vec<DocumentId>,
}

/// Starts the engine's thread and the storage thread. Returns the handle and a future that
/// completes when both have stopped (after [`Host::shutdown`]).
pub fn start<P, S>(
    config: EngineConfig,
    policy: P,
    store: S,
    held: Held,
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
    let outlets = Outlets::default();
    let (storage_tx, storage_rx) = std::sync::mpsc::channel();
    let storage = {
        let host = host.clone();
        let outlets = outlets.clone();
        let metrics = metrics.clone();
        std::thread::Builder::new()
            .name("ibis-storage".into())
            .spawn(move || storage_thread(store, storage_rx, host, outlets, metrics))
    };
    let host_notifications = host.notifications.clone();
    let run_engine = move |owner: oneshot::Receiver<()>| async move {
        let storage = match storage {
            Ok(handle) => handle,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the storage thread");
                return;
            }
        };
        let clock = Instant::now();
        let engine = Engine::new(config, policy, held.stored, 1_000).with_erased(held.erased);
        let mut task = EngineTask {
            engine,
            clock,
            storage: storage_tx,
            outlets,
            authors: HashSet::new(),
            metrics,
            observed_at: None,
            epoch: 0,
            notifications: host_notifications,
        };
        task.run(rx, owner).await;
        let _ = task.storage.send(StorageMessage::Stop);
        let _ = tokio::task::spawn_blocking(move || storage.join()).await;
    };
    // The engine has a thread of its own (with a single-threaded runtime for its channel
    // and timer), so the connections' tasks keep both of tokio's workers: while the engine
    // makes the sync messages for a relayed change, the frames it has made already go out
    // on those workers, and its longer work (a load, a bulk sync) never holds up sockets
    // or HTTP.
    //
    // The task returned stands for the engine in the caller's runtime: it ends when the
    // engine does, and if that runtime drops it first (shutting down without
    // `Host::shutdown`), the engine stops too, as a task of that runtime would.
    let (owner_tx, owner) = oneshot::channel::<()>();
    let (done_tx, done) = oneshot::channel::<()>();
    let engine_task = async move {
        run_engine(owner).await;
        let _ = done_tx.send(());
    };
    let spawned = std::thread::Builder::new()
        .name("ibis-engine".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(engine_task),
                Err(e) => tracing::error!(error = %e, "cannot start the engine's runtime"),
            }
        });
    if let Err(e) = &spawned {
        tracing::error!(error = %e, "cannot start the engine thread");
    }
    let task = tokio::spawn(async move {
        let _owner = owner_tx;
        // Err: the engine thread ended without finishing (it panicked, or never started).
        if done.await.is_err() {
            tracing::error!("the engine stopped unexpectedly");
        }
    });
    (host, task)
}

struct EngineTask<P: Policy> {
    engine: Engine<P>,
    clock: Instant,
    storage: std::sync::mpsc::Sender<StorageMessage>,
    outlets: Outlets,
    /// Connections whose changes the engine stored since the last flush (as its
    /// notifications say): what we send them after that waits for the commit.
    authors: HashSet<ConnectionId>,
    metrics: Arc<Metrics>,
    /// When the metrics last copied the engine's counters and gauges.
    observed_at: Option<Instant>,
    /// Storage failures taken in (see `storage::Job::epoch`).
    epoch: u64,
    notifications: broadcast::Sender<Notification>,
}

impl<P: Policy> EngineTask<P>
where
    P::Principal: PartialEq,
{
    fn now(&self) -> Millis {
        1_000 + self.clock.elapsed().as_millis() as Millis
    }

    /// Handles inputs until told to shut down, until every handle is gone, or until the
    /// task that started the engine is (its runtime shut down).
    async fn run(
        &mut self,
        mut rx: mpsc::UnboundedReceiver<HostInput<P>>,
        mut owner: oneshot::Receiver<()>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Messages waiting for a peer's answer go when their wait is over.
            let wake = self
                .engine
                .next_deadline()
                .map(|at| self.clock + Duration::from_millis(at.saturating_sub(1_000)));
            tokio::select! {
                _ = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now).into()), if wake.is_some() => {
                    let now = self.now();
                    self.engine.handle(now, Input::Wake);
                }
                input = rx.recv() => {
                    let Some(input) = input else { break };
                    // Changes several peers send to one document meanwhile are applied
                    // together when the outputs are taken (one apply, one write).
                    self.engine.defer_applies();
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
                _ = &mut owner => break,
                _ = tick.tick() => {
                    let now = self.now();
                    let evicted = self.engine.stats().documents_evicted;
                    self.engine.handle(now, Input::Tick);
                    if self.engine.stats().documents_evicted > evicted {
                        release_freed_memory();
                    }
                    // Each tick's flush refreshes the metrics, however recent they are.
                    self.observed_at = None;
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
                self.outlets.open(conn, outbound);
                self.engine.handle(
                    now,
                    Input::Connected {
                        conn,
                        direction,
                        principal,
                    },
                );
            }
            HostInput::Frame {
                conn,
                frame,
                permit,
            } => {
                self.engine.handle(now, Input::Frame { conn, frame });
                drop(permit);
            }
            HostInput::Text { conn } => self.engine.handle(now, Input::TextFrame { conn }),
            HostInput::Closed { conn } => {
                self.engine.handle(now, Input::Disconnected { conn });
                self.outlets.remove(conn);
            }
            HostInput::Loaded { document, result } => {
                self.engine.handle(now, Input::Loaded { document, result })
            }
            HostInput::StorageFailed => {
                self.engine.handle(now, Input::StorageFailed);
                self.epoch += 1;
                for conn in self.outlets.connections() {
                    self.outlets.remove(conn);
                }
            }
            HostInput::Run(f) => {
                self.engine.apply_deferred();
                f(&mut self.engine, now)
            }
            HostInput::Shutdown(done) => return Some(done),
        }
        None
    }

    /// Tells every peer we are going, and lets the engine save their sync states.
    fn close_all(&mut self) {
        let now = self.now();
        for conn in self.outlets.connections() {
            self.outlets
                .send_now(conn, Outbound::Close("node shutting down".into()));
            self.engine.handle(now, Input::Disconnected { conn });
        }
    }

    /// Sends or holds every frame the engine produced, and hands the rest to the storage
    /// thread, in order.
    fn flush(&mut self) {
        loop {
            let too_slow = self.flush_once();
            if too_slow.is_empty() {
                break;
            }
            // Their disconnection makes more output (sync states to save): flush again.
            for conn in too_slow {
                tracing::warn!(?conn, "peer reads too slowly; disconnecting it");
                self.handle(HostInput::Closed { conn });
            }
        }
        self.authors.clear();
    }

    /// One pass of [`Self::flush`]; returns the connections whose queue was full.
    fn flush_once(&mut self) -> Vec<ConnectionId> {
        let mut job = Job::default();
        let mut dispatched = Dispatched::default();
        // Each frame goes to its connection as soon as the engine has made it.
        for output in self.engine.drain_outputs() {
            let (conn, out) = match output {
                Output::Send { conn, frame } => (conn, Outbound::Frame(frame)),
                Output::Close { conn, reason } => (conn, Outbound::Close(reason)),
                Output::Store(op) => {
                    job.writes.push(op);
                    continue;
                }
                Output::Load { document } => {
                    job.loads.push(document);
                    continue;
                }
                Output::Notify(n) => {
                    // What we send a peer whose changes this job stores waits for the
                    // commit (the notification comes before anything made after them).
                    if let Notification::DocumentChanged {
                        origin: ChangeOrigin::Remote(conn),
                        ..
                    } = &n
                    {
                        self.authors.insert(*conn);
                    }
                    if self.notifications.receiver_count() > 0 {
                        let _ = self.notifications.send(n.clone());
                    }
                    note(&self.metrics, n);
                    continue;
                }
            };
            let must_wait = self.authors.contains(&conn);
            self.outlets
                .send_or_hold(&mut dispatched, conn, out, must_wait);
        }
        // Copying the gauges walks the documents in memory: under load, at most ten times a
        // second (it was 3% of the node's time when done after every flush).
        if self
            .observed_at
            .is_none_or(|at| at.elapsed() >= OBSERVE_EVERY)
        {
            self.metrics.observe_engine(&self.engine);
            self.observed_at = Some(Instant::now());
        }
        job.held = dispatched.held;
        job.epoch = self.epoch;
        if !job.is_empty() && self.storage.send(StorageMessage::Job(job)).is_err() {
            tracing::error!("the storage thread has stopped; output dropped");
        }
        dispatched.too_slow
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
        Notification::DocumentErased { document } => {
            tracing::info!(%document, "document erased")
        }
        Notification::DocumentReady { .. }
        | Notification::DocumentUnavailable { .. }
        | Notification::Ephemeral { .. } => {}
    }
}
