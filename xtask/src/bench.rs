//! `cargo xtask bench [--quick]`: warmgate measured side by side with the
//! floor (bare fastwebsockets, `warmgate-reference` on axum and
//! `warmgate-floor` on hyper alone) and with a replica of the design it
//! replaces (`warmgate-old-design`), in proxy mode with nginx in front of
//! the same upstream (`proxy`, `nginx`), and by the instructions the
//! servers execute per connection and per message under callgrind
//! (`instructions`), in one run.
//!
//! It builds everything in release, then runs each scenario against
//! warmgate and its comparison alternately (A B A B, and the order flips
//! every round) over several rounds, each on fresh processes. The load
//! generator (`warmgate-loadgen`) runs in its own process and prints JSON.
//! Figures are the median over rounds. Everything lands in
//! `target/bench/results.json`; the full run regenerates
//! `docs/benchmarks.md`, keeping its hand-written findings section, while
//! `--quick` (small sizes, one round; CI runs it to show the harness works)
//! writes `target/bench/benchmarks.md` instead. Nothing here asserts a
//! timing.
//!
//! Long because it is the benchmark plan: every scenario, its rounds and
//! its table row in `docs/benchmarks.md`, in the order the report shows
//! them. The proxy scenarios, nginx and the instruction counts have modules
//! of their own.

mod instructions;
mod nginx;
mod proxy;
mod report;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use warmgate_loadgen::report::{
    ConnectReport, EchoReport, HoldReport, HttpLoadReport, SignalReport, Timings,
};

use crate::auth_service::AuthService;
use crate::machine::{Machine, today};
use crate::net::free_loopback_address;
use crate::plans::{HELD_WITH_ROOM, HOLDING_GATE, READY};
use crate::server::{Server, release_program, target_dir, wait_until_ready};

use self::report::Row;

/// The pause between one sequential connect's close and the next connect,
/// in milliseconds. Back to back, a connect lands while the server is
/// still tearing down the one before, and how much that overlap helps or
/// hurts depended on how fast the client reconnects: the two clients
/// disagreed by up to 1.6x on the same servers (see the findings). After
/// the pause every connect meets a server with nothing else to do.
const CONNECT_PAUSE_MS: &str = "1";

/// The longest one load generator run may take.
const LOADGEN_LIMIT: Duration = Duration::from_secs(120);

/// The sizes of one run.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    rounds: usize,
    sequential_connects: usize,
    held_clients: usize,
    detect_clients: usize,
    signal_rounds: usize,
    echo_round_trips: usize,
    http_seconds: f64,
    http_connections: usize,
    /// P3's held clients, when the descriptor limit allows (see `proxy`).
    proxy_held_clients: usize,
    /// P4's open proxied connections.
    proxy_connections: usize,
    /// I1's connects under callgrind.
    instruction_connects: usize,
    /// I2's echoed messages under callgrind.
    instruction_echoes: usize,
    /// I3's held clients under callgrind.
    instruction_held_clients: usize,
}

const FULL: Sizes = Sizes {
    rounds: 5,
    sequential_connects: 1000,
    held_clients: 10_000,
    detect_clients: 100,
    signal_rounds: 200,
    echo_round_trips: 10_000,
    http_seconds: 3.0,
    http_connections: 32,
    proxy_held_clients: 10_000,
    proxy_connections: 5000,
    instruction_connects: 200,
    instruction_echoes: 2000,
    instruction_held_clients: 500,
};

const QUICK: Sizes = Sizes {
    rounds: 1,
    sequential_connects: 200,
    held_clients: 1000,
    detect_clients: 50,
    signal_rounds: 50,
    echo_round_trips: 2000,
    http_seconds: 1.0,
    http_connections: 16,
    proxy_held_clients: 500,
    proxy_connections: 1000,
    instruction_connects: 100,
    instruction_echoes: 500,
    instruction_held_clients: 200,
};

/// The key id, issuer and audience of scenario 10's tokens.
const BENCH_KID: &str = "bench-1";
const BENCH_ISSUER: &str = "https://auth.bench.test/";
const BENCH_AUDIENCE: &str = "chat";

/// [`READY`] with every client authenticated: an ES256 token
/// checked against the JWKS at `jwks_url`, loaded by a `jwks` check.
fn jwt_ready_config(jwks_url: &str) -> String {
    format!(
        r#"[auth]
mode = "jwt"
algorithms = ["ES256"]
jwks_url = "{jwks_url}"
issuer = "{BENCH_ISSUER}"
audience = "{BENCH_AUDIENCE}"

[[phase]]
name = "dependencies"

[[phase.check]]
name = "auth"
kind = "jwks"

{READY}"#
    )
}

/// The load generator's `echo` command: `count` round trips on `url` with
/// `client`'s WebSocket implementation.
fn echo_args(url: String, count: String, client: Client) -> Vec<String> {
    vec![
        "echo".into(),
        "--url".into(),
        url,
        "--count".into(),
        count,
        "--client".into(),
        client.name().into(),
    ]
}

/// The WebSocket URL of `path` on `server`.
fn ws_url(server: &Server, path: &str) -> String {
    format!("ws://{}{path}", server.public)
}

/// The admin URL that sets warmgate's signal `app`.
fn signal_url(server: &Server) -> anyhow::Result<String> {
    let admin = server.admin.context("warmgate printed no admin address")?;
    Ok(format!("http://{admin}/signals/app"))
}

/// What `cargo xtask bench` is asked for.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub(crate) struct BenchArgs {
    /// Small sizes and one round, to show the harness works; the report
    /// stays in target/bench and docs/benchmarks.md is left alone
    #[arg(long)]
    pub(crate) quick: bool,
}

pub(crate) fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let quick = args.quick;
    let sizes = if quick { QUICK } else { FULL };
    let started = Instant::now();
    let nginx = nginx::Program::find()?;
    crate::server::release_build()?;
    let dir = target_dir().join("bench");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut bench = Bench {
        dir,
        sizes,
        auth_service: None,
        nginx: nginx.clone(),
        raw: Map::new(),
        figures: Map::new(),
    };
    let mut rows = Vec::new();
    rows.extend(bench.connect()?);
    rows.extend(bench.hold_and_release()?);
    rows.extend(bench.detect_tcp()?);
    rows.extend(bench.detect_signal()?);
    rows.extend(bench.readyz()?);
    rows.extend(bench.echo()?);
    rows.extend(bench.snapshot_read(quick)?);
    let proxy_started = Instant::now();
    rows.extend(bench.proxy_connect()?);
    rows.extend(bench.proxy_echo()?);
    rows.extend(bench.proxy_release()?);
    rows.extend(bench.proxy_memory()?);
    let proxy_seconds = proxy_started.elapsed().as_secs_f64();
    println!("bench: the proxy scenarios (P1 to P4) took {proxy_seconds:.0} s");
    let instructions_started = Instant::now();
    rows.extend(bench.instructions()?);
    let instructions_seconds = instructions_started.elapsed().as_secs_f64();
    println!("bench: the instruction counts (I1 to I3) took {instructions_seconds:.0} s");

    let machine = Machine::read().to_json();
    let date = today();
    let results = json!({
        "date": date,
        "quick": quick,
        "machine": machine,
        "sizes": format!("{sizes:?}"),
        "nginx": { "version": nginx.version, "workers": nginx.workers },
        "proxy_seconds": proxy_seconds,
        "instructions_seconds": instructions_seconds,
        "figures": bench.figures,
        "raw": bench.raw,
    });
    let results_path = bench.dir.join("results.json");
    std::fs::write(&results_path, serde_json::to_string_pretty(&results)?)
        .with_context(|| format!("cannot write {}", results_path.display()))?;
    let report_path = if quick {
        bench.dir.join("benchmarks.md")
    } else {
        crate::command::workspace_root()
            .join("docs")
            .join("benchmarks.md")
    };
    let findings = report::findings(
        &crate::command::workspace_root()
            .join("docs")
            .join("benchmarks.md"),
    );
    let markdown = report::markdown(
        &rows,
        &machine,
        &date,
        &sizes_text(&sizes, quick),
        (&nginx.version, nginx.workers),
        &findings,
    );
    std::fs::write(&report_path, markdown)
        .with_context(|| format!("cannot write {}", report_path.display()))?;
    print!("{}", report::table(&rows));
    println!(
        "bench: {} in {:.0} s; figures in {}, report in {}",
        if quick { "quick run" } else { "full run" },
        started.elapsed().as_secs_f64(),
        results_path.display(),
        report_path.display()
    );
    Ok(())
}

fn sizes_text(sizes: &Sizes, quick: bool) -> String {
    format!(
        "{} round(s){}; {} sequential connects; {} held clients; {} clients per detection round; {} signal rounds; {} echo round trips; HTTP load {} s from {} connections; {} held clients released into the upstream (P3); {} open proxied connections (P4); under callgrind, {} connects (I1), {} echoed messages (I2), {} released held clients (I3)",
        sizes.rounds,
        if quick { " (`--quick`)" } else { "" },
        sizes.sequential_connects,
        sizes.held_clients,
        sizes.detect_clients,
        sizes.signal_rounds,
        sizes.echo_round_trips,
        sizes.http_seconds,
        sizes.http_connections,
        sizes.proxy_held_clients,
        sizes.proxy_connections,
        sizes.instruction_connects,
        sizes.instruction_echoes,
        sizes.instruction_held_clients
    )
}

/// Which server a measurement ran against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject {
    Warmgate,
    /// warmgate with `[auth]`: every client sends a token.
    WarmgateJwt,
    Reference,
    /// bare fastwebsockets on hyper, without axum: the reference's floor.
    Floor,
    OldDesign,
    /// warmgate in proxy mode, in front of a `warmgate-reference`.
    WarmgateProxy,
    /// nginx in front of a `warmgate-reference`.
    Nginx,
    /// The proxy scenarios' upstream alone, the floor.
    UpstreamDirect,
}

impl Subject {
    fn name(self) -> &'static str {
        match self {
            Subject::Warmgate => "warmgate",
            Subject::WarmgateJwt => "warmgate_jwt",
            Subject::Reference => "reference",
            Subject::Floor => "floor",
            Subject::OldDesign => "old_design",
            Subject::WarmgateProxy => "warmgate_proxy",
            Subject::Nginx => "nginx",
            Subject::UpstreamDirect => "upstream_direct",
        }
    }
}

/// Which WebSocket client of the load generator measured a figure. The
/// timed WebSocket scenarios run with both, in the same rounds, and each
/// ratio compares figures taken by the same client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Tungstenite,
    /// fastwebsockets' client handshake over hyper's HTTP/1.1 client.
    Fastwebsockets,
}

impl Client {
    const BOTH: [Client; 2] = [Client::Tungstenite, Client::Fastwebsockets];

    /// The value of the load generator's `--client`, and the name in rows.
    fn name(self) -> &'static str {
        match self {
            Client::Tungstenite => "tungstenite",
            Client::Fastwebsockets => "fastwebsockets",
        }
    }

    /// The key of `scenario`'s figures measured by this client. tungstenite's
    /// keep the plain name they had before there were two clients, so that
    /// results stay comparable across runs.
    fn key(self, scenario: &str) -> String {
        match self {
            Client::Tungstenite => scenario.to_owned(),
            Client::Fastwebsockets => format!("{scenario}_{}", self.name()),
        }
    }
}

struct Bench {
    dir: PathBuf,
    sizes: Sizes,
    /// The stand-in auth service of scenario 10, while it runs.
    auth_service: Option<AuthService>,
    /// The nginx of the proxy scenarios.
    nginx: nginx::Program,
    /// Every loadgen output, by scenario and subject, one per round.
    raw: Map<String, Value>,
    /// Every named figure (medians over rounds).
    figures: Map<String, Value>,
}

impl Bench {
    // === processes ===

    fn warmgate(&self, name: &str, config: &str) -> anyhow::Result<Server> {
        let config_path = self.dir.join(format!("{name}.toml"));
        std::fs::write(&config_path, config)
            .with_context(|| format!("cannot write {}", config_path.display()))?;
        let server = Server::start_warmgate(
            &release_program("warmgate"),
            &config_path,
            &self.dir.join(format!("{name}.log")),
            // The default log level: the cost of the log lines a real
            // deployment writes is part of the figure.
            &[],
        )?;
        Ok(server)
    }

    fn reference(&self) -> anyhow::Result<Server> {
        let mut command = Command::new(release_program("warmgate-reference"));
        command.arg("127.0.0.1:0");
        Server::spawn(command, "reference", &self.dir.join("reference.log"))
    }

    fn floor(&self) -> anyhow::Result<Server> {
        let mut command = Command::new(release_program("warmgate-floor"));
        command.arg("127.0.0.1:0");
        Server::spawn(command, "floor", &self.dir.join("floor.log"))
    }

    fn old_design(&self, dependencies: &[SocketAddr]) -> anyhow::Result<Server> {
        let mut command = Command::new(release_program("warmgate-old-design"));
        command.arg("127.0.0.1:0");
        command.args(dependencies.iter().map(SocketAddr::to_string));
        Server::spawn(command, "old-design", &self.dir.join("old-design.log"))
    }

    /// A server of `subject` that admits at once.
    fn ready_server(
        &self,
        subject: Subject,
        dependencies: &[SocketAddr],
    ) -> anyhow::Result<Server> {
        let server = match subject {
            Subject::Warmgate => self.warmgate("ready", READY)?,
            Subject::WarmgateJwt => {
                let Some(auth_service) = &self.auth_service else {
                    bail!("scenario 10 needs the auth service, and it is not running");
                };
                self.warmgate("ready-jwt", &jwt_ready_config(&auth_service.jwks_url()))?
            }
            Subject::Reference => self.reference()?,
            Subject::Floor => self.floor()?,
            Subject::OldDesign => self.old_design(dependencies)?,
            Subject::WarmgateProxy | Subject::Nginx | Subject::UpstreamDirect => {
                bail!("{} runs with an upstream; see `proxy`", subject.name())
            }
        };
        if subject != Subject::OldDesign {
            wait_until_ready(server.public)?;
        }
        Ok(server)
    }

    /// Runs the load generator and returns its report, read strictly as
    /// an `R`. A run that takes past [`LOADGEN_LIMIT`] is killed and fails
    /// the bench.
    fn loadgen<R: DeserializeOwned>(&self, args: &[String]) -> anyhow::Result<R> {
        let program = release_program("warmgate-loadgen");
        println!("bench: warmgate-loadgen {}", args.join(" "));
        let mut child = Command::new(&program)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        let started = Instant::now();
        while child.try_wait()?.is_none() {
            if started.elapsed() > LOADGEN_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "warmgate-loadgen {} took over {} s; stopped it",
                    args.join(" "),
                    LOADGEN_LIMIT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let output = child.wait_with_output()?;
        if !output.status.success() {
            bail!(
                "warmgate-loadgen {} failed ({}): {}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        crate::loadgen_report::parse(&String::from_utf8_lossy(&output.stdout))
            .with_context(|| format!("warmgate-loadgen {}", args.join(" ")))
    }

    /// Runs the load generator against `server` with the arguments `args`
    /// makes from it, stops the server (whatever the outcome), and keeps
    /// its report, an `R`, under `key`.
    fn measure<R: DeserializeOwned + Serialize>(
        &mut self,
        key: &str,
        subject: Subject,
        mut server: Server,
        args: impl FnOnce(&Server) -> anyhow::Result<Vec<String>>,
    ) -> anyhow::Result<()> {
        let figures = args(&server).and_then(|args| self.loadgen::<R>(&args));
        let _ = server.stop();
        self.keep(key, subject, &serde_json::to_value(figures?)?);
        Ok(())
    }

    fn keep(&mut self, key: &str, subject: Subject, figures: &Value) {
        let entry = self
            .raw
            .entry(format!("{key}.{}", subject.name()))
            .or_insert_with(|| json!([]));
        if let Value::Array(rounds) = entry {
            rounds.push(figures.clone());
        }
    }

    /// The median over rounds of the figure `pick` takes from each
    /// round's report (an `R`), recorded as figure `name`. A round whose
    /// report has no such figure (`None`: nothing was measured) is left
    /// out; with none left the median is NaN, which no row meets.
    fn median<R: DeserializeOwned>(
        &mut self,
        key: &str,
        subject: Subject,
        name: &str,
        pick: impl Fn(&R) -> Option<f64>,
    ) -> anyhow::Result<f64> {
        let rounds_key = format!("{key}.{}", subject.name());
        let Some(Value::Array(rounds)) = self.raw.get(&rounds_key) else {
            bail!("no round of `{rounds_key}` was measured");
        };
        let mut values = Vec::with_capacity(rounds.len());
        for round in rounds {
            let report: R = crate::loadgen_report::from_value(round)
                .with_context(|| format!("a round of `{rounds_key}`"))?;
            values.extend(pick(&report));
        }
        let median = median(values);
        self.figures
            .insert(format!("{rounds_key}.{name}"), json!(median));
        Ok(median)
    }

    /// The subjects in this round's order: the order flips every round.
    fn order<T: Copy>(round: usize, subjects: &[T]) -> Vec<T> {
        let mut order = subjects.to_vec();
        if round % 2 == 1 {
            order.reverse();
        }
        order
    }

    // === scenarios ===

    /// Scenarios 1, 8 and 10: sequential connects to the `ready` frame.
    fn connect(&mut self) -> anyhow::Result<Vec<Row>> {
        let dependencies = Dependencies::start(3)?;
        self.auth_service = Some(AuthService::start(
            Command::new(release_program("warmgate-jwks-server")),
            &self.dir,
            BENCH_KID,
        )?);
        let measured = self.connect_rounds(&dependencies);
        if let Some(mut auth_service) = self.auth_service.take() {
            let _ = auth_service.server.stop();
        }
        measured?;
        let mut rows = Vec::new();
        let mut floor_rows = Vec::new();
        let mut old_design_rows = Vec::new();
        let mut authenticated_rows = Vec::new();
        for client in Client::BOTH {
            let key = client.key("connect");
            for (figure, percentile, target) in [("p50", P50, 1.10), ("p99", P99, 1.25)] {
                let unit = format!("{figure}, µs");
                let mut median = |subject| {
                    self.median(&key, subject, figure, |report: &ConnectReport| {
                        report.connect_to_ready.as_ref().map(percentile)
                    })
                };
                let warmgate = median(Subject::Warmgate)?;
                let reference = median(Subject::Reference)?;
                let floor = median(Subject::Floor)?;
                let old_design = median(Subject::OldDesign)?;
                let authenticated = median(Subject::WarmgateJwt)?;
                rows.push(Row::ratio(
                    &format!("1 ({})", client.name()),
                    "gate ready: TCP connect to `ready` frame",
                    &unit,
                    warmgate,
                    ("reference", reference),
                    target,
                ));
                floor_rows.push(Row::compared(
                    &format!("1 (floor check, {})", client.name()),
                    "the reference (fastwebsockets on axum, in the warmgate column) against the floor (fastwebsockets on hyper alone): connect to `ready`",
                    &unit,
                    reference,
                    ("floor", floor),
                ));
                old_design_rows.push(Row::report(
                    &format!("8 ({})", client.name()),
                    "old design's replica, gate ready: connect to `ready`",
                    &unit,
                    warmgate,
                    ("old design", old_design),
                ));
                authenticated_rows.push(Row::compared(
                    &format!("10 ({})", client.name()),
                    "gate ready, `[auth]` on: ES256 token checked, connect to `ready`",
                    &unit,
                    authenticated,
                    ("warmgate without `[auth]`", warmgate),
                ));
            }
        }
        rows.extend(floor_rows);
        rows.extend(old_design_rows);
        rows.extend(authenticated_rows);
        Ok(rows)
    }

    /// Every subject with each client, alternating in each round.
    fn connect_rounds(&mut self, dependencies: &Dependencies) -> anyhow::Result<()> {
        let mut measurements = Vec::new();
        for client in Client::BOTH {
            for subject in [
                Subject::Warmgate,
                Subject::WarmgateJwt,
                Subject::Reference,
                Subject::Floor,
                Subject::OldDesign,
            ] {
                measurements.push((subject, client));
            }
        }
        for round in 0..self.sizes.rounds {
            for (subject, client) in Self::order(round, &measurements) {
                let server = self.ready_server(subject, &dependencies.addresses)?;
                let count = self.sizes.sequential_connects.to_string();
                let auth_arguments = match (&self.auth_service, subject) {
                    (Some(auth_service), Subject::WarmgateJwt) => {
                        auth_service.loadgen_arguments(BENCH_ISSUER, BENCH_AUDIENCE)
                    }
                    _ => Vec::new(),
                };
                self.measure::<ConnectReport>(&client.key("connect"), subject, server, |server| {
                    let mut args = vec![
                        "connect-sequential".into(),
                        "--url".into(),
                        ws_url(server, "/ws"),
                        "--count".into(),
                        count,
                        "--client".into(),
                        client.name().into(),
                        "--pause-ms".into(),
                        CONNECT_PAUSE_MS.into(),
                    ];
                    args.extend(auth_arguments);
                    Ok(args)
                })?;
            }
        }
        Ok(())
    }

    /// Scenarios 2 and 3: ten thousand held clients released by a signal,
    /// and the memory they take.
    fn hold_and_release(&mut self) -> anyhow::Result<Vec<Row>> {
        let clients = self.sizes.held_clients.to_string();
        // The release (2) is warmgate's alone, so it is timed by both
        // clients; the memory (3) is the server's, so tungstenite's run
        // against the reference is enough.
        let measurements = [
            (Subject::Warmgate, Client::Tungstenite),
            (Subject::Reference, Client::Tungstenite),
            (Subject::Warmgate, Client::Fastwebsockets),
        ];
        for round in 0..self.sizes.rounds {
            for (subject, client) in Self::order(round, &measurements) {
                let server = match subject {
                    Subject::Warmgate => self.warmgate("held", HELD_WITH_ROOM)?,
                    _ => self.reference()?,
                };
                self.measure::<HoldReport>(&client.key("hold"), subject, server, |server| {
                    let mut args = vec![
                        "hold".into(),
                        "--url".into(),
                        ws_url(server, "/ws"),
                        "--clients".into(),
                        clients.clone(),
                        "--pid".into(),
                        server.pid().to_string(),
                        "--client".into(),
                        client.name().into(),
                    ];
                    // warmgate holds its clients until the signal flips;
                    // the reference admits them at once.
                    if subject == Subject::Warmgate {
                        args.extend(["--flip-post".into(), signal_url(server)?]);
                    }
                    Ok(args)
                })?;
            }
        }
        let all = self.sizes.held_clients as f64;
        let mut rows = Vec::new();
        for client in Client::BOTH {
            let key = client.key("hold");
            let release_ms = self.median(&key, Subject::Warmgate, "last_ready_us", |report| {
                release_timing(report, MAX)
            })? / 1e3;
            let released = self.median(&key, Subject::Warmgate, "released", released)?;
            let errors = self.median(&key, Subject::Warmgate, "errors", hold_errors)?;
            rows.push(
                Row::bound(
                    &format!("2 ({})", client.name()),
                    &format!(
                        "release: {} held clients, signal flip to the last `ready`",
                        self.sizes.held_clients
                    ),
                    "ms",
                    release_ms,
                    100.0,
                )
                .with_note(&format!(
                    "{released:.0} of {all:.0} released, {errors:.0} errors"
                ))
                .met_only_if(released == all && errors == 0.0),
            );
        }
        let warmgate_kib = self.median(
            "hold",
            Subject::Warmgate,
            "rss_per_client_kib",
            rss_per_client_kib,
        )?;
        let reference_kib = self.median(
            "hold",
            Subject::Reference,
            "rss_per_client_kib",
            rss_per_client_kib,
        )?;
        rows.push(Row::bound_against(
            "3",
            &format!(
                "memory with {} held clients, per client",
                self.sizes.held_clients
            ),
            "KiB",
            warmgate_kib,
            ("reference", reference_kib),
            12.0,
        ));
        Ok(rows)
    }

    /// Scenario 4: a tcp dependency appears; time to `ready` at held
    /// clients, with the default `retry_cap`.
    fn detect_tcp(&mut self) -> anyhow::Result<Vec<Row>> {
        for _ in 0..self.sizes.rounds {
            let port = free_loopback_address()?;
            let config = format!(
                "{HOLDING_GATE}\n[[phase]]\nname = \"dependencies\"\n\n[[phase.check]]\nname = \"database\"\nkind = \"tcp\"\naddr = \"{port}\"\n"
            );
            let server = self.warmgate("detect-tcp", &config)?;
            let clients = self.sizes.detect_clients.to_string();
            self.measure::<HoldReport>("detect_tcp", Subject::Warmgate, server, |server| {
                Ok(vec![
                    "hold".into(),
                    "--url".into(),
                    ws_url(server, "/ws"),
                    "--clients".into(),
                    clients,
                    "--flip-listen".into(),
                    port.to_string(),
                    // The check has failed long enough for its backoff to
                    // reach `retry_cap`: the slowest case.
                    "--settle-ms".into(),
                    "1000".into(),
                ])
            })?;
        }
        let p99 = self.median("detect_tcp", Subject::Warmgate, "p99_us", |report| {
            release_timing(report, P99)
        })? / 1e3;
        Ok(vec![Row::bound(
            "4",
            "detection: tcp dependency appears, to `ready` at held clients",
            "p99, ms",
            p99,
            150.0,
        )])
    }

    /// Scenario 5: `set_signal` to `ready` at a held client.
    fn detect_signal(&mut self) -> anyhow::Result<Vec<Row>> {
        for _ in 0..self.sizes.rounds {
            let server = self.warmgate("detect-signal", HELD_WITH_ROOM)?;
            let rounds = self.sizes.signal_rounds.to_string();
            self.measure::<SignalReport>("detect_signal", Subject::Warmgate, server, |server| {
                Ok(vec![
                    "detect-signal".into(),
                    "--url".into(),
                    ws_url(server, "/ws"),
                    "--signal-url".into(),
                    signal_url(server)?,
                    "--rounds".into(),
                    rounds,
                ])
            })?;
        }
        let signal_to_ready = |percentile| {
            move |report: &SignalReport| report.signal_to_ready.as_ref().map(percentile)
        };
        let p50 = self.median(
            "detect_signal",
            Subject::Warmgate,
            "p50_us",
            signal_to_ready(P50),
        )? / 1e3;
        let p99 = self.median(
            "detect_signal",
            Subject::Warmgate,
            "p99_us",
            signal_to_ready(P99),
        )? / 1e3;
        Ok(vec![
            Row::bound(
                "5",
                "detection by signal: `POST /signals` to `ready` at a held client",
                "p50, ms",
                p50,
                1.0,
            ),
            Row::bound(
                "5",
                "detection by signal: `POST /signals` to `ready` at a held client",
                "p99, ms",
                p99,
                1.0,
            ),
        ])
    }

    /// Scenario 6: `/readyz` throughput against a static handler, then
    /// while a check hangs until its timeout.
    fn readyz(&mut self) -> anyhow::Result<Vec<Row>> {
        // Accepts connections and never answers: an HTTP check against it
        // hangs until its timeout.
        let black_hole = TcpListener::bind("127.0.0.1:0").context("cannot open a port")?;
        let hanging = black_hole.local_addr()?;
        let sizes = self.sizes;
        let load = move |server: &Server| -> anyhow::Result<Vec<String>> {
            Ok(vec![
                "http-load".into(),
                "--url".into(),
                format!("http://{}/readyz", server.public),
                "--connections".into(),
                sizes.http_connections.to_string(),
                "--seconds".into(),
                sizes.http_seconds.to_string(),
            ])
        };
        for round in 0..self.sizes.rounds {
            for subject in Self::order(round, &[Subject::Warmgate, Subject::Reference]) {
                let server = self.ready_server(subject, &[])?;
                self.measure::<HttpLoadReport>("readyz", subject, server, load)?;
            }
            let config = format!(
                "{READY}\n[[phase.check]]\nname = \"auth\"\nkind = \"http\"\nurl = \"http://{hanging}/health\"\nrequired = false\ntimeout = \"60s\"\n"
            );
            let server = self.warmgate("readyz-hanging", &config)?;
            self.measure::<HttpLoadReport>("readyz_hanging", Subject::Warmgate, server, load)?;
        }
        drop(black_hole);
        let rps = |report: &HttpLoadReport| Some(report.requests_per_second);
        let warmgate = self.median("readyz", Subject::Warmgate, "rps", rps)?;
        let reference = self.median("readyz", Subject::Reference, "rps", rps)?;
        let hanging = self.median("readyz_hanging", Subject::Warmgate, "rps", rps)?;
        Ok(vec![
            Row::ratio_at_least(
                "6",
                "`/readyz` throughput",
                "requests/s",
                warmgate,
                ("static axum handler", reference),
                0.9,
            ),
            Row::ratio_at_least(
                "6",
                "`/readyz` throughput while a check hangs until its timeout",
                "requests/s",
                hanging,
                ("warmgate, no hanging check", warmgate),
                0.9,
            ),
        ])
    }

    /// Scenario 7: echo round trips on an admitted `/echo` connection,
    /// with each client in turn.
    fn echo(&mut self) -> anyhow::Result<Vec<Row>> {
        let mut measurements = Vec::new();
        for client in Client::BOTH {
            for subject in [Subject::Warmgate, Subject::Reference] {
                measurements.push((subject, client));
            }
        }
        for round in 0..self.sizes.rounds {
            for (subject, client) in Self::order(round, &measurements) {
                let server = self.ready_server(subject, &[])?;
                let count = self.sizes.echo_round_trips.to_string();
                self.measure::<EchoReport>(&client.key("echo"), subject, server, |server| {
                    Ok(echo_args(ws_url(server, "/echo"), count, client))
                })?;
            }
        }
        let mut rows = Vec::new();
        for client in Client::BOTH {
            let key = client.key("echo");
            let number = format!("7 ({})", client.name());
            for (figure, percentile, target) in [("p50", P50, Some(1.10)), ("p99", P99, None)] {
                let round_trip = |report: &EchoReport| report.round_trip.as_ref().map(percentile);
                let warmgate = self.median(&key, Subject::Warmgate, figure, round_trip)?;
                let reference = self.median(&key, Subject::Reference, figure, round_trip)?;
                rows.push(match target {
                    Some(target) => Row::ratio(
                        &number,
                        "echo round trip, 43 B",
                        &format!("{figure}, µs"),
                        warmgate,
                        ("reference", reference),
                        target,
                    ),
                    None => Row::report(
                        &number,
                        "echo round trip, 43 B",
                        &format!("{figure}, µs"),
                        warmgate,
                        ("reference", reference),
                    ),
                });
            }
        }
        Ok(rows)
    }

    /// Scenario 9: the divan micro-benchmark of the snapshot read.
    fn snapshot_read(&mut self, quick: bool) -> anyhow::Result<Vec<Row>> {
        let mut args = vec![
            "bench",
            "-p",
            "warmgate-engine",
            "--bench",
            "snapshot_read",
            "--",
        ];
        if quick {
            args.extend(["--sample-count", "20"]);
        }
        println!("$ cargo {}", args.join(" "));
        let output = crate::command::cargo()
            .args(&args)
            .output()
            .context("cannot run cargo bench")?;
        let text = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!(
                "cargo bench failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let mut rows = Vec::new();
        // "Tens of ns, no lock" is the target for a read; two threads
        // cloning the same `Arc` at once measure cache-line traffic between
        // cores, reported only.
        for (bench, what, has_target) in [
            (
                "current_arc",
                "`current()`: an `Arc` clone out of the `ArcSwap`",
                true,
            ),
            ("with_current_state", "`with_current()`: a borrow", true),
            (
                "current_arc_contended",
                "`current()`, 2 threads at once",
                false,
            ),
        ] {
            let nanos = divan_median_ns(&text, bench)
                .with_context(|| format!("no median for `{bench}` in the divan output:\n{text}"))?;
            self.figures
                .insert(format!("snapshot_read.{bench}.median_ns"), json!(nanos));
            let scenario = format!("snapshot read, {what}");
            rows.push(if has_target {
                Row::bound("9", &scenario, "median, ns", nanos, 100.0)
            } else {
                Row::measured("9", &scenario, "median, ns", nanos)
            });
        }
        Ok(rows)
    }
}

/// TCP listeners that accept and drop connections: the old design's
/// dependencies, which answer at once on loopback.
struct Dependencies {
    addresses: Vec<SocketAddr>,
}

impl Dependencies {
    fn start(count: usize) -> anyhow::Result<Dependencies> {
        let mut addresses = Vec::new();
        for _ in 0..count {
            let listener = TcpListener::bind("127.0.0.1:0").context("cannot open a port")?;
            addresses.push(listener.local_addr()?);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    drop(stream);
                }
            });
        }
        Ok(Dependencies { addresses })
    }
}

// === figures of the load generator's reports ===

/// A figure of a [`Timings`], in microseconds.
type Percentile = fn(&Timings) -> f64;

const P50: Percentile = |timings| timings.p50_us;
const P99: Percentile = |timings| timings.p99_us;
const MAX: Percentile = |timings| timings.max_us;

/// A figure of a hold's release: from the flip to the `ready` of its
/// clients; `None` without a flip or without a release.
fn release_timing(report: &HoldReport, percentile: Percentile) -> Option<f64> {
    let release = report.release.as_ref()?;
    release.flip_to_ready.as_ref().map(percentile)
}

/// How many held clients a hold's flip released; `None` without a flip.
fn released(report: &HoldReport) -> Option<f64> {
    report
        .release
        .as_ref()
        .map(|release| release.released as f64)
}

/// How many of a hold's clients failed.
fn hold_errors(report: &HoldReport) -> Option<f64> {
    Some(report.errors as f64)
}

/// The server's memory per held client; `None` without `--pid`.
fn rss_per_client_kib(report: &HoldReport) -> Option<f64> {
    report.rss_per_client_kib
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

/// The median column of one divan benchmark line, in nanoseconds:
/// `├─ NAME  FASTEST │ SLOWEST │ MEDIAN │ MEAN │ SAMPLES │ ITERS`.
fn divan_median_ns(output: &str, bench: &str) -> Option<f64> {
    let line = output.lines().find(|line| {
        line.split_whitespace()
            .nth(1)
            .is_some_and(|name| name == bench)
    })?;
    let columns: Vec<&str> = line.split('│').collect();
    let median = columns.get(2)?.trim();
    let (number, unit) = median.split_once(' ')?;
    let number: f64 = number.parse().ok()?;
    let scale = match unit.trim() {
        "ps" => 1e-3,
        "ns" => 1.0,
        "µs" | "us" => 1e3,
        "ms" => 1e6,
        _ => return None,
    };
    Some(number * scale)
}

#[cfg(test)]
mod tests;
