//! The gate's state over time, from `GET /readiness/events` (Server-Sent
//! Events on the public listener): every snapshot with the wall time it
//! arrived, and the latest state for scenarios that wait on a change.
//!
//! The stream ends after `draining`. If it breaks before that, the follower
//! reconnects (and notes the gap) until it is stopped.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::Clock;

/// How long to wait before reconnecting a broken stream.
const RECONNECT_DELAY: Duration = Duration::from_millis(100);

/// One snapshot as it arrived.
#[derive(Debug, Clone)]
pub(crate) struct StateEvent {
    pub(crate) at_ms: f64,
    pub(crate) snapshot: Value,
}

impl StateEvent {
    pub(crate) fn state(&self) -> &str {
        self.snapshot["state"].as_str().unwrap_or_default()
    }
}

/// The running follower.
#[derive(Debug)]
pub(crate) struct Follower {
    stop: watch::Sender<bool>,
    latest: watch::Receiver<Option<StateEvent>>,
    task: JoinHandle<Record>,
}

#[derive(Debug, Default)]
struct Record {
    events: Vec<StateEvent>,
    /// Wall times at which the stream broke before `draining`, and why.
    breaks: Vec<(f64, String)>,
}

impl Follower {
    pub(crate) fn start(addr: SocketAddr, clock: Clock) -> Follower {
        let (stop, mut stop_rx) = watch::channel(false);
        let (latest_tx, latest) = watch::channel(None);
        let task = tokio::spawn(async move {
            let mut record = Record::default();
            loop {
                let followed = tokio::select! {
                    followed = follow(addr, clock, &mut record, &latest_tx) => followed,
                    _ = stop_rx.wait_for(|stop| *stop) => return record,
                };
                match followed {
                    Ok(())
                        if record
                            .events
                            .last()
                            .is_some_and(|event| event.state() == "draining") =>
                    {
                        return record;
                    }
                    Ok(()) => record.breaks.push((
                        clock.now_ms(),
                        "the stream ended before `draining`".to_owned(),
                    )),
                    Err(error) => record.breaks.push((clock.now_ms(), format!("{error:#}"))),
                }
                tokio::select! {
                    () = tokio::time::sleep(RECONNECT_DELAY) => {}
                    _ = stop_rx.wait_for(|stop| *stop) => return record,
                }
            }
        });
        Follower { stop, latest, task }
    }

    /// The latest snapshot, changing as events arrive.
    pub(crate) fn latest(&self) -> watch::Receiver<Option<StateEvent>> {
        self.latest.clone()
    }

    /// Stops following (if the stream has not ended by itself) and returns
    /// every event and break.
    pub(crate) async fn finish(self) -> Value {
        let _ = self.stop.send(true);
        let record = self.task.await.unwrap_or_default();
        json!({
            "events": record.events.iter().map(|event| json!({
                "at_ms": event.at_ms,
                "seq": event.snapshot["seq"],
                "state": event.snapshot["state"],
                "phase": event.snapshot["phase"],
                "pending": event.snapshot["pending"],
                "degraded": event.snapshot["degraded"],
            })).collect::<Vec<_>>(),
            "breaks": record.breaks.iter().map(|(at_ms, why)| json!({ "at_ms": at_ms, "why": why })).collect::<Vec<_>>(),
        })
    }
}

/// Reads one event stream to its end, recording each snapshot.
async fn follow(
    addr: SocketAddr,
    clock: Clock,
    record: &mut Record,
    latest: &watch::Sender<Option<StateEvent>>,
) -> anyhow::Result<()> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = hyper::Request::builder()
        .uri("/readiness/events")
        .header("host", addr.to_string())
        .header("accept", "text/event-stream")
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    if response.status() != hyper::StatusCode::OK {
        bail!("GET /readiness/events answered {}", response.status());
    }
    let mut body = response.into_body();
    let mut buffer = String::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        buffer.push_str(&String::from_utf8_lossy(&data));
        // Events end with a blank line.
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let mut kind = "message";
            let mut data = String::new();
            for line in event.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    kind = value.trim();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push_str(value.trim_start());
                }
            }
            if kind != "readiness" {
                continue;
            }
            let snapshot: Value =
                serde_json::from_str(&data).with_context(|| format!("not a snapshot: {data}"))?;
            let event = StateEvent {
                at_ms: clock.now_ms(),
                snapshot,
            };
            record.events.push(event.clone());
            let _ = latest.send(Some(event));
        }
    }
    Ok(())
}
