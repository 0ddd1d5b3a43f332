//! The `client_message` target: a text frame from a `/ws` client, through
//! [`ClientMessage::parse`].
//!
//! Bytes that are not UTF-8 stop where the gate stops them: its frame
//! reader closes the connection with 1007 before anything is parsed. What
//! is checked besides not panicking: an accepted message names a room of 1
//! to [`MAX_ROOM_CHARS`] characters and reads back the same when written as
//! JSON again; a refused one gets a non-empty reason for the `error` frame.
//! The reason may span lines (serde quotes an unknown field's name as it
//! is), which is harmless: it travels as a JSON string.

use warmgate_chat::protocol::{ClientMessage, MAX_ROOM_CHARS};

/// The fuzz target's body.
pub fn fuzz(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check(text);
}

/// Parses `text` and checks the promises of [`ClientMessage::parse`].
///
/// # Panics
///
/// When the parser panics or breaks one of its promises.
pub fn check(text: &str) {
    match ClientMessage::parse(text) {
        Ok(message) => {
            let room = room(&message);
            let room_chars = room.chars().count();
            assert!(
                (1..=MAX_ROOM_CHARS).contains(&room_chars),
                "an accepted message names a room of {room_chars} characters"
            );
            let written = to_json(&message);
            assert_eq!(
                ClientMessage::parse(&written).as_ref(),
                Ok(&message),
                "an accepted message reads back the same from {written}"
            );
        }
        Err(reason) => {
            assert!(!reason.trim().is_empty(), "a refusal gives a reason");
        }
    }
}

/// The room a message goes to.
pub fn room(message: &ClientMessage) -> &str {
    match message {
        ClientMessage::Chat { room, .. } | ClientMessage::Join { room } => room,
    }
}

/// A message as a client would send it: the JSON of `docs/protocol.md`.
pub fn to_json(message: &ClientMessage) -> String {
    let value = match message {
        ClientMessage::Chat {
            room,
            text,
            client_msg_id,
        } => serde_json::json!({
            "type": "chat",
            "room": room,
            "text": text,
            "client_msg_id": client_msg_id,
        }),
        ClientMessage::Join { room } => serde_json::json!({ "type": "join", "room": room }),
    };
    value.to_string()
}
