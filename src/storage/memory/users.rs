//! Accounts, sorted by JID.

use super::{corrupt, MemoryStore};
use crate::sasl::credentials::StoredCredentials;
use crate::storage::Reply;
use crate::storage::{StorageError, UserStore};
use std::collections::BTreeMap;
use std::sync::{RwLockReadGuard, RwLockWriteGuard};
use xmpp_parsers::jid::BareJid;

type Users = BTreeMap<String, StoredCredentials>;

impl MemoryStore {
    fn users(&self) -> RwLockReadGuard<'_, Users> {
        self.users.read().unwrap_or_else(|p| p.into_inner())
    }

    fn users_mut(&self) -> RwLockWriteGuard<'_, Users> {
        self.users.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl UserStore for MemoryStore {
    fn create_user(&self, jid: &BareJid, creds: &StoredCredentials) -> Reply<'_, ()> {
        Reply::now(|| {
            let mut users = self.users_mut();
            if users.contains_key(jid.as_str()) {
                return Err(StorageError::AlreadyExists(jid.to_string()));
            }
            users.insert(jid.to_string(), creds.clone());
            Ok(())
        })
    }

    fn set_credentials(&self, jid: &BareJid, creds: &StoredCredentials) -> Reply<'_, ()> {
        Reply::now(|| {
            let mut users = self.users_mut();
            let current = users.get_mut(jid.as_str()).ok_or_else(|| StorageError::NotFound(jid.to_string()))?;
            *current = creds.clone();
            Ok(())
        })
    }

    fn delete_user(&self, jid: &BareJid) -> Reply<'_, ()> {
        Reply::now(|| {
            let old = self.users_mut().remove(jid.as_str());
            old.map(|_| ()).ok_or_else(|| StorageError::NotFound(jid.to_string()))
        })
    }

    fn credentials(&self, jid: &BareJid) -> Reply<'_, Option<StoredCredentials>> {
        Reply::now(|| Ok(self.users().get(jid.as_str()).cloned()))
    }

    fn user_exists(&self, jid: &BareJid) -> Reply<'_, bool> {
        Reply::now(|| Ok(self.users().contains_key(jid.as_str())))
    }

    fn list_users(&self) -> Reply<'_, Vec<BareJid>> {
        Reply::now(|| self.users().keys().map(|jid| BareJid::new(jid).map_err(corrupt)).collect())
    }

    /// Nothing is ever written anywhere.
    fn flush(&self) -> Reply<'_, ()> {
        Reply::now(|| Ok(()))
    }
}
