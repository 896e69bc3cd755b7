//! Withdrawn documents are erased here. An organization withdraws a public document (a
//! contact withdrew consent, a mistake, the migration of a practice that held private
//! history) by naming it in its catalogue's `withdrawn` list; every node that holds the
//! catalogue erases that document ([`ibis_shared::sync::Engine::erase`]) if the
//! document, as stored here, is that organization's. A catalogue naming another
//! organization's document changes nothing, so no partner can erase what is not its own.
//!
//! A task follows the catalogues: each one that changes or arrives is read, and the
//! documents it withdraws are erased when they are here, or as soon as they arrive (a
//! withdrawal can reach a node before the document does). At start, every catalogue in the
//! directory is read once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use automerge::Automerge;
use ibis_shared::model::catalogue::Listing;
use ibis_shared::model::directory::Directory;
use ibis_shared::model::{kind_of, DocumentKind};
use ibis_shared::sync::{Engine, Millis, Notification};
use ibis_shared::DocumentId;

use crate::host::Host;
use crate::policy::{NodePolicy, Owner};

/// Withdrawn document → the organization that withdrew it.
type Withdrawn = Arc<Mutex<BTreeMap<DocumentId, String>>>;

fn lock(w: &Withdrawn) -> std::sync::MutexGuard<'_, BTreeMap<DocumentId, String>> {
    w.lock().unwrap_or_else(|p| p.into_inner())
}

/// True if the document, as stored here, belongs to `organization`.
fn owned_by(
    engine: &Engine<NodePolicy>,
    id: &DocumentId,
    doc: &Automerge,
    organization: &str,
) -> bool {
    let policy = engine.policy();
    match policy.owner(id, doc) {
        Owner::Us => policy.organization == organization,
        Owner::Organization(org) => org == organization,
        Owner::Shared | Owner::Nobody => false,
    }
}

/// Reads a catalogue's withdrawals; erases those whose documents are in memory and are
/// the catalogue's organization's. Returns the withdrawn documents stored but not in
/// memory, to be checked once loaded.
fn take_in(
    engine: &mut Engine<NodePolicy>,
    now: Millis,
    catalogue: &Automerge,
    withdrawn: &Withdrawn,
) -> Vec<DocumentId> {
    let Ok(listing) = Listing::load(catalogue, DocumentKind::Catalogue) else {
        return Vec::new();
    };
    let mut to_load = Vec::new();
    for (old, _) in listing.withdrawn_ids() {
        lock(withdrawn).insert(old, listing.organization.clone());
        if engine.is_erased(&old) {
            continue;
        }
        let owned = engine
            .document(&old)
            .map(|doc| owned_by(engine, &old, doc, &listing.organization));
        match owned {
            Some(true) => {
                tracing::info!(document = %old, organization = %listing.organization, "erasing a withdrawn document");
                engine.erase(now, old);
            }
            Some(false) => {}
            None if engine.is_stored(&old) => to_load.push(old),
            None => {}
        }
    }
    to_load
}

/// Erases `id` if it is here now and withdrawn by its own organization.
fn check(engine: &mut Engine<NodePolicy>, now: Millis, id: DocumentId, withdrawn: &Withdrawn) {
    let Some(org) = lock(withdrawn).get(&id).cloned() else {
        return;
    };
    if engine.is_erased(&id) {
        return;
    }
    let owned = engine
        .document(&id)
        .is_some_and(|doc| owned_by(engine, &id, doc, &org));
    if owned {
        tracing::info!(document = %id, organization = %org, "erasing a withdrawn document");
        engine.erase(now, id);
    }
}

/// Follows the catalogues until the host stops.
pub fn spawn(host: Host<NodePolicy>, directory: DocumentId) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let withdrawn: Withdrawn = Arc::default();
        let mut events = host.subscribe();
        // Every catalogue the directory names, once, at start.
        if let Some(dir) = read(&host, directory).await {
            let catalogues: Vec<DocumentId> = Directory::load(&dir)
                .map(|d| {
                    d.organizations
                        .values()
                        .filter_map(|o| o.catalogue_id())
                        .collect()
                })
                .unwrap_or_default();
            for id in catalogues {
                if let Some(doc) = read(&host, id).await {
                    let w = withdrawn.clone();
                    let to_load = host
                        .run(move |engine, now| take_in(engine, now, &doc, &w))
                        .await
                        .unwrap_or_default();
                    for old in to_load {
                        open_and_check(&host, old, &withdrawn).await;
                    }
                }
            }
        }
        // Changed and arrived documents, looked at together every quarter second (one
        // visit to the engine for many changes).
        let mut dirty: Vec<DocumentId> = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(Notification::DocumentChanged { document, .. })
                    | Ok(Notification::DocumentReady { document }) => {
                        if !dirty.contains(&document) {
                            dirty.push(document);
                        }
                        continue;
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick() => {}
            }
            if dirty.is_empty() {
                continue;
            }
            let ids = std::mem::take(&mut dirty);
            let w = withdrawn.clone();
            let to_load = host
                .run(move |engine, now| {
                    let mut to_load = Vec::new();
                    for id in ids {
                        let catalogue = engine
                            .document(&id)
                            .filter(|doc| kind_of(doc) == Some(DocumentKind::Catalogue))
                            .cloned();
                        match catalogue {
                            Some(doc) => to_load.extend(take_in(engine, now, &doc, &w)),
                            None => check(engine, now, id, &w),
                        }
                    }
                    to_load
                })
                .await;
            let Some(to_load) = to_load else { return };
            for old in to_load {
                open_and_check(&host, old, &withdrawn).await;
            }
        }
    })
}

/// Loads a stored document (if it is not in memory), reads it, lets it go.
async fn read(host: &Host<NodePolicy>, id: DocumentId) -> Option<Automerge> {
    let mut events = host.subscribe();
    let here = host
        .run(move |engine, now| {
            let here = engine.document(&id).cloned();
            if here.is_none() {
                engine.open(now, id);
            }
            here
        })
        .await?;
    if here.is_some() {
        return here;
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Ok(Notification::DocumentReady { document })
                | Ok(Notification::DocumentUnavailable { document })
                    if document == id =>
                {
                    return;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                _ => {}
            }
        }
    })
    .await;
    host.run(move |engine, _| {
        let doc = engine.document(&id).cloned();
        engine.close(&id);
        doc
    })
    .await
    .flatten()
}

async fn open_and_check(host: &Host<NodePolicy>, id: DocumentId, withdrawn: &Withdrawn) {
    if read(host, id).await.is_none() {
        return;
    }
    let w = withdrawn.clone();
    let _ = host
        .run(move |engine, now| {
            check(engine, now, id, &w);
        })
        .await;
}
