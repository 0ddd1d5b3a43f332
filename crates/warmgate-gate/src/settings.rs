//! The gate's settings, with their defaults.

use std::time::Duration;

/// How the gate holds, admits, limits and drains WebSocket clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateSettings {
    /// How long a client is held while the gate is not ready.
    pub hold_timeout: Duration,
    /// How often a held `/ws` client gets a `warming` heartbeat.
    pub warming_interval: Duration,
    /// The base of the jittered `retry_after_ms` hint.
    pub retry_after: Duration,
    /// How long admitted clients keep their connection once draining
    /// starts.
    pub drain_grace: Duration,
    /// Silent clients are pinged this often, and closed after two
    /// unanswered pings.
    pub ping_interval: Duration,
    /// Past this many open WebSocket connections, new clients are refused
    /// with `capacity`.
    pub max_connections: usize,
    /// Past this many held clients, new clients are refused with
    /// `capacity`.
    pub max_held: usize,
    /// A larger frame or message closes the connection with 1009.
    pub max_message_bytes: usize,
    /// When not empty, a browser `Origin` outside this list is refused with
    /// 403 before the upgrade. Entries are `scheme://host[:port]`.
    pub allowed_origins: Vec<String>,
    /// The steady rate of each `/ws` connection's message limit.
    pub messages_per_second: usize,
    /// How many messages a `/ws` connection may send at once.
    pub message_burst: usize,
    /// A client that takes no byte of a frame for this long is a slow
    /// consumer: closed with 1008, or dropped.
    pub write_timeout: Duration,
}

impl Default for GateSettings {
    fn default() -> Self {
        Self {
            hold_timeout: Duration::from_secs(5),
            warming_interval: Duration::from_secs(1),
            retry_after: Duration::from_secs(2),
            drain_grace: Duration::from_secs(7),
            ping_interval: Duration::from_secs(20),
            max_connections: 10_000,
            max_held: 10_000,
            max_message_bytes: 64 * 1024,
            allowed_origins: Vec::new(),
            messages_per_second: 20,
            message_burst: 40,
            write_timeout: Duration::from_secs(5),
        }
    }
}

/// A held client may buffer at most this many messages...
pub(crate) const MAX_BUFFERED_MESSAGES: usize = 32;
/// ...and at most this many bytes of them.
pub(crate) const MAX_BUFFERED_BYTES: usize = 64 * 1024;

/// `base` stretched by a random factor in `[1, 1.5]`, in whole
/// milliseconds, so a crowd of clients never comes back in the same
/// millisecond and none comes back sooner than asked.
pub(crate) fn jittered_millis(base: Duration) -> u64 {
    let base_ms = u64::try_from(base.as_millis()).unwrap_or(u64::MAX);
    base_ms.saturating_add(fastrand::u64(0..=base_ms / 2))
}
