//! One report type per scenario of `warmgate-loadgen`, and the pieces they
//! share: [`Timings`], the chat ledger ([`ChatSummary`]), the connection
//! attempts ([`AttemptRecord`]), the probes ([`ProbeSummary`]) and the
//! state timeline ([`Timeline`]).
//!
//! Invariants of the wire format, held by every type here:
//!
//! - Every object denies unknown fields, and every field is always
//!   written: a field with nothing to say is `null` (an `Option` that is
//!   `None`), never left out, and reading a report where it is missing
//!   fails. This is why each `Option` field carries
//!   `deserialize_with = "Option::deserialize"`: without it, serde would
//!   read a missing `Option` as `None`.
//! - Lists of records are arrays of objects with named fields, never
//!   positional arrays.
//! - Wall-clock instants are milliseconds since the Unix epoch, as `f64`,
//!   in fields named `*_ms` (or `*_unix_ms`); durations carry their unit in
//!   their name (`latency_ms`, `p50_us`, `at_s`).
//!
//! Maps keyed by a label (`statuses`, `ends`, `close_codes`, …) are the
//! exceptions to "every field is known": their keys are data.

mod attempts;
mod chat;
mod probes;
mod timeline;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use self::attempts::{AttemptCounts, AttemptOutcome, AttemptRecord, Credential, OutcomeLabel};
pub use self::chat::{ChatDrain, ChatSummary, DeliveryProblem, JoinFailure};
pub use self::probes::{
    FailedProbe, PathProbes, ProbeAnswer, ProbePaths, ProbeRecord, ProbeSummary, SlowProbe,
};
pub use self::timeline::{StateRecord, StreamBreak, Timeline};

/// Per-client timings, summarised by the nearest-rank method, in
/// microseconds, over `n` samples (at least one). A figure with no samples
/// is `None` where a `Timings` is expected (`null` on the wire), so that
/// "nothing was measured" never reads as "zero".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timings {
    pub n: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
}

// === the benchmarks' scenarios ===

/// `connect-sequential`: one client after another, each timed from its TCP
/// connect to its `ready` frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectReport {
    #[serde(deserialize_with = "Option::deserialize")]
    pub connect_to_ready: Option<Timings>,
}

/// `hold`: clients opened and held, the server's memory, and (with a flip)
/// their release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldReport {
    /// Clients asked for.
    pub clients: usize,
    /// Clients whose WebSocket opened.
    pub connected: usize,
    /// Of those, the ones held (not admitted at once).
    pub held: usize,
    /// Clients that failed, to connect or later.
    pub errors: usize,
    #[serde(deserialize_with = "Option::deserialize")]
    pub first_error: Option<String>,
    /// From the first connect until every client had connected or failed.
    pub connect_wall_ms: f64,
    pub connects_per_second: f64,
    /// The server's summed RSS before the clients; `None` without `--pid`.
    #[serde(deserialize_with = "Option::deserialize")]
    pub rss_idle_kib: Option<u64>,
    /// The same with every client connected.
    #[serde(deserialize_with = "Option::deserialize")]
    pub rss_loaded_kib: Option<u64>,
    /// The growth shared out over the connected clients.
    #[serde(deserialize_with = "Option::deserialize")]
    pub rss_per_client_kib: Option<f64>,
    /// The release by the flip; `None` when there was no flip.
    #[serde(deserialize_with = "Option::deserialize")]
    pub release: Option<Release>,
}

/// The release of the held clients by a flip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// Clients whose release (`ready`) arrived within the wait.
    pub released: usize,
    /// From the flip to each released client's `ready`.
    #[serde(deserialize_with = "Option::deserialize")]
    pub flip_to_ready: Option<Timings>,
}

/// `detect-signal`: a signal turned on, to `ready` at a held client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalReport {
    #[serde(deserialize_with = "Option::deserialize")]
    pub signal_to_ready: Option<Timings>,
}

/// `echo`: round trips of one message on one connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EchoReport {
    #[serde(deserialize_with = "Option::deserialize")]
    pub round_trip: Option<Timings>,
    /// The message's size in bytes.
    pub size: usize,
}

/// `http-load`: keep-alive GETs from several connections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpLoadReport {
    pub requests: u64,
    pub seconds: f64,
    pub requests_per_second: f64,
    /// Connections that failed (and stopped counting).
    pub connection_errors: usize,
    /// Answers by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
}

// === the chaos run and the soak ===

/// `chat-load`, the load of `cargo xtask chaos`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatLoadReport {
    pub started_unix_ms: f64,
    pub ended_unix_ms: f64,
    /// Whether clients carried tokens (and some bad ones).
    pub authentication: bool,
    /// The load's settings, as the load generator shows them.
    pub load: String,
    pub chat: ChatSummary,
    pub attempts: AttemptCounts,
    /// Every churn attempt, in the order they ended.
    pub attempt_list: Vec<AttemptRecord>,
    pub probes: ProbeSummary,
    pub timeline: Timeline,
}

/// `soak`, the load of `cargo xtask soak`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoakReport {
    pub started_unix_ms: f64,
    pub ended_unix_ms: f64,
    pub authentication: bool,
    /// The load's settings, as the load generator shows them.
    pub load: String,
    /// How long the soak ran, after the prefill.
    pub seconds: f64,
    pub cycle_seconds: f64,
    pub cycles: usize,
    pub prefill: Prefill,
    /// The warmgate process, at the start and at the end of each cycle.
    pub samples: Vec<ProcessSample>,
    pub held: HeldCrowds,
    /// Chat clients that had every message acked when told to go quiet.
    pub quiet_clients: usize,
    pub chat: ChatSummary,
    pub attempts: AttemptCounts,
    pub probes: ProbeSummary,
    pub timeline: Timeline,
}

/// The soak's prefill: messages sent before its clock starts, to fill the
/// rooms' bounded buffers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prefill {
    pub messages_per_client: usize,
    /// Chat clients that sent all of theirs.
    pub clients: usize,
    pub seconds: f64,
}

/// One sample of the warmgate process, from `/proc`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessSample {
    /// Seconds into the soak.
    pub at_s: f64,
    pub rss_kib: u64,
    /// Open file descriptors.
    pub fds: usize,
    /// `None` when `/proc/PID/status` had no `Threads:` line.
    #[serde(deserialize_with = "Option::deserialize")]
    pub threads: Option<u64>,
}

/// The crowds held by the soak's signal flips, one per cycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeldCrowds {
    /// Clients each cycle tries to hold.
    pub per_cycle: usize,
    /// Clients held, over every cycle.
    pub held: usize,
    /// Held clients admitted by the flip back on.
    pub released: usize,
    #[serde(deserialize_with = "Option::deserialize")]
    pub flip_to_ready: Option<Timings>,
    /// What went wrong in a cycle, one line each (`cycle N: …`).
    pub problems: Vec<String>,
}

#[cfg(test)]
mod tests;
