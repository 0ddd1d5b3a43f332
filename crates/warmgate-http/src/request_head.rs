//! The rule every request's head must meet before any route sees it, on
//! both listeners: exactly one valid `Host` (RFC 9112 section 3.2). An
//! HTTP/1.1 request without one, or any request with two or with one that
//! is not a host and optional port, gets 400 with a one-line body and the
//! connection closed; it is counted as `host` in
//! [`CLIENT_REFUSALS_TOTAL`](crate::CLIENT_REFUSALS_TOTAL) and logged once
//! per window. An HTTP/1.0 request may leave `Host` out, and an HTTP/2
//! one (the admin listener's gRPC) carries its host as `:authority`.
//!
//! What hyper refuses itself (a head it cannot parse, two `Content-Length`
//! values that differ) never gets here. What a WebSocket handshake needs on
//! top (HTTP/1.1, one key, one version) is the gate's `upgrade` module's.

use axum::Router;
use axum::body::{Bytes, HttpBody};
use axum::http::uri::Authority;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;
use tower::ServiceExt as _;

use crate::client_limits::CLIENT_REFUSALS_TOTAL;
use crate::log_sampler::{LogSampler, REFUSAL_LOG_WINDOW};

/// The `reason` label of a request refused for its `Host`.
const HOST: &str = "host";

/// The host rule of one server, with the sampler of its refusal log. It
/// is applied in `serve`'s per-connection service, before the router, not
/// as a router layer: a layer cost every request a boxed future and a
/// clone of the inner service, about 4 % of the instructions of a
/// WebSocket connection (see `docs/benchmarks.md`).
#[derive(Debug)]
pub(crate) struct HostRule {
    refusal_log: LogSampler,
}

impl HostRule {
    /// The rule, its refusal count registered at zero.
    pub(crate) fn new() -> Self {
        metrics::counter!(CLIENT_REFUSALS_TOTAL, "reason" => HOST).increment(0);
        Self {
            refusal_log: LogSampler::new(REFUSAL_LOG_WINDOW),
        }
    }

    /// Answers `request` with `router`, unless its `Host` breaks the rule:
    /// then with 400, before any route (the fallback included) sees it.
    pub(crate) async fn route<B>(&self, router: Router, request: Request<B>) -> Response
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        if let Err(message) = check_host(request.version(), request.headers()) {
            return refuse(&request, message, &self.refusal_log);
        }
        match router.oneshot(request).await {
            Ok(response) => response,
            Err(infallible) => match infallible {},
        }
    }
}

/// Checks the `Host` header lines of a request of `version`: what is wrong
/// with them, or nothing.
pub(crate) fn check_host(version: Version, headers: &HeaderMap) -> Result<(), &'static str> {
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        // HTTP/2 carries the host in `:authority` (RFC 9113 section 8.3.1).
        (None, _)
            if version == Version::HTTP_10
                || version == Version::HTTP_09
                || version == Version::HTTP_2 =>
        {
            Ok(())
        }
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

fn refuse<B>(request: &Request<B>, message: &'static str, refusal_log: &LogSampler) -> Response {
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
