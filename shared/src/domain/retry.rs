//! Retry timing, kept pure: callers supply the randomness.

/// Exponential backoff with full jitter: a uniformly random delay in
/// `0..=min(cap, base * 2^(attempt-1))` seconds. Full jitter spreads a herd of retries (a
/// provider outage recovering) instead of re-synchronising it. `random` is any u32.
pub fn full_jitter(attempt: u32, base_s: u32, cap_s: u32, random: u32) -> u32 {
    let exp = attempt.saturating_sub(1).min(31);
    let ceiling = u64::from(base_s)
        .saturating_mul(1u64 << exp)
        .min(u64::from(cap_s));
    (u64::from(random) % (ceiling + 1)) as u32
}

/// The verifier's policy: base 10 s, cap 15 min.
pub const VERIFY_BASE_S: u32 = 10;
pub const VERIFY_CAP_S: u32 = 900;
/// Receives before SQS moves a message to the dead-letter queue (template.yaml).
pub const MAX_RECEIVES: u32 = 8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_by_exponential_ceiling_and_cap() {
        for attempt in 1..40 {
            let ceiling = (10u64 << (attempt - 1).min(31)).min(900) as u32;
            for r in [0, 1, 7, 12345, u32::MAX / 3, u32::MAX] {
                assert!(full_jitter(attempt, 10, 900, r) <= ceiling);
            }
            assert_eq!(
                full_jitter(attempt, 10, 900, ceiling),
                ceiling,
                "ceiling reachable"
            );
        }
        assert_eq!(full_jitter(1, 10, 900, 11), 0);
        assert_eq!(full_jitter(0, 10, 900, 5), 5);
        assert_eq!(
            full_jitter(u32::MAX, 10, 900, 900),
            900,
            "no overflow at huge attempts"
        );
    }
}
