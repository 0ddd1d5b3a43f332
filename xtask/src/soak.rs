//! `cargo xtask soak [--minutes M] [--auth jwt|none]`: the same system as
//! `chaos` (see `chaos::stack`) under steady churn for M minutes (10 by
//! default), checking that warmgate's memory and open file descriptors
//! stay flat.
//!
//! The load (`warmgate-loadgen soak`) runs in 10 s cycles: chat clients
//! stay connected and chat throughout; in each cycle churn workers come and
//! go (some with bad credentials when authenticating) and a crowd of
//! clients is held by turning a signal off and released by turning it on.
//! At the end of each cycle, once the churn and held clients have left, the
//! load generator samples warmgate's RSS and descriptor count from `/proc`,
//! so every sample sees the same population. After the warm-up (a fifth of
//! the run, at most a minute) the last sample must be within 5 % of the
//! first, for both; the command fails otherwise, or on a crash, a silent
//! connection, or a lost or duplicated acked message. It rewrites its
//! section of `docs/reliability.md`; raw figures and logs stay in
//! `target/soak`.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::chaos::report::{self, Check};
use crate::chaos::stack::{self, Auth, HOLD_SIGNAL, Stack};
use crate::chaos::{CHAT_CLIENTS, DEFAULT_AUTH, ROOMS, UNAUTHORISED_EVERY, build};
use crate::machine::{self, Machine};
use crate::server::target_dir;

const DEFAULT_MINUTES: f64 = 10.0;
const CYCLE_SECONDS: f64 = 10.0;
/// The last sample after warm-up may differ from the first by this share.
const TOLERANCE: f64 = 0.05;
/// The longest warm-up, and its share of a shorter run.
const WARM_UP_CAP_SECONDS: f64 = 60.0;
const WARM_UP_SHARE: f64 = 0.2;
const MESSAGE_INTERVAL_MS: u64 = 2000;
const CHURN_WORKERS: usize = 8;
const HELD_PER_CYCLE: usize = 50;
const PROBE_LIMIT_MS: f64 = 50.0;
/// A room remembers the last 4,096 `client_msg_id`s it accepted (see
/// `docs/protocol.md`) and keeps its last 1,024 frames for slow readers:
/// bounded buffers that fill with traffic. Before the clock starts, each
/// chat client sends its share of 4,096 per room, and a tenth more, so
/// that they are full before the first sample.
const REMEMBERED_IDS_PER_ROOM: usize = 4096;

/// The prefill messages each chat client sends.
fn prefill_messages() -> usize {
    (REMEMBERED_IDS_PER_ROOM * ROOMS).div_ceil(CHAT_CLIENTS) * 11 / 10
}

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let (auth, rest) = Auth::take_flag(args, DEFAULT_AUTH)?;
    let minutes = match rest.as_slice() {
        [] => DEFAULT_MINUTES,
        [flag, value] if flag == "--minutes" => value
            .parse::<f64>()
            .ok()
            .filter(|minutes| *minutes > 0.0)
            .with_context(|| {
                format!("`--minutes {value}`: expected a number of minutes above 0")
            })?,
        _ => bail!(
            "`cargo xtask soak` takes `--minutes M` and `--auth jwt|none`, got `{}`",
            rest.join(" ")
        ),
    };
    let seconds = minutes * 60.0;
    let started = Instant::now();
    build()?;
    let dir = target_dir().join("soak");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;

    let mut stack = Stack::start(&dir, auth)?;
    let mut loadgen_args: Vec<String> = vec![
        "soak".into(),
        "--url".into(),
        stack.ws_url(),
        "--signal-url".into(),
        stack.signal_url(HOLD_SIGNAL)?,
        "--pid".into(),
        stack.warmgate.pid().to_string(),
        "--seconds".into(),
        seconds.to_string(),
        "--cycle-seconds".into(),
        CYCLE_SECONDS.to_string(),
        "--held-per-cycle".into(),
        HELD_PER_CYCLE.to_string(),
        "--prefill-messages".into(),
        prefill_messages().to_string(),
    ];
    loadgen_args.extend(crate::chaos::crowd_arguments(
        &stack,
        MESSAGE_INTERVAL_MS,
        CHURN_WORKERS,
    ));
    let loadgen = crate::chaos::loadgen_start(&loadgen_args)?;
    let load = loadgen.finish(Duration::from_secs_f64(seconds + 180.0));
    let died_early = stack.warmgate.exited()?;
    let exit = match died_early {
        Some(status) => status,
        None => stack.warmgate.stop()?,
    };
    stack.keep_logs(&dir);
    let panics = stack::panics_in_log(&stack.warmgate_log);
    drop(stack);
    let load = load?;
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(
            &json!({ "auth": auth.name(), "minutes": minutes, "load": load }),
        )?,
    )?;

    let (checks, markdown) = judge(
        &load,
        auth,
        minutes,
        died_early.is_none() && exit.success() && panics.is_empty(),
        &format!(
            "warmgate {}; exit after SIGTERM: {exit}; panics in its log: {}",
            if died_early.is_some() {
                "died during the soak"
            } else {
                "ran to the end"
            },
            panics.len()
        ),
        started.elapsed().as_secs_f64(),
    );
    report::print_checks("soak", &checks);
    let report_path = report::write_section("soak", "Soak", &markdown)?;
    println!(
        "soak: {:.0} s; figures and logs in {}, report in {}",
        started.elapsed().as_secs_f64(),
        dir.display(),
        report_path.display()
    );
    let failed = report::failed(&checks);
    if !failed.is_empty() {
        bail!(
            "soak: {} check(s) failed: {}",
            failed.len(),
            failed.join("; ")
        );
    }
    Ok(())
}

fn number(value: &Value, pointer: &str) -> f64 {
    value
        .pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
}

/// One sample: seconds into the soak, RSS in KiB, descriptors, threads.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at_s: f64,
    rss_kib: f64,
    fds: f64,
    threads: f64,
}

/// The share by which `last` differs from `first`.
fn drift(first: f64, last: f64) -> f64 {
    if first == 0.0 {
        f64::INFINITY
    } else {
        (last - first) / first
    }
}

fn judge(
    load: &Value,
    auth: Auth,
    minutes: f64,
    alive: bool,
    alive_figures: &str,
    seconds: f64,
) -> (Vec<Check>, String) {
    let samples: Vec<Sample> = load["samples"]
        .as_array()
        .map(|samples| {
            samples
                .iter()
                .map(|sample| Sample {
                    at_s: number(sample, "/at_s"),
                    rss_kib: number(sample, "/rss_kib"),
                    fds: number(sample, "/fds"),
                    threads: number(sample, "/threads"),
                })
                .collect()
        })
        .unwrap_or_default();
    let soaked = number(load, "/seconds");
    let warm_up = (soaked * WARM_UP_SHARE).min(WARM_UP_CAP_SECONDS);
    let first = samples
        .iter()
        .find(|sample| sample.at_s >= warm_up)
        .copied();
    let last = samples.last().copied();
    let mut checks = vec![Check::required(
        "no panic and no crash",
        alive,
        alive_figures.to_owned(),
    )];
    let flat = |what: &str, pick: fn(&Sample) -> f64, unit: &str| match (first, last) {
        (Some(first), Some(last)) if last.at_s > first.at_s => {
            let change = drift(pick(&first), pick(&last));
            Check::required(
                &format!("{what} flat after warm-up (last sample within 5 % of the first)"),
                change.abs() <= TOLERANCE,
                format!(
                    "{:.0}{unit} at {:.0} s → {:.0}{unit} at {:.0} s ({:+.1} %); range after warm-up {:.0}–{:.0}{unit}",
                    pick(&first),
                    first.at_s,
                    pick(&last),
                    last.at_s,
                    change * 100.0,
                    samples
                        .iter()
                        .filter(|sample| sample.at_s >= warm_up)
                        .map(pick)
                        .fold(f64::INFINITY, f64::min),
                    samples
                        .iter()
                        .filter(|sample| sample.at_s >= warm_up)
                        .map(pick)
                        .fold(0.0, f64::max),
                ),
            )
        }
        _ => Check::required(
            &format!("{what} flat after warm-up (last sample within 5 % of the first)"),
            false,
            format!(
                "too few samples after a warm-up of {warm_up:.0} s: {}",
                samples.len()
            ),
        ),
    };
    checks.push(flat("RSS", |sample| sample.rss_kib, " KiB"));
    checks.push(flat("open file descriptors", |sample| sample.fds, ""));

    // Attempts: counts by credential and outcome.
    let mut attempt_problems = 0_u64;
    let mut attempts = 0_u64;
    let mut unauthorised = 0_u64;
    let mut unauthorised_refused = 0_u64;
    let mut outcome_text = Vec::new();
    if let Some(by_credential) = load
        .pointer("/attempts/by_credential")
        .and_then(Value::as_object)
    {
        for (credential, outcomes) in by_credential {
            for (outcome, count) in outcomes.as_object().into_iter().flatten() {
                let count = count.as_u64().unwrap_or(0);
                attempts += count;
                let fine = if credential == "good_token" {
                    outcome.starts_with("admitted") || outcome.starts_with("unavailable:")
                } else {
                    unauthorised += count;
                    let refused = outcome.starts_with("http_401");
                    unauthorised_refused += if refused { count } else { 0 };
                    refused
                };
                if !fine {
                    attempt_problems += count;
                }
                outcome_text.push(format!("{credential} → `{outcome}`: {count}"));
            }
        }
    }
    checks.push(Check::required(
        "every connection attempt ended admitted, `unavailable` with a reason, or 401; none silent",
        attempts > 0 && attempt_problems == 0,
        format!(
            "{attempts} attempts, {attempt_problems} otherwise; {}",
            outcome_text.join(", ")
        ),
    ));
    if auth == Auth::Jwt {
        checks.push(Check::required(
            "unauthorised attempts each got 401",
            unauthorised > 0 && unauthorised == unauthorised_refused,
            format!("{unauthorised_refused} of {unauthorised}"),
        ));
    }
    let held = number(load, "/held/held");
    let released = number(load, "/held/released");
    let cycles = number(load, "/cycles");
    let flip_problems = load
        .pointer("/held/problems")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    checks.push(Check::required(
        "held clients released by each signal flip",
        held > 0.0 && released == held && flip_problems == 0,
        format!(
            "{released:.0} of {held:.0} held clients released over {cycles:.0} flips; flip to `ready` p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {flip_problems} flip problems",
            number(load, "/held/flip_to_ready/p50_us") / 1e3,
            number(load, "/held/flip_to_ready/p99_us") / 1e3,
            number(load, "/held/flip_to_ready/max_us") / 1e3
        ),
    ));
    let acked = number(load, "/chat/messages_acked");
    let missing = number(load, "/chat/missing");
    let duplicated = number(load, "/chat/duplicated");
    let required = number(load, "/chat/deliveries_required");
    let once = number(load, "/chat/delivered_once");
    checks.push(Check::required(
        "every acknowledged chat message was delivered exactly once to every member of its room connected throughout",
        acked > 0.0 && missing == 0.0 && duplicated == 0.0 && once == required && number(load, "/chat/unknown_deliveries") == 0.0,
        format!(
            "{} chat clients, {acked:.0} of {:.0} messages acked; {once:.0} of {required:.0} required deliveries exactly once; {missing:.0} missing, {duplicated:.0} duplicated",
            number(load, "/chat/joined"),
            number(load, "/chat/messages_sent")
        ),
    ));
    let mut probe_figures = Vec::new();
    let mut probes_ok = true;
    for path in ["/livez", "/readyz"] {
        let summary = load
            .pointer(&format!("/probes/paths/{}", path.replace('/', "~1")))
            .cloned()
            .unwrap_or_default();
        let slow = number(&summary, "/slow_count");
        let failed = number(&summary, "/failed_count");
        probes_ok &= slow == 0.0 && failed == 0.0;
        probe_figures.push(format!(
            "{path}: {:.0} probes, p99 {:.1} ms, max {:.1} ms, {slow:.0} over {PROBE_LIMIT_MS} ms, {failed:.0} unanswered",
            number(&summary, "/probes"),
            number(&summary, "/latency/p99_us") / 1e3,
            number(&summary, "/latency/max_us") / 1e3
        ));
    }
    checks.push(Check::reported(
        "`/livez` and `/readyz` answered within 50 ms throughout",
        probes_ok,
        probe_figures.join("; "),
    ));

    let failed = report::failed(&checks);
    let verdict = if failed.is_empty() {
        "**Result: every required check passes.**".to_owned()
    } else {
        format!(
            "**Result: {} required check(s) FAIL:** {}.",
            failed.len(),
            failed.join("; ")
        )
    };
    let mut body = String::new();
    let _ = writeln!(
        body,
        "Last run: {}, `cargo xtask soak --minutes {minutes}` (authentication: `{}`), {seconds:.0} s in all, on {}; tree at {}.\n\n{verdict}\n",
        machine::now_utc(),
        auth.name(),
        Machine::read(),
        machine::revision()
    );
    let _ = writeln!(
        body,
        "### Method\n\n- The system of the chaos run above, without faults, for {soaked:.0} s in {cycles:.0} cycles of {CYCLE_SECONDS:.0} s.\n- First, before the clock starts, each chat client sends {} messages ({:.0} s), so that each room's bounded buffers (the last 4,096 `client_msg_id`s it remembers, the last 1,024 frames it keeps for slow readers) are full: they grow until then by design.\n- Throughout: {CHAT_CLIENTS} chat clients in {ROOMS} rooms, each sending an acknowledged message every {:.0} s; probes of `/livez` and `/readyz` every 100 ms.\n- In each cycle: {CHURN_WORKERS} churn workers for the first 6 s (admitted clients stay 0.2–1.5 s{}); after 1 s the signal `{HOLD_SIGNAL}` turns off, {HELD_PER_CYCLE} clients connect and are held, the signal turns on and they are released, stay 0.2–1 s and leave.\n- At the end of each cycle, once every churn and held client has left (only the chat clients remain), RSS (`VmRSS`) and the open descriptors (`/proc/PID/fd`) of warmgate are read. Warm-up: the first {warm_up:.0} s (a fifth of the run, at most a minute). Flat means the last sample within 5 % of the first after warm-up.\n",
        number(load, "/prefill/messages_per_client"),
        number(load, "/prefill/seconds"),
        MESSAGE_INTERVAL_MS as f64 / 1e3,
        if auth == Auth::Jwt {
            format!("; one attempt in {UNAUTHORISED_EVERY} unauthorised")
        } else {
            String::new()
        }
    );
    let _ = writeln!(body, "### Checks\n\n{}", report::checks_table(&checks));
    let _ = writeln!(
        body,
        "### Samples\n\n| at | RSS | descriptors | threads |\n|---|---|---|---|"
    );
    let every = if samples.len() > 14 { 6 } else { 1 };
    for (index, sample) in samples.iter().enumerate() {
        let marked = first.is_some_and(|first| first.at_s == sample.at_s);
        if index % every == 0 || index + 1 == samples.len() || marked {
            let _ = writeln!(
                body,
                "| {:.0} s{} | {:.1} MiB | {:.0} | {:.0} |",
                sample.at_s,
                if marked { " (first after warm-up)" } else { "" },
                sample.rss_kib / 1024.0,
                sample.fds,
                sample.threads
            );
        }
    }
    (checks, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_is_a_share_of_the_first() {
        assert!((drift(100.0, 104.0) - 0.04).abs() < 1e-9);
        assert!((drift(100.0, 94.0) + 0.06).abs() < 1e-9);
        assert!(drift(0.0, 1.0).is_infinite());
    }

    #[test]
    fn flatness_is_judged_after_warm_up() {
        let load = json!({
            "seconds": 60.0,
            "cycles": 6,
            "samples": [
                {"at_s": 0.0, "rss_kib": 10000, "fds": 200, "threads": 3},
                {"at_s": 10.0, "rss_kib": 20000, "fds": 210, "threads": 3},
                {"at_s": 20.0, "rss_kib": 30000, "fds": 212, "threads": 3},
                {"at_s": 60.0, "rss_kib": 31000, "fds": 213, "threads": 3},
            ],
        });
        let (checks, _) = judge(&load, Auth::None, 1.0, true, "", 60.0);
        let rss = checks
            .iter()
            .find(|check| check.name.starts_with("RSS"))
            .map(|check| check.passed);
        let fds = checks
            .iter()
            .find(|check| check.name.starts_with("open file"))
            .map(|check| check.passed);
        assert_eq!(rss, Some(true));
        assert_eq!(fds, Some(true));
    }
}
