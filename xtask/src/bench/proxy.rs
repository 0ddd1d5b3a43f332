//! The proxy scenarios (P1 to P4): warmgate in proxy mode and nginx, each
//! in front of the same upstream (a fresh `warmgate-reference` for every
//! measurement, which sends `{"type":"ready"}` on connect and then echoes),
//! and that upstream alone as the floor.
//!
//! The processes are started here; the nginx process and its config are
//! `nginx`'s, the load generator and the medians are the parent module's.

use std::net::SocketAddr;
use std::process::Command;

use serde::Serialize;
use serde::de::DeserializeOwned;
use warmgate_loadgen::report::{ConnectReport, EchoReport, HoldReport, Timings};

use super::nginx::Nginx;
use super::report::Row;
use super::{
    Bench, Client, MAX, P50, P99, Subject, hold_errors, release_timing, released,
    rss_per_client_kib,
};
use crate::plans::{HELD, HOLDING_GATE, READY};
use crate::server::{Server, release_program, wait_until_ready};

/// Descriptors warmgate keeps besides its clients' (listeners, the
/// runtime's, the log), with room to spare: it has about 15.
const DESCRIPTOR_MARGIN: usize = 100;

/// warmgate's config in proxy mode: `/ws` and `/echo` both go to
/// `upstream`, whose `/ws` greets and whose `/echo` only echoes.
fn proxy_config(upstream: SocketAddr, gate: &str, plan: &str) -> String {
    format!(
        r#"{gate}
[upstream]
url = "ws://{upstream}"

[[route]]
path = "/ws"
app = "upstream"

[[route]]
path = "/echo"
app = "upstream"

{plan}"#
    )
}

/// What clients connect to: the upstream, and in front of it warmgate,
/// nginx or nothing.
struct Stack {
    upstream: Server,
    front: Front,
}

enum Front {
    Warmgate(Server),
    Nginx(Nginx),
    /// The clients connect to the upstream itself.
    Direct,
}

impl Stack {
    /// The address clients connect to.
    fn public(&self) -> SocketAddr {
        match &self.front {
            Front::Warmgate(server) => server.public,
            Front::Nginx(nginx) => nginx.public,
            Front::Direct => self.upstream.public,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.public())
    }

    /// The processes of what clients connect to, for their memory.
    fn front_pids(&self) -> Vec<u32> {
        match &self.front {
            Front::Warmgate(server) => vec![server.pid()],
            Front::Nginx(nginx) => nginx.pids(),
            Front::Direct => vec![self.upstream.pid()],
        }
    }

    fn signal_url(&self) -> anyhow::Result<String> {
        match &self.front {
            Front::Warmgate(server) => super::signal_url(server),
            _ => anyhow::bail!("only warmgate has a signal to set"),
        }
    }

    /// Stops the front, then the upstream.
    fn stop(mut self) {
        match &mut self.front {
            Front::Warmgate(server) => {
                let _ = server.stop();
            }
            Front::Nginx(nginx) => {
                let _ = nginx.stop();
            }
            Front::Direct => {}
        }
        let _ = self.upstream.stop();
    }
}

/// Whether the gate admits at once or holds every client until its signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    Ready,
    Held,
}

impl Bench {
    // === processes ===

    /// A fresh upstream, and `subject` in front of it.
    fn stack(&self, subject: Subject, gate: Gate) -> anyhow::Result<Stack> {
        let mut command = Command::new(release_program("warmgate-reference"));
        command.arg("127.0.0.1:0");
        let upstream = Server::spawn(command, "reference", &self.dir.join("upstream.log"))?;
        wait_until_ready(upstream.public)?;
        let front = match subject {
            Subject::WarmgateProxy => {
                let config = match gate {
                    Gate::Ready => proxy_config(upstream.public, "", READY),
                    Gate::Held => proxy_config(upstream.public, HOLDING_GATE, HELD),
                };
                let name = match gate {
                    Gate::Ready => "proxy",
                    Gate::Held => "proxy-held",
                };
                let server = self.warmgate(name, &config)?;
                if gate == Gate::Ready {
                    wait_until_ready(server.public)?;
                }
                Front::Warmgate(server)
            }
            Subject::Nginx => Front::Nginx(Nginx::start(
                &self.nginx.path,
                &self.dir.join("nginx"),
                upstream.public,
                self.nginx.workers,
            )?),
            Subject::UpstreamDirect => Front::Direct,
            other => anyhow::bail!("{} is not a proxy scenario's subject", other.name()),
        };
        Ok(Stack { upstream, front })
    }

    /// Runs the load generator against `stack` with the arguments `args`
    /// makes from it, stops the stack (whatever the outcome), and keeps its
    /// report, an `R`, under `key`.
    fn measure_stack<R: DeserializeOwned + Serialize>(
        &mut self,
        key: &str,
        subject: Subject,
        stack: Stack,
        args: impl FnOnce(&Stack) -> anyhow::Result<Vec<String>>,
    ) -> anyhow::Result<()> {
        let figures = args(&stack).and_then(|args| self.loadgen::<R>(&args));
        stack.stop();
        self.keep(key, subject, &serde_json::to_value(figures?)?);
        Ok(())
    }

    // === scenarios ===

    /// P1: gate ready, sequential connects to the first upstream frame,
    /// through warmgate, through nginx, and direct, with each client.
    pub(super) fn proxy_connect(&mut self) -> anyhow::Result<Vec<Row>> {
        let count = self.sizes.sequential_connects.to_string();
        for round in 0..self.sizes.rounds {
            for (subject, client) in Self::order(round, &proxied_measurements()) {
                let stack = self.stack(subject, Gate::Ready)?;
                let count = count.clone();
                let key = client.key("proxy_connect");
                self.measure_stack::<ConnectReport>(&key, subject, stack, |stack| {
                    Ok(vec![
                        "connect-sequential".into(),
                        "--url".into(),
                        stack.url("/ws"),
                        "--count".into(),
                        count,
                        "--client".into(),
                        client.name().into(),
                        "--pause-ms".into(),
                        super::CONNECT_PAUSE_MS.into(),
                    ])
                })?;
            }
        }
        let mut rows = Vec::new();
        for client in Client::BOTH {
            rows.extend(self.against_nginx_and_floor(
                &format!("P1 ({})", client.name()),
                "gate ready, proxied: TCP connect to the first upstream frame",
                &client.key("proxy_connect"),
                |report: &ConnectReport| report.connect_to_ready.as_ref(),
                (1.0, 1.2),
            )?);
        }
        Ok(rows)
    }

    /// P2: echo round trips of 43 B on one proxied connection, with each
    /// client.
    pub(super) fn proxy_echo(&mut self) -> anyhow::Result<Vec<Row>> {
        let count = self.sizes.echo_round_trips.to_string();
        for round in 0..self.sizes.rounds {
            for (subject, client) in Self::order(round, &proxied_measurements()) {
                let stack = self.stack(subject, Gate::Ready)?;
                let count = count.clone();
                let key = client.key("proxy_echo");
                self.measure_stack::<EchoReport>(&key, subject, stack, |stack| {
                    Ok(super::echo_args(stack.url("/echo"), count, client))
                })?;
            }
        }
        let mut rows = Vec::new();
        for client in Client::BOTH {
            rows.extend(self.against_nginx_and_floor(
                &format!("P2 ({})", client.name()),
                "echo round trip through the proxy, 43 B",
                &client.key("proxy_echo"),
                |report: &EchoReport| report.round_trip.as_ref(),
                (1.05, 1.2),
            )?);
        }
        Ok(rows)
    }

    /// The p50 and p99 rows of a scenario measured through warmgate,
    /// through nginx (with `targets` on the ratios) and direct (reported),
    /// of the `timings` in each round's report (an `R`).
    fn against_nginx_and_floor<R: DeserializeOwned>(
        &mut self,
        number: &str,
        scenario: &str,
        key: &str,
        timings: fn(&R) -> Option<&Timings>,
        (p50_target, p99_target): (f64, f64),
    ) -> anyhow::Result<Vec<Row>> {
        let mut rows = Vec::new();
        let mut floor_rows = Vec::new();
        for (figure, percentile, target) in [("p50", P50, p50_target), ("p99", P99, p99_target)] {
            let unit = format!("{figure}, µs");
            let pick = |report: &R| timings(report).map(percentile);
            let warmgate = self.median(key, Subject::WarmgateProxy, figure, pick)?;
            let nginx = self.median(key, Subject::Nginx, figure, pick)?;
            let direct = self.median(key, Subject::UpstreamDirect, figure, pick)?;
            rows.push(Row::ratio(
                number,
                scenario,
                &unit,
                warmgate,
                ("nginx", nginx),
                target,
            ));
            floor_rows.push(
                Row::compared(
                    number,
                    &format!("{scenario}: against the upstream direct, no proxy"),
                    &unit,
                    warmgate,
                    ("upstream direct", direct),
                )
                .with_note(&format!(
                    "nginx adds {}, warmgate {}",
                    micros(nginx - direct),
                    micros(warmgate - direct)
                )),
            );
        }
        rows.extend(floor_rows);
        Ok(rows)
    }

    /// P3: held clients (transparent) released into the upstream by a
    /// signal; the flip to the last client's first upstream frame, timed
    /// by each client in the same rounds.
    pub(super) fn proxy_release(&mut self) -> anyhow::Result<Vec<Row>> {
        let clients = proxy_held_clients(self.sizes.proxy_held_clients);
        for round in 0..self.sizes.rounds {
            for client in Self::order(round, &Client::BOTH) {
                let stack = self.stack(Subject::WarmgateProxy, Gate::Held)?;
                let key = client.key("proxy_release");
                self.measure_stack::<HoldReport>(&key, Subject::WarmgateProxy, stack, |stack| {
                    let mut args = vec![
                        "hold".into(),
                        "--url".into(),
                        stack.url("/ws"),
                        "--clients".into(),
                        clients.to_string(),
                        "--transparent".into(),
                        "--flip-post".into(),
                        stack.signal_url()?,
                        // A client admitted by mistake gets its frame within
                        // a millisecond; this lets it show before the flip.
                        "--settle-ms".into(),
                        "100".into(),
                        "--client".into(),
                        client.name().into(),
                    ];
                    for pid in stack.front_pids() {
                        args.extend(["--pid".into(), pid.to_string()]);
                    }
                    Ok(args)
                })?;
            }
        }
        let mut rows = Vec::new();
        for client in Client::BOTH {
            let key = client.key("proxy_release");
            let subject = Subject::WarmgateProxy;
            let last_ms = self.median(&key, subject, "last_frame_us", |report| {
                release_timing(report, MAX)
            })? / 1e3;
            let p50_ms = self.median(&key, subject, "p50_frame_us", |report| {
                release_timing(report, P50)
            })? / 1e3;
            let released = self.median(&key, subject, "released", released)?;
            let errors = self.median(&key, subject, "errors", hold_errors)?;
            let all = clients as f64;
            let mut note = format!(
                "{released:.0} of {all:.0} got it, {errors:.0} errors; p50 {}",
                number_ms(p50_ms)
            );
            if clients < self.sizes.proxy_held_clients {
                note.push_str(&format!(
                    "; {} asked, capped by the descriptor limit at two sockets a client",
                    self.sizes.proxy_held_clients
                ));
            }
            rows.push(
                Row::bound(
                    &format!("P3 ({})", client.name()),
                    &format!(
                        "proxy release: {clients} held clients (transparent), signal flip to the last first upstream frame"
                    ),
                    "ms",
                    last_ms,
                    2000.0,
                )
                .with_note(&note)
                .met_only_if(released == all && errors == 0.0),
            );
        }
        Ok(rows)
    }

    /// P4: memory per open proxied connection, warmgate's process against
    /// nginx's master and workers summed.
    pub(super) fn proxy_memory(&mut self) -> anyhow::Result<Vec<Row>> {
        let connections = self.sizes.proxy_connections.to_string();
        for round in 0..self.sizes.rounds {
            for subject in Self::order(round, &[Subject::WarmgateProxy, Subject::Nginx]) {
                let stack = self.stack(subject, Gate::Ready)?;
                let connections = connections.clone();
                self.measure_stack::<HoldReport>("proxy_memory", subject, stack, |stack| {
                    let mut args = vec![
                        "hold".into(),
                        "--url".into(),
                        stack.url("/ws"),
                        "--clients".into(),
                        connections,
                    ];
                    for pid in stack.front_pids() {
                        args.extend(["--pid".into(), pid.to_string()]);
                    }
                    Ok(args)
                })?;
            }
        }
        let warmgate = self.median(
            "proxy_memory",
            Subject::WarmgateProxy,
            "rss_per_connection_kib",
            rss_per_client_kib,
        )?;
        let nginx = self.median(
            "proxy_memory",
            Subject::Nginx,
            "rss_per_connection_kib",
            rss_per_client_kib,
        )?;
        let errors = self.median(
            "proxy_memory",
            Subject::WarmgateProxy,
            "errors",
            hold_errors,
        )? + self.median("proxy_memory", Subject::Nginx, "errors", hold_errors)?;
        Ok(vec![
            Row::within(
                "P4",
                &format!(
                    "memory with {} open proxied connections, per connection",
                    self.sizes.proxy_connections
                ),
                "KiB",
                warmgate,
                ("nginx", nginx),
                (8.0, "KiB"),
            )
            .met_only_if(errors == 0.0),
        ])
    }
}

/// P1's and P2's measurements in a round: warmgate, nginx and the
/// upstream direct, with each client.
fn proxied_measurements() -> Vec<(Subject, Client)> {
    let mut measurements = Vec::new();
    for client in Client::BOTH {
        for subject in [
            Subject::WarmgateProxy,
            Subject::Nginx,
            Subject::UpstreamDirect,
        ] {
            measurements.push((subject, client));
        }
    }
    measurements
}

/// `wanted`, or fewer when this process's descriptor limit (which the
/// servers it starts inherit) cannot hold two sockets per client in
/// warmgate: the client's and the upstream's.
fn proxy_held_clients(wanted: usize) -> usize {
    match descriptor_limit() {
        Some(limit) => wanted.min(limit.saturating_sub(DESCRIPTOR_MARGIN) / 2),
        None => wanted,
    }
}

/// The soft limit on open files, from `/proc/self/limits`.
fn descriptor_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A difference in microseconds, signed.
fn micros(value: f64) -> String {
    format!("{value:+.0} µs")
}

fn number_ms(value: f64) -> String {
    format!("{value:.0} ms")
}

#[cfg(test)]
mod tests;
