//! One token bucket's state.

use std::time::Instant;

use crate::config::Bucket;

/// The tokens left in a bucket when it was last used.
#[derive(Debug, Clone, Copy)]
pub struct BucketState {
    tokens: f64,
    updated: Instant,
}

impl BucketState {
    /// Returns a bucket holding `bucket.burst` tokens.
    #[must_use]
    pub fn full(bucket: Bucket, now: Instant) -> Self {
        Self {
            tokens: bucket.burst,
            updated: now,
        }
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        (self.tokens + elapsed * bucket.per_second).min(bucket.burst)
    }

    /// Returns whether the bucket has refilled completely.
    #[must_use]
    pub fn is_full(&self, bucket: Bucket, now: Instant) -> bool {
        self.refilled(bucket, now) >= bucket.burst
    }

    /// Takes one token, or returns the milliseconds until one is available.
    pub fn take(&mut self, bucket: Bucket, now: Instant) -> Result<(), u64> {
        let tokens = self.refilled(bucket, now);
        self.updated = now;
        if tokens >= 1.0 {
            self.tokens = tokens - 1.0;
            return Ok(());
        }
        self.tokens = tokens;
        let wait_secs = (1.0 - tokens) / bucket.per_second;
        // Rounded up, so a client that waits exactly this long finds a token,
        // and kept within the integers that Matrix JSON allows.
        const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;
        Err((wait_secs * 1000.0).ceil().min(MAX_SAFE_INTEGER) as u64)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const BUCKET: Bucket = Bucket {
        per_second: 2.0,
        burst: 3.0,
    };

    #[test]
    fn burst_then_refusal() {
        let start = Instant::now();
        let mut state = BucketState::full(BUCKET, start);
        for _ in 0..3 {
            assert_eq!(state.take(BUCKET, start), Ok(()));
        }
        assert_eq!(state.take(BUCKET, start), Err(500));
    }

    #[test]
    fn refills_at_the_rate() {
        let start = Instant::now();
        let mut state = BucketState::full(BUCKET, start);
        for _ in 0..3 {
            state.take(BUCKET, start).unwrap();
        }
        let later = start + Duration::from_millis(500);
        assert_eq!(state.take(BUCKET, later), Ok(()));
        assert!(state.take(BUCKET, later).is_err());
    }

    #[test]
    fn retry_after_is_enough() {
        let start = Instant::now();
        let mut state = BucketState::full(BUCKET, start);
        for _ in 0..3 {
            state.take(BUCKET, start).unwrap();
        }
        let wait = state.take(BUCKET, start).unwrap_err();
        let after = start + Duration::from_millis(wait);
        assert_eq!(state.take(BUCKET, after), Ok(()));
    }

    #[test]
    fn never_above_burst() {
        let start = Instant::now();
        let state = BucketState::full(BUCKET, start);
        let much_later = start + Duration::from_secs(3600);
        assert!(state.is_full(BUCKET, much_later));
        let mut state = state;
        for _ in 0..3 {
            state.take(BUCKET, much_later).unwrap();
        }
        assert!(state.take(BUCKET, much_later).is_err());
    }
}
