//! The hold rules, one event at a time, and the property that a held
//! client always ends admitted or told why.

use proptest::prelude::*;
use warmgate_core::GateState;

use super::{Hold, HoldAction, HoldEvent};
use crate::protocol::UnavailableReason;
use crate::settings::{MAX_BUFFERED_BYTES, MAX_BUFFERED_MESSAGES};

#[test]
fn a_client_of_a_ready_gate_starts_its_application_at_once_and_is_not_warmed() {
    let (mut hold, first) = Hold::new(GateState::Ready, false);
    assert_eq!(first, HoldAction::Start);
    assert!(!hold.held());
    assert_eq!(hold.step(HoldEvent::Heartbeat), HoldAction::Wait);
    assert_eq!(hold.step(HoldEvent::HoldDeadline), HoldAction::Wait);
    assert_eq!(hold.step(HoldEvent::Started(Ok(()))), HoldAction::Admit);
    assert_eq!(hold.step(HoldEvent::Heartbeat), HoldAction::Wait);
}

#[test]
fn a_held_client_is_warmed_then_started_then_admitted_at_the_flip() {
    let (mut hold, first) = Hold::new(GateState::Starting, false);
    assert_eq!(first, HoldAction::Warm);
    assert!(hold.held());
    assert_eq!(hold.step(HoldEvent::Heartbeat), HoldAction::Warm);
    assert_eq!(
        hold.step(HoldEvent::Snapshot(GateState::Starting)),
        HoldAction::Warm
    );
    assert_eq!(
        hold.step(HoldEvent::Snapshot(GateState::Degraded)),
        HoldAction::Start
    );
    // Still warmed while a dial slot is awaited; the deadline is the
    // application's now.
    assert_eq!(hold.step(HoldEvent::Heartbeat), HoldAction::Warm);
    assert_eq!(hold.step(HoldEvent::HoldDeadline), HoldAction::Wait);
    assert_eq!(
        hold.step(HoldEvent::Snapshot(GateState::NotReady)),
        HoldAction::Wait
    );
    assert_eq!(hold.step(HoldEvent::Started(Ok(()))), HoldAction::Admit);
}

#[test]
fn the_deadline_refuses_with_failed_when_the_gate_failed_and_hold_timeout_otherwise() {
    let (mut hold, _) = Hold::new(GateState::Starting, false);
    assert_eq!(
        hold.step(HoldEvent::HoldDeadline),
        HoldAction::Refuse(UnavailableReason::HoldTimeout)
    );
    let (mut hold, _) = Hold::new(GateState::Starting, false);
    hold.step(HoldEvent::Snapshot(GateState::Failed));
    assert_eq!(
        hold.step(HoldEvent::HoldDeadline),
        HoldAction::Refuse(UnavailableReason::Failed)
    );
}

#[test]
fn draining_refuses_a_held_client_even_while_its_application_starts() {
    let (hold, first) = Hold::new(GateState::Draining, false);
    assert_eq!(first, HoldAction::Refuse(UnavailableReason::Draining));
    assert!(hold.ended);
    let (mut hold, _) = Hold::new(GateState::Ready, false);
    assert_eq!(
        hold.step(HoldEvent::Snapshot(GateState::Draining)),
        HoldAction::Refuse(UnavailableReason::Draining)
    );
    assert_eq!(hold.step(HoldEvent::Started(Ok(()))), HoldAction::Wait);
}

#[test]
fn a_failed_start_refuses_with_the_applications_reason() {
    let (mut hold, _) = Hold::new(GateState::Ready, false);
    assert_eq!(
        hold.step(HoldEvent::Started(Err(
            UnavailableReason::UpstreamUnavailable
        ))),
        HoldAction::Refuse(UnavailableReason::UpstreamUnavailable)
    );
}

#[test]
fn an_expired_token_ends_the_hold() {
    let (mut hold, _) = Hold::new(GateState::Starting, false);
    assert_eq!(hold.step(HoldEvent::TokenExpired), HoldAction::ExpireToken);
}

#[test]
fn the_buffer_takes_at_most_its_messages_and_bytes() {
    let (mut hold, _) = Hold::new(GateState::Starting, false);
    for _ in 0..MAX_BUFFERED_MESSAGES {
        assert_eq!(
            hold.step(HoldEvent::ClientMessage { len: 1 }),
            HoldAction::Buffer
        );
    }
    assert_eq!(
        hold.step(HoldEvent::ClientMessage { len: 1 }),
        HoldAction::RefuseMessage
    );
    assert_eq!(hold.n_buffered, MAX_BUFFERED_MESSAGES);
    let (mut hold, _) = Hold::new(GateState::Starting, false);
    assert_eq!(
        hold.step(HoldEvent::ClientMessage {
            len: MAX_BUFFERED_BYTES
        }),
        HoldAction::Buffer
    );
    assert_eq!(
        hold.step(HoldEvent::ClientMessage { len: 1 }),
        HoldAction::RefuseMessage
    );
}

#[test]
fn a_client_that_cannot_be_told_is_never_refused_a_message_its_reads_stop_when_the_buffer_is_full()
{
    let (mut hold, _) = Hold::new(GateState::Starting, true);
    for _ in 0..MAX_BUFFERED_MESSAGES {
        assert!(hold.reads_messages());
        assert_eq!(
            hold.step(HoldEvent::ClientMessage { len: 1 }),
            HoldAction::Buffer
        );
    }
    assert!(!hold.reads_messages(), "32 messages fill the buffer");
    // A message larger than the whole buffer is kept too: it was read
    // already, and it could not be refused in words.
    let (mut hold, _) = Hold::new(GateState::Starting, true);
    assert_eq!(
        hold.step(HoldEvent::ClientMessage {
            len: 4 * MAX_BUFFERED_BYTES
        }),
        HoldAction::Buffer
    );
    assert!(!hold.reads_messages());
    // So is one of a ready gate that waits for its application to start.
    let (mut hold, _) = Hold::new(GateState::Ready, false);
    assert_eq!(
        hold.step(HoldEvent::ClientMessage {
            len: MAX_BUFFERED_BYTES + 1
        }),
        HoldAction::Buffer
    );
    assert!(!hold.reads_messages());
    // A held client that speaks warmgate is told instead, and read on.
    let (mut hold, _) = Hold::new(GateState::Starting, false);
    assert_eq!(
        hold.step(HoldEvent::ClientMessage {
            len: MAX_BUFFERED_BYTES + 1
        }),
        HoldAction::RefuseMessage
    );
    assert!(hold.reads_messages());
}

fn state() -> impl Strategy<Value = GateState> {
    prop_oneof![
        Just(GateState::Starting),
        Just(GateState::Ready),
        Just(GateState::Degraded),
        Just(GateState::NotReady),
        Just(GateState::Failed),
        Just(GateState::Draining),
    ]
}

fn event() -> impl Strategy<Value = HoldEvent> {
    prop_oneof![
        state().prop_map(HoldEvent::Snapshot),
        Just(HoldEvent::Heartbeat),
        Just(HoldEvent::TokenExpired),
        (0..=MAX_BUFFERED_BYTES).prop_map(|len| HoldEvent::ClientMessage { len }),
        Just(HoldEvent::Started(Ok(()))),
        Just(HoldEvent::Started(Err(
            UnavailableReason::UpstreamUnavailable
        ))),
    ]
}

proptest! {
    /// Whatever happens first, once the hold deadline has passed and an
    /// application start that began has ended, the client has been
    /// admitted or told why, exactly once; and a client is admitted only
    /// after its application was started, which happens only when the gate
    /// admits traffic.
    #[test]
    fn a_held_client_is_always_admitted_or_told_why(
        first in state(),
        transparent in any::<bool>(),
        events in proptest::collection::vec(event(), 0..40),
        start_result in prop_oneof![Just(Ok(())), Just(Err(UnavailableReason::UpstreamUnavailable))],
    ) {
        let (mut hold, action) = Hold::new(first, transparent);
        let mut actions = vec![action];
        let mut started = action == HoldAction::Start;
        let mut admits_traffic_seen = first.admits_traffic();
        for event in events {
            if let HoldEvent::Snapshot(state) = event {
                admits_traffic_seen |= state.admits_traffic();
            }
            let action = hold.step(event);
            if action == HoldAction::Start {
                prop_assert!(admits_traffic_seen, "started before the gate admitted traffic");
                started = true;
            }
            if action == HoldAction::Admit {
                prop_assert!(started, "admitted before the application started");
            }
            // No message of a transparent client is refused: it could not
            // be told; nor of a client the gate did not hold.
            prop_assert!(!((transparent || first.admits_traffic()) && action == HoldAction::RefuseMessage));
            actions.push(action);
        }
        actions.push(hold.step(HoldEvent::HoldDeadline));
        actions.push(hold.step(HoldEvent::Started(start_result)));
        let finals: Vec<_> = actions.iter().filter(|action| action.is_final()).collect();
        prop_assert_eq!(finals.len(), 1, "{:?}", actions);
        let last_final = actions.iter().rposition(|action| action.is_final()).unwrap_or(0);
        prop_assert!(actions[last_final + 1..].iter().all(|action| *action == HoldAction::Wait));
    }
}
