//! `ibis-bench`: the same automerge-repo workloads, in one run, against the ibis node, the
//! JS automerge-repo server and a samod server; a markdown table and a JSON file out.
//!
//! ```text
//! ibis-bench run [--quick] [--only fanout,throughput,create,reconnect,app,catalogue,memory] [--app-practices N] [--runs N] [--servers ibis,js,samod] [--out DIR]
//! ibis-bench samod-server DIR      (used by `run`: a samod server in its own process)
//! ```
//!
//! `cargo xtask bench` builds everything in release mode and runs this. Pass/fail never
//! depends on timings: the table says which goals were met.

mod app;
mod driver;
mod pages;
mod report;
mod servers;
mod workloads;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::report::{Report, ServerResult};
use crate::servers::{Kind, Paths, Server};
use crate::workloads::Sizes;

const USAGE: &str = "usage: ibis-bench run [--quick] [--only fanout,throughput,create,reconnect,app,catalogue,memory] [--app-practices N] [--runs N] [--servers ibis,js,samod] [--out DIR]\n       ibis-bench samod-server DIR";

/// What `--only` may name.
const WORKLOADS: [&str; 7] = [
    "fanout",
    "throughput",
    "create",
    "reconnect",
    "app",
    "catalogue",
    "memory",
];

/// No server gets more than this for the whole suite; the run is bounded in time.
const PER_SERVER: Duration = Duration::from_secs(30 * 60);

struct Options {
    quick: bool,
    /// Only these workloads (empty: all).
    only: Vec<String>,
    app_practices: Option<usize>,
    runs: Option<usize>,
    servers: Vec<Kind>,
    out: PathBuf,
}

/// A count given to `flag`, between 1 and `max`.
fn number(arg: Option<&String>, flag: &str, max: usize) -> anyhow::Result<usize> {
    let n: usize = arg
        .with_context(|| format!("{flag} needs a number"))?
        .parse()
        .with_context(|| format!("{flag} needs a number"))?;
    if !(1..=max).contains(&n) {
        bail!("{flag} must be between 1 and {max}");
    }
    Ok(n)
}

fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options {
        quick: false,
        only: Vec::new(),
        app_practices: None,
        runs: None,
        servers: Kind::ALL.to_vec(),
        out: PathBuf::from("target/bench"),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--only" => {
                let list = args.next().context("--only needs a list")?;
                for name in list.split(',').map(str::trim) {
                    if !WORKLOADS.contains(&name) {
                        bail!("unknown workload {name:?} (expected one of {WORKLOADS:?})");
                    }
                    options.only.push(name.to_owned());
                }
            }
            "--app-practices" => {
                options.app_practices = Some(number(args.next(), "--app-practices", 50_000)?)
            }
            "--runs" => options.runs = Some(number(args.next(), "--runs", 20)?),
            "--servers" => {
                let list = args.next().context("--servers needs a list")?;
                options.servers = list
                    .split(',')
                    .map(|s| {
                        Kind::parse(s.trim()).with_context(|| {
                            format!("unknown server {s:?} (expected ibis, js or samod)")
                        })
                    })
                    .collect::<anyhow::Result<_>>()?;
            }
            "--out" => options.out = PathBuf::from(args.next().context("--out needs a dir")?),
            other => bail!("unexpected argument {other:?}\n{USAGE}"),
        }
    }
    Ok(options)
}

fn paths() -> anyhow::Result<Paths> {
    let bench = std::env::current_exe()?;
    let dir = bench.parent().context("no binary dir")?;
    let ibis_node = dir.join("ibis-node");
    if !ibis_node.exists() {
        bail!(
            "{} is missing: build it first (cargo xtask bench does)",
            ibis_node.display()
        );
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let js_dir = repo.join("tests/js");
    if !js_dir
        .join("node_modules/@automerge/automerge-repo")
        .exists()
    {
        bail!("tests/js/node_modules is missing: run cargo xtask setup");
    }
    Ok(Paths {
        ibis_node,
        bench,
        js_dir,
    })
}

/// Samples a process's resident memory until dropped; keeps the peak.
struct PeakRss {
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl PeakRss {
    fn start(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(0));
        let seen = peak.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Some(rss) = servers::rss_of(pid) {
                    seen.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        Self { peak, task }
    }

    fn stop(self) -> u64 {
        self.task.abort();
        self.peak.load(Ordering::Relaxed)
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Runs one workload and files its figures; a failure is recorded, not fatal.
async fn record<T>(
    result: &mut ServerResult,
    name: &str,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
    file: impl FnOnce(&mut ServerResult, T),
) {
    eprintln!("    {name}…");
    match work.await {
        Ok(value) => file(result, value),
        Err(e) => {
            eprintln!("    {name} failed: {e:#}");
            result.errors.push(format!("{name}: {e:#}"));
        }
    }
}

async fn suite(
    kind: Kind,
    paths: &Paths,
    sizes: &Sizes,
    wants: &dyn Fn(&str) -> bool,
) -> anyhow::Result<ServerResult> {
    let mut result = ServerResult::default();
    let per_run = ["fanout", "throughput", "create", "reconnect"];
    // Each workload gets a fresh server: one that falls behind under one workload (samod
    // under ten writers) is not left to fail the next ones too.
    for run in (0..sizes.runs).filter(|_| per_run.iter().any(|w| wants(w))) {
        eprintln!("  {} run {}/{}", kind.name(), run + 1, sizes.runs);
        if wants("fanout") {
            let server = Server::start(kind, paths).await?;
            record(
                &mut result,
                "fan-out",
                workloads::fanout(&server.url, sizes.fanout_clients, sizes.fanout_changes),
                |r, figures| {
                    for (key, value) in figures {
                        r.add(&key, value);
                    }
                },
            )
            .await;
            server.stop().await;
        }
        let documents = [
            (1, "throughput, 1 document", "1doc"),
            (100, "throughput, 100 documents", "100docs"),
        ];
        for (docs, name, suffix) in documents.into_iter().filter(|_| wants("throughput")) {
            let server = Server::start(kind, paths).await?;
            record(
                &mut result,
                name,
                workloads::throughput(
                    &server.url,
                    server.pid(),
                    sizes.writers,
                    docs,
                    sizes.throughput_secs,
                ),
                |r, v| {
                    r.add(&format!("changes_per_s_{suffix}"), v.changes_per_s);
                    r.add(&format!("delivered_pct_{suffix}"), v.delivered * 100.0);
                    r.add(
                        &format!("changes_per_message_{suffix}"),
                        v.changes_per_message,
                    );
                    if let Some(us) = v.server_cpu_us {
                        r.add(&format!("server_cpu_us_{suffix}"), us);
                    }
                    if let Some(us) = v.clients_cpu_us {
                        r.add(&format!("clients_cpu_us_{suffix}"), us);
                    }
                },
            )
            .await;
            server.stop().await;
        }
        if wants("create") {
            let server = Server::start(kind, paths).await?;
            record(
                &mut result,
                "create and sync",
                workloads::create_many(&server.url, sizes.create_docs, sizes.in_flight),
                |r, v| r.add("create_docs_s", v),
            )
            .await;
            server.stop().await;
        }
        if wants("reconnect") {
            let server = Server::start(kind, paths).await?;
            record(
                &mut result,
                "reconnect",
                workloads::reconnect(&server.url),
                |r, (bytes, round_trips)| {
                    r.add("reconnect_bytes", bytes as f64);
                    r.add("reconnect_round_trips", round_trips as f64);
                },
            )
            .await;
            server.stop().await;
        }
    }

    if kind == Kind::Ibis && wants("app") {
        app_workload(paths, sizes, &mut result).await;
    }
    if kind == Kind::Ibis && wants("catalogue") {
        catalogue_workload(paths, sizes, &mut result).await;
    }
    if !wants("memory") {
        return Ok(result);
    }

    // Memory and full sync: one populated server, a fresh client per run.
    eprintln!("  {} populating {} practices", kind.name(), sizes.idle_docs);
    let server = Server::start(kind, paths).await?;
    let url = server.url.clone();
    let pid = server.pid().context("the server exited")?;
    let started = std::time::Instant::now();
    let ids = match workloads::populate(&url, sizes.idle_docs).await {
        Ok(ids) => {
            let secs = started.elapsed().as_secs_f64();
            eprintln!("    populated in {secs:.1} s");
            result.add("populate_s", secs);
            ids
        }
        Err(e) => {
            result.errors.push(format!("populate: {e:#}"));
            server.stop().await;
            return Ok(result);
        }
    };
    let wanted = &ids[..sizes.full_sync_docs.min(ids.len())];
    for _ in 0..sizes.runs {
        let sampler = PeakRss::start(pid);
        let outcome = workloads::full_sync(&url, wanted).await;
        let peak = sampler.stop();
        match outcome {
            Ok((secs, bytes)) => {
                result.add("full_sync_s", secs);
                result.add("full_sync_mb", mb(bytes));
                result.add("full_sync_peak_rss_mb", mb(peak));
            }
            Err(e) => {
                // Another run would fail the same way, only later.
                result.errors.push(format!("full sync: {e:#}"));
                break;
            }
        }
    }
    eprintln!("  {} idle for {} s", kind.name(), sizes.idle_secs);
    tokio::time::sleep(Duration::from_secs(sizes.idle_secs)).await;
    match server.rss_bytes() {
        Some(rss) => result.add("idle_rss_mb", mb(rss)),
        None => result.errors.push("idle memory: the server exited".into()),
    }
    server.stop().await;
    Ok(result)
}

/// The app in headless Chromium, when a built app and a browser are here (under CI they
/// must be: their absence is a failure there, a note elsewhere).
async fn app_workload(paths: &Paths, sizes: &Sizes, result: &mut ServerResult) {
    let missing = match (ibis_tests::app_dir(), app::browser_available()) {
        (Some(dist), true) => {
            eprintln!("    app in Chromium, {} practices…", sizes.app_practices);
            let work = app::run(
                &paths.ibis_node,
                &dist,
                sizes.app_practices,
                sizes.runs,
                result,
            );
            if let Err(e) = work.await {
                eprintln!("    app failed: {e:#}");
                result.errors.push(format!("app: {e:#}"));
            }
            return;
        }
        (None, _) => "no built app in dist/ (cargo xtask build-app)",
        (_, false) => "no ChromeDriver (cargo xtask setup installs it)",
    };
    if std::env::var_os("CI").is_some() {
        result.errors.push(format!("app: {missing}"));
    } else {
        eprintln!("    skipping the app workload: {missing}");
    }
}

/// A large catalogue on one node, without a browser: its searches and pages.
async fn catalogue_workload(paths: &Paths, sizes: &Sizes, result: &mut ServerResult) {
    let n = sizes.catalogue_practices;
    eprintln!("    catalogue of {n} practices on one node…");
    let started = std::time::Instant::now();
    let work = async {
        let node = app::start_node(&paths.ibis_node, None, n).await?;
        result.add("catalogue_import_s", started.elapsed().as_secs_f64());
        let measured = pages::measure(
            node.url(),
            node.pid(),
            n,
            sizes.runs == 1,
            "catalogue_",
            result,
        )
        .await;
        node.stop().await;
        measured
    };
    if let Err(e) = work.await {
        eprintln!("    catalogue failed: {e:#}");
        result.errors.push(format!("catalogue: {e:#}"));
    }
}

/// The built app's wasm, raw and gzip-compressed, if `dist/` holds a build.
fn wasm_size() -> Option<(u64, u64)> {
    use std::io::Write;
    let dist = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist");
    let wasm = std::fs::read_dir(dist)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "wasm"))?;
    let bytes = std::fs::read(wasm).ok()?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&bytes).ok()?;
    let compressed = gz.finish().ok()?;
    Some((bytes.len() as u64, compressed.len() as u64))
}

async fn run(options: Options) -> anyhow::Result<()> {
    let paths = paths()?;
    let mut sizes = if options.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    if let Some(runs) = options.runs {
        sizes.runs = runs;
    }
    if let Some(n) = options.app_practices {
        sizes.app_practices = n;
    }
    let mut servers = BTreeMap::new();
    let wants = |name: &str| options.only.is_empty() || options.only.iter().any(|o| o == name);
    for kind in &options.servers {
        eprintln!("==> {}", kind.name());
        let result =
            match tokio::time::timeout(PER_SERVER, suite(*kind, &paths, &sizes, &wants)).await {
                Ok(Ok(result)) => result,
                Ok(Err(e)) => ServerResult::failed(format!("{e:#}")),
                Err(_) => ServerResult::failed("did not finish within 30 minutes".into()),
            };
        servers.insert(*kind, result);
    }
    let report = Report::new(sizes, options.quick, servers, wasm_size());
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("cannot create {}", options.out.display()))?;
    let table = report.markdown();
    std::fs::write(options.out.join("bench.md"), &table)?;
    std::fs::write(
        options.out.join("bench.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    println!("{table}");
    eprintln!(
        "wrote {} and {}",
        options.out.join("bench.md").display(),
        options.out.join("bench.json").display()
    );
    let failed: Vec<_> = report
        .servers
        .iter()
        .filter(|(_, r)| !r.errors.is_empty())
        .map(|(k, _)| k.name())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else if !failed.contains(&Kind::Ibis.name()) {
        // A rival failing a workload is a finding (it is in the table), not a broken
        // benchmark; ibis failing one is.
        eprintln!("warning: workloads failed on: {}", failed.join(", "));
        Ok(())
    } else {
        bail!("workloads failed on: {}", failed.join(", "))
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ibis-bench: cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.first().map(String::as_str) {
        Some("run") => parse(&args[1..]).and_then(|o| runtime.block_on(run(o))),
        Some("samod-server") => match args.get(1) {
            Some(dir) => runtime.block_on(servers::run_samod_server(&PathBuf::from(dir))),
            None => Err(anyhow::anyhow!("{USAGE}")),
        },
        _ => Err(anyhow::anyhow!("{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ibis-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
