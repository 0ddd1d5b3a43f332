//! The benchmark report: rows of figures against their targets, rendered
//! as a terminal table and as `docs/benchmarks.md`.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

/// One figure of one scenario.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    number: String,
    scenario: String,
    figure: String,
    warmgate: f64,
    comparison: Option<(String, f64)>,
    /// `warmgate / comparison`, where the target is a ratio or a ratio is
    /// reported.
    ratio: Option<f64>,
    target: String,
    met: Option<bool>,
    note: String,
}

impl Row {
    fn new(number: &str, scenario: &str, figure: &str, warmgate: f64) -> Row {
        Row {
            number: number.to_owned(),
            scenario: scenario.to_owned(),
            figure: figure.to_owned(),
            warmgate,
            comparison: None,
            ratio: None,
            target: String::new(),
            met: None,
            note: String::new(),
        }
    }

    /// A target on `warmgate / comparison`: at most `max`.
    pub(crate) fn ratio(
        number: &str,
        scenario: &str,
        figure: &str,
        warmgate: f64,
        (name, comparison): (&str, f64),
        max: f64,
    ) -> Row {
        let ratio = warmgate / comparison;
        Row {
            comparison: Some((name.to_owned(), comparison)),
            ratio: Some(ratio),
            target: format!("≤ {max:.2}x {name}"),
            met: Some(ratio <= max),
            ..Row::new(number, scenario, figure, warmgate)
        }
    }

    /// A target on `warmgate / comparison`: at least `min`.
    pub(crate) fn ratio_at_least(
        number: &str,
        scenario: &str,
        figure: &str,
        warmgate: f64,
        (name, comparison): (&str, f64),
        min: f64,
    ) -> Row {
        let ratio = warmgate / comparison;
        Row {
            comparison: Some((name.to_owned(), comparison)),
            ratio: Some(ratio),
            target: format!("≥ {min:.2}x {name}"),
            met: Some(ratio >= min),
            ..Row::new(number, scenario, figure, warmgate)
        }
    }

    /// A ratio reported without a target.
    pub(crate) fn compared(
        number: &str,
        scenario: &str,
        figure: &str,
        warmgate: f64,
        (name, comparison): (&str, f64),
    ) -> Row {
        Row {
            comparison: Some((name.to_owned(), comparison)),
            ratio: Some(warmgate / comparison),
            target: "report".to_owned(),
            ..Row::new(number, scenario, figure, warmgate)
        }
    }

    /// [`Row::compared`], saying how much longer the comparison takes.
    pub(crate) fn report(
        number: &str,
        scenario: &str,
        figure: &str,
        warmgate: f64,
        comparison: (&str, f64),
    ) -> Row {
        let row = Row::compared(number, scenario, figure, warmgate, comparison);
        Row {
            note: format!(
                "{} takes {:.1}x as long",
                comparison.0,
                comparison.1 / warmgate
            ),
            ..row
        }
    }

    /// A figure reported without a target or comparison.
    pub(crate) fn measured(number: &str, scenario: &str, figure: &str, warmgate: f64) -> Row {
        Row {
            target: "report".to_owned(),
            ..Row::new(number, scenario, figure, warmgate)
        }
    }

    /// A target on warmgate's figure: at most `max`.
    pub(crate) fn bound(
        number: &str,
        scenario: &str,
        figure: &str,
        warmgate: f64,
        max: f64,
    ) -> Row {
        Row {
            target: format!("≤ {max}"),
            met: Some(warmgate <= max),
            ..Row::new(number, scenario, figure, warmgate)
        }
    }

    /// [`Row::bound`], with a comparison shown beside it.
    pub(crate) fn bound_against(
        number: &str,
        scenario: &str,
        figure: &str,
        warmgate: f64,
        (name, comparison): (&str, f64),
        max: f64,
    ) -> Row {
        Row {
            comparison: Some((name.to_owned(), comparison)),
            ratio: Some(warmgate / comparison),
            ..Row::bound(number, scenario, figure, warmgate, max)
        }
    }

    /// A target on warmgate's figure: at most the comparison's plus
    /// `margin` (in `unit`).
    pub(crate) fn within(
        number: &str,
        scenario: &str,
        figure: &str,
        warmgate: f64,
        (name, comparison): (&str, f64),
        (margin, unit): (f64, &str),
    ) -> Row {
        Row {
            comparison: Some((name.to_owned(), comparison)),
            ratio: Some(warmgate / comparison),
            target: format!("≤ {name} + {margin} {unit}"),
            met: Some(warmgate <= comparison + margin),
            ..Row::new(number, scenario, figure, warmgate)
        }
    }

    pub(crate) fn with_note(mut self, note: &str) -> Row {
        self.note = note.to_owned();
        self
    }

    /// The target is met only if `condition` holds as well.
    pub(crate) fn met_only_if(mut self, condition: bool) -> Row {
        self.met = self.met.map(|met| met && condition);
        self
    }

    fn cells(&self) -> [String; 8] {
        let comparison = match &self.comparison {
            Some((name, value)) => format!("{} ({name})", number(*value)),
            None => "–".to_owned(),
        };
        let ratio = self
            .ratio
            .map_or_else(|| "–".to_owned(), |ratio| format!("{ratio:.2}x"));
        let met = match self.met {
            Some(true) => "met",
            Some(false) => "**unmet**",
            None => "–",
        };
        let figure = if self.note.is_empty() {
            self.figure.clone()
        } else {
            format!("{} ({})", self.figure, self.note)
        };
        [
            self.number.clone(),
            self.scenario.clone(),
            figure,
            number(self.warmgate),
            comparison,
            ratio,
            self.target.clone(),
            met.to_owned(),
        ]
    }
}

/// A figure with as many decimals as its size deserves.
fn number(value: f64) -> String {
    if !value.is_finite() {
        "n/a".to_owned()
    } else if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

const HEADER: [&str; 8] = [
    "#",
    "scenario",
    "figure",
    "warmgate",
    "comparison",
    "ratio",
    "target",
    "met",
];

/// The rows as a Markdown table.
pub(crate) fn table(rows: &[Row]) -> String {
    let mut text = format!("| {} |\n", HEADER.join(" | "));
    let _ = writeln!(text, "|{}", "---|".repeat(HEADER.len()));
    for row in rows {
        let _ = writeln!(text, "| {} |", row.cells().join(" | "));
    }
    text
}

const FINDINGS_START: &str = "<!-- findings: kept when the file is regenerated -->";
const FINDINGS_END: &str = "<!-- end of findings -->";

/// The hand-written findings of the current `docs/benchmarks.md`, kept
/// across regenerations.
pub(crate) fn findings(path: &Path) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| {
            let start = text.find(FINDINGS_START)? + FINDINGS_START.len();
            let end = text[start..].find(FINDINGS_END)? + start;
            Some(text[start..end].trim().to_owned())
        })
        .unwrap_or_else(|| "No findings written yet.".to_owned())
}

/// The whole report.
pub(crate) fn markdown(
    rows: &[Row],
    machine: &Value,
    date: &str,
    sizes: &str,
    (nginx, nginx_workers): (&str, usize),
    findings: &str,
) -> String {
    let unmet: Vec<String> = rows
        .iter()
        .filter(|row| row.met == Some(false))
        .map(|row| format!("scenario {} ({}, {})", row.number, row.scenario, row.figure))
        .collect();
    let summary = if unmet.is_empty() {
        "Every target is met.".to_owned()
    } else {
        format!("Targets not met: {}. See the findings.", unmet.join(", "))
    };
    format!(
        "# Benchmarks

Generated by `cargo xtask bench` on {date}; regenerate it with the same
command. Only the findings section is written by hand. Every figure is also
in `target/bench/results.json`, with each round's raw output.

## Machine

{cores} cores, {cpu}, {memory}, {kernel}.

## Results

{summary}

{table}
Times are client-side, per client, from a monotonic clock; p50 and p99 are
nearest-rank percentiles, and each figure is the median over rounds. Ratios
are warmgate divided by the comparison.

## Method

Run: {sizes}.

- Everything is a release build. warmgate, the comparison servers and the
  load generator (`warmgate-loadgen`, tungstenite and hyper clients) run as
  separate processes on loopback, on the same {cores} cores, each server
  fresh for each measurement.
- **Two WebSocket clients.** A figure can depend on the client that takes
  it, so every timed WebSocket scenario (1, 2, 7, 8, 10, P1, P2 and P3)
  runs twice in the same rounds, alternating with the rest: with
  tungstenite, and with fastwebsockets' client handshake over hyper's
  HTTP/1.1 client (rows `1 (tungstenite)` and `1 (fastwebsockets)`, and so
  for the others). Both take the same protocol steps: TCP connect
  (`TCP_NODELAY`), the opening handshake, reading up to the timed frame
  (in 1, timed from the start of the TCP connect to the first frame), then
  a client-initiated close that does not wait for the answer.
  fastwebsockets' handshake also runs hyper's client connection on a task
  of its own for every connect, which is why its absolute figures are
  higher by the same servers. Each ratio divides figures taken by the same
  client, and both are held to the same target. Scenario 2 has no
  comparison, so only warmgate runs it twice, and scenario 3's memory (the
  server's) is taken from tungstenite's runs; scenarios 4 and 5 and the
  instruction counts use tungstenite.
- Each round runs warmgate and its comparison one after the other, and the
  order flips every round (A B, then B A), so drift on a shared machine
  falls on both.
- The **reference** (`warmgate-reference`) is bare fastwebsockets 0.10 on
  axum 0.8 with `TCP_NODELAY` and a backlog of 4096: on connect it sends
  `{{\"type\":\"ready\"}}`, then echoes; its `/readyz` is a static handler.
  It is the floor of most comparisons. Its accept loop runs on a spawned
  task, on a runtime worker, as warmgate's does. warmgate's `/ws`, in the
  plans without `[[route]]` that scenarios 1 to 10 use, is the demo chat:
  it sends `ready`, then runs a chat session (the lobby joined), where the
  reference sends `ready` and echoes.
- The **floor** (`warmgate-floor`) is the same server on hyper 1 alone
  (`http1` connections with upgrades, fastwebsockets' `upgrade`), without
  axum, with the same backlog, `TCP_NODELAY` and spawned accept loop. The
  rows `1 (floor check, …)`, `I1 (floor check)` and `I2 (floor check)`
  compare the reference with it (the reference's figure in the warmgate
  column), to show what axum costs the reference.
- The **proxy scenarios** (P1 to P4) put warmgate in proxy mode
  (`[upstream]`, with `/ws` and `/echo` routed to it and the default
  `max_concurrent_dials`, 256) or nginx in front of the same upstream, a
  fresh `warmgate-reference` for every measurement: its `/ws` sends
  `{{\"type\":\"ready\"}}` on connect (the first upstream frame), then
  echoes, and its `/echo` only echoes. The clients do not offer
  `warmgate.v1`, so warmgate holds them transparently and shows them only
  the upstream's frames. The upstream alone, without a proxy, is the floor.
- **nginx** ({nginx}, Debian's package) runs as a foreground process
  (`daemon off`) with a generated config, as the usual WebSocket reverse
  proxy: `proxy_http_version 1.1`, `Upgrade` passed on and `Connection
  \"upgrade\"`, `Host`, `X-Forwarded-For` and `X-Forwarded-Proto` set (as
  warmgate sets them), `proxy_read_timeout` and `proxy_send_timeout` 3600 s,
  `tcp_nodelay on`, `access_log off`, `worker_connections 20000`, a listen
  backlog of 4096 (warmgate's) and its error log to a file. It has
  `worker_processes {nginx_workers}`, one per core, because warmgate's
  runtime has one worker thread per core: both can use the whole machine
  and no more. Its memory is the sum over the master and its workers.
- The **old design's replica** (`warmgate-old-design`) validates readiness
  inside each handshake: it polls the startup phase every 100 ms, then
  checks the dependency groups in sequence (three TCP dependencies on
  loopback, then two services, then the integration), each with up to 3
  tries, and uses no published snapshot. It is kind to the old design: its
  phase is ready from the start and it leaves out the old Redis check's
  0.5 s sleep, so its figures are a lower bound.
- Scenarios:
  1. gate ready: sequential connects (after 50 not counted), each at
     least 1 ms (tokio's timer: 1 to 2 ms) after the client sent its close
     and dropped the socket, so that none overlaps the server's teardown
     of the one before (tens of microseconds), time from the start of the
     TCP connect to the `ready` frame;
  2. a signal check holds clients; once every one has received `warming`,
     the load generator `POST`s the signal and times each client's `ready`
     from just before the request (the admin round trip is inside the
     figure); the
     figure is the last one, with every client released and no errors;
  3. RSS of the server process (from `/proc`) with the held clients, minus
     its RSS before they connected, per client; the reference holds the
     same number of admitted clients;
  4. a `tcp` check's port is closed while clients are held; a second after
     the last one is held (so the check's backoff has reached its cap), the
     load generator starts listening on it; time to each held client's
     `ready`, with the default `retry_cap` (100 ms);
  5. a held client, then `POST /signals/NAME` (ready), timed to its
     `ready` frame; the signal is set back to not ready between rounds;
  6. keep-alive `GET /readyz` from many connections for a fixed time,
     against the reference's static handler; then again while an optional
     `http` check hangs on a port that never answers (timeout 60 s);
  7. echo round trips of a 43-byte text message on one admitted `/echo`
     connection (after a tenth not counted);
  8. scenario 1 against the old design's replica;
  9. the divan micro-benchmark `cargo bench -p warmgate-engine --bench
     snapshot_read` (median);
  10. scenario 1 with `[auth]` on, in the same rounds: every connect sends
     `Authorization: Bearer` with an ES256 token (one token, signed before
     the first connect), verified against a JWKS from
     `warmgate-jwks-server`, issuer and audience checked.

- Proxy scenarios:
  - P1: scenario 1 through each proxy, and direct: sequential connects to
    `/ws` (after 50 not counted, 1 ms apart as in scenario 1), time from
    the start of the TCP connect to the upstream's `ready` frame;
  - P2: scenario 7 through each proxy, and direct, on `/echo`;
  - P3: a signal check holds the clients (transparent: they get no frame);
    once every handshake has completed and 100 ms more have passed with no
    frame at any client, the load generator `POST`s the signal and times
    each client's first upstream frame from just before the request; the figure is the last one, with every
    client's frame there and no errors. Each client is a socket to
    warmgate and one from warmgate to the upstream, so the count is capped
    by the descriptor limit (less a margin of 100, halved), which the row
    then says. nginx has no gate, so there is no comparison;
  - P4: the gate ready, the given number of proxied connections opened
    (each has had its first upstream frame), the server's RSS minus its
    RSS before, per connection: warmgate's process, and nginx's processes
    summed.

- **Instruction counts** (I1 to I3) are taken under valgrind's callgrind
  (`valgrind --tool=callgrind`), one run each, with the tungstenite
  client: the count is of instructions, not time, so it is deterministic
  to a few percent and does not depend on the machine's load. Each server
  (a fresh process per count, release build) runs under callgrind; the
  load generator makes warm-up traffic (I1: 20 connects; I2: a tenth more
  round trips; I3: connecting every client until it is held), then says
  so and waits; the harness zeroes the counters (`callgrind_control -z`),
  lets the measured traffic run, and once the load generator has exited
  (and half a second more) dumps them (`callgrind_control -d`). The
  figure is the dump's total divided by the units measured. Counts are of
  the whole server process, all its threads, including whatever it does
  on its own meanwhile (timers, the engine, logging at the default level).
  Every server runs with one runtime worker (`TOKIO_WORKER_THREADS=1`,
  which tokio's runtime builder reads): with two, how the workers happen
  to share the work (parking, waking, stealing) moved the same binary's
  count by 3 to 5 % from run to run; with one, by under 1 %.
  - I1: instructions per admitted connection: sequential connects to
    `/ws`, back to back (a count does not depend on timing the way a
    latency does), each covering the server's side of the TCP accept, the
    upgrade, the `ready` frame and the client's close; warmgate (gate
    ready) against the reference, and the reference against the floor;
  - I2: instructions per echoed message: round trips of 43 B on one
    `/echo` connection; warmgate against the reference, and the reference
    against the floor;
  - I3: instructions per released held client (warmgate only): clients
    held on `/ws` by a signal check, counted from just before the signal's
    `POST` to the load generator's exit, so each client's release (the
    `ready` frame) and its close.

## Findings

{FINDINGS_START}
{findings}
{FINDINGS_END}
",
        cores = machine["cores"],
        cpu = machine["cpu"].as_str().unwrap_or("unknown CPU"),
        memory = machine["memory"].as_str().unwrap_or("unknown memory"),
        kernel = machine["kernel"].as_str().unwrap_or("unknown kernel"),
        table = table(rows),
    )
}
