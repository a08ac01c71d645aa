//! vCards with their avatars, per owner.

use super::MemoryStore;
use crate::storage::vcard::{Avatar, VcardStore};
use crate::storage::Reply;
use xmpp_parsers::jid::BareJid;

/// One account's vCard as set, and its avatar.
pub(super) struct Vcard {
    xml: Vec<u8>,
    avatar: Avatar,
}

impl VcardStore for MemoryStore {
    fn vcard(&self, owner: &BareJid) -> Reply<'_, Option<Vec<u8>>> {
        Reply::now(|| Ok(self.vcards.lock(owner.as_str()).get(owner.as_str()).map(|v| v.xml.clone())))
    }

    fn avatar(&self, owner: &BareJid) -> Reply<'_, Option<Avatar>> {
        Reply::now(|| Ok(self.vcards.lock(owner.as_str()).get(owner.as_str()).map(|v| v.avatar.clone())))
    }

    fn set_vcard(&self, owner: &BareJid, vcard: &[u8], avatar: &Avatar) -> Reply<'_, ()> {
        Reply::now(|| {
            let stored = Vcard { xml: vcard.to_vec(), avatar: avatar.clone() };
            self.vcards.lock(owner.as_str()).insert(owner.to_string(), stored);
            Ok(())
        })
    }

    fn delete_vcard(&self, owner: &BareJid) -> Reply<'_, ()> {
        Reply::now(|| {
            self.vcards.lock(owner.as_str()).remove(owner.as_str());
            Ok(())
        })
    }
}
