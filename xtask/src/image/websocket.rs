//! Watching a drain from outside the container: one WebSocket client
//! (tungstenite's blocking client) that reads the server's messages until
//! it closes, and answers the close as a client does.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tungstenite::{Message, WebSocket as Socket};

/// How long a read may wait: past the drain's whole budget, so that only a
/// server that never closes fails it.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A message from the server, as the image test judges it.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Frame {
    Text(String),
    /// A close frame and its code, if it has one.
    Close(Option<u16>),
    /// A binary message, a ping or a pong.
    Other,
}

/// An open WebSocket.
pub(super) struct WebSocket {
    socket: Socket<TcpStream>,
}

impl WebSocket {
    /// Connects to `addr` and upgrades `path`; fails unless the server
    /// switches protocols.
    pub(super) fn connect(addr: SocketAddr, path: &str) -> anyhow::Result<WebSocket> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .context("cannot set the WebSocket's read timeout")?;
        let url = format!("ws://{addr}{path}");
        let (socket, _response) = tungstenite::client::client(url.as_str(), stream)
            .map_err(|error| anyhow::anyhow!("the upgrade of {url} failed: {error}"))?;
        Ok(WebSocket { socket })
    }

    /// The next message from the server.
    pub(super) fn read_frame(&mut self) -> anyhow::Result<Frame> {
        let message = self
            .socket
            .read()
            .context("cannot read from the WebSocket")?;
        Ok(match message {
            Message::Text(text) => Frame::Text(text.as_str().to_owned()),
            Message::Close(close) => Frame::Close(close.map(|frame| u16::from(frame.code))),
            Message::Binary(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {
                Frame::Other
            }
        })
    }

    /// Every message up to and including the server's close, whose
    /// closing handshake it then completes.
    pub(super) fn read_until_close(mut self) -> anyhow::Result<Vec<Frame>> {
        let mut frames = Vec::new();
        loop {
            let frame = self.read_frame()?;
            let closed = matches!(frame, Frame::Close(_));
            frames.push(frame);
            if closed {
                // tungstenite queued the reply with the same code; send it.
                match self.socket.flush() {
                    Ok(()) | Err(tungstenite::Error::ConnectionClosed) => return Ok(frames),
                    Err(error) => bail!("cannot answer the server's close: {error}"),
                }
            }
        }
    }
}
