//! Percentiles of per-client timings, and the resident memory of a process.

use std::time::Duration;

use warmgate_loadgen::report::Timings;

/// The p50, p99, max and mean of `samples`, by the nearest-rank method;
/// `None` for no sample.
pub(crate) fn summary(samples: &mut [Duration]) -> Option<Timings> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let micros = |duration: Duration| duration.as_secs_f64() * 1e6;
    let total: Duration = samples.iter().sum();
    Some(Timings {
        n: samples.len(),
        p50_us: micros(percentile(samples, 0.50)),
        p99_us: micros(percentile(samples, 0.99)),
        max_us: micros(samples[samples.len() - 1]),
        mean_us: micros(total / samples.len() as u32),
    })
}

/// The nearest-rank percentile of sorted `samples` (not empty).
fn percentile(samples: &[Duration], fraction: f64) -> Duration {
    let rank = (fraction * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

/// The resident set size of process `pid`, in KiB, from `/proc`.
pub(crate) fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("/proc/{pid}/status has no VmRSS line"))
}

#[cfg(test)]
mod tests;
