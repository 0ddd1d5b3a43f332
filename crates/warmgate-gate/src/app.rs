//! The seam between the gate and what an admitted client talks to.
//!
//! The gate's job ends at admission: it checks the upgrade, holds and warms
//! the client, buffers what it sends meanwhile, admits or refuses it, and
//! drains it. What the client then talks to is an [`Application`]: the
//! gate opens one [`Session`] per client when its upgrade completes (before
//! any hold), calls [`Session::admit`] when the gate admits it, replays the
//! buffered messages, and then relays: each client message goes to
//! [`Session::on_message`], and each [`Outgoing`] the session yields goes
//! to the client. The gate keeps the connection's own rules throughout:
//! liveness pings, the per-connection rate limit, token expiry, the slow
//! consumer rule and the drain.
//!
//! Three applications ship: echo (in this crate), chat (`warmgate-chat`)
//! and the backend of proxy mode (`warmgate-proxy`). A Rust service that
//! embeds the gate can write its own, or use [`crate::handler`] to receive
//! each admitted client as a socket-like value in an async function.
//!
//! **Invariant:** a session never blocks the connection's loop:
//! [`Session::on_message`] is synchronous (it queues), and
//! [`Session::poll_outgoing`] is a poll, so the loop's timers always run.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::HeaderMap;
use fastwebsockets::{Frame, Payload};
use warmgate_auth::Identity;

use crate::outbox::{Gone, Outbox};
use crate::protocol::{ErrorCode, ServerMessage};

/// A boxed future, as the object-safe traits here return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A whole message from the client (RFC 6455 section 5.6), reassembled
/// from its fragments and, for text, valid UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Text(String),
    Binary(Vec<u8>),
}

impl Message {
    /// The payload's length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Message::Text(text) => text.len(),
            Message::Binary(bytes) => bytes.len(),
        }
    }

    /// True for an empty payload.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a session sends the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// A message for the client.
    Message(Message),
    /// The session is over: close the client with `code` (a code valid on
    /// the wire, RFC 6455 section 7.4.1) and `reason` (at most 123 bytes
    /// are sent).
    Close { code: u16, reason: String },
    /// Nothing to send, but the session has room for client messages
    /// again after [`Session::has_room`] said it had none: the gate reads
    /// the client again.
    Room,
}

/// The client as the application sees it when its upgrade completes.
#[derive(Debug)]
pub struct Client<'a> {
    /// The connection's id, as in the `ready` frame and the span.
    pub connection_id: &'a str,
    /// The request path, such as `/ws`.
    pub path: &'a str,
    /// The request query, without the `?`.
    pub query: Option<&'a str>,
    /// The upgrade request's headers.
    pub headers: &'a HeaderMap,
    /// The socket's peer (the client, or the proxy in front of warmgate),
    /// when the request came through `warmgate_http::serve`; what a
    /// forwarding application appends to `X-Forwarded-For`.
    pub peer: Option<std::net::SocketAddr>,
    /// Who the token said the client is; `None` without `[auth]`.
    pub identity: Option<&'a Identity>,
    /// The application subprotocol selected for the client (see
    /// [`Application::select`]), never `warmgate.v1`.
    pub subprotocol: Option<&'a str>,
    /// True when the client gets warmgate's own frames.
    pub speaks_warmgate: bool,
}

/// What the gate answers the handshake with, decided by the application.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selection {
    /// The application subprotocol to select (RFC 6455 section 4.2.2), one
    /// of the client's offers.
    pub subprotocol: Option<String>,
    /// True when the client gets `warming`, `ready`, `unavailable`,
    /// `readiness`, `draining` and `error` frames from warmgate; false when
    /// it is held transparently and sees only the application.
    pub speaks_warmgate: bool,
}

/// Why a session could not start at admission: the client gets
/// `unavailable` with this reason and close 1013.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmitError {
    /// The reason in the `unavailable` frame and the metrics.
    pub reason: crate::protocol::UnavailableReason,
    /// What went wrong, for the log line (never sent to the client).
    pub detail: String,
}

/// What admitted clients talk to. One value serves every client of a
/// route; it is shared across tasks.
pub trait Application: Send + Sync + 'static {
    /// A short name for spans and metrics, such as `"chat"`.
    fn name(&self) -> &'static str;

    /// Decides the subprotocol and whether the client speaks warmgate's
    /// protocol, from the client's offers (`Sec-WebSocket-Protocol`, with
    /// `warmgate.v1` and `bearer.` entries taken out, in the client's
    /// order) and whether it offered `warmgate.v1`.
    fn select(&self, offered: &[&str], offers_warmgate: bool) -> Selection;

    /// A session for a client whose upgrade request passed its checks,
    /// before the 101 and any hold.
    /// Cheap, and without IO: the work of starting belongs in
    /// [`Session::admit`]. It runs outside the connection's span (the
    /// session's other methods run inside it), so a log line written here
    /// names the client itself, by `client.connection_id`.
    fn open(&self, client: &Client<'_>) -> Box<dyn Session>;

    /// True when the gate applies its per-connection message rate limit
    /// to this application's clients (the demo chat); false leaves the
    /// pace to the application.
    fn limits_messages(&self) -> bool {
        false
    }
}

/// One admitted client's conversation with an [`Application`].
pub trait Session: Send + 'static {
    /// Gets ready to serve the client once the gate admits traffic:
    /// dialing a backend, for instance. For a gate that is ready at the
    /// upgrade it runs while the 101 is written; otherwise the client stays
    /// held (and warmed) while it runs. Called at most once; an error
    /// refuses the client with `unavailable`. The default is ready at once.
    fn admit(&mut self) -> BoxFuture<'_, Result<(), AdmitError>> {
        Box::pin(async { Ok(()) })
    }

    /// One message from the client, in order; the messages it sent while
    /// held come first. Never waits: queue what must wait. `Err` when the
    /// client is gone (a reply could not be queued).
    fn on_message(&mut self, message: Message, replies: &mut Replies<'_>) -> Result<(), Gone>;

    /// The next thing for the client. `Pending` for as long as there is
    /// nothing; [`Outgoing::Close`] ends the connection.
    fn poll_outgoing(&mut self, cx: &mut Context<'_>) -> Poll<Outgoing>;

    /// False while the session cannot take another client message; the
    /// gate stops reading the client until it can (and polls
    /// [`Session::poll_outgoing`] meanwhile, which must wake it).
    fn has_room(&self) -> bool {
        true
    }

    /// The connection is ending with `code`: the client closed, or the
    /// gate closes it (drain, token expiry, protocol error). Waited for at
    /// most the closing handshake's bound.
    fn close(&mut self, code: u16, reason: &str) -> BoxFuture<'_, ()> {
        let _ = (code, reason);
        Box::pin(async {})
    }

    /// A line for the connection's log at its end, such as how many
    /// messages were relayed; `None` for nothing to say.
    fn summary(&self) -> Option<Summary> {
        None
    }
}

/// What a session says about itself at the connection's end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The line, such as "relayed 3 messages to the backend and 5 to the
    /// client".
    pub text: String,
    /// True when an operator should see it (logged at info; else debug):
    /// something was lost, such as messages a backend never got.
    pub notable: bool,
}

/// Where a session's replies to one client message go: the client's
/// outbox (written at once, or queued). Replies never wait (see the
/// outbox).
pub struct Replies<'a> {
    pub(crate) outbox: &'a mut Outbox,
    pub(crate) speaks_warmgate: bool,
}

impl std::fmt::Debug for Replies<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replies")
            .field("speaks_warmgate", &self.speaks_warmgate)
            .finish_non_exhaustive()
    }
}

impl Replies<'_> {
    /// Queues a message for the client. `Err` when the client is gone.
    pub fn send(&mut self, message: Message) -> Result<(), Gone> {
        self.outbox.send(frame_of(message))
    }

    /// Queues a text message.
    pub fn text(&mut self, text: impl Into<String>) -> Result<(), Gone> {
        self.send(Message::Text(text.into()))
    }

    /// Queues an `error` frame of warmgate's protocol about one message
    /// (named by its `client_msg_id` when it has one); nothing for a
    /// client that does not speak warmgate.
    pub fn error(
        &mut self,
        code: ErrorCode,
        message: &str,
        client_msg_id: Option<&str>,
    ) -> Result<(), Gone> {
        if !self.speaks_warmgate {
            return Ok(());
        }
        let frame = ServerMessage::Error {
            code,
            message,
            client_msg_id,
        };
        self.text(frame.to_json())
    }

    /// True when the client gets warmgate's frames.
    pub fn speaks_warmgate(&self) -> bool {
        self.speaks_warmgate
    }
}

/// The frame that carries `message`.
pub(crate) fn frame_of(message: Message) -> Frame<'static> {
    match message {
        Message::Text(text) => Frame::text(Payload::Owned(text.into_bytes())),
        Message::Binary(bytes) => Frame::binary(Payload::Owned(bytes)),
    }
}
