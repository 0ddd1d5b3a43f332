//! The example end to end: a real client held while the "model" loads,
//! warmed, admitted at the flip, and answered by the service's handler,
//! the message it sent while held first.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{Message as WsMessage, http::HeaderValue};

use super::*;

async fn next_text<S>(client: &mut S) -> String
where
    S: futures_util::Stream<Item = Result<WsMessage, tokio_tungstenite::tungstenite::Error>>
        + Unpin,
{
    loop {
        match client.next().await.unwrap().unwrap() {
            WsMessage::Text(text) => return text.to_string(),
            WsMessage::Ping(_) | WsMessage::Pong(_) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_client_is_held_until_the_model_loads_then_answered_by_the_handler() {
    let handle = start_engine().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (routes, gate) = router(handle.clone());
    let app = routes.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("warmgate.v1"),
    );
    let (mut client, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let warming: serde_json::Value = serde_json::from_str(&next_text(&mut client).await).unwrap();
    assert_eq!(warming["type"], "warming");
    assert_eq!(warming["pending"][0], MODEL_LOADED);

    client
        .send(WsMessage::text("sent while held"))
        .await
        .unwrap();
    handle.set_signal(MODEL_LOADED, true, None).unwrap();
    let ready: serde_json::Value = serde_json::from_str(&next_text(&mut client).await).unwrap();
    assert_eq!(ready["type"], "ready");
    assert_eq!(next_text(&mut client).await, "you asked: sent while held");
    client.send(WsMessage::text("and now?")).await.unwrap();
    assert_eq!(next_text(&mut client).await, "you asked: and now?");

    // The drain: the client is told, and counted until it closes.
    handle.drain().unwrap();
    let draining: serde_json::Value = serde_json::from_str(&next_text(&mut client).await).unwrap();
    assert_eq!(draining["type"], "draining");
    assert_eq!(gate.counts().open(), 1);
}

#[tokio::test]
async fn the_probes_answer_from_the_same_readiness() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let handle = start_engine().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (routes, _gate) = router(handle.clone());
    let app = routes.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let status = |addr: SocketAddr| async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /readyz HTTP/1.1\r\nhost: example\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer.split(' ').nth(1).unwrap().to_owned()
    };
    assert_eq!(status(addr).await, "503");
    handle
        .set_signal_applied(MODEL_LOADED, true, None, std::time::Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(status(addr).await, "200");
}
