//! The writing half of one connection: frames written at once when the
//! socket takes them, and otherwise queued for a writer task with a write
//! deadline, so that no write ever stops the connection's loop.
//!
//! The connection hands over a frame and goes on at once ([`Outbox::send`]
//! never waits). While nothing is queued, the frame is written there and
//! then, with a non-blocking write: the usual case costs no task and no
//! wake-up. What the socket does not take at once (the rest of a frame,
//! and every frame behind it) is queued, and a writer task, spawned the
//! first time this happens, writes it as the client takes it. A client
//! that takes no byte for `write_timeout` while frames wait is a slow
//! consumer: the writer stops writing and says so
//! ([`WriterState::Stalled`]), and the connection decides the last word (a
//! close frame, [`Outbox::last_word`]), which the writer writes if the
//! client takes the rest of its frame and the close frame within
//! [`LAST_WORD_WAIT`]; otherwise the task ends and the TCP connection is
//! dropped with it.
//!
//! Frames are framed here (RFC 6455 section 5.2, masked with a fresh key
//! when this end is a client, section 5.3) rather than by
//! fastwebsockets' `WebSocketWrite`: a frame written in part must be
//! finished by someone else, and only its bytes can be handed over.
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
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use fastwebsockets::{Frame, OpCode, Payload, Role};
use tokio::io::AsyncWrite;
use tokio::sync::Notify;
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

/// The largest frame head: 2 bytes, an 8-byte length, a 4-byte mask
/// (RFC 6455 section 5.2).
const MAX_HEAD: usize = 14;

/// The writer has ended: the client is gone (or the connection over).
#[derive(Debug)]
pub struct Gone;

/// Where the writer stands.
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

/// The connection's end of the writing half. Dropping it ends the writer
/// task and lets go of the socket's write half.
pub(crate) struct Outbox {
    shared: Arc<Shared>,
    role: Role,
    write_timeout: Duration,
    /// The writer task, spawned the first time a frame is not taken at
    /// once (most connections never need one).
    task: Option<JoinHandle<()>>,
}

type Io = Pin<Box<dyn AsyncWrite + Send>>;

/// What the connection and its writer task share.
struct Shared {
    inner: Mutex<Inner>,
    /// Told when a frame is queued for the writer task, or the last word
    /// given (a permit is kept when the task is not waiting yet).
    arrived: Notify,
    /// Told when the writer's state changes.
    state_changed: Notify,
    /// Told when a written frame brings a full queue back under its bound,
    /// so that a connection that stopped reading reads again at once.
    room: Notify,
    n_bytes: AtomicUsize,
    n_frames: AtomicUsize,
}

/// Everything about the socket's write half, behind one lock that is
/// never held across an `await`: the connection writes under it, and the
/// writer task holds it for one poll at a time.
struct Inner {
    /// The write half; `None` once the outbox is dropped.
    io: Option<Io>,
    /// Frames not yet written in full; the first may be written in part.
    queue: VecDeque<Framed>,
    state: WriterState,
    /// When the client last took a byte, or was given a frame to take
    /// while nothing was queued: the write deadline runs from here.
    last_progress: Instant,
    /// The close frame a stalled writer is to write last.
    last_word: Option<Framed>,
    /// Bytes were written that the write half may still hold (a TLS
    /// stream keeps records until flushed); the writer task flushes them.
    unflushed: bool,
}

/// One frame as bytes on the wire: its head, then its payload, and how
/// much of both is written.
struct Framed {
    head: [u8; MAX_HEAD],
    head_len: usize,
    payload: Payload<'static>,
    written: usize,
    is_close: bool,
}

impl Framed {
    /// Frames `frame`, masked with a fresh key when this end is a client.
    fn new(mut frame: Frame<'static>, role: Role) -> Self {
        if role == Role::Client {
            frame.mask();
        }
        let mut head = [0; MAX_HEAD];
        let head_len = frame.fmt_head(&mut head);
        Self {
            head,
            head_len,
            is_close: frame.opcode == OpCode::Close,
            payload: frame.payload,
            written: 0,
        }
    }

    /// Writes the rest of the frame; `Ready(Ok)` once all of it is
    /// written. `last_progress` is moved on by every byte taken.
    fn poll_write(
        &mut self,
        io: &mut Io,
        cx: &mut Context<'_>,
        last_progress: &mut Instant,
    ) -> Poll<io::Result<()>> {
        let total = self.head_len + self.payload.len();
        while self.written < total {
            let n = if self.written < self.head_len {
                let bufs = [
                    IoSlice::new(&self.head[self.written..self.head_len]),
                    IoSlice::new(&self.payload),
                ];
                ready!(io.as_mut().poll_write_vectored(cx, &bufs))?
            } else {
                let rest = &self.payload[self.written - self.head_len..];
                ready!(io.as_mut().poll_write(cx, rest))?
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
            *last_progress = Instant::now();
        }
        Poll::Ready(Ok(()))
    }
}

/// How a flush of the queue ended.
enum Flushed {
    /// Every queued frame is written.
    Empty,
    /// A close frame is written; nothing more will be.
    Closed,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn state(&self) -> WriterState {
        self.lock().state
    }

    fn set_state(&self, state: WriterState) {
        self.lock().state = state;
        self.state_changed.notify_waiters();
    }

    fn has_room(&self) -> bool {
        self.n_bytes.load(Ordering::Relaxed) < MAX_QUEUED_BYTES
            && self.n_frames.load(Ordering::Relaxed) < MAX_QUEUED_FRAMES
    }

    fn queued(&self, n_bytes: usize) {
        self.n_bytes.fetch_add(n_bytes, Ordering::Relaxed);
        self.n_frames.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one queued frame of `n_bytes` as gone from the queue; wakes
    /// [`RoomSignal::wait`] when that makes room.
    fn unqueued(&self, n_bytes: usize) {
        let was_full = !self.has_room();
        self.n_bytes.fetch_sub(n_bytes, Ordering::Relaxed);
        self.n_frames.fetch_sub(1, Ordering::Relaxed);
        if was_full && self.has_room() {
            self.room.notify_waiters();
        }
    }

    /// Writes queued frames until none is left, a close frame is written,
    /// or the socket takes no more for now.
    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<Flushed>> {
        loop {
            match ready!(self.poll_front(cx))? {
                Some(true) => {
                    ready!(self.poll_flush_io(cx))?;
                    return Poll::Ready(Ok(Flushed::Closed));
                }
                Some(false) => {}
                None => {
                    ready!(self.poll_flush_io(cx))?;
                    return Poll::Ready(Ok(Flushed::Empty));
                }
            }
        }
    }

    /// Writes the rest of the first queued frame and takes it off the
    /// queue: `Some(is_close)`, or `None` when nothing is queued.
    fn poll_front(&self, cx: &mut Context<'_>) -> Poll<io::Result<Option<bool>>> {
        let mut inner = self.lock();
        let Inner {
            io,
            queue,
            last_progress,
            ..
        } = &mut *inner;
        let Some(io) = io.as_mut() else {
            // The outbox is dropped: nothing more can be written.
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        let Some(front) = queue.front_mut() else {
            return Poll::Ready(Ok(None));
        };
        ready!(front.poll_write(io, cx, last_progress))?;
        let Some(written) = queue.pop_front() else {
            return Poll::Ready(Ok(None));
        };
        inner.unflushed = true;
        if written.is_close {
            // Under the same lock as the pop, so no frame can follow it on
            // the connection's own task.
            inner.state = WriterState::Closed;
        }
        drop(inner);
        self.unqueued(written.payload.len());
        if written.is_close {
            self.state_changed.notify_waiters();
        }
        Poll::Ready(Ok(Some(written.is_close)))
    }

    /// Flushes the write half, when bytes were written since the last
    /// flush.
    fn poll_flush_io(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut inner = self.lock();
        if !inner.unflushed {
            return Poll::Ready(Ok(()));
        }
        let Some(io) = inner.io.as_mut() else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        ready!(io.as_mut().poll_flush(cx))?;
        inner.unflushed = false;
        Poll::Ready(Ok(()))
    }

    /// Drops every queued frame (a stalled writer's, once the frame in
    /// progress is finished).
    fn drop_queue(&self) {
        let dropped: Vec<Framed> = self.lock().queue.drain(..).collect();
        for frame in dropped {
            self.unqueued(frame.payload.len());
        }
    }
}

impl Outbox {
    /// The writing half of a WebSocket on `io`, whose frames are masked
    /// when `role` is a client. A writer task is spawned when first
    /// needed, so frames must be sent from within a tokio runtime.
    pub(crate) fn new<W>(io: W, role: Role, write_timeout: Duration) -> Self
    where
        W: AsyncWrite + Send + 'static,
    {
        Self {
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner {
                    io: Some(Box::pin(io)),
                    queue: VecDeque::new(),
                    state: WriterState::Writing,
                    last_progress: Instant::now(),
                    last_word: None,
                    unflushed: false,
                }),
                arrived: Notify::new(),
                state_changed: Notify::new(),
                room: Notify::new(),
                n_bytes: AtomicUsize::new(0),
                n_frames: AtomicUsize::new(0),
            }),
            role,
            write_timeout,
            task: None,
        }
    }

    /// Writes `frame`, or queues what the socket does not take at once,
    /// and returns at once; `Err` once a write has failed or a close frame
    /// has gone out.
    pub(crate) fn send(&mut self, frame: Frame<'static>) -> Result<(), Gone> {
        let mut framed = Framed::new(frame, self.role);
        let mut inner = self.shared.lock();
        match inner.state {
            WriterState::Gone | WriterState::Closed => return Err(Gone),
            // A stalled writer drops everything but the last word; so is
            // this frame.
            WriterState::Stalled => return Ok(()),
            WriterState::Writing if inner.queue.is_empty() => {
                // Nothing ahead of it: write it now. A socket that would
                // block hands the rest to the writer task below.
                let Inner {
                    io, last_progress, ..
                } = &mut *inner;
                let Some(io) = io.as_mut() else {
                    return Err(Gone);
                };
                *last_progress = Instant::now();
                let mut cx = Context::from_waker(Waker::noop());
                match framed.poll_write(io, &mut cx, last_progress) {
                    Poll::Ready(Ok(())) => {
                        // A plain socket flushes at once; a write half that
                        // holds bytes back leaves them to the writer task.
                        let flushed = io.as_mut().poll_flush(&mut cx);
                        if framed.is_close {
                            inner.state = WriterState::Closed;
                        }
                        match flushed {
                            Poll::Ready(Ok(())) => {}
                            Poll::Ready(Err(_)) if !framed.is_close => {
                                drop(inner);
                                self.shared.set_state(WriterState::Gone);
                                return Err(Gone);
                            }
                            Poll::Ready(Err(_)) => {}
                            Poll::Pending => {
                                inner.unflushed = true;
                                drop(inner);
                                self.wake_writer();
                                if framed.is_close {
                                    self.shared.state_changed.notify_waiters();
                                }
                                return Ok(());
                            }
                        }
                        drop(inner);
                        if framed.is_close {
                            self.shared.state_changed.notify_waiters();
                        }
                        return Ok(());
                    }
                    Poll::Ready(Err(_)) => {
                        drop(inner);
                        self.shared.set_state(WriterState::Gone);
                        return Err(Gone);
                    }
                    Poll::Pending => {}
                }
            }
            WriterState::Writing => {}
        }
        // Counted before it is queued, so the writer never uncounts a
        // frame not yet counted.
        self.shared.queued(framed.payload.len());
        inner.queue.push_back(framed);
        drop(inner);
        self.wake_writer();
        Ok(())
    }

    /// Tells the writer task there is work, spawning it the first time.
    fn wake_writer(&mut self) {
        if self.task.is_none() {
            self.task = Some(tokio::spawn(Writer::run(
                Arc::clone(&self.shared),
                self.write_timeout,
            )));
        }
        self.shared.arrived.notify_one();
    }

    /// Whether the queue is under its bound; the connection reads from the
    /// sources that can flood it only while it is.
    pub(crate) fn has_room(&self) -> bool {
        self.shared.has_room()
    }

    /// A handle that waits for room in this queue (see [`RoomSignal`]).
    pub(crate) fn room_signal(&self) -> RoomSignal {
        RoomSignal(Arc::clone(&self.shared))
    }

    /// Frames queued and not yet written.
    pub(crate) fn n_queued(&self) -> usize {
        self.shared.n_frames.load(Ordering::Relaxed)
    }

    /// Whether every frame has been written.
    pub(crate) fn is_empty(&self) -> bool {
        self.n_queued() == 0
    }

    /// Resolves once the writer stops writing: stalled, closed or gone.
    /// Cancel-safe.
    pub(crate) async fn stopped(&mut self) -> WriterState {
        self.until(|state| state != WriterState::Writing).await
    }

    /// Resolves with the writer's state once `done` holds for it.
    async fn until(&self, done: impl Fn(WriterState) -> bool) -> WriterState {
        loop {
            // Registered before the check, so a change between the check
            // and the wait is not missed.
            let notified = self.shared.state_changed.notified();
            let state = self.shared.state();
            if done(state) {
                return state;
            }
            notified.await;
        }
    }

    /// Gives a stalled writer its last frame (a close frame) and waits for
    /// the writer to end, at most [`LAST_WORD_WAIT`] (the writer's own
    /// bound). True when the frame was written.
    pub(crate) async fn last_word(&mut self, close: Frame<'static>) -> bool {
        if self.task.is_none() {
            // Only the writer task stalls; without one there is no stall.
            return false;
        }
        self.shared.lock().last_word = Some(Framed::new(close, self.role));
        self.shared.arrived.notify_one();
        let ended = tokio::time::timeout(
            LAST_WORD_WAIT,
            self.until(|state| matches!(state, WriterState::Closed | WriterState::Gone)),
        )
        .await;
        matches!(ended, Ok(WriterState::Closed))
    }

    /// Sends a close frame as the last frame and waits until it is
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
        if !written && let Some(task) = &self.task {
            task.abort();
        }
        written
    }
}

/// Waits for room in an [`Outbox`]'s queue without borrowing the outbox,
/// so that the wait can sit in a `select!` beside its other uses.
pub struct RoomSignal(Arc<Shared>);

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
        if let Some(task) = &self.task {
            task.abort();
        }
        // The write half goes now, not when the last room signal does.
        self.shared.lock().io = None;
    }
}

// === impl Writer ===

/// Sets a writer that ends without saying how (aborted, or panicking) to
/// [`WriterState::Gone`].
struct EndsGone(Arc<Shared>);

impl Drop for EndsGone {
    fn drop(&mut self) {
        let mut inner = self.0.lock();
        if matches!(inner.state, WriterState::Writing | WriterState::Stalled) {
            inner.state = WriterState::Gone;
            drop(inner);
            self.0.state_changed.notify_waiters();
        }
    }
}

/// The writer task: writes what the socket did not take at once, under
/// the write deadline.
struct Writer {
    shared: Arc<Shared>,
    write_timeout: Duration,
}

impl Writer {
    async fn run(shared: Arc<Shared>, write_timeout: Duration) {
        // A writer aborted (by `close` or a drop) or panicking ends as
        // gone, so nobody waits on it or sends to it.
        let _gone = EndsGone(Arc::clone(&shared));
        let writer = Writer {
            shared,
            write_timeout,
        };
        let ended = writer.write_all().await;
        writer.shared.set_state(ended);
    }

    async fn write_all(&self) -> WriterState {
        loop {
            self.arrived(|inner| !inner.queue.is_empty() || inner.unflushed)
                .await;
            loop {
                let stalled_at = self.shared.lock().last_progress + self.write_timeout;
                tokio::select! {
                    flushed = poll_fn(|cx| self.shared.poll_flush(cx)) => match flushed {
                        Ok(Flushed::Empty) => break,
                        Ok(Flushed::Closed) => return WriterState::Closed,
                        Err(_) => return WriterState::Gone,
                    },
                    () = tokio::time::sleep_until(stalled_at) => {
                        let last_progress = self.shared.lock().last_progress;
                        if last_progress + self.write_timeout <= Instant::now() {
                            return self.stalled().await;
                        }
                    }
                }
            }
        }
    }

    /// Waits until `ready` holds for the shared state, woken by `arrived`.
    async fn arrived(&self, ready: impl Fn(&Inner) -> bool) {
        loop {
            let notified = self.shared.arrived.notified();
            if ready(&self.shared.lock()) {
                return;
            }
            notified.await;
        }
    }

    /// The client took no byte for `write_timeout`: finishes the frame in
    /// progress (a frame cut short would break the stream), drops the rest,
    /// and writes the connection's last word, all within
    /// [`LAST_WORD_WAIT`].
    async fn stalled(&self) -> WriterState {
        self.shared.set_state(WriterState::Stalled);
        let deadline = Instant::now() + LAST_WORD_WAIT;
        // A frame not begun is dropped with the rest.
        let begun = self
            .shared
            .lock()
            .queue
            .front()
            .is_some_and(|front| front.written > 0);
        if !begun {
            self.shared.drop_queue();
        }
        let finished =
            tokio::time::timeout_at(deadline, poll_fn(|cx| self.shared.poll_front(cx))).await;
        match finished {
            Ok(Ok(Some(true))) => return WriterState::Closed,
            Ok(Ok(_)) => {}
            _ => return WriterState::Gone,
        }
        self.shared.drop_queue();
        let given =
            tokio::time::timeout_at(deadline, self.arrived(|inner| inner.last_word.is_some()))
                .await;
        if given.is_err() {
            return WriterState::Gone;
        }
        let written = tokio::time::timeout_at(
            deadline,
            poll_fn(|cx| {
                let mut inner = self.shared.lock();
                let Inner {
                    io,
                    last_word,
                    last_progress,
                    ..
                } = &mut *inner;
                match (io.as_mut(), last_word.as_mut()) {
                    (Some(io), Some(close)) => close.poll_write(io, cx, last_progress),
                    _ => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
                }
            }),
        )
        .await;
        match written {
            Ok(Ok(())) => WriterState::Closed,
            _ => WriterState::Gone,
        }
    }
}

#[cfg(test)]
mod tests;
