//! The Prometheus recorder: installed once per process, rendered by the
//! admin listener's `GET /metrics`.

use std::sync::Arc;

use anyhow::Context as _;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use warmgate_http::RenderMetrics;

/// The buckets of the check latency histogram: 100 us to 10 s.
const CHECK_DURATION_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0,
];

/// Installs the process-wide recorder and returns how to render it.
pub(crate) fn install() -> anyhow::Result<RenderMetrics> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(warmgate_gate::measure::CONNECTION_WAIT_SECONDS.to_owned()),
            &warmgate_gate::measure::WAIT_BUCKETS,
        )
        .and_then(|builder| {
            builder.set_buckets_for_metric(
                Matcher::Full(warmgate_engine::measure::CHECK_DURATION_SECONDS.to_owned()),
                &CHECK_DURATION_BUCKETS,
            )
        })
        .context("cannot configure the metrics histograms")?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    Ok(Arc::new(move || {
        // Upkeep drains histogram samples recorded since the last scrape.
        handle.run_upkeep();
        handle.render()
    }))
}
