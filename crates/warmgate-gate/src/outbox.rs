//! The writing half of one connection: a queue of frames and a writer task
//! with a write deadline, so that no write ever stops the connection's loop.
//!
//! The connection queues a frame and goes on at once ([`Outbox::send`]
//! never waits); the writer task takes frames off the queue and writes
//! them. A client that takes no byte of a frame for `write_timeout` is a
//! slow consumer: the writer stops writing and says so
//! ([`WriterState::Stalled`]), and the connection decides the last word
//! (a close frame, [`Outbox::last_word`]), which the writer writes if the
//! client takes the rest of its frame and the close frame within
//! [`LAST_WORD_WAIT`]; otherwise the task ends and the TCP connection is
//! dropped with it.
//!
//! The queue is bounded where it can be flooded: the sources of many
//! frames (room messages, replies to the client's own messages) are read
//! only while [`Outbox::has_room`]; the timers (pings, heartbeats,
//! readiness pushes, `draining`) add a few frames per interval, and the
//! write deadline bounds how long they can pile up.
//!
//! This module decides nothing about the protocol: which frames, and what
//! a stall means for the client, are the connection's.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use fastwebsockets::{Frame, OpCode, WebSocketWrite};
use tokio::io::AsyncWrite;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Past this many queued bytes, or [`MAX_QUEUED_FRAMES`] frames, the
/// connection stops reading what would add more.
pub(crate) const MAX_QUEUED_BYTES: usize = 256 * 1024;
/// See [`MAX_QUEUED_BYTES`].
pub(crate) const MAX_QUEUED_FRAMES: usize = 1024;

/// How long a stalled client has to take the rest of its frame and the
/// close frame before the connection is dropped.
pub(crate) const LAST_WORD_WAIT: Duration = Duration::from_millis(500);

/// The writer has ended: the client is gone (or the connection over).
#[derive(Debug)]
pub struct Gone;

/// Where the writer task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriterState {
    /// Writing, or waiting for frames.
    Writing,
    /// The client took no byte for `write_timeout`; the writer waits for
    /// the last word.
    Stalled,
    /// A close frame was written; the writer has ended.
    Closed,
    /// A write failed (the client is gone), or the last word could not be
    /// written; the writer has ended.
    Gone,
}

/// The connection's end of the queue. Dropping it ends the writer task.
pub(crate) struct Outbox {
    queued: Arc<Queued>,
    state_rx: watch::Receiver<WriterState>,
    last_word_tx: Option<oneshot::Sender<Frame<'static>>>,
    task: JoinHandle<WriterState>,
}

/// The queue shared by the connection and its writer. A plain
/// `VecDeque` under a lock rather than a channel: it allocates nothing
/// until frames come (a channel's first block is dozens of frames, for
/// every connection, held ones included), and a connection queues a few
/// frames at a time.
#[derive(Default)]
struct Queued {
    frames: Mutex<VecDeque<Frame<'static>>>,
    /// Told when a frame is queued (a permit is kept when the writer is not
    /// waiting yet, so none is missed).
    arrived: tokio::sync::Notify,
    n_bytes: AtomicUsize,
    n_frames: AtomicUsize,
    /// Told when a written frame brings a full queue back under its bound,
    /// so that a connection that stopped reading reads again at once.
    room: tokio::sync::Notify,
}

impl Queued {
    fn push(&self, frame: Frame<'static>) {
        self.frames
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(frame);
        self.arrived.notify_one();
    }

    /// The next frame, waiting for one.
    async fn next(&self) -> Frame<'static> {
        loop {
            let frame = self
                .frames
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front();
            if let Some(frame) = frame {
                return frame;
            }
            self.arrived.notified().await;
        }
    }

    fn has_room(&self) -> bool {
        self.n_bytes.load(Ordering::Relaxed) < MAX_QUEUED_BYTES
            && self.n_frames.load(Ordering::Relaxed) < MAX_QUEUED_FRAMES
    }

    /// Counts one frame of `n_bytes` as written; wakes [`Outbox::room`]
    /// when that makes room.
    fn written(&self, n_bytes: usize) {
        let was_full = !self.has_room();
        self.n_bytes.fetch_sub(n_bytes, Ordering::Relaxed);
        self.n_frames.fetch_sub(1, Ordering::Relaxed);
        if was_full && self.has_room() {
            self.room.notify_waiters();
        }
    }
}

impl Outbox {
    /// Starts the writer task on `writer`, whose stream records its
    /// progress in `progress`.
    pub(crate) fn spawn<W>(
        writer: WebSocketWrite<Progress<W>>,
        progress: LastProgress,
        write_timeout: Duration,
    ) -> Self
    where
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (state_tx, state_rx) = watch::channel(WriterState::Writing);
        let (last_word_tx, last_word_rx) = oneshot::channel();
        let queued = Arc::new(Queued::default());
        let task = tokio::spawn(
            Writer {
                writer,
                progress,
                queued: Arc::clone(&queued),
                write_timeout,
                state_tx,
                last_word_rx,
            }
            .run(),
        );
        Self {
            queued,
            state_rx,
            last_word_tx: Some(last_word_tx),
            task,
        }
    }

    /// Queues `frame` and returns at once; `Err` once the writer has ended
    /// for a failed write.
    pub(crate) fn send(&mut self, frame: Frame<'static>) -> Result<(), Gone> {
        // A writer that has ended (gone, or closed) takes no more frames.
        if matches!(
            *self.state_rx.borrow(),
            WriterState::Gone | WriterState::Closed
        ) || self.task.is_finished()
        {
            return Err(Gone);
        }
        let n_bytes = frame.payload.len();
        self.queued.n_bytes.fetch_add(n_bytes, Ordering::Relaxed);
        self.queued.n_frames.fetch_add(1, Ordering::Relaxed);
        self.queued.push(frame);
        Ok(())
    }

    /// Whether the queue is under its bound; the connection reads from the
    /// sources that can flood it only while it is.
    pub(crate) fn has_room(&self) -> bool {
        self.queued.has_room()
    }

    /// A handle that waits for room in this queue (see [`RoomSignal`]).
    pub(crate) fn room_signal(&self) -> RoomSignal {
        RoomSignal(Arc::clone(&self.queued))
    }

    /// Frames queued and not yet written.
    pub(crate) fn n_queued(&self) -> usize {
        self.queued.n_frames.load(Ordering::Relaxed)
    }

    /// Whether every queued frame has been written.
    pub(crate) fn is_empty(&self) -> bool {
        self.queued.n_frames.load(Ordering::Relaxed) == 0
    }

    /// Resolves once the writer stops writing: stalled, closed or gone.
    /// Cancel-safe.
    pub(crate) async fn stopped(&mut self) -> WriterState {
        loop {
            let state = *self.state_rx.borrow_and_update();
            if state != WriterState::Writing {
                return state;
            }
            if self.state_rx.changed().await.is_err() {
                return WriterState::Gone;
            }
        }
    }

    /// Gives a stalled writer its last frame (a close frame) and waits for
    /// the writer to end, at most [`LAST_WORD_WAIT`] (the writer's own
    /// bound). True when the frame was written.
    pub(crate) async fn last_word(&mut self, close: Frame<'static>) -> bool {
        if let Some(last_word_tx) = self.last_word_tx.take() {
            let _ = last_word_tx.send(close);
        }
        let ended = tokio::time::timeout(LAST_WORD_WAIT, &mut self.task).await;
        matches!(ended, Ok(Ok(WriterState::Closed)))
    }

    /// Queues a close frame as the last frame and waits until it is
    /// written, at most [`LAST_WORD_WAIT`] and never past `deadline`. True
    /// when it was written; false when the client is gone or did not take
    /// it in time (then the writer is ended, and the TCP connection goes
    /// with the read half). The wait is short on purpose: a connection
    /// closed at the drain deadline must not hold the drain.
    pub(crate) async fn close(&mut self, close: Frame<'static>, deadline: Instant) -> bool {
        let payload = close.payload.to_vec();
        if self.send(close).is_err() {
            return false;
        }
        let deadline = deadline.min(Instant::now() + LAST_WORD_WAIT);
        let ended = tokio::time::timeout_at(deadline, async {
            match self.stopped().await {
                WriterState::Closed => true,
                WriterState::Gone | WriterState::Writing => false,
                WriterState::Stalled => {
                    // Frames queued ahead of the close frame are dropped;
                    // the close frame goes as the last word.
                    let frame = Frame::new(true, OpCode::Close, None, payload.into());
                    self.last_word(frame).await
                }
            }
        })
        .await;
        let written = ended.unwrap_or(false);
        if !written {
            self.task.abort();
        }
        written
    }
}

/// Waits for room in an [`Outbox`]'s queue without borrowing the outbox,
/// so that the wait can sit in a `select!` beside its other uses.
pub struct RoomSignal(Arc<Queued>);

impl std::fmt::Debug for RoomSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomSignal").finish_non_exhaustive()
    }
}

impl RoomSignal {
    /// Resolves once the queue is under its bound: at once when it is, or
    /// when the writer makes room. Cancel-safe.
    pub async fn wait(&self) {
        loop {
            // Registered before the check, so a wake-up between the check
            // and the wait is not lost.
            let notified = self.0.room.notified();
            if self.0.has_room() {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// === impl Writer ===

struct Writer<W> {
    writer: WebSocketWrite<Progress<W>>,
    /// Shared with the writer's stream (`WebSocketWrite` does not lend it).
    progress: LastProgress,
    queued: Arc<Queued>,
    write_timeout: Duration,
    state_tx: watch::Sender<WriterState>,
    last_word_rx: oneshot::Receiver<Frame<'static>>,
}

impl<W: AsyncWrite + Unpin + Send + 'static> Writer<W> {
    async fn run(mut self) -> WriterState {
        let ended = self.write_all().await;
        self.state_tx.send_replace(ended);
        ended
    }

    async fn write_all(&mut self) -> WriterState {
        let progress = self.progress.clone();
        loop {
            let frame = self.queued.next().await;
            let n_bytes = frame.payload.len();
            let is_close = frame.opcode == OpCode::Close;
            progress.touch();
            let mut write = Box::pin(self.writer.write_frame(frame));
            let written = loop {
                let stalled_at = progress.last() + self.write_timeout;
                tokio::select! {
                    written = &mut write => break Some(written.is_ok()),
                    () = tokio::time::sleep_until(stalled_at) => {
                        if progress.last() + self.write_timeout <= Instant::now() {
                            break None;
                        }
                    }
                }
            };
            match written {
                Some(true) => {
                    self.queued.written(n_bytes);
                    if is_close {
                        return WriterState::Closed;
                    }
                }
                Some(false) => return WriterState::Gone,
                None => {
                    self.state_tx.send_replace(WriterState::Stalled);
                    let deadline = Instant::now() + LAST_WORD_WAIT;
                    let finished = tokio::time::timeout_at(deadline, &mut write).await;
                    drop(write);
                    if !matches!(finished, Ok(Ok(()))) {
                        return WriterState::Gone;
                    }
                    if is_close {
                        return WriterState::Closed;
                    }
                    return self.write_last_word(deadline).await;
                }
            }
        }
    }

    async fn write_last_word(&mut self, deadline: Instant) -> WriterState {
        let Ok(Ok(close)) = tokio::time::timeout_at(deadline, &mut self.last_word_rx).await else {
            return WriterState::Gone;
        };
        match tokio::time::timeout_at(deadline, self.writer.write_frame(close)).await {
            Ok(Ok(())) => WriterState::Closed,
            _ => WriterState::Gone,
        }
    }
}

// === impl Progress ===

/// The time of the last byte the client took: shared by a [`Progress`]
/// write half and its writer task.
#[derive(Clone)]
pub(crate) struct LastProgress(Arc<Mutex<Instant>>);

impl LastProgress {
    pub(crate) fn new() -> Self {
        Self(Arc::new(Mutex::new(Instant::now())))
    }

    fn touch(&self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    fn last(&self) -> Instant {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A write half that records when the client last took bytes.
pub(crate) struct Progress<W> {
    inner: W,
    last: LastProgress,
}

impl<W> Progress<W> {
    pub(crate) fn new(inner: W, last: LastProgress) -> Self {
        Self { inner, last }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Progress<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.last.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.last.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
