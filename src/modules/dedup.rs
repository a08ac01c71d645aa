//! Drops retransmitted messages: a client whose connection dropped before it saw the
//! server take a message sends it again with the same id. A repeat is recognised by the
//! sender's bare JID, the id, the recipient and the payload together (clients that number
//! ids per connection reuse ids for different messages), within a time window and a
//! number of recent messages per sender (`limits.dedup_window_secs`, `limits.dedup_ids`).
//!
//! A module of its own: its `message_from_client` hook remembers each message with an id
//! before it is routed, as pending, and tells a repeat of one taken (not routed again; the
//! client is told it was taken, as the first time); `message_sent` marks it taken, and
//! `message_refused` forgets one that was refused, at once or bounced later, so that it may
//! be sent again. A copy that comes while the first is still pending (being routed) is
//! routed too: a duplicate at worst, never a message lost with its first copy's refusal.

use crate::config::Config;
use crate::core::module::{FromClient, Hook, Module, Registrar};
use crate::xml::Element;
use crate::xmpp::stanza::{Kind, MessageType, Stanza};
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;
use xmpp_parsers::jid::BareJid;

/// The module: what it remembers, for the whole server.
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
    /// Remembered messages not known taken yet (fingerprint, id key): being routed, or
    /// whose session ended before their outcome. Usually none or one.
    pending: Vec<(u64, u64)>,
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
        if !self.pending.is_empty() {
            let keys = &self.keys;
            let first = self.first;
            self.pending.retain(|(fingerprint, _)| keys.get(fingerprint).is_some_and(|place| *place >= first));
        }
    }

    /// A repeat of a message taken before (one still pending is not known taken).
    fn is_repeat(&self, fingerprint: u64) -> bool {
        self.contains(fingerprint) && !self.pending.iter().any(|(pending, _)| *pending == fingerprint)
    }

    /// The pending message with this id key was taken.
    fn taken(&mut self, id: u64) {
        if let Some(at) = self.pending.iter().rposition(|(_, pending)| *pending == id) {
            self.pending.swap_remove(at);
        }
    }

    /// A pending message was refused: forgotten, its place given back when it is the
    /// newest (as it is unless the sender sent more meanwhile).
    fn refused(&mut self, fingerprint: u64) {
        let Some(at) = self.pending.iter().rposition(|(pending, _)| *pending == fingerprint) else { return };
        self.pending.swap_remove(at);
        self.keys.remove(&fingerprint);
        if self.order.back().is_some_and(|(newest, _, _)| *newest == fingerprint) {
            self.order.pop_back();
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

impl Module for Dedup {
    fn name(&self) -> &'static str {
        "retransmitted messages"
    }

    fn register(self: Arc<Self>, api: &mut Registrar) {
        api.hook(Hook::MessageFromClient);
        api.hook(Hook::MessageRefused);
        api.hook(Hook::MessageSent);
    }

    fn message_from_client(&self, sender: &BareJid, stanza: &Stanza, now: Instant) -> FromClient {
        let Some(id) = stanza.id.as_deref().filter(|_| stanza.kind != Kind::Message(MessageType::Error)) else {
            return FromClient::Pass;
        };
        if self.first_time(sender, fingerprint(id, &stanza.element), now) {
            FromClient::Pass
        } else {
            tracing::debug!(id, "retransmitted message not delivered again");
            FromClient::Repeat
        }
    }

    /// A refused message may be sent again: at once, its very fingerprint is forgotten; a
    /// bounce, which may come in another form by then, forgets its id and recipient.
    fn message_refused(&self, sender: &BareJid, stanza: &Stanza, bounced: bool) {
        let Some(id) = stanza.id.as_deref() else { return };
        let mut seen = self.shard(sender);
        let Some(recent) = seen.get_mut(sender) else { return };
        match bounced {
            false => recent.refused(fingerprint(id, &stanza.element).fingerprint),
            true => recent.forget(id_key(id, stanza.element.attr("to"))),
        }
    }

    /// Taken: from now on a copy is a repeat. (By its id and recipient, which cost no
    /// walk of the payload.)
    fn message_sent<'a>(
        &'a self,
        _state: &'a crate::core::state::ServerState,
        sender: &'a xmpp_parsers::jid::FullJid,
        stanza: &'a Stanza,
        _to: &'a xmpp_parsers::jid::Jid,
    ) -> crate::core::module::Soon<'a, crate::core::module::Handled> {
        if let Some(id) = stanza.id.as_deref() {
            let sender = sender.to_bare();
            if let Some(recent) = self.shard(&sender).get_mut(&sender) {
                recent.taken(id_key(id, stanza.element.attr("to")));
            }
        }
        crate::core::module::Soon::ready(crate::core::module::Handled::default())
    }
}

impl Dedup {
    pub fn new(window: Duration, per_sender: usize) -> Dedup {
        Dedup { window, per_sender, seen: Default::default(), since_sweep: Default::default() }
    }

    pub fn configured(config: &Config) -> Dedup {
        Dedup::new(Duration::from_secs(config.limits.dedup_window_secs), config.limits.dedup_ids)
    }

    fn shard(&self, sender: &BareJid) -> std::sync::MutexGuard<'_, HashMap<BareJid, Recent>> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        sender.as_str().hash(&mut hasher);
        let shard = &self.seen[hasher.finish() as usize % SHARDS];
        shard.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the message with these [`Keys`] is new within the window; it is remembered
    /// (under one lock: a second message with them, even from another session, is a repeat).
    fn first_time(&self, sender: &BareJid, keys: Keys, now: Instant) -> bool {
        if self.per_sender == 0 {
            return true;
        }
        self.sweep_now_and_then(now);
        let mut seen = self.shard(sender);
        // Looked up before inserting: a sender's JID is cloned once, not per message.
        let recent = match seen.get_mut(sender) {
            Some(recent) => recent,
            None => seen.entry(sender.clone()).or_default(),
        };
        recent.expire(now, self.window);
        if recent.is_repeat(keys.fingerprint) {
            return false;
        }
        if recent.contains(keys.fingerprint) {
            return true; // still pending: routed again, not remembered twice
        }
        if recent.order.len() >= self.per_sender {
            recent.pop();
        }
        recent.push(keys, now);
        recent.pending.push((keys.fingerprint, keys.id));
        true
    }

    /// Every [`SWEEP_EVERY`] messages, expired entries of all senders are dropped.
    fn sweep_now_and_then(&self, now: Instant) {
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

/// What identifies a message for that: its id, recipient and payload (and, to forget a
/// bounce, its id and recipient alone).
fn fingerprint(id: &str, message: &Element) -> Keys {
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

    fn stanza(id: &str, to: &str, body: &str) -> Stanza {
        let xml = format!("<message xmlns='jabber:client' to='{to}' id='{id}'><body>{body}</body></message>");
        Stanza::parse(xml.parse().expect("xml")).map_err(|_| "stanza").expect("stanza")
    }

    impl Dedup {
        /// Whether a message is new; it is then taken at once.
        fn first(&self, sender: &BareJid, id: &str, message: &Element, now: Instant) -> bool {
            self.first_keys(sender, fingerprint(id, message), now)
        }

        fn first_keys(&self, sender: &BareJid, keys: Keys, now: Instant) -> bool {
            let first = self.first_time(sender, keys, now);
            if let Some(recent) = self.shard(sender).get_mut(sender) {
                recent.taken(keys.id);
            }
            first
        }

        fn passes(&self, sender: &BareJid, stanza: &Stanza) -> bool {
            self.message_from_client(sender, stanza, Instant::now()) == FromClient::Pass
        }

        /// What the session does once a message was taken.
        async fn sent(&self, sender: &BareJid, stanza: &Stanza) {
            let state = crate::core::state::with_accounts(&[]);
            let full = xmpp_parsers::jid::FullJid::new(&format!("{sender}/r")).expect("jid");
            let to = stanza.to.clone().expect("to");
            self.message_sent(&state, &full, stanza, &to).await;
        }
    }

    #[test]
    fn repeats_are_caught_within_the_window_only() {
        let dedup = Dedup::new(Duration::from_secs(600), 1000);
        let alice = BareJid::new("alice@x").expect("jid");
        let now = Instant::now();
        assert!(dedup.first(&alice, "1", &msg("bob@x", "hi"), now));
        assert!(!dedup.first(&alice, "1", &msg("bob@x", "hi"), now), "a retransmission");
        assert!(dedup.first(&alice, "1", &msg("bob@x", "other"), now), "same id, other message");
        assert!(dedup.first(&alice, "1", &msg("carol@x", "hi"), now), "same id, other recipient");
        assert!(dedup.first(&alice, "1", &msg("bob@x", "hi"), now + Duration::from_secs(601)), "expired");
    }

    #[test]
    fn only_the_last_per_sender_messages_are_remembered() {
        let dedup = Dedup::new(Duration::from_secs(600), 3);
        let alice = BareJid::new("alice@x").expect("jid");
        let now = Instant::now();
        let k = |fingerprint| Keys { fingerprint, id: fingerprint };
        for key in 1..=4 {
            assert!(dedup.first_keys(&alice, k(key), now));
        }
        assert!(dedup.first_keys(&alice, k(1), now), "pushed out by later ones, so new again");
        assert!((3..=4).all(|key| !dedup.first_keys(&alice, k(key), now)));
        assert!(dedup.first_keys(&alice, k(2), now), "pushed out by 1");
        for key in 7..1000 {
            dedup.first_keys(&alice, k(key), now);
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
            dedup.first(&sender, "1", &msg("bob@x", "hi"), now);
        }
        let later = now + Duration::from_secs(11);
        let alice = BareJid::new("alice@x").expect("jid");
        dedup.first(&alice, "1", &msg("bob@x", "hi"), later);
        let remembered: usize = dedup.seen.iter().map(|shard| shard.lock().expect("lock").len()).sum();
        assert!(remembered <= 2, "expired senders swept");
    }

    #[tokio::test]
    async fn a_message_refused_at_once_may_be_sent_again_and_nothing_else_is_forgotten() {
        let dedup = Dedup::new(Duration::from_secs(600), 1000);
        let alice = BareJid::new("alice@x").expect("jid");
        assert!(dedup.passes(&alice, &stanza("1", "bob@x", "hi")));
        dedup.sent(&alice, &stanza("1", "bob@x", "hi")).await;
        assert!(dedup.passes(&alice, &stanza("1", "bob@x", "other")), "an id reused for another message");
        dedup.message_refused(&alice, &stanza("1", "bob@x", "other"), false);
        assert!(dedup.passes(&alice, &stanza("1", "bob@x", "other")), "refused: taken again");
        assert!(!dedup.passes(&alice, &stanza("1", "bob@x", "hi")), "the other one stays a repeat");
        let recent = dedup.shard(&alice);
        assert_eq!(recent.get(&alice).map(|r| r.order.len()), Some(2), "the refused one gave its place back");
        let error = Stanza::parse(crate::xml::ElementExt::with(msg("bob@x", "hi"), "type", "error"))
            .map_err(|_| "stanza")
            .expect("stanza");
        assert!(dedup.passes(&alice, &error) && dedup.passes(&alice, &error), "errors are never repeats");
    }

    #[tokio::test]
    async fn a_bounced_message_is_forgotten_whatever_its_form_by_then() {
        let dedup = Dedup::new(Duration::from_secs(600), 1000);
        let alice = BareJid::new("alice@x").expect("jid");
        assert!(dedup.passes(&alice, &stanza("1", "bob@x", "hi")));
        assert!(dedup.passes(&alice, &stanza("2", "bob@x", "hi")));
        dedup.sent(&alice, &stanza("1", "bob@x", "hi")).await;
        dedup.sent(&alice, &stanza("2", "bob@x", "hi")).await;
        dedup.message_refused(&alice, &stanza("1", "bob@x", "changed on the way"), true);
        assert!(dedup.passes(&alice, &stanza("1", "bob@x", "hi")), "forgotten: taken again");
        assert!(!dedup.passes(&alice, &stanza("2", "bob@x", "hi")), "others stay");
        dedup.message_refused(&alice, &stanza("2", "carol@x", "hi"), true);
        assert!(!dedup.passes(&alice, &stanza("2", "bob@x", "hi")), "another recipient's");
    }

    /// A copy sent while the first is still being routed (its session cut off, the client
    /// on a new one) is routed too: if the first is refused, the copy is not lost with it.
    #[tokio::test]
    async fn a_copy_of_a_message_still_being_routed_is_routed_too() {
        let dedup = Dedup::new(Duration::from_secs(600), 1000);
        let alice = BareJid::new("alice@x").expect("jid");
        let message = stanza("1", "bob@x", "hi");
        assert!(dedup.passes(&alice, &message));
        assert!(dedup.passes(&alice, &message), "the first is not known taken yet");
        dedup.message_refused(&alice, &message, false);
        dedup.sent(&alice, &message).await;
        assert!(
            dedup.passes(&alice, &message),
            "the copy was taken, but the first's refusal forgot both: a duplicate at worst"
        );
        dedup.sent(&alice, &message).await;
        assert!(!dedup.passes(&alice, &message), "taken: now a repeat");
    }

    #[test]
    fn each_sender_keeps_a_bounded_number() {
        let dedup = Dedup::new(Duration::from_secs(600), 3);
        let alice = BareJid::new("alice@x").expect("jid");
        let now = Instant::now();
        for body in ["a", "b", "c", "d"] {
            assert!(dedup.first(&alice, "1", &msg("bob@x", body), now));
        }
        assert!(dedup.first(&alice, "1", &msg("bob@x", "a"), now), "the oldest was forgotten");
        assert!(!dedup.first(&alice, "1", &msg("bob@x", "d"), now));
    }
}
