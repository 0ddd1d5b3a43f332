//! The connection's IO loop around the hold rules, in paused time, with a
//! scripted application whose start the test controls: a real gate on a
//! loopback port, a real client, and the clock jumping only when every
//! task waits.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use warmgate_auth::Authenticator;
use warmgate_core::{CheckSpec, PhaseSpec, Plan};
use warmgate_engine::{EngineBuilder, EngineSettings, ReadinessHandle};

use crate::app::{
    AdmitError, Application, BoxFuture, Client, Message, Outgoing, Replies, Selection, Session,
};
use crate::outbox::Gone;
use crate::protocol::UnavailableReason;
use crate::{Gate, GateSettings};

const SIGNAL: &str = "backend";

/// What the test sees of the scripted application.
struct Script {
    /// Each session's start waits for a value from the test.
    starts: mpsc::UnboundedSender<oneshot::Sender<Result<(), AdmitError>>>,
    /// Every message a session received, in order.
    received: mpsc::UnboundedSender<Message>,
}

struct Scripted(Arc<Mutex<Script>>);

impl Application for Scripted {
    fn name(&self) -> &'static str {
        "scripted"
    }

    fn select(&self, _offered: &[&str], offers_warmgate: bool) -> Selection {
        Selection {
            subprotocol: None,
            speaks_warmgate: offers_warmgate,
        }
    }

    fn open(&self, _client: &Client<'_>) -> Box<dyn Session> {
        Box::new(ScriptedSession(Arc::clone(&self.0)))
    }
}

struct ScriptedSession(Arc<Mutex<Script>>);

impl Session for ScriptedSession {
    fn admit(&mut self) -> BoxFuture<'_, Result<(), AdmitError>> {
        let (tx, rx) = oneshot::channel();
        self.0.lock().unwrap().starts.send(tx).unwrap();
        Box::pin(async move { rx.await.unwrap() })
    }

    fn on_message(&mut self, message: Message, replies: &mut Replies<'_>) -> Result<(), Gone> {
        self.0
            .lock()
            .unwrap()
            .received
            .send(message.clone())
            .unwrap();
        replies.send(message)
    }

    fn poll_outgoing(&mut self, _cx: &mut Context<'_>) -> Poll<Outgoing> {
        Poll::Pending
    }
}

struct Harness {
    addr: SocketAddr,
    handle: ReadinessHandle,
    starts: mpsc::UnboundedReceiver<oneshot::Sender<Result<(), AdmitError>>>,
    received: mpsc::UnboundedReceiver<Message>,
}

async fn harness() -> Harness {
    let plan = Plan::new(
        vec![PhaseSpec {
            name: "backend".into(),
            checks: vec![CheckSpec::new(SIGNAL, "signal").thresholds(1, 1)],
        }],
        Duration::from_secs(3600),
    )
    .unwrap();
    let handle = EngineBuilder::new(plan, EngineSettings::default())
        .signal(SIGNAL)
        .unwrap()
        .spawn()
        .unwrap();
    let (starts_tx, starts) = mpsc::unbounded_channel();
    let (received_tx, received) = mpsc::unbounded_channel();
    let script = Arc::new(Mutex::new(Script {
        starts: starts_tx,
        received: received_tx,
    }));
    let gate = Gate::new(
        handle.clone(),
        GateSettings::default(),
        Authenticator::disabled(),
    );
    let router = gate.route("/ws", Arc::new(Scripted(script)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    Harness {
        addr,
        handle,
        starts,
        received,
    }
}

type Client_ =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(addr: SocketAddr, warmgate: bool) -> Client_ {
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    if warmgate {
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("warmgate.v1"),
        );
    }
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

/// The next frame: a JSON value for text, or the close frame.
async fn next(client: &mut Client_) -> Result<serde_json::Value, Option<CloseFrame>> {
    loop {
        match client.next().await {
            Some(Ok(WsMessage::Text(text))) => {
                return Ok(serde_json::from_str(&text)
                    .unwrap_or_else(|_| serde_json::Value::String(text.to_string())));
            }
            Some(Ok(WsMessage::Close(frame))) => return Err(frame),
            Some(Ok(_)) => {}
            Some(Err(WsError::ConnectionClosed)) | None => return Err(None),
            Some(Err(error)) => panic!("{error}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_held_client_is_warmed_each_second_while_its_application_starts_then_admitted() {
    let mut harness = harness().await;
    let mut client = connect(harness.addr, true).await;
    assert_eq!(next(&mut client).await.unwrap()["type"], "warming");
    client.send(WsMessage::text("first")).await.unwrap();
    client.send(WsMessage::text("second")).await.unwrap();
    assert_eq!(next(&mut client).await.unwrap()["type"], "warming");

    harness.handle.set_signal(SIGNAL, true, None).unwrap();
    // The gate admits traffic: the application starts, and the client
    // stays held (and warmed) until it has.
    let start = harness.starts.recv().await.unwrap();
    let warming = next(&mut client).await.unwrap();
    assert_eq!(warming["type"], "warming");
    assert_eq!(warming["state"], "ready");
    start.send(Ok(())).unwrap();
    assert_eq!(next(&mut client).await.unwrap()["type"], "ready");
    // What it sent while held reaches the application first, in order.
    assert_eq!(next(&mut client).await.unwrap(), "first");
    assert_eq!(next(&mut client).await.unwrap(), "second");
    assert_eq!(
        harness.received.recv().await.unwrap(),
        Message::Text("first".into())
    );
    assert_eq!(
        harness.received.recv().await.unwrap(),
        Message::Text("second".into())
    );
}

#[tokio::test(start_paused = true)]
async fn an_application_that_cannot_start_gets_the_client_told_why_and_closed_1013() {
    let mut harness = harness().await;
    harness.handle.set_signal(SIGNAL, true, None).unwrap();
    harness
        .handle
        .subscribe()
        .wait_for(|snapshot| snapshot.state.admits_traffic())
        .await
        .unwrap();
    for warmgate in [true, false] {
        let mut client = connect(harness.addr, warmgate).await;
        let start = harness.starts.recv().await.unwrap();
        start
            .send(Err(AdmitError {
                reason: UnavailableReason::UpstreamUnavailable,
                detail: "refused".into(),
            }))
            .unwrap();
        if warmgate {
            let unavailable = next(&mut client).await.unwrap();
            assert_eq!(unavailable["type"], "unavailable");
            assert_eq!(unavailable["reason"], "upstream_unavailable");
        }
        let close = next(&mut client).await.unwrap_err().unwrap();
        assert_eq!(
            close.code,
            CloseCode::Again,
            "warmgate.v1 offered: {warmgate}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_hold_deadline_refuses_a_client_the_gate_never_admitted_and_its_application_never_starts()
 {
    let mut harness = harness().await;
    let mut client = connect(harness.addr, true).await;
    let started = tokio::time::Instant::now();
    let mut n_warming = 0;
    let refused = loop {
        let frame = next(&mut client).await.unwrap();
        if frame["type"] != "warming" {
            break frame;
        }
        n_warming += 1;
    };
    assert_eq!(refused["type"], "unavailable");
    assert_eq!(refused["reason"], "hold_timeout");
    // One at once, then one a second until the 5 s deadline.
    assert_eq!(n_warming, 5);
    assert_eq!(started.elapsed(), GateSettings::default().hold_timeout);
    assert!(harness.starts.try_recv().is_err(), "never started");
}

#[tokio::test(start_paused = true)]
async fn a_transparent_client_loses_nothing_it_sends_while_its_application_starts() {
    let mut harness = harness().await;
    harness.handle.set_signal(SIGNAL, true, None).unwrap();
    harness
        .handle
        .subscribe()
        .wait_for(|snapshot| snapshot.state.admits_traffic())
        .await
        .unwrap();
    let mut client = connect(harness.addr, false).await;
    let start = harness.starts.recv().await.unwrap();
    // More than the hold buffer takes, in messages and in bytes: it cannot
    // be told `buffer_full`, so the gate stops reading it instead.
    let big = "x".repeat(60 * 1024);
    let mut sent = Vec::new();
    for n in 0..40 {
        sent.push(format!("m{n}"));
    }
    sent.push(big.clone());
    sent.push(big);
    sent.push("last".to_owned());
    for text in &sent {
        client.send(WsMessage::text(text.clone())).await.unwrap();
    }
    start.send(Ok(())).unwrap();
    for text in &sent {
        assert_eq!(
            next(&mut client).await.unwrap(),
            serde_json::Value::String(text.clone())
        );
    }
    for text in &sent {
        assert_eq!(
            harness.received.recv().await.unwrap(),
            Message::Text(text.clone())
        );
    }
}

#[tokio::test]
async fn a_prefix_route_serves_the_prefix_and_every_path_under_it_and_nothing_else() {
    use tower::ServiceExt as _;

    let harness = harness().await;
    let gate = Gate::new(
        harness.handle.clone(),
        GateSettings::default(),
        Authenticator::disabled(),
    );
    let router = gate.route("/ws/*", Arc::new(crate::Echo));
    for (path, status) in [
        ("/ws/", 426),
        ("/ws/rooms/7", 426),
        ("/ws/a/b/c", 426),
        ("/ws", 404),
        ("/wsx", 404),
    ] {
        let request = axum::http::Request::get(path)
            .body(axum::body::Body::empty())
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        // 426: the route's upgrade handler answered (the request is no
        // upgrade); 404: no route.
        assert_eq!(response.status().as_u16(), status, "{path}");
    }
}
