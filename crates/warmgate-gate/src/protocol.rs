//! The warmgate protocol on `/ws`: JSON text frames, one message each.
//!
//! This module is pure data and parsing: it owns the shape of every frame
//! (documented with examples in `docs/protocol.md`) and nothing else.

use serde::{Deserialize, Serialize};
use warmgate_core::GateState;

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
}

impl UnavailableReason {
    pub fn as_str(self) -> &'static str {
        match self {
            UnavailableReason::HoldTimeout => "hold_timeout",
            UnavailableReason::Failed => "failed",
            UnavailableReason::Draining => "draining",
            UnavailableReason::Capacity => "capacity",
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
    /// A binary frame on `/ws`, which speaks only text.
    UnsupportedBinary,
    /// The connection read a room's messages too slowly and missed some.
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
    Chat {
        room: &'a str,
        id: &'a str,
        from: &'a str,
        text: &'a str,
        ts_ms: u64,
        /// The sender's own id for the message, when it gave one, so the
        /// sender can match the echo to the message it shows as pending.
        #[serde(skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<&'a str>,
    },
    Ack {
        client_msg_id: Option<&'a str>,
        id: &'a str,
    },
    Joined {
        room: &'a str,
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

/// The room a chat message goes to when it names none.
pub const DEFAULT_ROOM: &str = "lobby";

/// The longest room name accepted.
pub const MAX_ROOM_CHARS: usize = 64;

/// Every message a client may send on `/ws`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Say something in a room (joining it first if need be).
    Chat {
        #[serde(default = "default_room")]
        room: String,
        text: String,
        #[serde(default)]
        client_msg_id: Option<String>,
    },
    /// Start receiving a room's messages.
    Join { room: String },
}

fn default_room() -> String {
    DEFAULT_ROOM.to_owned()
}

impl ClientMessage {
    /// Parses one text frame, with a message fit to send back in an
    /// `error` frame when it is not a valid message.
    pub fn parse(text: &str) -> Result<ClientMessage, String> {
        let message: ClientMessage = serde_json::from_str(text).map_err(|error| {
            let detail = error.to_string();
            if detail.starts_with("unknown variant") {
                format!("{detail}; see docs/protocol.md")
            } else {
                format!("invalid message: {detail}; expected JSON such as {{\"type\":\"chat\",\"text\":\"hi\"}}")
            }
        })?;
        let room = match &message {
            ClientMessage::Chat { room, .. } | ClientMessage::Join { room } => room,
        };
        if room.is_empty() || room.chars().count() > MAX_ROOM_CHARS {
            return Err(format!(
                "invalid room name: expected 1 to {MAX_ROOM_CHARS} characters"
            ));
        }
        Ok(message)
    }
}

#[cfg(test)]
mod tests;
