//! Nearest-rank percentiles, and reading a process's resident memory.

use super::*;

#[test]
fn nearest_rank_percentiles() {
    let mut samples: Vec<Duration> = (1..=100).rev().map(Duration::from_micros).collect();
    let summary = summary(&mut samples).unwrap();
    assert_eq!(summary.n, 100);
    assert_eq!(summary.p50_us, 50.0);
    assert_eq!(summary.p99_us, 99.0);
    assert_eq!(summary.max_us, 100.0);
    assert_eq!(summary.mean_us, 50.5);
    let mut one = [Duration::from_micros(7)];
    assert_eq!(super::summary(&mut one).unwrap().p99_us, 7.0);
    assert_eq!(super::summary(&mut []), None);
}

#[test]
fn reads_its_own_rss() {
    assert!(rss_kib(std::process::id()).unwrap() > 0);
}
