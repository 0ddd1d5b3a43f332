//! The chat application behind `/ws`.
//!
//! [`ChatSession`] is the seam where a real deployment plugs in its own
//! application session; [`InProcessRooms`] is the one warmgate ships: rooms
//! that live in this process, each a broadcast channel of ready-to-send
//! frames, so a message is serialised once however many members it has.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::broadcast;

use crate::protocol::ServerMessage;

/// A message accepted into a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedChat {
    /// The server's id for the message, echoed in the sender's `ack`.
    pub id: String,
}

/// The application session that admitted clients talk to.
pub trait ChatSession: Send + Sync + 'static {
    /// Subscribes to a room's frames (JSON `chat` frames, ready to send).
    fn join(&self, room: &str) -> broadcast::Receiver<Arc<str>>;

    /// Publishes `text` from `from` to every member of `room`.
    fn publish(&self, room: &str, from: &str, text: &str) -> PublishedChat;
}

/// How many frames a room buffers for a member that reads slowly before
/// that member starts missing them (and is told so).
const ROOM_BUFFER: usize = 1024;

/// Chat rooms in this process.
#[derive(Debug, Default)]
pub struct InProcessRooms {
    rooms: Mutex<HashMap<String, broadcast::Sender<Arc<str>>>>,
    next_id: AtomicU64,
}

impl InProcessRooms {
    pub fn new() -> Self {
        Self::default()
    }

    fn sender(&self, room: &str) -> broadcast::Sender<Arc<str>> {
        let mut rooms = self
            .rooms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Rooms nobody listens to any more are forgotten, so the map stays
        // as small as the set of rooms in use.
        if rooms.len() > 64 {
            rooms.retain(|_, sender| sender.receiver_count() > 0);
        }
        rooms
            .entry(room.to_owned())
            .or_insert_with(|| broadcast::channel(ROOM_BUFFER).0)
            .clone()
    }
}

impl ChatSession for InProcessRooms {
    fn join(&self, room: &str) -> broadcast::Receiver<Arc<str>> {
        self.sender(room).subscribe()
    }

    fn publish(&self, room: &str, from: &str, text: &str) -> PublishedChat {
        let id = format!("m{}", self.next_id.fetch_add(1, Ordering::Relaxed) + 1);
        let ts_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
        let frame = ServerMessage::Chat {
            room,
            id: &id,
            from,
            text,
            ts_ms,
        }
        .to_json();
        // No member is not an error: the sender is always a member, and a
        // room may empty between its send and this one.
        let _ = self.sender(room).send(Arc::from(frame));
        PublishedChat { id }
    }
}
