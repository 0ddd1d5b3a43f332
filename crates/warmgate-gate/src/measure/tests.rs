//! The connection metrics through a real Prometheus recorder, installed
//! for the calling thread only: stages, moves, outcomes and drops.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use super::{
    CONNECTION_WAIT_SECONDS, ConnectionMeter, RouteMeters, WAIT_BUCKETS, init, register_route,
};
use crate::protocol::UnavailableReason;

/// A recorder local to the test, so tests running in parallel never see
/// each other's series.
struct Recorded {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// `/ws`'s handles, bound to this recorder.
    route: Option<Arc<RouteMeters>>,
}

impl Recorded {
    fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(CONNECTION_WAIT_SECONDS.to_owned()),
                &WAIT_BUCKETS,
            )
            .unwrap()
            .build_recorder();
        let handle = recorder.handle();
        let mut recorded = Self {
            recorder,
            handle,
            route: None,
        };
        let route = recorded.run(|| {
            let meters = init();
            register_route("/echo", &meters);
            register_route("/ws", &meters)
        });
        recorded.route = Some(route);
        recorded
    }

    /// A meter for one connection on `/ws`.
    fn meter(&self) -> ConnectionMeter {
        ConnectionMeter::new(Arc::clone(self.route.as_ref().unwrap()))
    }

    /// Runs `f` with this recorder receiving every metric call.
    fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.recorder, f)
    }

    /// The value of one series, written as it is rendered.
    fn value(&self, series: &str) -> f64 {
        let text = self.handle.render();
        let prefix = format!("{series} ");
        let line = text
            .lines()
            .find(|line| line.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no series {series} in:\n{text}"));
        line[prefix.len()..].parse().unwrap()
    }

    fn connections(&self, stage: &str) -> f64 {
        self.value(&format!(
            "warmgate_connections{{route=\"/ws\",stage=\"{stage}\"}}"
        ))
    }

    fn total(&self, outcome: &str) -> f64 {
        self.value(&format!(
            "warmgate_connections_total{{outcome=\"{outcome}\"}}"
        ))
    }

    fn waits(&self, outcome: &str) -> f64 {
        self.value(&format!(
            "warmgate_connection_wait_seconds_count{{outcome=\"{outcome}\"}}"
        ))
    }
}

#[test]
fn every_series_exists_at_zero_from_the_start() {
    let recorded = Recorded::new();
    for route in ["/ws", "/echo"] {
        for stage in ["held", "admitted"] {
            let series = format!("warmgate_connections{{route=\"{route}\",stage=\"{stage}\"}}");
            assert_eq!(recorded.value(&series), 0.0);
        }
    }
    let refusals = [
        "unavailable:hold_timeout",
        "unavailable:failed",
        "unavailable:draining",
        "unavailable:capacity",
    ];
    for outcome in std::iter::once("admitted").chain(refusals) {
        assert_eq!(recorded.waits(outcome), 0.0);
        assert_eq!(recorded.total(outcome), 0.0);
    }
    assert_eq!(recorded.total("left_while_held"), 0.0);
}

#[test]
fn a_held_then_admitted_client_moves_from_held_to_admitted_and_is_counted_once() {
    let recorded = Recorded::new();
    let mut meter = recorded.meter();
    recorded.run(|| meter.held());
    assert_eq!(recorded.connections("held"), 1.0);

    recorded.run(|| meter.admitted(Duration::from_millis(3)));
    assert_eq!(recorded.connections("held"), 0.0);
    assert_eq!(recorded.connections("admitted"), 1.0);
    assert_eq!(recorded.waits("admitted"), 1.0);
    let le_5ms = "warmgate_connection_wait_seconds_bucket{outcome=\"admitted\",le=\"0.005\"}";
    let le_2_5ms = "warmgate_connection_wait_seconds_bucket{outcome=\"admitted\",le=\"0.0025\"}";
    assert_eq!(recorded.value(le_5ms), 1.0);
    assert_eq!(recorded.value(le_2_5ms), 0.0);

    recorded.run(|| meter.finish());
    recorded.run(|| meter.finish());
    assert_eq!(recorded.connections("admitted"), 0.0);
    assert_eq!(recorded.total("admitted"), 1.0);
    recorded.run(|| drop(meter));
    assert_eq!(recorded.connections("admitted"), 0.0);
    assert_eq!(recorded.total("admitted"), 1.0);
}

#[test]
fn a_refused_client_stops_counting_as_held_at_the_refusal() {
    let recorded = Recorded::new();
    let mut meter = recorded.meter();
    recorded.run(|| meter.held());
    recorded.run(|| meter.refused(UnavailableReason::HoldTimeout, Duration::from_secs(5)));
    assert_eq!(recorded.connections("held"), 0.0);
    assert_eq!(recorded.waits("unavailable:hold_timeout"), 1.0);
    assert_eq!(recorded.total("unavailable:hold_timeout"), 0.0);

    recorded.run(|| meter.finish());
    assert_eq!(recorded.total("unavailable:hold_timeout"), 1.0);
    assert_eq!(meter.outcome(), "unavailable:hold_timeout");
}

#[test]
fn a_client_that_leaves_while_held_is_counted_as_left_without_a_wait() {
    let recorded = Recorded::new();
    let mut meter = recorded.meter();
    recorded.run(|| meter.held());
    recorded.run(|| meter.finish());
    assert_eq!(recorded.connections("held"), 0.0);
    assert_eq!(recorded.total("left_while_held"), 1.0);
    assert_eq!(recorded.waits("admitted"), 0.0);
}

#[test]
fn a_dropped_meter_leaves_its_stage_on_every_path() {
    let recorded = Recorded::new();
    let mut held = recorded.meter();
    let mut admitted = recorded.meter();
    recorded.run(|| {
        held.held();
        admitted.admitted(Duration::ZERO);
    });
    assert_eq!(recorded.connections("held"), 1.0);
    assert_eq!(recorded.connections("admitted"), 1.0);
    // A task cancelled mid-connection drops its meter without finishing.
    recorded.run(|| drop((held, admitted)));
    assert_eq!(recorded.connections("held"), 0.0);
    assert_eq!(recorded.connections("admitted"), 0.0);
}
