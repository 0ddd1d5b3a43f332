//! Request heads that HTTP forbids, written byte by byte: an upgrade that
//! is not HTTP/1.1, a `Host` missing, repeated or invalid (on every route
//! of both listeners), a WebSocket key, version, origin or token sent
//! twice, a body on an upgrade. Each is refused before any 101, with a
//! one-line reason, counted by reason and never as a client that left
//! during the upgrade. And the event stream's headers for proxies.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use warmgate_tests::{Gateway, Plan, http_client, within};

async fn ready_gateway() -> Gateway {
    let gateway = Gateway::builder().config(Plan::app_signal()).spawn().await;
    gateway.set_signal("app", true).await;
    gateway.until_ready().await;
    gateway
}

/// What came back for a raw request: the status and everything after the
/// head.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    body: String,
    whole: String,
}

/// Writes `request` as it is, then reads until the server closes the
/// connection, or until a 101's head (after which the server would keep
/// the connection open as a WebSocket).
async fn exchange(address: SocketAddr, request: &str) -> RawResponse {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    within("a response", async {
        loop {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
            let upgraded =
                received.starts_with(b"HTTP/1.1 101") || received.starts_with(b"HTTP/1.0 101");
            if upgraded && received.windows(4).any(|window| window == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    let whole = String::from_utf8_lossy(&received).into_owned();
    let status = whole
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {whole:?}"));
    let body = whole
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    RawResponse {
        status,
        body,
        whole,
    }
}

/// The value of the series `name` in a Prometheus text scrape.
fn series(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no series {name} in the scrape"))
}

const UPGRADE: &str = "Connection: Upgrade\r\nUpgrade: websocket\r\n";
const KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
const VERSION: &str = "Sec-WebSocket-Version: 13\r\n";

/// An upgrade head to `path` in `http_version`, with `host_lines` and then
/// `extra` header lines; it asks the server to close after answering.
fn upgrade_head(path: &str, http_version: &str, host_lines: &str, extra: &str) -> String {
    format!(
        "GET {path} {http_version}\r\n{host_lines}{UPGRADE}{KEY}{VERSION}{extra}Connection: close\r\n\r\n"
    )
}

#[tokio::test]
async fn upgrades_that_http_forbids_are_refused_before_any_101() {
    let gateway = ready_gateway().await;
    let host = "Host: gate.example.com\r\n";
    // (what, the head's version, its Host lines, more lines, a body, the
    // status, a piece of the one-line reason)
    let cases: &[(&str, &str, &str, &str, &str, u16, &str)] = &[
        (
            "an HTTP/1.0 upgrade",
            "HTTP/1.0",
            host,
            "",
            "",
            400,
            "must be an HTTP/1.1 request, not HTTP/1.0",
        ),
        (
            "an HTTP/1.0 upgrade without Host",
            "HTTP/1.0",
            "",
            "",
            "",
            400,
            "must be an HTTP/1.1 request",
        ),
        (
            "no Host",
            "HTTP/1.1",
            "",
            "",
            "",
            400,
            "must carry a Host header",
        ),
        (
            "two Hosts",
            "HTTP/1.1",
            "Host: a.example\r\nHost: b.example\r\n",
            "",
            "",
            400,
            "one Host header",
        ),
        (
            "the same Host twice",
            "HTTP/1.1",
            "Host: a.example\r\nHost: a.example\r\n",
            "",
            "",
            400,
            "one Host header",
        ),
        (
            "a Host that is no host",
            "HTTP/1.1",
            "Host: user@a.example\r\n",
            "",
            "",
            400,
            "host name or address",
        ),
        (
            "a second, different key",
            "HTTP/1.1",
            host,
            "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n",
            "",
            400,
            "Sec-WebSocket-Key must be",
        ),
        (
            "the same key twice",
            "HTTP/1.1",
            host,
            KEY,
            "",
            400,
            "Sec-WebSocket-Key must be",
        ),
        (
            "a second version, 8",
            "HTTP/1.1",
            host,
            "Sec-WebSocket-Version: 8\r\n",
            "",
            426,
            "Sec-WebSocket-Version must be 13, sent once",
        ),
        (
            "version 13 twice",
            "HTTP/1.1",
            host,
            VERSION,
            "",
            426,
            "Sec-WebSocket-Version must be 13, sent once",
        ),
        (
            "two origins",
            "HTTP/1.1",
            host,
            "Origin: https://a.example\r\nOrigin: https://b.example\r\n",
            "",
            400,
            "the Origin header must not be sent more than once",
        ),
        (
            "two Authorization headers",
            "HTTP/1.1",
            host,
            "Authorization: Bearer a\r\nAuthorization: Bearer b\r\n",
            "",
            400,
            "the Authorization header must not be sent more than once",
        ),
        (
            "a Content-Length body",
            "HTTP/1.1",
            host,
            "Content-Length: 5\r\n",
            "hello",
            400,
            "carries no body",
        ),
        (
            "a chunked body",
            "HTTP/1.1",
            host,
            "Transfer-Encoding: chunked\r\n",
            "5\r\nhello\r\n0\r\n\r\n",
            400,
            "carries no body",
        ),
    ];
    for path in ["/ws", "/echo"] {
        for (what, version, host_lines, extra, body, status, reason) in cases {
            let request = upgrade_head(path, version, host_lines, extra) + body;
            let response = exchange(gateway.public, &request).await;
            assert_eq!(
                response.status, *status,
                "{what} on {path}: {}",
                response.whole
            );
            assert!(
                response.body.contains(reason),
                "{what} on {path}: {}",
                response.whole
            );
            assert_eq!(
                response.body.trim_end().lines().count(),
                1,
                "{what} on {path}: {}",
                response.whole
            );
        }
    }
    // Two Content-Length values that differ: hyper refuses the head itself
    // (with no body), before any route.
    let request = upgrade_head(
        "/ws",
        "HTTP/1.1",
        host,
        "Content-Length: 0\r\nContent-Length: 5\r\n",
    ) + "hello";
    assert_eq!(exchange(gateway.public, &request).await.status, 400);
    // Repeated subprotocol headers are one list: the upgrade goes through.
    let request = upgrade_head(
        "/ws",
        "HTTP/1.1",
        host,
        "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: warmgate.v1\r\n",
    );
    let response = exchange(gateway.public, &request).await;
    assert_eq!(response.status, 101, "{}", response.whole);
    assert!(
        response
            .whole
            .to_ascii_lowercase()
            .contains("sec-websocket-protocol: warmgate.v1"),
        "{}",
        response.whole
    );

    // Not one refused client was counted as accepted and gone.
    let metrics = gateway.admin_get("/metrics").await.text;
    assert_eq!(
        series(
            &metrics,
            r#"warmgate_connections_total{outcome="left_during_upgrade"}"#
        ),
        0.0
    );
    for (reason, count) in [
        ("http_version", 4.0),
        ("host", 8.0),
        ("websocket_key", 4.0),
        ("websocket_version", 4.0),
        ("repeated_header", 4.0),
        ("request_body", 4.0),
    ] {
        assert_eq!(
            series(
                &metrics,
                &format!("warmgate_client_refusals_total{{reason=\"{reason}\"}}")
            ),
            count,
            "{reason}"
        );
    }
    let log = gateway.log();
    assert!(
        log.contains("WebSocket upgrade refused with 400: a WebSocket upgrade must be an HTTP/1.1 request, not HTTP/1.0"),
        "{log}"
    );
    assert!(!log.contains("left during the upgrade"), "{log}");
}

#[tokio::test]
async fn every_request_on_both_listeners_needs_exactly_one_valid_host() {
    let gateway = ready_gateway().await;
    let routes = [
        (gateway.public, "/readyz"),
        (gateway.public, "/livez"),
        (gateway.public, "/readiness"),
        (gateway.public, "/no-such-path"),
        (gateway.admin, "/metrics"),
        (gateway.admin, "/readiness"),
    ];
    let refused = [
        ("HTTP/1.1", "", "must carry a Host header"),
        (
            "HTTP/1.1",
            "Host: a.example\r\nHost: b.example\r\n",
            "one Host header",
        ),
        (
            "HTTP/1.1",
            "Host: a.example\r\nHost: a.example\r\n",
            "one Host header",
        ),
        (
            "HTTP/1.0",
            "Host: a.example\r\nHost: b.example\r\n",
            "one Host header",
        ),
        ("HTTP/1.1", "Host: a example\r\n", "host name or address"),
        (
            "HTTP/1.1",
            "Host: a.example:http\r\n",
            "host name or address",
        ),
    ];
    for (address, path) in routes {
        for (version, host_lines, reason) in refused {
            let request = format!("GET {path} {version}\r\n{host_lines}Connection: close\r\n\r\n");
            let response = exchange(address, &request).await;
            assert_eq!(response.status, 400, "{request:?}: {}", response.whole);
            assert!(
                response.body.contains(reason),
                "{request:?}: {}",
                response.whole
            );
            assert!(
                response
                    .whole
                    .to_ascii_lowercase()
                    .contains("connection: close"),
                "{}",
                response.whole
            );
        }
    }
    // One Host, or none in HTTP/1.0, is served.
    for (address, path) in routes {
        let expected = if path == "/no-such-path" { 404 } else { 200 };
        for request in [
            format!(
                "GET {path} HTTP/1.1\r\nHost: gate.example.com:8080\r\nConnection: close\r\n\r\n"
            ),
            format!("GET {path} HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\n\r\n"),
            format!("GET {path} HTTP/1.0\r\n\r\n"),
        ] {
            let response = exchange(address, &request).await;
            assert_eq!(response.status, expected, "{request:?}: {}", response.whole);
        }
    }
    let metrics = gateway.admin_get("/metrics").await.text;
    assert_eq!(
        series(&metrics, r#"warmgate_client_refusals_total{reason="host"}"#),
        36.0
    );
    assert!(
        gateway
            .log()
            .contains("request refused with 400: an HTTP/1.1 request must carry a Host header"),
        "{}",
        gateway.log()
    );
}

#[tokio::test]
async fn the_event_stream_tells_proxies_neither_to_buffer_nor_to_compress_it() {
    let gateway = ready_gateway().await;
    let response = within(
        "the event stream's head",
        http_client()
            .get(gateway.public_url("/readiness/events"))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let headers = response.headers();
    assert_eq!(headers["content-type"], "text/event-stream");
    // nginx and the ingresses built on it.
    assert_eq!(headers["x-accel-buffering"], "no");
    // Any proxy that would gzip, and so buffer, the body.
    let cache_control = headers["cache-control"].to_str().unwrap();
    assert!(cache_control.contains("no-transform"), "{cache_control}");
    assert!(cache_control.contains("no-cache"), "{cache_control}");
    // The admin listener serves the same stream, with the same head.
    let admin = within(
        "the admin event stream's head",
        http_client()
            .get(gateway.admin_url("/readiness/events"))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(admin.status().as_u16(), 200);
    assert_eq!(admin.headers()["x-accel-buffering"], "no");
}
