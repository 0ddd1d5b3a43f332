//! The shutdown budget: the whole shutdown, from the start of the drain to
//! the process's exit, fits in `[gate] shutdown_budget`.
//!
//! The config keeps `drain_grace` plus the close margin plus the exit reserve
//! within the budget (`warmgate_config::GateConfig::drain_grace_within`), so a
//! drain that goes to plan ends in time: `serve` stops waiting for closing
//! handshakes at `drain_grace` plus the margin, the span flush is given what
//! is left ([`ShutdownBudget::remaining`]) less a slack, and the runtime's
//! shutdown takes at most [`RUNTIME_STOP`] of that slack.
//! What does not go to plan (a hung flush, a task that will not stop, an
//! engine that never publishes `draining`) meets the backstop: a thread that
//! exits the process, status [`EXIT_BUDGET_SPENT`], when the budget is spent.
//! An orchestrator's SIGKILL would come soon after anyway; this way the log
//! says why.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The exit status when the backstop ends the process: the shutdown did not
/// fit its budget.
pub(crate) const EXIT_BUDGET_SPENT: i32 = 1;

/// Kept back from the span flush for the runtime's shutdown and the exit.
const EXIT_SLACK: Duration = Duration::from_millis(300);

/// The longest wait for the runtime's blocking tasks (a DNS lookup, say)
/// once the spans are sent; its other tasks stop at once.
pub(crate) const RUNTIME_STOP: Duration = Duration::from_millis(200);

/// The budget and, once the drain has started, its deadline.
#[derive(Debug)]
pub(crate) struct ShutdownBudget {
    budget: Duration,
    deadline: OnceLock<Instant>,
}

impl ShutdownBudget {
    pub(crate) fn new(budget: Duration) -> ShutdownBudget {
        ShutdownBudget {
            budget,
            deadline: OnceLock::new(),
        }
    }

    /// Starts the clock, on the first call only, and arms the backstop.
    /// Call it when a shutdown signal arrives and when `draining` is
    /// published (a drain asked for over the admin API).
    pub(crate) fn start(&self) {
        let budget_ms = self.budget.as_millis() as u64;
        self.start_with(move || {
            tracing::error!(
                budget_ms,
                "the shutdown budget is spent and the process is still running; exiting now (raise [gate] shutdown_budget, or find what holds the exit in the lines above)"
            );
            std::process::exit(EXIT_BUDGET_SPENT);
        });
    }

    /// [`ShutdownBudget::start`] with what the backstop does when the
    /// budget is spent: `spent` runs on a thread of its own at the
    /// deadline, unless the process has exited by then. Only the first call
    /// starts anything.
    fn start_with(&self, spent: impl FnOnce() + Send + 'static) {
        let mut started = false;
        let deadline = *self.deadline.get_or_init(|| {
            started = true;
            Instant::now() + self.budget
        });
        if !started {
            return;
        }
        let backstop = std::thread::Builder::new()
            .name("shutdown-backstop".to_owned())
            .spawn(move || {
                #[expect(
                    clippy::disallowed_methods,
                    reason = "the backstop is a thread of its own, so that it fires even when the runtime is stuck"
                )]
                std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
                spent();
            });
        if let Err(error) = backstop {
            tracing::warn!(
                %error,
                "cannot start the shutdown backstop; the exit is bounded by drain_grace and the flush timeout only"
            );
        }
    }

    /// What is left of the budget for the span flush: the time to the
    /// deadline less a slack for the exit; `None` before the drain started
    /// (the server stopped for another reason, such as a failed bind).
    pub(crate) fn remaining(&self) -> Option<Duration> {
        self.deadline.get().map(|deadline| {
            deadline
                .saturating_duration_since(Instant::now())
                .saturating_sub(EXIT_SLACK)
        })
    }

    /// The time since the drain started, if it did.
    pub(crate) fn elapsed(&self) -> Option<Duration> {
        self.deadline
            .get()
            .map(|deadline| (Instant::now() + self.budget).saturating_duration_since(*deadline))
    }

    pub(crate) fn budget(&self) -> Duration {
        self.budget
    }
}

#[cfg(test)]
mod tests;
