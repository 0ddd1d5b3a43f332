//! The `handshake` target: an upgrade request's method, HTTP version,
//! headers (the subprotocol list among them) and the allowed origins,
//! through [`check_handshake`].
//!
//! The bytes are read as a request by [`FuzzRequest::from_bytes`]. What is
//! checked besides not panicking: an accepted request is an HTTP/1.1 GET
//! that asks to upgrade to WebSocket, with exactly one
//! `Sec-WebSocket-Version` (13) and one well-formed `Sec-WebSocket-Key`,
//! no body (no `Transfer-Encoding`, no `Content-Length` but 0), at most one
//! `Origin` and one `Authorization`, from an allowed origin when origins
//! are restricted; a refused one is answered 400, 403 or 426 with a
//! non-empty one-line reason and a registered `reason` label, 403 only when
//! origins are restricted and the request names one, and 426 only for a
//! request that does not ask for the upgrade or for version 13.

use http::{HeaderMap, HeaderName, Method, StatusCode, Version, header};
use warmgate_gate::{HANDSHAKE_REFUSAL_REASONS, check_handshake};

use crate::request::FuzzRequest;

/// The fuzz target's body.
pub fn fuzz(data: &[u8]) {
    if let Some(request) = FuzzRequest::from_bytes(data) {
        check(
            &request.method,
            request.version,
            &request.headers,
            &request.allowed_origins,
        );
    }
}

/// Checks the handshake and the promises of [`check_handshake`].
///
/// # Panics
///
/// When the check panics or breaks one of its promises.
pub fn check(method: &Method, version: Version, headers: &HeaderMap, allowed_origins: &[String]) {
    match check_handshake(method, version, headers, allowed_origins) {
        Ok(()) => {
            assert_eq!(method, Method::GET, "only a GET is accepted");
            assert_eq!(version, Version::HTTP_11, "only HTTP/1.1 may upgrade");
            let versions: Vec<&[u8]> = headers
                .get_all(header::SEC_WEBSOCKET_VERSION)
                .iter()
                .map(|version| version.as_bytes())
                .collect();
            assert_eq!(
                versions,
                [b"13".as_slice()],
                "only one version header, 13, is accepted"
            );
            let key_lengths: Vec<usize> = headers
                .get_all(header::SEC_WEBSOCKET_KEY)
                .iter()
                .map(|key| key.len())
                .collect();
            assert_eq!(key_lengths, [24], "one key of 24 characters is accepted");
            assert!(
                lists(headers, &header::UPGRADE, "websocket")
                    && lists(headers, &header::CONNECTION, "upgrade"),
                "an accepted request asks to upgrade to websocket"
            );
            assert!(
                !headers.contains_key(header::TRANSFER_ENCODING),
                "an accepted upgrade has no Transfer-Encoding"
            );
            for length in headers.get_all(header::CONTENT_LENGTH) {
                let length = length.to_str().unwrap_or_default();
                assert!(
                    length
                        .split(',')
                        .all(|length| length.trim().parse() == Ok(0_u64)),
                    "an accepted upgrade's Content-Length is 0, not {length:?}"
                );
            }
            for name in [header::ORIGIN, header::AUTHORIZATION] {
                assert!(
                    headers.get_all(&name).iter().count() <= 1,
                    "an accepted upgrade has at most one {name}"
                );
            }
            if !allowed_origins.is_empty()
                && let Some(origin) = headers.get(header::ORIGIN)
            {
                let origin = origin.to_str().unwrap_or_default();
                let origin = origin.trim_end_matches('/').to_ascii_lowercase();
                assert!(
                    allowed_origins.contains(&origin),
                    "an accepted browser's origin {origin:?} is allowed"
                );
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
            assert!(
                HANDSHAKE_REFUSAL_REASONS.contains(&refusal.reason),
                "a refusal's reason {:?} is a registered label",
                refusal.reason
            );
            if status == StatusCode::FORBIDDEN {
                assert!(
                    !allowed_origins.is_empty() && headers.contains_key(header::ORIGIN),
                    "403 only for an origin outside a non-empty allowed_origins"
                );
            }
            if status == StatusCode::UPGRADE_REQUIRED {
                let one_version_13 = headers
                    .get_all(header::SEC_WEBSOCKET_VERSION)
                    .iter()
                    .map(|version| version.as_bytes())
                    .eq([b"13".as_slice()]);
                assert!(
                    !one_version_13
                        || !lists(headers, &header::UPGRADE, "websocket")
                        || !lists(headers, &header::CONNECTION, "upgrade"),
                    "426 only for a request that does not ask for a WebSocket version 13"
                );
            }
            if *method != Method::GET || version != Version::HTTP_11 {
                assert_eq!(
                    status,
                    StatusCode::BAD_REQUEST,
                    "a request that is not an HTTP/1.1 GET gets 400"
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
