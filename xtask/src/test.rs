//! `cargo xtask test`: what CI runs. Set-up, the app, formatting, lints, every test.

use std::process::Command;

use crate::util::{done, print_timings, root, sh, step};
use crate::{app, setup};

pub fn run_all() -> anyhow::Result<()> {
    let mut timings = Vec::new();
    setup::run_all(&mut timings)?;

    let s = step("app (release build)");
    let dist = app::build(true)?;
    done(s, &mut timings);

    let s = step("formatting");
    sh(Command::new("cargo")
        .args(["fmt", "--all", "--", "--check"])
        .current_dir(root()))?;
    done(s, &mut timings);

    let s = step("lints (native)");
    sh(Command::new("cargo")
        .args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
        .current_dir(root()))?;
    done(s, &mut timings);

    let s = step("lints (app, wasm32)");
    sh(Command::new("cargo")
        .args([
            "clippy",
            "-p",
            "ibis-app",
            "--target",
            "wasm32-unknown-unknown",
            "--",
            "-D",
            "warnings",
        ])
        .current_dir(root()))?;
    done(s, &mut timings);

    let s = step("tests (unit, integration, interop, browser)");
    sh(Command::new("cargo")
        .args([
            "test",
            "--workspace",
            "--no-fail-fast",
            "--",
            "--test-threads=2",
        ])
        .current_dir(root())
        .env("IBIS_DIST", &dist)
        .env("IBIS_JS_DIR", root().join("tests/js"))
        .env("CHROMEDRIVER", "/usr/bin/chromedriver")
        .env("CHROMIUM", "/usr/bin/chromium")
        .env("RUST_BACKTRACE", "1"))?;
    done(s, &mut timings);

    // The benchmark must keep working; its figures are not checked (tiny sizes, debug build).
    let s = step("benchmark smoke run (quick, debug build)");
    sh(Command::new("cargo")
        .args(["build", "-p", "ibis-node", "-p", "ibis-bench"])
        .current_dir(root()))?;
    sh(Command::new(root().join("target/debug/ibis-bench"))
        .args(["run", "--quick", "--out"])
        .arg(root().join("target/bench-smoke"))
        .current_dir(root()))?;
    done(s, &mut timings);

    print_timings(&timings);
    Ok(())
}

pub fn run() -> anyhow::Result<()> {
    run_all()
}
