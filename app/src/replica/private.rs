//! Logging out: the organization's private documents (its internal practices, drafts
//! among them, and its workspace) leave this browser, storage and memory both, so the next
//! person at this browser sees what a visitor sees.

use std::collections::BTreeSet;

use automerge::Automerge;
use ibis_shared::model::{kind_of, DocumentKind};
use ibis_shared::DocumentId;

use super::{now_ms, sleep, Replica};

fn is_private(doc: &Automerge) -> bool {
    matches!(
        kind_of(doc),
        Some(DocumentKind::InternalPractice | DocumentKind::Workspace)
    )
}

impl Replica {
    /// Erases every internal practice and the workspace (`workspace`, this organization's,
    /// if known) here, and resolves once IndexedDB has deleted them. They are not taken in
    /// again by this page: reload it to continue as a visitor.
    pub async fn forget_private(&self, workspace: Option<DocumentId>) {
        let mut private: BTreeSet<DocumentId> = self
            .summaries
            .borrow()
            .iter()
            .filter(|(_, s)| s.internal)
            .map(|(id, _)| *id)
            .collect();
        private.extend(workspace);
        // Documents in memory the list does not know (being summarized, or not valid).
        {
            let engine = self.engine.borrow();
            for id in engine.known_documents() {
                if engine.document(&id).is_some_and(is_private) {
                    private.insert(id);
                }
            }
        }
        {
            let mut engine = self.engine.borrow_mut();
            let now = now_ms();
            for id in &private {
                engine.erase(now, *id);
            }
        }
        self.pump();
        // Every job, the erasures' among them, carried out (IndexedDB committed).
        for _ in 0..500 {
            if self.queued.get() == 0 {
                break;
            }
            sleep(20).await;
        }
    }
}
