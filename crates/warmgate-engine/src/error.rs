//! The one error type of the engine crate.

/// Why the engine refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// No check has this name.
    #[error("no check named `{name}` in the plan")]
    UnknownCheck { name: String },
    /// The check exists but is not set by the application.
    #[error("check `{name}` is of kind `{kind}`, not `signal`: only signal checks can be set")]
    NotASignal { name: String, kind: String },
    /// A check was given two drivers.
    #[error("check `{name}` was given both a probe and a signal, or two of either")]
    DriverGivenTwice { name: String },
    /// A check was given no driver.
    #[error("check `{name}` (kind `{kind}`) has no probe: give it a probe or declare it a signal")]
    MissingDriver { name: String, kind: String },
    /// The engine task has ended, so the request cannot be delivered.
    #[error("the readiness engine has stopped")]
    EngineStopped,
    /// A signal's lease was shorter than 100 ms or longer than 24 h.
    #[error("a signal lease's ttl must be from 100ms to 24h, got {ttl_ms} ms")]
    LeaseTtlOutOfRange { ttl_ms: u64 },
    /// The engine took the request but did not apply it in time.
    #[error("the readiness engine did not apply the signal within {waited_ms} ms")]
    NotApplied { waited_ms: u64 },
}
