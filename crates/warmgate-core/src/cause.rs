//! Why a transition happened, as data: which check and which result, the
//! startup deadline, or a drain.
//!
//! The machine attaches a [`Cause`] to every [`crate::Transition`] beside
//! its human reason, so the engine's history, metrics and event stream can
//! say what flipped the gate without parsing text. A failed attempt carries
//! its [`FailureClass`], a closed set of words (the probe's error kind, a
//! timeout, a panic, a signal, a lease), set where the failure is known: by
//! the engine's runner from the probe's error, or by the engine for signals.

use serde::Serialize;

/// What kind of failure a failed attempt was. On the wire, the snake_case
/// names (`connection_refused`, `timed_out`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// The dependency refused the TCP connection.
    ConnectionRefused,
    /// The connection was reset or aborted.
    ConnectionReset,
    /// No route to the host or network, or the address is not available.
    Unreachable,
    /// Another failure to connect.
    Connect,
    /// The host name did not resolve.
    Resolve,
    /// The check's target cannot be used at all (a malformed URL).
    InvalidTarget,
    /// The dependency answered wrongly, or the exchange failed.
    Error,
    /// The attempt outlived its timeout and was cancelled.
    TimedOut,
    /// The probe panicked.
    Panicked,
    /// A signal was set to not ready.
    SignalNotReady,
    /// A signal's lease ran out without being renewed.
    LeaseExpired,
}

impl FailureClass {
    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::ConnectionRefused => "connection_refused",
            FailureClass::ConnectionReset => "connection_reset",
            FailureClass::Unreachable => "unreachable",
            FailureClass::Connect => "connect",
            FailureClass::Resolve => "resolve",
            FailureClass::InvalidTarget => "invalid_target",
            FailureClass::Error => "error",
            FailureClass::TimedOut => "timed_out",
            FailureClass::Panicked => "panicked",
            FailureClass::SignalNotReady => "signal_not_ready",
            FailureClass::LeaseExpired => "lease_expired",
        }
    }
}

/// The result of the check event that caused a transition. On the wire,
/// the snake_case names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckResult {
    /// A probed check's attempt passed.
    Passed,
    /// A probed check's attempt failed; the cause's `error_class` says how.
    Failed,
    /// A probed check's attempt timed out.
    TimedOut,
    /// A probed check's probe panicked.
    Panicked,
    /// A signal was set to ready.
    SignalReady,
    /// A signal was set to not ready.
    SignalNotReady,
    /// A signal's lease ran out.
    LeaseExpired,
}

impl CheckResult {
    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckResult::Passed => "passed",
            CheckResult::Failed => "failed",
            CheckResult::TimedOut => "timed_out",
            CheckResult::Panicked => "panicked",
            CheckResult::SignalReady => "signal_ready",
            CheckResult::SignalNotReady => "signal_not_ready",
            CheckResult::LeaseExpired => "lease_expired",
        }
    }

    /// The result a failure of `class` reports.
    pub fn of_failure(class: FailureClass) -> CheckResult {
        match class {
            FailureClass::TimedOut => CheckResult::TimedOut,
            FailureClass::Panicked => CheckResult::Panicked,
            FailureClass::SignalNotReady => CheckResult::SignalNotReady,
            FailureClass::LeaseExpired => CheckResult::LeaseExpired,
            _ => CheckResult::Failed,
        }
    }
}

/// Why a transition happened.
///
/// On the wire, tagged by `kind`:
/// `{"kind":"check","check":"redis","result":"failed","error_class":"connection_refused","error":"connection refused to 127.0.0.1:6379"}`,
/// `{"kind":"deadline"}`, `{"kind":"drain"}`. `error_class` is present
/// only when `result` is `failed`; `error` (free text that can name
/// internal hosts) only for failures, and only on the admin listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Cause {
    /// A check's result (an attempt, a signal, a lease running out).
    Check {
        check: String,
        result: CheckResult,
        #[serde(skip_serializing_if = "Option::is_none")]
        error_class: Option<FailureClass>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// The startup deadline passed before the first ready.
    Deadline,
    /// A drain was requested.
    Drain,
}

impl Cause {
    /// The same cause without its error text: what the public listener
    /// may show.
    pub fn without_error(&self) -> Cause {
        match self {
            Cause::Check {
                check,
                result,
                error_class,
                ..
            } => Cause::Check {
                check: check.clone(),
                result: *result,
                error_class: *error_class,
                error: None,
            },
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
