//! The plain-HTTP reverse proxy (`[upstream] http = true`): every request
//! the gate does not answer itself is forwarded to the backend, under the
//! gate's readiness rule.
//!
//! The rule, per request:
//! - the latest snapshot admits traffic (`ready`, `degraded`): forwarded at
//!   once, after one lock-free read and no await;
//! - `draining`: 503 with `Retry-After` and `Connection: close`;
//! - otherwise the request is held on a `watch` receiver until the state
//!   changes, for at most `hold_timeout`: a flip to ready forwards it, a
//!   flip to draining answers as above, and a state still not ready at the
//!   deadline gets 503 with `Retry-After` and a line saying why.
//!
//! Forwarding keeps the method, path and query, puts them on the backend's
//! `http://` or `https://` base, and passes the headers through `forward`
//! (hop-by-hop dropped, `X-Forwarded-*` added, any client-sent identity
//! header removed: this proxy has no authenticated identity to vouch for).
//! Request and response bodies are streamed, never buffered, so Server-Sent
//! Events from the backend reach the client event by event. A backend that
//! cannot be reached gets the client a 502 naming it, and the operator one
//! sampled warning per kind of failure and [`REFUSAL_LOG_WINDOW`].
//!
//! Connections to the backend are kept alive and pooled, and a backend
//! closes an idle one after its own timeout (uvicorn and Node after 5 s). A
//! request sent on a pooled connection just as the backend closes it is
//! lost without an answer: a race no timeout setting removes (RFC 9112
//! §9.3.1). So a request that may be sent again is: an idempotent method
//! (RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE) without a body,
//! that got no response head, is resent once on a fresh connection, as
//! nginx does with a kept-alive upstream connection. Anything else, a POST
//! or a request with a body, is answered 502: it may have reached the
//! backend, and its body is gone. A resend is counted in
//! [`UPSTREAM_HTTP_RESENDS_TOTAL`] and recorded on the span as
//! `http.request.resend_count`.
//!
//! The client is reqwest rather than hyper-util's legacy client: the
//! workspace already builds it with rustls on ring for the probes and the
//! JWKS fetch, so `wss://` backends get TLS with the system's roots,
//! connect timeouts and pooling without a connector of our own. Its cost
//! is one adapter per body (a stream of data frames), so the framing of a
//! forwarded request is set here from the body's known length.
//!
//! Not here: upgrades. The WebSocket routes are the gate's, and `dial`
//! relays them; `Upgrade` is hop-by-hop, so a request asking for one
//! reaches the backend as plain HTTP. Trailers are not relayed either.

use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, HttpBody as _};
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use http::header::{
    CACHE_CONTROL, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, RETRY_AFTER, TRANSFER_ENCODING,
};
use http::{HeaderName, HeaderValue, StatusCode};
use tokio::time::Instant;
use tracing::Instrument as _;
use tracing::field::Empty;
use warmgate_config::UpstreamConfig;
use warmgate_core::GateState;
use warmgate_engine::ReadinessHandle;
use warmgate_http::{LogSampler, REFUSAL_LOG_WINDOW};

use crate::{ProxyError, forward};

/// Proxied HTTP requests by how they ended: `outcome` is `proxied` (the
/// backend answered, whatever its status), `not_ready` (503 after the
/// hold), `draining` (503 at shutdown), `upstream_error` (502: the backend
/// could not be reached or did not answer) or `client_error` (400: the
/// client's request body broke off before it was sent on).
pub const UPSTREAM_HTTP_REQUESTS_TOTAL: &str = "warmgate_upstream_http_requests_total";

/// Proxied HTTP requests sent to the backend a second time, on a fresh
/// connection, because the first attempt got no response head: most often
/// a pooled connection the backend closed as the request went out (reqwest
/// does not say whether the connection was a kept one). Unlabelled.
/// Each such request is also counted once in
/// [`UPSTREAM_HTTP_REQUESTS_TOTAL`], by how the resend ended.
pub const UPSTREAM_HTTP_RESENDS_TOTAL: &str = "warmgate_upstream_http_resends_total";

/// How long each proxied request waited for readiness before it was
/// forwarded or refused, in seconds; 0 on a ready gate. Unlabelled.
pub const UPSTREAM_HTTP_WAIT_SECONDS: &str = "warmgate_upstream_http_wait_seconds";

/// The buckets for [`UPSTREAM_HTTP_WAIT_SECONDS`]: from 100 us to 10 s,
/// the gate's own connection-wait buckets.
pub const UPSTREAM_HTTP_WAIT_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// How the HTTP proxy waits and what it tells clients to do: the `[gate]`
/// values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpProxySettings {
    /// The longest a request waits for the gate to turn ready before it is
    /// answered 503.
    pub hold_timeout: Duration,
    /// Sent as `Retry-After` with every 503, in whole seconds rounded up.
    pub retry_after: Duration,
}

/// The plain-HTTP reverse proxy to the `[upstream]` backend. Cheap to
/// clone: every clone shares one connection pool.
///
/// Invariant: every request is answered: forwarded (the backend's answer,
/// streamed), 503 (not ready in time, or draining), 502 (backend
/// unreachable) or 400 (the client's body broke off). None panics, and
/// none waits on the gate longer than `hold_timeout`.
#[derive(Debug, Clone)]
pub struct HttpProxy {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    handle: ReadinessHandle,
    settings: HttpProxySettings,
    retry_after: HeaderValue,
    /// Pools its connections.
    client: reqwest::Client,
    /// Keeps none, so a resend always goes out on a new connection.
    fresh_client: reqwest::Client,
    backend: Backend,
    connect_timeout: Duration,
    identity_header: HeaderName,
    /// One warning per kind of backend failure and window, so a backend
    /// that is down does not flood the log.
    unreachable_log: LogSampler,
}

/// Where requests go.
#[derive(Debug)]
struct Backend {
    /// `http://host:port` (or `https://`), no trailing slash: a request's
    /// path and query are appended as they came.
    origin: String,
    /// The host, for `server.address`: a name or an address, IPv6 without
    /// brackets.
    address: String,
    port: u16,
}

impl HttpProxy {
    /// A proxy to `upstream.http_base()`: connections are made within
    /// `upstream.dial_timeout` and pooled; redirects are passed to the
    /// client, bodies are never decompressed, system proxy settings are
    /// ignored and no request has an overall deadline (streams are long).
    ///
    /// Describes the proxy's metrics and registers each series at zero.
    ///
    /// # Errors
    ///
    /// [`ProxyError::IdentityHeaderName`] when `upstream.identity_header`
    /// is not a header name; [`ProxyError::HttpClient`] when the HTTP
    /// client cannot be built.
    pub fn new(
        upstream: &UpstreamConfig,
        handle: ReadinessHandle,
        settings: HttpProxySettings,
    ) -> Result<Self, ProxyError> {
        let identity_header =
            HeaderName::from_bytes(upstream.identity_header.as_bytes()).map_err(|_| {
                ProxyError::IdentityHeaderName {
                    name: upstream.identity_header.clone(),
                }
            })?;
        let base = upstream.http_base();
        let backend = Backend {
            origin: base.origin().ascii_serialization(),
            address: match base.host() {
                Some(url::Host::Ipv6(address)) => address.to_string(),
                Some(host) => host.to_string(),
                None => String::new(),
            },
            port: base.port_or_known_default().unwrap_or(80),
        };
        let client = |max_idle_per_host: usize| {
            warmgate_outbound::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_gzip()
                .no_brotli()
                .no_deflate()
                .no_zstd()
                .no_proxy()
                .connect_timeout(upstream.dial_timeout)
                .tcp_nodelay(true)
                .pool_max_idle_per_host(max_idle_per_host)
                .build()
                .map_err(|error| ProxyError::HttpClient {
                    backend: backend.origin.clone(),
                    reason: warmgate_outbound::deepest_cause(&error),
                    source: Box::new(error.without_url()),
                })
        };
        let (pooled, fresh_client) = (client(usize::MAX)?, client(0)?);
        init_metrics();
        Ok(Self {
            inner: Arc::new(Inner {
                handle,
                settings,
                retry_after: retry_after_header(settings.retry_after),
                client: pooled,
                fresh_client,
                backend,
                connect_timeout: upstream.dial_timeout,
                identity_header,
                unreachable_log: LogSampler::new(REFUSAL_LOG_WINDOW),
            }),
        })
    }

    /// A router whose fallback proxies every request, whatever its method
    /// and path. Merge the gate's own routes beside it: they are matched
    /// first, and only what none of them takes reaches the backend.
    pub fn router(&self) -> Router {
        Router::new()
            .fallback(proxy_request)
            .with_state(self.clone())
    }
}

async fn proxy_request(State(proxy): State<HttpProxy>, request: Request) -> Response {
    proxy.inner.answer(request).await
}

/// How a request ended, for [`UPSTREAM_HTTP_REQUESTS_TOTAL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Proxied,
    NotReady,
    Draining,
    UpstreamError,
    ClientError,
}

impl Outcome {
    const ALL: [Outcome; 5] = [
        Outcome::Proxied,
        Outcome::NotReady,
        Outcome::Draining,
        Outcome::UpstreamError,
        Outcome::ClientError,
    ];

    fn label(self) -> &'static str {
        match self {
            Outcome::Proxied => "proxied",
            Outcome::NotReady => "not_ready",
            Outcome::Draining => "draining",
            Outcome::UpstreamError => "upstream_error",
            Outcome::ClientError => "client_error",
        }
    }

    /// Counts one request that ended so, and names the failure on the
    /// current span.
    fn record(self, error_type: Option<&str>) {
        metrics::counter!(UPSTREAM_HTTP_REQUESTS_TOTAL, "outcome" => self.label()).increment(1);
        if let Some(error_type) = error_type {
            tracing::Span::current().record("error.type", error_type);
        }
    }
}

/// What the readiness rule decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    Ready,
    /// Still not ready when the hold ended, in this state.
    NotReady(GateState),
    Draining,
}

/// Describes the metrics and registers every series at zero, so a
/// dashboard never sees one appear late.
fn init_metrics() {
    metrics::describe_counter!(
        UPSTREAM_HTTP_REQUESTS_TOTAL,
        "plain HTTP requests for the upstream backend, by outcome"
    );
    metrics::describe_histogram!(
        UPSTREAM_HTTP_WAIT_SECONDS,
        metrics::Unit::Seconds,
        "time a plain HTTP request for the upstream backend waited for readiness"
    );
    metrics::describe_counter!(
        UPSTREAM_HTTP_RESENDS_TOTAL,
        "plain HTTP requests sent to the backend again on a fresh connection after the first attempt got no answer"
    );
    for outcome in Outcome::ALL {
        metrics::counter!(UPSTREAM_HTTP_REQUESTS_TOTAL, "outcome" => outcome.label()).increment(0);
    }
    metrics::counter!(UPSTREAM_HTTP_RESENDS_TOTAL).increment(0);
    // Registering the handle is enough for the exporter to render the
    // histogram with zero counts.
    let _ = metrics::histogram!(UPSTREAM_HTTP_WAIT_SECONDS);
}

// === impl Inner ===

impl Inner {
    /// One request, from arrival to the response head, in its span.
    async fn answer(&self, request: Request) -> Response {
        let span = tracing::info_span!(
            "http.proxy",
            "http.request.method" = %request.method(),
            "url.path" = request.uri().path(),
            "server.address" = self.backend.address.as_str(),
            "server.port" = self.backend.port,
            "http.response.status_code" = Empty,
            "http.request.resend_count" = Empty,
            "error.type" = Empty,
        );
        if warmgate_gate::asks_for_websocket(request.headers()) {
            return span.in_scope(|| self.not_a_websocket_route(request.uri().path()));
        }
        let response = async {
            match self.admit().await {
                Admission::Ready => self.forward(request).await,
                Admission::NotReady(state) => self.not_ready(state),
                Admission::Draining => self.draining(),
            }
        }
        .instrument(span.clone())
        .await;
        span.record("http.response.status_code", response.status().as_u16());
        response
    }

    /// A WebSocket upgrade on a path no `[[route]]` serves: forwarded as
    /// plain HTTP it would lose its `Upgrade` (a hop-by-hop header) and
    /// reach the backend as a GET it answers 404 to, with nothing here to
    /// say why. Answered 404 here instead, saying what to configure.
    fn not_a_websocket_route(&self, path: &str) -> Response {
        Outcome::ClientError.record(Some("websocket_route"));
        match self
            .unreachable_log
            .admit("websocket_route", Instant::now())
        {
            Some(left_out) => tracing::info!(
                path,
                left_out,
                "a WebSocket upgrade on a path no [[route]] serves was answered 404: to relay it to the backend, list the path (or a prefix such as \"/ws/*\") as a [[route]] with app = \"upstream\""
            ),
            None => tracing::debug!(path, "WebSocket upgrade on a path no [[route]] serves; 404"),
        }
        let response = text_response(
            StatusCode::NOT_FOUND,
            "not found: no WebSocket route at this path\n".to_owned(),
        );
        tracing::Span::current().record("http.response.status_code", response.status().as_u16());
        response
    }

    /// The readiness rule: at once on a gate that admits traffic, else a
    /// wait for the flip of at most `hold_timeout`.
    async fn admit(&self) -> Admission {
        let state = self.handle.with_current(|snapshot| snapshot.state);
        if state.admits_traffic() {
            metrics::histogram!(UPSTREAM_HTTP_WAIT_SECONDS).record(0.0);
            return Admission::Ready;
        }
        if state == GateState::Draining {
            metrics::histogram!(UPSTREAM_HTTP_WAIT_SECONDS).record(0.0);
            return Admission::Draining;
        }
        let started = Instant::now();
        // `subscribe` marks the current snapshot as unseen, so a flip
        // between the read above and here is not missed.
        let mut snapshot_rx = self.handle.subscribe();
        let decided = snapshot_rx.wait_for(|snapshot| {
            snapshot.state.admits_traffic() || snapshot.state == GateState::Draining
        });
        // The state is copied out at once: the guard `wait_for` returns
        // must not be held.
        let flipped_to = match tokio::time::timeout(self.settings.hold_timeout, decided).await {
            Ok(Ok(snapshot)) => Some(snapshot.state),
            // The engine is gone (nothing will turn the gate ready), or
            // the hold is over.
            Ok(Err(_)) | Err(_) => None,
        };
        let admission = match flipped_to {
            Some(GateState::Draining) => Admission::Draining,
            Some(_) => Admission::Ready,
            None => Admission::NotReady(snapshot_rx.borrow().state),
        };
        metrics::histogram!(UPSTREAM_HTTP_WAIT_SECONDS).record(started.elapsed().as_secs_f64());
        admission
    }

    /// 503: the gate did not turn ready within the hold.
    fn not_ready(&self, state: GateState) -> Response {
        Outcome::NotReady.record(Some("not_ready"));
        tracing::debug!(
            state = state.as_str(),
            "HTTP request refused with 503: not ready within hold_timeout"
        );
        let message = format!(
            "not ready: the gate is {state} and did not turn ready within {:?}; retry after {}s\n",
            self.settings.hold_timeout,
            self.retry_after_seconds(),
        );
        self.unavailable(message, false)
    }

    /// 503: shutting down; the connection is closed after the answer.
    fn draining(&self) -> Response {
        Outcome::Draining.record(Some("draining"));
        tracing::debug!("HTTP request refused with 503: draining");
        let message = format!(
            "draining: this server is shutting down; retry after {}s\n",
            self.retry_after_seconds(),
        );
        self.unavailable(message, true)
    }

    fn retry_after_seconds(&self) -> &str {
        // Built from an integer, so always ASCII digits.
        self.retry_after.to_str().unwrap_or("1")
    }

    fn unavailable(&self, message: String, close: bool) -> Response {
        let mut response = text_response(StatusCode::SERVICE_UNAVAILABLE, message);
        let headers = response.headers_mut();
        headers.insert(RETRY_AFTER, self.retry_after.clone());
        if close {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }

    /// Sends the request on and relays the answer's head; both bodies
    /// stream.
    async fn forward(&self, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let path_and_query = parts
            .uri
            .path_and_query()
            .map_or("/", |path_and_query| path_and_query.as_str());
        let url = match reqwest::Url::parse(&format!("{}{path_and_query}", self.backend.origin)) {
            Ok(url) => url,
            Err(error) => {
                Outcome::ClientError.record(Some("invalid_path"));
                return text_response(
                    StatusCode::BAD_REQUEST,
                    format!("bad request: cannot forward the path {path_and_query:?}: {error}\n"),
                );
            }
        };
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |info| info.0.ip());
        let mut headers = parts.headers;
        let host = headers.get(HOST).cloned();
        forward::remove_hop_by_hop(&mut headers);
        forward::add_forwarded(&mut headers, peer, "http", host.as_ref());
        forward::strip_identity(&mut headers, &self.identity_header);

        let mut outgoing = reqwest::Request::new(parts.method, url);
        // The framing sent on is what the server read, not what the client
        // claimed: a known length is sent as `Content-Length`, anything
        // else chunked, so a conflicting pair never reaches the backend.
        match body.size_hint().exact() {
            Some(0) => {}
            Some(length) => {
                headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
                *outgoing.body_mut() = Some(reqwest::Body::wrap_stream(body.into_data_stream()));
            }
            None => {
                headers.remove(CONTENT_LENGTH);
                headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
                *outgoing.body_mut() = Some(reqwest::Body::wrap_stream(body.into_data_stream()));
            }
        }
        *outgoing.headers_mut() = headers;

        let resend = may_resend(&outgoing)
            .then(|| outgoing.try_clone())
            .flatten();
        match self.client.execute(outgoing).await {
            Ok(response) => relay(response),
            Err(error) => match resend {
                Some(again) if lost_without_an_answer(&error) => self.resend(again, &error).await,
                _ => self.failed(&error, Sent::Once),
            },
        }
    }

    /// Sends `request` again on a fresh connection, once: the first
    /// attempt ended with `first` and no answer, most often because it went
    /// out on a kept-alive connection the backend was closing.
    async fn resend(&self, request: reqwest::Request, first: &reqwest::Error) -> Response {
        metrics::counter!(UPSTREAM_HTTP_RESENDS_TOTAL).increment(1);
        tracing::Span::current().record("http.request.resend_count", 1);
        tracing::debug!(
            error = %warmgate_outbound::deepest_cause(first),
            "the backend ended the connection before answering (most often a kept-alive connection it closed as the request went out); sending it again on a fresh connection"
        );
        match self.fresh_client.execute(request).await {
            Ok(response) => relay(response),
            Err(error) => self.failed(&error, Sent::Twice),
        }
    }

    /// 502 for a backend that could not be reached or did not answer, 400
    /// for a client whose body broke off. `sent` says whether the request
    /// went out a second time, for the operator's log line.
    fn failed(&self, error: &reqwest::Error, sent: Sent) -> Response {
        let origin = &self.backend.origin;
        if broke_off_in_client_body(error) {
            Outcome::ClientError.record(Some("client_body"));
            tracing::debug!(
                error = %warmgate_outbound::deepest_cause(error),
                "HTTP request not proxied: the client's body broke off"
            );
            return text_response(
                StatusCode::BAD_REQUEST,
                "bad request: the request body broke off before it was sent on\n".to_owned(),
            );
        }
        let failure = Failure::of(error, self.connect_timeout);
        Outcome::UpstreamError.record(Some(failure.kind));
        let what = &failure.what;
        // What the operator should look at: a backend that cannot be
        // reached is down or elsewhere; one that took the request and ended
        // the connection has either failed it (twice, when it was sent
        // again) or closed a kept-alive connection as it went out, a race
        // only a request safe to send twice survives.
        let (line, advice) = match (failure.connecting, sent) {
            (true, _) => (
                format!("cannot reach the backend at {origin} ({what})"),
                "clients get 502 until it answers: check that it is running and listening there",
            ),
            (false, Sent::Twice) => (
                format!(
                    "the backend at {origin} ended the connection without answering ({what}), and again when the request was sent on a fresh connection"
                ),
                "check the backend's own log for these requests",
            ),
            (false, Sent::Once) => (
                format!("the backend at {origin} ended the connection without answering ({what})"),
                "the request was not sent again, as it is not idempotent or has a body; if the backend is up, it most likely closed a kept-alive connection as the request went out, and the client may retry; if this repeats, check the backend's own log",
            ),
        };
        match self.unreachable_log.admit(failure.kind, Instant::now()) {
            Some(left_out) => tracing::warn!(
                "error.type" = failure.kind,
                left_out,
                "HTTP request answered 502: {line}; {advice}"
            ),
            None => tracing::debug!(
                "error.type" = failure.kind,
                "HTTP request answered 502: {line}"
            ),
        }
        // The backend's address stays in the log: the public listener does
        // not tell clients where internal services live.
        let answer = if failure.connecting {
            "bad gateway: the backend cannot be reached; retry later\n"
        } else {
            "bad gateway: the backend did not answer; retry later\n"
        };
        text_response(StatusCode::BAD_GATEWAY, answer.to_owned())
    }
}

/// How many times a failed request went out to the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// Once: it failed before it could be sent, or it may not be sent
    /// twice.
    Once,
    /// Once more on a fresh connection after the first got no answer.
    Twice,
}

/// The backend's answer, as the client gets it: its status, its headers
/// without the hop-by-hop ones, and its body streamed as it arrives.
fn relay(mut response: reqwest::Response) -> Response {
    let status = response.status();
    let mut headers = std::mem::take(response.headers_mut());
    forward::remove_hop_by_hop(&mut headers);
    let error_type = status.is_server_error().then(|| status.as_str().to_owned());
    Outcome::Proxied.record(error_type.as_deref());
    let mut relayed = Response::new(Body::from_stream(response.bytes_stream()));
    *relayed.status_mut() = status;
    *relayed.headers_mut() = headers;
    relayed
}

/// Why the backend failed a request: the `error.type` and log kind, the
/// words for it, and whether it failed before a connection existed.
#[derive(Debug)]
struct Failure {
    kind: &'static str,
    what: String,
    connecting: bool,
}

impl Failure {
    fn of(error: &reqwest::Error, connect_timeout: Duration) -> Failure {
        // Without an overall deadline, the only timeout is the connect's.
        if error.is_timeout() {
            return Failure {
                kind: "connect_timeout",
                what: format!("no connection within {connect_timeout:?}"),
                connecting: true,
            };
        }
        let io_kind = warmgate_outbound::io_cause(error).map(io::Error::kind);
        let (kind, what) = match io_kind {
            Some(io::ErrorKind::ConnectionRefused) => {
                ("connection_refused", "connection refused".to_owned())
            }
            Some(io::ErrorKind::ConnectionReset) => {
                ("connection_reset", "connection reset".to_owned())
            }
            _ if error.is_connect() => ("connect_error", warmgate_outbound::deepest_cause(error)),
            _ => ("request_error", warmgate_outbound::deepest_cause(error)),
        };
        Failure {
            kind,
            what,
            connecting: error.is_connect(),
        }
    }
}

/// True for a request that may be sent twice (RFC 9110 §9.2.2): an
/// idempotent method, and no body, so nothing of the client's is consumed
/// by the first attempt.
fn may_resend(request: &reqwest::Request) -> bool {
    use http::Method;

    let idempotent = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    );
    idempotent && request.body().is_none()
}

/// True for a request that reached a connection and got no response head:
/// not a failed dial (a fresh connection would fail the same way), not the
/// client's body breaking off.
fn lost_without_an_answer(error: &reqwest::Error) -> bool {
    !error.is_connect() && !error.is_timeout() && !broke_off_in_client_body(error)
}

/// True when the request failed because the client's own body did (it
/// disconnected mid-upload, say), not the backend.
fn broke_off_in_client_body(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(current) = source {
        if current.is::<axum::Error>() {
            return true;
        }
        source = current.source();
    }
    false
}

/// `Retry-After` in whole seconds, rounded up.
fn retry_after_header(retry_after: Duration) -> HeaderValue {
    let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    HeaderValue::from(seconds)
}

/// A one-line plain-text answer that no cache keeps.
fn text_response(status: StatusCode, message: String) -> Response {
    let mut response = Response::new(Body::from(message));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests;
