//! Helpers for the proxy-mode tests: plans that put warmgate in front of
//! the stand-in backend ([`crate::backend::Backend`]), a [`WireTap`] that
//! shows which WebSocket frames crossed between warmgate and the backend,
//! and reading one series from a `/metrics` scrape.
//!
//! The backend itself is `backend`'s; the program and its clients are the
//! crate root's. Nothing here starts warmgate.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::backend::Backend;
use crate::{Check, Gateway, Plan, within};

/// A plan whose readiness is the backend's: one required `http` check on
/// its `/healthz`, so the gate turns ready once the backend serves.
/// Clients on `/ws` are proxied to it.
pub fn gated_on_backend(backend: &Backend) -> Plan {
    Plan::new()
        .phase(
            "backend",
            [Check::http("backend", &backend.http_url("/healthz")).set("timeout", "500ms")],
        )
        .upstream(&backend.ws_url(""))
}

/// A plan whose readiness is in the test's hands ([`Plan::app_signal`]),
/// proxying `/ws` to `url` (`ws://host:port`: a backend's, or a
/// [`WireTap`]'s).
pub fn gated_on_signal(url: &str) -> Plan {
    Plan::app_signal().upstream(url)
}

/// The value of one series in a Prometheus scrape, written as it is
/// rendered (`name{label="value"}`); `None` when it is not there.
pub fn series_value(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.split(' ').next()?.parse().ok()
    })
}

/// Waits until warmgate's log has a line containing `needle`, and returns
/// that line.
///
/// This polls because the log is another process's output, read into a
/// buffer that announces nothing: there is no event to wait on. The
/// interval is short so that a test waits no longer than it must.
pub async fn until_logged(gateway: &Gateway, needle: &str) -> String {
    within(&format!("a log line with {needle:?}"), async {
        loop {
            let log = gateway.log();
            if let Some(line) = log.lines().find(|line| line.contains(needle)) {
                return line.to_owned();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

// === WireTap ===

/// Which way a tapped frame went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From warmgate to the backend (masked, as a client's frames are).
    ToBackend,
    /// From the backend to warmgate.
    FromBackend,
}

/// One WebSocket frame seen on the wire, unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TappedFrame {
    pub direction: Direction,
    /// The opcode (RFC 6455 section 5.2): 0x1 text, 0x8 close, ...
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl TappedFrame {
    /// A close frame's code (1005 when it has none) and reason.
    pub fn close(&self) -> Option<(u16, String)> {
        if self.opcode != 0x8 {
            return None;
        }
        match self.payload.as_slice() {
            [] => Some((1005, String::new())),
            [high, low, reason @ ..] => Some((
                u16::from_be_bytes([*high, *low]),
                String::from_utf8_lossy(reason).into_owned(),
            )),
            [_] => None,
        }
    }
}

/// A TCP relay between warmgate and a backend that reports every
/// WebSocket frame passing through it, both ways: what the backend was
/// sent and what it answered, which the backend itself cannot report
/// once its connection is gone (a close code, say).
///
/// Point `[upstream] url` at [`WireTap::url`]. Bytes are relayed as they
/// come; the frames are decoded from a copy after each connection's
/// HTTP head.
#[derive(Debug)]
pub struct WireTap {
    addr: SocketAddr,
    frames_rx: mpsc::UnboundedReceiver<TappedFrame>,
    accept: JoinHandle<()>,
}

impl WireTap {
    /// Listens on a free loopback port; each connection is relayed to
    /// `backend`.
    pub async fn start(backend: SocketAddr) -> WireTap {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (frames_tx, frames_rx) = mpsc::unbounded_channel();
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect(backend).await else {
                    // The backend is down: warmgate sees its dial refused
                    // as the connection closes.
                    continue;
                };
                let (inbound_read, inbound_write) = inbound.into_split();
                let (outbound_read, outbound_write) = outbound.into_split();
                tokio::spawn(pump(
                    inbound_read,
                    outbound_write,
                    Direction::ToBackend,
                    frames_tx.clone(),
                ));
                tokio::spawn(pump(
                    outbound_read,
                    inbound_write,
                    Direction::FromBackend,
                    frames_tx.clone(),
                ));
            }
        });
        WireTap {
            addr,
            frames_rx,
            accept,
        }
    }

    /// `ws://127.0.0.1:PORT`, for `[upstream] url`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The next frame through the tap, either way.
    pub async fn next_frame(&mut self) -> TappedFrame {
        within("a frame through the wire tap", self.frames_rx.recv())
            .await
            .expect("the wire tap stopped")
    }

    /// Reads frames until a close frame going `direction`; its code and
    /// reason.
    pub async fn next_close(&mut self, direction: Direction) -> (u16, String) {
        loop {
            let frame = self.next_frame().await;
            if frame.direction == direction
                && let Some(close) = frame.close()
            {
                return close;
            }
        }
    }
}

impl Drop for WireTap {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Relays `from` to `to` until `from` ends, reporting the frames.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    direction: Direction,
    frames_tx: mpsc::UnboundedSender<TappedFrame>,
) {
    let mut decoder = FrameDecoder::default();
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
        for frame in decoder.feed(&buffer[..n]) {
            let _ = frames_tx.send(TappedFrame {
                direction,
                opcode: frame.0,
                payload: frame.1,
            });
        }
    }
    let _ = to.shutdown().await;
}

/// Splits one direction of a WebSocket connection into frames: first the
/// HTTP head, skipped, then RFC 6455 section 5.2 frames.
#[derive(Debug, Default)]
struct FrameDecoder {
    past_head: bool,
    pending: Vec<u8>,
}

impl FrameDecoder {
    /// Takes the next bytes; returns each frame they complete, as its
    /// opcode and unmasked payload.
    fn feed(&mut self, bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        self.pending.extend_from_slice(bytes);
        if !self.past_head {
            let Some(end) = self.pending.windows(4).position(|w| w == b"\r\n\r\n") else {
                return Vec::new();
            };
            self.pending.drain(..end + 4);
            self.past_head = true;
        }
        let mut frames = Vec::new();
        while let Some((frame, used)) = decode_frame(&self.pending) {
            frames.push(frame);
            self.pending.drain(..used);
        }
        frames
    }
}

/// The first whole frame of `bytes` and how many bytes it took; `None`
/// when they do not hold one yet.
fn decode_frame(bytes: &[u8]) -> Option<((u8, Vec<u8>), usize)> {
    let [first, second, rest @ ..] = bytes else {
        return None;
    };
    let opcode = first & 0x0f;
    let masked = second & 0x80 != 0;
    let (len, rest) = match second & 0x7f {
        126 => {
            let (len, rest) = rest.split_first_chunk::<2>()?;
            (u64::from(u16::from_be_bytes(*len)), rest)
        }
        127 => {
            let (len, rest) = rest.split_first_chunk::<8>()?;
            (u64::from_be_bytes(*len), rest)
        }
        len => (u64::from(len), rest),
    };
    let (mask, rest) = if masked {
        let (mask, rest) = rest.split_first_chunk::<4>()?;
        (Some(*mask), rest)
    } else {
        (None, rest)
    };
    let len = usize::try_from(len).ok()?;
    let mut payload = rest.get(..len)?.to_vec();
    if let Some(mask) = mask {
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[i % 4];
        }
    }
    let used = bytes.len() - rest.len() + len;
    Some(((opcode, payload), used))
}
