//! The transition history on the wire: `GET /readiness/history` on the
//! admin listener, and the `transition` and `history_gap` events that
//! `GET /readiness/events` replays and streams (see `events`).
//!
//! `GET /readiness/history` shows each transition whole; the event stream
//! (on either listener) shows it without its free text (the cause's `error`
//! and the `reason`), which can name internal hosts, as the public snapshot
//! shows no errors.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use warmgate_core::{Cause, GateState};
use warmgate_engine::{History, ReadinessHandle, TransitionRecord};

/// `GET /readiness/history`: the ring of the latest transitions, oldest
/// first: `{"capacity":256,"dropped":0,"transitions":[...]}` (see
/// [`History`]). Reads the published ring; never waits on the engine.
pub(crate) async fn readiness_history(State(handle): State<ReadinessHandle>) -> Json<History> {
    Json(History::clone(&handle.history()))
}

/// A transition as the public event stream shows it (`event: transition`,
/// `id:` its seq): `{"seq":7,"unix_ms":…,"elapsed_ms":8120,"from":"ready",
/// "to":"not_ready","cause":{"kind":"check","check":"redis","result":"failed",
/// "error_class":"connection_refused"},"previous_state_ms":5012}`.
#[derive(Debug, Serialize)]
pub(crate) struct PublicTransition {
    seq: u64,
    unix_ms: u64,
    elapsed_ms: u64,
    from: GateState,
    to: GateState,
    cause: Cause,
    previous_state_ms: u64,
}

impl PublicTransition {
    pub(crate) fn of(record: &TransitionRecord) -> PublicTransition {
        PublicTransition {
            seq: record.seq,
            unix_ms: record.unix_ms,
            elapsed_ms: millis(record.at),
            from: record.from,
            to: record.to,
            cause: record.cause.without_error(),
            previous_state_ms: millis(record.previous_state_lasted),
        }
    }
}

/// The first event of a replay whose `Last-Event-ID` the ring no longer
/// reaches back to (`event: history_gap`, no `id`): some transitions after
/// `last_event_id` are lost. `{"last_event_id":3,"oldest_seq":46,"dropped":44}`:
/// `oldest_seq` is the oldest transition still kept (the replay starts
/// there), `dropped` how many the ring has dropped since the start.
#[derive(Debug, Serialize)]
pub(crate) struct HistoryGap {
    pub(crate) last_event_id: u64,
    pub(crate) oldest_seq: Option<u64>,
    pub(crate) dropped: u64,
}

fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
