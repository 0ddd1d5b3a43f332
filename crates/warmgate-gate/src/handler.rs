//! An application from an async function: the seam for a Rust service
//! that embeds the gate. Each client the gate admits (after its hold) is
//! handed to the function as an [`AdmittedSocket`]: receive the client's
//! messages (those sent while it was held first), send it messages, close
//! it. The gate keeps the connection's rules meanwhile: pings, the slow
//! consumer rule, token expiry and the drain.
//!
//! ```no_run
//! use std::sync::Arc;
//! use warmgate_gate::{Gate, Message, handler};
//!
//! fn routes(gate: &Gate) -> axum::Router {
//!     gate.route("/ws", Arc::new(handler(|mut socket| async move {
//!         while let Some(message) = socket.recv().await {
//!             if socket.send(message).await.is_err() {
//!                 break;
//!             }
//!         }
//!     })))
//! }
//! ```
//!
//! Between the connection and the function are two bounded channels
//! ([`CHANNEL_CAPACITY`] messages each way), so a function that stops
//! reading pauses the client's reads, and one that sends faster than the
//! client reads waits in [`AdmittedSocket::send`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::mpsc;
use warmgate_auth::Identity;

use crate::app::{Application, BoxFuture, Client, Message, Outgoing, Replies, Selection, Session};
use crate::outbox::Gone;

/// How many messages wait in each direction between the connection and
/// the function: more than a held client can have buffered, so the replay
/// after admission always fits.
pub const CHANNEL_CAPACITY: usize = 64;

const _: () = assert!(CHANNEL_CAPACITY > crate::settings::MAX_BUFFERED_MESSAGES);

/// The close code when the function returns without closing: normal
/// closure (RFC 6455 section 7.4.1).
const CLOSE_NORMAL: u16 = 1000;

/// An [`Application`] that runs an async function per admitted client;
/// made by [`handler`].
pub struct Handler<F> {
    serve: Arc<F>,
    subprotocols: Vec<String>,
}

impl<F> std::fmt::Debug for Handler<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler")
            .field("subprotocols", &self.subprotocols)
            .finish_non_exhaustive()
    }
}

/// An application that hands each admitted client to `serve`. A client
/// that offers `warmgate.v1` also gets the gate's frames (`warming`,
/// `ready`, ...); one that does not is held transparently.
pub fn handler<F, Fut>(serve: F) -> Handler<F>
where
    F: Fn(AdmittedSocket) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Handler {
        serve: Arc::new(serve),
        subprotocols: Vec::new(),
    }
}

impl<F> Handler<F> {
    /// The application subprotocols the function speaks: the client's
    /// first offer among them is selected (RFC 6455 section 4.2.2) and
    /// given to the function as [`AdmittedSocket::subprotocol`].
    pub fn subprotocols<I, S>(mut self, subprotocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.subprotocols = subprotocols.into_iter().map(Into::into).collect();
        self
    }
}

impl<F, Fut> Application for Handler<F>
where
    F: Fn(AdmittedSocket) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    fn name(&self) -> &'static str {
        "handler"
    }

    fn select(&self, offered: &[&str], offers_warmgate: bool) -> Selection {
        Selection {
            subprotocol: offered
                .iter()
                .find(|offer| self.subprotocols.iter().any(|spoken| spoken == *offer))
                .map(|offer| (*offer).to_owned()),
            speaks_warmgate: offers_warmgate,
        }
    }

    fn open(&self, client: &Client<'_>) -> Box<dyn Session> {
        let (to_function, incoming) = mpsc::channel(CHANNEL_CAPACITY);
        let (outgoing, from_function) = mpsc::channel(CHANNEL_CAPACITY);
        let socket = AdmittedSocket {
            connection_id: client.connection_id.to_owned(),
            path: client.path.to_owned(),
            identity: client.identity.cloned(),
            subprotocol: client.subprotocol.map(str::to_owned),
            incoming,
            outgoing,
        };
        let serve = Arc::clone(&self.serve);
        Box::new(HandlerSession {
            start: Some(Box::new(move || {
                tokio::spawn(serve(socket));
            })),
            to_function: Some(to_function),
            permit: None,
            reserving: None,
            from_function,
        })
    }
}

/// An admitted client, as the function of [`handler`] sees it.
#[derive(Debug)]
pub struct AdmittedSocket {
    connection_id: String,
    path: String,
    identity: Option<Identity>,
    subprotocol: Option<String>,
    incoming: mpsc::Receiver<Message>,
    outgoing: mpsc::Sender<Outgoing>,
}

impl AdmittedSocket {
    /// The client's next message, in order (those it sent while held come
    /// first); `None` once the client has closed or the gate is closing it
    /// (drain, token expiry, a protocol error).
    pub async fn recv(&mut self) -> Option<Message> {
        self.incoming.recv().await
    }

    /// Sends the client a message, waiting while [`CHANNEL_CAPACITY`]
    /// messages wait for it already. `Err` once the connection is over.
    pub async fn send(&self, message: Message) -> Result<(), Gone> {
        self.outgoing
            .send(Outgoing::Message(message))
            .await
            .map_err(|_| Gone)
    }

    /// Closes the client with `code` (valid on the wire, RFC 6455 section
    /// 7.4.1) and `reason` (at most 123 bytes are sent).
    pub async fn close(self, code: u16, reason: &str) {
        let close = Outgoing::Close {
            code,
            reason: reason.to_owned(),
        };
        let _ = self.outgoing.send(close).await;
    }

    /// The connection's id, as in the `ready` frame and the span.
    pub fn connection_id(&self) -> &str {
        &self.connection_id
    }

    /// The path the client connected to.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Who the token said the client is; `None` without `[auth]`.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// The subprotocol selected for the client, one of
    /// [`Handler::subprotocols`].
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }
}

type Reserving = Pin<
    Box<dyn Future<Output = Result<mpsc::OwnedPermit<Message>, mpsc::error::SendError<()>>> + Send>,
>;

struct HandlerSession {
    /// Spawns the function; taken at admission.
    start: Option<Box<dyn FnOnce() + Send>>,
    /// `None` once the connection is closing: the function's `recv` ends.
    to_function: Option<mpsc::Sender<Message>>,
    /// Room for one message, reserved while the channel was full.
    permit: Option<mpsc::OwnedPermit<Message>>,
    reserving: Option<Reserving>,
    from_function: mpsc::Receiver<Outgoing>,
}

impl Session for HandlerSession {
    fn admit(&mut self) -> BoxFuture<'_, Result<(), crate::AdmitError>> {
        if let Some(start) = self.start.take() {
            start();
        }
        Box::pin(async { Ok(()) })
    }

    fn on_message(&mut self, message: Message, _replies: &mut Replies<'_>) -> Result<(), Gone> {
        // A function that no longer reads has ended; the message has no
        // one to go to, and the function's return closes the client.
        match self.permit.take() {
            Some(permit) => {
                permit.send(message);
            }
            None => {
                let full = self.to_function.as_ref().is_some_and(|to_function| {
                    matches!(
                        to_function.try_send(message),
                        Err(mpsc::error::TrySendError::Full(_))
                    )
                });
                if full {
                    // The gate reads the client only while `has_room`, and
                    // replays fewer held messages than the channel holds;
                    // a full channel here is a bug, said out loud.
                    tracing::warn!(
                        capacity = CHANNEL_CAPACITY,
                        "a client message found the handler's channel full and was dropped; this is a warmgate bug"
                    );
                }
            }
        }
        Ok(())
    }

    fn poll_outgoing(&mut self, cx: &mut Context<'_>) -> Poll<Outgoing> {
        if let Some(reserving) = &mut self.reserving {
            if let Poll::Ready(reserved) = reserving.as_mut().poll(cx) {
                self.reserving = None;
                self.permit = reserved.ok();
                return Poll::Ready(Outgoing::Room);
            }
        } else if !self.has_room()
            && let Some(to_function) = &self.to_function
        {
            self.reserving = Some(Box::pin(to_function.clone().reserve_owned()));
            cx.waker().wake_by_ref();
        }
        match self.from_function.poll_recv(cx) {
            Poll::Ready(Some(outgoing)) => Poll::Ready(outgoing),
            // The function returned: the client is closed normally.
            Poll::Ready(None) => Poll::Ready(Outgoing::Close {
                code: CLOSE_NORMAL,
                reason: String::new(),
            }),
            Poll::Pending => Poll::Pending,
        }
    }

    fn has_room(&self) -> bool {
        self.permit.is_some()
            || self
                .to_function
                .as_ref()
                .is_none_or(|to_function| to_function.capacity() > 0)
    }

    fn close(&mut self, _code: u16, _reason: &str) -> BoxFuture<'_, ()> {
        self.to_function = None;
        self.permit = None;
        self.reserving = None;
        Box::pin(async {})
    }
}
