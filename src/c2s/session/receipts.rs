//! Live messages to a client without stream management, kept until the client answers a
//! ping sent after them. A client handles its stream in order (RFC 6120 §10.1), so its
//! answer to that ping (result or error) says it got everything before it; what it never
//! answered for goes to offline storage when the session ends, instead of dying with the
//! socket (docs/delivery.md). Bounded in count and bytes like XEP-0198's unacknowledged
//! stanzas: at the bound the session takes no more deliveries until an answer comes.
//! No sockets here: the session feeds it what it writes and reads.

use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// A ping goes out once the oldest message waiting for one is this old, or when those
/// messages reach a quarter of the bounds: for a busy client, about one ping every two
/// seconds (each costs the server a write and a read).
pub const PING_DELAY: Duration = Duration::from_secs(2);
/// Pings out at once, at most (an older unanswered one still confirms when answered).
const MAX_PINGS: usize = 16;

#[derive(Debug)]
pub struct Receipts {
    /// Messages written and not yet confirmed, oldest first, one after the other in one
    /// buffer: one allocation per session, not one kept per message (messages kept for
    /// seconds among short-lived allocations cost the allocator dearly, measured).
    kept: Vec<u8>,
    /// Where each of them ends in `kept`.
    ends: VecDeque<usize>,
    /// The number of the front message (every written message gets the next number).
    first: u64,
    /// Pings sent and not yet answered: their id, the number after the last message each
    /// one confirms, and when it was sent.
    pings: VecDeque<(String, u64, Instant)>,
    /// Written since the last ping, and when the oldest of those was written.
    unpinged: usize,
    oldest_unpinged: Option<Instant>,
    max_messages: usize,
    max_bytes: usize,
    /// The session ends soon: a ping is due now for what was written since the last.
    hurried: bool,
}

impl Receipts {
    pub fn new(max_messages: usize, max_bytes: usize) -> Receipts {
        Receipts {
            kept: Vec::new(),
            ends: VecDeque::new(),
            first: 0,
            pings: VecDeque::new(),
            unpinged: 0,
            oldest_unpinged: None,
            max_messages,
            max_bytes,
            hurried: false,
        }
    }

    /// A message written to the client.
    pub fn written(&mut self, message: &[u8], now: Instant) {
        self.kept.extend_from_slice(message);
        self.ends.push_back(self.kept.len());
        self.unpinged += 1;
        self.oldest_unpinged.get_or_insert(now);
    }

    /// At the bounds: no more deliveries until the client answers.
    pub fn full(&self) -> bool {
        self.ends.len() >= self.max_messages || self.kept.len() >= self.max_bytes
    }

    /// Whether a ping is due: enough messages, or old enough, or the bounds near.
    pub fn ping_due(&self, now: Instant) -> bool {
        if self.unpinged == 0 || self.pings.len() >= MAX_PINGS {
            return false;
        }
        let old = self.oldest_unpinged.is_some_and(|t| now >= t + PING_DELAY);
        let many = self.unpinged >= (self.max_messages / 4).max(1) || self.kept.len() >= self.max_bytes / 4;
        old || many || self.full() || self.hurried
    }

    /// The session ends soon: a ping is due for whatever was written since the last one.
    pub fn hurry(&mut self) {
        self.hurried = true;
    }

    /// A ping with this id was written after every message so far.
    pub fn pinged(&mut self, id: String, now: Instant) {
        let upto = self.first + self.ends.len() as u64;
        self.pings.push_back((id, upto, now));
        self.unpinged = 0;
        self.oldest_unpinged = None;
    }

    /// When something is next due by time: a ping, or the end of the wait for the oldest
    /// one's answer (`timeout`).
    pub fn deadline(&self, timeout: Duration) -> Option<Instant> {
        let ping = self.oldest_unpinged.filter(|_| self.pings.len() < MAX_PINGS).map(|t| t + PING_DELAY);
        let answer = self.pings.front().map(|(_, _, sent)| *sent + timeout);
        match (ping, answer) {
            (Some(ping), Some(answer)) => Some(ping.min(answer)),
            (ping, answer) => ping.or(answer),
        }
    }

    /// The oldest ping went unanswered for `timeout`: the client is gone, or does not
    /// answer iq (RFC 6120 §8.2.3 says it must); either way it cannot be told apart.
    pub fn expired(&self, now: Instant, timeout: Duration) -> bool {
        self.pings.front().is_some_and(|(_, _, sent)| now >= *sent + timeout)
    }

    /// The client answered the ping `id` (true when it is one of ours): everything written
    /// before it is confirmed, with every earlier ping.
    pub fn answered(&mut self, id: &str) -> bool {
        let Some(at) = self.pings.iter().position(|(ping, _, _)| ping == id) else { return false };
        let upto = self.pings[at].1;
        self.pings.drain(..=at);
        let confirmed = usize::try_from(upto.saturating_sub(self.first)).unwrap_or(usize::MAX).min(self.ends.len());
        let Some(cut) = confirmed.checked_sub(1).and_then(|last| self.ends.get(last).copied()) else { return true };
        self.first += confirmed as u64;
        self.ends.drain(..confirmed);
        self.ends.iter_mut().for_each(|end| *end -= cut);
        if self.ends.is_empty() {
            // An idle session keeps no buffer.
            self.kept = Vec::new();
            self.ends = VecDeque::new();
        } else {
            self.kept.drain(..cut);
        }
        true
    }

    /// Whether nothing waits for an answer.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty() && self.pings.is_empty()
    }

    /// Everything unconfirmed, oldest first, when the session ends.
    pub fn take(&mut self) -> Vec<Vec<u8>> {
        self.first += self.ends.len() as u64;
        self.pings.clear();
        let kept = std::mem::take(&mut self.kept);
        let mut start = 0;
        std::mem::take(&mut self.ends)
            .into_iter()
            .map(|end| {
                let message = kept.get(start..end).unwrap_or_default().to_vec();
                start = end;
                message
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: u8) -> Vec<u8> {
        vec![n; 10]
    }

    #[test]
    fn an_answer_confirms_what_came_before_its_ping_only() {
        let now = Instant::now();
        let mut receipts = Receipts::new(100, 1000);
        receipts.written(&message(1), now);
        receipts.written(&message(2), now);
        receipts.pinged("p1".into(), now);
        receipts.written(&message(3), now);
        assert!(!receipts.answered("other"), "not our ping");
        receipts.written(&message(4), now);
        assert!(receipts.answered("p1"));
        assert_eq!(receipts.take(), vec![message(3), message(4)], "only what came after the ping is left");
    }

    #[test]
    fn a_later_answer_confirms_earlier_pings_too() {
        let now = Instant::now();
        let mut receipts = Receipts::new(100, 1000);
        receipts.written(&message(1), now);
        receipts.pinged("p1".into(), now);
        receipts.written(&message(2), now);
        receipts.pinged("p2".into(), now);
        assert!(receipts.answered("p2"));
        assert!(receipts.is_empty());
        assert_eq!(receipts.kept.capacity(), 0, "nothing kept: the buffer is given back");
        assert!(!receipts.answered("p1"), "confirmed with p2");
    }

    #[test]
    fn pings_go_after_enough_messages_or_time_and_the_bounds_hold_deliveries() {
        let now = Instant::now();
        let mut receipts = Receipts::new(40, 1000);
        let timeout = Duration::from_secs(60);
        assert!(!receipts.ping_due(now) && receipts.deadline(timeout).is_none(), "nothing to confirm");
        receipts.written(&message(0), now);
        assert!(!receipts.ping_due(now));
        assert_eq!(receipts.deadline(timeout), Some(now + PING_DELAY));
        assert!(receipts.ping_due(now + PING_DELAY));
        for n in 1..10 {
            receipts.written(&message(n), now);
        }
        assert!(receipts.ping_due(now), "a quarter of the bound (40)");
        receipts.pinged("p".into(), now);
        assert!(!receipts.ping_due(now + PING_DELAY));
        assert_eq!(receipts.deadline(timeout), Some(now + timeout), "the wait for its answer");
        assert!(!receipts.expired(now + timeout / 2, timeout) && receipts.expired(now + timeout, timeout));
        for n in 0..30 {
            receipts.written(&message(n), now);
        }
        assert!(receipts.full(), "40 messages");
        assert!(receipts.answered("p"));
        assert!(!receipts.full());
        let mut big = Receipts::new(100, 100);
        big.written(&[0; 30], now);
        assert!(big.ping_due(now), "a quarter of the bytes");
    }
}
