//! Private XML (`private`: `owner NUL namespace` → the XML as stored) and each account's
//! bytes of it (`private_totals`: owner → u64), changed together in one transaction.

use super::roster::{key, prefix};
use super::{abort, backend, tx_error, SledStore};
use crate::storage::private::{entry_size, PrivateStore};
use crate::storage::Reply;
use crate::storage::StorageError;
use sled::transaction::Transactional;
use xmpp_parsers::jid::BareJid;

fn read_total(bytes: Option<&[u8]>) -> Result<u64, StorageError> {
    match bytes {
        None => Ok(0),
        Some(bytes) => <[u8; 8]>::try_from(bytes)
            .map(u64::from_be_bytes)
            .map_err(|_| StorageError::Corrupt("a private storage total is not 8 bytes".into())),
    }
}

impl PrivateStore for SledStore {
    fn private(&self, owner: &BareJid, namespace: &str) -> Reply<'_, Option<Vec<u8>>> {
        Reply::now(|| Ok(self.private.get(key(owner, namespace)).map_err(backend)?.map(|v| v.to_vec())))
    }

    fn put_private(&self, owner: &BareJid, namespace: &str, xml: &[u8], max_bytes: u64) -> Reply<'_, ()> {
        Reply::now(|| {
            let entry_key = key(owner, namespace);
            let new = entry_size(namespace, xml);
            (&self.private, &self.private_totals)
                .transaction(|(entries, totals)| {
                    let old = entries.get(entry_key.as_slice())?.map_or(0, |old| entry_size(namespace, &old));
                    let before = read_total(totals.get(owner.as_str())?.as_deref()).map_err(abort)?;
                    let after = (before + new).saturating_sub(old);
                    if after > before && after > max_bytes {
                        return Err(abort(StorageError::QuotaExceeded(max_bytes)));
                    }
                    entries.insert(entry_key.as_slice(), xml)?;
                    totals.insert(owner.as_str(), &after.to_be_bytes())?;
                    Ok(())
                })
                .map_err(tx_error)
        })
    }

    fn private_bytes(&self, owner: &BareJid) -> Reply<'_, u64> {
        Reply::now(|| read_total(self.private_totals.get(owner.as_str()).map_err(backend)?.as_deref()))
    }

    fn delete_private(&self, owner: &BareJid) -> Reply<'_, ()> {
        Reply::now(|| {
            for entry in self.private.scan_prefix(prefix(owner)) {
                self.private.remove(entry.map_err(backend)?.0).map_err(backend)?;
            }
            self.private_totals.remove(owner.as_str()).map_err(backend)?;
            Ok(())
        })
    }
}
