//! Helpers for the end-to-end tests: start the real warmgate program as a
//! child process, talk HTTP, WebSocket and Server-Sent Events to it, and
//! give it configs built from parts.
//!
//! Every wait here waits on an event (a line printed, a frame received, a
//! process exiting) and is bounded by [`PATIENCE`] only so that a broken
//! build fails instead of hanging.
//!
//! Reading order: [`Plan`] (the config), [`Gateway`] (the running program),
//! then its clients: [`Reply`] for HTTP, [`EventStream`] for the event
//! stream, [`WsClient`] for WebSockets. The stand-ins for what warmgate
//! talks to are the public modules: the proxy's backend, a JWKS server and
//! an OTLP receiver.

#![allow(clippy::unwrap_used)]

mod events;
mod fixtures;
mod gateway;
mod http;
mod plan;
mod process;
mod wait;
mod websocket;

pub mod backend;
pub mod jwks;
pub mod otlp;
pub mod proxy;

pub use self::events::{EventStream, ServerSentEvent};
pub use self::fixtures::{InScratch, free_port, new_postgres, new_redis, scratch_dir};
pub use self::gateway::{Gateway, GatewayBuilder};
pub use self::http::{Reply, http_client};
pub use self::plan::{Check, Plan, Table, TomlValue};
pub use self::process::{program, refused_start};
pub use self::wait::{PATIENCE, blocking, within};
pub use self::websocket::{CloseCode, Message, WsClient, raw_websocket_upgrade};
