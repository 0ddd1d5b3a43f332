//! The gate's state over time, as the load generator saw it on
//! `GET /readiness/events`.

use serde::{Deserialize, Serialize};

/// Every snapshot that arrived, and every break of the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeline {
    pub events: Vec<StateRecord>,
    /// The stream broke (before `draining`) and was reconnected.
    pub breaks: Vec<StreamBreak>,
}

/// One snapshot as it arrived: its wall time and the fields a judge reads.
/// A reconnect repeats a snapshot (the same `seq`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateRecord {
    pub at_ms: f64,
    pub seq: u64,
    pub state: String,
    #[serde(deserialize_with = "Option::deserialize")]
    pub phase: Option<String>,
    pub pending: Vec<String>,
    pub degraded: Vec<String>,
}

/// The stream broke at `at_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamBreak {
    pub at_ms: f64,
    pub why: String,
}
