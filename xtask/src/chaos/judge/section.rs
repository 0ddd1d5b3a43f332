//! The chaos section of `docs/reliability.md`: the verdict, the method,
//! the checks, and the tables of the fault timeline, the connection
//! attempts, the chat and the probes.

use std::fmt::Write as _;

use warmgate_loadgen::report::ChatSummary;

use super::super::report::{self, Check};
use super::super::stack::{Auth, HOLD_SIGNAL};
use super::super::{CHAT_CLIENTS, CHURN_WORKERS, ROOMS, Run, UNAUTHORISED_EVERY};
use super::facts::{AttemptTally, Facts};
use super::{WINDOWS, json_text, ms, since};

/// The report's section; `last_run` says when, on what and at which tree.
pub(super) fn section(run: &Run, facts: &Facts<'_>, checks: &[Check], last_run: &str) -> String {
    let authenticating = run.auth == Auth::Jwt;
    let verdict = report::verdict(checks);
    let mut body = String::new();
    let _ = writeln!(body, "Last run: {last_run}.\n\n{verdict}\n");
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
    let _ = writeln!(body, "### Checks\n\n{}", report::checks_table(checks));
    let _ = writeln!(
        body,
        "### Fault timeline\n\nTimes are from the moment every chat client had joined. *After the fault* is from the injection to the state change arriving on the event stream.\n\n| # | fault | injected at | expected | observed | after the fault | |\n|---|---|---|---|---|---|---|\n{}",
        timeline_rows(facts)
    );
    let _ = writeln!(body, "{}", attempts_table(&facts.attempts));
    let _ = writeln!(body, "{}", chat_table(&run.load.chat));
    let _ = writeln!(
        body,
        "### Probes\n\nEach probe on a new connection, timed from the connect to the end of the answer; judged until warmgate logged `stopped listening` (*after* counts the probes that started later, when a refused connect is the server gone). Latencies and statuses are over every probe.\n\n| path | probes | p50 | p99 | max | over 50 ms | unanswered | after | statuses |\n|---|---|---|---|---|---|---|---|---|\n{}",
        probe_rows(facts)
    );
    body
}

/// One row per expected state change.
fn timeline_rows(facts: &Facts<'_>) -> String {
    let start = facts.start;
    let mut rows = String::new();
    for (index, expectation) in facts.expectations.iter().enumerate() {
        let expected = expectation.expected;
        let observed = expectation.observed.map_or_else(
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
        let delay = match (expectation.observed, expectation.after) {
            (Some(change), Some(after)) => format!("{:.0} ms", change.at_ms - after),
            _ => "–".to_owned(),
        };
        let _ = writeln!(
            rows,
            "| {} | {} | {} | `{}` | {observed} | {delay} | {} |",
            index + 1,
            expected.fault,
            expectation
                .after
                .map_or_else(|| "not reached".to_owned(), |after| since(start, after)),
            expected.state,
            if expectation.matched {
                "pass"
            } else {
                "**FAIL**"
            }
        );
    }
    rows
}

/// The churn attempts by window and class.
fn attempts_table(tally: &AttemptTally) -> String {
    let mut classes: Vec<&String> = tally
        .by_window
        .values()
        .flat_map(|counts| counts.keys())
        .collect();
    classes.sort();
    classes.dedup();
    let mut rows = String::new();
    for (index, (name, _, _)) in WINDOWS.iter().enumerate() {
        let counts = tally.by_window.get(&index);
        let count = |class: &String| counts.and_then(|counts| counts.get(class)).copied();
        let total: u64 = counts.map_or(0, |counts| counts.values().sum());
        let cells: Vec<String> = classes
            .iter()
            .map(|class| count(class).unwrap_or(0).to_string())
            .collect();
        let _ = writeln!(rows, "| {name} | {total} | {} |", cells.join(" | "));
    }
    format!(
        "### Connection attempts\n\nChurn attempts by when they started and how they ended (`http_401`: refused before the upgrade; `unavailable:REASON`: the frame, then close 1013):\n\n| window | attempts | {} |\n|---|---|{}\n{rows}",
        classes
            .iter()
            .map(|class| format!("`{class}`"))
            .collect::<Vec<_>>()
            .join(" | "),
        "---|".repeat(classes.len())
    )
}

/// The chat figures.
fn chat_table(chat: &ChatSummary) -> String {
    let latency = chat.ack_latency.as_ref();
    format!(
        "### Chat\n\n| figure | value |\n|---|---|\n| chat clients admitted and joined | {} of {} |\n| messages sent / acked | {} / {} |\n| ack latency p50 / p99 / max | {} / {} / {} ms |\n| required deliveries / exactly once | {} / {} |\n| missing / duplicated / unknown | {} / {} / {} |\n| `error` frames | {} |\n| how the chat clients' connections ended | {} |\n",
        chat.joined,
        chat.clients,
        chat.messages_sent,
        chat.messages_acked,
        ms(latency, |timings| timings.p50_us, 1),
        ms(latency, |timings| timings.p99_us, 1),
        ms(latency, |timings| timings.max_us, 1),
        chat.deliveries_required,
        chat.delivered_once,
        chat.missing,
        chat.duplicated,
        chat.unknown_deliveries,
        json_text(&chat.error_frames),
        json_text(&chat.ends)
    )
}

/// One row per probed path.
fn probe_rows(facts: &Facts<'_>) -> String {
    let mut rows = String::new();
    for path in &facts.probes {
        let latency = path.probes.latency.as_ref();
        let _ = writeln!(
            rows,
            "| `{}` | {} | {} ms | {} ms | {} ms | {} | {} | {} | {} |",
            path.path,
            path.window.judged,
            ms(latency, |timings| timings.p50_us, 2),
            ms(latency, |timings| timings.p99_us, 2),
            ms(latency, |timings| timings.max_us, 2),
            path.window.slow.len(),
            path.window.unanswered.len(),
            path.window.after_cutoff,
            json_text(&path.probes.statuses)
        );
    }
    rows
}
