//! [`Chat`]: the chat as an application of the gate. Each admitted client
//! gets a session that joins rooms, publishes its messages, acks them, and
//! yields the frames of the rooms it is in.
//!
//! A client is in `lobby` from its upgrade on, held or not: clients held
//! together are released together, and a message one of them sends right
//! after `ready` must reach the others whatever order their tasks run in.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::Stream;
use tokio_stream::StreamMap;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use warmgate_gate::protocol::ErrorCode;
use warmgate_gate::{
    Application, Client, ClientGone, Message, Outgoing, Replies, Selection, Session,
};

use crate::protocol::{ChatFrame, ClientMessage, DEFAULT_ROOM};
use crate::rooms::{ChatSender, ChatSession};

/// The most rooms one connection may be in.
const MAX_ROOMS_PER_CONNECTION: usize = 16;

/// The chat application over a set of rooms. Its clients always speak the
/// warmgate protocol (with or without offering `warmgate.v1`), and are
/// held to the gate's per-connection message rate limit.
#[derive(Clone)]
pub struct Chat {
    rooms: Arc<dyn ChatSession>,
}

impl std::fmt::Debug for Chat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chat").finish_non_exhaustive()
    }
}

impl Chat {
    /// The chat over `rooms`.
    pub fn new(rooms: Arc<dyn ChatSession>) -> Self {
        Self { rooms }
    }
}

impl Application for Chat {
    fn name(&self) -> &'static str {
        "chat"
    }

    fn select(&self, _offered: &[&str], _offers_warmgate: bool) -> Selection {
        Selection {
            subprotocol: None,
            speaks_warmgate: true,
        }
    }

    fn open(&self, client: &Client<'_>) -> Box<dyn Session> {
        let mut joined = StreamMap::new();
        joined.insert(
            DEFAULT_ROOM.to_owned(),
            BroadcastStream::new(self.rooms.join(DEFAULT_ROOM)),
        );
        let (name, authenticated) = match client.identity {
            Some(identity) => (identity.subject.clone(), true),
            None => (client.connection_id.to_owned(), false),
        };
        Box::new(ChatConnection {
            rooms: Arc::clone(&self.rooms),
            joined,
            name,
            authenticated,
        })
    }

    fn limits_messages(&self) -> bool {
        true
    }
}

/// One client's chat.
struct ChatConnection {
    rooms: Arc<dyn ChatSession>,
    joined: StreamMap<String, BroadcastStream<Arc<str>>>,
    /// The `from` of its messages: the token's `sub`, or the connection id.
    name: String,
    authenticated: bool,
}

impl ChatConnection {
    /// Joins `room` unless already in it; `Ok(false)` when refused (and
    /// the client told).
    fn join(&mut self, room: &str, replies: &mut Replies<'_>) -> Result<bool, ClientGone> {
        if self.joined.contains_key(room) {
            return Ok(true);
        }
        if self.joined.len() >= MAX_ROOMS_PER_CONNECTION {
            let message =
                format!("a connection may be in at most {MAX_ROOMS_PER_CONNECTION} rooms");
            replies.error(ErrorCode::InvalidMessage, &message, None)?;
            return Ok(false);
        }
        self.joined
            .insert(room.to_owned(), BroadcastStream::new(self.rooms.join(room)));
        Ok(true)
    }

    fn on_text(&mut self, text: &str, replies: &mut Replies<'_>) -> Result<(), ClientGone> {
        match ClientMessage::parse(text) {
            Err(message) => replies.error(ErrorCode::InvalidMessage, &message, None),
            Ok(ClientMessage::Join { room }) => {
                if !self.join(&room, replies)? {
                    return Ok(());
                }
                replies.text(ChatFrame::Joined { room: &room }.to_json())
            }
            Ok(ClientMessage::Chat {
                room,
                text,
                client_msg_id,
            }) => {
                if !self.join(&room, replies)? {
                    return Ok(());
                }
                let sender = ChatSender {
                    name: &self.name,
                    authenticated: self.authenticated,
                };
                let published = self
                    .rooms
                    .publish(&room, sender, &text, client_msg_id.as_deref());
                if published.duplicate {
                    tracing::debug!(
                        room,
                        client_msg_id = client_msg_id.as_deref(),
                        id = %published.id,
                        "a resent chat message was already in the room; acked again, not delivered twice"
                    );
                }
                let ack = ChatFrame::Ack {
                    client_msg_id: client_msg_id.as_deref(),
                    id: &published.id,
                };
                replies.text(ack.to_json())
            }
        }
    }
}

impl Session for ChatConnection {
    fn on_message(
        &mut self,
        message: Message,
        replies: &mut Replies<'_>,
    ) -> Result<(), ClientGone> {
        match message {
            Message::Text(text) => self.on_text(&text, replies),
            Message::Binary(_) => replies.error(
                ErrorCode::UnsupportedBinary,
                "binary frames are not part of the warmgate protocol; send JSON text frames",
                None,
            ),
        }
    }

    fn poll_outgoing(&mut self, cx: &mut Context<'_>) -> Poll<Outgoing> {
        let Poll::Ready(Some((room, frame))) = Pin::new(&mut self.joined).poll_next(cx) else {
            // No room left (a room's sender is never dropped while the
            // rooms live) or nothing yet: nothing to send.
            return Poll::Pending;
        };
        let text = match frame {
            Ok(frame) => frame.to_string(),
            Err(BroadcastStreamRecvError::Lagged(n_missed)) => {
                let message = format!(
                    "missed {n_missed} messages in room `{room}`: more came, while this connection was held or read slowly, than the room buffers"
                );
                warmgate_gate::protocol::ServerMessage::Error {
                    code: ErrorCode::Lagged,
                    message: &message,
                    client_msg_id: None,
                }
                .to_json()
            }
        };
        Poll::Ready(Outgoing::Message(Message::Text(text)))
    }
}

use std::pin::Pin;
