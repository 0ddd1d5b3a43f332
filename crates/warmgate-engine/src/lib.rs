//! The engine: the one task that owns the readiness state machine.
//!
//! The engine drains a single inbox of events (attempt results from the
//! check runners, signals and drain requests from the application) into the
//! pure [`warmgate_core::Machine`], and publishes every resulting snapshot as
//! an `Arc<Snapshot>` through both an `ArcSwap` (for reads that must never
//! wait) and a `tokio::sync::watch` channel (for waiting on a change).
//!
//! Everything else holds a [`ReadinessHandle`]. Nothing outside the engine
//! mutates readiness state, and no reader ever waits on a check.
//!
//! Reading order: [`EngineBuilder`] wires a plan to its probes and spawns the
//! engine; `engine` is the task's loop; `runner` runs one check's attempts; `startup_span` is the
//! trace of startup; [`EngineObserver`] sees every transition and heartbeat
//! on the engine task;
//! [`ReadinessHandle`] is what the rest of the process uses; `history` is
//! the ring of the latest transitions it publishes beside the snapshots.

#![forbid(unsafe_code)]

mod backoff;
mod builder;
mod engine;
mod error;
mod handle;
mod history;
pub mod measure;
mod observer;
mod runner;
mod startup_span;

pub use self::builder::{EngineBuilder, EngineSettings, ProbeSchedule};
pub use self::error::EngineError;
pub use self::handle::{ReadinessHandle, SnapshotRx};
pub use self::history::{HISTORY_CAPACITY, History, TransitionRecord};
pub use self::observer::EngineObserver;

#[cfg(test)]
mod tests;
