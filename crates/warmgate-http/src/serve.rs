//! Serving a router on a TCP listener, with the limits a public edge needs.
//!
//! Each request carries its connection's peer address as
//! `ConnectInfo<SocketAddr>` in its extensions, for the per-address limits.
//!
//! With [`ServeSettings::http2`] (the admin listener, for gRPC), a
//! connection that opens with HTTP/2's preface is served as HTTP/2 with
//! prior knowledge (h2c) and any other as HTTP/1.1, exactly as without it.
//! A connection that has not sent enough to tell (24 bytes) within
//! `header_read_timeout` is dropped, as an HTTP/1.1 one without a whole
//! request head is.
//!
//! At shutdown the listener closes (logged as `stopped listening`, with the
//! time), requests in flight are answered, and every other connection is
//! closed: an idle keep-alive connection, or one that has sent only part of
//! a request head, never holds the exit. [`HttpActivity`] counts the
//! requests in flight, for the drain's log line.
//!
//! The shutdown is written here rather than with hyper-util's
//! `GracefulShutdown`, which calls each connection's `graceful_shutdown`
//! and waits for them all. That rule is not ours in three ways:
//! - an HTTP/1.1 connection that has sent part of a request head keeps
//!   hyper waiting for the rest until `header_read_timeout`, so a slow or
//!   half-open client would hold the exit; here it is dropped after
//!   `UNFINISHED_CONNECTION_WAIT`;
//! - a connection accepted just before the stop, whose request has not
//!   arrived yet, would be closed at once; here it gets that same moment,
//!   and connections the kernel completed but nobody accepted are served;
//! - the drain's log line needs the number of requests in flight
//!   ([`HttpActivity`]), which `GracefulShutdown` does not count.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::ConnectInfo;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::BytesRead;
use crate::request_head::HostRule;

/// How connections are served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeSettings {
    /// A connection that has not sent a complete request head within this
    /// is dropped: slow or half-open clients must not pin memory.
    pub header_read_timeout: Duration,
    /// Also serve HTTP/2 with prior knowledge (cleartext, the client's
    /// first bytes being HTTP/2's preface) beside HTTP/1.1: gRPC on the
    /// admin listener. False on the public listener.
    pub http2: bool,
}

/// The listen backlog: room for a burst of thousands of connects (Linux caps
/// it at `net.core.somaxconn`, 4096 by default).
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds a TCP listener with [`LISTEN_BACKLOG`] and `SO_REUSEADDR`, as a
/// server that restarts on the same port needs.
pub fn bind_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// How long to back off after a failed accept (out of file descriptors,
/// say), so that the loop does not spin while the condition lasts.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// At shutdown, how long a connection with no request in flight may still
/// start one before it is closed: long enough for a client that connected
/// just before the stop to send its request, and for hyper to flush a
/// response it has just finished; short enough that a client that sent
/// half a request head never holds the exit.
const UNFINISHED_CONNECTION_WAIT: Duration = Duration::from_millis(100);

/// The HTTP requests in flight on the listeners served with it: from the
/// moment a whole request head has arrived until the response's body has
/// been sent (an event stream's to its end). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct HttpActivity {
    requests_in_flight: Arc<AtomicUsize>,
}

impl HttpActivity {
    /// Requests being answered now, on every listener served with this.
    pub fn requests_in_flight(&self) -> usize {
        self.requests_in_flight.load(Ordering::Acquire)
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops
/// accepting, logs `stopped listening`, waits for the requests in flight to
/// be answered and closes every other connection. Upgraded connections
/// (WebSockets) are detached from HTTP and are not waited for here; the gate
/// tracks them.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ServeSettings,
    shutdown: impl Future<Output = ()>,
    activity: HttpActivity,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout);
    let http2 = settings.http2.then(|| {
        let mut auto = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        // HTTP/1.1 as above.
        auto.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(settings.header_read_timeout);
        // HTTP/2: a ping keeps the idle connection honest (a peer that
        // vanished is dropped), and one connection opens at most this many
        // streams (gRPC health Watches among them).
        auto.http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(HTTP2_KEEP_ALIVE_INTERVAL))
            .keep_alive_timeout(HTTP2_KEEP_ALIVE_TIMEOUT)
            .max_concurrent_streams(HTTP2_MAX_STREAMS);
        auto
    });
    // Every connection task holds a clone of `alive_tx`; once all are
    // dropped, `alive_rx` reports the end of the last connection.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let (stop_tx, stop_rx) = watch::channel(false);
    let connections = Connections {
        builder,
        http2,
        header_read_timeout: settings.header_read_timeout,
        router,
        host_rule: Arc::new(HostRule::new()),
        activity,
        alive_tx,
        stop_rx,
    };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => connections.spawn(stream, peer),
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection; retrying shortly");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    let address = listener.local_addr();
    // Connections the kernel has completed but nobody has accepted yet
    // would be reset when the listener closes, though their clients
    // connected before the stop: they are served like the others.
    if let Ok(listener) = listener.into_std() {
        while let Ok((stream, peer)) = listener.accept() {
            let stream = stream
                .set_nonblocking(true)
                .and_then(|()| TcpStream::from_std(stream));
            if let Ok(stream) = stream {
                connections.spawn(stream, peer);
            }
        }
    }
    // The moment after which a connect is refused, for whoever reads the
    // log against their own clock (the chaos run's probes).
    let unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    match address {
        Ok(address) => tracing::info!(
            listener = %address,
            unix_ms,
            "stopped listening; new connections are refused, requests in flight are answered, idle connections closed"
        ),
        Err(_) => tracing::info!(
            unix_ms,
            "stopped listening; new connections are refused, requests in flight are answered, idle connections closed"
        ),
    }
    stop_tx.send_replace(true);
    drop(connections);
    let _ = alive_rx.recv().await;
}

// === impl Connections ===

/// What the connections of one listener share.
struct Connections {
    builder: hyper::server::conn::http1::Builder,
    /// HTTP/1.1 and HTTP/2 by the client's first bytes, when HTTP/2 is on.
    http2: Option<hyper_util::server::conn::auto::Builder<TokioExecutor>>,
    header_read_timeout: Duration,
    router: Router,
    /// Checked before the router sees a request.
    host_rule: Arc<HostRule>,
    activity: HttpActivity,
    alive_tx: mpsc::Sender<()>,
    stop_rx: watch::Receiver<bool>,
}

impl Connections {
    /// Serves one accepted connection on a task of its own, until it ends
    /// or, after the stop, until its request in flight is answered.
    fn spawn(&self, stream: TcpStream, peer: SocketAddr) {
        // Small frames (a `ready`, an echo) must leave at once.
        let _ = stream.set_nodelay(true);
        let in_flight = InFlight {
            connection: Arc::default(),
            total: Arc::clone(&self.activity.requests_in_flight),
        };
        let connection_in_flight = Arc::clone(&in_flight.connection);
        let router = self.router.clone();
        let host_rule = Arc::clone(&self.host_rule);
        // hyper calls this as soon as a whole request head has arrived, so
        // the count starts there.
        let service =
            hyper::service::service_fn(move |mut request: axum::http::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                let counted = in_flight.enter();
                let router = router.clone();
                let host_rule = Arc::clone(&host_rule);
                async move {
                    let response = host_rule.route(router, request).await;
                    Ok::<_, Infallible>(response.map(|body| CountedBody {
                        body,
                        _counted: counted,
                    }))
                }
            });
        // Boxed, so the task holds a pointer: tokio copies a task's future
        // into place when it spawns it and again with each change of its
        // stage, and hyper's connection is a few kilobytes.
        let bytes_read = Arc::new(AtomicU64::new(0));
        let (mut connection, version_deadline) = match &self.http2 {
            None => (
                ServedConnection::Http1(Box::pin(
                    self.builder
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades(),
                )),
                None,
            ),
            Some(auto) => {
                let stream = BytesRead::new(stream, Arc::clone(&bytes_read));
                (
                    ServedConnection::Auto(Box::pin(
                        auto.serve_connection_with_upgrades(TokioIo::new(stream), service)
                            .into_owned(),
                    )),
                    Some(self.header_read_timeout),
                )
            }
        };
        // While hyper-util waits to tell HTTP/1.1 from HTTP/2, no head
        // deadline runs: this one stands in for it.
        let version_deadline = {
            let connection_in_flight = Arc::clone(&connection_in_flight);
            async move {
                let Some(deadline) = version_deadline else {
                    return std::future::pending().await;
                };
                tokio::time::sleep(deadline).await;
                let told = bytes_read.load(Ordering::Acquire) >= HTTP2_PREFACE_LEN
                    || connection_in_flight.load(Ordering::Acquire) > 0;
                if told {
                    std::future::pending::<()>().await;
                }
            }
        };
        let alive_tx = self.alive_tx.clone();
        let mut stop_rx = self.stop_rx.clone();
        tokio::spawn(async move {
            let stopped = async move {
                let _ = stop_rx.wait_for(|stop| *stop).await;
            };
            let result = tokio::select! {
                // The connection first, so that a request whose head has
                // already arrived is counted before the stop is looked at.
                biased;
                result = &mut connection => result,
                () = version_deadline => {
                    tracing::debug!(
                        "HTTP connection dropped: it sent too little to tell HTTP/1.1 from HTTP/2 within the head deadline"
                    );
                    Ok(())
                }
                () = stopped => {
                    // With no request in flight, a connection gets a moment
                    // (one accepted just before the stop may not have sent
                    // its request yet, one that has just answered may still
                    // be flushing), then it is dropped: hyper would wait for
                    // the rest of a partial head until the head deadline.
                    let moment = tokio::time::sleep(UNFINISHED_CONNECTION_WAIT);
                    tokio::pin!(moment);
                    let finished = std::future::poll_fn(|cx| {
                        if let Poll::Ready(result) = Pin::new(&mut connection).poll(cx) {
                            return Poll::Ready(Some(result));
                        }
                        if connection_in_flight.load(Ordering::Acquire) > 0 {
                            return Poll::Ready(None);
                        }
                        moment.as_mut().poll(cx).map(|()| Some(Ok(())))
                    })
                    .await;
                    match finished {
                        Some(result) => result,
                        None => {
                            // Answer the request in flight, then close.
                            connection.graceful_shutdown();
                            connection.await
                        }
                    }
                }
            };
            if let Err(error) = result {
                tracing::debug!(%error, "HTTP connection ended with an error");
            }
            drop(alive_tx);
        });
    }
}

/// The length of HTTP/2's connection preface, `PRI * HTTP/2.0...`: what
/// hyper-util reads before it knows the protocol.
const HTTP2_PREFACE_LEN: u64 = 24;

/// How often an HTTP/2 connection is pinged, and how long its answer may
/// take before the connection is dropped.
const HTTP2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);
const HTTP2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The streams one HTTP/2 connection may have open at once.
const HTTP2_MAX_STREAMS: u32 = 100;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The service `spawn` builds for each connection: the router behind the
/// host rule, its responses counted in flight.
trait ConnectionService:
    hyper::service::Service<
        axum::http::Request<Incoming>,
        Response = axum::http::Response<CountedBody>,
        Error = Infallible,
        Future: Send + 'static,
    > + Send
    + 'static
{
}

impl<S> ConnectionService for S where
    S: hyper::service::Service<
            axum::http::Request<Incoming>,
            Response = axum::http::Response<CountedBody>,
            Error = Infallible,
            Future: Send + 'static,
        > + Send
        + 'static
{
}

// === impl ServedConnection ===

/// One connection as hyper serves it: HTTP/1.1 only (the public listener),
/// or HTTP/1.1 or HTTP/2 by its first bytes. Both are boxed (see `spawn`).
enum ServedConnection<S>
where
    S: hyper::service::HttpService<Incoming>,
{
    Http1(Pin<Box<hyper::server::conn::http1::UpgradeableConnection<TokioIo<TcpStream>, S>>>),
    Auto(Pin<Box<AutoConnection<S>>>),
}

/// hyper-util's connection that tells HTTP/1.1 from HTTP/2 by its first
/// bytes, over a stream that counts them.
type AutoConnection<S> = hyper_util::server::conn::auto::UpgradeableConnection<
    'static,
    TokioIo<BytesRead<TcpStream>>,
    S,
    TokioExecutor,
>;

impl<S: ConnectionService> ServedConnection<S> {
    /// Answers the request in flight, then closes (HTTP/2: `GOAWAY`).
    fn graceful_shutdown(&mut self) {
        match self {
            ServedConnection::Http1(connection) => connection.as_mut().graceful_shutdown(),
            ServedConnection::Auto(connection) => connection.as_mut().graceful_shutdown(),
        }
    }
}

impl<S: ConnectionService> Future for ServedConnection<S> {
    type Output = Result<(), BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            ServedConnection::Http1(connection) => connection.as_mut().poll(cx).map_err(Into::into),
            ServedConnection::Auto(connection) => connection.as_mut().poll(cx),
        }
    }
}

// === impl InFlight ===

/// The in-flight counts a connection's requests add to: its own, so that
/// shutdown knows whether it may close the connection, and the listeners'
/// total, for the log.
#[derive(Debug, Clone)]
struct InFlight {
    connection: Arc<AtomicUsize>,
    total: Arc<AtomicUsize>,
}

impl InFlight {
    /// Counts one request until the returned value is dropped.
    fn enter(&self) -> InFlightGuard {
        self.connection.fetch_add(1, Ordering::AcqRel);
        self.total.fetch_add(1, Ordering::AcqRel);
        InFlightGuard {
            counts: self.clone(),
        }
    }
}

/// One request in flight; dropped with the response's body.
#[derive(Debug)]
struct InFlightGuard {
    counts: InFlight,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.counts.connection.fetch_sub(1, Ordering::AcqRel);
        self.counts.total.fetch_sub(1, Ordering::AcqRel);
    }
}

// === impl CountedBody ===

/// A response body that keeps its request counted as in flight until hyper
/// has sent it and drops it.
struct CountedBody {
    body: Body,
    _counted: InFlightGuard,
}

impl HttpBody for CountedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests;
