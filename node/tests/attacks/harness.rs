//! Node processes for the attack suite: data dirs made with the `ibis-node` CLI, a node
//! served as a child process on an ephemeral port of 127.0.0.1, its memory and CPU read
//! from `/proc`, and the one `ATTACK` line each case prints.
//!
//! Every wait is bounded. A [`Node`] is killed (by its PID) when dropped, on panic too,
//! and then shows the end of its log.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ibis_shared::DocumentId;
use tokio::io::AsyncBufReadExt;

pub const BIN: &str = env!("CARGO_BIN_EXE_ibis-node");
/// Every member's password (`IBIS_PASSWORD` for `ibis-node user add`).
pub const PASSWORD: &str = "a long enough password";
/// The longest any single wait in the suite may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// Runs a case, failing it if it takes longer than `limit`.
pub async fn within<F: std::future::Future<Output = ()>>(limit: Duration, case: F) {
    if tokio::time::timeout(limit, case).await.is_err() {
        panic!("the case did not finish within {limit:?}");
    }
}

/// Polls `attempt` every 50 ms until it gives `Some`, for at most [`WAIT`].
pub async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut attempt: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("{what}: not within {WAIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `ibis-node` with `args` (and `env`) to completion; its standard output.
pub fn cli(args: &[&str], env: &[(&str, &str)]) -> String {
    let output = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .env("IBIS_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run ibis-node {args:?}: {e}"));
    assert!(
        output.status.success(),
        "ibis-node {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// What `ibis-node init --json` prints.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Info {
    pub organization_id: String,
    pub organization_name: String,
    pub directory: String,
    pub catalogue: String,
    pub workspace: String,
    pub peer_id: String,
}

fn document_id(url: &str) -> DocumentId {
    DocumentId::parse_id_or_url(url).expect("a document id")
}

impl Info {
    pub fn directory_id(&self) -> DocumentId {
        document_id(&self.directory)
    }
    pub fn catalogue_id(&self) -> DocumentId {
        document_id(&self.catalogue)
    }
    pub fn workspace_id(&self) -> DocumentId {
        document_id(&self.workspace)
    }
}

/// A node's data dir, set up through the CLI as an operator would.
pub struct DataDir {
    pub path: PathBuf,
    pub info: Info,
}

impl DataDir {
    /// `ibis-node init` in `root/<dir>`: a new network, or joining the one whose directory
    /// is `join` (an `automerge:` URL).
    pub fn init(root: &Path, dir: &str, org_name: &str, org_id: &str, join: Option<&str>) -> Self {
        let path = root.join(dir);
        let path_text = path.to_str().expect("a UTF-8 path");
        let mut args = vec![
            "init",
            "--data-dir",
            path_text,
            "--org-name",
            org_name,
            "--org-id",
            org_id,
            "--json",
        ];
        if let Some(directory) = join {
            args.extend(["--join", directory]);
        }
        let info = serde_json::from_str(cli(&args, &[]).trim()).expect("init --json");
        Self { path, info }
    }

    pub fn dir(&self) -> &str {
        self.path.to_str().expect("a UTF-8 path")
    }

    /// Sets `[node] max_database_mb` in the data dir's `ibis.toml` (read when the node
    /// starts).
    pub fn set_max_database_mb(&self, mb: u64) {
        let path = self.path.join("ibis.toml");
        let text = std::fs::read_to_string(&path).expect("read ibis.toml");
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with("max_database_mb"))
            .collect();
        let mut out = String::new();
        for line in kept {
            out.push_str(line);
            out.push('\n');
            if line == "[node]" {
                out.push_str(&format!("max_database_mb = {mb}\n"));
            }
        }
        assert!(out.contains("max_database_mb"), "no [node] in ibis.toml");
        std::fs::write(&path, out).expect("write ibis.toml");
    }

    /// `ibis-node user add NAME --role ROLE`, with [`PASSWORD`].
    pub fn add_user(&self, name: &str, role: &str) {
        cli(
            &[
                "user",
                "add",
                "--data-dir",
                self.dir(),
                name,
                "--role",
                role,
            ],
            &[("IBIS_PASSWORD", PASSWORD)],
        );
    }

    /// `ibis-node user token NAME`: a new API token.
    pub fn token(&self, name: &str) -> String {
        cli(&["user", "token", "--data-dir", self.dir(), name], &[])
            .trim()
            .to_owned()
    }

    /// `ibis-node key`: the node's public key.
    pub fn key(&self) -> String {
        cli(&["key", "--data-dir", self.dir()], &[])
            .trim()
            .to_owned()
    }

    /// `ibis-node peer add NAME --url=URL --key=KEY --org=ORG` (with `=`: a key may start
    /// with `-`, which clap would take for a flag).
    pub fn add_peer(&self, name: &str, url: &str, key: &str, org: &str) {
        let (url, key, org) = (
            format!("--url={url}"),
            format!("--key={key}"),
            format!("--org={org}"),
        );
        cli(
            &[
                "peer",
                "add",
                "--data-dir",
                self.dir(),
                name,
                &url,
                &key,
                &org,
            ],
            &[],
        );
    }

    pub fn database(&self) -> PathBuf {
        self.path.join("ibis.sqlite3")
    }
}

/// Memory and CPU of a process, from `/proc`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub rss_kb: u64,
    /// The peak resident set size since the process started or since [`Node::measure`]
    /// reset it.
    pub hwm_kb: u64,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
}

impl Usage {
    pub fn of(pid: u32) -> Self {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kb = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command name (which may hold spaces): state is field 3, utime
        // and stime are fields 14 and 15.
        let fields: Vec<u64> = stat
            .rsplit_once(')')
            .map(|(_, rest)| {
                rest.split_whitespace()
                    .map(|f| f.parse().unwrap_or(0))
                    .collect()
            })
            .unwrap_or_default();
        let field = |n: usize| fields.get(n - 3).copied().unwrap_or(0);
        Self {
            rss_kb: kb("VmRSS:"),
            hwm_kb: kb("VmHWM:"),
            cpu_ticks: field(14) + field(15),
        }
    }
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// A window of a node's life: from [`Node::measure`] to [`Meter::finish`].
pub struct Meter {
    pid: u32,
    start: Usage,
    reset: bool,
}

/// What a node spent during a [`Meter`]'s window.
#[derive(Debug, Clone, Copy)]
pub struct Spent {
    /// Resident memory when the window opened.
    pub baseline_mb: f64,
    /// The peak resident memory within the window (since the node started, if the kernel
    /// would not reset the peak).
    pub peak_mb: f64,
    pub cpu_s: f64,
}

impl Spent {
    /// Asserts the window's peak stayed under `mb`.
    pub fn assert_peak_below(&self, mb: f64, during: &str) {
        assert!(
            self.peak_mb < mb,
            "peak RSS {:.1} MB during {during} (at most {mb} MB expected)",
            self.peak_mb
        );
    }

    /// How much the peak rose above the window's start.
    pub fn growth_mb(&self) -> f64 {
        self.peak_mb - self.baseline_mb
    }
}

impl Meter {
    pub fn finish(self) -> Spent {
        let end = Usage::of(self.pid);
        if !self.reset {
            eprintln!("note: VmHWM could not be reset; the peak is since the node started");
        }
        Spent {
            baseline_mb: self.start.rss_kb as f64 / 1024.0,
            peak_mb: end.hwm_kb.max(end.rss_kb) as f64 / 1024.0,
            cpu_s: end.cpu_ticks.saturating_sub(self.start.cpu_ticks) as f64
                / clock_ticks_per_second(),
        }
    }
}

/// Prints the case's `ATTACK` line. Written to the process's standard output directly (not
/// through `println!`, which the test harness captures), so it shows whether the case
/// passes or fails.
pub fn report(case: &str, spent: &Spent, what: &str) {
    print_attack(format!(
        "ATTACK {case}: peak RSS {:.1} MB, CPU {:.2} s, {what} (RSS {:.1} MB before)\n",
        spent.peak_mb, spent.cpu_s, spent.baseline_mb
    ));
}

/// The `ATTACK` line of a case whose target is a command run to its end (its whole life
/// is the window).
pub fn report_command(case: &str, peak_mb: f64, cpu_s: f64, what: &str) {
    print_attack(format!(
        "ATTACK {case}: peak RSS {peak_mb:.1} MB, CPU {cpu_s:.2} s, {what}\n"
    ));
}

fn print_attack(line: String) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
}

/// A command run to its end, with what it spent.
#[derive(Debug)]
pub struct Finished {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Its peak resident memory.
    pub peak_mb: f64,
    pub cpu_s: f64,
    /// How the peak was read: `/usr/bin/time` (exact), or `/proc` polled while it ran (a
    /// lower bound: a peak just before it exited may be missed).
    pub measured_by: &'static str,
}

const GNU_TIME: &str = "/usr/bin/time";

/// Runs `ibis-node` with `args` to completion (within [`WAIT`]), measuring its peak
/// resident memory: under GNU time if it is installed (its own small process forks
/// ours, so the peak is ours alone), otherwise by polling `/proc/<pid>/status`.
pub fn run_measured(args: &[&str], scratch: &Path) -> Finished {
    let stats = scratch.join(format!("time-{}.txt", uuid::Uuid::new_v4().simple()));
    let timed = Path::new(GNU_TIME).exists();
    let mut command = if timed {
        let mut c = Command::new(GNU_TIME);
        c.arg("-v").arg("-o").arg(&stats).arg(BIN);
        c
    } else {
        Command::new(BIN)
    };
    let (out, err) = (
        scratch.join(format!("{}.out", uuid::Uuid::new_v4().simple())),
        scratch.join(format!("{}.err", uuid::Uuid::new_v4().simple())),
    );
    let mut child = command
        .args(args)
        .env("IBIS_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run ibis-node {args:?}: {e}"));
    let started = std::time::Instant::now();
    let mut polled = Usage::default();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for ibis-node") {
            break status;
        }
        if !timed {
            let now = Usage::of(child.id());
            polled.hwm_kb = polled.hwm_kb.max(now.hwm_kb).max(now.rss_kb);
            polled.cpu_ticks = polled.cpu_ticks.max(now.cpu_ticks);
        }
        if started.elapsed() > WAIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ibis-node {args:?} did not finish within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let (peak_mb, cpu_s) = if timed {
        let stats = read(&stats);
        let field = |key: &str| {
            stats
                .lines()
                .find_map(|l| l.trim().strip_prefix(key))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or_else(|| panic!("no `{key}` in GNU time's output:\n{stats}"))
        };
        (
            field("Maximum resident set size (kbytes):") / 1024.0,
            field("User time (seconds):") + field("System time (seconds):"),
        )
    } else {
        (
            polled.hwm_kb as f64 / 1024.0,
            polled.cpu_ticks as f64 / clock_ticks_per_second(),
        )
    };
    Finished {
        success: status.success(),
        code: status.code(),
        stdout: read(&out),
        stderr: read(&err),
        peak_mb,
        cpu_s,
        measured_by: if timed { GNU_TIME } else { "/proc, polled" },
    }
}

/// An `ibis-node serve` process.
pub struct Node {
    pub name: String,
    pub addr: SocketAddr,
    pub pid: u32,
    child: Option<Child>,
    log: PathBuf,
    /// The node's standard output, kept open while it runs.
    _stdout: Option<tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>>,
}

impl Node {
    /// `ibis-node serve --data-dir D --listen 127.0.0.1:0 [--open]`, waiting (at most
    /// [`WAIT`]) for "ibis-node listening on"; the port is read from that line.
    pub async fn start(data: &DataDir, open: bool) -> Self {
        let name = data
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let log = data
            .path
            .with_file_name(format!("{name}.{}.log", std::process::id()));
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let mut command = Command::new(BIN);
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(&data.path)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .env("IBIS_LOG", "info,tower_http=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file);
        if open {
            command.arg("--open");
        }
        let mut child = command.spawn().expect("spawn ibis-node serve");
        let pid = child.id();
        let stdout = child.stdout.take().expect("stdout");
        let mut node = Self {
            name,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            pid,
            child: Some(child),
            log,
            _stdout: None,
        };
        let mut lines = tokio::io::BufReader::new(
            tokio::process::ChildStdout::from_std(stdout).expect("async stdout"),
        )
        .lines();
        let listening = tokio::time::timeout(WAIT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("ibis-node listening on http://") {
                    return url.trim().parse::<SocketAddr>().ok();
                }
            }
            None
        })
        .await;
        match listening {
            Ok(Some(addr)) => node.addr = addr,
            _ => panic!(
                "node {} did not start listening:\n{}",
                node.name,
                node.log_tail(30)
            ),
        }
        node._stdout = Some(lines);
        node
    }

    pub fn sync_url(&self) -> String {
        format!("ws://{}/sync", self.addr)
    }

    pub fn usage(&self) -> Usage {
        Usage::of(self.pid)
    }

    /// Opens a measuring window: the peak resident memory is reset (writing 5 to
    /// `/proc/<pid>/clear_refs`) and the CPU time so far noted.
    pub fn measure(&self) -> Meter {
        let reset = std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5").is_ok();
        Meter {
            pid: self.pid,
            start: self.usage(),
            reset,
        }
    }

    /// The last `n` lines of the node's log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Stops the node as its operator would (SIGTERM: connections closed, sync states
    /// saved, storage flushed), waiting at most [`WAIT`] before SIGKILL.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    assert!(
                        status.success(),
                        "node {} exited with {status}:\n{}",
                        self.name,
                        self.log_tail(30)
                    );
                    return;
                }
                Ok(None) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "node {} did not stop within {WAIT:?}:\n{}",
                        self.name,
                        self.log_tail(30)
                    );
                }
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL, by PID (std's `Child::kill`).
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- node {} (pid {}), last lines of its log:\n{}",
                self.name,
                self.pid,
                self.log_tail(40)
            );
        }
    }
}

/// Rows of `sync_states` in a stopped node's database: (document, peer).
pub fn sync_state_peers(data: &DataDir) -> Vec<String> {
    let conn = rusqlite::Connection::open_with_flags(
        data.database(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the database");
    let mut stmt = conn
        .prepare("SELECT peer FROM sync_states")
        .expect("query sync_states");
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .expect("rows")
        .map(|r| r.expect("a row"))
        .collect();
    rows
}

/// A document as a stopped node's database holds it (its chunks, loaded), if it has any.
pub fn stored_document(data: &DataDir, id: DocumentId) -> Option<automerge::Automerge> {
    let conn = rusqlite::Connection::open_with_flags(
        data.database(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the database");
    let mut stmt = conn
        .prepare("SELECT bytes FROM chunks WHERE document = ?1 ORDER BY seq")
        .expect("query chunks");
    let mut bytes = Vec::new();
    let rows = stmt
        .query_map([id.as_bytes().to_vec()], |r| r.get::<_, Vec<u8>>(0))
        .expect("rows");
    for row in rows {
        bytes.extend(row.expect("a row"));
    }
    (!bytes.is_empty()).then(|| automerge::Automerge::load(&bytes).expect("stored chunks load"))
}

/// Every document a stopped node's database holds, loaded as the node loads it: its id and
/// sorted heads. Panics if one does not load.
pub fn stored_heads(data: &DataDir) -> Vec<(DocumentId, Vec<automerge::ChangeHash>)> {
    let store = ibis_node::store::Store::open(&data.path, ibis_node::Durability::Full)
        .expect("open the store");
    let mut all = Vec::new();
    for id in store.document_ids().expect("document ids") {
        let doc = ibis_node::init::load_document(&store, &id)
            .unwrap_or_else(|e| panic!("stored document {id} does not load: {e:#}"))
            .unwrap_or_else(|| panic!("document {id} is listed but holds nothing"));
        let mut heads = doc.get_heads();
        heads.sort();
        all.push((id, heads));
    }
    all.sort_by_key(|(id, _)| id.to_string());
    all
}
