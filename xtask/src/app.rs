//! Building the browser app with Trunk.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;

use crate::util::{root, sh, tool_path};

/// Builds the app into `dist/` and returns that directory.
pub fn build(release: bool) -> anyhow::Result<PathBuf> {
    let mut cmd = Command::new("trunk");
    cmd.arg("build")
        .current_dir(root())
        .env("TRUNK_SKIP_VERSION_CHECK", "true")
        .env("RUST_BACKTRACE", "0")
        .env("PATH", tool_path());
    if release {
        cmd.arg("--release");
    }
    sh(&mut cmd)?;
    let dist = root().join("dist");
    report_size(&dist)?;
    Ok(dist)
}

/// Prints the size of the app's wasm, raw and gzipped.
pub fn report_size(dist: &std::path::Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dist).with_context(|| format!("no {}", dist.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "wasm") {
            let bytes = std::fs::read(&path)?;
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            gz.write_all(&bytes)?;
            let gzipped = gz.finish()?.len();
            eprintln!(
                "    app wasm: {} KB raw, {} KB gzip ({})",
                bytes.len() / 1024,
                gzipped / 1024,
                path.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}
