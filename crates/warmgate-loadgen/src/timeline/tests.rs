//! The event stream read into the timeline: `readiness` events across
//! chunk boundaries, others skipped, and a snapshot without a kept field
//! refused.

use std::io;

use bytes::Bytes;
use tokio::sync::watch;

use super::*;

/// Records the events of `chunks`, as they would arrive from the body.
async fn record(chunks: &[&str]) -> (anyhow::Result<()>, Record) {
    let body = futures_util::stream::iter(
        chunks
            .iter()
            .map(|chunk| Ok::<_, io::Error>(Bytes::copy_from_slice(chunk.as_bytes())))
            .collect::<Vec<_>>(),
    );
    let (latest_tx, _latest_rx) = watch::channel(None);
    let mut record = Record::default();
    let read = record_events(body, Clock::start(), &mut record, &latest_tx).await;
    (read, record)
}

const READY: &str = r#"{"seq":3,"state":"ready","phase":null,"elapsed_ms":12,"pending":[],"degraded":[],"checks":[]}"#;

#[tokio::test]
async fn readiness_events_are_recorded_across_chunks_and_others_skipped() {
    let stream = format!(
        ": keep-alive\n\nevent: readiness\nid: 3\ndata: {READY}\n\nevent: lagged\ndata: {{}}\n\nevent:readiness\ndata:{}\n\n",
        READY
            .replace("\"seq\":3", "\"seq\":4")
            .replace("ready", "draining")
    );
    // Cut mid-field and mid-line, as TCP may.
    let (first, rest) = stream.split_at(30);
    let (second, third) = rest.split_at(70);
    let (read, record) = record(&[first, second, third]).await;
    read.unwrap();
    let states: Vec<(u64, &str)> = record
        .events
        .iter()
        .map(|event| (event.snapshot.seq, event.state()))
        .collect();
    assert_eq!(states, [(3, "ready"), (4, "draining")]);
    assert_eq!(record.events[0].record().phase, None);
}

#[tokio::test]
async fn a_snapshot_without_a_field_the_timeline_keeps_is_an_error() {
    let stream = "event: readiness\ndata: {\"seq\":3,\"state\":\"ready\",\"pending\":[],\"degraded\":[]}\n\n";
    let (read, record) = record(&[stream]).await;
    let error = format!("{:#}", read.unwrap_err());
    assert!(error.contains("missing field `phase`"), "{error}");
    assert!(record.events.is_empty());
}
