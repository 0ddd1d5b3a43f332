//! History tests, against a running engine in paused time: every transition
//! is recorded in order (quick flips included), durations follow the paused
//! clock, the ring keeps 256 and counts the rest, and the JSON shape.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::json;
use warmgate_core::{Cause, CheckResult, CheckSpec, FailureClass, GateState, PhaseSpec, Plan};

use super::HISTORY_CAPACITY;
use crate::{EngineBuilder, EngineSettings, ReadinessHandle};

/// Waits so long on a signal being applied that paused time never hits it.
const APPLY_LIMIT: Duration = Duration::from_secs(3600);

/// One required signal, `agent`, that flips on every set (thresholds 1/1).
fn spawn_with_one_signal() -> ReadinessHandle {
    let plan = Plan::new(
        vec![PhaseSpec {
            name: "services".into(),
            checks: vec![CheckSpec::new("agent", "signal").thresholds(1, 1)],
        }],
        Duration::from_secs(600),
    )
    .unwrap();
    EngineBuilder::new(plan, EngineSettings::default())
        .signal("agent")
        .unwrap()
        .spawn()
        .unwrap()
}

async fn set(handle: &ReadinessHandle, ready: bool) {
    let reason = (!ready).then(|| "agent restarting".to_owned());
    handle
        .set_signal_applied("agent", ready, reason, APPLY_LIMIT)
        .await
        .unwrap();
}

fn states(handle: &ReadinessHandle) -> Vec<(GateState, GateState)> {
    handle
        .history()
        .transitions()
        .map(|record| (record.from, record.to))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn two_quick_flips_are_both_recorded_though_the_watch_shows_only_the_latest() {
    let handle = spawn_with_one_signal();
    set(&handle, true).await;
    let mut snapshot_rx = handle.subscribe();
    snapshot_rx.borrow_and_update();
    // Three sets in a row, without waiting between them.
    handle.set_signal("agent", false, None).unwrap();
    handle.set_signal("agent", true, None).unwrap();
    handle
        .set_signal("agent", false, Some("gone".into()))
        .unwrap();
    let last = snapshot_rx
        .wait_for(|snapshot| snapshot.seq >= 5)
        .await
        .unwrap()
        .seq;
    assert_eq!(last, 5);
    assert_eq!(
        states(&handle),
        [
            (GateState::Starting, GateState::Ready),
            (GateState::Ready, GateState::NotReady),
            (GateState::NotReady, GateState::Ready),
            (GateState::Ready, GateState::NotReady),
        ]
    );
    let history = handle.history();
    let seqs: Vec<u64> = history.transitions().map(|record| record.seq).collect();
    assert_eq!(seqs, [2, 3, 4, 5]);
    let latest = history.latest().unwrap();
    assert_eq!(
        latest.cause,
        Cause::Check {
            check: "agent".into(),
            result: CheckResult::SignalNotReady,
            error_class: None,
            error: Some("gone".into()),
        }
    );
    let first = history.transitions().next().unwrap();
    assert_eq!(
        first.cause,
        Cause::Check {
            check: "agent".into(),
            result: CheckResult::SignalReady,
            error_class: None,
            error: None,
        }
    );
}

#[tokio::test(start_paused = true)]
async fn durations_follow_the_clock_of_the_engine() {
    let handle = spawn_with_one_signal();
    tokio::time::advance(Duration::from_millis(1500)).await;
    set(&handle, true).await;
    tokio::time::advance(Duration::from_secs(5)).await;
    set(&handle, false).await;
    tokio::time::advance(Duration::from_secs(2)).await;
    set(&handle, true).await;
    handle.drain().unwrap();
    let mut snapshot_rx = handle.subscribe();
    snapshot_rx
        .wait_for(|snapshot| snapshot.state == GateState::Draining)
        .await
        .unwrap();

    let history = handle.history();
    let lasted: Vec<(GateState, u128, u128)> = history
        .transitions()
        .map(|record| {
            (
                record.to,
                record.at.as_millis(),
                record.previous_state_lasted.as_millis(),
            )
        })
        .collect();
    assert_eq!(
        lasted,
        [
            (GateState::Ready, 1500, 1500),
            (GateState::NotReady, 6500, 5000),
            (GateState::Ready, 8500, 2000),
            (GateState::Draining, 8500, 0),
        ]
    );
    assert_eq!(history.latest().unwrap().cause, Cause::Drain);
    let unix: Vec<u64> = history.transitions().map(|record| record.unix_ms).collect();
    assert!(unix.windows(2).all(|pair| pair[0] <= pair[1]), "{unix:?}");
    assert!(unix[0] > 1_700_000_000_000, "{unix:?}");
}

#[tokio::test(start_paused = true)]
async fn the_ring_keeps_the_latest_256_and_counts_the_dropped() {
    let handle = spawn_with_one_signal();
    // 300 transitions: starting → ready, then 299 flips.
    for flip in 0..300 {
        set(&handle, flip % 2 == 0).await;
    }
    let history = handle.history();
    assert_eq!(history.capacity(), HISTORY_CAPACITY);
    assert_eq!(history.transitions().count(), 256);
    assert_eq!(history.dropped(), 300 - 256);
    let seqs: Vec<u64> = history.transitions().map(|record| record.seq).collect();
    assert!(
        seqs.windows(2).all(|pair| pair[0] + 1 == pair[1]),
        "{seqs:?}"
    );
    // Seqs 2..=301 were transitions (seq 1 is the first snapshot); the
    // oldest 44 are gone.
    assert_eq!(history.oldest_seq(), Some(46));
    assert_eq!(history.latest().unwrap().seq, 301);
    assert!(history.reaches_back_to(45));
    assert!(!history.reaches_back_to(44));
    assert!(!history.reaches_back_to(0));
    assert_eq!(history.after(299).count(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_history_serialises_to_its_documented_json() {
    let handle = spawn_with_one_signal();
    tokio::time::advance(Duration::from_millis(20)).await;
    set(&handle, true).await;
    tokio::time::advance(Duration::from_millis(30)).await;
    set(&handle, false).await;
    let mut value = serde_json::to_value(&*handle.history()).unwrap();
    for transition in value["transitions"].as_array_mut().unwrap() {
        assert!(transition["unix_ms"].as_u64().unwrap() > 0);
        transition["unix_ms"] = json!(0);
    }
    assert_eq!(
        value,
        json!({
            "capacity": 256,
            "dropped": 0,
            "transitions": [
                {"seq": 2, "unix_ms": 0, "elapsed_ms": 20, "from": "starting", "to": "ready",
                 "cause": {"kind": "check", "check": "agent", "result": "signal_ready"},
                 "reason": "check `agent` passed", "previous_state_ms": 20},
                {"seq": 3, "unix_ms": 0, "elapsed_ms": 50, "from": "ready", "to": "not_ready",
                 "cause": {"kind": "check", "check": "agent", "result": "signal_not_ready",
                           "error": "agent restarting"},
                 "reason": "check `agent` failed 1 time(s) in a row: agent restarting",
                 "previous_state_ms": 30},
            ],
        })
    );
    // A probe's failure names its class.
    let cause = Cause::Check {
        check: "redis".into(),
        result: CheckResult::of_failure(FailureClass::ConnectionRefused),
        error_class: Some(FailureClass::ConnectionRefused),
        error: Some("connection refused to 127.0.0.1:6379".into()),
    };
    assert_eq!(
        serde_json::to_value(cause.without_error()).unwrap(),
        json!({"kind": "check", "check": "redis", "result": "failed",
               "error_class": "connection_refused"})
    );
}
