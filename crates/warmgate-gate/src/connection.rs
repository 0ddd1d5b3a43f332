//! One WebSocket client, from upgrade to close: the IO loop around the
//! hold rules (`hold`) and the client's application (`app`).
//!
//! **Invariant:** a held client always ends admitted (`ready`) or told why
//! not (`unavailable` with a reason and a retry hint, then close 1013; or,
//! when its token expires while held, `error` `token_expired`, then close
//! 1008); the only silent endings are the client's own (it closed, broke
//! the protocol or vanished). The rules that decide it are `hold`'s pure
//! step function; this file only turns timers, snapshots and frames into
//! its events and carries out its actions.
//!
//! Each connection is one task. It reads the client's frames through a
//! stream (so a pending read survives every `select!`), queues its frames
//! for a writer task (`outbox`), and parks on its snapshot receiver, its
//! session and its timers in between.
//!
//! **Invariant:** no await in a connection's loop stops its timers (the
//! hold deadline, the heartbeat, the token expiry, the pings and the drain
//! deadline). Writing never waits: a frame is queued and written by the
//! writer task, under a write deadline. What can wait on the client is
//! only ever one branch of the loop's `select!`: the read of its next
//! frame (a stream, so a frame in progress survives the other branches)
//! and the writer's stall. The reads that add frames (the session's
//! frames, the client's own messages) pause while the queue is full, so
//! an application that outruns a reader lags instead of growing the queue;
//! the client's messages also pause while the session has no room. Only
//! the close handshake, at the very end, waits, and at most
//! `CLOSE_HANDSHAKE_WAIT` in all (and the session's close as long again).
//!
//! A client that takes no byte for `write_timeout` is a slow consumer: it
//! is closed with 1008 (or dropped, if it cannot take the close frame
//! either), logged once per window and counted as `slow_consumer`.
//!
//! Liveness: every byte read from the client counts as an answer to a
//! ping, a frame still arriving included, since a pong cannot be sent
//! inside another frame (RFC 6455 section 5.4).

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};
use std::task::Poll;
use std::time::{Duration, SystemTime};

use axum::http::HeaderMap;
use fastwebsockets::{Frame, Payload, WebSocket};
use futures_util::{FutureExt as _, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use warmgate_auth::Identity;
use warmgate_core::{GateState, Snapshot};
use warmgate_engine::SnapshotRx;
use warmgate_http::{LogSampler, REFUSAL_LOG_WINDOW};

use crate::app::{AdmitError, Application, Message, Outgoing, Replies, Session, frame_of};
use crate::frames::Incoming;
use crate::hold::{Hold, HoldAction, HoldEvent};
use crate::measure::ConnectionMeter;
use crate::outbox::{Gone, WriterState};
use crate::peer::{Peer, close_frame};
use crate::protocol::{ErrorCode, ServerMessage, UnavailableReason};
use crate::rate_limit::{MessageRateLimit, Verdict};
use crate::settings::{MAX_BUFFERED_BYTES, MAX_BUFFERED_MESSAGES, jittered_millis};
use crate::trace_context;
use crate::tracker::{HeldGuard, OpenGuard};
use crate::upgrade::GateInner;

/// One WebSocket route: its path and the application behind it.
pub(crate) struct Route {
    /// The request path, such as `/ws`. Leaked once per route when the
    /// gate is built (a handful of strings for the process's life), so it
    /// can label metrics as a `&'static str`.
    pub(crate) path: &'static str,
    pub(crate) app: Arc<dyn Application>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("path", &self.path)
            .field("app", &self.app.name())
            .finish()
    }
}

const CLOSE_NORMAL: u16 = 1000;
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_POLICY_VIOLATION: u16 = 1008;
const CLOSE_TRY_AGAIN_LATER: u16 = 1013;

/// How long the closing handshake may take in all: our close frame
/// written, and the client's read.
const CLOSE_HANDSHAKE_WAIT: Duration = Duration::from_secs(2);

/// Samples the slow-consumer log lines, so a room of stalled readers does
/// not flood the log; the metric counts every one.
static SLOW_CONSUMER_LOG: LazyLock<LogSampler> =
    LazyLock::new(|| LogSampler::new(REFUSAL_LOG_WINDOW));

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

/// What the client chose in its handshake, decided before the upgrade.
pub(crate) struct Chosen {
    pub(crate) id: String,
    pub(crate) identity: Option<Identity>,
    pub(crate) speaks_warmgate: bool,
    pub(crate) session: Box<dyn Session>,
}

struct Connection {
    gate: Arc<GateInner>,
    route: Arc<Route>,
    speaks_warmgate: bool,
    id: String,
    /// The client's socket: its frames in, its queue out.
    peer: Peer,
    upgraded_at: Instant,
    meter: ConnectionMeter,
    /// When the token expires, leeway included.
    token_expires: Option<Instant>,
    /// The per-connection message limit, for applications that want it.
    rate_limit: Option<MessageRateLimit>,
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

/// The span of one connection, from the upgrade to the close: a child of
/// the caller's trace when the request names one (see `trace_context`).
pub(crate) fn span(id: &str, route: &Route, headers: &HeaderMap) -> tracing::Span {
    let span = tracing::info_span!(
        "websocket",
        conn.id = %id,
        route = route.path,
        app = route.app.name(),
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
    route: Arc<Route>,
    chosen: Chosen,
    upgraded_at: Instant,
    open: Option<OpenGuard>,
) {
    let Chosen {
        id,
        identity,
        speaks_warmgate,
        mut session,
    } = chosen;
    let rate_limit = route.app.limits_messages().then(|| {
        MessageRateLimit::new(
            gate.settings.messages_per_second,
            gate.settings.message_burst,
            Instant::now(),
        )
    });
    let peer = Peer::new(
        ws,
        gate.settings.max_message_bytes,
        gate.settings.write_timeout,
    );
    let gate_leeway = gate.authenticator.leeway();
    let mut connection = Connection {
        meter: ConnectionMeter::new(route.path),
        gate,
        route,
        speaks_warmgate,
        id,
        peer,
        upgraded_at,
        token_expires: identity
            .as_ref()
            .map(|identity| token_deadline(identity.expires_at, gate_leeway)),
        rate_limit,
    };
    let ended = match open {
        Some(_open) => {
            let ended = connection.serve(session.as_mut()).await;
            // The application hears how the connection ended (a backend
            // gets the close), within the closing handshake's bound.
            let code = ended.close_code.unwrap_or(CLOSE_GOING_AWAY);
            let _ = tokio::time::timeout(CLOSE_HANDSHAKE_WAIT, session.close(code, "")).await;
            if let Some(summary) = session.summary() {
                tracing::info!(summary, "connection's application ended");
            }
            ended
        }
        None => {
            connection
                .refuse_without_snapshot(UnavailableReason::Capacity)
                .await
        }
    };
    connection.record_end(&ended);
}

impl Connection {
    fn record_end(&mut self, ended: &Ended) {
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
        self.meter.finish();
        // Both record the same ending; a disagreement is a bug worth a
        // log line, never a reason to take the connection task down.
        if self.meter.outcome() != outcome {
            tracing::warn!(
                span_outcome = %outcome,
                metrics_outcome = %self.meter.outcome(),
                "the span and the metrics disagree on how the connection ended; this is a warmgate bug"
            );
        }
        if let Some(code) = ended.close_code {
            span.record("close_code", i64::from(code));
        }
        tracing::debug!(outcome, close_code = ended.close_code, "websocket closed");
    }

    async fn serve(&mut self, session: &mut dyn Session) -> Ended {
        let mut snapshot_rx = self.gate.handle.subscribe();
        let snapshot = Arc::clone(&snapshot_rx.borrow_and_update());
        tracing::Span::current().record("state_at_connect", snapshot.state.as_str());
        let (rules, first) = Hold::new(snapshot.state);
        if let HoldAction::Refuse(reason) = first {
            return self.refuse(reason, &snapshot, 0).await;
        }
        let held = if rules.held() {
            match self.gate.counts.try_hold(self.gate.settings.max_held) {
                Some(guard) => Some(guard),
                None => return self.refuse(UnavailableReason::Capacity, &snapshot, 0).await,
            }
        } else {
            None
        };
        let was_held = held.is_some();
        // A span for the hold only when there is one: a client of a ready
        // gate is admitted without a `hold` in its trace.
        let hold_span = if was_held {
            tracing::info_span!(
                "hold",
                hold_timeout_ms = self.gate.settings.hold_timeout.as_millis() as i64,
                phase = snapshot.phase.as_deref(),
                pending = ?snapshot.pending,
            )
        } else {
            tracing::Span::none()
        };
        let buffered = match self
            .hold(session, rules, first, held, &mut snapshot_rx)
            .instrument(hold_span)
            .await
        {
            Ok(buffered) => buffered,
            Err(ended) => return ended,
        };
        let waited = was_held.then(|| self.upgraded_at.elapsed());
        self.admitted(session, snapshot_rx, buffered, waited).await
    }

    // === hold ===

    /// Holds the client until the gate admits traffic and its application
    /// has started (`Ok`, with what it sent meanwhile), or ends the
    /// connection with a reason (`Err`). The rules are `hold`'s; this
    /// loop feeds them events and carries out their actions.
    async fn hold(
        &mut self,
        session: &mut dyn Session,
        mut rules: Hold,
        first: HoldAction,
        held: Option<HeldGuard>,
        snapshot_rx: &mut SnapshotRx,
    ) -> Result<Vec<Message>, Ended> {
        // The rules start the application at most once; the session is
        // lent to that start, which holds it until it ends.
        let mut to_start = Some(session);
        let mut starting = None;
        let mut action = first;
        if action == HoldAction::Start {
            if let Some(session) = to_start.take() {
                let mut start = session.admit();
                // The usual case of a ready gate: an application that is
                // ready at once admits the client without timers or a loop.
                match (&mut start).now_or_never() {
                    Some(Ok(())) => return Ok(Vec::new()),
                    Some(Err(error)) => {
                        action = rules.step(HoldEvent::Started(Err(self.start_failed(&error))))
                    }
                    None => {
                        starting = Some(start);
                        action = HoldAction::Wait;
                    }
                }
            }
        }
        if held.is_some() {
            self.meter.held();
        }
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
        let mut buffered: Vec<Message> = Vec::new();
        // The message that the last `ClientMessage` event was about.
        let mut pending: Option<Message> = None;
        let room = self.peer.outbox.room_signal();
        loop {
            match action {
                HoldAction::Wait => {}
                HoldAction::Warm => {
                    let snapshot = Arc::clone(&snapshot_rx.borrow());
                    if self.send_warming(&snapshot, held_at).is_err() {
                        return Err(left());
                    }
                }
                HoldAction::Buffer => buffered.extend(pending.take()),
                HoldAction::RefuseMessage => {
                    pending = None;
                    let refused = format!(
                        "message refused: a held client may buffer at most {MAX_BUFFERED_MESSAGES} messages or {} KiB until it is admitted",
                        MAX_BUFFERED_BYTES / 1024
                    );
                    if self.send_error(ErrorCode::BufferFull, &refused).is_err() {
                        return Err(left());
                    }
                }
                HoldAction::Start => {
                    if let Some(session) = to_start.take() {
                        starting = Some(session.admit());
                    }
                }
                HoldAction::Admit => return Ok(buffered),
                HoldAction::Refuse(reason) => {
                    let snapshot = Arc::clone(&snapshot_rx.borrow());
                    return Err(self.refuse(reason, &snapshot, buffered.len()).await);
                }
                HoldAction::ExpireToken => {
                    return Err(self.token_expired_while_held(buffered.len()).await);
                }
            }
            let event = tokio::select! {
                changed = snapshot_rx.changed() => {
                    let state = snapshot_rx.borrow_and_update().state;
                    HoldEvent::Snapshot(if changed.is_err() { GateState::Draining } else { state })
                }
                _ = heartbeat.tick() => HoldEvent::Heartbeat,
                () = &mut token_expiry, if self.token_expires.is_some() => HoldEvent::TokenExpired,
                stopped = self.peer.outbox.stopped() => {
                    return Err(self.writer_stopped(stopped, Outcome::LeftWhileHeld).await);
                }
                () = &mut deadline, if !rules.starting() => HoldEvent::HoldDeadline,
                started = poll_fn(|cx| match starting.as_mut() {
                    Some(start) => start.as_mut().poll(cx),
                    None => Poll::Pending,
                }), if starting.is_some() => {
                    starting = None;
                    HoldEvent::Started(started.map_err(|error| self.start_failed(&error)))
                }
                // A full queue stops the reading below; this wakes the loop
                // when the writer makes room, so the guards are re-read.
                () = room.wait(), if !self.peer.outbox.has_room() => continue,
                incoming = self.peer.frames.next(), if self.peer.outbox.has_room() => {
                    let message = match incoming.unwrap_or(Incoming::Gone) {
                        Incoming::Text(text) => Message::Text(text),
                        Incoming::Binary(bytes) => Message::Binary(bytes),
                        other => match self.control(other).await {
                            Ok(()) => continue,
                            Err(close_code) => return Err(Ended { outcome: Outcome::LeftWhileHeld, close_code }),
                        },
                    };
                    let len = message.len();
                    pending = Some(message);
                    HoldEvent::ClientMessage { len }
                }
            };
            action = rules.step(event);
        }
    }

    /// Logs why the application could not start; its reason for the
    /// rules.
    fn start_failed(&self, error: &AdmitError) -> UnavailableReason {
        tracing::warn!(
            reason = error.reason.as_str(),
            app = self.route.app.name(),
            detail = %error.detail,
            "the client's application could not start; the client is told `unavailable` and closed with 1013"
        );
        error.reason
    }

    fn send_warming(&mut self, snapshot: &Snapshot, held_at: Instant) -> Result<(), Gone> {
        if !self.speaks_warmgate {
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
        self.send_text(message.to_json())
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
        if self.speaks_warmgate {
            let message = ServerMessage::Unavailable {
                reason,
                state: snapshot.state,
                phase: snapshot.phase.as_deref(),
                pending: &snapshot.pending,
                retry_after_ms,
                unprocessed,
            };
            if self.send_text(message.to_json()).is_err() {
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

    /// Serves an admitted client: `ready`, the messages it sent while held,
    /// then the relay between the client and its session. `waited` is how
    /// long it was held, or `None` when the gate was ready at connect.
    async fn admitted(
        &mut self,
        session: &mut dyn Session,
        mut snapshot_rx: SnapshotRx,
        buffered: Vec<Message>,
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
        if self.speaks_warmgate {
            let message = ServerMessage::Ready {
                state: snapshot.state,
                degraded: &snapshot.degraded,
                waited_ms,
                connection_id: &self.id,
                seq: snapshot.seq,
            };
            if self.send_text(message.to_json()).is_err() {
                return admitted_end(None);
            }
        }
        for message in buffered {
            if self.deliver(session, message).is_err() {
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
        let mut n_read_at_ping = self.peer.n_read.load(Ordering::Relaxed);
        let drain_deadline = tokio::time::sleep(Duration::MAX);
        tokio::pin!(drain_deadline);
        let token_expiry = self.token_expiry();
        tokio::pin!(token_expiry);
        let mut draining = false;
        if snapshot.state == GateState::Draining {
            // The gate turned from ready to draining between the hold and now.
            if self.start_draining(drain_deadline.as_mut()).is_err() {
                return admitted_end(None);
            }
            draining = true;
        }
        let room = self.peer.outbox.room_signal();
        loop {
            let session_has_room = session.has_room();
            tokio::select! {
                changed = snapshot_rx.changed(), if !draining => {
                    let snapshot = Arc::clone(&snapshot_rx.borrow_and_update());
                    if changed.is_err() || snapshot.state == GateState::Draining {
                        if self.start_draining(drain_deadline.as_mut()).is_err() {
                            return admitted_end(None);
                        }
                        draining = true;
                        continue;
                    }
                    let now = (snapshot.state, snapshot.degraded.clone());
                    if now != last_pushed && self.speaks_warmgate {
                        let message = ServerMessage::Readiness {
                            state: snapshot.state,
                            degraded: &snapshot.degraded,
                            seq: snapshot.seq,
                        };
                        if self.send_text(message.to_json()).is_err() {
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
                    let n_read = self.peer.n_read.load(Ordering::Relaxed);
                    if n_read != n_read_at_ping {
                        n_read_at_ping = n_read;
                        unanswered_pings = 0;
                    }
                    if !self.peer.outbox.is_empty() {
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
                    if self.write(Frame::new(true, fastwebsockets::OpCode::Ping, None, Payload::Borrowed(b"warmgate"))).is_err() {
                        return admitted_end(None);
                    }
                }
                stopped = self.peer.outbox.stopped() => {
                    return self.writer_stopped(stopped, Outcome::Admitted).await;
                }
                () = room.wait(), if !self.peer.outbox.has_room() => {}
                outgoing = poll_fn(|cx| session.poll_outgoing(cx)), if self.peer.outbox.has_room() => {
                    match outgoing {
                        Outgoing::Message(message) => {
                            if self.write(frame_of(message)).is_err() {
                                return admitted_end(None);
                            }
                        }
                        Outgoing::Room => {}
                        Outgoing::Close { code, reason } => {
                            tracing::debug!(close_code = code, reason, "the application ended the connection");
                            self.close(code, &reason).await;
                            return admitted_end(Some(code));
                        }
                    }
                }
                incoming = self.peer.frames.next(), if self.peer.outbox.has_room() && session_has_room => {
                    unanswered_pings = 0;
                    let incoming = incoming.unwrap_or(Incoming::Gone);
                    if matches!(incoming, Incoming::Text(_) | Incoming::Binary(_)) {
                        if let Some(rate_limit) = &mut self.rate_limit {
                            match rate_limit.check(Instant::now()) {
                                Verdict::Allow => {}
                                Verdict::Refuse => {
                                    if self.rate_limited(&incoming).is_err() {
                                        return admitted_end(None);
                                    }
                                    continue;
                                }
                                Verdict::Close => return self.flooded().await,
                            }
                        }
                    }
                    let handled = match incoming {
                        Incoming::Text(text) => self.deliver(session, Message::Text(text)),
                        Incoming::Binary(bytes) => self.deliver(session, Message::Binary(bytes)),
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

    /// Hands one client message to the session.
    fn deliver(&mut self, session: &mut dyn Session, message: Message) -> Result<(), Gone> {
        let mut replies = Replies {
            outbox: &mut self.peer.outbox,
            speaks_warmgate: self.speaks_warmgate,
        };
        session.on_message(message, &mut replies)
    }

    /// Refuses one message past the rate limit, naming its
    /// `client_msg_id` when it has one.
    fn rate_limited(&mut self, incoming: &Incoming) -> Result<(), Gone> {
        crate::measure::rate_limited(false);
        if self
            .rate_limit
            .as_ref()
            .is_some_and(|limit| limit.refused_in_a_row() == 1)
        {
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
        let sent = self.send_error(
            ErrorCode::TokenExpired,
            "your token expired: reconnect with a fresh one",
        );
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

    fn start_draining(&mut self, deadline: Pin<&mut tokio::time::Sleep>) -> Result<(), Gone> {
        let grace = self.gate.settings.drain_grace;
        deadline.reset(Instant::now() + grace);
        if self.speaks_warmgate {
            let reconnect_after_ms = jittered_millis(self.gate.settings.retry_after / 4);
            let message = ServerMessage::Draining { reconnect_after_ms };
            self.send_text(message.to_json())?;
        }
        Ok(())
    }

    /// Handles a control frame or an ending. `Err` carries the close code
    /// sent (if any) when the connection is over.
    async fn control(&mut self, incoming: Incoming) -> Result<(), Option<u16>> {
        match incoming {
            Incoming::Ping(payload) => self
                .write(Frame::pong(Payload::Owned(payload)))
                .map_err(|Gone| None),
            Incoming::Pong | Incoming::Text(_) | Incoming::Binary(_) => Ok(()),
            Incoming::Close { code, .. } => {
                // Echo the client's code, as RFC 6455 suggests, then end.
                let code = code.unwrap_or(CLOSE_NORMAL);
                self.meter.finish();
                self.peer
                    .outbox
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

    fn send_text(&mut self, text: String) -> Result<(), Gone> {
        self.write(Frame::text(Payload::Owned(text.into_bytes())))
    }

    /// Sends an `error` frame to a client that speaks warmgate; a
    /// transparent client gets none.
    fn send_error(&mut self, code: ErrorCode, message: &str) -> Result<(), Gone> {
        self.send_error_for(code, message, None)
    }

    /// [`Connection::send_error`] about one message, named by its
    /// `client_msg_id`.
    fn send_error_for(
        &mut self,
        code: ErrorCode,
        message: &str,
        client_msg_id: Option<&str>,
    ) -> Result<(), Gone> {
        Replies {
            outbox: &mut self.peer.outbox,
            speaks_warmgate: self.speaks_warmgate,
        }
        .error(code, message, client_msg_id)
    }

    /// Queues `frame` for the writer task; never waits (see the module
    /// doc). `Err` once a write has failed: the client is gone.
    fn write(&mut self, frame: Frame<'static>) -> Result<(), Gone> {
        self.peer.outbox.send(frame)
    }

    /// Sends a close frame and waits for the client's reply, so the client
    /// sees a clean closing handshake; both within `CLOSE_HANDSHAKE_WAIT`.
    async fn close(&mut self, code: u16, reason: &str) {
        let deadline = Instant::now() + CLOSE_HANDSHAKE_WAIT;
        if !self.send_close(code, reason, deadline).await {
            return;
        }
        let _ = tokio::time::timeout_at(deadline, async {
            while let Some(incoming) = self.peer.frames.next().await {
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
        self.peer
            .outbox
            .close(close_frame(code, reason), deadline)
            .await
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
            .peer
            .outbox
            .last_word(close_frame(CLOSE_POLICY_VIOLATION, &reason))
            .await;
        Ended {
            outcome: Outcome::SlowConsumer,
            close_code: written.then_some(CLOSE_POLICY_VIOLATION),
        }
    }
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
