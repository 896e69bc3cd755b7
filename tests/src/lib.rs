//! Harness for ibis's integration, interop and end-to-end tests.
//!
//! - [`Federation`]: nodes in this process on ephemeral ports, serving the built app.
//! - [`Browser`]: a headless Chromium driven over WebDriver (its own ChromeDriver, a fresh
//!   profile), stopped by PID when dropped.
//! - [`JsPeer`]: a script from `tests/js` run with Node (JS automerge-repo), reading JSON
//!   lines, stopped by PID when dropped.
//! - [`Nginx`]: nginx with `deploy/nginx-cache.conf` in front of a node, stopped by PID
//!   when dropped.
//!
//! Everything binds 127.0.0.1 and every wait is bounded. Each lives in its module
//! ([`federation`], [`webdriver`], [`js_peer`], [`nginx`]); what tests use is re-exported
//! here, with [`http_get`], a plain HTTP/1.1 request.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;

pub mod federation;
pub mod js_peer;
pub mod nginx;
pub mod webdriver;

pub use federation::{served_unloaded, wait_listed, Federation};
pub use js_peer::{js_dir, js_tests_enabled, JsPeer};
pub use nginx::{nginx_available, Nginx};
pub use webdriver::{axe, browser_tests_enabled, chromedriver_path, Browser};

pub const WAIT: Duration = Duration::from_secs(30);

/// The built app (Trunk's dist), from `IBIS_DIST` or the repository's `dist/`.
pub fn app_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("IBIS_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist"));
    dir.join("index.html").exists().then_some(dir)
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

/// An HTTP answer: its status, head (status line and headers) and body.
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    /// A header's value (the name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then_some(value.trim())
        })
    }
}

/// `GET path` from `addr` over plain HTTP/1.1 (one connection, closed after), with extra
/// `headers`.
pub async fn http_get(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<Answer> {
    use anyhow::Context;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").context("no end of headers")?;
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .context("no status")?;
    Ok(Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}

/// A JSON answer from `url` (`http://host:port/path`), over plain HTTP/1.1.
pub async fn get_json(url: &str) -> Option<serde_json::Value> {
    let url = url.strip_prefix("http://")?;
    let (host, path) = url.split_once('/')?;
    let addr = tokio::net::lookup_host(host).await.ok()?.next()?;
    let answer = http_get(addr, &format!("/{path}"), &[]).await.ok()?;
    serde_json::from_str(&answer.body).ok()
}
