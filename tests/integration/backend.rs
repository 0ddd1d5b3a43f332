//! The stand-in upstream (`tests/backend/app.py`) driven directly, without
//! warmgate: it refuses connections while it starts, then serves; its
//! WebSocket ops (echo, stream, close, headers, log) and subprotocol
//! choice; its HTTP routes, with server-sent events that arrive as they
//! are produced; and stopping and restarting it. These prove the harness
//! that the proxy tests stand on.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use warmgate_tests::backend::{Backend, SUBPROTOCOL, assert_sse_unbuffered, sse_path};
use warmgate_tests::{Message, http_client, within};

/// A backend that is already serving: most tests are not about startup.
async fn serving_backend() -> Backend {
    let backend = Backend::start(Duration::ZERO).await;
    backend.wait_healthy().await;
    backend
}

#[tokio::test]
async fn refuses_connections_until_its_startup_delay_has_passed_then_is_healthy() {
    let startup_delay = Duration::from_secs(1);
    let started = Instant::now();
    let backend = Backend::start(startup_delay).await;
    // Python alone takes most of a second to start, and the port is bound
    // only after the delay, so nothing listens yet.
    let early = http_client()
        .get(backend.http_url("/healthz"))
        .send()
        .await
        .expect_err("the backend answered before its startup delay");
    assert!(early.is_connect(), "{early:?}");

    backend.wait_healthy().await;
    assert!(
        started.elapsed() >= startup_delay,
        "healthy after {:?}, before its startup delay",
        started.elapsed()
    );
    let response = http_client()
        .get(backend.http_url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
}

#[tokio::test]
async fn echoes_text_and_binary_and_logs_text_in_order() {
    let backend = serving_backend().await;
    let mut client = backend.ws("/ws").await;
    let texts = ["first", r#"{"not":"an op"}"#, "third"];
    for text in texts {
        client.send(Message::text(text)).await;
        assert_eq!(client.next_message().await, Some(Message::text(text)));
    }
    let binary = vec![0_u8, 1, 2, 255];
    client.send(Message::binary(binary.clone())).await;
    assert_eq!(client.next_message().await, Some(Message::binary(binary)));

    client.send_json(json!({"op": "log"})).await;
    assert_eq!(client.next_json().await, json!({"received": texts}));
}

#[tokio::test]
async fn stream_op_sends_one_frame_per_token_then_done() {
    let backend = serving_backend().await;
    let mut client = backend.ws("/ws/rooms/1").await;
    client
        .send_json(json!({"op": "stream", "text": "hello there  world", "delay_ms": 5}))
        .await;
    for (index, token) in ["hello", "there", "world"].into_iter().enumerate() {
        assert_eq!(
            client.next_json().await,
            json!({"token": token, "index": index})
        );
    }
    assert_eq!(client.next_json().await, json!({"done": true, "tokens": 3}));
}

#[tokio::test]
async fn close_op_closes_with_the_code_and_reason_asked_for() {
    let backend = serving_backend().await;
    let mut client = backend.ws("/ws").await;
    client
        .send_json(json!({"op": "close", "code": 4001, "reason": "bye"}))
        .await;
    assert_eq!(client.close_frame().await, (4001, "bye".to_owned()));
}

#[tokio::test]
async fn headers_op_shows_the_handshake_as_the_backend_saw_it() {
    let backend = serving_backend().await;
    let mut client = backend
        .ws_with(
            "/ws/rooms/7?user=ada",
            &["other.v1", SUBPROTOCOL],
            &[("X-Request-Tag", "proxy-test")],
        )
        .await;
    assert_eq!(client.subprotocol.as_deref(), Some(SUBPROTOCOL));
    client.send_json(json!({"op": "headers"})).await;
    let seen = client.next_json().await;
    assert_eq!(seen["path"], "/ws/rooms/7");
    assert_eq!(seen["query"], "user=ada");
    assert_eq!(seen["subprotocol"], SUBPROTOCOL);
    assert_eq!(seen["headers"]["x-request-tag"], "proxy-test");
    assert_eq!(
        seen["headers"]["host"],
        backend.addr().to_string(),
        "{seen:#}"
    );
}

#[tokio::test]
async fn selects_no_subprotocol_when_it_speaks_none_offered() {
    let backend = serving_backend().await;
    // A raw handshake: tungstenite fails one that offered subprotocols and
    // got none back, but that answer is what is under test.
    let mut stream = tokio::net::TcpStream::connect(backend.addr())
        .await
        .unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: other.v1, other.v2\r\n\r\n",
        backend.addr()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    within("the 101 response", async {
        while !head.ends_with(b"\r\n\r\n") {
            head.push(stream.read_u8().await.unwrap());
        }
    })
    .await;
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(!head.contains("sec-websocket-protocol"), "{head}");
}

#[tokio::test]
async fn server_sent_events_arrive_as_they_are_produced() {
    let backend = serving_backend().await;
    let (n_events, interval) = (4, Duration::from_millis(250));
    let requested = Instant::now();
    let response = http_client()
        .get(backend.http_url(&sse_path(n_events, interval)))
        .send()
        .await
        .unwrap();
    assert_sse_unbuffered(response, requested, n_events, interval, "the backend").await;
}

#[tokio::test]
async fn plain_http_routes_answer() {
    let backend = serving_backend().await;
    let http = http_client();

    let hello = http
        .get(backend.http_url("/api/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(hello.status(), 200);
    assert_eq!(
        hello.json::<Value>().await.unwrap(),
        json!({"hello": "world"})
    );

    let headers = http
        .get(backend.http_url("/api/headers?a=1"))
        .header("X-Request-Tag", "plain")
        .send()
        .await
        .unwrap();
    let headers: Value = headers.json().await.unwrap();
    assert_eq!(headers["method"], "GET");
    assert_eq!(headers["path"], "/api/headers");
    assert_eq!(headers["query"], "a=1");
    assert_eq!(headers["headers"]["x-request-tag"], "plain");

    let echo = http
        .post(backend.http_url("/api/echo"))
        .header("Content-Type", "application/x-test")
        .body("body bytes")
        .send()
        .await
        .unwrap();
    assert_eq!(echo.headers()["content-type"], "application/x-test");
    assert_eq!(echo.text().await.unwrap(), "body bytes");

    let status = http
        .get(backend.http_url("/api/status/503"))
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 503);
}

#[tokio::test]
async fn stops_and_restarts_on_the_same_port() {
    let mut backend = serving_backend().await;
    let port = backend.port();
    let mut client = backend.ws("/ws").await;

    backend.stop().await;
    assert!(
        client.next_message().await.is_none(),
        "the connection outlived the backend"
    );
    let refused = http_client()
        .get(backend.http_url("/healthz"))
        .send()
        .await
        .expect_err("a stopped backend answered");
    assert!(refused.is_connect(), "{refused:?}");

    backend.restart().await;
    assert_eq!(backend.port(), port);
    backend.wait_healthy().await;
    let mut client = backend.ws("/ws").await;
    client.send(Message::text("again")).await;
    assert_eq!(client.next_message().await, Some(Message::text("again")));
}
