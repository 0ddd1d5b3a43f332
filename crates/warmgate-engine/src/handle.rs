//! The handle the rest of the process uses to read and steer readiness.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use warmgate_core::{CheckId, Snapshot, VerboseSnapshot};

use crate::EngineError;
use crate::engine::Message;
use crate::history::{HISTORY_CAPACITY, History};

/// A receiver that wakes whenever a new snapshot is published.
pub type SnapshotRx = watch::Receiver<Arc<Snapshot>>;

/// What the engine publishes and readers read: the latest snapshots and the
/// engine's heartbeat. Only the engine task writes here.
#[derive(Debug)]
pub(crate) struct Published {
    started_at: Instant,
    snapshot: ArcSwap<Snapshot>,
    verbose: ArcSwap<VerboseSnapshot>,
    /// The transition history, replaced after each transition.
    history: ArcSwap<History>,
    /// Milliseconds since `started_at` at the engine's latest heartbeat.
    heartbeat_ms: AtomicU64,
    liveness_timeout: Duration,
}

impl Published {
    pub(crate) fn new(
        started_at: Instant,
        snapshot: Arc<Snapshot>,
        verbose: Arc<VerboseSnapshot>,
        liveness_timeout: Duration,
    ) -> Self {
        Self {
            started_at,
            snapshot: ArcSwap::new(snapshot),
            verbose: ArcSwap::new(verbose),
            history: ArcSwap::from_pointee(History::new(HISTORY_CAPACITY)),
            heartbeat_ms: AtomicU64::new(0),
            liveness_timeout,
        }
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.started_at.elapsed()
    }

    pub(crate) fn store_snapshot(&self, snapshot: Arc<Snapshot>) {
        self.snapshot.store(snapshot);
    }

    pub(crate) fn store_verbose(&self, verbose: Arc<VerboseSnapshot>) {
        self.verbose.store(verbose);
    }

    pub(crate) fn store_history(&self, history: Arc<History>) {
        self.history.store(history);
    }

    pub(crate) fn beat(&self) {
        let millis = u64::try_from(self.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.heartbeat_ms.store(millis, Ordering::Release);
    }
}

/// A cheap, cloneable handle to the engine.
///
/// Reads never wait: [`ReadinessHandle::current`] is one atomic load and
/// takes no lock. Writes ([`ReadinessHandle::set_signal`],
/// [`ReadinessHandle::drain`]) are messages to the engine task, which applies
/// them in order.
#[derive(Debug, Clone)]
pub struct ReadinessHandle {
    published: Arc<Published>,
    snapshot_rx: SnapshotRx,
    inbox_tx: mpsc::UnboundedSender<Message>,
    signals: Arc<HashMap<String, CheckId>>,
    kinds: Arc<HashMap<String, String>>,
}

impl ReadinessHandle {
    pub(crate) fn new(
        published: Arc<Published>,
        snapshot_rx: SnapshotRx,
        inbox_tx: mpsc::UnboundedSender<Message>,
        signals: HashMap<String, CheckId>,
        kinds: HashMap<String, String>,
    ) -> Self {
        Self {
            published,
            snapshot_rx,
            inbox_tx,
            signals: Arc::new(signals),
            kinds: Arc::new(kinds),
        }
    }

    /// The latest snapshot. No await and no lock.
    pub fn current(&self) -> Arc<Snapshot> {
        self.published.snapshot.load_full()
    }

    /// Calls `read` with the latest snapshot without touching its reference
    /// count: the cheapest read, for hot paths that need a field or two.
    pub fn with_current<R>(&self, read: impl FnOnce(&Snapshot) -> R) -> R {
        read(&self.published.snapshot.load())
    }

    /// The latest verbose snapshot, for the admin listener. It is refreshed
    /// after every attempt, not only on observable changes.
    pub fn verbose(&self) -> Arc<VerboseSnapshot> {
        self.published.verbose.load_full()
    }

    /// The transition history: the latest [`crate::HISTORY_CAPACITY`]
    /// transitions, oldest first. No await and no lock. Every transition
    /// up to the seq of [`ReadinessHandle::current`] is in it (or was
    /// dropped from it) by the time that snapshot is published.
    pub fn history(&self) -> Arc<History> {
        self.published.history.load_full()
    }

    /// A receiver that sees the current snapshot, then wakes on each change.
    pub fn subscribe(&self) -> SnapshotRx {
        let mut snapshot_rx = self.snapshot_rx.clone();
        snapshot_rx.mark_changed();
        snapshot_rx
    }

    /// The shortest signal lease: 100 ms.
    pub const MIN_LEASE_TTL: Duration = Duration::from_millis(100);
    /// The longest signal lease: 24 h.
    pub const MAX_LEASE_TTL: Duration = Duration::from_secs(24 * 60 * 60);

    /// Sets in-process signal check `name` to ready or not. `reason` says why
    /// it is not ready, and is shown as the check's error. Returns once the
    /// engine has the request; the snapshot follows a moment later. Clears
    /// any lease the signal held: it stays as set until set again.
    pub fn set_signal(
        &self,
        name: &str,
        ready: bool,
        reason: Option<String>,
    ) -> Result<(), EngineError> {
        self.send_signal(name, ready, reason, None, None)
    }

    /// [`ReadinessHandle::set_signal`] with a lease: unless the signal is
    /// set again within `ttl`, it turns failing on its own, with the error
    /// `lease expired: not renewed within 30s` (for a `ttl` of 30 s), so a
    /// setter that died cannot leave the gate ready. Setting it again, with
    /// or without a ttl, replaces the lease. `ttl: None` is `set_signal`.
    ///
    /// Errors: [`EngineError::LeaseTtlOutOfRange`] unless `ttl` is within
    /// [`ReadinessHandle::MIN_LEASE_TTL`] and
    /// [`ReadinessHandle::MAX_LEASE_TTL`]; else as `set_signal`.
    pub fn set_signal_with_ttl(
        &self,
        name: &str,
        ready: bool,
        reason: Option<String>,
        ttl: Option<Duration>,
    ) -> Result<(), EngineError> {
        self.send_signal(name, ready, reason, ttl, None)
    }

    /// [`ReadinessHandle::set_signal`], returning only once the engine has
    /// applied it and published the resulting snapshot, so that a read
    /// right after sees it. Waits at most `within`.
    pub async fn set_signal_applied(
        &self,
        name: &str,
        ready: bool,
        reason: Option<String>,
        within: Duration,
    ) -> Result<(), EngineError> {
        self.set_signal_applied_with_ttl(name, ready, reason, None, within)
            .await
    }

    /// [`ReadinessHandle::set_signal_with_ttl`], returning only once the
    /// engine has applied it and published the resulting snapshot. Waits at
    /// most `within`.
    pub async fn set_signal_applied_with_ttl(
        &self,
        name: &str,
        ready: bool,
        reason: Option<String>,
        ttl: Option<Duration>,
        within: Duration,
    ) -> Result<(), EngineError> {
        let (applied_tx, applied_rx) = oneshot::channel();
        self.send_signal(name, ready, reason, ttl, Some(applied_tx))?;
        match tokio::time::timeout(within, applied_rx).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(EngineError::EngineStopped),
            Err(_) => Err(EngineError::NotApplied {
                waited_ms: u64::try_from(within.as_millis()).unwrap_or(u64::MAX),
            }),
        }
    }

    fn send_signal(
        &self,
        name: &str,
        ready: bool,
        reason: Option<String>,
        ttl: Option<Duration>,
        applied: Option<oneshot::Sender<()>>,
    ) -> Result<(), EngineError> {
        let lease_ttls = Self::MIN_LEASE_TTL..=Self::MAX_LEASE_TTL;
        if let Some(ttl) = ttl.filter(|ttl| !lease_ttls.contains(ttl)) {
            return Err(EngineError::LeaseTtlOutOfRange {
                ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            });
        }
        let check = match self.signals.get(name) {
            Some(check) => *check,
            None => {
                return Err(match self.kinds.get(name) {
                    Some(kind) => EngineError::NotASignal {
                        name: name.to_owned(),
                        kind: kind.clone(),
                    },
                    None => EngineError::UnknownCheck {
                        name: name.to_owned(),
                    },
                });
            }
        };
        self.inbox_tx
            .send(Message::SignalSet {
                check,
                ready,
                reason,
                ttl,
                applied,
            })
            .map_err(|_| EngineError::EngineStopped)
    }

    /// Starts draining: the state turns to `draining` and never changes
    /// again. Draining twice is harmless.
    pub fn drain(&self) -> Result<(), EngineError> {
        self.inbox_tx
            .send(Message::DrainRequested)
            .map_err(|_| EngineError::EngineStopped)
    }

    /// Time since the engine started.
    pub fn elapsed(&self) -> Duration {
        self.published.elapsed()
    }

    /// Time since the engine's latest heartbeat.
    pub fn heartbeat_age(&self) -> Duration {
        let beat = Duration::from_millis(self.published.heartbeat_ms.load(Ordering::Acquire));
        self.elapsed().saturating_sub(beat)
    }

    /// True while the engine's heartbeat is fresh.
    pub fn is_alive(&self) -> bool {
        self.heartbeat_age() <= self.published.liveness_timeout
    }

    /// The names of the signal checks, in no particular order.
    pub fn signal_names(&self) -> impl Iterator<Item = &str> {
        self.signals.keys().map(String::as_str)
    }
}
