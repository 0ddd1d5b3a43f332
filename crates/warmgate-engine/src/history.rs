//! The transition history: the latest state transitions, in a bounded ring.
//!
//! The engine records every transition as it happens, before the snapshot
//! that first shows its new state is published, and publishes the ring as
//! an immutable [`History`] through an `ArcSwap` (see `handle`), so a reader
//! that has seen snapshot `seq` finds every transition up to `seq` here, and
//! reading never waits on the engine. Entries are `Arc`s: publishing a new
//! ring copies [`HISTORY_CAPACITY`] pointers, not their text.
//!
//! This module keeps the ring and its JSON; it reads no clock itself (the
//! engine passes the wall-clock time of each transition). Serving it is the
//! job of `warmgate-http` (`GET /readiness/history`, and the replay of
//! `GET /readiness/events` after a `Last-Event-ID`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Serialize, Serializer};
use warmgate_core::{Cause, GateState, Transition};

/// How many transitions the ring keeps; older ones are dropped and counted.
pub const HISTORY_CAPACITY: usize = 256;

/// One transition as recorded.
///
/// On the wire (admin listener):
/// `{"seq":7,"unix_ms":1764549662123,"elapsed_ms":8120,"from":"ready","to":"not_ready","cause":{...},"reason":"check `redis` failed 3 time(s) in a row: connection refused to 127.0.0.1:6379","previous_state_ms":5012}`.
/// `cause` is a [`Cause`]; `previous_state_ms` is how long the gate had been
/// in `from` (since the previous transition, or since the engine started).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransitionRecord {
    /// The seq of the snapshot that first shows `to`.
    pub seq: u64,
    /// When it happened, in milliseconds since the Unix epoch (wall clock).
    pub unix_ms: u64,
    /// When it happened, since the engine started (the clock of the
    /// snapshots' `elapsed_ms` and `since_ms`).
    #[serde(rename = "elapsed_ms", serialize_with = "as_millis")]
    pub at: Duration,
    pub from: GateState,
    pub to: GateState,
    pub cause: Cause,
    /// The machine's human reason, as logged.
    pub reason: String,
    /// How long the gate had been in `from`.
    #[serde(rename = "previous_state_ms", serialize_with = "as_millis")]
    pub previous_state_lasted: Duration,
}

/// The ring of the latest transitions, oldest first, as published.
///
/// On the wire: `{"capacity":256,"dropped":0,"transitions":[TransitionRecord, ...]}`,
/// where `dropped` counts the transitions that fell out of the ring since
/// the engine started.
///
/// Invariant: the `seq`s of `transitions` strictly increase, and at most
/// `capacity` are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct History {
    capacity: usize,
    dropped: u64,
    #[serde(serialize_with = "records")]
    transitions: VecDeque<Arc<TransitionRecord>>,
    /// The seq of the newest transition dropped from the ring, if any.
    #[serde(skip)]
    dropped_through_seq: Option<u64>,
    /// When the current state was entered, since the engine started.
    #[serde(skip)]
    state_entered_at: Duration,
}

impl History {
    /// An empty ring keeping at most `capacity` transitions (at least one).
    pub fn new(capacity: usize) -> History {
        let capacity = capacity.max(1);
        History {
            capacity,
            dropped: 0,
            transitions: VecDeque::with_capacity(capacity),
            dropped_through_seq: None,
            state_entered_at: Duration::ZERO,
        }
    }

    /// How many transitions the ring keeps.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many transitions fell out of the ring.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The kept transitions, oldest first.
    pub fn transitions(&self) -> impl DoubleEndedIterator<Item = &TransitionRecord> + '_ {
        self.transitions.iter().map(|record| &**record)
    }

    /// The kept transitions with a seq greater than `seq`, oldest first.
    pub fn after(&self, seq: u64) -> impl Iterator<Item = &TransitionRecord> + '_ {
        self.transitions().filter(move |record| record.seq > seq)
    }

    /// True when every transition after `seq` is still kept: none with a
    /// greater seq has been dropped.
    pub fn reaches_back_to(&self, seq: u64) -> bool {
        self.dropped_through_seq
            .is_none_or(|dropped_through| dropped_through <= seq)
    }

    /// The seq of the oldest kept transition.
    pub fn oldest_seq(&self) -> Option<u64> {
        self.transitions.front().map(|record| record.seq)
    }

    /// The newest transition.
    pub fn latest(&self) -> Option<&TransitionRecord> {
        self.transitions.back().map(|record| &**record)
    }

    /// Records `transition`, which happened at `unix_ms` on the wall clock,
    /// dropping the oldest entry when the ring is full.
    pub(crate) fn record(&mut self, transition: &Transition, unix_ms: u64) {
        let previous_state_lasted = transition.at.saturating_sub(self.state_entered_at);
        self.state_entered_at = transition.at;
        if self.transitions.len() == self.capacity
            && let Some(oldest) = self.transitions.pop_front()
        {
            self.dropped += 1;
            self.dropped_through_seq = Some(oldest.seq);
        }
        self.transitions.push_back(Arc::new(TransitionRecord {
            seq: transition.seq,
            unix_ms,
            at: transition.at,
            from: transition.from,
            to: transition.to,
            cause: transition.cause.clone(),
            reason: transition.reason.clone(),
            previous_state_lasted,
        }));
    }
}

/// Milliseconds since the Unix epoch, now; 0 for a clock set before 1970.
pub(crate) fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

fn as_millis<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

fn records<S: Serializer>(
    records: &VecDeque<Arc<TransitionRecord>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(records.iter().map(|record| &**record))
}

#[cfg(test)]
mod tests;
