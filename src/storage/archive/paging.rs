//! One XEP-0313 query over one archive, the same for every backend: a backend says where
//! an id stands, which places lie in a range (of the whole archive or one conversation)
//! and what an entry holds ([`Entries`]); the filters, paging (XEP-0059), the byte bound
//! of a page and counting are done here.

use super::ids::{place, Place};
use super::{ArchivePage, ArchiveQuery, ArchivedMessage, Page};
use crate::storage::StorageError;
use xmpp_parsers::jid::Jid;

/// Inclusive bounds on places; `lo > hi` is empty.
#[derive(Clone, Copy, Debug)]
pub struct Span {
    pub lo: Place,
    pub hi: Place,
}

const EMPTY: Span = Span { lo: 1, hi: 0 };

impl Span {
    /// The part strictly after `place`.
    fn after(self, place: Place) -> Span {
        place.checked_add(1).map_or(EMPTY, |lo| Span { lo: self.lo.max(lo), hi: self.hi })
    }

    /// The part strictly before `place`.
    fn before(self, place: Place) -> Span {
        place.checked_sub(1).map_or(EMPTY, |hi| Span { lo: self.lo, hi: self.hi.min(hi) })
    }
}

pub type Places<'a> = Box<dyn DoubleEndedIterator<Item = Result<Place, StorageError>> + 'a>;

/// One archive as a backend reads it.
pub trait Entries {
    /// The place of an id in this archive, and the other party of its entry as given;
    /// `NotFound(id)` when the archive holds no such entry.
    fn find(&self, id: &str) -> Result<(Place, String), StorageError>;
    /// The places in `span` (never empty), oldest first, of every entry or, with `with`,
    /// of those whose other party it matches ([`with_matches`]).
    fn scan(&self, span: Span, with: Option<&Jid>) -> Places<'_>;
    /// The entry at `place`; None when it is gone (retention removed it after the scan).
    fn load(&self, place: Place) -> Result<Option<ArchivedMessage>, StorageError>;
    /// How many entries in `span` (never empty) match `with`, when the backend knows
    /// without a scan (an index of counts); None: the engine counts by scanning.
    fn count(&self, _span: Span, _with: Option<&Jid>) -> Result<Option<u64>, StorageError> {
        Ok(None)
    }
}

/// Whether an entry's other party matches a query's `with` (XEP-0313 §4.1.1): a bare JID
/// matches the other party's bare JID, a full JID matches it exactly.
pub fn with_matches(with: &Jid, stored: &str) -> bool {
    match with.resource() {
        Some(_) => with.as_str() == stored,
        None => Jid::new(stored).is_ok_and(|s| s.to_bare() == with.to_bare()),
    }
}

/// Where the matches of one query are found.
enum Source<'a, E: ?Sized> {
    /// A range of the archive, or of one conversation.
    Range(&'a E, Option<&'a Jid>),
    /// The entries the query named (`ids`), sorted.
    Listed(Vec<Place>),
}

impl<E: Entries + ?Sized> Source<'_, E> {
    fn scan(&self, span: Span) -> Places<'_> {
        if span.lo > span.hi {
            return Box::new(std::iter::empty());
        }
        match self {
            Source::Listed(places) => {
                Box::new(places.iter().copied().filter(move |p| (span.lo..=span.hi).contains(p)).map(Ok))
            }
            Source::Range(entries, with) => entries.scan(span, *with),
        }
    }

    /// How many matches lie in `span`: from the backend's index when it has one, else
    /// by a scan, when no more than `limit`.
    fn count(&self, span: Span, limit: u64) -> Result<Option<u64>, StorageError> {
        if span.lo > span.hi {
            return Ok(Some(0));
        }
        if let Source::Range(entries, with) = self {
            if let Some(n) = entries.count(span, *with)? {
                return Ok(Some(n));
            }
        }
        let take = usize::try_from(limit).unwrap_or(usize::MAX).saturating_add(1);
        let n = self.scan(span).take(take).try_fold(0, |n, place| place.map(|_| n + 1))?;
        Ok((n <= limit).then_some(n))
    }
}

/// One page of the entries of `entries` matching `query` (see [`ArchiveQuery`]).
pub fn query<E: Entries + ?Sized>(entries: &E, query: &ArchiveQuery) -> Result<ArchivePage, StorageError> {
    let (span, source) = plan(entries, query)?;
    let (page_span, backward) = match &query.page {
        Page::After(None) => (span, false),
        Page::After(Some(id)) => (span.after(entries.find(id)?.0), false),
        Page::Before(None) => (span, true),
        Page::Before(Some(id)) => (span.before(entries.find(id)?.0), true),
    };
    let wanted = query.max.saturating_add(1);
    let scan = source.scan(page_span);
    let fetched: Result<Vec<Place>, StorageError> =
        if backward { scan.rev().take(wanted).collect() } else { scan.take(wanted).collect() };
    let mut places = fetched?;
    let mut complete = places.len() <= query.max;
    places.truncate(query.max);
    // Nearest the starting point first: paging backward, the newest are kept.
    let (kept, fits) = load_within(entries, &places, query.max_bytes)?;
    complete &= fits;
    let (mut messages, mut kept): (Vec<ArchivedMessage>, Vec<Place>) = kept.into_iter().unzip();
    if backward {
        messages.reverse();
        kept.reverse();
    }
    let count = if query.count_up_to == 0 { None } else { source.count(span, query.count_up_to)? };
    let first_index = match (count, kept.first()) {
        (Some(_), Some(first)) => match first.checked_sub(1) {
            Some(hi) => source.count(Span { lo: span.lo, hi }, query.count_up_to)?,
            None => Some(0),
        },
        _ => None,
    };
    Ok(ArchivePage { messages, complete, count, first_index })
}

/// The bounds set by the query's filters, and where to look for matches.
fn plan<'a, E: Entries + ?Sized>(
    entries: &'a E,
    query: &'a ArchiveQuery,
) -> Result<(Span, Source<'a, E>), StorageError> {
    let mut span = Span {
        lo: query.start.map_or(0, |start| place(start, 0)),
        hi: query.end.map_or(Place::MAX, |end| place(end, u64::MAX)),
    };
    if let Some(id) = &query.after_id {
        span = span.after(entries.find(id)?.0);
    }
    if let Some(id) = &query.before_id {
        span = span.before(entries.find(id)?.0);
    }
    if query.ids.is_empty() {
        return Ok((span, Source::Range(entries, query.with.as_ref())));
    }
    // The entries named by `ids` that match `with`.
    let mut places = Vec::with_capacity(query.ids.len());
    for id in &query.ids {
        let (place, stored) = entries.find(id)?;
        if query.with.as_ref().is_none_or(|with| with_matches(with, &stored)) {
            places.push(place);
        }
    }
    places.sort_unstable();
    places.dedup();
    Ok((span, Source::Listed(places)))
}

/// The entries at `places`, in that order, while their stanzas take at most `max_bytes`
/// (the first always goes); whether every one fitted.
fn load_within<E: Entries + ?Sized>(
    entries: &E,
    places: &[Place],
    max_bytes: usize,
) -> Result<(Vec<(ArchivedMessage, Place)>, bool), StorageError> {
    let (mut kept, mut size) = (Vec::with_capacity(places.len()), 0usize);
    for &place in places {
        let Some(message) = entries.load(place)? else { continue };
        size = size.saturating_add(message.stanza.len());
        if !kept.is_empty() && size > max_bytes {
            return Ok((kept, false));
        }
        kept.push((message, place));
    }
    Ok((kept, true))
}
