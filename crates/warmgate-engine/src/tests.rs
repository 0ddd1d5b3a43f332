//! Engine tests, in paused time: a hung check, a panicking check, a flapping
//! check, the startup deadline, drain, signals, the heartbeat, and what an
//! observer sees. They wait on published snapshots and observed events,
//! never on sleeps.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use warmgate_core::{CheckSpec, CheckStatus, GateState, PhaseSpec, Plan, Snapshot};
use warmgate_probes::{Probe, ProbeError, ProbeFuture};

use crate::backoff::{FIRST_RETRY, retry_delay};
use crate::{EngineBuilder, EngineError, EngineSettings, ProbeSchedule, ReadinessHandle};

/// What a scripted probe does on one attempt.
#[derive(Debug, Clone, Copy)]
enum Step {
    Pass,
    Fail,
    Hang,
    Panic,
}

/// A probe that follows a script, by attempt number, and counts attempts.
/// It stands in for a dependency whose behaviour the test must control
/// exactly; the real probes are tested against real servers.
struct ScriptedProbe<F> {
    script: F,
    attempts: Arc<AtomicU32>,
    hung_attempt_dropped: Arc<AtomicBool>,
}

struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl<F: FnMut(u32) -> Step + Send + 'static> Probe for ScriptedProbe<F> {
    fn kind(&self) -> &'static str {
        "scripted"
    }

    fn target(&self) -> String {
        "script".into()
    }

    fn probe(&mut self) -> ProbeFuture<'_> {
        let attempt = self.attempts.fetch_add(1, Ordering::SeqCst);
        let step = (self.script)(attempt);
        let dropped = Arc::clone(&self.hung_attempt_dropped);
        Box::pin(async move {
            match step {
                Step::Pass => Ok(()),
                Step::Fail => Err(ProbeError::Connect {
                    target: "127.0.0.1:1".into(),
                    source: std::io::ErrorKind::ConnectionRefused.into(),
                }),
                Step::Hang => {
                    let _flag = DropFlag(dropped);
                    std::future::pending::<()>().await;
                    Ok(())
                }
                Step::Panic => panic!("probe exploded"),
            }
        })
    }
}

struct Scripted {
    attempts: Arc<AtomicU32>,
    hung_attempt_dropped: Arc<AtomicBool>,
}

fn scripted(script: impl FnMut(u32) -> Step + Send + 'static) -> (Box<dyn Probe>, Scripted) {
    let attempts = Arc::new(AtomicU32::new(0));
    let hung_attempt_dropped = Arc::new(AtomicBool::new(false));
    let probe = ScriptedProbe {
        script,
        attempts: Arc::clone(&attempts),
        hung_attempt_dropped: Arc::clone(&hung_attempt_dropped),
    };
    (
        Box::new(probe),
        Scripted {
            attempts,
            hung_attempt_dropped,
        },
    )
}

const SCHEDULE: ProbeSchedule = ProbeSchedule::new(Duration::from_secs(1), Duration::from_secs(2));

/// dependencies: database (probed); services: agent (signal).
fn plan(deadline: Duration) -> Plan {
    plan_with_agent(deadline, CheckSpec::new("agent", "signal"))
}

/// [`plan`] with `agent` as given.
fn plan_with_agent(deadline: Duration, agent: CheckSpec) -> Plan {
    Plan::new(
        vec![
            PhaseSpec {
                name: "dependencies".into(),
                checks: vec![CheckSpec::new("database", "scripted")],
            },
            PhaseSpec {
                name: "services".into(),
                checks: vec![agent],
            },
        ],
        deadline,
    )
    .unwrap()
}

fn spawn(probe: Box<dyn Probe>) -> ReadinessHandle {
    EngineBuilder::new(plan(Duration::from_secs(60)), EngineSettings::default())
        .probe("database", SCHEDULE, probe)
        .unwrap()
        .signal("agent")
        .unwrap()
        .spawn()
        .unwrap()
}

async fn wait_for(handle: &ReadinessHandle, what: impl Fn(&Snapshot) -> bool) -> Arc<Snapshot> {
    let mut snapshot_rx = handle.subscribe();
    let snapshot = snapshot_rx
        .wait_for(|snapshot| what(snapshot))
        .await
        .unwrap();
    Arc::clone(&snapshot)
}

fn status(snapshot: &Snapshot, name: &str) -> CheckStatus {
    snapshot.check(name).unwrap().status
}

#[tokio::test(start_paused = true)]
async fn a_passing_probe_and_a_signal_make_the_gate_ready() {
    let (probe, script) = scripted(|_| Step::Pass);
    let handle = spawn(probe);
    assert_eq!(handle.current().state, GateState::Starting);
    wait_for(&handle, |s| status(s, "database") == CheckStatus::Passing).await;
    assert_eq!(handle.current().phase.as_deref(), Some("services"));
    handle.set_signal("agent", true, None).unwrap();
    let ready = wait_for(&handle, |s| s.state == GateState::Ready).await;
    assert!(ready.pending.is_empty());
    assert!(script.attempts.load(Ordering::SeqCst) >= 1);
}

#[tokio::test(start_paused = true)]
async fn a_hung_check_times_out_and_its_attempt_is_cancelled() {
    let (probe, script) = scripted(|_| Step::Hang);
    let handle = spawn(probe);
    let started = tokio::time::Instant::now();
    wait_for(&handle, |s| status(s, "database") == CheckStatus::Failing).await;
    assert_eq!(started.elapsed(), SCHEDULE.timeout);
    assert!(script.hung_attempt_dropped.load(Ordering::SeqCst));
    let verbose = handle.verbose();
    let database = &verbose.checks[0].details;
    assert_eq!(database.last_error.as_deref(), Some("timed out after 1s"));
    assert_eq!(database.last_latency, Some(SCHEDULE.timeout));
    // The engine stays responsive while the check hangs again.
    handle.set_signal("agent", true, None).unwrap();
    wait_for(&handle, |s| status(s, "agent") == CheckStatus::Passing).await;
    assert!(handle.is_alive());
}

#[tokio::test(start_paused = true)]
async fn a_panicking_check_fails_with_the_panic_message_and_the_engine_goes_on() {
    let (probe, script) = scripted(|attempt| if attempt < 2 { Step::Panic } else { Step::Pass });
    let handle = spawn(probe);
    wait_for(&handle, |s| status(s, "database") == CheckStatus::Failing).await;
    assert_eq!(
        handle.verbose().checks[0].details.last_error.as_deref(),
        Some("probe panicked: probe exploded")
    );
    // The runner survives the panic and the next attempts go on.
    wait_for(&handle, |s| status(s, "database") == CheckStatus::Passing).await;
    assert_eq!(script.attempts.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_flapping_check_needs_three_failures_in_a_row_to_leave_ready() {
    // Attempts 0..: pass, then fail-pass flapping, then three failures, then passes.
    let (probe, _script) = scripted(|attempt| match attempt {
        0 => Step::Pass,
        1 | 3 => Step::Fail,
        2 | 4 | 5 => Step::Pass,
        6..=8 => Step::Fail,
        _ => Step::Pass,
    });
    let handle = spawn(probe);
    handle.set_signal("agent", true, None).unwrap();
    let ready = wait_for(&handle, |s| s.state == GateState::Ready).await;
    let mut snapshot_rx = handle.subscribe();
    snapshot_rx.borrow_and_update();
    // The flapping attempts (1 to 5) and the first two of the three failures
    // publish nothing; the third failure turns the gate not ready.
    snapshot_rx.changed().await.unwrap();
    let not_ready = Arc::clone(&snapshot_rx.borrow_and_update());
    assert_eq!(not_ready.state, GateState::NotReady);
    assert_eq!(not_ready.seq, ready.seq + 1);
    assert_eq!(handle.verbose().checks[0].details.attempts, 9);
    // One success recovers.
    snapshot_rx.changed().await.unwrap();
    assert_eq!(snapshot_rx.borrow().state, GateState::Ready);
}

#[tokio::test(start_paused = true)]
async fn missing_the_startup_deadline_fails_then_a_late_success_still_readies() {
    let (probe, _script) = scripted(|_| Step::Pass);
    let handle = EngineBuilder::new(plan(Duration::from_secs(5)), EngineSettings::default())
        .probe("database", SCHEDULE, probe)
        .unwrap()
        .signal("agent")
        .unwrap()
        .spawn()
        .unwrap();
    let started = tokio::time::Instant::now();
    let failed = wait_for(&handle, |s| s.state == GateState::Failed).await;
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(failed.pending, ["agent"]);
    handle.set_signal("agent", true, None).unwrap();
    wait_for(&handle, |s| s.state == GateState::Ready).await;
}

#[tokio::test(start_paused = true)]
async fn drain_is_terminal_ignores_late_results_and_stops_the_runners() {
    let (probe, script) = scripted(|_| Step::Fail);
    let handle = spawn(probe);
    wait_for(&handle, |s| status(s, "database") == CheckStatus::Failing).await;
    handle.drain().unwrap();
    let draining = wait_for(&handle, |s| s.state == GateState::Draining).await;
    handle.set_signal("agent", true, None).unwrap();
    handle.drain().unwrap();
    // Let the runner see its Stop cadence, then a long stretch of time.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let attempts = script.attempts.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(script.attempts.load(Ordering::SeqCst), attempts);
    assert_eq!(handle.current().seq, draining.seq);
    assert_eq!(handle.current().state, GateState::Draining);
}

#[tokio::test(start_paused = true)]
async fn failing_checks_retry_with_backoff_and_passing_ones_at_their_interval() {
    let (probe, script) = scripted(|_| Step::Fail);
    let _handle = spawn(probe);
    // Backoff from 10 ms, capped at 100 ms: at least 10 tries in one second,
    // and never faster than the first retry delay allows.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let retries = script.attempts.load(Ordering::SeqCst);
    assert!((10..=110).contains(&retries), "{retries} attempts in 1s");

    let (probe, script) = scripted(|_| Step::Pass);
    let _handle = spawn(probe);
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(script.attempts.load(Ordering::SeqCst), 1);
    tokio::time::sleep(SCHEDULE.interval * 3).await;
    assert_eq!(script.attempts.load(Ordering::SeqCst), 4);
}

#[test]
fn retry_delays_double_from_ten_milliseconds_and_stay_under_the_cap() {
    let cap = Duration::from_millis(100);
    for _ in 0..1000 {
        let first = retry_delay(1, cap);
        assert!(
            first >= FIRST_RETRY / 2 && first <= FIRST_RETRY,
            "{first:?}"
        );
        let third = retry_delay(3, cap);
        assert!(
            third >= Duration::from_millis(20) && third <= Duration::from_millis(40),
            "{third:?}"
        );
        let late = retry_delay(u32::MAX, cap);
        assert!(late >= cap / 2 && late <= cap, "{late:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn signals_are_checked_by_name_and_kind() {
    let (probe, _script) = scripted(|_| Step::Pass);
    let handle = spawn(probe);
    assert_eq!(
        handle.set_signal("nope", true, None),
        Err(EngineError::UnknownCheck {
            name: "nope".into()
        })
    );
    assert_eq!(
        handle.set_signal("database", true, None),
        Err(EngineError::NotASignal {
            name: "database".into(),
            kind: "scripted".into()
        })
    );
    handle
        .set_signal("agent", false, Some("warming caches".into()))
        .unwrap();
    wait_for(&handle, |s| status(s, "agent") == CheckStatus::Failing).await;
    assert_eq!(
        handle.verbose().checks[1].details.last_error.as_deref(),
        Some("warming caches")
    );
}

#[tokio::test(start_paused = true)]
async fn a_signal_set_and_waited_for_is_in_the_snapshot_when_the_call_returns() {
    let (probe, _script) = scripted(|_| Step::Pass);
    let handle = spawn(probe);
    wait_for(&handle, |s| status(s, "database") == CheckStatus::Passing).await;
    handle
        .set_signal_applied("agent", true, None, Duration::from_secs(1))
        .await
        .unwrap();
    // No waiting: both the snapshot and the verbose view have it already.
    assert_eq!(handle.current().state, GateState::Ready);
    assert_eq!(status(&handle.current(), "agent"), CheckStatus::Passing);
    handle
        .set_signal_applied(
            "agent",
            false,
            Some("restarting".into()),
            Duration::from_secs(1),
        )
        .await
        .unwrap();
    // One failure is recorded at once (the status turns only past the
    // failure threshold).
    assert_eq!(
        handle.verbose().checks[1].details.last_error.as_deref(),
        Some("restarting")
    );
    assert_eq!(
        handle
            .set_signal_applied("nope", true, None, Duration::from_secs(1))
            .await,
        Err(EngineError::UnknownCheck {
            name: "nope".into()
        })
    );
}

#[tokio::test(start_paused = true)]
async fn the_builder_refuses_a_plan_with_a_check_left_without_a_driver() {
    let error = EngineBuilder::new(plan(Duration::from_secs(1)), EngineSettings::default())
        .signal("agent")
        .unwrap()
        .spawn()
        .unwrap_err();
    assert_eq!(
        error,
        EngineError::MissingDriver {
            name: "database".into(),
            kind: "scripted".into()
        }
    );
    let error = EngineBuilder::new(plan(Duration::from_secs(1)), EngineSettings::default())
        .signal("agent")
        .unwrap()
        .signal("agent")
        .unwrap_err();
    assert_eq!(
        error,
        EngineError::DriverGivenTwice {
            name: "agent".into()
        }
    );
}

#[tokio::test(start_paused = true)]
async fn the_heartbeat_keeps_liveness_fresh() {
    let (probe, _script) = scripted(|_| Step::Pass);
    let handle = spawn(probe);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(handle.heartbeat_age() <= Duration::from_secs(1));
    assert!(handle.is_alive());
}

#[tokio::test(start_paused = true)]
async fn subscribers_see_the_current_snapshot_first() {
    let (probe, _script) = scripted(|_| Step::Hang);
    let handle = spawn(probe);
    let mut snapshot_rx = handle.subscribe();
    snapshot_rx.changed().await.unwrap();
    assert_eq!(snapshot_rx.borrow_and_update().seq, 1);
    assert_eq!(handle.with_current(|s| s.seq), 1);
}

// === The observer seam ===

/// What a [`Recorder`] saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Observed {
    Started {
        state: GateState,
    },
    Transition {
        from: GateState,
        to: GateState,
        seq: u64,
        snapshot_seq: u64,
        snapshot_state: GateState,
    },
    Heartbeat {
        at: tokio::time::Instant,
    },
}

/// An observer that sends everything it sees to the test.
#[derive(Debug)]
struct Recorder {
    observed_tx: tokio::sync::mpsc::UnboundedSender<Observed>,
}

impl crate::EngineObserver for Recorder {
    fn started(&mut self, snapshot: &Snapshot) {
        let _ = self.observed_tx.send(Observed::Started {
            state: snapshot.state,
        });
    }

    fn transition(&mut self, transition: &warmgate_core::Transition, snapshot: &Snapshot) {
        let _ = self.observed_tx.send(Observed::Transition {
            from: transition.from,
            to: transition.to,
            seq: transition.seq,
            snapshot_seq: snapshot.seq,
            snapshot_state: snapshot.state,
        });
    }

    fn heartbeat(&mut self, _snapshot: &Snapshot) {
        let _ = self.observed_tx.send(Observed::Heartbeat {
            at: tokio::time::Instant::now(),
        });
    }
}

/// The test plan with a probed `database` that always passes and a signal
/// `agent` that turns on its first failure, observed by a [`Recorder`].
fn spawn_observed(
    settings: EngineSettings,
) -> (
    ReadinessHandle,
    tokio::sync::mpsc::UnboundedReceiver<Observed>,
) {
    let (observed_tx, observed_rx) = tokio::sync::mpsc::unbounded_channel();
    let (probe, _script) = scripted(|_| Step::Pass);
    let plan = plan_with_agent(
        Duration::from_secs(60),
        CheckSpec::new("agent", "signal").thresholds(1, 1),
    );
    let handle = EngineBuilder::new(plan, settings)
        .probe("database", SCHEDULE, probe)
        .unwrap()
        .signal("agent")
        .unwrap()
        .observer(Box::new(Recorder { observed_tx }))
        .spawn()
        .unwrap();
    (handle, observed_rx)
}

/// The next thing observed other than a heartbeat.
async fn next_non_heartbeat(
    observed_rx: &mut tokio::sync::mpsc::UnboundedReceiver<Observed>,
) -> Observed {
    loop {
        match observed_rx.recv().await.unwrap() {
            Observed::Heartbeat { .. } => {}
            other => return other,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_observer_sees_every_transition_in_order_even_two_quick_flips() {
    let (handle, mut observed_rx) = spawn_observed(EngineSettings::default());
    assert_eq!(
        observed_rx.recv().await.unwrap(),
        Observed::Started {
            state: GateState::Starting
        }
    );
    wait_for(&handle, |s| status(s, "database") == CheckStatus::Passing).await;
    handle.set_signal("agent", true, None).unwrap();
    // Two flips sent back to back: a watch receiver could see them as no
    // change at all, the observer sees both.
    handle
        .set_signal("agent", false, Some("reloading".into()))
        .unwrap();
    handle.set_signal("agent", true, None).unwrap();
    handle.drain().unwrap();
    let mut transitions = Vec::new();
    for _ in 0..4 {
        transitions.push(next_non_heartbeat(&mut observed_rx).await);
    }
    let steps: Vec<_> = transitions
        .iter()
        .map(|observed| match observed {
            Observed::Transition {
                from,
                to,
                seq,
                snapshot_seq,
                snapshot_state,
            } => {
                // The snapshot handed over is the one that first shows it.
                assert_eq!(seq, snapshot_seq);
                assert_eq!(to, snapshot_state);
                (*from, *to)
            }
            other => panic!("expected a transition, got {other:?}"),
        })
        .collect();
    assert_eq!(
        steps,
        [
            (GateState::Starting, GateState::Ready),
            (GateState::Ready, GateState::NotReady),
            (GateState::NotReady, GateState::Ready),
            (GateState::Ready, GateState::Draining),
        ]
    );
    let seqs: Vec<_> = transitions
        .iter()
        .map(|observed| match observed {
            Observed::Transition { seq, .. } => *seq,
            _ => unreachable!(),
        })
        .collect();
    assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "{seqs:?}");
    assert_eq!(handle.current().state, GateState::Draining);
}

#[tokio::test(start_paused = true)]
async fn the_observer_hears_a_heartbeat_at_every_interval() {
    let settings = EngineSettings {
        heartbeat_interval: Duration::from_millis(250),
        ..EngineSettings::default()
    };
    let started = tokio::time::Instant::now();
    let (_handle, mut observed_rx) = spawn_observed(settings);
    let mut beats = Vec::new();
    while beats.len() < 8 {
        if let Observed::Heartbeat { at } = observed_rx.recv().await.unwrap() {
            beats.push(at - started);
        }
    }
    // The first tick comes at once, then one every interval.
    let expected: Vec<_> = (0..8).map(|n| Duration::from_millis(250) * n).collect();
    assert_eq!(beats, expected);
}

mod backoff;
mod leases;
