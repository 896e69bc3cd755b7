//! An organization's lists of its practices and events.
//!
//! Two documents per organization: the **catalogue** lists what it has published and is
//! shared with the whole network; the **workspace** lists everything, drafts included, and
//! never leaves the organization's own node. Entries are document ids in a map, so two
//! people adding practices at once both keep theirs.
//!
//! A listing also names the documents its organization **withdrew** (see
//! [`super::publication`]): every replica that holds the listing erases them, and links to
//! them lead to what replaced them, if anything.

use std::collections::BTreeMap;

use automerge::Automerge;
use autosurgeon::{hydrate, reconcile, Hydrate, Reconcile};

use super::{commit_options, genesis, Author, DocumentKind, ModelError, TagSet};
use crate::DocumentId;

#[derive(Debug, Clone, Default, PartialEq, Reconcile, Hydrate)]
pub struct Listing {
    #[autosurgeon(rename = "type")]
    pub kind: String,
    pub schema: u64,
    /// The organization this listing belongs to.
    #[autosurgeon(missing = "Default::default")]
    pub organization: String,
    /// Practice document ids.
    #[autosurgeon(missing = "Default::default")]
    pub practices: TagSet,
    /// Event document ids.
    #[autosurgeon(missing = "Default::default")]
    pub events: TagSet,
    /// Withdrawn document ids, each with the id that replaced it (empty if none).
    #[autosurgeon(missing = "Default::default")]
    pub withdrawn: BTreeMap<String, String>,
}

impl Listing {
    pub fn load(doc: &Automerge, kind: DocumentKind) -> Result<Self, ModelError> {
        let listing: Listing = hydrate(doc)?;
        if listing.kind != kind.type_name() {
            return Err(ModelError::Shape(format!(
                "expected an {} document, found `{}`",
                kind.type_name(),
                listing.kind
            )));
        }
        Ok(listing)
    }

    pub fn practice_ids(&self) -> impl Iterator<Item = DocumentId> + '_ {
        self.practices
            .iter()
            .filter_map(|s| DocumentId::parse(s).ok())
    }

    pub fn event_ids(&self) -> impl Iterator<Item = DocumentId> + '_ {
        self.events.iter().filter_map(|s| DocumentId::parse(s).ok())
    }

    /// Withdrawn documents, each with what replaced it.
    pub fn withdrawn_ids(&self) -> impl Iterator<Item = (DocumentId, Option<DocumentId>)> + '_ {
        self.withdrawn.iter().filter_map(|(old, new)| {
            let old = DocumentId::parse(old).ok()?;
            Some((old, DocumentId::parse(new).ok()))
        })
    }
}

/// A new, empty catalogue or workspace for an organization. Its first change is the same on
/// every replica that creates it for the same organization and kind.
pub fn new_listing(kind: DocumentKind, organization: &str) -> Result<Automerge, ModelError> {
    let mut seed = kind.type_name().as_bytes().to_vec();
    seed.extend_from_slice(organization.as_bytes());
    genesis(
        &seed,
        &Listing {
            kind: kind.type_name().to_owned(),
            schema: super::SCHEMA_VERSION,
            organization: organization.to_owned(),
            practices: TagSet::new(),
            events: TagSet::new(),
            withdrawn: BTreeMap::new(),
        },
    )
}

/// What a listing entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Practice,
    Event,
}

/// Adds or removes a document id in a listing.
pub fn set_entry(
    doc: &mut Automerge,
    kind: DocumentKind,
    entry: Entry,
    id: DocumentId,
    present: bool,
    author: &Author,
    now_ms: i64,
) -> Result<(), ModelError> {
    set_entries(doc, kind, entry, &[id], present, author, now_ms)
}

/// Adds or removes many document ids in a listing, as one change (an import of thousands
/// is one change, not thousands, each rereading the whole listing).
pub fn set_entries(
    doc: &mut Automerge,
    kind: DocumentKind,
    entry: Entry,
    ids: &[DocumentId],
    present: bool,
    author: &Author,
    now_ms: i64,
) -> Result<(), ModelError> {
    let noun = match (entry, ids.len()) {
        (Entry::Practice, 1) => "a practice".to_owned(),
        (Entry::Event, 1) => "an event".to_owned(),
        (Entry::Practice, n) => format!("{n} practices"),
        (Entry::Event, n) => format!("{n} events"),
    };
    let what = format!("{} {noun}", if present { "listed" } else { "unlisted" });
    doc.transact_with::<_, _, ModelError, _>(
        |_| commit_options(author, &what, now_ms),
        |tx| {
            let mut listing: Listing = hydrate(tx)?;
            if listing.kind != kind.type_name() {
                return Err(ModelError::Shape(format!("not an {}", kind.type_name())));
            }
            let set = match entry {
                Entry::Practice => &mut listing.practices,
                Entry::Event => &mut listing.events,
            };
            for id in ids {
                let key = id.to_string();
                if present {
                    set.insert(key);
                } else {
                    set.remove(&key);
                }
            }
            Ok(reconcile(tx, &listing)?)
        },
    )
    .map(|_| ())
    .map_err(|f| f.error)
}

/// Withdraws a practice from a listing: `old` is no longer listed and is named as
/// withdrawn (so every replica erases it), `new` (its replacement, if any) is listed.
pub fn withdraw(
    doc: &mut Automerge,
    kind: DocumentKind,
    old: DocumentId,
    new: Option<DocumentId>,
    author: &Author,
    now_ms: i64,
) -> Result<(), ModelError> {
    doc.transact_with::<_, _, ModelError, _>(
        |_| commit_options(author, "withdrew a practice", now_ms),
        |tx| {
            let mut listing: Listing = hydrate(tx)?;
            if listing.kind != kind.type_name() {
                return Err(ModelError::Shape(format!("not an {}", kind.type_name())));
            }
            listing.practices.remove(&old.to_string());
            if let Some(new) = new {
                listing.practices.insert(new.to_string());
            }
            listing.withdrawn.insert(
                old.to_string(),
                new.map(|id| id.to_string()).unwrap_or_default(),
            );
            Ok(reconcile(tx, &listing)?)
        },
    )
    .map(|_| ())
    .map_err(|f| f.error)
}
