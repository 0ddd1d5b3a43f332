//! Bounded waiting: every wait in these tests is on an event (a line
//! printed, a frame received, a process exiting), and [`within`] bounds it
//! by [`PATIENCE`] only so that a broken build fails instead of hanging.
//!
//! What is awaited is the callers' business; this module only keeps the
//! bound in one place.

use std::time::Duration;

/// The longest any single wait may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Awaits `future`, failing the test with `what` if it takes past
/// [`PATIENCE`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, future).await {
        Ok(value) => value,
        Err(_) => panic!("gave up after {PATIENCE:?} waiting for {what}"),
    }
}

/// Runs a blocking fixture call (initdb, pg_ctl, redis-server) off the
/// async runtime.
pub async fn blocking<T: Send + 'static>(
    what: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    within(what, tokio::task::spawn_blocking(work))
        .await
        .unwrap()
}
