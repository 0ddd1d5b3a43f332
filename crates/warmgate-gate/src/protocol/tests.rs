//! Every frame's JSON, and client message parsing.

use serde_json::json;

use super::*;

fn value(message: &ServerMessage<'_>) -> serde_json::Value {
    serde_json::from_str(&message.to_json()).unwrap()
}

#[test]
fn server_frames_have_the_documented_shape() {
    let pending = vec!["database".to_owned()];
    assert_eq!(
        value(&ServerMessage::Warming {
            state: GateState::Starting,
            phase: Some("dependencies"),
            phases: vec!["dependencies", "services"],
            pending: &pending,
            elapsed_ms: 1200,
            hold_remaining_ms: 3800,
            seq: 4
        }),
        json!({"type":"warming","state":"starting","phase":"dependencies","phases":["dependencies","services"],"pending":["database"],
               "elapsed_ms":1200,"hold_remaining_ms":3800,"seq":4})
    );
    assert_eq!(
        value(&ServerMessage::Ready {
            state: GateState::Degraded,
            degraded: &["redis".to_owned()],
            waited_ms: 0,
            connection_id: "c1",
            seq: 9
        }),
        json!({"type":"ready","state":"degraded","degraded":["redis"],"waited_ms":0,"connection_id":"c1","seq":9})
    );
    assert_eq!(
        value(&ServerMessage::Unavailable {
            reason: UnavailableReason::HoldTimeout,
            state: GateState::Starting,
            phase: Some("dependencies"),
            pending: &pending,
            retry_after_ms: 2150,
            unprocessed: 2
        }),
        json!({"type":"unavailable","reason":"hold_timeout","state":"starting","phase":"dependencies",
               "pending":["database"],"retry_after_ms":2150,"unprocessed":2})
    );
    assert_eq!(
        value(&ServerMessage::Draining {
            reconnect_after_ms: 430
        }),
        json!({"type":"draining","reconnect_after_ms":430})
    );
    assert_eq!(
        value(&ServerMessage::Error {
            code: ErrorCode::BufferFull,
            message: "m",
            client_msg_id: None,
        }),
        json!({"type":"error","code":"buffer_full","message":"m"})
    );
    assert_eq!(
        value(&ServerMessage::Error {
            code: ErrorCode::RateLimited,
            message: "m",
            client_msg_id: Some("c-9"),
        }),
        json!({"type":"error","code":"rate_limited","message":"m","client_msg_id":"c-9"})
    );
    assert_eq!(
        value(&ServerMessage::Ack {
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
