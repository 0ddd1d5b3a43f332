//! One check's runner: attempt, time out, catch panics, report, wait.
//!
//! How long to wait is the engine's answer (the machine's cadence) turned
//! into a delay: the check's interval, or a delay of `backoff`.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::Instrument;
use warmgate_core::{Cadence, CheckId, CheckOutcome, FailureClass};
use warmgate_probes::{Probe, ProbeError};

use crate::ProbeSchedule;
use crate::backoff::{backoff_delay, retry_delay};
use crate::engine::Message;
use crate::startup_span::StartupSpan;

pub(crate) struct CheckRunner {
    pub(crate) check: CheckId,
    pub(crate) name: String,
    pub(crate) probe: Box<dyn Probe>,
    pub(crate) schedule: ProbeSchedule,
    pub(crate) retry_cap: Duration,
    pub(crate) inbox_tx: mpsc::UnboundedSender<Message>,
    pub(crate) startup_span: StartupSpan,
}

impl CheckRunner {
    /// Runs attempts until the engine says stop or goes away.
    pub(crate) async fn run(mut self) {
        crate::measure::runner_started(&self.name);
        loop {
            let (outcome, latency) = self.attempt().await;
            let (cadence_tx, cadence_rx) = oneshot::channel();
            let message = Message::AttemptCompleted {
                check: self.check,
                outcome,
                latency,
                cadence_tx,
            };
            if self.inbox_tx.send(message).is_err() {
                return;
            }
            let delay = match cadence_rx.await {
                Ok(Cadence::Interval) => self.schedule.interval,
                Ok(Cadence::Retry {
                    consecutive_failures,
                }) => retry_delay(consecutive_failures, self.retry_cap),
                Ok(Cadence::Backoff {
                    consecutive_failures,
                }) => backoff_delay(consecutive_failures, self.schedule.backoff_cap),
                Ok(Cadence::Stop) | Err(_) => return,
            };
            tokio::time::sleep(delay).await;
        }
    }

    /// One attempt, bounded by the timeout. A timed-out attempt's future is
    /// dropped, which cancels it at its current `.await`. A panic inside the
    /// probe becomes a failure that carries the panic message.
    async fn attempt(&mut self) -> (CheckOutcome, Duration) {
        let span = tracing::info_span!(
            parent: self.startup_span.id(),
            "check_attempt",
            check.name = %self.name,
            check.kind = self.probe.kind(),
            outcome = tracing::field::Empty,
            latency_ms = tracing::field::Empty,
            error = tracing::field::Empty,
        );
        let timeout = self.schedule.timeout;
        let started = Instant::now();
        let result =
            tokio::time::timeout(timeout, AssertUnwindSafe(self.probe.probe()).catch_unwind())
                .instrument(span.clone())
                .await;
        let latency = started.elapsed();
        let outcome = match result {
            Ok(Ok(Ok(()))) => CheckOutcome::Passed,
            Ok(Ok(Err(error))) => CheckOutcome::Failed {
                error: error.to_string(),
                class: failure_class(&error),
            },
            Ok(Err(panic)) => CheckOutcome::Failed {
                error: format!("probe panicked: {}", panic_message(panic.as_ref())),
                class: FailureClass::Panicked,
            },
            Err(_elapsed) => CheckOutcome::Failed {
                error: format!("timed out after {}", humanize(timeout)),
                class: FailureClass::TimedOut,
            },
        };
        span.record("latency_ms", latency.as_secs_f64() * 1000.0);
        // Recorded before the engine hears of it, so the attempt is counted
        // by the time any snapshot shows its result.
        crate::measure::attempt(
            &self.name,
            latency,
            matches!(outcome, CheckOutcome::Failed { .. }),
        );
        match &outcome {
            CheckOutcome::Passed => {
                span.record("outcome", "passed");
            }
            CheckOutcome::Failed { error, .. } => {
                span.record("outcome", "failed");
                span.record("error", error.as_str());
                tracing::debug!(
                    parent: &span,
                    target = %self.probe.target(),
                    "check attempt failed; retrying with backoff"
                );
            }
        }
        (outcome, latency)
    }
}

/// The class of a probe's error, for the transition history: the kind of
/// a failed connect, or the variant.
fn failure_class(error: &ProbeError) -> FailureClass {
    match error {
        ProbeError::Connect { source, .. } => match source.kind() {
            std::io::ErrorKind::ConnectionRefused => FailureClass::ConnectionRefused,
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted => {
                FailureClass::ConnectionReset
            }
            std::io::ErrorKind::HostUnreachable
            | std::io::ErrorKind::NetworkUnreachable
            | std::io::ErrorKind::AddrNotAvailable => FailureClass::Unreachable,
            _ => FailureClass::Connect,
        },
        ProbeError::Resolve { .. } => FailureClass::Resolve,
        ProbeError::InvalidTarget { .. } => FailureClass::InvalidTarget,
        ProbeError::Failed { .. } => FailureClass::Error,
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(message) = panic.downcast_ref::<&'static str>() {
        (*message).to_owned()
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}

/// "1s", "250ms", "1.5s": how an operator wrote the timeout.
fn humanize(duration: Duration) -> String {
    if duration.subsec_millis() == 0 && duration.as_secs() > 0 {
        format!("{}s", duration.as_secs())
    } else if duration.as_secs() == 0 {
        format!("{}ms", duration.as_millis())
    } else {
        format!("{:.3}s", duration.as_secs_f64())
    }
}
