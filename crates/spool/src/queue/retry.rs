//! Retry schedule: exponential backoff from `retry_base`, doubling per
//! attempt up to `retry_max`, with ±10 % jitter so that a blast deferred at
//! one moment does not come back as one wave; never past the expiry, so the
//! last attempt happens at `max_age` and a bounce follows if it fails.

use laneway_common::config::LanePolicy;

/// When to try again after `attempts` failed attempts (1 = the first
/// failure), for a message queued at `queued_at_ms`, now being `now_ms`.
/// `jitter` is a number in [0, 1) (random in production, fixed in tests).
pub fn next_attempt_ms(
    policy: &LanePolicy,
    attempts: u32,
    queued_at_ms: u64,
    now_ms: u64,
    jitter: f64,
) -> u64 {
    let base = policy.retry_base.as_millis() as f64;
    let max = policy.retry_max.as_millis() as f64;
    let exp = attempts.saturating_sub(1).min(30) as i32;
    let delay = (base * 2f64.powi(exp)).min(max);
    let delay = delay * (0.9 + 0.2 * jitter.clamp(0.0, 1.0));
    let due = now_ms.saturating_add(delay as u64);
    due.min(expiry_ms(policy, queued_at_ms)).max(now_ms)
}

/// When a message queued at `queued_at_ms` expires.
pub fn expiry_ms(policy: &LanePolicy, queued_at_ms: u64) -> u64 {
    queued_at_ms.saturating_add(policy.max_age.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn policy() -> LanePolicy {
        LanePolicy {
            retry_base: Duration::from_secs(60),
            retry_max: Duration::from_secs(3600),
            max_age: Duration::from_secs(86400),
            delay_warning: Duration::from_secs(4 * 3600),
        }
    }

    #[test]
    fn doubles_caps_and_jitters() {
        let p = policy();
        assert_eq!(next_attempt_ms(&p, 1, 0, 0, 0.5), 60_000);
        assert_eq!(next_attempt_ms(&p, 2, 0, 0, 0.5), 120_000);
        assert_eq!(next_attempt_ms(&p, 3, 0, 0, 0.5), 240_000);
        assert_eq!(next_attempt_ms(&p, 20, 0, 0, 0.5), 3_600_000);
        assert_eq!(next_attempt_ms(&p, 1, 0, 0, 0.0), 54_000);
        assert_eq!(next_attempt_ms(&p, 1, 0, 0, 0.999_999), 65_999);
    }

    #[test]
    fn never_past_expiry() {
        let p = policy();
        let now = 86_000_000;
        assert_eq!(next_attempt_ms(&p, 10, 0, now, 0.5), 86_400_000);
        assert_eq!(next_attempt_ms(&p, 10, 0, 90_000_000, 0.5), 90_000_000);
    }
}
