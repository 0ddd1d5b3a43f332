//! The `Host` rule, header line by header line, and the layer that
//! applies it to every route.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, Version, header};
use axum::routing::get;

use super::{HostRule, check_host};

fn hosts(values: &[&'static str]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for value in values {
        headers.append(header::HOST, HeaderValue::from_static(value));
    }
    headers
}

#[test]
fn one_valid_host_passes() {
    for host in [
        "example.com",
        "example.com:8080",
        "127.0.0.1:9090",
        "[::1]:8080",
        "x",
    ] {
        assert_eq!(
            check_host(Version::HTTP_11, &hosts(&[host])),
            Ok(()),
            "{host}"
        );
    }
}

#[test]
fn http_1_1_needs_a_host_and_http_1_0_may_leave_it_out() {
    assert!(check_host(Version::HTTP_11, &hosts(&[])).is_err());
    assert_eq!(check_host(Version::HTTP_10, &hosts(&[])), Ok(()));
    // HTTP/2 carries the host as `:authority`, not as a header.
    assert_eq!(check_host(Version::HTTP_2, &hosts(&[])), Ok(()));
}

#[test]
fn two_hosts_are_refused_in_every_version_even_when_equal() {
    for version in [Version::HTTP_10, Version::HTTP_11] {
        assert!(check_host(version, &hosts(&["a", "b"])).is_err());
        assert!(check_host(version, &hosts(&["a", "a"])).is_err());
    }
}

#[test]
fn a_host_that_is_not_host_and_port_is_refused() {
    for host in [
        "",
        "bad host",
        "user@example.com",
        "example.com:port",
        ":80",
        "a/b",
    ] {
        assert!(
            check_host(Version::HTTP_11, &hosts(&[host])).is_err(),
            "{host:?}"
        );
    }
    assert!(check_host(Version::HTTP_10, &hosts(&["bad host"])).is_err());
}

async fn status(
    (rule, router): &(HostRule, Router),
    host: &[&'static str],
    path: &str,
) -> (StatusCode, String) {
    let mut request = Request::get(path).body(Body::empty()).unwrap();
    for value in host {
        request
            .headers_mut()
            .append(header::HOST, HeaderValue::from_static(value));
    }
    let response = rule.route(router.clone(), request).await;
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn the_rule_refuses_before_any_route_and_unknown_paths_too() {
    let router = (
        HostRule::new(),
        Router::new().route("/readyz", get(|| async { "ok" })),
    );
    assert_eq!(status(&router, &["x"], "/readyz").await.0, StatusCode::OK);
    assert_eq!(
        status(&router, &["x"], "/nope").await.0,
        StatusCode::NOT_FOUND
    );
    for path in ["/readyz", "/nope"] {
        let (code, body) = status(&router, &[], path).await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert_eq!(body, "an HTTP/1.1 request must carry a Host header\n");
        let (code, body) = status(&router, &["a", "b"], path).await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert_eq!(body.lines().count(), 1, "{body}");
    }
}
