//! One end of a WebSocket, driven the way the gate drives its clients:
//! frames read as a stream of whole, validated messages and control
//! frames (`frames`), and frames written at once, or by a writer task
//! under a write deadline when the socket does not take them (`outbox`).
//! The gate uses it for each client; an application that speaks
//! WebSocket to a backend (proxy mode) uses it for that backend, so both
//! sides of a relay follow the same rules.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::task::{Context, Poll};
use std::time::Duration;

use fastwebsockets::{Frame, Role, WebSocket};
use futures_util::{Stream, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use crate::app::{Message, frame_of};
use warmgate_http::BytesRead;

use crate::frames::FrameReader;
use crate::outbox::{Gone, Outbox, RoomSignal};

pub use crate::frames::Incoming;

type Frames = Pin<Box<dyn Stream<Item = Incoming> + Send>>;

/// One WebSocket end: its frames in, its queue out.
pub struct Peer {
    pub(crate) frames: Frames,
    pub(crate) outbox: Outbox,
    /// Bytes read from the peer so far, frames in progress included.
    pub(crate) n_read: Arc<AtomicU64>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer").finish_non_exhaustive()
    }
}

impl Peer {
    /// Drives `ws`, this end of which plays `role` (its frames are masked
    /// when a client): messages larger than `max_message_bytes` close it
    /// with 1009; a peer that takes no byte for `write_timeout` while
    /// frames wait stalls its writer. `ws` must be fresh from its
    /// handshake, with nothing read from it yet. Frames are written on the
    /// caller's task, and a writer task is spawned for what the socket
    /// does not take at once, so it needs a tokio runtime.
    pub fn new<S>(
        ws: WebSocket<S>,
        role: Role,
        max_message_bytes: usize,
        write_timeout: Duration,
    ) -> Peer
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let n_read = Arc::new(AtomicU64::new(0));
        let (read, write) = tokio::io::split(ws.into_inner());
        // Only the read half of fastwebsockets is used: the outbox frames
        // what it writes itself.
        let (read, _) = fastwebsockets::after_handshake_split(
            BytesRead::new(read, Arc::clone(&n_read)),
            tokio::io::sink(),
            role,
        );
        let outbox = Outbox::new(write, role, write_timeout);
        let reader = FrameReader::new(read, max_message_bytes);
        let frames: Frames = Box::pin(futures_util::stream::unfold(
            reader,
            |mut reader| async move {
                let incoming = reader.next().await;
                Some((incoming, reader))
            },
        ));
        Peer {
            frames,
            outbox,
            n_read,
        }
    }

    /// The next message or control frame; [`Incoming::Gone`] once the
    /// connection is gone. Cancel-safe (a frame in progress survives).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Incoming> {
        self.frames
            .poll_next_unpin(cx)
            .map(|incoming| incoming.unwrap_or(Incoming::Gone))
    }

    /// Queues a message; never waits. `Err` once a write has failed.
    pub fn send(&mut self, message: Message) -> Result<(), Gone> {
        self.outbox.send(frame_of(message))
    }

    /// Queues any frame (a pong, say); never waits.
    pub fn send_frame(&mut self, frame: Frame<'static>) -> Result<(), Gone> {
        self.outbox.send(frame)
    }

    /// Whether the queue is under its bound (256 KiB or 1024 frames).
    pub fn has_room(&self) -> bool {
        self.outbox.has_room()
    }

    /// Waits for room in the queue without borrowing the peer.
    pub fn room_signal(&self) -> RoomSignal {
        self.outbox.room_signal()
    }

    /// Frames queued and not yet written.
    pub fn n_queued(&self) -> usize {
        self.outbox.n_queued()
    }

    /// Queues a close frame with `code` and `reason` (cut to 123 bytes) and
    /// waits until it is written, by `deadline` at the latest; true when
    /// it was. Does not wait for the peer's reply.
    pub async fn close(&mut self, code: u16, reason: &str, deadline: Instant) -> bool {
        self.outbox.close(close_frame(code, reason), deadline).await
    }
}

/// A close frame; the reason cut to the 123 octets a close frame has room
/// for (RFC 6455 section 5.5), at a character boundary.
pub(crate) fn close_frame(code: u16, reason: &str) -> Frame<'static> {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Frame::close(code, &reason.as_bytes()[..end])
}
