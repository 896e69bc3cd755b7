//! Documents coming into memory: an entry made on first use (loading from storage if it
//! holds the document), work queued until the load is done ([`AfterLoad`]), and the load's
//! answer: served straight from the stored bytes when every waiting message allows it
//! ([`super::stored_answer`]), or loaded, then the queued work done.

use crate::DocumentId;

use super::document::{AfterLoad, Document, Status};
use super::io::{Notification, Output, StoredDocument};
use super::policy::Policy;
use super::Engine;

impl<P: Policy> Engine<P>
where
    P::Principal: PartialEq,
{
    /// Makes sure the document has an entry; true when it is still loading from storage.
    pub(super) fn ensure_document(&mut self, id: DocumentId) -> bool {
        if let Some(entry) = self.documents.get_mut(&id) {
            entry.touch(self.now);
            return entry.is_loading();
        }
        if self.stored.contains(&id) {
            self.documents.insert(id, Document::loading(self.now));
            self.outputs.push_back(Output::Load { document: id });
            true
        } else {
            self.documents.insert(id, Document::empty(self.now));
            false
        }
    }

    /// Work to do once the document, which is loading, has loaded.
    pub(super) fn after_load(&mut self, id: DocumentId, work: AfterLoad) {
        if let Some(entry) = self.documents.get_mut(&id) {
            entry.after_load(work);
        }
    }

    pub(super) fn on_loaded(
        &mut self,
        id: DocumentId,
        result: Result<Option<StoredDocument>, String>,
    ) {
        let Some(entry) = self.documents.get_mut(&id) else {
            return;
        };
        let Some(after_load) = entry.take_after_load() else {
            return;
        };
        if let Ok(Some(stored)) = &result {
            if self.serve_from_snapshot(id, stored, &after_load) {
                // Answered without loading: the document stays in storage only.
                self.documents.remove(&id);
                return;
            }
        }
        let Some(entry) = self.documents.get_mut(&id) else {
            return;
        };
        let outcome = match result {
            Ok(Some(stored)) => entry.load_stored(stored).map_err(|e| e.to_string()),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => {
                entry.set_status(Status::Ready);
                self.stats.documents_loaded += 1;
                if !entry.is_persisted() {
                    self.stored.remove(&id);
                }
            }
            Err(error) => {
                tracing::error!(document = %id, %error, "stored document does not load");
                entry.set_status(Status::Corrupt);
                self.notify(Notification::DocumentCorrupt {
                    document: id,
                    error,
                });
            }
        }
        for work in after_load {
            match work {
                AfterLoad::Sync {
                    conn,
                    data,
                    is_request,
                } => {
                    if self.connections.contains_key(&conn) {
                        self.on_sync(conn, id, data, is_request);
                    }
                }
                AfterLoad::Offer { conn } => self.offer(conn, id),
                AfterLoad::Open => self.after_open(id),
            }
        }
    }
}
