//! The stanza rate of one session (XEP-0205 §3.2): a token bucket of `limits.stanza_burst`
//! tokens refilled at `limits.stanzas_per_sec`. A client over it is not refused: its
//! connection is read more slowly, and TCP slows it down.

use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug)]
pub struct TokenBucket {
    per_sec: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(per_sec: u32, burst: u32, now: Instant) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket { per_sec: f64::from(per_sec.max(1)), burst, tokens: burst, last: now }
    }

    /// Takes a token for one stanza; how long to pause before reading the next one.
    pub fn take(&mut self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst) - 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.per_sec)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, 3, start);
        for _ in 0..3 {
            assert_eq!(bucket.take(start), Duration::ZERO);
        }
        assert_eq!(bucket.take(start), Duration::from_millis(100), "one token short at 10/s");
        // Having paused as told, the next stanza waits one more interval.
        let later = start + Duration::from_millis(100);
        assert_eq!(bucket.take(later), Duration::from_millis(100));
    }

    #[test]
    fn a_quiet_client_earns_back_its_burst_and_no_more() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, 3, start);
        for _ in 0..3 {
            bucket.take(start);
        }
        let much_later = start + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(bucket.take(much_later), Duration::ZERO);
        }
        assert!(bucket.take(much_later) > Duration::ZERO, "capped at the burst");
    }
}
