//! The chaos checks, each failing on a made-up run spoilt in its own way
//! and passing on a clean one, and the pieces they read.

use warmgate_loadgen::report::{
    AttemptCounts, AttemptOutcome, AttemptRecord, ChatDrain, ChatLoadReport, Credential,
    PathProbes, ProbeAnswer, ProbePaths, ProbeRecord, ProbeSummary, StateRecord, Timeline,
};

use super::super::Marks;
use super::facts::ProbeWindow;
use super::*;

// === a clean run, made up ===

fn timings(p50_us: f64) -> Timings {
    Timings {
        n: 10,
        p50_us,
        p99_us: p50_us * 2.0,
        max_us: p50_us * 3.0,
        mean_us: p50_us,
    }
}

fn state(at_ms: f64, seq: u64, state: &str, pending: &[&str], degraded: &[&str]) -> StateRecord {
    StateRecord {
        at_ms,
        seq,
        state: state.to_owned(),
        phase: None,
        pending: pending.iter().map(|name| (*name).to_owned()).collect(),
        degraded: degraded.iter().map(|name| (*name).to_owned()).collect(),
    }
}

fn attempt(credential: Credential, started_ms: f64, outcome: AttemptOutcome) -> AttemptRecord {
    AttemptRecord {
        credential,
        started_ms,
        ended_ms: started_ms + 5.0,
        outcome,
        stay: None,
    }
}

fn unavailable(reason: &str, close_code: Option<u16>) -> AttemptOutcome {
    AttemptOutcome::Unavailable {
        reason: reason.to_owned(),
        retry_after_ms: Some(2000),
        close_code,
    }
}

fn refused(status: u16) -> AttemptOutcome {
    AttemptOutcome::Refused {
        status,
        error: "invalid_token".to_owned(),
    }
}

fn probe(system_ms: f64, latency_ms: f64, answer: ProbeAnswer) -> ProbeRecord {
    ProbeRecord {
        system_ms,
        latency_ms,
        answer,
    }
}

fn path_probes(all: Vec<ProbeRecord>) -> PathProbes {
    PathProbes {
        probes: all.len(),
        first_ms: Some(1000.0),
        last_ms: Some(9600.0),
        latency: Some(timings(1000.0)),
        statuses: [(200, 2)].into(),
        slow_count: 0,
        slow: Vec::new(),
        failed_count: 0,
        failed: Vec::new(),
        all,
    }
}

fn refused_connect() -> ProbeAnswer {
    ProbeAnswer::Error("cannot connect: connection refused".to_owned())
}

/// Every state change the fault timeline expects, told to the chat
/// clients (all but `draining`).
const PUSHED: &str = "degraded,ready,not_ready,ready,not_ready,ready,not_ready";

/// A run in which everything went as it should: the faults at whole
/// seconds, each state change 100 ms after its fault, warmgate stopped
/// listening at 9.5 s and its exit was seen at 10 s.
fn clean_run() -> Run {
    let mut marks = Marks::default();
    for (index, name) in [
        "load_joined",
        "redis_killed",
        "redis_restarting",
        "postgres_stopping",
        "postgres_starting",
        "auth_hung",
        "auth_resumed",
        "signal_off",
        "sigterm",
        "exited",
    ]
    .into_iter()
    .enumerate()
    {
        marks.list.push((name, 1000.0 * (index as f64 + 1.0)));
    }
    let events = vec![
        state(900.0, 1, "ready", &[], &[]),
        state(2100.0, 2, "degraded", &[], &["redis"]),
        state(3100.0, 3, "ready", &[], &[]),
        state(4100.0, 4, "not_ready", &["database"], &[]),
        state(5100.0, 5, "ready", &[], &[]),
        state(6100.0, 6, "not_ready", &["auth"], &[]),
        state(7100.0, 7, "ready", &[], &[]),
        state(8100.0, 8, "not_ready", &[HOLD_SIGNAL], &[]),
        state(9100.0, 9, "draining", &[], &[]),
    ];
    let attempt_list = vec![
        attempt(
            Credential::Good,
            1500.0,
            AttemptOutcome::Admitted { held: false },
        ),
        attempt(Credential::NoToken, 1600.0, refused(401)),
        attempt(
            Credential::Good,
            4200.0,
            unavailable("hold_timeout", Some(1013)),
        ),
        attempt(
            Credential::Good,
            8200.0,
            AttemptOutcome::Admitted { held: true },
        ),
        attempt(
            Credential::Good,
            9200.0,
            unavailable("draining", Some(1013)),
        ),
        // After warmgate stopped listening: the server gone, excused.
        attempt(
            Credential::Good,
            9600.0,
            AttemptOutcome::NoConnection {
                why: "connection refused".to_owned(),
            },
        ),
    ];
    let chat = ChatSummary {
        clients: 4,
        rooms: 2,
        joined: 4,
        join_failures: Vec::new(),
        messages_sent: 10,
        messages_acked: 10,
        ack_latency: Some(timings(2000.0)),
        deliveries_required: 20,
        delivered_once: 20,
        missing: 0,
        duplicated: 0,
        unknown_deliveries: 0,
        foreign_frames: 0,
        wrong_from: 0,
        stray_acks: 0,
        repeated_acks: 0,
        problems: Vec::new(),
        error_frames: BTreeMap::new(),
        ends: [("closed with 1001".to_owned(), 4)].into(),
        readiness_pushes: [(PUSHED.to_owned(), 4)].into(),
        drain: ChatDrain {
            told_draining: 4,
            first_draining_ms: Some(9100.0),
            last_closed_ms: Some(9400.0),
            close_codes: [("1001".to_owned(), 4)].into(),
            draining_to_close: Some(timings(7_000_000.0)),
        },
    };
    let probes = ProbeSummary {
        interval_ms: 100.0,
        limit_ms: 50.0,
        paths: ProbePaths {
            livez: path_probes(vec![
                probe(1000.0, 1.0, ProbeAnswer::Status(200)),
                probe(9200.0, 1.0, ProbeAnswer::Status(200)),
                probe(9600.0, 0.1, refused_connect()),
            ]),
            readyz: path_probes(vec![
                probe(1000.0, 1.0, ProbeAnswer::Status(200)),
                probe(9200.0, 1.0, ProbeAnswer::Status(503)),
                probe(9600.0, 0.1, refused_connect()),
            ]),
        },
    };
    Run {
        auth: Auth::Jwt,
        marks,
        aborted: None,
        exit: Some("exit status: 0".to_owned()),
        exit_success: true,
        died_early: false,
        panics: Vec::new(),
        stopped_listening_ms: Some(9500.0),
        load: ChatLoadReport {
            started_unix_ms: 500.0,
            ended_unix_ms: 11_000.0,
            authentication: true,
            load: "LoadArguments { .. }".to_owned(),
            chat,
            attempts: AttemptCounts {
                total: attempt_list.len(),
                by_credential: BTreeMap::new(),
                silent: Vec::new(),
            },
            attempt_list,
            probes,
            timeline: Timeline {
                events,
                breaks: Vec::new(),
            },
        },
        seconds: 60.0,
    }
}

/// The check named `starting`, judged on `run`.
fn check(run: &Run, starting: &str) -> Check {
    let facts = Facts::of(run);
    checks(run, &facts)
        .into_iter()
        .find(|check| check.name.starts_with(starting))
        .unwrap_or_else(|| panic!("no check starts with {starting:?}"))
}

/// Asserts that the clean run passes the check named `starting` and that
/// `spoil` makes it fail.
fn fails_when(starting: &str, spoil: impl FnOnce(&mut Run)) -> Check {
    let mut run = clean_run();
    let good = check(&run, starting);
    assert!(good.passed, "the clean run fails: {good:?}");
    spoil(&mut run);
    let bad = check(&run, starting);
    assert!(!bad.passed, "the spoilt run passes: {bad:?}");
    bad
}

// === the whole judgement ===

#[test]
fn a_clean_run_passes_every_check() {
    let run = clean_run();
    let facts = Facts::of(&run);
    let checks = checks(&run, &facts);
    assert_eq!(checks.len(), 10);
    for check in &checks {
        assert!(check.passed, "{check:?}");
    }
    let markdown = section(&run, &facts, &checks, "now, here");
    assert!(markdown.starts_with(
        "Last run: now, here.\n\n**Result: every required check passes** (9 checks)."
    ));
    assert!(markdown.contains(
        "| 8 | SIGTERM to warmgate | 8.0 s | `draining` | `draining` at 8.1 s | 100 ms | pass |"
    ));
    assert!(markdown.contains(
        "| window | attempts | `admitted` | `admitted_after_hold` | `http_401` | `unavailable:draining` | `unavailable:hold_timeout` |"
    ));
    assert!(markdown.contains("| draining, until exit | 1 | 0 | 0 | 0 | 1 | 0 |"));
    assert!(markdown.contains("| ack latency p50 / p99 / max | 2.0 / 4.0 / 6.0 ms |"));
    assert!(
        markdown
            .contains("| `/readyz` | 2 | 1.00 ms | 2.00 ms | 3.00 ms | 0 | 0 | 1 | {\"200\":2} |")
    );
}

#[test]
fn a_failed_required_check_is_the_verdict() {
    let mut run = clean_run();
    run.load.chat.missing = 1;
    let facts = Facts::of(&run);
    let checks = checks(&run, &facts);
    let markdown = section(&run, &facts, &checks, "now");
    assert!(markdown.contains(
        "**Result: 1 required check(s) FAIL:** every acknowledged chat message was delivered"
    ));
}

// === one check each ===

#[test]
fn no_panic_and_no_crash_fails_on_a_panic_or_an_early_death() {
    fails_when("no panic", |run| {
        run.panics.push("thread panicked".to_owned())
    });
    fails_when("no panic", |run| run.died_early = true);
    fails_when("no panic", |run| {
        run.aborted = Some("Redis did not restart".to_owned())
    });
}

#[test]
fn state_transitions_fail_out_of_their_fault_window_or_naming_another_check() {
    // Degraded before Redis was killed.
    fails_when("state transitions", |run| {
        run.load.timeline.events[1].at_ms = 1900.0;
    });
    // Not ready, but naming another check than the database.
    fails_when("state transitions", |run| {
        run.load.timeline.events[3].pending = vec!["redis".to_owned()];
    });
    // A change missing altogether.
    fails_when("state transitions", |run| {
        run.load.timeline.events.pop();
    });
    // The stream broke.
    fails_when("state transitions", |run| {
        run.load
            .timeline
            .breaks
            .push(warmgate_loadgen::report::StreamBreak {
                at_ms: 3000.0,
                why: "reset".to_owned(),
            });
    });
}

#[test]
fn a_repeated_snapshot_is_one_change() {
    let mut run = clean_run();
    let repeated = run.load.timeline.events[1].clone();
    run.load.timeline.events.insert(2, repeated);
    assert!(check(&run, "state transitions").passed);
}

#[test]
fn a_silent_attempt_or_an_unjoined_chat_client_fails_the_attempts_check() {
    let bad = fails_when("every connection attempt", |run| {
        run.load.attempt_list.push(attempt(
            Credential::Good,
            5500.0,
            AttemptOutcome::Silent {
                why: "ended without `ready` or `unavailable`".to_owned(),
            },
        ));
    });
    assert!(
        bad.figures
            .contains("good_token at 4.5 s → silent after 5 ms (ended without"),
        "{}",
        bad.figures
    );
    fails_when("every connection attempt", |run| run.load.chat.joined = 3);
    // Nothing listening before warmgate said it stopped is no excuse.
    fails_when("every connection attempt", |run| {
        run.load.attempt_list[0].outcome = AttemptOutcome::NoConnection {
            why: "connection refused".to_owned(),
        };
    });
    fails_when("every connection attempt", |run| {
        run.load.attempt_list.clear()
    });
}

#[test]
fn an_admitted_or_otherwise_refused_unauthorised_attempt_fails() {
    fails_when("unauthorised attempts", |run| {
        run.load.attempt_list[1].outcome = AttemptOutcome::Admitted { held: false };
    });
    fails_when("unauthorised attempts", |run| {
        run.load.attempt_list[1].outcome = refused(403);
    });
    fails_when("unauthorised attempts", |run| {
        run.load.attempt_list.remove(1);
    });
}

#[test]
fn without_authentication_the_unauthorised_check_is_reported_not_run() {
    let mut run = clean_run();
    run.auth = Auth::None;
    let check = check(&run, "unauthorised attempts");
    assert!(!check.passed && !check.required);
    assert!(check.figures.starts_with("not run"));
}

#[test]
fn the_drain_check_fails_without_1013_or_1001() {
    fails_when("on SIGTERM", |run| {
        run.load.attempt_list[4].outcome = unavailable("draining", None);
    });
    fails_when("on SIGTERM", |run| {
        run.load.attempt_list[4].outcome = unavailable("hold_timeout", Some(1013));
    });
    fails_when("on SIGTERM", |run| {
        run.load.chat.drain.close_codes = [("1006".to_owned(), 4)].into();
    });
    fails_when("on SIGTERM", |run| run.load.chat.drain.told_draining = 3);
}

#[test]
fn a_lost_duplicated_or_foreign_message_fails_the_delivery_check() {
    fails_when("every acknowledged", |run| run.load.chat.missing = 1);
    fails_when("every acknowledged", |run| run.load.chat.duplicated = 1);
    fails_when("every acknowledged", |run| run.load.chat.foreign_frames = 1);
    fails_when("every acknowledged", |run| {
        run.load.chat.delivered_once = 19
    });
    fails_when("every acknowledged", |run| run.load.chat.messages_acked = 0);
}

#[test]
fn a_message_from_someone_else_fails_the_from_check() {
    fails_when("a chat message's `from`", |run| {
        run.load.chat.wrong_from = 1
    });
}

#[test]
fn a_slow_or_refused_probe_before_the_listeners_closed_fails() {
    fails_when("`/livez` and `/readyz` answered within", |run| {
        run.load.probes.paths.livez.all[0].latency_ms = 60.0;
    });
    fails_when("`/livez` and `/readyz` answered within", |run| {
        run.load.probes.paths.readyz.all[1].answer = refused_connect();
    });
    // Without the log line, nothing is excused.
    fails_when("`/livez` and `/readyz` answered within", |run| {
        run.stopped_listening_ms = None;
    });
}

#[test]
fn a_ready_readyz_while_draining_fails() {
    fails_when("from SIGTERM until", |run| {
        run.load.probes.paths.readyz.all[1].answer = ProbeAnswer::Status(200);
    });
    fails_when("from SIGTERM until", |run| {
        run.load.probes.paths.livez.all[1].answer = ProbeAnswer::Status(503);
    });
}

#[test]
fn a_missed_readiness_push_is_reported() {
    let bad = fails_when("admitted chat clients were told", |run| {
        run.load.chat.readiness_pushes =
            [(PUSHED.to_owned(), 3), ("degraded,ready".to_owned(), 1)].into();
    });
    assert!(!bad.required);
}

// === the pieces ===

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
        probe(100.0, 1.0, ProbeAnswer::Status(200)),
        probe(200.0, 1.0, ProbeAnswer::Status(200)), // SIGTERM at 150, draining seen at 210
        probe(250.0, 2.0, ProbeAnswer::Status(503)),
        probe(299.0, 60.0, ProbeAnswer::Status(503)), // slow, before the cutoff
        probe(300.0, 0.1, refused_connect()),         // at the cutoff
        probe(400.0, 0.1, refused_connect()),
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
        probe(220.0, 1.0, ProbeAnswer::Status(200)),
        probe(250.0, 0.1, refused_connect()),
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
