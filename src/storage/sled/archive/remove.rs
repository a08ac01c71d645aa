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
/// Chunks (or holes) retention removes per turn of maintenance (tests: a few, so that
/// small archives take many turns).
const EXPIRE_TURN: usize = if cfg!(test) { 16 } else { 256 };

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
        let expired = {
            let _turn = self.lock_maintenance();
            // The limit first: the log never brings back what goes now.
            let limit = before_micros.max(self.expired_before()?);
            self.db.insert(EXPIRED_KEY, &limit.to_be_bytes()).map_err(backend)?;
            self.expire_tails(before_micros)
        };
        Ok(expired + self.expire_chunks_from(Vec::new(), None, place(before_micros, 0))?)
    }

    /// The owner's own retention: its entries stamped before `before_micros` go, from its
    /// tail and chunks, with its holes; returns how many entries went.
    pub fn expire_owner(&self, owner: &str, before_micros: u64) -> Result<u64, StorageError> {
        let limit = place(before_micros, 0);
        let expired = {
            let _turn = self.lock_maintenance();
            // The mark first: the log never brings back what goes now.
            if let Some(below) = limit.checked_sub(1) {
                self.mark_removed(owner, below)?;
            }
            self.expire_tail(owner, before_micros)
        };
        let end = keys::after_owner(owner);
        Ok(expired + self.expire_chunks_from(keys::owner(owner), Some(&end), limit)?)
    }

    /// Up to which place `owner`'s entries were removed wholesale (its `x` mark).
    pub(super) fn removed_upto(&self, owner: &str) -> Result<Option<Place>, StorageError> {
        let mark = self.chunks.get(keys::deleted(owner)).map_err(backend)?;
        let mark = mark.map(|v| <[u8; 16]>::try_from(v.as_ref()).map_err(|_| corrupt("deletion mark")));
        Ok(mark.transpose()?.map(Place::from_be_bytes))
    }

    /// Raises `owner`'s mark to `upto`: the log's entries of it up to there are not
    /// restored. A mark never goes down (a deletion and retention may both have set it).
    fn mark_removed(&self, owner: &str, upto: Place) -> Result<(), StorageError> {
        let mark = self.removed_upto(owner)?.map_or(upto, |mark| mark.max(upto));
        self.chunks.insert(keys::deleted(owner), &mark.to_be_bytes()).map_err(backend)?;
        Ok(())
    }

    /// The chunks and holes of the keys from `from` (up to `end`) with entries before
    /// `limit`, a prefix per turn of maintenance and at most [`EXPIRE_TURN`] chunks a
    /// turn: maintenance, and so the group commits behind it, never waits long. Entries
    /// stamped before `limit` are out of the tails already, so none comes back meanwhile.
    fn expire_chunks_from(&self, mut from: Vec<u8>, end: Option<&[u8]>, limit: Place) -> Result<u64, StorageError> {
        let mut expired = 0;
        loop {
            let turn = self.lock_maintenance();
            let next = match end {
                Some(end) => self.chunks.range(from.as_slice()..end).keys().next(),
                None => self.chunks.range(from.as_slice()..).keys().next(),
            };
            let Some(key) = next.transpose().map_err(backend)? else { return Ok(expired) };
            let owner_end = key.iter().position(|b| *b == 0).ok_or_else(|| corrupt("key without owner"))?;
            let at = owner_end + 1;
            let (prefix, gone, done) = match key.get(at).copied() {
                Some(b'd') => {
                    let prefix = &key[..=at];
                    let (gone, done) = self.expire_chunks(prefix, limit, Kind::Entries)?;
                    (prefix, gone, done)
                }
                Some(b'w') => {
                    let bare_end = key[at + 1..].iter().position(|b| *b == 0);
                    let prefix = bare_end.map(|end| &key[..at + 1 + end + 1]);
                    let prefix = prefix.ok_or_else(|| corrupt("index key without its NUL"))?;
                    (prefix, 0, self.expire_chunks(prefix, limit, Kind::Index)?.1)
                }
                Some(b'h') => (&key[..=at], 0, self.expire_holes(&key[..=at], limit)?),
                Some(_) => (&key[..=at], 0, true),
                None => return Err(corrupt("key without kind")),
            };
            expired += gone;
            from = prefix.to_vec();
            // A prefix done, the walk moves past it by raising its last byte; one not
            // done yet is taken up again at the next turn.
            if done {
                let last = from.last_mut().ok_or_else(|| corrupt("empty key"))?;
                *last = last.checked_add(1).ok_or_else(|| corrupt("key kind"))?;
            }
            Self::end_turn(turn);
        }
    }

    /// Up to [`EXPIRE_TURN`] holes under `prefix` before `limit` go; true when none is left.
    fn expire_holes(&self, prefix: &[u8], limit: Place) -> Result<bool, StorageError> {
        let mut holes = self.chunks.range(prefix.to_vec()..keys::at(prefix, limit)).keys();
        for hole in holes.by_ref().take(EXPIRE_TURN) {
            self.chunks.remove(hole.map_err(backend)?).map_err(backend)?;
        }
        Ok(holes.next().is_none())
    }

    /// The chunks under `prefix` with entries before `limit`: all but the last of them hold
    /// nothing newer (the next one starts before the limit); the last is written again
    /// with what is left. At most [`EXPIRE_TURN`] chunks; returns how many records went,
    /// and whether none is left.
    fn expire_chunks(&self, prefix: &[u8], limit: Place, kind: Kind) -> Result<(u64, bool), StorageError> {
        let mut expired = 0;
        let mut old = self.chunks.range(prefix.to_vec()..keys::at(prefix, limit)).peekable();
        for _ in 0..EXPIRE_TURN {
            let Some(item) = old.next() else { return Ok((expired, true)) };
            let (key, chunk) = item.map_err(backend)?;
            let chunk = packed::unpack(&chunk)?;
            // A later chunk that cannot be read stops the walk at its turn, not here.
            if matches!(old.peek(), Some(Ok(_))) {
                expired += spans(&chunk, kind)?.len() as u64;
                self.chunks.remove(key).map_err(backend)?;
            } else {
                expired += self.rewrite(prefix, &key, &chunk, kind, |p| p >= limit)?;
            }
        }
        Ok((expired, old.next().is_none()))
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
                self.mark_removed(owner, newest)?;
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
            let turn = self.lock_maintenance();
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
            Self::end_turn(turn);
        }
    }
}
