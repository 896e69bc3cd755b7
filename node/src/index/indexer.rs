//! The indexer: the task that keeps the [`PracticeIndex`] following the documents the
//! engine changes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ibis_shared::sync::{Notification, Policy};
use ibis_shared::DocumentId;

use super::{IndexEntry, PracticeIndex};
use crate::host::Host;

/// Keeps the index following the documents: collects the ids of changed documents from
/// the engine's notifications and, a quarter second later, indexes those that are
/// practices. If notifications were missed (the engine outran us), everything loaded is
/// reindexed. A batch the index could not take stays due and is tried again, less often
/// while failures go on (up to once a minute): nothing changed is left out of search.
pub fn spawn<P>(host: Host<P>, index: Arc<PracticeIndex>) -> tokio::task::JoinHandle<()>
where
    P: Policy + Send + 'static,
    P::Principal: PartialEq + Send,
{
    const TICK: Duration = Duration::from_millis(250);
    const MOST_TICKS_BETWEEN_RETRIES: u32 = 240;
    tokio::spawn(async move {
        let mut events = host.subscribe();
        let mut dirty: BTreeSet<DocumentId> = BTreeSet::new();
        let mut everything = false;
        let mut tick = tokio::time::interval(TICK);
        let mut failures: u32 = 0;
        let mut ticks_to_wait: u32 = 0;
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(Notification::DocumentChanged { document, .. })
                    | Ok(Notification::DocumentReady { document })
                    | Ok(Notification::DocumentErased { document }) => {
                        dirty.insert(document);
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => everything = true,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick() => {
                    if dirty.is_empty() && !everything {
                        continue;
                    }
                    if ticks_to_wait > 0 {
                        ticks_to_wait -= 1;
                        continue;
                    }
                    let ids = std::mem::take(&mut dirty);
                    let all = std::mem::take(&mut everything);
                    let wanted = ids.clone();
                    // What is no longer listed (published internally, erased) leaves the
                    // index; what is not in memory is left as it is.
                    let changes = host
                        .run(move |engine, _| {
                            let ids: Vec<DocumentId> = if all {
                                engine.known_documents().collect()
                            } else {
                                wanted.into_iter().collect()
                            };
                            let mut entries = Vec::new();
                            let mut removed = Vec::new();
                            for id in ids {
                                match engine.document(&id) {
                                    Some(doc) => match IndexEntry::of(id, doc) {
                                        Some(entry) => entries.push(entry),
                                        None => removed.push(id),
                                    },
                                    None if engine.is_erased(&id) => removed.push(id),
                                    None => {}
                                }
                            }
                            (entries, removed)
                        })
                        .await;
                    let Some((entries, removed)) = changes else { return };
                    if entries.is_empty() && removed.is_empty() {
                        continue;
                    }
                    let index = index.clone();
                    let error = match tokio::task::spawn_blocking(move || index.update(&entries, &removed)).await {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(e.to_string()),
                        Err(e) => Some(format!("the indexing task failed: {e}")),
                    };
                    match error {
                        None => failures = 0,
                        Some(error) => {
                            dirty.extend(ids);
                            everything |= all;
                            failures = failures.saturating_add(1);
                            ticks_to_wait = 2u32
                                .saturating_pow(failures.min(8))
                                .min(MOST_TICKS_BETWEEN_RETRIES);
                            tracing::error!(
                                %error,
                                documents = dirty.len(),
                                retry_in_ms = u64::from(ticks_to_wait) * TICK.as_millis() as u64,
                                "cannot update the practice index; will try again"
                            );
                        }
                    }
                }
            }
        }
    })
}
