//! `GET /readiness/events`: snapshots as Server-Sent Events.
//!
//! The current snapshot comes first, then one event per published change.
//! A consumer slower than the changes may skip intermediate snapshots (the
//! `id`, which is the `seq`, then jumps), but never sees them out of order.
//! The stream ends after the `draining` snapshot, so open streams never hold
//! up a graceful shutdown. Each open stream counts against its client's
//! address (see [`ClientLimits`]) until it ends or its client leaves.
//! The response tells proxies not to buffer or compress it, so each event
//! reaches the client when it is sent.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use warmgate_core::GateState;
use warmgate_engine::{ReadinessHandle, SnapshotRx};

use crate::ClientLimits;
use crate::client_limits::EventStreamSlot;

/// How often a comment line keeps idle proxies from closing the stream.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(15);

pub(crate) async fn readiness_events(
    State((handle, client_limits)): State<(ReadinessHandle, ClientLimits)>,
    request: Request,
) -> Response {
    let slot = match client_limits.open_event_stream(&request) {
        Ok(slot) => slot,
        Err(refused) => return refused.into_response(),
    };
    // The slot lives in the stream's state, so it is released when the
    // stream ends or the client goes away and hyper drops the body.
    let stream = futures_util::stream::unfold(
        (handle.subscribe(), false, slot),
        |(mut snapshot_rx, finished, slot): (SnapshotRx, bool, EventStreamSlot)| async move {
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
            Some((Ok::<_, Infallible>(event), (snapshot_rx, finished, slot)))
        },
    );
    let mut response = Sse::new(stream)
        .keep_alive(
            KeepAlive::new()
                .interval(KEEP_ALIVE_INTERVAL)
                .text("keep-alive"),
        )
        .into_response();
    let headers = response.headers_mut();
    // Proxies hold events back by buffering or compressing the body: nginx
    // (and the ingresses built on it) unless told `X-Accel-Buffering: no`,
    // and any proxy that gzips unless told `no-transform`.
    headers.insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-transform"),
    );
    response
}
