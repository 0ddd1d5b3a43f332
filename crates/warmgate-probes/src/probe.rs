//! The interface every probe implements.

use std::future::Future;
use std::pin::Pin;

use crate::ProbeError;

/// The future of one probe attempt.
pub type ProbeFuture<'a> = Pin<Box<dyn Future<Output = Result<(), ProbeError>> + Send + 'a>>;

/// One kind of dependency check.
///
/// The engine owns each probe exclusively and runs one attempt at a time, so
/// an attempt may keep state between attempts (a reused connection, say)
/// through `&mut self`. An attempt may be cancelled at any `.await` when it
/// runs past its timeout: a probe must leave itself usable for the next
/// attempt when its future is dropped part-way (for example by discarding a
/// connection that was in the middle of a request).
pub trait Probe: Send + 'static {
    /// The kind reported in snapshots and spans, such as `tcp`.
    fn kind(&self) -> &'static str;

    /// What the probe talks to, for logs: an address or a URL with any
    /// password removed.
    fn target(&self) -> String;

    /// Runs one attempt.
    fn probe(&mut self) -> ProbeFuture<'_>;
}

impl std::fmt::Debug for dyn Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe")
            .field("kind", &self.kind())
            .field("target", &self.target())
            .finish()
    }
}
