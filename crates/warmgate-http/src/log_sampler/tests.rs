//! Unit tests of `log_sampler`.

use super::*;

#[test]
fn the_first_of_a_kind_in_each_window_is_logged_with_the_count_left_out() {
    let sampler = LogSampler::new(Duration::from_secs(10));
    let start = Instant::now();
    assert_eq!(sampler.admit("invalid_signature", start), Some(0));
    for n in 1..=5 {
        let at = start + Duration::from_secs(n);
        assert_eq!(sampler.admit("invalid_signature", at), None);
    }
    // Another kind has a window of its own.
    assert_eq!(
        sampler.admit("missing_token", start + Duration::from_secs(3)),
        Some(0)
    );
    assert_eq!(
        sampler.admit("invalid_signature", start + Duration::from_secs(10)),
        Some(5)
    );
    assert_eq!(
        sampler.admit("invalid_signature", start + Duration::from_secs(11)),
        None
    );
    // After a quiet spell, the next one is logged at once.
    assert_eq!(
        sampler.admit("invalid_signature", start + Duration::from_secs(60)),
        Some(1)
    );
}
