//! The per-address limits on paused time: handshakes per second, open
//! event streams, whose address counts, the 429 answers, the metrics, and
//! that idle addresses are forgotten.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse as _;
use axum::routing::any;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use serde_json::Value;
use tower::ServiceExt as _;

use super::{ClientLimitSettings, ClientLimits};

fn limits(rate: Option<u32>, streams: Option<usize>, trusted: &[&str]) -> ClientLimits {
    ClientLimits::new(ClientLimitSettings {
        trusted_proxies: trusted.iter().map(|net| net.parse().unwrap()).collect(),
        handshakes_per_second: rate.map(|rate| NonZeroU32::new(rate).unwrap()),
        max_event_streams: streams,
    })
}

/// A request from `peer`, with `X-Forwarded-For` entries if any.
fn request_from(peer: &str, forwarded_for: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().uri("/ws");
    if let Some(forwarded_for) = forwarded_for {
        builder = builder.header("x-forwarded-for", forwarded_for);
    }
    let mut request = builder.body(Body::empty()).unwrap();
    let peer = SocketAddr::new(peer.parse().unwrap(), 40000);
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

/// A `/ws` stand-in behind the handshake limit.
fn limited_route(limits: &ClientLimits) -> Router {
    limits.limit_handshakes(Router::new().route("/ws", any(|| async { "upgraded" })))
}

async fn status(router: &Router, request: Request<Body>) -> StatusCode {
    router.clone().oneshot(request).await.unwrap().status()
}

#[tokio::test(start_paused = true)]
async fn handshakes_past_the_rate_get_429_with_retry_after_until_the_bucket_refills() {
    let limits = limits(Some(2), None, &[]);
    let route = limited_route(&limits);
    for _ in 0..2 {
        assert_eq!(
            status(&route, request_from("198.51.100.4", None)).await,
            StatusCode::OK
        );
    }
    let refused = route
        .clone()
        .oneshot(request_from("198.51.100.4", None))
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(refused.headers()["cache-control"], "no-store");
    let body = axum::body::to_bytes(refused.into_body(), 1 << 16)
        .await
        .unwrap();
    assert!(!body.contains(&b'\n'), "one line");
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"], "handshake_rate");
    assert_eq!(
        body["message"],
        "too many WebSocket handshakes from this address: at most 2 a second; retry later"
    );

    // Another address has a bucket of its own.
    assert_eq!(
        status(&route, request_from("198.51.100.5", None)).await,
        StatusCode::OK
    );
    // Half a second refills one handshake (2 a second).
    tokio::time::advance(Duration::from_millis(500)).await;
    assert_eq!(
        status(&route, request_from("198.51.100.4", None)).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&route, request_from("198.51.100.4", None)).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_rate_handshakes_are_not_limited() {
    let limits = limits(None, None, &[]);
    let route = limited_route(&limits);
    for _ in 0..100 {
        assert_eq!(
            status(&route, request_from("198.51.100.4", None)).await,
            StatusCode::OK
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_rate_over_no_websocket_route_at_all_changes_nothing() {
    // `[routes] chat = false` and `echo = false` beside a rate.
    let limits = limits(Some(1), None, &[]);
    let router = limits.limit_handshakes(Router::new());
    assert_eq!(
        status(&router, request_from("198.51.100.4", None)).await,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(start_paused = true)]
async fn the_forwarded_address_counts_only_behind_a_trusted_proxy() {
    let limits = limits(Some(1), None, &["10.0.0.0/8"]);
    let route = limited_route(&limits);
    // Two clients behind the load balancer each get their own bucket.
    for client in ["203.0.113.9", "203.0.113.10"] {
        assert_eq!(
            status(&route, request_from("10.0.0.2", Some(client))).await,
            StatusCode::OK
        );
    }
    // A forged entry to the left of the real one changes nothing.
    assert_eq!(
        status(
            &route,
            request_from("10.0.0.2", Some("192.0.2.1, 203.0.113.9"))
        )
        .await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // An untrusted peer cannot pick its key with the header.
    assert_eq!(
        status(&route, request_from("198.51.100.4", Some("192.0.2.1"))).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&route, request_from("198.51.100.4", Some("192.0.2.2"))).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // IPv6 clients share a bucket per /64.
    assert_eq!(
        status(&route, request_from("2001:db8::1", None)).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&route, request_from("2001:db8::2", None)).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test(start_paused = true)]
async fn idle_addresses_are_forgotten_so_many_addresses_cannot_grow_memory() {
    let limits = limits(Some(5), None, &[]);
    let route = limited_route(&limits);
    for n in 0..1000u32 {
        let peer = std::net::Ipv4Addr::from(0xC633_6400 + n).to_string();
        assert_eq!(
            status(&route, request_from(&peer, None)).await,
            StatusCode::OK
        );
    }
    assert_eq!(limits.n_tracked_addresses(), 1000);
    // Past the sweep interval, every bucket is full again: the next
    // handshake sweeps them all out but its own.
    tokio::time::advance(super::SWEEP_INTERVAL).await;
    assert_eq!(
        status(&route, request_from("203.0.113.9", None)).await,
        StatusCode::OK
    );
    assert_eq!(limits.n_tracked_addresses(), 1);
}

/// A recorder local to the test's thread, so parallel tests never see
/// each other's series.
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

    fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.recorder, f)
    }

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

#[tokio::test(start_paused = true)]
async fn event_streams_past_the_maximum_get_429_and_are_counted_while_open() {
    let recorded = Recorded::new();
    let limits = recorded.run(|| limits(None, Some(2), &[]));
    assert_eq!(
        recorded.value("warmgate_client_refusals_total{reason=\"event_streams\"}"),
        0.0
    );
    assert_eq!(
        recorded.value("warmgate_client_refusals_total{reason=\"handshake_rate\"}"),
        0.0
    );
    let first = recorded
        .run(|| limits.open_event_stream(&request_from("198.51.100.4", None)))
        .unwrap();
    let _second = recorded
        .run(|| limits.open_event_stream(&request_from("198.51.100.4", None)))
        .unwrap();
    let _other = recorded
        .run(|| limits.open_event_stream(&request_from("198.51.100.5", None)))
        .unwrap();
    assert_eq!(recorded.value("warmgate_event_streams"), 3.0);

    let refused = recorded
        .run(|| limits.open_event_stream(&request_from("198.51.100.4", None)))
        .unwrap_err()
        .into_response();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "5");
    let body: Value = serde_json::from_slice(
        &axum::body::to_bytes(refused.into_body(), 1 << 16)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["error"], "event_streams");
    assert_eq!(
        recorded.value("warmgate_client_refusals_total{reason=\"event_streams\"}"),
        1.0
    );

    // A stream that ends frees its place.
    recorded.run(|| drop(first));
    assert_eq!(recorded.value("warmgate_event_streams"), 2.0);
    let _again = recorded
        .run(|| limits.open_event_stream(&request_from("198.51.100.4", None)))
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_address_leaves_the_stream_counts_with_its_last_stream() {
    let limits = limits(None, None, &[]);
    let streams: Vec<_> = (0..50)
        .map(|n| {
            limits
                .open_event_stream(&request_from(&format!("198.51.100.{n}"), None))
                .unwrap()
        })
        .collect();
    assert_eq!(limits.n_streaming_addresses(), 50);
    drop(streams);
    assert_eq!(limits.n_streaming_addresses(), 0);
}

#[test]
fn refused_handshakes_are_counted_by_reason() {
    let recorded = Recorded::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let _entered = runtime.enter();
    recorded.run(|| {
        let limits = limits(Some(1), None, &[]);
        assert!(
            limits
                .admit_handshake(&request_from("198.51.100.4", None))
                .is_ok()
        );
        for _ in 0..3 {
            let refused = limits
                .admit_handshake(&request_from("198.51.100.4", None))
                .unwrap_err()
                .into_response();
            assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        }
    });
    assert_eq!(
        recorded.value("warmgate_client_refusals_total{reason=\"handshake_rate\"}"),
        3.0
    );
}
