//! The readiness event stream (`GET /readiness/events`) as a consumer sees
//! it: [`EventStream`] opens the response and yields each
//! [`ServerSentEvent`] with its data parsed as JSON.
//!
//! The Server-Sent Events format itself is read by `eventsource-stream`,
//! the same parser the load generator uses, which follows the WHATWG rules
//! a browser's `EventSource` does; this module only opens the stream,
//! bounds each wait and parses the JSON.

use std::pin::Pin;

use eventsource_stream::{EventStreamError, Eventsource as _};
use futures_util::{Stream, StreamExt as _};
use serde_json::Value;

use crate::{Gateway, http_client, within};

/// One Server-Sent Event.
#[derive(Debug, Clone)]
pub struct ServerSentEvent {
    /// The event's name (`readiness`, `transition`, `history_gap`).
    pub event: String,
    /// The last event id, as a browser's `EventSource` reports it: the
    /// stream's latest `id:` line, which an event without one keeps.
    pub id: String,
    /// The data, parsed as JSON.
    pub data: Value,
}

type Events = Pin<
    Box<
        dyn Stream<Item = Result<eventsource_stream::Event, EventStreamError<reqwest::Error>>>
            + Send,
    >,
>;

/// A Server-Sent Events client over a streaming HTTP response.
pub struct EventStream {
    events: Events,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

impl EventStream {
    pub async fn connect(url: &str) -> Self {
        Self::connect_with(url, &[]).await
    }

    /// Opens the stream with extra request headers.
    pub async fn connect_with(url: &str, headers: &[(&str, &str)]) -> Self {
        let mut request = http_client().get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = within("the event stream to open", request.send())
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Self {
            events: Box::pin(response.bytes_stream().eventsource()),
        }
    }

    /// The next event (keep-alive comments are not events); `None` when
    /// the stream ends.
    pub async fn next(&mut self) -> Option<ServerSentEvent> {
        let event = within("the next server-sent event", self.events.next())
            .await?
            .unwrap_or_else(|error| panic!("the event stream broke: {error}"));
        let data = serde_json::from_str(&event.data).unwrap_or_else(|error| {
            panic!(
                "the data of event {:?} is not JSON ({error}): {:?}",
                event.event, event.data
            )
        });
        Some(ServerSentEvent {
            event: event.event,
            id: event.id,
            data,
        })
    }

    /// Reads events until one satisfies `what`, returning every event read.
    pub async fn until(&mut self, what: impl Fn(&Value) -> bool) -> Vec<ServerSentEvent> {
        let mut seen = Vec::new();
        loop {
            let event = self
                .next()
                .await
                .unwrap_or_else(|| panic!("the stream ended; events so far: {seen:#?}"));
            let done = what(&event.data);
            seen.push(event);
            if done {
                return seen;
            }
        }
    }
}

impl Gateway {
    /// Waits until the gate reports `ready`: the event stream starts with
    /// the current snapshot, so a change that came first is not missed.
    pub async fn until_ready(&self) {
        self.events()
            .await
            .until(|snapshot| snapshot["state"] == "ready")
            .await;
    }

    /// Opens the public event stream.
    pub async fn events(&self) -> EventStream {
        EventStream::connect(&self.public_url("/readiness/events")).await
    }

    /// Opens the public event stream as a consumer that reconnects after
    /// the event `last_event_id`, with the `Last-Event-ID` header.
    pub async fn events_after(&self, last_event_id: &str) -> EventStream {
        EventStream::connect_with(
            &self.public_url("/readiness/events"),
            &[("last-event-id", last_event_id)],
        )
        .await
    }
}
