//! Drops retransmitted messages: a client whose connection dropped before it saw the
//! server take a message sends it again with the same id. A repeat is recognised by the
//! sender's bare JID, the id, the recipient and the payload together (clients that number
//! ids per connection reuse ids for different messages), within a time window and a
//! number of recent messages per sender.

use crate::xml::Element;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;
use xmpp_parsers::jid::BareJid;

pub struct Dedup {
    window: Duration,
    per_sender: usize,
    /// By sender, in shards: every message takes a lock here, and one lock for all
    /// senders had the worker threads wait on each other.
    seen: [Mutex<HashMap<BareJid, Recent>>; SHARDS],
    /// Accepted messages since the last sweep of expired entries.
    since_sweep: std::sync::atomic::AtomicUsize,
}

/// One sender's recent messages: in order (to expire them) and as a map (to look them up
/// without scanning up to `per_sender` entries for every message). The map keeps each
/// key's latest place in the order, and forgets keys lazily: a key counts while its place
/// is still in the order. Removing each key as it left the order cost a cache miss per
/// message (the key inserted `per_sender` messages ago).
#[derive(Default)]
struct Recent {
    /// Fingerprint, the message's [`Keys::id`], when it was accepted.
    order: VecDeque<(u64, u64, Instant)>,
    /// The place of `order`'s front entry: places grow by one per message.
    first: u64,
    keys: HashMap<u64, u64, std::hash::BuildHasherDefault<Fingerprints>>,
}

/// The keys are fingerprints, already hashed: used as they are, not hashed again.
#[derive(Default)]
struct Fingerprints(u64);

impl Hasher for Fingerprints {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed here; anything else is folded in all the same.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
}

impl Recent {
    fn contains(&self, key: u64) -> bool {
        self.keys.get(&key).is_some_and(|place| *place >= self.first)
    }

    fn push(&mut self, keys: Keys, at: Instant) {
        self.keys.insert(keys.fingerprint, self.first + self.order.len() as u64);
        self.order.push_back((keys.fingerprint, keys.id, at));
        // Forgotten keys are dropped once they are as many as the remembered ones:
        // one pass now and then instead of a lookup per message.
        if self.keys.len() > 2 * self.order.len().max(16) {
            let first = self.first;
            self.keys.retain(|_, place| *place >= first);
        }
    }

    fn pop(&mut self) {
        if self.order.pop_front().is_some() {
            self.first += 1;
        }
    }

    fn expire(&mut self, now: Instant, window: Duration) {
        while self.order.front().is_some_and(|(_, _, at)| now.duration_since(*at) > window) {
            self.pop();
        }
    }

    /// Forgets every remembered message with this id (and recipient).
    fn forget(&mut self, id: u64) {
        for (fingerprint, _, _) in self.order.iter().filter(|(_, i, _)| *i == id) {
            self.keys.remove(fingerprint);
        }
    }
}

/// What a message is remembered by: its [`fingerprint`], and its id and recipient alone
/// (to forget it when it is bounced later, in whatever form it is by then).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keys {
    pub fingerprint: u64,
    pub id: u64,
}

/// Every this many accepted messages, expired entries of all senders are dropped, so
/// senders who went quiet do not keep memory.
const SWEEP_EVERY: usize = 4096;
const SHARDS: usize = 16;

impl Dedup {
    pub fn new(window: Duration, per_sender: usize) -> Dedup {
        Dedup { window, per_sender, seen: Default::default(), since_sweep: Default::default() }
    }

    /// Whether the message with this [`fingerprint`] was accepted before, within the window.
    fn shard(&self, sender: &BareJid) -> std::sync::MutexGuard<'_, HashMap<BareJid, Recent>> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        sender.as_str().hash(&mut hasher);
        let shard = &self.seen[hasher.finish() as usize % SHARDS];
        shard.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_repeat(&self, sender: &BareJid, keys: Keys, now: Instant) -> bool {
        let mut seen = self.shard(sender);
        let Some(recent) = seen.get_mut(sender) else { return false };
        recent.expire(now, self.window);
        recent.contains(keys.fingerprint)
    }

    /// A message accepted earlier was bounced after all (its recipient's session ended and
    /// its offline storage was full): the sender may send it again, and it is not a repeat.
    pub fn forget(&self, sender: &BareJid, id: &str, to: Option<&str>) {
        let id = id_key(id, to);
        if let Some(recent) = self.shard(sender).get_mut(sender) {
            recent.forget(id);
        }
    }

    /// Remembers an accepted message (one that was refused may be sent again).
    pub fn accepted(&self, sender: &BareJid, keys: Keys, now: Instant) {
        if self.per_sender == 0 {
            return;
        }
        if self.since_sweep.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= SWEEP_EVERY {
            self.since_sweep.store(0, std::sync::atomic::Ordering::Relaxed);
            // One shard at a time, none held while another is taken.
            for shard in &self.seen {
                shard.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, recent| {
                    recent.expire(now, self.window);
                    !recent.order.is_empty()
                });
            }
        }
        let mut seen = self.shard(sender);
        // Looked up before inserting: a sender's JID is cloned once, not per message.
        let recent = match seen.get_mut(sender) {
            Some(recent) => recent,
            None => seen.entry(sender.clone()).or_default(),
        };
        if recent.order.len() >= self.per_sender {
            recent.pop();
        }
        recent.push(keys, now);
    }

    #[cfg(test)]
    fn first_time(&self, sender: &BareJid, id: &str, message: &Element, now: Instant) -> bool {
        let keys = fingerprint(id, message);
        let repeat = self.is_repeat(sender, keys, now);
        if !repeat {
            self.accepted(sender, keys, now);
        }
        !repeat
    }
}

fn id_hasher(id: &str, to: Option<&str>) -> std::collections::hash_map::DefaultHasher {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut hasher);
    to.hash(&mut hasher);
    hasher
}

fn id_key(id: &str, to: Option<&str>) -> u64 {
    id_hasher(id, to).finish()
}

/// What identifies a message for that: its id, recipient and payload (and, for
/// [`Dedup::forget`], its id and recipient alone).
pub fn fingerprint(id: &str, message: &Element) -> Keys {
    let mut hasher = id_hasher(id, message.attr("to"));
    let id = hasher.finish();
    for child in message.children() {
        hash_element(child, crate::xml::NS_CLIENT, &mut hasher);
    }
    Keys { fingerprint: hasher.finish(), id }
}

/// The element's structure (names, namespaces, attributes, text), hashed where it lies:
/// serialising it first would cost an allocation and an escape pass per message.
fn hash_element(element: &Element, parent_ns: &str, hasher: &mut impl Hasher) {
    element.name().hash(hasher);
    // minidom's `ns()` allocates: asked only when it differs from the parent's.
    let own_ns;
    let ns = if element.has_ns(parent_ns) {
        0u8.hash(hasher);
        parent_ns
    } else {
        own_ns = element.ns();
        own_ns.hash(hasher);
        own_ns.as_str()
    };
    for ((attr_ns, name), value) in element.attrs().iter() {
        (attr_ns.as_str(), name.as_str(), value.as_str()).hash(hasher);
    }
    for node in element.nodes() {
        match node {
            xmpp_parsers::minidom::Node::Element(child) => {
                1u8.hash(hasher);
                hash_element(child, ns, hasher);
            }
            xmpp_parsers::minidom::Node::Text(text) => {
                2u8.hash(hasher);
                text.hash(hasher);
            }
        }
    }
    3u8.hash(hasher); // the end: <a/><b/> is not <a><b/></a>
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(to: &str, body: &str) -> Element {
        format!("<message xmlns='jabber:client' to='{to}' id='1'><body>{body}</body></message>").parse().expect("xml")
    }

    #[test]
    fn repeats_are_caught_within_the_window_only() {
        let dedup = Dedup::new(Duration::from_secs(600), 1000);
        let alice = BareJid::new("alice@x").expect("jid");
        let now = Instant::now();
        assert!(dedup.first_time(&alice, "1", &msg("bob@x", "hi"), now));
        assert!(!dedup.first_time(&alice, "1", &msg("bob@x", "hi"), now), "a retransmission");
        assert!(dedup.first_time(&alice, "1", &msg("bob@x", "other"), now), "same id, other message");
        assert!(dedup.first_time(&alice, "1", &msg("carol@x", "hi"), now), "same id, other recipient");
        assert!(dedup.first_time(&alice, "1", &msg("bob@x", "hi"), now + Duration::from_secs(601)), "expired");
    }

    #[test]
    fn only_the_last_per_sender_messages_are_remembered() {
        let dedup = Dedup::new(Duration::from_secs(600), 3);
        let alice = BareJid::new("alice@x").expect("jid");
        let now = Instant::now();
        let k = |fingerprint| Keys { fingerprint, id: fingerprint };
        for key in 1..=4 {
            assert!(!dedup.is_repeat(&alice, k(key), now));
            dedup.accepted(&alice, k(key), now);
        }
        assert!(!dedup.is_repeat(&alice, k(1), now), "pushed out by later ones");
        assert!((2..=4).all(|key| dedup.is_repeat(&alice, k(key), now)));
        // A key sent again is remembered from its latest place.
        dedup.accepted(&alice, k(2), now);
        dedup.accepted(&alice, k(5), now);
        dedup.accepted(&alice, k(6), now);
        assert!(dedup.is_repeat(&alice, k(2), now) && !dedup.is_repeat(&alice, k(3), now));
        for key in 7..1000 {
            dedup.accepted(&alice, k(key), now);
        }
        let shard = dedup.shard(&alice);
        let recent = shard.get(&alice).expect("alice");
        assert!(recent.keys.len() <= 2 * 16, "forgotten keys are dropped: {}", recent.keys.len());
    }

    #[test]
    fn quiet_senders_are_forgotten() {
        let dedup = Dedup::new(Duration::from_secs(10), 1000);
        let now = Instant::now();
        for i in 0..SWEEP_EVERY {
            let sender = BareJid::new(&format!("u{i}@x")).expect("jid");
            dedup.accepted(&sender, fingerprint("1", &msg("bob@x", "hi")), now);
        }
        let later = now + Duration::from_secs(11);
        let alice = BareJid::new("alice@x").expect("jid");
        dedup.accepted(&alice, fingerprint("1", &msg("bob@x", "hi")), later);
        let remembered: usize = dedup.seen.iter().map(|shard| shard.lock().expect("lock").len()).sum();
        assert!(remembered <= 2, "expired senders swept");
    }

    #[test]
    fn a_bounced_message_is_forgotten_whatever_its_form_by_then() {
        let dedup = Dedup::new(Duration::from_secs(600), 1000);
        let alice = BareJid::new("alice@x").expect("jid");
        let now = Instant::now();
        assert!(dedup.first_time(&alice, "1", &msg("bob@x", "hi"), now));
        assert!(dedup.first_time(&alice, "2", &msg("bob@x", "hi"), now));
        dedup.forget(&alice, "1", Some("bob@x"));
        assert!(dedup.first_time(&alice, "1", &msg("bob@x", "hi"), now), "forgotten: taken again");
        assert!(!dedup.first_time(&alice, "2", &msg("bob@x", "hi"), now), "others stay");
        dedup.forget(&alice, "2", Some("carol@x"));
        assert!(!dedup.first_time(&alice, "2", &msg("bob@x", "hi"), now), "another recipient's");
    }

    #[test]
    fn each_sender_keeps_a_bounded_number() {
        let dedup = Dedup::new(Duration::from_secs(600), 3);
        let alice = BareJid::new("alice@x").expect("jid");
        let now = Instant::now();
        for body in ["a", "b", "c", "d"] {
            assert!(dedup.first_time(&alice, "1", &msg("bob@x", body), now));
        }
        assert!(dedup.first_time(&alice, "1", &msg("bob@x", "a"), now), "the oldest was forgotten");
        assert!(!dedup.first_time(&alice, "1", &msg("bob@x", "d"), now));
    }
}
