//! Snapshots: the immutable views of the machine that everything else reads.
//!
//! A [`Snapshot`] is what the public endpoints, the WebSocket gate and the
//! event stream see. A [`VerboseSnapshot`] adds per-check diagnostics (last
//! error, latency, counters) for the admin listener only, because error text
//! can describe internal addresses.
//!
//! Both serialise to the JSON documented in `docs/ARCHITECTURE.md`; durations
//! go on the wire as whole milliseconds in fields named `*_ms`.

use std::time::Duration;

use serde::{Serialize, Serializer};

/// The gate's overall state.
///
/// Invariant: once `Draining`, the state never changes again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GateState {
    /// Startup has not yet reached ready, and the deadline has not passed.
    Starting,
    /// Every required and optional check passes.
    Ready,
    /// Every required check passes; some optional check fails.
    Degraded,
    /// The gate was ready once; a required check now fails.
    NotReady,
    /// Startup missed its deadline. Checks keep running; a later success
    /// still leads to ready.
    Failed,
    /// Shutdown was requested. Terminal.
    Draining,
}

impl GateState {
    /// Every state, in declaration order.
    pub const ALL: [GateState; 6] = [
        GateState::Starting,
        GateState::Ready,
        GateState::Degraded,
        GateState::NotReady,
        GateState::Failed,
        GateState::Draining,
    ];

    /// True for the states that admit traffic: `ready` and `degraded`.
    pub fn admits_traffic(self) -> bool {
        matches!(self, GateState::Ready | GateState::Degraded)
    }

    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            GateState::Starting => "starting",
            GateState::Ready => "ready",
            GateState::Degraded => "degraded",
            GateState::NotReady => "not_ready",
            GateState::Failed => "failed",
            GateState::Draining => "draining",
        }
    }
}

impl std::fmt::Display for GateState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One check's status.
///
/// Invariant: `Unknown` means the check has never completed an attempt, and
/// it never counts as passing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Unknown,
    Passing,
    Failing,
}

impl CheckStatus {
    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Unknown => "unknown",
            CheckStatus::Passing => "passing",
            CheckStatus::Failing => "failing",
        }
    }
}

impl std::fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The public view of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckView {
    pub name: String,
    pub phase: String,
    pub kind: String,
    pub required: bool,
    pub status: CheckStatus,
    /// Time since the gate started at which the check entered its status.
    #[serde(rename = "since_ms", serialize_with = "as_millis")]
    pub since: Duration,
}

/// An immutable, public view of the machine.
///
/// Invariant: across the snapshots one machine produces, `seq` strictly
/// increases, and a new snapshot exists only when something in it other than
/// `elapsed` changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub seq: u64,
    pub state: GateState,
    /// The current startup phase while `starting`, otherwise `None`.
    pub phase: Option<String>,
    /// Time since the gate started, when this snapshot was made.
    #[serde(rename = "elapsed_ms", serialize_with = "as_millis")]
    pub elapsed: Duration,
    /// Required checks that are not passing, in plan order.
    pub pending: Vec<String>,
    /// Optional checks that are failing, in plan order.
    pub degraded: Vec<String>,
    pub checks: Vec<CheckView>,
    /// True once the gate has been `ready` or `degraded`. Not on the wire:
    /// it feeds the startup probe.
    #[serde(skip)]
    pub ever_ready: bool,
}

impl Snapshot {
    /// True when everything but `seq` and `elapsed` is the same.
    pub fn same_observable(&self, other: &Snapshot) -> bool {
        self.state == other.state
            && self.phase == other.phase
            && self.pending == other.pending
            && self.degraded == other.degraded
            && self.checks == other.checks
            && self.ever_ready == other.ever_ready
    }

    /// True when startup has completed: the gate has been ready once and is
    /// not `failed`.
    pub fn started(&self) -> bool {
        self.ever_ready && self.state != GateState::Failed
    }

    /// The view of one check, by name.
    pub fn check(&self, name: &str) -> Option<&CheckView> {
        self.checks.iter().find(|check| check.name == name)
    }

    /// The state this snapshot would have without the checks `excluded`
    /// names, by the machine's own rules (required and optional checks,
    /// `degraded`, `failed` after the startup deadline): the verdict of
    /// `GET /readyz?exclude=NAME`. `draining` stays `draining`; with nothing
    /// excluded this is `self.state`.
    pub fn state_without(&self, excluded: impl Fn(&str) -> bool) -> GateState {
        if self.state == GateState::Draining {
            return GateState::Draining;
        }
        // A gate that has never been ready is `failed` only once the
        // deadline has passed, and `starting` only before it.
        let deadline_passed = self.state == GateState::Failed;
        crate::machine::state_from_checks(
            self.checks
                .iter()
                .filter(|check| !excluded(&check.name))
                .map(|check| (check.required, check.status)),
            self.ever_ready,
            deadline_passed,
        )
    }
}

/// Diagnostics for one check, shown only on the admin listener.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct CheckDetails {
    /// The error of the most recent failed attempt, if the latest attempt
    /// failed.
    pub last_error: Option<String>,
    #[serde(rename = "last_latency_ms", serialize_with = "as_millis_f64_opt")]
    pub last_latency: Option<Duration>,
    pub attempts: u64,
    pub consecutive_successes: u32,
    pub consecutive_failures: u32,
    /// The signal's lease while it holds one (signal checks set with a
    /// ttl only); absent from the JSON otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
}

/// A signal's lease: set with a time to live, the signal turns `failing` on
/// its own at `expires_at` unless it is set again before.
///
/// On the wire: `{"ttl_ms": 30000, "expires_at_ms": 41250}`, where
/// `expires_at_ms` is time since the gate started, the clock of `since_ms`
/// and `elapsed_ms` (so the time left is `expires_at_ms - elapsed_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Lease {
    /// How long the signal stays as set without being set again.
    #[serde(rename = "ttl_ms", serialize_with = "as_millis")]
    pub ttl: Duration,
    /// When the lease runs out, since the gate started.
    #[serde(rename = "expires_at_ms", serialize_with = "as_millis")]
    pub expires_at: Duration,
}

impl Lease {
    /// The check's error once the lease has run out:
    /// `lease expired: not renewed within 30s`.
    pub fn expired_error(&self) -> String {
        format!(
            "lease expired: not renewed within {}",
            human_duration(self.ttl)
        )
    }
}

/// "30s", "5m", "2h", "300ms", "1500ms": a ttl as an operator would write it.
pub fn human_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    if duration.subsec_nanos() != 0 || secs == 0 {
        format!("{}ms", duration.as_millis())
    } else if secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// A check's public view with its diagnostics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerboseCheckView {
    #[serde(flatten)]
    pub view: CheckView,
    #[serde(flatten)]
    pub details: CheckDetails,
}

/// The verbose view for the admin listener: the same fields as [`Snapshot`],
/// with [`CheckDetails`] on every check. It is refreshed on every attempt and
/// carries the `seq` of the latest public snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerboseSnapshot {
    pub seq: u64,
    pub state: GateState,
    pub phase: Option<String>,
    #[serde(rename = "elapsed_ms", serialize_with = "as_millis")]
    pub elapsed: Duration,
    pub pending: Vec<String>,
    pub degraded: Vec<String>,
    pub checks: Vec<VerboseCheckView>,
}

fn as_millis<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

fn as_millis_f64_opt<S: Serializer>(
    duration: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match duration {
        // Sub-millisecond latencies matter for local dependencies, so the
        // latency keeps three decimals.
        Some(duration) => {
            let millis = (duration.as_secs_f64() * 1_000_000.0).round() / 1_000.0;
            serializer.serialize_f64(millis)
        }
        None => serializer.serialize_none(),
    }
}
