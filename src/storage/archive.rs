//! Message archives (XEP-0313) and their preferences (XEP-0441), per account.
//!
//! Entries are kept in arrival order; every id is unique, never reused, opaque to clients,
//! and orders like the entries it names, so paging after or before an id is a range scan.

pub mod ids;
pub mod paging;

use crate::storage::Reply;
use std::str::FromStr;
use xmpp_parsers::jid::{BareJid, Jid};

/// One archived message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchivedMessage {
    /// The archive id (XEP-0313 §6.2, XEP-0359 stanza-id).
    pub id: String,
    /// The other party, as given when archiving (bare, or full when it was known).
    pub with: Jid,
    /// When it was archived, in microseconds since the Unix epoch.
    pub stamp_micros: u64,
    pub stanza: Vec<u8>,
}

/// Which page of the matching entries to return (XEP-0059).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Page {
    /// §2.2: the first `max` matches after the entry with this id; None: from the oldest.
    After(Option<String>),
    /// §2.3, §2.5: the last `max` matches before the entry with this id; None: the last page.
    Before(Option<String>),
}

/// What to look for in one account's archive (XEP-0313 §4.1). Unknown ids are `NotFound`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveQuery {
    /// §4.1.1: a bare JID matches the other party's bare JID, a full JID matches it exactly.
    pub with: Option<Jid>,
    /// §4.1.2: inclusive bounds on the stamp, in microseconds.
    pub start: Option<u64>,
    pub end: Option<u64>,
    /// §4.1.3: exclusive bounds by id (the `after-id` and `before-id` fields).
    pub after_id: Option<String>,
    pub before_id: Option<String>,
    /// §4.1.3: only these entries (the `ids` field); empty: no such filter.
    pub ids: Vec<String>,
    pub page: Page,
    /// Most entries in the page; 0 asks only for the count (XEP-0059 §2.7).
    pub max: usize,
    /// Most bytes of stanzas in the page, beyond its first entry: a page that reaches it
    /// ends early and is not complete. Paging backward, the entries nearest the starting
    /// point are kept.
    pub max_bytes: usize,
    /// `count` and `first_index`, when given, are exact. A backend with an index of counts
    /// gives them always; otherwise counting costs a scan of the matches, and they are
    /// given when at most this many entries match. 0: never.
    pub count_up_to: u64,
}

impl ArchiveQuery {
    /// Everything, oldest first, `max` at a time, counted.
    pub fn all(max: usize) -> ArchiveQuery {
        ArchiveQuery {
            with: None,
            start: None,
            end: None,
            after_id: None,
            before_id: None,
            ids: Vec::new(),
            page: Page::After(None),
            max,
            max_bytes: usize::MAX,
            count_up_to: u64::MAX,
        }
    }
}

/// One page of matches, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchivePage {
    pub messages: Vec<ArchivedMessage>,
    /// No further match lies in the paging direction (after the page going forward,
    /// before it going backward).
    pub complete: bool,
    /// How many entries match the query as a whole, when counted (see `count_up_to`).
    pub count: Option<u64>,
    /// The position of the page's first entry among all matches (XEP-0059 §2.2).
    pub first_index: Option<u64>,
}

/// XEP-0441 §2.1.1: what happens to a conversation with a JID on neither list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Default {
    Always,
    Never,
    /// Archived only when the other party is on the account's roster.
    Roster,
}

impl Default {
    pub fn name(self) -> &'static str {
        match self {
            Default::Always => "always",
            Default::Never => "never",
            Default::Roster => "roster",
        }
    }
}

impl FromStr for Default {
    type Err = ();

    fn from_str(s: &str) -> Result<Default, ()> {
        match s {
            "always" => Ok(Default::Always),
            "never" => Ok(Default::Never),
            "roster" => Ok(Default::Roster),
            _ => Err(()),
        }
    }
}

/// XEP-0441 §2.1: an account's archiving preferences. Listed JIDs are bare or full.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchivePrefs {
    pub default: Default,
    pub always: Vec<Jid>,
    pub never: Vec<Jid>,
}

impl ArchivePrefs {
    /// The bytes of the listed JIDs, what the preferences' byte limit counts.
    pub fn bytes(&self) -> u64 {
        self.always.iter().chain(&self.never).map(|jid| jid.as_str().len() as u64).sum()
    }
}

pub trait ArchiveStore: Send + Sync {
    /// Appends to `owner`'s archive a message exchanged with `with`; returns its new id.
    /// A stamp older than the archive's newest entry is raised to that entry's, so an
    /// archive's stamps follow its order (XEP-0313 §3.1) and expiry never leaves holes.
    fn archive(&self, owner: &BareJid, with: &Jid, stamp_micros: u64, stanza: &[u8]) -> Reply<'_, String>;
    /// Removes one entry: a message archived for its recipient and then refused after all
    /// (the sender got an error: it was never the recipient's). False when there is none.
    fn unarchive(&self, owner: &BareJid, id: &str) -> Reply<'_, bool>;
    /// One page of the entries matching `query`; `NotFound(id)` for an id the archive lacks.
    fn query_archive(&self, owner: &BareJid, query: &ArchiveQuery) -> Reply<'_, ArchivePage>;
    /// Asked for every archived message: kept in memory once read, always in step with
    /// `set_archive_prefs` and `delete_archive`.
    fn archive_prefs(&self, owner: &BareJid) -> Reply<'_, Option<std::sync::Arc<ArchivePrefs>>>;
    fn set_archive_prefs(&self, owner: &BareJid, prefs: &ArchivePrefs) -> Reply<'_, ()>;
    /// Retention: deletes every entry of every archive stamped before `before_micros`;
    /// returns how many went.
    fn expire_archive(&self, before_micros: u64) -> Reply<'_, u64>;
    /// Retention of one archive: deletes its entries stamped before `before_micros`;
    /// returns how many went. Other archives are appended to meanwhile.
    fn expire_archive_of(&self, owner: &BareJid, before_micros: u64) -> Reply<'_, u64>;
    /// How long `owner` chose to keep its archived messages (seconds); None: as long as
    /// the server does.
    fn archive_retention(&self, owner: &BareJid) -> Reply<'_, Option<u64>>;
    fn set_archive_retention(&self, owner: &BareJid, max_age_secs: Option<u64>) -> Reply<'_, ()>;
    /// Every account that chose a retention of its own, with it (what expiry walks).
    fn archive_retentions(&self) -> Reply<'_, Vec<(BareJid, u64)>>;
    /// Forgets a deleted account's archive, preferences and retention. Other archives are appended to
    /// meanwhile: a large archive does not hold them up.
    fn delete_archive(&self, owner: &BareJid) -> Reply<'_, ()>;
}
