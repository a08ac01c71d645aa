//! What leaves an archive: a refused message (a hole), retention, a deleted account. Each
//! takes maintenance's turn, so no tail is being written out meanwhile; appends never
//! wait for it.

use super::records::{self, bare_of, corrupt, spans, Hole, Kind};
use super::tails::Removed;
use super::{keys, packed, Archives, EXPIRED_KEY};
use crate::storage::archive::ids::{place, Place};
use crate::storage::sled::backend;
use crate::storage::StorageError;

/// Keys an archive deletion removes per turn of maintenance.
const DELETE_CHUNK: usize = 256;

impl Archives {
    /// Removes the entry at `place` from `owner`'s archive and its conversation index,
    /// leaving a hole (counts subtract it, the log does not bring it back) unless it was
    /// the newest in its tail (its ordinals are given again, and the log records the
    /// removal); false when there is no such entry.
    pub fn unarchive(&self, owner: &str, place: Place) -> Result<bool, StorageError> {
        let _turn = self.lock_maintenance();
        let hole = match self.remove_from_tail(owner, place)? {
            Some(Removed { newest: true, .. }) => return Ok(true),
            Some(Removed { ord, conv_ord, bare, .. }) => Hole { ord, conv_ord, with_bare: &bare }.to_bytes(),
            None => {
                let Some((ord, with)) = self.remove_from_chunks(owner, place)? else { return Ok(false) };
                let conv_ord = self.remove_from_index(owner, bare_of(&with), place)?;
                Hole { ord, conv_ord, with_bare: bare_of(&with) }.to_bytes()
            }
        };
        self.chunks.insert(keys::at(&keys::holes(owner), place), hole).map_err(backend)?;
        Ok(true)
    }

    /// The entry at `place` out of its archive chunk: its ordinal and other party.
    fn remove_from_chunks(&self, owner: &str, place: Place) -> Result<Option<(u64, String)>, StorageError> {
        let prefix = keys::data(owner);
        let Some((key, chunk)) = self.chunk_holding(&prefix, place)? else { return Ok(None) };
        let chunk = packed::unpack(&chunk)?;
        let Some(entry) = records::entries(&chunk)?.into_iter().find(|e| e.place == place) else { return Ok(None) };
        let found = (entry.ord, entry.with.to_string());
        self.rewrite(&prefix, &key, &chunk, Kind::Entries, |p| p != place)?;
        Ok(Some(found))
    }

    /// The index record at `place` out of its conversation's chunk: its ordinal there.
    fn remove_from_index(&self, owner: &str, bare: &str, place: Place) -> Result<u64, StorageError> {
        let prefix = keys::conversation(owner, bare);
        let Some((key, chunk)) = self.chunk_holding(&prefix, place)? else { return Ok(0) };
        let chunk = packed::unpack(&chunk)?;
        let ord = records::indexed(&chunk)?.into_iter().find(|r| r.place == place).map_or(0, |r| r.ord);
        self.rewrite(&prefix, &key, &chunk, Kind::Index, |p| p != place)?;
        Ok(ord)
    }

    /// The chunk under `prefix` that would hold `place`: the last one starting at or
    /// before it.
    pub(super) fn chunk_holding(
        &self,
        prefix: &[u8],
        place: Place,
    ) -> Result<Option<(sled::IVec, sled::IVec)>, StorageError> {
        self.chunks.range(prefix.to_vec()..=keys::at(prefix, place)).next_back().transpose().map_err(backend)
    }

    /// Writes a chunk again with only the records whose place `keep` accepts, under the
    /// key of its new first record (in one batch: never both, never neither); returns how
    /// many went.
    fn rewrite(
        &self,
        prefix: &[u8],
        key: &[u8],
        chunk: &[u8],
        kind: Kind,
        keep: impl Fn(Place) -> bool,
    ) -> Result<u64, StorageError> {
        let spans = spans(chunk, kind)?;
        let kept: Vec<_> = spans.iter().filter(|(place, _)| keep(*place)).collect();
        let gone = (spans.len() - kept.len()) as u64;
        if gone == 0 {
            return Ok(0);
        }
        let mut batch = sled::Batch::default();
        batch.remove(key);
        if let Some((first, _)) = kept.first() {
            let mut value = Vec::with_capacity(chunk.len());
            for (_, span) in &kept {
                value.extend_from_slice(&chunk[span.clone()]);
            }
            batch.insert(keys::at(prefix, *first), packed::pack(&value));
        }
        self.chunks.apply_batch(batch).map_err(backend)?;
        Ok(gone)
    }

    /// Retention: every entry stamped before `before_micros` goes, from tails and chunks,
    /// with its holes; returns how many entries went.
    pub fn expire(&self, before_micros: u64) -> Result<u64, StorageError> {
        let _turn = self.lock_maintenance();
        // The limit first: the log never brings back what goes now.
        let limit = before_micros.max(self.expired_before()?);
        self.db.insert(EXPIRED_KEY, &limit.to_be_bytes()).map_err(backend)?;
        let mut expired = self.expire_tails(before_micros);
        let limit = place(before_micros, 0);
        let mut from: Vec<u8> = Vec::new();
        while let Some(key) = self.chunks.range(from.as_slice()..).keys().next() {
            let key = key.map_err(backend)?;
            let owner_end = key.iter().position(|b| *b == 0).ok_or_else(|| corrupt("key without owner"))?;
            let kind = *key.get(owner_end + 1).ok_or_else(|| corrupt("key without kind"))?;
            // Each prefix is done at once; the walk moves past it by raising its last byte.
            let prefix = match kind {
                b'd' => {
                    let prefix = &key[..owner_end + 2];
                    expired += self.expire_chunks(prefix, limit, Kind::Entries)?;
                    prefix
                }
                b'w' => {
                    let bare_end = key[owner_end + 2..].iter().position(|b| *b == 0);
                    let prefix = bare_end.map(|end| &key[..owner_end + 2 + end + 1]);
                    let prefix = prefix.ok_or_else(|| corrupt("index key without its NUL"))?;
                    self.expire_chunks(prefix, limit, Kind::Index)?;
                    prefix
                }
                b'h' => {
                    let prefix = &key[..owner_end + 2];
                    for hole in self.chunks.range(prefix.to_vec()..keys::at(prefix, limit)).keys() {
                        self.chunks.remove(hole.map_err(backend)?).map_err(backend)?;
                    }
                    prefix
                }
                _ => &key[..owner_end + 2],
            };
            from = prefix.to_vec();
            if let Some(last) = from.last_mut() {
                *last += 1;
            }
        }
        Ok(expired)
    }

    /// The chunks under `prefix` with entries before `limit`: all but the last of them hold
    /// nothing newer (the next one starts before the limit); the last is written again
    /// with what is left. Returns how many records went.
    fn expire_chunks(&self, prefix: &[u8], limit: Place, kind: Kind) -> Result<u64, StorageError> {
        let mut expired = 0;
        let mut old = self.chunks.range(prefix.to_vec()..keys::at(prefix, limit)).peekable();
        while let Some(item) = old.next() {
            let (key, chunk) = item.map_err(backend)?;
            let chunk = packed::unpack(&chunk)?;
            if old.peek().is_some() {
                expired += spans(&chunk, kind)?.len() as u64;
                self.chunks.remove(key).map_err(backend)?;
            } else {
                expired += self.rewrite(prefix, &key, &chunk, kind, |p| p >= limit)?;
            }
        }
        Ok(expired)
    }

    /// Forgets `owner`'s archive: its tail at once, then its keys a few at a time (other
    /// archives' maintenance goes on in between). Entries appended meanwhile stay: only
    /// places up to the newest at the start go.
    pub fn delete(&self, owner: &str) -> Result<(), StorageError> {
        let newest = {
            let _turn = self.lock_maintenance();
            let last_hole = self.chunks.scan_prefix(keys::holes(owner)).keys().next_back().transpose();
            let last_hole = last_hole.map_err(backend)?.and_then(|key| {
                key.len().checked_sub(16).and_then(|at| <[u8; 16]>::try_from(&key[at..]).ok()).map(Place::from_be_bytes)
            });
            let newest = self.clear(owner)?.max(last_hole);
            if let Some(newest) = newest {
                self.chunks.insert(keys::deleted(owner), &newest.to_be_bytes()).map_err(backend)?;
            }
            newest
        };
        let prefix = keys::owner(owner);
        let deletable = |key: &[u8]| {
            let kind = key.get(prefix.len()).copied();
            let place = key.len().checked_sub(16).and_then(|at| <[u8; 16]>::try_from(&key[at..]).ok());
            kind != Some(b'x') && place.map(Place::from_be_bytes) <= newest
        };
        loop {
            let _turn = self.lock_maintenance();
            let mut removed = 0;
            for key in self.chunks.scan_prefix(&prefix).keys() {
                let key = key.map_err(backend)?;
                if deletable(&key) {
                    self.chunks.remove(key).map_err(backend)?;
                    removed += 1;
                    if removed == DELETE_CHUNK {
                        break;
                    }
                }
            }
            if removed < DELETE_CHUNK {
                return Ok(());
            }
        }
    }
}
