//! The handshake checks, one refusal per way to get it wrong.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use super::{check_handshake, is_websocket_key};

fn good_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(
        header::CONNECTION,
        HeaderValue::from_static("keep-alive, Upgrade"),
    );
    headers.insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static("13"),
    );
    headers.insert(
        header::SEC_WEBSOCKET_KEY,
        HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
    );
    headers
}

fn status(method: Method, headers: &HeaderMap, origins: &[String]) -> Option<StatusCode> {
    check_handshake(&method, headers, origins)
        .err()
        .map(|refused| refused.status)
}

#[test]
fn a_good_handshake_passes() {
    assert_eq!(status(Method::GET, &good_headers(), &[]), None);
}

#[test]
fn each_mistake_gets_its_status() {
    assert_eq!(
        status(Method::POST, &good_headers(), &[]),
        Some(StatusCode::BAD_REQUEST)
    );
    let mut headers = good_headers();
    headers.remove(header::UPGRADE);
    assert_eq!(
        status(Method::GET, &headers, &[]),
        Some(StatusCode::UPGRADE_REQUIRED)
    );
    let mut headers = good_headers();
    headers.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
    assert_eq!(
        status(Method::GET, &headers, &[]),
        Some(StatusCode::UPGRADE_REQUIRED)
    );
    let mut headers = good_headers();
    headers.remove(header::SEC_WEBSOCKET_KEY);
    assert_eq!(
        status(Method::GET, &headers, &[]),
        Some(StatusCode::BAD_REQUEST)
    );
    let mut headers = good_headers();
    headers.insert(header::SEC_WEBSOCKET_KEY, HeaderValue::from_static("short"));
    assert_eq!(
        status(Method::GET, &headers, &[]),
        Some(StatusCode::BAD_REQUEST)
    );
}

#[test]
fn origins_outside_the_list_are_forbidden_and_missing_origins_allowed() {
    let allowed = vec!["https://chat.example.com".to_owned()];
    assert_eq!(status(Method::GET, &good_headers(), &allowed), None);
    let mut headers = good_headers();
    headers.insert(
        header::ORIGIN,
        HeaderValue::from_static("https://Chat.Example.com/"),
    );
    assert_eq!(status(Method::GET, &headers, &allowed), None);
    headers.insert(
        header::ORIGIN,
        HeaderValue::from_static("https://evil.example"),
    );
    assert_eq!(
        status(Method::GET, &headers, &allowed),
        Some(StatusCode::FORBIDDEN)
    );
}

#[test]
fn keys_must_be_sixteen_bytes_of_base64() {
    assert!(is_websocket_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
    assert!(!is_websocket_key(b"dGhlIHNhbXBsZSBub25jZQ="));
    assert!(!is_websocket_key(b"dGhlIHNhbXBsZSBub25j!Q=="));
}
