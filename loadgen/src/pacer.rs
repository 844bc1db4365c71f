//! Open-loop pacing: how many points a connection may have sent by a given time.
//!
//! With a rate of `r` points per second, point `k` (counting from 0) is due at `k / r` seconds
//! after the start, whether or not the server kept up with the points before it: the schedule
//! never waits for the server (open loop), so a slow server shows up as the sender falling behind
//! it, not as a lower offered rate. Without a rate the sender writes as fast as the server reads
//! (closed loop). Pure arithmetic over elapsed time; the sender does the sleeping.

use std::time::Duration;

/// A connection's schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacer {
    /// Points per second; `None` is unlimited. When set, positive and finite.
    rate_per_s: Option<f64>,
}

impl Pacer {
    /// A schedule of `rate_per_s` points per second, or unlimited. A rate that is not positive and
    /// finite sends nothing.
    pub fn new(rate_per_s: Option<f64>) -> Pacer {
        Pacer { rate_per_s }
    }

    /// How many more points may be sent at `elapsed` after the start, `sent` having been sent.
    pub fn allowance(&self, elapsed: Duration, sent: u64) -> u64 {
        match self.rate_per_s {
            None => u64::MAX,
            Some(rate) if rate > 0.0 && rate.is_finite() => {
                // Points 0 ..= floor(elapsed * rate) are due; the cast saturates.
                let due = (elapsed.as_secs_f64() * rate).floor() as u64;
                due.saturating_add(1).saturating_sub(sent)
            }
            Some(_) => 0,
        }
    }

    /// When point number `sent` is due, counted from the start; `None` when unlimited.
    /// Saturates at `Duration::MAX` for schedules too slow to represent.
    pub fn next_due(&self, sent: u64) -> Option<Duration> {
        let rate = self.rate_per_s?;
        Some(Duration::try_from_secs_f64(sent as f64 / rate).unwrap_or(Duration::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_never_waits() {
        let pacer = Pacer::new(None);
        assert_eq!(pacer.allowance(Duration::ZERO, 0), u64::MAX);
        assert_eq!(pacer.allowance(Duration::ZERO, 1_000_000), u64::MAX);
        assert_eq!(pacer.next_due(5), None);
    }

    #[test]
    fn fixed_rate_schedule() {
        let pacer = Pacer::new(Some(10.0));
        assert_eq!(pacer.allowance(Duration::ZERO, 0), 1);
        assert_eq!(pacer.allowance(Duration::ZERO, 1), 0);
        assert_eq!(pacer.allowance(Duration::from_millis(99), 1), 0);
        assert_eq!(pacer.allowance(Duration::from_millis(100), 1), 1);
        assert_eq!(pacer.allowance(Duration::from_secs(1), 3), 8);
        assert_eq!(pacer.allowance(Duration::from_secs(1), 20), 0);
        assert_eq!(pacer.next_due(0), Some(Duration::ZERO));
        assert_eq!(pacer.next_due(10), Some(Duration::from_secs(1)));
    }

    #[test]
    fn degenerate_rates_send_nothing_and_never_panic() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let pacer = Pacer::new(Some(rate));
            assert_eq!(pacer.allowance(Duration::from_secs(5), 0), 0);
            let _ = pacer.next_due(1);
        }
        assert_eq!(Pacer::new(Some(1e-300)).next_due(1_000), Some(Duration::MAX));
    }
}
