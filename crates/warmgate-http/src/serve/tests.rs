//! `serve` over real loopback sockets: HTTP/2 with prior knowledge beside
//! HTTP/1.1 when asked, HTTP/1.1 only otherwise, and the head deadline for
//! a connection too quiet to tell its protocol and for an idle kept-alive
//! one. Each test waits on what the
//! server sends or on the connection's end, never on a sleep.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{HttpActivity, ServeSettings, serve};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Serves a router with `GET /ping` on a loopback port until the test ends.
async fn start(http2: bool, header_read_timeout: Duration) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = Router::new().route("/ping", get(|| async { "pong" }));
    tokio::spawn(serve(
        listener,
        router,
        ServeSettings {
            header_read_timeout,
            http2,
        },
        std::future::pending(),
        HttpActivity::default(),
    ));
    address
}

async fn http1_ping(address: std::net::SocketAddr) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /ping HTTP/1.1\r\nHost: warmgate\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

#[tokio::test]
async fn with_http2_a_preface_gets_http2_settings_and_http1_is_served_as_before() {
    let address = start(true, Duration::from_secs(10)).await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(PREFACE).await.unwrap();
    // An empty SETTINGS frame of our own, as a client must send.
    stream
        .write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
        .await
        .unwrap();
    let mut frame_head = [0u8; 9];
    stream.read_exact(&mut frame_head).await.unwrap();
    assert_eq!(frame_head[3], 4, "the server's first frame is SETTINGS");

    let answer = http1_ping(address).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("pong"), "{answer}");
}

#[tokio::test]
async fn without_http2_a_preface_is_not_http2() {
    let address = start(false, Duration::from_secs(10)).await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(PREFACE).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    // HTTP/1.1's parser refuses it (or closes): never a SETTINGS frame.
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 "),
        "{answer:?}"
    );
}

#[tokio::test]
async fn with_http2_a_connection_too_quiet_to_tell_its_protocol_is_dropped_at_the_head_deadline() {
    let address = start(true, Duration::from_millis(200)).await;
    // Two bytes that could still begin HTTP/2's preface, then nothing.
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(b"PR").await.unwrap();
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
    assert!(ended.is_ok(), "the quiet connection was not dropped");
    // A silent one too.
    let mut silent = TcpStream::connect(address).await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), silent.read_to_end(&mut rest)).await;
    assert!(ended.is_ok(), "the silent connection was not dropped");
    // And the listener still serves.
    assert!(http1_ping(address).await.ends_with("pong"));
}

/// The head deadline also runs while a kept-alive HTTP/1.1 connection waits
/// for its next request, so an idle connection is closed after it, as
/// `handshake_timeout`'s documentation says.
#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_at_the_head_deadline() {
    for http2 in [false, true] {
        let address = start(http2, Duration::from_millis(200)).await;
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"GET /ping HTTP/1.1\r\nHost: warmgate\r\n\r\n")
            .await
            .unwrap();
        // The whole answer, then the end of the connection: nothing else
        // is sent, and the test's bound is fifty times the deadline.
        let mut answer = Vec::new();
        let ended =
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
        assert!(
            ended.is_ok(),
            "http2 = {http2}: the idle connection was kept"
        );
        let answer = String::from_utf8(answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("pong"), "{answer}");
        assert!(
            !answer.to_lowercase().contains("connection: close"),
            "http2 = {http2}: closed as asked, not for idling: {answer}"
        );
    }
}
