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

/// A receiver that wakes whenever a new snapshot is published.
pub type SnapshotRx = watch::Receiver<Arc<Snapshot>>;

/// What the engine publishes and readers read: the latest snapshots and the
/// engine's heartbeat. Only the engine task writes here.
#[derive(Debug)]
pub(crate) struct Published {
    started_at: Instant,
    snapshot: ArcSwap<Snapshot>,
    verbose: ArcSwap<VerboseSnapshot>,
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

    /// A receiver that sees the current snapshot, then wakes on each change.
    pub fn subscribe(&self) -> SnapshotRx {
        let mut snapshot_rx = self.snapshot_rx.clone();
        snapshot_rx.mark_changed();
        snapshot_rx
    }

    /// Sets in-process signal check `name` to ready or not. `reason` says why
    /// it is not ready, and is shown as the check's error. Returns once the
    /// engine has the request; the snapshot follows a moment later.
    pub fn set_signal(
        &self,
        name: &str,
        ready: bool,
        reason: Option<String>,
    ) -> Result<(), EngineError> {
        self.send_signal(name, ready, reason, None)
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
        let (applied_tx, applied_rx) = oneshot::channel();
        self.send_signal(name, ready, reason, Some(applied_tx))?;
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
        applied: Option<oneshot::Sender<()>>,
    ) -> Result<(), EngineError> {
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
