//! The browser's replica: the shared sync engine, hosted on IndexedDB and a WebSocket.
//!
//! Everything the engine outputs becomes a job; jobs run one after another: first the
//! job's writes in one IndexedDB transaction (awaited until durable), then its frames,
//! then its loads. That is the engine's one ordering rule — a peer never hears of a change
//! before it is stored — kept in the browser.
//!
//! The replica also follows the catalogue: when the directory changes it opens every
//! organization's catalogue; when a catalogue or the workspace changes it opens every
//! practice listed. It keeps a summary (a flat record) of each practice for the list and
//! search, and counts local changes the node has not yet acknowledged.

mod idb;
mod jobs;
mod socket;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;

use automerge::Automerge;
use futures::channel::mpsc;
use ibis_shared::model::catalogue::Listing;
use ibis_shared::model::directory::Directory;
use ibis_shared::model::event::Event;
use ibis_shared::model::record::PracticeRecord;
use ibis_shared::model::{kind_of, DocumentKind, Practice};
use ibis_shared::protocol::{PeerId, StorageId};
use ibis_shared::sync::{
    ChangeOrigin, ConnectionId, Engine, EngineConfig, EngineError, Input, Notification, OpenPolicy,
    Output, StoreOp,
};
use ibis_shared::DocumentId;
use leptos::prelude::*;

use crate::search::Indexed;

pub use idb::IdbError;
pub use jobs::{mark_once, sleep};
use jobs::{run_jobs, start_ticks};

/// Reactive state the UI reads.
#[derive(Clone, Copy)]
pub struct Signals {
    /// Bumped whenever any document changes.
    pub revision: RwSignal<u64>,
    /// Connected to the node (handshake done).
    pub online: RwSignal<bool>,
    /// Bulk sync progress with the node: (done, total).
    pub progress: RwSignal<(usize, usize)>,
    /// Local changes the node has not acknowledged yet.
    pub waiting: RwSignal<usize>,
    /// The latest message worth showing (a refused change, a storage failure).
    pub notice: RwSignal<Option<String>>,
    /// Ephemeral presence messages: document → (sender, payload, when).
    pub presence: RwSignal<u64>,
    /// Every practice this browser had stored has been opened (set once per page load).
    pub settled: RwSignal<bool>,
}

impl Signals {
    pub fn new() -> Self {
        Self {
            revision: RwSignal::new(0),
            online: RwSignal::new(false),
            progress: RwSignal::new((0, 0)),
            waiting: RwSignal::new(0),
            notice: RwSignal::new(None),
            presence: RwSignal::new(0),
            settled: RwSignal::new(false),
        }
    }
}

impl Default for Signals {
    fn default() -> Self {
        Self::new()
    }
}

/// One batch of engine output, carried out in order.
#[derive(Default)]
struct Job {
    writes: Vec<StoreOp>,
    sends: Vec<(ConnectionId, Vec<u8>)>,
    closes: Vec<ConnectionId>,
    loads: Vec<DocumentId>,
}

/// A practice as the list shows it, and the document heads it was made from.
struct Summary {
    heads: String,
    indexed: Arc<Indexed>,
}

/// A summary as IndexedDB keeps it.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredSummary {
    heads: String,
    record: PracticeRecord,
}

/// A document's heads, as one string (for comparing with a stored summary's).
fn heads_of(doc: &Automerge) -> String {
    let mut heads: Vec<String> = doc.get_heads().iter().map(|h| h.to_string()).collect();
    heads.sort();
    heads.join(",")
}

/// Someone's presence on a document, from ephemeral messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Presence {
    pub name: String,
    pub field: String,
    pub at: f64,
}

pub struct Replica {
    engine: RefCell<Engine<OpenPolicy>>,
    db: idb::Db,
    jobs: mpsc::UnboundedSender<Job>,
    /// Jobs handed to `run_jobs` and not yet finished.
    queued: Cell<usize>,
    /// When the interface was last told that documents changed (ms since the epoch).
    last_refresh: Cell<f64>,
    /// A deferred "documents changed" is pending.
    refresh_scheduled: Cell<bool>,
    /// A wake-up for the engine's next deadline is pending ([`jobs::schedule_wake`]).
    wake_scheduled: Cell<bool>,
    pub signals: Signals,
    socket: RefCell<Option<socket::Socket>>,
    next_conn: Cell<u64>,
    /// Flat records of the practices we have, for the list and search.
    summaries: RefCell<BTreeMap<DocumentId, Summary>>,
    /// Summaries made since the last storage transaction, to be stored with it (JSON).
    summaries_to_store: RefCell<Vec<(DocumentId, String)>>,
    /// Events we have.
    events: RefCell<BTreeMap<DocumentId, Event>>,
    /// Local changes per document not yet acknowledged by the node (persisted).
    unsynced: RefCell<BTreeMap<DocumentId, u32>>,
    /// Documents nobody could provide.
    unavailable: RefCell<BTreeSet<DocumentId>>,
    /// Who else is looking at which practice.
    presence: RefCell<BTreeMap<DocumentId, BTreeMap<String, Presence>>>,
}

pub fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

thread_local! {
    static REPLICA: RefCell<Option<Rc<Replica>>> = const { RefCell::new(None) };
}

/// The running replica, once started.
pub fn replica() -> Option<Rc<Replica>> {
    REPLICA.with(|r| r.borrow().clone())
}

impl Replica {
    /// Opens storage, starts the engine and connects to the node that served the page.
    pub async fn start(signals: Signals) -> Result<Rc<Self>, IdbError> {
        let db = idb::Db::open().await?;
        let peer_id = match db.meta("peer_id").await? {
            Some(id) => id,
            None => {
                let id = format!("ibis-app-{}", DocumentId::random());
                db.set_meta("peer_id", &id).await?;
                id
            }
        };
        let storage_id = match db.meta("storage_id").await? {
            Some(id) => id,
            None => {
                let id = StorageId::random().to_string();
                db.set_meta("storage_id", &id).await?;
                id
            }
        };
        let unsynced: BTreeMap<DocumentId, u32> = db
            .meta("unsynced")
            .await?
            .and_then(|s| serde_json::from_str::<Vec<(String, u32)>>(&s).ok())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(id, n)| DocumentId::parse(&id).ok().map(|id| (id, n)))
            .collect();
        let stored = db.document_ids().await?;
        // The list renders from stored summaries at once; each is checked against its
        // document's heads when the document loads.
        let summaries: BTreeMap<DocumentId, Summary> = db
            .summaries()
            .await?
            .into_iter()
            .filter_map(|(id, json)| {
                let stored: StoredSummary = serde_json::from_str(&json).ok()?;
                Some((
                    id,
                    Summary {
                        heads: stored.heads,
                        indexed: Arc::new(Indexed::new(stored.record)),
                    },
                ))
            })
            .collect();
        if !summaries.is_empty() {
            signals.settled.set(true);
        }
        let mut config = EngineConfig::new(PeerId::new(peer_id), Some(StorageId::new(storage_id)));
        config.ephemeral_session_id = DocumentId::random().to_string();
        // The browser keeps what it shows in memory; documents it does not show are evicted.
        config.evict_idle_after = Some(10 * 60 * 1000);
        let engine = Engine::new(config, OpenPolicy, stored, now_ms());
        let (jobs, rx) = mpsc::unbounded();
        signals
            .waiting
            .set(unsynced.values().map(|n| *n as usize).sum());
        let replica = Rc::new(Self {
            engine: RefCell::new(engine),
            db,
            jobs,
            queued: Cell::new(0),
            last_refresh: Cell::new(0.0),
            refresh_scheduled: Cell::new(false),
            wake_scheduled: Cell::new(false),
            signals,
            socket: RefCell::new(None),
            next_conn: Cell::new(1),
            summaries: RefCell::new(summaries),
            summaries_to_store: RefCell::default(),
            events: RefCell::default(),
            unsynced: RefCell::new(unsynced),
            unavailable: RefCell::default(),
            presence: RefCell::default(),
        });
        REPLICA.with(|r| *r.borrow_mut() = Some(replica.clone()));
        leptos::task::spawn_local(run_jobs(replica.clone(), rx));
        socket::start(replica.clone());
        start_ticks(replica.clone());
        Ok(replica)
    }

    /// Carries out what the engine has to say.
    fn pump(&self) {
        let outputs: Vec<Output> = self.engine.borrow_mut().drain_outputs().collect();
        jobs::schedule_wake(self);
        if outputs.is_empty() {
            return;
        }
        let mut job = Job::default();
        let mut changed = false;
        for output in outputs {
            match output {
                Output::Send { conn, frame } => job.sends.push((conn, frame)),
                Output::Close { conn, .. } => job.closes.push(conn),
                Output::Store(op) => job.writes.push(op),
                Output::Load { document } => job.loads.push(document),
                Output::Notify(n) => changed |= self.notify(n),
            }
        }
        if changed {
            self.changed();
        }
        self.settle_unsynced();
        self.queued.set(self.queued.get() + 1);
        let _ = self.jobs.unbounded_send(job);
    }

    /// Tells the interface that documents changed: at once if it was told more than
    /// [`REFRESH_MS`] ago, else once when that time is up. Opening a catalogue of thousands
    /// changes a document per load; re-indexing the list for each would take minutes.
    fn changed(&self) {
        let now = js_sys::Date::now();
        if now - self.last_refresh.get() >= REFRESH_MS {
            self.last_refresh.set(now);
            self.signals.revision.update(|r| *r += 1);
        } else if !self.refresh_scheduled.replace(true) {
            let wait = REFRESH_MS - (now - self.last_refresh.get());
            let revision = self.signals.revision;
            leptos::task::spawn_local(async move {
                sleep(wait.max(1.0) as i32).await;
                if let Some(replica) = replica() {
                    replica.refresh_scheduled.set(false);
                    replica.last_refresh.set(js_sys::Date::now());
                }
                revision.update(|r| *r += 1);
            });
        }
    }

    /// Handles one notification; true if a document changed.
    fn notify(&self, n: Notification) -> bool {
        match n {
            Notification::DocumentChanged { document, origin } => {
                if origin == ChangeOrigin::Local {
                    *self.unsynced.borrow_mut().entry(document).or_default() += 1;
                    self.persist_unsynced();
                }
                self.unavailable.borrow_mut().remove(&document);
                self.follow(document);
                true
            }
            Notification::DocumentReady { document } => {
                self.unavailable.borrow_mut().remove(&document);
                self.follow(document);
                true
            }
            Notification::DocumentUnavailable { document } => {
                self.unavailable.borrow_mut().insert(document);
                true
            }
            Notification::PeerConnected { .. } => {
                self.signals.online.set(true);
                false
            }
            Notification::PeerDisconnected { .. } => {
                self.signals.online.set(false);
                false
            }
            Notification::SyncProgress { done, total, .. } => {
                self.signals.progress.set((done, total));
                false
            }
            Notification::PeerError { message, .. } => {
                self.signals.notice.set(Some(message));
                false
            }
            Notification::DocumentCorrupt { document, error } => {
                self.signals.notice.set(Some(format!(
                    "stored copy of {document} is damaged: {error}"
                )));
                false
            }
            Notification::Ephemeral { document, data, .. } => {
                // Presence from anyone sharing the document (ibis or a JS automerge-repo
                // app); other ephemeral messages are not ours to show.
                if let Ok(p) = ibis_shared::presence::Presence::decode(&data) {
                    self.presence
                        .borrow_mut()
                        .entry(document)
                        .or_default()
                        .insert(
                            p.session,
                            Presence {
                                name: p.name,
                                field: p.field,
                                at: js_sys::Date::now(),
                            },
                        );
                    self.signals.presence.update(|p| *p += 1);
                }
                false
            }
            Notification::ProtocolViolation { reason, .. } => {
                self.signals.notice.set(Some(reason));
                false
            }
            Notification::ChangeRejected { .. } => false,
            Notification::DocumentErased { document } => {
                self.summaries.borrow_mut().remove(&document);
                self.events.borrow_mut().remove(&document);
                true
            }
        }
    }

    /// Opens whatever a changed document points to, and refreshes practice summaries.
    fn follow(&self, id: DocumentId) {
        let mut to_open = Vec::new();
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
                    }
                }
                Some(DocumentKind::Event) => {
                    if let Ok(event) = Event::load(doc) {
                        self.events.borrow_mut().insert(id, event);
                    }
                }
                Some(DocumentKind::Practice) => {
                    let heads = heads_of(doc);
                    let current = self
                        .summaries
                        .borrow()
                        .get(&id)
                        .is_some_and(|s| s.heads == heads);
                    if !current {
                        if let Ok(p) = Practice::load(doc) {
                            let record = PracticeRecord::from_practice(Some(id), &p, true);
                            let stored = StoredSummary { heads, record };
                            if let Ok(json) = serde_json::to_string(&stored) {
                                self.summaries_to_store.borrow_mut().push((id, json));
                            }
                            self.summaries.borrow_mut().insert(
                                id,
                                Summary {
                                    heads: stored.heads,
                                    indexed: Arc::new(Indexed::new(stored.record)),
                                },
                            );
                        }
                    }
                }
                _ => {}
            }
        }
        let now = now_ms();
        let summaries = self.summaries.borrow();
        let mut engine = self.engine.borrow_mut();
        for other in to_open {
            // A stored practice with a summary needs no loading to be listed, and the bulk
            // sync with the node (a replica peer) covers every stored document; reopening
            // thousands whenever a catalogue changes would only reload them.
            let listed = engine.is_stored(&other) && summaries.contains_key(&other);
            if engine.document(&other).is_none() && !listed {
                engine.open(now, other);
            }
        }
    }

    fn settle_unsynced(&self) {
        let settled: Vec<DocumentId> = {
            let engine = self.engine.borrow();
            self.unsynced
                .borrow()
                .keys()
                .filter(|id| engine.in_sync_with_peers(id))
                .copied()
                .collect()
        };
        if !settled.is_empty() {
            let mut unsynced = self.unsynced.borrow_mut();
            for id in settled {
                unsynced.remove(&id);
            }
            drop(unsynced);
            self.persist_unsynced();
        }
        self.signals
            .waiting
            .set(self.unsynced.borrow().values().map(|n| *n as usize).sum());
    }

    fn persist_unsynced(&self) {
        let list: Vec<(String, u32)> = self
            .unsynced
            .borrow()
            .iter()
            .map(|(id, n)| (id.to_string(), *n))
            .collect();
        let db = self.db.clone();
        leptos::task::spawn_local(async move {
            if let Ok(text) = serde_json::to_string(&list) {
                let _ = db.set_meta("unsynced", &text).await;
            }
        });
    }

    // ---- what the UI uses ----

    /// Loads a document (from IndexedDB, or from the node) and keeps it in memory.
    pub fn open(&self, id: DocumentId) {
        self.engine.borrow_mut().open(now_ms(), id);
        self.pump();
    }

    pub fn is_unavailable(&self, id: &DocumentId) -> bool {
        self.unavailable.borrow().contains(id)
    }

    /// Reads a document, if it is here.
    pub fn with_doc<R>(&self, id: &DocumentId, f: impl FnOnce(&Automerge) -> R) -> Option<R> {
        self.engine.borrow().document(id).map(f)
    }

    /// Changes a document (creating it if nobody has it).
    pub fn change<R>(
        &self,
        id: DocumentId,
        f: impl FnOnce(&mut Automerge) -> R,
    ) -> Result<R, EngineError> {
        let result = self.engine.borrow_mut().change(now_ms(), id, f);
        self.pump();
        result
    }

    /// Adds a document made here (or merges it into ours).
    pub fn insert(&self, id: DocumentId, doc: Automerge) -> Result<(), EngineError> {
        let result = self.engine.borrow_mut().insert(now_ms(), id, doc);
        self.pump();
        result
    }

    /// Tells others who share the document that we are here.
    pub fn announce_presence(&self, id: DocumentId, name: &str, field: &str) {
        let payload = ibis_shared::presence::Presence {
            name: name.to_owned(),
            field: field.to_owned(),
            session: self.engine.borrow().config().ephemeral_session_id.clone(),
        };
        self.engine
            .borrow_mut()
            .send_ephemeral(id, payload.encode());
        self.pump();
    }

    /// Others seen on a document in the last 30 seconds.
    pub fn present(&self, id: &DocumentId) -> Vec<Presence> {
        let cutoff = js_sys::Date::now() - 30_000.0;
        self.presence
            .borrow()
            .get(id)
            .map(|m| m.values().filter(|p| p.at >= cutoff).cloned().collect())
            .unwrap_or_default()
    }

    /// The flat records of every practice here, ready for search.
    pub fn summaries(&self) -> Vec<Arc<Indexed>> {
        self.summaries
            .borrow()
            .values()
            .map(|s| s.indexed.clone())
            .collect()
    }

    pub fn events(&self) -> Vec<(DocumentId, Event)> {
        self.events
            .borrow()
            .iter()
            .map(|(id, e)| (*id, e.clone()))
            .collect()
    }

    pub fn summary(&self, id: &DocumentId) -> Option<PracticeRecord> {
        self.summaries
            .borrow()
            .get(id)
            .map(|s| s.indexed.record.clone())
    }

    /// Drops the connection so a new one is made at once: after logging in or out, the
    /// node must see the new credentials, which apply at the WebSocket upgrade.
    pub fn reconnect(&self) {
        if let Some(socket) = self.socket.borrow().as_ref() {
            socket.close();
        }
    }

    // ---- from the socket ----

    fn connected(&self) -> ConnectionId {
        let conn = ConnectionId(self.next_conn.get());
        self.next_conn.set(conn.0 + 1);
        self.engine.borrow_mut().handle(
            now_ms(),
            Input::Connected {
                conn,
                direction: ibis_shared::sync::Direction::Outgoing,
                principal: (),
            },
        );
        self.pump();
        conn
    }

    fn frame(&self, conn: ConnectionId, frame: Vec<u8>) {
        self.engine
            .borrow_mut()
            .handle(now_ms(), Input::Frame { conn, frame });
        self.pump();
    }

    fn text_frame(&self, conn: ConnectionId) {
        self.engine
            .borrow_mut()
            .handle(now_ms(), Input::TextFrame { conn });
        self.pump();
    }

    fn disconnected(&self, conn: ConnectionId) {
        self.engine
            .borrow_mut()
            .handle(now_ms(), Input::Disconnected { conn });
        self.signals.online.set(false);
        self.pump();
    }
}

/// The interface is told of changed documents at most this often (ms).
const REFRESH_MS: f64 = 100.0;
