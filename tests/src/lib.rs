//! Harness for ibis's integration, interop and end-to-end tests.
//!
//! - [`Federation`]: nodes in this process on ephemeral ports, serving the built app.
//! - [`Browser`]: a headless Chromium driven over WebDriver (its own ChromeDriver, a fresh
//!   profile), stopped by PID when dropped.
//! - [`JsPeer`]: a script from `tests/js` run with Node (JS automerge-repo), reading JSON
//!   lines, stopped by PID when dropped.
//!
//! Everything binds 127.0.0.1 and every wait is bounded.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use fantoccini::{Client, ClientBuilder, Locator};
use ibis_node::{InitOptions, Network, NodeInfo, RunningNode, ServeOptions};
use ibis_shared::DocumentId;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const WAIT: Duration = Duration::from_secs(30);

/// The built app (Trunk's dist), from `IBIS_DIST` or the repository's `dist/`.
pub fn app_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("IBIS_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist"));
    dir.join("index.html").exists().then_some(dir)
}

/// Whether browser tests can run here. Under CI they must: a missing browser or app is a
/// failure there, and a skip (with the reason printed) only on a developer's machine.
pub fn browser_tests_enabled() -> bool {
    let chromedriver = chromedriver_path();
    let missing = if !chromedriver.exists() {
        Some(format!("no ChromeDriver at {}", chromedriver.display()))
    } else if app_dir().is_none() {
        Some("no built app (run `cargo xtask build-app`)".to_owned())
    } else {
        None
    };
    match (missing, std::env::var_os("CI").is_some()) {
        (None, _) => true,
        (Some(why), true) => panic!("browser tests cannot run under CI: {why}"),
        (Some(why), false) => {
            eprintln!("skipping browser test: {why}");
            false
        }
    }
}

/// ChromeDriver, from `CHROMEDRIVER` or Debian's path.
pub fn chromedriver_path() -> PathBuf {
    std::env::var_os("CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"))
}

fn chromium_path() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Runs `f` until it returns `Some`, up to `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A JSON answer from `url` (`http://host:port/path`), over plain HTTP/1.1.
pub async fn get_json(url: &str) -> Option<serde_json::Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let url = url.strip_prefix("http://")?;
    let (host, path) = url.split_once('/')?;
    let mut stream = tokio::net::TcpStream::connect(host).await.ok()?;
    stream
        .write_all(
            format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .ok()?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.ok()?;
    let text = String::from_utf8_lossy(&out).into_owned();
    serde_json::from_str(text.split_once("\r\n\r\n")?.1).ok()
}

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
            directory = Some(DocumentId::parse(
                info.directory.trim_start_matches("automerge:"),
            )?);
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

/// A headless Chromium with its own ChromeDriver and a fresh profile.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn css_testid(testid: &str) -> String {
    format!("[data-testid=\"{testid}\"]")
}

impl Browser {
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(true).await
    }

    /// A browser whose pages run no JavaScript (as a visitor who turned it off, or a
    /// crawler, reads them). WebDriver's own scripts still run.
    pub async fn without_javascript() -> anyhow::Result<Self> {
        Self::start_with(false).await
    }

    async fn start_with(javascript: bool) -> anyhow::Result<Self> {
        let port = free_port()?;
        let driver = Command::new(chromedriver_path())
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start chromedriver")?;
        let profile = tempfile::tempdir()?;
        let caps = serde_json::json!({
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": chromium_path(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1200,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
                "prefs": {
                    "profile.managed_default_content_settings.javascript": if javascript { 1 } else { 2 }
                }
            }
        });
        let caps = match caps {
            serde_json::Value::Object(map) => map,
            _ => bail!("capabilities are an object"),
        };
        let url = format!("http://127.0.0.1:{port}");
        let client = eventually(Duration::from_secs(20), "chromedriver", || {
            let caps = caps.clone();
            let url = url.clone();
            async move {
                ClientBuilder::native()
                    .capabilities(caps)
                    .connect(&url)
                    .await
                    .ok()
            }
        })
        .await?;
        Ok(Self {
            client,
            driver,
            _profile: profile,
        })
    }

    /// What the pages logged at level SEVERE (errors, uncaught exceptions, failed
    /// loads) since the last call (ChromeDriver's log endpoint).
    pub async fn console_errors(&self) -> anyhow::Result<Vec<String>> {
        let entries = self
            .client
            .issue_cmd(ChromeCommand {
                path: "se/log",
                body: serde_json::json!({ "type": "browser" }),
            })
            .await?;
        Ok(entries
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .collect())
    }

    /// Makes requests for addresses matching these patterns (`*` wildcards) fail: to read
    /// the node's own page with scripts on but the app kept from loading.
    pub async fn block_urls(&self, patterns: &[&str]) -> anyhow::Result<()> {
        self.client
            .issue_cmd(devtools("Network.enable", serde_json::json!({})))
            .await?;
        self.client
            .issue_cmd(devtools(
                "Network.setBlockedURLs",
                serde_json::json!({ "urls": patterns }),
            ))
            .await?;
        Ok(())
    }

    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client.goto(url).await?;
        Ok(())
    }

    /// Waits for an element with this `data-testid`.
    pub async fn wait_for(&self, testid: &str) -> anyhow::Result<fantoccini::elements::Element> {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(&css_testid(testid)))
            .await
            .with_context(|| format!("no element [data-testid={testid}]"))
    }

    pub async fn fill(&self, testid: &str, text: &str) -> anyhow::Result<()> {
        let el = self.wait_for(testid).await?;
        el.clear().await?;
        el.send_keys(text).await?;
        Ok(())
    }

    /// Types at the end of a field, as a person would (keystrokes, input events).
    pub async fn type_text(&self, testid: &str, text: &str) -> anyhow::Result<()> {
        self.wait_for(testid).await?.send_keys(text).await?;
        Ok(())
    }

    pub async fn select(&self, testid: &str, value: &str) -> anyhow::Result<()> {
        self.wait_for(testid).await?.select_by_value(value).await?;
        Ok(())
    }

    pub async fn click(&self, testid: &str) -> anyhow::Result<()> {
        self.wait_for(testid).await?.click().await?;
        Ok(())
    }

    pub async fn text(&self, testid: &str) -> anyhow::Result<String> {
        Ok(self.wait_for(testid).await?.text().await?)
    }

    /// Texts of every element with this `data-testid`.
    pub async fn texts(&self, testid: &str) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        for el in self
            .client
            .find_all(Locator::Css(&css_testid(testid)))
            .await?
        {
            out.push(el.text().await?);
        }
        Ok(out)
    }

    /// Waits until some element with this `data-testid` has text containing `needle`.
    pub async fn wait_for_text(&self, testid: &str, needle: &str) -> anyhow::Result<()> {
        eventually(
            WAIT,
            &format!("`{needle}` in [data-testid={testid}]"),
            || async {
                self.texts(testid)
                    .await
                    .ok()
                    .filter(|texts| texts.iter().any(|t| t.contains(needle)))
                    .map(|_| ())
            },
        )
        .await
    }

    /// A DOM property of the element with this `data-testid` (`value` of a textarea).
    pub async fn prop(&self, testid: &str, name: &str) -> anyhow::Result<String> {
        Ok(self
            .wait_for(testid)
            .await?
            .prop(name)
            .await?
            .unwrap_or_default())
    }

    pub async fn refresh(&self) -> anyhow::Result<()> {
        self.client.refresh().await?;
        Ok(())
    }

    pub async fn current_url(&self) -> anyhow::Result<String> {
        Ok(self.client.current_url().await?.to_string())
    }

    /// Runs an async script; it calls `arguments[arguments.length - 1](result)`.
    pub async fn script_async(&self, js: &str) -> anyhow::Result<serde_json::Value> {
        Ok(self.client.execute_async(js, vec![]).await?)
    }

    pub async fn script(&self, js: &str) -> anyhow::Result<serde_json::Value> {
        Ok(self.client.execute(js, vec![]).await?)
    }

    pub async fn screenshot(&self, path: &Path) -> anyhow::Result<()> {
        let png = self.client.screenshot().await?;
        std::fs::write(path, png)?;
        Ok(())
    }

    pub async fn close(mut self) -> anyhow::Result<()> {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
        Ok(())
    }
}

/// `tests/js`, where the JS peers live (with their npm packages installed).
/// One of ChromeDriver's own commands (beyond W3C WebDriver): a POST to
/// `session/{id}/{path}` with `body`.
#[derive(Debug)]
struct ChromeCommand {
    path: &'static str,
    body: serde_json::Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for ChromeCommand {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/{}",
            session_id.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.body.to_string()))
    }
}

/// A Chrome DevTools Protocol method, through ChromeDriver.
fn devtools(method: &str, params: serde_json::Value) -> ChromeCommand {
    ChromeCommand {
        path: "goog/cdp/execute",
        body: serde_json::json!({ "cmd": method, "params": params }),
    }
}

/// Serious and critical axe-core violations on the browser's current page.
pub async fn axe(browser: &Browser) -> Vec<serde_json::Value> {
    let source = std::fs::read_to_string(js_dir().join("node_modules/axe-core/axe.min.js"))
        .expect("axe-core is installed (npm ci in tests/js)");
    browser.script(&source).await.expect("load axe");
    let result = browser
        .script_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { resultTypes: ['violations'] }).then(r => done(
               r.violations
                 .filter(v => v.impact === 'serious' || v.impact === 'critical')
                 .map(v => ({ id: v.id, impact: v.impact, help: v.help,
                              nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ')) }))));",
        )
        .await
        .expect("run axe");
    result.as_array().cloned().unwrap_or_default()
}

pub fn js_dir() -> PathBuf {
    std::env::var_os("IBIS_JS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("js"))
}

/// Whether the JS peers can run (under CI they must).
pub fn js_tests_enabled() -> bool {
    let ready = js_dir()
        .join("node_modules/@automerge/automerge-repo")
        .exists();
    if !ready {
        if std::env::var_os("CI").is_some() {
            panic!("JS interop tests cannot run under CI: run `npm ci` in tests/js");
        }
        eprintln!("skipping JS interop test: run `npm ci` in tests/js");
    }
    ready
}

/// A Node.js script speaking automerge-repo, printing one JSON object per line.
pub struct JsPeer {
    child: Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl JsPeer {
    pub fn spawn(script: &str, args: &[&str]) -> anyhow::Result<Self> {
        let mut child = Command::new("node")
            .arg(js_dir().join(script))
            .args(args)
            .current_dir(js_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .stdin(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run node {script}"))?;
        let stdout = child.stdout.take().context("no stdout")?;
        Ok(Self {
            child,
            lines: BufReader::new(stdout).lines(),
        })
    }

    /// The next JSON line (within [`WAIT`]).
    pub async fn next(&mut self) -> anyhow::Result<serde_json::Value> {
        let line = tokio::time::timeout(WAIT, self.lines.next_line())
            .await
            .context("the JS peer said nothing in time")??
            .context("the JS peer exited")?;
        let value: serde_json::Value =
            serde_json::from_str(&line).with_context(|| format!("not JSON: {line}"))?;
        if let Some(error) = value.get("error") {
            bail!("the JS peer failed: {error}");
        }
        Ok(value)
    }

    /// Waits for the script to finish successfully.
    pub async fn finish(mut self) -> anyhow::Result<()> {
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .context("the JS peer did not finish in time")??;
        if !status.success() {
            bail!("the JS peer failed ({status})");
        }
        Ok(())
    }
}

/// Browser helpers for the app's pages.
impl Browser {
    /// The path of the page the browser shows (`/practices/…`).
    pub async fn path(&self) -> anyhow::Result<String> {
        let url = self.current_url().await?;
        let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(&url);
        Ok(rest
            .find('/')
            .map(|i| rest[i..].to_owned())
            .unwrap_or_default())
    }

    /// Waits until the page's path satisfies `wanted`; returns it.
    pub async fn wait_for_path(
        &self,
        what: &str,
        wanted: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        eventually(WAIT, what, || async {
            self.path().await.ok().filter(|p| wanted(p))
        })
        .await
    }

    /// Logs in through the header's form.
    pub async fn log_in(&self, name: &str, password: &str) -> anyhow::Result<()> {
        self.fill("login-name", name).await?;
        self.fill("login-password", password).await?;
        self.click("login-submit").await?;
        self.wait_for("user").await?;
        Ok(())
    }

    /// The document ids this page's IndexedDB holds, per object store (`chunks`,
    /// `sync_states`, `summaries`), read by script in the page.
    pub async fn stored_documents(
        &self,
    ) -> anyhow::Result<std::collections::BTreeMap<String, Vec<String>>> {
        let value = self
            .script_async(
                "const done = arguments[arguments.length - 1];
                 const open = indexedDB.open('ibis');
                 open.onerror = () => done(null);
                 open.onsuccess = () => {
                   const db = open.result, stores = ['chunks', 'sync_states', 'summaries'];
                   const tx = db.transaction(stores, 'readonly'), out = {};
                   let left = stores.length;
                   for (const name of stores) {
                     const keys = tx.objectStore(name).getAllKeys();
                     keys.onsuccess = () => {
                       out[name] = [...new Set(keys.result.map(k => Array.isArray(k) ? k[0] : k))];
                       if (--left === 0) { db.close(); done(out); }
                     };
                   }
                 };",
            )
            .await?;
        Ok(serde_json::from_value(value)?)
    }
}
