//! The kube-apiserver conventions on both listeners: requests go through
//! the routers without a socket and wait on published snapshots.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;
use warmgate_core::GateState;
use warmgate_engine::ReadinessHandle;

use super::ProbeQuery;
use crate::{PublicSettings, RenderMetrics, admin_router, public_router};

/// The crate tests' gate (cache: optional, a closed port; agent: a
/// signal), once the cache has failed its first attempt.
async fn handle() -> ReadinessHandle {
    let handle = crate::tests::handle().await;
    handle
        .subscribe()
        .wait_for(|s| s.degraded == ["cache"])
        .await
        .unwrap();
    handle
}

fn public(handle: &ReadinessHandle) -> Router {
    public_router(handle.clone(), &PublicSettings::default())
}

fn admin(handle: &ReadinessHandle) -> Router {
    let no_metrics: RenderMetrics = std::sync::Arc::new(String::new);
    admin_router(handle.clone(), no_metrics)
}

async fn get(router: &Router, uri: &str) -> (StatusCode, String) {
    let request = Request::builder().uri(uri).body(Body::empty()).unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

async fn set_agent(handle: &ReadinessHandle, ready: bool) {
    handle
        .set_signal_applied("agent", ready, None, Duration::from_secs(5))
        .await
        .unwrap();
}

#[test]
fn the_query_reads_verbose_and_every_exclude() {
    assert_eq!(ProbeQuery::parse(None), ProbeQuery::default());
    let query = ProbeQuery::parse(Some("verbose&exclude=a&exclude=b%2Cc&x=1&exclude="));
    assert!(query.verbose);
    assert_eq!(query.exclude, ["a", "b", "c"]);
    assert!(ProbeQuery::parse(Some("verbose=1")).verbose);
    assert!(!ProbeQuery::parse(Some("verbosely")).verbose);
}

#[tokio::test]
async fn verbose_readyz_lists_each_check_and_withholds_reasons_on_the_public_listener() {
    let handle = handle().await;
    let (status, body) = get(&public(&handle), "/readyz?verbose").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        "[-]cache failed: reason withheld (optional)\n\
         [-]agent failed: no result yet\n\
         readyz check failed\n"
    );

    set_agent(&handle, true).await;
    let request = Request::builder()
        .uri("/readyz?verbose")
        .body(Body::empty())
        .unwrap();
    let response = public(&handle).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/plain; charset=utf-8"
    );
    let (_, body) = get(&public(&handle), "/readyz?verbose").await;
    assert_eq!(
        body,
        "[-]cache failed: reason withheld (optional)\n[+]agent ok\nreadyz check passed\n"
    );
}

#[tokio::test]
async fn the_admin_listener_gives_each_failures_reason() {
    let handle = handle().await;
    let (status, body) = get(&admin(&handle), "/readyz?verbose").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let first = body.lines().next().unwrap();
    assert!(
        first.starts_with("[-]cache failed: connection refused") && first.ends_with("(optional)"),
        "{body}"
    );
    assert!(body.ends_with("[-]agent failed: no result yet\nreadyz check failed\n"));
    let (status, body) = get(&admin(&handle), "/readyz/cache").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.starts_with("failed: connection refused"), "{body}");
    // Without `verbose` or `exclude`, the JSON answer as before.
    let (status, body) = get(&admin(&handle), "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["pending"], serde_json::json!(["agent"]));
}

#[tokio::test]
async fn exclude_gives_the_verdict_without_the_named_checks_and_reports_unknown_names() {
    let handle = handle().await;
    let (status, body) = get(&public(&handle), "/readyz?exclude=agent").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "readyz check passed\n")
    );
    let (status, body) = get(&public(&handle), "/readyz?verbose&exclude=agent").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        "[-]cache failed: reason withheld (optional)\n\
         [+]agent excluded: ok\n\
         readyz check passed\n"
    );
    let (status, body) = get(&public(&handle), "/readyz?exclude=nope&exclude=cache").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        "warn: some health checks cannot be excluded: no matches for \"nope\"\n\
         readyz check failed\n"
    );
}

#[tokio::test]
async fn one_check_answers_ok_or_failed_and_an_unknown_name_is_404() {
    let handle = handle().await;
    let public = public(&handle);
    let (status, body) = get(&public, "/readyz/agent").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "failed: no result yet\n")
    );
    let (status, body) = get(&public, "/readyz/cache").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "failed: reason withheld\n")
    );
    set_agent(&handle, true).await;
    let (status, body) = get(&public, "/readyz/agent").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok\n"));
    let (status, body) = get(&public, "/readyz/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        "no check named \"nope\"; GET /readyz?verbose lists the checks\n"
    );
}

#[tokio::test]
async fn without_readiness_detail_the_public_probes_name_no_check() {
    let handle = handle().await;
    let settings = PublicSettings {
        readiness_detail: false,
        ..PublicSettings::default()
    };
    let public = public_router(handle.clone(), &settings);
    let (status, body) = get(&public, "/readyz?verbose&exclude=nope").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "readyz check failed\n")
    );
    let (status, body) = get(&public, "/readyz?verbose&exclude=agent").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "readyz check passed\n")
    );
    let (status, body) = get(&public, "/readyz/agent").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("readiness_detail = false"), "{body}");
    // The admin listener still says everything.
    let (status, _) = get(&admin(&handle), "/readyz/agent").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn verbose_livez_reports_the_engine_check() {
    let handle = handle().await;
    for router in [public(&handle), admin(&handle)] {
        let (status, body) = get(&router, "/livez?verbose").await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "[+]engine ok\nlivez check passed\n")
        );
        let (status, body) = get(&router, "/livez/engine").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok\n"));
        let (status, _) = get(&router, "/livez/database").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, body) = get(&router, "/livez?verbose&exclude=engine").await;
        assert_eq!(
            (status, body.as_str()),
            (
                StatusCode::OK,
                "[+]engine excluded: ok\nlivez check passed\n"
            )
        );
    }
    let (status, body) = get(&public(&handle), "/livez").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, r#"{"status":"alive"}"#)
    );
}

#[tokio::test]
async fn a_draining_gate_fails_readyz_with_a_shutdown_line_whatever_is_excluded() {
    let handle = handle().await;
    set_agent(&handle, true).await;
    handle.drain().unwrap();
    handle
        .subscribe()
        .wait_for(|s| s.state == GateState::Draining)
        .await
        .unwrap();
    let (status, body) = get(
        &public(&handle),
        "/readyz?verbose&exclude=cache&exclude=agent",
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        "[+]cache excluded: ok\n\
         [+]agent excluded: ok\n\
         [-]shutdown failed: draining\n\
         readyz check failed\n"
    );
}
