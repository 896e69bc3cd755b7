//! One practice as the index holds it, made from its document.

use automerge::Automerge;
use ibis_shared::model::record::PracticeRecord;
use ibis_shared::model::{kind_of, DocumentKind, Practice};
use ibis_shared::DocumentId;

/// One practice as indexed.
#[derive(Debug, Clone)]
pub struct IndexEntry {
    pub id: DocumentId,
    /// The public form (contact details only with consent).
    pub record: PracticeRecord,
    /// When it was last published (milliseconds), if it was.
    pub published_at: Option<i64>,
}

impl IndexEntry {
    /// The entry for a document, if it is a practice to list: a public practice (for
    /// everyone), or an internal one not (or no longer) published, for members (its state,
    /// draft or submitted, is one only members may see). A published internal practice is
    /// listed as its public practice.
    pub fn of(id: DocumentId, doc: &Automerge) -> Option<Self> {
        let practice = match kind_of(doc)? {
            DocumentKind::Practice => Practice::load(doc).ok()?,
            DocumentKind::InternalPractice => {
                let practice = Practice::load(doc).ok()?;
                if practice.state().is_public() {
                    return None;
                }
                practice
            }
            _ => return None,
        };
        let published_at = practice
            .review
            .comments
            .iter()
            .rev()
            .find(|c| c.action == "publish")
            .map(|c| c.at)
            // Imported records arrive published, without a review comment.
            .or_else(|| {
                practice
                    .state()
                    .is_public()
                    .then_some(practice.provenance.created_at)
            });
        Some(Self {
            id,
            record: PracticeRecord::from_practice(Some(id), &practice, false),
            published_at,
        })
    }
}
