//! Percentiles of per-client timings, and the resident memory of a process.

use std::time::Duration;

use serde_json::{Value, json};

/// `n`, `p50_us`, `p99_us`, `max_us` and `mean_us` of `samples`, by the
/// nearest-rank method. An empty sample gives only `n: 0`.
pub(crate) fn summary(samples: &mut [Duration]) -> Value {
    if samples.is_empty() {
        return json!({ "n": 0 });
    }
    samples.sort_unstable();
    let micros = |duration: Duration| duration.as_secs_f64() * 1e6;
    let total: Duration = samples.iter().sum();
    json!({
        "n": samples.len(),
        "p50_us": micros(percentile(samples, 0.50)),
        "p99_us": micros(percentile(samples, 0.99)),
        "max_us": micros(samples[samples.len() - 1]),
        "mean_us": micros(total / samples.len() as u32),
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
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples: Vec<Duration> = (1..=100).rev().map(Duration::from_micros).collect();
        let summary = summary(&mut samples);
        assert_eq!(summary["n"], 100);
        assert_eq!(summary["p50_us"], 50.0);
        assert_eq!(summary["p99_us"], 99.0);
        assert_eq!(summary["max_us"], 100.0);
        assert_eq!(summary["mean_us"], 50.5);
        let mut one = [Duration::from_micros(7)];
        assert_eq!(super::summary(&mut one)["p99_us"], 7.0);
        assert_eq!(super::summary(&mut [])["n"], 0);
    }

    #[test]
    fn reads_its_own_rss() {
        assert!(rss_kib(std::process::id()).unwrap() > 0);
    }
}
