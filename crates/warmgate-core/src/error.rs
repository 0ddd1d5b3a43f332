//! The one error type of the core: a plan that breaks the machine's rules.

/// Why a [`crate::Plan`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Two checks share a name; names identify checks in snapshots and signals.
    #[error("duplicate check name `{name}`: check names must be unique across all phases")]
    DuplicateCheckName { name: String },
    /// Two phases share a name.
    #[error("duplicate phase name `{name}`: phase names must be unique")]
    DuplicatePhaseName { name: String },
    /// A name was empty.
    #[error("empty {what} name: every {what} needs a non-empty name")]
    EmptyName { what: &'static str },
    /// A hysteresis threshold was zero.
    #[error("check `{check}`: {which} must be at least 1, got 0")]
    ZeroThreshold { check: String, which: &'static str },
}
