//! The second WebSocket client: fastwebsockets' client handshake over a
//! hyper HTTP/1.1 client connection, on a loopback TCP connection with
//! `TCP_NODELAY`.
//!
//! It exists so that a figure does not depend on one client's costs: the
//! timed scenarios run with it and with tungstenite (`client`), and a
//! comparison is only ever made between figures taken by the same client.
//! It does not choose between the two; `client::Socket` does.

use anyhow::{Context as _, bail};
use bytes::Bytes;
use fastwebsockets::{FragmentCollector, Frame, OpCode, Payload, WebSocketError};
use http_body_util::Empty;
use hyper::upgrade::Upgraded;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::client::{Refused, Target};

pub(crate) type Ws = FragmentCollector<TokioIo<Upgraded>>;

/// Opens a WebSocket to `target`, sending `Authorization: Bearer TOKEN`
/// when `bearer` is given. The same steps as tungstenite's: TCP connect,
/// `TCP_NODELAY`, then the RFC 6455 opening handshake.
pub(crate) async fn connect_as(target: &Target, bearer: Option<&str>) -> Result<Ws, Refused> {
    let stream = TcpStream::connect(target.addr).await.map_err(|error| {
        Refused::NoConnection(format!("cannot connect to {}: {error}", target.addr))
    })?;
    let _ = stream.set_nodelay(true);
    let host = target.addr.to_string();
    let mut request = hyper::Request::builder()
        .method("GET")
        .uri(&target.path)
        .header("host", &host)
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header(
            "sec-websocket-key",
            fastwebsockets::handshake::generate_key(),
        )
        .header("sec-websocket-version", "13");
    if let Some(token) = bearer {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|error| Refused::Broken(format!("cannot build the request: {error}")))?;
    match fastwebsockets::handshake::client(&TokioExecutor::new(), request, stream).await {
        Ok((ws, _response)) => Ok(FragmentCollector::new(ws)),
        // The crate's handshake drops the refusal's body; the status is
        // what a caller acts on.
        Err(WebSocketError::InvalidStatusCode(status)) => Err(Refused::Http {
            status,
            body: String::new(),
        }),
        Err(error) => Err(Refused::Broken(format!("the handshake failed: {error}"))),
    }
}

/// The next text message, skipping pings, pongs and binary messages (pings
/// are answered by the crate).
pub(crate) async fn next_text(ws: &mut Ws) -> anyhow::Result<Vec<u8>> {
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Text => return Ok(frame.payload.to_vec()),
            OpCode::Close => bail!("closed by the server: {:?}", close_code(&frame)),
            _ => {}
        }
    }
}

/// Sends `payload` as one text message and reads until its echo (a text
/// message of the same length) comes back.
pub(crate) async fn echo_once(ws: &mut Ws, payload: &str) -> anyhow::Result<()> {
    ws.write_frame(Frame::text(Payload::Borrowed(payload.as_bytes())))
        .await
        .context("cannot send the message")?;
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Text if frame.payload.len() == payload.len() => return Ok(()),
            OpCode::Ping | OpCode::Pong => {}
            OpCode::Close => bail!("closed by the server: {:?}", close_code(&frame)),
            other => bail!(
                "expected the echo, got a {other:?} frame of {} bytes",
                frame.payload.len()
            ),
        }
    }
}

/// Starts a client-initiated close (code 1000) without waiting for the
/// server's answer, as tungstenite's `close(None)` does.
pub(crate) async fn close(ws: &mut Ws) {
    let _ = ws.write_frame(Frame::close(1000, &[])).await;
}

fn close_code(frame: &Frame<'_>) -> Option<u16> {
    frame
        .payload
        .get(..2)
        .map(|code| u16::from_be_bytes([code[0], code[1]]))
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::Empty;
    use hyper::body::Incoming;
    use tokio::net::TcpListener;

    use super::*;

    /// A fastwebsockets server on loopback: `/ws` sends a `ready` message
    /// and then echoes, anything else is refused with 403.
    async fn server() -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let service = hyper::service::service_fn(
                    |mut request: hyper::Request<Incoming>| async move {
                        if request.uri().path() != "/ws" {
                            let mut refused = hyper::Response::new(Empty::<Bytes>::new());
                            *refused.status_mut() = hyper::StatusCode::FORBIDDEN;
                            return Ok::<_, Infallible>(refused);
                        }
                        let (response, upgrade) =
                            fastwebsockets::upgrade::upgrade(&mut request).unwrap();
                        tokio::spawn(async move {
                            let mut ws = FragmentCollector::new(upgrade.await.unwrap());
                            let ready = Frame::text(Payload::Borrowed(br#"{"type":"ready"}"#));
                            ws.write_frame(ready).await.unwrap();
                            while let Ok(frame) = ws.read_frame().await {
                                match frame.opcode {
                                    OpCode::Close => break,
                                    OpCode::Text => ws.write_frame(frame).await.unwrap(),
                                    _ => {}
                                }
                            }
                        });
                        Ok(response)
                    },
                );
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades(),
                );
            }
        });
        addr
    }

    fn target(addr: std::net::SocketAddr, path: &str) -> Target {
        Target::parse(&format!("ws://{addr}{path}")).unwrap()
    }

    #[tokio::test]
    async fn connects_reads_echoes_and_closes() {
        let addr = server().await;
        let mut ws = connect_as(&target(addr, "/ws"), Some("token"))
            .await
            .unwrap_or_else(|refused| panic!("refused: {refused:?}"));
        assert_eq!(next_text(&mut ws).await.unwrap(), br#"{"type":"ready"}"#);
        for _ in 0..3 {
            echo_once(&mut ws, "hello, echo").await.unwrap();
        }
        close(&mut ws).await;
        // The server answers the close, and the client reads it as the end.
        assert!(next_text(&mut ws).await.is_err());
    }

    #[tokio::test]
    async fn a_refusal_keeps_its_status() {
        let addr = server().await;
        match connect_as(&target(addr, "/elsewhere"), None).await {
            Err(Refused::Http { status, .. }) => assert_eq!(status, 403),
            Err(other) => panic!("expected a refusal by status, got {other:?}"),
            Ok(_) => panic!("expected a refusal, got a WebSocket"),
        }
    }
}
