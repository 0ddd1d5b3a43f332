//! Probes: one attempt at checking one dependency.
//!
//! A [`Probe`] performs a single attempt and says whether the dependency
//! answered as expected. It does not schedule itself, retry, time itself out
//! or catch its own panics: the engine (`warmgate-engine`) does all of that
//! around every attempt, so a probe stays a plain async function with state.
//!
//! In-process `signal` checks have no probe; the application sets them.

#![forbid(unsafe_code)]

mod error;
mod probe;
mod tcp;

pub use self::error::ProbeError;
pub use self::probe::{Probe, ProbeFuture};
pub use self::tcp::TcpProbe;

#[cfg(test)]
mod tests;
