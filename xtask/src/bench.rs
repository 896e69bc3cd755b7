//! `cargo xtask bench [--quick] [--update-readme] [ibis-bench options]`: builds the ibis
//! node and the load driver in release mode, then runs the same workloads against ibis,
//! the JS automerge-repo server and samod (see `bench/`). With `--update-readme`, the
//! README's Performance table is replaced by this run's.

use std::process::Command;

use anyhow::{bail, Context};

use crate::util::{done, print_timings, root, sh, step};
use crate::{app, setup};

const START: &str = "<!-- bench:start -->";
const END: &str = "<!-- bench:end -->";

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let mut timings = Vec::new();
    setup::run_all(&mut timings)?;
    let update_readme = args.iter().any(|a| a == "--update-readme");
    let passthrough: Vec<&String> = args.iter().filter(|a| *a != "--update-readme").collect();

    // Always rebuilt: the table reports its size and the app workload runs it.
    let s = step("app (release build)");
    app::build(true)?;
    done(s, &mut timings);

    let s = step("ibis-node and ibis-bench (release)");
    sh(Command::new("cargo")
        .args(["build", "--release", "-p", "ibis-node", "-p", "ibis-bench"])
        .current_dir(root()))?;
    done(s, &mut timings);

    let s = step("benchmark");
    let out = root().join("target/bench");
    sh(Command::new(root().join("target/release/ibis-bench"))
        .arg("run")
        .args(&passthrough)
        .arg("--out")
        .arg(&out)
        .current_dir(root()))?;
    done(s, &mut timings);

    if update_readme {
        let table = std::fs::read_to_string(out.join("bench.md"))?;
        update(&table)?;
        eprintln!("    README.md: Performance table updated");
    }
    print_timings(&timings);
    Ok(())
}

/// Replaces the text between the bench markers in the README.
fn update(table: &str) -> anyhow::Result<()> {
    let path = root().join("README.md");
    let readme = std::fs::read_to_string(&path).context("cannot read README.md")?;
    let (Some(start), Some(end)) = (readme.find(START), readme.find(END)) else {
        bail!("README.md has no {START} … {END} markers");
    };
    if end < start {
        bail!("README.md's bench markers are out of order");
    }
    let updated = format!(
        "{}{START}\n{}\n{}",
        &readme[..start],
        table.trim_end(),
        &readme[end..]
    );
    std::fs::write(&path, updated)?;
    Ok(())
}
