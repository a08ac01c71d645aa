use super::{backend, SledStore};
use crate::sasl::credentials::StoredCredentials;
use crate::storage::Reply;
use crate::storage::{StorageError, UserStore};
use xmpp_parsers::jid::BareJid;

/// The key the health probe writes, in the default tree.
const HEALTH_KEY: &[u8] = b"stanzad:health";

fn encode(creds: &StoredCredentials) -> Result<Vec<u8>, StorageError> {
    serde_json::to_vec(creds).map_err(|e| StorageError::Corrupt(e.to_string()))
}

fn decode(bytes: &[u8]) -> Result<StoredCredentials, StorageError> {
    serde_json::from_slice(bytes).map_err(|e| StorageError::Corrupt(e.to_string()))
}

impl UserStore for SledStore {
    fn create_user(&self, jid: &BareJid, creds: &StoredCredentials) -> Reply<'_, ()> {
        Reply::now(|| {
            let swapped =
                self.users.compare_and_swap(jid.as_str(), None::<&[u8]>, Some(encode(creds)?)).map_err(backend)?;
            swapped.map_err(|_| StorageError::AlreadyExists(jid.to_string()))
        })
    }

    fn set_credentials(&self, jid: &BareJid, creds: &StoredCredentials) -> Reply<'_, ()> {
        Reply::now(|| {
            let value = encode(creds)?;
            let updated =
                self.users.fetch_and_update(jid.as_str(), |old| old.map(|_| value.clone())).map_err(backend)?;
            updated.map(|_| ()).ok_or_else(|| StorageError::NotFound(jid.to_string()))
        })
    }

    fn delete_user(&self, jid: &BareJid) -> Reply<'_, ()> {
        Reply::now(|| {
            let old = self.users.remove(jid.as_str()).map_err(backend)?;
            old.map(|_| ()).ok_or_else(|| StorageError::NotFound(jid.to_string()))
        })
    }

    fn credentials(&self, jid: &BareJid) -> Reply<'_, Option<StoredCredentials>> {
        Reply::now(|| {
            let value = self.users.get(jid.as_str()).map_err(backend)?;
            value.map(|bytes| decode(&bytes)).transpose()
        })
    }

    /// Asked for every message to an offline account: a key lookup, nothing decoded.
    fn user_exists(&self, jid: &BareJid) -> Reply<'_, bool> {
        Reply::now(|| self.users.contains_key(jid.as_str()).map_err(backend))
    }

    fn list_users(&self) -> Reply<'_, Vec<BareJid>> {
        Reply::now(|| {
            let mut users = Vec::new();
            for entry in self.users.iter() {
                let (key, _) = entry.map_err(backend)?;
                let text = std::str::from_utf8(&key).map_err(|e| StorageError::Corrupt(e.to_string()))?;
                users.push(BareJid::new(text).map_err(|e| StorageError::Corrupt(e.to_string()))?);
            }
            Ok(users)
        })
    }

    /// The archives' log first (one value for every append since the last flush), then
    /// everything; log batches already in durable chunks go after.
    fn flush(&self) -> Reply<'_, ()> {
        Reply::now(|| {
            self.archives.write_log()?;
            self.db.flush().map_err(backend)?;
            self.archives.after_flush()
        })
    }

    fn maintain(&self) -> Reply<'_, ()> {
        Reply::now(|| self.archives.maintain())
    }

    /// A write of one small key: after an I/O error sled refuses every write at once.
    fn check(&self) -> Reply<'_, ()> {
        Reply::now(|| self.db.insert(HEALTH_KEY, &[]).map(|_| ()).map_err(backend))
    }
}
