//! Whose a document is, read from the document itself as the node stores it (never from
//! what a sender claims) — cheaply, without hydrating the whole document, since it is
//! asked before every incoming change is decoded.

use automerge::{Automerge, ObjType, ReadDoc, Value, ROOT};
use ibis_shared::model::{kind_of, DocumentKind};
use ibis_shared::DocumentId;

use super::NodePolicy;

/// Who a stored document belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// This organization: only its members change it.
    Us,
    /// Another organization (by id; empty if the document names none).
    Organization(String),
    /// The network directory: each entry is its organization's.
    Shared,
    /// A document of no ibis type: nobody's, within quotas.
    Nobody,
}

/// The string at a path of maps from the root, if there is one.
fn string_at(doc: &Automerge, path: &[&str]) -> Option<String> {
    let (last, maps) = path.split_last()?;
    let mut obj = ROOT;
    for key in maps {
        match doc.get(&obj, *key).ok()?? {
            (Value::Object(ObjType::Map), id) => obj = id,
            _ => return None,
        }
    }
    match doc.get(&obj, *last).ok()?? {
        (Value::Scalar(s), _) => match s.as_ref() {
            automerge::ScalarValue::Str(text) => Some(text.to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// The organization a document of this kind names as its owner.
pub(super) fn named_owner(kind: DocumentKind, doc: &Automerge) -> Option<String> {
    match kind {
        DocumentKind::Practice | DocumentKind::InternalPractice => {
            string_at(doc, &["provenance", "home_organization"])
        }
        DocumentKind::Catalogue | DocumentKind::Workspace => string_at(doc, &["organization"]),
        DocumentKind::Event => string_at(doc, &["home_organization"]),
        DocumentKind::Directory => None,
    }
}

impl NodePolicy {
    /// Whose the document is. This organization's catalogue and workspace are known by
    /// their ids, whatever they hold.
    pub fn owner(&self, id: &DocumentId, doc: &Automerge) -> Owner {
        if *id == self.catalogue || *id == self.workspace {
            return Owner::Us;
        }
        match kind_of(doc) {
            None => Owner::Nobody,
            Some(DocumentKind::Directory) => Owner::Shared,
            Some(kind) => {
                let named = named_owner(kind, doc).unwrap_or_default();
                if named == self.organization {
                    Owner::Us
                } else {
                    Owner::Organization(named)
                }
            }
        }
    }
}
