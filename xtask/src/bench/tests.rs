//! Unit tests of `bench`.

use super::*;

#[test]
fn divan_lines_are_read_in_nanoseconds() {
    let output = "snapshot_read             fastest       │ slowest       │ median        │ mean          │ samples │ iters\n├─ current_arc            22.47 ns      │ 59.3 ns       │ 23.6 ns       │ 24.3 ns       │ 100     │ 12800\n╰─ with_current_state     1.2 µs        │ 2 µs          │ 1.5 µs        │ 1.6 µs        │ 100     │ 100\n";
    assert_eq!(divan_median_ns(output, "current_arc"), Some(23.6));
    assert_eq!(divan_median_ns(output, "with_current_state"), Some(1500.0));
    assert_eq!(divan_median_ns(output, "missing"), None);
}

#[test]
fn medians() {
    assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
    assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    assert!(median(Vec::new()).is_nan());
}
