//! The chat's rooms.
//!
//! [`ChatSession`] is where the rooms could live elsewhere (a shared
//! store); [`InProcessRooms`] is the one warmgate ships: rooms
//! that live in this process, each a broadcast channel of ready-to-send
//! frames, so a message is serialised once however many members it has.
//!
//! A client resends its un-acked messages after a reconnect, with the same
//! `client_msg_id`. Each room remembers the last [`RECENT_IDS_PER_ROOM`]
//! ids it accepted, and a message whose id it has seen is acked again with
//! the first one's server id but not delivered twice. For an authenticated
//! sender the ids are the sender's own: another user reusing an id (which
//! `chat` frames show to the whole room) cannot suppress its messages.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::broadcast;

use crate::protocol::ChatFrame;

/// A message accepted into a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedChat {
    /// The server's id for the message, echoed in the sender's `ack`.
    pub id: String,
    /// True when the room had already accepted a message with this
    /// `client_msg_id`: `id` is that message's, and nothing was delivered.
    pub duplicate: bool,
}

/// Who sends a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatSender<'a> {
    /// The `from` of the message: the token's `sub`, or the connection id
    /// of an anonymous client.
    pub name: &'a str,
    /// True when `name` is an authenticated identity, stable across
    /// reconnects, that `client_msg_id`s can be scoped to. An anonymous
    /// client's name changes on every connection, so its ids are looked up
    /// room-wide.
    pub authenticated: bool,
}

/// The application session that admitted clients talk to.
pub trait ChatSession: Send + Sync + 'static {
    /// Subscribes to a room's frames (JSON `chat` frames, ready to send).
    fn join(&self, room: &str) -> broadcast::Receiver<Arc<str>>;

    /// Publishes `text` from `sender` to every member of `room`, unless the
    /// room already accepted a message with the same `client_msg_id` from
    /// the same authenticated sender (or from anyone, for an anonymous one).
    fn publish(
        &self,
        room: &str,
        sender: ChatSender<'_>,
        text: &str,
        client_msg_id: Option<&str>,
    ) -> PublishedChat;
}

/// How many frames a room buffers for a member that reads slowly (or is
/// still held) before that member starts missing them (and is told so).
const ROOM_BUFFER: usize = 1024;

/// How many `client_msg_id`s a room remembers to drop resent duplicates:
/// far more than a client keeps un-acked across one reconnect.
pub(crate) const RECENT_IDS_PER_ROOM: usize = 4096;

/// Chat rooms in this process.
#[derive(Debug, Default)]
pub struct InProcessRooms {
    rooms: Mutex<HashMap<String, Room>>,
    next_id: AtomicU64,
}

#[derive(Debug)]
struct Room {
    sender: broadcast::Sender<Arc<str>>,
    /// `client_msg_id` → server id, for the last accepted messages, oldest
    /// first in `order`.
    recent: HashMap<String, String>,
    order: VecDeque<String>,
}

impl Room {
    fn new() -> Room {
        Room {
            sender: broadcast::channel(ROOM_BUFFER).0,
            recent: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn remember(&mut self, client_msg_id: &str, id: &str) {
        if self.order.len() == RECENT_IDS_PER_ROOM
            && let Some(oldest) = self.order.pop_front()
        {
            self.recent.remove(&oldest);
        }
        self.order.push_back(client_msg_id.to_owned());
        self.recent.insert(client_msg_id.to_owned(), id.to_owned());
    }
}

impl InProcessRooms {
    pub fn new() -> Self {
        Self::default()
    }

    fn with_room<T>(&self, room: &str, action: impl FnOnce(&mut Room) -> T) -> T {
        let mut rooms = self
            .rooms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Rooms nobody listens to any more are forgotten, so the map stays
        // as small as the set of rooms in use.
        if rooms.len() > 64 {
            rooms.retain(|_, room| room.sender.receiver_count() > 0);
        }
        action(rooms.entry(room.to_owned()).or_insert_with(Room::new))
    }
}

impl ChatSession for InProcessRooms {
    fn join(&self, room: &str) -> broadcast::Receiver<Arc<str>> {
        self.with_room(room, |room| room.sender.subscribe())
    }

    fn publish(
        &self,
        room: &str,
        sender: ChatSender<'_>,
        text: &str,
        client_msg_id: Option<&str>,
    ) -> PublishedChat {
        let from = sender.name;
        // A NUL cannot be in a `sub` (control characters are refused), so
        // the scoped key cannot collide with another sender's.
        let dedup_key = client_msg_id.map(|id| {
            if sender.authenticated {
                format!("{from}\u{0}{id}")
            } else {
                id.to_owned()
            }
        });
        let ts_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
        // The id check, the remembering and the send happen under one lock,
        // so two copies of one message racing in never both go out.
        self.with_room(room, |members| {
            if let Some(id) = dedup_key.as_ref().and_then(|key| members.recent.get(key)) {
                return PublishedChat {
                    id: id.clone(),
                    duplicate: true,
                };
            }
            let id = format!("m{}", self.next_id.fetch_add(1, Ordering::Relaxed) + 1);
            let frame = ChatFrame::Chat {
                room,
                id: &id,
                from,
                text,
                ts_ms,
                client_msg_id,
            }
            .to_json();
            if let Some(key) = &dedup_key {
                members.remember(key, &id);
            }
            // No member is not an error: the sender is always a member, and
            // a room may empty between its send and this one.
            let _ = members.sender.send(Arc::from(frame));
            PublishedChat {
                id,
                duplicate: false,
            }
        })
    }
}

#[cfg(test)]
mod tests;
