//! The hold: the IO loop that turns timers, snapshots and frames into
//! `hold`'s events and carries out its actions (warm, buffer, start the
//! application, admit, refuse), and the frames that word a refusal.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;

use futures_util::{FutureExt as _, StreamExt as _};
use tokio::time::Instant;
use warmgate_core::{GateState, Snapshot};
use warmgate_engine::SnapshotRx;

use super::{CLOSE_TRY_AGAIN_LATER, Connection, Ended, Outcome, left, millis};
use crate::app::{AdmitError, BoxFuture, Message, Session};
use crate::frames::Incoming;
use crate::hold::{Hold, HoldAction, HoldEvent};
use crate::outbox::Gone;
use crate::protocol::{ErrorCode, ServerMessage, UnavailableReason};
use crate::settings::{MAX_BUFFERED_BYTES, MAX_BUFFERED_MESSAGES, jittered_millis};
use crate::tracker::HeldGuard;

impl Connection {
    // === hold ===

    /// Holds the client until the gate admits traffic and its application
    /// has started (`Ok`, with what it sent meanwhile), or ends the
    /// connection with a reason (`Err`). The rules are `hold`'s; this
    /// loop feeds them events and carries out their actions.
    pub(super) async fn hold(
        &mut self,
        session: &mut dyn Session,
        mut prestarted: Option<Result<(), AdmitError>>,
        mut rules: Hold,
        first: HoldAction,
        held: Option<HeldGuard>,
        snapshot_rx: &mut SnapshotRx,
    ) -> Result<Vec<Message>, Ended> {
        // The rules start the application at most once; the session is
        // lent to that start, which holds it until it ends. One started
        // during the upgrade (`prestarted`) is not started again.
        let mut to_start = Some(session);
        let mut starting = None;
        let mut action = first;
        if action == HoldAction::Start {
            // The usual case of a ready gate: an application that is ready
            // at once admits the client without timers or a loop.
            action = match start(&mut prestarted, &mut to_start, &mut starting) {
                Some(Ok(())) => return Ok(Vec::new()),
                Some(Err(error)) => rules.step(HoldEvent::Started(Err(self.start_failed(&error)))),
                None => HoldAction::Wait,
            };
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
                    if let Some(started) = start(&mut prestarted, &mut to_start, &mut starting) {
                        let started = started.map_err(|error| self.start_failed(&error));
                        action = rules.step(HoldEvent::Started(started));
                        continue;
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
            // Biased, in this order, so that events at one instant are
            // taken as the rules expect: a flip before the deadline (the
            // client is admitted), the deadline before a heartbeat (no
            // `warming` as the client is refused). No branch can starve
            // the client's reads: the others are ready only now and then.
            let event = tokio::select! {
                biased;
                stopped = self.peer.outbox.stopped() => {
                    return Err(self.writer_stopped(stopped, Outcome::LeftWhileHeld).await);
                }
                changed = snapshot_rx.changed() => {
                    let state = snapshot_rx.borrow_and_update().state;
                    HoldEvent::Snapshot(if changed.is_err() { GateState::Draining } else { state })
                }
                started = poll_fn(|cx| match starting.as_mut() {
                    Some(start) => start.as_mut().poll(cx),
                    None => Poll::Pending,
                }), if starting.is_some() => {
                    starting = None;
                    HoldEvent::Started(started.map_err(|error| self.start_failed(&error)))
                }
                () = &mut token_expiry, if self.token_expires.is_some() => HoldEvent::TokenExpired,
                () = &mut deadline, if !rules.starting() => HoldEvent::HoldDeadline,
                _ = heartbeat.tick() => HoldEvent::Heartbeat,
                // A full queue stops the reading below; this wakes the loop
                // when the writer makes room, so the guards are re-read.
                () = room.wait(), if !self.peer.outbox.has_room() => continue,
                incoming = self.peer.frames.next(), if self.peer.outbox.has_room() && rules.reads_messages() => {
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
    pub(super) fn start_failed(&self, error: &AdmitError) -> UnavailableReason {
        tracing::warn!(
            reason = error.reason.as_str(),
            app = self.route.app.name(),
            detail = %error.detail,
            "the client's application could not start; the client is told `unavailable` and closed with 1013"
        );
        error.reason
    }

    pub(super) fn send_warming(
        &mut self,
        snapshot: &Snapshot,
        held_at: Instant,
    ) -> Result<(), Gone> {
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
    pub(super) async fn refuse(
        &mut self,
        reason: UnavailableReason,
        snapshot: &Snapshot,
        unprocessed: usize,
    ) -> Ended {
        let retry_after_ms = jittered_millis(self.gate.settings.retry_after);
        let waited = self.upgraded_at.elapsed();
        self.meter.refused(reason, waited);
        let waited_ms = millis(waited);
        self.waited_ms = Some(waited_ms);
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
    pub(super) async fn refuse_without_snapshot(&mut self, reason: UnavailableReason) -> Ended {
        let snapshot = self.gate.handle.current();
        self.refuse(reason, &snapshot, 0).await
    }
}

/// Starts the application: the result at once when it is known at once (a
/// start made during the upgrade, or an application ready without a
/// wait, such as the chat or echo); otherwise `None`, with the start left
/// in `starting` for the loop to poll. The session is lent to the start,
/// so it is started at most once.
fn start<'s>(
    prestarted: &mut Option<Result<(), AdmitError>>,
    to_start: &mut Option<&'s mut dyn Session>,
    starting: &mut Option<BoxFuture<'s, Result<(), AdmitError>>>,
) -> Option<Result<(), AdmitError>> {
    if let Some(started) = prestarted.take() {
        return Some(started);
    }
    let mut start = to_start.take()?.admit();
    let started = (&mut start).now_or_never();
    if started.is_none() {
        *starting = Some(start);
    }
    started
}
