//! The engine's metrics through a real Prometheus recorder installed for
//! the calling thread only: the series that exist from the start, the state
//! and its transitions, time to first ready, and each attempt.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use warmgate_core::{
    CheckOutcome, CheckSpec, CheckStatus, Effect, Event, Machine, PhaseSpec, Plan,
};
use warmgate_probes::{Probe, ProbeError, ProbeFuture};

use super::{CHECK_DURATION_BUCKETS, CHECK_DURATION_SECONDS, TRANSITIONS, init, published};
use crate::{EngineBuilder, EngineSettings, ProbeSchedule};

/// A recorder local to the test, so tests running in parallel never see
/// each other's series.
struct Recorded {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl Recorded {
    fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(CHECK_DURATION_SECONDS.to_owned()),
                &CHECK_DURATION_BUCKETS,
            )
            .unwrap()
            .build_recorder();
        let handle = recorder.handle();
        Self { recorder, handle }
    }

    /// Runs `f` with this recorder receiving every metric call.
    fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.recorder, f)
    }

    /// The value of one series, written as it is rendered, if present.
    fn get(&self, series: &str) -> Option<f64> {
        let text = self.handle.render();
        let prefix = format!("{series} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .map(|value| value.parse().unwrap())
    }

    fn value(&self, series: &str) -> f64 {
        self.get(series)
            .unwrap_or_else(|| panic!("no series {series} in:\n{}", self.handle.render()))
    }

    fn state(&self, state: &str) -> f64 {
        self.value(&format!("warmgate_state{{state=\"{state}\"}}"))
    }

    fn transitions(&self, from: &str, to: &str) -> f64 {
        self.value(&format!(
            "warmgate_transitions_total{{from=\"{from}\",to=\"{to}\"}}"
        ))
    }

    fn check(&self, metric: &str, check: &str) -> Option<f64> {
        self.get(&format!("{metric}{{check=\"{check}\"}}"))
    }
}

fn plan(checks: Vec<CheckSpec>) -> Plan {
    Plan::new(
        vec![PhaseSpec {
            name: "dependencies".into(),
            checks,
        }],
        Duration::from_secs(60),
    )
    .unwrap()
}

/// Applies `event` and records its effects, as the engine's `apply` does.
fn apply(recorded: &Recorded, machine: &mut Machine, event: Event) {
    let at = event.at();
    let effects = machine.apply(event);
    let transition = effects.iter().find_map(|effect| match effect {
        Effect::Transition(transition) => Some(transition.clone()),
        Effect::Publish(_) => None,
    });
    for effect in effects {
        if let Effect::Publish(snapshot) = effect {
            recorded.run(|| published(&snapshot, transition.as_ref(), at));
        }
    }
}

fn completed(machine: &Machine, passed: bool, at: Duration) -> Event {
    let outcome = if passed {
        CheckOutcome::Passed
    } else {
        CheckOutcome::Failed {
            error: "connection refused".into(),
            class: warmgate_core::FailureClass::ConnectionRefused,
        }
    };
    Event::CheckCompleted {
        check: machine.check_id("database").unwrap(),
        outcome,
        latency: Duration::from_millis(1),
        at,
    }
}

#[test]
fn every_series_but_startup_seconds_exists_from_the_start() {
    let recorded = Recorded::new();
    let machine = Machine::new(plan(vec![
        CheckSpec::new("database", "tcp"),
        CheckSpec::new("agent", "signal"),
    ]));
    recorded.run(|| init(machine.plan(), machine.snapshot(), Duration::ZERO));

    assert_eq!(recorded.state("starting"), 1.0);
    for state in ["ready", "degraded", "not_ready", "failed", "draining"] {
        assert_eq!(recorded.state(state), 0.0, "{state}");
    }
    for (from, to) in TRANSITIONS {
        assert_eq!(recorded.transitions(from.as_str(), to.as_str()), 0.0);
    }
    for check in ["database", "agent"] {
        assert_eq!(recorded.check("warmgate_check_up", check), Some(0.0));
        assert_eq!(
            recorded.check("warmgate_check_failures_total", check),
            Some(0.0)
        );
    }
    assert_eq!(recorded.get("warmgate_startup_seconds"), None);
}

#[test]
fn the_first_ready_sets_startup_seconds_once_and_every_transition_counts() {
    let recorded = Recorded::new();
    let mut machine = Machine::new(plan(vec![CheckSpec::new("database", "tcp")]));
    recorded.run(|| init(machine.plan(), machine.snapshot(), Duration::ZERO));

    let event = completed(&machine, true, Duration::from_millis(250));
    apply(&recorded, &mut machine, event);
    assert_eq!(recorded.state("ready"), 1.0);
    assert_eq!(recorded.state("starting"), 0.0);
    assert_eq!(recorded.transitions("starting", "ready"), 1.0);
    assert_eq!(recorded.check("warmgate_check_up", "database"), Some(1.0));
    assert_eq!(recorded.value("warmgate_startup_seconds"), 0.25);

    // Three failures in a row turn it not ready; one success brings it back.
    for at_ms in [1000, 1100, 1200] {
        let event = completed(&machine, false, Duration::from_millis(at_ms));
        apply(&recorded, &mut machine, event);
    }
    assert_eq!(recorded.state("not_ready"), 1.0);
    assert_eq!(recorded.check("warmgate_check_up", "database"), Some(0.0));
    let event = completed(&machine, true, Duration::from_secs(2));
    apply(&recorded, &mut machine, event);

    assert_eq!(recorded.state("ready"), 1.0);
    assert_eq!(recorded.state("not_ready"), 0.0);
    assert_eq!(recorded.transitions("ready", "not_ready"), 1.0);
    assert_eq!(recorded.transitions("not_ready", "ready"), 1.0);
    assert_eq!(recorded.transitions("starting", "ready"), 1.0);
    assert_eq!(recorded.value("warmgate_startup_seconds"), 0.25);
}

#[test]
fn a_plan_without_required_checks_is_ready_from_the_first_snapshot() {
    let recorded = Recorded::new();
    let machine = Machine::new(plan(vec![CheckSpec::new("cache", "tcp").optional()]));
    recorded.run(|| init(machine.plan(), machine.snapshot(), Duration::from_millis(2)));
    assert_eq!(recorded.state("ready"), 1.0);
    assert_eq!(recorded.value("warmgate_startup_seconds"), 0.002);
}

/// A dependency that always refuses the connection.
struct Refused;

impl Probe for Refused {
    fn kind(&self) -> &'static str {
        "tcp"
    }

    fn target(&self) -> String {
        "127.0.0.1:1".into()
    }

    fn probe(&mut self) -> ProbeFuture<'_> {
        Box::pin(async {
            Err(ProbeError::Connect {
                target: "127.0.0.1:1".into(),
                source: std::io::ErrorKind::ConnectionRefused.into(),
            })
        })
    }
}

#[test]
fn attempts_are_counted_before_the_snapshot_that_shows_them_and_signals_only_move_up() {
    let recorded = Recorded::new();
    // A current-thread runtime inside the local recorder: the engine and
    // its runner run on this thread, so they record into it.
    recorded.run(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let handle = EngineBuilder::new(
                plan(vec![
                    CheckSpec::new("database", "tcp"),
                    CheckSpec::new("agent", "signal"),
                ]),
                EngineSettings::default(),
            )
            .probe(
                "database",
                ProbeSchedule::new(Duration::from_secs(1), Duration::from_secs(2)),
                Box::new(Refused),
            )
            .unwrap()
            .signal("agent")
            .unwrap()
            .spawn()
            .unwrap();
            let mut snapshot_rx = handle.subscribe();
            snapshot_rx
                .wait_for(|s| s.check("database").unwrap().status == CheckStatus::Failing)
                .await
                .unwrap();

            let duration = "warmgate_check_duration_seconds_count";
            assert!(recorded.check(duration, "database").unwrap() >= 1.0);
            let failures = recorded
                .check("warmgate_check_failures_total", "database")
                .unwrap();
            assert!(failures >= 1.0, "{failures}");
            assert_eq!(recorded.check("warmgate_check_up", "database"), Some(0.0));

            handle.set_signal("agent", true, None).unwrap();
            snapshot_rx
                .wait_for(|s| s.check("agent").unwrap().status == CheckStatus::Passing)
                .await
                .unwrap();
            assert_eq!(recorded.check("warmgate_check_up", "agent"), Some(1.0));
            assert_eq!(
                recorded.check("warmgate_check_failures_total", "agent"),
                Some(0.0)
            );
            assert_eq!(recorded.check(duration, "agent"), None);
        });
    });
}
