//! `cargo xtask ci`: the system programs the tests need, the stand-in
//! upstream's virtualenv, the format check, clippy with warnings denied,
//! the supply-chain audit, every test, a short fuzz of every target, the
//! web client's and page's tests, the OpenTelemetry smoke test, the
//! container image's test (built with podman and run), a quick
//! benchmark run, the chaos run, a one-minute soak and WebSocket
//! conformance. CI's `.ci/run` calls exactly
//! this. Reports that the commands would write under `docs/` go under
//! `target/ci-docs/` instead ([`docs_dir`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use warmgate_devservers::process;

use crate::command::workspace_root;
use crate::server::target_dir;
use crate::{
    audit, backend, bench, chaos, command, conformance, deploy_check, fuzz, image, otel_smoke,
    prerequisites, soak, web_test,
};

/// Set for the whole of a `cargo xtask ci` run.
static CI_RUN: AtomicBool = AtomicBool::new(false);

/// Where a command writes what it regenerates under `docs/` (the
/// reliability report's sections, the chat page's screenshots): `docs/`
/// itself, or `target/ci-docs/` during `cargo xtask ci`, so that a CI run
/// leaves the tree as it found it. `cargo xtask docs` refreshes all of
/// `docs/` (and `chaos`, `soak` and `web-test` run on their own refresh
/// their part).
pub(crate) fn docs_dir() -> PathBuf {
    if CI_RUN.load(Ordering::Relaxed) {
        target_dir().join("ci-docs")
    } else {
        workspace_root().join("docs")
    }
}

pub(crate) fn run() -> anyhow::Result<()> {
    CI_RUN.store(true, Ordering::Relaxed);
    prerequisites::ensure()?;
    // The integration tests start the stand-in upstream from its virtualenv
    // (a few seconds to build on a clean clone; nothing once built).
    backend::install()?;
    command::run("cargo", &["fmt", "--all", "--check"])?;
    command::run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    // The supply-chain audit (a few seconds): advisories, bans, licences
    // and sources, judged by deny.toml.
    audit::run()?;
    if process::find_on_path("cargo-nextest").is_some() {
        // Doc tests first, so that the run ends on nextest's summary.
        command::run("cargo", &["test", "--workspace", "--locked", "--doc"])?;
        // Nextest runs each test in its own process and ends a hung one.
        command::run(
            "cargo",
            &[
                "nextest",
                "run",
                "--workspace",
                "--locked",
                "--profile",
                "ci",
            ],
        )?;
    } else {
        command::run("cargo", &["test", "--workspace", "--locked"])?;
    }
    // Every fuzz target for 20 s (about 4 minutes with the instrumented
    // build); a crash fails CI and leaves its input in fuzz/regressions.
    fuzz::run(&fuzz::FuzzArgs {
        seconds: 20,
        ..fuzz::FuzzArgs::default()
    })?;
    // The JavaScript client in Node, and the chat page in Chromium.
    web_test::run()?;
    // Spans reach a real collector (about 10 s on top of the release build,
    // which conformance reuses).
    otel_smoke::run()?;
    // The deployment files, with that release build's check-config and
    // kubernetes-validate (a few seconds).
    deploy_check::run()?;
    // The container image, linted, built from that release binary and run:
    // ready, non-root, drained on SIGTERM within 10 s (about 15 s; the
    // first run on a machine also makes the Debian base, about 30 s more).
    image::run_test(&image::ImageArgs::default())?;
    // The benchmark harness, small: it shows the harness works; CI never
    // judges a timing.
    bench::run(&bench::BenchArgs { quick: true })?;
    // Faults under authenticated load (about 80 s), and a short soak
    // (about 75 s): both judge behaviour, and the probes' 50 ms bound.
    chaos::run(&chaos::ChaosArgs::default())?;
    soak::run(&soak::SoakArgs {
        minutes: 1.0,
        ..soak::SoakArgs::default()
    })?;
    // WebSocket conformance last: it ends on its own "N passed, N failed".
    conformance::run()
}
