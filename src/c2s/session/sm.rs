//! XEP-0198 stream management, the counting half: how many stanzas the client sent us
//! (its `h`), which of ours it has not acknowledged yet, and when to ask it. No sockets:
//! the session feeds it what it writes and reads.

use crate::storage::offline::Batch;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

pub use crate::xml::ns::SM as NS;

/// One stanza sent and not yet acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unacked {
    pub bytes: super::Out,
    /// Its in-flight record, when it is a message kept in storage until acknowledged.
    pub inflight: Option<u64>,
}

/// XEP-0198 §4: `h` counts modulo 2^32.
fn wrapping_distance(from: u32, to: u32) -> u32 {
    to.wrapping_sub(from)
}

#[derive(Debug)]
pub struct StreamManagement {
    /// The resumption id, if the client asked for resumption.
    pub resume_id: Option<String>,
    /// Seconds the session may wait for its client to resume.
    pub resume_secs: u64,
    /// Stanzas received from the client (its `h`).
    pub inbound: u32,
    /// What the client acknowledged of ours.
    acked: u32,
    pub unacked: VecDeque<Unacked>,
    /// Their size, bounded by `max_unacked_bytes`.
    unacked_bytes: usize,
    max_unacked_bytes: usize,
    /// Unacknowledged stanzas when we last asked, and when (None: no question pending).
    request: Option<Instant>,
    sent_since_request: usize,
    /// When the oldest stanza not covered by a request was sent.
    oldest_unrequested: Option<Instant>,
    every: usize,
    delay: Duration,
    timeout: Duration,
    pub max_unacked: usize,
}

/// The client's `<a h=''/>` acknowledged more than we ever sent (XEP-0198 §4).
#[derive(Debug, PartialEq, Eq)]
pub struct TooHigh {
    pub h: u32,
    pub sent: u32,
}

impl StreamManagement {
    pub fn new(config: &crate::config::StreamManagement) -> StreamManagement {
        StreamManagement {
            resume_id: None,
            resume_secs: 0,
            inbound: 0,
            acked: 0,
            unacked: VecDeque::new(),
            unacked_bytes: 0,
            max_unacked_bytes: config.max_unacked_bytes,
            request: None,
            sent_since_request: 0,
            oldest_unrequested: None,
            every: config.ack_request_every,
            delay: Duration::from_secs(config.ack_request_delay_secs),
            timeout: Duration::from_secs(config.ack_timeout_secs),
            max_unacked: config.max_unacked,
        }
    }

    /// Stanzas sent so far (our `h` as the client should count it).
    pub fn sent(&self) -> u32 {
        self.acked.wrapping_add(self.unacked.len() as u32)
    }

    pub fn received(&mut self) {
        self.inbound = self.inbound.wrapping_add(1);
    }

    /// A stanza written to the client.
    pub fn track(&mut self, bytes: super::Out, inflight: Option<u64>, now: Instant) {
        self.unacked_bytes += bytes.len();
        self.unacked.push_back(Unacked { bytes, inflight });
        self.sent_since_request += 1;
        self.oldest_unrequested.get_or_insert(now);
    }

    /// How many stanzas an acknowledgement of `h` releases, if it is possible.
    pub fn can_acknowledge(&self, h: u32) -> Result<usize, TooHigh> {
        let newly = wrapping_distance(self.acked, h) as usize;
        if newly > self.unacked.len() {
            return Err(TooHigh { h, sent: self.sent() });
        }
        Ok(newly)
    }

    /// The client acknowledged `h`: returns what that releases.
    pub fn acknowledge(&mut self, h: u32) -> Result<Vec<Unacked>, TooHigh> {
        let newly = self.can_acknowledge(h)?;
        self.acked = h;
        self.request = None;
        let released: Vec<Unacked> = self.unacked.drain(..newly).collect();
        self.unacked_bytes -= released.iter().map(|u| u.bytes.len()).sum::<usize>();
        Ok(released)
    }

    /// Whether to ask for an acknowledgement now (`<r/>`): enough stanzas, or old enough.
    pub fn should_request(&self, now: Instant) -> bool {
        if self.request.is_some() || self.sent_since_request == 0 {
            return false;
        }
        self.sent_since_request >= self.every || self.oldest_unrequested.is_some_and(|t| now >= t + self.delay)
    }

    pub fn requested(&mut self, now: Instant) {
        self.request = Some(now);
        self.sent_since_request = 0;
        self.oldest_unrequested = None;
    }

    /// When something is due: a request to send, or an unanswered one that expires.
    pub fn deadline(&self) -> Option<Instant> {
        match self.request {
            Some(asked) => Some(asked + self.timeout),
            None => self.oldest_unrequested.map(|t| t + self.delay),
        }
    }

    /// Our question went unanswered too long: the connection is dead.
    pub fn request_expired(&self, now: Instant) -> bool {
        self.request.is_some_and(|asked| now >= asked + self.timeout)
    }

    /// After a resumption: nothing is pending on the new connection yet.
    pub fn reattached(&mut self, now: Instant) {
        self.request = None;
        self.sent_since_request = self.unacked.len();
        self.oldest_unrequested = (!self.unacked.is_empty()).then_some(now);
    }

    /// At `max_unacked` stanzas or `max_unacked_bytes`: no more deliveries are taken for
    /// the client until it acknowledges (they wait in the session's queue, whose bound then
    /// ends a session whose client does not).
    pub fn full(&self) -> bool {
        self.unacked.len() >= self.max_unacked || self.unacked_bytes >= self.max_unacked_bytes
    }

    /// Twice the bounds: only answers to the client's own requests go beyond them (every
    /// delivery waits, every batch the server chooses fits), so this is a client that keeps
    /// asking and never acknowledges.
    pub fn over_limit(&self) -> bool {
        self.unacked.len() > 2 * self.max_unacked || self.unacked_bytes > 2 * self.max_unacked_bytes
    }

    /// What a batch the server chooses to send (offline backlog, XEP-0013 fetch, archive
    /// page) may hold: half the bounds less what is unacknowledged, so live deliveries keep
    /// the other half. None when that is nothing while something awaits acknowledgement
    /// (the batch waits for the client's `<a/>`); with nothing unacknowledged, a batch of
    /// at least one stanza always fits.
    pub fn room(&self) -> Option<Batch> {
        let messages = (self.max_unacked / 2).saturating_sub(self.unacked.len());
        let bytes = (self.max_unacked_bytes / 2).saturating_sub(self.unacked_bytes);
        if self.unacked.is_empty() {
            return Some(Batch { messages: messages.max(1), bytes: bytes.max(1) });
        }
        (messages > 0 && bytes > 0).then_some(Batch { messages, bytes })
    }

    /// Whether an acknowledgement request is out and unanswered.
    pub fn awaiting_ack(&self) -> bool {
        self.request.is_some()
    }

    /// Everything unacknowledged, when the session ends.
    pub fn take_unacked(&mut self) -> Vec<Unacked> {
        self.unacked_bytes = 0;
        self.unacked.drain(..).collect()
    }
}

/// Whether an element counts as a stanza for `h` (XEP-0198 §4): message, presence and iq,
/// never stream-level elements. (Elements a module turns into stanzas count too: the
/// session asks `Modules::stands_for_stanza`.)
pub fn counts(element: &crate::xml::Element) -> bool {
    element.has_ns(crate::xml::NS_CLIENT) && matches!(element.name(), "message" | "presence" | "iq")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sm() -> StreamManagement {
        let config = crate::config::StreamManagement { ack_request_every: 3, ..Default::default() };
        StreamManagement::new(&config)
    }

    #[test]
    fn acknowledgements_release_in_order_and_refuse_too_high() {
        let now = Instant::now();
        let mut sm = sm();
        for i in 0..4u8 {
            sm.track(vec![i].into(), Some(u64::from(i)), now);
        }
        assert_eq!(sm.sent(), 4);
        let released = sm.acknowledge(2).expect("valid h");
        assert_eq!(released.iter().map(|u| u.bytes[0]).collect::<Vec<_>>(), vec![0, 1]);
        assert!(sm.acknowledge(2).expect("same h again").is_empty());
        assert_eq!(sm.acknowledge(5), Err(TooHigh { h: 5, sent: 4 }));
        assert_eq!(sm.unacked.len(), 2);
    }

    #[test]
    fn h_wraps_at_two_to_the_32() {
        let now = Instant::now();
        let mut sm = sm();
        sm.acked = u32::MAX;
        sm.track(vec![1].into(), None, now);
        sm.track(vec![2].into(), None, now);
        assert_eq!(sm.sent(), 1);
        assert_eq!(sm.acknowledge(0).expect("wraps").len(), 1);
        assert_eq!(sm.acknowledge(1).expect("wraps").len(), 1);
    }

    #[test]
    fn requests_after_enough_stanzas_or_enough_time_and_expire() {
        let now = Instant::now();
        let mut sm = sm();
        sm.track(vec![1].into(), None, now);
        assert!(!sm.should_request(now));
        assert_eq!(sm.deadline(), Some(now + Duration::from_secs(5)));
        assert!(sm.should_request(now + Duration::from_secs(5)), "old enough");
        sm.track(vec![2].into(), None, now);
        sm.track(vec![3].into(), None, now);
        assert!(sm.should_request(now), "three stanzas");
        sm.requested(now);
        assert!(!sm.should_request(now), "one question at a time");
        assert!(!sm.request_expired(now + Duration::from_secs(29)));
        assert!(sm.request_expired(now + Duration::from_secs(30)));
        sm.acknowledge(3).expect("answered");
        assert!(!sm.request_expired(now + Duration::from_secs(60)));
        assert_eq!(sm.deadline(), None, "nothing pending");
    }

    #[test]
    fn deliveries_wait_at_the_bounds_and_batches_fit_half_of_them() {
        let config = crate::config::StreamManagement { max_unacked: 4, max_unacked_bytes: 100, ..Default::default() };
        let mut sm = StreamManagement::new(&config);
        let now = Instant::now();
        assert_eq!(sm.room(), Some(Batch { messages: 2, bytes: 50 }));
        sm.track(vec![0; 30].into(), None, now);
        assert_eq!(sm.room(), Some(Batch { messages: 1, bytes: 20 }));
        sm.track(vec![0; 30].into(), None, now);
        assert_eq!(sm.room(), None, "a batch waits for an acknowledgement");
        assert!(!sm.full());
        sm.track(vec![0; 40].into(), None, now);
        assert!(sm.full() && !sm.over_limit(), "deliveries wait");
        sm.track(vec![0; 101].into(), None, now);
        assert!(sm.over_limit(), "twice the bytes");
        sm.acknowledge(4).expect("all");
        assert_eq!(sm.room(), Some(Batch { messages: 2, bytes: 50 }));
        let tiny = crate::config::StreamManagement { max_unacked: 1, max_unacked_bytes: 1, ..Default::default() };
        let sm = StreamManagement::new(&tiny);
        assert_eq!(sm.room(), Some(Batch { messages: 1, bytes: 1 }), "an empty queue takes one");
    }

    #[test]
    fn what_counts_as_a_stanza() {
        let parse = |s: &str| s.parse::<crate::xml::Element>().expect("xml");
        assert!(counts(&parse("<message xmlns='jabber:client'/>")));
        assert!(counts(&parse("<iq xmlns='jabber:client'/>")));
        assert!(!counts(&parse("<r xmlns='urn:xmpp:sm:3'/>")));
        assert!(!counts(&parse("<active xmlns='urn:xmpp:csi:0'/>")));
    }
}
