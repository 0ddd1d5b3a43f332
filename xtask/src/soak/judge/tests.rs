//! The soak checks, each failing on a made-up soak spoilt in its own way
//! and passing on a clean one.

use std::collections::BTreeMap;

use warmgate_loadgen::report::{
    ChatDrain, ChatSummary, PathProbes, Prefill, ProbePaths, StateRecord, Timeline,
};

use super::*;

// === a clean soak, made up ===

fn timings(p50_us: f64) -> Timings {
    Timings {
        n: 10,
        p50_us,
        p99_us: p50_us * 2.0,
        max_us: p50_us * 3.0,
        mean_us: p50_us,
    }
}

fn sample(at_s: f64, rss_kib: u64, fds: usize) -> ProcessSample {
    ProcessSample {
        at_s,
        rss_kib,
        fds,
        threads: Some(3),
    }
}

fn path_probes() -> PathProbes {
    PathProbes {
        probes: 600,
        first_ms: Some(1.0),
        last_ms: Some(60_000.0),
        latency: Some(timings(800.0)),
        statuses: [(200, 600)].into(),
        slow_count: 0,
        slow: Vec::new(),
        failed_count: 0,
        failed: Vec::new(),
        all: Vec::new(),
    }
}

fn counts(outcomes: &[(&str, u64)]) -> BTreeMap<String, u64> {
    outcomes
        .iter()
        .map(|(label, count)| ((*label).to_owned(), *count))
        .collect()
}

/// A minute's soak in which everything went as it should.
fn clean_soak() -> SoakReport {
    SoakReport {
        started_unix_ms: 1.0,
        ended_unix_ms: 61_000.0,
        authentication: true,
        load: "LoadArguments { .. }".to_owned(),
        seconds: 60.0,
        cycle_seconds: 10.0,
        cycles: 6,
        prefill: Prefill {
            messages_per_client: 180,
            clients: 200,
            seconds: 12.0,
        },
        samples: vec![
            sample(0.0, 10_000, 200),
            sample(10.0, 20_000, 210),
            sample(20.0, 30_000, 212),
            sample(60.0, 31_000, 213),
        ],
        held: HeldCrowds {
            per_cycle: 50,
            held: 300,
            released: 300,
            flip_to_ready: Some(timings(3000.0)),
            problems: Vec::new(),
        },
        quiet_clients: 200,
        chat: ChatSummary {
            clients: 200,
            rooms: 8,
            joined: 200,
            join_failures: Vec::new(),
            messages_sent: 6000,
            messages_acked: 6000,
            ack_latency: Some(timings(2000.0)),
            deliveries_required: 150_000,
            delivered_once: 150_000,
            missing: 0,
            duplicated: 0,
            unknown_deliveries: 0,
            foreign_frames: 0,
            wrong_from: 0,
            stray_acks: 0,
            repeated_acks: 0,
            problems: Vec::new(),
            error_frames: BTreeMap::new(),
            ends: BTreeMap::new(),
            readiness_pushes: BTreeMap::new(),
            drain: ChatDrain {
                told_draining: 0,
                first_draining_ms: None,
                last_closed_ms: None,
                close_codes: BTreeMap::new(),
                draining_to_close: None,
            },
        },
        attempts: AttemptCounts {
            total: 120,
            by_credential: [
                (
                    Credential::Good,
                    counts(&[
                        ("admitted", 90),
                        ("admitted_after_hold", 6),
                        ("unavailable:hold_timeout", 4),
                    ]),
                ),
                (
                    Credential::Expired,
                    counts(&[("http_401:invalid_token", 20)]),
                ),
            ]
            .into(),
            silent: Vec::new(),
        },
        probes: ProbeSummary {
            interval_ms: 100.0,
            limit_ms: 50.0,
            paths: ProbePaths {
                livez: path_probes(),
                readyz: path_probes(),
            },
        },
        timeline: Timeline {
            events: vec![StateRecord {
                at_ms: 1.0,
                seq: 1,
                state: "ready".to_owned(),
                phase: None,
                pending: Vec::new(),
                degraded: Vec::new(),
            }],
            breaks: Vec::new(),
        },
    }
}

/// The check named `starting`, judged on `load` with authentication.
fn check(load: &SoakReport, starting: &str) -> Check {
    checks(load, Auth::Jwt, true, "ran to the end")
        .into_iter()
        .find(|check| check.name.starts_with(starting))
        .unwrap_or_else(|| panic!("no check starts with {starting:?}"))
}

/// Asserts that the clean soak passes the check named `starting` and that
/// `spoil` makes it fail.
fn fails_when(starting: &str, spoil: impl FnOnce(&mut SoakReport)) -> Check {
    let mut load = clean_soak();
    let good = check(&load, starting);
    assert!(good.passed, "the clean soak fails: {good:?}");
    spoil(&mut load);
    let bad = check(&load, starting);
    assert!(!bad.passed, "the spoilt soak passes: {bad:?}");
    bad
}

// === the whole judgement ===

#[test]
fn a_clean_soak_passes_every_check() {
    let load = clean_soak();
    let checks = checks(&load, Auth::Jwt, true, "ran to the end");
    assert_eq!(checks.len(), 8);
    for check in &checks {
        assert!(check.passed, "{check:?}");
    }
    let markdown = section(&load, Auth::Jwt, &checks, "now, here");
    assert!(
        markdown.starts_with(
            "Last run: now, here.\n\n**Result: every required check passes** (7 checks)."
        ),
        "{markdown}"
    );
    // The first sample after 12 s of warm-up is marked.
    assert!(markdown.contains("| 20 s (first after warm-up) | 29.3 MiB | 212 | 3 |"));
    assert!(markdown.contains("Warm-up: the first 12 s"));
}

#[test]
fn without_authentication_there_is_no_unauthorised_check() {
    let checks = checks(&clean_soak(), Auth::None, true, "");
    assert!(
        checks
            .iter()
            .all(|check| !check.name.starts_with("unauthorised"))
    );
}

// === one check each ===

#[test]
fn a_crash_fails() {
    let checks = checks(&clean_soak(), Auth::Jwt, false, "died during the soak");
    assert!(!checks[0].passed);
}

#[test]
fn drift_is_a_share_of_the_first() {
    assert!((drift(100.0, 104.0) - 0.04).abs() < 1e-9);
    assert!((drift(100.0, 94.0) + 0.06).abs() < 1e-9);
    assert!(drift(0.0, 1.0).is_infinite());
}

#[test]
fn rss_growing_after_warm_up_fails() {
    let bad = fails_when("RSS flat", |load| load.samples[3].rss_kib = 32_000);
    assert!(bad.figures.contains("(+6.7 %)"), "{}", bad.figures);
}

#[test]
fn descriptors_growing_after_warm_up_fail() {
    fails_when("open file descriptors flat", |load| {
        load.samples[3].fds = 240
    });
}

#[test]
fn too_few_samples_after_warm_up_fail() {
    let bad = fails_when("RSS flat", |load| load.samples.truncate(2));
    assert!(
        bad.figures.starts_with("too few samples"),
        "{}",
        bad.figures
    );
}

#[test]
fn a_silent_or_unknown_outcome_fails_the_attempts_check() {
    fails_when("every connection attempt", |load| {
        load.attempts
            .by_credential
            .entry(Credential::Good)
            .or_default()
            .insert("silent".to_owned(), 1);
    });
    // A label this judge cannot read is a problem, not a pass.
    fails_when("every connection attempt", |load| {
        load.attempts
            .by_credential
            .entry(Credential::Good)
            .or_default()
            .insert("accepted".to_owned(), 1);
    });
    fails_when("every connection attempt", |load| {
        load.attempts.by_credential.clear();
    });
}

#[test]
fn an_unauthorised_attempt_not_refused_with_401_fails() {
    fails_when("unauthorised attempts", |load| {
        load.attempts
            .by_credential
            .entry(Credential::NoToken)
            .or_default()
            .insert("admitted".to_owned(), 1);
    });
    fails_when("unauthorised attempts", |load| {
        load.attempts.by_credential.remove(&Credential::Expired);
    });
}

#[test]
fn a_held_client_not_released_fails() {
    fails_when("held clients released", |load| load.held.released = 299);
    fails_when("held clients released", |load| {
        load.held
            .problems
            .push("cycle 3: only 49 of 50 clients were held".to_owned());
    });
    fails_when("held clients released", |load| {
        load.held.held = 0;
        load.held.released = 0;
    });
}

#[test]
fn a_lost_or_duplicated_message_fails_the_delivery_check() {
    fails_when("every acknowledged", |load| load.chat.missing = 1);
    fails_when("every acknowledged", |load| load.chat.duplicated = 1);
    fails_when("every acknowledged", |load| {
        load.chat.unknown_deliveries = 1
    });
    fails_when("every acknowledged", |load| load.chat.messages_acked = 0);
}

#[test]
fn a_slow_probe_is_reported() {
    let bad = fails_when("`/livez` and `/readyz`", |load| {
        load.probes.paths.readyz.slow_count = 1;
    });
    assert!(!bad.required);
    fails_when("`/livez` and `/readyz`", |load| {
        load.probes.paths.livez.failed_count = 1;
    });
}

#[test]
fn a_lost_duplicated_or_foreign_message_fails_the_delivery_check() {
    fails_when("every acknowledged", |load| load.chat.missing = 1);
    fails_when("every acknowledged", |load| load.chat.duplicated = 1);
    fails_when("every acknowledged", |load| load.chat.foreign_frames = 1);
    fails_when("every acknowledged", |load| {
        load.chat.unknown_deliveries = 1
    });
    fails_when("every acknowledged", |load| load.chat.messages_acked = 0);
}
