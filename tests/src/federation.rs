//! Federations of nodes in this process on ephemeral ports, serving the built app, and
//! waits on what a node has done.

use std::path::{Path, PathBuf};

use ibis_node::{InitOptions, Network, NodeInfo, RunningNode, ServeOptions};
use ibis_shared::DocumentId;

use crate::{app_dir, eventually, get_json, WAIT};

/// Waits until a node's index lists `n` practices (it is built as the node starts, after
/// an import, while the node already serves).
pub async fn wait_listed(node: &RunningNode, n: u64) {
    let url = format!("{}/api/practices?limit=1", node.http_url());
    eventually(WAIT, "the practices are listed", || {
        let url = url.clone();
        async move {
            let body = get_json(&url).await?;
            (body["total"].as_u64() == Some(n)).then_some(())
        }
    })
    .await
    .expect("listed");
}

/// Waits until `node` has answered at least `n` fresh peers straight from storage, without
/// loading the documents (`ibis_snapshots_served_total`), so a test knows that path ran.
pub async fn served_unloaded(node: &RunningNode, n: u64) -> anyhow::Result<()> {
    let metrics = node.metrics();
    eventually(
        WAIT,
        "the node to serve a stored document unloaded",
        || async {
            (metrics
                .snapshots_served
                .load(std::sync::atomic::Ordering::Relaxed)
                >= n)
                .then_some(())
        },
    )
    .await
}

/// Nodes of one network, in this process.
pub struct Federation {
    _root: tempfile::TempDir,
    pub nodes: Vec<RunningNode>,
    pub dirs: Vec<PathBuf>,
    open: bool,
    addrs: Vec<std::net::SocketAddr>,
}

impl Federation {
    /// `names.len()` nodes; each dials the previous one. `open`: every visitor is an
    /// admin; otherwise people need accounts, and the nodes know each other's keys.
    pub async fn start(names: &[&str], open: bool) -> anyhow::Result<Self> {
        Self::start_with(names, open, |_, _| Ok(())).await
    }

    /// Like [`Federation::start`], running `prepare(i, data_dir)` on each node's
    /// initialized data dir before it serves (to import data, add users…).
    pub async fn start_with(
        names: &[&str],
        open: bool,
        prepare: impl Fn(usize, &Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<Self> {
        let root = tempfile::tempdir()?;
        let mut dirs = Vec::new();
        let mut directory: Option<DocumentId> = None;
        for name in names {
            let dir = root.path().join(name.to_lowercase());
            let mut options = InitOptions::new(&dir, name);
            options.org_id = Some(name.to_lowercase());
            if let Some(d) = directory {
                options.network = Network::Join { directory: d };
            }
            let info: NodeInfo = ibis_node::init(&options)?;
            directory = Some(DocumentId::parse_id_or_url(&info.directory)?);
            prepare(dirs.len(), &dir)?;
            dirs.push(dir);
        }
        if !open {
            // Each node accepts the next one (which dials it) by key, as the organization
            // it is (its data dir is named by its organization id).
            for pair in dirs.windows(2) {
                let key = ibis_node::federation::NodeKey::load_or_create(&pair[1])?;
                let organization = pair[1]
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                ibis_node::registry::Registry::open(&pair[0])?.add_peer(
                    &ibis_node::registry::Peer {
                        name: organization.clone(),
                        url: String::new(),
                        public_key: key.public().to_string(),
                        organization,
                        acl: ibis_node::registry::Acl::FULL,
                    },
                )?;
            }
        }
        let mut federation = Self {
            _root: root,
            nodes: Vec::new(),
            dirs,
            open,
            addrs: Vec::new(),
        };
        for i in 0..federation.dirs.len() {
            let peers = federation
                .nodes
                .last()
                .map(|n| vec![n.sync_url()])
                .unwrap_or_default();
            let node = federation
                .serve(i, "127.0.0.1:0".parse()?, peers, None)
                .await?;
            federation.addrs.push(node.addr());
            federation.nodes.push(node);
        }
        for i in 0..federation.nodes.len() {
            federation.wait_connected(i).await?;
        }
        Ok(federation)
    }

    async fn serve(
        &self,
        i: usize,
        listen: std::net::SocketAddr,
        peers: Vec<String>,
        max_connections: Option<usize>,
    ) -> anyhow::Result<RunningNode> {
        ibis_node::serve(ServeOptions {
            data_dir: self.dirs[i].clone(),
            listen: Some(listen),
            peers,
            app_dir: app_dir(),
            open: self.open,
            max_connections,
            ..ServeOptions::default()
        })
        .await
    }

    /// Waits until node `i` is linked to its neighbours.
    pub async fn wait_connected(&self, i: usize) -> anyhow::Result<()> {
        let n = self.nodes.len();
        let wanted = if n == 1 {
            0
        } else if i == 0 || i == n - 1 {
            1
        } else {
            2
        };
        let node = &self.nodes[i];
        eventually(WAIT, "the federation to connect", || async {
            (node
                .metrics()
                .ready_peers
                .load(std::sync::atomic::Ordering::Relaxed)
                >= wanted)
                .then_some(())
        })
        .await
    }

    /// Stops node `i` (its browsers go offline); [`Federation::restart`] brings it back
    /// on the same address.
    pub async fn stop(&mut self, i: usize) -> anyhow::Result<()> {
        let placeholder = self.serve_placeholder().await?;
        let node = std::mem::replace(&mut self.nodes[i], placeholder);
        node.shutdown().await
    }

    /// A stand-in while a node is stopped: a node of its own in a scratch dir.
    async fn serve_placeholder(&self) -> anyhow::Result<RunningNode> {
        let dir = tempfile::tempdir_in(self._root.path())?.keep().join("node");
        ibis_node::init(&InitOptions::new(&dir, "placeholder"))?;
        ibis_node::serve(ServeOptions {
            data_dir: dir,
            listen: Some("127.0.0.1:0".parse()?),
            ..ServeOptions::default()
        })
        .await
    }

    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.restart_with_max_connections(i, None).await
    }

    /// Restarts node `i` taking at most `max` sync connections at once (more are
    /// refused until one closes); `None`: as its configuration says.
    pub async fn restart_with_max_connections(
        &mut self,
        i: usize,
        max: Option<usize>,
    ) -> anyhow::Result<()> {
        let peers = if i > 0 {
            vec![self.nodes[i - 1].sync_url()]
        } else {
            Vec::new()
        };
        let node = self.serve(i, self.addrs[i], peers, max).await?;
        let placeholder = std::mem::replace(&mut self.nodes[i], node);
        placeholder.shutdown().await?;
        self.wait_connected(i).await
    }

    /// Adds a member to node `i`.
    pub fn add_user(
        &self,
        i: usize,
        name: &str,
        role: ibis_shared::model::Role,
        password: &str,
    ) -> anyhow::Result<()> {
        ibis_node::registry::Registry::open(&self.dirs[i])?.add_user(name, role, password)?;
        Ok(())
    }

    /// An API token for member `name` of node `i`.
    pub fn token(&self, i: usize, name: &str) -> anyhow::Result<String> {
        Ok(ibis_node::registry::Registry::open(&self.dirs[i])?.issue_token(name, "test", 1)?)
    }

    pub async fn shutdown(self) -> anyhow::Result<()> {
        for node in self.nodes {
            node.shutdown().await?;
        }
        Ok(())
    }
}
