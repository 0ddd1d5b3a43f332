//! Counting connections: for capacity limits, for metrics, and so that
//! shutdown can wait until every WebSocket has closed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::watch;

/// Live counts of WebSocket connections. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ConnectionCounts {
    inner: Arc<Counts>,
}

#[derive(Debug)]
struct Counts {
    open: AtomicUsize,
    held: AtomicUsize,
    /// The number of open connections, for waiting until it is zero.
    open_tx: watch::Sender<usize>,
}

impl Default for ConnectionCounts {
    fn default() -> Self {
        Self {
            inner: Arc::new(Counts {
                open: AtomicUsize::new(0),
                held: AtomicUsize::new(0),
                open_tx: watch::Sender::new(0),
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
        let mut open_rx = self.inner.open_tx.subscribe();
        let _ = open_rx.wait_for(|open| *open == 0).await;
    }

    /// Counts a new connection unless `max` are already open.
    pub(crate) fn try_open(&self, max: usize) -> Option<OpenGuard> {
        let previous = self.inner.open.fetch_add(1, Ordering::AcqRel);
        self.publish();
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

    fn publish(&self) {
        self.inner
            .open_tx
            .send_replace(self.inner.open.load(Ordering::Acquire));
    }
}

/// Holds one count of an open connection; dropping it releases the count.
#[derive(Debug)]
pub(crate) struct OpenGuard {
    counts: ConnectionCounts,
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.counts.inner.open.fetch_sub(1, Ordering::AcqRel);
        self.counts.publish();
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
