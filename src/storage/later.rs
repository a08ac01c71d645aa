//! A store whose every answer comes later, as a store across a network answers: each call
//! keeps its arguments in its future and yields to the runtime before the wrapped store
//! answers. The contract suite and the integration tests run over it
//! (`STANZAD_TEST_STORE=later`), so no caller can rely on an answer at once, and it shows
//! what a networked backend does with the traits: own its arguments, answer with
//! [`Soon::later`].

use super::archive::{ArchivePage, ArchivePrefs, ArchiveQuery, ArchiveStore};
use super::inflight::{InflightStore, StoredForm};
use super::offline::{Batch, OfflineMessage, OfflineStore, Quota};
use super::private::PrivateStore;
use super::roster::{
    BlockList, BlockStore, LastSeen, LastSeenStore, ListQuota, Roster, RosterItem, RosterStore,
    SubscriptionRequestStore,
};
use super::vcard::{Avatar, VcardStore};
use super::{Reply, Soon, Storage, UserStore};
use crate::sasl::credentials::StoredCredentials;
use std::sync::Arc;
use xmpp_parsers::jid::{BareJid, Jid};

/// `store`, answering later.
pub struct Later(Arc<dyn Storage>);

impl Later {
    pub fn new(store: Arc<dyn Storage>) -> Later {
        Later(store)
    }
}

/// A parameter's type: `r T` is a `&T` the future keeps as `T::Owned`, `v T` a copied value.
macro_rules! param {
    (r, $ty:ty) => {
        &$ty
    };
    (v, $ty:ty) => {
        $ty
    };
}

macro_rules! keep {
    (r, $arg:ident) => {
        $arg.to_owned()
    };
    (v, $arg:ident) => {
        $arg
    };
}

macro_rules! lend {
    (r, $arg:ident) => {
        &$arg
    };
    (v, $arg:ident) => {
        $arg
    };
}

/// Each method: its arguments kept, a yield, then the wrapped store's answer.
macro_rules! answers_later {
    ($($name:ident($($mode:ident $arg:ident: $ty:ty),*) -> $out:ty;)*) => {
        $(
            fn $name(&self, $($arg: param!($mode, $ty)),*) -> Reply<'_, $out> {
                $(let $arg = keep!($mode, $arg);)*
                Soon::later(async move {
                    tokio::task::yield_now().await;
                    self.0.$name($(lend!($mode, $arg)),*).await
                })
            }
        )*
    };
}

impl UserStore for Later {
    answers_later! {
        create_user(r jid: BareJid, r creds: StoredCredentials) -> ();
        set_credentials(r jid: BareJid, r creds: StoredCredentials) -> ();
        delete_user(r jid: BareJid) -> ();
        credentials(r jid: BareJid) -> Option<StoredCredentials>;
        user_exists(r jid: BareJid) -> bool;
        list_users() -> Vec<BareJid>;
        flush() -> ();
        maintain() -> ();
        check() -> ();
    }
}

impl RosterStore for Later {
    answers_later! {
        roster(r owner: BareJid) -> Roster;
        roster_item(r owner: BareJid, r contact: BareJid) -> Option<RosterItem>;
        put_roster_item(r owner: BareJid, r item: RosterItem, v quota: ListQuota) -> u64;
        remove_roster_item(r owner: BareJid, r contact: BareJid) -> Option<u64>;
        roster_holders(r contact: BareJid) -> Vec<BareJid>;
        delete_roster(r owner: BareJid) -> ();
    }
}

impl SubscriptionRequestStore for Later {
    answers_later! {
        put_pending_in(r owner: BareJid, r contact: BareJid, r request: str) -> ();
        remove_pending_in(r owner: BareJid, r contact: BareJid) -> bool;
        pending_request(r owner: BareJid, r contact: BareJid) -> Option<String>;
        pending_in(r owner: BareJid) -> Vec<(BareJid, String)>;
    }
}

impl LastSeenStore for Later {
    answers_later! {
        set_last_seen(r owner: BareJid, r last: LastSeen) -> ();
        last_seen(r owner: BareJid) -> Option<LastSeen>;
    }
}

impl BlockStore for Later {
    answers_later! {
        block(r owner: BareJid, r jids: [String], v quota: ListQuota) -> Vec<String>;
        unblock(r owner: BareJid, r jids: [String]) -> Vec<String>;
        blocklist(r owner: BareJid) -> Vec<String>;
        blocked(r owner: BareJid) -> Option<Arc<BlockList>>;
    }
}

impl OfflineStore for Later {
    answers_later! {
        push_offline(r owner: BareJid, r stanza: [u8], v quota: Quota) -> u64;
        offline_count(r owner: BareJid) -> u64;
        offline_batch(r owner: BareJid, v batch: Batch) -> Vec<OfflineMessage>;
        offline_message(r owner: BareJid, v seq: u64) -> Option<OfflineMessage>;
        remove_offline(r owner: BareJid, r seqs: [u64]) -> u64;
        delete_offline(r owner: BareJid) -> ();
    }
}

impl InflightStore for Later {
    answers_later! {
        put_inflight(r owner: BareJid, v stamp: u64, r stanza: [u8], v quota: Quota) -> u64;
        remove_inflight(r keys: [u64]) -> ();
        inflight_to_offline(r keys: [u64], v stored: StoredForm) -> Vec<BareJid>;
        inflight_keys() -> Vec<u64>;
    }
}

impl ArchiveStore for Later {
    answers_later! {
        archive(r owner: BareJid, r with: Jid, v stamp_micros: u64, r stanza: [u8]) -> String;
        query_archive(r owner: BareJid, r query: ArchiveQuery) -> ArchivePage;
        unarchive(r owner: BareJid, r id: str) -> bool;
        archive_prefs(r owner: BareJid) -> Option<Arc<ArchivePrefs>>;
        set_archive_prefs(r owner: BareJid, r prefs: ArchivePrefs) -> ();
        expire_archive(v before_micros: u64) -> u64;
        expire_archive_of(r owner: BareJid, v before_micros: u64) -> u64;
        archive_retention(r owner: BareJid) -> Option<u64>;
        set_archive_retention(r owner: BareJid, v max_age_secs: Option<u64>) -> ();
        archive_retentions() -> Vec<(BareJid, u64)>;
        delete_archive(r owner: BareJid) -> ();
    }
}

impl VcardStore for Later {
    answers_later! {
        vcard(r owner: BareJid) -> Option<Vec<u8>>;
        avatar(r owner: BareJid) -> Option<Avatar>;
        set_vcard(r owner: BareJid, r vcard: [u8], r avatar: Avatar) -> ();
        delete_vcard(r owner: BareJid) -> ();
    }
}

impl PrivateStore for Later {
    answers_later! {
        private(r owner: BareJid, r namespace: str) -> Option<Vec<u8>>;
        put_private(r owner: BareJid, r namespace: str, r xml: [u8], v max_bytes: u64) -> ();
        private_bytes(r owner: BareJid) -> u64;
        delete_private(r owner: BareJid) -> ();
    }
}
