//! Data dirs made by earlier versions, brought up to this one when a node opens them
//! ([`crate::store::Store::open`], inside the transaction that moves the tables to the new
//! schema version: all of it or nothing).
//!
//! Schema 2 → 3: a practice was one document, published in place, so a published
//! practice's history holds its drafts, its reviewers' comments and its contact whether or
//! not the contact consented. Each practice this organization owns becomes:
//! - an **internal practice** under a new id, with the old history (which stays home);
//! - if it was published or archived, a **public practice** under a new id, made from its
//!   current public fields only (see `ibis_shared::model::publication`).
//!
//! The old id is erased here (and remembered, so it is never taken in again) and named as
//! withdrawn in the catalogue (for partners, which erase their copies) and the workspace
//! (for members' browsers); the listings name the new ids; this organization's events and
//! practices link to the new public ids.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use automerge::Automerge;
use autosurgeon::{hydrate, reconcile};
use ibis_shared::model::catalogue::{withdraw, Listing};
use ibis_shared::model::event::Event;
use ibis_shared::model::publication::new_public_document;
use ibis_shared::model::{commit_options, kind_of, DocumentKind, Practice, TagSet};
use ibis_shared::{AutomergeUrl, DocumentId};
use rusqlite::{params, Connection};

use crate::config::Config;
use crate::init::{node_author, now_ms};

/// What one migration did, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Migrated {
    pub internal: usize,
    pub public: usize,
}

fn stored_ids(conn: &Connection) -> anyhow::Result<Vec<DocumentId>> {
    let mut stmt = conn.prepare("SELECT DISTINCT document FROM chunks ORDER BY document")?;
    let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
    let mut ids = Vec::new();
    for row in rows {
        ids.push(DocumentId::from_slice(&row?)?);
    }
    Ok(ids)
}

fn load(conn: &Connection, id: &DocumentId) -> anyhow::Result<Option<Automerge>> {
    let mut stmt = conn.prepare("SELECT bytes FROM chunks WHERE document = ?1 ORDER BY seq")?;
    let chunks = stmt
        .query_map([id.as_bytes().as_slice()], |r| r.get::<_, Vec<u8>>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    if chunks.is_empty() {
        return Ok(None);
    }
    let bytes = chunks.concat();
    ibis_shared::bounds::measure_chunks(&bytes, &ibis_shared::bounds::Bounds::default())
        .with_context(|| format!("stored document {id}"))?;
    Ok(Some(Automerge::load(&bytes).with_context(|| {
        format!("stored document {id} does not load")
    })?))
}

fn save(conn: &Connection, id: &DocumentId, doc: &Automerge) -> anyhow::Result<()> {
    let key = id.as_bytes();
    conn.execute("DELETE FROM chunks WHERE document = ?1", [key.as_slice()])?;
    conn.execute(
        "INSERT INTO chunks (document, seq, bytes) VALUES (?1, 1, ?2)",
        params![key.as_slice(), doc.save()],
    )?;
    Ok(())
}

fn erase(conn: &Connection, id: &DocumentId, now: i64) -> anyhow::Result<()> {
    let key = id.as_bytes();
    conn.execute("DELETE FROM chunks WHERE document = ?1", [key.as_slice()])?;
    conn.execute(
        "DELETE FROM sync_states WHERE document = ?1",
        [key.as_slice()],
    )?;
    conn.execute(
        "INSERT OR IGNORE INTO erased_documents (document, erased_at) VALUES (?1, ?2)",
        params![key.as_slice(), now],
    )?;
    Ok(())
}

/// Schema 2 → 3 (see the module docs), on the connection of the open transaction.
pub fn split_practices(conn: &Connection, data_dir: &Path) -> anyhow::Result<Migrated> {
    let config = Config::load(data_dir)?;
    let org = &config.organization.id;
    let org_name = &config.organization.name;
    let author = node_author(&config);
    let now = now_ms();

    // Which of our practices become what.
    let mut ours: BTreeMap<DocumentId, (Automerge, Practice)> = BTreeMap::new();
    let mut events = Vec::new();
    for id in stored_ids(conn)? {
        let Some(doc) = load(conn, &id)? else {
            continue;
        };
        match kind_of(&doc) {
            Some(DocumentKind::Practice) => {
                let practice = Practice::load(&doc)?;
                if practice.provenance.home_organization == *org {
                    ours.insert(id, (doc, practice));
                }
            }
            Some(DocumentKind::Event) => events.push((id, doc)),
            _ => {}
        }
    }
    let renamed: BTreeMap<DocumentId, (DocumentId, Option<DocumentId>)> = ours
        .iter()
        .map(|(old, (_, p))| {
            let public = p.state().is_public().then(DocumentId::random);
            (*old, (DocumentId::random(), public))
        })
        .collect();
    let public_url = |url: &str| -> Option<String> {
        let old = AutomergeUrl::parse(url).ok()?.document_id;
        let (_, public) = renamed.get(&old)?;
        Some(public.map(|p| p.url()).unwrap_or_default())
    };

    let mut migrated = Migrated::default();
    for (old, (mut doc, practice)) in ours {
        let (internal_id, public_id) = renamed[&old];
        let links: Vec<String> = practice
            .replicated_by
            .iter()
            .map(|url| public_url(url).unwrap_or_else(|| url.clone()))
            .filter(|url| !url.is_empty())
            .collect();
        if let Some(public_id) = public_id {
            let mut projected = practice.clone();
            projected.replicated_by = links.clone();
            let public = new_public_document(&projected, &author, org_name, practice.state(), now)
                .with_context(|| format!("the public form of practice {old}"))?;
            save(conn, &public_id, &public)?;
            migrated.public += 1;
        }
        doc.transact_with::<_, _, anyhow::Error, _>(
            |_| commit_options(&author, "became an internal practice", now),
            |tx| {
                let mut p: Practice = hydrate(tx)?;
                p.kind = DocumentKind::InternalPractice.type_name().to_owned();
                p.public = public_id.map(|id| id.url()).unwrap_or_default();
                p.replicated_by = links.clone();
                Ok(reconcile(tx, &p)?)
            },
        )
        .map_err(|f| f.error)?;
        save(conn, &internal_id, &doc)?;
        erase(conn, &old, now)?;
        migrated.internal += 1;
    }

    // The listings name the new ids, and the old ones as withdrawn.
    for (kind, listing_id) in [
        (DocumentKind::Workspace, config.documents.workspace),
        (DocumentKind::Catalogue, config.documents.catalogue),
    ] {
        let Some(mut listing) = load(conn, &listing_id)? else {
            continue;
        };
        let before = listing.get_heads();
        for (old, (internal, public)) in &renamed {
            let listed = Listing::load(&listing, kind)?
                .practices
                .contains(&old.to_string());
            match kind {
                DocumentKind::Workspace => {
                    withdraw(&mut listing, kind, *old, Some(*internal), &author, now)?
                }
                _ if listed || public.is_some() => {
                    withdraw(&mut listing, kind, *old, *public, &author, now)?
                }
                _ => {}
            }
        }
        if listing.get_heads() != before {
            save(conn, &listing_id, &listing)?;
        }
    }

    // Our events discuss the public practices.
    for (id, mut doc) in events {
        let event = Event::load(&doc)?;
        if event.home_organization != *org
            || !event
                .related_practices
                .iter()
                .any(|p| DocumentId::parse(p).is_ok_and(|p| renamed.contains_key(&p)))
        {
            continue;
        }
        doc.transact_with::<_, _, anyhow::Error, _>(
            |_| commit_options(&author, "linked the public practices", now),
            |tx| {
                let mut e: Event = hydrate(tx)?;
                let related: TagSet = e
                    .related_practices
                    .iter()
                    .filter_map(
                        |p| match DocumentId::parse(p).ok().and_then(|p| renamed.get(&p)) {
                            Some((_, public)) => public.map(|id| id.to_string()),
                            None => Some(p.to_owned()),
                        },
                    )
                    .collect();
                e.related_practices = related;
                Ok(reconcile(tx, &e)?)
            },
        )
        .map_err(|f| f.error)?;
        save(conn, &id, &doc)?;
    }

    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, 'stale')
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [crate::index::VERSION_KEY],
    )?;
    tracing::info!(
        internal = migrated.internal,
        public = migrated.public,
        "practices split into internal and public documents"
    );
    Ok(migrated)
}
