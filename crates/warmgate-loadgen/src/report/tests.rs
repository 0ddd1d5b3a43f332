//! The report types read back what they write, and every drift of their
//! JSON (a field missing, renamed or added, a positional record) fails to
//! read rather than reading as zeros.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::*;

fn timings() -> Timings {
    Timings {
        n: 3,
        p50_us: 120.0,
        p99_us: 400.0,
        max_us: 410.0,
        mean_us: 180.5,
    }
}

fn attempt(credential: Credential, outcome: AttemptOutcome) -> AttemptRecord {
    AttemptRecord {
        credential,
        started_ms: 1_000.0,
        ended_ms: 1_012.0,
        outcome,
        stay: Some("left".to_owned()),
    }
}

fn chat() -> ChatSummary {
    ChatSummary {
        clients: 4,
        rooms: 2,
        joined: 4,
        join_failures: vec![JoinFailure {
            client: 3,
            why: "refused with HTTP 503".to_owned(),
        }],
        messages_sent: 10,
        messages_acked: 10,
        ack_latency: Some(timings()),
        deliveries_required: 20,
        delivered_once: 20,
        missing: 0,
        duplicated: 0,
        unknown_deliveries: 0,
        foreign_frames: 0,
        wrong_from: 0,
        stray_acks: 0,
        repeated_acks: 0,
        problems: vec![
            DeliveryProblem::Missing {
                message: "1.2".to_owned(),
                member: 0,
                sent_ms: 1.0,
                acked_ms: 2.0,
            },
            DeliveryProblem::Duplicated {
                message: "1.3".to_owned(),
                member: 2,
                count: 2,
            },
        ],
        error_frames: [("rate_limited".to_owned(), 1)].into(),
        ends: [("closed with 1001".to_owned(), 4)].into(),
        readiness_pushes: [("degraded,ready".to_owned(), 4)].into(),
        drain: ChatDrain {
            told_draining: 4,
            first_draining_ms: Some(5.0),
            last_closed_ms: Some(7005.0),
            close_codes: [("1001".to_owned(), 4)].into(),
            draining_to_close: Some(timings()),
        },
    }
}

fn attempt_counts() -> AttemptCounts {
    AttemptCounts {
        total: 2,
        by_credential: [
            (Credential::Good, [("admitted".to_owned(), 1)].into()),
            (
                Credential::Expired,
                [("http_401:invalid_token".to_owned(), 1)].into(),
            ),
        ]
        .into(),
        silent: vec![attempt(
            Credential::Good,
            AttemptOutcome::Silent {
                why: "ended".to_owned(),
            },
        )],
    }
}

fn path_probes() -> PathProbes {
    PathProbes {
        probes: 2,
        first_ms: Some(1.0),
        last_ms: Some(101.0),
        latency: Some(timings()),
        statuses: [(200, 1)].into(),
        slow_count: 1,
        slow: vec![SlowProbe {
            at_ms: 1.0,
            latency_ms: 60.0,
        }],
        failed_count: 1,
        failed: vec![FailedProbe {
            at_ms: 101.0,
            latency_ms: 0.1,
            error: "cannot connect".to_owned(),
        }],
        all: vec![
            ProbeRecord {
                system_ms: 1.0,
                latency_ms: 60.0,
                answer: ProbeAnswer::Status(200),
            },
            ProbeRecord {
                system_ms: 101.0,
                latency_ms: 0.1,
                answer: ProbeAnswer::Error("cannot connect".to_owned()),
            },
        ],
    }
}

fn probes() -> ProbeSummary {
    ProbeSummary {
        interval_ms: 100.0,
        limit_ms: 50.0,
        paths: ProbePaths {
            livez: path_probes(),
            readyz: path_probes(),
        },
    }
}

fn timeline() -> Timeline {
    Timeline {
        events: vec![StateRecord {
            at_ms: 1.0,
            seq: 3,
            state: "starting".to_owned(),
            phase: Some("dependencies".to_owned()),
            pending: vec!["database".to_owned()],
            degraded: vec!["redis".to_owned()],
        }],
        breaks: vec![StreamBreak {
            at_ms: 2.0,
            why: "the stream ended before `draining`".to_owned(),
        }],
    }
}

fn chat_load() -> ChatLoadReport {
    ChatLoadReport {
        started_unix_ms: 1.0,
        ended_unix_ms: 2.0,
        authentication: true,
        load: "LoadArguments { .. }".to_owned(),
        chat: chat(),
        attempts: attempt_counts(),
        attempt_list: vec![
            attempt(Credential::Good, AttemptOutcome::Admitted { held: true }),
            attempt(
                Credential::Good,
                AttemptOutcome::Unavailable {
                    reason: "draining".to_owned(),
                    retry_after_ms: Some(2000),
                    close_code: Some(1013),
                },
            ),
            attempt(
                Credential::NoToken,
                AttemptOutcome::Refused {
                    status: 401,
                    error: "missing_token".to_owned(),
                },
            ),
            attempt(
                Credential::WrongKey,
                AttemptOutcome::NoConnection {
                    why: "refused".to_owned(),
                },
            ),
        ],
        probes: probes(),
        timeline: timeline(),
    }
}

fn soak() -> SoakReport {
    SoakReport {
        started_unix_ms: 1.0,
        ended_unix_ms: 2.0,
        authentication: false,
        load: "LoadArguments { .. }".to_owned(),
        seconds: 60.0,
        cycle_seconds: 10.0,
        cycles: 6,
        prefill: Prefill {
            messages_per_client: 180,
            clients: 200,
            seconds: 12.0,
        },
        samples: vec![ProcessSample {
            at_s: 0.0,
            rss_kib: 10_000,
            fds: 200,
            threads: Some(3),
        }],
        held: HeldCrowds {
            per_cycle: 50,
            held: 300,
            released: 300,
            flip_to_ready: Some(timings()),
            problems: vec!["cycle 2: only 49 of 50 clients were held".to_owned()],
        },
        quiet_clients: 200,
        chat: chat(),
        attempts: attempt_counts(),
        probes: probes(),
        timeline: timeline(),
    }
}

fn hold() -> HoldReport {
    HoldReport {
        clients: 10,
        connected: 10,
        held: 10,
        errors: 0,
        first_error: Some("none really".to_owned()),
        connect_wall_ms: 12.5,
        connects_per_second: 800.0,
        rss_idle_kib: Some(1000),
        rss_loaded_kib: Some(2000),
        rss_per_client_kib: Some(100.0),
        release: Some(Release {
            released: 10,
            flip_to_ready: Some(timings()),
        }),
    }
}

/// The keys whose objects are maps: their keys are data, so removing one
/// is no drift.
const MAPS: [&str; 6] = [
    "statuses",
    "error_frames",
    "ends",
    "readiness_pushes",
    "close_codes",
    "by_credential",
];

/// Every object key of `value` (outside maps), as a path of keys and
/// array indexes.
fn field_paths(value: &Value, at: &mut Vec<String>, paths: &mut Vec<Vec<String>>) {
    match value {
        Value::Object(object) => {
            for (key, inner) in object {
                at.push(key.clone());
                paths.push(at.clone());
                if !MAPS.contains(&key.as_str()) {
                    field_paths(inner, at, paths);
                }
                at.pop();
            }
        }
        Value::Array(items) => {
            for (index, inner) in items.iter().enumerate() {
                at.push(index.to_string());
                field_paths(inner, at, paths);
                at.pop();
            }
        }
        _ => {}
    }
}

/// The object that holds the last key of `path`.
fn parent<'a>(value: &'a mut Value, path: &[String]) -> &'a mut serde_json::Map<String, Value> {
    let mut current = value;
    for key in &path[..path.len() - 1] {
        current = match current {
            Value::Array(items) => &mut items[key.parse::<usize>().unwrap()],
            Value::Object(object) => object.get_mut(key).unwrap(),
            _ => unreachable!(),
        };
    }
    current.as_object_mut().unwrap()
}

/// The report reads back as itself, and every drift of its JSON (a field
/// removed, a field renamed, a field added) fails to read.
fn drift_is_an_error<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(report: &T) {
    let good = serde_json::to_value(report).unwrap();
    assert_eq!(&serde_json::from_value::<T>(good.clone()).unwrap(), report);
    let mut paths = Vec::new();
    field_paths(&good, &mut Vec::new(), &mut paths);
    assert!(paths.len() > 1);
    for path in &paths {
        let key = path.last().unwrap();
        let mut removed = good.clone();
        parent(&mut removed, path).remove(key);
        assert!(
            serde_json::from_value::<T>(removed).is_err(),
            "without {path:?}, the report still reads"
        );
        let mut renamed = good.clone();
        let object = parent(&mut renamed, path);
        let inner = object.remove(key).unwrap();
        object.insert(format!("{key}_renamed"), inner);
        assert!(
            serde_json::from_value::<T>(renamed).is_err(),
            "with {path:?} renamed, the report still reads"
        );
    }
    // A field that no version writes, beside every field (the maps'
    // entries are not visited).
    for path in &paths {
        let mut added = good.clone();
        parent(&mut added, path).insert("surprise".to_owned(), json!(0));
        assert!(
            serde_json::from_value::<T>(added).is_err(),
            "with a field beside {path:?}, the report still reads"
        );
    }
}

#[test]
fn a_drifted_chat_load_report_is_an_error() {
    drift_is_an_error(&chat_load());
}

#[test]
fn a_drifted_soak_report_is_an_error() {
    drift_is_an_error(&soak());
}

#[test]
fn drifted_bench_reports_are_errors() {
    drift_is_an_error(&hold());
    drift_is_an_error(&ConnectReport {
        connect_to_ready: Some(timings()),
    });
    drift_is_an_error(&SignalReport {
        signal_to_ready: Some(timings()),
    });
    drift_is_an_error(&EchoReport {
        round_trip: Some(timings()),
        size: 43,
    });
    drift_is_an_error(&HttpLoadReport {
        requests: 10,
        seconds: 1.0,
        requests_per_second: 10.0,
        connection_errors: 0,
        statuses: [(200, 10)].into(),
    });
}

#[test]
fn nothing_measured_is_null_and_must_be_written() {
    let report = ConnectReport {
        connect_to_ready: None,
    };
    let written = serde_json::to_value(&report).unwrap();
    assert_eq!(written, json!({ "connect_to_ready": null }));
    assert_eq!(
        serde_json::from_value::<ConnectReport>(written).unwrap(),
        report
    );
    assert!(serde_json::from_value::<ConnectReport>(json!({})).is_err());
    // The old form of an empty summary is no longer a summary.
    assert!(
        serde_json::from_value::<ConnectReport>(json!({ "connect_to_ready": { "n": 0 } })).is_err()
    );
}

#[test]
fn the_wire_form_of_attempts_and_probes() {
    let record = attempt(
        Credential::Good,
        AttemptOutcome::Unavailable {
            reason: "draining".to_owned(),
            retry_after_ms: None,
            close_code: Some(1013),
        },
    );
    assert_eq!(
        serde_json::to_value(&record).unwrap(),
        json!({
            "credential": "good_token",
            "started_ms": 1000.0,
            "ended_ms": 1012.0,
            "outcome": { "kind": "unavailable", "reason": "draining", "retry_after_ms": null, "close_code": 1013 },
            "stay": "left",
        })
    );
    let probe = ProbeRecord {
        system_ms: 5.0,
        latency_ms: 1.5,
        answer: ProbeAnswer::Status(503),
    };
    assert_eq!(
        serde_json::to_value(&probe).unwrap(),
        json!({ "system_ms": 5.0, "latency_ms": 1.5, "answer": { "status": 503 } })
    );
    // The positional form of before is an error, not a record of zeros.
    assert!(serde_json::from_value::<ProbeRecord>(json!([5.0, 1.5, 503])).is_err());
    assert!(
        serde_json::from_value::<AttemptRecord>(json!([
            "good_token",
            1000.0,
            1012.0,
            "admitted",
            null,
            "left"
        ]))
        .is_err()
    );
}

#[test]
fn every_label_reads_back() {
    let outcomes = [
        AttemptOutcome::Admitted { held: false },
        AttemptOutcome::Admitted { held: true },
        AttemptOutcome::Unavailable {
            reason: "hold_timeout".to_owned(),
            retry_after_ms: Some(1),
            close_code: None,
        },
        AttemptOutcome::Refused {
            status: 401,
            error: "invalid_token".to_owned(),
        },
        AttemptOutcome::NoConnection {
            why: "refused".to_owned(),
        },
        AttemptOutcome::Silent {
            why: "ended".to_owned(),
        },
    ];
    let labels: Vec<String> = outcomes.iter().map(AttemptOutcome::label).collect();
    assert_eq!(
        labels
            .iter()
            .map(|label| OutcomeLabel::parse(label))
            .collect::<Vec<_>>(),
        [
            Some(OutcomeLabel::Admitted { held: false }),
            Some(OutcomeLabel::Admitted { held: true }),
            Some(OutcomeLabel::Unavailable {
                reason: "hold_timeout"
            }),
            Some(OutcomeLabel::Refused {
                status: 401,
                error: "invalid_token"
            }),
            Some(OutcomeLabel::NoConnection),
            Some(OutcomeLabel::Silent),
        ]
    );
    assert_eq!(OutcomeLabel::parse("accepted"), None);
    assert_eq!(OutcomeLabel::parse("http_x:y"), None);
    assert_eq!(OutcomeLabel::parse("http_401"), None);
}
