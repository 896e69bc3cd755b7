//! Publishing and withdrawing. Each touches two documents — the internal practice, which
//! never leaves the organization, and its public practice, made new from the public fields
//! (`ibis_shared::model::publication`) — and the organization's catalogue, which lists the
//! public practice or names it as withdrawn.

use automerge::Automerge;
use ibis_shared::model::catalogue::{self, Entry};
use ibis_shared::model::publication::{self, Published};
use ibis_shared::model::{Author, DocumentKind};
use ibis_shared::DocumentId;
use leptos::prelude::*;

use super::{change_listing, ctx, list_in};
use crate::replica::{now_ms, replica};

const NOT_READY: &str = "storage is not ready";

/// The person acting and their organization's name.
fn who() -> Result<(Author, String), String> {
    let ctx = ctx();
    let author = ctx.author().ok_or("log in first")?;
    let organization = ctx
        .node
        .get_untracked()
        .map(|n| n.organization.name)
        .ok_or("not connected to a node yet")?;
    Ok((author, organization))
}

/// Publishes a practice being created (`doc`, its internal practice, not stored yet):
/// returns its public practice, to pass to [`add_published`] once `doc` is stored.
pub fn publish_new(doc: &mut Automerge) -> Result<Published, String> {
    let (author, organization) = who()?;
    publication::publish(doc, &author, &organization, "", now_ms() as i64)
        .map_err(|e| e.to_string())
}

/// Stores a public practice just made and lists it in the catalogue; returns its id.
pub fn add_published(published: Published) -> Result<DocumentId, String> {
    let (author, _) = who()?;
    let replica = replica().ok_or(NOT_READY)?;
    let id = published.id;
    replica
        .insert(id, published.document)
        .map_err(|e| e.to_string())?;
    list_in(DocumentKind::Catalogue, Entry::Practice, id, &author)?;
    Ok(id)
}

/// A reviewer publishes the internal practice `internal`: returns its public practice.
pub fn publish(internal: DocumentId, comment: &str) -> Result<DocumentId, String> {
    let (author, organization) = who()?;
    let replica = replica().ok_or(NOT_READY)?;
    let published = replica
        .change(internal, |doc| {
            publication::publish(doc, &author, &organization, comment, now_ms() as i64)
        })
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    add_published(published)
}

/// Withdraws the public practice `old`, whose internal practice is `internal` (which takes
/// its public fields back): republished under a new id (`republish`) or `internal` returns
/// to draft. The catalogue names `old` as withdrawn, so every ibis replica erases it, and
/// this browser erases it now. Returns the page to show: the new public practice, or the
/// internal one.
pub fn withdraw(
    old: DocumentId,
    internal: DocumentId,
    republish: bool,
    comment: &str,
) -> Result<DocumentId, String> {
    let (author, organization) = who()?;
    let replica = replica().ok_or(NOT_READY)?;
    // A copy (saved and loaded: cloning a document would add its own code to the app).
    let public = replica
        .with_doc(&old, Automerge::save)
        .and_then(|bytes| Automerge::load(&bytes).ok())
        .ok_or("the published practice is not loaded yet")?;
    let now = now_ms() as i64;
    let republished = replica
        .change(internal, |doc| {
            publication::withdraw(
                doc,
                &public,
                &author,
                &organization,
                republish,
                comment,
                now,
            )
        })
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let new = match republished {
        Some(p) => {
            replica
                .insert(p.id, p.document)
                .map_err(|e| e.to_string())?;
            Some(p.id)
        }
        None => None,
    };
    change_listing(DocumentKind::Catalogue, |doc| {
        catalogue::withdraw(doc, DocumentKind::Catalogue, old, new, &author, now)
    })?;
    replica.erase_public(old, new);
    Ok(new.unwrap_or(internal))
}
