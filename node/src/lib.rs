//! The ibis node: an automerge-repo compatible sync server that keeps its documents in
//! SQLite, serves the ibis app, and replicates with partner nodes.
//!
//! Code map:
//! - [`config`]: the `ibis.toml` file.
//! - [`init`]: a new data dir (identity, the organization's documents), the data dir lock.
//! - [`store`]: SQLite storage.
//! - [`host`]: the engine task and the storage thread (ordering and durability live here).
//! - [`policy`]: who may read and write what.
//! - [`connection`]: one WebSocket's task; [`dial`]: connections to partners.
//! - [`server`]: HTTP routes; [`metrics`]: `/metrics`.
//! - [`registry`]: members, sessions, tokens, partner nodes, invitations.
//! - [`federation`]: node keys and the partner challenge-response.
//! - [`import`]: practices from JSON or CSV; [`archive`]: export, archive import, backup;
//!   [`index`]: the practice index for the API.
//! - [`client`]: an automerge-repo client made of the same parts (tests, benchmarks).

pub mod archive;
pub mod client;
pub mod config;
pub mod connection;
pub mod dial;
pub mod federation;
pub mod geo;
pub mod host;
pub mod import;
pub mod index;
pub mod init;
pub mod limits;
pub mod metrics;
pub mod migrate;
pub mod pages;
pub mod policy;
pub mod quota;
pub mod registry;
pub mod revocation;
pub mod server;
pub mod store;
pub mod withdrawals;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use ibis_shared::protocol::{Limits, PeerId, StorageId};
use ibis_shared::sync::EngineConfig;
use tokio::sync::watch;

pub use config::{AuthMode, Config};
pub use init::{init, InitOptions, Network, NodeInfo};
pub use store::Durability;

/// How to run a node; unset fields come from `ibis.toml`.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    pub data_dir: PathBuf,
    pub listen: Option<SocketAddr>,
    /// Partner nodes to dial, in addition to those in `ibis.toml`.
    pub peers: Vec<String>,
    pub app_dir: Option<PathBuf>,
    /// No accounts: every visitor acts as an admin of this organization.
    pub open: bool,
    pub durability: Option<Durability>,
    /// Drop documents from memory after this long idle (default: a minute).
    pub evict_idle_after_ms: Option<u64>,
    /// Most simultaneous sync connections (default from `ibis.toml`).
    pub max_connections: Option<usize>,
}

/// A node that is serving.
pub struct RunningNode {
    addr: SocketAddr,
    info: NodeInfo,
    host: host::Host<policy::NodePolicy>,
    metrics: Arc<metrics::Metrics>,
    shutdown: watch::Sender<bool>,
    engine_task: tokio::task::JoinHandle<()>,
    server: tokio::task::JoinHandle<()>,
    dialers: Vec<tokio::task::JoinHandle<()>>,
    indexer: tokio::task::JoinHandle<()>,
    /// The index's rebuild at start (if it was stale), and what stops it.
    rebuild: tokio::task::JoinHandle<()>,
    rebuild_stop: Arc<std::sync::atomic::AtomicBool>,
    withdrawals: tokio::task::JoinHandle<()>,
    revocations: tokio::task::JoinHandle<()>,
    _lock: init::DataDirLock,
}

impl RunningNode {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn sync_url(&self) -> String {
        format!("ws://{}/sync", self.addr)
    }

    pub fn info(&self) -> &NodeInfo {
        &self.info
    }

    pub fn host(&self) -> &host::Host<policy::NodePolicy> {
        &self.host
    }

    pub fn metrics(&self) -> &metrics::Metrics {
        &self.metrics
    }

    /// Stops accepting, closes every connection (saving sync states), flushes storage and
    /// releases the data dir.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        // Nothing of this node writes once it has stopped (a node may start again on the
        // same data dir at once).
        self.rebuild_stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.rebuild.await;
        self.host.shutdown().await;
        self.engine_task
            .await
            .context("the engine task failed during shutdown")?;
        for dialer in self.dialers {
            let _ = dialer.await;
        }
        let _ = self.revocations.await;
        self.indexer.abort();
        self.withdrawals.abort();
        let _ = self.server.await;
        Ok(())
    }
}

/// Large allocations (an argon2 password check's 19 MiB, a big document's save) are mapped
/// and unmapped on their own instead of staying in glibc's heap once freed: glibc would
/// otherwise raise its threshold to the largest block it ever freed and keep every such
/// block (measured: 300 failed logins left the node at about 300 MB; with this, 69 MB,
/// falling back to 30 MB).
fn return_large_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets glibc's allocator tunables; it has no preconditions.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
}

/// Starts a node from an initialized data dir.
pub async fn serve(options: ServeOptions) -> anyhow::Result<RunningNode> {
    return_large_blocks_to_the_system();
    let data_dir = &options.data_dir;
    let mut config = Config::load(data_dir)?;
    if let Some(listen) = options.listen {
        config.node.listen = listen;
    }
    for peer in &options.peers {
        if !config.node.peers.contains(peer) {
            config.node.peers.push(peer.clone());
        }
    }
    if options.app_dir.is_some() {
        config.node.app_dir = options.app_dir.clone();
    }
    if options.open {
        config.auth.mode = AuthMode::Open;
    }
    if let Some(durability) = options.durability {
        config.node.durability = durability;
    }
    if let Some(max) = options.max_connections {
        config.node.max_connections = max;
    }
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid settings: {e}"))?;

    let lock = init::DataDirLock::acquire(data_dir)?;
    let mut store = store::Store::open(data_dir, config.node.durability)?;
    if let Some(mb) = config.node.max_database_mb {
        store.limit_size(mb)?;
    }
    init::refresh_directory_entry(&mut store, &config)?;
    let held = host::Held {
        stored: store.document_ids()?,
        erased: store.erased_ids()?,
    };
    let registry = Arc::new(registry::Registry::open(data_dir)?);
    let index = Arc::new(index::PracticeIndex::open(data_dir)?);
    let key = Arc::new(federation::NodeKey::load_or_create(data_dir)?);

    let limits = Limits::default();
    let mut engine_config = EngineConfig::new(
        PeerId::new(config.node.peer_id.clone()),
        Some(StorageId::new(config.node.storage_id.clone())),
    );
    engine_config.limits = limits;
    if let Some(ms) = options.evict_idle_after_ms {
        engine_config.evict_idle_after = Some(ms);
    }
    let untyped = Arc::new(quota::UntypedQuota::open(data_dir)?);
    let policy = policy::NodePolicy::new(&config, untyped.clone());
    let metrics = Arc::new(metrics::Metrics::default());
    let storage = quota::Charged {
        inner: store,
        quota: untyped,
    };
    let (host, engine_task) = host::start(engine_config, policy, storage, held, metrics.clone());

    let listener = tokio::net::TcpListener::bind(config.node.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.node.listen))?;
    let addr = listener.local_addr()?;
    let info = NodeInfo::from_config(&config);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let state = server::AppState::new(
        host.clone(),
        metrics.clone(),
        Arc::new(config.clone()),
        Arc::new(info.clone()),
        limits,
        registry.clone(),
        key.clone(),
        index.clone(),
    )
    .map_err(|e| anyhow::anyhow!("invalid settings: {e}"))?;
    let state_revocations = state.revocations.clone();
    let app = server::router(state, config.node.app_dir.clone());
    let mut server_shutdown = shutdown_rx.clone();
    let server = tokio::spawn(async move {
        // Sync messages are small frames: without TCP_NODELAY, Nagle's algorithm holds a
        // frame back until the previous one is acknowledged, and a delayed ACK makes that
        // 40 ms (seen as the fan-out benchmark's p99).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::warn!(error = %e, "cannot set TCP_NODELAY on a connection");
            }
        });
        // With each connection's peer address: per-client limits need it
        // (`server::client_address`).
        let result = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = server_shutdown.wait_for(|stop| *stop).await;
        })
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    // Registered partners with a URL, then ad hoc peers from the command line or the
    // config (whose key is learned when they prove it).
    // Each registered partner's connection lives as long as its registration.
    let mut targets: Vec<(
        String,
        Option<federation::NodePublicKey>,
        policy::Principal,
        Option<revocation::Credential>,
    )> = Vec::new();
    for peer in registry.peers()? {
        if peer.url.is_empty() {
            continue;
        }
        let expect = if peer.public_key.is_empty() {
            None
        } else {
            Some(federation::NodePublicKey::parse(&peer.public_key)?)
        };
        let credential = match expect {
            Some(key) => revocation::Credential::Partner {
                key,
                organization: peer.organization.clone(),
                acl: peer.acl,
            },
            None => revocation::Credential::Relay {
                name: peer.name.clone(),
            },
        };
        targets.push((
            peer.url.clone(),
            expect,
            policy::Principal::Partner {
                name: peer.name.clone(),
                organization: (!peer.organization.is_empty()).then(|| peer.organization.clone()),
                acl: peer.acl,
            },
            Some(credential),
        ));
    }
    for url in &config.node.peers {
        if !targets.iter().any(|(u, ..)| u == url) {
            targets.push((
                url.clone(),
                None,
                // A sync server named on the command line or in the config: a relay
                // without an organization.
                policy::Principal::Partner {
                    name: url.clone(),
                    organization: None,
                    acl: registry::Acl::FULL,
                },
                None,
            ));
        }
    }
    let revocations = state_revocations;
    let dialers = targets
        .into_iter()
        .map(|(url, expect, principal, credential)| {
            let identity = dial::DialIdentity {
                query: String::new(),
                key: Some(key.clone()),
                expect,
            };
            let options = dial::DialOptions {
                limits: principal.limits(),
                registration: credential.map(|c| (revocations.clone(), c)),
                healthy: Some(metrics.clone()),
            };
            dial::spawn(
                url,
                identity,
                host.clone(),
                principal,
                options,
                shutdown_rx.clone(),
            )
        })
        .collect();
    let revocation_task = revocations.spawn(shutdown_rx.clone());
    let rebuild_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rebuild = {
        let (index, stop) = (index.clone(), rebuild_stop.clone());
        tokio::task::spawn_blocking(move || match index.rebuild_if_stale(&stop) {
            Ok(0) => {}
            Ok(n) => tracing::info!(practices = n, "practice index rebuilt"),
            Err(e) => tracing::error!(error = %e, "cannot rebuild the practice index"),
        })
    };
    let indexer = index::indexer::spawn(host.clone(), index);
    let withdrawals = withdrawals::spawn(host.clone(), config.documents.directory);
    tracing::info!(%addr, organization = %info.organization_name, "node serving");
    Ok(RunningNode {
        addr,
        info,
        host,
        metrics,
        shutdown,
        engine_task,
        server,
        dialers,
        indexer,
        rebuild,
        rebuild_stop,
        revocations: revocation_task,
        withdrawals,
        _lock: lock,
    })
}
