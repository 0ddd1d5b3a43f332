//! The warmgate protocol (`warmgate.v1`): the gate's own JSON text frames,
//! one message each, that tell a client where it stands: `warming`,
//! `ready`, `unavailable`, `readiness`, `draining` and `error`. An
//! application adds its own frames (the chat's are in `warmgate-chat`).
//!
//! This module is pure data: it owns the shape of every frame
//! (documented with examples in `docs/protocol.md`) and nothing else.

use std::fmt::Write as _;

use serde::Serialize;
use warmgate_core::{GateState, Snapshot};

/// Why a client was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnavailableReason {
    /// The gate did not turn ready within `hold_timeout`.
    HoldTimeout,
    /// The gate missed its startup deadline and is `failed`.
    Failed,
    /// The process is shutting down.
    Draining,
    /// Too many connections or held clients.
    Capacity,
    /// The backend (proxy mode) refused the dial or could not be reached.
    UpstreamUnavailable,
}

impl UnavailableReason {
    pub fn as_str(self) -> &'static str {
        match self {
            UnavailableReason::HoldTimeout => "hold_timeout",
            UnavailableReason::Failed => "failed",
            UnavailableReason::Draining => "draining",
            UnavailableReason::Capacity => "capacity",
            UnavailableReason::UpstreamUnavailable => "upstream_unavailable",
        }
    }
}

/// The `code` of an `error` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The text was not JSON, or not a known message.
    InvalidMessage,
    /// A held client sent more than the hold buffer takes.
    BufferFull,
    /// A binary frame to an application that speaks only text (the chat).
    UnsupportedBinary,
    /// The connection read an application's messages too slowly and missed
    /// some (a chat room's).
    Lagged,
    /// The client sent faster than `messages_per_second` allows; the
    /// message was not processed. A client that keeps on is closed with
    /// 1008.
    RateLimited,
    /// The client's token expired; the connection closes with 1008.
    TokenExpired,
}

/// Every frame the server sends on `/ws`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage<'a> {
    Warming {
        state: GateState,
        phase: Option<&'a str>,
        /// Every phase that has checks, in order, so a page can show the
        /// steps and where startup is.
        phases: Vec<&'a str>,
        pending: &'a [String],
        elapsed_ms: u64,
        hold_remaining_ms: u64,
        seq: u64,
    },
    Ready {
        state: GateState,
        degraded: &'a [String],
        waited_ms: u64,
        connection_id: &'a str,
        seq: u64,
    },
    Unavailable {
        reason: UnavailableReason,
        state: GateState,
        phase: Option<&'a str>,
        pending: &'a [String],
        retry_after_ms: u64,
        /// Messages the client sent while held that were never processed.
        unprocessed: usize,
    },
    Readiness {
        state: GateState,
        degraded: &'a [String],
        seq: u64,
    },
    Draining {
        reconnect_after_ms: u64,
    },
    Error {
        code: ErrorCode,
        message: &'a str,
        /// The `client_msg_id` of the message refused, when it had one, so
        /// the client can stop resending it.
        #[serde(skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<&'a str>,
    },
}

impl ServerMessage<'_> {
    /// The JSON text of the frame.
    pub fn to_json(&self) -> String {
        // Serialising these types cannot fail: every field is a string, a
        // number, a list of strings or a unit enum.
        serde_json::to_string(self).unwrap_or_else(|error| {
            format!(r#"{{"type":"error","code":"internal","message":"{error}"}}"#)
        })
    }
}

/// The frames of one snapshot that every admitted client gets alike,
/// serialised once per snapshot rather than once per client: a flip
/// releases thousands of held clients at once, and each `ready` differs
/// only in `waited_ms` and `connection_id`.
#[derive(Debug)]
pub(crate) struct SnapshotFrames {
    /// The snapshot these frames describe.
    pub(crate) seq: u64,
    /// `ready` up to its `waited_ms` value.
    ready_head: String,
    /// `ready` after its `connection_id` value.
    ready_tail: String,
    /// The `readiness` push.
    pub(crate) readiness: String,
}

impl SnapshotFrames {
    pub(crate) fn new(snapshot: &Snapshot) -> Self {
        // The head and the tail of `ServerMessage::Ready`, in its field
        // order (`type`, `state`, `degraded`, `waited_ms`,
        // `connection_id`, `seq`); a test holds the two to the same JSON.
        let state = json_of(&snapshot.state);
        let degraded = json_of(&snapshot.degraded);
        Self {
            seq: snapshot.seq,
            ready_head: format!(
                r#"{{"type":"ready","state":{state},"degraded":{degraded},"waited_ms":"#
            ),
            ready_tail: format!(r#","seq":{}}}"#, snapshot.seq),
            readiness: ServerMessage::Readiness {
                state: snapshot.state,
                degraded: &snapshot.degraded,
                seq: snapshot.seq,
            }
            .to_json(),
        }
    }

    /// The `ready` frame of one client: [`ServerMessage::Ready`]'s JSON.
    pub(crate) fn ready(&self, waited_ms: u64, connection_id: &str) -> String {
        let mut text = String::with_capacity(
            self.ready_head.len() + 40 + connection_id.len() + self.ready_tail.len(),
        );
        text.push_str(&self.ready_head);
        let _ = write!(text, "{waited_ms}");
        text.push_str(r#","connection_id":"#);
        // The gate's own ids need no escaping; anything else goes through
        // the serialiser.
        let plain = connection_id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
        if plain {
            text.push('"');
            text.push_str(connection_id);
            text.push('"');
        } else {
            text.push_str(&json_of(connection_id));
        }
        text.push_str(&self.ready_tail);
        text
    }
}

/// A value's JSON; these values (strings, lists of strings, unit enums)
/// always serialise.
fn json_of<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests;
