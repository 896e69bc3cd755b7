//! The node's server-rendered pages, measured on the app workload's node (release build,
//! its own process, the same catalogue):
//!
//! - a search with every facet's counts, as a list page and the app's first searches need
//!   it (`/api/practices`, one request at a time);
//! - practice pages and list pages per second with `wrk` (64 connections, two threads,
//!   addresses drawn at random: practice ids from `/sitemap.xml`, list searches from a
//!   set of words and facets). `wrk` shares the machine's cores with the node: on a
//!   2-core machine the figure is bound by that, which the node's CPU share shows;
//! - practice pages per second through nginx with `deploy/nginx-cache.conf` in front of
//!   the node (two workers), as a node that carries public read load would run, when
//!   nginx is installed.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::report::ServerResult;
use crate::servers::cpu_secs_of;

/// Whether `wrk` is installed.
pub fn wrk_available() -> bool {
    Path::new("/usr/bin/wrk").exists()
}

/// List searches a visitor might make: words, facets, pages.
const LIST_PATHS: [&str; 8] = [
    "/",
    "/?q=mentoring",
    "/?q=community+guides",
    "/?theme=housing",
    "/?country=PT&theme=health",
    "/?q=newcomers&country=BR",
    "/?page=3",
    "/?theme=education-language&page=2",
];

/// GET `path` at `url` (`http://host:port`); the body.
async fn get(url: &str, path: &str) -> anyhow::Result<String> {
    let host = url.strip_prefix("http://").context("an http:// URL")?;
    let mut stream = tokio::net::TcpStream::connect(host).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").context("an HTTP response")?;
    ensure!(
        head.starts_with("HTTP/1.1 200"),
        "{path}: {}",
        head.lines().next().unwrap_or("")
    );
    Ok(body.to_owned())
}

/// The `total` of a JSON search answer at `path`.
pub async fn total_of(url: &str, path: &str) -> anyhow::Result<u64> {
    let body = get(url, path).await?;
    serde_json::from_str::<serde_json::Value>(&body)?["total"]
        .as_u64()
        .with_context(|| format!("{path}: no total"))
}

/// Waits until the node's index lists all `n` practices.
async fn indexed(url: &str, n: usize) -> anyhow::Result<()> {
    // Importing 50,000 practices is indexed as the node starts: give it time in proportion.
    let wait = Duration::from_secs(300.max(n as u64 / 50));
    let deadline = Instant::now() + wait;
    loop {
        let body = get(url, "/api/practices?limit=1").await?;
        let total = serde_json::from_str::<serde_json::Value>(&body)?["total"].as_u64();
        if total == Some(n as u64) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the index holds {total:?} of {n} practices after {} s",
                wait.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Measures the node at `url` (process `pid`) holding `n` practices; figures' keys start
/// with `prefix`.
pub async fn measure(
    url: &str,
    pid: Option<u32>,
    n: usize,
    quick: bool,
    prefix: &str,
    result: &mut ServerResult,
) -> anyhow::Result<()> {
    indexed(url, n).await?;
    for path in [
        "/api/practices?q=mentoring",
        "/api/practices?theme=housing&country=PT",
        "/api/practices",
    ] {
        for _ in 0..if quick { 2 } else { 20 } {
            let start = Instant::now();
            get(url, path).await?;
            result.add(
                &format!("{prefix}node_search_ms"),
                start.elapsed().as_secs_f64() * 1000.0,
            );
        }
    }
    if !wrk_available() {
        let missing = "wrk is not installed (cargo xtask setup installs it)";
        if std::env::var_os("CI").is_some() {
            bail!("{missing}");
        }
        eprintln!("    skipping pages per second: {missing}");
        return Ok(());
    }
    let sitemap = get(url, "/sitemap.xml").await?;
    let practices: Vec<String> = sitemap
        .split("<loc>")
        .filter_map(|s| s.split("</loc>").next())
        .filter_map(|loc| loc.find("/practices/").map(|i| loc[i..].to_owned()))
        .collect();
    // A sitemap holds 50,000 addresses at most, a few of them the node's other pages.
    ensure!(
        practices.len() == n || (n >= 49_000 && practices.len() >= 49_000),
        "the sitemap lists {} of {n} practices",
        practices.len()
    );
    let secs = if quick { 1 } else { 10 };
    let list: Vec<String> = LIST_PATHS.iter().map(|p| (*p).to_owned()).collect();
    for (paths, key) in [
        (&practices, "practice_pages_per_s"),
        (&list, "list_pages_per_s"),
    ] {
        let key = format!("{prefix}{key}");
        let (per_s, cpu) = wrk(url, pid, paths, secs).await?;
        result.add(&key, per_s);
        if let Some(cpu) = cpu {
            result.add(&format!("{key}_node_cpu_pct"), cpu);
        }
    }
    if !ibis_tests::nginx_available() {
        let missing = "nginx is not installed (cargo xtask setup installs it)";
        if std::env::var_os("CI").is_some() {
            bail!("{missing}");
        }
        eprintln!("    skipping pages through the nginx cache: {missing}");
        return Ok(());
    }
    let node: std::net::SocketAddr = url
        .strip_prefix("http://")
        .and_then(|a| a.parse().ok())
        .with_context(|| format!("not an http://address:port: {url}"))?;
    let dir = tempfile::tempdir()?;
    let nginx = ibis_tests::Nginx::start(dir.path(), node, 2).await?;
    let key = format!("{prefix}practice_pages_per_s_nginx_cache");
    let (per_s, cpu) = wrk(&nginx.url(), pid, &practices, secs).await?;
    result.add(&key, per_s);
    if let Some(cpu) = cpu {
        result.add(&format!("{key}_node_cpu_pct"), cpu);
    }
    Ok(())
}

/// Runs `wrk` for `secs` over `paths` drawn at random; requests per second, and the
/// node's CPU use meanwhile (percent of one core), when its process is known.
async fn wrk(
    url: &str,
    pid: Option<u32>,
    paths: &[String],
    secs: u64,
) -> anyhow::Result<(f64, Option<f64>)> {
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("paths.lua");
    let list: Vec<String> = paths.iter().map(|p| format!("{p:?}")).collect();
    std::fs::write(
        &script,
        format!(
            "local paths = {{ {} }}\n\
             request = function() return wrk.format(\"GET\", paths[math.random(#paths)]) end\n",
            list.join(", ")
        ),
    )?;
    let cpu_before = pid.and_then(cpu_secs_of);
    let started = Instant::now();
    let output = tokio::process::Command::new("/usr/bin/wrk")
        .args(["-t2", "-c64", &format!("-d{secs}s"), "-s"])
        .arg(&script)
        .arg(url)
        .kill_on_drop(true)
        .output()
        .await
        .context("cannot run wrk")?;
    let elapsed = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&output.stdout);
    ensure!(output.status.success(), "wrk failed: {text}");
    ensure!(
        !text.contains("Non-2xx"),
        "some pages did not answer 200: {text}"
    );
    let per_s = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .with_context(|| format!("no requests per second in wrk's output: {text}"))?;
    let cpu = match (cpu_before, pid.and_then(cpu_secs_of)) {
        (Some(a), Some(b)) => Some((b - a) / elapsed * 100.0),
        _ => None,
    };
    Ok((per_s, cpu))
}
