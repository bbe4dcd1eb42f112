//! Retry policy: exponential backoff with jitter and a hard cap on attempts.

use std::time::Duration;

use rand::Rng;

use crate::config::JobsConfig;

/// What to do after a transient failure of attempt number `attempt` (1-based) of at most `max_attempts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    RetryAfter(Duration),
    GiveUp,
}

pub fn after_failure(cfg: &JobsConfig, attempt: u32, max_attempts: u32) -> RetryDecision {
    if attempt >= max_attempts {
        return RetryDecision::GiveUp;
    }
    let exp = cfg
        .backoff_base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let capped = exp.min(cfg.backoff_max);
    // Up to 20 % jitter so jobs that failed together do not retry together.
    let jitter = capped.mul_f64(rand::rng().random_range(0.0..0.2));
    RetryDecision::RetryAfter(capped + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> JobsConfig {
        JobsConfig {
            max_attempts: 4,
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(5),
            failed_retention: Duration::ZERO,
            running_stale_after: Duration::from_secs(60),
            bulk_share_percent: 10,
        }
    }

    #[test]
    fn backs_off_exponentially_up_to_the_cap_then_gives_up() {
        let delay = |n| match after_failure(&cfg(), n, 4) {
            RetryDecision::RetryAfter(d) => d,
            RetryDecision::GiveUp => panic!("attempt {n} should retry"),
        };
        assert!(delay(1) >= Duration::from_secs(2) && delay(1) < Duration::from_millis(2400));
        assert!(delay(2) >= Duration::from_secs(4) && delay(2) < Duration::from_millis(4800));
        assert!(delay(3) >= Duration::from_secs(5) && delay(3) <= Duration::from_secs(6));
        assert_eq!(after_failure(&cfg(), 4, 4), RetryDecision::GiveUp);
        assert_eq!(after_failure(&cfg(), 9, 4), RetryDecision::GiveUp);
        assert_eq!(after_failure(&cfg(), 1, 1), RetryDecision::GiveUp);
    }
}
