//! What the roster, presence and blocking features keep (RFC 6121 §2–§3, XEP-0012, XEP-0191).

use crate::storage::Reply;
use serde::{Deserialize, Serialize};
use xmpp_parsers::jid::BareJid;

/// RFC 6121 §2.1.2.5: the subscription state of one contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Subscription {
    #[default]
    None,
    /// We see the contact's presence.
    To,
    /// The contact sees ours.
    From,
    Both,
}

impl Subscription {
    pub fn name(self) -> &'static str {
        match self {
            Subscription::None => "none",
            Subscription::To => "to",
            Subscription::From => "from",
            Subscription::Both => "both",
        }
    }

    /// We receive the contact's presence.
    pub fn has_to(self) -> bool {
        matches!(self, Subscription::To | Subscription::Both)
    }

    /// The contact receives ours.
    pub fn has_from(self) -> bool {
        matches!(self, Subscription::From | Subscription::Both)
    }

    pub fn with_to(self, on: bool) -> Subscription {
        Subscription::from_parts(on, self.has_from())
    }

    pub fn with_from(self, on: bool) -> Subscription {
        Subscription::from_parts(self.has_to(), on)
    }

    fn from_parts(to: bool, from: bool) -> Subscription {
        match (to, from) {
            (false, false) => Subscription::None,
            (true, false) => Subscription::To,
            (false, true) => Subscription::From,
            (true, true) => Subscription::Both,
        }
    }
}

/// One contact on a user's roster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterItem {
    pub jid: String,
    pub name: Option<String>,
    pub groups: Vec<String>,
    pub subscription: Subscription,
    /// RFC 6121 §2.1.2.2: we asked for a subscription and the contact has not answered.
    pub ask: bool,
    /// RFC 6121 §3.4: we pre-approved the contact's subscription request.
    pub approved: bool,
}

impl RosterItem {
    pub fn new(jid: &BareJid) -> RosterItem {
        RosterItem {
            jid: jid.to_string(),
            name: None,
            groups: Vec::new(),
            subscription: Subscription::None,
            ask: false,
            approved: false,
        }
    }

    /// What the item weighs against a roster's byte quota: the bytes of its JID, its name
    /// and its groups' names (what reading the roster decodes).
    pub fn size(&self) -> u64 {
        let text = self.jid.len() + self.name.as_ref().map_or(0, String::len);
        (text + self.groups.iter().map(String::len).sum::<usize>()) as u64
    }
}

/// How much one account's list (its roster, its block list) may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListQuota {
    pub items: usize,
    pub bytes: u64,
}

/// One roster's item count and size (the sum of [`RosterItem::size`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RosterTotals {
    pub items: u64,
    pub bytes: u64,
}

impl RosterTotals {
    /// After replacing an item of size `old` (None: there was none) by one of size `new`.
    pub fn change(self, old: Option<u64>, new: Option<u64>) -> RosterTotals {
        RosterTotals {
            items: (self.items + u64::from(new.is_some())).saturating_sub(u64::from(old.is_some())),
            bytes: (self.bytes + new.unwrap_or(0)).saturating_sub(old.unwrap_or(0)),
        }
    }

    /// Whether going from `self` to `after` stays within `quota`: a new item must fit the
    /// count, and a roster may not grow past its bytes (shrinking is always allowed).
    pub fn allows(self, after: RosterTotals, quota: ListQuota) -> bool {
        let items_ok = after.items <= self.items || after.items <= quota.items as u64;
        let bytes_ok = after.bytes <= self.bytes || after.bytes <= quota.bytes;
        items_ok && bytes_ok
    }
}

/// A whole roster and its XEP-0237 version.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Roster {
    pub version: u64,
    pub items: Vec<RosterItem>,
}

/// Rosters, per account. Every change of an item bumps the account's roster version in
/// the same write.
pub trait RosterStore: Send + Sync {
    fn roster(&self, owner: &BareJid) -> Reply<'_, Roster>;
    fn roster_item(&self, owner: &BareJid, contact: &BareJid) -> Reply<'_, Option<RosterItem>>;
    /// Inserts or replaces an item; returns the new roster version. `QuotaExceeded`, and
    /// nothing changes, when a new item would make more than `quota.items`, or the change
    /// would grow the roster's size (the sum of [`RosterItem::size`]) beyond `quota.bytes`;
    /// the check and the write are one step, whoever else writes that roster meanwhile.
    fn put_roster_item(&self, owner: &BareJid, item: &RosterItem, quota: ListQuota) -> Reply<'_, u64>;
    /// Removes an item; the new version, or None when there was no such item.
    fn remove_roster_item(&self, owner: &BareJid, contact: &BareJid) -> Reply<'_, Option<u64>>;
    /// Every account whose roster holds an item for `contact`, found without reading
    /// every roster (kept in step with the items).
    fn roster_holders(&self, contact: &BareJid) -> Reply<'_, Vec<BareJid>>;
    /// Forgets everything of a deleted account: its roster, its waiting subscription
    /// requests, its block list, its last-seen record.
    fn delete_roster(&self, owner: &BareJid) -> Reply<'_, ()>;
}

/// RFC 6121 §3.1.3: inbound subscription requests, each kept (as received, XML) until
/// it is answered; one per requesting contact.
pub trait SubscriptionRequestStore: Send + Sync {
    fn put_pending_in(&self, owner: &BareJid, contact: &BareJid, request: &str) -> Reply<'_, ()>;
    /// True when there was one.
    fn remove_pending_in(&self, owner: &BareJid, contact: &BareJid) -> Reply<'_, bool>;
    /// The request `contact` left for `owner`, if one waits.
    fn pending_request(&self, owner: &BareJid, contact: &BareJid) -> Reply<'_, Option<String>>;
    /// Every request waiting for `owner`.
    fn pending_in(&self, owner: &BareJid) -> Reply<'_, Vec<(BareJid, String)>>;
}

/// When an account's last resource went unavailable, and with what status (XEP-0012).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastSeen {
    /// Unix seconds.
    pub at: u64,
    pub status: Option<String>,
}

pub trait LastSeenStore: Send + Sync {
    fn set_last_seen(&self, owner: &BareJid, last: &LastSeen) -> Reply<'_, ()>;
    fn last_seen(&self, owner: &BareJid) -> Reply<'_, Option<LastSeen>>;
}

/// One account's block list as kept in memory: what every stanza to or from the account
/// asks about (XEP-0191 §3.1: is this JID, or a form of it, on the list?).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockList {
    jids: std::collections::HashSet<String>,
    bytes: u64,
}

impl BlockList {
    pub fn new(jids: impl IntoIterator<Item = String>) -> BlockList {
        let jids: std::collections::HashSet<String> = jids.into_iter().collect();
        let bytes = jids.iter().map(|j| j.len() as u64).sum();
        BlockList { jids, bytes }
    }

    /// Whether exactly this JID (bare, full or domain, as blocked) is on the list.
    pub fn contains(&self, jid: &str) -> bool {
        self.jids.contains(jid)
    }

    pub fn len(&self) -> usize {
        self.jids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.jids.is_empty()
    }

    /// The bytes of its JIDs, what a block list's byte quota counts.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether the list may take `jids` (those not on it yet) within `quota`.
    pub fn takes(&self, jids: &[String], quota: ListQuota) -> bool {
        let mut fresh: Vec<&String> = jids.iter().filter(|jid| !self.contains(jid)).collect();
        fresh.sort();
        fresh.dedup();
        let bytes: u64 = fresh.iter().map(|jid| jid.len() as u64).sum();
        self.len() + fresh.len() <= quota.items && self.bytes() + bytes <= quota.bytes
    }

    /// Adds a JID; false when it was on the list already.
    pub(crate) fn insert(&mut self, jid: &str) -> bool {
        if self.jids.contains(jid) {
            return false;
        }
        self.jids.insert(jid.to_owned());
        self.bytes += jid.len() as u64;
        true
    }

    /// Removes a JID; false when it was not on the list.
    pub(crate) fn remove(&mut self, jid: &str) -> bool {
        let removed = self.jids.remove(jid);
        if removed {
            self.bytes = self.bytes.saturating_sub(jid.len() as u64);
        }
        removed
    }

    /// The JIDs, sorted.
    pub fn sorted(&self) -> Vec<String> {
        let mut jids: Vec<String> = self.jids.iter().cloned().collect();
        jids.sort();
        jids
    }
}

/// XEP-0191 block lists.
pub trait BlockStore: Send + Sync {
    /// Adds JIDs (bare, full or domain, as given); returns those that were not blocked yet.
    /// `QuotaExceeded`, and nothing is added, when the list would then hold more than
    /// `quota.items` JIDs or more than `quota.bytes` bytes of them.
    fn block(&self, owner: &BareJid, jids: &[String], quota: ListQuota) -> Reply<'_, Vec<String>>;
    /// Removes JIDs; an empty list removes all. Returns those removed.
    fn unblock(&self, owner: &BareJid, jids: &[String]) -> Reply<'_, Vec<String>>;
    /// The list, sorted.
    fn blocklist(&self, owner: &BareJid) -> Reply<'_, Vec<String>> {
        self.blocked(owner).map(|list| list.map(|list| list.sorted()).unwrap_or_default())
    }
    /// The list for the question every stanza asks, None when it is empty. Kept in memory
    /// (asking costs no store read once it was read), always in step with `block` and
    /// `unblock`.
    fn blocked(&self, owner: &BareJid) -> Reply<'_, Option<std::sync::Arc<BlockList>>>;
}
