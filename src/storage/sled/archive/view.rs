//! One archive as the query engine (`storage/archive/paging.rs`) reads it: its chunks,
//! then its tail as it was when the query began.
//!
//! The tail is read first. Entries leave a tail only once their chunks are written, so an
//! entry is in the chunks, in that snapshot, or in both; for a scan, the snapshot's
//! entries after the newest in the chunks come after the chunks' (compaction writes a
//! tail's oldest entries out first).
//!
//! Counts come from ordinals: between two entries of an archive (or of one conversation)
//! lie the difference of their ordinals, less the holes between them. A query with a full
//! JID (`with` a resource) is counted by the engine's scan.

use super::records::{self, bare_of, Kind};
use super::tail::Tail;
use super::{keys, packed, Archives};
use crate::storage::archive::ids::{stamp_of, Ids, Place};
use crate::storage::archive::paging::{with_matches, Entries, Places, Span};
use crate::storage::archive::ArchivedMessage;
use crate::storage::sled::backend;
use crate::storage::StorageError;
use std::cell::RefCell;
use std::sync::Arc;
use xmpp_parsers::jid::Jid;

/// A place and its ordinal (in the archive, or in the conversation).
type Found = Result<(Place, u64), StorageError>;
type Founds<'a> = Box<dyn DoubleEndedIterator<Item = Found> + 'a>;

pub struct View<'a> {
    archives: &'a Archives,
    owner: &'a str,
    ids: Ids,
    tail: Tail,
    /// The archive chunk `load` read last.
    last_chunk: RefCell<Option<Arc<Vec<u8>>>>,
}

impl<'a> View<'a> {
    pub fn new(archives: &'a Archives, owner: &'a str, ids: Ids) -> View<'a> {
        View { archives, owner, ids, tail: archives.snapshot(owner), last_chunk: RefCell::new(None) }
    }

    /// The chunks' prefix: the archive's, or a conversation's.
    fn prefix(&self, with: Option<&Jid>) -> Vec<u8> {
        match with {
            None => keys::data(self.owner),
            Some(with) => keys::conversation(self.owner, bare_of(with.as_str())),
        }
    }

    /// The newest place in the chunks under `prefix`.
    fn newest_in_chunks(&self, prefix: &[u8], kind: Kind) -> Result<Option<Place>, StorageError> {
        let last = self.archives.chunks.scan_prefix(prefix).next_back().transpose().map_err(backend)?;
        Ok(match last {
            Some((_, chunk)) => records::spans(&packed::unpack(&chunk)?, kind)?.last().map(|(place, _)| *place),
            None => None,
        })
    }

    /// Every entry in `span` that matches `with`, oldest first, with its ordinal in the
    /// archive (no `with`) or in the conversation.
    fn found(&self, span: Span, with: Option<&Jid>) -> Result<Founds<'_>, StorageError> {
        let prefix = self.prefix(with);
        let kind = if with.is_some() { Kind::Index } else { Kind::Entries };
        let newest = self.newest_in_chunks(&prefix, kind)?;
        // From the chunk that holds `span.lo`, if one does.
        let start = match self.archives.chunk_holding(&prefix, span.lo)? {
            Some((key, _)) => key.to_vec(),
            None => keys::at(&prefix, span.lo),
        };
        let full = with.filter(|w| w.resource().is_some()).map(|w| w.as_str().to_string());
        let chunks = self.archives.chunks.range(start..=keys::at(&prefix, span.hi));
        let in_chunks = chunks.flat_map(move |item| -> Vec<Found> {
            let read = item
                .map_err(backend)
                .and_then(|(_, chunk)| matches_in(&packed::unpack(&chunk)?, kind, span, full.as_deref()));
            read.unwrap_or_else(|e| vec![Err(e)])
        });
        let with = with.cloned();
        let by_conversation = with.is_some();
        let in_tail = self.tail.iter().filter(move |e| {
            newest.is_none_or(|newest| e.place > newest)
                && (span.lo..=span.hi).contains(&e.place)
                && with.as_ref().is_none_or(|w| with_matches(w, e.with()))
        });
        let in_tail = in_tail.map(move |e| Ok((e.place, if by_conversation { e.conv_ord } else { e.ord })));
        Ok(Box::new(in_chunks.chain(in_tail)))
    }

    /// The holes strictly between two places, of the archive or of one conversation.
    fn holes_between(&self, after: Place, before: Place, with: Option<&Jid>) -> Result<u64, StorageError> {
        let (Some(lo), Some(hi)) = (after.checked_add(1), before.checked_sub(1)) else { return Ok(0) };
        if lo > hi {
            return Ok(0);
        }
        let prefix = keys::holes(self.owner);
        let mut holes = 0;
        for hole in self.archives.chunks.range(keys::at(&prefix, lo)..=keys::at(&prefix, hi)).values() {
            let hole = hole.map_err(backend)?;
            if with.is_none_or(|w| records::hole(&hole).is_ok_and(|h| h.with_bare == bare_of(w.as_str()))) {
                holes += 1;
            }
        }
        Ok(holes)
    }

    fn message(&self, place: Place, with: &str, stanza: &[u8]) -> Result<ArchivedMessage, StorageError> {
        Ok(ArchivedMessage {
            id: self.ids.encode(place),
            with: Jid::new(with).map_err(records::corrupt)?,
            stamp_micros: stamp_of(place),
            stanza: stanza.to_vec(),
        })
    }

    /// The chunk that holds `place`, the one read last when it does.
    fn chunk_for(&self, place: Place) -> Result<Option<Arc<Vec<u8>>>, StorageError> {
        let holds = |chunk: &Arc<Vec<u8>>| {
            records::spans(chunk, Kind::Entries).is_ok_and(|spans| {
                spans.first().is_some_and(|f| f.0 <= place) && spans.last().is_some_and(|l| l.0 >= place)
            })
        };
        if let Some(chunk) = self.last_chunk.borrow().as_ref().filter(|chunk| holds(chunk)) {
            return Ok(Some(chunk.clone()));
        }
        let found = match self.archives.chunk_holding(&keys::data(self.owner), place)? {
            Some((_, chunk)) => Some(Arc::new(packed::unpack(&chunk)?.into_owned())),
            None => None,
        };
        self.last_chunk.replace(found.clone());
        Ok(found)
    }
}

/// The records of a chunk in `span` (and, given a full JID, with exactly that party).
fn matches_in(chunk: &[u8], kind: Kind, span: Span, full: Option<&str>) -> Result<Vec<Found>, StorageError> {
    let inside = |place: Place| (span.lo..=span.hi).contains(&place);
    Ok(match kind {
        Kind::Entries => {
            records::entries(chunk)?.iter().filter(|e| inside(e.place)).map(|e| Ok((e.place, e.ord))).collect()
        }
        Kind::Index => records::indexed(chunk)?
            .iter()
            .filter(|r| inside(r.place) && full.is_none_or(|full| full == r.with))
            .map(|r| Ok((r.place, r.ord)))
            .collect(),
    })
}

impl Entries for View<'_> {
    fn find(&self, id: &str) -> Result<(Place, String), StorageError> {
        let missing = || StorageError::NotFound(id.to_string());
        let place = self.ids.decode(id).ok_or_else(missing)?;
        let message = self.load(place)?.ok_or_else(missing)?;
        Ok((place, message.with.to_string()))
    }

    fn scan(&self, span: Span, with: Option<&Jid>) -> Places<'_> {
        match self.found(span, with) {
            Ok(found) => Box::new(found.map(|f| f.map(|(place, _)| place))),
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    }

    fn load(&self, place: Place) -> Result<Option<ArchivedMessage>, StorageError> {
        if let Some(entry) = self.tail.find(place) {
            return self.message(place, entry.with(), entry.stanza()).map(Some);
        }
        let Some(chunk) = self.chunk_for(place)? else { return Ok(None) };
        let entries = records::entries(&chunk)?;
        let Some(entry) = entries.iter().find(|e| e.place == place) else { return Ok(None) };
        self.message(place, entry.with, entry.stanza).map(Some)
    }

    /// From the ordinals of the first and last match (see the module doc).
    fn count(&self, span: Span, with: Option<&Jid>) -> Result<Option<u64>, StorageError> {
        if with.is_some_and(|w| w.resource().is_some()) {
            return Ok(None);
        }
        let mut found = self.found(span, with)?;
        let Some(first) = found.next().transpose()? else { return Ok(Some(0)) };
        let last = found.next_back().transpose()?.unwrap_or(first);
        let holes = self.holes_between(first.0, last.0, with)?;
        Ok(Some((last.1 + 1).saturating_sub(first.1).saturating_sub(holes)))
    }
}
