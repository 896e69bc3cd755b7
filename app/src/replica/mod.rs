//! The browser's replica: the shared sync engine, hosted on IndexedDB and a WebSocket.
//!
//! Everything the engine outputs becomes a job; jobs run one after another: first the
//! job's writes in one IndexedDB transaction (awaited until durable), then its frames,
//! then its loads. That is the engine's one ordering rule — a peer never hears of a change
//! before it is stored — kept in the browser.
//!
//! The replica also follows the catalogue (`follow.rs`): when the directory changes it
//! opens every organization's catalogue; when a catalogue or the workspace changes it opens
//! every practice listed and erases what was withdrawn. It keeps a summary (a flat record)
//! of each practice for the list and search, and counts local changes the node has not yet
//! acknowledged. Logging out forgets the organization's private documents (`private.rs`);
//! `presence.rs` keeps who else has a practice open.

mod follow;
mod idb;
mod jobs;
mod presence;
mod private;
mod socket;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;

use automerge::Automerge;
use futures::channel::mpsc;
use ibis_shared::model::event::Event;
use ibis_shared::model::record::PracticeRecord;
use ibis_shared::protocol::{PeerId, StorageId};
use ibis_shared::sync::{
    ChangeOrigin, ConnectionId, Engine, EngineConfig, EngineError, Input, Notification, OpenPolicy,
    Output, StoreOp,
};
use ibis_shared::DocumentId;
use leptos::prelude::*;

use follow::{StoredSummary, Summary, Withdrawal};
use ibis_shared::search::Indexed;

pub use idb::IdbError;
pub use jobs::{mark_once, sleep};
use jobs::{run_jobs, start_ticks};
pub use presence::Presence;

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
    /// Every practice this browser had stored has been opened, or it had stored
    /// documents at start (set once per page load).
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

/// A document's heads, as one string (for comparing with a stored summary's).
fn heads_of(doc: &Automerge) -> String {
    let mut heads: Vec<String> = doc.get_heads().iter().map(|h| h.to_string()).collect();
    heads.sort();
    heads.join(",")
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
    events: RefCell<Vec<(DocumentId, Event)>>,
    /// Local changes per document not yet acknowledged by the node (persisted).
    unsynced: RefCell<BTreeMap<DocumentId, u32>>,
    /// Documents nobody could provide.
    unavailable: RefCell<BTreeSet<DocumentId>>,
    /// Who else is looking at which practice: (document, session, presence), the last
    /// minute's.
    presence: RefCell<Vec<(DocumentId, String, Presence)>>,
    /// Withdrawn practices erased here, and what replaced them, if anything (persisted).
    redirects: RefCell<Vec<(DocumentId, Option<DocumentId>)>>,
    /// Practices named as withdrawn, loading so we can see whose they are.
    pending_withdrawals: RefCell<Vec<Withdrawal>>,
    /// Handling the engine's output gave it more to do (an erase, an open).
    pump_again: Cell<bool>,
    /// Documents opened only to be listed (or to see whose they are), closed once followed.
    opened_to_list: RefCell<BTreeSet<DocumentId>>,
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
        // A line per document: its id and how many of its changes wait.
        let unsynced: BTreeMap<DocumentId, u32> = db
            .meta("unsynced")
            .await?
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let (id, n) = line.split_once(' ')?;
                Some((DocumentId::parse(id).ok()?, n.parse().ok()?))
            })
            .collect();
        let stored = db.document_ids().await?;
        // The list renders from stored summaries at once; each is checked against its
        // document's heads when the document loads.
        let summaries: BTreeMap<DocumentId, Summary> = db
            .summaries()
            .await?
            .into_iter()
            .filter_map(|(id, json)| Some((id, StoredSummary::parse(&json)?.into_summary())))
            .collect();
        // A browser that stored anything before has its catalogue as it last saw it (even
        // if that lists nothing any more).
        if !summaries.is_empty() || !stored.is_empty() {
            signals.settled.set(true);
        }
        let redirects = db
            .meta(follow::REDIRECTS)
            .await?
            .map(|json| follow::parse_redirects(&json))
            .unwrap_or_default();
        let mut config = EngineConfig::new(PeerId::new(peer_id), Some(StorageId::new(storage_id)));
        config.ephemeral_session_id = DocumentId::random().to_string();
        // The browser keeps what it shows in memory; documents it does not show are evicted.
        config.evict_idle_after = Some(10 * 60 * 1000);
        // What its organization withdrew stays out.
        let engine = Engine::new(config, OpenPolicy, stored, now_ms())
            .with_erased(redirects.iter().map(|r| r.0));
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
            redirects: RefCell::new(redirects),
            pending_withdrawals: RefCell::default(),
            pump_again: Cell::new(false),
            opened_to_list: RefCell::default(),
        });
        REPLICA.with(|r| *r.borrow_mut() = Some(replica.clone()));
        leptos::task::spawn_local(run_jobs(replica.clone(), rx));
        socket::start(replica.clone());
        start_ticks(replica.clone());
        Ok(replica)
    }

    /// Carries out what the engine has to say.
    fn pump(&self) {
        loop {
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
            if !self.pump_again.replace(false) {
                return;
            }
        }
    }

    /// Tells the interface that documents changed: at once if it was told more than
    /// [`REFRESH_MS`] ago (while documents opened for the list arrive, [`REFRESH_SYNCING_MS`]),
    /// else once when that time is up. Opening a catalogue of thousands changes a document
    /// per load; re-indexing the list for each would take minutes.
    fn changed(&self) {
        let every = if !self.opened_to_list.borrow().is_empty() {
            REFRESH_SYNCING_MS
        } else {
            REFRESH_MS
        };
        let now = js_sys::Date::now();
        if now - self.last_refresh.get() >= every {
            self.last_refresh.set(now);
            self.signals.revision.update(|r| *r += 1);
        } else if !self.refresh_scheduled.replace(true) {
            let wait = every - (now - self.last_refresh.get());
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
                self.seen(document, &data);
                false
            }
            Notification::ProtocolViolation { reason, .. } => {
                self.signals.notice.set(Some(reason));
                false
            }
            Notification::ChangeRejected { .. } => false,
            Notification::DocumentErased { document } => {
                self.summaries.borrow_mut().remove(&document);
                self.events.borrow_mut().retain(|(id, _)| *id != document);
                if self.unsynced.borrow_mut().remove(&document).is_some() {
                    self.persist_unsynced();
                }
                true
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
        let text: String = self
            .unsynced
            .borrow()
            .iter()
            .map(|(id, n)| format!("{id} {n}\n"))
            .collect();
        let db = self.db.clone();
        leptos::task::spawn_local(async move {
            let _ = db.set_meta("unsynced", &text).await;
        });
    }

    // ---- what the UI uses ----

    /// Loads a document (from IndexedDB, or from the node) and keeps it in memory.
    pub fn open(&self, id: DocumentId) {
        self.opened_to_list.borrow_mut().remove(&id);
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

    /// The flat records of every practice the list shows, ready for search: public
    /// practices, and internal ones not published (a published practice shows once).
    pub fn summaries(&self) -> Vec<Arc<Indexed>> {
        follow::listed(&self.summaries.borrow())
            .map(|s| s.indexed.clone())
            .collect()
    }

    pub fn events(&self) -> Vec<(DocumentId, Event)> {
        self.events.borrow().clone()
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
/// ... and while documents opened for the list arrive (a first sync): the list re-indexes
/// every practice each time, and until they are here the node answers its searches.
const REFRESH_SYNCING_MS: f64 = 500.0;
