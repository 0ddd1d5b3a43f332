//! Every frame's JSON.

use serde_json::json;

use super::*;

fn value(message: &ServerMessage<'_>) -> serde_json::Value {
    serde_json::from_str(&message.to_json()).unwrap()
}

#[test]
fn server_frames_have_the_documented_shape() {
    let pending = vec!["database".to_owned()];
    assert_eq!(
        value(&ServerMessage::Warming {
            state: GateState::Starting,
            phase: Some("dependencies"),
            phases: vec!["dependencies", "services"],
            pending: &pending,
            elapsed_ms: 1200,
            hold_remaining_ms: 3800,
            seq: 4
        }),
        json!({"type":"warming","state":"starting","phase":"dependencies","phases":["dependencies","services"],"pending":["database"],
               "elapsed_ms":1200,"hold_remaining_ms":3800,"seq":4})
    );
    assert_eq!(
        value(&ServerMessage::Ready {
            state: GateState::Degraded,
            degraded: &["redis".to_owned()],
            waited_ms: 0,
            connection_id: "c1",
            seq: 9
        }),
        json!({"type":"ready","state":"degraded","degraded":["redis"],"waited_ms":0,"connection_id":"c1","seq":9})
    );
    assert_eq!(
        value(&ServerMessage::Unavailable {
            reason: UnavailableReason::HoldTimeout,
            state: GateState::Starting,
            phase: Some("dependencies"),
            pending: &pending,
            retry_after_ms: 2150,
            unprocessed: 2
        }),
        json!({"type":"unavailable","reason":"hold_timeout","state":"starting","phase":"dependencies",
               "pending":["database"],"retry_after_ms":2150,"unprocessed":2})
    );
    assert_eq!(
        value(&ServerMessage::Draining {
            reconnect_after_ms: 430
        }),
        json!({"type":"draining","reconnect_after_ms":430})
    );
    assert_eq!(
        value(&ServerMessage::Error {
            code: ErrorCode::BufferFull,
            message: "m",
            client_msg_id: None,
        }),
        json!({"type":"error","code":"buffer_full","message":"m"})
    );
    assert_eq!(
        value(&ServerMessage::Error {
            code: ErrorCode::RateLimited,
            message: "m",
            client_msg_id: Some("c-9"),
        }),
        json!({"type":"error","code":"rate_limited","message":"m","client_msg_id":"c-9"})
    );
}

#[test]
fn a_snapshots_prepared_frames_are_the_frames_serialised_one_by_one() {
    use warmgate_core::Snapshot;
    for (state, degraded) in [
        (GateState::Ready, vec![]),
        (
            GateState::Degraded,
            vec!["redis".to_owned(), "search \"eu\"".to_owned()],
        ),
    ] {
        let snapshot = Snapshot {
            seq: 41,
            state,
            phase: None,
            elapsed: std::time::Duration::from_millis(1500),
            pending: Vec::new(),
            degraded: degraded.clone(),
            checks: Vec::new(),
            ever_ready: true,
        };
        let frames = SnapshotFrames::new(&snapshot);
        assert_eq!(frames.seq, 41);
        for (waited_ms, id) in [(0, "c1"), (u64::MAX, "3f\"x\\y\u{7f}é")] {
            let one_by_one = ServerMessage::Ready {
                state,
                degraded: &degraded,
                waited_ms,
                connection_id: id,
                seq: 41,
            }
            .to_json();
            assert_eq!(frames.ready(waited_ms, id), one_by_one);
        }
        let readiness = ServerMessage::Readiness {
            state,
            degraded: &degraded,
            seq: 41,
        };
        assert_eq!(frames.readiness, readiness.to_json());
    }
}
