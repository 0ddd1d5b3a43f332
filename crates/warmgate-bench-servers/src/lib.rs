//! Servers for `cargo xtask bench` to compare warmgate against, and a
//! stand-in auth service for `cargo xtask chaos` and `soak`; not part of
//! the product.
//!
//! - `warmgate-reference`: bare fastwebsockets on axum, the floor. On
//!   `/ws` it sends `{"type":"ready"}` on connect, then echoes; `/echo` only
//!   echoes, as warmgate's transparent `/echo` does; `GET /readyz` is a
//!   static 200.
//! - `warmgate-floor`: the same on hyper 1 alone, without axum (see
//!   `floor.rs`), to show what axum adds to the reference.
//! - `warmgate-old-design`: a replica of the design warmgate replaces, which
//!   validated readiness inside every handshake (see `old_design.rs`).
//! - `warmgate-jwks-server`: one signing key's public half as a JWKS
//!   document at `/.well-known/jwks.json` (see `jwks_server.rs`).
//!
//! All print the serving line `NAME: serving http://ADDR` on stdout once
//! they listen ([`print_serving_line`]), in warmgate's format, so the harness
//! reads them with the same `warmgate_devservers::serving` reader.

#![forbid(unsafe_code)]

use std::future::IntoFuture as _;
use std::net::SocketAddr;

use anyhow::Context as _;
use axum::Router;
use axum::serve::ListenerExt as _;
use fastwebsockets::upgrade::{IncomingUpgrade, UpgradeFut};
use fastwebsockets::{FragmentCollector, Frame, OpCode, Payload, WebSocketError};
use warmgate_devservers::serving::ServingLine;

/// The first frame every server sends once a client is admitted.
pub const READY_FRAME: &[u8] = br#"{"type":"ready"}"#;

/// Sends [`READY_FRAME`] if `greet`, then echoes text and binary messages
/// until the client closes. fastwebsockets answers pings and closes itself.
pub async fn echo(upgrade: UpgradeFut, greet: bool) -> Result<(), WebSocketError> {
    let mut ws = FragmentCollector::new(upgrade.await?);
    if greet {
        ws.write_frame(Frame::text(Payload::Borrowed(READY_FRAME)))
            .await?;
    }
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}

/// Answers an upgrade and runs [`echo`] on its own task.
pub fn accept(upgrade: IncomingUpgrade, greet: bool) -> axum::response::Response {
    let (response, future) = match upgrade.upgrade() {
        Ok(accepted) => accepted,
        Err(error) => {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                format!("cannot upgrade: {error}\n"),
            )
                .into_response();
        }
    };
    tokio::spawn(async move {
        let _ = echo(future, greet).await;
    });
    response.into_response()
}

use axum::response::IntoResponse as _;

/// Prints the serving line that says `name` listens on `public` (see
/// `warmgate_devservers::serving` for its format).
pub fn print_serving_line(name: &str, public: SocketAddr) {
    let line = ServingLine {
        name: name.to_owned(),
        public,
        admin: None,
    };
    println!("{line}");
}

/// Serves `router` on `addr` with `TCP_NODELAY` and warmgate's listen
/// backlog, printing `NAME: serving http://ADDR` once it listens. The
/// server runs on a spawned task, as warmgate's does, so that connections
/// are accepted on a runtime worker rather than on the thread that blocks
/// on `main` (which would cost two thread wake-ups per connection).
pub async fn serve(name: &str, addr: SocketAddr, router: Router) -> anyhow::Result<()> {
    let listener =
        warmgate_http::bind_listener(addr).with_context(|| format!("cannot listen on {addr}"))?;
    print_serving_line(name, listener.local_addr()?);
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = tokio::spawn(axum::serve(listener, router).into_future());
    server
        .await
        .context("the server's task panicked")?
        .context("the server stopped")
}

/// The address from the first argument, or `127.0.0.1:0`.
pub fn listen_address() -> anyhow::Result<SocketAddr> {
    match std::env::args().nth(1) {
        Some(text) => text
            .parse()
            .with_context(|| format!("`{text}` is not an address such as 127.0.0.1:8080")),
        None => Ok(SocketAddr::from(([127, 0, 0, 1], 0))),
    }
}
