//! The clients: WebSocket (tungstenite, independent of the servers'
//! fastwebsockets) and HTTP/1.1 (hyper), each on its own loopback TCP
//! connection with `TCP_NODELAY`; and [`Socket`], which lets a timed
//! scenario run with tungstenite or with the second WebSocket client in
//! `fast_client`, by [`ClientLibrary`].

use std::net::SocketAddr;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

pub(crate) type Ws = WebSocketStream<TcpStream>;

/// A `ws://HOST:PORT/PATH` or `http://HOST:PORT/PATH` URL, split.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    pub(crate) path: String,
}

impl Target {
    pub(crate) fn parse(url: &str) -> anyhow::Result<Target> {
        let rest = url
            .strip_prefix("ws://")
            .or_else(|| url.strip_prefix("http://"))
            .with_context(|| format!("`{url}`: expected ws://ADDR/PATH or http://ADDR/PATH"))?;
        let (addr, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, "/"),
        };
        Ok(Target {
            addr: addr
                .parse()
                .with_context(|| format!("`{url}`: `{addr}` is not an IP address and port"))?,
            path: path.to_owned(),
        })
    }
}

/// Small buffers: ten thousand clients in one process must stay light, and
/// every message here is a few hundred bytes.
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

/// Opens a WebSocket to `target`.
pub(crate) async fn connect(target: &Target) -> anyhow::Result<Ws> {
    let stream = TcpStream::connect(target.addr)
        .await
        .with_context(|| format!("cannot connect to {}", target.addr))?;
    stream.set_nodelay(true)?;
    let request = format!("ws://{}{}", target.addr, target.path).into_client_request()?;
    let (ws, _response) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config()))
            .await
            .context("the WebSocket handshake failed")?;
    Ok(ws)
}

/// Why [`connect_as`] got no WebSocket.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The TCP connection was not accepted (nothing listens).
    NoConnection(String),
    /// The server answered the upgrade with this status and body.
    Http { status: u16, body: String },
    /// The connection opened but the handshake broke off without an
    /// answer.
    Broken(String),
}

/// Opens a WebSocket to `target`, sending `Authorization: Bearer TOKEN`
/// when `bearer` is given, and tells a refusal apart from a broken
/// connection.
pub(crate) async fn connect_as(target: &Target, bearer: Option<&str>) -> Result<Ws, Refused> {
    let stream = TcpStream::connect(target.addr).await.map_err(|error| {
        Refused::NoConnection(format!("cannot connect to {}: {error}", target.addr))
    })?;
    let _ = stream.set_nodelay(true);
    let mut request = format!("ws://{}{}", target.addr, target.path)
        .into_client_request()
        .map_err(|error| Refused::Broken(format!("cannot build the request: {error}")))?;
    if let Some(token) = bearer {
        let value = format!("Bearer {token}").parse().map_err(|error| {
            Refused::Broken(format!("the token is not a header value: {error}"))
        })?;
        request.headers_mut().insert("authorization", value);
    }
    match tokio_tungstenite::client_async_with_config(request, stream, Some(config())).await {
        Ok((ws, _response)) => Ok(ws),
        Err(tungstenite::Error::Http(response)) => Err(Refused::Http {
            status: response.status().as_u16(),
            body: response
                .body()
                .as_deref()
                .map(|body| String::from_utf8_lossy(body).into_owned())
                .unwrap_or_default(),
        }),
        Err(error) => Err(Refused::Broken(format!("the handshake failed: {error}"))),
    }
}

/// Which WebSocket client a timed scenario measures with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ClientLibrary {
    /// tokio-tungstenite.
    Tungstenite,
    /// fastwebsockets' client handshake over hyper's HTTP/1.1 client.
    Fastwebsockets,
}

/// A WebSocket opened by either client, with the few operations the timed
/// scenarios need, each done the same way by both.
pub(crate) enum Socket {
    Tungstenite(Box<Ws>),
    Fastwebsockets(Box<crate::fast_client::Ws>),
}

impl Socket {
    /// Opens a WebSocket to `target` with `library` (see [`connect_as`]).
    pub(crate) async fn open(
        library: ClientLibrary,
        target: &Target,
        bearer: Option<&str>,
    ) -> Result<Socket, Refused> {
        Ok(match library {
            ClientLibrary::Tungstenite => {
                Socket::Tungstenite(Box::new(connect_as(target, bearer).await?))
            }
            ClientLibrary::Fastwebsockets => Socket::Fastwebsockets(Box::new(
                crate::fast_client::connect_as(target, bearer).await?,
            )),
        })
    }

    /// [`Socket::open`], with a refusal as an error.
    pub(crate) async fn connect(library: ClientLibrary, target: &Target) -> anyhow::Result<Socket> {
        Socket::open(library, target, None)
            .await
            .map_err(Refused::into_error)
    }

    /// The `type` of the next text message (see [`next_type`]).
    pub(crate) async fn next_type(&mut self) -> anyhow::Result<String> {
        match self {
            Socket::Tungstenite(ws) => next_type(ws).await,
            Socket::Fastwebsockets(ws) => {
                let text = crate::fast_client::next_text(ws).await?;
                let value: serde_json::Value = serde_json::from_slice(&text)
                    .with_context(|| format!("not JSON: {}", String::from_utf8_lossy(&text)))?;
                Ok(value["type"].as_str().unwrap_or_default().to_owned())
            }
        }
    }

    /// Reads until a message of type `kind` arrives.
    pub(crate) async fn until_type(&mut self, kind: &str) -> anyhow::Result<()> {
        loop {
            if self.next_type().await? == kind {
                return Ok(());
            }
        }
    }

    /// Sends `payload` as a text message and waits for its echo.
    pub(crate) async fn echo_once(&mut self, payload: &str) -> anyhow::Result<()> {
        match self {
            Socket::Tungstenite(ws) => {
                ws.send(Message::text(payload)).await?;
                loop {
                    match ws.next().await {
                        Some(Ok(Message::Text(text))) if text.len() == payload.len() => {
                            return Ok(());
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        Some(Ok(other)) => bail!("expected the echo, got {other:?}"),
                        Some(Err(error)) => return Err(error.into()),
                        None => bail!("the connection ended"),
                    }
                }
            }
            Socket::Fastwebsockets(ws) => crate::fast_client::echo_once(ws, payload).await,
        }
    }

    /// Starts a client-initiated close without waiting for the answer.
    pub(crate) async fn close(&mut self) {
        match self {
            // The inherent close, not `SinkExt::close` on the box.
            Socket::Tungstenite(ws) => {
                let _ = Ws::close(ws, None).await;
            }
            Socket::Fastwebsockets(ws) => crate::fast_client::close(ws).await,
        }
    }
}

impl Refused {
    fn into_error(self) -> anyhow::Error {
        match self {
            Refused::Http { status, body } => {
                anyhow::anyhow!("the upgrade was refused with {status}: {body}")
            }
            Refused::NoConnection(why) | Refused::Broken(why) => anyhow::anyhow!(why),
        }
    }
}

/// Closes the connection from our side and reads until the server has
/// closed too (at most `CLOSE_WAIT`), so that the server has let go of it
/// by the time this returns. Returns the close code the server echoed.
pub(crate) async fn leave(ws: &mut Ws) -> Option<u16> {
    const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
    let _ = ws.close(None).await;
    let drained = async {
        let mut code = None;
        while let Some(Ok(message)) = ws.next().await {
            if let Message::Close(frame) = message {
                code = frame.map(|frame| u16::from(frame.code));
            }
        }
        code
    };
    tokio::time::timeout(CLOSE_WAIT, drained)
        .await
        .ok()
        .flatten()
}

/// The `type` of the next text message, skipping pings and pongs.
pub(crate) async fn next_type(ws: &mut Ws) -> anyhow::Result<String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                let value: serde_json::Value =
                    serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))?;
                return Ok(value["type"].as_str().unwrap_or_default().to_owned());
            }
            Some(Ok(Message::Close(frame))) => bail!("closed by the server: {frame:?}"),
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(error.into()),
            None => bail!("the connection ended"),
        }
    }
}

/// Reads until a message of type `kind` arrives.
pub(crate) async fn until_type(ws: &mut Ws, kind: &str) -> anyhow::Result<()> {
    loop {
        if next_type(ws).await? == kind {
            return Ok(());
        }
    }
}

/// One HTTP connection that sends requests one after another.
pub(crate) struct HttpConnection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: String,
}

impl HttpConnection {
    pub(crate) async fn open(addr: SocketAddr) -> anyhow::Result<HttpConnection> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(HttpConnection {
            sender,
            host: addr.to_string(),
        })
    }

    /// Sends one request and reads the whole answer; returns its status.
    pub(crate) async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: &str,
    ) -> anyhow::Result<u16> {
        self.sender.ready().await?;
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_owned())))?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        response.into_body().collect().await?;
        Ok(status)
    }
}

/// `POST url` with a JSON body on a new connection; fails unless 2xx.
pub(crate) async fn post(url: &str, body: &str) -> anyhow::Result<()> {
    let target = Target::parse(url)?;
    let mut connection = HttpConnection::open(target.addr).await?;
    let status = connection.send("POST", &target.path, body).await?;
    if !(200..300).contains(&status) {
        bail!("POST {url} answered {status}");
    }
    Ok(())
}
