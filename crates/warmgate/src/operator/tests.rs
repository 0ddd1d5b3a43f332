//! The operator's tables, from fixed documents: what `status` and
//! `history` print, and the address they connect to.

use serde_json::json;

use super::*;

/// 2025-12-01T00:41:02Z.
const NOW_MS: u64 = 1_764_549_662_000;

#[test]
fn status_says_the_state_since_when_what_caused_it_and_each_check() {
    let verbose = json!({
        "seq": 7, "state": "not_ready", "phase": null, "elapsed_ms": 60_000,
        "pending": ["database"], "degraded": [],
        "checks": [
            {"name": "database", "phase": "dependencies", "kind": "postgres", "required": true,
             "status": "failing", "since_ms": 48_000, "last_error": "connection refused to 10.0.0.5:5432",
             "last_latency_ms": 1.2, "attempts": 40, "consecutive_successes": 0, "consecutive_failures": 4},
            {"name": "agent", "phase": "services", "kind": "signal", "required": true,
             "status": "passing", "since_ms": 1_000, "last_error": null, "last_latency_ms": 0.0,
             "attempts": 1, "consecutive_successes": 1, "consecutive_failures": 0,
             "lease": {"ttl_ms": 30_000, "expires_at_ms": 71_000}},
        ],
    });
    let history = json!({"capacity": 256, "dropped": 0, "transitions": [
        {"seq": 7, "unix_ms": NOW_MS - 12_000, "elapsed_ms": 48_000, "from": "ready", "to": "not_ready",
         "cause": {"kind": "check", "check": "database", "result": "failed",
                   "error_class": "connection_refused", "error": "connection refused to 10.0.0.5:5432"},
         "reason": "…", "previous_state_ms": 47_000},
    ]});
    let now = at_unix_ms(NOW_MS);
    assert_eq!(
        render_status(&verbose, &history, now),
        "\
state:    not_ready since 2025-12-01T00:40:50Z, 12.0s ago
cause:    check `database` failed (connection_refused)
pending:  database
degraded: -

CHECK     KIND      REQUIRED  STATUS   FOR    FAILURES  LAST RESULT
database  postgres  yes       failing  12.0s  4         connection refused to 10.0.0.5:5432
agent     signal    yes       passing  59.0s  0         ok (lease 30.0s, 11.0s left)
"
    );
}

#[test]
fn status_without_a_transition_counts_from_the_start() {
    let verbose = json!({"seq": 1, "state": "starting", "phase": "dependencies", "elapsed_ms": 2_500,
                         "pending": ["database"], "degraded": [], "checks": []});
    let history = json!({"capacity": 256, "dropped": 0, "transitions": []});
    let text = render_status(&verbose, &history, at_unix_ms(NOW_MS));
    assert!(
        text.starts_with(
            "state:    starting since 2025-12-01T00:40:59Z (the start), 2.5s ago\nphase:    dependencies\n"
        ),
        "{text}"
    );
}

#[test]
fn history_is_a_table_oldest_first_with_what_the_ring_keeps() {
    let history = json!({"capacity": 256, "dropped": 3, "transitions": [
        {"seq": 2, "unix_ms": NOW_MS, "elapsed_ms": 35, "from": "starting", "to": "ready",
         "cause": {"kind": "check", "check": "agent", "result": "signal_ready"},
         "reason": "", "previous_state_ms": 35},
        {"seq": 3, "unix_ms": NOW_MS + 61_250, "elapsed_ms": 61_285, "from": "ready", "to": "draining",
         "cause": {"kind": "drain"}, "reason": "", "previous_state_ms": 61_250},
    ]});
    assert_eq!(
        render_history(&history),
        "\
TIME                      FROM      TO        LASTED  CAUSE
2025-12-01T00:41:02.000Z  starting  ready     35ms    check `agent` signal_ready
2025-12-01T00:42:03.250Z  ready     draining  1m01s   drain requested

2 transition(s); the ring keeps the latest 256, 3 dropped
"
    );
}

#[test]
fn an_unspecified_address_means_loopback() {
    let any: SocketAddr = "0.0.0.0:9090".parse().unwrap();
    assert_eq!(connect_address(any).to_string(), "127.0.0.1:9090");
    let any6: SocketAddr = "[::]:9090".parse().unwrap();
    assert_eq!(connect_address(any6).to_string(), "[::1]:9090");
    let set: SocketAddr = "10.1.2.3:9090".parse().unwrap();
    assert_eq!(connect_address(set), set);
}

#[test]
fn durations_read_as_an_operator_writes_them() {
    assert_eq!(human_ms(850), "850ms");
    assert_eq!(human_ms(12_345), "12.3s");
    assert_eq!(human_ms(250_000), "4m10s");
    assert_eq!(human_ms(7_380_000), "2h03m");
}
