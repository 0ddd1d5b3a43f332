//! The echo application: every message comes back as it was sent.
//!
//! Transparent: the client gets no frame of warmgate's, held or not, so any
//! WebSocket client (and the Autobahn conformance suite) can use it. A
//! client that offers `warmgate.v1` still gets it selected in the
//! handshake, as before the seam existed, but sees only its own messages.

use std::task::{Context, Poll};

use crate::app::{Application, Client, Message, Outgoing, Replies, Selection, Session};
use crate::outbox::Gone;

/// Echoes every message back.
#[derive(Debug, Default, Clone, Copy)]
pub struct Echo;

impl Application for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn select(&self, _offered: &[&str], _offers_warmgate: bool) -> Selection {
        Selection::default()
    }

    fn open(&self, _client: &Client<'_>) -> Box<dyn Session> {
        Box::new(EchoSession)
    }
}

struct EchoSession;

impl Session for EchoSession {
    fn on_message(&mut self, message: Message, replies: &mut Replies<'_>) -> Result<(), Gone> {
        replies.send(message)
    }

    fn poll_outgoing(&mut self, _cx: &mut Context<'_>) -> Poll<Outgoing> {
        Poll::Pending
    }
}
