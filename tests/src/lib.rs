//! Harness for ibis's integration, interop and end-to-end tests.
//!
//! - [`Federation`]: nodes in this process on ephemeral ports, serving the built app.
//! - [`Browser`]: a headless Chromium driven over WebDriver (its own ChromeDriver, a fresh
//!   profile), stopped by PID when dropped.
//! - [`JsPeer`]: a script from `tests/js` run with Node (JS automerge-repo), reading JSON
//!   lines, stopped by PID when dropped.
//!
//! Everything binds 127.0.0.1 and every wait is bounded. Each lives in its module
//! ([`federation`], [`webdriver`], [`js_peer`]); what tests use is re-exported here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;

pub mod federation;
pub mod js_peer;
pub mod webdriver;

pub use federation::{served_unloaded, wait_listed, Federation};
pub use js_peer::{js_dir, js_tests_enabled, JsPeer};
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
