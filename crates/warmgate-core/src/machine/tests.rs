//! Table tests for every rule of the machine, and property tests for its
//! invariants over random event sequences.
//!
//! Long because it is the machine's rule table: every event in every state,
//! with the property tests that hold the invariants.

use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::{PhaseSpec, Plan, PlanError, human_duration};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// dependencies: database (required), redis (optional)
/// services: agent (required)
fn chat_plan() -> Plan {
    Plan::new(
        vec![
            PhaseSpec {
                name: "dependencies".into(),
                checks: vec![
                    CheckSpec::new("database", "tcp"),
                    CheckSpec::new("redis", "tcp").optional(),
                ],
            },
            PhaseSpec {
                name: "services".into(),
                checks: vec![CheckSpec::new("agent", "signal")],
            },
        ],
        Duration::from_secs(60),
    )
    .unwrap()
}

const DATABASE: CheckId = CheckId(0);
const REDIS: CheckId = CheckId(1);
const AGENT: CheckId = CheckId(2);

fn pass(check: CheckId, at: u64) -> Event {
    Event::CheckCompleted {
        check,
        outcome: CheckOutcome::Passed,
        latency: ms(1),
        at: ms(at),
    }
}

fn fail(check: CheckId, at: u64) -> Event {
    Event::CheckCompleted {
        check,
        outcome: CheckOutcome::Failed {
            error: "connection refused".into(),
            class: FailureClass::ConnectionRefused,
        },
        latency: ms(1),
        at: ms(at),
    }
}

fn transitions(effects: &[Effect]) -> Vec<(GateState, GateState)> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Transition(t) => Some((t.from, t.to)),
            Effect::Publish(_) => None,
        })
        .collect()
}

fn published(effects: &[Effect]) -> bool {
    effects
        .iter()
        .any(|effect| matches!(effect, Effect::Publish(_)))
}

/// A machine of the chat plan that has become ready.
fn ready_machine() -> Machine {
    let mut machine = Machine::new(chat_plan());
    machine.apply(pass(DATABASE, 1));
    machine.apply(pass(REDIS, 1));
    machine.apply(pass(AGENT, 2));
    assert_eq!(machine.state(), GateState::Ready);
    machine
}

#[test]
fn starts_unknown_and_starting_with_the_first_phase_current() {
    let machine = Machine::new(chat_plan());
    let snapshot = machine.snapshot();
    assert_eq!(snapshot.seq, 1);
    assert_eq!(snapshot.state, GateState::Starting);
    assert_eq!(snapshot.phase.as_deref(), Some("dependencies"));
    assert_eq!(snapshot.pending, ["database", "agent"]);
    assert!(snapshot.degraded.is_empty());
    assert!(
        snapshot
            .checks
            .iter()
            .all(|c| c.status == CheckStatus::Unknown)
    );
}

#[test]
fn an_empty_plan_is_ready_at_once() {
    let machine = Machine::new(Plan::new(Vec::new(), ms(10)).unwrap());
    assert_eq!(machine.state(), GateState::Ready);
    assert!(machine.snapshot().ever_ready);
}

#[test]
fn the_current_phase_is_the_first_with_a_required_check_not_passing() {
    let mut machine = Machine::new(chat_plan());
    // Every check starts at once, so a later phase can pass first.
    machine.apply(pass(AGENT, 1));
    assert_eq!(machine.snapshot().phase.as_deref(), Some("dependencies"));
    // An optional check never holds a phase back.
    machine.apply(pass(DATABASE, 2));
    assert_eq!(machine.state(), GateState::Ready);
    assert_eq!(machine.snapshot().phase, None);
}

#[test]
fn the_phase_advances_when_its_required_checks_pass() {
    let mut machine = Machine::new(chat_plan());
    let effects = machine.apply(pass(DATABASE, 5));
    assert!(published(&effects));
    assert_eq!(machine.snapshot().phase.as_deref(), Some("services"));
    assert_eq!(machine.snapshot().pending, ["agent"]);
}

#[test]
fn optional_checks_never_block_readiness() {
    let mut machine = Machine::new(chat_plan());
    machine.apply(fail(REDIS, 1));
    machine.apply(pass(DATABASE, 2));
    let effects = machine.apply(pass(AGENT, 3));
    assert_eq!(
        transitions(&effects),
        [(GateState::Starting, GateState::Degraded)]
    );
    assert_eq!(machine.snapshot().degraded, ["redis"]);
    assert!(machine.snapshot().pending.is_empty());
}

#[test]
fn unknown_never_counts_as_passing() {
    let mut machine = Machine::new(chat_plan());
    machine.apply(pass(DATABASE, 1));
    assert_eq!(machine.state(), GateState::Starting);
    assert_eq!(machine.snapshot().pending, ["agent"]);
}

#[test]
fn during_startup_a_result_sets_the_status_at_once() {
    let mut machine = Machine::new(chat_plan());
    machine.apply(pass(DATABASE, 1));
    machine.apply(fail(DATABASE, 2));
    let database = machine.snapshot().check("database").unwrap();
    assert_eq!(database.status, CheckStatus::Failing);
    assert_eq!(database.since, ms(2));
    machine.apply(pass(DATABASE, 3));
    assert_eq!(
        machine.snapshot().check("database").unwrap().status,
        CheckStatus::Passing
    );
}

#[test]
fn after_ready_a_required_check_needs_failure_threshold_failures() {
    let mut machine = ready_machine();
    for at in [10, 11] {
        let effects = machine.apply(fail(DATABASE, at));
        assert!(!published(&effects), "no observable change yet");
        assert_eq!(machine.state(), GateState::Ready);
    }
    let effects = machine.apply(fail(DATABASE, 12));
    assert_eq!(
        transitions(&effects),
        [(GateState::Ready, GateState::NotReady)]
    );
    assert_eq!(machine.snapshot().pending, ["database"]);
    assert_eq!(machine.snapshot().phase, None);
}

#[test]
fn a_success_between_failures_resets_the_count() {
    let mut machine = ready_machine();
    machine.apply(fail(DATABASE, 10));
    machine.apply(fail(DATABASE, 11));
    machine.apply(pass(DATABASE, 12));
    machine.apply(fail(DATABASE, 13));
    machine.apply(fail(DATABASE, 14));
    assert_eq!(machine.state(), GateState::Ready);
}

#[test]
fn recovery_needs_success_threshold_successes() {
    let plan = Plan::new(
        vec![PhaseSpec {
            name: "dependencies".into(),
            checks: vec![CheckSpec::new("database", "tcp").thresholds(1, 2)],
        }],
        ms(1000),
    )
    .unwrap();
    let mut machine = Machine::new(plan);
    machine.apply(pass(CheckId(0), 1));
    machine.apply(fail(CheckId(0), 2));
    assert_eq!(machine.state(), GateState::NotReady);
    machine.apply(pass(CheckId(0), 3));
    assert_eq!(machine.state(), GateState::NotReady);
    let effects = machine.apply(pass(CheckId(0), 4));
    assert_eq!(
        transitions(&effects),
        [(GateState::NotReady, GateState::Ready)]
    );
}

#[test]
fn optional_checks_degrade_with_the_same_hysteresis() {
    let mut machine = ready_machine();
    machine.apply(fail(REDIS, 10));
    machine.apply(fail(REDIS, 11));
    assert_eq!(machine.state(), GateState::Ready);
    let effects = machine.apply(fail(REDIS, 12));
    assert_eq!(
        transitions(&effects),
        [(GateState::Ready, GateState::Degraded)]
    );
    assert_eq!(machine.snapshot().degraded, ["redis"]);
    let effects = machine.apply(pass(REDIS, 13));
    assert_eq!(
        transitions(&effects),
        [(GateState::Degraded, GateState::Ready)]
    );
}

#[test]
fn not_ready_wins_over_degraded() {
    let mut machine = ready_machine();
    for at in 10..13 {
        machine.apply(fail(REDIS, at));
        machine.apply(fail(DATABASE, at));
    }
    assert_eq!(machine.state(), GateState::NotReady);
    assert_eq!(machine.snapshot().degraded, ["redis"]);
}

#[test]
fn missing_the_startup_deadline_fails_and_a_later_success_still_leads_to_ready() {
    let mut machine = Machine::new(chat_plan());
    assert!(
        machine
            .apply(Event::TimePassed { at: ms(59_999) })
            .is_empty()
    );
    let effects = machine.apply(Event::TimePassed { at: ms(60_000) });
    assert_eq!(
        transitions(&effects),
        [(GateState::Starting, GateState::Failed)]
    );
    let Effect::Transition(transition) = &effects[0] else {
        panic!("expected a transition first");
    };
    assert!(
        transition.reason.contains("database, agent"),
        "{}",
        transition.reason
    );
    assert_eq!(machine.snapshot().phase, None);
    machine.apply(pass(DATABASE, 60_001));
    assert_eq!(machine.state(), GateState::Failed);
    let effects = machine.apply(pass(AGENT, 60_002));
    assert_eq!(
        transitions(&effects),
        [(GateState::Failed, GateState::Ready)]
    );
}

#[test]
fn the_deadline_does_not_apply_once_ready() {
    let mut machine = ready_machine();
    assert!(
        machine
            .apply(Event::TimePassed { at: ms(120_000) })
            .is_empty()
    );
    assert_eq!(machine.state(), GateState::Ready);
}

#[test]
fn draining_is_entered_from_any_state_and_ignores_late_results() {
    for prepare in [Machine::new(chat_plan()), ready_machine(), {
        let mut m = Machine::new(chat_plan());
        m.apply(Event::TimePassed { at: ms(60_000) });
        m
    }] {
        let mut machine = prepare;
        let from = machine.state();
        let effects = machine.apply(Event::DrainRequested { at: ms(70_000) });
        assert_eq!(transitions(&effects), [(from, GateState::Draining)]);
        let seq = machine.snapshot().seq;
        for event in [
            pass(DATABASE, 70_001),
            pass(AGENT, 70_002),
            fail(REDIS, 70_003),
            Event::DrainRequested { at: ms(70_004) },
        ] {
            assert!(machine.apply(event).is_empty());
        }
        assert_eq!(machine.state(), GateState::Draining);
        assert_eq!(machine.snapshot().seq, seq);
        assert_eq!(machine.cadence(DATABASE), Cadence::Stop);
    }
}

#[test]
fn no_snapshot_when_nothing_observable_changed() {
    let mut machine = ready_machine();
    let seq = machine.snapshot().seq;
    assert!(machine.apply(pass(DATABASE, 100)).is_empty());
    assert!(machine.apply(Event::TimePassed { at: ms(200) }).is_empty());
    assert_eq!(machine.snapshot().seq, seq);
    // Diagnostics still move, in the verbose view.
    let verbose = machine.verbose();
    assert_eq!(verbose.checks[0].details.attempts, 2);
    assert_eq!(verbose.seq, seq);
}

#[test]
fn the_cadence_follows_the_status() {
    let mut machine = Machine::new(chat_plan());
    assert_eq!(
        machine.cadence(DATABASE),
        Cadence::Retry {
            consecutive_failures: 0
        }
    );
    machine.apply(fail(DATABASE, 1));
    machine.apply(fail(DATABASE, 2));
    assert_eq!(
        machine.cadence(DATABASE),
        Cadence::Retry {
            consecutive_failures: 2
        }
    );
    machine.apply(pass(DATABASE, 3));
    assert_eq!(machine.cadence(DATABASE), Cadence::Interval);
    assert_eq!(machine.cadence(CheckId(99)), Cadence::Stop);
}

#[test]
fn after_the_first_ready_a_check_not_passing_backs_off_instead_of_retrying() {
    let mut machine = ready_machine();
    // Still passing through the first two failures (hysteresis): the
    // interval.
    machine.apply(fail(DATABASE, 10));
    machine.apply(fail(DATABASE, 20));
    assert_eq!(machine.cadence(DATABASE), Cadence::Interval);
    machine.apply(fail(DATABASE, 30));
    assert_eq!(machine.state(), GateState::NotReady);
    assert_eq!(
        machine.cadence(DATABASE),
        Cadence::Backoff {
            consecutive_failures: 3
        }
    );
    // A check that recovers returns to its interval.
    machine.apply(pass(DATABASE, 40));
    assert_eq!(machine.cadence(DATABASE), Cadence::Interval);
    // An optional check failing after the first ready backs off too.
    machine.apply(fail(REDIS, 50));
    machine.apply(fail(REDIS, 60));
    machine.apply(fail(REDIS, 70));
    assert_eq!(
        machine.cadence(REDIS),
        Cadence::Backoff {
            consecutive_failures: 3
        }
    );
}

#[test]
fn a_startup_that_missed_its_deadline_backs_off_as_after_ready() {
    let mut machine = Machine::new(chat_plan());
    machine.apply(fail(DATABASE, 1));
    // Still starting: fast.
    assert_eq!(
        machine.cadence(DATABASE),
        Cadence::Retry {
            consecutive_failures: 1
        }
    );
    machine.apply(Event::TimePassed {
        at: Duration::from_secs(61),
    });
    assert_eq!(machine.state(), GateState::Failed);
    // A gate that failed to start must not hammer what it waits for either:
    // fifty instances that never got ready would be a storm too.
    assert_eq!(
        machine.cadence(DATABASE),
        Cadence::Backoff {
            consecutive_failures: 1
        }
    );
}

// === Signal leases ===

fn signal(check: CheckId, ready: bool, ttl: Option<u64>, at: u64) -> Event {
    Event::SignalSet {
        check,
        outcome: if ready {
            CheckOutcome::Passed
        } else {
            CheckOutcome::Failed {
                error: "set to not ready".into(),
                class: FailureClass::SignalNotReady,
            }
        },
        ttl: ttl.map(ms),
        at: ms(at),
    }
}

#[test]
fn a_lease_not_renewed_turns_the_signal_failing_when_it_runs_out() {
    let mut machine = Machine::new(chat_plan());
    machine.apply(pass(DATABASE, 1));
    machine.apply(pass(REDIS, 1));
    machine.apply(signal(AGENT, true, Some(30_000), 2));
    assert_eq!(machine.state(), GateState::Ready);
    assert_eq!(machine.next_lease_expiry(), Some(ms(30_002)));
    assert!(machine.leases_due(ms(30_001)).is_empty());
    // Time short of the expiry changes nothing.
    assert!(
        machine
            .apply(Event::TimePassed { at: ms(30_001) })
            .is_empty()
    );

    let due = machine.leases_due(ms(30_002));
    assert_eq!(
        due,
        [(
            AGENT,
            Lease {
                ttl: ms(30_000),
                expires_at: ms(30_002)
            }
        )]
    );
    let effects = machine.apply(Event::TimePassed { at: ms(30_002) });
    assert_eq!(
        transitions(&effects),
        [(GateState::Ready, GateState::NotReady)]
    );
    let Some(Effect::Transition(transition)) = effects.first() else {
        panic!("no transition in {effects:?}");
    };
    assert_eq!(
        transition.reason,
        "check `agent` lease expired: not renewed within 30s"
    );
    let verbose = machine.verbose();
    let agent = &verbose.checks[AGENT.0];
    assert_eq!(agent.view.status, CheckStatus::Failing);
    assert_eq!(agent.view.since, ms(30_002));
    assert_eq!(
        agent.details.last_error.as_deref(),
        Some("lease expired: not renewed within 30s")
    );
    assert_eq!(agent.details.lease, None);
    assert_eq!(machine.next_lease_expiry(), None);
}

#[test]
fn a_lease_runs_out_whatever_the_failure_threshold() {
    let mut machine = ready_machine();
    // The chat plan's agent has a failure threshold of 3; a lease that runs
    // out does not wait for two more failures that would never come.
    machine.apply(signal(AGENT, true, Some(1_000), 10));
    machine.apply(Event::TimePassed { at: ms(1_010) });
    assert_eq!(machine.state(), GateState::NotReady);
    assert_eq!(machine.snapshot().pending, ["agent"]);
}

#[test]
fn setting_a_signal_again_renews_its_lease_and_no_ttl_clears_it() {
    let mut machine = ready_machine();
    machine.apply(signal(AGENT, true, Some(1_000), 10));
    machine.apply(signal(AGENT, true, Some(1_000), 900));
    assert_eq!(machine.next_lease_expiry(), Some(ms(1_900)));
    assert!(
        machine
            .apply(Event::TimePassed { at: ms(1_010) })
            .is_empty()
    );
    assert_eq!(machine.state(), GateState::Ready);

    machine.apply(signal(AGENT, true, None, 1_500));
    assert_eq!(machine.next_lease_expiry(), None);
    assert!(machine.leases_due(ms(1_000_000)).is_empty());
    machine.apply(Event::TimePassed { at: ms(1_000_000) });
    assert_eq!(machine.state(), GateState::Ready);
}

#[test]
fn the_earliest_of_many_leases_is_next_and_each_runs_out_on_its_own() {
    let plan = Plan::new(
        vec![PhaseSpec {
            name: "services".into(),
            checks: vec![
                CheckSpec::new("a", "signal"),
                CheckSpec::new("b", "signal"),
                CheckSpec::new("c", "signal"),
            ],
        }],
        Duration::from_secs(60),
    )
    .unwrap();
    let mut machine = Machine::new(plan);
    machine.apply(signal(CheckId(0), true, Some(3_000), 0));
    machine.apply(signal(CheckId(1), true, Some(1_000), 0));
    machine.apply(signal(CheckId(2), true, None, 0));
    assert_eq!(machine.state(), GateState::Ready);
    assert_eq!(machine.next_lease_expiry(), Some(ms(1_000)));
    machine.apply(Event::TimePassed { at: ms(1_000) });
    assert_eq!(machine.snapshot().pending, ["b"]);
    assert_eq!(machine.next_lease_expiry(), Some(ms(3_000)));
    machine.apply(Event::TimePassed { at: ms(3_000) });
    assert_eq!(machine.snapshot().pending, ["a", "b"]);
    assert_eq!(machine.next_lease_expiry(), None);
}

#[test]
fn draining_holds_no_lease() {
    let mut machine = ready_machine();
    machine.apply(signal(AGENT, true, Some(1_000), 10));
    machine.apply(Event::DrainRequested { at: ms(20) });
    assert_eq!(machine.next_lease_expiry(), None);
    assert!(machine.leases_due(ms(5_000)).is_empty());
}

#[test]
fn a_lease_is_in_the_verbose_json_only_while_held() {
    let mut machine = ready_machine();
    let verbose = serde_json::to_value(machine.verbose()).unwrap();
    assert!(verbose["checks"][2].get("lease").is_none());
    machine.apply(signal(AGENT, true, Some(30_000), 1_250));
    let verbose = serde_json::to_value(machine.verbose()).unwrap();
    assert_eq!(
        verbose["checks"][2]["lease"],
        serde_json::json!({"ttl_ms": 30_000, "expires_at_ms": 31_250})
    );
}

#[test]
fn durations_are_worded_as_an_operator_writes_them() {
    assert_eq!(human_duration(ms(300)), "300ms");
    assert_eq!(human_duration(ms(1_500)), "1500ms");
    assert_eq!(human_duration(Duration::from_secs(30)), "30s");
    assert_eq!(human_duration(Duration::from_secs(300)), "5m");
    assert_eq!(human_duration(Duration::from_secs(7_200)), "2h");
}

#[test]
fn verbose_details_record_error_latency_and_counts() {
    let mut machine = Machine::new(chat_plan());
    machine.apply(fail(DATABASE, 1));
    machine.apply(fail(DATABASE, 2));
    let details = &machine.verbose().checks[0].details;
    assert_eq!(details.last_error.as_deref(), Some("connection refused"));
    assert_eq!(details.last_latency, Some(ms(1)));
    assert_eq!(details.attempts, 2);
    assert_eq!(details.consecutive_failures, 2);
    assert_eq!(details.consecutive_successes, 0);
    machine.apply(pass(DATABASE, 3));
    let details = &machine.verbose().checks[0].details;
    assert_eq!(details.last_error, None);
    assert_eq!(details.consecutive_successes, 1);
}

#[test]
fn an_event_for_an_unknown_check_changes_nothing() {
    let mut machine = Machine::new(chat_plan());
    assert!(machine.apply(pass(CheckId(42), 1)).is_empty());
}

#[test]
fn time_never_runs_backwards() {
    let mut machine = Machine::new(chat_plan());
    machine.apply(Event::TimePassed { at: ms(60_000) });
    assert_eq!(machine.state(), GateState::Failed);
    machine.apply(fail(DATABASE, 10));
    assert_eq!(machine.state(), GateState::Failed);
}

#[test]
fn the_plan_refuses_duplicates_empty_names_and_zero_thresholds() {
    let phase = |name: &str, checks: Vec<CheckSpec>| PhaseSpec {
        name: name.into(),
        checks,
    };
    let deadline = ms(10);
    assert_eq!(
        Plan::new(
            vec![
                phase("a", vec![CheckSpec::new("x", "tcp")]),
                phase("b", vec![CheckSpec::new("x", "tcp")]),
            ],
            deadline
        ),
        Err(PlanError::DuplicateCheckName { name: "x".into() })
    );
    assert_eq!(
        Plan::new(vec![phase("a", vec![]), phase("a", vec![])], deadline),
        Err(PlanError::DuplicatePhaseName { name: "a".into() })
    );
    assert_eq!(
        Plan::new(vec![phase("", vec![])], deadline),
        Err(PlanError::EmptyName { what: "phase" })
    );
    assert_eq!(
        Plan::new(
            vec![phase(
                "a",
                vec![CheckSpec::new("x", "tcp").thresholds(0, 1)]
            )],
            deadline
        ),
        Err(PlanError::ZeroThreshold {
            check: "x".into(),
            which: "failure_threshold"
        })
    );
}

#[test]
fn the_snapshot_serialises_to_the_documented_json() {
    let mut machine = Machine::new(chat_plan());
    machine.apply(fail(DATABASE, 800));
    machine.apply(Event::TimePassed { at: ms(830) });
    let json = serde_json::to_value(machine.snapshot()).unwrap();
    assert_eq!(json["seq"], 2);
    assert_eq!(json["state"], "starting");
    assert_eq!(json["phase"], "dependencies");
    assert_eq!(json["elapsed_ms"], 800);
    assert_eq!(json["pending"], serde_json::json!(["database", "agent"]));
    assert_eq!(
        json["checks"][0],
        serde_json::json!({"name": "database", "phase": "dependencies", "kind": "tcp",
            "required": true, "status": "failing", "since_ms": 800})
    );
    assert!(json.get("ever_ready").is_none());
    let verbose = serde_json::to_value(machine.verbose()).unwrap();
    assert_eq!(verbose["checks"][0]["last_error"], "connection refused");
    assert_eq!(verbose["checks"][0]["last_latency_ms"], 1.0);
    assert_eq!(verbose["checks"][0]["attempts"], 1);
    assert_eq!(verbose["checks"][0]["consecutive_failures"], 1);
}

// === Property tests ===

#[derive(Debug, Clone)]
enum Step {
    Result {
        check: usize,
        passed: bool,
    },
    /// The agent signal set with a lease of this many milliseconds.
    Leased {
        passed: bool,
        ttl: u64,
    },
    Time,
    Drain,
}

fn step_strategy() -> impl Strategy<Value = (Step, u64)> {
    let step = prop_oneof![
        8 => (0usize..3, any::<bool>()).prop_map(|(check, passed)| Step::Result { check, passed }),
        2 => (any::<bool>(), 100u64..5_000).prop_map(|(passed, ttl)| Step::Leased { passed, ttl }),
        1 => Just(Step::Time),
        1 => prop::bool::weighted(0.1).prop_map(|drain| if drain { Step::Drain } else { Step::Time }),
    ];
    (step, 0u64..20_000)
}

proptest! {
    #[test]
    fn invariants_hold_over_random_event_sequences(
        steps in prop::collection::vec(step_strategy(), 0..200)
    ) {
        let mut machine = Machine::new(chat_plan());
        let mut last_seq = machine.snapshot().seq;
        let mut at = 0;
        let mut drained = false;
        for (step, advance) in steps {
            at += advance;
            let event = match step {
                Step::Result { check, passed: true } => pass(CheckId(check), at),
                Step::Result { check, passed: false } => fail(CheckId(check), at),
                Step::Leased { passed, ttl } => signal(AGENT, passed, Some(ttl), at),
                Step::Time => Event::TimePassed { at: ms(at) },
                Step::Drain => Event::DrainRequested { at: ms(at) },
            };
            let is_drain = matches!(event, Event::DrainRequested { .. });
            let is_time = matches!(event, Event::TimePassed { .. });
            let effects = machine.apply(event);
            for effect in &effects {
                if let Effect::Publish(snapshot) = effect {
                    // seq strictly increases, one publish at a time.
                    prop_assert_eq!(snapshot.seq, last_seq + 1);
                    last_seq = snapshot.seq;
                }
                if let Effect::Transition(transition) = effect {
                    prop_assert_ne!(transition.from, transition.to);
                }
            }
            let snapshot = machine.snapshot();
            prop_assert_eq!(snapshot.seq, last_seq);
            drained |= is_drain;
            if is_time {
                // Time passing runs out every lease due by then.
                prop_assert!(machine.leases_due(ms(at)).is_empty());
                prop_assert!(machine.next_lease_expiry().is_none_or(|expiry| expiry > ms(at)));
            }
            if drained {
                prop_assert!(machine.next_lease_expiry().is_none());
                // Never anything but draining after a drain.
                prop_assert_eq!(snapshot.state, GateState::Draining);
                prop_assert_eq!(machine.cadence(DATABASE), Cadence::Stop);
            }
            if snapshot.state.admits_traffic() {
                // Ready only when every required check passes.
                for check in snapshot.checks.iter().filter(|c| c.required) {
                    prop_assert_eq!(check.status, CheckStatus::Passing);
                }
                prop_assert!(snapshot.pending.is_empty());
            }
            let verbose = machine.verbose();
            for check in &verbose.checks {
                // Unknown means never completed, and is never passing.
                prop_assert_eq!(
                    check.view.status == CheckStatus::Unknown,
                    check.details.attempts == 0
                );
                if check.view.status == CheckStatus::Unknown && check.view.required {
                    prop_assert!(snapshot.pending.contains(&check.view.name));
                }
            }
        }
    }
}

// === Snapshot::state_without ===

#[test]
fn the_verdict_without_a_failing_required_check_is_ready() {
    let mut machine = ready_machine();
    for at in 10..20 {
        machine.apply(fail(DATABASE, at));
    }
    let snapshot = machine.snapshot();
    assert_eq!(snapshot.state, GateState::NotReady);
    assert_eq!(snapshot.state_without(|_| false), GateState::NotReady);
    assert_eq!(
        snapshot.state_without(|name| name == "database"),
        GateState::Ready
    );
}

#[test]
fn the_verdict_without_a_failing_optional_check_is_ready_not_degraded() {
    let mut machine = ready_machine();
    for at in 10..20 {
        machine.apply(fail(REDIS, at));
    }
    let snapshot = machine.snapshot();
    assert_eq!(snapshot.state, GateState::Degraded);
    assert_eq!(
        snapshot.state_without(|name| name == "redis"),
        GateState::Ready
    );
}

#[test]
fn the_verdict_before_the_first_ready_is_starting_then_failed_after_the_deadline() {
    let mut machine = Machine::new(chat_plan());
    machine.apply(pass(DATABASE, 1));
    assert_eq!(
        machine.snapshot().state_without(|name| name == "redis"),
        GateState::Starting
    );
    // Excluding the one pending check gives the verdict the gate would
    // have: ready, though it has never been.
    assert_eq!(
        machine.snapshot().state_without(|name| name == "agent"),
        GateState::Ready
    );
    machine.apply(Event::TimePassed { at: ms(60_001) });
    assert_eq!(machine.state(), GateState::Failed);
    assert_eq!(
        machine.snapshot().state_without(|name| name == "redis"),
        GateState::Failed
    );
}

#[test]
fn draining_stays_draining_whatever_is_excluded() {
    let mut machine = ready_machine();
    machine.apply(Event::DrainRequested { at: ms(5) });
    assert_eq!(
        machine.snapshot().state_without(|_| true),
        GateState::Draining
    );
}

proptest! {
    /// With nothing excluded, the verdict is the machine's own state: one
    /// rule, not two copies of it.
    #[test]
    fn the_verdict_without_nothing_is_the_machines_state(
        results in prop::collection::vec((0usize..3, any::<bool>(), 1u64..30_000), 0..100)
    ) {
        let mut machine = Machine::new(chat_plan());
        let mut at = 0;
        for (check, passed, advance) in results {
            at += advance;
            let event = if passed { pass(CheckId(check), at) } else { fail(CheckId(check), at) };
            machine.apply(event);
            let snapshot = machine.snapshot();
            prop_assert_eq!(snapshot.state_without(|_| false), snapshot.state);
        }
    }
}
