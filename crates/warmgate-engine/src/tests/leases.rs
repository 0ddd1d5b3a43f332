//! Signal leases, in paused time: a lease not renewed runs out at its ttl,
//! renewing pushes it back, a set without a ttl clears it, and many leases
//! share the engine's one timer.

use std::time::Duration;

use warmgate_core::{CheckSpec, CheckStatus, GateState, PhaseSpec, Plan};

use super::{Step, scripted, spawn, status, wait_for};
use crate::{EngineBuilder, EngineError, EngineSettings, ReadinessHandle};

const APPLY_LIMIT: Duration = Duration::from_secs(1);

/// A gate whose database passes and whose agent signal is set with `ttl`.
async fn ready_with_lease(ttl: Duration) -> ReadinessHandle {
    let (probe, _script) = scripted(|_| Step::Pass);
    let handle = spawn(probe);
    wait_for(&handle, |s| status(s, "database") == CheckStatus::Passing).await;
    handle
        .set_signal_applied_with_ttl("agent", true, None, Some(ttl), APPLY_LIMIT)
        .await
        .unwrap();
    assert_eq!(handle.current().state, GateState::Ready);
    handle
}

#[tokio::test(start_paused = true)]
async fn a_lease_not_renewed_runs_out_at_its_ttl() {
    let ttl = Duration::from_millis(300);
    let handle = ready_with_lease(ttl).await;
    let set_at = handle.elapsed();
    let lease = handle.verbose().checks[1].details.lease.unwrap();
    assert_eq!(lease.ttl, ttl);
    assert_eq!(lease.expires_at, set_at + ttl);

    let not_ready = wait_for(&handle, |s| s.state == GateState::NotReady).await;
    let agent = not_ready.check("agent").unwrap();
    assert_eq!(agent.status, CheckStatus::Failing);
    assert_eq!(agent.since, set_at + ttl);
    assert_eq!(not_ready.pending, ["agent"]);
    let details = &handle.verbose().checks[1].details;
    assert_eq!(
        details.last_error.as_deref(),
        Some("lease expired: not renewed within 300ms")
    );
    assert_eq!(details.lease, None);
}

#[tokio::test(start_paused = true)]
async fn renewing_a_lease_pushes_its_expiry_back() {
    let ttl = Duration::from_secs(1);
    let handle = ready_with_lease(ttl).await;
    let mut renewed_at = handle.elapsed();
    for _ in 0..5 {
        tokio::time::sleep(ttl * 8 / 10).await;
        handle
            .set_signal_applied_with_ttl("agent", true, None, Some(ttl), APPLY_LIMIT)
            .await
            .unwrap();
        renewed_at = handle.elapsed();
        assert_eq!(handle.current().state, GateState::Ready);
    }
    let not_ready = wait_for(&handle, |s| s.state == GateState::NotReady).await;
    assert_eq!(not_ready.check("agent").unwrap().since, renewed_at + ttl);
}

#[tokio::test(start_paused = true)]
async fn setting_a_signal_without_a_ttl_clears_its_lease() {
    let handle = ready_with_lease(Duration::from_secs(1)).await;
    handle
        .set_signal_applied("agent", true, None, APPLY_LIMIT)
        .await
        .unwrap();
    assert_eq!(handle.verbose().checks[1].details.lease, None);
    let seq = handle.current().seq;
    tokio::time::sleep(Duration::from_secs(24 * 60 * 60)).await;
    assert_eq!(handle.current().seq, seq);
    assert_eq!(handle.current().state, GateState::Ready);
}

#[tokio::test(start_paused = true)]
async fn a_ttl_out_of_bounds_is_refused() {
    let handle = ready_with_lease(Duration::from_secs(1)).await;
    assert_eq!(
        handle.set_signal_with_ttl("agent", true, None, Some(Duration::from_millis(99))),
        Err(EngineError::LeaseTtlOutOfRange { ttl_ms: 99 })
    );
    assert_eq!(
        handle.set_signal_with_ttl(
            "agent",
            true,
            None,
            Some(ReadinessHandle::MAX_LEASE_TTL + Duration::from_millis(1))
        ),
        Err(EngineError::LeaseTtlOutOfRange { ttl_ms: 86_400_001 })
    );
    assert_eq!(
        handle.set_signal_with_ttl("nope", true, None, Some(Duration::from_secs(1))),
        Err(EngineError::UnknownCheck {
            name: "nope".into()
        })
    );
}

#[tokio::test(start_paused = true)]
async fn many_leases_share_one_timer_and_run_out_in_order() {
    const N_SIGNALS: usize = 100;
    let names: Vec<String> = (0..N_SIGNALS).map(|i| format!("s{i}")).collect();
    let plan = Plan::new(
        vec![PhaseSpec {
            name: "services".into(),
            checks: names
                .iter()
                .map(|name| CheckSpec::new(name.clone(), "signal"))
                .collect(),
        }],
        Duration::from_secs(60),
    )
    .unwrap();
    let mut builder = EngineBuilder::new(plan, EngineSettings::default());
    for name in &names {
        builder = builder.signal(name).unwrap();
    }
    let handle = builder.spawn().unwrap();
    let metrics = tokio::runtime::Handle::current().metrics();
    let n_tasks = metrics.num_alive_tasks();
    // Signal i gets a lease of (i + 1) seconds, set in reverse order.
    for (index, name) in names.iter().enumerate().rev() {
        let ttl = Duration::from_secs(u64::try_from(index).unwrap() + 1);
        handle
            .set_signal_applied_with_ttl(name, true, None, Some(ttl), APPLY_LIMIT)
            .await
            .unwrap();
    }
    assert_eq!(handle.current().state, GateState::Ready);
    // No task per lease: the engine's own timer holds them all.
    assert_eq!(metrics.num_alive_tasks(), n_tasks);
    let set_at = handle.elapsed();
    let mut snapshot_rx = handle.subscribe();
    let mut n_expired = 0;
    while n_expired < N_SIGNALS {
        let snapshot = snapshot_rx
            .wait_for(|s| s.pending.len() > n_expired)
            .await
            .unwrap()
            .clone();
        // One at a time, in ttl order, each at its own expiry.
        assert_eq!(snapshot.pending.len(), n_expired + 1);
        let name = &names[n_expired];
        assert_eq!(snapshot.pending.last(), Some(name));
        let ttl = Duration::from_secs(u64::try_from(n_expired).unwrap() + 1);
        let since = snapshot.check(name).unwrap().since;
        assert!(since >= ttl && since <= set_at + ttl, "{name}: {since:?}");
        n_expired += 1;
    }
    assert_eq!(handle.current().state, GateState::NotReady);
}
