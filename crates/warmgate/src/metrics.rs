//! The Prometheus recorder: installed once per process, rendered by the
//! admin listener's `GET /metrics`.
//!
//! The crates record through the `metrics` facade; this module only chooses
//! the histogram buckets, installs the recorder and keeps it tidy. We serve
//! the text ourselves, so the exporter's own HTTP listener is not built.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use warmgate_http::RenderMetrics;

/// How often histogram samples are folded into their buckets between
/// scrapes, so memory stays flat when nobody scrapes (the exporter's own
/// default).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Installs the process-wide recorder, starts its upkeep task, and returns
/// how to render it. Call it inside the runtime, before anything records.
pub(crate) fn install() -> anyhow::Result<RenderMetrics> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(warmgate_gate::measure::CONNECTION_WAIT_SECONDS.to_owned()),
            &warmgate_gate::measure::WAIT_BUCKETS,
        )
        .and_then(|builder| {
            builder.set_buckets_for_metric(
                Matcher::Full(warmgate_engine::measure::CHECK_DURATION_SECONDS.to_owned()),
                &warmgate_engine::measure::CHECK_DURATION_BUCKETS,
            )
        })
        .and_then(|builder| {
            builder.set_buckets_for_metric(
                Matcher::Full(warmgate_proxy::DIAL_DURATION_SECONDS.to_owned()),
                &warmgate_proxy::DIAL_DURATION_BUCKETS,
            )
        })
        .and_then(|builder| {
            builder.set_buckets_for_metric(
                Matcher::Full(warmgate_proxy::UPSTREAM_HTTP_WAIT_SECONDS.to_owned()),
                &warmgate_proxy::UPSTREAM_HTTP_WAIT_BUCKETS,
            )
        })
        .context("cannot configure the metrics histograms")?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    // `install_recorder` leaves upkeep to the caller: without it, samples
    // recorded between scrapes pile up unbounded.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    // `render` drains pending histogram samples itself, so a scrape always
    // sees every sample recorded before it.
    Ok(Arc::new(move || handle.render()))
}
