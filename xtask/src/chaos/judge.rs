//! Judging a chaos run: one function per check, each named for what it
//! checks and returning its verdict with the figures behind it. What the
//! checks read is digested once (`facts`), and the Markdown section of
//! `docs/reliability.md` is written from the same (`section`). Everything
//! here is a pure function of the load generator's report
//! (`ChatLoadReport`), the fault marks and what warmgate's exit and log
//! said, so it can be tested on made-up runs.

mod facts;
mod section;

use std::collections::BTreeMap;

use warmgate_loadgen::report::{ChatSummary, Timings};

pub(crate) use self::facts::stopped_listening_ms;
use self::facts::{AttemptTally, Facts};
use self::section::section;
use super::Run;
use super::report::{self, Check};
use super::stack::{Auth, HOLD_SIGNAL};
use crate::machine::{self, Machine};

/// The probe limit: `/livez` and `/readyz` must answer within this.
const PROBE_LIMIT_MS: f64 = 50.0;

/// How late after warmgate's exit was noticed (it is polled every 50 ms)
/// a `draining` event may still count as before the exit.
const EXIT_SLACK_MS: f64 = 100.0;

/// How many attempts that went wrong are described one by one.
const LISTED_PROBLEMS: usize = 10;

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

/// The windows of the fault timeline that churn attempts are counted in,
/// by when they started: a name, and the marks that open and close it.
const WINDOWS: [(&str, &str, &str); 6] = [
    ("before the faults", "load_joined", "redis_killed"),
    ("Redis down and back", "redis_killed", "postgres_stopping"),
    ("PostgreSQL down and back", "postgres_stopping", "auth_hung"),
    ("auth service hung and back", "auth_hung", "signal_off"),
    ("signal off (held)", "signal_off", "sigterm"),
    ("draining, until exit", "sigterm", "exited"),
];

pub(crate) fn judge(run: &Run) -> Judged {
    let facts = Facts::of(run);
    let checks = checks(run, &facts);
    let last_run = format!(
        "{}, `cargo xtask chaos` (authentication: `{}`), {:.0} s in all, on {}; tree at {}",
        machine::now_utc(),
        run.auth.name(),
        run.seconds,
        Machine::read(),
        machine::revision()
    );
    let markdown = section(run, &facts, &checks, &last_run);
    Judged { checks, markdown }
}

/// Every check, in the report's order.
fn checks(run: &Run, facts: &Facts<'_>) -> Vec<Check> {
    let chat = &run.load.chat;
    let authenticating = run.auth == Auth::Jwt;
    let mut checks = vec![
        no_panic_and_no_crash(run),
        state_transitions_match_the_fault_timeline(facts),
        every_attempt_ended_admitted_unavailable_or_401(&facts.attempts, chat),
        unauthorised_attempts_each_got_401_and_none_was_admitted(&facts.attempts, authenticating),
        on_sigterm_held_clients_got_unavailable_and_admitted_ones_draining(&facts.attempts, chat),
        report::every_acked_message_was_delivered_exactly_once(chat),
    ];
    if authenticating {
        checks.push(every_chat_message_is_from_its_senders_subject(chat));
    }
    checks.push(probes_answered_within_50_ms_until_warmgate_stopped_listening(facts));
    checks.push(probes_answered_as_draining_until_warmgate_stopped_listening(facts));
    checks.push(admitted_clients_were_told_of_every_state_change(
        facts, chat,
    ));
    checks
}

// === the checks ===

fn no_panic_and_no_crash(run: &Run) -> Check {
    Check::required(
        "no panic and no crash",
        run.aborted.is_none() && run.exit_success && !run.died_early && run.panics.is_empty(),
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
    )
}

fn state_transitions_match_the_fault_timeline(facts: &Facts<'_>) -> Check {
    let changes = &facts.changes;
    let passed = changes.first().is_some_and(|first| first.state == "ready")
        && facts.breaks == 0
        && changes.len() == EXPECTED.len() + 1
        && facts
            .expectations
            .iter()
            .all(|expectation| expectation.matched);
    let sequence: Vec<&str> = changes.iter().map(|change| change.state.as_str()).collect();
    Check::required(
        "state transitions match the fault timeline",
        passed,
        format!(
            "{} of {} expected changes, each inside its fault's window and naming the failing check; seen: {}; event stream breaks: {}",
            EXPECTED.len().min(changes.len().saturating_sub(1)),
            EXPECTED.len(),
            sequence.join(" → "),
            facts.breaks
        ),
    )
}

fn every_attempt_ended_admitted_unavailable_or_401(
    tally: &AttemptTally,
    chat: &ChatSummary,
) -> Check {
    let problem_count: u64 = tally.problems.values().sum();
    Check::required(
        "every connection attempt ended admitted, `unavailable` with a reason, or 401; none silent",
        problem_count == 0 && chat.joined == chat.clients && tally.listed > 0,
        format!(
            "{} churn attempts before warmgate stopped listening (and {} after it, refused by a closed port), {} of {} chat clients admitted; {problem_count} otherwise{}{}",
            tally.judged,
            tally.after_exit,
            chat.joined,
            chat.clients,
            if tally.problems.is_empty() {
                String::new()
            } else {
                format!(": {:?}", tally.problems)
            },
            if tally.problem_samples.is_empty() {
                String::new()
            } else {
                format!("; e.g. {}", tally.problem_samples.join("; "))
            }
        ),
    )
}

fn unauthorised_attempts_each_got_401_and_none_was_admitted(
    tally: &AttemptTally,
    authenticating: bool,
) -> Check {
    if !authenticating {
        return Check::reported(
            "unauthorised attempts got 401",
            false,
            "not run: warmgate ran without `[auth]` (`--auth none`)".to_owned(),
        );
    }
    Check::required(
        "unauthorised attempts (no token, another key, an unpublished key, expired) each got 401 and none was admitted",
        tally.unauthorised > 0
            && tally.unauthorised_refused == tally.unauthorised
            && tally.unauthorised_admitted == 0,
        format!(
            "{} of {} got 401; {} admitted",
            tally.unauthorised_refused, tally.unauthorised, tally.unauthorised_admitted
        ),
    )
}

fn on_sigterm_held_clients_got_unavailable_and_admitted_ones_draining(
    tally: &AttemptTally,
    chat: &ChatSummary,
) -> Check {
    let drain = &chat.drain;
    // A code no drained client was closed with is counted as none.
    let closed_1001 = drain.close_codes.get("1001").copied().unwrap_or(0);
    let joined = chat.joined as u64;
    Check::required(
        "on SIGTERM, held clients got `unavailable` (`draining`) and close 1013; admitted ones `draining` and close 1001",
        tally.draining_refusals > 0
            && tally.unavailable_not_1013 == 0
            && drain.told_draining == chat.joined
            && closed_1001 == joined,
        format!(
            "{} attempts refused with `draining`; {} `unavailable` frames not followed by 1013; {} of {} chat clients told `draining`, {closed_1001} closed with 1001, {} (median) after `draining`",
            tally.draining_refusals,
            tally.unavailable_not_1013,
            drain.told_draining,
            chat.joined,
            drain.draining_to_close.as_ref().map_or_else(
                || "– s".to_owned(),
                |timings| format!("{:.1} s", timings.p50_us / 1e6)
            )
        ),
    )
}

fn every_chat_message_is_from_its_senders_subject(chat: &ChatSummary) -> Check {
    Check::required(
        "a chat message's `from` is its sender's token subject",
        chat.wrong_from == 0,
        format!("{} deliveries with another `from`", chat.wrong_from),
    )
}

fn probes_answered_within_50_ms_until_warmgate_stopped_listening(facts: &Facts<'_>) -> Check {
    let start = facts.start;
    let passed = facts.listening.stopped_ms.is_some()
        && facts.probes.iter().all(|path| {
            let window = &path.window;
            window.judged > 0 && window.slow.is_empty() && window.unanswered.is_empty()
        });
    let figures: Vec<String> = facts
        .probes
        .iter()
        .map(|path| {
            let window = &path.window;
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
            format!(
                "{}: {} probes, max {} ms, {} over {PROBE_LIMIT_MS} ms, {} unanswered{}; {} after",
                path.path,
                window.judged,
                ms(path.probes.latency.as_ref(), |timings| timings.max_us, 1),
                window.slow.len(),
                window.unanswered.len(),
                if worst.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", worst.join(", "))
                },
                window.after_cutoff
            )
        })
        .collect();
    Check::required(
        "`/livez` and `/readyz` answered within 50 ms until warmgate stopped listening",
        passed,
        format!("{}; {}", figures.join("; "), facts.listening.text()),
    )
}

fn probes_answered_as_draining_until_warmgate_stopped_listening(facts: &Facts<'_>) -> Check {
    let start = facts.start;
    let passed = facts.listening.stopped_ms.is_some()
        && facts.listening.sigterm_ms.is_some()
        && facts
            .probes
            .iter()
            .all(|path| path.window.draining > 0 && path.window.draining_wrong.is_empty());
    let figures: Vec<String> = facts
        .probes
        .iter()
        .map(|path| {
            format!(
                "{}: {} probes, {} without {}{}",
                path.path,
                path.window.draining,
                path.window.draining_wrong.len(),
                path.wanted,
                path.window
                    .draining_wrong
                    .iter()
                    .take(3)
                    .map(|(at, what)| format!(" ({what} at {})", since(start, *at)))
                    .collect::<String>()
            )
        })
        .collect();
    Check::required(
        "from SIGTERM until warmgate stopped listening, `/readyz` answered 503 (once `draining` was out) and `/livez` 200; no probe refused",
        passed,
        format!("{}; {}", figures.join("; "), facts.listening.text()),
    )
}

fn admitted_clients_were_told_of_every_state_change(
    facts: &Facts<'_>,
    chat: &ChatSummary,
) -> Check {
    let expected: Vec<&str> = facts
        .changes
        .iter()
        .skip(1)
        .map(|change| change.state.as_str())
        .filter(|state| *state != "draining")
        .collect();
    let pushes = &chat.readiness_pushes;
    Check::reported(
        "admitted chat clients were told (`readiness`) of every state change",
        pushes.len() == 1 && pushes.contains_key(&expected.join(",")),
        format!(
            "expected `{}`; clients by sequence received: {}",
            expected.join(","),
            json_text(pushes)
        ),
    )
}

// === formatting, for the checks and the section ===

/// Seconds from the load's start, for the report.
fn since(start: f64, at_ms: f64) -> String {
    format!("{:.1} s", (at_ms - start) / 1e3)
}

/// One figure of `timings` in milliseconds, to `decimals` places; `–` when
/// nothing was measured.
fn ms(timings: Option<&Timings>, pick: fn(&Timings) -> f64, decimals: usize) -> String {
    timings.map_or_else(
        || "–".to_owned(),
        |timings| format!("{:.decimals$}", pick(timings) / 1e3),
    )
}

/// A map of counts as JSON, as the report shows it.
fn json_text(counts: &BTreeMap<impl serde::Serialize + Ord, u64>) -> String {
    serde_json::to_string(counts).unwrap_or_default()
}

#[cfg(test)]
mod tests;
