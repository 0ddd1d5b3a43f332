//! The history on the wire: `GET /readiness/history` on the admin router,
//! and the replay of `GET /readiness/events` after `Last-Event-ID` or
//! `?since=`, through the routers without a socket. Each wait is on a
//! published snapshot or a received event, never a sleep.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use axum::body::{Body, BodyDataStream};
use axum::http::{Request, StatusCode};
use eventsource_stream::{EventStream, Eventsource as _};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use warmgate_core::{CheckSpec, PhaseSpec, Plan};
use warmgate_engine::{EngineBuilder, EngineSettings, ReadinessHandle};

use crate::{PublicSettings, RenderMetrics, admin_router, public_router};

/// One required signal, `agent`, that flips on every set (thresholds 1/1).
fn spawn_with_one_signal() -> ReadinessHandle {
    let plan = Plan::new(
        vec![PhaseSpec {
            name: "services".into(),
            checks: vec![CheckSpec::new("agent", "signal").thresholds(1, 1)],
        }],
        Duration::from_secs(600),
    )
    .unwrap();
    EngineBuilder::new(plan, EngineSettings::default())
        .signal("agent")
        .unwrap()
        .spawn()
        .unwrap()
}

/// Sets `agent` `n` times, alternating ready and not ready (ready first),
/// each applied before the next: `n` transitions, seqs 2 to `n + 1`.
async fn flip(handle: &ReadinessHandle, n: usize) {
    for i in 0..n {
        let ready = i % 2 == 0;
        let reason = (!ready).then(|| "agent at 10.0.0.7 restarting".to_owned());
        handle
            .set_signal_applied("agent", ready, reason, Duration::from_secs(5))
            .await
            .unwrap();
    }
}

/// One parsed event: its name, the last event id (empty before the
/// first) and its JSON data.
#[derive(Debug)]
struct Sse {
    event: String,
    id: String,
    data: Value,
}

/// Opens the event stream with the given request headers and query.
async fn open_events(handle: &ReadinessHandle, uri: &str, headers: &[(&str, &str)]) -> Events {
    let mut request = Request::builder().uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = public_router(handle.clone(), &PublicSettings::default())
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    Events {
        events: response.into_body().into_data_stream().eventsource(),
    }
}

/// The stream read by `eventsource-stream`, as the load generator and the
/// integration tests read it.
struct Events {
    events: EventStream<BodyDataStream>,
}

impl Events {
    /// The next event (comments are skipped by the parser); `None` when the
    /// stream ends.
    async fn next(&mut self) -> Option<Sse> {
        let event = self.events.next().await?.unwrap();
        Some(Sse {
            event: event.event,
            id: event.id,
            data: serde_json::from_str(&event.data).unwrap(),
        })
    }

    /// Events up to and including the first `readiness` one.
    async fn through_snapshot(&mut self) -> Vec<Sse> {
        let mut seen = Vec::new();
        loop {
            let event = self.next().await.unwrap();
            let done = event.event == "readiness";
            seen.push(event);
            if done {
                return seen;
            }
        }
    }
}

fn names_and_ids(events: &[Sse]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|event| (event.event.clone(), event.id.clone()))
        .collect()
}

fn no_metrics() -> RenderMetrics {
    std::sync::Arc::new(String::new)
}

#[tokio::test]
async fn the_admin_router_serves_the_history_oldest_first() {
    let handle = spawn_with_one_signal();
    flip(&handle, 3).await;
    let request = Request::builder()
        .uri("/readiness/history")
        .body(Body::empty())
        .unwrap();
    let response = admin_router(handle.clone(), no_metrics())
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let history: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(history["capacity"], 256);
    assert_eq!(history["dropped"], 0);
    let transitions = history["transitions"].as_array().unwrap();
    let moves: Vec<(u64, &str, &str)> = transitions
        .iter()
        .map(|t| {
            (
                t["seq"].as_u64().unwrap(),
                t["from"].as_str().unwrap(),
                t["to"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        moves,
        [
            (2, "starting", "ready"),
            (3, "ready", "not_ready"),
            (4, "not_ready", "ready")
        ]
    );
    // The admin listener shows the error text.
    assert_eq!(
        transitions[1]["cause"],
        json!({"kind": "check", "check": "agent", "result": "signal_not_ready",
               "error": "agent at 10.0.0.7 restarting"})
    );
    assert!(
        transitions[1]["reason"]
            .as_str()
            .unwrap()
            .contains("10.0.0.7")
    );
    for transition in transitions {
        assert!(transition["unix_ms"].as_u64().unwrap() > 0);
        assert!(transition["previous_state_ms"].is_u64());
        assert!(transition["elapsed_ms"].is_u64());
    }
}

#[tokio::test]
async fn a_consumer_that_reconnects_with_last_event_id_gets_every_missed_transition_first() {
    let handle = spawn_with_one_signal();
    flip(&handle, 5).await;
    let mut events = open_events(&handle, "/readiness/events", &[("last-event-id", "3")]).await;
    let seen = events.through_snapshot().await;
    assert_eq!(
        names_and_ids(&seen),
        [
            ("transition".into(), "4".into()),
            ("transition".into(), "5".into()),
            ("transition".into(), "6".into()),
            ("readiness".into(), "6".into()),
        ]
    );
    assert_eq!(seen[0].data["from"], "not_ready");
    assert_eq!(seen[0].data["to"], "ready");
    assert_eq!(seen[1].data["seq"], 5);
    // The public stream carries no free text: neither the error nor the
    // reason, which can name internal hosts.
    assert_eq!(
        seen[1].data["cause"],
        json!({"kind": "check", "check": "agent", "result": "signal_not_ready"})
    );
    assert!(seen[1].data.get("reason").is_none());
    assert!(!seen[1].data.to_string().contains("10.0.0.7"));

    // Live: three quick sets, and each transition arrives before the
    // snapshot that shows it, even where the snapshots were coalesced.
    handle.set_signal("agent", false, None).unwrap();
    handle.set_signal("agent", true, None).unwrap();
    handle.set_signal("agent", false, None).unwrap();
    let mut transitions = Vec::new();
    while transitions.len() < 3 {
        let event = events.next().await.unwrap();
        if event.event == "transition" {
            transitions.push((
                event.data["seq"].as_u64().unwrap(),
                event.data["to"].clone(),
            ));
        } else {
            let seq = event.data["seq"].as_u64().unwrap();
            assert!(transitions.iter().all(|(t, _)| *t <= seq));
        }
    }
    assert_eq!(
        transitions,
        [
            (7, json!("not_ready")),
            (8, json!("ready")),
            (9, json!("not_ready"))
        ]
    );
}

#[tokio::test]
async fn a_first_connection_asks_with_since_and_without_either_the_stream_is_snapshots_only() {
    let handle = spawn_with_one_signal();
    flip(&handle, 2).await;
    let mut events = open_events(&handle, "/readiness/events?since=0", &[]).await;
    assert_eq!(
        names_and_ids(&events.through_snapshot().await),
        [
            ("transition".into(), "2".into()),
            ("transition".into(), "3".into()),
            ("readiness".into(), "3".into()),
        ]
    );
    let mut plain = open_events(&handle, "/readiness/events", &[]).await;
    assert_eq!(
        names_and_ids(&plain.through_snapshot().await),
        [("readiness".into(), "3".into())]
    );
    // A header beats the query, as an EventSource reconnecting to a
    // `?since=` URL sends both.
    let mut reconnected = open_events(
        &handle,
        "/readiness/events?since=0",
        &[("last-event-id", "2")],
    )
    .await;
    assert_eq!(
        names_and_ids(&reconnected.through_snapshot().await),
        [
            ("transition".into(), "3".into()),
            ("readiness".into(), "3".into()),
        ]
    );
}

#[tokio::test]
async fn an_id_older_than_the_ring_is_told_of_the_gap_before_the_replay() {
    let handle = spawn_with_one_signal();
    // 300 transitions, seqs 2 to 301; the ring keeps 46 to 301.
    flip(&handle, 300).await;
    let mut events = open_events(&handle, "/readiness/events", &[("last-event-id", "10")]).await;
    let seen = events.through_snapshot().await;
    assert_eq!(seen[0].event, "history_gap");
    assert_eq!(seen[0].id, "");
    assert_eq!(
        seen[0].data,
        json!({"last_event_id": 10, "oldest_seq": 46, "dropped": 44})
    );
    let replayed: Vec<u64> = seen[1..seen.len() - 1]
        .iter()
        .map(|event| {
            assert_eq!(event.event, "transition");
            event.id.parse().unwrap()
        })
        .collect();
    assert_eq!(replayed, (46..=301).collect::<Vec<u64>>());
    assert_eq!(seen.last().unwrap().id, "301");

    // Within reach: no gap.
    let mut events = open_events(&handle, "/readiness/events", &[("last-event-id", "45")]).await;
    let seen = events.through_snapshot().await;
    assert_eq!(seen[0].event, "transition");
    assert_eq!(seen[0].id, "46");
}

#[tokio::test]
async fn an_id_ahead_of_the_current_seq_comes_from_an_earlier_process_and_replays_all() {
    let handle = spawn_with_one_signal();
    flip(&handle, 1).await;
    let mut events = open_events(&handle, "/readiness/events", &[("last-event-id", "900")]).await;
    let seen = events.through_snapshot().await;
    assert_eq!(
        names_and_ids(&seen),
        [
            ("history_gap".into(), String::new()),
            ("transition".into(), "2".into()),
            ("readiness".into(), "2".into()),
        ]
    );
    assert_eq!(
        seen[0].data,
        json!({"last_event_id": 900, "oldest_seq": 2, "dropped": 0})
    );
}
