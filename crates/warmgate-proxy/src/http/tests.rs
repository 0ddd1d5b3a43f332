//! The proxy against a real backend on a loopback port, with readiness
//! driven by a real engine through a signal check. Requests go through the
//! router without a socket, except the event stream, which goes through
//! the public listener's server end to end. Tests wait on events (the
//! backend's channels, published snapshots), never on sleeps; the hold
//! timeout runs on paused time.

#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use axum::routing::any;
use futures_util::StreamExt as _;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tower::ServiceExt as _;
use warmgate_config::UpstreamConfig;
use warmgate_core::{CheckSpec, GateState, PhaseSpec, Plan};
use warmgate_devservers::idle_close::IdleCloseServer;
use warmgate_engine::{EngineBuilder, EngineSettings, ReadinessHandle};
use warmgate_http::{HttpActivity, ServeSettings};

use super::{
    HttpProxy, HttpProxySettings, UPSTREAM_HTTP_REQUESTS_TOTAL, UPSTREAM_HTTP_RESENDS_TOTAL,
    UPSTREAM_HTTP_WAIT_BUCKETS, UPSTREAM_HTTP_WAIT_SECONDS,
};

const SETTINGS: HttpProxySettings = HttpProxySettings {
    hold_timeout: Duration::from_secs(5),
    retry_after: Duration::from_millis(1500),
};

/// The client's address, as the public listener records it.
const CLIENT: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)),
    40000,
);

// === the backend ===

/// What the backend saw of one request.
#[derive(Debug)]
struct Seen {
    method: Method,
    uri: String,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone)]
struct BackendState {
    seen_tx: mpsc::UnboundedSender<Seen>,
    /// The body of the `/events` response, fed by the test.
    events_rx: Arc<Mutex<Option<mpsc::Receiver<Bytes>>>>,
    /// Each piece of an `/upload` body, as it arrives.
    upload_tx: mpsc::UnboundedSender<Bytes>,
}

/// A backend on a loopback port: `/events` streams what the test sends,
/// `/upload` reports each piece of its body as it arrives, and every other
/// path echoes the body and reports the request.
struct Backend {
    address: SocketAddr,
    seen_rx: mpsc::UnboundedReceiver<Seen>,
    events_tx: mpsc::Sender<Bytes>,
    upload_rx: mpsc::UnboundedReceiver<Bytes>,
}

impl Backend {
    async fn start() -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (seen_tx, seen_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::channel(1);
        let (upload_tx, upload_rx) = mpsc::unbounded_channel();
        let state = BackendState {
            seen_tx,
            events_rx: Arc::new(Mutex::new(Some(events_rx))),
            upload_tx,
        };
        let app = Router::new()
            .route("/events", any(events))
            .route("/upload", any(upload))
            .fallback(echo)
            .with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Backend {
            address,
            seen_rx,
            events_tx,
            upload_rx,
        }
    }

    /// The next request the backend saw.
    async fn seen(&mut self) -> Seen {
        self.seen_rx.recv().await.unwrap()
    }
}

async fn echo(State(state): State<BackendState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    state
        .seen_tx
        .send(Seen {
            method: parts.method,
            uri: parts.uri.to_string(),
            headers: parts.headers,
            body: body.clone(),
        })
        .unwrap();
    Response::builder()
        .header("x-backend", "yes")
        .header(header::CONNECTION, "x-hop")
        .header("x-hop", "for the proxy only")
        .header("keep-alive", "timeout=5")
        .body(Body::from(body))
        .unwrap()
}

async fn events(State(state): State<BackendState>) -> Response {
    let events_rx = state.events_rx.lock().unwrap().take().unwrap();
    let stream = futures_util::stream::unfold(events_rx, |mut events_rx| async move {
        let event = events_rx.recv().await?;
        Some((Ok::<_, Infallible>(event), events_rx))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

async fn upload(State(state): State<BackendState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let mut pieces = body.into_data_stream();
    let mut whole = Vec::new();
    while let Some(piece) = pieces.next().await {
        let Ok(piece) = piece else {
            return Response::builder()
                .status(StatusCode::BAD_REQUEST)
                .body(Body::empty())
                .unwrap();
        };
        whole.extend_from_slice(&piece);
        let _ = state.upload_tx.send(piece);
    }
    let _ = state.seen_tx.send(Seen {
        method: parts.method,
        uri: parts.uri.to_string(),
        headers: parts.headers,
        body: Bytes::from(whole.clone()),
    });
    Response::new(Body::from(whole))
}

// === the gate ===

const SIGNAL: &str = "backend";

/// An engine whose only required check is the signal [`SIGNAL`]: the gate
/// is `starting` until the test sets it.
fn engine() -> ReadinessHandle {
    let plan = Plan::new(
        vec![PhaseSpec {
            name: "services".into(),
            checks: vec![CheckSpec::new(SIGNAL, "signal")],
        }],
        Duration::from_secs(60),
    )
    .unwrap();
    EngineBuilder::new(plan, EngineSettings::default())
        .signal(SIGNAL)
        .unwrap()
        .spawn()
        .unwrap()
}

async fn turn_ready(handle: &ReadinessHandle) {
    handle
        .set_signal_applied(SIGNAL, true, None, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(handle.current().state, GateState::Ready);
}

async fn drain(handle: &ReadinessHandle) {
    handle.drain().unwrap();
    let mut snapshot_rx = handle.subscribe();
    snapshot_rx
        .wait_for(|snapshot| snapshot.state == GateState::Draining)
        .await
        .unwrap();
}

fn upstream(address: SocketAddr) -> UpstreamConfig {
    UpstreamConfig {
        url: url::Url::parse(&format!("ws://{address}")).unwrap(),
        http: true,
        subprotocols: Vec::new(),
        max_concurrent_dials: UpstreamConfig::DEFAULT_MAX_CONCURRENT_DIALS,
        dial_timeout: UpstreamConfig::DEFAULT_DIAL_TIMEOUT,
        identity_header: UpstreamConfig::DEFAULT_IDENTITY_HEADER.to_owned(),
    }
}

fn proxy(address: SocketAddr, handle: &ReadinessHandle) -> Router {
    HttpProxy::new(&upstream(address), handle.clone(), SETTINGS)
        .unwrap()
        .router()
}

/// A request as the public listener hands it over: with a `Host` and the
/// peer's address.
fn request(method: Method, uri: &str, body: Body) -> http::Request<Body> {
    let mut request = http::Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "gate.example")
        .body(body)
        .unwrap();
    request.extensions_mut().insert(ConnectInfo(CLIENT));
    request
}

async fn text(response: Response) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|value| value.to_str().unwrap())
}

// === metrics ===

/// A Prometheus recorder for the test's thread (tokio's test runtime runs
/// everything on it), so parallel tests never see each other's series.
fn recorder() -> PrometheusRecorder {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(UPSTREAM_HTTP_WAIT_SECONDS.to_owned()),
            &UPSTREAM_HTTP_WAIT_BUCKETS,
        )
        .unwrap()
        .build_recorder()
}

/// The value of one series, as rendered.
fn series(recorder: &PrometheusRecorder, series: &str) -> f64 {
    let text = recorder.handle().render();
    let prefix = format!("{series} ");
    let line = text
        .lines()
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"));
    line[prefix.len()..].parse().unwrap()
}

fn requests(recorder: &PrometheusRecorder, outcome: &str) -> f64 {
    series(
        recorder,
        &format!("{UPSTREAM_HTTP_REQUESTS_TOTAL}{{outcome=\"{outcome}\"}}"),
    )
}

fn waits(recorder: &PrometheusRecorder) -> (f64, f64) {
    (
        series(recorder, &format!("{UPSTREAM_HTTP_WAIT_SECONDS}_count")),
        series(recorder, &format!("{UPSTREAM_HTTP_WAIT_SECONDS}_sum")),
    )
}

// === the tests ===

#[tokio::test]
async fn a_ready_gate_forwards_method_path_query_body_and_headers_at_once() {
    let recorder = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let mut backend = Backend::start().await;
    let handle = engine();
    turn_ready(&handle).await;
    let router = proxy(backend.address, &handle);

    let mut sent = request(
        Method::POST,
        "/v1/chat?model=small&n=2",
        Body::from("hello"),
    );
    sent.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    sent.headers_mut()
        .insert("x-request-id", HeaderValue::from_static("r-1"));
    let response = router.oneshot(sent).await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(header(headers, "x-backend"), Some("yes"));
    // The backend's hop-by-hop headers stop at the proxy.
    for name in ["connection", "x-hop", "keep-alive", "transfer-encoding"] {
        assert_eq!(header(headers, name), None, "{name} was relayed");
    }
    assert_eq!(text(response).await, "hello");

    let seen = backend.seen().await;
    assert_eq!(seen.method, Method::POST);
    assert_eq!(seen.uri, "/v1/chat?model=small&n=2");
    assert_eq!(seen.body, "hello");
    let host = backend.address.to_string();
    assert_eq!(header(&seen.headers, "host"), Some(host.as_str()));
    assert_eq!(header(&seen.headers, "content-type"), Some("text/plain"));
    assert_eq!(header(&seen.headers, "content-length"), Some("5"));
    assert_eq!(header(&seen.headers, "x-request-id"), Some("r-1"));
    assert_eq!(header(&seen.headers, "x-forwarded-for"), Some("192.0.2.1"));
    assert_eq!(header(&seen.headers, "x-forwarded-proto"), Some("http"));
    assert_eq!(
        header(&seen.headers, "x-forwarded-host"),
        Some("gate.example")
    );

    assert_eq!(requests(&recorder, "proxied"), 1.0);
    assert_eq!(waits(&recorder), (1.0, 0.0));
}

#[tokio::test]
async fn hop_by_hop_headers_and_a_spoofed_identity_never_reach_the_backend() {
    let mut backend = Backend::start().await;
    let handle = engine();
    turn_ready(&handle).await;
    let router = proxy(backend.address, &handle);

    let mut sent = request(Method::GET, "/whoami", Body::empty());
    for (name, value) in [
        ("connection", "x-custom, keep-alive"),
        ("x-custom", "for the first hop only"),
        ("keep-alive", "timeout=5"),
        ("te", "trailers"),
        ("upgrade", "websocket"),
        ("proxy-authorization", "Basic dXNlcjpwYXNz"),
        ("x-warmgate-sub", "admin"),
        ("x-forwarded-for", "203.0.113.7"),
        ("authorization", "Bearer for-the-backend"),
    ] {
        sent.headers_mut()
            .append(name, HeaderValue::from_static(value));
    }
    let response = router.oneshot(sent).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let seen = backend.seen().await;
    for name in [
        "connection",
        "x-custom",
        "keep-alive",
        "te",
        "upgrade",
        "proxy-authorization",
        "x-warmgate-sub",
    ] {
        assert_eq!(
            header(&seen.headers, name),
            None,
            "{name} reached the backend"
        );
    }
    assert_eq!(
        header(&seen.headers, "x-forwarded-for"),
        Some("203.0.113.7, 192.0.2.1")
    );
    // End-to-end headers, credentials for the backend included, pass.
    assert_eq!(
        header(&seen.headers, "authorization"),
        Some("Bearer for-the-backend")
    );
}

#[tokio::test]
async fn a_held_request_is_forwarded_when_the_gate_turns_ready() {
    let recorder = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let mut backend = Backend::start().await;
    let handle = engine();
    let router = proxy(backend.address, &handle);

    let response = router.oneshot(request(Method::GET, "/held", Body::empty()));
    let mut response = std::pin::pin!(response);
    // The first poll reads the snapshot, finds the gate starting, and
    // parks on the next change.
    assert!(futures_util::poll!(response.as_mut()).is_pending());
    assert!(backend.seen_rx.try_recv().is_err());

    turn_ready(&handle).await;
    let response = response.await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(backend.seen().await.uri, "/held");

    assert_eq!(requests(&recorder, "proxied"), 1.0);
    let (n_waits, waited) = waits(&recorder);
    assert_eq!(n_waits, 1.0);
    assert!(waited > 0.0, "the wait was recorded as {waited}");
}

#[tokio::test(start_paused = true)]
async fn a_gate_not_ready_within_hold_timeout_answers_503_with_retry_after() {
    let recorder = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let handle = engine();
    // Never contacted: the gate never turns ready.
    let router = proxy(SocketAddr::from(([127, 0, 0, 1], 9)), &handle);

    let started = Instant::now();
    let response = router
        .oneshot(request(Method::GET, "/slow", Body::empty()))
        .await
        .unwrap();
    assert_eq!(started.elapsed(), SETTINGS.hold_timeout);

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let headers = response.headers();
    // 1.5 s, rounded up.
    assert_eq!(header(headers, "retry-after"), Some("2"));
    assert_eq!(header(headers, "connection"), None);
    assert_eq!(
        header(headers, "content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        text(response).await,
        "not ready: the gate is starting and did not turn ready within 5s; retry after 2s\n"
    );

    assert_eq!(requests(&recorder, "not_ready"), 1.0);
    assert_eq!(requests(&recorder, "proxied"), 0.0);
    assert_eq!(waits(&recorder), (1.0, 5.0));
}

#[tokio::test]
async fn a_draining_gate_answers_503_and_closes_the_connection() {
    let recorder = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let mut backend = Backend::start().await;

    // A request held while the gate drains is refused at the flip.
    let handle = engine();
    let router = proxy(backend.address, &handle);
    let held = router
        .clone()
        .oneshot(request(Method::GET, "/held", Body::empty()));
    let mut held = std::pin::pin!(held);
    assert!(futures_util::poll!(held.as_mut()).is_pending());
    drain(&handle).await;
    let held = held.await.unwrap();

    // A request arriving while draining is refused at once.
    let arriving = router
        .oneshot(request(Method::POST, "/late", Body::from("x")))
        .await
        .unwrap();

    for response in [held, arriving] {
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let headers = response.headers();
        assert_eq!(header(headers, "retry-after"), Some("2"));
        assert_eq!(header(headers, "connection"), Some("close"));
        assert_eq!(
            text(response).await,
            "draining: this server is shutting down; retry after 2s\n"
        );
    }
    assert!(backend.seen_rx.try_recv().is_err());
    assert_eq!(requests(&recorder, "draining"), 2.0);
}

#[tokio::test]
async fn a_backend_that_is_down_gets_the_client_a_502_that_does_not_name_it() {
    let recorder = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = listener.local_addr().unwrap();
    drop(listener);
    let handle = engine();
    turn_ready(&handle).await;
    let router = proxy(closed, &handle);

    // The second failure is counted too; only its log line is sampled out.
    for _ in 0..2 {
        let response = router
            .clone()
            .oneshot(request(Method::GET, "/anything", Body::empty()))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        let body = text(response).await;
        assert_eq!(
            body,
            "bad gateway: the backend cannot be reached; retry later\n"
        );
        assert!(!body.contains(&closed.to_string()), "{body}");
    }
    assert_eq!(requests(&recorder, "upstream_error"), 2.0);
    assert_eq!(requests(&recorder, "proxied"), 0.0);
}

/// A ready proxy in front of `backend`. With [`IdleCloseServer::start`], the
/// race a backend's idle timeout sets up: a kept-alive connection closed
/// just as the proxy sends a request on it, lost on every reuse. The handle
/// keeps the engine.
async fn behind(backend: IdleCloseServer) -> (IdleCloseServer, ReadinessHandle, Router) {
    let handle = engine();
    turn_ready(&handle).await;
    let router = proxy(backend.address(), &handle);
    (backend, handle, router)
}

fn answering_hello() -> IdleCloseServer {
    IdleCloseServer::start("text/plain", "hello".to_owned()).unwrap()
}

async fn send(router: &Router, method: Method, body: Body) -> Response {
    router
        .clone()
        .oneshot(request(method, "/status", body))
        .await
        .unwrap()
}

/// Sends `method` with `body` and asserts the 502 of a backend that took
/// the request and ended the connection.
async fn assert_not_answered(router: &Router, method: Method, body: &'static str) {
    let response = send(router, method.clone(), Body::from(body)).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY, "{method}");
    assert_eq!(
        text(response).await,
        "bad gateway: the backend did not answer; retry later\n"
    );
}

#[tokio::test]
async fn a_get_lost_on_a_kept_alive_connection_is_resent_once_on_a_fresh_one() {
    let recorder = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let (backend, _handle, router) = behind(answering_hello()).await;

    for method in [Method::GET, Method::HEAD, Method::GET, Method::GET] {
        let response = send(&router, method.clone(), Body::empty()).await;
        assert_eq!(response.status(), StatusCode::OK, "{method}");
        let expected = if method == Method::HEAD { "" } else { "hello" };
        assert_eq!(text(response).await, expected, "{method}");
    }
    // The first GET went out on a new connection, which the pool kept.
    // The HEAD was lost on it and sent again on a connection of its own,
    // which is not kept; the second GET found the pool empty and dialled
    // (kept); the third was lost on that one and sent again.
    assert_eq!(
        (backend.connections(), backend.answered(), backend.cut_off()),
        (4, 4, 2),
        "(connections, answered, cut off)"
    );
    assert_eq!(series(&recorder, UPSTREAM_HTTP_RESENDS_TOTAL), 2.0);
    assert_eq!(requests(&recorder, "proxied"), 4.0);
    assert_eq!(requests(&recorder, "upstream_error"), 0.0);
}

/// The neighbours that must not be resent: a method that is not
/// idempotent, and a request with a body (it is streamed, so the first
/// attempt consumed it). Each may have reached the backend: 502.
#[tokio::test]
async fn a_post_or_a_request_with_a_body_lost_on_a_kept_alive_connection_is_answered_502() {
    let recorder = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let (backend, _handle, router) = behind(answering_hello()).await;

    // Each is sent on the connection the GET before it left in the pool
    // (a 502 closes the connection it failed on).
    for (method, body, n) in [(Method::POST, "", 1), (Method::PUT, "{}", 2)] {
        let warm = send(&router, Method::GET, Body::empty()).await;
        assert_eq!(text(warm).await, "hello");
        assert_not_answered(&router, method.clone(), body).await;
        assert_eq!(
            (backend.connections(), backend.cut_off()),
            (n, n),
            "{method}: (connections, cut off)"
        );
    }
    assert_eq!(series(&recorder, UPSTREAM_HTTP_RESENDS_TOTAL), 0.0);
    assert_eq!(requests(&recorder, "upstream_error"), 2.0);
}

/// The resend's own failure: a backend that ends every connection without
/// answering gets a GET twice (the second time on a fresh connection) and
/// a POST once; the client gets 502 for each.
#[tokio::test]
async fn a_backend_that_never_answers_gets_a_get_twice_and_a_post_once_then_502() {
    let recorder = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let (backend, _handle, router) = behind(IdleCloseServer::hanging_up().unwrap()).await;

    for (method, connections) in [(Method::GET, 2), (Method::POST, 3)] {
        assert_not_answered(&router, method.clone(), "").await;
        assert_eq!(
            (backend.connections(), backend.cut_off()),
            (connections, connections),
            "{method}: (connections, cut off)"
        );
    }
    assert_eq!(series(&recorder, UPSTREAM_HTTP_RESENDS_TOTAL), 1.0);
    assert_eq!(requests(&recorder, "upstream_error"), 2.0);
}

#[tokio::test]
async fn the_request_body_is_streamed_to_the_backend_piece_by_piece() {
    let mut backend = Backend::start().await;
    let handle = engine();
    turn_ready(&handle).await;
    let router = proxy(backend.address, &handle);

    let (body_tx, body_rx) = mpsc::channel::<Result<Bytes, Infallible>>(1);
    let body = Body::from_stream(futures_util::stream::unfold(
        body_rx,
        |mut body_rx| async move {
            let piece = body_rx.recv().await?;
            Some((piece, body_rx))
        },
    ));
    let response = tokio::spawn(router.oneshot(request(Method::PUT, "/upload", body)));

    body_tx.send(Ok(Bytes::from("first "))).await.unwrap();
    // The backend has the first piece before the client sends the second.
    assert_eq!(backend.upload_rx.recv().await.unwrap(), "first ");
    body_tx.send(Ok(Bytes::from("second"))).await.unwrap();
    assert_eq!(backend.upload_rx.recv().await.unwrap(), "second");
    drop(body_tx);

    let response = response.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "first second");
    // A body of unknown length goes on chunked, never with a length.
    let seen = backend.seen().await;
    assert_eq!(seen.method, Method::PUT);
    assert_eq!(header(&seen.headers, "transfer-encoding"), Some("chunked"));
    assert_eq!(header(&seen.headers, "content-length"), None);
}

#[tokio::test]
async fn a_request_body_that_breaks_off_is_the_clients_error_not_the_backends() {
    let recorder = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let backend = Backend::start().await;
    let handle = engine();
    turn_ready(&handle).await;
    let router = proxy(backend.address, &handle);

    let pieces: [Result<Bytes, std::io::Error>; 2] = [
        Ok(Bytes::from("part")),
        Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
    ];
    let body = Body::from_stream(futures_util::stream::iter(pieces));
    let response = router
        .oneshot(request(Method::POST, "/upload", body))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(requests(&recorder, "client_error"), 1.0);
    assert_eq!(requests(&recorder, "upstream_error"), 0.0);
}

#[tokio::test]
async fn server_sent_events_arrive_event_by_event_through_the_listener() {
    let backend = Backend::start().await;
    let handle = engine();
    turn_ready(&handle).await;
    let router = proxy(backend.address, &handle);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front = listener.local_addr().unwrap();
    tokio::spawn(warmgate_http::serve(
        listener,
        router,
        ServeSettings {
            header_read_timeout: Duration::from_secs(10),
            http2: false,
        },
        std::future::pending(),
        HttpActivity::default(),
    ));

    backend
        .events_tx
        .send(Bytes::from("data: one\n\n"))
        .await
        .unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut response = client
        .get(format!("http://{front}/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header(response.headers(), "content-type"),
        Some("text/event-stream")
    );

    // The first event arrives whole while the backend holds the second.
    let mut received = Vec::new();
    while !received.ends_with(b"\n\n") {
        received.extend_from_slice(&response.chunk().await.unwrap().unwrap());
    }
    assert_eq!(received, b"data: one\n\n");

    backend
        .events_tx
        .send(Bytes::from("data: two\n\n"))
        .await
        .unwrap();
    received.clear();
    while !received.ends_with(b"\n\n") {
        received.extend_from_slice(&response.chunk().await.unwrap().unwrap());
    }
    assert_eq!(received, b"data: two\n\n");

    drop(backend.events_tx);
    assert_eq!(response.chunk().await.unwrap(), None);
}

#[tokio::test]
async fn a_websocket_upgrade_on_a_path_no_route_serves_is_answered_404_here() {
    let recorder = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    // Nothing listens on the backend's address: a request that reached it
    // would be a 502, not a 404.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = listener.local_addr().unwrap();
    drop(listener);
    let handle = engine();
    turn_ready(&handle).await;
    let router = proxy(closed, &handle);
    let mut upgrade = request(Method::GET, "/ws/rooms/7", Body::empty());
    upgrade.headers_mut().insert(
        http::header::UPGRADE,
        http::HeaderValue::from_static("websocket"),
    );
    upgrade.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("Upgrade"),
    );
    let response = router.oneshot(upgrade).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        text(response).await,
        "not found: no WebSocket route at this path\n"
    );
    assert_eq!(requests(&recorder, "client_error"), 1.0);
    assert_eq!(requests(&recorder, "upstream_error"), 0.0);
}
