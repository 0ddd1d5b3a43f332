//! [`Upstream`]: the backend as an application of the gate. Each admitted
//! client gets a session that dials the backend's WebSocket at admission
//! (under the dial bound), replays what the client sent while held, then
//! relays messages both ways until either side closes.
//!
//! What goes upstream: the client's path and query; its `Authorization`,
//! `Cookie`, `Origin`, `User-Agent` and `tracestate`; a `traceparent` whose
//! parent is the connection's span (or the client's own, without
//! tracing); `X-Forwarded-For`/`-Proto`/`-Host`; the verified `sub` in
//! `[upstream] identity_header` (any copy the client sent is removed); and
//! the one application subprotocol selected for the client. `warmgate.v1`
//! and `bearer.` entries never go upstream.
//!
//! Closing, as RFC 6455 section 7.4 asks: the client gets the backend's
//! close code, except those that never go on the wire: no code (1005)
//! becomes 1000; a connection lost without a close (1006) or a backend that
//! broke the protocol becomes 1011. The backend gets the client's code, or
//! 1001 when the gate ends the connection (drain, a vanished client).
//!
//! **Invariant:** a client message is relayed or counted: one the backend
//! never got (the backend was gone, or it was still queued when the
//! connection ended) adds to `warmgate_upstream_undelivered_messages_total`
//! and to the connection's closing log line; none is dropped silently.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use fastwebsockets::{Frame, Payload, Role};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use opentelemetry::trace::TraceContextExt as _;
use tokio::time::Instant;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use warmgate_config::UpstreamConfig;
use warmgate_gate::protocol::UnavailableReason;
use warmgate_gate::{
    AdmitError, Application, BoxFuture, Client, ClientGone, Incoming, Message, Outgoing, Peer,
    Replies, Selection, Session, Summary,
};

use crate::forward;
use crate::{Dialer, ProxyError};

/// Counter: messages relayed, by `direction` (`upstream`: client to
/// backend; `downstream`: backend to client).
pub const UPSTREAM_MESSAGES_TOTAL: &str = "warmgate_upstream_messages_total";
/// Counter: payload bytes relayed, by `direction`.
pub const UPSTREAM_BYTES_TOTAL: &str = "warmgate_upstream_bytes_total";
/// Gauge: open proxied WebSocket connections (dialed, not yet closed).
pub const UPSTREAM_CONNECTIONS: &str = "warmgate_upstream_connections";
/// Counter: client messages the backend never got.
pub const UPSTREAM_UNDELIVERED_TOTAL: &str = "warmgate_upstream_undelivered_messages_total";
/// Counter: proxied connections the backend side ended badly, by
/// `reason`: `lost` (no close frame), `protocol_error` (the backend broke
/// RFC 6455), `no_dial_slot` (no slot within `hold_timeout`). Failed
/// dials are `warmgate_upstream_dial_failures_total`.
pub const UPSTREAM_FAILURES_TOTAL: &str = "warmgate_upstream_failures_total";

/// How long closing the backend may take: our close frame written, and
/// its reply read.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

const CLOSE_NORMAL: u16 = 1000;
const CLOSE_INTERNAL_ERROR: u16 = 1011;

/// The client headers passed to the backend as they are.
const PASSED_ON: [HeaderName; 5] = [
    header::AUTHORIZATION,
    header::COOKIE,
    header::ORIGIN,
    header::USER_AGENT,
    HeaderName::from_static("tracestate"),
];

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The `[upstream]` backend as an application: one per gate, shared by its
/// upstream routes.
#[derive(Debug, Clone)]
pub struct Upstream {
    inner: Arc<UpstreamInner>,
}

/// The relay's counters, looked up once: a message relayed costs an
/// atomic add, not a registry look-up.
#[derive(Debug)]
struct Relayed {
    messages: [metrics::Counter; 2],
    bytes: [metrics::Counter; 2],
}

impl Relayed {
    /// `[client to backend, backend to client]`, as in `n_relayed`.
    const DIRECTIONS: [&'static str; 2] = ["upstream", "downstream"];

    fn new() -> Relayed {
        Relayed {
            messages: Self::DIRECTIONS.map(
                |direction| metrics::counter!(UPSTREAM_MESSAGES_TOTAL, "direction" => direction),
            ),
            bytes: Self::DIRECTIONS
                .map(|direction| metrics::counter!(UPSTREAM_BYTES_TOTAL, "direction" => direction)),
        }
    }

    /// Every series at zero from the start.
    fn registered(self) -> Relayed {
        for counter in self.messages.iter().chain(&self.bytes) {
            counter.increment(0);
        }
        self
    }

    fn count(&self, direction: usize, len: u64) {
        self.messages[direction].increment(1);
        self.bytes[direction].increment(len);
    }
}

#[derive(Debug)]
struct UpstreamInner {
    relayed: Relayed,
    dialer: Dialer,
    subprotocols: Vec<String>,
    identity_header: HeaderName,
    max_message_bytes: usize,
    write_timeout: Duration,
    /// How long a client may wait for a dial slot.
    slot_timeout: Duration,
}

impl Upstream {
    /// The backend of `config`. Messages larger than `max_message_bytes`
    /// from the backend close it with 1009 (and the client with 1011); a
    /// backend that takes no byte for `write_timeout` stalls; a client
    /// that waits longer than `slot_timeout` (the gate's `hold_timeout`)
    /// for a dial slot is told `upstream_unavailable`.
    ///
    /// # Errors
    ///
    /// [`ProxyError::Dial`] when the dialer cannot be built (TLS set-up),
    /// [`ProxyError::IdentityHeaderName`] for a bad header name.
    pub fn new(
        config: &UpstreamConfig,
        max_message_bytes: usize,
        write_timeout: Duration,
        slot_timeout: Duration,
    ) -> Result<Upstream, ProxyError> {
        let identity_header =
            HeaderName::from_bytes(config.identity_header.as_bytes()).map_err(|_| {
                ProxyError::IdentityHeaderName {
                    name: config.identity_header.clone(),
                }
            })?;
        describe_metrics();
        Ok(Upstream {
            inner: Arc::new(UpstreamInner {
                relayed: Relayed::new().registered(),
                dialer: Dialer::new(config)?,
                subprotocols: config.subprotocols.clone(),
                identity_header,
                max_message_bytes,
                write_timeout,
                slot_timeout,
            }),
        })
    }

    /// The dialer, for its bound and gauges.
    pub fn dialer(&self) -> &Dialer {
        &self.inner.dialer
    }
}

impl Application for Upstream {
    fn name(&self) -> &'static str {
        "upstream"
    }

    /// The client's first offer that the backend speaks; the client speaks
    /// warmgate when it offered `warmgate.v1`.
    fn select(&self, offered: &[&str], offers_warmgate: bool) -> Selection {
        let subprotocol = offered
            .iter()
            .find(|offer| {
                self.inner
                    .subprotocols
                    .iter()
                    .any(|spoken| spoken == *offer)
            })
            .map(|offer| (*offer).to_owned());
        Selection {
            subprotocol,
            speaks_warmgate: offers_warmgate,
        }
    }

    fn open(&self, client: &Client<'_>) -> Box<dyn Session> {
        let path_and_query = match client.query {
            Some(query) => format!("{}?{query}", client.path),
            None => client.path.to_owned(),
        };
        let headers = self.upstream_headers(client);
        Box::new(UpstreamSession {
            inner: Arc::clone(&self.inner),
            path_and_query,
            headers: Some(headers),
            subprotocol: client.subprotocol.map(str::to_owned),
            state: State::Idle,
            room: None,
            undelivered: 0,
            n_relayed: [0; 2],
        })
    }
}

impl Upstream {
    /// The headers of the upstream handshake, from the client's.
    fn upstream_headers(&self, client: &Client<'_>) -> Result<HeaderMap, String> {
        let mut headers = HeaderMap::new();
        for name in PASSED_ON {
            for value in client.headers.get_all(&name) {
                headers.append(name.clone(), value.clone());
            }
        }
        match traceparent() {
            Some(value) => {
                headers.insert(TRACEPARENT, value);
            }
            None => {
                if let Some(value) = client.headers.get(TRACEPARENT) {
                    headers.insert(TRACEPARENT, value.clone());
                }
            }
        }
        // The client's own `X-Forwarded-For` chain, appended to.
        for value in client.headers.get_all("x-forwarded-for") {
            headers.append("x-forwarded-for", value.clone());
        }
        if let Some(peer) = client.peer {
            forward::add_forwarded(
                &mut headers,
                peer.ip(),
                "http",
                client.headers.get(header::HOST),
            );
        }
        let sub = client.identity.map(|identity| identity.subject.as_str());
        forward::set_identity(&mut headers, &self.inner.identity_header, sub)
            .map_err(|error| error.to_string())?;
        Ok(headers)
    }
}

/// `traceparent` (W3C Trace Context) naming the current span as the
/// parent, when there is an OpenTelemetry span.
fn traceparent() -> Option<HeaderValue> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    if !span_context.is_valid() {
        return None;
    }
    let value = format!(
        "00-{}-{}-{:02x}",
        span_context.trace_id(),
        span_context.span_id(),
        span_context.trace_flags().to_u8()
    );
    HeaderValue::from_str(&value).ok()
}

/// Where one client's backend connection stands.
enum State {
    /// Not dialed yet (the client is held, or the gate never admitted it).
    Idle,
    /// Open: relaying.
    Open(Box<Peer>, OpenGuard),
    /// The backend closed (or broke the protocol): our close frame, with
    /// this code, goes when the gate closes the session.
    Closing(Box<Peer>, u16),
    /// Over: the backend was lost, or both sides have closed.
    Closed,
}

/// Counts one open proxied connection for as long as it lives.
struct OpenGuard;

impl OpenGuard {
    fn new() -> OpenGuard {
        metrics::gauge!(UPSTREAM_CONNECTIONS).increment(1.0);
        OpenGuard
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        metrics::gauge!(UPSTREAM_CONNECTIONS).decrement(1.0);
    }
}

struct UpstreamSession {
    inner: Arc<UpstreamInner>,
    path_and_query: String,
    /// The handshake's headers until the dial takes them; `Err` when they
    /// could not be built (a `sub` no header can carry).
    headers: Option<Result<HeaderMap, String>>,
    subprotocol: Option<String>,
    state: State,
    /// Waits for room in the backend's queue after `has_room` said none.
    room: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// Client messages the backend never got.
    undelivered: u64,
    /// Messages relayed: to the backend, to the client.
    n_relayed: [u64; 2],
}

impl UpstreamSession {
    /// Counts a client message the backend never got.
    fn undelivered(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        self.undelivered += n;
        metrics::counter!(UPSTREAM_UNDELIVERED_TOTAL).increment(n);
    }

    /// The backend side is over for `reason`: the client gets `code`, and
    /// the backend `reply` (our half of the closing handshake) when the
    /// connection is still there.
    fn backend_ended(
        &mut self,
        failure: Option<&'static str>,
        reply: Option<u16>,
        code: u16,
        reason: &str,
    ) -> Outgoing {
        self.state = match std::mem::replace(&mut self.state, State::Closed) {
            State::Open(peer, _) => {
                // What was queued for the backend will never reach it.
                let queued = peer.n_queued() as u64;
                self.undelivered(queued);
                match reply {
                    Some(reply) => State::Closing(peer, reply),
                    None => State::Closed,
                }
            }
            other => other,
        };
        if let Some(failure) = failure {
            metrics::counter!(UPSTREAM_FAILURES_TOTAL, "reason" => failure).increment(1);
            tracing::warn!(
                reason = failure,
                close_code = code,
                "the backend's WebSocket ended without a proper close; the client is closed with {code}"
            );
        } else {
            tracing::debug!(close_code = code, "the backend closed the WebSocket");
        }
        Outgoing::Close {
            code,
            reason: reason.to_owned(),
        }
    }
}

/// `error` and each of its causes, as one line ("could not connect to the
/// backend at ws://...: Connection refused (os error 111)"), so the log
/// line an operator reads says what the system said.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        line.push_str(": ");
        line.push_str(&next.to_string());
        cause = next.source();
    }
    line
}

/// The close code the client gets for a backend close with `code` (RFC
/// 6455 section 7.4.1: 1005, 1006 and 1015 never go on the wire).
pub fn client_close_code(code: Option<u16>) -> u16 {
    match code {
        None | Some(1005) => CLOSE_NORMAL,
        Some(1006 | 1015) => CLOSE_INTERNAL_ERROR,
        Some(code) => code,
    }
}

impl Session for UpstreamSession {
    fn admit(&mut self) -> BoxFuture<'_, Result<(), AdmitError>> {
        Box::pin(async move {
            let headers = match self.headers.take() {
                Some(Ok(headers)) => headers,
                Some(Err(detail)) => {
                    return Err(AdmitError {
                        reason: UnavailableReason::UpstreamUnavailable,
                        detail,
                    });
                }
                None => HeaderMap::new(),
            };
            let dialer = &self.inner.dialer;
            let Ok(slot) = tokio::time::timeout(self.inner.slot_timeout, dialer.slot()).await
            else {
                metrics::counter!(UPSTREAM_FAILURES_TOTAL, "reason" => "no_dial_slot").increment(1);
                return Err(AdmitError {
                    reason: UnavailableReason::UpstreamUnavailable,
                    detail: format!(
                        "no dial slot came free within {:?}: every one of max_concurrent_dials was busy",
                        self.inner.slot_timeout
                    ),
                });
            };
            let socket = dialer
                .dial(
                    slot,
                    &self.path_and_query,
                    headers,
                    self.subprotocol.as_deref(),
                )
                .await
                .map_err(|error| AdmitError {
                    reason: UnavailableReason::UpstreamUnavailable,
                    detail: with_causes(&error),
                })?;
            let peer = Peer::new(
                socket.socket,
                Role::Client,
                self.inner.max_message_bytes,
                self.inner.write_timeout,
            );
            self.state = State::Open(Box::new(peer), OpenGuard::new());
            Ok(())
        })
    }

    fn on_message(
        &mut self,
        message: Message,
        _replies: &mut Replies<'_>,
    ) -> Result<(), ClientGone> {
        let len = message.len() as u64;
        let sent = match &mut self.state {
            State::Open(peer, _) => peer.send(message).is_ok(),
            State::Idle | State::Closing(..) | State::Closed => false,
        };
        if sent {
            self.n_relayed[0] += 1;
            self.inner.relayed.count(0, len);
        } else {
            // The backend is gone: the next poll tells the client.
            self.undelivered(1);
        }
        Ok(())
    }

    fn poll_outgoing(&mut self, cx: &mut Context<'_>) -> Poll<Outgoing> {
        let State::Open(peer, _) = &mut self.state else {
            return Poll::Pending;
        };
        if let Some(room) = &mut self.room {
            if room.as_mut().poll(cx).is_ready() {
                self.room = None;
                return Poll::Ready(Outgoing::Room);
            }
        } else if !peer.has_room() {
            let signal = peer.room_signal();
            let mut room: Pin<Box<dyn Future<Output = ()> + Send>> =
                Box::pin(async move { signal.wait().await });
            if room.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Outgoing::Room);
            }
            self.room = Some(room);
        }
        loop {
            let incoming = match peer.poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(incoming) => incoming,
            };
            let message = match incoming {
                Incoming::Text(text) => Message::Text(text),
                Incoming::Binary(bytes) => Message::Binary(bytes),
                Incoming::Ping(payload) => {
                    // A failed pong shows as the connection's end next.
                    let _ = peer.send_frame(Frame::pong(Payload::Owned(payload)));
                    continue;
                }
                Incoming::Pong => continue,
                Incoming::Close { code, reason } => {
                    // The backend's half of the closing handshake is done;
                    // ours echoes its code when the gate closes the session.
                    let reply = code.unwrap_or(CLOSE_NORMAL);
                    let code = client_close_code(code);
                    return Poll::Ready(self.backend_ended(None, Some(reply), code, &reason));
                }
                Incoming::Violation { code, .. } => {
                    return Poll::Ready(self.backend_ended(
                        Some("protocol_error"),
                        Some(code),
                        CLOSE_INTERNAL_ERROR,
                        "the backend broke the WebSocket protocol",
                    ));
                }
                Incoming::Gone => {
                    return Poll::Ready(self.backend_ended(
                        Some("lost"),
                        None,
                        CLOSE_INTERNAL_ERROR,
                        "the backend's connection was lost",
                    ));
                }
            };
            self.n_relayed[1] += 1;
            self.inner.relayed.count(1, message.len() as u64);
            return Poll::Ready(Outgoing::Message(message));
        }
    }

    fn has_room(&self) -> bool {
        match &self.state {
            State::Open(peer, _) => peer.has_room(),
            State::Idle | State::Closing(..) | State::Closed => true,
        }
    }

    fn close(&mut self, code: u16, reason: &str) -> BoxFuture<'_, ()> {
        let reason = reason.to_owned();
        Box::pin(async move {
            let deadline = Instant::now() + CLOSE_WAIT;
            // Closed from the start, so that a close cut off by its
            // caller's timeout (the drain's 0.5 s) is over: a second call
            // returns at once instead of waiting on the backend again.
            let (mut peer, _open) = match std::mem::replace(&mut self.state, State::Closed) {
                State::Open(peer, open) => (peer, open),
                State::Closing(mut peer, reply) => {
                    // The backend closed first: only our reply is left.
                    peer.close(reply, "", deadline).await;
                    return;
                }
                State::Idle | State::Closed => return,
            };
            let queued = peer.n_queued() as u64;
            if peer.close(code, &reason, deadline).await {
                // The backend's reply completes the handshake; what else it
                // sends now has no client to go to.
                let _ = tokio::time::timeout_at(deadline, async {
                    loop {
                        let incoming = std::future::poll_fn(|cx| peer.poll_next(cx)).await;
                        if matches!(
                            incoming,
                            Incoming::Close { .. } | Incoming::Gone | Incoming::Violation { .. }
                        ) {
                            break;
                        }
                    }
                })
                .await;
            } else {
                self.undelivered(queued);
            }
        })
    }

    fn summary(&self) -> Option<Summary> {
        let [to_backend, to_client] = self.n_relayed;
        if matches!(self.state, State::Idle) && to_backend == 0 {
            return None;
        }
        let mut text =
            format!("relayed {to_backend} messages to the backend and {to_client} to the client");
        if self.undelivered > 0 {
            text.push_str(&format!(
                "; {} client messages never reached the backend",
                self.undelivered
            ));
        }
        Some(Summary {
            text,
            notable: self.undelivered > 0,
        })
    }
}

/// Describes the relay's metrics and registers their series at zero.
fn describe_metrics() {
    metrics::describe_counter!(
        UPSTREAM_MESSAGES_TOTAL,
        "WebSocket messages relayed between clients and the backend, by direction"
    );
    metrics::describe_counter!(
        UPSTREAM_BYTES_TOTAL,
        metrics::Unit::Bytes,
        "WebSocket payload bytes relayed between clients and the backend, by direction"
    );
    metrics::describe_gauge!(
        UPSTREAM_CONNECTIONS,
        "open proxied WebSocket connections (dialed and not yet closed)"
    );
    metrics::describe_counter!(
        UPSTREAM_UNDELIVERED_TOTAL,
        "client messages the backend never got (it was gone, or they were still queued at the close)"
    );
    metrics::describe_counter!(
        UPSTREAM_FAILURES_TOTAL,
        "proxied WebSocket connections whose backend side failed, by reason"
    );
    metrics::gauge!(UPSTREAM_CONNECTIONS).increment(0.0);
    metrics::counter!(UPSTREAM_UNDELIVERED_TOTAL).increment(0);
    for reason in ["lost", "protocol_error", "no_dial_slot"] {
        metrics::counter!(UPSTREAM_FAILURES_TOTAL, "reason" => reason).increment(0);
    }
}
