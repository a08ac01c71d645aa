//! What XEP-0054 vcard-temp keeps: one vCard per account, as the XML its owner set (the
//! module serialises it: storage builds no XML), with the avatar XEP-0153 presence
//! advertises of it, worked out when it was set.

use crate::storage::Reply;
use xmpp_parsers::jid::BareJid;

/// The avatar of a stored vCard, as presence advertises it (XEP-0153 §3.1, §4.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Avatar {
    /// The vCard has no photo (or an empty one): an empty `<photo/>`.
    NoPhoto,
    /// The SHA-1 of the photo's binary value, in lower-case hex.
    Sha1(String),
}

pub trait VcardStore: Send + Sync {
    /// The account's vCard as set; None when it never set one.
    fn vcard(&self, owner: &BareJid) -> Reply<'_, Option<Vec<u8>>>;
    /// Only the avatar of the account's vCard (None: no vCard), without reading the vCard:
    /// asked for the presence its clients send.
    fn avatar(&self, owner: &BareJid) -> Reply<'_, Option<Avatar>>;
    /// Replaces the vCard and its avatar, as one write.
    fn set_vcard(&self, owner: &BareJid, vcard: &[u8], avatar: &Avatar) -> Reply<'_, ()>;
    /// Forgets the vCard of a deleted account (nothing to forget is no error).
    fn delete_vcard(&self, owner: &BareJid) -> Reply<'_, ()>;
}
