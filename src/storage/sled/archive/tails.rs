//! The newest entries of each archive, in memory, and the log that makes them durable.
//!
//! An append takes its owner's stripe (one of [`STRIPES`]), gives the entry its place and
//! ordinals, and leaves it in two places: the archive's tail (what queries read until
//! the entry is in a chunk) and the stripe's log bytes, which the next group commit writes
//! as one frame of its log file for every archive (`chunks.rs`, `log.rs`). Nothing on this
//! path writes to sled.

use super::records::{self, bare_of, Entry};
use super::tail::{Tail, CHUNK_BYTES, CHUNK_ENTRIES};
use super::{keys, packed, Archives};
use crate::keyed::KeyedMap;
use crate::storage::archive::ids::{place, stamp_of, Place};
use crate::storage::sled::backend;
use crate::storage::StorageError;
use std::sync::atomic::Ordering;

pub const STRIPES: usize = 64;

/// An entry removed from a tail.
pub struct Removed {
    pub ord: u64,
    pub conv_ord: u64,
    pub bare: String,
    /// Its ordinals were the newest, and are given again: no hole.
    pub newest: bool,
}

/// One archive's state in memory: what the next append needs, and its tail.
#[derive(Default)]
pub struct Archive {
    pub newest_stamp: u64,
    pub next_ord: u64,
    /// The next ordinal in each conversation (by the other party's bare JID) appended to.
    pub conversations: KeyedMap<Box<str>, u64>,
    /// Entries not yet in chunks, oldest first.
    pub tail: Tail,
    /// Appended to since the last full maintenance: an archive that was not, and has an
    /// empty tail, is forgotten then (read again from its chunks when next appended to).
    pub touched: bool,
    /// On its stripe's due list.
    pub due: bool,
}

impl Archive {
    fn is_due(&self) -> bool {
        self.tail.len() >= CHUNK_ENTRIES || self.tail.bytes() >= CHUNK_BYTES
    }
}

#[derive(Default)]
pub struct Stripe {
    pub archives: KeyedMap<Box<str>, Archive>,
    /// Log records of the appends since the last group commit.
    pub log: Vec<u8>,
    /// Archives whose tail reached a chunk's size.
    pub due: Vec<Box<str>>,
}

impl Archives {
    /// Appends an entry to `owner`'s archive; returns its place.
    pub fn append(&self, owner: &str, with: &str, stamp_micros: u64, stanza: &[u8]) -> Result<Place, StorageError> {
        let bare = bare_of(with);
        // One append per archive at a time: places and ordinals follow the tail's order,
        // so an id, once seen, has every earlier entry of its archive stored already.
        let mut guard = self.tails.lock(owner);
        let stripe = &mut *guard;
        let archive = self.in_memory(&mut stripe.archives, owner)?;
        let conv_ord = match archive.conversations.get(bare) {
            Some(next) => *next,
            None => self.next_in_conversation(owner, bare)?,
        };
        let seq = self.db.generate_id().map_err(backend)?;
        let stamp = stamp_micros.max(archive.newest_stamp);
        let place = place(stamp, seq);
        let ord = archive.next_ord;
        let before = archive.tail.bytes();
        archive.tail.push(&Entry { place, ord, with, stanza }, conv_ord)?;
        let record = archive.tail.records(archive.tail.len() - 1, archive.tail.len());
        if let Err(e) = records::write_logged(&mut stripe.log, owner, conv_ord, record) {
            archive.tail.remove(place);
            return Err(e);
        }
        match archive.conversations.get_mut(bare) {
            Some(next) => *next = conv_ord + 1,
            None => {
                archive.conversations.insert(bare.into(), conv_ord + 1);
            }
        }
        archive.newest_stamp = stamp;
        archive.next_ord = ord + 1;
        archive.touched = true;
        self.tail_bytes.fetch_add(archive.tail.bytes() - before, Ordering::Relaxed);
        if !archive.due && archive.is_due() {
            archive.due = true;
            stripe.due.push(owner.into());
            self.due.fetch_add(1, Ordering::Relaxed);
        }
        Ok(place)
    }

    /// An entry found in the log at start: back into its tail as it was.
    pub fn restore(&self, owner: &str, conv_ord: u64, entry: Entry<'_>) -> Result<(), StorageError> {
        let mut guard = self.tails.lock(owner);
        let stripe = &mut *guard;
        let archive = self.in_memory(&mut stripe.archives, owner)?;
        let before = archive.tail.bytes();
        archive.tail.push(&entry, conv_ord)?;
        let next = archive.conversations.entry(bare_of(entry.with).into()).or_insert(0);
        *next = (*next).max(conv_ord + 1);
        archive.newest_stamp = archive.newest_stamp.max(stamp_of(entry.place));
        archive.next_ord = archive.next_ord.max(entry.ord + 1);
        self.tail_bytes.fetch_add(archive.tail.bytes() - before, Ordering::Relaxed);
        Ok(())
    }

    /// `owner`'s archive in its stripe, read from its chunks when it is not there yet.
    fn in_memory<'s>(
        &self,
        archives: &'s mut KeyedMap<Box<str>, Archive>,
        owner: &str,
    ) -> Result<&'s mut Archive, StorageError> {
        if !archives.contains_key(owner) {
            let loaded = self.load(owner)?;
            archives.insert(owner.into(), loaded);
        }
        archives.get_mut(owner).ok_or_else(|| StorageError::Backend("archive state lost".into()))
    }

    /// The state of an archive not in memory, from its chunks and holes: the newest
    /// stamp, and the next ordinal (after every entry and hole).
    fn load(&self, owner: &str) -> Result<Archive, StorageError> {
        let mut archive = Archive::default();
        if let Some((_, chunk)) = self.chunks.scan_prefix(keys::data(owner)).next_back().transpose().map_err(backend)? {
            if let Some(last) = records::entries(&packed::unpack(&chunk)?)?.last() {
                archive.newest_stamp = stamp_of(last.place);
                archive.next_ord = last.ord + 1;
            }
        }
        if let Some((_, hole)) = self.chunks.scan_prefix(keys::holes(owner)).next_back().transpose().map_err(backend)? {
            archive.next_ord = archive.next_ord.max(records::hole(&hole)?.ord + 1);
        }
        Ok(archive)
    }

    /// The next ordinal in a conversation not appended to since its archive was read:
    /// after its last index record and its holes.
    fn next_in_conversation(&self, owner: &str, bare: &str) -> Result<u64, StorageError> {
        let mut next = 0;
        let last = self.chunks.scan_prefix(keys::conversation(owner, bare)).next_back();
        if let Some((_, chunk)) = last.transpose().map_err(backend)? {
            if let Some(last) = records::indexed(&packed::unpack(&chunk)?)?.last() {
                next = last.ord + 1;
            }
        }
        for hole in self.chunks.scan_prefix(keys::holes(owner)).values() {
            let hole = hole.map_err(backend)?;
            let hole = records::hole(&hole)?;
            if hole.with_bare == bare {
                next = next.max(hole.conv_ord + 1);
            }
        }
        Ok(next)
    }

    /// A copy of `owner`'s tail as it is now.
    pub fn snapshot(&self, owner: &str) -> Tail {
        self.tails.lock(owner).archives.get(owner).map(|a| a.tail.clone()).unwrap_or_default()
    }

    /// Moves the log records of every append so far to the end of `batch`.
    pub fn take_log(&self, batch: &mut Vec<u8>) {
        self.tails.for_each(|stripe| {
            batch.extend_from_slice(&stripe.log);
            stripe.log.clear();
        });
    }

    /// What maintenance writes out: with `full`, every tail; otherwise those that reached
    /// a chunk's size. Entries stay in their tails until [`Archives::written`].
    pub fn work(&self, full: bool) -> Vec<(Box<str>, Tail)> {
        let mut work = Vec::new();
        self.tails.for_each(|stripe| {
            if full {
                for (owner, archive) in &stripe.archives {
                    if !archive.tail.is_empty() {
                        work.push((owner.clone(), archive.tail.clone()));
                    }
                }
                return;
            }
            for owner in std::mem::take(&mut stripe.due) {
                if let Some(archive) = stripe.archives.get(&owner) {
                    work.push((owner, archive.tail.clone()));
                }
            }
        });
        work
    }

    /// The entries of `owner`'s tail up to `last` are in chunks now: out of the tail.
    pub fn written(&self, owner: &str, last: Place) {
        let mut guard = self.tails.lock(owner);
        let Some(archive) = guard.archives.get_mut(owner) else { return };
        let bytes = archive.tail.remove_upto(last);
        self.tail_bytes.fetch_sub(bytes, Ordering::Relaxed);
        if archive.due {
            archive.due = false;
            self.due.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// After a full maintenance: archives idle since the last one, with nothing in their
    /// tail, are forgotten; the others start a new period.
    pub fn forget_idle(&self) {
        self.tails.for_each(|stripe| {
            stripe.archives.retain(|_, archive| {
                // One on a due list stays until maintenance takes it off.
                let keep = archive.touched || !archive.tail.is_empty() || archive.due;
                archive.touched = false;
                keep
            })
        });
    }

    /// Removes the tail entry at `place` (refused after it was archived) and logs the
    /// removal; returns its ordinals and conversation, and whether they were the newest
    /// given (then they are given again, and no hole is left).
    pub fn remove_from_tail(&self, owner: &str, place: Place) -> Result<Option<Removed>, StorageError> {
        let mut guard = self.tails.lock(owner);
        let stripe = &mut *guard;
        let Some(removed) = self.forget_entry(&mut stripe.archives, owner, place) else { return Ok(None) };
        records::write_removed(&mut stripe.log, owner, place)?;
        Ok(Some(removed))
    }

    /// A removal found in the log at start: as [`Archives::remove_from_tail`], not logged
    /// again.
    pub fn restore_removal(&self, owner: &str, place: Place) -> Option<Removed> {
        self.forget_entry(&mut self.tails.lock(owner).archives, owner, place)
    }

    fn forget_entry(&self, archives: &mut KeyedMap<Box<str>, Archive>, owner: &str, place: Place) -> Option<Removed> {
        let archive = archives.get_mut(owner)?;
        let (ord, conv_ord, bare, bytes) = archive.tail.remove(place)?;
        self.tail_bytes.fetch_sub(bytes, Ordering::Relaxed);
        // A message refused at once (a full offline quota) is the newest: nothing took
        // its ordinals yet, so nothing is counted past them.
        let next_in_conversation = archive.conversations.get_mut(bare.as_str());
        let newest = ord + 1 == archive.next_ord && next_in_conversation.as_deref() == Some(&(conv_ord + 1));
        if newest {
            archive.next_ord = ord;
            if let Some(next) = next_in_conversation {
                *next = conv_ord;
            }
        }
        Some(Removed { ord, conv_ord, bare, newest })
    }

    /// Removes the tail entries stamped before `before_micros`; returns how many went.
    pub fn expire_tails(&self, before_micros: u64) -> u64 {
        let mut expired = 0;
        self.tails.for_each(|stripe| {
            for archive in stripe.archives.values_mut() {
                expired += self.expire_in(archive, before_micros);
            }
        });
        expired
    }

    /// Removes the entries of `owner`'s tail stamped before `before_micros`; returns how
    /// many went.
    pub fn expire_tail(&self, owner: &str, before_micros: u64) -> u64 {
        let mut guard = self.tails.lock(owner);
        guard.archives.get_mut(owner).map_or(0, |archive| self.expire_in(archive, before_micros))
    }

    /// Removes the entries of `archive`'s tail stamped before `before_micros`, and their
    /// bytes from the count; returns how many went.
    fn expire_in(&self, archive: &mut Archive, before_micros: u64) -> u64 {
        let (gone, bytes) = archive.tail.remove_stamped_before(before_micros);
        self.tail_bytes.fetch_sub(bytes, Ordering::Relaxed);
        gone as u64
    }

    /// Forgets `owner`'s tail and ordinals (its archive is being deleted); returns the
    /// newest place it had given, if any: entries up to it are deleted.
    pub fn clear(&self, owner: &str) -> Result<Option<Place>, StorageError> {
        let mut guard = self.tails.lock(owner);
        let stripe = &mut *guard;
        let archive = self.in_memory(&mut stripe.archives, owner)?;
        let newest_in_chunks = self.chunks.scan_prefix(keys::data(owner)).next_back().transpose().map_err(backend)?;
        let mut newest = match newest_in_chunks {
            Some((_, chunk)) => records::entries(&packed::unpack(&chunk)?)?.last().map(|e| e.place),
            None => None,
        };
        if let Some(last) = archive.tail.last() {
            newest = newest.max(Some(last.place));
        }
        let bytes = archive.tail.bytes();
        self.tail_bytes.fetch_sub(bytes, Ordering::Relaxed);
        // The newest stamp stays: places of later entries come after every deleted one.
        *archive =
            Archive { newest_stamp: archive.newest_stamp, touched: true, due: archive.due, ..Archive::default() };
        Ok(newest)
    }
}
