//! The catalogue as Automerge documents.
//!
//! Every document carries `type` (what it is) and `schema` (which version of its shape) at its
//! root. The shapes are Rust types mapped with autosurgeon; text that people edit together is
//! Automerge text changed by splices ([`text_edit`]), never replaced whole. Changes carry a
//! commit message naming who changed what ([`Author`], [`history`]).
//!
//! - [`practice`]: one good practice, as two documents: the internal practice (drafts,
//!   private fields, review) that never leaves its organization, and the public practice
//!   made from it when it is published ([`publication`]).
//! - [`catalogue`]: an organization's published catalogue, and its internal workspace.
//! - [`directory`]: the network's member organizations.
//! - [`event`]: webinars, roundtables, city-to-city exchanges.
//! - [`review`]: draft → submitted → published → archived, by role.
//! - [`validation`]: what a document must satisfy, with field-level messages.
//! - [`taxonomy`], [`countries`]: the fixed vocabularies.

pub mod catalogue;
pub mod countries;
pub mod directory;
pub mod display;
pub mod event;
pub mod facets;
pub mod list_query;
pub mod practice;
pub mod publication;
pub mod record;
pub mod review;
pub mod taxonomy;
pub mod text_edit;
pub mod validation;

use std::collections::BTreeMap;

use automerge::transaction::CommitOptions;
use automerge::{Automerge, ReadDoc, ROOT};
use autosurgeon::{Hydrate, Reconcile};

pub use practice::Practice;
pub use review::{ReviewState, Role};

/// The shape version written by this code.
pub const SCHEMA_VERSION: u64 = 1;

/// What a document is, from its root `type` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocumentKind {
    /// A public practice: what everyone reads (see [`publication`]).
    Practice,
    /// An internal practice: drafts, private fields and review, for members only.
    InternalPractice,
    Catalogue,
    Workspace,
    Directory,
    Event,
}

impl DocumentKind {
    pub fn type_name(self) -> &'static str {
        match self {
            DocumentKind::Practice => "ibis/practice",
            DocumentKind::InternalPractice => "ibis/internal-practice",
            DocumentKind::Catalogue => "ibis/catalogue",
            DocumentKind::Workspace => "ibis/workspace",
            DocumentKind::Directory => "ibis/directory",
            DocumentKind::Event => "ibis/event",
        }
    }

    pub fn from_type_name(name: &str) -> Option<Self> {
        Some(match name {
            "ibis/practice" => DocumentKind::Practice,
            "ibis/internal-practice" => DocumentKind::InternalPractice,
            "ibis/catalogue" => DocumentKind::Catalogue,
            "ibis/workspace" => DocumentKind::Workspace,
            "ibis/directory" => DocumentKind::Directory,
            "ibis/event" => DocumentKind::Event,
            _ => return None,
        })
    }

    /// A practice, public or internal.
    pub fn is_practice(self) -> bool {
        matches!(
            self,
            DocumentKind::Practice | DocumentKind::InternalPractice
        )
    }

    /// Documents that never leave their organization's node.
    pub fn is_internal(self) -> bool {
        matches!(
            self,
            DocumentKind::InternalPractice | DocumentKind::Workspace
        )
    }
}

/// The kind of an ibis document; `None` for documents that are not ibis documents (any
/// automerge-repo peer may sync arbitrary documents through a node).
pub fn kind_of(doc: &Automerge) -> Option<DocumentKind> {
    match doc.get(ROOT, "type") {
        Ok(Some((automerge::Value::Scalar(s), _))) => match s.as_ref() {
            automerge::ScalarValue::Str(name) => DocumentKind::from_type_name(name),
            _ => None,
        },
        _ => None,
    }
}

/// Errors of the model layer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("the document does not have the expected shape: {0}")]
    Shape(String),
    #[error("could not write the document: {0}")]
    Write(String),
    #[error("not allowed: {0}")]
    Forbidden(String),
    #[error("invalid: {}", validation::summarize(.0))]
    Invalid(Vec<validation::FieldError>),
}

impl From<autosurgeon::HydrateError> for ModelError {
    fn from(e: autosurgeon::HydrateError) -> Self {
        ModelError::Shape(e.to_string())
    }
}

impl From<autosurgeon::ReconcileError> for ModelError {
    fn from(e: autosurgeon::ReconcileError) -> Self {
        ModelError::Write(e.to_string())
    }
}

impl From<automerge::AutomergeError> for ModelError {
    fn from(e: automerge::AutomergeError) -> Self {
        ModelError::Write(e.to_string())
    }
}

/// A set of vocabulary keys, stored as a map from key to `true` so that two people adding
/// tags at once both keep theirs (a list would interleave or duplicate them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagSet(BTreeMap<String, bool>);

impl TagSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, key: impl Into<String>) {
        self.0.insert(key.into(), true);
    }

    pub fn remove(&mut self, key: &str) {
        self.0.remove(key);
    }

    pub fn contains(&self, key: &str) -> bool {
        self.0.get(key).copied().unwrap_or(false)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(|(_, on)| **on)
            .map(|(k, _)| k.as_str())
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<S: Into<String>> FromIterator<S> for TagSet {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut set = TagSet::new();
        for key in iter {
            set.insert(key);
        }
        set
    }
}

impl Reconcile for TagSet {
    type Key<'a> = autosurgeon::reconcile::NoKey;
    fn reconcile<R: autosurgeon::Reconciler>(&self, reconciler: R) -> Result<(), R::Error> {
        self.0.reconcile(reconciler)
    }
}

impl Hydrate for TagSet {
    fn hydrate_map<D: autosurgeon::ReadDoc>(
        doc: &D,
        obj: &automerge::ObjId,
    ) -> Result<Self, autosurgeon::HydrateError> {
        BTreeMap::<String, bool>::hydrate_map(doc, obj).map(TagSet)
    }
}

/// Who makes a change: shown in history and provenance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    /// A display name ("Amy Muedin").
    pub name: String,
    /// The author's organization id (as in the directory).
    pub organization: String,
    pub role: Role,
}

/// Commit options that record who changed what. `what` names the change for people
/// ("edited summary", "published").
pub fn commit_options(author: &Author, what: &str, now_ms: i64) -> CommitOptions {
    CommitOptions::default()
        .with_message(format!("{what}\n{}", author.name))
        .with_time(now_ms / 1000)
}

/// One entry of a document's edit history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub hash: automerge::ChangeHash,
    /// Seconds since the Unix epoch, as the author's clock said.
    pub time: i64,
    pub what: String,
    pub by: String,
}

/// The document's changes, newest first, as people describe them.
pub fn history(doc: &Automerge) -> Vec<HistoryEntry> {
    let mut entries: Vec<HistoryEntry> = doc
        .get_changes(&[])
        .into_iter()
        .map(|change| {
            let message = change.message().map(str::to_owned).unwrap_or_default();
            let (what, by) = match message.split_once('\n') {
                Some((what, by)) => (what.to_owned(), by.to_owned()),
                None => (message, String::new()),
            };
            HistoryEntry {
                hash: change.hash(),
                time: change.timestamp(),
                what,
                by,
            }
        })
        .collect();
    entries.reverse();
    entries
}

/// Everything a document's history ever wrote as text, one string per change: its message,
/// then the strings its operations put or inserted, in order (so a phrase typed in one
/// change reads as one phrase). What a replica holding the document can read, deleted text
/// included; for audits and tests of what reaches whom.
pub fn written_strings(doc: &Automerge) -> Vec<String> {
    doc.get_changes(&[])
        .into_iter()
        .map(|change| {
            let mut written = change.message().unwrap_or_default().to_owned();
            written.push('\n');
            for op in change.decode().operations {
                if let automerge::legacy::OpType::Put(automerge::ScalarValue::Str(s)) = &op.action {
                    written.push_str(s);
                }
            }
            written
        })
        .collect()
}

/// A new shared document whose first change is identical on every replica that creates it
/// from the same `seed`: written by a fixed actor at time zero, holding `root` — the type,
/// the schema and every container the document will ever have at its root. Replicas that
/// create "the same" document independently (nodes joining a network while apart) then
/// merge cleanly: their first changes are one and the same change, so nobody's maps shadow
/// anybody else's. Later changes are made under a fresh random actor.
pub fn genesis<T: Reconcile>(seed: &[u8], root: &T) -> Result<Automerge, ModelError> {
    let mut actor = b"ibis-genesis:".to_vec();
    actor.extend_from_slice(seed);
    let mut doc = Automerge::new().with_actor(automerge::ActorId::from(actor));
    doc.transact_with::<_, _, ModelError, _>(
        |_| CommitOptions::default().with_time(0),
        |tx| Ok(autosurgeon::reconcile(tx, root)?),
    )
    .map_err(|f| f.error)?;
    doc.set_actor(automerge::ActorId::random());
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn independently_created_directories_merge_with_every_entry() {
        use directory::{new_directory, register, Directory, Organization};
        let id = crate::DocumentId::from_bytes([4; 16]);
        let mut a = new_directory(id).unwrap();
        let mut b = new_directory(id).unwrap();
        assert_eq!(a.get_heads(), b.get_heads());
        assert_eq!(kind_of(&a), Some(DocumentKind::Directory));
        let author = |org: &str| Author {
            name: org.into(),
            organization: org.into(),
            role: Role::Admin,
        };
        let org = |name: &str| Organization {
            name: name.into(),
            ..Organization::default()
        };
        register(&mut a, "iom", &org("IOM"), &author("iom"), 1).unwrap();
        register(&mut b, "nlc", &org("NLC"), &author("nlc"), 1).unwrap();
        register(&mut b, "unaoc", &org("UNAOC"), &author("nlc"), 2).unwrap();
        a.merge(&mut b).unwrap();
        let merged = Directory::load(&a).unwrap();
        let names: Vec<&str> = merged.organizations.keys().map(String::as_str).collect();
        assert_eq!(names, vec!["iom", "nlc", "unaoc"]);
        let c = new_directory(crate::DocumentId::from_bytes([5; 16])).unwrap();
        assert_ne!(a.get_changes(&[])[0].hash(), c.get_changes(&[])[0].hash());
    }

    #[test]
    fn independently_created_listings_merge_with_every_entry() {
        use catalogue::{new_listing, set_entry, Entry, Listing};
        let mut a = new_listing(DocumentKind::Catalogue, "iom").unwrap();
        let mut b = new_listing(DocumentKind::Catalogue, "iom").unwrap();
        let author = Author {
            name: "x".into(),
            organization: "iom".into(),
            role: Role::Admin,
        };
        let p1 = crate::DocumentId::from_bytes([1; 16]);
        let p2 = crate::DocumentId::from_bytes([2; 16]);
        set_entry(
            &mut a,
            DocumentKind::Catalogue,
            Entry::Practice,
            p1,
            true,
            &author,
            1,
        )
        .unwrap();
        set_entry(
            &mut b,
            DocumentKind::Catalogue,
            Entry::Practice,
            p2,
            true,
            &author,
            1,
        )
        .unwrap();
        a.merge(&mut b).unwrap();
        let listing = Listing::load(&a, DocumentKind::Catalogue).unwrap();
        let mut ids: Vec<_> = listing.practice_ids().collect();
        ids.sort();
        let mut expected = vec![p1, p2];
        expected.sort();
        assert_eq!(ids, expected);
    }

    #[test]
    fn concurrent_tags_both_survive() {
        #[derive(Debug, Reconcile, Hydrate, Default)]
        struct Tagged {
            tags: TagSet,
        }
        let mut a = Automerge::new();
        a.transact::<_, _, ModelError>(|tx| Ok(autosurgeon::reconcile(tx, Tagged::default())?))
            .unwrap();
        let mut b = a.fork();
        for (doc, tag) in [(&mut a, "housing"), (&mut b, "health")] {
            doc.transact::<_, _, ModelError>(|tx| {
                let mut t: Tagged = autosurgeon::hydrate(tx)?;
                t.tags.insert(tag);
                Ok(autosurgeon::reconcile(tx, &t)?)
            })
            .unwrap();
        }
        a.merge(&mut b).unwrap();
        let merged: Tagged = autosurgeon::hydrate(&a).unwrap();
        assert_eq!(
            merged.tags.iter().collect::<Vec<_>>(),
            vec!["health", "housing"]
        );
    }
}
