//! One WebSocket client, from upgrade to close: hold, warm, admit, push,
//! drain.
//!
//! **Invariant:** a held client always ends admitted (`ready`) or told why
//! not (`unavailable` with a reason and a retry hint, then close 1013; or,
//! when its token expires while held, `error` `token_expired`, then close
//! 1008); the only silent endings are the client's own (it closed, broke
//! the protocol or vanished).
//!
//! Each connection is one task. It reads the client's frames through a
//! stream (so a pending read survives every `select!`), queues its frames
//! for a writer task (`outbox`), and parks on its snapshot receiver and
//! timers in between.
//!
//! **Invariant:** no await in a connection's loop stops its timers (the
//! hold deadline, the heartbeat, the token expiry, the pings and the drain
//! deadline). Writing never waits: a frame is queued and written by the
//! writer task, under a write deadline. What can wait on the client is
//! only ever one branch of the loop's `select!`: the read of its next
//! frame (a stream, so a frame in progress survives the other branches)
//! and the writer's stall. The reads that add frames (room messages, the
//! client's own messages) pause while the queue is full, so a room that
//! outruns a reader lags (`lagged`) instead of growing the queue. Only
//! the close handshake, at the very end, waits, and at most
//! `CLOSE_HANDSHAKE_WAIT` in all.
//!
//! A client that takes no byte for `write_timeout` is a slow consumer: it
//! is closed with 1008 (or dropped, if it cannot take the close frame
//! either), logged once per window and counted as `slow_consumer`.
//!
//! Liveness: every byte read from the client counts as an answer to a
//! ping, a frame still arriving included, since a pong cannot be sent
//! inside another frame (RFC 6455 section 5.4).

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

use axum::http::HeaderMap;
use fastwebsockets::{Frame, Payload, WebSocket};
use futures_util::{Stream, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;
use tokio_stream::StreamMap;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use warmgate_auth::Identity;
use warmgate_core::{GateState, Snapshot};
use warmgate_engine::SnapshotRx;
use warmgate_http::{LogSampler, REFUSAL_LOG_WINDOW};

use crate::frames::{BytesRead, FrameReader, Incoming};
use crate::measure::ConnectionMeter;
use crate::outbox::{Gone, LastProgress, Outbox, Progress, WriterState};
use crate::protocol::{ClientMessage, DEFAULT_ROOM, ErrorCode, ServerMessage, UnavailableReason};
use crate::rate_limit::{MessageRateLimit, Verdict};
use crate::session::ChatSender;
use crate::settings::{MAX_BUFFERED_BYTES, MAX_BUFFERED_MESSAGES, jittered_millis};
use crate::trace_context;
use crate::tracker::{HeldGuard, OpenGuard};
use crate::upgrade::GateInner;

/// Which protocol the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// The warmgate protocol, then chat.
    Ws,
    /// Transparent: no frames of ours, then echo.
    Echo,
}

impl Route {
    pub(crate) fn path(self) -> &'static str {
        match self {
            Route::Ws => "/ws",
            Route::Echo => "/echo",
        }
    }
}

const CLOSE_NORMAL: u16 = 1000;
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_POLICY_VIOLATION: u16 = 1008;
const CLOSE_TRY_AGAIN_LATER: u16 = 1013;

/// The most rooms one connection may be in.
const MAX_ROOMS_PER_CONNECTION: usize = 16;

/// How long the closing handshake may take in all: our close frame
/// written, and the client's read.
const CLOSE_HANDSHAKE_WAIT: Duration = Duration::from_secs(2);

/// Samples the slow-consumer log lines, so a room of stalled readers does
/// not flood the log; the metric counts every one.
static SLOW_CONSUMER_LOG: LazyLock<LogSampler> =
    LazyLock::new(|| LogSampler::new(REFUSAL_LOG_WINDOW));

type Frames = Pin<Box<dyn Stream<Item = Incoming> + Send>>;

/// How a connection ended, for its span and logs.
#[derive(Debug)]
enum Outcome {
    /// Admitted, then closed with this code (by either side), or gone.
    Admitted,
    Unavailable(UnavailableReason),
    /// The client left (closed, vanished, or broke the protocol) while held.
    LeftWhileHeld,
    /// The client's token expired while it was held: told so, closed 1008.
    TokenExpiredWhileHeld,
    /// The client took no frame for `write_timeout`: closed 1008, or
    /// dropped.
    SlowConsumer,
}

/// The end of a connection: why, and the close code sent, if any.
struct Ended {
    outcome: Outcome,
    close_code: Option<u16>,
}

struct Connection {
    gate: Arc<GateInner>,
    route: Route,
    id: String,
    outbox: Outbox,
    frames: Frames,
    /// Bytes read from the client so far, frames in progress included.
    n_read: Arc<AtomicU64>,
    upgraded_at: Instant,
    meter: ConnectionMeter,
    /// Who the token said the client is; `None` without `[auth]`.
    identity: Option<Identity>,
    /// When the token expires, leeway included.
    token_expires: Option<Instant>,
    rate_limit: MessageRateLimit,
}

/// When a token that expires at `expires_at` (wall clock) stops being
/// accepted, on tokio's clock: `exp` plus the leeway, as the check at the
/// upgrade allowed.
fn token_deadline(expires_at: SystemTime, leeway: Duration) -> Instant {
    let remaining = expires_at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Instant::now() + remaining + leeway
}

/// A message a held client sent, kept for after admission.
enum Buffered {
    Text(String),
    Binary(Vec<u8>),
}

impl Buffered {
    fn len(&self) -> usize {
        match self {
            Buffered::Text(text) => text.len(),
            Buffered::Binary(bytes) => bytes.len(),
        }
    }
}

/// The span of one connection, from the upgrade to the close: a child of
/// the caller's trace when the request names one (see `trace_context`).
pub(crate) fn span(id: &str, route: Route, headers: &HeaderMap) -> tracing::Span {
    let span = tracing::info_span!(
        "websocket",
        conn.id = %id,
        route = route.path(),
        trace_parent = tracing::field::Empty,
        state_at_connect = tracing::field::Empty,
        outcome = tracing::field::Empty,
        waited_ms = tracing::field::Empty,
        close_code = tracing::field::Empty,
        sub = tracing::field::Empty,
        auth = tracing::field::Empty,
        auth_error = tracing::field::Empty,
    );
    if let Some((parent, source)) = trace_context::remote_parent(headers) {
        span.record("trace_parent", source.as_str());
        // Fails only when no OpenTelemetry layer is installed; then there is
        // no trace to join.
        let _ = span.set_parent(parent);
    }
    span
}

/// Runs one upgraded client to its end, inside the span from [`span`].
pub(crate) async fn run(
    ws: WebSocket<TokioIo<Upgraded>>,
    gate: Arc<GateInner>,
    route: Route,
    id: String,
    identity: Option<Identity>,
    upgraded_at: Instant,
    open: Option<OpenGuard>,
) {
    let gate_leeway = gate.authenticator.leeway();
    let rate_limit = MessageRateLimit::new(
        gate.settings.messages_per_second,
        gate.settings.message_burst,
        Instant::now(),
    );
    let n_read = Arc::new(AtomicU64::new(0));
    let progress = LastProgress::new();
    let (read, writer) = ws.split(|io| {
        let (read, write) = tokio::io::split(io);
        (
            BytesRead::new(read, Arc::clone(&n_read)),
            Progress::new(write, progress.clone()),
        )
    });
    let outbox = Outbox::spawn(writer, progress, gate.settings.write_timeout);
    let reader = FrameReader::new(read, gate.settings.max_message_bytes);
    let frames: Frames = Box::pin(futures_util::stream::unfold(
        reader,
        |mut reader| async move {
            let incoming = reader.next().await;
            Some((incoming, reader))
        },
    ));
    let mut connection = Connection {
        gate,
        route,
        id,
        outbox,
        frames,
        n_read,
        upgraded_at,
        meter: ConnectionMeter::new(route.path()),
        token_expires: identity
            .as_ref()
            .map(|identity| token_deadline(identity.expires_at, gate_leeway)),
        identity,
        rate_limit,
    };
    {
        let ended = match open {
            Some(_open) => connection.serve().await,
            None => {
                connection
                    .refuse_without_snapshot(UnavailableReason::Capacity)
                    .await
            }
        };
        let span = tracing::Span::current();
        let outcome = match &ended.outcome {
            Outcome::Admitted => "admitted".to_owned(),
            Outcome::Unavailable(reason) => format!("unavailable:{}", reason.as_str()),
            Outcome::LeftWhileHeld => "left_while_held".to_owned(),
            Outcome::TokenExpiredWhileHeld => "token_expired_while_held".to_owned(),
            Outcome::SlowConsumer => "slow_consumer".to_owned(),
        };
        span.record("outcome", outcome.as_str());
        // Usually done already, before the last frame; this covers a
        // client that vanished.
        connection.meter.finish();
        // Both record the same ending; a disagreement is a bug worth a
        // log line, never a reason to take the connection task down.
        if connection.meter.outcome() != outcome {
            tracing::warn!(
                span_outcome = %outcome,
                metrics_outcome = %connection.meter.outcome(),
                "the span and the metrics disagree on how the connection ended; this is a warmgate bug"
            );
        }
        if let Some(code) = ended.close_code {
            span.record("close_code", i64::from(code));
        }
        tracing::debug!(outcome, close_code = ended.close_code, "websocket closed");
    }
}

impl Connection {
    async fn serve(&mut self) -> Ended {
        let mut snapshot_rx = self.gate.handle.subscribe();
        let snapshot = Arc::clone(&snapshot_rx.borrow_and_update());
        tracing::Span::current().record("state_at_connect", snapshot.state.as_str());
        if snapshot.state == GateState::Draining {
            return self.refuse(UnavailableReason::Draining, &snapshot, 0).await;
        }
        let mut held = None;
        if !snapshot.state.admits_traffic() {
            let Some(guard) = self.gate.counts.try_hold(self.gate.settings.max_held) else {
                return self.refuse(UnavailableReason::Capacity, &snapshot, 0).await;
            };
            held = Some(guard);
        }
        // A `/ws` client is in `lobby` from here, held or not: clients held
        // together are released together, and a message one of them sends
        // right after `ready` must reach the others whatever order their
        // tasks run in. What arrives while it is held is sent after `ready`.
        let lobby = (self.route == Route::Ws).then(|| self.gate.session.join(DEFAULT_ROOM));
        let mut buffered = Vec::new();
        let mut waited = None;
        if let Some(held) = held {
            let hold_span = tracing::info_span!(
                "hold",
                hold_timeout_ms = self.gate.settings.hold_timeout.as_millis() as i64,
                phase = snapshot.phase.as_deref(),
                pending = ?snapshot.pending,
            );
            let held = self
                .hold(held, &mut snapshot_rx, &mut buffered)
                .instrument(hold_span);
            match held.await {
                Ok(()) => waited = Some(self.upgraded_at.elapsed()),
                Err(ended) => return ended,
            }
        }
        self.admitted(snapshot_rx, lobby, buffered, waited).await
    }

    // === hold ===

    /// Holds the client until the gate admits traffic (`Ok`), or ends the
    /// connection with a reason (`Err`).
    async fn hold(
        &mut self,
        _held: HeldGuard,
        snapshot_rx: &mut SnapshotRx,
        buffered: &mut Vec<Buffered>,
    ) -> Result<(), Ended> {
        self.meter.held();
        let settings = Arc::clone(&self.gate.settings);
        let held_at = Instant::now();
        let deadline = tokio::time::sleep(settings.hold_timeout);
        tokio::pin!(deadline);
        let mut heartbeat = tokio::time::interval_at(
            held_at + settings.warming_interval,
            settings.warming_interval,
        );
        let token_expiry = self.token_expiry();
        tokio::pin!(token_expiry);
        let mut buffered_bytes = 0;
        let current = Arc::clone(&snapshot_rx.borrow());
        if self.send_warming(&current, held_at).await.is_err() {
            return Err(left());
        }
        let room = self.outbox.room_signal();
        loop {
            tokio::select! {
                changed = snapshot_rx.changed() => {
                    let snapshot = Arc::clone(&snapshot_rx.borrow_and_update());
                    if changed.is_err() || snapshot.state == GateState::Draining {
                        return Err(self.refuse(UnavailableReason::Draining, &snapshot, buffered.len()).await);
                    }
                    if snapshot.state.admits_traffic() {
                        return Ok(());
                    }
                    if self.send_warming(&snapshot, held_at).await.is_err() {
                        return Err(left());
                    }
                }
                _ = heartbeat.tick() => {
                    let snapshot = Arc::clone(&snapshot_rx.borrow());
                    if self.send_warming(&snapshot, held_at).await.is_err() {
                        return Err(left());
                    }
                }
                () = &mut token_expiry, if self.token_expires.is_some() => {
                    return Err(self.token_expired_while_held(buffered.len()).await);
                }
                stopped = self.outbox.stopped() => {
                    return Err(self.writer_stopped(stopped, Outcome::LeftWhileHeld).await);
                }
                () = &mut deadline => {
                    let snapshot = Arc::clone(&snapshot_rx.borrow());
                    let reason = if snapshot.state == GateState::Failed {
                        UnavailableReason::Failed
                    } else {
                        UnavailableReason::HoldTimeout
                    };
                    return Err(self.refuse(reason, &snapshot, buffered.len()).await);
                }
                // A full queue stops the reading below; this wakes the loop
                // when the writer makes room, so the guards are re-read.
                () = room.wait(), if !self.outbox.has_room() => {}
                incoming = self.frames.next(), if self.outbox.has_room() => {
                    let incoming = incoming.unwrap_or(Incoming::Gone);
                    let message = match incoming {
                        Incoming::Text(text) => Buffered::Text(text),
                        Incoming::Binary(bytes) => Buffered::Binary(bytes),
                        other => match self.control(other).await {
                            Ok(()) => continue,
                            Err(close_code) => return Err(Ended { outcome: Outcome::LeftWhileHeld, close_code }),
                        },
                    };
                    if buffered.len() >= MAX_BUFFERED_MESSAGES || buffered_bytes + message.len() > MAX_BUFFERED_BYTES {
                        let refused = format!(
                            "message refused: a held client may buffer at most {MAX_BUFFERED_MESSAGES} messages or {} KiB until it is admitted",
                            MAX_BUFFERED_BYTES / 1024
                        );
                        if self.send_error(ErrorCode::BufferFull, &refused).await.is_err() {
                            return Err(left());
                        }
                        continue;
                    }
                    buffered_bytes += message.len();
                    buffered.push(message);
                }
            }
        }
    }

    async fn send_warming(&mut self, snapshot: &Snapshot, held_at: Instant) -> Result<(), Gone> {
        if self.route == Route::Echo {
            return Ok(());
        }
        let hold_remaining = self
            .gate
            .settings
            .hold_timeout
            .saturating_sub(held_at.elapsed());
        let mut phases: Vec<&str> = Vec::new();
        for check in &snapshot.checks {
            if phases.last() != Some(&check.phase.as_str()) {
                phases.push(&check.phase);
            }
        }
        let message = ServerMessage::Warming {
            state: snapshot.state,
            phase: snapshot.phase.as_deref(),
            phases,
            pending: &snapshot.pending,
            elapsed_ms: millis(self.gate.handle.elapsed()),
            hold_remaining_ms: millis(hold_remaining),
            seq: snapshot.seq,
        };
        self.send_text(&message.to_json()).await
    }

    /// Tells the client why it is not admitted and closes with 1013.
    async fn refuse(
        &mut self,
        reason: UnavailableReason,
        snapshot: &Snapshot,
        unprocessed: usize,
    ) -> Ended {
        let retry_after_ms = jittered_millis(self.gate.settings.retry_after);
        let waited = self.upgraded_at.elapsed();
        self.meter.refused(reason, waited);
        let waited_ms = millis(waited);
        tracing::Span::current().record("waited_ms", waited_ms as i64);
        tracing::info!(
            reason = reason.as_str(),
            state = snapshot.state.as_str(),
            pending = ?snapshot.pending,
            waited_ms,
            retry_after_ms,
            unprocessed,
            "client not admitted; told to retry later and closed with 1013"
        );
        if self.route == Route::Ws {
            let message = ServerMessage::Unavailable {
                reason,
                state: snapshot.state,
                phase: snapshot.phase.as_deref(),
                pending: &snapshot.pending,
                retry_after_ms,
                unprocessed,
            };
            if self.send_text(&message.to_json()).await.is_err() {
                return Ended {
                    outcome: Outcome::Unavailable(reason),
                    close_code: None,
                };
            }
        }
        let reason_text = format!("{}; retry after {retry_after_ms} ms", reason.as_str());
        self.close(CLOSE_TRY_AGAIN_LATER, &reason_text).await;
        Ended {
            outcome: Outcome::Unavailable(reason),
            close_code: Some(CLOSE_TRY_AGAIN_LATER),
        }
    }

    /// [`Connection::refuse`] before any snapshot was read (capacity).
    async fn refuse_without_snapshot(&mut self, reason: UnavailableReason) -> Ended {
        let snapshot = self.gate.handle.current();
        self.refuse(reason, &snapshot, 0).await
    }

    // === admitted ===

    /// Serves an admitted client. `lobby` is its membership of the default
    /// room (`/ws` only); `waited` is how long it was held, or `None` when
    /// the gate was ready at connect.
    async fn admitted(
        &mut self,
        mut snapshot_rx: SnapshotRx,
        lobby: Option<tokio::sync::broadcast::Receiver<Arc<str>>>,
        buffered: Vec<Buffered>,
        waited: Option<Duration>,
    ) -> Ended {
        let snapshot = Arc::clone(&snapshot_rx.borrow_and_update());
        let waited_ms = waited.map_or(0, millis);
        self.meter
            .admitted(waited.unwrap_or_else(|| self.upgraded_at.elapsed()));
        tracing::Span::current().record("waited_ms", waited_ms as i64);
        if waited.is_some() {
            // Debug, not info: one flip admits thousands of clients at once,
            // and the state change is logged once by the engine.
            tracing::debug!(
                waited_ms,
                n_buffered = buffered.len(),
                state = snapshot.state.as_str(),
                "held client admitted; its buffered messages are processed now"
            );
        }
        if self.route == Route::Ws {
            let message = ServerMessage::Ready {
                state: snapshot.state,
                degraded: &snapshot.degraded,
                waited_ms,
                connection_id: &self.id,
                seq: snapshot.seq,
            };
            if self.send_text(&message.to_json()).await.is_err() {
                return admitted_end(None);
            }
        }
        let mut rooms: StreamMap<String, BroadcastStream<Arc<str>>> = StreamMap::new();
        if let Some(lobby) = lobby {
            rooms.insert(DEFAULT_ROOM.to_owned(), BroadcastStream::new(lobby));
        }
        for message in buffered {
            let handled = match message {
                Buffered::Text(text) => self.on_text(text, &mut rooms).await,
                Buffered::Binary(bytes) => self.on_binary(bytes).await,
            };
            if handled.is_err() {
                return admitted_end(None);
            }
        }
        let mut last_pushed = (snapshot.state, snapshot.degraded.clone());
        let settings = Arc::clone(&self.gate.settings);
        let mut ping = tokio::time::interval_at(
            Instant::now() + settings.ping_interval,
            settings.ping_interval,
        );
        let mut unanswered_pings = 0u8;
        let mut n_read_at_ping = self.n_read.load(Ordering::Relaxed);
        let drain_deadline = tokio::time::sleep(Duration::MAX);
        tokio::pin!(drain_deadline);
        let token_expiry = self.token_expiry();
        tokio::pin!(token_expiry);
        let mut draining = false;
        if snapshot.state == GateState::Draining {
            // The gate turned from ready to draining between the hold and now.
            if self.start_draining(drain_deadline.as_mut()).await.is_err() {
                return admitted_end(None);
            }
            draining = true;
        }
        let room = self.outbox.room_signal();
        loop {
            tokio::select! {
                changed = snapshot_rx.changed(), if !draining => {
                    let snapshot = Arc::clone(&snapshot_rx.borrow_and_update());
                    if changed.is_err() || snapshot.state == GateState::Draining {
                        if self.start_draining(drain_deadline.as_mut()).await.is_err() {
                            return admitted_end(None);
                        }
                        draining = true;
                        continue;
                    }
                    let now = (snapshot.state, snapshot.degraded.clone());
                    if now != last_pushed && self.route == Route::Ws {
                        let message = ServerMessage::Readiness {
                            state: snapshot.state,
                            degraded: &snapshot.degraded,
                            seq: snapshot.seq,
                        };
                        if self.send_text(&message.to_json()).await.is_err() {
                            return admitted_end(None);
                        }
                    }
                    last_pushed = now;
                }
                () = &mut token_expiry, if self.token_expires.is_some() => {
                    return self.token_expired().await;
                }
                () = &mut drain_deadline, if draining => {
                    tracing::debug!("drain grace over; closing with 1001");
                    self.close(CLOSE_GOING_AWAY, "server restarting").await;
                    return admitted_end(Some(CLOSE_GOING_AWAY));
                }
                _ = ping.tick() => {
                    // Any byte since the last tick answers, a frame still
                    // arriving included: a client cannot send a pong in
                    // the middle of another frame.
                    let n_read = self.n_read.load(Ordering::Relaxed);
                    if n_read != n_read_at_ping {
                        n_read_at_ping = n_read;
                        unanswered_pings = 0;
                    }
                    if !self.outbox.is_empty() {
                        // The client has not taken our last frames, pings
                        // included, so it cannot have answered them; the
                        // write deadline judges a client that does not read.
                        continue;
                    }
                    if unanswered_pings >= 2 {
                        tracing::info!("client answered none of two pings; closing with 1001");
                        self.close(CLOSE_GOING_AWAY, "no answer to two pings").await;
                        return admitted_end(Some(CLOSE_GOING_AWAY));
                    }
                    unanswered_pings += 1;
                    if self.write(Frame::new(true, fastwebsockets::OpCode::Ping, None, Payload::Borrowed(b"warmgate"))).await.is_err() {
                        return admitted_end(None);
                    }
                }
                stopped = self.outbox.stopped() => {
                    return self.writer_stopped(stopped, Outcome::Admitted).await;
                }
                () = room.wait(), if !self.outbox.has_room() => {}
                Some((room, frame)) = rooms.next(), if self.outbox.has_room() => {
                    let sent = match frame {
                        Ok(frame) => self.send_text(&frame).await,
                        Err(BroadcastStreamRecvError::Lagged(n_missed)) => {
                            let message = format!("missed {n_missed} messages in room `{room}`: more came, while this connection was held or read slowly, than the room buffers");
                            self.send_error(ErrorCode::Lagged, &message).await
                        }
                    };
                    if sent.is_err() {
                        return admitted_end(None);
                    }
                }
                incoming = self.frames.next(), if self.outbox.has_room() => {
                    unanswered_pings = 0;
                    let incoming = incoming.unwrap_or(Incoming::Gone);
                    if matches!(incoming, Incoming::Text(_) | Incoming::Binary(_)) && self.route == Route::Ws {
                        match self.rate_limit.check(Instant::now()) {
                            Verdict::Allow => {}
                            Verdict::Refuse => {
                                if self.rate_limited(&incoming).await.is_err() {
                                    return admitted_end(None);
                                }
                                continue;
                            }
                            Verdict::Close => return self.flooded().await,
                        }
                    }
                    let handled = match incoming {
                        Incoming::Text(text) => self.on_text(text, &mut rooms).await,
                        Incoming::Binary(bytes) => self.on_binary(bytes).await,
                        other => match self.control(other).await {
                            Ok(()) => Ok(()),
                            Err(close_code) => return admitted_end(close_code),
                        },
                    };
                    if handled.is_err() {
                        return admitted_end(None);
                    }
                }
            }
        }
    }

    /// Refuses one message past the rate limit, naming its
    /// `client_msg_id` when it has one.
    async fn rate_limited(&mut self, incoming: &Incoming) -> Result<(), Gone> {
        crate::measure::rate_limited(false);
        if self.rate_limit.refused_in_a_row() == 1 {
            tracing::info!(
                messages_per_second = self.gate.settings.messages_per_second,
                message_burst = self.gate.settings.message_burst,
                "client is sending faster than the rate limit; refusing messages"
            );
        }
        let client_msg_id = match incoming {
            Incoming::Text(text) => client_msg_id_of(text),
            _ => None,
        };
        let message = format!(
            "message refused: at most {} messages per second (bursts of {}); slow down or the connection closes",
            self.gate.settings.messages_per_second, self.gate.settings.message_burst
        );
        self.send_error_for(ErrorCode::RateLimited, &message, client_msg_id.as_deref())
            .await
    }

    /// Closes a client that kept sending a whole burst past the limit.
    async fn flooded(&mut self) -> Ended {
        crate::measure::rate_limited(true);
        tracing::warn!(
            messages_per_second = self.gate.settings.messages_per_second,
            message_burst = self.gate.settings.message_burst,
            "client kept flooding past the rate limit; closing with 1008"
        );
        self.close(CLOSE_POLICY_VIOLATION, "rate limit exceeded")
            .await;
        admitted_end(Some(CLOSE_POLICY_VIOLATION))
    }

    /// Fires when the client's token expires, leeway included; never
    /// without a token (and its `select!` branches are disabled then).
    fn token_expiry(&self) -> tokio::time::Sleep {
        match self.token_expires {
            Some(at) => tokio::time::sleep_until(at),
            None => tokio::time::sleep(Duration::MAX),
        }
    }

    /// Ends a session whose token expired: an `error` frame, then 1008.
    async fn token_expired(&mut self) -> Ended {
        tracing::info!("the client's token expired; closing with 1008");
        self.end_expired_token(Outcome::Admitted).await
    }

    /// Ends a held client whose token expired before the gate admitted it:
    /// admitting it would only end it at once.
    async fn token_expired_while_held(&mut self, unprocessed: usize) -> Ended {
        let waited = self.upgraded_at.elapsed();
        self.meter.token_expired_while_held(waited);
        let waited_ms = millis(waited);
        tracing::Span::current().record("waited_ms", waited_ms as i64);
        tracing::info!(
            waited_ms,
            unprocessed,
            "a held client's token expired before the gate admitted it; closing with 1008"
        );
        self.end_expired_token(Outcome::TokenExpiredWhileHeld).await
    }

    async fn end_expired_token(&mut self, outcome: Outcome) -> Ended {
        let sent = self
            .send_error(
                ErrorCode::TokenExpired,
                "your token expired: reconnect with a fresh one",
            )
            .await;
        if sent.is_err() {
            return Ended {
                outcome,
                close_code: None,
            };
        }
        self.close(CLOSE_POLICY_VIOLATION, "token expired").await;
        Ended {
            outcome,
            close_code: Some(CLOSE_POLICY_VIOLATION),
        }
    }

    async fn start_draining(&mut self, deadline: Pin<&mut tokio::time::Sleep>) -> Result<(), Gone> {
        let grace = self.gate.settings.drain_grace;
        deadline.reset(Instant::now() + grace);
        if self.route == Route::Ws {
            let reconnect_after_ms = jittered_millis(self.gate.settings.retry_after / 4);
            let message = ServerMessage::Draining { reconnect_after_ms };
            self.send_text(&message.to_json()).await?;
        }
        Ok(())
    }

    async fn on_text(
        &mut self,
        text: String,
        rooms: &mut StreamMap<String, BroadcastStream<Arc<str>>>,
    ) -> Result<(), Gone> {
        if self.route == Route::Echo {
            return self.send_text(&text).await;
        }
        match ClientMessage::parse(&text) {
            Err(message) => self.send_error(ErrorCode::InvalidMessage, &message).await,
            Ok(ClientMessage::Join { room }) => {
                if !self.join(&room, rooms).await? {
                    return Ok(());
                }
                self.send_text(&ServerMessage::Joined { room: &room }.to_json())
                    .await
            }
            Ok(ClientMessage::Chat {
                room,
                text,
                client_msg_id,
            }) => {
                if !self.join(&room, rooms).await? {
                    return Ok(());
                }
                let sender = match &self.identity {
                    Some(identity) => ChatSender {
                        name: &identity.subject,
                        authenticated: true,
                    },
                    None => ChatSender {
                        name: &self.id,
                        authenticated: false,
                    },
                };
                let published =
                    self.gate
                        .session
                        .publish(&room, sender, &text, client_msg_id.as_deref());
                if published.duplicate {
                    tracing::debug!(
                        room,
                        client_msg_id = client_msg_id.as_deref(),
                        id = %published.id,
                        "a resent chat message was already in the room; acked again, not delivered twice"
                    );
                }
                let ack = ServerMessage::Ack {
                    client_msg_id: client_msg_id.as_deref(),
                    id: &published.id,
                };
                self.send_text(&ack.to_json()).await
            }
        }
    }

    /// Joins `room` unless already in it; `Ok(false)` when refused (and
    /// the client told).
    async fn join(
        &mut self,
        room: &str,
        rooms: &mut StreamMap<String, BroadcastStream<Arc<str>>>,
    ) -> Result<bool, Gone> {
        if rooms.contains_key(room) {
            return Ok(true);
        }
        if rooms.len() >= MAX_ROOMS_PER_CONNECTION {
            let message =
                format!("a connection may be in at most {MAX_ROOMS_PER_CONNECTION} rooms");
            self.send_error(ErrorCode::InvalidMessage, &message).await?;
            return Ok(false);
        }
        rooms.insert(
            room.to_owned(),
            BroadcastStream::new(self.gate.session.join(room)),
        );
        Ok(true)
    }

    async fn on_binary(&mut self, bytes: Vec<u8>) -> Result<(), Gone> {
        match self.route {
            Route::Echo => self.write(Frame::binary(Payload::Owned(bytes))).await,
            Route::Ws => {
                self.send_error(
                    ErrorCode::UnsupportedBinary,
                    "binary frames are not part of the warmgate protocol; send JSON text frames",
                )
                .await
            }
        }
    }

    /// Handles a control frame or an ending. `Err` carries the close code
    /// sent (if any) when the connection is over.
    async fn control(&mut self, incoming: Incoming) -> Result<(), Option<u16>> {
        match incoming {
            Incoming::Ping(payload) => self
                .write(Frame::pong(Payload::Owned(payload)))
                .await
                .map_err(|Gone| None),
            Incoming::Pong | Incoming::Text(_) | Incoming::Binary(_) => Ok(()),
            Incoming::Close { code, .. } => {
                // Echo the client's code, as RFC 6455 suggests, then end.
                let code = code.unwrap_or(CLOSE_NORMAL);
                self.meter.finish();
                self.outbox
                    .close(
                        Frame::close(code, b""),
                        Instant::now() + CLOSE_HANDSHAKE_WAIT,
                    )
                    .await;
                Err(Some(code))
            }
            Incoming::Violation {
                code,
                reason,
                client_closed,
            } => {
                tracing::info!(
                    close_code = code,
                    reason,
                    "client broke the WebSocket protocol; closing"
                );
                if client_closed {
                    // Its own (bad) close frame is the client's half of the
                    // handshake: there is nothing left to wait for.
                    self.close_without_reply(code, reason).await;
                } else {
                    self.close(code, reason).await;
                }
                Err(Some(code))
            }
            Incoming::Gone => Err(None),
        }
    }

    // === writing ===

    async fn send_text(&mut self, text: &str) -> Result<(), Gone> {
        self.write(Frame::text(Payload::Owned(text.as_bytes().to_vec())))
            .await
    }

    /// Sends an `error` frame on `/ws`; `/echo` stays transparent and sends
    /// none.
    async fn send_error(&mut self, code: ErrorCode, message: &str) -> Result<(), Gone> {
        self.send_error_for(code, message, None).await
    }

    /// [`Connection::send_error`] about one message, named by its
    /// `client_msg_id`.
    async fn send_error_for(
        &mut self,
        code: ErrorCode,
        message: &str,
        client_msg_id: Option<&str>,
    ) -> Result<(), Gone> {
        if self.route == Route::Echo {
            return Ok(());
        }
        let frame = ServerMessage::Error {
            code,
            message,
            client_msg_id,
        };
        self.send_text(&frame.to_json()).await
    }

    /// Queues `frame` for the writer task; never waits (see the module
    /// doc). `Err` once a write has failed: the client is gone.
    async fn write(&mut self, frame: Frame<'static>) -> Result<(), Gone> {
        self.outbox.send(frame)
    }

    /// Sends a close frame and waits for the client's reply, so the client
    /// sees a clean closing handshake; both within `CLOSE_HANDSHAKE_WAIT`.
    async fn close(&mut self, code: u16, reason: &str) {
        let deadline = Instant::now() + CLOSE_HANDSHAKE_WAIT;
        if !self.send_close(code, reason, deadline).await {
            return;
        }
        let _ = tokio::time::timeout_at(deadline, async {
            while let Some(incoming) = self.frames.next().await {
                if matches!(
                    incoming,
                    Incoming::Close { .. } | Incoming::Gone | Incoming::Violation { .. }
                ) {
                    break;
                }
            }
        })
        .await;
    }

    /// Sends a close frame to a client that has sent its own already.
    async fn close_without_reply(&mut self, code: u16, reason: &str) {
        let deadline = Instant::now() + CLOSE_HANDSHAKE_WAIT;
        self.send_close(code, reason, deadline).await;
    }

    /// Counts the outcome, then writes a close frame by `deadline`; true
    /// when it was written.
    async fn send_close(&mut self, code: u16, reason: &str, deadline: Instant) -> bool {
        // Counted before the close frame goes out, so a client that has
        // seen it finds the connection already counted.
        self.meter.finish();
        self.outbox.close(close_frame(code, reason), deadline).await
    }

    /// Ends the connection once its writer stopped: a slow consumer (told
    /// with 1008 if it takes that much), or a client that is gone.
    async fn writer_stopped(&mut self, stopped: WriterState, gone: Outcome) -> Ended {
        if stopped != WriterState::Stalled {
            return Ended {
                outcome: gone,
                close_code: None,
            };
        }
        let write_timeout = self.gate.settings.write_timeout;
        self.meter.slow_consumer();
        self.meter.finish();
        let write_timeout_ms = millis(write_timeout);
        match SLOW_CONSUMER_LOG.admit("slow_consumer", Instant::now()) {
            Some(left_out) => tracing::warn!(
                write_timeout_ms,
                left_out,
                "client took no frame for write_timeout (a slow consumer); closing with 1008, or dropping it if it cannot take the close frame either"
            ),
            None => tracing::debug!(
                write_timeout_ms,
                "client took no frame for write_timeout (a slow consumer); closing with 1008"
            ),
        }
        let reason = format!("slow consumer: took no frame for {write_timeout_ms} ms");
        let written = self
            .outbox
            .last_word(close_frame(CLOSE_POLICY_VIOLATION, &reason))
            .await;
        Ended {
            outcome: Outcome::SlowConsumer,
            close_code: written.then_some(CLOSE_POLICY_VIOLATION),
        }
    }
}

/// A close frame; the reason cut to the 123 octets a close frame has room
/// for, at a character boundary.
fn close_frame(code: u16, reason: &str) -> Frame<'static> {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Frame::close(code, &reason.as_bytes()[..end])
}

/// The `client_msg_id` of a message, if it is JSON with one; read without
/// parsing the whole message.
fn client_msg_id_of(text: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct WithId {
        client_msg_id: Option<String>,
    }
    serde_json::from_str::<WithId>(text)
        .ok()
        .and_then(|with| with.client_msg_id)
}

fn admitted_end(close_code: Option<u16>) -> Ended {
    Ended {
        outcome: Outcome::Admitted,
        close_code,
    }
}

fn left() -> Ended {
    Ended {
        outcome: Outcome::LeftWhileHeld,
        close_code: None,
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
