//! The handshake checks, one refusal per way to get it wrong.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Version, header};

use super::{HANDSHAKE_REFUSAL_REASONS, check_handshake, is_websocket_key};

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
    check_handshake(&method, Version::HTTP_11, headers, origins)
        .err()
        .map(|refused| refused.status)
}

/// The status and reason of an HTTP/1.1 GET with `headers`, if refused.
fn refused(headers: &HeaderMap) -> Option<(StatusCode, &'static str)> {
    check_handshake(&Method::GET, Version::HTTP_11, headers, &[])
        .err()
        .map(|refused| (refused.status, refused.reason))
}

fn with(mut headers: HeaderMap, name: header::HeaderName, value: &'static str) -> HeaderMap {
    headers.append(name, HeaderValue::from_static(value));
    headers
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

#[test]
fn only_http_1_1_may_upgrade() {
    for version in [Version::HTTP_09, Version::HTTP_10, Version::HTTP_2] {
        let refused = check_handshake(&Method::GET, version, &good_headers(), &[]).unwrap_err();
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{version:?}");
        assert_eq!(refused.reason, "http_version");
        assert!(refused.message.contains("HTTP/1.1"), "{}", refused.message);
    }
}

#[test]
fn a_key_or_version_sent_twice_is_refused_even_when_both_are_good() {
    let key = header::SEC_WEBSOCKET_KEY;
    let version = header::SEC_WEBSOCKET_VERSION;
    let cases = [
        (
            with(good_headers(), key.clone(), "dGhlIHNhbXBsZSBub25jZQ=="),
            (StatusCode::BAD_REQUEST, "websocket_key"),
        ),
        (
            with(good_headers(), key, "AAAAAAAAAAAAAAAAAAAAAA=="),
            (StatusCode::BAD_REQUEST, "websocket_key"),
        ),
        (
            with(good_headers(), version.clone(), "13"),
            (StatusCode::UPGRADE_REQUIRED, "websocket_version"),
        ),
        (
            with(good_headers(), version.clone(), "8"),
            (StatusCode::UPGRADE_REQUIRED, "websocket_version"),
        ),
    ];
    for (headers, expected) in cases {
        assert_eq!(refused(&headers), Some(expected), "{headers:?}");
    }
    // One header listing two versions is not version 13 either.
    let mut headers = good_headers();
    headers.insert(version, HeaderValue::from_static("13, 8"));
    assert_eq!(
        refused(&headers),
        Some((StatusCode::UPGRADE_REQUIRED, "websocket_version"))
    );
}

#[test]
fn an_upgrade_with_a_body_is_refused() {
    for (name, value) in [
        (header::CONTENT_LENGTH, "5"),
        (header::CONTENT_LENGTH, "0, 5"),
        (header::TRANSFER_ENCODING, "chunked"),
        (header::TRANSFER_ENCODING, "gzip, chunked"),
    ] {
        assert_eq!(
            refused(&with(good_headers(), name, value)),
            Some((StatusCode::BAD_REQUEST, "request_body")),
            "{value}"
        );
    }
    for length in ["0", "00", "0, 0"] {
        let headers = with(good_headers(), header::CONTENT_LENGTH, length);
        assert_eq!(refused(&headers), None, "{length}");
    }
}

#[test]
fn an_origin_or_authorization_sent_twice_is_refused() {
    let allowed = vec!["https://chat.example.com".to_owned()];
    // The second origin would otherwise go unchecked.
    let headers = with(
        with(good_headers(), header::ORIGIN, "https://chat.example.com"),
        header::ORIGIN,
        "https://evil.example",
    );
    let refusal = check_handshake(&Method::GET, Version::HTTP_11, &headers, &allowed).unwrap_err();
    assert_eq!(
        (refusal.status, refusal.reason),
        (StatusCode::BAD_REQUEST, "repeated_header")
    );
    assert!(
        refusal.message.contains("Origin header"),
        "{}",
        refusal.message
    );
    let headers = with(
        with(good_headers(), header::AUTHORIZATION, "Bearer a"),
        header::AUTHORIZATION,
        "Bearer b",
    );
    assert_eq!(
        refused(&headers),
        Some((StatusCode::BAD_REQUEST, "repeated_header"))
    );
}

#[test]
fn subprotocol_headers_may_repeat_since_they_are_one_list() {
    let headers = with(
        with(good_headers(), header::SEC_WEBSOCKET_PROTOCOL, "chat"),
        header::SEC_WEBSOCKET_PROTOCOL,
        "warmgate.v1",
    );
    assert_eq!(refused(&headers), None);
    assert!(super::offers_subprotocol(&headers));
}

#[test]
fn every_refusal_reason_is_registered() {
    let without = |name: header::HeaderName| {
        let mut headers = good_headers();
        headers.remove(name);
        headers
    };
    let cases = [
        (Method::POST, Version::HTTP_11, good_headers()),
        (Method::GET, Version::HTTP_10, good_headers()),
        (Method::GET, Version::HTTP_11, HeaderMap::new()),
        (
            Method::GET,
            Version::HTTP_11,
            without(header::SEC_WEBSOCKET_VERSION),
        ),
        (
            Method::GET,
            Version::HTTP_11,
            without(header::SEC_WEBSOCKET_KEY),
        ),
        (
            Method::GET,
            Version::HTTP_11,
            with(good_headers(), header::CONTENT_LENGTH, "1"),
        ),
    ];
    for (method, version, headers) in cases {
        let reason = check_handshake(&method, version, &headers, &[])
            .unwrap_err()
            .reason;
        assert!(HANDSHAKE_REFUSAL_REASONS.contains(&reason), "{reason}");
    }
}

#[test]
fn an_upgrade_or_connection_value_that_is_not_visible_ascii_lists_nothing() {
    // obs-text beside the token: the whole value lists nothing, as in every
    // other list the handshake reads (found by the handshake fuzzer).
    let obs_text = |text: &[u8]| HeaderValue::from_bytes(text).unwrap();
    for (name, value) in [
        (header::CONNECTION, obs_text(b"ke\x9a\x9aep-alive, Upgrade")),
        (header::UPGRADE, obs_text(b"h2c\x9a, websocket")),
    ] {
        let mut headers = good_headers();
        headers.insert(name.clone(), value);
        assert_eq!(
            refused(&headers),
            Some((StatusCode::UPGRADE_REQUIRED, "not_an_upgrade")),
            "{name}"
        );
        // A second, clean line of the same header still counts.
        let clean = if name == header::UPGRADE {
            "websocket"
        } else {
            "Upgrade"
        };
        headers.append(name.clone(), HeaderValue::from_static(clean));
        assert_eq!(refused(&headers), None, "{name}");
    }
}
