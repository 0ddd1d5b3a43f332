//! The `startup` span: one trace from the engine's start to its first state
//! other than `starting`, holding every check attempt and transition made
//! meanwhile, so the slow or failing dependency is plain to see.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use warmgate_core::Plan;

/// Numbers are recorded as `i64`: the OpenTelemetry layer exports a `u64`
/// as text.
///
/// Shared by the engine, which ends it, and the runners, whose attempts are
/// its children while it lasts. Attempts after startup are traces of their
/// own.
#[derive(Debug, Clone, Default)]
pub(crate) struct StartupSpan(Arc<ArcSwapOption<tracing::Span>>);

impl StartupSpan {
    pub(crate) fn open(plan: &Plan) -> Self {
        let span = tracing::info_span!(
            parent: None,
            "startup",
            n_checks = plan.n_checks() as i64,
            startup_deadline_ms = plan.startup_deadline().as_millis() as i64,
            outcome = tracing::field::Empty,
            startup_ms = tracing::field::Empty,
        );
        StartupSpan(Arc::new(ArcSwapOption::from_pointee(span)))
    }

    /// The span to parent on, or `None` once startup is over.
    pub(crate) fn id(&self) -> Option<tracing::span::Id> {
        self.0.load().as_ref().and_then(|span| span.id())
    }

    /// Ends startup with the state it reached. The span closes once the
    /// attempts still running under it finish.
    pub(crate) fn close(&self, outcome: &str, elapsed: Duration) {
        if let Some(span) = self.0.swap(None) {
            span.record("outcome", outcome);
            span.record("startup_ms", elapsed.as_millis() as i64);
        }
    }
}
