//! Unit tests of this crate's library.

#![allow(clippy::unwrap_used)]

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

use super::*;

async fn get(path: &str, if_none_match: Option<&str>) -> Response {
    let mut request = Request::get(path);
    if let Some(tag) = if_none_match {
        request = request.header(header::IF_NONE_MATCH, tag);
    }
    router::<()>()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn the_page_and_its_files_are_served_with_their_types() {
    for (path, content_type, needle) in [
        ("/", "text/html; charset=utf-8", "<html"),
        (
            "/app.js",
            "text/javascript; charset=utf-8",
            "warmgate-client.js",
        ),
        (
            "/warmgate-client.js",
            "text/javascript; charset=utf-8",
            "export",
        ),
        ("/style.css", "text/css; charset=utf-8", "{"),
    ] {
        let response = get(path, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()[header::CONTENT_TYPE], content_type);
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-cache");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(
            String::from_utf8_lossy(&body).contains(needle),
            "{path} lacks {needle:?}"
        );
    }
    assert_eq!(
        get("/missing.js", None).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_matching_etag_gets_not_modified() {
    let first = get("/app.js", None).await;
    let tag = first.headers()[header::ETAG].to_str().unwrap().to_owned();
    assert_eq!(
        get("/app.js", Some(&tag)).await.status(),
        StatusCode::NOT_MODIFIED
    );
    assert_eq!(
        get("/app.js", Some("\"other\"")).await.status(),
        StatusCode::OK
    );
}
