//! The statuses of `grpc.health.v1.Health` for each state, and `Watch`
//! driven through the service without a socket, waiting on snapshots.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures_util::StreamExt;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::Health;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use warmgate_core::{CheckId, CheckOutcome, CheckSpec, Event, Machine, PhaseSpec, Plan};
use warmgate_engine::{EngineBuilder, EngineSettings, ReadinessHandle};

use super::{GateHealth, list_statuses, serving_status, watched_status};

/// database (required), cache (optional).
fn machine() -> Machine {
    let plan = Plan::new(
        vec![PhaseSpec {
            name: "dependencies".into(),
            checks: vec![
                CheckSpec::new("database", "tcp"),
                CheckSpec::new("cache", "tcp").optional(),
            ],
        }],
        Duration::from_secs(60),
    )
    .unwrap();
    Machine::new(plan)
}

fn result(machine: &mut Machine, check: usize, passed: bool) {
    let outcome = if passed {
        CheckOutcome::Passed
    } else {
        CheckOutcome::Failed {
            error: "connection refused".into(),
            class: warmgate_core::FailureClass::ConnectionRefused,
        }
    };
    machine.apply(Event::CheckCompleted {
        check: CheckId(check),
        outcome,
        latency: Duration::from_millis(1),
        at: Duration::from_millis(10),
    });
}

#[test]
fn the_gate_is_unknown_before_any_result_then_follows_the_state() {
    let mut machine = machine();
    let status = |machine: &Machine, service| serving_status(machine.snapshot(), service);
    assert_eq!(status(&machine, ""), Some(ServingStatus::Unknown));
    assert_eq!(status(&machine, "database"), Some(ServingStatus::Unknown));
    assert_eq!(status(&machine, "nope"), None);

    result(&mut machine, 0, false);
    assert_eq!(status(&machine, ""), Some(ServingStatus::NotServing));
    assert_eq!(
        status(&machine, "database"),
        Some(ServingStatus::NotServing)
    );
    assert_eq!(status(&machine, "cache"), Some(ServingStatus::Unknown));

    result(&mut machine, 0, true);
    result(&mut machine, 1, false);
    // Degraded admits traffic: the gate serves, the optional check does not.
    assert_eq!(status(&machine, ""), Some(ServingStatus::Serving));
    assert_eq!(status(&machine, "database"), Some(ServingStatus::Serving));
    assert_eq!(status(&machine, "cache"), Some(ServingStatus::NotServing));

    machine.apply(Event::DrainRequested {
        at: Duration::from_millis(20),
    });
    for service in ["", "database", "cache"] {
        assert_eq!(status(&machine, service), Some(ServingStatus::NotServing));
    }
    assert_eq!(
        watched_status(machine.snapshot(), "nope"),
        ServingStatus::NotServing
    );
}

#[test]
fn a_watch_on_an_unknown_name_gets_service_unknown() {
    let machine = machine();
    assert_eq!(
        watched_status(machine.snapshot(), "nope"),
        ServingStatus::ServiceUnknown
    );
}

#[test]
fn list_has_the_gate_and_every_check() {
    let mut machine = machine();
    result(&mut machine, 0, true);
    let statuses = list_statuses(machine.snapshot());
    let status = |service: &str| statuses[service].status;
    assert_eq!(statuses.len(), 3);
    assert_eq!(status(""), ServingStatus::Serving as i32);
    assert_eq!(status("database"), ServingStatus::Serving as i32);
    assert_eq!(status("cache"), ServingStatus::Unknown as i32);
}

fn signal_handle() -> ReadinessHandle {
    let plan = Plan::new(
        vec![PhaseSpec {
            name: "services".into(),
            checks: vec![
                CheckSpec::new("agent", "signal").thresholds(1, 1),
                CheckSpec::new("other", "signal").optional(),
            ],
        }],
        Duration::from_secs(60),
    )
    .unwrap();
    EngineBuilder::new(plan, EngineSettings::default())
        .signal("agent")
        .unwrap()
        .signal("other")
        .unwrap()
        .spawn()
        .unwrap()
}

fn status_of(message: Option<Result<HealthCheckResponse, tonic::Status>>) -> ServingStatus {
    ServingStatus::try_from(message.unwrap().unwrap().status).unwrap()
}

#[tokio::test]
async fn watch_sends_the_current_status_then_each_change_once_then_ends_at_drain() {
    let handle = signal_handle();
    let health = GateHealth {
        handle: handle.clone(),
    };
    let request = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    let mut stream = health.watch(request).await.unwrap().into_inner();
    assert_eq!(status_of(stream.next().await), ServingStatus::Unknown);
    let request = tonic::Request::new(HealthCheckRequest {
        service: "agent".into(),
    });
    let mut agent_stream = health.watch(request).await.unwrap().into_inner();
    assert_eq!(status_of(agent_stream.next().await), ServingStatus::Unknown);

    let set = |name: &'static str, ready| {
        let handle = handle.clone();
        async move {
            handle
                .set_signal_applied(name, ready, None, Duration::from_secs(5))
                .await
                .unwrap();
        }
    };
    // A new snapshot that leaves `agent` as it was sends `agent`'s
    // watchers nothing: their next message is `agent`'s own change.
    set("other", true).await;
    assert_eq!(status_of(stream.next().await), ServingStatus::NotServing);
    set("agent", true).await;
    assert_eq!(status_of(agent_stream.next().await), ServingStatus::Serving);
    let set = |ready| set("agent", ready);
    assert_eq!(status_of(stream.next().await), ServingStatus::Serving);
    set(false).await;
    assert_eq!(status_of(stream.next().await), ServingStatus::NotServing);
    // Published snapshots that leave the status as it was send nothing:
    // the next message is the next change.
    set(false).await;
    set(true).await;
    assert_eq!(status_of(stream.next().await), ServingStatus::Serving);

    handle.drain().unwrap();
    for stream in [&mut stream, &mut agent_stream] {
        assert_eq!(status_of(stream.next().await), ServingStatus::NotServing);
        assert!(stream.next().await.is_none());
    }
}

#[tokio::test]
async fn check_on_an_unknown_name_is_not_found() {
    let health = GateHealth {
        handle: signal_handle(),
    };
    let request = tonic::Request::new(HealthCheckRequest {
        service: "nope".into(),
    });
    let status = health.check(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
}
