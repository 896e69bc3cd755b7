//! Following documents as they arrive or change: what a listing or the directory points to
//! is opened, practices are summarized for the list, and what an organization withdrew is
//! erased here.
//!
//! A practice is two documents (see ARCHITECTURE.md, "Public and internal practices"): the
//! internal practice, which members of its organization have, and, once published, its
//! public practice. Each gets a summary; an internal practice's names its public practice,
//! so the list shows a published practice once (as its public practice) and a member's page
//! for it finds its internal side.

use std::collections::BTreeMap;
use std::sync::Arc;

use automerge::{Automerge, ReadDoc, ScalarValue, Value, ROOT};
use ibis_shared::model::catalogue::Listing;
use ibis_shared::model::directory::Directory;
use ibis_shared::model::event::Event;
use ibis_shared::model::record::PracticeRecord;
use ibis_shared::model::{kind_of, DocumentKind, Practice};
use ibis_shared::DocumentId;

use super::{heads_of, now_ms, Replica};
use crate::json::Json;
use ibis_shared::search::Indexed;

/// A practice as the list shows it, and the document heads it was made from.
pub(super) struct Summary {
    pub heads: String,
    pub indexed: Arc<Indexed>,
    /// An internal practice (members only; never leaves its node).
    pub internal: bool,
    /// An internal practice's public practice, once published.
    pub public: Option<DocumentId>,
}

/// A summary as IndexedDB keeps it (JSON). Summaries stored before practices had two
/// documents have neither `internal` nor `public`: they were public practices.
#[derive(serde::Serialize)]
pub(super) struct StoredSummary {
    heads: String,
    record: PracticeRecord,
    internal: bool,
    public: String,
}

impl StoredSummary {
    /// Reads a stored summary, field by field (see `json.rs`): a derived `Deserialize`
    /// for a record of thirty-odd fields would cost the app a good part of its size budget.
    pub fn parse(json: &str) -> Option<Self> {
        let v = Json::parse(json)?;
        let record = crate::json::practice_record(&v.get("record"));
        Some(Self {
            heads: v.get("heads").text()?,
            record,
            internal: v.get("internal").flag().unwrap_or_default(),
            public: v.string("public"),
        })
    }

    pub fn into_summary(self) -> Summary {
        Summary {
            heads: self.heads,
            indexed: Arc::new(Indexed::new(self.record)),
            internal: self.internal,
            public: DocumentId::parse(&self.public).ok(),
        }
    }
}

/// What a listing says was withdrawn: `old`, replaced by `new` (if anything), by the
/// listing's organization; a catalogue's word counts over a workspace's.
pub(super) struct Withdrawal {
    old: DocumentId,
    new: Option<DocumentId>,
    organization: String,
    catalogue: bool,
}

impl Replica {
    /// Opens whatever a changed document points to, refreshes practice summaries, and
    /// erases what the organization that owns it withdrew.
    pub(super) fn follow(&self, id: DocumentId) {
        let mut to_open = Vec::new();
        let mut withdrawn = Vec::new();
        let mut home = None;
        {
            let engine = self.engine.borrow();
            let Some(doc) = engine.document(&id) else {
                return;
            };
            match kind_of(doc) {
                Some(DocumentKind::Directory) => {
                    if let Ok(dir) = Directory::load(doc) {
                        to_open.extend(dir.organizations.values().filter_map(|o| o.catalogue_id()));
                    }
                }
                Some(kind @ (DocumentKind::Catalogue | DocumentKind::Workspace)) => {
                    if let Ok(listing) = Listing::load(doc, kind) {
                        to_open.extend(listing.practice_ids());
                        to_open.extend(listing.event_ids());
                        withdrawn.extend(listing.withdrawn_ids().map(|(old, new)| Withdrawal {
                            old,
                            new,
                            organization: listing.organization.clone(),
                            catalogue: kind == DocumentKind::Catalogue,
                        }));
                    }
                }
                Some(DocumentKind::Event) => {
                    if let Ok(event) = Event::load(doc) {
                        // Events are few: a list, not one more kind of map.
                        let mut events = self.events.borrow_mut();
                        events.retain(|(e, _)| *e != id);
                        events.push((id, event));
                    }
                }
                Some(kind @ (DocumentKind::Practice | DocumentKind::InternalPractice)) => {
                    home = self.summarize(id, doc, kind == DocumentKind::InternalPractice);
                }
                _ => {}
            }
        }
        // A practice named as withdrawn, which we had to load to see whose it is.
        if let Some(home) = home {
            let pending = {
                let mut pending = self.pending_withdrawals.borrow_mut();
                let at = pending.iter().position(|w| w.old == id);
                at.map(|i| pending.swap_remove(i))
            };
            if let Some(w) = pending.filter(|w| w.organization == home) {
                if self.erase_withdrawn(&w) {
                    self.persist_redirects();
                }
            }
        }
        let mut remembered = false;
        for w in withdrawn {
            remembered |= self.withdrawn(w);
        }
        if remembered {
            self.persist_redirects();
        }
        // Opened only to be listed: summarized, it may leave memory (a first sync opens
        // thousands; the engine keeps what is open).
        if self.opened_to_list.borrow_mut().remove(&id) {
            self.engine.borrow_mut().close(&id);
        }
        let now = now_ms();
        let summaries = self.summaries.borrow();
        let mut engine = self.engine.borrow_mut();
        let mut opened = self.opened_to_list.borrow_mut();
        for other in to_open {
            // A stored practice with a summary needs no loading to be listed, and the bulk
            // sync with the node (a replica peer) covers every stored document; reopening
            // thousands whenever a catalogue changes would only reload them.
            let listed = engine.is_stored(&other) && summaries.contains_key(&other);
            if engine.document(&other).is_none() && !listed && !engine.is_erased(&other) {
                if !engine.is_open(&other) {
                    opened.insert(other);
                }
                engine.open(now, other);
            }
        }
    }

    /// Remakes a practice's summary if its document changed; returns its home organization.
    fn summarize(&self, id: DocumentId, doc: &Automerge, internal: bool) -> Option<String> {
        let heads = heads_of(doc);
        if let Some(s) = self.summaries.borrow().get(&id) {
            if s.heads == heads {
                return Some(s.indexed.record.home_organization.clone());
            }
        }
        let p = Practice::load(doc).ok()?;
        let public = p.public_id().filter(|_| internal);
        let stored = StoredSummary {
            heads,
            record: PracticeRecord::from_practice(Some(id), &p, true),
            internal,
            public: public.map(|id| id.to_string()).unwrap_or_default(),
        };
        // Pretty, as the JSON export is: the app then carries one serializer of records.
        if let Ok(json) = serde_json::to_string_pretty(&stored) {
            self.summaries_to_store.borrow_mut().push((id, json));
        }
        let summary = stored.into_summary();
        let home = summary.indexed.record.home_organization.clone();
        self.summaries.borrow_mut().insert(id, summary);
        Some(home)
    }

    /// A listing names `w.old` as withdrawn: erased here if it is its organization's, or
    /// if we do not have it (so it is never taken in); loaded first if we cannot tell.
    /// Returns whether that changed what is remembered of withdrawn practices.
    fn withdrawn(&self, w: Withdrawal) -> bool {
        let home = {
            let engine = self.engine.borrow();
            if engine.is_erased(&w.old) {
                drop(engine);
                return self.redirect(&w);
            }
            if let Some(doc) = engine.document(&w.old) {
                Some(home_of(doc))
            } else if let Some(s) = self.summaries.borrow().get(&w.old) {
                Some(Some(s.indexed.record.home_organization.clone()))
            } else if engine.is_stored(&w.old) {
                None
            } else {
                Some(Some(w.organization.clone()))
            }
        };
        match home {
            Some(Some(home)) if home == w.organization => self.erase_withdrawn(&w),
            Some(_) => false,
            None => {
                let old = w.old;
                let mut pending = self.pending_withdrawals.borrow_mut();
                if !pending.iter().any(|p| p.old == old) {
                    pending.push(w);
                    let mut engine = self.engine.borrow_mut();
                    if !engine.is_open(&old) {
                        self.opened_to_list.borrow_mut().insert(old);
                    }
                    engine.open(now_ms(), old);
                    self.pump_again.set(true);
                }
                false
            }
        }
    }

    fn erase_withdrawn(&self, w: &Withdrawal) -> bool {
        self.engine.borrow_mut().erase(now_ms(), w.old);
        self.pump_again.set(true);
        self.redirect(w)
    }

    /// Remembers where a withdrawn practice went (and keeps it across reloads).
    /// Returns whether that changed what is remembered (then [`Self::persist_redirects`]).
    fn redirect(&self, w: &Withdrawal) -> bool {
        let mut redirects = self.redirects.borrow_mut();
        let at = redirects.binary_search_by(|(old, _)| old.cmp(&w.old));
        let better = match at.map(|i| redirects[i].1) {
            Err(_) => true,
            Ok(None) => w.new.is_some(),
            Ok(Some(new)) => w.catalogue && w.new.is_some_and(|n| n != new),
        };
        if better {
            match at {
                Ok(i) => redirects[i].1 = w.new,
                Err(i) => redirects.insert(i, (w.old, w.new)),
            }
        }
        better
    }

    /// Keeps the withdrawn practices across reloads.
    fn persist_redirects(&self) {
        // A line per withdrawn practice: its id, a space, its replacement's id if any.
        let mut text = String::new();
        for (old, new) in self.redirects.borrow().iter() {
            text.push_str(&old.to_string());
            text.push(' ');
            if let Some(new) = new {
                text.push_str(&new.to_string());
            }
            text.push('\n');
        }
        let db = self.db.clone();
        leptos::task::spawn_local(async move {
            let _ = db.set_meta(REDIRECTS, &text).await;
        });
    }

    /// A public practice this browser withdrew: erased here, and where it went remembered.
    pub fn erase_public(&self, old: DocumentId, new: Option<DocumentId>) {
        let w = Withdrawal {
            old,
            new,
            organization: String::new(),
            catalogue: true,
        };
        if self.erase_withdrawn(&w) {
            self.persist_redirects();
        }
        self.pump();
    }

    /// A withdrawn practice: `Some(Some(new))` if it was republished as `new`,
    /// `Some(None)` if it was withdrawn for good, `None` if it was not withdrawn.
    pub fn replacement(&self, id: &DocumentId) -> Option<Option<DocumentId>> {
        let redirects = self.redirects.borrow();
        let at = redirects.binary_search_by(|(old, _)| old.cmp(id));
        at.ok().map(|i| redirects[i].1)
    }

    /// The internal practice of a public practice, if it is here (members of its
    /// organization only).
    pub fn internal_of(&self, public: &DocumentId) -> Option<DocumentId> {
        self.summaries
            .borrow()
            .iter()
            .find(|(_, s)| s.public.as_ref() == Some(public))
            .map(|(id, _)| *id)
    }
}

/// A practice's home organization, read without loading the whole practice.
fn home_of(doc: &Automerge) -> Option<String> {
    let (_, provenance) = doc.get(ROOT, "provenance").ok()??;
    match doc.get(&provenance, "home_organization").ok()?? {
        (Value::Scalar(s), _) => match s.as_ref() {
            ScalarValue::Str(home) => Some(home.to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// The `meta` entry that keeps withdrawn practices and their replacements.
pub(super) const REDIRECTS: &str = "withdrawn";

/// Withdrawn practices as stored in `meta` (sorted by id, as they are kept).
pub(super) fn parse_redirects(text: &str) -> Vec<(DocumentId, Option<DocumentId>)> {
    let redirects = text
        .lines()
        .filter_map(|line| {
            let (old, new) = line.split_once(' ')?;
            Some((DocumentId::parse(old).ok()?, DocumentId::parse(new).ok()))
        })
        .collect();
    ibis_shared::search::sorted(redirects, &|a, b| a.0.cmp(&b.0))
}

/// Which summaries the list shows: public practices, and internal practices whose public
/// practice is not here (drafts, mostly). A published practice shows once, as itself.
pub(super) fn listed<'a>(
    summaries: &'a BTreeMap<DocumentId, Summary>,
) -> impl Iterator<Item = &'a Summary> + 'a {
    summaries.values().filter(move |s| {
        !s.internal
            || s.public
                .is_none_or(|public| !summaries.contains_key(&public))
    })
}
