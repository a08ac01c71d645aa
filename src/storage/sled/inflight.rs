//! In-flight messages: `key` (a sled id, so keys grow in time) → `stamp ‖ owner NUL stanza`.
//! Moving one to the offline queue stores it there first, then removes it.

use super::{backend, SledStore};
use crate::storage::inflight::{InflightStore, StoredForm};
use crate::storage::offline::{OfflineStore, Quota};
use crate::storage::Reply;
use crate::storage::{StorageError, UserStore};
use xmpp_parsers::jid::BareJid;

fn encode(owner: &BareJid, stamp: u64, stanza: &[u8]) -> Vec<u8> {
    let mut value = stamp.to_be_bytes().to_vec();
    value.extend_from_slice(owner.as_str().as_bytes());
    value.push(0);
    value.extend_from_slice(stanza);
    value
}

fn decode(value: &[u8]) -> Result<(BareJid, u64, &[u8]), StorageError> {
    let corrupt = || StorageError::Corrupt("in-flight entry".into());
    let stamp = value.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(u64::from_be_bytes).ok_or_else(corrupt)?;
    let rest = &value[8..];
    let nul = rest.iter().position(|b| *b == 0).ok_or_else(corrupt)?;
    let owner = std::str::from_utf8(&rest[..nul]).ok().and_then(|s| BareJid::new(s).ok()).ok_or_else(corrupt)?;
    Ok((owner, stamp, &rest[nul + 1..]))
}

impl SledStore {
    /// A record left the in-flight tree: its owner's quota has the room again.
    fn uncount_inflight(&self, value: &[u8]) -> Result<(), StorageError> {
        let (owner, _, stanza) = decode(value)?;
        self.with_totals(&owner, |account| {
            account.remove_inflight(stanza.len());
            Ok(())
        })
    }
}

impl InflightStore for SledStore {
    fn put_inflight(&self, owner: &BareJid, stamp: u64, stanza: &[u8], quota: Quota) -> Reply<'_, u64> {
        Reply::now(|| {
            // Under the totals' lock, as offline messages: the quota holds for concurrent senders.
            self.with_totals(owner, |account| {
                if !account.fits(stanza.len(), quota) {
                    return Err(StorageError::QuotaExceeded(quota.messages));
                }
                let key = self.db.generate_id().map_err(backend)?;
                self.inflight.insert(key.to_be_bytes(), encode(owner, stamp, stanza)).map_err(backend)?;
                account.add_inflight(stanza.len());
                Ok(key)
            })
        })
    }

    fn remove_inflight(&self, keys: &[u64]) -> Reply<'_, ()> {
        Reply::now(|| {
            // Plain removes: a sled batch costs a log write of its own.
            for key in keys {
                if let Some(old) = self.inflight.remove(key.to_be_bytes()).map_err(backend)? {
                    self.uncount_inflight(&old)?;
                }
            }
            Ok(())
        })
    }

    fn inflight_to_offline(&self, keys: &[u64], stored: StoredForm) -> Reply<'_, Vec<BareJid>> {
        Reply::now(|| {
            let mut keys = keys.to_vec();
            keys.sort_unstable();
            let mut owners: Vec<BareJid> = Vec::new();
            let unbounded = Quota { messages: u64::MAX, bytes: u64::MAX };
            for key in keys {
                let Some(value) = self.inflight.get(key.to_be_bytes()).map_err(backend)? else { continue };
                let Ok((owner, stamp, stanza)) = decode(&value) else {
                    // Unreadable: it cannot be delivered, and must not hold up the others.
                    tracing::error!(key, "a corrupt in-flight record is dropped");
                    self.inflight.remove(key.to_be_bytes()).map_err(backend)?;
                    continue;
                };
                // Stored first, then forgotten: a crash in between repeats it, never loses it.
                // A deleted account's messages are only forgotten.
                if self.user_exists(&owner).at_once()? {
                    self.push_offline(&owner, &stored(&owner, stamp, stanza), unbounded).at_once()?;
                    if !owners.contains(&owner) {
                        owners.push(owner);
                    }
                }
                if let Some(old) = self.inflight.remove(key.to_be_bytes()).map_err(backend)? {
                    self.uncount_inflight(&old)?;
                }
            }
            Ok(owners)
        })
    }

    fn inflight_keys(&self) -> Reply<'_, Vec<u64>> {
        Reply::now(|| {
            self.inflight
                .iter()
                .keys()
                .map(|k| {
                    let k = k.map_err(backend)?;
                    <[u8; 8]>::try_from(k.as_ref())
                        .map(u64::from_be_bytes)
                        .map_err(|_| StorageError::Corrupt("in-flight key".into()))
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_corrupt_record_does_not_hold_up_the_others() {
        use crate::storage::offline::{OfflineStore, Quota};
        let store = SledStore::temporary().expect("temporary sled");
        let bob = BareJid::new("bob@example.org").expect("jid");
        let creds = crate::sasl::credentials::StoredCredentials::derive("pw", 4096).expect("derive");
        store.create_user(&bob, &creds).await.expect("account");
        let quota = Quota { messages: 10, bytes: 1 << 20 };
        let good = store.put_inflight(&bob, 0, b"<message><body>ok</body></message>", quota).await.expect("put");
        let corrupt = good + 1_000;
        store.inflight.insert(corrupt.to_be_bytes(), &b"garbage"[..]).expect("corrupt record");
        assert_eq!(
            store.inflight_to_offline(&[corrupt, good], |_, _, m| m.to_vec()).await.expect("moved"),
            vec![bob.clone()]
        );
        assert_eq!(store.offline_count(&bob).await.expect("count"), 1);
        assert!(store.inflight_keys().await.expect("keys").is_empty(), "the corrupt record is gone too");
    }
}
