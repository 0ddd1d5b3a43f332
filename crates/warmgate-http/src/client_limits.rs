//! Per-client-address limits on the public listener: WebSocket handshakes
//! per second, and open readiness event streams.
//!
//! A request past a limit gets 429 with `Retry-After` and a one-line JSON
//! body, is counted in [`CLIENT_REFUSALS_TOTAL`] by reason, and is logged
//! once per reason and window (see `log_sampler`). Whose address a request
//! has is `client_address`' business.
//!
//! **Invariant:** the state kept per address is bounded. The handshake
//! limiter forgets an address once its bucket is full again (at most a
//! second after its last handshake), swept at most every
//! [`SWEEP_INTERVAL`] on the handshake path; an address's stream count is
//! removed when its last stream closes. So the state holds the addresses
//! seen within the last sweep interval, plus those with an open stream.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use ipnet::IpNet;
use serde_json::json;
use tokio::time::Instant;

use crate::client_address::{client_address, limit_key};
use crate::log_sampler::{LogSampler, REFUSAL_LOG_WINDOW};

/// Requests refused before their handler, by `reason`: with 429 by a
/// per-address limit, with 400 by `request_head`'s `Host` rule, and (the
/// gate counts these) malformed or foreign-origin WebSocket upgrades.
pub const CLIENT_REFUSALS_TOTAL: &str = "warmgate_client_refusals_total";
/// Open `GET /readiness/events` streams.
pub const EVENT_STREAMS: &str = "warmgate_event_streams";

/// The `reason` of a handshake over the rate, and its body's `error`.
const HANDSHAKE_RATE: &str = "handshake_rate";
/// The `reason` of a stream over the count, and its body's `error`.
const EVENT_STREAMS_REASON: &str = "event_streams";

/// How often idle addresses are swept out of the handshake limiter.
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// The `Retry-After` of a refused stream: streams close when their client
/// leaves, which nothing here can foresee, so this is a plain hint.
const EVENT_STREAM_RETRY_AFTER_SECONDS: u64 = 5;

/// What [`ClientLimits`] enforces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientLimitSettings {
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// WebSocket handshakes per second per address (and as many at once);
    /// `None`: no limit.
    pub handshakes_per_second: Option<NonZeroU32>,
    /// Open event streams per address; `None`: no limit.
    pub max_event_streams: Option<usize>,
}

/// The per-address limits of the public listener. Cheap to clone; clones
/// share their state.
#[derive(Clone)]
pub struct ClientLimits {
    inner: Arc<Inner>,
}

struct Inner {
    settings: ClientLimitSettings,
    handshakes: Option<HandshakeLimiter>,
    /// Open event streams by address key; an address leaves the map with
    /// its last stream.
    streams: Mutex<HashMap<IpAddr, usize>>,
    refusal_log: LogSampler,
}

/// A keyed GCRA limiter from `governor`, on tokio's clock so that tests
/// with paused time drive it.
struct HandshakeLimiter {
    limiter: RateLimiter<IpAddr, HashMapStateStore<IpAddr>, TokioClock, NoOpMiddleware<Duration>>,
    clock: TokioClock,
    last_sweep: Mutex<Instant>,
}

impl std::fmt::Debug for ClientLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientLimits")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl Default for ClientLimits {
    /// No proxy trusted and no limit.
    fn default() -> Self {
        Self::new(ClientLimitSettings::default())
    }
}

impl ClientLimits {
    pub fn new(settings: ClientLimitSettings) -> Self {
        init_metrics();
        let handshakes = settings.handshakes_per_second.map(|rate| {
            let clock = TokioClock::new();
            HandshakeLimiter {
                limiter: RateLimiter::new(
                    Quota::per_second(rate),
                    HashMapStateStore::default(),
                    clock.clone(),
                ),
                clock,
                last_sweep: Mutex::new(Instant::now()),
            }
        });
        Self {
            inner: Arc::new(Inner {
                settings,
                handshakes,
                streams: Mutex::new(HashMap::new()),
                refusal_log: LogSampler::new(REFUSAL_LOG_WINDOW),
            }),
        }
    }

    /// Wraps WebSocket routes (`/ws`, `/echo`) so that each request counts
    /// against its address's handshake rate, and one past it gets 429
    /// before any other check. Without a rate, or without routes (both
    /// turned off), returns `router` as it is.
    pub fn limit_handshakes<S>(&self, router: Router<S>) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        if self.inner.handshakes.is_none() || !router.has_routes() {
            return router;
        }
        let limits = self.clone();
        router.route_layer(axum::middleware::from_fn(
            move |request: Request, next: Next| {
                let limits = limits.clone();
                async move {
                    match limits.admit_handshake(&request) {
                        Ok(()) => next.run(request).await,
                        Err(refused) => refused.into_response(),
                    }
                }
            },
        ))
    }

    fn admit_handshake(&self, request: &Request) -> Result<(), LimitRefusal> {
        let Some(handshakes) = &self.inner.handshakes else {
            return Ok(());
        };
        let address = client_address(request, &self.inner.settings.trusted_proxies);
        handshakes.sweep_if_due();
        match handshakes.limiter.check_key(&limit_key(address)) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(handshakes.clock.now());
                // Whole seconds, rounded up, and at least 1.
                let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                let rate = self
                    .inner
                    .settings
                    .handshakes_per_second
                    .map_or(0, NonZeroU32::get);
                Err(self.refuse(
                    HANDSHAKE_RATE,
                    address,
                    retry_after.max(1),
                    format!(
                        "too many WebSocket handshakes from this address: at most {rate} a second; retry later"
                    ),
                ))
            }
        }
    }

    /// Counts an event stream opening for `request`'s address, or refuses
    /// it with 429 when the address already holds its maximum. The stream
    /// is counted until the returned slot is dropped.
    pub(crate) fn open_event_stream<B>(
        &self,
        request: &axum::http::Request<B>,
    ) -> Result<EventStreamSlot, LimitRefusal> {
        let address = client_address(request, &self.inner.settings.trusted_proxies);
        let key = limit_key(address);
        {
            let mut streams = self
                .inner
                .streams
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let open = streams.entry(key).or_insert(0);
            match self.inner.settings.max_event_streams {
                Some(max) if *open >= max => {
                    let message = format!(
                        "too many open readiness event streams from this address: at most {max}; close one first"
                    );
                    drop(streams);
                    return Err(self.refuse(
                        EVENT_STREAMS_REASON,
                        address,
                        EVENT_STREAM_RETRY_AFTER_SECONDS,
                        message,
                    ));
                }
                _ => *open += 1,
            }
        }
        metrics::gauge!(EVENT_STREAMS).increment(1.0);
        Ok(EventStreamSlot {
            inner: Arc::clone(&self.inner),
            key,
        })
    }

    /// A refusal, counted and (sampled) logged now; its answer is 429.
    fn refuse(
        &self,
        reason: &'static str,
        address: IpAddr,
        retry_after_seconds: u64,
        message: String,
    ) -> LimitRefusal {
        metrics::counter!(CLIENT_REFUSALS_TOTAL, "reason" => reason).increment(1);
        match self.inner.refusal_log.admit(reason, Instant::now()) {
            Some(left_out) => tracing::warn!(
                reason,
                client = %address,
                retry_after_seconds,
                left_out,
                "request refused with 429: {message}"
            ),
            None => tracing::debug!(
                reason,
                client = %address,
                "request refused with 429: {message}"
            ),
        }
        LimitRefusal {
            reason,
            message,
            retry_after_seconds,
        }
    }

    /// How many addresses the handshake limiter holds state for.
    #[cfg(test)]
    pub(crate) fn n_tracked_addresses(&self) -> usize {
        self.inner
            .handshakes
            .as_ref()
            .map_or(0, |handshakes| handshakes.limiter.len())
    }

    /// How many addresses hold an open event stream.
    #[cfg(test)]
    pub(crate) fn n_streaming_addresses(&self) -> usize {
        self.inner
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// A request refused by a per-address limit, already counted and logged.
/// Its answer is 429 with `Retry-After`, `Cache-Control: no-store` and a
/// one-line JSON body naming the reason.
#[derive(Debug)]
pub(crate) struct LimitRefusal {
    reason: &'static str,
    message: String,
    retry_after_seconds: u64,
}

impl IntoResponse for LimitRefusal {
    fn into_response(self) -> Response {
        let body = json!({"error": self.reason, "message": self.message});
        let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from(self.retry_after_seconds),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

// === impl HandshakeLimiter ===

impl HandshakeLimiter {
    /// Forgets the addresses whose bucket is full again, at most once per
    /// [`SWEEP_INTERVAL`]: governor keeps a key until told to drop it.
    fn sweep_if_due(&self) {
        let now = Instant::now();
        let mut last_sweep = self
            .last_sweep
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if now.duration_since(*last_sweep) < SWEEP_INTERVAL {
            return;
        }
        *last_sweep = now;
        drop(last_sweep);
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// One open event stream, counted against its address until dropped.
#[derive(Debug)]
pub(crate) struct EventStreamSlot {
    inner: Arc<Inner>,
    key: IpAddr,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner").finish_non_exhaustive()
    }
}

impl Drop for EventStreamSlot {
    fn drop(&mut self) {
        metrics::gauge!(EVENT_STREAMS).decrement(1.0);
        let mut streams = self
            .inner
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(open) = streams.get_mut(&self.key) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                streams.remove(&self.key);
            }
        }
    }
}

/// governor's clock on tokio's time: a reading is the time since the
/// clock was made, as governor's `Duration` reference instant.
#[derive(Debug, Clone)]
struct TokioClock {
    start: Instant,
}

impl TokioClock {
    fn new() -> Self {
        Self {
            start: Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        Instant::now().duration_since(self.start)
    }
}

/// Describes the metrics and registers every series at zero.
fn init_metrics() {
    metrics::describe_counter!(
        CLIENT_REFUSALS_TOTAL,
        "requests refused before their handler, by reason: 429 past a per-client-address limit (handshake_rate, event_streams), 400 for a missing, repeated or invalid Host (host), and WebSocket upgrades refused as malformed (400, 426) or from a foreign origin (403)"
    );
    for reason in [HANDSHAKE_RATE, EVENT_STREAMS_REASON] {
        metrics::counter!(CLIENT_REFUSALS_TOTAL, "reason" => reason).increment(0);
    }
    metrics::describe_gauge!(EVENT_STREAMS, "open GET /readiness/events streams");
    metrics::gauge!(EVENT_STREAMS).increment(0.0);
}

#[cfg(test)]
mod tests;
