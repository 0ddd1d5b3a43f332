//! WebSockets to a running [`Gateway`]: [`WsClient`], a client on
//! tungstenite (an implementation independent of the server's) with helpers
//! that read the warmgate protocol, and [`raw_websocket_upgrade`], for
//! frames no library would send.
//!
//! Plain HTTP is `http.rs`'s; the frames' meaning is each test's.

use futures_util::StreamExt as _;
use serde_json::Value;
pub use tokio_tungstenite::tungstenite::Message;
pub use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::{Gateway, within};

/// A WebSocket client (tungstenite: an implementation independent of the
/// server's), with helpers that read the warmgate protocol.
pub struct WsClient {
    pub(crate) stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    /// The subprotocol the server selected, if any.
    pub subprotocol: Option<String>,
}

impl std::fmt::Debug for WsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsClient")
            .field("subprotocol", &self.subprotocol)
            .finish_non_exhaustive()
    }
}

/// Completes a WebSocket upgrade on `stream` (a raw client, for frames no
/// library would send) and reads the 101 response; panics on any other.
pub async fn raw_websocket_upgrade(
    mut stream: tokio::net::TcpStream,
    path: &str,
) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        within("the 101 response", stream.read_exact(&mut byte))
            .await
            .unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
}

impl Gateway {
    /// Opens a WebSocket on the public listener, offering `warmgate.v1`.
    pub async fn ws(&self, path: &str) -> WsClient {
        self.ws_with(path, &["warmgate.v1"]).await
    }

    /// Opens a WebSocket offering the given subprotocols (none is fine).
    pub async fn ws_with(&self, path: &str, subprotocols: &[&str]) -> WsClient {
        self.ws_with_headers(path, subprotocols, &[]).await
    }

    /// Opens a WebSocket offering the given subprotocols, with extra
    /// request headers (a `traceparent`, say).
    pub async fn ws_with_headers(
        &self,
        path: &str,
        subprotocols: &[&str],
        headers: &[(&'static str, &str)],
    ) -> WsClient {
        match self.try_ws(path, subprotocols, headers).await {
            Ok(client) => client,
            Err((status, body)) => panic!("the upgrade was refused with {status}: {body}"),
        }
    }

    /// Like [`Gateway::ws_with_headers`], but a refused upgrade is the
    /// error: its HTTP status and its body (JSON when it is JSON).
    pub async fn try_ws(
        &self,
        path: &str,
        subprotocols: &[&str],
        headers: &[(&'static str, &str)],
    ) -> Result<WsClient, (u16, Value)> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!("ws://{}{path}", self.public);
        let mut request = url.into_client_request().unwrap();
        if !subprotocols.is_empty() {
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                subprotocols.join(", ").parse().unwrap(),
            );
        }
        for (name, value) in headers {
            request.headers_mut().insert(*name, value.parse().unwrap());
        }
        let connected = within(
            "the WebSocket handshake",
            tokio_tungstenite::connect_async(request),
        )
        .await;
        let (stream, response) = match connected {
            Ok(connected) => connected,
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                let body = response.body().clone().unwrap_or_default();
                let text = String::from_utf8_lossy(&body).into_owned();
                let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
                return Err((status, value));
            }
            Err(other) => panic!("the WebSocket handshake failed: {other}"),
        };
        let subprotocol = response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .map(|value| value.to_str().unwrap().to_owned());
        Ok(WsClient {
            stream,
            subprotocol,
        })
    }
}

impl WsClient {
    /// The next message from the server, skipping pings and pongs; `None`
    /// once the stream ends.
    pub async fn next_message(&mut self) -> Option<Message> {
        within("the next WebSocket message", async {
            loop {
                match self.stream.next().await {
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(message)) => return Some(message),
                    Some(Err(_)) | None => return None,
                }
            }
        })
        .await
    }

    /// The next text frame, parsed as JSON.
    pub async fn next_json(&mut self) -> Value {
        match self.next_message().await {
            Some(Message::Text(text)) => serde_json::from_str(&text).unwrap(),
            other => panic!("expected a JSON text frame, got {other:?}"),
        }
    }

    /// Reads JSON frames until one has `"type": kind`, returning them all.
    pub async fn until_type(&mut self, kind: &str) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let message = self.next_json().await;
            let done = message["type"] == kind;
            seen.push(message);
            if done {
                return seen;
            }
        }
    }

    /// Reads until the server's close frame; its code and reason.
    pub async fn close_frame(&mut self) -> (u16, String) {
        loop {
            match self.next_message().await {
                Some(Message::Close(Some(frame))) => {
                    return (u16::from(frame.code), frame.reason.to_string());
                }
                Some(Message::Close(None)) => return (1005, String::new()),
                Some(_) => continue,
                None => panic!("the connection ended without a close frame"),
            }
        }
    }

    pub async fn send(&mut self, message: Message) {
        use futures_util::SinkExt;
        within("a WebSocket send", self.stream.send(message))
            .await
            .unwrap();
    }

    pub async fn send_json(&mut self, value: Value) {
        self.send(Message::text(value.to_string())).await;
    }

    /// Sends a raw frame, for breaking the protocol on purpose.
    pub async fn send_frame(
        &mut self,
        frame: tokio_tungstenite::tungstenite::protocol::frame::Frame,
    ) {
        self.send(Message::Frame(frame)).await;
    }
}
