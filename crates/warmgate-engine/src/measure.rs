//! The engine's metrics, through the `metrics` facade: the state, its
//! transitions, time to first ready, and per-check health and latency.
//!
//! Without an installed recorder (unit tests) every call is a no-op. The
//! binary installs a Prometheus recorder and serves it on the admin
//! listener; see `docs/observability.md`.

use std::time::Duration;

use warmgate_core::{CheckStatus, GateState, Plan, Snapshot, Transition};

pub const STATE: &str = "warmgate_state";
pub const TRANSITIONS_TOTAL: &str = "warmgate_transitions_total";
pub const STARTUP_SECONDS: &str = "warmgate_startup_seconds";
pub const CHECK_DURATION_SECONDS: &str = "warmgate_check_duration_seconds";
pub const CHECK_UP: &str = "warmgate_check_up";
pub const CHECK_FAILURES_TOTAL: &str = "warmgate_check_failures_total";

/// Registers every series at its starting value, so dashboards never see a
/// series appear late.
pub(crate) fn init(plan: &Plan, snapshot: &Snapshot) {
    metrics::describe_gauge!(STATE, "1 for the gate's current state, 0 for the others");
    metrics::describe_counter!(TRANSITIONS_TOTAL, "readiness state transitions");
    metrics::describe_gauge!(STARTUP_SECONDS, "seconds from start to the first ready");
    metrics::describe_histogram!(
        CHECK_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "latency of each check attempt"
    );
    metrics::describe_gauge!(CHECK_UP, "1 while the check passes, else 0");
    metrics::describe_counter!(CHECK_FAILURES_TOTAL, "failed check attempts");
    for (_, check) in plan.checks() {
        metrics::counter!(CHECK_FAILURES_TOTAL, "check" => check.name.clone()).increment(0);
    }
    published(snapshot, None, Duration::ZERO);
}

/// Records a published snapshot, and the transition that led to it.
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
        metrics::counter!(
            TRANSITIONS_TOTAL,
            "from" => transition.from.as_str(),
            "to" => transition.to.as_str()
        )
        .increment(1);
        let first_ready = transition.to.admits_traffic()
            && matches!(transition.from, GateState::Starting | GateState::Failed);
        if first_ready {
            metrics::gauge!(STARTUP_SECONDS).set(elapsed.as_secs_f64());
        }
    }
}

/// Records one completed attempt.
pub(crate) fn attempt(check: &str, latency: Duration, failed: bool) {
    metrics::histogram!(CHECK_DURATION_SECONDS, "check" => check.to_owned())
        .record(latency.as_secs_f64());
    if failed {
        metrics::counter!(CHECK_FAILURES_TOTAL, "check" => check.to_owned()).increment(1);
    }
}
