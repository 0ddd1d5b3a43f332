//! Unit tests of `rate_limit`.

use super::*;

#[test]
fn a_burst_passes_then_the_rate_applies_then_a_flood_closes() {
    let start = Instant::now();
    let mut limit = MessageRateLimit::new(10, 3, start);
    for _ in 0..3 {
        assert_eq!(limit.check(start), Verdict::Allow);
    }
    assert_eq!(limit.check(start), Verdict::Refuse);
    // 100 ms at 10/s refills one token.
    let later = start + Duration::from_millis(100);
    assert_eq!(limit.check(later), Verdict::Allow);
    assert_eq!(limit.refused_in_a_row(), 0);
    // A whole burst refused in a row, then one more: close.
    for _ in 0..3 {
        assert_eq!(limit.check(later), Verdict::Refuse);
    }
    assert_eq!(limit.check(later), Verdict::Close);
}

#[test]
fn tokens_never_exceed_the_burst() {
    let start = Instant::now();
    let mut limit = MessageRateLimit::new(1000, 2, start);
    let much_later = start + Duration::from_secs(3600);
    assert_eq!(limit.check(much_later), Verdict::Allow);
    assert_eq!(limit.check(much_later), Verdict::Allow);
    assert_eq!(limit.check(much_later), Verdict::Refuse);
}
