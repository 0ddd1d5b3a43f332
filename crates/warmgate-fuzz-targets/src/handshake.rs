//! The `handshake` target: an upgrade request's method, headers (the
//! subprotocol list among them) and the allowed origins, through
//! [`check_handshake`].
//!
//! The bytes are read as a request by [`FuzzRequest::from_bytes`]. What is
//! checked besides not panicking: an accepted request is a GET that asks
//! to upgrade to WebSocket version 13 with a well-formed key, from an
//! allowed origin when origins are restricted; a refused one is
//! answered 400, 403 or 426 with a non-empty one-line reason, and 403 only
//! when origins are restricted and the request names one.

use http::{HeaderMap, HeaderName, Method, StatusCode, header};
use warmgate_gate::check_handshake;

use crate::request::FuzzRequest;

/// The fuzz target's body.
pub fn fuzz(data: &[u8]) {
    if let Some(request) = FuzzRequest::from_bytes(data) {
        check(&request.method, &request.headers, &request.allowed_origins);
    }
}

/// Checks the handshake and the promises of [`check_handshake`].
///
/// # Panics
///
/// When the check panics or breaks one of its promises.
pub fn check(method: &Method, headers: &HeaderMap, allowed_origins: &[String]) {
    match check_handshake(method, headers, allowed_origins) {
        Ok(()) => {
            assert_eq!(method, Method::GET, "only a GET is accepted");
            assert_eq!(
                headers
                    .get(header::SEC_WEBSOCKET_VERSION)
                    .map(|version| version.as_bytes()),
                Some(&b"13"[..]),
                "only version 13 is accepted"
            );
            let key_length = headers.get(header::SEC_WEBSOCKET_KEY).map(|key| key.len());
            assert_eq!(key_length, Some(24), "an accepted key has 24 characters");
            assert!(
                lists(headers, &header::UPGRADE, "websocket")
                    && lists(headers, &header::CONNECTION, "upgrade"),
                "an accepted request asks to upgrade to websocket"
            );
            if !allowed_origins.is_empty() {
                if let Some(origin) = headers.get(header::ORIGIN) {
                    let origin = origin.to_str().unwrap_or_default();
                    let origin = origin.trim_end_matches('/').to_ascii_lowercase();
                    assert!(
                        allowed_origins.contains(&origin),
                        "an accepted browser's origin {origin:?} is allowed"
                    );
                }
            }
        }
        Err(refusal) => {
            let status = refusal.status;
            assert!(
                [
                    StatusCode::BAD_REQUEST,
                    StatusCode::FORBIDDEN,
                    StatusCode::UPGRADE_REQUIRED
                ]
                .contains(&status),
                "a refusal is 400, 403 or 426, not {status}"
            );
            if status == StatusCode::FORBIDDEN {
                assert!(
                    !allowed_origins.is_empty() && headers.contains_key(header::ORIGIN),
                    "403 only for an origin outside a non-empty allowed_origins"
                );
            }
            let message = &refusal.message;
            assert!(!message.trim().is_empty(), "a refusal gives a reason");
            assert!(
                !message.contains(['\n', '\r']),
                "a refusal's reason is one line: {message:?}"
            );
        }
    }
}

/// True when a comma-separated header lists `token`, in any letter case
/// (RFC 6455 section 4.2.1).
fn lists(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|listed| listed.trim().eq_ignore_ascii_case(token))
}
