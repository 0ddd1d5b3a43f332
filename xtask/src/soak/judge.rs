//! Judging a soak: one function per check, each named for what it checks
//! and returning its verdict with the figures behind it, and the Markdown
//! section of `docs/reliability.md`. Everything here is a pure function of
//! the load generator's report (`SoakReport`) and how warmgate ended, so
//! it can be tested on made-up runs.

use std::fmt::Write as _;

use warmgate_loadgen::report::{
    AttemptCounts, Credential, HeldCrowds, OutcomeLabel, ProbeSummary, ProcessSample, SoakReport,
    Timings,
};

use super::{CHURN_WORKERS, CYCLE_SECONDS, HELD_PER_CYCLE, MESSAGE_INTERVAL_MS};
use crate::chaos::report::{self, Check};
use crate::chaos::stack::{Auth, HOLD_SIGNAL};
use crate::chaos::{CHAT_CLIENTS, ROOMS, UNAUTHORISED_EVERY};
use crate::machine::{self, Machine};

/// The last sample after warm-up may differ from the first by this share.
const TOLERANCE: f64 = 0.05;
/// The longest warm-up, and its share of a shorter run.
const WARM_UP_CAP_SECONDS: f64 = 60.0;
const WARM_UP_SHARE: f64 = 0.2;
/// Probes slower than this are counted (by the load generator).
const PROBE_LIMIT_MS: f64 = 50.0;

/// The checks and the report section of a soak of `minutes` that took
/// `seconds` in all; `alive` says whether warmgate lived to the end without
/// a panic, and `alive_figures` how it ended.
pub(super) fn judge(
    load: &SoakReport,
    auth: Auth,
    minutes: f64,
    alive: bool,
    alive_figures: &str,
    seconds: f64,
) -> (Vec<Check>, String) {
    let checks = checks(load, auth, alive, alive_figures);
    let last_run = format!(
        "{}, `cargo xtask soak --minutes {minutes}` (authentication: `{}`), {seconds:.0} s in all, on {}; tree at {}",
        machine::now_utc(),
        auth.name(),
        Machine::read(),
        machine::revision()
    );
    let markdown = section(load, auth, &checks, &last_run);
    (checks, markdown)
}

/// Every check, in the report's order.
fn checks(load: &SoakReport, auth: Auth, alive: bool, alive_figures: &str) -> Vec<Check> {
    let samples = Samples::of(load);
    let mut checks = vec![
        Check::required("no panic and no crash", alive, alive_figures.to_owned()),
        rss_flat_after_warm_up(&samples),
        descriptors_flat_after_warm_up(&samples),
        every_attempt_ended_admitted_unavailable_or_401(&load.attempts),
    ];
    if auth == Auth::Jwt {
        checks.push(unauthorised_attempts_each_got_401(&load.attempts));
    }
    checks.push(held_clients_were_released_by_each_flip(
        &load.held,
        load.cycles,
    ));
    checks.push(report::every_acked_message_was_delivered_exactly_once(
        &load.chat,
    ));
    checks.push(probes_answered_within_50_ms_throughout(&load.probes));
    checks
}

// === the samples ===

/// The process samples, and the two that flatness compares.
struct Samples<'a> {
    all: &'a [ProcessSample],
    /// The seconds of warm-up: a fifth of the soak, at most a minute.
    warm_up: f64,
    /// The first sample after warm-up.
    first: Option<&'a ProcessSample>,
    last: Option<&'a ProcessSample>,
}

impl<'a> Samples<'a> {
    fn of(load: &'a SoakReport) -> Samples<'a> {
        let all = load.samples.as_slice();
        let warm_up = (load.seconds * WARM_UP_SHARE).min(WARM_UP_CAP_SECONDS);
        Samples {
            all,
            warm_up,
            first: all.iter().find(|sample| sample.at_s >= warm_up),
            last: all.last(),
        }
    }
}

/// The share by which `last` differs from `first`.
fn drift(first: f64, last: f64) -> f64 {
    if first == 0.0 {
        f64::INFINITY
    } else {
        (last - first) / first
    }
}

// === the checks ===

fn rss_flat_after_warm_up(samples: &Samples<'_>) -> Check {
    flat_after_warm_up(samples, "RSS", |sample| sample.rss_kib as f64, " KiB")
}

fn descriptors_flat_after_warm_up(samples: &Samples<'_>) -> Check {
    flat_after_warm_up(
        samples,
        "open file descriptors",
        |sample| sample.fds as f64,
        "",
    )
}

/// The last sample of `what` within [`TOLERANCE`] of the first after
/// warm-up.
fn flat_after_warm_up(
    samples: &Samples<'_>,
    what: &str,
    pick: fn(&ProcessSample) -> f64,
    unit: &str,
) -> Check {
    let name = format!("{what} flat after warm-up (last sample within 5 % of the first)");
    let (Some(first), Some(last)) = (samples.first, samples.last) else {
        return too_few_samples(&name, samples);
    };
    if last.at_s <= first.at_s {
        return too_few_samples(&name, samples);
    }
    let change = drift(pick(first), pick(last));
    let after_warm_up = || {
        samples
            .all
            .iter()
            .filter(|sample| sample.at_s >= samples.warm_up)
            .map(pick)
    };
    Check::required(
        &name,
        change.abs() <= TOLERANCE,
        format!(
            "{:.0}{unit} at {:.0} s → {:.0}{unit} at {:.0} s ({:+.1} %); range after warm-up {:.0}–{:.0}{unit}",
            pick(first),
            first.at_s,
            pick(last),
            last.at_s,
            change * 100.0,
            after_warm_up().fold(f64::INFINITY, f64::min),
            after_warm_up().fold(0.0, f64::max),
        ),
    )
}

fn too_few_samples(name: &str, samples: &Samples<'_>) -> Check {
    Check::required(
        name,
        false,
        format!(
            "too few samples after a warm-up of {:.0} s: {}",
            samples.warm_up,
            samples.all.len()
        ),
    )
}

/// Attempts counted by whether their outcome is fine for their credential.
#[derive(Debug, Default)]
struct AttemptTally {
    attempts: u64,
    /// Attempts that ended otherwise than they should have.
    problems: u64,
    unauthorised: u64,
    unauthorised_refused: u64,
    /// `credential → `outcome`: count`, for each.
    outcomes: Vec<String>,
}

impl AttemptTally {
    fn of(counts: &AttemptCounts) -> AttemptTally {
        let mut tally = AttemptTally::default();
        for (credential, outcomes) in &counts.by_credential {
            for (outcome, &count) in outcomes {
                let label = OutcomeLabel::parse(outcome);
                tally.attempts += count;
                let fine = if *credential == Credential::Good {
                    matches!(
                        label,
                        Some(OutcomeLabel::Admitted { .. } | OutcomeLabel::Unavailable { .. })
                    )
                } else {
                    tally.unauthorised += count;
                    let refused = matches!(label, Some(OutcomeLabel::Refused { status: 401, .. }));
                    tally.unauthorised_refused += if refused { count } else { 0 };
                    refused
                };
                if !fine {
                    tally.problems += count;
                }
                tally
                    .outcomes
                    .push(format!("{} → `{outcome}`: {count}", credential.as_str()));
            }
        }
        tally
    }
}

fn every_attempt_ended_admitted_unavailable_or_401(counts: &AttemptCounts) -> Check {
    let tally = AttemptTally::of(counts);
    Check::required(
        "every connection attempt ended admitted, `unavailable` with a reason, or 401; none silent",
        tally.attempts > 0 && tally.problems == 0,
        format!(
            "{} attempts, {} otherwise; {}",
            tally.attempts,
            tally.problems,
            tally.outcomes.join(", ")
        ),
    )
}

fn unauthorised_attempts_each_got_401(counts: &AttemptCounts) -> Check {
    let tally = AttemptTally::of(counts);
    Check::required(
        "unauthorised attempts each got 401",
        tally.unauthorised > 0 && tally.unauthorised == tally.unauthorised_refused,
        format!("{} of {}", tally.unauthorised_refused, tally.unauthorised),
    )
}

fn held_clients_were_released_by_each_flip(held: &HeldCrowds, cycles: usize) -> Check {
    let flip = held.flip_to_ready.as_ref();
    Check::required(
        "held clients released by each signal flip",
        held.held > 0 && held.released == held.held && held.problems.is_empty(),
        format!(
            "{} of {} held clients released over {cycles} flips; flip to `ready` p50 {} ms, p99 {} ms, max {} ms; {} flip problems",
            held.released,
            held.held,
            ms(flip, |timings| timings.p50_us),
            ms(flip, |timings| timings.p99_us),
            ms(flip, |timings| timings.max_us),
            held.problems.len()
        ),
    )
}

fn probes_answered_within_50_ms_throughout(probes: &ProbeSummary) -> Check {
    let passed = probes
        .paths
        .by_path()
        .iter()
        .all(|(_, path)| path.slow_count == 0 && path.failed_count == 0);
    let figures: Vec<String> = probes
        .paths
        .by_path()
        .iter()
        .map(|(name, path)| {
            let latency = path.latency.as_ref();
            format!(
                "{name}: {} probes, p99 {} ms, max {} ms, {} over {PROBE_LIMIT_MS} ms, {} unanswered",
                path.probes,
                ms(latency, |timings| timings.p99_us),
                ms(latency, |timings| timings.max_us),
                path.slow_count,
                path.failed_count
            )
        })
        .collect();
    Check::reported(
        "`/livez` and `/readyz` answered within 50 ms throughout",
        passed,
        figures.join("; "),
    )
}

// === the section ===

/// One figure of `timings` in milliseconds, to a tenth; `–` when nothing
/// was measured.
fn ms(timings: Option<&Timings>, pick: fn(&Timings) -> f64) -> String {
    timings.map_or_else(
        || "–".to_owned(),
        |timings| format!("{:.1}", pick(timings) / 1e3),
    )
}

/// The report's section; `last_run` says when, on what and at which tree.
fn section(load: &SoakReport, auth: Auth, checks: &[Check], last_run: &str) -> String {
    let samples = Samples::of(load);
    let verdict = report::verdict(checks);
    let mut body = String::new();
    let _ = writeln!(body, "Last run: {last_run}.\n\n{verdict}\n");
    let _ = writeln!(
        body,
        "### Method\n\n- The system of the chaos run above, without faults, for {:.0} s in {} cycles of {CYCLE_SECONDS:.0} s.\n- First, before the clock starts, each chat client sends {} messages ({:.0} s), so that each room's bounded buffers (the last 4,096 `client_msg_id`s it remembers, the last 1,024 frames it keeps for slow readers) are full: they grow until then by design.\n- Throughout: {CHAT_CLIENTS} chat clients in {ROOMS} rooms, each sending an acknowledged message every {:.0} s; probes of `/livez` and `/readyz` every 100 ms.\n- In each cycle: {CHURN_WORKERS} churn workers for the first 6 s (admitted clients stay 0.2–1.5 s{}); after 1 s the signal `{HOLD_SIGNAL}` turns off, {HELD_PER_CYCLE} clients connect and are held, the signal turns on and they are released, stay 0.2–1 s and leave.\n- At the end of each cycle, once every churn and held client has left (only the chat clients remain), RSS (`VmRSS`) and the open descriptors (`/proc/PID/fd`) of warmgate are read. Warm-up: the first {:.0} s (a fifth of the run, at most a minute). Flat means the last sample within 5 % of the first after warm-up.\n",
        load.seconds,
        load.cycles,
        load.prefill.messages_per_client,
        load.prefill.seconds,
        MESSAGE_INTERVAL_MS as f64 / 1e3,
        if auth == Auth::Jwt {
            format!("; one attempt in {UNAUTHORISED_EVERY} unauthorised")
        } else {
            String::new()
        },
        samples.warm_up
    );
    let _ = writeln!(body, "### Checks\n\n{}", report::checks_table(checks));
    let _ = writeln!(
        body,
        "### Samples\n\n| at | RSS | descriptors | threads |\n|---|---|---|---|"
    );
    let every = if samples.all.len() > 14 { 6 } else { 1 };
    for (index, sample) in samples.all.iter().enumerate() {
        let marked = samples.first.is_some_and(|first| first.at_s == sample.at_s);
        if index % every == 0 || index + 1 == samples.all.len() || marked {
            let _ = writeln!(
                body,
                "| {:.0} s{} | {:.1} MiB | {} | {} |",
                sample.at_s,
                if marked { " (first after warm-up)" } else { "" },
                sample.rss_kib as f64 / 1024.0,
                sample.fds,
                sample
                    .threads
                    .map_or_else(|| "–".to_owned(), |threads| threads.to_string())
            );
        }
    }
    body
}

#[cfg(test)]
mod tests;
