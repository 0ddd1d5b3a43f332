//! One WebSocket client, from upgrade to close: the IO loop around the
//! hold rules (`hold`) and the client's application (`app`). This file
//! starts the connection, writes and closes; `held` is the loop while the
//! client is held, `admitted` the loop once it is admitted.
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
//! stream (so a pending read survives every `select!`), hands its frames
//! to its `outbox` (written at once when the socket takes them, otherwise
//! queued for a writer task), and parks on its snapshot receiver, its
//! session and its timers in between.
//!
//! **Invariant:** no await in a connection's loop stops its timers (the
//! hold deadline, the heartbeat, the token expiry, the pings and the drain
//! deadline). Writing never waits: a frame is written with a
//! non-blocking write, and what the socket does not take is queued and
//! written by the writer task, under a write deadline. What can wait on the client is
//! only ever one branch of the loop's `select!`: the read of its next
//! frame (a stream, so a frame in progress survives the other branches)
//! and the writer's stall. The reads that add frames (the session's
//! frames, the client's own messages) pause while the queue is full, so
//! an application that outruns a reader lags instead of growing the queue;
//! the client's messages also pause while the session has no room. Only
//! the close handshake, at the very end, waits, and at most
//! `CLOSE_HANDSHAKE_WAIT` in all (and the session's close as long again;
//! `DRAIN_CLOSE_WAIT` for both at the end of the drain grace).
//!
//! A client that takes no byte for `write_timeout` is a slow consumer: it
//! is closed with 1008 (or dropped, if it cannot take the close frame
//! either), logged once per window and counted as `slow_consumer`.
//!
//! Liveness: every byte read from the client counts as an answer to a
//! ping, a frame still arriving included, since a pong cannot be sent
//! inside another frame (RFC 6455 section 5.4).

use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

use axum::http::HeaderMap;
use fastwebsockets::{Frame, Payload, Role, WebSocket};
use futures_util::StreamExt;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use warmgate_auth::Identity;
use warmgate_core::GateState;
use warmgate_http::{LogSampler, REFUSAL_LOG_WINDOW};

use crate::app::{AdmitError, Application, Replies, Session, Summary};
use crate::frames::Incoming;
use crate::hold::{Hold, HoldAction};
use crate::measure::{ConnectionMeter, RouteMeters};
use crate::outbox::{Gone, WriterState};
use crate::peer::{Peer, close_frame};
use crate::protocol::{ErrorCode, UnavailableReason};
use crate::rate_limit::MessageRateLimit;
use crate::trace_context;
use crate::tracker::OpenGuard;
use crate::upgrade::GateInner;

mod admitted;
mod held;

/// One WebSocket route: its path and the application behind it.
pub(crate) struct Route {
    /// The request path, such as `/ws`. Leaked once per route when the
    /// gate is built (a handful of strings for the process's life), so it
    /// can label metrics as a `&'static str`.
    pub(crate) path: &'static str,
    pub(crate) app: Arc<dyn Application>,
    /// The route's metric handles.
    pub(crate) meters: Arc<RouteMeters>,
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

/// How long the closing handshake may take at the end of the drain grace:
/// well inside the second the program waits past `drain_grace` before it
/// exits (`warmgate_config::GateConfig::CLOSE_MARGIN`), so that every
/// connection ends on its own, its outcome counted and its span ended,
/// before the exit.
const DRAIN_CLOSE_WAIT: Duration = Duration::from_millis(500);

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
    /// How the session's start ended, when it was started during the
    /// upgrade (a ready gate: the backend is dialed while the 101 goes
    /// out).
    pub(crate) started: Option<Result<(), AdmitError>>,
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
    /// How long the client waited for admission or refusal, once decided;
    /// recorded on the span with the outcome.
    waited_ms: Option<u64>,
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
/// `state_at_connect` is the gate's state when the upgrade request came.
pub(crate) fn span(
    id: &str,
    route: &Route,
    headers: &HeaderMap,
    state_at_connect: GateState,
) -> tracing::Span {
    let span = tracing::info_span!(
        "websocket",
        conn.id = %id,
        route = route.path,
        app = route.app.name(),
        trace_parent = tracing::field::Empty,
        state_at_connect = state_at_connect.as_str(),
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

/// Records how the connection ended on its span (from [`span`]): `outcome`,
/// and `close_code` and `waited_ms` when there are. One `record` rather
/// than one per field: each costs a look-up of the span and, in the log
/// layer, a formatting pass.
fn record_ending(
    span: &tracing::Span,
    outcome: &str,
    close_code: Option<i64>,
    waited_ms: Option<i64>,
) {
    let Some(fields) = span.metadata().map(tracing::Metadata::fields) else {
        return;
    };
    let (Some(outcome_field), Some(close_code_field), Some(waited_ms_field)) = (
        fields.field("outcome"),
        fields.field("close_code"),
        fields.field("waited_ms"),
    ) else {
        return;
    };
    let values: [(&tracing::field::Field, Option<&dyn tracing::Value>); 3] = [
        (&outcome_field, Some(&outcome)),
        (
            &close_code_field,
            close_code.as_ref().map(|code| code as &dyn tracing::Value),
        ),
        (
            &waited_ms_field,
            waited_ms
                .as_ref()
                .map(|waited| waited as &dyn tracing::Value),
        ),
    ];
    span.record_all(&fields.value_set(&values));
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
        started,
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
        Role::Server,
        gate.settings.max_message_bytes,
        gate.settings.write_timeout,
    );
    let gate_leeway = gate.authenticator.leeway();
    let mut connection = Connection {
        meter: ConnectionMeter::new(Arc::clone(&route.meters)),
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
        waited_ms: None,
    };
    let ended = match open {
        Some(_open) => {
            let ended = connection.serve(session.as_mut(), started).await;
            // The application hears how the connection ended (a backend
            // gets the close), within the closing handshake's bound.
            let code = ended.close_code.unwrap_or(CLOSE_GOING_AWAY);
            let _ = tokio::time::timeout(CLOSE_HANDSHAKE_WAIT, session.close(code, "")).await;
            // Debug: one line per connection would cost every connection a
            // log write; a session with something to report (messages a
            // backend never got) says so at info.
            match session.summary() {
                Some(Summary {
                    text,
                    notable: true,
                }) => {
                    tracing::info!(summary = %text, "connection's application ended");
                }
                Some(Summary {
                    text,
                    notable: false,
                }) => {
                    tracing::debug!(summary = %text, "connection's application ended");
                }
                None => {}
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
        record_ending(
            &span,
            &outcome,
            ended.close_code.map(i64::from),
            self.waited_ms.map(|waited_ms| waited_ms as i64),
        );
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
        tracing::debug!(outcome, close_code = ended.close_code, "websocket closed");
    }

    async fn serve(
        &mut self,
        session: &mut dyn Session,
        started: Option<Result<(), AdmitError>>,
    ) -> Ended {
        let mut snapshot_rx = self.gate.handle.subscribe();
        let snapshot = Arc::clone(&snapshot_rx.borrow_and_update());
        let (rules, first) = Hold::new(snapshot.state, !self.speaks_warmgate);
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
            .hold(session, started, rules, first, held, &mut snapshot_rx)
            .instrument(hold_span)
            .await
        {
            Ok(buffered) => buffered,
            Err(ended) => return ended,
        };
        let waited = was_held.then(|| self.upgraded_at.elapsed());
        self.admitted(session, snapshot_rx, buffered, waited).await
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

    /// Hands `frame` to the outbox (written at once, or queued for the
    /// writer task); never waits (see the module doc). `Err` once a write
    /// has failed: the client is gone.
    fn write(&mut self, frame: Frame<'static>) -> Result<(), Gone> {
        self.peer.outbox.send(frame)
    }

    /// Sends a close frame and waits for the client's reply, so the client
    /// sees a clean closing handshake; both within `CLOSE_HANDSHAKE_WAIT`.
    async fn close(&mut self, code: u16, reason: &str) {
        self.close_within(code, reason, CLOSE_HANDSHAKE_WAIT).await;
    }

    /// [`Connection::close`], both within `wait`.
    async fn close_within(&mut self, code: u16, reason: &str, wait: Duration) {
        let deadline = Instant::now() + wait;
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

#[cfg(test)]
mod tests;
