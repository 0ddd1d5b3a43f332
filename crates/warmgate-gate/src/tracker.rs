//! Counting connections: for capacity limits, for metrics, and so that
//! shutdown can wait until every WebSocket has closed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Live counts of WebSocket connections. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ConnectionCounts {
    inner: Arc<Counts>,
}

#[derive(Debug)]
struct Counts {
    open: AtomicUsize,
    held: AtomicUsize,
    /// Told when the last open connection closes, for waiting until none
    /// is open. A `Notify` rather than a `watch` of the count: publishing
    /// every open and close to a channel nobody reads until shutdown cost
    /// every connection two lock round trips.
    none_open: Notify,
}

impl Default for ConnectionCounts {
    fn default() -> Self {
        Self {
            inner: Arc::new(Counts {
                open: AtomicUsize::new(0),
                held: AtomicUsize::new(0),
                none_open: Notify::new(),
            }),
        }
    }
}

impl ConnectionCounts {
    /// Open WebSocket connections, held or admitted.
    pub fn open(&self) -> usize {
        self.inner.open.load(Ordering::Acquire)
    }

    /// Clients held, waiting for the gate.
    pub fn held(&self) -> usize {
        self.inner.held.load(Ordering::Acquire)
    }

    /// Resolves once no WebSocket connection is open.
    pub async fn all_closed(&self) {
        loop {
            // Registered before the check, so a close between the check and
            // the wait is not missed.
            let notified = self.inner.none_open.notified();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Counts a new connection unless `max` are already open.
    pub(crate) fn try_open(&self, max: usize) -> Option<OpenGuard> {
        let previous = self.inner.open.fetch_add(1, Ordering::AcqRel);
        let guard = OpenGuard {
            counts: self.clone(),
        };
        (previous < max).then_some(guard)
    }

    /// Counts a held client unless `max` are already held.
    pub(crate) fn try_hold(&self, max: usize) -> Option<HeldGuard> {
        let previous = self.inner.held.fetch_add(1, Ordering::AcqRel);
        let guard = HeldGuard {
            counts: self.clone(),
        };
        (previous < max).then_some(guard)
    }
}

/// Holds one count of an open connection; dropping it releases the count.
#[derive(Debug)]
pub(crate) struct OpenGuard {
    counts: ConnectionCounts,
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        if self.counts.inner.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.counts.inner.none_open.notify_waiters();
        }
    }
}

/// Holds one count of a held client; dropping it releases the count.
#[derive(Debug)]
pub(crate) struct HeldGuard {
    counts: ConnectionCounts,
}

impl Drop for HeldGuard {
    fn drop(&mut self) {
        self.counts.inner.held.fetch_sub(1, Ordering::AcqRel);
    }
}
