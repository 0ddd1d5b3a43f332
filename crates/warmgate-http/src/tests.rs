//! Endpoint tests: requests go through the routers without a socket, and
//! wait on published snapshots, never on sleeps.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use futures_util::StreamExt;
use serde_json::Value;
use tower::ServiceExt;
use warmgate_core::{CheckSpec, GateState, PhaseSpec, Plan};
use warmgate_engine::{EngineBuilder, EngineSettings, ProbeSchedule, ReadinessHandle};
use warmgate_probes::TcpProbe;

use crate::{PublicSettings, RenderMetrics, admin_router, public_router, require_admin_token};

fn no_metrics() -> RenderMetrics {
    std::sync::Arc::new(String::new)
}

/// dependencies: cache (tcp to a closed port, optional); services: agent (signal).
pub(crate) async fn handle() -> ReadinessHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = listener.local_addr().unwrap();
    drop(listener);
    let plan = Plan::new(
        vec![
            PhaseSpec {
                name: "dependencies".into(),
                checks: vec![CheckSpec::new("cache", "tcp").optional()],
            },
            PhaseSpec {
                name: "services".into(),
                checks: vec![CheckSpec::new("agent", "signal")],
            },
        ],
        Duration::from_secs(60),
    )
    .unwrap();
    let schedule = ProbeSchedule::new(Duration::from_secs(1), Duration::from_secs(2));
    EngineBuilder::new(plan, EngineSettings::default())
        .probe(
            "cache",
            schedule,
            Box::new(TcpProbe::new(closed.to_string())),
        )
        .unwrap()
        .signal("agent")
        .unwrap()
        .spawn()
        .unwrap()
}

async fn call(router: &Router, method: Method, uri: &str, body: &str) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (status, json)
}

async fn wait_for_state(handle: &ReadinessHandle, state: GateState) {
    let mut snapshot_rx = handle.subscribe();
    snapshot_rx.wait_for(|s| s.state == state).await.unwrap();
}

#[tokio::test]
async fn probes_follow_the_state() {
    let handle = handle().await;
    let public = public_router(handle.clone(), &PublicSettings::default());
    let admin = admin_router(handle.clone(), no_metrics());

    let (status, body) = call(&public, Method::GET, "/readyz", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["state"], "starting");
    assert_eq!(body["seq"], handle.current().seq);
    assert_eq!(body["pending"], serde_json::json!(["agent"]));
    let (status, _) = call(&public, Method::GET, "/startupz", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, body) = call(&public, Method::GET, "/livez", "").await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, serde_json::json!({"status": "alive"}))
    );

    let (status, _) = call(&admin, Method::POST, "/signals/agent", r#"{"ready":true}"#).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // The optional cache is down, so the gate is degraded, which admits traffic.
    wait_for_state(&handle, GateState::Degraded).await;
    let (status, body) = call(&public, Method::GET, "/readyz", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["degraded"], serde_json::json!(["cache"]));
    let (status, _) = call(&public, Method::GET, "/startupz", "").await;
    assert_eq!(status, StatusCode::OK);

    let (status, _) = call(&admin, Method::POST, "/drain", "").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    wait_for_state(&handle, GateState::Draining).await;
    let (status, body) = call(&public, Method::GET, "/readyz", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["state"], "draining");
}

#[tokio::test]
async fn the_public_snapshot_hides_diagnostics_that_the_admin_one_shows() {
    let handle = handle().await;
    let mut snapshot_rx = handle.subscribe();
    snapshot_rx
        .wait_for(|s| s.degraded == ["cache"])
        .await
        .unwrap();
    let (status, public) = call(
        &public_router(handle.clone(), &PublicSettings::default()),
        Method::GET,
        "/readiness",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(public["state"], "starting");
    assert_eq!(public["phase"], "services");
    assert_eq!(public["checks"][0]["status"], "failing");
    assert!(public["checks"][0].get("last_error").is_none());
    assert!(public["checks"][0].get("last_latency_ms").is_none());

    let (status, verbose) = call(
        &admin_router(handle, no_metrics()),
        Method::GET,
        "/readiness",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let cache = &verbose["checks"][0];
    assert!(
        cache["last_error"]
            .as_str()
            .unwrap()
            .starts_with("connection refused to 127.0.0.1:"),
        "{cache}"
    );
    assert!(cache["last_latency_ms"].is_number());
    assert!(cache["attempts"].as_u64().unwrap() >= 1);
    assert!(cache["consecutive_failures"].as_u64().unwrap() >= 1);
    assert_eq!(cache["consecutive_successes"], 0);
}

#[tokio::test]
async fn signals_refuse_unknown_names_and_bad_bodies_with_a_message() {
    let handle = handle().await;
    let admin = admin_router(handle, no_metrics());
    let (status, body) = call(&admin, Method::POST, "/signals/nope", r#"{"ready":true}"#).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "no check named `nope` in the plan");
    let (status, body) = call(&admin, Method::POST, "/signals/cache", r#"{"ready":true}"#).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["message"].as_str().unwrap().contains("not `signal`"));
    for bad in [
        "",
        "{",
        r#"{"ready":"yes"}"#,
        r#"{"ready":true,"extra":1}"#,
        r#"{}"#,
    ] {
        let (status, body) = call(&admin, Method::POST, "/signals/agent", bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["error"], "invalid_body");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("expected a JSON body")
        );
    }
}

#[tokio::test]
async fn the_event_stream_sends_the_current_snapshot_then_each_change_then_ends_at_drain() {
    let handle = handle().await;
    let request = Request::builder()
        .uri("/readiness/events")
        .body(Body::empty())
        .unwrap();
    let response = public_router(handle.clone(), &PublicSettings::default())
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    // Neither nginx's buffering nor a compressing proxy holds events back.
    assert_eq!(response.headers()["x-accel-buffering"], "no");
    assert_eq!(
        response.headers()["cache-control"],
        "no-cache, no-transform"
    );
    let mut frames = response.into_body().into_data_stream();
    let mut next_event = async || {
        let frame = frames.next().await.unwrap().unwrap();
        String::from_utf8(frame.to_vec()).unwrap()
    };

    let first = next_event().await;
    let seq = handle.current().seq;
    assert!(first.starts_with("event: readiness\n"), "{first}");
    assert!(first.contains(&format!("\nid: {seq}\n")), "{first}");
    let data = first
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap();
    let snapshot: Value = serde_json::from_str(data).unwrap();
    assert_eq!(snapshot["seq"], seq);

    handle.set_signal("agent", true, None).unwrap();
    let mut last_seq = seq;
    loop {
        let event = next_event().await;
        let data = event
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap();
        let snapshot: Value = serde_json::from_str(data).unwrap();
        let seq = snapshot["seq"].as_u64().unwrap();
        assert!(seq > last_seq, "ids increase: {seq} after {last_seq}");
        last_seq = seq;
        if snapshot["state"] == "degraded" || snapshot["state"] == "ready" {
            break;
        }
    }
    handle.drain().unwrap();
    let event = next_event().await;
    assert!(event.contains("\"state\":\"draining\""), "{event}");
    assert!(
        frames.next().await.is_none(),
        "the stream ends after draining"
    );
}

#[tokio::test]
async fn metrics_render_on_each_scrape_as_prometheus_text() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let handle = handle().await;
    let n_renders = Arc::new(AtomicUsize::new(0));
    let render_metrics: RenderMetrics = {
        let n_renders = Arc::clone(&n_renders);
        Arc::new(move || {
            let n = n_renders.fetch_add(1, Ordering::SeqCst) + 1;
            format!("# TYPE renders counter\nrenders {n}\n")
        })
    };
    let admin = admin_router(handle, render_metrics);
    for n in 1..=2 {
        let request = Request::builder()
            .uri("/metrics")
            .body(Body::empty())
            .unwrap();
        let response = admin.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        assert_eq!(body, format!("# TYPE renders counter\nrenders {n}\n"));
    }
    assert_eq!(n_renders.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_public_readiness_detail_can_be_turned_off_and_the_probes_stay() {
    let handle = handle().await;
    let settings = PublicSettings {
        readiness_detail: false,
        ..PublicSettings::default()
    };
    let public = public_router(handle.clone(), &settings);
    for path in ["/readiness", "/readiness/events"] {
        let (status, _) = call(&public, Method::GET, path, "").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    // Operators still have the stream, on the admin listener.
    let request = Request::builder()
        .uri("/readiness/events")
        .body(Body::empty())
        .unwrap();
    let response = admin_router(handle.clone(), no_metrics())
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let (status, _) = call(&public, Method::GET, "/readyz", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _) = call(&public, Method::GET, "/startupz", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _) = call(&public, Method::GET, "/livez", "").await;
    assert_eq!(status, StatusCode::OK);

    let public = public_router(handle, &PublicSettings::default());
    let (status, _) = call(&public, Method::GET, "/readiness", "").await;
    assert_eq!(status, StatusCode::OK);
}

const CONTROL_TOKEN: &str = "0123456789abcdef-control";
const READ_TOKEN: &str = "fedcba9876543210-read";

async fn call_with_token(
    router: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, json)
}

#[tokio::test]
async fn a_read_token_reads_metrics_and_readiness_but_cannot_set_signals_or_drain() {
    let handle = handle().await;
    let admin = require_admin_token(
        admin_router(handle.clone(), no_metrics()),
        CONTROL_TOKEN,
        Some(READ_TOKEN),
    );
    for path in ["/metrics", "/readiness"] {
        let (status, _) = call_with_token(&admin, Method::GET, path, Some(READ_TOKEN), "").await;
        assert_eq!(status, StatusCode::OK, "GET {path}");
    }
    for path in ["/signals/agent", "/drain"] {
        let (status, body) = call_with_token(
            &admin,
            Method::POST,
            path,
            Some(READ_TOKEN),
            r#"{"ready":true}"#,
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "POST {path}");
        assert_eq!(body["error"], "forbidden");
        assert_eq!(
            body["message"],
            "this token may only read (GET: metrics, readiness); signals and drain need the admin control token"
        );
    }
    assert_ne!(handle.current().state, GateState::Draining);

    // No token, or another one, is 401 on every route.
    for token in [None, Some("fedcba9876543210-reae"), Some("")] {
        let (status, body) = call_with_token(&admin, Method::GET, "/metrics", token, "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(body["error"], "unauthorized");
    }

    // The control token is accepted everywhere.
    let (status, _) =
        call_with_token(&admin, Method::GET, "/readiness", Some(CONTROL_TOKEN), "").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call_with_token(
        &admin,
        Method::POST,
        "/signals/agent",
        Some(CONTROL_TOKEN),
        r#"{"ready":true}"#,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) =
        call_with_token(&admin, Method::POST, "/drain", Some(CONTROL_TOKEN), "").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    wait_for_state(&handle, GateState::Draining).await;
}

#[tokio::test]
async fn without_a_read_token_only_the_control_token_opens_the_admin_routes() {
    let handle = handle().await;
    let admin = require_admin_token(admin_router(handle, no_metrics()), CONTROL_TOKEN, None);
    let (status, _) = call_with_token(&admin, Method::GET, "/metrics", Some(READ_TOKEN), "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) =
        call_with_token(&admin, Method::GET, "/metrics", Some(CONTROL_TOKEN), "").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn event_streams_past_the_per_address_maximum_get_429() {
    let handle = handle().await;
    let settings = PublicSettings {
        readiness_detail: true,
        client_limits: crate::ClientLimits::new(crate::ClientLimitSettings {
            max_event_streams: Some(1),
            ..crate::ClientLimitSettings::default()
        }),
    };
    let public = public_router(handle, &settings);
    let stream_request = || {
        let mut request = Request::builder()
            .uri("/readiness/events")
            .body(Body::empty())
            .unwrap();
        let peer: std::net::SocketAddr = "198.51.100.4:40000".parse().unwrap();
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        request
    };
    let open = public.clone().oneshot(stream_request()).await.unwrap();
    assert_eq!(open.status(), StatusCode::OK);
    let refused = public.clone().oneshot(stream_request()).await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "5");
    // The client leaves: hyper drops the body, and the place is free.
    drop(open);
    let again = public.clone().oneshot(stream_request()).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_signal_set_with_a_ttl_shows_its_lease_and_a_bad_ttl_is_refused() {
    let handle = handle().await;
    let admin = admin_router(handle.clone(), no_metrics());
    let (status, _) = call(
        &admin,
        Method::POST,
        "/signals/agent",
        r#"{"ready":true,"ttl":"30s"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Applied before the answer: the verbose snapshot already shows the
    // lease.
    let (_, verbose) = call(&admin, Method::GET, "/readiness", "").await;
    let agent = &verbose["checks"][1];
    assert_eq!(agent["status"], "passing");
    assert_eq!(agent["lease"]["ttl_ms"], 30_000);
    let expires_at_ms = agent["lease"]["expires_at_ms"].as_u64().unwrap();
    assert!(
        (30_000..=30_000 + verbose["elapsed_ms"].as_u64().unwrap()).contains(&expires_at_ms),
        "{verbose}"
    );

    // Without a ttl the lease is cleared.
    let (status, _) = call(&admin, Method::POST, "/signals/agent", r#"{"ready":true}"#).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, verbose) = call(&admin, Method::GET, "/readiness", "").await;
    assert!(verbose["checks"][1].get("lease").is_none(), "{verbose}");

    for bad in ["30", "5x", "", "-1s", "50ms", "25h", "1 fortnight"] {
        let body = serde_json::json!({"ready": true, "ttl": bad}).to_string();
        let (status, body) = call(&admin, Method::POST, "/signals/agent", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["error"], "invalid_body");
        assert_eq!(
            body["message"],
            format!(
                "ttl: invalid duration {bad:?}, expected a duration from 100ms to 24h such as \"30s\""
            )
        );
    }
    // A lease is for a ready signal.
    let (status, body) = call(
        &admin,
        Method::POST,
        "/signals/agent",
        r#"{"ready":false,"ttl":"30s"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("ttl: a lease keeps a ready signal ready"),
        "{body}"
    );
    let (status, body) = call(
        &admin,
        Method::POST,
        "/signals/agent",
        r#"{"ready":true,"ttl":30}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("expected a JSON body")
    );

    let (status, body) = call(
        &admin,
        Method::POST,
        "/signals/nope",
        r#"{"ready":true,"ttl":"30s"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "no check named `nope` in the plan");
}
