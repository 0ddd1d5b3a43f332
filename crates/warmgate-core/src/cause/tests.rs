//! The cause the machine attaches to each transition, for every kind of
//! event that can make one.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::{
    Cause, CheckId, CheckOutcome, CheckResult, CheckSpec, Effect, Event, FailureClass, GateState,
    Machine, PhaseSpec, Plan,
};

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// `database` (probed, index 0) and `agent` (a signal, index 1), both
/// required, flipping on one result; a startup deadline of 1 s.
fn machine() -> Machine {
    let plan = Plan::new(
        vec![PhaseSpec {
            name: "all".into(),
            checks: vec![
                CheckSpec::new("database", "postgres").thresholds(1, 1),
                CheckSpec::new("agent", "signal").thresholds(1, 1),
            ],
        }],
        ms(1000),
    )
    .expect("a valid plan");
    Machine::new(plan)
}

fn transition(effects: &[Effect]) -> (GateState, GateState, Cause, Duration) {
    effects
        .iter()
        .find_map(|effect| match effect {
            Effect::Transition(transition) => Some((
                transition.from,
                transition.to,
                transition.cause.clone(),
                transition.at,
            )),
            Effect::Publish(_) => None,
        })
        .expect("a transition")
}

fn completed(check: usize, outcome: CheckOutcome, at: u64) -> Event {
    Event::CheckCompleted {
        check: CheckId(check),
        outcome,
        latency: ms(1),
        at: ms(at),
    }
}

fn signal(ready: bool, ttl: Option<Duration>, at: u64) -> Event {
    let outcome = if ready {
        CheckOutcome::Passed
    } else {
        CheckOutcome::Failed {
            error: "agent restarting".into(),
            class: FailureClass::SignalNotReady,
        }
    };
    Event::SignalSet {
        check: CheckId(1),
        outcome,
        ttl,
        at: ms(at),
    }
}

#[test]
fn a_probe_result_names_the_check_the_result_and_the_error_class() {
    let mut machine = machine();
    machine.apply(signal(true, None, 5));
    let (from, to, cause, at) = transition(&machine.apply(completed(0, CheckOutcome::Passed, 10)));
    assert_eq!(
        (from, to, at),
        (GateState::Starting, GateState::Ready, ms(10))
    );
    assert_eq!(
        cause,
        Cause::Check {
            check: "database".into(),
            result: CheckResult::Passed,
            error_class: None,
            error: None,
        }
    );
    let refused = CheckOutcome::Failed {
        error: "connection refused to 10.0.0.5:5432".into(),
        class: FailureClass::ConnectionRefused,
    };
    let (_, to, cause, _) = transition(&machine.apply(completed(0, refused, 20)));
    assert_eq!(to, GateState::NotReady);
    assert_eq!(
        cause,
        Cause::Check {
            check: "database".into(),
            result: CheckResult::Failed,
            error_class: Some(FailureClass::ConnectionRefused),
            error: Some("connection refused to 10.0.0.5:5432".into()),
        }
    );
    let timed_out = CheckOutcome::Failed {
        error: "timed out after 1s".into(),
        class: FailureClass::TimedOut,
    };
    machine.apply(completed(0, CheckOutcome::Passed, 30));
    let (_, _, cause, _) = transition(&machine.apply(completed(0, timed_out, 40)));
    assert!(matches!(
        cause,
        Cause::Check {
            result: CheckResult::TimedOut,
            error_class: None,
            ..
        }
    ));
}

#[test]
fn signals_the_deadline_a_lease_and_a_drain_each_say_so() {
    let mut machine = machine();
    let (_, to, cause, _) = transition(&machine.apply(Event::TimePassed { at: ms(1000) }));
    assert_eq!((to, cause), (GateState::Failed, Cause::Deadline));

    machine.apply(completed(0, CheckOutcome::Passed, 1100));
    let (_, to, cause, _) = transition(&machine.apply(signal(true, Some(ms(500)), 1200)));
    assert_eq!(to, GateState::Ready);
    assert!(matches!(
        cause,
        Cause::Check {
            result: CheckResult::SignalReady,
            ..
        }
    ));

    // The lease runs out at 1700.
    let (_, to, cause, _) = transition(&machine.apply(Event::TimePassed { at: ms(1700) }));
    assert_eq!(to, GateState::NotReady);
    match cause {
        Cause::Check {
            check,
            result,
            error_class,
            error,
        } => {
            assert_eq!(check, "agent");
            assert_eq!(result, CheckResult::LeaseExpired);
            assert_eq!(error_class, None);
            assert!(error.unwrap().starts_with("lease expired"));
        }
        other => panic!("expected a lease's expiry, got {other:?}"),
    }

    machine.apply(signal(true, None, 1800));
    let (_, to, cause, _) = transition(&machine.apply(signal(false, None, 1900)));
    assert_eq!(to, GateState::NotReady);
    assert_eq!(
        cause.without_error(),
        Cause::Check {
            check: "agent".into(),
            result: CheckResult::SignalNotReady,
            error_class: None,
            error: None,
        }
    );
    let (_, to, cause, _) = transition(&machine.apply(Event::DrainRequested { at: ms(2000) }));
    assert_eq!((to, cause), (GateState::Draining, Cause::Drain));
}
