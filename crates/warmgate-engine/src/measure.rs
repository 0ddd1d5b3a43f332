//! The engine's metrics, through the `metrics` facade: the state, its
//! transitions and when the current one began, time to first ready, and
//! per-check health and latency.
//!
//! The engine records the state and check health from each published
//! snapshot; the runners record each attempt. Both record before the
//! snapshot that reflects the event is published, so a reader that has seen
//! a snapshot finds its metrics already counted.
//!
//! This module only records. Without an installed recorder (unit tests)
//! every call is a no-op; the binary installs a Prometheus recorder and
//! serves it on the admin listener. See `docs/observability.md`.

use std::time::Duration;

use warmgate_core::{CheckStatus, GateState, Plan, Snapshot, Transition};

pub const STATE: &str = "warmgate_state";
pub const TRANSITIONS_TOTAL: &str = "warmgate_transitions_total";
pub const STARTUP_SECONDS: &str = "warmgate_startup_seconds";
/// Gauge: when the current state began, in seconds since the Unix epoch
/// (time in state is `time() - warmgate_state_since_timestamp_seconds`).
pub const STATE_SINCE: &str = "warmgate_state_since_timestamp_seconds";
pub const CHECK_DURATION_SECONDS: &str = "warmgate_check_duration_seconds";
pub const CHECK_UP: &str = "warmgate_check_up";
pub const CHECK_FAILURES_TOTAL: &str = "warmgate_check_failures_total";

/// The buckets of [`CHECK_DURATION_SECONDS`]: from 100 us (a loopback TCP
/// connect) to 10 s (past any sane attempt timeout).
pub const CHECK_DURATION_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Every transition the machine's rules allow, registered at zero so that
/// `increase()` sees the first one. Before the first ready the gate moves
/// among `starting`, `failed`, `ready` and `degraded`; after it, among
/// `ready`, `degraded` and `not_ready`; any state but `draining` may drain.
/// A transition missing here is still counted; its series only appears late.
const TRANSITIONS: [(GateState, GateState); 16] = [
    (GateState::Starting, GateState::Ready),
    (GateState::Starting, GateState::Degraded),
    (GateState::Starting, GateState::Failed),
    (GateState::Failed, GateState::Ready),
    (GateState::Failed, GateState::Degraded),
    (GateState::Ready, GateState::Degraded),
    (GateState::Ready, GateState::NotReady),
    (GateState::Degraded, GateState::Ready),
    (GateState::Degraded, GateState::NotReady),
    (GateState::NotReady, GateState::Ready),
    (GateState::NotReady, GateState::Degraded),
    (GateState::Starting, GateState::Draining),
    (GateState::Failed, GateState::Draining),
    (GateState::Ready, GateState::Draining),
    (GateState::Degraded, GateState::Draining),
    (GateState::NotReady, GateState::Draining),
];

/// Describes the engine's metrics and registers every series that exists
/// from the start at its starting value, so a dashboard never sees a series
/// appear late: the state (all six), the transitions, and each check's
/// `up` and failure count. `warmgate_startup_seconds` appears at the first
/// ready; it has no honest value before. `elapsed` is the time since the
/// engine started.
pub(crate) fn init(plan: &Plan, snapshot: &Snapshot, elapsed: Duration) {
    metrics::describe_gauge!(STATE, "1 for the gate's current state, 0 for the others");
    metrics::describe_counter!(TRANSITIONS_TOTAL, "readiness state transitions");
    metrics::describe_gauge!(
        STARTUP_SECONDS,
        metrics::Unit::Seconds,
        "seconds from the engine's start to the first ready or degraded"
    );
    metrics::describe_gauge!(
        STATE_SINCE,
        metrics::Unit::Seconds,
        "Unix time at which the gate entered its current state (its start before any transition)"
    );
    state_entered(crate::history::unix_ms_now());
    metrics::describe_histogram!(
        CHECK_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "latency of each check attempt (probed checks only)"
    );
    metrics::describe_gauge!(CHECK_UP, "1 while the check passes, else 0");
    metrics::describe_counter!(
        CHECK_FAILURES_TOTAL,
        "failed check attempts (probed checks only)"
    );
    for (from, to) in TRANSITIONS {
        transitions_total(from, to).increment(0);
    }
    for (_, check) in plan.checks() {
        metrics::counter!(CHECK_FAILURES_TOTAL, "check" => check.name.clone()).increment(0);
    }
    published(snapshot, None, elapsed);
    // A plan with no required check is ready from the first snapshot,
    // without a transition.
    if snapshot.ever_ready {
        metrics::gauge!(STARTUP_SECONDS).set(elapsed.as_secs_f64());
    }
}

/// Records a published snapshot, and the transition that led to it;
/// `elapsed` is the time since the engine started.
pub(crate) fn published(snapshot: &Snapshot, transition: Option<&Transition>, elapsed: Duration) {
    for state in GateState::ALL {
        let value = if state == snapshot.state { 1.0 } else { 0.0 };
        metrics::gauge!(STATE, "state" => state.as_str()).set(value);
    }
    for check in &snapshot.checks {
        let up = if check.status == CheckStatus::Passing {
            1.0
        } else {
            0.0
        };
        metrics::gauge!(CHECK_UP, "check" => check.name.clone()).set(up);
    }
    if let Some(transition) = transition {
        transitions_total(transition.from, transition.to).increment(1);
        // `ready` and `degraded` are entered from `starting` or `failed`
        // only before the first ready; afterwards the gate falls to
        // `not_ready`, never back to those two.
        let first_ready = transition.to.admits_traffic()
            && matches!(transition.from, GateState::Starting | GateState::Failed);
        if first_ready {
            metrics::gauge!(STARTUP_SECONDS).set(elapsed.as_secs_f64());
        }
    }
}

fn transitions_total(from: GateState, to: GateState) -> metrics::Counter {
    metrics::counter!(TRANSITIONS_TOTAL, "from" => from.as_str(), "to" => to.as_str())
}

/// Records that the gate entered a new state at `unix_ms` (milliseconds
/// since the Unix epoch): the time in the current state is `time() -`
/// [`STATE_SINCE`], Prometheus style, so the series needs no refresh.
pub(crate) fn state_entered(unix_ms: u64) {
    metrics::gauge!(STATE_SINCE).set(unix_ms as f64 / 1000.0);
}

/// Registers a probed check's latency histogram, empty, before its first
/// attempt.
pub(crate) fn runner_started(check: &str) {
    // Registering the handle is enough for the exporter to render the
    // histogram with zero counts.
    let _ = metrics::histogram!(CHECK_DURATION_SECONDS, "check" => check.to_owned());
}

/// Records one completed attempt of a probed check.
pub(crate) fn attempt(check: &str, latency: Duration, failed: bool) {
    metrics::histogram!(CHECK_DURATION_SECONDS, "check" => check.to_owned())
        .record(latency.as_secs_f64());
    if failed {
        metrics::counter!(CHECK_FAILURES_TOTAL, "check" => check.to_owned()).increment(1);
    }
}

#[cfg(test)]
mod tests;
