//! The WebSocket gate: every client that opens a WebSocket always knows
//! where it stands.
//!
//! - Ready gate: the client is admitted at once (`ready`, `waited_ms` 0).
//! - Not ready: the client is held and streamed `warming` frames until the
//!   phase flips (then `ready`), or `hold_timeout` passes (then
//!   `unavailable` with a jittered retry hint, and close 1013).
//! - Admitted: the client gets `readiness` pushes, and `draining` before
//!   close 1001 at shutdown.
//!
//! A connection handler never waits on a check: admission is one snapshot
//! read, and a held client parks on one `watch` receiver and its timers.
//!
//! Reading order: [`protocol`] is the wire format; `app` is the seam
//! ([`Application`], [`Session`]) where an admitted client meets what it
//! talks to; `upgrade` checks the HTTP handshake and serves each route
//! ([`Gate::route`]); `hold` is the pure rules of a held client;
//! `connection` runs one client from upgrade to close; `frames` reads and
//! validates frames; `outbox` writes them under a deadline; `peer` is one
//! WebSocket end (a client, or a backend in proxy mode); `echo` is the
//! smallest application; `handler` runs an async function per admitted
//! client, for services that embed the gate; `tracker` counts connections for capacity and
//! drain.

#![forbid(unsafe_code)]

mod app;
mod connection;
mod echo;
mod frames;
mod handler;
mod hold;
pub mod measure;
mod outbox;
mod peer;
pub mod protocol;
mod rate_limit;
mod settings;
mod trace_context;
mod tracker;
mod upgrade;

pub use self::app::{
    AdmitError, Application, BoxFuture, Client, Message, Outgoing, Replies, Selection, Session,
    Summary,
};
pub use self::echo::Echo;
pub use self::handler::{AdmittedSocket, CHANNEL_CAPACITY, Handler, handler};
pub use self::outbox::{Gone as ClientGone, RoomSignal};
pub use self::peer::{Incoming, Peer};
pub use self::settings::GateSettings;
pub use self::tracker::ConnectionCounts;
pub use self::upgrade::{
    Gate, HANDSHAKE_REFUSAL_REASONS, Refusal, SUBPROTOCOL, asks_for_websocket, check_handshake,
};
