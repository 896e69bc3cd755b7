//! The host's own use of documents: reading one, keeping it open, inserting one it made,
//! changing one. A local change is handled like a change from a peer: stored first, then
//! sent to every peer that shares the document.

use automerge::Automerge;

use crate::DocumentId;

use super::document::{AfterLoad, Document, Status};
use super::io::{ChangeOrigin, Notification};
use super::policy::Policy;
use super::{Engine, EngineError, Millis};

impl<P: Policy> Engine<P>
where
    P::Principal: PartialEq,
{
    /// The document, if it is in memory and has content.
    pub fn document(&self, id: &DocumentId) -> Option<&Automerge> {
        self.documents
            .get(id)
            .filter(|d| !d.is_loading() && d.has_content())
            .map(|d| d.doc())
    }

    /// Loads a document (from storage, or else from replica peers) and keeps it in memory
    /// until [`Engine::close`]. The host hears [`Notification::DocumentReady`] or
    /// [`Notification::DocumentUnavailable`].
    pub fn open(&mut self, now: Millis, id: DocumentId) {
        self.apply_deferred();
        self.now = self.now.max(now);
        if self.erased.contains(&id) {
            self.notify(Notification::DocumentUnavailable { document: id });
            return;
        }
        let loading = self.ensure_document(id);
        if let Some(entry) = self.documents.get_mut(&id) {
            entry.set_pinned(true);
            entry.touch(self.now);
            if loading {
                entry.after_load(AfterLoad::Open);
                return;
            }
        }
        self.after_open(id);
    }

    /// Whether the host has the document open ([`Engine::open`], not yet closed).
    pub fn is_open(&self, id: &DocumentId) -> bool {
        self.documents.get(id).is_some_and(|d| d.is_pinned())
    }

    /// The host no longer needs the document in memory.
    pub fn close(&mut self, id: &DocumentId) {
        self.apply_deferred();
        if let Some(entry) = self.documents.get_mut(id) {
            entry.set_pinned(false);
        }
    }

    /// Adds a document made by the host (merging it into ours if we have one), stores it and
    /// offers it to replica peers.
    pub fn insert(
        &mut self,
        now: Millis,
        id: DocumentId,
        mut doc: Automerge,
    ) -> Result<(), EngineError> {
        self.change(now, id, |ours| {
            ours.merge(&mut doc)
                .map(|_| ())
                .map_err(|e| EngineError::Automerge(e.to_string()))
        })?
    }

    /// Changes a document in memory (creating it if nobody has it), then stores the change
    /// and sends it to every peer that shares the document. A change that would take the
    /// document past [`super::EngineConfig::max_document_bytes`] is undone and refused.
    pub fn change<R>(
        &mut self,
        now: Millis,
        id: DocumentId,
        f: impl FnOnce(&mut Automerge) -> R,
    ) -> Result<R, EngineError> {
        self.apply_deferred();
        self.now = self.now.max(now);
        if self.erased.contains(&id) {
            return Err(EngineError::Erased(id));
        }
        if !self.documents.contains_key(&id) {
            if self.stored.contains(&id) {
                return Err(EngineError::NotLoaded(id));
            }
            self.documents.insert(id, Document::empty(self.now));
        }
        let Some(entry) = self.documents.get_mut(&id) else {
            return Err(EngineError::NotLoaded(id));
        };
        match entry.status() {
            Status::Loading { .. } => return Err(EngineError::NotLoaded(id)),
            Status::Corrupt => return Err(EngineError::Corrupt(id)),
            _ => {}
        }
        let before = entry.doc().get_heads();
        let result = f(entry.doc_mut());
        entry.touch(self.now);
        if entry.doc().get_heads() != before {
            if let Some(reason) = self.oversized(id, &before) {
                return Err(EngineError::TooLarge(reason));
            }
            self.document_changed(id, ChangeOrigin::Local, before.is_empty());
        }
        Ok(result)
    }

    /// Erases a document: whatever is stored of it is deleted, it leaves memory and every
    /// connection's state, and from now on it is neither taken in nor served (peers asking
    /// for it hear `doc-unavailable`). For a document its organization withdrew: history
    /// cannot be rewritten, but replicas can stop holding it.
    pub fn erase(&mut self, now: Millis, id: DocumentId) {
        self.apply_deferred();
        self.now = self.now.max(now);
        if !self.erased.insert(id) {
            return;
        }
        self.documents.remove(&id);
        self.stored.remove(&id);
        if let Some(conns) = self.interest.remove(&id) {
            for conn in conns {
                if let Some(c) = self.connections.get_mut(&conn) {
                    c.forget_document(&id);
                }
            }
        }
        self.owed.retain(|(_, d)| *d != id);
        self.pacer.forget_document(id);
        self.store(super::StoreOp::Erase { document: id });
        self.notify(Notification::DocumentErased { document: id });
    }

    pub(super) fn after_open(&mut self, id: DocumentId) {
        let Some(entry) = self.documents.get(&id) else {
            return;
        };
        match entry.status() {
            Status::Corrupt | Status::Loading { .. } => {}
            _ if entry.has_content() => {
                self.notify(Notification::DocumentReady { document: id });
            }
            Status::Unavailable | Status::Ready => self.want_document(id, None),
            Status::Requesting { .. } => {}
        }
    }
}
