//! Running commands, with what is run and how long it took printed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};

/// The repository root (the parent of this crate).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Prints a step header and returns a timer for [`done`].
pub fn step(name: &str) -> (String, Instant) {
    eprintln!("\n==> {name}");
    (name.to_owned(), Instant::now())
}

pub fn done(step: (String, Instant), timings: &mut Vec<(String, f64)>) {
    let secs = step.1.elapsed().as_secs_f64();
    eprintln!("    {} took {secs:.1} s", step.0);
    timings.push((step.0, secs));
}

/// Runs a command to completion, failing on a non-zero exit.
pub fn sh(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("    $ {}", describe(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {}", describe(cmd)))?;
    if !status.success() {
        bail!("{} failed ({status})", describe(cmd));
    }
    Ok(())
}

/// A command's standard output, or `None` if it cannot run or fails.
pub fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// `PATH` with the npm build tools (our wasm-opt) first.
pub fn tool_path() -> String {
    let tools = root().join("xtask/tools/node_modules/.bin");
    let path = std::env::var("PATH").unwrap_or_default();
    format!("{}:{path}", tools.display())
}

pub fn print_timings(timings: &[(String, f64)]) {
    let total: f64 = timings.iter().map(|(_, s)| s).sum();
    eprintln!("\nTimings:");
    for (name, secs) in timings {
        eprintln!("  {secs:8.1} s  {name}");
    }
    eprintln!("  {total:8.1} s  total");
}
