//! Revocation reaches live connections: a member removed (`ibis-node user remove`, from
//! any process), a session ended (logout) or expired, a partner removed (`peer remove`):
//! each connection opened with that credential is closed, with the reason, within a few
//! seconds. Credentials are checked at the upgrade; this keeps checking them while the
//! connection lives.
//!
//! Every open connection with a credential is registered here ([`Revocations::watch`]);
//! the registry counts revocations ([`Registry::revocations`]), and when the count moves
//! (polled every [`POLL`]), or a logout in this process asks ([`Revocations::check_now`]),
//! or every [`RECHECK`] for expiries, each credential is looked up again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ibis_shared::model::Role;
use ibis_shared::sync::ConnectionId;
use tokio::sync::{watch, Notify};

use crate::federation::NodePublicKey;
use crate::registry::{Acl, Registry};

/// How often the registry's revocation count is read.
pub const POLL: Duration = Duration::from_secs(2);
/// How often every credential is checked anyway (sessions expire).
pub const RECHECK: Duration = Duration::from_secs(60);

/// What a connection was let in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A session cookie or API token, for this member in this role.
    Member {
        secret: String,
        name: String,
        role: Role,
    },
    /// A registered partner's key, with what it was let in as.
    Partner {
        key: NodePublicKey,
        organization: String,
        acl: Acl,
    },
    /// A registered peer without a key (a plain automerge-repo server), by its name.
    Relay { name: String },
}

struct Entry {
    credential: Credential,
    tx: watch::Sender<Option<String>>,
}

pub struct Revocations {
    registry: Arc<Registry>,
    connections: Mutex<HashMap<ConnectionId, Entry>>,
    wake: Notify,
}

/// Unregisters its connection when dropped (when the connection task ends).
pub struct Watched {
    revocations: Arc<Revocations>,
    conn: ConnectionId,
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.revocations.table().remove(&self.conn);
    }
}

impl Revocations {
    pub fn new(registry: Arc<Registry>) -> Arc<Self> {
        Arc::new(Self {
            registry,
            connections: Mutex::new(HashMap::new()),
            wake: Notify::new(),
        })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<ConnectionId, Entry>> {
        self.connections.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a connection: the receiver says why once its credential is revoked.
    pub fn watch(
        self: &Arc<Self>,
        conn: ConnectionId,
        credential: Credential,
    ) -> (watch::Receiver<Option<String>>, Watched) {
        let (tx, rx) = watch::channel(None);
        self.table().insert(conn, Entry { credential, tx });
        (
            rx,
            Watched {
                revocations: self.clone(),
                conn,
            },
        )
    }

    /// Checks every credential now (after a logout in this process).
    pub fn check_now(&self) {
        self.wake.notify_one();
    }

    /// Why a credential no longer holds, if it does not.
    pub fn revoked(&self, credential: &Credential) -> Option<String> {
        match credential {
            Credential::Member { secret, name, role } => match self.registry.authenticate(secret) {
                Ok(Some(user)) if user.name == *name && user.role == *role => None,
                Ok(Some(_)) => Some("your role changed; connect again".into()),
                Ok(None) => Some("your session ended; log in again".into()),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot check a session; keeping the connection");
                    None
                }
            },
            Credential::Partner {
                key,
                organization,
                acl,
            } => match self.registry.peer_by_key(key) {
                Ok(Some(peer)) if peer.organization == *organization && peer.acl == *acl => None,
                Ok(Some(_)) => Some("this partner's registration changed; connect again".into()),
                Ok(None) => Some("this partner was removed".into()),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot check a partner; keeping the connection");
                    None
                }
            },
            Credential::Relay { name } => match self.registry.peers() {
                Ok(peers) if peers.iter().any(|p| p.name == *name) => None,
                Ok(_) => Some("this peer was removed".into()),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot check a peer; keeping the connection");
                    None
                }
            },
        }
    }

    /// Checks every registered credential; closes what was revoked. Returns how many.
    pub fn check_all(&self) -> usize {
        let credentials: Vec<(ConnectionId, Credential)> = self
            .table()
            .iter()
            .map(|(conn, e)| (*conn, e.credential.clone()))
            .collect();
        let mut closed = 0;
        for (conn, credential) in credentials {
            if let Some(reason) = self.revoked(&credential) {
                if let Some(entry) = self.table().get(&conn) {
                    tracing::info!(?conn, %reason, "credential revoked; closing the connection");
                    let _ = entry.tx.send(Some(reason));
                    closed += 1;
                }
            }
        }
        closed
    }

    /// Runs until `shutdown`: polls the registry's revocation count, and checks every
    /// credential when it moves, when asked, and every [`RECHECK`].
    pub fn spawn(
        self: Arc<Self>,
        mut shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut seen = self.read_count().await;
            let mut poll = tokio::time::interval(POLL);
            let mut since_check = Duration::ZERO;
            loop {
                let asked = tokio::select! {
                    _ = poll.tick() => false,
                    _ = self.wake.notified() => true,
                    _ = shutdown.changed() => return,
                };
                since_check += POLL;
                let count = self.read_count().await;
                if !(asked || count != seen || since_check >= RECHECK) {
                    continue;
                }
                seen = count;
                since_check = Duration::ZERO;
                let this = self.clone();
                let _ = tokio::task::spawn_blocking(move || this.check_all()).await;
            }
        })
    }

    async fn read_count(&self) -> Option<i64> {
        let registry = self.registry.clone();
        tokio::task::spawn_blocking(move || registry.revocations().ok())
            .await
            .ok()
            .flatten()
    }
}
