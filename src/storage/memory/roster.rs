//! Rosters, subscription requests, last seen and block lists: one [`Contacts`] per owner,
//! and the reverse index of roster items (contact → owners), changed under the owner's
//! stripe with the item.

use super::{corrupt, MemoryStore};
use crate::storage::roster::{
    BlockList, BlockStore, LastSeen, LastSeenStore, ListQuota, Roster, RosterItem, RosterStore, RosterTotals,
    SubscriptionRequestStore,
};
use crate::storage::Reply;
use crate::storage::StorageError;
use std::collections::BTreeMap;
use std::sync::Arc;
use xmpp_parsers::jid::BareJid;

/// What one account keeps about its contacts.
#[derive(Default)]
pub(super) struct Contacts {
    /// Bumped by every change of an item; forgotten with the roster, as sled does.
    version: u64,
    /// By contact, so a roster reads in the order of its contacts' JIDs.
    items: BTreeMap<String, RosterItem>,
    totals: RosterTotals,
    /// Inbound subscription requests, by contact.
    pending: BTreeMap<String, String>,
    last_seen: Option<LastSeen>,
    /// Never empty (an empty list is None); copied on write while a reader holds it.
    blocks: Option<Arc<BlockList>>,
}

impl Contacts {
    fn is_empty(&self) -> bool {
        self.version == 0
            && self.items.is_empty()
            && self.pending.is_empty()
            && self.last_seen.is_none()
            && self.blocks.is_none()
    }
}

impl MemoryStore {
    /// Runs `read` on the owner's contacts (None: it has nothing), under its stripe.
    fn read_contacts<R>(&self, owner: &BareJid, read: impl FnOnce(Option<&Contacts>) -> R) -> R {
        read(self.contacts.lock(owner.as_str()).get(owner.as_str()))
    }

    /// Runs `change` on the owner's contacts under its stripe; what is left empty goes.
    fn change_contacts<R>(&self, owner: &BareJid, change: impl FnOnce(&mut Contacts) -> R) -> R {
        let mut stripe = self.contacts.lock(owner.as_str());
        let contacts = stripe.entry(owner.to_string()).or_default();
        let result = change(contacts);
        if contacts.blocks.as_ref().is_some_and(|list| list.is_empty()) {
            contacts.blocks = None;
        }
        if contacts.is_empty() {
            stripe.remove(owner.as_str());
        }
        result
    }

    /// Records that `owner` holds (or no longer holds) an item for `contact`. Under the
    /// owner's stripe.
    fn index_holder(&self, contact: &str, owner: &BareJid, holds: bool) {
        let mut stripe = self.holders.lock(contact);
        if holds {
            stripe.entry(contact.to_owned()).or_default().insert(owner.to_string());
        } else if let Some(owners) = stripe.get_mut(contact) {
            owners.remove(owner.as_str());
            if owners.is_empty() {
                stripe.remove(contact);
            }
        }
    }
}

impl RosterStore for MemoryStore {
    fn roster(&self, owner: &BareJid) -> Reply<'_, Roster> {
        Reply::now(|| {
            Ok(self.read_contacts(owner, |contacts| {
                contacts.map_or_else(Roster::default, |c| Roster {
                    version: c.version,
                    items: c.items.values().cloned().collect(),
                })
            }))
        })
    }

    fn roster_item(&self, owner: &BareJid, contact: &BareJid) -> Reply<'_, Option<RosterItem>> {
        Reply::now(|| {
            Ok(self.read_contacts(owner, |contacts| contacts.and_then(|c| c.items.get(contact.as_str()).cloned())))
        })
    }

    fn put_roster_item(&self, owner: &BareJid, item: &RosterItem, quota: ListQuota) -> Reply<'_, u64> {
        Reply::now(|| {
            self.change_contacts(owner, |contacts| {
                let old_size = contacts.items.get(&item.jid).map(RosterItem::size);
                let after = contacts.totals.change(old_size, Some(item.size()));
                if !contacts.totals.allows(after, quota) {
                    return Err(StorageError::QuotaExceeded(quota.items as u64));
                }
                contacts.items.insert(item.jid.clone(), item.clone());
                self.index_holder(&item.jid, owner, true);
                contacts.totals = after;
                contacts.version += 1;
                Ok(contacts.version)
            })
        })
    }

    fn remove_roster_item(&self, owner: &BareJid, contact: &BareJid) -> Reply<'_, Option<u64>> {
        Reply::now(|| {
            Ok(self.change_contacts(owner, |contacts| {
                let old = contacts.items.remove(contact.as_str())?;
                self.index_holder(contact.as_str(), owner, false);
                contacts.totals = contacts.totals.change(Some(old.size()), None);
                contacts.version += 1;
                Some(contacts.version)
            }))
        })
    }

    fn roster_holders(&self, contact: &BareJid) -> Reply<'_, Vec<BareJid>> {
        Reply::now(|| {
            let stripe = self.holders.lock(contact.as_str());
            let owners = stripe.get(contact.as_str()).into_iter().flatten();
            owners.map(|owner| BareJid::new(owner).map_err(corrupt)).collect()
        })
    }

    fn delete_roster(&self, owner: &BareJid) -> Reply<'_, ()> {
        Reply::now(|| {
            let mut stripe = self.contacts.lock(owner.as_str());
            if let Some(gone) = stripe.remove(owner.as_str()) {
                for contact in gone.items.keys() {
                    self.index_holder(contact, owner, false);
                }
            }
            Ok(())
        })
    }
}

impl SubscriptionRequestStore for MemoryStore {
    fn put_pending_in(&self, owner: &BareJid, contact: &BareJid, request: &str) -> Reply<'_, ()> {
        Reply::now(|| {
            self.change_contacts(owner, |contacts| contacts.pending.insert(contact.to_string(), request.to_owned()));
            Ok(())
        })
    }

    fn remove_pending_in(&self, owner: &BareJid, contact: &BareJid) -> Reply<'_, bool> {
        Reply::now(|| Ok(self.change_contacts(owner, |contacts| contacts.pending.remove(contact.as_str()).is_some())))
    }

    fn pending_request(&self, owner: &BareJid, contact: &BareJid) -> Reply<'_, Option<String>> {
        Reply::now(|| {
            Ok(self.read_contacts(owner, |contacts| contacts.and_then(|c| c.pending.get(contact.as_str()).cloned())))
        })
    }

    fn pending_in(&self, owner: &BareJid) -> Reply<'_, Vec<(BareJid, String)>> {
        Reply::now(|| {
            self.read_contacts(owner, |contacts| {
                let pending = contacts.into_iter().flat_map(|c| &c.pending);
                pending.map(|(jid, request)| Ok((BareJid::new(jid).map_err(corrupt)?, request.clone()))).collect()
            })
        })
    }
}

impl LastSeenStore for MemoryStore {
    fn set_last_seen(&self, owner: &BareJid, last: &LastSeen) -> Reply<'_, ()> {
        Reply::now(|| {
            self.change_contacts(owner, |contacts| contacts.last_seen = Some(last.clone()));
            Ok(())
        })
    }

    fn last_seen(&self, owner: &BareJid) -> Reply<'_, Option<LastSeen>> {
        Reply::now(|| Ok(self.read_contacts(owner, |contacts| contacts.and_then(|c| c.last_seen.clone()))))
    }
}

impl BlockStore for MemoryStore {
    fn block(&self, owner: &BareJid, jids: &[String], quota: ListQuota) -> Reply<'_, Vec<String>> {
        Reply::now(|| {
            self.change_contacts(owner, |contacts| {
                let list = contacts.blocks.get_or_insert_default();
                if !list.takes(jids, quota) {
                    return Err(StorageError::QuotaExceeded(quota.items as u64));
                }
                let list = Arc::make_mut(list);
                Ok(jids.iter().filter(|jid| list.insert(jid)).cloned().collect())
            })
        })
    }

    fn unblock(&self, owner: &BareJid, jids: &[String]) -> Reply<'_, Vec<String>> {
        Reply::now(|| {
            Ok(self.change_contacts(owner, |contacts| {
                let Some(list) = contacts.blocks.as_mut() else { return Vec::new() };
                let targets = if jids.is_empty() { list.sorted() } else { jids.to_vec() };
                let list = Arc::make_mut(list);
                targets.into_iter().filter(|jid| list.remove(jid)).collect()
            }))
        })
    }

    fn blocked(&self, owner: &BareJid) -> Reply<'_, Option<Arc<BlockList>>> {
        Reply::now(|| Ok(self.read_contacts(owner, |contacts| contacts.and_then(|c| c.blocks.clone()))))
    }
}
