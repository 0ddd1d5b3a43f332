//! Liveness and slow readers against the real program: a client busy
//! sending one long frame is alive; a client that stops reading is closed
//! as a slow consumer, held or admitted, and never holds the drain; a
//! message cannot come in endless fragments; and a close the server fails
//! does not wait for a close frame the client already sent.
//!
//! The clients here are raw TCP, so that they can dribble bytes, stop
//! reading and break the protocol at will. The only sleeps pace a client's
//! own sending, which is the behaviour under test.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use warmgate_tests::{Gateway, Table, raw_websocket_upgrade, within};

use crate::gate::{gateway, raw_upgrade, ready_gateway};

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;

/// [`raw_upgrade`] with a small receive buffer, for a client that will
/// stop reading: its buffers fill after a few hundred kilobytes instead of
/// the tens of megabytes the kernel would grow them to.
async fn raw_upgrade_small_buffer(gateway: &Gateway, path: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let stream = socket.connect(gateway.public).await.unwrap();
    raw_websocket_upgrade(stream, path).await
}

/// A client frame: masked, as RFC 6455 requires.
fn masked_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![u8::from(fin) << 7 | opcode];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= usize::from(u16::MAX) => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    frame
}

/// One server frame: its opcode and payload; `None` at the end of the
/// stream.
async fn read_frame(read: &mut OwnedReadHalf) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    read.read_exact(&mut head).await.ok()?;
    let opcode = head[0] & 0x0f;
    let len = match head[1] & 0x7f {
        126 => {
            let mut len = [0u8; 2];
            read.read_exact(&mut len).await.ok()?;
            usize::from(u16::from_be_bytes(len))
        }
        127 => {
            let mut len = [0u8; 8];
            read.read_exact(&mut len).await.ok()?;
            usize::try_from(u64::from_be_bytes(len)).unwrap()
        }
        n => usize::from(n),
    };
    let mut payload = vec![0u8; len];
    read.read_exact(&mut payload).await.ok()?;
    Some((opcode, payload))
}

/// The next frame that is not a ping.
async fn next_data_frame(read: &mut OwnedReadHalf) -> Option<(u8, Vec<u8>)> {
    within("the next frame", async {
        loop {
            match read_frame(read).await {
                Some((PING, _)) => continue,
                other => return other,
            }
        }
    })
    .await
}

fn close_code(payload: &[u8]) -> u16 {
    u16::from_be_bytes([payload[0], payload[1]])
}

/// The value of `warmgate_connections_total{outcome="<outcome>"}`.
async fn n_connections_ended(gateway: &Gateway, outcome: &str) -> f64 {
    let series = format!("warmgate_connections_total{{outcome=\"{outcome}\"}} ");
    let text = gateway.admin_get("/metrics").await.text;
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

/// The value of `warmgate_connections{route="/ws",stage="<stage>"}`: how
/// many `/ws` clients are open in that stage.
async fn n_open_on_ws(gateway: &Gateway, stage: &str) -> f64 {
    let text = gateway.admin_get("/metrics").await.text;
    text.lines()
        .find(|line| {
            line.starts_with("warmgate_connections{")
                && line.contains("route=\"/ws\"")
                && line.contains(&format!("stage=\"{stage}\""))
        })
        .and_then(|line| line.rsplit(' ').next())
        .map_or(0.0, |value| value.parse().unwrap())
}

/// Waits until no `/ws` client is open in `stage`: the one that stopped
/// reading is gone. Scrapes every 50 ms; there is no event to wait on.
async fn until_no_ws_client(gateway: &Gateway, stage: &str) {
    within(&format!("no /ws client {stage}"), async {
        while n_open_on_ws(gateway, stage).await > 0.0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

// === a busy client is alive ===

#[tokio::test]
async fn one_frame_sent_at_10_kb_per_second_across_six_ping_intervals_is_echoed_whole() {
    let gateway = ready_gateway(|gate| {
        gate.set("ping_interval", "1s")
            .set("max_message_bytes", 1048576)
    })
    .await;
    let (mut read, mut write) = raw_upgrade(&gateway, "/echo").await.into_split();
    let payload: Vec<u8> = (0..60_000u32).map(|i| (i % 251) as u8).collect();
    // About 10 kB/s: six seconds inside one frame, where no pong can go.
    for chunk in masked_frame(true, BINARY, &payload).chunks(1000) {
        write.write_all(chunk).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (opcode, echoed) = next_data_frame(&mut read).await.unwrap();
    assert_eq!(opcode, BINARY, "{:?}", String::from_utf8_lossy(&echoed));
    assert!(echoed == payload, "the echo differs from the message sent");
}

#[tokio::test]
async fn a_message_in_fragments_dribbled_across_five_ping_intervals_is_echoed_whole() {
    let gateway = ready_gateway(|gate| {
        gate.set("ping_interval", "1s")
            .set("max_message_bytes", 1048576)
    })
    .await;
    let (mut read, mut write) = raw_upgrade(&gateway, "/echo").await.into_split();
    let fragment = [b'a'; 1000];
    // Six fragments, one every 900 ms; no frame is whole before the last.
    for n in 0..6 {
        let opcode = if n == 0 { TEXT } else { CONTINUATION };
        let frame = masked_frame(n == 5, opcode, &fragment);
        for chunk in frame.chunks(250) {
            write.write_all(chunk).await.unwrap();
            tokio::time::sleep(Duration::from_millis(225)).await;
        }
    }
    let (opcode, echoed) = next_data_frame(&mut read).await.unwrap();
    assert_eq!(opcode, TEXT, "{:?}", String::from_utf8_lossy(&echoed));
    assert_eq!(echoed.len(), 6000);
}

#[tokio::test]
async fn messages_larger_than_the_send_queue_are_echoed_one_after_another_without_a_timer() {
    // With pings an hour apart, no timer wakes the connection: only the
    // writer making room in the queue can let it read the next message.
    let gateway = ready_gateway(|gate| {
        gate.set("ping_interval", "1h")
            .set("max_message_bytes", 4194304)
    })
    .await;
    let (mut read, mut write) = raw_upgrade(&gateway, "/echo").await.into_split();
    for (n, size) in [(0u8, 300_000), (1, 1_048_576), (2, 300_000), (3, 64)] {
        let payload = vec![b'a' + n; size];
        write
            .write_all(&masked_frame(true, BINARY, &payload))
            .await
            .unwrap();
        let (opcode, echoed) = next_data_frame(&mut read).await.unwrap();
        assert_eq!(opcode, BINARY);
        assert!(
            echoed == payload,
            "echo {n} differs ({} bytes)",
            echoed.len()
        );
    }
}

// === a client that stops reading ===

/// A `/ws` client that chats into `lobby` (and reads everything it gets,
/// so it never stalls itself); returns once it has sent `n_messages` of
/// `n_bytes` each and read their acks.
async fn chat_into_lobby(gateway: &Gateway, n_messages: usize, n_bytes: usize) {
    let url = format!("ws://{}/ws", gateway.public);
    let (stream, _) = within(
        "the chatting client's handshake",
        tokio_tungstenite::connect_async(url),
    )
    .await
    .unwrap();
    let (mut sink, mut stream) = stream.split();
    let reading = tokio::spawn(async move {
        let mut n_acks = 0;
        while let Some(Ok(message)) = stream.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            if text.contains("\"type\":\"ack\"") {
                n_acks += 1;
                if n_acks == n_messages {
                    return;
                }
            }
        }
        panic!("the chatting client lost its connection after {n_acks} acks");
    });
    let text = "x".repeat(n_bytes);
    let message = json!({"type": "chat", "text": text}).to_string();
    for n in 1..=n_messages {
        // Flushed every 100 messages, not after each one.
        let sent = sink.feed(Message::text(message.clone()));
        within("a chat message sent", sent).await.unwrap();
        if n % 100 == 0 {
            within("chat messages flushed", sink.flush()).await.unwrap();
        }
    }
    within("chat messages flushed", sink.flush()).await.unwrap();
    within("every ack", reading).await.unwrap();
}

/// The `[gate]` settings of a room flooded with chat: pings every second,
/// 1 MiB messages, and a rate limit no client reaches.
fn flooded_room(gate: Table) -> Table {
    gate.set("ping_interval", "1s")
        .set("max_message_bytes", 1048576)
        .set("messages_per_second", 100000)
        .set("message_burst", 1000000)
}

#[tokio::test]
async fn a_ws_client_that_stops_reading_while_others_chat_is_closed_as_a_slow_consumer() {
    let gateway = ready_gateway(|gate| flooded_room(gate).set("write_timeout", "1s")).await;
    let (mut read, _write) = raw_upgrade_small_buffer(&gateway, "/ws").await.into_split();
    let (_, ready) = next_data_frame(&mut read).await.unwrap();
    assert!(String::from_utf8_lossy(&ready).contains("\"ready\""));
    // The client reads no more. 9 MB of chat fills its socket buffers
    // and the server's, and then some.
    chat_into_lobby(&gateway, 150, 60_000).await;
    let sent_at = Instant::now();
    // The chatting client has left; the stalled one must go too.
    until_no_ws_client(&gateway, "admitted").await;
    assert!(
        sent_at.elapsed() < Duration::from_secs(10),
        "closed {:?} after the chat",
        sent_at.elapsed()
    );
    assert_eq!(n_connections_ended(&gateway, "slow_consumer").await, 1.0);
    // It sees what its buffers held, then the end: a close 1008 if it
    // took it, or the connection dropped.
    let mut last = None;
    while let Some(frame) = next_data_frame(&mut read).await {
        last = Some(frame);
    }
    if let Some((CLOSE, payload)) = last {
        assert_eq!(close_code(&payload), 1008);
    }
    assert_eq!(gateway.log().matches("slow consumer").count(), 1);
    // It no longer counts against max_connections.
    assert_eq!(gateway.get("/readyz").await.status, 200);
}

#[tokio::test]
async fn a_held_client_that_floods_without_reading_is_closed_as_a_slow_consumer() {
    // The gate never turns ready. The hold ends at 5 s, but a loop stuck
    // on a write never gets there; the slow-consumer rule ends it first.
    let gateway = gateway(|gate| {
        gate.set("hold_timeout", "5s")
            .set("warming_interval", "100ms")
            .set("write_timeout", "1s")
    })
    .await;
    let (mut read, mut write) = raw_upgrade_small_buffer(&gateway, "/ws").await.into_split();
    let (_, warming) = next_data_frame(&mut read).await.unwrap();
    assert!(String::from_utf8_lossy(&warming).contains("\"warming\""));
    // Every message past the hold buffer gets an `error` frame back, which
    // this client never reads.
    let flooding = tokio::spawn(async move {
        let message = masked_frame(true, TEXT, br#"{"type":"chat","text":"hi"}"#);
        let batch = message.repeat(1000);
        while write.write_all(&batch).await.is_ok() {}
    });
    until_no_ws_client(&gateway, "held").await;
    flooding.abort();
    assert_eq!(n_connections_ended(&gateway, "slow_consumer").await, 1.0);
}

#[tokio::test]
async fn a_client_stuck_at_the_drain_deadline_does_not_hold_the_drain() {
    // The write timeout is longer than the drain: only the drain deadline
    // can close this client, and it must, though it takes no frame.
    let mut gateway = ready_gateway(|gate| {
        flooded_room(gate)
            .set("write_timeout", "1h")
            .set("drain_grace", "2s")
    })
    .await;
    let (mut read, _write) = raw_upgrade_small_buffer(&gateway, "/ws").await.into_split();
    next_data_frame(&mut read).await.unwrap();
    chat_into_lobby(&gateway, 150, 60_000).await;
    gateway.terminate();
    let status = gateway.exit_status().await;
    let log = gateway.log();
    assert!(status.success(), "{status:?}");
    assert!(
        !log.contains("connections still open"),
        "the stuck client held the drain to its end"
    );
}

#[tokio::test]
async fn a_reader_that_pauses_under_the_write_timeout_catches_up_with_lagged() {
    // Pings as by default (every 20 s), so only the room can end this.
    let gateway = ready_gateway(|gate| {
        gate.set("max_message_bytes", 1048576)
            .set("messages_per_second", 100000)
            .set("message_burst", 1000000)
            .set("write_timeout", "1h")
    })
    .await;
    let (mut read, _write) = raw_upgrade_small_buffer(&gateway, "/ws").await.into_split();
    next_data_frame(&mut read).await.unwrap();
    // While it reads nothing, the room runs more than its 1,024 messages
    // past what the client's buffers and queue hold.
    chat_into_lobby(&gateway, 6000, 1000).await;
    let lagged = within("the lagged error", async {
        loop {
            let (opcode, payload) = next_data_frame(&mut read).await.unwrap();
            let text = String::from_utf8_lossy(&payload).into_owned();
            assert_ne!(opcode, CLOSE, "closed instead: {text}");
            if text.contains("\"lagged\"") {
                return text;
            }
        }
    })
    .await;
    assert!(lagged.contains("room `lobby`"), "{lagged}");
    assert_eq!(n_connections_ended(&gateway, "slow_consumer").await, 0.0);
}

// === fragments ===

#[tokio::test]
async fn a_message_in_more_than_65536_fragments_is_refused_with_1009() {
    let gateway = ready_gateway(|gate| gate).await;
    for (path, opcode) in [("/echo", TEXT), ("/ws", BINARY)] {
        let (mut read, mut write) = raw_upgrade(&gateway, path).await.into_split();
        if path == "/ws" {
            next_data_frame(&mut read).await.unwrap();
        }
        // 200,000 empty continuation frames after an empty first fragment.
        let sending = tokio::spawn(async move {
            let mut frames = masked_frame(false, opcode, b"");
            frames.extend(masked_frame(false, CONTINUATION, b"").repeat(200_000));
            frames.extend(masked_frame(true, CONTINUATION, b""));
            // The server stops reading once it has refused the message.
            let _ = write.write_all(&frames).await;
        });
        let (opcode, payload) = next_data_frame(&mut read).await.unwrap();
        assert_eq!((path, opcode), (path, CLOSE), "{payload:?}");
        assert_eq!(close_code(&payload), 1009);
        assert_eq!(
            String::from_utf8_lossy(&payload[2..]),
            "message in more than 65536 fragments"
        );
        sending.abort();
    }
}

// === a failed close ===

#[tokio::test]
async fn a_close_frame_the_server_refuses_ends_the_connection_without_waiting_for_another() {
    let gateway = ready_gateway(|gate| gate).await;
    let cases: [(&str, Vec<u8>, u16); 4] = [
        ("code 1005", 1005u16.to_be_bytes().to_vec(), 1002),
        ("code 999", 999u16.to_be_bytes().to_vec(), 1002),
        ("a one-octet payload", vec![0x03], 1002),
        (
            "a reason that is not UTF-8",
            [&1000u16.to_be_bytes()[..], &[0xff, 0xfe]].concat(),
            1007,
        ),
    ];
    for path in ["/echo", "/ws"] {
        for (what, payload, expected) in &cases {
            let (mut read, mut write) = raw_upgrade(&gateway, path).await.into_split();
            if path == "/ws" {
                next_data_frame(&mut read).await.unwrap();
            }
            write
                .write_all(&masked_frame(true, CLOSE, payload))
                .await
                .unwrap();
            let sent_at = Instant::now();
            let (opcode, reply) = next_data_frame(&mut read).await.unwrap();
            assert_eq!(opcode, CLOSE, "{path}, {what}");
            assert_eq!(close_code(&reply), *expected, "{path}, {what}");
            // The client has closed already; the server ends the
            // connection now instead of waiting for a second close frame.
            let mut rest = Vec::new();
            let _ = within("the end of the connection", read.read_to_end(&mut rest)).await;
            assert!(
                sent_at.elapsed() < Duration::from_secs(1),
                "{path}, {what}: the connection ended {:?} after the close",
                sent_at.elapsed()
            );
            drop(write);
        }
    }
}
