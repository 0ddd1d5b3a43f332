//! Probes of `/livez` and `/readyz`, each on a new connection, the way a
//! platform probes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Timings;

/// Every probe of the run, by path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSummary {
    pub interval_ms: f64,
    /// Probes slower than this are listed in `slow`.
    pub limit_ms: f64,
    pub paths: ProbePaths,
}

/// The two probed paths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbePaths {
    #[serde(rename = "/livez")]
    pub livez: PathProbes,
    #[serde(rename = "/readyz")]
    pub readyz: PathProbes,
}

impl ProbePaths {
    /// The paths with their probes, `/livez` first.
    pub fn by_path(&self) -> [(&'static str, &PathProbes); 2] {
        [("/livez", &self.livez), ("/readyz", &self.readyz)]
    }
}

/// One path's probes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathProbes {
    pub probes: usize,
    #[serde(deserialize_with = "Option::deserialize")]
    pub first_ms: Option<f64>,
    #[serde(deserialize_with = "Option::deserialize")]
    pub last_ms: Option<f64>,
    /// Over the answered probes.
    #[serde(deserialize_with = "Option::deserialize")]
    pub latency: Option<Timings>,
    /// Answered probes by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    pub slow_count: usize,
    /// Answered over the limit, the first two hundred.
    pub slow: Vec<SlowProbe>,
    pub failed_count: usize,
    /// Not answered, the first two hundred.
    pub failed: Vec<FailedProbe>,
    /// Every probe, so that a judge can pick those of any window itself.
    pub all: Vec<ProbeRecord>,
}

/// A probe answered over the limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlowProbe {
    pub at_ms: f64,
    pub latency_ms: f64,
}

/// A probe not answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailedProbe {
    pub at_ms: f64,
    pub latency_ms: f64,
    pub error: String,
}

/// One probe, for a judge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeRecord {
    /// The system's wall time when the probe started, read directly rather
    /// than through the run's clock: it is compared with times that
    /// warmgate logs from the same system clock.
    pub system_ms: f64,
    pub latency_ms: f64,
    pub answer: ProbeAnswer,
}

/// What a probe got: `{"status": 200}` or `{"error": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ProbeAnswer {
    Status(u16),
    Error(String),
}
