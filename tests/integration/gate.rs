//! The WebSocket gate end to end: a real client (tungstenite) against the
//! real program. Durations are configured short; every wait is on a frame.

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use warmgate_tests::{Check, Gateway, Message, Plan, Table, within};

/// A plan with one required signal `app` and one optional signal `cache`,
/// and the `[gate]` settings given.
fn plan(gate: impl FnOnce(Table) -> Table) -> Plan {
    Plan::app_signal()
        .check(Check::signal("cache").optional())
        .gate(gate)
}

pub(crate) async fn gateway(gate: impl FnOnce(Table) -> Table) -> Gateway {
    Gateway::builder().config(plan(gate)).spawn().await
}

pub(crate) async fn ready_gateway(gate: impl FnOnce(Table) -> Table) -> Gateway {
    let gateway = gateway(gate).await;
    gateway.set_signal("app", true).await;
    gateway.until_ready().await;
    gateway
}

#[tokio::test]
async fn a_ready_gate_admits_at_once_and_selects_the_subprotocol() {
    let gateway = ready_gateway(|gate| gate).await;
    let mut client = gateway.ws("/ws").await;
    assert_eq!(client.subprotocol.as_deref(), Some("warmgate.v1"));
    let ready = client.next_json().await;
    assert_eq!(ready["type"], "ready");
    assert_eq!(ready["state"], "ready");
    assert_eq!(ready["waited_ms"], 0);
    assert_eq!(ready["degraded"], json!([]));
    assert!(ready["connection_id"].as_str().unwrap().starts_with('c'));

    // Offering the subprotocol is not required.
    let mut plain = gateway.ws_with("/ws", &[]).await;
    assert_eq!(plain.subprotocol, None);
    assert_eq!(plain.next_json().await["type"], "ready");
}

#[tokio::test]
async fn a_held_client_is_warmed_then_admitted_when_the_gate_flips() {
    let gateway = gateway(|gate| gate.set("hold_timeout", "30s")).await;
    let mut client = gateway.ws("/ws").await;
    let warming = client.next_json().await;
    assert_eq!(warming["type"], "warming");
    assert_eq!(warming["state"], "starting");
    assert_eq!(warming["phase"], "services");
    assert_eq!(warming["pending"], json!(["app"]));
    assert!(warming["hold_remaining_ms"].as_u64().unwrap() <= 30_000);
    gateway.set_signal("app", true).await;
    let frames = client.until_type("ready").await;
    let ready = frames.last().unwrap();
    assert_eq!(ready["state"], "ready");
    assert!(ready["seq"].as_u64().unwrap() > warming["seq"].as_u64().unwrap());
}

#[tokio::test]
async fn held_clients_get_a_warming_heartbeat() {
    let gateway = gateway(|gate| {
        gate.set("hold_timeout", "30s")
            .set("warming_interval", "50ms")
    })
    .await;
    let mut client = gateway.ws("/ws").await;
    let first = client.next_json().await;
    let second = client.next_json().await;
    let third = client.next_json().await;
    for frame in [&first, &second, &third] {
        assert_eq!(frame["type"], "warming");
        assert_eq!(
            frame["seq"], first["seq"],
            "nothing changed; only the heartbeat"
        );
    }
    assert!(third["hold_remaining_ms"].as_u64() < first["hold_remaining_ms"].as_u64());
}

#[tokio::test]
async fn a_client_held_past_the_hold_timeout_is_told_when_to_come_back_and_closed_1013() {
    let gateway = gateway(|gate| gate.set("hold_timeout", "200ms").set("retry_after", "2s")).await;
    let mut client = gateway.ws("/ws").await;
    let frames = client.until_type("unavailable").await;
    assert_eq!(frames[0]["type"], "warming");
    let unavailable = frames.last().unwrap();
    assert_eq!(unavailable["reason"], "hold_timeout");
    assert_eq!(unavailable["state"], "starting");
    assert_eq!(unavailable["pending"], json!(["app"]));
    let retry = unavailable["retry_after_ms"].as_u64().unwrap();
    assert!((2000..=3000).contains(&retry), "{retry}");
    assert_eq!(unavailable["unprocessed"], 0);
    let (code, _reason) = client.close_frame().await;
    assert_eq!(code, 1013);
}

#[tokio::test]
async fn messages_sent_while_held_are_processed_in_order_after_admission() {
    let gateway = gateway(|gate| gate.set("hold_timeout", "30s")).await;
    let mut client = gateway.ws("/ws").await;
    assert_eq!(client.next_json().await["type"], "warming");
    for n in 1..=3 {
        client
            .send_json(json!({"type": "chat", "text": format!("hello {n}"), "client_msg_id": format!("c-{n}")}))
            .await;
    }
    gateway.set_signal("app", true).await;
    client.until_type("ready").await;
    let mut acks = Vec::new();
    let mut chats = Vec::new();
    while acks.len() < 3 || chats.len() < 3 {
        let frame = client.next_json().await;
        match frame["type"].as_str().unwrap() {
            "ack" => acks.push(frame["client_msg_id"].as_str().unwrap().to_owned()),
            "chat" => chats.push(frame["text"].as_str().unwrap().to_owned()),
            other => panic!("unexpected {other}: {frame}"),
        }
    }
    assert_eq!(acks, ["c-1", "c-2", "c-3"]);
    assert_eq!(chats, ["hello 1", "hello 2", "hello 3"]);
}

#[tokio::test]
async fn clients_released_together_get_each_others_first_messages_whatever_order_they_run_in() {
    let gateway = gateway(|gate| gate.set("hold_timeout", "30s")).await;
    let mut listener = gateway.ws("/ws").await;
    assert_eq!(listener.next_json().await["type"], "warming");
    // Eight more held clients, each with a chat buffered: all nine are
    // released by one flip, and each sender's message goes out as soon as
    // its own task is admitted, maybe before the listener's task runs.
    let mut senders = Vec::new();
    for n in 0..8 {
        let mut sender = gateway.ws("/ws").await;
        assert_eq!(sender.next_json().await["type"], "warming");
        sender
            .send_json(json!({"type": "chat", "text": format!("from {n}"), "client_msg_id": format!("s-{n}")}))
            .await;
        senders.push(sender);
    }
    gateway.set_signal("app", true).await;
    listener.until_type("ready").await;
    let mut texts = Vec::new();
    while texts.len() < 8 {
        let frame = listener.until_type("chat").await;
        texts.push(frame.last().unwrap()["text"].as_str().unwrap().to_owned());
    }
    texts.sort();
    let expected: Vec<String> = (0..8).map(|n| format!("from {n}")).collect();
    assert_eq!(texts, expected);
}

#[tokio::test]
async fn a_full_hold_buffer_refuses_messages_and_reports_what_was_not_processed() {
    let gateway = gateway(|gate| gate.set("hold_timeout", "1s")).await;
    let mut client = gateway.ws("/ws").await;
    assert_eq!(client.next_json().await["type"], "warming");
    for n in 0..33 {
        client
            .send_json(json!({"type": "chat", "text": format!("m{n}")}))
            .await;
    }
    let frames = client.until_type("error").await;
    let error = frames.last().unwrap();
    assert_eq!(error["code"], "buffer_full");
    let frames = client.until_type("unavailable").await;
    assert_eq!(frames.last().unwrap()["unprocessed"], 32);
    assert_eq!(client.close_frame().await.0, 1013);
}

#[tokio::test]
async fn admitted_clients_get_readiness_pushes_and_chat_reaches_the_room() {
    let gateway = ready_gateway(|gate| gate).await;
    let mut alice = gateway.ws("/ws").await;
    let mut bob = gateway.ws("/ws").await;
    assert_eq!(alice.next_json().await["type"], "ready");
    assert_eq!(bob.next_json().await["type"], "ready");

    gateway.set_signal("cache", false).await;
    for client in [&mut alice, &mut bob] {
        let push = client.next_json().await;
        assert_eq!(push["type"], "readiness");
        assert_eq!(push["state"], "degraded");
        assert_eq!(push["degraded"], json!(["cache"]));
    }

    alice
        .send_json(json!({"type": "chat", "room": "lobby", "text": "hi", "client_msg_id": "a-1"}))
        .await;
    let from_bob_view = bob.until_type("chat").await;
    let chat = from_bob_view.last().unwrap();
    assert_eq!(chat["text"], "hi");
    assert_eq!(chat["room"], "lobby");
    let alice_frames: Vec<Value> = vec![alice.next_json().await, alice.next_json().await];
    let ack = alice_frames.iter().find(|f| f["type"] == "ack").unwrap();
    assert_eq!(ack["client_msg_id"], "a-1");
    assert_eq!(ack["id"], chat["id"]);
    assert!(
        alice_frames.iter().any(|f| f["type"] == "chat"),
        "the sender gets its own message"
    );

    // Bad input gets an error frame, and the connection stays open.
    alice.send(Message::text("not json")).await;
    let error = alice.next_json().await;
    assert_eq!(
        (error["type"].as_str(), error["code"].as_str()),
        (Some("error"), Some("invalid_message"))
    );
    alice.send_json(json!({"type": "shout"})).await;
    assert_eq!(alice.next_json().await["code"], "invalid_message");
    alice
        .send_json(json!({"type": "join", "room": "ops"}))
        .await;
    assert_eq!(
        alice.next_json().await,
        json!({"type": "joined", "room": "ops"})
    );
}

#[tokio::test]
async fn a_message_resent_after_a_reconnect_is_acked_again_but_delivered_once() {
    let gateway = ready_gateway(|gate| gate).await;
    let mut bob = gateway.ws("/ws").await;
    assert_eq!(bob.next_json().await["type"], "ready");
    let send =
        json!({"type": "chat", "room": "lobby", "text": "only once", "client_msg_id": "c-9f3-1"});

    let mut alice = gateway.ws("/ws").await;
    assert_eq!(alice.next_json().await["type"], "ready");
    alice.send_json(send.clone()).await;
    let first_ack = alice.until_type("ack").await.pop().unwrap();
    let delivered = bob.until_type("chat").await.pop().unwrap();
    assert_eq!(delivered["client_msg_id"], "c-9f3-1");
    assert_eq!(delivered["id"], first_ack["id"]);

    // Alice reconnects before she saw her ack, and resends.
    drop(alice);
    let mut alice = gateway.ws("/ws").await;
    assert_eq!(alice.next_json().await["type"], "ready");
    alice.send_json(send).await;
    let second_ack = alice.until_type("ack").await.pop().unwrap();
    assert_eq!(second_ack, first_ack, "acked again with the first id");

    // Bob sees nothing more: the next frame he gets is the marker below.
    alice
        .send_json(
            json!({"type": "chat", "room": "lobby", "text": "marker", "client_msg_id": "c-9f3-2"}),
        )
        .await;
    assert_eq!(
        bob.until_type("chat").await.pop().unwrap()["text"],
        "marker"
    );
}

#[tokio::test]
async fn draining_refuses_held_and_new_clients_and_closes_admitted_ones_after_the_grace() {
    let mut gateway =
        ready_gateway(|gate| gate.set("hold_timeout", "30s").set("drain_grace", "300ms")).await;
    let mut admitted = gateway.ws("/ws").await;
    assert_eq!(admitted.next_json().await["type"], "ready");
    // The required signal drops: the gate is not ready, so the next client is held.
    gateway.set_signal("app", false).await;
    assert_eq!(admitted.next_json().await["state"], "not_ready");
    let mut held = gateway.ws("/ws").await;
    assert_eq!(held.next_json().await["type"], "warming");

    gateway.terminate();
    let frames = held.until_type("unavailable").await;
    assert_eq!(frames.last().unwrap()["reason"], "draining");
    assert_eq!(held.close_frame().await.0, 1013);

    let draining = admitted.next_json().await;
    assert_eq!(draining["type"], "draining");
    assert!(draining["reconnect_after_ms"].as_u64().is_some());

    let mut late = gateway.ws("/ws").await;
    let refused = late.next_json().await;
    assert_eq!(
        (refused["type"].as_str(), refused["reason"].as_str()),
        (Some("unavailable"), Some("draining"))
    );
    assert_eq!(late.close_frame().await.0, 1013);

    assert_eq!(admitted.close_frame().await.0, 1001);
    assert!(gateway.exit_status().await.success());
}

#[tokio::test]
async fn past_max_connections_clients_are_refused_for_capacity() {
    let gateway = ready_gateway(|gate| gate.set("max_connections", 1)).await;
    let mut first = gateway.ws("/ws").await;
    assert_eq!(first.next_json().await["type"], "ready");
    let mut second = gateway.ws("/ws").await;
    let refused = second.next_json().await;
    assert_eq!(refused["reason"], "capacity");
    assert_eq!(second.close_frame().await.0, 1013);
    // The first is untouched.
    first.send_json(json!({"type": "join", "room": "x"})).await;
    assert_eq!(first.next_json().await["type"], "joined");
}

#[tokio::test]
async fn past_max_held_clients_are_refused_for_capacity() {
    let gateway = gateway(|gate| gate.set("max_held", 1).set("hold_timeout", "30s")).await;
    let mut first = gateway.ws("/ws").await;
    assert_eq!(first.next_json().await["type"], "warming");
    let mut second = gateway.ws("/ws").await;
    let refused = second.next_json().await;
    assert_eq!(refused["reason"], "capacity");
    assert_eq!(second.close_frame().await.0, 1013);
}

#[tokio::test]
async fn frames_over_max_message_bytes_close_1009() {
    let gateway = ready_gateway(|gate| gate.set("max_message_bytes", 1024)).await;
    let mut client = gateway.ws("/echo").await;
    client.send(Message::text("x".repeat(1024))).await;
    assert_eq!(
        client
            .next_message()
            .await
            .unwrap()
            .into_text()
            .unwrap()
            .len(),
        1024
    );
    client.send(Message::text("x".repeat(1025))).await;
    assert_eq!(client.close_frame().await.0, 1009);
}

#[tokio::test]
async fn invalid_utf8_in_a_text_frame_closes_1007() {
    let gateway = ready_gateway(|gate| gate).await;
    let mut client = gateway.ws("/echo").await;
    let frame = Frame::message(vec![0xff, 0xfe, 0x41], OpCode::Data(Data::Text), true);
    client.send_frame(frame).await;
    assert_eq!(client.close_frame().await.0, 1007);
}

#[tokio::test]
async fn protocol_violations_close_1002() {
    let gateway = ready_gateway(|gate| gate).await;
    // A continuation frame that continues nothing.
    let mut client = gateway.ws("/echo").await;
    client
        .send_frame(Frame::message(
            b"orphan".to_vec(),
            OpCode::Data(Data::Continue),
            true,
        ))
        .await;
    assert_eq!(client.close_frame().await.0, 1002);
    // A close frame with a 126-octet payload (control frames carry at most
    // 125): written by hand, since client libraries refuse to send one.
    let mut stream = raw_upgrade(&gateway, "/echo").await;
    let mut frame = vec![0x88, 0x80 | 126, 0, 126, 0, 0, 0, 0];
    frame.extend([0x03, 0xe8]);
    frame.extend(std::iter::repeat_n(b'a', 124));
    stream.write_all(&frame).await.unwrap();
    let mut received = Vec::new();
    within("the server to close", stream.read_to_end(&mut received))
        .await
        .ok();
    // A close frame (0x88), then its code: 1002.
    assert_eq!(received[0], 0x88, "{received:?}");
    assert_eq!(&received[2..4], &1002u16.to_be_bytes(), "{received:?}");
}

/// A raw TCP connection that has completed the WebSocket upgrade; the 101
/// response has been read.
pub(crate) async fn raw_upgrade(gateway: &Gateway, path: &str) -> tokio::net::TcpStream {
    let stream = tokio::net::TcpStream::connect(gateway.public)
        .await
        .unwrap();
    warmgate_tests::raw_websocket_upgrade(stream, path).await
}

#[tokio::test]
async fn the_echo_route_is_transparent_while_held_and_echoes_once_admitted() {
    let gateway = gateway(|gate| gate.set("hold_timeout", "30s")).await;
    let mut client = gateway.ws_with("/echo", &[]).await;
    client.send(Message::text("sent while held")).await;
    client.send(Message::binary(vec![1u8, 2, 3])).await;
    gateway.set_signal("app", true).await;
    // No frame of ours: the first thing back is the echo of the held messages.
    assert_eq!(
        client.next_message().await.unwrap(),
        Message::text("sent while held")
    );
    assert_eq!(
        client.next_message().await.unwrap(),
        Message::binary(vec![1u8, 2, 3])
    );
    client.send(Message::text("again")).await;
    assert_eq!(client.next_message().await.unwrap(), Message::text("again"));
}

/// Sends raw bytes as an HTTP request to the public listener; the status line.
async fn raw_http(gateway: &Gateway, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(gateway.public)
        .await
        .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    within("an HTTP response", stream.read_to_end(&mut response))
        .await
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn malformed_upgrades_get_a_status_and_a_one_line_reason() {
    let gateway = ready_gateway(|gate| gate).await;
    let upgrade = "Connection: Upgrade\r\nUpgrade: websocket\r\n";
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let cases = [
        (
            format!(
                "GET /ws HTTP/1.1\r\nHost: x\r\n{upgrade}Sec-WebSocket-Version: 13\r\nConnection: close\r\n\r\n"
            ),
            "400",
            "Sec-WebSocket-Key",
        ),
        (
            format!(
                "GET /ws HTTP/1.1\r\nHost: x\r\n{upgrade}{key}Sec-WebSocket-Version: 8\r\n\r\n"
            ),
            "426",
            "Sec-WebSocket-Version must be 13",
        ),
        (
            format!(
                "POST /ws HTTP/1.1\r\nHost: x\r\n{upgrade}{key}Sec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n"
            ),
            "400",
            "must be a GET request",
        ),
        (
            "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_owned(),
            "426",
            "this route speaks WebSocket",
        ),
    ];
    for (request, status, reason) in cases {
        let request = request.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n");
        let response = raw_http(&gateway, &request).await;
        assert!(
            response.starts_with(&format!("HTTP/1.1 {status}")),
            "{response}"
        );
        assert!(response.contains(reason), "{response}");
    }
}

#[tokio::test]
async fn origins_outside_allowed_origins_are_refused_with_403() {
    let gateway =
        ready_gateway(|gate| gate.set("allowed_origins", ["https://chat.example.com"])).await;
    let request = "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: https://evil.example\r\nConnection: close\r\n\r\n";
    let response = raw_http(&gateway, request).await;
    assert!(response.starts_with("HTTP/1.1 403"), "{response}");
    assert!(
        response.contains("origin https://evil.example is not allowed"),
        "{response}"
    );
}

#[tokio::test]
async fn a_handshake_that_never_finishes_is_dropped_after_handshake_timeout() {
    let gateway = ready_gateway(|gate| gate.set("handshake_timeout", "200ms")).await;
    let mut stream = tokio::net::TcpStream::connect(gateway.public)
        .await
        .unwrap();
    stream
        .write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // The server closes the connection; reading sees its end (or a reset).
    let mut rest = Vec::new();
    let _ = within(
        "the server to drop the slow handshake",
        stream.read_to_end(&mut rest),
    )
    .await;
}

#[tokio::test]
async fn a_silent_client_is_closed_after_two_unanswered_pings() {
    let gateway = ready_gateway(|gate| gate.set("ping_interval", "100ms")).await;
    // A raw client that completes the handshake and then never answers.
    let mut stream = raw_upgrade(&gateway, "/echo").await;
    let mut received = Vec::new();
    within(
        "the server to close the silent client",
        stream.read_to_end(&mut received),
    )
    .await
    .ok();
    // Two pings (opcode 0x9), then a close frame (0x8) with code 1001.
    let frames = &received[..];
    let n_pings = frames.windows(1).filter(|w| w[0] == 0x89).count();
    assert!(n_pings >= 2, "{frames:?}");
    let close = frames
        .windows(4)
        .any(|w| w[0] == 0x88 && w[2..4] == 1001u16.to_be_bytes());
    assert!(close, "{frames:?}");
}

#[tokio::test]
async fn a_gate_past_its_startup_deadline_refuses_held_clients_as_failed() {
    let gateway = gateway(|gate| {
        gate.set("startup_deadline", "50ms")
            .set("hold_timeout", "300ms")
    })
    .await;
    gateway
        .events()
        .await
        .until(|s| s["state"] == "failed")
        .await;
    let mut client = gateway.ws("/ws").await;
    let frames = client.until_type("unavailable").await;
    assert_eq!(frames[0]["state"], "failed");
    assert_eq!(frames.last().unwrap()["reason"], "failed");
    assert_eq!(client.close_frame().await.0, 1013);
}

#[tokio::test]
async fn a_held_echo_client_gets_no_frames_only_close_1013_at_the_hold_timeout() {
    let gateway = gateway(|gate| gate.set("hold_timeout", "200ms")).await;
    let mut client = gateway.ws_with("/echo", &[]).await;
    match client.next_message().await {
        Some(Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 1013),
        other => panic!("expected only a close frame, got {other:?}"),
    }
}
