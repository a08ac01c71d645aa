//! Slows down password guessing: each failed login delays the next failure answer for
//! the same account and the same address, doubling up to a ceiling, forgotten after a
//! quiet period.

use crate::config::Auth;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Failures older than this are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Keys kept before old ones are swept, so a flood of addresses cannot grow memory.
const MAX_KEYS: usize = 100_000;

pub struct AuthThrottle {
    base: Duration,
    max: Duration,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl AuthThrottle {
    pub fn new(auth: &Auth) -> AuthThrottle {
        AuthThrottle {
            base: Duration::from_millis(auth.failure_delay_ms),
            max: Duration::from_millis(auth.max_failure_delay_ms),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Records a failure for every key and returns how long to wait before answering it.
    pub fn failed(&self, keys: &[String], now: Instant) -> Duration {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_KEYS {
            evict(&mut map, now);
        }
        let mut worst = 0;
        for key in keys {
            let entry = map.entry(key.clone()).or_insert((0, now));
            if now.duration_since(entry.1) >= FORGET_AFTER {
                entry.0 = 0;
            }
            entry.0 = entry.0.saturating_add(1);
            entry.1 = now;
            worst = worst.max(entry.0);
        }
        self.delay_for(worst)
    }

    /// The delay the keys have earned so far, without recording anything.
    pub fn penalty(&self, keys: &[String], now: Instant) -> Duration {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let worst = keys
            .iter()
            .filter_map(|k| map.get(k))
            .filter(|(_, last)| now.duration_since(*last) < FORGET_AFTER)
            .map(|(count, _)| *count)
            .max()
            .unwrap_or(0);
        self.delay_for(worst)
    }

    /// A successful login clears its account's record (not its address's).
    pub fn succeeded(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }

    fn delay_for(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(failures.saturating_sub(1).min(20)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// Forgets expired records, then the oldest tenth: a flood of new keys never wipes the
/// records of an ongoing attack.
fn evict(map: &mut HashMap<String, (u32, Instant)>, now: Instant) {
    map.retain(|_, (_, last)| now.duration_since(*last) < FORGET_AFTER);
    if map.len() < MAX_KEYS {
        return;
    }
    let mut ages: Vec<Instant> = map.values().map(|(_, last)| *last).collect();
    ages.sort_unstable();
    let cutoff = ages[ages.len() / 10];
    map.retain(|_, (_, last)| *last > cutoff);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> AuthThrottle {
        AuthThrottle::new(&Auth { failure_delay_ms: 100, max_failure_delay_ms: 1000, ..Auth::default() })
    }

    #[test]
    fn delay_doubles_per_failure_up_to_the_ceiling() {
        let t = throttle();
        let now = Instant::now();
        let keys = ["user:a@x".to_string(), "ip:127.0.0.1".to_string()];
        let delays: Vec<u128> = (0..6).map(|_| t.failed(&keys, now).as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn address_record_survives_account_success() {
        let t = throttle();
        let now = Instant::now();
        t.failed(&["user:a@x".into(), "ip:1".into()], now);
        t.succeeded("user:a@x");
        assert_eq!(t.failed(&["user:a@x".into()], now).as_millis(), 100);
        assert_eq!(t.failed(&["ip:1".into()], now).as_millis(), 200);
    }

    #[test]
    fn penalty_reads_without_recording() {
        let t = throttle();
        let now = Instant::now();
        assert_eq!(t.penalty(&["ip:1".into()], now), Duration::ZERO);
        t.failed(&["ip:1".into()], now);
        assert_eq!(t.penalty(&["ip:1".into(), "user:a@x".into()], now).as_millis(), 100);
        assert_eq!(t.penalty(&["ip:1".into()], now).as_millis(), 100, "reading twice changes nothing");
    }

    #[test]
    fn a_flood_of_keys_evicts_the_oldest_not_everything() {
        let t = throttle();
        let start = Instant::now();
        for i in 0..MAX_KEYS - 1 {
            t.failed(&[format!("ip:{i}")], start + Duration::from_millis(i as u64));
        }
        let late = start + Duration::from_secs(500);
        t.failed(&["user:victim".into()], late);
        t.failed(&["user:victim".into()], late);
        t.failed(&["ip:one-more".into()], late);
        assert_eq!(t.penalty(&["user:victim".into()], late).as_millis(), 200, "recent records survive");
        assert_eq!(t.penalty(&["ip:0".into()], late), Duration::ZERO, "the oldest went");
        assert!(t.failures.lock().expect("lock").len() < MAX_KEYS);
    }

    #[test]
    fn old_failures_are_forgotten() {
        let t = throttle();
        let now = Instant::now();
        t.failed(&["ip:1".into()], now);
        t.failed(&["ip:1".into()], now);
        assert_eq!(t.failed(&["ip:1".into()], now + FORGET_AFTER).as_millis(), 100);
    }
}
