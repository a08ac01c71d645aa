//! Messages handed to a stream-managed session (XEP-0198) and not yet acknowledged by its
//! client. They are written here before the sender is told anything, removed when the
//! client acknowledges them, and moved to the owner's offline queue when the session ends
//! without that acknowledgement, or at the next start after a crash (docs/delivery.md).

use super::offline::Quota;
use crate::storage::Reply;
use xmpp_parsers::jid::BareJid;

/// What an in-flight message becomes in the offline queue: from its owner, its stamp and
/// the message as recorded. A plain function, so that a store that answers later keeps it
/// in its future.
pub type StoredForm = fn(&BareJid, u64, &[u8]) -> Vec<u8>;

pub trait InflightStore: Send + Sync {
    /// Records a message for `owner`, stamped `stamp` (unix seconds); returns its key.
    /// In-flight messages count against the owner's offline quota (they move there if
    /// their session ends first): `QuotaExceeded` when this one would not fit.
    fn put_inflight(&self, owner: &BareJid, stamp: u64, stanza: &[u8], quota: Quota) -> Reply<'_, u64>;
    /// Forgets acknowledged entries (those that exist).
    fn remove_inflight(&self, keys: &[u64]) -> Reply<'_, ()>;
    /// Moves the given entries to their owners' offline queues, in key order, each in the
    /// form `stored` makes of it (owner, stamp, message: the caller adds its delay, so
    /// storage builds no XML); entries of accounts that no longer exist are only removed. They were
    /// counted against the quota when they were recorded, so they always fit. Returns the
    /// owners that got messages.
    fn inflight_to_offline(&self, keys: &[u64], stored: StoredForm) -> Reply<'_, Vec<BareJid>>;
    /// Every key still recorded, oldest first (after a crash, all of them move).
    fn inflight_keys(&self) -> Reply<'_, Vec<u64>>;
}
