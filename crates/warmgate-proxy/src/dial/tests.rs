//! Dials against real loopback backends started by each test: a hyper
//! server upgrading with fastwebsockets that records what it was sent and
//! echoes frames, raw TCP servers that answer a fixed text or nothing, and
//! a closed port. Plus the bound on concurrent dials, the metrics and the
//! parsing of the backend's address.

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;

use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload, WebSocketError};
use futures_util::FutureExt as _;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use warmgate_config::UpstreamConfig;

use super::{Backend, DialError, Dialer, UpstreamSocket};

// === Helpers ===

fn upstream(url: &str) -> UpstreamConfig {
    UpstreamConfig {
        url: url::Url::parse(url).unwrap(),
        http: false,
        subprotocols: Vec::new(),
        max_concurrent_dials: UpstreamConfig::DEFAULT_MAX_CONCURRENT_DIALS,
        dial_timeout: UpstreamConfig::DEFAULT_DIAL_TIMEOUT,
        identity_header: UpstreamConfig::DEFAULT_IDENTITY_HEADER.to_owned(),
    }
}

fn dialer(addr: SocketAddr) -> Dialer {
    Dialer::new(&upstream(&format!("ws://{addr}"))).unwrap()
}

/// Takes a slot and dials, as the caller does.
async fn dial(
    dialer: &Dialer,
    path_and_query: &str,
    headers: HeaderMap,
    subprotocol: Option<&str>,
) -> Result<UpstreamSocket, DialError> {
    let slot = dialer.slot().await;
    dialer
        .dial(slot, path_and_query, headers, subprotocol)
        .await
}

/// What the good backend saw of one upgrade request.
#[derive(Debug)]
struct Seen {
    path_and_query: String,
    headers: HeaderMap,
}

/// How the good backend answers a subprotocol offer.
#[derive(Debug, Clone, Copy)]
enum Selects {
    /// The one the client offered, if any.
    TheOffer,
    /// This one, whatever was offered.
    This(&'static str),
    /// None, whatever was offered.
    Nothing,
}

/// A WebSocket backend on a free loopback port: it reports each upgrade
/// request it gets, answers 101 selecting per `selects`, and echoes every
/// text and binary frame.
async fn good_backend(selects: Selects) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen_tx, seen_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let seen_tx = seen_tx.clone();
            let service = service_fn(move |request| answer(request, selects, seen_tx.clone()));
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades(),
            );
        }
    });
    (addr, seen_rx)
}

async fn answer(
    mut request: Request<Incoming>,
    selects: Selects,
    seen_tx: mpsc::UnboundedSender<Seen>,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let _ = seen_tx.send(Seen {
        path_and_query: request.uri().to_string(),
        headers: request.headers().clone(),
    });
    let selected = match selects {
        Selects::TheOffer => request
            .headers()
            .get(header::SEC_WEBSOCKET_PROTOCOL)
            .cloned(),
        Selects::This(protocol) => Some(HeaderValue::from_static(protocol)),
        Selects::Nothing => None,
    };
    let (mut response, upgrade) = fastwebsockets::upgrade::upgrade(&mut request)?;
    if let Some(selected) = selected {
        response
            .headers_mut()
            .insert(header::SEC_WEBSOCKET_PROTOCOL, selected);
    }
    tokio::spawn(async move {
        let Ok(mut ws) = upgrade.await else {
            return;
        };
        while let Ok(frame) = ws.read_frame().await {
            match frame.opcode {
                OpCode::Text | OpCode::Binary => {
                    let echo = Frame::new(true, frame.opcode, None, frame.payload);
                    if ws.write_frame(echo).await.is_err() {
                        return;
                    }
                }
                OpCode::Close => return,
                _ => {}
            }
        }
    });
    Ok(response)
}

/// A TCP server on a free loopback port for one connection: it reads the
/// request head, reports it, writes `answer` (or nothing at all), and
/// keeps the connection open until the client closes it.
async fn raw_backend(answer: Option<&'static str>) -> (SocketAddr, oneshot::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (head_tx, head_rx) = oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut chunk = [0u8; 1024];
        while !head.ends_with(b"\r\n\r\n") {
            let n = stream.read(&mut chunk).await.unwrap();
            if n == 0 {
                return;
            }
            head.extend_from_slice(&chunk[..n]);
        }
        let _ = head_tx.send(String::from_utf8(head).unwrap());
        if let Some(answer) = answer {
            stream.write_all(answer.as_bytes()).await.unwrap();
        }
        while stream.read(&mut chunk).await.is_ok_and(|n| n > 0) {}
    });
    (addr, head_rx)
}

/// A loopback port with nothing listening on it.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

fn header(value: &'static str) -> HeaderValue {
    HeaderValue::from_static(value)
}

// === A good backend ===

#[tokio::test]
async fn a_dial_sends_the_given_headers_path_and_query_and_a_text_frame_round_trips() {
    let (addr, mut seen_rx) = good_backend(Selects::TheOffer).await;
    let dialer = dialer(addr);
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, header("Bearer t0ken"));
    headers.insert(header::COOKIE, header("session=abc"));
    headers.insert(header::ORIGIN, header("https://chat.example"));
    headers.insert("x-warmgate-sub", header("alice"));
    headers.append("x-forwarded-for", header("203.0.113.7"));
    headers.append("x-forwarded-for", header("198.51.100.1"));
    // The handshake's own headers are the dial's, whatever the map says.
    headers.insert(header::HOST, header("client-facing.example"));
    headers.insert(header::SEC_WEBSOCKET_PROTOCOL, header("bearer.t0ken"));
    headers.insert(
        header::SEC_WEBSOCKET_EXTENSIONS,
        header("permessage-deflate"),
    );

    let mut upstream = dial(&dialer, "/ws/chat?room=a&lang=en", headers, None)
        .await
        .unwrap();

    let seen = seen_rx.recv().await.unwrap();
    assert_eq!(seen.path_and_query, "/ws/chat?room=a&lang=en");
    assert_eq!(seen.headers[header::AUTHORIZATION], "Bearer t0ken");
    assert_eq!(seen.headers[header::COOKIE], "session=abc");
    assert_eq!(seen.headers[header::ORIGIN], "https://chat.example");
    assert_eq!(seen.headers["x-warmgate-sub"], "alice");
    let forwarded: Vec<_> = seen.headers.get_all("x-forwarded-for").iter().collect();
    assert_eq!(forwarded, ["203.0.113.7", "198.51.100.1"]);
    assert_eq!(seen.headers[header::HOST], addr.to_string().as_str());
    assert_eq!(seen.headers[header::UPGRADE], "websocket");
    assert_eq!(seen.headers[header::CONNECTION], "Upgrade");
    assert_eq!(seen.headers[header::SEC_WEBSOCKET_VERSION], "13");
    assert_eq!(seen.headers[header::SEC_WEBSOCKET_KEY].len(), 24);
    assert!(!seen.headers.contains_key(header::SEC_WEBSOCKET_PROTOCOL));
    assert!(!seen.headers.contains_key(header::SEC_WEBSOCKET_EXTENSIONS));
    assert_eq!(upstream.subprotocol, None);
    // The slot went back when the dial ended.
    assert_eq!(dialer.dials_in_flight(), 0);

    upstream
        .socket
        .write_frame(Frame::text(Payload::Borrowed(b"hello, backend")))
        .await
        .unwrap();
    let echo = upstream.socket.read_frame().await.unwrap();
    assert_eq!(echo.opcode, OpCode::Text);
    assert_eq!(&echo.payload[..], b"hello, backend");
}

#[tokio::test]
async fn an_empty_path_asks_for_the_root() {
    let (addr, mut seen_rx) = good_backend(Selects::TheOffer).await;
    dial(&dialer(addr), "", HeaderMap::new(), None)
        .await
        .unwrap();
    assert_eq!(seen_rx.recv().await.unwrap().path_and_query, "/");
}

#[tokio::test]
async fn a_request_target_that_is_not_a_path_is_refused_before_connecting() {
    let (addr, mut seen_rx) = good_backend(Selects::TheOffer).await;
    let dialer = dialer(addr);
    for target in ["ws://elsewhere.example/ws", "ws", "/ws?a b"] {
        let error = dial(&dialer, target, HeaderMap::new(), None)
            .await
            .unwrap_err();
        assert_eq!(error.reason(), "handshake", "{target}: {error}");
    }
    assert!(seen_rx.try_recv().is_err());
}

// === Subprotocols (RFC 6455 §4.1) ===

#[tokio::test]
async fn an_offered_subprotocol_that_the_backend_selects_is_returned() {
    let (addr, mut seen_rx) = good_backend(Selects::TheOffer).await;
    let upstream = dial(&dialer(addr), "/ws", HeaderMap::new(), Some("chat.v2"))
        .await
        .unwrap();
    assert_eq!(upstream.subprotocol.as_deref(), Some("chat.v2"));
    let seen = seen_rx.recv().await.unwrap();
    assert_eq!(seen.headers[header::SEC_WEBSOCKET_PROTOCOL], "chat.v2");
}

#[tokio::test]
async fn a_backend_that_selects_another_subprotocol_fails_the_dial() {
    let (addr, _seen_rx) = good_backend(Selects::This("chat.v1")).await;
    let error = dial(&dialer(addr), "/ws", HeaderMap::new(), Some("chat.v2"))
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "subprotocol", "{error}");
    assert!(
        matches!(&error, DialError::Subprotocol { offered: Some(offered), .. } if offered == "chat.v2"),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_backend_that_selects_a_subprotocol_when_none_was_offered_fails_the_dial() {
    let (addr, _seen_rx) = good_backend(Selects::This("chat.v1")).await;
    let error = dial(&dialer(addr), "/ws", HeaderMap::new(), None)
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "subprotocol", "{error}");
}

#[tokio::test]
async fn a_backend_that_selects_no_subprotocol_when_one_was_offered_fails_the_dial() {
    let (addr, _seen_rx) = good_backend(Selects::Nothing).await;
    let error = dial(&dialer(addr), "/ws", HeaderMap::new(), Some("chat.v2"))
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "subprotocol", "{error}");
}

// === Backends that fail ===

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    let addr = closed_port().await;
    let error = dial(&dialer(addr), "/ws", HeaderMap::new(), None)
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "connect", "{error}");
    assert!(
        error.to_string().contains(&format!("ws://{addr}")),
        "{error}"
    );
}

#[tokio::test]
async fn a_404_is_a_status_error_that_keeps_the_status_and_no_secret() {
    let (addr, head_rx) = raw_backend(Some(
        "HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\n\r\nnot found",
    ))
    .await;
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, header("Bearer s3cret-token"));
    let error = dial(
        &dialer(addr),
        "/ws?access_token=s3cret-query",
        headers,
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(error.reason(), "status", "{error}");
    assert_eq!(error.status(), Some(StatusCode::NOT_FOUND));
    let shown = format!("{error} {error:?}");
    assert!(shown.contains(&format!("ws://{addr}")), "{shown}");
    assert!(shown.contains("404"), "{shown}");
    assert!(!shown.contains("s3cret"), "{shown}");
    // The backend did get the request, query and token included.
    let head = head_rx.await.unwrap();
    assert!(
        head.starts_with("GET /ws?access_token=s3cret-query HTTP/1.1\r\n"),
        "{head}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_backend_that_never_answers_is_a_timeout_at_dial_timeout() {
    // With the clock paused, time jumps ahead only when the runtime has
    // nothing else to do; loopback connects and writes are ready at once,
    // so the backend has read the whole request before the clock moves.
    let (addr, mut head_rx) = raw_backend(None).await;
    let dialer = dialer(addr);
    let started = Instant::now();
    let error = dial(&dialer, "/ws", HeaderMap::new(), None)
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "timeout", "{error}");
    assert_eq!(started.elapsed(), UpstreamConfig::DEFAULT_DIAL_TIMEOUT);
    assert!(
        head_rx.try_recv().is_ok(),
        "the request was sent before the timeout"
    );
    assert_eq!(dialer.dials_in_flight(), 0);
}

#[tokio::test]
async fn a_101_with_the_wrong_accept_value_is_a_handshake_error() {
    let (addr, _head_rx) = raw_backend(Some(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: bm90IHRoZSByaWdodCBvbmU=\r\n\r\n",
    ))
    .await;
    let error = dial(&dialer(addr), "/ws", HeaderMap::new(), None)
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "handshake", "{error}");
    assert!(
        error.to_string().contains("Sec-WebSocket-Accept"),
        "{error}"
    );
}

#[tokio::test]
async fn an_answer_that_is_not_http_is_a_handshake_error() {
    let (addr, _head_rx) = raw_backend(Some("SSH-2.0-OpenSSH_9.6\r\n\r\n")).await;
    let error = dial(&dialer(addr), "/ws", HeaderMap::new(), None)
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "handshake", "{error}");
}

#[tokio::test]
async fn wss_to_a_server_that_does_not_speak_tls_is_a_tls_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _): (TcpStream, _) = listener.accept().await.unwrap();
        let _ = stream
            .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            .await;
        let mut chunk = [0u8; 1024];
        while stream.read(&mut chunk).await.is_ok_and(|n| n > 0) {}
    });
    let dialer = Dialer::new(&upstream(&format!("wss://{addr}"))).unwrap();
    let error = dial(&dialer, "/ws", HeaderMap::new(), None)
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "tls", "{error}");
    assert!(
        error.to_string().contains(&format!("wss://{addr}")),
        "{error}"
    );
}

// === The bound on concurrent dials ===

/// Polls `future` once: `Some` with its output if it completed.
fn poll_once<F: Future + Unpin>(future: &mut F) -> Option<F::Output> {
    future.now_or_never()
}

#[tokio::test]
async fn a_slot_past_max_concurrent_dials_waits_until_one_is_dropped() {
    let mut config = upstream("ws://127.0.0.1:9");
    config.max_concurrent_dials = 2;
    let dialer = Dialer::new(&config).unwrap();
    let first = dialer.slot().await;
    let _second = dialer.clone().slot().await;
    assert_eq!(dialer.dials_in_flight(), 2);

    let mut third = pin!(dialer.slot());
    assert!(poll_once(&mut third).is_none());
    // A waiter that gives up takes no slot and keeps no place.
    let mut given_up = Box::pin(dialer.slot());
    assert!(poll_once(&mut given_up).is_none());
    drop(given_up);
    assert!(poll_once(&mut third).is_none());
    assert_eq!(dialer.dials_in_flight(), 2);

    drop(first);
    let third = poll_once(&mut third).expect("the dropped slot goes to the waiter");
    assert_eq!(dialer.dials_in_flight(), 2);
    drop(third);
    assert_eq!(dialer.dials_in_flight(), 1);
}

#[tokio::test]
async fn a_failed_dial_gives_its_slot_back() {
    let mut config = upstream(&format!("ws://{}", closed_port().await));
    config.max_concurrent_dials = 1;
    let dialer = Dialer::new(&config).unwrap();
    for _ in 0..3 {
        let slot = poll_once(&mut pin!(dialer.slot())).expect("a free slot");
        let error = dialer
            .dial(slot, "/ws", HeaderMap::new(), None)
            .await
            .unwrap_err();
        assert_eq!(error.reason(), "connect");
        assert_eq!(dialer.dials_in_flight(), 0);
    }
}

// === Metrics ===

/// A Prometheus recorder local to the test. The dialer takes its metric
/// handles when it is made, so only [`Dialer::new`] runs under it.
struct Recorded {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl Recorded {
    fn new() -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        Self { recorder, handle }
    }

    fn dialer(&self, config: &UpstreamConfig) -> Dialer {
        metrics::with_local_recorder(&self.recorder, || Dialer::new(config).unwrap())
    }

    /// The value of one series, written as it is rendered.
    fn value(&self, series: &str) -> f64 {
        let text = self.handle.render();
        let prefix = format!("{series} ");
        let line = text
            .lines()
            .find(|line| line.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no series {series} in:\n{text}"));
        line[prefix.len()..].parse().unwrap()
    }
}

#[tokio::test]
async fn every_series_exists_from_the_start_and_a_failure_counts_its_reason() {
    let recorded = Recorded::new();
    let dialer = recorded.dialer(&upstream(&format!("ws://{}", closed_port().await)));
    for reason in super::DIAL_FAILURE_REASONS {
        let series = format!("warmgate_upstream_dial_failures_total{{reason=\"{reason}\"}}");
        assert_eq!(recorded.value(&series), 0.0);
    }
    assert_eq!(recorded.value("warmgate_upstream_dials_in_flight"), 0.0);

    let slot = dialer.slot().await;
    assert_eq!(recorded.value("warmgate_upstream_dials_in_flight"), 1.0);
    dialer
        .dial(slot, "/ws", HeaderMap::new(), None)
        .await
        .unwrap_err();
    assert_eq!(recorded.value("warmgate_upstream_dials_in_flight"), 0.0);
    assert_eq!(
        recorded.value("warmgate_upstream_dial_failures_total{reason=\"connect\"}"),
        1.0
    );
    assert_eq!(
        recorded.value("warmgate_upstream_dial_duration_seconds_count{outcome=\"connect\"}"),
        1.0
    );
}

#[tokio::test]
async fn a_dial_that_succeeds_is_timed_as_ok() {
    let (addr, _seen_rx) = good_backend(Selects::TheOffer).await;
    let recorded = Recorded::new();
    let dialer = recorded.dialer(&upstream(&format!("ws://{addr}")));
    dial(&dialer, "/ws", HeaderMap::new(), None).await.unwrap();
    assert_eq!(
        recorded.value("warmgate_upstream_dial_duration_seconds_count{outcome=\"ok\"}"),
        1.0
    );
    assert_eq!(
        recorded.value("warmgate_upstream_dial_failures_total{reason=\"connect\"}"),
        0.0
    );
}

// === The backend's address ===

#[test]
fn the_host_header_names_the_port_only_when_it_is_not_the_default() {
    let cases = [
        (
            "ws://127.0.0.1:9000",
            "127.0.0.1:9000",
            "127.0.0.1",
            9000,
            "ws://127.0.0.1:9000",
        ),
        (
            "ws://backend.internal",
            "backend.internal",
            "backend.internal",
            80,
            "ws://backend.internal:80",
        ),
        (
            "wss://chat.example.com",
            "chat.example.com",
            "chat.example.com",
            443,
            "wss://chat.example.com:443",
        ),
        (
            "wss://chat.example.com:8443/",
            "chat.example.com:8443",
            "chat.example.com",
            8443,
            "wss://chat.example.com:8443",
        ),
        (
            "ws://[::1]:9000",
            "[::1]:9000",
            "::1",
            9000,
            "ws://[::1]:9000",
        ),
    ];
    for (url, authority, host, port, shown) in cases {
        let backend = Backend::from_url(&url::Url::parse(url).unwrap()).unwrap();
        assert_eq!(backend.authority, authority, "{url}");
        assert_eq!(backend.host, host, "{url}");
        assert_eq!(backend.port, port, "{url}");
        assert_eq!(backend.shown, shown, "{url}");
    }
}

#[test]
fn a_url_of_another_scheme_is_refused() {
    let error = Dialer::new(&upstream("http://127.0.0.1:9000")).unwrap_err();
    assert_eq!(error.reason(), "address", "{error}");
}

#[test]
fn the_accept_value_is_the_one_of_rfc_6455() {
    // The example of RFC 6455 §1.3.
    assert_eq!(
        super::accept_value("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}
