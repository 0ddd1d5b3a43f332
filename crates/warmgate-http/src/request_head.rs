//! The rule every request's head must meet before any route sees it, on
//! both listeners: exactly one valid `Host` (RFC 9112 section 3.2). An
//! HTTP/1.1 request without one, or any request with two or with one that
//! is not a host and optional port, gets 400 with a one-line body and the
//! connection closed; it is counted as `host` in
//! [`CLIENT_REFUSALS_TOTAL`](crate::CLIENT_REFUSALS_TOTAL) and logged once
//! per window. An HTTP/1.0 request may leave `Host` out.
//!
//! What hyper refuses itself (a head it cannot parse, two `Content-Length`
//! values that differ) never gets here. What a WebSocket handshake needs on
//! top (HTTP/1.1, one key, one version) is the gate's `upgrade` module's.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::uri::Authority;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use crate::client_limits::CLIENT_REFUSALS_TOTAL;
use crate::log_sampler::{LogSampler, REFUSAL_LOG_WINDOW};

/// The `reason` label of a request refused for its `Host`.
const HOST: &str = "host";

/// Wraps every route of `router`, its fallback included, so that a request
/// whose `Host` breaks the rule is answered 400 before it reaches one.
pub(crate) fn require_valid_host(router: Router) -> Router {
    metrics::counter!(CLIENT_REFUSALS_TOTAL, "reason" => HOST).increment(0);
    let refusal_log = Arc::new(LogSampler::new(REFUSAL_LOG_WINDOW));
    router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let refusal_log = Arc::clone(&refusal_log);
            async move {
                match check_host(request.version(), request.headers()) {
                    Ok(()) => next.run(request).await,
                    Err(message) => refuse(&request, message, &refusal_log),
                }
            }
        },
    ))
}

/// Checks the `Host` header lines of a request of `version`: what is wrong
/// with them, or nothing.
pub(crate) fn check_host(version: Version, headers: &HeaderMap) -> Result<(), &'static str> {
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if version == Version::HTTP_10 || version == Version::HTTP_09 => Ok(()),
        (None, _) => Err("an HTTP/1.1 request must carry a Host header"),
        (Some(_), Some(_)) => Err("a request must carry one Host header, not several"),
        (Some(host), None) if is_host(host) => Ok(()),
        (Some(_), None) => {
            Err("the Host header must be a host name or address with an optional port")
        }
    }
}

/// `uri-host [ ":" port ]`: an authority without user information, whose
/// port is digits (`http`'s parser leaves that to its caller). An empty host
/// is refused too: an `http` URI never has one (RFC 9110 section 4.2.1).
fn is_host(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.contains(&b'@') {
        return false;
    }
    let Ok(authority) = Authority::try_from(bytes) else {
        return false;
    };
    let port_is_digits = match authority.as_str().rsplit_once(':') {
        // The colons inside an IPv6 literal are not a port's.
        Some((_, port)) if !port.contains(']') => port.bytes().all(|byte| byte.is_ascii_digit()),
        _ => true,
    };
    !authority.host().is_empty() && port_is_digits
}

fn refuse(request: &Request, message: &'static str, refusal_log: &LogSampler) -> Response {
    metrics::counter!(CLIENT_REFUSALS_TOTAL, "reason" => HOST).increment(1);
    let method = request.method();
    let path = request.uri().path();
    match refusal_log.admit(HOST, Instant::now()) {
        Some(left_out) => tracing::info!(
            reason = HOST,
            %method,
            path,
            left_out,
            "request refused with 400: {message}"
        ),
        None => {
            tracing::debug!(reason = HOST, %method, path, "request refused with 400: {message}")
        }
    }
    // A client this confused about framing gets no second request on the
    // connection.
    (
        StatusCode::BAD_REQUEST,
        [(header::CONNECTION, "close")],
        format!("{message}\n"),
    )
        .into_response()
}

#[cfg(test)]
mod tests;
