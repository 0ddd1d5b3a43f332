//! Dialing the backend's WebSocket: [`Dialer`] opens one connection to the
//! `[upstream]` backend for one admitted client (TCP, TLS for `wss://`,
//! then the client's side of the RFC 6455 §4.1 opening handshake), under a
//! bound on how many dials run at once, and measures each dial (the
//! `upstream.dial` span and the `warmgate_upstream_dial*` metrics).
//!
//! This module does not choose which of the client's headers travel to the
//! backend (the caller does, and passes them as they are), never retries,
//! and never relays a frame: the caller gets the open [`UpstreamSocket`] and
//! decides everything after the 101, closes and pongs included.
//!
//! Long because a dial is one sequence (TCP, TLS, the upgrade request, the
//! answer's checks), and each step's error names what the operator should
//! look at.

use std::error::Error as StdError;
use std::fmt;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use fastwebsockets::{Role, WebSocket};
use futures_util::future::{Either, select};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, StatusCode, Uri};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use metrics::{Counter, Gauge, Histogram};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tracing::Instrument as _;
use warmgate_config::UpstreamConfig;

/// Histogram: how long one dial took, from its start (the slot already
/// held) to the open socket or the failure, by `outcome` (`ok` or the
/// [`DialError::reason`]). Seconds.
pub const DIAL_DURATION_SECONDS: &str = "warmgate_upstream_dial_duration_seconds";
/// Counter: failed dials, by `reason` ([`DialError::reason`]).
pub const DIAL_FAILURES_TOTAL: &str = "warmgate_upstream_dial_failures_total";
/// Gauge: dial slots held right now (see [`Dialer::slot`]).
pub const DIALS_IN_FLIGHT: &str = "warmgate_upstream_dials_in_flight";

/// The buckets of [`DIAL_DURATION_SECONDS`]: from 250 us (a loopback dial)
/// to 10 s (past the longest sane `dial_timeout`).
pub const DIAL_DURATION_BUCKETS: [f64; 14] = [
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Every reason a dial can fail with, in the order of [`DialError::reason`]'s
/// documentation; their series are registered at zero up front.
pub const DIAL_FAILURE_REASONS: [&str; 6] = [
    "connect",
    "tls",
    "timeout",
    "status",
    "subprotocol",
    "handshake",
];

/// The GUID that RFC 6455 §1.3 appends to the key to make the accept value.
const WEBSOCKET_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

// === DialError ===

/// Why a dial failed. Every message names the backend by its address
/// (`ws://host:port`, which holds no secret) and says what happened; none
/// repeats a header value, the request's query or a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DialError {
    /// Only from [`Dialer::new`]: `[upstream] url` names no host a
    /// connection or TLS can use.
    #[error("the backend address {backend} cannot be dialed: {problem}")]
    Address {
        /// The backend, as `ws://host:port` or `wss://host:port`.
        backend: String,
        /// What is wrong with it, in words.
        problem: &'static str,
    },
    /// Nothing accepted the TCP connection: refused, unreachable, or the
    /// host name did not resolve.
    #[error("could not connect to the backend at {backend}")]
    Connect {
        /// The backend, as `ws://host:port` or `wss://host:port`.
        backend: String,
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed (a certificate the platform does not trust,
    /// a name mismatch, no common version), or, from [`Dialer::new`], the
    /// TLS client could not be set up.
    #[error("the TLS handshake with the backend at {backend} failed")]
    Tls {
        /// The backend, as `ws://host:port` or `wss://host:port`.
        backend: String,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// TCP, TLS and the handshake together took longer than `dial_timeout`.
    #[error("the backend at {backend} did not complete the WebSocket handshake within {timeout:?}")]
    Timeout {
        /// The backend, as `ws://host:port` or `wss://host:port`.
        backend: String,
        /// `dial_timeout`.
        timeout: Duration,
    },
    /// The backend answered the upgrade request with a status other than
    /// 101 Switching Protocols.
    #[error(
        "the backend at {backend} answered the WebSocket upgrade with {status}, expected 101 Switching Protocols"
    )]
    Status {
        /// The backend, as `ws://host:port` or `wss://host:port`.
        backend: String,
        /// The backend's answer.
        status: StatusCode,
    },
    /// The backend's `Sec-WebSocket-Protocol` is not the one offered: it
    /// selected another, or one when none was offered, or none when one
    /// was. RFC 6455 §4.1 requires the client to fail the connection then.
    #[error("the backend at {backend} {problem}")]
    Subprotocol {
        /// The backend, as `ws://host:port` or `wss://host:port`.
        backend: String,
        /// The subprotocol warmgate offered, if any (a value from
        /// `[upstream] subprotocols`).
        offered: Option<String>,
        /// What the backend did, in words.
        problem: &'static str,
    },
    /// Anything else in the handshake: the connection closed before an
    /// answer, an answer that is not HTTP/1.1, a 101 without the
    /// `Upgrade`, `Connection` or `Sec-WebSocket-Accept` RFC 6455 §4.1
    /// requires, an extension that was not offered, or a request target
    /// that is not a path.
    #[error("the WebSocket handshake with the backend at {backend} failed: {problem}")]
    Handshake {
        /// The backend, as `ws://host:port` or `wss://host:port`.
        backend: String,
        /// What went wrong, in words.
        problem: &'static str,
        #[source]
        source: Option<Box<dyn StdError + Send + Sync>>,
    },
}

impl DialError {
    /// A stable label for metrics and spans: `connect`, `tls`, `timeout`,
    /// `status`, `subprotocol` or `handshake` (one of
    /// [`DIAL_FAILURE_REASONS`]), and `address` for the configuration
    /// error only [`Dialer::new`] returns.
    pub fn reason(&self) -> &'static str {
        match self {
            DialError::Address { .. } => "address",
            DialError::Connect { .. } => "connect",
            DialError::Tls { .. } => "tls",
            DialError::Timeout { .. } => "timeout",
            DialError::Status { .. } => "status",
            DialError::Subprotocol { .. } => "subprotocol",
            DialError::Handshake { .. } => "handshake",
        }
    }

    /// The backend's answer when it refused the upgrade with a non-101
    /// status, else `None`.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            DialError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

// === Dialer ===

/// Dials the `[upstream]` backend's WebSocket.
///
/// Cheap to clone: clones share the TLS client configuration and the one
/// bound on concurrent dials. A dial is two steps: [`Dialer::slot`] waits
/// for one of `max_concurrent_dials` slots (first come, first served), and
/// [`Dialer::dial`] spends it.
///
/// Invariant: at most `max_concurrent_dials` [`DialSlot`]s of one dialer
/// (and its clones) exist at any time, so at most that many dials run.
#[derive(Clone)]
pub struct Dialer {
    inner: Arc<DialerInner>,
}

struct DialerInner {
    backend: Backend,
    /// `Some` for `wss://`: built once, with the platform's roots.
    tls: Option<TlsConnector>,
    slots: Arc<Semaphore>,
    max_concurrent_dials: usize,
    dial_timeout: Duration,
    meter: DialMeter,
}

/// Where the backend is, in the forms the dial needs.
struct Backend {
    /// `ws://host:port` or `wss://host:port`, as errors name it.
    shown: String,
    /// The host as OpenTelemetry's `server.address` wants it: a name, or
    /// an IP address without brackets.
    host: String,
    port: u16,
    /// An IP address is connected to directly; a name is resolved.
    ip: Option<std::net::IpAddr>,
    /// The `Host` header: the host, and the port unless it is the
    /// scheme's default (RFC 6455 §4.1).
    authority: HeaderValue,
    /// What TLS checks the certificate against, and sends as SNI for a name.
    server_name: ServerName<'static>,
    scheme: &'static str,
}

impl fmt::Debug for Dialer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dialer")
            .field("backend", &self.inner.backend.shown)
            .field("max_concurrent_dials", &self.inner.max_concurrent_dials)
            .field("dial_timeout", &self.inner.dial_timeout)
            .field("dials_in_flight", &self.dials_in_flight())
            .finish_non_exhaustive()
    }
}

impl Dialer {
    /// A dialer for `upstream.url` (`ws://` or `wss://`, a host, a port or
    /// the scheme's default), with `upstream.max_concurrent_dials` slots
    /// and `upstream.dial_timeout` per dial. For `wss://` the TLS client is
    /// built here, once: rustls on ring, the platform's trusted roots
    /// (rustls-platform-verifier), ALPN `http/1.1`.
    ///
    /// Describes the dial metrics and registers every series at zero.
    ///
    /// # Errors
    ///
    /// [`DialError::Address`] for a URL with no host or of another scheme
    /// (which a config from `warmgate_config` never has), and
    /// [`DialError::Tls`] when the platform's verifier cannot be set up
    /// (on Linux: no CA certificates on the system, as in an image without
    /// `ca-certificates`).
    pub fn new(upstream: &UpstreamConfig) -> Result<Dialer, DialError> {
        let backend = Backend::from_url(&upstream.url)?;
        let tls = if backend.scheme == "wss" {
            Some(tls_connector(&backend)?)
        } else {
            None
        };
        // A zero bound would hold every client forever; the config never
        // allows it, and one slot is the least that works.
        let max_concurrent_dials = upstream.max_concurrent_dials.max(1);
        Ok(Dialer {
            inner: Arc::new(DialerInner {
                backend,
                tls,
                slots: Arc::new(Semaphore::new(max_concurrent_dials)),
                max_concurrent_dials,
                dial_timeout: upstream.dial_timeout,
                meter: DialMeter::new(),
            }),
        })
    }

    /// Waits for one of the `max_concurrent_dials` dial slots, first come,
    /// first served, and returns it; the slot is free again when the
    /// [`DialSlot`] is dropped (at the latest when the dial it is given to
    /// ends).
    ///
    /// Cancel-safe: dropping the future before it completes gives up its
    /// place in the queue and takes no slot.
    pub async fn slot(&self) -> DialSlot {
        let permit = Arc::clone(&self.inner.slots)
            .acquire_owned()
            .await
            .expect("the dial semaphore is never closed");
        self.inner.meter.in_flight.increment(1.0);
        DialSlot {
            _permit: permit,
            in_flight: self.inner.meter.in_flight.clone(),
        }
    }

    /// How many dial slots are held right now, from 0 to
    /// `max_concurrent_dials`.
    pub fn dials_in_flight(&self) -> usize {
        self.inner.max_concurrent_dials - self.inner.slots.available_permits()
    }

    /// Opens a WebSocket to the backend, holding `slot` until it ends.
    ///
    /// - `path_and_query`: the request target, such as `/ws?room=a`; it
    ///   must start with `/` (empty means `/`). The query never reaches a
    ///   span, a log line or an error.
    /// - `headers`: sent as they are, except that the handshake's own are
    ///   set here and replace any copy in the map: `Host` (the backend's
    ///   authority), `Upgrade`, `Connection`, `Sec-WebSocket-Key`,
    ///   `Sec-WebSocket-Version: 13`, `Sec-WebSocket-Protocol` (only when
    ///   `subprotocol` is given, else removed), and no
    ///   `Sec-WebSocket-Extensions` (warmgate offers none).
    /// - `subprotocol`: the one subprotocol to offer, if any.
    ///
    /// TCP (with `TCP_NODELAY`), TLS for `wss://` (SNI = the host) and the
    /// RFC 6455 §4.1 handshake all happen within `dial_timeout`; a dial
    /// that runs out of time is dropped, and its connection closed, at its
    /// current step. The answer must be 101 with `Upgrade: websocket`,
    /// `Connection: Upgrade`, the right `Sec-WebSocket-Accept`, no
    /// extension, and exactly the subprotocol offered (or none when none
    /// was).
    ///
    /// Cancel-safe: dropping the future (the client left) closes the
    /// connection at its current step, frees the slot and records nothing.
    ///
    /// Runs in the span `upstream.dial`, a child of the caller's, and
    /// records [`DIAL_DURATION_SECONDS`] and, on failure,
    /// [`DIAL_FAILURES_TOTAL`].
    ///
    /// # Errors
    ///
    /// [`DialError::Connect`], [`DialError::Tls`], [`DialError::Timeout`],
    /// [`DialError::Status`] (with the backend's status),
    /// [`DialError::Subprotocol`] and [`DialError::Handshake`]; see
    /// [`DialError::reason`] for their labels.
    pub async fn dial(
        &self,
        slot: DialSlot,
        path_and_query: &str,
        headers: HeaderMap,
        subprotocol: Option<&str>,
    ) -> Result<UpstreamSocket, DialError> {
        let backend = &self.inner.backend;
        let path = path_and_query
            .split_once('?')
            .map_or(path_and_query, |(path, _query)| path);
        let span = tracing::info_span!(
            "upstream.dial",
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            server.address = %backend.host,
            server.port = backend.port,
            url.scheme = backend.scheme,
            url.path = path,
            network.protocol.name = "websocket",
            error.type = tracing::field::Empty,
        );
        let started = Instant::now();
        let timeout = self.inner.dial_timeout;
        let result = tokio::time::timeout(timeout, self.open(path_and_query, headers, subprotocol))
            .instrument(span.clone())
            .await
            .unwrap_or_else(|_elapsed| {
                Err(DialError::Timeout {
                    backend: backend.shown.clone(),
                    timeout,
                })
            });
        let elapsed = started.elapsed();
        // The slot is free again before the caller sees the result, so a
        // client refused here never holds up the next one.
        drop(slot);
        match &result {
            Ok(_) => self.inner.meter.succeeded(elapsed),
            Err(error) => {
                self.inner.meter.failed(error.reason(), elapsed);
                span.record("error.type", error.reason());
                span.record("otel.status_code", "error");
                tracing::debug!(
                    parent: &span,
                    error = %error,
                    cause = error.source().map(tracing::field::display),
                    "upstream dial failed; no retry, the caller decides what the client is told"
                );
            }
        }
        result
    }

    /// TCP, TLS and the handshake, unbounded: [`Dialer::dial`] bounds it.
    async fn open(
        &self,
        path_and_query: &str,
        headers: HeaderMap,
        subprotocol: Option<&str>,
    ) -> Result<UpstreamSocket, DialError> {
        let backend = &self.inner.backend;
        let target = request_target(path_and_query).ok_or_else(|| DialError::Handshake {
            backend: backend.shown.clone(),
            problem: "the request target is not a path starting with `/`",
            source: None,
        })?;
        let (request, key) = handshake_request(target, headers, &backend.authority, subprotocol)
            .map_err(|problem| DialError::Handshake {
                backend: backend.shown.clone(),
                problem,
                source: None,
            })?;
        let tcp = self.connect().await?;
        match &self.inner.tls {
            None => handshake(backend, tcp, request, &key, subprotocol).await,
            Some(connector) => {
                let tls = connector
                    .connect(backend.server_name.clone(), tcp)
                    .await
                    .map_err(|error| DialError::Tls {
                        backend: backend.shown.clone(),
                        source: Box::new(error),
                    })?;
                handshake(backend, tls, request, &key, subprotocol).await
            }
        }
    }

    async fn connect(&self) -> Result<TcpStream, DialError> {
        let backend = &self.inner.backend;
        let connected = match backend.ip {
            Some(ip) => TcpStream::connect(SocketAddr::new(ip, backend.port)).await,
            None => TcpStream::connect((backend.host.as_str(), backend.port)).await,
        };
        let failed = |source| DialError::Connect {
            backend: backend.shown.clone(),
            source,
        };
        let tcp = connected.map_err(failed)?;
        // Frames are relayed one by one; Nagle would hold small ones back.
        tcp.set_nodelay(true).map_err(failed)?;
        Ok(tcp)
    }
}

impl Backend {
    fn from_url(url: &url::Url) -> Result<Backend, DialError> {
        let shown_without_port = || format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
        let address = |problem| DialError::Address {
            backend: shown_without_port(),
            problem,
        };
        let scheme = match url.scheme() {
            "ws" => "ws",
            "wss" => "wss",
            _ => return Err(address("expected a ws:// or wss:// URL")),
        };
        let (host, ip, server_name) = match url.host() {
            Some(url::Host::Domain(name)) => {
                let server_name = ServerName::try_from(name.to_owned())
                    .map_err(|_| address("the host is not a name TLS can check"))?;
                (name.to_owned(), None, server_name)
            }
            Some(url::Host::Ipv4(ip)) => (ip.to_string(), Some(ip.into()), ServerName::from(ip)),
            Some(url::Host::Ipv6(ip)) => (ip.to_string(), Some(ip.into()), ServerName::from(ip)),
            None => return Err(address("expected a host")),
        };
        let port = url
            .port_or_known_default()
            .ok_or_else(|| address("expected a port"))?;
        // The host as the URL writes it (IPv6 in brackets), and the port
        // only when the URL names one other than the scheme's default.
        let authority_text = &url[url::Position::BeforeHost..url::Position::AfterPort];
        let authority = HeaderValue::from_str(authority_text)
            .map_err(|_| address("the host is not a valid Host header"))?;
        Ok(Backend {
            // `host_str` writes an IPv6 address in brackets.
            shown: format!("{scheme}://{}:{port}", url.host_str().unwrap_or(&host)),
            host,
            port,
            ip,
            authority,
            server_name,
            scheme,
        })
    }
}

/// The TLS client for `wss://`: rustls on ring, the platform's verifier,
/// HTTP/1.1 only (the WebSocket upgrade is an HTTP/1.1 exchange).
fn tls_connector(backend: &Backend) -> Result<TlsConnector, DialError> {
    use rustls_platform_verifier::BuilderVerifierExt as _;

    warmgate_outbound::install_crypto_provider();
    let mut config = rustls::ClientConfig::builder()
        .with_platform_verifier()
        .map_err(|error| DialError::Tls {
            backend: backend.shown.clone(),
            source: Box::new(error),
        })?
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

// === DialSlot ===

/// One of a [`Dialer`]'s `max_concurrent_dials` slots, from
/// [`Dialer::slot`]: held for the duration of one dial, free again when
/// dropped.
pub struct DialSlot {
    _permit: OwnedSemaphorePermit,
    in_flight: Gauge,
}

impl fmt::Debug for DialSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DialSlot").finish_non_exhaustive()
    }
}

impl Drop for DialSlot {
    fn drop(&mut self) {
        self.in_flight.decrement(1.0);
    }
}

// === UpstreamSocket ===

/// An open WebSocket to the backend, from [`Dialer::dial`].
///
/// `socket` is in the client role (it masks the frames it writes, RFC 6455
/// §5.3) with auto-close and auto-pong off: the relay answers pings and
/// closes itself. No message size limit is set beyond fastwebsockets' own.
pub struct UpstreamSocket {
    pub socket: WebSocket<TokioIo<Upgraded>>,
    /// The subprotocol the backend selected: always the one offered, or
    /// `None` when none was.
    pub subprotocol: Option<String>,
}

impl fmt::Debug for UpstreamSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamSocket")
            .field("subprotocol", &self.subprotocol)
            .finish_non_exhaustive()
    }
}

// === The handshake ===

/// The origin-form request target, or `None` when `path_and_query` is not
/// one.
fn request_target(path_and_query: &str) -> Option<Uri> {
    let path_and_query = if path_and_query.is_empty() {
        "/"
    } else {
        path_and_query
    };
    if !path_and_query.starts_with('/') {
        return None;
    }
    // A string starting with `/` parses as a path and query only.
    Uri::try_from(path_and_query).ok()
}

/// The upgrade request (RFC 6455 §4.1) and its `Sec-WebSocket-Key`.
fn handshake_request(
    target: Uri,
    mut headers: HeaderMap,
    authority: &HeaderValue,
    subprotocol: Option<&str>,
) -> Result<(Request<Empty<Bytes>>, String), &'static str> {
    let key = fastwebsockets::handshake::generate_key();
    headers.insert(header::HOST, authority.clone());
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(
        header::SEC_WEBSOCKET_KEY,
        HeaderValue::from_str(&key).map_err(|_| "the generated key is not a header value")?,
    );
    headers.insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static("13"),
    );
    headers.remove(header::SEC_WEBSOCKET_EXTENSIONS);
    match subprotocol {
        Some(protocol) => {
            let value = HeaderValue::from_str(protocol)
                .map_err(|_| "the subprotocol is not a valid header value")?;
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, value);
        }
        None => {
            headers.remove(header::SEC_WEBSOCKET_PROTOCOL);
        }
    }
    let mut request = Request::new(Empty::new());
    *request.uri_mut() = target;
    *request.headers_mut() = headers;
    Ok((request, key))
}

/// Sends the upgrade request on `stream` and checks the answer.
///
/// The HTTP/1.1 connection is driven inside this future rather than on a
/// spawned task, so a dial that is dropped (timed out) leaves nothing
/// behind and closes its socket.
async fn handshake<S>(
    backend: &Backend,
    stream: S,
    request: Request<Empty<Bytes>>,
    key: &str,
    offered: Option<&str>,
) -> Result<UpstreamSocket, DialError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let failed = |problem: &'static str, source: Option<hyper::Error>| DialError::Handshake {
        backend: backend.shown.clone(),
        problem,
        source: source.map(|error| Box::new(error) as Box<dyn StdError + Send + Sync>),
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| failed("the HTTP/1.1 connection could not start", Some(error)))?;
    let exchange = async move {
        let mut response = sender
            .send_request(request)
            .await
            .map_err(|error| failed(hyper_problem(&error), Some(error)))?;
        check_response(backend, &response, key, offered)?;
        let upgraded = hyper::upgrade::on(&mut response).await.map_err(|error| {
            failed(
                "the connection could not be taken over after the 101",
                Some(error),
            )
        })?;
        // Dropping the sender lets a connection that was not upgraded end.
        drop(sender);
        Ok::<_, DialError>((upgraded, response))
    };
    let exchange = pin!(exchange);
    let connection = pin!(connection.with_upgrades());
    let (upgraded, response) = match select(exchange, connection).await {
        Either::Left((exchanged, _connection)) => exchanged?,
        // The connection ends first when it hands its socket to the
        // upgrade (the exchange then completes at once) or when the backend
        // closed it (the exchange then fails).
        Either::Right((Ok(()), exchange)) => exchange.await?,
        Either::Right((Err(error), _exchange)) => {
            return Err(failed(hyper_problem(&error), Some(error)));
        }
    };
    let mut socket = WebSocket::after_handshake(TokioIo::new(upgraded), Role::Client);
    socket.set_auto_close(false);
    socket.set_auto_pong(false);
    Ok(UpstreamSocket {
        socket,
        subprotocol: selected_subprotocol(&response).map(str::to_owned),
    })
}

/// What went wrong, in words, for a hyper error of the exchange.
fn hyper_problem(error: &hyper::Error) -> &'static str {
    if error.is_incomplete_message() || error.is_closed() || error.is_canceled() {
        "the backend closed the connection before answering the upgrade"
    } else if error.is_parse() || error.is_parse_status() {
        "the backend's answer is not HTTP/1.1"
    } else if error.is_timeout() {
        "the backend's answer took too long"
    } else {
        "the upgrade request could not be sent or answered"
    }
}

/// The checks of RFC 6455 §4.1 on the backend's answer, in its order:
/// status, `Upgrade`, `Connection`, `Sec-WebSocket-Accept`, extensions,
/// subprotocol.
fn check_response(
    backend: &Backend,
    response: &http::Response<Incoming>,
    key: &str,
    offered: Option<&str>,
) -> Result<(), DialError> {
    let handshake = |problem| DialError::Handshake {
        backend: backend.shown.clone(),
        problem,
        source: None,
    };
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Err(DialError::Status {
            backend: backend.shown.clone(),
            status: response.status(),
        });
    }
    let headers = response.headers();
    if !has_token(headers, &header::UPGRADE, "websocket") {
        return Err(handshake("the 101 has no `Upgrade: websocket`"));
    }
    if !has_token(headers, &header::CONNECTION, "upgrade") {
        return Err(handshake("the 101 has no `Connection: Upgrade`"));
    }
    let accept = headers.get(header::SEC_WEBSOCKET_ACCEPT);
    if accept.map(HeaderValue::as_bytes) != Some(accept_value(key).as_bytes()) {
        return Err(handshake(
            "the 101's `Sec-WebSocket-Accept` is missing or does not match the key",
        ));
    }
    if headers.contains_key(header::SEC_WEBSOCKET_EXTENSIONS) {
        return Err(handshake(
            "the 101 selects an extension, and none was offered",
        ));
    }
    let selected = selected_subprotocol(response);
    let several = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .count()
        > 1;
    let problem = match (offered, selected) {
        _ if several => Some("selected more than one subprotocol"),
        (Some(offered), Some(selected)) if offered != selected => {
            Some("selected a subprotocol other than the one offered")
        }
        (None, Some(_)) => Some("selected a subprotocol, and none was offered"),
        (Some(_), None) => Some("selected no subprotocol, and one was offered"),
        _ => None,
    };
    match problem {
        Some(problem) => Err(DialError::Subprotocol {
            backend: backend.shown.clone(),
            offered: offered.map(str::to_owned),
            problem,
        }),
        None => Ok(()),
    }
}

/// The answer's `Sec-WebSocket-Protocol`, if it is one readable value.
fn selected_subprotocol(response: &http::Response<Incoming>) -> Option<&str> {
    response
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .map(|value| value.to_str().unwrap_or("\u{fffd}").trim())
}

/// Whether a header's comma-separated values include `token`, in any case.
fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

/// `Sec-WebSocket-Accept` for `key`: base64 of the SHA-1 of the key and
/// the RFC 6455 GUID (§4.2.2).
fn accept_value(key: &str) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    context.update(key.as_bytes());
    context.update(WEBSOCKET_GUID);
    base64::engine::general_purpose::STANDARD.encode(context.finish())
}

// === DialMeter ===

/// The dial metrics' handles, taken once when the [`Dialer`] is made, so
/// every series exists from the start and a dial looks nothing up.
struct DialMeter {
    in_flight: Gauge,
    ok: Histogram,
    /// By [`DIAL_FAILURE_REASONS`]: the duration and the count of each.
    failures: [(&'static str, Histogram, Counter); 6],
}

impl DialMeter {
    /// Describes the metrics and registers every series at zero. Without
    /// an installed recorder (unit tests) every handle is a no-op.
    fn new() -> DialMeter {
        metrics::describe_histogram!(
            DIAL_DURATION_SECONDS,
            metrics::Unit::Seconds,
            "time to dial the upstream backend's WebSocket (TCP, TLS, handshake), by outcome"
        );
        metrics::describe_counter!(
            DIAL_FAILURES_TOTAL,
            "failed dials of the upstream backend's WebSocket, by reason"
        );
        metrics::describe_gauge!(
            DIALS_IN_FLIGHT,
            "upstream dials in flight (dial slots held)"
        );
        let in_flight = metrics::gauge!(DIALS_IN_FLIGHT);
        // Not set to zero: a second dialer (a reload) must not reset the
        // count of the first one's dials.
        in_flight.increment(0.0);
        let failures = DIAL_FAILURE_REASONS.map(|reason| {
            let counter = metrics::counter!(DIAL_FAILURES_TOTAL, "reason" => reason);
            counter.increment(0);
            (
                reason,
                metrics::histogram!(DIAL_DURATION_SECONDS, "outcome" => reason),
                counter,
            )
        });
        DialMeter {
            in_flight,
            ok: metrics::histogram!(DIAL_DURATION_SECONDS, "outcome" => "ok"),
            failures,
        }
    }

    fn succeeded(&self, elapsed: Duration) {
        self.ok.record(elapsed.as_secs_f64());
    }

    fn failed(&self, reason: &'static str, elapsed: Duration) {
        if let Some((_, duration, count)) = self.failures.iter().find(|(r, ..)| *r == reason) {
            duration.record(elapsed.as_secs_f64());
            count.increment(1);
        }
    }
}

#[cfg(test)]
mod tests;
