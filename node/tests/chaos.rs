//! Five node processes, linked through proxies this test controls, under a stream of
//! writes while links are cut and restored and nodes are killed with SIGKILL and
//! restarted. After healing, every node holds identical documents, and no write that a
//! node acknowledged (reported stored to its client) is missing.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use automerge::{transaction::Transactable, Automerge, ChangeHash, ReadDoc, ROOT};
use ibis_node::client::{Client, ClientOptions};
use ibis_shared::DocumentId;
use tokio::io::AsyncBufReadExt;
use tokio::sync::watch;

const NODES: usize = 5;
const DOCS: usize = 6;
const WAIT: Duration = Duration::from_secs(20);
const BIN: &str = env!("CARGO_BIN_EXE_ibis-node");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A TCP proxy that can cut every connection through it and refuse new ones.
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    epoch: watch::Sender<u64>,
}

impl Proxy {
    async fn start(target: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let cut = Arc::new(AtomicBool::new(false));
        let (epoch, epoch_rx) = watch::channel(0u64);
        let is_cut = cut.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if is_cut.load(Ordering::SeqCst) {
                    continue; // dropped: the dialer sees the connection close
                }
                let mut epoch = epoch_rx.clone();
                // Only cuts from now on end this connection.
                epoch.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = epoch.changed() => {}
                    }
                });
            }
        });
        Self { port, cut, epoch }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.epoch.send_modify(|e| *e += 1);
    }

    fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

struct Node {
    dir: std::path::PathBuf,
    port: u16,
    peers: Vec<String>,
    child: Option<Child>,
    log: std::path::PathBuf,
}

impl Node {
    async fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&self.dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--open")
            .env("IBIS_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log);
        for peer in &self.peers {
            cmd.arg("--peer").arg(peer);
        }
        let mut child = cmd.spawn().expect("spawn ibis-node");
        let stdout = child.stdout.take().expect("stdout");
        self.child = Some(child);
        let mut lines = tokio::io::BufReader::new(
            tokio::process::ChildStdout::from_std(stdout).expect("async stdout"),
        )
        .lines();
        let ready = tokio::time::timeout(WAIT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with("ibis-node listening on") {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(ready, Ok(true), "node on port {} did not start", self.port);
    }

    /// SIGKILL: no shutdown, no flush.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn sync_url(&self) -> String {
        format!("ws://127.0.0.1:{}/sync", self.port)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn put(key: String, value: i64) -> impl FnOnce(&mut Automerge) -> Option<ChangeHash> + Send {
    move |doc| {
        let mut tx = doc.transaction();
        tx.put(ROOT, key, value).ok()?;
        tx.commit();
        doc.get_last_local_change().map(|c| c.hash())
    }
}

/// Acknowledged writes that no node has at all (lost), as opposed to not yet spread.
async fn lost_everywhere(
    nodes: &[Node],
    docs: &[DocumentId],
    acknowledged: &[(DocumentId, ChangeHash)],
) -> Result<usize, String> {
    let mut union: std::collections::HashSet<ChangeHash> = std::collections::HashSet::new();
    for node in nodes {
        let reader = Client::connect(&node.sync_url(), ClientOptions::default(), WAIT)
            .await
            .map_err(|e| e.to_string())?;
        for id in docs {
            if let Ok(doc) = reader.open(*id, WAIT).await {
                union.extend(doc.get_changes(&[]).iter().map(|c| c.hash()));
            }
        }
        reader.close().await;
    }
    Ok(acknowledged
        .iter()
        .filter(|(_, h)| !union.contains(h))
        .count())
}

async fn open_eventually(
    client: &Client,
    id: DocumentId,
) -> Result<Automerge, ibis_node::client::ClientError> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match client.open(id, WAIT).await {
            Ok(doc) => return Ok(doc),
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => return Err(e),
        }
    }
}

/// A tiny deterministic generator (no rand dependency; seed printed on failure).
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_converge_after_partitions_and_kills_losing_no_acknowledged_write() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64 | 1)
        .unwrap_or(7);
    eprintln!("chaos seed {seed}");
    let dir = tempfile::tempdir().expect("tempdir");
    let outcome = tokio::time::timeout(Duration::from_secs(240), run(dir.path(), seed)).await;
    if !matches!(outcome, Ok(Ok(()))) {
        for i in 0..NODES {
            let log = std::fs::read_to_string(dir.path().join(format!("node{i}.log")))
                .unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            eprintln!(
                "--- node {i} (last lines, newest first)\n{}",
                tail.join("\n")
            );
        }
    }
    if !matches!(outcome, Ok(Ok(()))) {
        eprintln!("data dirs and logs kept in {}", dir.keep().display());
    }
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("seed {seed}: {e}"),
        Err(_) => panic!("seed {seed}: timed out"),
    }
}

async fn run(root: &std::path::Path, seed: u64) -> Result<(), String> {
    // Data dirs: one network.
    let first = ibis_node::init(&ibis_node::InitOptions::new(root.join("node0"), "Node 0"))
        .map_err(|e| e.to_string())?;
    let directory = DocumentId::parse_id_or_url(&first.directory).map_err(|e| e.to_string())?;
    for i in 1..NODES {
        let mut options =
            ibis_node::InitOptions::new(root.join(format!("node{i}")), &format!("Node {i}"));
        options.network = ibis_node::Network::Join { directory };
        ibis_node::init(&options).map_err(|e| e.to_string())?;
    }
    // Each node dials the next two through a proxy: every node has four links.
    let ports: Vec<u16> = (0..NODES).map(|_| free_port()).collect();
    let mut proxies = Vec::new();
    let mut nodes = Vec::new();
    for i in 0..NODES {
        let mut peers = Vec::new();
        for step in 1..=2 {
            let j = (i + step) % NODES;
            let proxy = Proxy::start(ports[j]).await;
            peers.push(format!("ws://127.0.0.1:{}/sync", proxy.port));
            proxies.push(proxy);
        }
        nodes.push(Node {
            dir: root.join(format!("node{i}")),
            port: ports[i],
            peers,
            child: None,
            log: root.join(format!("node{i}.log")),
        });
    }
    for node in &mut nodes {
        node.start().await;
    }

    // One writer per node; a pool of documents everyone writes to.
    let mut writers = Vec::new();
    for node in &nodes {
        writers.push(
            Client::connect(&node.sync_url(), ClientOptions::default(), WAIT)
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    let mut docs = Vec::new();
    for d in 0..DOCS {
        let mut doc = Automerge::new();
        doc.transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.put(ROOT, "created", d as i64)?;
            Ok(())
        })
        .map_err(|e| format!("{e:?}"))?;
        let id = writers[d % NODES]
            .create(doc)
            .await
            .map_err(|e| e.to_string())?;
        writers[d % NODES]
            .wait_synced(id, WAIT)
            .await
            .map_err(|e| e.to_string())?;
        docs.push(id);
    }
    // Documents reach every node once the federation has formed (dials retry with
    // backoff, so some links come up a second or two after the nodes).
    for writer in &writers {
        for id in &docs {
            open_eventually(writer, *id)
                .await
                .map_err(|e| format!("initial open: {e}"))?;
        }
    }

    // Writes and chaos, concurrently.
    let writers = Arc::new(writers);
    let stop = Arc::new(AtomicBool::new(false));
    let mut write_tasks = Vec::new();
    for w in 0..NODES {
        let writers = writers.clone();
        let docs = docs.clone();
        let stop = stop.clone();
        write_tasks.push(tokio::spawn(async move {
            let mut rng = Rng(seed.wrapping_mul(w as u64 + 3) | 1);
            let mut acknowledged = Vec::new();
            let mut k = 0i64;
            while !stop.load(Ordering::SeqCst) {
                k += 1;
                let id = docs[rng.below(DOCS as u64) as usize];
                let Ok(Some(hash)) = writers[w].change(id, put(format!("w{w}-{k}"), k)).await
                else {
                    continue;
                };
                if writers[w]
                    .wait_synced(id, Duration::from_secs(2))
                    .await
                    .is_ok()
                {
                    acknowledged.push((id, hash));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            acknowledged
        }));
    }
    let mut rng = Rng(seed);
    let mut kills = 0;
    let mut cuts = 0;
    let started = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_secs(12) {
        match rng.below(4) {
            0 | 1 => {
                let p = rng.below(proxies.len() as u64) as usize;
                proxies[p].cut();
                cuts += 1;
            }
            2 => {
                let p = rng.below(proxies.len() as u64) as usize;
                proxies[p].heal();
            }
            _ => {
                let n = rng.below(NODES as u64) as usize;
                nodes[n].kill();
                kills += 1;
                tokio::time::sleep(Duration::from_millis(rng.below(400) + 100)).await;
                nodes[n].start().await;
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.below(400) + 100)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut acknowledged = Vec::new();
    for task in write_tasks {
        acknowledged.extend(task.await.map_err(|e| e.to_string())?);
    }
    eprintln!(
        "{kills} kills, {cuts} cuts, {} acknowledged writes",
        acknowledged.len()
    );
    if acknowledged.len() < 20 {
        return Err(format!(
            "only {} writes were acknowledged",
            acknowledged.len()
        ));
    }

    // Heal everything; let the writers hand over anything still unacknowledged.
    for proxy in &proxies {
        proxy.heal();
    }
    for w in writers.iter() {
        for id in &docs {
            let _ = w.wait_synced(*id, WAIT).await;
        }
    }
    // Every node converges on the same documents, holding every acknowledged write.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let mut views = Vec::new();
        for node in &nodes {
            let reader = Client::connect(&node.sync_url(), ClientOptions::default(), WAIT)
                .await
                .map_err(|e| e.to_string())?;
            let mut view = Vec::new();
            for id in &docs {
                let doc = open_eventually(&reader, *id)
                    .await
                    .map_err(|e| e.to_string())?;
                let mut heads = doc.get_heads();
                heads.sort();
                let missing = acknowledged
                    .iter()
                    .filter(|(d, h)| d == id && doc.get_change_by_hash(h).is_none())
                    .count();
                view.push((heads, missing));
            }
            reader.close().await;
            views.push(view);
        }
        let all_same = views.iter().all(|v| v == &views[0]);
        let nothing_missing = views.iter().flatten().all(|(_, missing)| *missing == 0);
        if all_same && nothing_missing {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            let per_node: Vec<usize> = views
                .iter()
                .map(|v| v.iter().map(|(_, m)| m).sum())
                .collect();
            let heads: Vec<Vec<usize>> = views
                .iter()
                .map(|v| v.iter().map(|(h, _)| h.len()).collect())
                .collect();
            let lost_everywhere = lost_everywhere(&nodes, &docs, &acknowledged).await?;
            return Err(format!(
                "no convergence: nodes agree: {all_same}; acknowledged writes missing per node: \
                 {per_node:?}; heads per node and document: {heads:?}; missing on every node: \
                 {lost_everywhere}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
