//! `cargo xtask demo`: three partner nodes on this machine — IOM, UNAOC and NLC — with
//! practices drawn from their programmes, each serving the app. Runs until Ctrl-C.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};

use crate::util::{done, output, root, step};
use crate::{app, setup};

struct Org {
    short: &'static str,
    name: &'static str,
    kind: &'static str,
    city: &'static str,
    country: &'static str,
    website: &'static str,
    port: u16,
}

const ORGS: [Org; 3] = [
    Org {
        short: "IOM",
        name: "International Organization for Migration",
        kind: "un-agency",
        city: "Geneva",
        country: "CH",
        website: "https://www.iom.int/",
        port: 8081,
    },
    Org {
        short: "UNAOC",
        name: "United Nations Alliance of Civilizations",
        kind: "un-agency",
        city: "New York",
        country: "US",
        website: "https://www.unaoc.org/",
        port: 8082,
    },
    Org {
        short: "NLC",
        name: "National League of Cities",
        kind: "league-of-cities",
        city: "Washington",
        country: "US",
        website: "https://www.nlc.org/",
        port: 8083,
    },
];

fn port_or_free(wanted: u16) -> anyhow::Result<u16> {
    if std::net::TcpListener::bind(("127.0.0.1", wanted)).is_ok() {
        return Ok(wanted);
    }
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn node(bin: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(bin)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    if !out.status.success() {
        bail!("ibis-node {} failed", args.join(" "));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn run() -> anyhow::Result<()> {
    let mut timings = Vec::new();
    setup::run_all(&mut timings)?;
    let s = step("app (release build)");
    let dist = app::build(true)?;
    done(s, &mut timings);
    let s = step("ibis-node (release build)");
    crate::util::sh(
        Command::new("cargo")
            .args(["build", "--release", "-p", "ibis-node"])
            .current_dir(root()),
    )?;
    done(s, &mut timings);
    let bin = root().join("target/release/ibis-node");

    let s = step("three nodes: IOM, UNAOC, NLC");
    let base = root().join(".ibis-demo");
    if base.exists() {
        std::fs::remove_dir_all(&base)
            .with_context(|| format!("cannot clear {}", base.display()))?;
    }
    std::fs::create_dir_all(&base)?;
    let dirs: Vec<PathBuf> = ORGS
        .iter()
        .map(|o| base.join(o.short.to_lowercase()))
        .collect();
    let ports: Vec<u16> = ORGS
        .iter()
        .map(|o| port_or_free(o.port))
        .collect::<Result<_, _>>()?;
    let mut directory = String::new();
    for (i, org) in ORGS.iter().enumerate() {
        let dir = dirs[i].to_string_lossy().into_owned();
        let public = format!("http://127.0.0.1:{}", ports[i]);
        let mut args = vec![
            "init",
            "--json",
            "--data-dir",
            &dir,
            "--org-name",
            org.name,
            "--org-id",
            org.short,
            "--org-kind",
            org.kind,
            "--city",
            org.city,
            "--country",
            org.country,
            "--website",
            org.website,
            "--public-url",
            &public,
        ];
        let network = "IBIS — Building Inclusive Societies";
        if i == 0 {
            args.extend(["--network-name", network]);
        } else {
            args.extend(["--join", &directory]);
        }
        let info: serde_json::Value = serde_json::from_str(node(&bin, &args)?.trim())?;
        if i == 0 {
            directory = info["directory"].as_str().unwrap_or_default().to_owned();
        }
    }
    // Partners know each other's keys; each node dials the ones after it.
    let keys: Vec<String> = dirs
        .iter()
        .map(|d| {
            node(&bin, &["key", "--data-dir", &d.to_string_lossy()]).map(|k| k.trim().to_owned())
        })
        .collect::<Result<_, _>>()?;
    for (i, dir) in dirs.iter().enumerate() {
        let dir = dir.to_string_lossy().into_owned();
        for (j, partner) in ORGS.iter().enumerate() {
            if i == j {
                continue;
            }
            let url = format!("ws://127.0.0.1:{}/sync", ports[j]);
            // Each partner is bound to its organization: it may change that organization's
            // directory entry, never this one's documents.
            let mut args = vec!["peer", "add", "--data-dir", &dir, partner.short];
            args.extend(["--key", &keys[j], "--org", partner.short]);
            if j > i {
                args.extend(["--url", &url]);
            }
            node(&bin, &args)?;
        }
    }
    for (i, org) in ORGS.iter().enumerate() {
        let seeds = root().join(format!("demo/{}.json", org.short.to_lowercase()));
        let importer = format!("{} editors", org.short);
        let report = node(
            &bin,
            &[
                "import",
                "--data-dir",
                &dirs[i].to_string_lossy(),
                &seeds.to_string_lossy(),
                "--as",
                &importer,
            ],
        )?;
        eprintln!("    {}: {}", org.short, report.lines().last().unwrap_or(""));
    }
    done(s, &mut timings);

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .context("cannot handle Ctrl-C")?;
    }
    let mut children: Vec<Child> = Vec::new();
    for (i, org) in ORGS.iter().enumerate() {
        let listen = format!("127.0.0.1:{}", ports[i]);
        let mut child = Command::new(&bin)
            .args([
                "serve",
                "--data-dir",
                &dirs[i].to_string_lossy(),
                "--listen",
                &listen,
                "--open",
                "--app-dir",
                &dist.to_string_lossy(),
            ])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(
                base.join(format!("{}.log", org.short.to_lowercase())),
            )?)
            .spawn()
            .context("cannot start ibis-node")?;
        let stdout = child.stdout.take().context("no stdout")?;
        children.push(child);
        let mut lines = std::io::BufReader::new(stdout).lines();
        let ready = lines.any(|l| l.is_ok_and(|l| l.starts_with("ibis-node listening on")));
        if !ready {
            stop_all(&mut children);
            bail!(
                "the {} node did not start; see {}",
                org.short,
                base.join(format!("{}.log", org.short.to_lowercase()))
                    .display()
            );
        }
    }
    eprintln!(
        "\nThe demo federation is running (logs in {}):",
        base.display()
    );
    for (i, org) in ORGS.iter().enumerate() {
        println!(
            "  {:6} {}  http://127.0.0.1:{}/",
            org.short, org.name, ports[i]
        );
    }
    eprintln!("\nOpen the URLs in a browser; a practice added on one node appears on the others.");
    eprintln!("Press Ctrl-C to stop.");
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(std::time::Duration::from_millis(200));
        for (i, child) in children.iter_mut().enumerate() {
            if let Ok(Some(status)) = child.try_wait() {
                eprintln!(
                    "the {} node exited ({status}); stopping the demo",
                    ORGS[i].short
                );
                stop.store(true, Ordering::SeqCst);
            }
        }
    }
    stop_all(&mut children);
    Ok(())
}

/// Asks each node to stop (SIGTERM: they drain and flush), then waits.
fn stop_all(children: &mut [Child]) {
    for child in children.iter() {
        let _ = output("kill", &["-TERM", &child.id().to_string()]);
    }
    for child in children.iter_mut() {
        let _ = child.wait();
    }
    eprintln!("stopped");
}
