//! A WebSocket client just large enough to watch a drain from outside the
//! container: the upgrade, the server's unfragmented frames (read, never
//! sent, apart from the closing reply), and the close code.
//!
//! It does not check `Sec-WebSocket-Accept`, reassemble fragments or
//! answer pings: the image test holds one connection for seconds, on
//! loopback, to a server whose own tests cover the protocol.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context as _, bail};

/// How long a read may wait: past the drain's whole budget, so that only a
/// server that never closes fails it.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A frame from the server.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Frame {
    Text(String),
    /// A close frame and its code, if it has one.
    Close(Option<u16>),
    /// Any other opcode (binary, ping, pong, continuation).
    Other(u8),
}

/// An open WebSocket.
pub(super) struct WebSocket {
    stream: TcpStream,
    /// Bytes read but not yet parsed into a frame.
    buffer: Vec<u8>,
}

impl WebSocket {
    /// Connects to `addr` and upgrades `path`; fails unless the answer is
    /// `101`.
    pub(super) fn connect(addr: SocketAddr, path: &str) -> anyhow::Result<WebSocket> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )?;
        let mut socket = WebSocket {
            stream,
            buffer: Vec::new(),
        };
        let head_end = loop {
            if let Some(end) = socket.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            if !socket.fill()? {
                bail!("{addr} closed the connection during the upgrade of {path}");
            }
        };
        let head = String::from_utf8_lossy(&socket.buffer[..head_end]).into_owned();
        if !head.starts_with("HTTP/1.1 101") {
            bail!("the WebSocket upgrade of {path} was refused: {head:?}");
        }
        socket.buffer.drain(..head_end);
        Ok(socket)
    }

    /// The next frame.
    pub(super) fn read_frame(&mut self) -> anyhow::Result<Frame> {
        loop {
            if let Some((frame, used)) = parse_frame(&self.buffer)? {
                self.buffer.drain(..used);
                return Ok(frame);
            }
            if !self.fill()? {
                bail!("the server closed the connection without a close frame");
            }
        }
    }

    /// Every frame up to and including the server's close, which it answers
    /// with the same code.
    pub(super) fn read_until_close(mut self) -> anyhow::Result<Vec<Frame>> {
        let mut frames = Vec::new();
        loop {
            let frame = self.read_frame()?;
            if let Frame::Close(code) = frame {
                // The server may already be gone; the reply is a courtesy.
                let _ = self.stream.write_all(&close_frame(code));
                frames.push(frame);
                return Ok(frames);
            }
            frames.push(frame);
        }
    }

    /// Reads more bytes into the buffer; false at the end of the stream.
    fn fill(&mut self) -> anyhow::Result<bool> {
        let mut chunk = [0; 4096];
        let read = self
            .stream
            .read(&mut chunk)
            .context("reading the WebSocket")?;
        self.buffer.extend_from_slice(&chunk[..read]);
        Ok(read > 0)
    }
}

/// The first frame in `bytes` and how many bytes it took, or `None` while
/// it is incomplete. Server frames are never masked.
pub(super) fn parse_frame(bytes: &[u8]) -> anyhow::Result<Option<(Frame, usize)>> {
    let [first, second, rest @ ..] = bytes else {
        return Ok(None);
    };
    if second & 0x80 != 0 {
        bail!("the server sent a masked frame");
    }
    let (length, header) = match second & 0x7f {
        126 => match rest {
            [a, b, ..] => (usize::from(u16::from_be_bytes([*a, *b])), 4),
            _ => return Ok(None),
        },
        127 => match rest.get(..8) {
            Some(bytes) => {
                let length = u64::from_be_bytes(bytes.try_into()?);
                (usize::try_from(length)?, 10)
            }
            None => return Ok(None),
        },
        short => (usize::from(short), 2),
    };
    let Some(payload) = bytes.get(header..header + length) else {
        return Ok(None);
    };
    let frame = match first & 0x0f {
        0x1 => Frame::Text(String::from_utf8(payload.to_vec()).context("a text frame not UTF-8")?),
        0x8 => Frame::Close(match payload {
            [a, b, ..] => Some(u16::from_be_bytes([*a, *b])),
            _ => None,
        }),
        opcode => Frame::Other(opcode),
    };
    Ok(Some((frame, header + length)))
}

/// A client's close frame (masked, as a client's must be) with `code`.
pub(super) fn close_frame(code: Option<u16>) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let payload: Vec<u8> = code
        .map(|code| code.to_be_bytes().to_vec())
        .unwrap_or_default();
    // Two bytes at most, so the length fits the first length field.
    let mut frame = vec![0x88, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    frame
}
