//! Latency percentiles (HdrHistogram, 3 significant digits), the process clock, and the
//! tally of failures.

use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::error::BenchError;

/// Lowest and highest recordable latency in nanoseconds (1 ns to 1 hour; outside, clamped).
const LOWEST_NS: u64 = 1;
const HIGHEST_NS: u64 = 3_600_000_000_000;
/// Latencies a task collects before it takes the shared histogram's lock.
const BATCH: usize = 256;

static BASE: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since a process-wide base instant: the timestamp carried in message bodies.
pub fn now_ns() -> u64 {
    ns_of(Instant::now())
}

/// `at` as nanoseconds since the process-wide base (0 if before it).
pub fn ns_of(at: Instant) -> u64 {
    let base = *BASE.get_or_init(Instant::now);
    u64::try_from(at.saturating_duration_since(base).as_nanos()).unwrap_or(u64::MAX)
}

/// A latency distribution in nanoseconds.
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Latency(Histogram::new_with_bounds(LOWEST_NS, HIGHEST_NS, 3).expect("constant, valid bounds"))
    }
}

impl Latency {
    pub fn record(&mut self, ns: u64) {
        self.0.saturating_record(ns.clamp(LOWEST_NS, HIGHEST_NS));
    }

    pub fn record_duration(&mut self, d: Duration) {
        self.record(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    pub fn summary(&self) -> Summary {
        let h = &self.0;
        let at = |q: f64| if h.is_empty() { 0 } else { h.value_at_quantile(q) };
        Summary {
            count: h.len(),
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            max: if h.is_empty() { 0 } else { h.max() },
        }
    }
}

/// Percentiles in nanoseconds (0 without samples).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

/// A histogram shared by tasks.
pub type Shared = Arc<Mutex<Latency>>;

/// Latencies a task buffers before adding them to the shared histogram, so that recording
/// does not take a lock per message. Flushed when full and when dropped.
pub struct Batch {
    shared: Shared,
    buf: Vec<u64>,
}

impl Batch {
    pub fn new(shared: Shared) -> Self {
        Batch { shared, buf: Vec::with_capacity(BATCH) }
    }

    pub fn record(&mut self, ns: u64) {
        self.buf.push(ns);
        if self.buf.len() == BATCH {
            self.flush();
        }
    }

    pub fn flush(&mut self) {
        if let Ok(mut h) = self.shared.lock() {
            self.buf.iter().for_each(|ns| h.record(*ns));
        }
        self.buf.clear();
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Failures by kind, with the first message of each kind as an example.
#[derive(Default)]
pub struct Failures(Mutex<BTreeMap<&'static str, (u64, String)>>);

impl Failures {
    pub fn record(&self, error: &BenchError) {
        if let Ok(mut map) = self.0.lock() {
            let entry = map.entry(error.kind()).or_insert_with(|| (0, error.to_string()));
            entry.0 += 1;
        }
    }

    pub fn total(&self) -> u64 {
        self.0.lock().map(|map| map.values().map(|(n, _)| n).sum()).unwrap_or(0)
    }

    /// `kind: count (e.g. first message)` per kind.
    pub fn lines(&self) -> Vec<String> {
        let Ok(map) = self.0.lock() else { return Vec::new() };
        map.iter().map(|(kind, (n, example))| format!("{kind}: {n} (e.g. {example})")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close_to(value: u64, expected: u64) -> bool {
        value.abs_diff(expected) * 500 <= expected
    }

    #[test]
    fn percentiles_of_a_uniform_distribution() {
        let mut l = Latency::default();
        for ms in 1..=1000u64 {
            l.record(ms * 1_000_000);
        }
        let s = l.summary();
        assert_eq!(s.count, 1000);
        assert!(close_to(s.p50, 500_000_000), "{s:?}");
        assert!(close_to(s.p90, 900_000_000), "{s:?}");
        assert!(close_to(s.p99, 990_000_000), "{s:?}");
        assert!(close_to(s.max, 1_000_000_000), "{s:?}");
    }

    #[test]
    fn a_tail_shows_in_p99_and_max_only() {
        let mut l = Latency::default();
        (0..990).for_each(|_| l.record(100_000));
        (0..10).for_each(|_| l.record(50_000_000));
        let s = l.summary();
        assert!(close_to(s.p50, 100_000) && close_to(s.p90, 100_000), "{s:?}");
        assert!(close_to(s.p99, 100_000), "the 990th value is the 99th percentile: {s:?}");
        assert!(close_to(s.max, 50_000_000), "{s:?}");
    }

    #[test]
    fn empty_and_out_of_range_values() {
        assert_eq!(Latency::default().summary(), Summary { count: 0, p50: 0, p90: 0, p99: 0, max: 0 });
        let mut l = Latency::default();
        l.record(0);
        assert_eq!(l.summary().p50, 1, "clamped to the lowest value");
        l.record(u64::MAX);
        let s = l.summary();
        assert_eq!(s.count, 2);
        assert!(close_to(s.max, HIGHEST_NS), "{s:?}");
    }

    #[test]
    fn batches_reach_the_shared_histogram() {
        let shared: Shared = Arc::default();
        {
            let mut batch = Batch::new(shared.clone());
            (0..300).for_each(|i| batch.record(1_000_000 + i));
            assert_eq!(shared.lock().expect("lock").summary().count, 256, "one full batch so far");
        }
        assert_eq!(shared.lock().expect("lock").summary().count, 300, "the rest on drop");
    }

    #[test]
    fn failures_are_counted_by_kind() {
        let f = Failures::default();
        f.record(&BenchError::Timeout("bind result"));
        f.record(&BenchError::Timeout("ping result"));
        f.record(&BenchError::Sasl("not-authorized".into()));
        assert_eq!(f.total(), 3);
        assert_eq!(
            f.lines(),
            ["sasl: 1 (e.g. sasl: not-authorized)", "timeout: 2 (e.g. timed out waiting for bind result)"]
        );
    }
}
