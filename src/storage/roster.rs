//! What the roster, presence and blocking features keep (RFC 6121 §2–§3, XEP-0012, XEP-0191).

use super::StorageError;
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
}

/// A whole roster and its XEP-0237 version.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Roster {
    pub version: u64,
    pub items: Vec<RosterItem>,
}

/// Rosters and pending inbound subscription requests, per account.
/// Every change of an item bumps the account's roster version in the same write.
pub trait RosterStore: Send + Sync {
    fn roster(&self, owner: &BareJid) -> Result<Roster, StorageError>;
    fn roster_item(&self, owner: &BareJid, contact: &BareJid) -> Result<Option<RosterItem>, StorageError>;
    /// Inserts or replaces an item; returns the new roster version.
    fn put_roster_item(&self, owner: &BareJid, item: &RosterItem) -> Result<u64, StorageError>;
    /// Removes an item; the new version, or None when there was no such item.
    fn remove_roster_item(&self, owner: &BareJid, contact: &BareJid) -> Result<Option<u64>, StorageError>;
    /// RFC 6121 §3.1.3: an inbound request kept (as received, XML) until answered.
    fn put_pending_in(&self, owner: &BareJid, contact: &BareJid, request: &str) -> Result<(), StorageError>;
    /// True when there was one.
    fn remove_pending_in(&self, owner: &BareJid, contact: &BareJid) -> Result<bool, StorageError>;
    fn pending_in(&self, owner: &BareJid) -> Result<Vec<(BareJid, String)>, StorageError>;
    /// Forgets everything of a deleted account.
    fn delete_roster(&self, owner: &BareJid) -> Result<(), StorageError>;
}

/// When an account's last resource went unavailable, and with what status (XEP-0012).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastSeen {
    /// Unix seconds.
    pub at: u64,
    pub status: Option<String>,
}

pub trait LastSeenStore: Send + Sync {
    fn set_last_seen(&self, owner: &BareJid, last: &LastSeen) -> Result<(), StorageError>;
    fn last_seen(&self, owner: &BareJid) -> Result<Option<LastSeen>, StorageError>;
}

/// XEP-0191 block lists.
pub trait BlockStore: Send + Sync {
    /// Adds JIDs (bare, full or domain, as given); returns those that were not blocked yet.
    fn block(&self, owner: &BareJid, jids: &[String]) -> Result<Vec<String>, StorageError>;
    /// Removes JIDs; an empty list removes all. Returns those removed.
    fn unblock(&self, owner: &BareJid, jids: &[String]) -> Result<Vec<String>, StorageError>;
    fn blocklist(&self, owner: &BareJid) -> Result<Vec<String>, StorageError>;
}
