//! Serving a router on a TCP listener, with the limits a public edge needs.
//!
//! Each request carries its connection's peer address as
//! `ConnectInfo<SocketAddr>` in its extensions, for the per-address limits.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, watch};
use tower::ServiceExt as _;

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

/// Serves `router` on `listener` until `shutdown` resolves, then stops
/// accepting and waits for in-flight HTTP requests to finish. Upgraded
/// connections (WebSockets) are detached from HTTP and are not waited for
/// here; the gate tracks them.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ServeSettings,
    shutdown: impl Future<Output = ()>,
) {
    let router = crate::request_head::require_valid_host(router);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout);
    // Every connection task holds a clone of `alive_tx`; once all are
    // dropped, `alive_rx` reports the end of the last connection.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "cannot accept a connection; retrying shortly");
                        tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                        continue;
                    }
                };
                // Small frames (a `ready`, an echo) must leave at once.
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(router.clone().map_request(
                    move |mut request: axum::http::Request<hyper::body::Incoming>| {
                        request.extensions_mut().insert(ConnectInfo(peer));
                        request
                    },
                ));
                let connection = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades();
                let alive_tx = alive_tx.clone();
                let mut stop_rx = stop_rx.clone();
                tokio::spawn(async move {
                    tokio::pin!(connection);
                    let stopped = async move {
                        let _ = stop_rx.wait_for(|stop| *stop).await;
                    };
                    let result = tokio::select! {
                        result = connection.as_mut() => result,
                        () = stopped => {
                            // Finish the request in flight, then close.
                            connection.as_mut().graceful_shutdown();
                            connection.await
                        }
                    };
                    if let Err(error) = result {
                        tracing::debug!(%error, "HTTP connection ended with an error");
                    }
                    drop(alive_tx);
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    stop_tx.send_replace(true);
    drop(alive_tx);
    let _ = alive_rx.recv().await;
}
