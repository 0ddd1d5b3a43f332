//! The pure core of warmgate: the readiness state machine.
//!
//! This crate owns the rules that decide whether the gate is ready. It knows
//! nothing of IO, tokio, clocks or sockets: time arrives as a value inside each
//! [`Event`], and every decision comes back as data ([`Effect`]s and
//! [`Snapshot`]s). Running checks, timing them out and publishing snapshots is
//! the job of the `warmgate-engine` crate.
//!
//! Reading order: [`plan`] describes what is checked, [`machine`] applies
//! events to it, and [`snapshot`] is what the rest of the system sees.

#![forbid(unsafe_code)]

mod cause;
mod error;
mod machine;
mod plan;
mod snapshot;

pub use self::cause::{Cause, CheckResult, FailureClass};
pub use self::error::PlanError;
pub use self::machine::{Cadence, CheckId, CheckOutcome, Effect, Event, Machine, Transition};
pub use self::plan::{CheckSpec, PhaseSpec, Plan};
pub use self::snapshot::{
    CheckDetails, CheckStatus, CheckView, GateState, Lease, Snapshot, VerboseCheckView,
    VerboseSnapshot, human_duration,
};
