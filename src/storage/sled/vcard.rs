//! vCards (`vcard`: owner → the XML as set) and, apart from them, their avatars
//! (`vcard_avatar`: owner → the photo's hash, empty for none), written in one transaction:
//! the presence of an account's clients reads the small avatar alone.

use super::{backend, tx_error, SledStore};
use crate::storage::vcard::{Avatar, VcardStore};
use crate::storage::Reply;
use crate::storage::StorageError;
use sled::transaction::{ConflictableTransactionError, Transactional};
use xmpp_parsers::jid::BareJid;

fn encode(avatar: &Avatar) -> &[u8] {
    match avatar {
        Avatar::NoPhoto => b"",
        Avatar::Sha1(hash) => hash.as_bytes(),
    }
}

fn decode(bytes: &[u8]) -> Result<Avatar, StorageError> {
    match std::str::from_utf8(bytes) {
        Ok("") => Ok(Avatar::NoPhoto),
        Ok(hash) => Ok(Avatar::Sha1(hash.to_owned())),
        Err(e) => Err(StorageError::Corrupt(e.to_string())),
    }
}

impl VcardStore for SledStore {
    fn vcard(&self, owner: &BareJid) -> Reply<'_, Option<Vec<u8>>> {
        Reply::now(|| Ok(self.vcards.get(owner.as_str()).map_err(backend)?.map(|v| v.to_vec())))
    }

    fn avatar(&self, owner: &BareJid) -> Reply<'_, Option<Avatar>> {
        Reply::now(|| self.vcard_avatars.get(owner.as_str()).map_err(backend)?.map(|v| decode(&v)).transpose())
    }

    fn set_vcard(&self, owner: &BareJid, vcard: &[u8], avatar: &Avatar) -> Reply<'_, ()> {
        Reply::now(|| {
            (&self.vcards, &self.vcard_avatars)
                .transaction(|(vcards, avatars)| {
                    vcards.insert(owner.as_str(), vcard)?;
                    avatars.insert(owner.as_str(), encode(avatar))?;
                    Ok::<(), ConflictableTransactionError<StorageError>>(())
                })
                .map_err(tx_error)
        })
    }

    fn delete_vcard(&self, owner: &BareJid) -> Reply<'_, ()> {
        Reply::now(|| {
            (&self.vcards, &self.vcard_avatars)
                .transaction(|(vcards, avatars)| {
                    vcards.remove(owner.as_str())?;
                    avatars.remove(owner.as_str())?;
                    Ok::<(), ConflictableTransactionError<StorageError>>(())
                })
                .map_err(tx_error)
        })
    }
}
