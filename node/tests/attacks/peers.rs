//! Well-behaved peers: members and visitors using `ibis_node::client::Client`, the
//! [`Witness`] that shows a node keeps syncing for everyone else during an attack, a member
//! publishing a practice the way the app does, and a partner dialing as a node with its key.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use automerge::transaction::Transactable;
use automerge::{Automerge, ReadDoc, ROOT};
use ibis_node::client::{wait_for, Client, ClientOptions};
use ibis_node::dial::{self, DialIdentity};
use ibis_node::federation::{NodeKey, NodePublicKey};
use ibis_node::host::{self, Held, Host, MemoryStorage};
use ibis_node::init::now_ms;
use ibis_node::metrics::Metrics;
use ibis_shared::model::catalogue::{set_entry, Entry};
use ibis_shared::model::publication::publish;
use ibis_shared::model::{Author, DocumentKind, Practice, Role, TagSet};
use ibis_shared::protocol::{PeerId, StorageId};
use ibis_shared::sync::{EngineConfig, Notification, OpenPolicy};
use ibis_shared::DocumentId;
use tokio::sync::{broadcast, watch};

use crate::harness::{Info, Node, WAIT};
use crate::wire::made_up;

/// A client of `node` with `query` in its URL (`token=…` for a member, empty for an
/// anonymous visitor, or an admin in open mode).
pub async fn client(node: &Node, query: &str) -> Client {
    client_with(node, query, None).await
}

/// The same, presenting `storage_id` (so the node would keep sync states for it).
pub async fn client_with(node: &Node, query: &str, storage_id: Option<String>) -> Client {
    let options = ClientOptions {
        query: query.to_owned(),
        storage_id: storage_id.map(StorageId::new),
        ..ClientOptions::default()
    };
    Client::connect(&node.sync_url(), options, WAIT)
        .await
        .unwrap_or_else(|e| panic!("a client of node {} ({query}): {e}", node.name))
}

pub fn token_query(token: &str) -> String {
    format!("token={token}")
}

/// An integer at the document's root.
pub fn int_at(doc: &Automerge, key: &str) -> Option<i64> {
    doc.get(ROOT, key).ok()??.0.as_i64()
}

/// Two clients of one node sharing a document: one changes it, the other must see each
/// change. Counts disconnections of either, which an attack on someone else must not cause.
pub struct Witness {
    writer: Client,
    reader: Client,
    pub doc: DocumentId,
    last: AtomicI64,
    disconnects: Arc<AtomicUsize>,
    watchers: Vec<tokio::task::JoinHandle<()>>,
}

impl Witness {
    pub async fn start(node: &Node, writer_query: &str, reader_query: &str) -> Arc<Self> {
        let writer = client(node, writer_query).await;
        let reader = client(node, reader_query).await;
        let mut doc = Automerge::new();
        doc.transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.put(ROOT, "note", "a witness of the node's service")?;
            tx.put(ROOT, "n", 0i64)?;
            Ok(())
        })
        .expect("a witness document");
        let id = writer
            .create(doc)
            .await
            .expect("create the witness document");
        writer
            .wait_synced(id, WAIT)
            .await
            .expect("the node holds the witness document");
        reader.open(id, WAIT).await.expect("the reader opens it");
        let disconnects = Arc::new(AtomicUsize::new(0));
        let watchers = [&writer, &reader]
            .into_iter()
            .map(|c| {
                let mut events = c.subscribe();
                let disconnects = disconnects.clone();
                tokio::spawn(async move {
                    loop {
                        match events.recv().await {
                            Ok(Notification::PeerDisconnected { .. }) => {
                                disconnects.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                            Err(broadcast::error::RecvError::Closed) => return,
                        }
                    }
                })
            })
            .collect();
        Arc::new(Self {
            writer,
            reader,
            doc: id,
            last: AtomicI64::new(0),
            disconnects,
            watchers,
        })
    }

    /// One change by the writer, seen by the reader: how long that took.
    pub async fn check(&self) -> Result<Duration, String> {
        let k = self.last.fetch_add(1, Ordering::SeqCst) + 1;
        let started = Instant::now();
        self.writer
            .change(self.doc, move |doc| {
                let mut tx = doc.transaction();
                let _ = tx.put(ROOT, "n", k);
                tx.commit();
            })
            .await
            .map_err(|e| format!("the writer's change {k}: {e}"))?;
        self.reader
            .wait_until(self.doc, WAIT, move |doc| {
                int_at(doc, "n").is_some_and(|n| n >= k)
            })
            .await
            .map_err(|e| format!("the reader did not see change {k}: {e}"))?;
        Ok(started.elapsed())
    }

    /// Checks again and again (every 100 ms) until stopped.
    pub fn keep_checking(self: &Arc<Self>) -> Checking {
        let stop = Arc::new(AtomicBool::new(false));
        let witness = self.clone();
        let stopping = stop.clone();
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut failures = Vec::new();
            while !stopping.load(Ordering::SeqCst) {
                match witness.check().await {
                    Ok(took) => seen.push(took),
                    Err(e) => failures.push(e),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (seen, failures)
        });
        Checking { stop, task }
    }

    /// Asserts neither client was disconnected, and closes both.
    pub async fn finish(self: Arc<Self>) {
        assert_eq!(
            self.disconnects.load(Ordering::SeqCst),
            0,
            "a well-behaved client was disconnected"
        );
        let Ok(witness) = Arc::try_unwrap(self) else {
            panic!("the witness is still in use");
        };
        for watcher in &witness.watchers {
            watcher.abort();
        }
        witness.writer.close().await;
        witness.reader.close().await;
    }
}

/// A [`Witness`] checking in the background.
pub struct Checking {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(Vec<Duration>, Vec<String>)>,
}

impl Checking {
    /// Stops; asserts every check succeeded and at least one was made. The slowest check.
    pub async fn stop(self) -> (usize, Duration) {
        self.stop.store(true, Ordering::SeqCst);
        let (seen, failures) = tokio::time::timeout(WAIT * 2, self.task)
            .await
            .expect("the witness stops in time")
            .expect("the witness task");
        assert!(
            failures.is_empty(),
            "well-behaved sync failed during the attack: {failures:?}"
        );
        assert!(!seen.is_empty(), "the witness made no check");
        (seen.len(), seen.iter().copied().max().unwrap_or_default())
    }
}

pub fn author(organization: &str, name: &str, role: Role) -> Author {
    Author {
        name: name.to_owned(),
        organization: organization.to_owned(),
        role,
    }
}

/// A complete internal draft (everything publication asks for), by `by`.
pub fn complete_draft(title: &str, by: &Author, now: i64) -> Automerge {
    let mut p = Practice::new(title, "Lisbon", "PT", by, now);
    p.summary = "One-stop desks where newcomers find housing, language classes and work.".into();
    p.themes = TagSet::from_iter(["housing"]);
    p.create(by, now).expect("a valid draft")
}

/// An organization's public practice, made from a complete draft as a reviewer publishes
/// it: (its id, the document).
pub fn public_practice(
    organization: &str,
    organization_name: &str,
    title: &str,
) -> (DocumentId, Automerge) {
    let reviewer = author(organization, "Rita", Role::Reviewer);
    let now = now_ms();
    let mut internal = complete_draft(title, &reviewer, now);
    let published = publish(&mut internal, &reviewer, organization_name, "", now).expect("publish");
    (published.id, published.document)
}

/// What [`publish_at`] made.
pub struct Publication {
    /// The public practice (the internal one stays home, listed in the workspace).
    pub public: DocumentId,
}

/// A reviewer (the client's member) publishes a practice titled `title` at the node the way
/// the app does: the internal practice and its public practice, listed in the workspace
/// and the catalogue; waits until the node holds all four.
pub async fn publish_at(host: &Host<OpenPolicy>, info: &Info, title: &str) -> Publication {
    let reviewer = author(&info.organization_id, "Rita", Role::Reviewer);
    let now = now_ms();
    let mut internal = complete_draft(title, &reviewer, now);
    let published =
        publish(&mut internal, &reviewer, &info.organization_name, "", now).expect("publish");
    let internal_id = DocumentId::random();
    insert(host, internal_id, internal).await;
    insert(host, published.id, published.document).await;
    for (listing, kind, id) in [
        (info.workspace_id(), DocumentKind::Workspace, internal_id),
        (info.catalogue_id(), DocumentKind::Catalogue, published.id),
    ] {
        open(host, listing).await;
        let by = reviewer.clone();
        change(host, listing, move |doc| {
            set_entry(doc, kind, Entry::Practice, id, true, &by, now)
        })
        .await
        .expect("list the practice");
    }
    for id in [
        internal_id,
        published.id,
        info.workspace_id(),
        info.catalogue_id(),
    ] {
        wait_synced(host, id).await;
    }
    Publication {
        public: published.id,
    }
}

/// Adds a document with a chosen id.
pub async fn insert(host: &Host<OpenPolicy>, id: DocumentId, doc: Automerge) {
    host.run(move |engine, now| engine.insert(now, id, doc))
        .await
        .expect("the client runs")
        .expect("insert");
}

/// Changes a document the client has.
pub async fn change<R: Send + 'static>(
    host: &Host<OpenPolicy>,
    id: DocumentId,
    f: impl FnOnce(&mut Automerge) -> R + Send + 'static,
) -> R {
    host.run(move |engine, now| engine.change(now, id, f))
        .await
        .expect("the client runs")
        .expect("change")
}

/// Fetches a document (or finds it here), within [`WAIT`].
pub async fn open(host: &Host<OpenPolicy>, id: DocumentId) -> Automerge {
    let mut events = host.subscribe();
    let here = host
        .run(move |engine, now| {
            engine.open(now, id);
            engine
                .document(&id)
                .filter(|d| !d.get_heads().is_empty())
                .cloned()
        })
        .await
        .expect("the client runs");
    if let Some(doc) = here {
        return doc;
    }
    wait_for(
        &mut events,
        WAIT,
        &format!("document {id}"),
        |n| matches!(n, Notification::DocumentReady { document } if *document == id),
    )
    .await
    .unwrap_or_else(|e| panic!("open {id}: {e}"));
    host.run(move |engine, _| engine.document(&id).cloned())
        .await
        .flatten()
        .expect("the document")
}

/// Waits until the node has acknowledged holding what the client holds of `id`.
pub async fn wait_synced(host: &Host<OpenPolicy>, id: DocumentId) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut events = host.subscribe();
    loop {
        let synced = host
            .run(move |engine, _| engine.in_sync_with_peers(&id))
            .await
            .expect("the client runs");
        if synced {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("the node did not acknowledge {id} within {WAIT:?}");
        }
        let _ = tokio::time::timeout(Duration::from_millis(50), events.recv()).await;
    }
}

/// Waits for an `error` from the node whose message contains `needle`; its message.
pub async fn node_error(events: &mut broadcast::Receiver<Notification>, needle: &str) -> String {
    let found = wait_for(
        events,
        WAIT,
        &format!("an error with `{needle}`"),
        |n| matches!(n, Notification::PeerError { message, .. } if message.contains(needle)),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    match found {
        Notification::PeerError { message, .. } => message,
        _ => unreachable!(),
    }
}

/// A partner organization's node as seen from the node it dials: the same engine host a
/// client uses, dialing with the partner's key (`/sync?node=…`, challenge-response) and
/// expecting the node's key.
pub struct PartnerClient {
    host: Host<OpenPolicy>,
    shutdown: watch::Sender<bool>,
    engine_task: tokio::task::JoinHandle<()>,
    dialer: tokio::task::JoinHandle<()>,
}

impl PartnerClient {
    pub async fn connect(node: &Node, key: NodeKey, expect: &str, name: &str) -> Self {
        let peer_id = PeerId::new(made_up(name));
        let mut config = EngineConfig::new(peer_id, Some(StorageId::random()));
        config.evict_idle_after = None;
        config.max_loaded_documents = None;
        let (host, engine_task) = host::start(
            config,
            OpenPolicy,
            MemoryStorage::default(),
            Held::default(),
            Arc::new(Metrics::default()),
        );
        let mut events = host.subscribe();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let identity = DialIdentity {
            query: String::new(),
            key: Some(Arc::new(key)),
            expect: Some(NodePublicKey::parse(expect).expect("the node's key")),
        };
        let dialer = dial::spawn(
            node.sync_url(),
            identity,
            host.clone(),
            (),
            dial::DialOptions::new(ibis_node::limits::PARTNER),
            shutdown_rx,
        );
        wait_for(&mut events, WAIT, "the partner's handshake", |n| {
            matches!(n, Notification::PeerConnected { .. })
        })
        .await
        .unwrap_or_else(|e| panic!("the partner did not connect: {e}"));
        Self {
            host,
            shutdown,
            engine_task,
            dialer,
        }
    }

    pub fn host(&self) -> &Host<OpenPolicy> {
        &self.host
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Notification> {
        self.host.subscribe()
    }

    pub async fn close(self) {
        let _ = self.shutdown.send(true);
        self.host.shutdown().await;
        let _ = self.engine_task.await;
        let _ = self.dialer.await;
    }
}
