//! One archive's tail: its entries not yet in chunks, as entry records end to end in one
//! buffer with a small index beside it. An append allocates nothing of its own (the
//! buffer grows by doubling), a chunk is a slice of the buffer, and entries leave from the
//! front in bulk. (One allocation per entry, freed a few thousand at a time when written
//! out, sent glibc's allocator into long searches of its unsorted bin: a third more CPU
//! per archived message.)

use super::records::{bare_of, Entry};
use crate::storage::archive::ids::{stamp_of, Place};
use crate::storage::StorageError;

/// An archive whose tail holds this many entries, or [`CHUNK_BYTES`], is written out as
/// chunks at the next maintenance (its chunks are no bigger).
pub const CHUNK_ENTRIES: usize = 32;
/// sled writes a node (up to 17 values) bigger than 128 KiB as a file of its own: chunks
/// stay well under an eighteenth of that.
pub const CHUNK_BYTES: usize = 6 << 10;

/// Bytes of an entry record before its JID (`records.rs`).
const WITH_AT: usize = 30;

/// Where one entry lies in the buffer, and its ordinals.
#[derive(Clone, Copy, Debug)]
struct Slot {
    place: Place,
    ord: u64,
    conv_ord: u64,
    start: usize,
    len: usize,
    with_len: usize,
}

#[derive(Clone, Default)]
pub struct Tail {
    bytes: Vec<u8>,
    slots: Vec<Slot>,
}

/// One entry of a tail.
#[derive(Clone, Copy)]
pub struct TailEntry<'a> {
    pub place: Place,
    pub ord: u64,
    pub conv_ord: u64,
    with_len: usize,
    /// The whole entry record.
    pub record: &'a [u8],
}

impl<'a> TailEntry<'a> {
    /// The other party as given.
    pub fn with(&self) -> &'a str {
        // Written from a `&str` by this process: always UTF-8.
        std::str::from_utf8(&self.record[WITH_AT..WITH_AT + self.with_len]).unwrap_or_default()
    }

    pub fn bare(&self) -> &'a str {
        bare_of(self.with())
    }

    pub fn stanza(&self) -> &'a [u8] {
        &self.record[WITH_AT + self.with_len..]
    }
}

impl Tail {
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Appends an entry (its place after every other).
    pub fn push(&mut self, entry: &Entry<'_>, conv_ord: u64) -> Result<(), StorageError> {
        let start = self.bytes.len();
        entry.write(&mut self.bytes)?;
        let (place, ord, with_len, len) = (entry.place, entry.ord, entry.with.len(), self.bytes.len() - start);
        self.slots.push(Slot { place, ord, conv_ord, start, len, with_len });
        Ok(())
    }

    fn entry(&self, slot: &Slot) -> TailEntry<'_> {
        TailEntry {
            place: slot.place,
            ord: slot.ord,
            conv_ord: slot.conv_ord,
            with_len: slot.with_len,
            record: &self.bytes[slot.start..slot.start + slot.len],
        }
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = TailEntry<'_>> + '_ {
        self.slots.iter().map(|slot| self.entry(slot))
    }

    pub fn last(&self) -> Option<TailEntry<'_>> {
        self.slots.last().map(|slot| self.entry(slot))
    }

    /// The entry at `place`.
    pub fn find(&self, place: Place) -> Option<TailEntry<'_>> {
        let at = self.slots.binary_search_by_key(&place, |s| s.place).ok()?;
        Some(self.entry(&self.slots[at]))
    }

    /// The records of entries `from..to` (by position), end to end.
    pub fn records(&self, from: usize, to: usize) -> &[u8] {
        match (self.slots.get(from), to.checked_sub(1).and_then(|last| self.slots.get(last))) {
            (Some(first), Some(last)) if from < to => &self.bytes[first.start..last.start + last.len],
            _ => &[],
        }
    }

    /// Removes the first `n` entries; returns the bytes they took.
    fn remove_front(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        let end = self.slots.get(n).map_or(self.bytes.len(), |next| next.start);
        self.slots.drain(..n);
        self.bytes.drain(..end);
        for slot in &mut self.slots {
            slot.start -= end;
        }
        self.give_back();
        end
    }

    /// An archive's tail stays in memory while its account is active: room for about
    /// two chunks is kept for the next appends (growing again from nothing costs a
    /// dozen reallocations per chunk), what a burst left beyond it goes back. An idle
    /// archive's state is dropped whole (`forget_idle`).
    fn give_back(&mut self) {
        let (bytes, slots) = (2 * CHUNK_BYTES, 2 * CHUNK_ENTRIES);
        if self.bytes.capacity() > bytes.max(2 * self.bytes.len()) {
            self.bytes.shrink_to(bytes.max(self.bytes.len()));
        }
        if self.slots.capacity() > slots.max(2 * self.slots.len()) {
            self.slots.shrink_to(slots.max(self.slots.len()));
        }
    }

    /// Removes the entries up to `last`; returns the bytes they took.
    pub fn remove_upto(&mut self, last: Place) -> usize {
        let n = self.slots.partition_point(|s| s.place <= last);
        self.remove_front(n)
    }

    /// Removes the entries stamped before `before_micros`; returns how many, and their bytes.
    pub fn remove_stamped_before(&mut self, before_micros: u64) -> (usize, usize) {
        let n = self.slots.partition_point(|s| stamp_of(s.place) < before_micros);
        (n, self.remove_front(n))
    }

    /// Removes the entry at `place`; returns its ordinals, its conversation and its bytes.
    pub fn remove(&mut self, place: Place) -> Option<(u64, u64, String, usize)> {
        let at = self.slots.binary_search_by_key(&place, |s| s.place).ok()?;
        let bare = self.entry(&self.slots[at]).bare().to_string();
        let slot = self.slots.remove(at);
        self.bytes.drain(slot.start..slot.start + slot.len);
        for later in &mut self.slots[at..] {
            later.start -= slot.len;
        }
        self.give_back();
        Some((slot.ord, slot.conv_ord, bare, slot.len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_leave_from_the_front_the_middle_and_by_stamp() {
        let mut tail = Tail::default();
        for i in 0..5u64 {
            let with = if i % 2 == 0 { "bob@example.org/a" } else { "carol@example.net" };
            let stanza = format!("m{i}");
            let entry = Entry { place: (u128::from(i) + 1) << 64, ord: i, with, stanza: stanza.as_bytes() };
            tail.push(&entry, i / 2).expect("push");
        }
        let stanzas =
            |tail: &Tail| tail.iter().map(|e| String::from_utf8_lossy(e.stanza()).into_owned()).collect::<Vec<_>>();
        assert_eq!(stanzas(&tail), ["m0", "m1", "m2", "m3", "m4"]);
        let (ord, conv_ord, bare, _) = tail.remove(3 << 64).expect("m2 is there");
        assert_eq!((ord, conv_ord, bare.as_str()), (2, 1, "bob@example.org"));
        assert_eq!(stanzas(&tail), ["m0", "m1", "m3", "m4"]);
        assert!(tail.remove_upto(2 << 64) > 0);
        assert_eq!(stanzas(&tail), ["m3", "m4"]);
        assert_eq!(
            tail.find(5 << 64).map(|e| (e.with(), e.bare(), e.ord)),
            Some(("bob@example.org/a", "bob@example.org", 4))
        );
        assert_eq!(tail.records(0, 2).len(), tail.bytes());
        assert_eq!(tail.remove_stamped_before(5).0, 1);
        assert_eq!(stanzas(&tail), ["m4"]);
        let left = tail.bytes();
        assert_eq!(tail.remove_upto(u128::MAX), left);
        assert!(tail.is_empty() && tail.bytes() == 0);
        let burst = Entry { place: 9 << 64, ord: 9, with: "bob@example.org", stanza: &[b'x'; 100_000] };
        tail.push(&burst, 0).expect("push");
        tail.remove_upto(u128::MAX);
        assert!(tail.bytes.capacity() <= 2 * CHUNK_BYTES, "a burst's room is given back");
    }
}
