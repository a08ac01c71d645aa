//! What XEP-0049 private XML storage keeps: per account, the XML a client stored under one
//! namespace (the module serialises it: storage builds no XML), within a quota of bytes
//! over all of the account's namespaces.

use crate::storage::Reply;
use xmpp_parsers::jid::BareJid;

/// What one entry weighs against an account's quota: its namespace and its XML.
pub fn entry_size(namespace: &str, xml: &[u8]) -> u64 {
    (namespace.len() + xml.len()) as u64
}

pub trait PrivateStore: Send + Sync {
    /// What the account stored under `namespace`; None when nothing is.
    fn private(&self, owner: &BareJid, namespace: &str) -> Reply<'_, Option<Vec<u8>>>;
    /// Stores `xml` under `namespace`, replacing what was there. `QuotaExceeded`, and
    /// nothing changes, when the account's entries (the sum of [`entry_size`]) would grow
    /// beyond `max_bytes`; an entry may always shrink. The check and the write are one
    /// step, whoever else writes meanwhile.
    fn put_private(&self, owner: &BareJid, namespace: &str, xml: &[u8], max_bytes: u64) -> Reply<'_, ()>;
    /// The bytes the account's entries weigh (the sum of [`entry_size`]).
    fn private_bytes(&self, owner: &BareJid) -> Reply<'_, u64>;
    /// Forgets every entry of a deleted account.
    fn delete_private(&self, owner: &BareJid) -> Reply<'_, ()>;
}
