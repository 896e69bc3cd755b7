//! Installs what a fresh machine lacks. Every step checks first and skips when satisfied.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};

use crate::util::{done, output, print_timings, root, sh, step};

pub fn run_all(timings: &mut Vec<(String, f64)>) -> anyhow::Result<()> {
    wasm_target(timings)?;
    trunk(timings)?;
    wasm_bindgen(timings)?;
    npm_install(
        &root().join("xtask/tools"),
        "wasm-opt (npm binaryen)",
        timings,
    )?;
    system_packages(timings)?;
    npm_install(
        &root().join("tests/js"),
        "npm packages for interop tests",
        timings,
    )?;
    Ok(())
}

pub fn run() -> anyhow::Result<()> {
    let mut timings = Vec::new();
    run_all(&mut timings)?;
    print_timings(&timings);
    Ok(())
}

fn wasm_target(timings: &mut Vec<(String, f64)>) -> anyhow::Result<()> {
    let s = step("wasm32 target");
    let installed = output("rustup", &["target", "list", "--installed"]).unwrap_or_default();
    if installed
        .lines()
        .any(|l| l.trim() == "wasm32-unknown-unknown")
    {
        eprintln!("    already installed");
    } else {
        sh(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))?;
    }
    done(s, timings);
    Ok(())
}

const TRUNK: &str = "0.21.14";

fn trunk(timings: &mut Vec<(String, f64)>) -> anyhow::Result<()> {
    let s = step(&format!("trunk {TRUNK}"));
    let version = output("trunk", &["--version"]).unwrap_or_default();
    if version.contains(TRUNK) {
        eprintln!("    already installed");
    } else {
        eprintln!("    (about 12 minutes on two cores)");
        sh(Command::new("cargo").args(["install", "trunk", "--version", TRUNK, "--locked"]))?;
    }
    done(s, timings);
    Ok(())
}

/// The `wasm-bindgen` version in Cargo.lock: the CLI must match it exactly.
pub fn locked_wasm_bindgen() -> anyhow::Result<String> {
    let lock =
        std::fs::read_to_string(root().join("Cargo.lock")).context("cannot read Cargo.lock")?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"wasm-bindgen\"" {
            if let Some(version) = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = "))
            {
                return Ok(version.trim_matches('"').to_owned());
            }
        }
    }
    bail!("Cargo.lock has no wasm-bindgen entry")
}

fn wasm_bindgen(timings: &mut Vec<(String, f64)>) -> anyhow::Result<()> {
    let version = locked_wasm_bindgen()?;
    let s = step(&format!("wasm-bindgen-cli {version}"));
    let installed = output("wasm-bindgen", &["--version"]).unwrap_or_default();
    if installed.split_whitespace().nth(1) == Some(version.as_str()) {
        eprintln!("    already installed");
    } else {
        // Not --locked: its lockfile wants a webpki-roots version the registry lacks.
        sh(Command::new("cargo").args([
            "install",
            "wasm-bindgen-cli",
            "--version",
            &format!("={version}"),
        ]))?;
    }
    done(s, timings);
    Ok(())
}

fn npm_install(dir: &Path, what: &str, timings: &mut Vec<(String, f64)>) -> anyhow::Result<()> {
    let s = step(what);
    let lock = dir.join("package-lock.json");
    let installed = dir.join("node_modules/.package-lock.json");
    let fresh = match (std::fs::metadata(&lock), std::fs::metadata(&installed)) {
        (Ok(l), Ok(i)) => match (l.modified(), i.modified()) {
            (Ok(l), Ok(i)) => i >= l,
            _ => false,
        },
        _ => false,
    };
    if fresh {
        eprintln!("    up to date");
    } else {
        // Not `npm ci`: npm 11 refuses it here because cbor-x's optional
        // per-platform accelerators are absent from the lockfile it wrote
        // itself. `npm install` with the committed lockfile installs exactly
        // the locked versions and leaves the lockfile unchanged (checked).
        sh(Command::new("npm")
            .args(["install", "--no-audit", "--no-fund"])
            .current_dir(dir))?;
    }
    done(s, timings);
    Ok(())
}

fn system_packages(timings: &mut Vec<(String, f64)>) -> anyhow::Result<()> {
    let s = step("Chromium, ChromeDriver, wrk, nginx, OpenSSL headers (Debian packages)");
    let mut missing = Vec::new();
    if !Path::new("/usr/bin/chromium").exists() {
        missing.push("chromium");
    }
    if !Path::new("/usr/bin/chromedriver").exists() {
        missing.push("chromium-driver");
    }
    // The benchmark's load driver for the node's pages.
    if !Path::new("/usr/bin/wrk").exists() {
        missing.push("wrk");
    }
    // The cache in front of a node (`deploy/nginx-cache.conf`), tested in a real nginx.
    if !Path::new("/usr/sbin/nginx").exists() {
        missing.push("nginx-light");
    }
    if output("pkg-config", &["--exists", "openssl"]).is_none() {
        missing.extend(["libssl-dev", "pkg-config"]);
    }
    if missing.is_empty() {
        eprintln!("    already installed");
    } else {
        let root_user = output("id", &["-u"]).is_some_and(|u| u.trim() == "0");
        let apt = |args: &[&str]| {
            let mut cmd = if root_user {
                Command::new("apt-get")
            } else {
                let mut c = Command::new("sudo");
                c.arg("apt-get");
                c
            };
            cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
            cmd
        };
        sh(&mut apt(&["update"]))?;
        let mut install = apt(&["install", "-y", "--no-install-recommends"]);
        install.args(&missing);
        sh(&mut install)?;
    }
    done(s, timings);
    Ok(())
}
