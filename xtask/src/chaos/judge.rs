//! Judging a chaos run: the checks, with their figures, and the Markdown
//! section of `docs/reliability.md`. Everything here is a pure function of
//! the load generator's JSON and the fault marks, so it can be tested on
//! made-up runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::report::{self, Check};
use super::stack::{Auth, HOLD_SIGNAL};
use super::{CHAT_CLIENTS, CHURN_WORKERS, ROOMS, Run, UNAUTHORISED_EVERY};
use crate::machine::{self, Machine};

/// The probe limit: `/livez` and `/readyz` must answer within this.
const PROBE_LIMIT_MS: f64 = 50.0;

/// How late after warmgate's exit was noticed (it is polled every 50 ms)
/// a `draining` event may still count as before the exit.
const EXIT_SLACK_MS: f64 = 100.0;

/// The checks and the report section.
#[derive(Debug)]
pub(crate) struct Judged {
    pub(crate) checks: Vec<Check>,
    pub(crate) markdown: String,
}

/// One expected state change: what the gate turns to, inside which fault
/// marks, naming which check.
struct Expected {
    fault: &'static str,
    state: &'static str,
    after: &'static str,
    before: &'static str,
    names: Option<(&'static str, &'static str)>,
}

const EXPECTED: [Expected; 8] = [
    Expected {
        fault: "kill -9 Redis (optional)",
        state: "degraded",
        after: "redis_killed",
        before: "redis_restarting",
        names: Some(("degraded", "redis")),
    },
    Expected {
        fault: "Redis restarted",
        state: "ready",
        after: "redis_restarting",
        before: "postgres_stopping",
        names: None,
    },
    Expected {
        fault: "PostgreSQL stopped (required)",
        state: "not_ready",
        after: "postgres_stopping",
        before: "postgres_starting",
        names: Some(("pending", "database")),
    },
    Expected {
        fault: "PostgreSQL started",
        state: "ready",
        after: "postgres_starting",
        before: "auth_hung",
        names: None,
    },
    Expected {
        fault: "auth service hung (SIGSTOP)",
        state: "not_ready",
        after: "auth_hung",
        before: "auth_resumed",
        names: Some(("pending", "auth")),
    },
    Expected {
        fault: "auth service resumed (SIGCONT)",
        state: "ready",
        after: "auth_resumed",
        before: "signal_off",
        names: None,
    },
    Expected {
        fault: "signal `agent_supervisor` off (clients held)",
        state: "not_ready",
        after: "signal_off",
        before: "sigterm",
        names: Some(("pending", HOLD_SIGNAL)),
    },
    Expected {
        fault: "SIGTERM to warmgate",
        state: "draining",
        after: "sigterm",
        before: "exited",
        names: None,
    },
];

/// One state change seen on the event stream.
#[derive(Debug, Clone)]
struct Change {
    at_ms: f64,
    state: String,
    pending: Vec<String>,
    degraded: Vec<String>,
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn number(value: &Value, pointer: &str) -> f64 {
    value
        .pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
}

/// The snapshots in `seq` order (a reconnect repeats one), reduced to the
/// changes of state; the first is the state at the start.
fn state_changes(events: &[Value]) -> Vec<Change> {
    let mut by_seq: BTreeMap<u64, &Value> = BTreeMap::new();
    for event in events {
        if let Some(seq) = event["seq"].as_u64() {
            by_seq.entry(seq).or_insert(event);
        }
    }
    let mut changes: Vec<Change> = Vec::new();
    for event in by_seq.values() {
        let state = event["state"].as_str().unwrap_or_default();
        if changes.last().is_some_and(|last| last.state == state) {
            continue;
        }
        changes.push(Change {
            at_ms: event["at_ms"].as_f64().unwrap_or(0.0),
            state: state.to_owned(),
            pending: strings(&event["pending"]),
            degraded: strings(&event["degraded"]),
        });
    }
    changes
}

/// When warmgate's first listener closed: the smallest `unix_ms` of the
/// `stopped listening` lines in its log (text or JSON), if there is one.
pub(crate) fn stopped_listening_ms(log: &str) -> Option<f64> {
    log.lines()
        .filter(|line| line.contains("stopped listening"))
        .filter_map(|line| {
            let (_, rest) = line.split_once("unix_ms")?;
            let digits: String = rest
                .trim_start_matches(['=', '"', ':', ' '])
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse::<f64>().ok()
        })
        .reduce(f64::min)
}

/// One path's probes, judged against the moment warmgate stopped
/// listening (`cutoff`): before it every probe must be answered within
/// [`PROBE_LIMIT_MS`]; from SIGTERM until it, `wanted` is the only status
/// (once `draining` has been published, for `/readyz`: `wanted_from`).
#[derive(Debug, Default, PartialEq)]
struct ProbeWindow {
    /// Probes started before the cutoff.
    judged: u64,
    /// Of those, answered over the limit: `(at_ms, latency_ms)`.
    slow: Vec<(f64, f64)>,
    /// Of those, not answered: `(at_ms, error)`.
    unanswered: Vec<(f64, String)>,
    /// Probes started at or after the cutoff (a closed port is expected).
    after_cutoff: u64,
    /// Probes started between SIGTERM and the cutoff.
    draining: u64,
    /// Of those, any other answer than the wanted status, or none:
    /// `(at_ms, what)`.
    draining_wrong: Vec<(f64, String)>,
}

impl ProbeWindow {
    /// `all` is the load generator's list of `[at_ms, latency_ms, status or
    /// error]`.
    fn judge(
        all: &[Value],
        cutoff: f64,
        sigterm: Option<f64>,
        wanted: u64,
        wanted_from: f64,
    ) -> ProbeWindow {
        let mut window = ProbeWindow::default();
        for probe in all {
            let at = probe[0].as_f64().unwrap_or(0.0);
            let latency = probe[1].as_f64().unwrap_or(0.0);
            let status = probe[2].as_u64();
            if at >= cutoff {
                window.after_cutoff += 1;
                continue;
            }
            window.judged += 1;
            match status {
                Some(_) if latency > PROBE_LIMIT_MS => window.slow.push((at, latency)),
                Some(_) => {}
                None => window
                    .unanswered
                    .push((at, probe[2].as_str().unwrap_or_default().to_owned())),
            }
            if sigterm.is_some_and(|sigterm| at >= sigterm) {
                window.draining += 1;
                let wrong = match status {
                    None => Some(probe[2].as_str().unwrap_or_default().to_owned()),
                    Some(status) if status != wanted && at >= wanted_from => {
                        Some(format!("status {status}"))
                    }
                    Some(_) => None,
                };
                if let Some(what) = wrong {
                    window.draining_wrong.push((at, what));
                }
            }
        }
        window
    }
}

/// Seconds from the load's start, for the report.
fn since(start: f64, at_ms: f64) -> String {
    format!("{:.1} s", (at_ms - start) / 1e3)
}

pub(crate) fn judge(run: &Run) -> Judged {
    let load = &run.load;
    let marks = &run.marks;
    let start = marks
        .at("load_joined")
        .unwrap_or(number(load, "/started_unix_ms"));
    let exit_ms = marks.at("exited").unwrap_or(f64::INFINITY);
    let authenticating = run.auth == Auth::Jwt;
    let mut checks = Vec::new();
    let mut body = String::new();

    // --- no panic, no crash ---
    let crash_ok =
        run.aborted.is_none() && run.exit_success && !run.died_early && run.panics.is_empty();
    checks.push(Check::required(
        "no panic and no crash",
        crash_ok,
        format!(
            "warmgate {}; exit after SIGTERM: {}; panics in its log: {}{}",
            if run.died_early {
                "died before SIGTERM"
            } else {
                "ran until SIGTERM"
            },
            run.exit.as_deref().unwrap_or("none seen"),
            run.panics.len(),
            run.aborted
                .as_ref()
                .map(|why| format!("; the fault timeline stopped early: {why}"))
                .unwrap_or_default()
        ),
    ));

    // --- the state timeline ---
    let events = load
        .pointer("/timeline/events")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let breaks = load
        .pointer("/timeline/breaks")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let changes = state_changes(&events);
    let mut timeline_rows = String::new();
    let mut timeline_ok = changes.first().is_some_and(|first| first.state == "ready")
        && breaks == 0
        && changes.len() == EXPECTED.len() + 1;
    for (index, expected) in EXPECTED.iter().enumerate() {
        let observed = changes.get(index + 1);
        let after = marks.at(expected.after);
        let before = marks.at(expected.before).map(|before| {
            if expected.before == "exited" {
                before + EXIT_SLACK_MS
            } else {
                before
            }
        });
        let matched = match (observed, after, before) {
            (Some(change), Some(after), Some(before)) => {
                change.state == expected.state
                    && change.at_ms >= after
                    && change.at_ms <= before
                    && expected.names.is_none_or(|(list, name)| {
                        let names = if list == "pending" {
                            &change.pending
                        } else {
                            &change.degraded
                        };
                        names.iter().any(|item| item == name)
                    })
            }
            _ => false,
        };
        timeline_ok &= matched;
        let observed_text = observed.map_or_else(
            || "nothing".to_owned(),
            |change| {
                let named = match expected.names {
                    Some(("pending", _)) => format!(", pending {:?}", change.pending),
                    Some(_) => format!(", degraded {:?}", change.degraded),
                    None => String::new(),
                };
                format!(
                    "`{}`{named} at {}",
                    change.state,
                    since(start, change.at_ms)
                )
            },
        );
        let delay = match (observed, after) {
            (Some(change), Some(after)) => format!("{:.0} ms", change.at_ms - after),
            _ => "–".to_owned(),
        };
        let _ = writeln!(
            timeline_rows,
            "| {} | {} | {} | `{}` | {observed_text} | {delay} | {} |",
            index + 1,
            expected.fault,
            after.map_or_else(|| "not reached".to_owned(), |after| since(start, after)),
            expected.state,
            if matched { "pass" } else { "**FAIL**" }
        );
    }
    let sequence: Vec<&str> = changes.iter().map(|change| change.state.as_str()).collect();
    checks.push(Check::required(
        "state transitions match the fault timeline",
        timeline_ok,
        format!(
            "{} of {} expected changes, each inside its fault's window and naming the failing check; seen: {}; event stream breaks: {breaks}",
            EXPECTED.len().min(changes.len().saturating_sub(1)),
            EXPECTED.len(),
            sequence.join(" → ")
        ),
    ));

    // --- connection attempts ---
    let attempts = load
        .pointer("/attempts/list")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let windows = [
        ("before the faults", "load_joined", "redis_killed"),
        ("Redis down and back", "redis_killed", "postgres_stopping"),
        ("PostgreSQL down and back", "postgres_stopping", "auth_hung"),
        ("auth service hung and back", "auth_hung", "signal_off"),
        ("signal off (held)", "signal_off", "sigterm"),
        ("draining, until exit", "sigterm", "exited"),
    ];
    let mut by_window: BTreeMap<usize, BTreeMap<String, u64>> = BTreeMap::new();
    let mut problems: BTreeMap<String, u64> = BTreeMap::new();
    let mut problem_samples: Vec<String> = Vec::new();
    let mut judged_attempts = 0_u64;
    let mut after_exit = 0_u64;
    // warmgate says when it stops listening; until then every connect must
    // be accepted.
    let stopped_ms = run.stopped_listening_ms;
    let mut unauthorised = 0_u64;
    let mut unauthorised_refused = 0_u64;
    let mut unauthorised_admitted = 0_u64;
    let mut draining_refusals = 0_u64;
    let mut unavailable_not_1013 = 0_u64;
    for attempt in &attempts {
        let credential = attempt[0].as_str().unwrap_or_default();
        let started = attempt[1].as_f64().unwrap_or(0.0);
        let ended = attempt[2].as_f64().unwrap_or(0.0);
        let outcome = attempt[3].as_str().unwrap_or_default();
        // Once warmgate has stopped listening, a refused connection is the
        // server gone (the exit is noticed by polling, a little later).
        let listener_closed =
            outcome == "no_connection" && stopped_ms.is_some_and(|stopped| started >= stopped);
        if started >= exit_ms || listener_closed {
            after_exit += 1;
            continue;
        }
        judged_attempts += 1;
        let window = windows
            .iter()
            .position(|(_, from, to)| {
                marks.at(from).is_some_and(|from| started >= from)
                    && marks.at(to).is_none_or(|to| started < to)
            })
            .unwrap_or(0);
        let class = if outcome.starts_with("unavailable:") {
            outcome.to_owned()
        } else if outcome.starts_with("http_401") {
            "http_401".to_owned()
        } else {
            outcome.split(':').next().unwrap_or_default().to_owned()
        };
        *by_window
            .entry(window)
            .or_default()
            .entry(class)
            .or_default() += 1;
        let good = credential == "good_token";
        let fine = if good {
            outcome.starts_with("admitted")
                || (outcome.starts_with("unavailable:") && attempt[4]["close_code"] == 1013)
        } else {
            unauthorised += 1;
            if outcome.starts_with("admitted") {
                unauthorised_admitted += 1;
            }
            let refused = outcome.starts_with("http_401");
            unauthorised_refused += u64::from(refused);
            refused
        };
        if outcome == "unavailable:draining" {
            draining_refusals += 1;
        }
        if outcome.starts_with("unavailable:") && attempt[4]["close_code"] != 1013 {
            unavailable_not_1013 += 1;
        }
        if !fine {
            *problems
                .entry(format!("{credential} → {outcome}"))
                .or_default() += 1;
            if problem_samples.len() < 10 {
                problem_samples.push(format!(
                    "{credential} at {} → {outcome} after {:.0} ms ({})",
                    since(start, started),
                    ended - started,
                    attempt[4]
                ));
            }
        }
    }
    let problem_count: u64 = problems.values().sum();
    let chat_joined = number(load, "/chat/joined") as u64;
    let chat_clients = number(load, "/chat/clients") as u64;
    checks.push(Check::required(
        "every connection attempt ended admitted, `unavailable` with a reason, or 401; none silent",
        problem_count == 0 && chat_joined == chat_clients && !attempts.is_empty(),
        format!(
            "{judged_attempts} churn attempts before warmgate stopped listening (and {after_exit} after it, refused by a closed port), {chat_joined} of {chat_clients} chat clients admitted; {problem_count} otherwise{}{}",
            if problems.is_empty() { String::new() } else { format!(": {problems:?}") },
            if problem_samples.is_empty() { String::new() } else { format!("; e.g. {}", problem_samples.join("; ")) }
        ),
    ));
    if authenticating {
        checks.push(Check::required(
            "unauthorised attempts (no token, another key, an unpublished key, expired) each got 401 and none was admitted",
            unauthorised > 0 && unauthorised_refused == unauthorised && unauthorised_admitted == 0,
            format!("{unauthorised_refused} of {unauthorised} got 401; {unauthorised_admitted} admitted"),
        ));
    } else {
        checks.push(Check::reported(
            "unauthorised attempts got 401",
            false,
            "not run: warmgate ran without `[auth]` (`--auth none`)".to_owned(),
        ));
    }

    // --- drain ---
    let told_draining = number(load, "/chat/drain/told_draining") as u64;
    let closed_1001 = load
        .pointer("/chat/drain/close_codes/1001")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    checks.push(Check::required(
        "on SIGTERM, held clients got `unavailable` (`draining`) and close 1013; admitted ones `draining` and close 1001",
        draining_refusals > 0 && unavailable_not_1013 == 0 && told_draining == chat_joined && closed_1001 == chat_joined,
        format!(
            "{draining_refusals} attempts refused with `draining`; {unavailable_not_1013} `unavailable` frames not followed by 1013; {told_draining} of {chat_joined} chat clients told `draining`, {closed_1001} closed with 1001, {:.1} s (median) after `draining`",
            number(load, "/chat/drain/draining_to_close/p50_us") / 1e6
        ),
    ));

    // --- deliveries ---
    let missing = number(load, "/chat/missing") as u64;
    let duplicated = number(load, "/chat/duplicated") as u64;
    let unknown = number(load, "/chat/unknown_deliveries") as u64;
    let foreign = number(load, "/chat/foreign_frames") as u64;
    let acked = number(load, "/chat/messages_acked") as u64;
    let required_deliveries = number(load, "/chat/deliveries_required") as u64;
    let once = number(load, "/chat/delivered_once") as u64;
    checks.push(Check::required(
        "every acknowledged chat message was delivered exactly once to every member of its room connected throughout",
        acked > 0 && missing == 0 && duplicated == 0 && unknown == 0 && foreign == 0 && once == required_deliveries,
        format!(
            "{acked} of {} messages acked; {once} of {required_deliveries} required deliveries exactly once; {missing} missing, {duplicated} duplicated, {unknown} unknown, {foreign} foreign",
            number(load, "/chat/messages_sent")
        ),
    ));
    if authenticating {
        let wrong_from = number(load, "/chat/wrong_from") as u64;
        checks.push(Check::required(
            "a chat message's `from` is its sender's token subject",
            wrong_from == 0,
            format!("{wrong_from} deliveries with another `from`"),
        ));
    }

    // --- probes ---
    // Strict until warmgate stopped listening; a closed port after that is
    // the end of the drain, not a slow probe. Without the log line nothing
    // is excused.
    let cutoff = stopped_ms.unwrap_or(exit_ms);
    let sigterm_ms = marks.at("sigterm");
    let draining_seen_ms = changes
        .iter()
        .find(|change| change.state == "draining")
        .map_or(f64::INFINITY, |change| change.at_ms);
    let mut probe_rows = String::new();
    let mut probes_ok = stopped_ms.is_some();
    let mut draining_ok = stopped_ms.is_some() && sigterm_ms.is_some();
    let mut probe_figures = Vec::new();
    let mut draining_figures = Vec::new();
    for (path, wanted, wanted_from) in [
        ("/livez", 200, f64::NEG_INFINITY),
        ("/readyz", 503, draining_seen_ms),
    ] {
        let summary = load
            .pointer(&format!("/probes/paths/{}", path.replace('/', "~1")))
            .cloned()
            .unwrap_or_default();
        let all = summary["all"].as_array().cloned().unwrap_or_default();
        let window = ProbeWindow::judge(&all, cutoff, sigterm_ms, wanted, wanted_from);
        probes_ok &= window.judged > 0 && window.slow.is_empty() && window.unanswered.is_empty();
        draining_ok &= window.draining > 0 && window.draining_wrong.is_empty();
        let worst = window
            .slow
            .iter()
            .map(|(at, latency)| format!("{latency:.0} ms at {}", since(start, *at)))
            .chain(
                window
                    .unanswered
                    .iter()
                    .map(|(at, error)| format!("{error} at {}", since(start, *at))),
            )
            .take(5)
            .collect::<Vec<_>>();
        let _ = writeln!(
            probe_rows,
            "| `{path}` | {} | {:.2} ms | {:.2} ms | {:.2} ms | {} | {} | {} | {} |",
            window.judged,
            number(&summary, "/latency/p50_us") / 1e3,
            number(&summary, "/latency/p99_us") / 1e3,
            number(&summary, "/latency/max_us") / 1e3,
            window.slow.len(),
            window.unanswered.len(),
            window.after_cutoff,
            summary["statuses"]
        );
        probe_figures.push(format!(
            "{path}: {} probes, max {:.1} ms, {} over {PROBE_LIMIT_MS} ms, {} unanswered{}; {} after",
            window.judged,
            number(&summary, "/latency/max_us") / 1e3,
            window.slow.len(),
            window.unanswered.len(),
            if worst.is_empty() { String::new() } else { format!(" ({})", worst.join(", ")) },
            window.after_cutoff
        ));
        draining_figures.push(format!(
            "{path}: {} probes, {} without {wanted}{}",
            window.draining,
            window.draining_wrong.len(),
            window
                .draining_wrong
                .iter()
                .take(3)
                .map(|(at, what)| format!(" ({what} at {})", since(start, *at)))
                .collect::<String>()
        ));
    }
    let stopped_text = match (stopped_ms, sigterm_ms) {
        (Some(stopped), Some(sigterm)) => format!(
            "warmgate stopped listening {:.0} ms after SIGTERM{}",
            stopped - sigterm,
            if exit_ms.is_finite() {
                format!(", {:.0} ms before its exit was seen", exit_ms - stopped)
            } else {
                String::new()
            }
        ),
        (Some(_), None) => "warmgate stopped listening before any SIGTERM".to_owned(),
        (None, _) => "warmgate's log has no `stopped listening` line".to_owned(),
    };
    checks.push(Check::required(
        "`/livez` and `/readyz` answered within 50 ms until warmgate stopped listening",
        probes_ok,
        format!("{}; {stopped_text}", probe_figures.join("; ")),
    ));
    checks.push(Check::required(
        "from SIGTERM until warmgate stopped listening, `/readyz` answered 503 (once `draining` was out) and `/livez` 200; no probe refused",
        draining_ok,
        format!("{}; {stopped_text}", draining_figures.join("; ")),
    ));

    // --- readiness pushes to admitted clients ---
    let expected_pushes: Vec<&str> = changes
        .iter()
        .skip(1)
        .map(|change| change.state.as_str())
        .filter(|state| *state != "draining")
        .collect();
    let pushes = load
        .pointer("/chat/readiness_pushes")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let told_every_change = pushes.len() == 1 && pushes.contains_key(&expected_pushes.join(","));
    checks.push(Check::reported(
        "admitted chat clients were told (`readiness`) of every state change",
        told_every_change,
        format!(
            "expected `{}`; clients by sequence received: {}",
            expected_pushes.join(","),
            Value::Object(pushes)
        ),
    ));

    // --- the section ---
    let failed = report::failed(&checks);
    let verdict = if failed.is_empty() {
        format!(
            "**Result: every required check passes** ({} checks).",
            checks.iter().filter(|check| check.required).count()
        )
    } else {
        format!(
            "**Result: {} required check(s) FAIL:** {}.",
            failed.len(),
            failed.join("; ")
        )
    };
    let _ = writeln!(
        body,
        "Last run: {}, `cargo xtask chaos` (authentication: `{}`), {:.0} s in all, on {}; tree at {}.\n\n{verdict}\n",
        machine::now_utc(),
        run.auth.name(),
        run.seconds,
        Machine::read(),
        machine::revision()
    );
    let _ = writeln!(body, "### Method\n");
    let _ = writeln!(
        body,
        "- **System**: a fresh PostgreSQL cluster and Redis server (with a password), a stand-in auth service publishing one ES256 key as a JWKS document (`warmgate-jwks-server`), and the release build of warmgate, each its own process on loopback. The plan: `database` (postgres, required), `redis` (optional), `auth` ({}, required), the signal `{HOLD_SIGNAL}`, and `websocket_integration`; checks every 500 ms (`auth` every 1 s) with a 500 ms timeout and the default failure threshold (3); `hold_timeout` 5 s, `drain_grace` 7 s (default).",
        if authenticating {
            "`jwks`, and `[auth] mode = \"jwt\"`"
        } else {
            "`http` on the JWKS URL; no `[auth]`"
        }
    );
    let _ = writeln!(
        body,
        "- **Load** (`warmgate-loadgen chat-load`, one process, wall-clock timestamps): {CHAT_CLIENTS} chat clients{}, in {ROOMS} rooms of {}, each sending a `chat` with a unique `client_msg_id` every second (at most 8 awaiting their ack); {CHURN_WORKERS} churn workers connecting one after another (an admitted client stays 0.2–1.5 s and leaves; a refused one waits the `retry_after_ms` it was given){}; `/livez` and `/readyz` probed every 100 ms, each on a new connection from a thread of its own; the state timeline from `/readiness/events`.",
        if authenticating {
            " (each with a token for its own user)"
        } else {
            ""
        },
        CHAT_CLIENTS / ROOMS,
        if authenticating {
            format!(
                "; one churn attempt in {UNAUTHORISED_EVERY} is unauthorised, in turn: no token, a token signed by another key under the published key id, one signed by a key the service does not publish, an expired one"
            )
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        body,
        "- **Faults**, each held until `/readiness` shows it, then for 3 s (Redis) or 8 s (longer than `hold_timeout` and a retry), then undone and the recovery awaited, with 3 s of load in between: kill -9 Redis and restart it; stop PostgreSQL (`pg_ctl stop -m fast`) and start it; SIGSTOP the auth service and SIGCONT it; turn `{HOLD_SIGNAL}` off, wait until clients are held, and SIGTERM warmgate.\n- **Delivery rule**: a member is *connected throughout* for a message when it had joined the room before the message was sent and was still connected when the sender got the ack; each such member must receive the message exactly once. A message received twice anywhere counts as duplicated.\n- Raw figures: `target/chaos/results.json`; logs of every process beside it.\n"
    );
    let _ = writeln!(body, "### Checks\n\n{}", report::checks_table(&checks));
    let _ = writeln!(
        body,
        "### Fault timeline\n\nTimes are from the moment every chat client had joined. *After the fault* is from the injection to the state change arriving on the event stream.\n\n| # | fault | injected at | expected | observed | after the fault | |\n|---|---|---|---|---|---|---|\n{timeline_rows}"
    );
    let mut attempt_rows = String::new();
    let mut classes: Vec<String> = by_window
        .values()
        .flat_map(|counts| counts.keys().cloned())
        .collect();
    classes.sort();
    classes.dedup();
    for (index, (name, _, _)) in windows.iter().enumerate() {
        let counts = by_window.get(&index).cloned().unwrap_or_default();
        let total: u64 = counts.values().sum();
        let cells: Vec<String> = classes
            .iter()
            .map(|class| counts.get(class).copied().unwrap_or(0).to_string())
            .collect();
        let _ = writeln!(attempt_rows, "| {name} | {total} | {} |", cells.join(" | "));
    }
    let _ = writeln!(
        body,
        "### Connection attempts\n\nChurn attempts by when they started and how they ended (`http_401`: refused before the upgrade; `unavailable:REASON`: the frame, then close 1013):\n\n| window | attempts | {} |\n|---|---|{}\n{attempt_rows}",
        classes
            .iter()
            .map(|class| format!("`{class}`"))
            .collect::<Vec<_>>()
            .join(" | "),
        "---|".repeat(classes.len())
    );
    let _ = writeln!(
        body,
        "### Chat\n\n| figure | value |\n|---|---|\n| chat clients admitted and joined | {chat_joined} of {chat_clients} |\n| messages sent / acked | {} / {acked} |\n| ack latency p50 / p99 / max | {:.1} / {:.1} / {:.1} ms |\n| required deliveries / exactly once | {required_deliveries} / {once} |\n| missing / duplicated / unknown | {missing} / {duplicated} / {unknown} |\n| `error` frames | {} |\n| how the chat clients' connections ended | {} |\n",
        number(load, "/chat/messages_sent"),
        number(load, "/chat/ack_latency/p50_us") / 1e3,
        number(load, "/chat/ack_latency/p99_us") / 1e3,
        number(load, "/chat/ack_latency/max_us") / 1e3,
        load.pointer("/chat/error_frames")
            .cloned()
            .unwrap_or_default(),
        load.pointer("/chat/ends").cloned().unwrap_or_default()
    );
    let _ = writeln!(
        body,
        "### Probes\n\nEach probe on a new connection, timed from the connect to the end of the answer; judged until warmgate logged `stopped listening` (*after* counts the probes that started later, when a refused connect is the server gone). Latencies and statuses are over every probe.\n\n| path | probes | p50 | p99 | max | over 50 ms | unanswered | after | statuses |\n|---|---|---|---|---|---|---|---|---|\n{probe_rows}"
    );
    Judged {
        checks,
        markdown: body,
    }
}

#[cfg(test)]
mod tests {
    use super::super::Marks;
    use super::*;
    use serde_json::json;

    #[test]
    fn repeated_snapshots_and_same_state_changes_collapse() {
        let events = vec![
            json!({"at_ms": 1.0, "seq": 3, "state": "ready", "pending": [], "degraded": []}),
            json!({"at_ms": 2.0, "seq": 4, "state": "degraded", "pending": [], "degraded": ["redis"]}),
            json!({"at_ms": 2.5, "seq": 4, "state": "degraded", "pending": [], "degraded": ["redis"]}),
            json!({"at_ms": 3.0, "seq": 5, "state": "degraded", "pending": [], "degraded": ["redis", "x"]}),
            json!({"at_ms": 4.0, "seq": 6, "state": "ready", "pending": [], "degraded": []}),
        ];
        let changes = state_changes(&events);
        let states: Vec<&str> = changes.iter().map(|change| change.state.as_str()).collect();
        assert_eq!(states, ["ready", "degraded", "ready"]);
        assert_eq!(changes[1].degraded, ["redis"]);
    }

    #[test]
    fn the_earliest_stopped_listening_line_is_the_moment() {
        let log = "\
2026-11-30T10:00:00Z  INFO warmgate::serve: listeners bound
2026-11-30T10:00:09Z  INFO warmgate_http::serve: stopped listening; new connections are refused listener=127.0.0.1:9090 unix_ms=1764500009012
2026-11-30T10:00:09Z  INFO warmgate_http::serve: stopped listening; new connections are refused listener=127.0.0.1:8080 unix_ms=1764500009011
{\"fields\":{\"message\":\"stopped listening\",\"unix_ms\":1764500009013}}
";
        assert_eq!(stopped_listening_ms(log), Some(1_764_500_009_011.0));
        assert_eq!(stopped_listening_ms("INFO drained; exiting\n"), None);
        assert_eq!(
            stopped_listening_ms("{\"message\":\"stopped listening\",\"unix_ms\":42}"),
            Some(42.0)
        );
    }

    #[test]
    fn probes_are_judged_strictly_until_the_listeners_closed() {
        let all = vec![
            json!([100.0, 1.0, 200]),
            json!([200.0, 1.0, 200]), // SIGTERM at 150, draining seen at 210
            json!([250.0, 2.0, 503]),
            json!([299.0, 60.0, 503]), // slow, before the cutoff
            json!([300.0, 0.1, "cannot connect: connection refused"]), // at the cutoff
            json!([400.0, 0.1, "cannot connect: connection refused"]),
        ];
        let window = ProbeWindow::judge(&all, 300.0, Some(150.0), 503, 210.0);
        assert_eq!(window.judged, 4);
        assert_eq!(window.after_cutoff, 2);
        assert_eq!(window.slow, [(299.0, 60.0)]);
        assert!(window.unanswered.is_empty());
        // 200 at 200 ms: after SIGTERM but before `draining` was out.
        assert_eq!(window.draining, 3);
        assert!(window.draining_wrong.is_empty());

        // A refusal before the cutoff is unanswered and wrong while draining;
        // a 200 once draining was out is wrong for /readyz.
        let all = vec![
            json!([220.0, 1.0, 200]),
            json!([250.0, 0.1, "cannot connect: connection refused"]),
        ];
        let window = ProbeWindow::judge(&all, 300.0, Some(150.0), 503, 210.0);
        assert_eq!(window.unanswered.len(), 1);
        assert_eq!(
            window.draining_wrong,
            [
                (220.0, "status 200".to_owned()),
                (250.0, "cannot connect: connection refused".to_owned())
            ]
        );
    }

    #[test]
    fn marks_are_found_by_name() {
        let mut marks = Marks::default();
        marks.list.push(("sigterm", 10.0));
        assert_eq!(marks.at("sigterm"), Some(10.0));
        assert_eq!(marks.at("exited"), None);
    }
}
