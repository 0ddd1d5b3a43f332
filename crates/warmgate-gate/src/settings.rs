//! The gate's settings. Their defaults and bounds are the config's
//! (`warmgate_config::GateConfig`), the one place they are written.

use std::time::Duration;

use warmgate_config::GateConfig;

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

/// The config's defaults ([`GateConfig::default`]).
impl Default for GateSettings {
    fn default() -> Self {
        Self::from(&GateConfig::default())
    }
}

/// The gate's part of the `[gate]` table.
impl From<&GateConfig> for GateSettings {
    fn from(gate: &GateConfig) -> Self {
        Self {
            hold_timeout: gate.hold_timeout,
            warming_interval: gate.warming_interval,
            retry_after: gate.retry_after,
            drain_grace: gate.drain_grace,
            ping_interval: gate.ping_interval,
            max_connections: gate.max_connections,
            max_held: gate.max_held,
            max_message_bytes: gate.max_message_bytes,
            allowed_origins: gate.allowed_origins.clone(),
            messages_per_second: gate.messages_per_second,
            message_burst: gate.message_burst,
            write_timeout: gate.write_timeout,
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
