//! Private XML by namespace, with its bytes, per owner.

use super::MemoryStore;
use crate::storage::private::{entry_size, PrivateStore};
use crate::storage::Reply;
use crate::storage::StorageError;
use std::collections::HashMap;
use xmpp_parsers::jid::BareJid;

/// One account's entries, by namespace, and the sum of their sizes.
#[derive(Default)]
pub(super) struct Entries {
    by_namespace: HashMap<String, Vec<u8>>,
    bytes: u64,
}

impl PrivateStore for MemoryStore {
    fn private(&self, owner: &BareJid, namespace: &str) -> Reply<'_, Option<Vec<u8>>> {
        Reply::now(|| {
            let stripe = self.private.lock(owner.as_str());
            Ok(stripe.get(owner.as_str()).and_then(|entries| entries.by_namespace.get(namespace).cloned()))
        })
    }

    fn put_private(&self, owner: &BareJid, namespace: &str, xml: &[u8], max_bytes: u64) -> Reply<'_, ()> {
        Reply::now(|| {
            let mut stripe = self.private.lock(owner.as_str());
            let entries = stripe.entry(owner.to_string()).or_default();
            let old = entries.by_namespace.get(namespace).map_or(0, |old| entry_size(namespace, old));
            let after = (entries.bytes + entry_size(namespace, xml)).saturating_sub(old);
            if after > entries.bytes && after > max_bytes {
                if entries.by_namespace.is_empty() {
                    stripe.remove(owner.as_str());
                }
                return Err(StorageError::QuotaExceeded(max_bytes));
            }
            entries.by_namespace.insert(namespace.to_owned(), xml.to_vec());
            entries.bytes = after;
            Ok(())
        })
    }

    fn private_bytes(&self, owner: &BareJid) -> Reply<'_, u64> {
        Reply::now(|| Ok(self.private.lock(owner.as_str()).get(owner.as_str()).map_or(0, |entries| entries.bytes)))
    }

    fn delete_private(&self, owner: &BareJid) -> Reply<'_, ()> {
        Reply::now(|| {
            self.private.lock(owner.as_str()).remove(owner.as_str());
            Ok(())
        })
    }
}
