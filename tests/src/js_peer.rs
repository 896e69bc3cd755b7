//! JS automerge-repo peers: scripts from `tests/js` run with Node, reading JSON lines,
//! stopped by PID when dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::WAIT;

/// `tests/js`, where the JS peers live (with their npm packages installed).
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
