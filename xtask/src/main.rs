//! `cargo xtask` — everything a fresh machine needs, each step skipped when satisfied.
//!
//! - `setup`: toolchain targets, Trunk, wasm-bindgen-cli (at the locked version), wasm-opt
//!   (npm binaryen), Chromium and ChromeDriver, OpenSSL headers, npm packages for tests.
//! - `build-app [--dev]`: the browser app with Trunk, into `dist/`.
//! - `demo`: a demo federation of three nodes with seeded practices.
//! - `test`: formatting, lints and every test, browser tests included, and a quick smoke
//!   run of the benchmark.
//! - `bench [--quick] [--update-readme]`: ibis against the JS server and samod.
//! - `geodata`: remakes the world map and the gazetteer in `node/data/` from registry
//!   packages.

mod app;
mod bench;
mod demo;
mod geodata;
mod setup;
mod test;
mod util;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <setup | build-app [--dev] | demo | test | bench [--quick] [--update-readme] | geodata>";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup::run(),
        Some("build-app") => app::build(!args.iter().any(|a| a == "--dev")).map(|_| ()),
        Some("demo") => demo::run(),
        Some("test") => test::run(),
        Some("bench") => bench::run(&args[1..]),
        Some("geodata") => geodata::run(),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nxtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}
