//! The demo chat application behind the gate: rooms in this process, and
//! the chat's frames on top of the warmgate protocol.
//!
//! Reading order: `protocol` is the chat's frames; `rooms` keeps the rooms
//! (`ChatSession`, `InProcessRooms`); `app` is the [`Chat`] application the
//! gate hands each admitted client to.

#![forbid(unsafe_code)]

mod app;
pub mod protocol;
mod rooms;

pub use self::app::Chat;
pub use self::rooms::{ChatSender, ChatSession, InProcessRooms, PublishedChat};
