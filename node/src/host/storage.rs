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
            run_jobs(&mut store, jobs, &host, &outlets, &metrics);
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
    outlets: &Outlets,
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
            // Nothing of these jobs is durable: their held frames must not go out. Close
            // every connection so peers resync from what is actually stored, and stop
            // serving. (Peers may have had these changes relayed already; their authors
            // still have them, as after a crash.)
            tracing::error!(error = %e, "storage commit failed; closing all connections");
            metrics.storage_failures.fetch_add(1, Ordering::Relaxed);
            metrics.healthy.store(false, Ordering::Relaxed);
            outlets.close_all("storage failure");
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
        host.send(HostInput::Loaded { document, result });
    }
}
