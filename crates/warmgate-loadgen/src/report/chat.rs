//! The chat clients' ledger: what was sent, acked and delivered, and how
//! the clients' connections ended.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Timings;

/// The delivery check and the chat figures, over every chat client.
///
/// A member is *connected throughout* for a message when it had joined
/// the room before the message was sent and was still connected when the
/// sender got the ack; each such member must receive it exactly once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatSummary {
    pub clients: usize,
    pub rooms: usize,
    /// Clients admitted and in their room.
    pub joined: usize,
    /// Why clients never joined, the first fifty.
    pub join_failures: Vec<JoinFailure>,
    pub messages_sent: u64,
    pub messages_acked: u64,
    #[serde(deserialize_with = "Option::deserialize")]
    pub ack_latency: Option<Timings>,
    /// Member deliveries the rule requires.
    pub deliveries_required: u64,
    /// Of those, the ones received exactly once.
    pub delivered_once: u64,
    /// Required deliveries never received.
    pub missing: u64,
    /// Deliveries received more than once, required or not.
    pub duplicated: u64,
    /// Deliveries of messages no client sent.
    pub unknown_deliveries: u64,
    /// Chat frames from another room, or with an id no client makes.
    pub foreign_frames: u64,
    /// Chat frames whose `from` is not their sender's user (checked with
    /// authentication on).
    pub wrong_from: u64,
    /// Acks of messages the client never sent.
    pub stray_acks: u64,
    /// Second acks of one message.
    pub repeated_acks: u64,
    /// The first fifty missing or duplicated deliveries.
    pub problems: Vec<DeliveryProblem>,
    /// `error` frames by code.
    pub error_frames: BTreeMap<String, u64>,
    /// Joined clients by how their connection ended, in words.
    pub ends: BTreeMap<String, u64>,
    /// Joined clients by the sequence of `readiness` states pushed to them,
    /// comma-separated.
    pub readiness_pushes: BTreeMap<String, u64>,
    pub drain: ChatDrain,
}

/// A chat client that never joined its room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinFailure {
    pub client: usize,
    pub why: String,
}

/// One delivery that broke the rule. `message` is `SENDER.SEQ`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "problem", rename_all = "snake_case", deny_unknown_fields)]
pub enum DeliveryProblem {
    Duplicated {
        message: String,
        member: usize,
        count: u8,
    },
    Missing {
        message: String,
        member: usize,
        sent_ms: f64,
        acked_ms: f64,
    },
}

/// The chat clients told `draining`, and how they were closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatDrain {
    pub told_draining: usize,
    #[serde(deserialize_with = "Option::deserialize")]
    pub first_draining_ms: Option<f64>,
    #[serde(deserialize_with = "Option::deserialize")]
    pub last_closed_ms: Option<f64>,
    /// The drained clients by close code (`none`: no close frame).
    pub close_codes: BTreeMap<String, u64>,
    /// From `draining` to the close, per drained client.
    #[serde(deserialize_with = "Option::deserialize")]
    pub draining_to_close: Option<Timings>,
}
