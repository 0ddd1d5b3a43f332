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
mod tests;
