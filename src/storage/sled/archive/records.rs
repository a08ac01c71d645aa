//! The bytes of archive entries: one entry as a record, chunks as records end to end, and
//! the log's records (see `mod.rs` for where each lives).
//!
//! - entry record: place (16, big-endian), ordinal (8), length of the other party's JID
//!   (2), length of the stanza (4), that JID, the stanza;
//! - index record: place (16), ordinal in the conversation (8), JID length (2), the JID
//!   as given (bare or full);
//! - log record: a kind (1), owner length (2), owner, then for an appended entry its
//!   ordinal in the conversation (8), entry record length (4) and the entry record; for
//!   a removed one its place (16).

use crate::storage::archive::ids::Place;
use crate::storage::StorageError;

pub fn corrupt(e: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(format!("archive: {e}"))
}

/// Bytes of an entry record before its JID.
const ENTRY_HEAD: usize = 16 + 8 + 2 + 4;
/// Bytes of an index record before its JID.
const INDEX_HEAD: usize = 16 + 8 + 2;

/// Reads big-endian integers off the front of a slice.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StorageError> {
        if self.0.len() < n {
            return Err(corrupt("short record"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StorageError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn place(&mut self) -> Result<Place, StorageError> {
        Ok(Place::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, StorageError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn len16(&mut self) -> Result<usize, StorageError> {
        Ok(usize::from(u16::from_be_bytes(self.array()?)))
    }

    fn len32(&mut self) -> Result<usize, StorageError> {
        Ok(u32::from_be_bytes(self.array()?) as usize)
    }

    fn text(&mut self, n: usize) -> Result<&'a str, StorageError> {
        std::str::from_utf8(self.take(n)?).map_err(corrupt)
    }
}

fn jid_len(jid: &str) -> Result<u16, StorageError> {
    u16::try_from(jid.len()).map_err(|_| StorageError::Backend("JID too long to archive".into()))
}

/// One archived entry, as read from a record.
#[derive(Clone, Copy, Debug)]
pub struct Entry<'a> {
    pub place: Place,
    pub ord: u64,
    pub with: &'a str,
    pub stanza: &'a [u8],
}

impl Entry<'_> {
    /// Appends this entry's record to `out`.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), StorageError> {
        let with_len = jid_len(self.with)?;
        let stanza_len =
            u32::try_from(self.stanza.len()).map_err(|_| StorageError::Backend("stanza too long".into()))?;
        out.reserve(ENTRY_HEAD + self.with.len() + self.stanza.len());
        out.extend_from_slice(&self.place.to_be_bytes());
        out.extend_from_slice(&self.ord.to_be_bytes());
        out.extend_from_slice(&with_len.to_be_bytes());
        out.extend_from_slice(&stanza_len.to_be_bytes());
        out.extend_from_slice(self.with.as_bytes());
        out.extend_from_slice(self.stanza);
        Ok(())
    }
}

/// The entry record at the front of `cursor`.
fn read_entry<'a>(cursor: &mut Cursor<'a>) -> Result<Entry<'a>, StorageError> {
    let (place, ord) = (cursor.place()?, cursor.u64()?);
    let (with_len, stanza_len) = (cursor.len16()?, cursor.len32()?);
    Ok(Entry { place, ord, with: cursor.text(with_len)?, stanza: cursor.take(stanza_len)? })
}

/// The one entry record that `bytes` holds.
pub fn entry(bytes: &[u8]) -> Result<Entry<'_>, StorageError> {
    read_entry(&mut Cursor(bytes))
}

/// Every entry of a chunk, oldest first.
pub fn entries(chunk: &[u8]) -> Result<Vec<Entry<'_>>, StorageError> {
    let mut cursor = Cursor(chunk);
    let mut out = Vec::new();
    while !cursor.0.is_empty() {
        out.push(read_entry(&mut cursor)?);
    }
    Ok(out)
}

/// The kinds of chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Entries,
    Index,
}

/// Where each record of a chunk lies: its place and its bytes.
pub fn spans(chunk: &[u8], kind: Kind) -> Result<Vec<(Place, std::ops::Range<usize>)>, StorageError> {
    let mut cursor = Cursor(chunk);
    let mut out = Vec::new();
    while !cursor.0.is_empty() {
        let start = chunk.len() - cursor.0.len();
        let place = match kind {
            Kind::Entries => read_entry(&mut cursor)?.place,
            Kind::Index => {
                let place = cursor.place()?;
                cursor.u64()?;
                let with_len = cursor.len16()?;
                cursor.take(with_len)?;
                place
            }
        };
        out.push((place, start..chunk.len() - cursor.0.len()));
    }
    Ok(out)
}

/// One conversation index record: where the entry is, its ordinal in the conversation,
/// and the other party as given.
#[derive(Clone, Copy, Debug)]
pub struct Indexed<'a> {
    pub place: Place,
    pub ord: u64,
    pub with: &'a str,
}

impl Indexed<'_> {
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), StorageError> {
        let with_len = jid_len(self.with)?;
        out.reserve(INDEX_HEAD + self.with.len());
        out.extend_from_slice(&self.place.to_be_bytes());
        out.extend_from_slice(&self.ord.to_be_bytes());
        out.extend_from_slice(&with_len.to_be_bytes());
        out.extend_from_slice(self.with.as_bytes());
        Ok(())
    }
}

/// Every record of an index chunk, oldest first.
pub fn indexed(chunk: &[u8]) -> Result<Vec<Indexed<'_>>, StorageError> {
    let mut cursor = Cursor(chunk);
    let mut out = Vec::new();
    while !cursor.0.is_empty() {
        let (place, ord) = (cursor.place()?, cursor.u64()?);
        let with_len = cursor.len16()?;
        out.push(Indexed { place, ord, with: cursor.text(with_len)? });
    }
    Ok(out)
}

/// A log record's first byte: an entry appended, or one removed.
const APPENDED: u8 = 0;
const REMOVED: u8 = 1;

/// Appends a log record: `entry` (a whole entry record) appended to `owner`'s archive,
/// with its ordinal in its conversation.
pub fn write_logged(out: &mut Vec<u8>, owner: &str, conv_ord: u64, entry: &[u8]) -> Result<(), StorageError> {
    let owner_len = jid_len(owner)?;
    let entry_len = u32::try_from(entry.len()).map_err(|_| StorageError::Backend("stanza too long".into()))?;
    out.reserve(1 + 2 + owner.len() + 8 + 4 + entry.len());
    out.push(APPENDED);
    out.extend_from_slice(&owner_len.to_be_bytes());
    out.extend_from_slice(owner.as_bytes());
    out.extend_from_slice(&conv_ord.to_be_bytes());
    out.extend_from_slice(&entry_len.to_be_bytes());
    out.extend_from_slice(entry);
    Ok(())
}

/// Appends a log record: the entry at `place` left `owner`'s archive (refused after it
/// was archived).
pub fn write_removed(out: &mut Vec<u8>, owner: &str, place: Place) -> Result<(), StorageError> {
    let owner_len = jid_len(owner)?;
    out.push(REMOVED);
    out.extend_from_slice(&owner_len.to_be_bytes());
    out.extend_from_slice(owner.as_bytes());
    out.extend_from_slice(&place.to_be_bytes());
    Ok(())
}

/// One log record.
pub enum Logged<'a> {
    /// An entry record appended, with its ordinal in its conversation.
    Appended {
        owner: &'a str,
        conv_ord: u64,
        entry: &'a [u8],
    },
    Removed {
        owner: &'a str,
        place: Place,
    },
}

/// Every record of one log batch, in order.
pub fn logged(batch: &[u8]) -> Result<Vec<Logged<'_>>, StorageError> {
    let mut cursor = Cursor(batch);
    let mut out = Vec::new();
    while !cursor.0.is_empty() {
        let [kind] = cursor.array()?;
        let owner_len = cursor.len16()?;
        let owner = cursor.text(owner_len)?;
        out.push(match kind {
            APPENDED => {
                let conv_ord = cursor.u64()?;
                let entry_len = cursor.len32()?;
                Logged::Appended { owner, conv_ord, entry: cursor.take(entry_len)? }
            }
            REMOVED => Logged::Removed { owner, place: cursor.place()? },
            _ => return Err(corrupt("log record kind")),
        });
    }
    Ok(out)
}

/// A hole: an entry removed from the middle of an archive (refused after it was
/// archived), whose ordinals no other entry takes: counts subtract it. Value: ordinal
/// (8), ordinal in its conversation (8), the conversation (the other party's bare JID).
pub struct Hole<'a> {
    pub ord: u64,
    pub conv_ord: u64,
    pub with_bare: &'a str,
}

impl Hole<'_> {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.with_bare.len());
        out.extend_from_slice(&self.ord.to_be_bytes());
        out.extend_from_slice(&self.conv_ord.to_be_bytes());
        out.extend_from_slice(self.with_bare.as_bytes());
        out
    }
}

pub fn hole(bytes: &[u8]) -> Result<Hole<'_>, StorageError> {
    let mut cursor = Cursor(bytes);
    let (ord, conv_ord) = (cursor.u64()?, cursor.u64()?);
    let rest = cursor.0.len();
    Ok(Hole { ord, conv_ord, with_bare: cursor.text(rest)? })
}

/// The bare part of a JID as text: everything before its resource (a localpart or domain
/// never holds a `/`).
pub fn bare_of(jid: &str) -> &str {
    jid.split_once('/').map_or(jid, |(bare, _)| bare)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_as_written() {
        let mut chunk = Vec::new();
        let a = Entry { place: 7 << 64 | 3, ord: 0, with: "bob@example.org/phone", stanza: b"<message/>" };
        let b = Entry { place: 8 << 64 | 9, ord: 1, with: "carol@example.net", stanza: b"" };
        a.write(&mut chunk).expect("write");
        b.write(&mut chunk).expect("write");
        let read = entries(&chunk).expect("read");
        assert_eq!(read.len(), 2);
        assert_eq!((read[0].place, read[0].ord, read[0].with, read[0].stanza), (a.place, 0, a.with, a.stanza));
        assert_eq!((read[1].place, read[1].with, read[1].stanza), (b.place, b.with, &b""[..]));
        let mut log = Vec::new();
        write_logged(&mut log, "alice@example.org", 5, &chunk[..chunk.len() - 47]).expect("log");
        write_removed(&mut log, "alice@example.org", a.place).expect("log");
        let records = logged(&log).expect("logged");
        let Logged::Appended { owner, conv_ord, entry: appended } = records[0] else { panic!("appended first") };
        assert_eq!((owner, conv_ord), ("alice@example.org", 5));
        assert_eq!(entry(appended).expect("entry").stanza, b"<message/>");
        assert!(matches!(records[1], Logged::Removed { owner: "alice@example.org", place } if place == a.place));
        assert!(entries(&chunk[..chunk.len() - 1]).is_err(), "a cut record is corrupt, not a panic");
        let hole_bytes = Hole { ord: 4, conv_ord: 2, with_bare: "bob@example.org" }.to_bytes();
        let read = hole(&hole_bytes).expect("hole");
        assert_eq!((read.ord, read.conv_ord, read.with_bare), (4, 2, "bob@example.org"));
        assert_eq!(bare_of("bob@example.org/a/b"), "bob@example.org");
    }
}
