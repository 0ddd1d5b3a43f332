//! The two retry regimes, in paused time: fast retries under `retry_cap`
//! before the first ready; after it, full-jitter backoff that grows to the
//! check's `backoff_cap` and averages half of it; back to the interval on
//! recovery. Attempt times come from the probe itself.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use warmgate_core::GateState;
use warmgate_probes::{Probe, ProbeError, ProbeFuture};

use super::{plan, wait_for};
use crate::backoff::{FIRST_RETRY, backoff_delay};
use crate::{EngineBuilder, EngineSettings, ProbeSchedule, ReadinessHandle};

/// A probe that passes or fails by attempt number and records when each
/// attempt started; `n_attempts_tx` wakes the test as attempts add up.
struct TimedProbe {
    passes: fn(usize) -> bool,
    started: Arc<Mutex<Vec<Instant>>>,
    n_attempts_tx: watch::Sender<usize>,
}

impl Probe for TimedProbe {
    fn kind(&self) -> &'static str {
        "timed"
    }

    fn target(&self) -> String {
        "timed".into()
    }

    fn probe(&mut self) -> ProbeFuture<'_> {
        let n_attempts = {
            let mut started = self.started.lock().unwrap();
            started.push(Instant::now());
            started.len()
        };
        let passed = (self.passes)(n_attempts - 1);
        self.n_attempts_tx.send_replace(n_attempts);
        Box::pin(async move {
            if passed {
                Ok(())
            } else {
                Err(ProbeError::Connect {
                    target: "127.0.0.1:1".into(),
                    source: std::io::ErrorKind::ConnectionRefused.into(),
                })
            }
        })
    }
}

struct Timed {
    handle: ReadinessHandle,
    started: Arc<Mutex<Vec<Instant>>>,
    n_attempts_rx: watch::Receiver<usize>,
}

impl Timed {
    async fn wait_for_attempts(&mut self, n: usize) {
        self.n_attempts_rx
            .wait_for(|n_attempts| *n_attempts >= n)
            .await
            .unwrap();
    }

    /// The waits between consecutive attempts, from attempt `from` on.
    fn gaps(&self, from: usize) -> Vec<Duration> {
        let started = self.started.lock().unwrap();
        started[from..]
            .windows(2)
            .map(|pair| pair[1] - pair[0])
            .collect()
    }
}

const INTERVAL: Duration = Duration::from_secs(2);

fn spawn_timed(passes: fn(usize) -> bool) -> Timed {
    let started = Arc::new(Mutex::new(Vec::new()));
    let (n_attempts_tx, n_attempts_rx) = watch::channel(0);
    let probe = TimedProbe {
        passes,
        started: Arc::clone(&started),
        n_attempts_tx,
    };
    let handle = EngineBuilder::new(plan(Duration::from_secs(3600)), EngineSettings::default())
        .probe(
            "database",
            ProbeSchedule::new(Duration::from_secs(1), INTERVAL),
            Box::new(probe),
        )
        .unwrap()
        .signal("agent")
        .unwrap()
        .spawn()
        .unwrap();
    Timed {
        handle,
        started,
        n_attempts_rx,
    }
}

fn mean(gaps: &[Duration]) -> Duration {
    gaps.iter().sum::<Duration>() / u32::try_from(gaps.len()).unwrap()
}

/// Timers fire on whole milliseconds, so a wait may run up to 1 ms long.
const TIMER_SLACK: Duration = Duration::from_millis(1);

#[tokio::test(start_paused = true)]
async fn before_the_first_ready_retries_stay_under_the_retry_cap() {
    let mut timed = spawn_timed(|_| false);
    timed.wait_for_attempts(300).await;
    assert_eq!(timed.handle.current().state, GateState::Starting);
    let retry_cap = EngineSettings::default().retry_cap;
    let gaps = timed.gaps(0);
    assert!(
        gaps.iter()
            .all(|gap| *gap >= FIRST_RETRY / 2 && *gap <= retry_cap + TIMER_SLACK),
        "{gaps:?}"
    );
    // Past the first few doublings they sit in the upper half of the cap.
    let settled = mean(&gaps[10..]);
    assert!(
        settled >= retry_cap / 2 && settled <= retry_cap,
        "{settled:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn after_the_first_ready_a_failing_check_backs_off_to_its_cap_then_recovers_to_its_interval()
{
    // Attempt 0 passes (the gate turns ready with the signal), 1 to 1200
    // fail, then it passes again.
    const N_FAILURES: usize = 1200;
    let mut timed = spawn_timed(|attempt| attempt == 0 || attempt > N_FAILURES);
    timed.handle.set_signal("agent", true, None).unwrap();
    wait_for(&timed.handle, |s| s.state == GateState::Ready).await;
    timed.wait_for_attempts(N_FAILURES + 6).await;

    let backoff_cap = INTERVAL * 2;
    let gaps = timed.gaps(0);
    // Attempts 1 to 3 fail while the check still passes (failure threshold
    // 3): they come at the interval.
    assert_eq!(gaps[..3], [INTERVAL; 3]);
    // From the third failure on, the check is failing and backs off: never
    // past the cap, and past the first doublings (10 ms x 2^9 > 4 s) a
    // uniform draw up to the cap.
    let backoff = &gaps[3..=N_FAILURES];
    assert!(
        backoff.iter().all(|gap| *gap <= backoff_cap + TIMER_SLACK),
        "{backoff:?}"
    );
    let settled = &backoff[10..];
    let average = mean(settled);
    assert!(
        average >= backoff_cap * 45 / 100 && average <= backoff_cap * 55 / 100,
        "mean {average:?} over {} waits, expected about {:?}",
        settled.len(),
        backoff_cap / 2
    );
    assert!(settled.iter().any(|gap| *gap > backoff_cap * 9 / 10));
    assert!(settled.iter().any(|gap| *gap < backoff_cap / 10));
    assert_eq!(timed.handle.current().state, GateState::Ready);
    // Once it passes again (attempt N_FAILURES + 1), its interval.
    assert_eq!(gaps[N_FAILURES + 1..N_FAILURES + 5], [INTERVAL; 4]);
}

#[test]
fn backoff_delays_double_from_ten_milliseconds_with_full_jitter_up_to_the_cap() {
    let cap = Duration::from_secs(4);
    let mut late = Vec::new();
    for _ in 0..10_000 {
        assert!(backoff_delay(1, cap) <= FIRST_RETRY);
        assert!(backoff_delay(4, cap) <= Duration::from_millis(80));
        let delay = backoff_delay(u32::MAX, cap);
        assert!(delay <= cap, "{delay:?}");
        late.push(delay);
    }
    let average = mean(&late);
    assert!(
        average >= cap * 48 / 100 && average <= cap * 52 / 100,
        "{average:?}"
    );
}
