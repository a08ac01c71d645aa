//! At start: the log read back into the tails, and archives of stores written before
//! (one key per entry) moved into chunks.

use super::records::{self, bare_of, corrupt, Entry, Hole, Logged};
use super::tail::Tail;
use super::tails::Removed;
use super::{keys, packed, Archives, EXPIRED_KEY};
use crate::storage::archive::ids::{stamp_of, Place};
use crate::storage::sled::backend;
use crate::storage::StorageError;
use std::collections::HashMap;

/// Entries moved from the legacy layout per write.
const MOVE_BATCH: usize = 4096;

impl Archives {
    /// Reads the log back into the tails: every entry not in a chunk already, nor removed
    /// since (a hole, retention, a deleted archive).
    pub(super) fn recover(&self, batches: &[Vec<u8>]) -> Result<(), StorageError> {
        let expired = self.expired_before()?;
        let mut covered: HashMap<String, Option<Place>> = HashMap::new();
        let mut restored = 0u64;
        for batch in batches {
            for logged in records::logged(batch)? {
                let (owner, conv_ord, entry) = match logged {
                    Logged::Appended { owner, conv_ord, entry } => (owner, conv_ord, records::entry(entry)?),
                    Logged::Removed { owner, place } => {
                        // Its hole, if it left one, may not have reached the disk.
                        if let Some(Removed { ord, conv_ord, bare, newest: false }) = self.restore_removal(owner, place)
                        {
                            let hole = Hole { ord, conv_ord, with_bare: &bare }.to_bytes();
                            self.chunks.insert(keys::at(&keys::holes(owner), place), hole).map_err(backend)?;
                        }
                        continue;
                    }
                };
                if stamp_of(entry.place) < expired {
                    continue;
                }
                let upto = match covered.get(owner) {
                    Some(upto) => *upto,
                    None => *covered.entry(owner.to_string()).or_insert(self.covered(owner)?),
                };
                let hole = keys::at(&keys::holes(owner), entry.place);
                if upto.is_some_and(|upto| entry.place <= upto) || self.chunks.contains_key(hole).map_err(backend)? {
                    continue;
                }
                self.restore(owner, conv_ord, entry)?;
                restored += 1;
            }
        }
        if restored > 0 {
            tracing::info!(entries = restored, "archive entries not yet in chunks were read back from the log");
        }
        Ok(())
    }

    /// Retention's newest limit (µs).
    pub(super) fn expired_before(&self) -> Result<u64, StorageError> {
        let value = self.db.get(EXPIRED_KEY).map_err(backend)?;
        let bytes = value.map(|v| <[u8; 8]>::try_from(v.as_ref()).map_err(|_| corrupt("retention limit")));
        Ok(bytes.transpose()?.map_or(0, u64::from_be_bytes))
    }

    /// Up to which place an archive's log entries need no restoring: its newest entry in
    /// a chunk, or the mark of what was removed wholesale (a deletion, its own retention).
    fn covered(&self, owner: &str) -> Result<Option<Place>, StorageError> {
        let last = self.chunks.scan_prefix(keys::data(owner)).next_back().transpose().map_err(backend)?;
        let chunked = match last {
            Some((_, chunk)) => records::entries(&packed::unpack(&chunk)?)?.last().map(|e| e.place),
            None => None,
        };
        Ok(chunked.max(self.removed_upto(owner)?))
    }

    /// Moves archives kept one key per entry (stores written before) into chunks.
    pub(super) fn migrate_legacy(&self) -> Result<(), StorageError> {
        let [entries, index, expiry] = &self.legacy;
        let (mut archives, mut moved) = (0u64, 0u64);
        let mut from: Vec<u8> = Vec::new();
        while let Some(first) = entries.range(from.as_slice()..).keys().next() {
            let first = first.map_err(backend)?;
            let end = first.iter().position(|b| *b == 0).ok_or_else(|| corrupt("legacy key without owner"))?;
            let owner = std::str::from_utf8(&first[..end]).map_err(corrupt)?;
            moved += self.migrate_owner(owner)?;
            archives += 1;
            from = keys::after_owner(owner);
        }
        index.clear().map_err(backend)?;
        expiry.clear().map_err(backend)?;
        if archives > 0 {
            tracing::info!(archives, entries = moved, "archives moved to the chunked layout");
        }
        Ok(())
    }

    /// One archive of the legacy layout (`owner NUL place` → JID length, JID, stanza),
    /// into chunks, then out of the legacy trees. A move cut short (a crash) is started
    /// again: the chunks it wrote go first.
    fn migrate_owner(&self, owner: &str) -> Result<u64, StorageError> {
        let prefix = keys::owner(owner);
        for key in self.chunks.scan_prefix(&prefix).keys() {
            self.chunks.remove(key.map_err(backend)?).map_err(backend)?;
        }
        let [entries, index, _] = &self.legacy;
        let mut conversations: HashMap<String, u64> = HashMap::new();
        let (mut ord, mut batch) = (0u64, Tail::default());
        for item in entries.scan_prefix(&prefix) {
            let (key, value) = item.map_err(backend)?;
            let place = key.get(prefix.len()..).and_then(|p| <[u8; 16]>::try_from(p).ok()).map(Place::from_be_bytes);
            let place = place.ok_or_else(|| corrupt("legacy key"))?;
            let (with, stanza) = legacy_entry(&value)?;
            let next = conversations.entry(bare_of(with).to_string()).or_insert(0);
            batch.push(&Entry { place, ord, with, stanza }, *next)?;
            (*next, ord) = (*next + 1, ord + 1);
            if batch.len() >= MOVE_BATCH {
                self.write_chunks(owner, &std::mem::take(&mut batch))?;
            }
        }
        self.write_chunks(owner, &batch)?;
        for tree in [entries, index] {
            for key in tree.scan_prefix(&prefix).keys() {
                tree.remove(key.map_err(backend)?).map_err(backend)?;
            }
        }
        Ok(ord)
    }
}

/// A legacy entry's value: JID length (2), the JID, the stanza.
fn legacy_entry(value: &[u8]) -> Result<(&str, &[u8]), StorageError> {
    let len = value.get(..2).and_then(|b| <[u8; 2]>::try_from(b).ok()).map(u16::from_be_bytes);
    let end = 2 + usize::from(len.ok_or_else(|| corrupt("short legacy entry"))?);
    let with = value.get(2..end).ok_or_else(|| corrupt("short legacy entry"))?;
    Ok((std::str::from_utf8(with).map_err(corrupt)?, &value[end..]))
}
