//! `cargo xtask otel-smoke`: warmgate against a real OpenTelemetry
//! collector, checking that its spans arrive.
//!
//! The collector is `rotel-agent` from the PyPI package `rotel` (pinned),
//! installed under `target/tools` when missing. It receives OTLP over gRPC
//! and HTTP and prints every span it gets to its log. The command runs a
//! release build of warmgate twice, once per protocol, with a plan that
//! checks the collector's own port; opens a WebSocket with a `traceparent`;
//! stops warmgate with SIGTERM (which flushes the exporter); and waits for
//! the `startup`, `check_attempt`, `state_transition` and `websocket` spans
//! of that run, the last in the caller's trace.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::command;
use crate::net::free_loopback_address;
use crate::plans;
use crate::server::{self, Server, target_dir, wait_until_ready};

/// The rotel release installed; its agent reports itself as 0.0.1-alpha10.
const ROTEL_VERSION: &str = "0.0.1a15";

/// How long the collector may take to listen, and the spans to show up.
const WAIT: Duration = Duration::from_secs(30);

/// The spans every run must deliver.
const EXPECTED_SPANS: [&str; 4] = ["startup", "check_attempt", "state_transition", "websocket"];

pub(crate) fn run() -> anyhow::Result<()> {
    let agent = rotel_agent()?;
    let program = server::release_build()?;
    let work_dir = target_dir().join("otel-smoke");
    let _ = std::fs::remove_dir_all(&work_dir);
    std::fs::create_dir_all(&work_dir)
        .with_context(|| format!("cannot create {}", work_dir.display()))?;

    let grpc = free_loopback_address()?;
    let http = free_loopback_address()?;
    let collector_log = work_dir.join("collector.log");
    let mut collector = Collector::start(&agent, grpc, http, &collector_log)?;
    wait_for_port(grpc)?;
    wait_for_port(http)?;
    println!(
        "otel-smoke: rotel-agent {ROTEL_VERSION} listens on grpc {grpc} and http {http}; its log is {}",
        collector_log.display()
    );

    let runs = [
        (
            "grpc",
            format!("http://{grpc}"),
            "0af7651916cd43dd8448eb211c80319c",
        ),
        (
            "http/protobuf",
            format!("http://{http}"),
            "4bf92f3577b34da6a3ce929d0e0e4736",
        ),
    ];
    for (protocol, endpoint, trace_id) in runs {
        run_gateway(&program, &work_dir, protocol, &endpoint, grpc, trace_id)?;
        wait_for_spans(&collector_log, trace_id).with_context(|| format!("over {protocol}"))?;
        println!(
            "otel-smoke: over {protocol}, the collector received {} (websocket in trace {trace_id})",
            EXPECTED_SPANS.join(", ")
        );
    }
    collector.stop();
    println!("otel-smoke: passed");
    Ok(())
}

/// One warmgate run exporting to `endpoint`: ready, one WebSocket with a
/// `traceparent` in `trace_id`, then SIGTERM.
fn run_gateway(
    program: &Path,
    work_dir: &Path,
    protocol: &str,
    endpoint: &str,
    collector: SocketAddr,
    trace_id: &str,
) -> anyhow::Result<()> {
    let name = protocol.replace('/', "-");
    let config_path = work_dir.join(format!("warmgate-{name}.toml"));
    let log_path = work_dir.join(format!("warmgate-{name}.log"));
    // Ready once the collector listens: its check, then the ready plan.
    let config = format!(
        r#"[[phase]]
name = "dependencies"

[[phase.check]]
name = "collector"
kind = "tcp"
addr = "{collector}"

{ready}"#,
        ready = plans::READY
    );
    std::fs::write(&config_path, config)
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    let mut gateway = Server::start_warmgate(
        program,
        &config_path,
        &log_path,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            ("OTEL_SERVICE_NAME", "warmgate-otel-smoke"),
        ],
    )?;
    wait_until_ready(gateway.public)?;
    open_websocket(gateway.public, trace_id)?;
    let status = gateway.stop()?;
    if !status.success() {
        bail!(
            "warmgate exited with {status} after SIGTERM; its log is {}",
            log_path.display()
        );
    }
    Ok(())
}

/// Opens a WebSocket on `/ws` with a `traceparent` and reads the upgrade
/// response and the first frame, then leaves.
fn open_websocket(public: SocketAddr, trace_id: &str) -> anyhow::Result<()> {
    let mut stream = TcpStream::connect_timeout(&public, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET /ws HTTP/1.1\r\nHost: {public}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         traceparent: 00-{trace_id}-00f067aa0ba902b7-01\r\n\r\n"
    )?;
    let mut received = Vec::new();
    let mut buffer = [0; 1024];
    // The 101 response, then the `ready` frame: enough once the headers end
    // and a frame follows them.
    let frame_arrived = |received: &[u8]| {
        received
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .is_some_and(|end| received.len() > end + 4)
    };
    while !frame_arrived(&received) {
        let read = stream
            .read(&mut buffer)
            .context("the WebSocket upgrade got no answer")?;
        if read == 0 {
            break;
        }
        received.extend_from_slice(&buffer[..read]);
    }
    let text = String::from_utf8_lossy(&received);
    if !text.starts_with("HTTP/1.1 101") {
        bail!("the WebSocket upgrade was refused: {text:?}");
    }
    Ok(())
}

/// Waits until the collector's log shows every expected span, the
/// `websocket` one in `trace_id`.
fn wait_for_spans(collector_log: &Path, trace_id: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let log = std::fs::read_to_string(collector_log).unwrap_or_default();
        let missing: Vec<&str> = EXPECTED_SPANS
            .iter()
            .copied()
            .filter(|name| !has_span(&log, name, (*name == "websocket").then_some(trace_id)))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if started.elapsed() > WAIT {
            bail!(
                "the collector did not receive {} within {} s; see {}",
                missing.join(", "),
                WAIT.as_secs(),
                collector_log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// True when the log of rotel's debug exporter shows a span named `name`,
/// in `trace_id` if given. Each span is printed as `Trace ID : …`, then
/// `Parent ID`, `ID` and `Name : …` lines.
fn has_span(log: &str, name: &str, trace_id: Option<&str>) -> bool {
    let mut current_trace = "";
    for line in log.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key.trim() {
            "Trace ID" => current_trace = value.trim(),
            "Name"
                if value.trim() == name
                    && trace_id.is_none_or(|trace_id| trace_id == current_trace) =>
            {
                return true;
            }
            _ => {}
        }
    }
    false
}

// === the collector ===

/// `rotel-agent`: from `target/tools`, installed there with pip when
/// missing.
fn rotel_agent() -> anyhow::Result<PathBuf> {
    command::pip_tool(
        &format!("rotel=={ROTEL_VERSION}"),
        &target_dir()
            .join("tools")
            .join(format!("rotel-{ROTEL_VERSION}")),
        "rotel/rotel-agent",
    )
}

/// A running `rotel-agent`, killed on drop.
struct Collector {
    child: Child,
}

impl Collector {
    fn start(
        agent: &Path,
        grpc: SocketAddr,
        http: SocketAddr,
        log_path: &Path,
    ) -> anyhow::Result<Collector> {
        let log = File::create(log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let errors = log.try_clone()?;
        let child = Command::new(agent)
            .args(["start", "--otlp-grpc-endpoint"])
            .arg(grpc.to_string())
            .arg("--otlp-http-endpoint")
            .arg(http.to_string())
            .args([
                "--exporter",
                "blackhole",
                "--debug-log",
                "traces",
                "--debug-log-verbosity",
                "detailed",
            ])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(errors)
            .spawn()
            .with_context(|| format!("cannot start {}", agent.display()))?;
        Ok(Collector { child })
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until something accepts connections on `address`.
fn wait_for_port(address: SocketAddr) -> anyhow::Result<()> {
    let started = Instant::now();
    while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
        if started.elapsed() > WAIT {
            bail!(
                "the collector did not listen on {address} within {} s",
                WAIT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
