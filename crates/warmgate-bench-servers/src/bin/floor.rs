//! The floor under the reference: bare fastwebsockets on hyper 1, without
//! axum. Usage: `warmgate-floor [ADDR]`.
//!
//! It behaves as `warmgate-reference` does: `/ws` sends `{"type":"ready"}`
//! on connect, then echoes; `/echo` only echoes; `GET /readyz` answers 200
//! `ready`; anything else is 404. Connections get `TCP_NODELAY`, the
//! listener warmgate's backlog, and the accept loop runs on a spawned task.

use std::convert::Infallible;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// How long to back off after a failed accept (out of descriptors, say).
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = warmgate_bench_servers::listen_address()?;
    let listener =
        warmgate_http::bind_listener(addr).with_context(|| format!("cannot listen on {addr}"))?;
    warmgate_bench_servers::print_serving_line("floor", listener.local_addr()?);
    tokio::spawn(accept_loop(listener))
        .await
        .context("the accept loop panicked")?;
    Ok(())
}

/// Accepts connections forever, each served on a task of its own.
async fn accept_loop(listener: TcpListener) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(_) => {
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), hyper::service::service_fn(route))
                .with_upgrades()
                .await;
        });
    }
}

async fn route(mut request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let greet = match request.uri().path() {
        "/ws" => true,
        "/echo" => false,
        "/readyz" if request.method() == Method::GET => {
            return Ok(Response::builder()
                .header("content-type", "text/plain; charset=utf-8")
                .body(Full::new(Bytes::from_static(b"ready\n")))
                .unwrap_or_default());
        }
        _ => return Ok(status(StatusCode::NOT_FOUND, String::new())),
    };
    match fastwebsockets::upgrade::upgrade(&mut request) {
        Ok((response, upgrade)) => {
            tokio::spawn(async move {
                let _ = warmgate_bench_servers::echo(upgrade, greet).await;
            });
            Ok(response.map(|_| Full::new(Bytes::new())))
        }
        Err(error) => Ok(status(
            StatusCode::BAD_REQUEST,
            format!("cannot upgrade: {error}\n"),
        )),
    }
}

fn status(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}
