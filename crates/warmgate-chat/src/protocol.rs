//! The chat's frames on top of the warmgate protocol: what a client sends
//! (`chat`, `join`) and the chat's own replies (`chat`, `ack`, `joined`).
//! The gate's frames (`warming`, `ready`, `error`, ...) are
//! `warmgate_gate::protocol`'s; both are documented in `docs/protocol.md`.
//!
//! Pure data and parsing.

use serde::{Deserialize, Serialize};

/// Every frame the chat sends.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatFrame<'a> {
    /// A message in a room the client is in.
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
    /// The sender's message was accepted with the server's `id`.
    Ack {
        client_msg_id: Option<&'a str>,
        id: &'a str,
    },
    /// The client joined `room`.
    Joined { room: &'a str },
}

impl ChatFrame<'_> {
    /// The JSON text of the frame.
    pub fn to_json(&self) -> String {
        // Serialising these types cannot fail: every field is a string, a
        // number or an option of one.
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
