//! The wording and timing rules of the systemd notifier, without a socket;
//! `tests/integration/systemd.rs` checks the datagrams of the real program.

use std::time::Duration;

use warmgate_core::{CheckSpec, GateState, Machine, PhaseSpec, Plan};

use super::{EXTEND_HEARTBEATS, SystemdNotifier, status_line};

fn starting_snapshot() -> warmgate_core::Snapshot {
    let plan = Plan::new(
        vec![PhaseSpec {
            name: "services".into(),
            checks: vec![CheckSpec::new("app", "signal"), CheckSpec::new("db", "tcp")],
        }],
        Duration::from_secs(60),
    )
    .expect("a valid plan");
    Machine::new(plan).snapshot().clone()
}

#[test]
fn the_status_line_says_the_state_and_why_on_one_short_line() {
    let snapshot = starting_snapshot();
    assert_eq!(status_line(&snapshot, ""), "starting: waiting for app, db");
    assert_eq!(
        status_line(&snapshot, "check `db` failed 1 time(s) in a row:\nrefused"),
        "starting: check `db` failed 1 time(s) in a row: refused"
    );
    let long = status_line(&snapshot, &"x".repeat(1000));
    assert_eq!(long.chars().count(), super::MAX_STATUS_CHARS + 1);
    assert!(long.ends_with('…'));
}

#[test]
fn a_short_watchdog_shortens_the_heartbeat_to_half_of_it() {
    let second = Duration::from_secs(1);
    let without = SystemdNotifier::new(second, None);
    assert_eq!(without.heartbeat_interval(), second);
    let long = SystemdNotifier::new(second, Some(Duration::from_secs(10)));
    assert_eq!(long.heartbeat_interval(), second);
    let short = SystemdNotifier::new(second, Some(Duration::from_millis(600)));
    assert_eq!(short.heartbeat_interval(), Duration::from_millis(300));
}

#[test]
fn the_timeout_is_extended_only_while_starting_or_draining() {
    let notifier = SystemdNotifier::new(Duration::from_secs(1), None);
    let extension = 1_000_000 * EXTEND_HEARTBEATS;
    assert_eq!(notifier.extension(GateState::Starting), Some(extension));
    assert_eq!(notifier.extension(GateState::Draining), Some(extension));
    for state in [
        GateState::Ready,
        GateState::Degraded,
        GateState::NotReady,
        GateState::Failed,
    ] {
        assert_eq!(notifier.extension(state), None);
    }
}
