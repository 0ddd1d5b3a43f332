//! The chat's frames' JSON, and client message parsing.

use serde_json::json;

use super::*;

#[test]
fn chat_frames_have_the_documented_shape() {
    let value = |frame: &ChatFrame<'_>| -> serde_json::Value {
        serde_json::from_str(&frame.to_json()).unwrap()
    };
    assert_eq!(
        value(&ChatFrame::Ack {
            client_msg_id: Some("c-17"),
            id: "m1"
        }),
        json!({"type":"ack","client_msg_id":"c-17","id":"m1"})
    );
}

#[test]
fn client_messages_parse_with_defaults() {
    assert_eq!(
        ClientMessage::parse(r#"{"type":"chat","text":"hi","client_msg_id":"c-1"}"#),
        Ok(ClientMessage::Chat {
            room: "lobby".into(),
            text: "hi".into(),
            client_msg_id: Some("c-1".into())
        })
    );
    assert_eq!(
        ClientMessage::parse(r#"{"type":"join","room":"ops"}"#),
        Ok(ClientMessage::Join { room: "ops".into() })
    );
}

#[test]
fn bad_client_messages_say_why() {
    let error = ClientMessage::parse("not json").unwrap_err();
    assert!(error.starts_with("invalid message: "), "{error}");
    let error = ClientMessage::parse(r#"{"type":"shout","text":"hi"}"#).unwrap_err();
    assert!(error.starts_with("unknown variant `shout`"), "{error}");
    let error = ClientMessage::parse(r#"{"type":"chat"}"#).unwrap_err();
    assert!(error.contains("missing field `text`"), "{error}");
    let error = ClientMessage::parse(r#"{"type":"join","room":""}"#).unwrap_err();
    assert!(error.starts_with("invalid room name"), "{error}");
    let error = ClientMessage::parse(r#"{"type":"chat","text":"x","extra":1}"#).unwrap_err();
    assert!(error.contains("unknown field `extra`"), "{error}");
}
