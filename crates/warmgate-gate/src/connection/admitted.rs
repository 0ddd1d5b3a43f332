//! The admitted client: `ready`, the replay of what it sent while held,
//! then the relay between it and its session under the gate's rules
//! (readiness pushes, pings, the rate limit, token expiry, the drain).

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fastwebsockets::{Frame, Payload};
use futures_util::StreamExt as _;
use tokio::time::Instant;
use warmgate_core::GateState;
use warmgate_engine::SnapshotRx;

use super::{
    CLOSE_GOING_AWAY, CLOSE_HANDSHAKE_WAIT, CLOSE_NORMAL, CLOSE_POLICY_VIOLATION, Connection,
    DRAIN_CLOSE_WAIT, Ended, Outcome, admitted_end, client_msg_id_of, millis,
};
use crate::app::{Message, Outgoing, Replies, Session, frame_of};
use crate::frames::Incoming;
use crate::outbox::Gone;
use crate::protocol::{ErrorCode, ServerMessage};
use crate::rate_limit::Verdict;
use crate::settings::jittered_millis;

impl Connection {
    // === admitted ===

    /// Serves an admitted client: `ready`, the messages it sent while held,
    /// then the relay between the client and its session. `waited` is how
    /// long it was held, or `None` when the gate was ready at connect.
    pub(super) async fn admitted(
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
        self.waited_ms = Some(waited_ms);
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
            let ready = self.gate.frames(&snapshot).ready(waited_ms, &self.id);
            if self.send_text(ready).is_err() {
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
                        let readiness = self.gate.frames(&snapshot).readiness.clone();
                        if self.send_text(readiness).is_err() {
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
                    self.close_both(session, CLOSE_GOING_AWAY, "server restarting", DRAIN_CLOSE_WAIT)
                        .await;
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
                        self.close_both(session, CLOSE_GOING_AWAY, "no answer to two pings", CLOSE_HANDSHAKE_WAIT).await;
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
                    if matches!(incoming, Incoming::Text(_) | Incoming::Binary(_))
                        && let Some(rate_limit) = &mut self.rate_limit {
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

    /// Closes the client and the session at once, both within `wait`, so
    /// that the session's side (a backend) hears the close even when the
    /// client is slow to answer its own: at the drain deadline, both must
    /// be done within the margin the process waits (`DRAIN_CLOSE_WAIT`).
    async fn close_both(
        &mut self,
        session: &mut dyn Session,
        code: u16,
        reason: &str,
        wait: Duration,
    ) {
        let session_closed = tokio::time::timeout(wait, session.close(code, reason));
        // A session that takes longer is cut off with the connection.
        let ((), _in_time) = tokio::join!(self.close_within(code, reason, wait), session_closed);
    }

    /// Hands one client message to the session.
    pub(super) fn deliver(
        &mut self,
        session: &mut dyn Session,
        message: Message,
    ) -> Result<(), Gone> {
        let mut replies = Replies {
            outbox: &mut self.peer.outbox,
            speaks_warmgate: self.speaks_warmgate,
        };
        session.on_message(message, &mut replies)
    }

    /// Refuses one message past the rate limit, naming its
    /// `client_msg_id` when it has one.
    pub(super) fn rate_limited(&mut self, incoming: &Incoming) -> Result<(), Gone> {
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
    pub(super) async fn flooded(&mut self) -> Ended {
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
    pub(super) fn token_expiry(&self) -> tokio::time::Sleep {
        match self.token_expires {
            Some(at) => tokio::time::sleep_until(at),
            None => tokio::time::sleep(Duration::MAX),
        }
    }

    /// Ends a session whose token expired: an `error` frame, then 1008.
    pub(super) async fn token_expired(&mut self) -> Ended {
        tracing::info!("the client's token expired; closing with 1008");
        self.end_expired_token(Outcome::Admitted).await
    }

    /// Ends a held client whose token expired before the gate admitted it:
    /// admitting it would only end it at once.
    pub(super) async fn token_expired_while_held(&mut self, unprocessed: usize) -> Ended {
        let waited = self.upgraded_at.elapsed();
        self.meter.token_expired_while_held(waited);
        let waited_ms = millis(waited);
        self.waited_ms = Some(waited_ms);
        tracing::info!(
            waited_ms,
            unprocessed,
            "a held client's token expired before the gate admitted it; closing with 1008"
        );
        self.end_expired_token(Outcome::TokenExpiredWhileHeld).await
    }

    pub(super) async fn end_expired_token(&mut self, outcome: Outcome) -> Ended {
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

    pub(super) fn start_draining(
        &mut self,
        deadline: Pin<&mut tokio::time::Sleep>,
    ) -> Result<(), Gone> {
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
    pub(super) async fn control(&mut self, incoming: Incoming) -> Result<(), Option<u16>> {
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
}
