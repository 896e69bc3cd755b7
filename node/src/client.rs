//! A small automerge-repo client built from the node's own parts: the same engine host, with
//! memory for storage and one dialed connection. Integration tests and the benchmark driver
//! use it to act as any automerge-repo peer would.

use std::sync::Arc;
use std::time::Duration;

use automerge::Automerge;
use ibis_shared::protocol::{PeerId, StorageId};
use ibis_shared::sync::{EngineConfig, EngineError, Notification, OpenPolicy};
use ibis_shared::DocumentId;
use tokio::sync::{broadcast, watch};

use crate::dial::{self, DialIdentity};
use crate::host::{self, Host, MemoryStorage};
use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
    #[error("document {0} is unavailable")]
    Unavailable(DocumentId),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("the client has stopped")]
    Stopped,
}

/// How the client presents itself.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Defaults to a random `ibis-client-…` id.
    pub peer_id: Option<String>,
    /// A storage id makes the node keep sync states for this client; `None` makes it an
    /// ephemeral peer.
    pub storage_id: Option<StorageId>,
    /// Added to the URL's query string (credentials, `role=replica`, …).
    pub query: String,
}

pub struct Client {
    host: Host<OpenPolicy>,
    shutdown: watch::Sender<bool>,
    engine_task: tokio::task::JoinHandle<()>,
    dialer: tokio::task::JoinHandle<()>,
    peer_id: PeerId,
}

impl Client {
    /// Connects to `url` (`ws://host:port/sync`) and waits for the handshake.
    pub async fn connect(
        url: &str,
        options: ClientOptions,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let peer_id = PeerId::new(
            options
                .peer_id
                .unwrap_or_else(|| format!("ibis-client-{}", uuid::Uuid::new_v4().simple())),
        );
        let mut config = EngineConfig::new(peer_id.clone(), options.storage_id.clone());
        config.is_ephemeral = options.storage_id.is_none();
        config.evict_idle_after = None;
        config.max_loaded_documents = None;
        let (host, engine_task) = host::start(
            config,
            OpenPolicy,
            MemoryStorage::default(),
            host::Held::default(),
            Arc::new(Metrics::default()),
        );
        let mut events = host.subscribe();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let dialer = dial::spawn(
            url.to_owned(),
            DialIdentity {
                query: options.query,
                ..DialIdentity::default()
            },
            host.clone(),
            (),
            dial::DialOptions::new(crate::limits::PARTNER),
            shutdown_rx,
        );
        let client = Self {
            host,
            shutdown,
            engine_task,
            dialer,
            peer_id,
        };
        let connected = wait_for(&mut events, timeout, "the handshake", |n| {
            matches!(n, Notification::PeerConnected { .. })
        })
        .await;
        match connected {
            Ok(_) => Ok(client),
            Err(e) => {
                client.close().await;
                Err(e)
            }
        }
    }

    pub fn peer_id(&self) -> &PeerId {
        &self.peer_id
    }

    pub fn host(&self) -> &Host<OpenPolicy> {
        &self.host
    }

    /// Adds a new document and returns its id; it is offered to the node at once.
    pub async fn create(&self, doc: Automerge) -> Result<DocumentId, ClientError> {
        let id = DocumentId::random();
        self.host
            .run(move |engine, now| engine.insert(now, id, doc))
            .await
            .ok_or(ClientError::Stopped)??;
        Ok(id)
    }

    /// Changes a document the client has.
    pub async fn change<R: Send + 'static>(
        &self,
        id: DocumentId,
        f: impl FnOnce(&mut Automerge) -> R + Send + 'static,
    ) -> Result<R, ClientError> {
        Ok(self
            .host
            .run(move |engine, now| engine.change(now, id, f))
            .await
            .ok_or(ClientError::Stopped)??)
    }

    /// A copy of the document as the client has it now.
    pub async fn document(&self, id: DocumentId) -> Option<Automerge> {
        self.host
            .run(move |engine, _| engine.document(&id).cloned())
            .await
            .flatten()
    }

    /// Fetches a document from the node (or finds it here), waiting up to `timeout`.
    pub async fn open(&self, id: DocumentId, timeout: Duration) -> Result<Automerge, ClientError> {
        let mut events = self.host.subscribe();
        let now = self
            .host
            .run(move |engine, now| {
                engine.open(now, id);
                engine.document(&id).cloned()
            })
            .await
            .ok_or(ClientError::Stopped)?;
        if let Some(doc) = now {
            return Ok(doc);
        }
        let mut unavailable = false;
        wait_for(
            &mut events,
            timeout,
            &format!("document {id}"),
            |n| match n {
                Notification::DocumentReady { document } => *document == id,
                Notification::DocumentUnavailable { document } if *document == id => {
                    unavailable = true;
                    true
                }
                _ => false,
            },
        )
        .await?;
        if unavailable {
            return Err(ClientError::Unavailable(id));
        }
        self.document(id).await.ok_or(ClientError::Unavailable(id))
    }

    /// Waits until the document satisfies `ready`, re-checking on every change.
    pub async fn wait_until(
        &self,
        id: DocumentId,
        timeout: Duration,
        ready: impl Fn(&Automerge) -> bool,
    ) -> Result<Automerge, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut events = self.host.subscribe();
        loop {
            if let Some(doc) = self.document(id).await {
                if ready(&doc) {
                    return Ok(doc);
                }
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(ClientError::Timeout(timeout, format!("a change to {id}")));
            }
            let _ = wait_for(&mut events, left, "a change", |n| {
                matches!(n, Notification::DocumentChanged { document, .. } | Notification::DocumentReady { document } if *document == id)
            })
            .await;
        }
    }

    /// Waits until the node has acknowledged holding exactly what this client holds of the
    /// document.
    pub async fn wait_synced(&self, id: DocumentId, timeout: Duration) -> Result<(), ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut events = self.host.subscribe();
        loop {
            let synced = self
                .host
                .run(move |engine, _| engine.in_sync_with_peers(&id))
                .await
                .ok_or(ClientError::Stopped)?;
            if synced {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(ClientError::Timeout(
                    timeout,
                    format!("the node to hold {id}"),
                ));
            }
            // Any engine event may be the acknowledgement; poll again at least every 50 ms.
            let _ = tokio::time::timeout(left.min(Duration::from_millis(50)), events.recv()).await;
        }
    }

    /// Sends an ephemeral message about a document to the node.
    pub async fn send_ephemeral(&self, id: DocumentId, data: Vec<u8>) -> Result<(), ClientError> {
        self.host
            .run(move |engine, _| engine.send_ephemeral(id, data))
            .await
            .ok_or(ClientError::Stopped)
    }

    /// Everything the engine notifies from now on.
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

/// Waits for a notification matching `wanted`, and returns it.
pub async fn wait_for(
    events: &mut broadcast::Receiver<Notification>,
    timeout: Duration,
    what: &str,
    mut wanted: impl FnMut(&Notification) -> bool,
) -> Result<Notification, ClientError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => return Err(ClientError::Timeout(timeout, what.to_owned())),
            Ok(Ok(n)) => {
                if wanted(&n) {
                    return Ok(n);
                }
            }
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(broadcast::error::RecvError::Closed)) => return Err(ClientError::Stopped),
        }
    }
}
