//! The gate's metrics, through the `metrics` facade: how long clients wait
//! and how that ends, and how many are held or admitted right now.
//!
//! This module only records; `connection` says when, through one
//! [`ConnectionMeter`] per client. Without an installed recorder (unit
//! tests) every call is a no-op.
//!
//! The series a connection touches are looked up once, when the gate and
//! its routes are built ([`init`], [`register_route`]), and kept as
//! handles: a registry look-up per call costs every connection a hash of
//! its labels and a key allocation (about 2 % of a WebSocket connection's
//! instructions, measured with callgrind; see `docs/benchmarks.md`).

use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};

use warmgate_http::CLIENT_REFUSALS_TOTAL;

use crate::protocol::UnavailableReason;

pub const CONNECTION_WAIT_SECONDS: &str = "warmgate_connection_wait_seconds";
pub const CONNECTIONS: &str = "warmgate_connections";
pub const CONNECTIONS_TOTAL: &str = "warmgate_connections_total";
pub const AUTH_REFUSALS_TOTAL: &str = "warmgate_auth_refusals_total";
pub const RATE_LIMITED_TOTAL: &str = "warmgate_rate_limited_total";

/// The buckets of [`CONNECTION_WAIT_SECONDS`]: from 100 us (an admission
/// on a ready gate) to 10 s (past any sane hold).
pub const WAIT_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

const HELD: &str = "held";
const ADMITTED: &str = "admitted";
const LEFT_WHILE_HELD: &str = "left_while_held";
const LEFT_DURING_UPGRADE: &str = "left_during_upgrade";
const TOKEN_EXPIRED_WHILE_HELD: &str = "token_expired_while_held";
const SLOW_CONSUMER: &str = "slow_consumer";

/// Every reason a client is refused, for registering its series up front.
const REFUSALS: [UnavailableReason; 5] = [
    UnavailableReason::HoldTimeout,
    UnavailableReason::Failed,
    UnavailableReason::Draining,
    UnavailableReason::Capacity,
    UnavailableReason::UpstreamUnavailable,
];

/// The `outcome` label of a refusal.
fn refused_outcome(reason: UnavailableReason) -> &'static str {
    // An exhaustive match: a new reason does not compile until it has a
    // label here, and then belongs in `REFUSALS` too.
    match reason {
        UnavailableReason::HoldTimeout => "unavailable:hold_timeout",
        UnavailableReason::Failed => "unavailable:failed",
        UnavailableReason::Draining => "unavailable:draining",
        UnavailableReason::Capacity => "unavailable:capacity",
        UnavailableReason::UpstreamUnavailable => "unavailable:upstream_unavailable",
    }
}

/// The handles of the series every connection touches: the wait histogram
/// and the finished count, by outcome. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Meters(Arc<Handles>);

struct Handles {
    /// [`CONNECTION_WAIT_SECONDS`] by `outcome`, for every decided outcome.
    waits: Vec<(&'static str, Histogram)>,
    /// [`CONNECTIONS_TOTAL`] by `outcome`, for every outcome.
    finished: Vec<(&'static str, Counter)>,
}

impl Meters {
    fn wait(&self, outcome: &str) -> Option<&Histogram> {
        let (_, histogram) = self.0.waits.iter().find(|(name, _)| *name == outcome)?;
        Some(histogram)
    }

    fn finished(&self, outcome: &str) -> Option<&Counter> {
        let (_, counter) = self.0.finished.iter().find(|(name, _)| *name == outcome)?;
        Some(counter)
    }
}

impl std::fmt::Debug for Meters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meters").finish_non_exhaustive()
    }
}

/// One route's handles: its gauges by stage, and the gate's [`Meters`].
pub(crate) struct RouteMeters {
    held: Gauge,
    admitted: Gauge,
    meters: Meters,
}

impl std::fmt::Debug for RouteMeters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteMeters").finish_non_exhaustive()
    }
}

/// Describes the gate's metrics and registers every series at zero, so a
/// dashboard never sees a series appear late: the wait histogram and the
/// finished count for every outcome (each route's gauges are registered
/// with the route, by [`register_route`]). Returns the handles a
/// connection uses.
pub(crate) fn init() -> Meters {
    metrics::describe_histogram!(
        CONNECTION_WAIT_SECONDS,
        metrics::Unit::Seconds,
        "time from the WebSocket upgrade to admission or refusal, by outcome"
    );
    metrics::describe_gauge!(
        CONNECTIONS,
        "open WebSocket connections, by route and stage (held or admitted)"
    );
    metrics::describe_counter!(
        CONNECTIONS_TOTAL,
        "finished WebSocket connections, by outcome"
    );
    let decided = [ADMITTED, TOKEN_EXPIRED_WHILE_HELD]
        .into_iter()
        .chain(REFUSALS.map(refused_outcome));
    let mut waits = Vec::new();
    let mut finished = Vec::new();
    for outcome in decided {
        // Registering the handle is enough for the exporter to render the
        // histogram with zero counts.
        waits.push((
            outcome,
            metrics::histogram!(CONNECTION_WAIT_SECONDS, "outcome" => outcome),
        ));
        finished.push((outcome, finished_counter(outcome)));
    }
    for outcome in [LEFT_WHILE_HELD, LEFT_DURING_UPGRADE, SLOW_CONSUMER] {
        finished.push((outcome, finished_counter(outcome)));
    }
    metrics::describe_counter!(
        AUTH_REFUSALS_TOTAL,
        "WebSocket upgrades refused for their token (401) or for keys not loaded yet (503), by error"
    );
    for code in warmgate_auth::AuthError::REFUSAL_CODES {
        metrics::counter!(AUTH_REFUSALS_TOTAL, "error" => code).increment(0);
    }
    metrics::describe_counter!(
        RATE_LIMITED_TOTAL,
        "messages refused by the per-connection rate limit (action refused), and connections closed with 1008 for flooding (action closed)"
    );
    for action in ["refused", "closed"] {
        metrics::counter!(RATE_LIMITED_TOTAL, "action" => action).increment(0);
    }
    // warmgate_http describes this counter and registers its own reasons.
    for reason in crate::upgrade::HANDSHAKE_REFUSAL_REASONS {
        metrics::counter!(CLIENT_REFUSALS_TOTAL, "reason" => reason).increment(0);
    }
    Meters(Arc::new(Handles { waits, finished }))
}

/// The finished count of `outcome`, registered at zero.
fn finished_counter(outcome: &'static str) -> Counter {
    let counter = metrics::counter!(CONNECTIONS_TOTAL, "outcome" => outcome);
    counter.increment(0);
    counter
}

/// Registers the connection gauges of one WebSocket route at zero, for
/// both stages; returns the route's handles.
pub(crate) fn register_route(route: &'static str, meters: &Meters) -> Arc<RouteMeters> {
    let gauge = |stage: &'static str| {
        let gauge = metrics::gauge!(CONNECTIONS, "route" => route, "stage" => stage);
        gauge.set(0.0);
        gauge
    };
    Arc::new(RouteMeters {
        held: gauge(HELD),
        admitted: gauge(ADMITTED),
        meters: meters.clone(),
    })
}

/// Counts a client answered with 101 that went away before the upgrade
/// completed: it never became a connection, but it was accepted.
pub(crate) fn left_during_upgrade() {
    metrics::counter!(CONNECTIONS_TOTAL, "outcome" => LEFT_DURING_UPGRADE).increment(1);
}

/// Counts an upgrade refused as malformed (400, 426) or from a foreign
/// origin (403), by reason.
pub(crate) fn handshake_refused(reason: &'static str) {
    metrics::counter!(CLIENT_REFUSALS_TOTAL, "reason" => reason).increment(1);
}

/// Counts an upgrade refused for its token.
pub(crate) fn auth_refused(code: &'static str) {
    metrics::counter!(AUTH_REFUSALS_TOTAL, "error" => code).increment(1);
}

/// Counts a message refused by the rate limit, or a connection closed for
/// flooding.
pub(crate) fn rate_limited(closed: bool) {
    let action = if closed { "closed" } else { "refused" };
    metrics::counter!(RATE_LIMITED_TOTAL, "action" => action).increment(1);
}

// === impl ConnectionMeter ===

/// One connection's metrics, from upgrade to close.
///
/// **Invariant:** the connection is counted in at most one stage at a time,
/// and leaves it on every path out (the stage is a guard, dropped with the
/// meter at the latest). Its outcome is counted once, by
/// [`ConnectionMeter::finish`], which the connection calls before it sends
/// its last frame; so a client that has seen its close frame already finds
/// itself counted.
#[derive(Debug)]
pub(crate) struct ConnectionMeter {
    route: Arc<RouteMeters>,
    stage: Option<InStage>,
    /// The outcome once admitted or refused; until then, a connection that
    /// ends has left while held.
    decided: Option<&'static str>,
    /// How the connection ended, when that overrides `decided`.
    ended_as: Option<&'static str>,
    finished: bool,
}

impl ConnectionMeter {
    pub(crate) fn new(route: Arc<RouteMeters>) -> Self {
        Self {
            route,
            stage: None,
            decided: None,
            ended_as: None,
            finished: false,
        }
    }

    /// The client is held.
    pub(crate) fn held(&mut self) {
        self.stage = Some(InStage::enter(&self.route.held));
    }

    /// The client is admitted, `waited` after its upgrade.
    pub(crate) fn admitted(&mut self, waited: Duration) {
        self.decide(ADMITTED, waited);
        self.stage = Some(InStage::enter(&self.route.admitted));
    }

    /// The client is refused, `waited` after its upgrade.
    pub(crate) fn refused(&mut self, reason: UnavailableReason, waited: Duration) {
        self.decide(refused_outcome(reason), waited);
    }

    /// The client's token expired while it was held, `waited` after its
    /// upgrade.
    pub(crate) fn token_expired_while_held(&mut self, waited: Duration) {
        self.decide(TOKEN_EXPIRED_WHILE_HELD, waited);
    }

    /// The client took no frame for `write_timeout` and is closed, held
    /// or admitted: it is counted as `slow_consumer`.
    pub(crate) fn slow_consumer(&mut self) {
        self.ended_as = Some(SLOW_CONSUMER);
    }

    fn decide(&mut self, outcome: &'static str, waited: Duration) {
        // The old stage goes first, so the client is never counted twice.
        self.stage = None;
        self.decided = Some(outcome);
        if let Some(histogram) = self.route.meters.wait(outcome) {
            histogram.record(waited.as_secs_f64());
        }
    }

    /// The connection is over (or about to send its last frame): it leaves
    /// its stage and counts its outcome. Later calls do nothing.
    pub(crate) fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.stage = None;
        if let Some(counter) = self.route.meters.finished(self.outcome()) {
            counter.increment(1);
        }
    }

    /// The `outcome` label: `admitted`, `unavailable:<reason>`,
    /// `token_expired_while_held`, `slow_consumer`, or `left_while_held`.
    pub(crate) fn outcome(&self) -> &'static str {
        self.ended_as.or(self.decided).unwrap_or(LEFT_WHILE_HELD)
    }
}

/// Counts one connection in a stage (its route's gauge of that stage) for
/// as long as it lives.
struct InStage(Gauge);

impl std::fmt::Debug for InStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InStage").finish_non_exhaustive()
    }
}

impl InStage {
    fn enter(gauge: &Gauge) -> Self {
        gauge.increment(1.0);
        Self(gauge.clone())
    }
}

impl Drop for InStage {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

#[cfg(test)]
mod tests;
