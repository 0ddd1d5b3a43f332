//! The readiness state machine: events in, effects and snapshots out.
//!
//! [`Machine::apply`] is the only way state changes. It takes one [`Event`]
//! (which carries the time it happened, as a [`Duration`] since the gate
//! started) and returns the [`Effect`]s the engine must carry out: publish a
//! new snapshot, and report a state transition.
//!
//! The rules, in one place:
//! - A check is `unknown` until its first attempt completes; that first result
//!   sets its status directly.
//! - Before the gate has been ready once, every later result also sets the
//!   status directly: a check passes on its first success.
//! - After the gate has been ready once, an established status only flips
//!   after `failure_threshold` consecutive failures (to `failing`) or
//!   `success_threshold` consecutive successes (to `passing`).
//! - Never ready before: all required checks passing gives `ready` (or
//!   `degraded` if an optional check fails); otherwise `failed` once the
//!   startup deadline has passed, else `starting`.
//! - Ready before: a required check not passing gives `not_ready`; else an
//!   optional check failing gives `degraded`; else `ready`.
//! - `draining` is entered on request from any state, is terminal, and every
//!   later result is ignored.
//! - A signal set with a lease (a time to live) that is not set again
//!   within it turns `failing` at once when the lease runs out, whatever
//!   its `failure_threshold`: the process that should renew it is gone.
//!   Setting a signal again renews its lease, or clears it when the new
//!   set has none. Leases run out on [`Event::TimePassed`]; the engine
//!   sends one at [`Machine::next_lease_expiry`].
//! - [`Machine::cadence`] schedules the next attempt of a probed check:
//!   `Interval` while it passes; while it does not, `Retry` (fast) during
//!   start-up, `Backoff` (slow, bounded load) once the gate has been ready
//!   or its startup deadline has passed.

use std::time::Duration;

use crate::cause::{Cause, CheckResult, FailureClass};
use crate::snapshot::{
    CheckDetails, CheckStatus, CheckView, GateState, Lease, Snapshot, VerboseCheckView,
    VerboseSnapshot,
};
use crate::{CheckSpec, Plan};

/// A check's position in [`Plan::checks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CheckId(pub usize);

/// The result of one completed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    Passed,
    /// The attempt failed: `error` in an operator's words, `class` the
    /// kind of failure as a word for machines (history, metrics).
    Failed {
        error: String,
        class: FailureClass,
    },
}

/// Something that happened, with the time it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A check attempt finished (a probe returned, timed out or panicked, or
    /// a signal was set).
    CheckCompleted {
        check: CheckId,
        outcome: CheckOutcome,
        latency: Duration,
        at: Duration,
    },
    /// The application set a signal check. Recorded like a completed
    /// attempt (with no latency). `ttl: Some(..)` gives the signal a lease
    /// that runs out at `at + ttl` unless set again; `None` clears any lease.
    SignalSet {
        check: CheckId,
        outcome: CheckOutcome,
        ttl: Option<Duration>,
        at: Duration,
    },
    /// Time passed with nothing else happening; lets the startup deadline
    /// take effect, and runs out every lease due by `at`.
    TimePassed { at: Duration },
    /// Shutdown was requested.
    DrainRequested { at: Duration },
}

impl Event {
    /// When the event happened, since the gate started.
    pub fn at(&self) -> Duration {
        match self {
            Event::CheckCompleted { at, .. }
            | Event::SignalSet { at, .. }
            | Event::TimePassed { at }
            | Event::DrainRequested { at } => *at,
        }
    }
}

/// A change of [`GateState`], with why it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: GateState,
    pub to: GateState,
    /// The seq of the snapshot that first shows `to`.
    pub seq: u64,
    pub reason: String,
    /// What caused it, as data.
    pub cause: Cause,
    /// When it happened, since the gate started.
    pub at: Duration,
}

/// What the engine must do after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// The state changed: report it.
    Transition(Transition),
    /// Something observable changed: publish this snapshot.
    Publish(Snapshot),
}

/// How soon a check should run again, decided by its status and by whether
/// the gate has been ready once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cadence {
    /// The check is not passing during start-up (the gate has never been
    /// ready and its startup deadline has not passed): retry quickly (the
    /// engine's short `retry_cap`), backing off with the number of
    /// consecutive failures so far, so start-up is fast.
    Retry { consecutive_failures: u32 },
    /// The check is not passing and start-up is over (the gate has been
    /// ready once, or missed its startup deadline): back off with full
    /// jitter up to the check's own backoff cap, so that a broken
    /// dependency gets at most about one attempt per interval from each
    /// instance however long it stays broken.
    Backoff { consecutive_failures: u32 },
    /// The check passes: run it again after its interval.
    Interval,
    /// The gate is draining: run it no more.
    Stop,
}

#[derive(Debug, Clone)]
struct CheckState {
    phase_index: usize,
    spec: CheckSpec,
    status: CheckStatus,
    since: Duration,
    details: CheckDetails,
}

/// The readiness state machine. See the module docs for its rules.
///
/// Invariants: the `seq` of published snapshots strictly increases; the state
/// is `ready` or `degraded` only while every required check is `passing`;
/// once `draining`, it is never anything else.
#[derive(Debug, Clone)]
pub struct Machine {
    plan: Plan,
    checks: Vec<CheckState>,
    state: GateState,
    ever_ready: bool,
    deadline_passed: bool,
    now: Duration,
    current: Snapshot,
}

impl Machine {
    /// A machine at time zero, with every check `unknown`.
    pub fn new(plan: Plan) -> Self {
        let checks = plan
            .checks()
            .map(|(phase_index, spec)| CheckState {
                phase_index,
                spec: spec.clone(),
                status: CheckStatus::Unknown,
                since: Duration::ZERO,
                details: CheckDetails::default(),
            })
            .collect();
        let mut machine = Self {
            plan,
            checks,
            state: GateState::Starting,
            ever_ready: false,
            deadline_passed: false,
            now: Duration::ZERO,
            current: Snapshot {
                seq: 0,
                state: GateState::Starting,
                phase: None,
                elapsed: Duration::ZERO,
                pending: Vec::new(),
                degraded: Vec::new(),
                checks: Vec::new(),
                ever_ready: false,
            },
        };
        // An empty plan, or one with only optional checks, is ready at once.
        machine.state = machine.evaluate_state();
        machine.current = machine.build_snapshot(1);
        machine
    }

    /// The plan this machine runs.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The latest published snapshot.
    pub fn snapshot(&self) -> &Snapshot {
        &self.current
    }

    /// The current state.
    pub fn state(&self) -> GateState {
        self.state
    }

    /// Looks a check up by name.
    pub fn check_id(&self, name: &str) -> Option<CheckId> {
        self.checks
            .iter()
            .position(|check| check.spec.name == name)
            .map(CheckId)
    }

    /// The spec of a check.
    pub fn check_spec(&self, check: CheckId) -> Option<&CheckSpec> {
        self.checks.get(check.0).map(|state| &state.spec)
    }

    /// How soon a check should run again.
    pub fn cadence(&self, check: CheckId) -> Cadence {
        if self.state == GateState::Draining {
            return Cadence::Stop;
        }
        match self.checks.get(check.0) {
            Some(state) if state.status == CheckStatus::Passing => Cadence::Interval,
            Some(state) if self.ever_ready || self.deadline_passed => Cadence::Backoff {
                consecutive_failures: state.details.consecutive_failures,
            },
            Some(state) => Cadence::Retry {
                consecutive_failures: state.details.consecutive_failures,
            },
            None => Cadence::Stop,
        }
    }

    /// When the earliest signal lease runs out, as time since the gate
    /// started; `None` when no lease is held or the gate is draining. The
    /// engine sends [`Event::TimePassed`] at that time.
    pub fn next_lease_expiry(&self) -> Option<Duration> {
        if self.state == GateState::Draining {
            return None;
        }
        self.checks
            .iter()
            .filter_map(|check| check.details.lease.map(|lease| lease.expires_at))
            .min()
    }

    /// The leases that an [`Event::TimePassed`] at `at` runs out, with their
    /// checks, in plan order: for the engine's log line before it applies
    /// the event. Empty while draining.
    pub fn leases_due(&self, at: Duration) -> Vec<(CheckId, Lease)> {
        if self.state == GateState::Draining {
            return Vec::new();
        }
        self.checks
            .iter()
            .enumerate()
            .filter_map(|(index, check)| {
                let lease = check.details.lease?;
                (lease.expires_at <= at).then_some((CheckId(index), lease))
            })
            .collect()
    }

    /// Applies one event and returns what the engine must do about it.
    ///
    /// Events whose time is earlier than an event already applied are
    /// treated as happening now, so time never runs backwards.
    pub fn apply(&mut self, event: Event) -> Vec<Effect> {
        self.now = self.now.max(event.at());
        if self.state == GateState::Draining {
            return Vec::new();
        }
        let from = self.state;
        let is_drain = matches!(event, Event::DrainRequested { .. });
        let mut cause = self.cause_of(&event);
        let reason = match event {
            Event::CheckCompleted {
                check,
                outcome,
                latency,
                ..
            } => match self.record_attempt(check, outcome, latency) {
                Some(reason) => reason,
                None => return Vec::new(),
            },
            Event::SignalSet {
                check,
                outcome,
                ttl,
                ..
            } => {
                let Some(reason) = self.record_attempt(check, outcome, Duration::ZERO) else {
                    return Vec::new();
                };
                let now = self.now;
                if let Some(state) = self.checks.get_mut(check.0) {
                    state.details.lease = ttl.map(|ttl| Lease {
                        ttl,
                        expires_at: now.saturating_add(ttl),
                    });
                }
                reason
            }
            Event::TimePassed { .. } => self.expire_leases(),
            Event::DrainRequested { .. } => "drain requested".to_owned(),
        };
        if is_drain {
            self.state = GateState::Draining;
        } else {
            if !self.ever_ready && self.now >= self.plan.startup_deadline() {
                self.deadline_passed = true;
            }
            self.state = self.evaluate_state();
        }
        let reason = if self.state == GateState::Failed && from != GateState::Failed {
            cause = Cause::Deadline;
            format!(
                "startup did not reach ready within the startup deadline of {:?}; pending: {}",
                self.plan.startup_deadline(),
                self.pending_names().join(", ")
            )
        } else {
            reason
        };

        let candidate = self.build_snapshot(self.current.seq + 1);
        if candidate.same_observable(&self.current) {
            return Vec::new();
        }
        self.current = candidate;
        let mut effects = Vec::with_capacity(2);
        if from != self.state {
            effects.push(Effect::Transition(Transition {
                from,
                to: self.state,
                seq: self.current.seq,
                reason,
                cause,
                at: self.now,
            }));
        }
        effects.push(Effect::Publish(self.current.clone()));
        effects
    }

    /// What `event` would cause if it changed the state. A lease running
    /// out names the first check whose lease ran out; the startup
    /// deadline is decided after the event is applied.
    fn cause_of(&self, event: &Event) -> Cause {
        let check_cause = |check: CheckId, outcome: &CheckOutcome, signal: bool| {
            let name = self
                .checks
                .get(check.0)
                .map(|state| state.spec.name.clone())
                .unwrap_or_default();
            let signal = signal
                || self
                    .checks
                    .get(check.0)
                    .is_some_and(|state| state.spec.kind == "signal");
            match outcome {
                CheckOutcome::Passed => Cause::Check {
                    check: name,
                    result: if signal {
                        CheckResult::SignalReady
                    } else {
                        CheckResult::Passed
                    },
                    error_class: None,
                    error: None,
                },
                CheckOutcome::Failed { error, class } => {
                    let result = CheckResult::of_failure(*class);
                    Cause::Check {
                        check: name,
                        result,
                        error_class: (result == CheckResult::Failed).then_some(*class),
                        error: Some(error.clone()),
                    }
                }
            }
        };
        match event {
            Event::CheckCompleted { check, outcome, .. } => check_cause(*check, outcome, false),
            Event::SignalSet { check, outcome, .. } => check_cause(*check, outcome, true),
            Event::TimePassed { at } => match self.leases_due(self.now.max(*at)).first() {
                Some((check, lease)) => check_cause(
                    *check,
                    &CheckOutcome::Failed {
                        error: lease.expired_error(),
                        class: FailureClass::LeaseExpired,
                    },
                    true,
                ),
                None => Cause::Deadline,
            },
            Event::DrainRequested { .. } => Cause::Drain,
        }
    }

    /// The verbose view at the time of the latest event.
    pub fn verbose(&self) -> VerboseSnapshot {
        VerboseSnapshot {
            seq: self.current.seq,
            state: self.current.state,
            phase: self.current.phase.clone(),
            elapsed: self.now,
            pending: self.current.pending.clone(),
            degraded: self.current.degraded.clone(),
            checks: self
                .checks
                .iter()
                .map(|check| VerboseCheckView {
                    view: self.view_of(check),
                    details: check.details.clone(),
                })
                .collect(),
        }
    }

    /// Runs out every lease due by now: each such signal turns `failing` at
    /// once, bypassing hysteresis. Returns the reason to give if the state
    /// changes (empty when no lease ran out).
    fn expire_leases(&mut self) -> String {
        let now = self.now;
        let mut reasons = Vec::new();
        for state in &mut self.checks {
            let Some(lease) = state.details.lease else {
                continue;
            };
            if lease.expires_at > now {
                continue;
            }
            let error = lease.expired_error();
            let details = &mut state.details;
            details.lease = None;
            details.consecutive_failures = details.consecutive_failures.saturating_add(1);
            details.consecutive_successes = 0;
            if state.status != CheckStatus::Failing {
                state.status = CheckStatus::Failing;
                state.since = now;
            }
            reasons.push(format!("check `{}` {error}", state.spec.name));
            details.last_error = Some(error);
        }
        reasons.join("; ")
    }

    /// Records an attempt's result; returns the reason to give if the state
    /// changes, or `None` if the event names no check.
    fn record_attempt(
        &mut self,
        check: CheckId,
        outcome: CheckOutcome,
        latency: Duration,
    ) -> Option<String> {
        let ever_ready = self.ever_ready;
        let now = self.now;
        let state = self.checks.get_mut(check.0)?;
        let details = &mut state.details;
        details.attempts += 1;
        details.last_latency = Some(latency);
        let established = state.status != CheckStatus::Unknown && ever_ready;
        let reason = match outcome {
            CheckOutcome::Passed => {
                details.consecutive_successes = details.consecutive_successes.saturating_add(1);
                details.consecutive_failures = 0;
                details.last_error = None;
                let threshold = if established {
                    state.spec.success_threshold
                } else {
                    1
                };
                if state.status != CheckStatus::Passing
                    && details.consecutive_successes >= threshold
                {
                    state.status = CheckStatus::Passing;
                    state.since = now;
                }
                format!("check `{}` passed", state.spec.name)
            }
            CheckOutcome::Failed { error, .. } => {
                details.consecutive_failures = details.consecutive_failures.saturating_add(1);
                details.consecutive_successes = 0;
                let threshold = if established {
                    state.spec.failure_threshold
                } else {
                    1
                };
                if state.status != CheckStatus::Failing && details.consecutive_failures >= threshold
                {
                    state.status = CheckStatus::Failing;
                    state.since = now;
                }
                let reason = format!(
                    "check `{}` failed {} time(s) in a row: {error}",
                    state.spec.name, details.consecutive_failures
                );
                details.last_error = Some(error);
                reason
            }
        };
        Some(reason)
    }

    fn evaluate_state(&mut self) -> GateState {
        let state = state_from_checks(
            self.checks
                .iter()
                .map(|check| (check.spec.required, check.status)),
            self.ever_ready,
            self.deadline_passed,
        );
        if state.admits_traffic() {
            self.ever_ready = true;
        }
        state
    }

    fn view_of(&self, check: &CheckState) -> CheckView {
        CheckView {
            name: check.spec.name.clone(),
            phase: self.plan.phases()[check.phase_index].name.clone(),
            kind: check.spec.kind.clone(),
            required: check.spec.required,
            status: check.status,
            since: check.since,
        }
    }

    fn pending_names(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|check| check.spec.required && check.status != CheckStatus::Passing)
            .map(|check| check.spec.name.clone())
            .collect()
    }

    fn build_snapshot(&self, seq: u64) -> Snapshot {
        let not_passing = |check: &&CheckState| check.status != CheckStatus::Passing;
        let phase = if self.state == GateState::Starting {
            self.checks
                .iter()
                .filter(|check| check.spec.required)
                .find(not_passing)
                .map(|check| self.plan.phases()[check.phase_index].name.clone())
        } else {
            None
        };
        Snapshot {
            seq,
            state: self.state,
            phase,
            elapsed: self.now,
            pending: self.pending_names(),
            degraded: self
                .checks
                .iter()
                .filter(|check| !check.spec.required && check.status == CheckStatus::Failing)
                .map(|check| check.spec.name.clone())
                .collect(),
            checks: self
                .checks
                .iter()
                .map(|check| self.view_of(check))
                .collect(),
            ever_ready: self.ever_ready,
        }
    }
}

/// The state the rules give (see the module docs), short of `draining`,
/// for checks given as `(required, status)`: all required ones `passing`
/// gives `ready`, or `degraded` while an optional one is `failing`; else
/// `not_ready` once the gate has been ready, `failed` once the startup
/// deadline has passed, `starting` before. The machine decides its own
/// state with this, and [`Snapshot::state_without`] the verdict without
/// some checks, so both follow the same rule.
pub(crate) fn state_from_checks(
    checks: impl IntoIterator<Item = (bool, CheckStatus)>,
    ever_ready: bool,
    deadline_passed: bool,
) -> GateState {
    let mut required_passing = true;
    let mut optional_failing = false;
    for (required, status) in checks {
        if required {
            required_passing &= status == CheckStatus::Passing;
        } else {
            optional_failing |= status == CheckStatus::Failing;
        }
    }
    if required_passing {
        if optional_failing {
            GateState::Degraded
        } else {
            GateState::Ready
        }
    } else if ever_ready {
        GateState::NotReady
    } else if deadline_passed {
        GateState::Failed
    } else {
        GateState::Starting
    }
}

#[cfg(test)]
mod tests;
