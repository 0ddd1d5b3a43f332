//! `GET /readiness/events`: snapshots and transitions as Server-Sent Events.
//!
//! The current snapshot comes first (`event: readiness`), then one event per
//! published change. A consumer slower than the changes may skip
//! intermediate snapshots (the `id`, which is the `seq`, then jumps), but
//! never sees them out of order.
//!
//! A consumer that says where it stopped, with `Last-Event-ID: N` (which a
//! browser's `EventSource` sends when it reconnects) or `?since=N` (for a
//! first connection), also gets every transition after `N`, from the
//! engine's history: first the missed ones (`event: transition`, `id` its
//! seq), preceded by one `event: history_gap` if the ring no longer reaches
//! back to `N` (or `N` is ahead of the current seq: a restarted process),
//! then the current snapshot, then live, each transition before the
//! snapshot that first shows it. Transitions the `watch` channel coalesced
//! away are read from the history, so quick flips are never lost. Without
//! either, the stream carries snapshots only, as it always has.
//!
//! The stream ends after the `draining` snapshot, so open streams never
//! hold up a graceful shutdown. Each open stream counts against its
//! client's address (see [`ClientLimits`]) until it ends or its client
//! leaves. The response tells proxies not to buffer or compress it, so each
//! event reaches the client when it is sent.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use warmgate_core::GateState;
use warmgate_engine::{ReadinessHandle, SnapshotRx};

use crate::ClientLimits;
use crate::client_limits::EventStreamSlot;
use crate::history::{HistoryGap, PublicTransition};

/// How often a comment line keeps idle proxies from closing the stream.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(15);

/// The header an `EventSource` sends when it reconnects.
const LAST_EVENT_ID: &str = "last-event-id";

pub(crate) async fn readiness_events(
    State((handle, client_limits)): State<(ReadinessHandle, ClientLimits)>,
    request: Request,
) -> Response {
    let slot = match client_limits.open_event_stream(&request) {
        Ok(slot) => slot,
        Err(refused) => return refused.into_response(),
    };
    let resume_after = resume_point(&request);
    let state = StreamState {
        snapshot_rx: handle.subscribe(),
        handle,
        queued: VecDeque::new(),
        transitions_after: resume_after,
        first: true,
        finished: false,
        _slot: slot,
    };
    // The slot lives in the stream's state, so it is released when the
    // stream ends or the client goes away and hyper drops the body.
    let stream = futures_util::stream::unfold(state, |mut state| async move {
        let event = state.next_event().await?;
        Some((Ok::<_, Infallible>(event), state))
    });
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

/// Where the consumer stopped: `Last-Event-ID`, else `?since=`; `None`
/// when neither is a number.
fn resume_point(request: &Request) -> Option<u64> {
    if let Some(value) = request.headers().get(LAST_EVENT_ID) {
        return value.to_str().ok()?.trim().parse().ok();
    }
    request
        .uri()
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("since="))
        .and_then(|since| since.parse().ok())
}

/// One stream's position.
struct StreamState {
    handle: ReadinessHandle,
    snapshot_rx: SnapshotRx,
    /// Events decided on and not yet sent.
    queued: VecDeque<Event>,
    /// The seq of the last transition sent, when the consumer asked for
    /// transitions; `None` streams snapshots only.
    transitions_after: Option<u64>,
    /// True until the first snapshot is read.
    first: bool,
    /// True once the `draining` snapshot is queued.
    finished: bool,
    _slot: EventStreamSlot,
}

impl StreamState {
    /// The next event to send, waiting for a change when none is queued;
    /// `None` ends the stream.
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.queued.pop_front() {
                return Some(event);
            }
            if self.finished || self.snapshot_rx.changed().await.is_err() {
                return None;
            }
            let snapshot = Arc::clone(&self.snapshot_rx.borrow_and_update());
            if let Some(after) = self.transitions_after {
                self.queue_transitions(after, snapshot.seq);
            }
            self.first = false;
            self.queued
                .push_back(json_event("readiness", Some(snapshot.seq), &*snapshot));
            self.finished = snapshot.state == GateState::Draining;
        }
    }

    /// Queues the transitions after `after` up to the snapshot `through`
    /// (later ones come with their own snapshot), with a `history_gap`
    /// first when some of them are no longer kept.
    fn queue_transitions(&mut self, after: u64, through: u64) {
        let history = self.handle.history();
        // An id ahead of the current seq comes from an earlier process,
        // whose transitions this one never had.
        let from_earlier_process = self.first && after > through;
        let after = if from_earlier_process { 0 } else { after };
        if from_earlier_process || !history.reaches_back_to(after) {
            let requested = self.transitions_after.unwrap_or(after);
            let gap = HistoryGap {
                last_event_id: requested,
                oldest_seq: history.oldest_seq(),
                dropped: history.dropped(),
            };
            self.queued.push_back(json_event("history_gap", None, &gap));
        }
        let mut last = after;
        for record in history.after(after).filter(|record| record.seq <= through) {
            let transition = PublicTransition::of(record);
            self.queued
                .push_back(json_event("transition", Some(record.seq), &transition));
            last = record.seq;
        }
        self.transitions_after = Some(last);
    }
}

/// An event named `name` with `data` as JSON, and `id` when given.
fn json_event(name: &str, id: Option<u64>, data: &impl Serialize) -> Event {
    let event = Event::default().event(name);
    let event = match id {
        Some(id) => event.id(id.to_string()),
        None => event,
    };
    event.json_data(data).unwrap_or_else(|error| {
        Event::default()
            .event("error")
            .data(format!("cannot encode {name}: {error}"))
    })
}
