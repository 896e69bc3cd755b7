//! The servers under test, each its own process on 127.0.0.1 (so its memory is its own):
//! the ibis node (release build), the JS automerge-repo 2.5.6 sync server
//! (`tests/js/server.mjs`: WebSocketServerAdapter + NodeFSStorageAdapter), and a samod
//! 0.16 server with filesystem storage (`ibis-bench samod-server`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Ibis,
    Js,
    Samod,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Ibis, Kind::Js, Kind::Samod];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Ibis => "ibis",
            Kind::Js => "js",
            Kind::Samod => "samod",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }
}

pub struct Server {
    pub url: String,
    child: Child,
    _data: tempfile::TempDir,
}

/// Where the repository's binaries and scripts are.
pub struct Paths {
    pub ibis_node: PathBuf,
    pub bench: PathBuf,
    pub js_dir: PathBuf,
}

pub async fn first_line(child: &mut Child, what: &str) -> anyhow::Result<String> {
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .with_context(|| format!("{what} did not start in time"))??
        .with_context(|| format!("{what} exited before listening"))?;
    // Keep reading (and discarding) so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(line)
}

fn port_from_json(line: &str) -> anyhow::Result<u16> {
    let v: serde_json::Value =
        serde_json::from_str(line).with_context(|| format!("not JSON: {line}"))?;
    Ok(v["port"].as_u64().context("no port")? as u16)
}

impl Server {
    pub async fn start(kind: Kind, paths: &Paths) -> anyhow::Result<Self> {
        let data = tempfile::tempdir()?;
        let (child, url) = match kind {
            Kind::Ibis => {
                let dir = data.path().join("node");
                let init = std::process::Command::new(&paths.ibis_node)
                    // The organization the workloads' practices name as their home (see
                    // `workloads::practice_doc`): its members write them.
                    .args([
                        "init",
                        "--org-name",
                        "Bench",
                        "--org-id",
                        "bench",
                        "--data-dir",
                    ])
                    .arg(&dir)
                    .stdout(Stdio::null())
                    .status()?;
                if !init.success() {
                    bail!("ibis-node init failed");
                }
                let mut child = Command::new(&paths.ibis_node)
                    .args(["serve", "--listen", "127.0.0.1:0", "--open", "--data-dir"])
                    .arg(&dir)
                    .env("IBIS_LOG", "warn")
                    .stdout(Stdio::piped())
                    .stderr(server_stderr())
                    .kill_on_drop(true)
                    .spawn()
                    .context("cannot start ibis-node")?;
                let line = first_line(&mut child, "ibis-node").await?;
                let addr = line
                    .strip_prefix("ibis-node listening on http://")
                    .with_context(|| format!("unexpected: {line}"))?;
                let url = format!("ws://{addr}/sync");
                (child, url)
            }
            Kind::Js => {
                let mut child = Command::new("node")
                    .arg(paths.js_dir.join("server.mjs"))
                    .arg("0")
                    .arg(data.path().join("store"))
                    .current_dir(&paths.js_dir)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(server_stderr())
                    .kill_on_drop(true)
                    .spawn()
                    .context("cannot start the JS server (is node installed, npm ci done?)")?;
                let port = port_from_json(&first_line(&mut child, "the JS server").await?)?;
                (child, format!("ws://127.0.0.1:{port}/"))
            }
            Kind::Samod => {
                let mut child = Command::new(&paths.bench)
                    .arg("samod-server")
                    .arg(data.path().join("store"))
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(server_stderr())
                    .kill_on_drop(true)
                    .spawn()
                    .context("cannot start the samod server")?;
                let port = port_from_json(&first_line(&mut child, "the samod server").await?)?;
                (child, format!("ws://127.0.0.1:{port}/"))
            }
        };
        if child.id().is_none() {
            bail!("{} exited at once", kind.name());
        }
        Ok(Self {
            url,
            child,
            _data: data,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Resident memory of the server process, in bytes.
    pub fn rss_bytes(&self) -> Option<u64> {
        rss_of(self.child.id()?)
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Servers' own logs are shown with `IBIS_BENCH_SERVER_LOGS=1`, dropped otherwise.
fn server_stderr() -> Stdio {
    if std::env::var_os("IBIS_BENCH_SERVER_LOGS").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    }
}

pub fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// CPU time (user + system, all threads) a process has used so far, in seconds; `None`
/// once it has gone. Linux reports it in clock ticks of 1/100 s (USER_HZ).
pub fn cpu_secs_of(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / 100.0)
}

/// A samod repo with filesystem storage, serving WebSockets on 127.0.0.1 (what
/// `ibis-bench samod-server DIR` runs). Prints `{"port": N}`; stops when stdin closes.
pub async fn run_samod_server(dir: &Path) -> anyhow::Result<()> {
    use axum::extract::ws::WebSocketUpgrade;
    let repo = samod::Repo::build_tokio()
        .with_storage(samod::storage::TokioFilesystemStorage::new(dir))
        .load()
        .await;
    let acceptor = repo
        .make_acceptor(url::Url::parse("ws://127.0.0.1/")?)
        .map_err(|_| anyhow::anyhow!("samod stopped"))?;
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move |ws: WebSocketUpgrade| {
            let acceptor = acceptor.clone();
            async move {
                ws.max_message_size(64 << 20)
                    .on_upgrade(move |socket| async move {
                        let _ = acceptor.accept_axum(socket, None);
                    })
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("{{\"port\": {}}}", listener.local_addr()?.port());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    // Until the parent closes our stdin (or kills us).
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(_)) = stdin.next_line().await {}
    server.abort();
    repo.stop().await;
    Ok(())
}
