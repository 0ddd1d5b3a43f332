//! Serving a router on a TCP listener, with the limits a public edge needs.
//!
//! Each request carries its connection's peer address as
//! `ConnectInfo<SocketAddr>` in its extensions, for the per-address limits.
//!
//! At shutdown the listener closes (logged as `stopped listening`, with the
//! time), requests in flight are answered, and every other connection is
//! closed: an idle keep-alive connection, or one that has sent only part of
//! a request head, never holds the exit. [`HttpActivity`] counts the
//! requests in flight, for the drain's log line.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::ConnectInfo;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::request_head::HostRule;

/// How connections are served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeSettings {
    /// A connection that has not sent a complete request head within this
    /// is dropped: slow or half-open clients must not pin memory.
    pub header_read_timeout: Duration,
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
    // Every connection task holds a clone of `alive_tx`; once all are
    // dropped, `alive_rx` reports the end of the last connection.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let (stop_tx, stop_rx) = watch::channel(false);
    let connections = Connections {
        builder,
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
        let mut connection = Box::pin(
            self.builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades(),
        );
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
                result = connection.as_mut() => result,
                () = stopped => {
                    // With no request in flight, a connection gets a moment
                    // (one accepted just before the stop may not have sent
                    // its request yet, one that has just answered may still
                    // be flushing), then it is dropped: hyper would wait for
                    // the rest of a partial head until the head deadline.
                    let moment = tokio::time::sleep(UNFINISHED_CONNECTION_WAIT);
                    tokio::pin!(moment);
                    let finished = std::future::poll_fn(|cx| {
                        if let Poll::Ready(result) = connection.as_mut().poll(cx) {
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
                            connection.as_mut().graceful_shutdown();
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
