//! The rules of a held client, as a pure step function: events in, one
//! action out. No IO, no clock, no tokio: the connection's loop turns
//! timers, snapshots and frames into [`HoldEvent`]s and carries out each
//! [`HoldAction`].
//!
//! A client is held from its upgrade until the gate admits traffic, then
//! stays held while its application starts ([`crate::Session::admit`]:
//! for a backend, the dial, which waits for a dial slot). The rules:
//!
//! | event | while waiting for the gate | while the application starts |
//! |---|---|---|
//! | snapshot, draining | refuse `draining` | refuse `draining` |
//! | snapshot, admits traffic | start the application | — |
//! | snapshot, other | warm | — |
//! | heartbeat | warm (held clients) | warm (held clients) |
//! | hold deadline | refuse `failed` or `hold_timeout` | — (the application bounds its start) |
//! | token expired | expire | expire |
//! | client message | buffer; when the buffer is full, refuse it (a held client that speaks warmgate, told `buffer_full`) or stop reading (a transparent client, which could not be told) | buffer; stop reading when the buffer is full (a client of a ready gate) |
//! | application started | — | admit |
//! | application failed | — | refuse with its reason |
//!
//! **Invariant:** a held client is always admitted or told why: every
//! sequence of events that includes the hold deadline, and the end of the
//! application's start once it began, reaches exactly one of
//! [`HoldAction::Admit`], [`HoldAction::Refuse`] or
//! [`HoldAction::ExpireToken`] (the property test in `hold/tests.rs`);
//! after it, every event is [`HoldAction::Wait`].

use warmgate_core::GateState;

use crate::protocol::UnavailableReason;
use crate::settings::{MAX_BUFFERED_BYTES, MAX_BUFFERED_MESSAGES};

/// What happened to a held client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HoldEvent {
    /// A snapshot was published (or the channel closed: `Draining`).
    Snapshot(GateState),
    /// The `warming_interval` heartbeat.
    Heartbeat,
    /// `hold_timeout` has passed since the upgrade.
    HoldDeadline,
    /// The client's token expired, leeway included.
    TokenExpired,
    /// The client sent a message of `len` bytes.
    ClientMessage { len: usize },
    /// The application's start ended: `Ok`, or the reason it failed.
    Started(Result<(), UnavailableReason>),
}

/// What the connection does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HoldAction {
    /// Nothing.
    Wait,
    /// Send a `warming` frame (to a client that speaks warmgate).
    Warm,
    /// Keep the client's message for after admission.
    Buffer,
    /// Refuse the client's message: the hold buffer is full (a client
    /// that speaks warmgate is told so).
    RefuseMessage,
    /// Start the application ([`crate::Session::admit`]).
    Start,
    /// Admit: send `ready`, replay the buffer, relay.
    Admit,
    /// Send `unavailable` with the reason, then close 1013.
    Refuse(UnavailableReason),
    /// Send `error` `token_expired`, then close 1008.
    ExpireToken,
}

impl HoldAction {
    /// True for the actions that end the hold.
    pub(crate) fn is_final(self) -> bool {
        matches!(
            self,
            HoldAction::Admit | HoldAction::Refuse(_) | HoldAction::ExpireToken
        )
    }
}

/// One held client's rules and what they need to remember.
#[derive(Debug, Clone)]
pub(crate) struct Hold {
    /// True when the gate held the client (it did not admit traffic at
    /// the upgrade); only a held client is warmed.
    held: bool,
    /// True when a full buffer stops the client's reads (TCP holds the
    /// rest) instead of refusing its message with `buffer_full`: for a
    /// client that gets no frame of warmgate's (it could not be told), and
    /// for one the gate did not hold (it waits only for its application to
    /// start, which `buffer_full`, a word about the hold, would not
    /// describe). Nothing such a client sends is lost.
    stops_reading_when_full: bool,
    /// The last state seen, to word a refusal at the deadline.
    state: GateState,
    starting: bool,
    ended: bool,
    n_buffered: usize,
    n_buffered_bytes: usize,
}

impl Hold {
    /// The rules for a client that connected while the gate was in
    /// `state`, and the first action. A `transparent` client is one that
    /// gets no frame of warmgate's.
    pub(crate) fn new(state: GateState, transparent: bool) -> (Hold, HoldAction) {
        let held = !state.admits_traffic();
        let mut hold = Hold {
            held,
            stops_reading_when_full: transparent || !held,
            state,
            starting: false,
            ended: false,
            n_buffered: 0,
            n_buffered_bytes: 0,
        };
        let first = hold.step(HoldEvent::Snapshot(state));
        (hold, first)
    }

    /// True when the gate held the client at its upgrade.
    pub(crate) fn held(&self) -> bool {
        self.held
    }

    /// False once a transparent client's buffer is full: its messages are
    /// not read until it is admitted. Memory stays bounded: the buffer's
    /// bounds plus the one message that filled it.
    pub(crate) fn reads_messages(&self) -> bool {
        !self.stops_reading_when_full || !self.buffer_full()
    }

    fn buffer_full(&self) -> bool {
        self.n_buffered >= MAX_BUFFERED_MESSAGES || self.n_buffered_bytes >= MAX_BUFFERED_BYTES
    }

    /// True while the application is starting; the hold deadline no
    /// longer applies then.
    pub(crate) fn starting(&self) -> bool {
        self.starting
    }

    /// The rules: one event in, one action out.
    pub(crate) fn step(&mut self, event: HoldEvent) -> HoldAction {
        if self.ended {
            return HoldAction::Wait;
        }
        let action = match event {
            HoldEvent::Snapshot(state) => {
                self.state = state;
                if state == GateState::Draining {
                    HoldAction::Refuse(UnavailableReason::Draining)
                } else if self.starting {
                    HoldAction::Wait
                } else if state.admits_traffic() {
                    self.starting = true;
                    HoldAction::Start
                } else {
                    HoldAction::Warm
                }
            }
            HoldEvent::Heartbeat if self.held => HoldAction::Warm,
            HoldEvent::Heartbeat => HoldAction::Wait,
            HoldEvent::HoldDeadline if self.starting => HoldAction::Wait,
            HoldEvent::HoldDeadline if self.state == GateState::Failed => {
                HoldAction::Refuse(UnavailableReason::Failed)
            }
            HoldEvent::HoldDeadline => HoldAction::Refuse(UnavailableReason::HoldTimeout),
            HoldEvent::TokenExpired => HoldAction::ExpireToken,
            HoldEvent::ClientMessage { len } => {
                let over = self.n_buffered >= MAX_BUFFERED_MESSAGES
                    || self.n_buffered_bytes + len > MAX_BUFFERED_BYTES;
                if over && !self.stops_reading_when_full {
                    HoldAction::RefuseMessage
                } else {
                    self.n_buffered += 1;
                    self.n_buffered_bytes += len;
                    HoldAction::Buffer
                }
            }
            HoldEvent::Started(_) if !self.starting => HoldAction::Wait,
            HoldEvent::Started(Ok(())) => HoldAction::Admit,
            HoldEvent::Started(Err(reason)) => HoldAction::Refuse(reason),
        };
        self.ended = action.is_final();
        action
    }
}

#[cfg(test)]
mod tests;
