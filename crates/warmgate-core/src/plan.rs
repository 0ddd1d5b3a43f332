//! The plan: the ordered phases and the named checks inside them.
//!
//! A plan is plain data that the machine reads. It does not say how a check
//! is performed (that is the probe's business in `warmgate-probes`), only what
//! the machine needs to reason about it: its name, the phase that reports it,
//! whether readiness needs it, and its hysteresis thresholds.

use std::collections::HashSet;
use std::time::Duration;

use crate::PlanError;

/// The startup plan the machine runs.
///
/// Invariant: check names are unique across all phases, phase names are
/// unique, and every threshold is at least 1. [`Plan::new`] enforces this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    phases: Vec<PhaseSpec>,
    startup_deadline: Duration,
}

/// One startup phase. Phases order what is reported; they never serialise
/// the work, because every check starts at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseSpec {
    pub name: String,
    pub checks: Vec<CheckSpec>,
}

/// What the machine knows about one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    pub name: String,
    /// The probe kind, reported in snapshots (`tcp`, `signal`, ...).
    pub kind: String,
    /// A required check blocks readiness; an optional one only degrades it.
    pub required: bool,
    /// Consecutive failures that turn an established `passing` into `failing`
    /// once the gate has been ready.
    pub failure_threshold: u32,
    /// Consecutive successes that turn an established `failing` into
    /// `passing` once the gate has been ready.
    pub success_threshold: u32,
}

impl CheckSpec {
    /// A required check with thresholds of 3 failures and 1 success.
    pub fn new(name: impl Into<String>, kind: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kind: kind.into(),
            required: true,
            failure_threshold: 3,
            success_threshold: 1,
        }
    }

    /// The same check, marked optional.
    pub fn optional(mut self) -> Self {
        self.required = false;
        self
    }

    /// The same check with other hysteresis thresholds.
    pub fn thresholds(mut self, failure_threshold: u32, success_threshold: u32) -> Self {
        self.failure_threshold = failure_threshold;
        self.success_threshold = success_threshold;
        self
    }
}

impl Plan {
    /// Checks the plan's rules and builds it.
    pub fn new(phases: Vec<PhaseSpec>, startup_deadline: Duration) -> Result<Self, PlanError> {
        let mut phase_names = HashSet::new();
        let mut check_names = HashSet::new();
        for phase in &phases {
            if phase.name.is_empty() {
                return Err(PlanError::EmptyName { what: "phase" });
            }
            if !phase_names.insert(phase.name.as_str()) {
                return Err(PlanError::DuplicatePhaseName {
                    name: phase.name.clone(),
                });
            }
            for check in &phase.checks {
                if check.name.is_empty() {
                    return Err(PlanError::EmptyName { what: "check" });
                }
                if !check_names.insert(check.name.as_str()) {
                    return Err(PlanError::DuplicateCheckName {
                        name: check.name.clone(),
                    });
                }
                for (which, value) in [
                    ("failure_threshold", check.failure_threshold),
                    ("success_threshold", check.success_threshold),
                ] {
                    if value == 0 {
                        return Err(PlanError::ZeroThreshold {
                            check: check.name.clone(),
                            which,
                        });
                    }
                }
            }
        }
        Ok(Self {
            phases,
            startup_deadline,
        })
    }

    /// The phases, in reporting order.
    pub fn phases(&self) -> &[PhaseSpec] {
        &self.phases
    }

    /// How long startup may take before the state is `failed`.
    pub fn startup_deadline(&self) -> Duration {
        self.startup_deadline
    }

    /// Every check with the index of its phase, in plan order. The position
    /// in this sequence is the check's [`crate::CheckId`].
    pub fn checks(&self) -> impl Iterator<Item = (usize, &CheckSpec)> + '_ {
        self.phases
            .iter()
            .enumerate()
            .flat_map(|(phase_index, phase)| phase.checks.iter().map(move |c| (phase_index, c)))
    }

    /// The number of checks across all phases.
    pub fn n_checks(&self) -> usize {
        self.phases.iter().map(|phase| phase.checks.len()).sum()
    }
}
