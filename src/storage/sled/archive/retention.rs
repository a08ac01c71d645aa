//! The retention each account chose for its own archive: `archive_retention` (`owner` →
//! seconds, 8 bytes big-endian). Only accounts that chose one have a key, so expiry walks
//! them all.

use super::records::corrupt;
use crate::storage::sled::backend;
use crate::storage::StorageError;
use xmpp_parsers::jid::BareJid;

#[derive(Clone)]
pub struct Retention {
    tree: sled::Tree,
}

impl Retention {
    pub fn open(db: &sled::Db) -> Result<Retention, StorageError> {
        Ok(Retention { tree: db.open_tree("archive_retention").map_err(backend)? })
    }

    pub fn get(&self, owner: &str) -> Result<Option<u64>, StorageError> {
        self.tree.get(owner).map_err(backend)?.map(|value| secs(&value)).transpose()
    }

    pub fn set(&self, owner: &str, max_age_secs: Option<u64>) -> Result<(), StorageError> {
        match max_age_secs {
            Some(secs) => self.tree.insert(owner, &secs.to_be_bytes()).map(drop),
            None => self.tree.remove(owner).map(drop),
        }
        .map_err(backend)
    }

    /// Every choice; one that cannot be read is logged and left out, not the others.
    pub fn all(&self) -> Result<Vec<(BareJid, u64)>, StorageError> {
        let mut chosen = Vec::new();
        for item in self.tree.iter() {
            let (owner, value) = item.map_err(backend)?;
            let owner = std::str::from_utf8(&owner).map_err(corrupt).and_then(|o| BareJid::new(o).map_err(corrupt));
            match (owner, secs(&value)) {
                (Ok(owner), Ok(secs)) => chosen.push((owner, secs)),
                (Err(e), _) | (_, Err(e)) => tracing::error!(error = %e, "an archive retention cannot be read"),
            }
        }
        Ok(chosen)
    }
}

fn secs(value: &[u8]) -> Result<u64, StorageError> {
    let bytes = <[u8; 8]>::try_from(value).map_err(|_| corrupt("archive retention"))?;
    Ok(u64::from_be_bytes(bytes))
}
