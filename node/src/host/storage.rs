//! The storage thread: it commits the writes of every job it has queued in one SQLite
//! transaction (a group commit: one fsync for many changes), answers loads from inside
//! that transaction, and only then releases the frames the jobs held.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use ibis_shared::sync::{Policy, StoreOp, StoredDocument};
use ibis_shared::DocumentId;

use super::outlets::{Held, Outlets};
use super::{Host, HostInput};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// Why every connection is closed when a commit fails.
pub(crate) const STORAGE_FAILURE: &str =
    "storage failure: the node cannot keep changes right now; try again later";

/// How often storage is tried again while it fails.
const PROBE_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Why storage did not do what it was asked: a batch's writes did not commit (nothing of
/// it is durable), or one document's stored data could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another backend's own failure (a test's, for one).
    #[error("{0}")]
    Other(String),
}

impl From<&str> for StorageError {
    fn from(reason: &str) -> Self {
        StorageError::Other(reason.to_owned())
    }
}

/// What storage holds for one document asked for: `None` when it holds nothing.
pub type Loaded = Result<Option<StoredDocument>, StorageError>;

/// What a host runs on: the node's SQLite store, or memory (a client in a test or a
/// benchmark). Writes and the loads that follow them happen atomically: all or nothing.
pub trait Storage: Send + 'static {
    fn apply_and_load(
        &mut self,
        writes: &[&StoreOp],
        loads: &[DocumentId],
    ) -> Result<Vec<Loaded>, StorageError>;

    /// After a failure: does a durable write go through again? (A small one; the next
    /// real batch tells for sure.)
    fn probe(&mut self) -> Result<(), StorageError> {
        Ok(())
    }
}

impl Storage for Store {
    fn apply_and_load(
        &mut self,
        writes: &[&StoreOp],
        loads: &[DocumentId],
    ) -> Result<Vec<Loaded>, StorageError> {
        let mut run = || -> Result<_, StoreError> {
            let batch = self.transaction()?;
            for op in writes {
                batch.write(op)?;
            }
            let loaded = loads
                .iter()
                .map(|id| batch.load(id).map_err(StorageError::from))
                .collect();
            batch.commit()?;
            Ok(loaded)
        };
        Ok(run()?)
    }

    /// Room for a megabyte is made and given back: a write that fits in a page already
    /// there would succeed on a database that is still full.
    fn probe(&mut self) -> Result<(), StorageError> {
        Ok(self.probe_room(PROBE_BYTES)?)
    }
}

/// What the probe writes (and then frees for real writes) before storage counts as working.
const PROBE_BYTES: usize = 1024 * 1024;

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
    ) -> Result<Vec<Loaded>, StorageError> {
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
                StoreOp::Erase { document } => {
                    self.chunks.remove(document);
                    self.sync_states.remove(document);
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

/// One batch of engine output: what to store and load, and the frames that wait for it.
#[derive(Default)]
pub(super) struct Job {
    pub writes: Vec<StoreOp>,
    pub loads: Vec<DocumentId>,
    pub held: Held,
    /// How many storage failures the engine had taken in when it made this job: a job
    /// made before the engine dropped what it held after a failure may build on writes
    /// that were lost, and is discarded.
    pub epoch: u64,
}

impl Job {
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.loads.is_empty() && self.held.is_empty()
    }
}

pub(super) enum StorageMessage {
    Job(Job),
    Stop,
}

pub(super) fn storage_thread<P, S>(
    mut store: S,
    rx: std::sync::mpsc::Receiver<StorageMessage>,
    host: Host<P>,
    outlets: Outlets,
    metrics: Arc<Metrics>,
) where
    P: Policy + Send + 'static,
    P::Principal: PartialEq + Send,
    S: Storage,
{
    // Jobs made before the engine took in the last failure are discarded.
    let mut epoch = 0;
    loop {
        // While failing, probe storage every couple of seconds: the node serves again as
        // soon as a write goes through (a disk that got space back, a fault that passed).
        let first = if metrics.healthy.load(Ordering::Relaxed) {
            match rx.recv() {
                Ok(first) => first,
                Err(_) => return,
            }
        } else {
            match rx.recv_timeout(PROBE_EVERY) {
                Ok(first) => first,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if store.probe().is_ok() {
                        tracing::info!("storage works again; serving");
                        metrics.healthy.store(true, Ordering::Relaxed);
                    }
                    continue;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            }
        };
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
        let (current, stale): (Vec<Job>, Vec<Job>) =
            jobs.into_iter().partition(|job| job.epoch >= epoch);
        for job in stale {
            for document in job.loads {
                host.send(HostInput::Loaded {
                    document,
                    result: Err("storage failed; loading again".into()),
                });
            }
        }
        if !current.is_empty() {
            let newest = current.iter().map(|j| j.epoch).max().unwrap_or(epoch);
            if !run_jobs(&mut store, current, &host, &outlets, &metrics) {
                epoch = newest + 1;
            }
        }
        if stop {
            return;
        }
    }
}

/// Commits the jobs and releases what they held; false if the commit failed.
fn run_jobs<P, S>(
    store: &mut S,
    jobs: Vec<Job>,
    host: &Host<P>,
    outlets: &Outlets,
    metrics: &Metrics,
) -> bool
where
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
        Ok(results) => {
            if writes > 0 && !metrics.healthy.swap(true, Ordering::Relaxed) {
                tracing::info!("storage works again; serving");
            }
            loads.into_iter().zip(results).collect::<Vec<_>>()
        }
        Err(e) => {
            // Nothing of these jobs is durable: their held frames must not go out. Every
            // connection closes (peers resync from what is actually stored when they come
            // back), the engine drops what it holds in memory (it may be ahead of
            // storage: a later increment would build on the lost one), and the node takes
            // no connection until a write goes through again. Peers may have had these
            // changes relayed already; their authors still have them, as after a crash.
            tracing::error!(error = %e, "storage commit failed; closing all connections until storage works");
            metrics.storage_failures.fetch_add(1, Ordering::Relaxed);
            metrics.healthy.store(false, Ordering::Relaxed);
            outlets.close_all(STORAGE_FAILURE);
            host.send(HostInput::StorageFailed);
            for document in loads {
                host.send(HostInput::Loaded {
                    document,
                    result: Err(format!("storage failure: {e}")),
                });
            }
            return false;
        }
    };
    let mut too_slow = Vec::new();
    for job in jobs {
        for conn in outlets.release(job.held) {
            if !too_slow.contains(&conn) {
                too_slow.push(conn);
            }
        }
    }
    for conn in too_slow {
        tracing::warn!(?conn, "peer reads too slowly; disconnecting it");
        outlets.remove(conn);
        host.send(HostInput::Closed { conn });
    }
    for (document, result) in loaded {
        host.send(HostInput::Loaded {
            document,
            result: result.map_err(|e| e.to_string()),
        });
    }
    true
}
