//! `GET /readiness/events`: snapshots as Server-Sent Events.
//!
//! The current snapshot comes first, then one event per published change.
//! A consumer slower than the changes may skip intermediate snapshots (the
//! `id`, which is the `seq`, then jumps), but never sees them out of order.
//! The stream ends after the `draining` snapshot, so open streams never hold
//! up a graceful shutdown.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use warmgate_core::GateState;
use warmgate_engine::{ReadinessHandle, SnapshotRx};

/// How often a comment line keeps idle proxies from closing the stream.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(15);

pub(crate) async fn readiness_events(
    State(handle): State<ReadinessHandle>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures_util::stream::unfold(
        (handle.subscribe(), false),
        |(mut snapshot_rx, finished): (SnapshotRx, bool)| async move {
            if finished || snapshot_rx.changed().await.is_err() {
                return None;
            }
            let snapshot = std::sync::Arc::clone(&snapshot_rx.borrow_and_update());
            let event = Event::default()
                .event("readiness")
                .id(snapshot.seq.to_string())
                .json_data(&*snapshot)
                .unwrap_or_else(|error| {
                    Event::default()
                        .event("error")
                        .data(format!("cannot encode snapshot: {error}"))
                });
            let finished = snapshot.state == GateState::Draining;
            Some((Ok(event), (snapshot_rx, finished)))
        },
    );
    Sse::new(stream).keep_alive(
        KeepAlive::new()
            .interval(KEEP_ALIVE_INTERVAL)
            .text("keep-alive"),
    )
}
