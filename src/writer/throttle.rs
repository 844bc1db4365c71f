//! Token buckets for carbon's write rate limits: MAX_UPDATES_PER_SECOND (update_many calls per
//! second) and MAX_CREATES_PER_MINUTE (new files per minute).
//!
//! As carbon's `TokenBucket`: a bucket holds at most `capacity` tokens and refills at
//! `fill_per_sec`; an operation takes one token. An infinite limit never throttles. Time is an
//! argument (seconds on any monotonic clock), so tests need no clock.

/// A token bucket; `None` limits mean "inf" (never throttle).
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Tokens the bucket holds when full; None when unlimited.
    capacity: Option<f64>,
    /// Tokens added per second.
    fill_per_sec: f64,
    /// Tokens available at `updated_s`. Invariant: 0 <= tokens <= capacity.
    tokens: f64,
    /// When `tokens` was last brought up to date.
    updated_s: f64,
}

impl TokenBucket {
    /// A bucket for `per_second` operations per second (carbon: capacity = rate = the setting).
    pub fn per_second(per_second: f64, now_s: f64) -> TokenBucket {
        Self::new(per_second, per_second, now_s)
    }

    /// A bucket for `per_minute` operations per minute (carbon: capacity = the setting, refilled
    /// at setting / 60 per second).
    pub fn per_minute(per_minute: f64, now_s: f64) -> TokenBucket {
        Self::new(per_minute, per_minute / 60.0, now_s)
    }

    fn new(capacity: f64, fill_per_sec: f64, now_s: f64) -> TokenBucket {
        let capacity = capacity.is_finite().then_some(capacity.max(0.0));
        TokenBucket { capacity, fill_per_sec, tokens: capacity.unwrap_or(0.0), updated_s: now_s }
    }

    /// Whether the bucket ever throttles.
    pub fn is_limited(&self) -> bool {
        self.capacity.is_some()
    }

    fn refill(&mut self, now_s: f64) {
        let Some(capacity) = self.capacity else { return };
        let elapsed = (now_s - self.updated_s).max(0.0);
        self.tokens = (self.tokens + elapsed * self.fill_per_sec).min(capacity);
        self.updated_s = self.updated_s.max(now_s);
        debug_assert!((0.0..=capacity).contains(&self.tokens));
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now_s: f64) -> bool {
        if self.capacity.is_none() {
            return true;
        }
        self.refill(now_s);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Seconds until a token is available (0 when one is, or when unlimited).
    pub fn wait_s(&mut self, now_s: f64) -> f64 {
        if self.capacity.is_none() {
            return 0.0;
        }
        self.refill(now_s);
        if self.tokens >= 1.0 || self.fill_per_sec <= 0.0 {
            // A zero rate never refills: callers treat that as "never" by their own bound.
            return if self.tokens >= 1.0 { 0.0 } else { f64::INFINITY };
        }
        (1.0 - self.tokens) / self.fill_per_sec
    }

    /// Replaces the limit (shutdown swaps in MAX_UPDATES_PER_SECOND_ON_SHUTDOWN), keeping the
    /// tokens already earned up to the new capacity.
    pub fn set_per_second(&mut self, per_second: f64, now_s: f64) {
        self.refill(now_s);
        let tokens = self.tokens;
        *self = Self::per_second(per_second, now_s);
        if let Some(capacity) = self.capacity {
            self.tokens = tokens.min(capacity);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TokenBucket;

    #[test]
    fn unlimited_never_throttles() {
        let mut b = TokenBucket::per_second(f64::INFINITY, 0.0);
        assert!(!b.is_limited());
        assert!((0..10_000).all(|_| b.try_take(0.0)));
        assert_eq!(b.wait_s(0.0), 0.0);
    }

    #[test]
    fn per_second_allows_a_burst_then_the_rate() {
        let mut b = TokenBucket::per_second(500.0, 100.0);
        assert_eq!((0..600).filter(|_| b.try_take(100.0)).count(), 500);
        assert!(!b.try_take(100.0));
        assert!((b.wait_s(100.0) - 0.002).abs() < 1e-9);
        // 0.125 s at 500/s: 62.5 tokens, of which 62 whole ones.
        assert_eq!((0..600).filter(|_| b.try_take(100.125)).count(), 62);
        // Never more than the capacity, however long idle.
        assert_eq!((0..2000).filter(|_| b.try_take(1000.0)).count(), 500);
    }

    #[test]
    fn per_minute_refills_at_a_sixtieth_per_second() {
        let mut b = TokenBucket::per_minute(60.0, 0.0);
        assert_eq!((0..100).filter(|_| b.try_take(0.0)).count(), 60);
        assert_eq!((0..100).filter(|_| b.try_take(10.0)).count(), 10);
        let mut zero = TokenBucket::per_minute(0.0, 0.0);
        assert!(!zero.try_take(1e9));
        assert_eq!(zero.wait_s(5.0), f64::INFINITY);
    }

    #[test]
    fn changing_the_rate_keeps_earned_tokens_up_to_the_new_capacity() {
        let mut b = TokenBucket::per_second(10.0, 0.0);
        assert_eq!((0..4).filter(|_| b.try_take(0.0)).count(), 4);
        b.set_per_second(1000.0, 0.0);
        assert_eq!((0..2000).filter(|_| b.try_take(0.0)).count(), 6);
        b.set_per_second(f64::INFINITY, 0.0);
        assert!(b.try_take(0.0));
    }
}
