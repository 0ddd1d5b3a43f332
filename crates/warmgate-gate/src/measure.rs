//! The gate's metrics, through the `metrics` facade: how long clients wait
//! and how that ends, and how many are held or admitted right now.

use std::time::Duration;

pub const CONNECTION_WAIT_SECONDS: &str = "warmgate_connection_wait_seconds";
pub const CONNECTIONS: &str = "warmgate_connections";
pub const CONNECTIONS_TOTAL: &str = "warmgate_connections_total";

/// The buckets of [`CONNECTION_WAIT_SECONDS`]: from 100 us (an admission
/// on a ready gate) to 10 s (past any sane hold).
pub const WAIT_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

const ROUTES: [&str; 2] = ["/ws", "/echo"];
const STAGES: [&str; 2] = ["held", "admitted"];

/// Registers the connection gauges at zero.
pub(crate) fn init() {
    metrics::describe_histogram!(
        CONNECTION_WAIT_SECONDS,
        metrics::Unit::Seconds,
        "time from the upgrade to admission or refusal, by outcome"
    );
    metrics::describe_gauge!(
        CONNECTIONS,
        "open WebSocket connections, by route and stage"
    );
    metrics::describe_counter!(
        CONNECTIONS_TOTAL,
        "finished WebSocket connections, by outcome"
    );
    for route in ROUTES {
        for stage in STAGES {
            metrics::gauge!(CONNECTIONS, "route" => route, "stage" => stage).set(0.0);
        }
    }
}

/// Admission or refusal, after `waited`.
pub(crate) fn decided(outcome: &str, waited: Duration) {
    metrics::histogram!(CONNECTION_WAIT_SECONDS, "outcome" => outcome.to_owned())
        .record(waited.as_secs_f64());
}

/// A finished connection.
pub(crate) fn finished(outcome: &str) {
    metrics::counter!(CONNECTIONS_TOTAL, "outcome" => outcome.to_owned()).increment(1);
}

/// Counts one connection in a stage for as long as it lives.
#[derive(Debug)]
pub(crate) struct InStage {
    route: &'static str,
    stage: &'static str,
}

impl InStage {
    pub(crate) fn enter(route: &'static str, stage: &'static str) -> Self {
        metrics::gauge!(CONNECTIONS, "route" => route, "stage" => stage).increment(1.0);
        Self { route, stage }
    }
}

impl Drop for InStage {
    fn drop(&mut self) {
        metrics::gauge!(CONNECTIONS, "route" => self.route, "stage" => self.stage).decrement(1.0);
    }
}
