//! The gate's state over time, from `GET /readiness/events` (Server-Sent
//! Events on the public listener): every snapshot with the wall time it
//! arrived, and the latest state for scenarios that wait on a change.
//!
//! The stream ends after `draining`. If it breaks before that, the follower
//! reconnects (and notes the gap) until it is stopped. The events are
//! parsed by `eventsource-stream`; only `readiness` events are kept.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use eventsource_stream::Eventsource as _;
use futures_util::StreamExt as _;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use warmgate_loadgen::report::{StateRecord, StreamBreak, Timeline};

use crate::clock::Clock;

/// How long to wait before reconnecting a broken stream.
const RECONNECT_DELAY: Duration = Duration::from_millis(100);

/// The fields of warmgate's snapshot that the timeline keeps. The
/// snapshot has more (the checks, the elapsed time), which are ignored;
/// these must be there.
#[derive(Debug, Clone, Deserialize)]
struct Snapshot {
    seq: u64,
    state: String,
    #[serde(deserialize_with = "Option::deserialize")]
    phase: Option<String>,
    pending: Vec<String>,
    degraded: Vec<String>,
}

/// One snapshot as it arrived.
#[derive(Debug, Clone)]
pub(crate) struct StateEvent {
    pub(crate) at_ms: f64,
    snapshot: Snapshot,
}

impl StateEvent {
    pub(crate) fn state(&self) -> &str {
        &self.snapshot.state
    }

    fn record(&self) -> StateRecord {
        let Snapshot {
            seq,
            state,
            phase,
            pending,
            degraded,
        } = self.snapshot.clone();
        StateRecord {
            at_ms: self.at_ms,
            seq,
            state,
            phase,
            pending,
            degraded,
        }
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
    pub(crate) async fn finish(self) -> Timeline {
        let _ = self.stop.send(true);
        let record = self.task.await.unwrap_or_default();
        Timeline {
            events: record.events.iter().map(StateEvent::record).collect(),
            breaks: record
                .breaks
                .into_iter()
                .map(|(at_ms, why)| StreamBreak { at_ms, why })
                .collect(),
        }
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
    record_events(
        response.into_body().into_data_stream(),
        clock,
        record,
        latest,
    )
    .await
}

/// Reads Server-Sent Events from `body` to its end, recording each
/// `readiness` snapshot; other events are skipped.
async fn record_events<B, E>(
    body: B,
    clock: Clock,
    record: &mut Record,
    latest: &watch::Sender<Option<StateEvent>>,
) -> anyhow::Result<()>
where
    B: futures_util::Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut events = body.eventsource();
    while let Some(event) = events.next().await {
        let event = event.context("the event stream broke")?;
        if event.event != "readiness" {
            continue;
        }
        let snapshot: Snapshot = serde_json::from_str(&event.data)
            .with_context(|| format!("not a snapshot: {}", event.data))?;
        let event = StateEvent {
            at_ms: clock.now_ms(),
            snapshot,
        };
        record.events.push(event.clone());
        let _ = latest.send(Some(event));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
