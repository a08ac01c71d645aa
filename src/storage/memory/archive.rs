//! Archives: per owner, entries by place (`archive/ids.rs`), queried by the engine every
//! backend shares (`archive/paging.rs`), with the owner's preferences and retention.

use super::MemoryStore;
use crate::storage::archive::ids::{place, stamp_of, Ids, Place};
use crate::storage::archive::paging::{self, with_matches, Entries, Places, Span};
use crate::storage::archive::{ArchivePage, ArchivePrefs, ArchiveQuery, ArchiveStore, ArchivedMessage};
use crate::storage::Reply;
use crate::storage::StorageError;
use std::collections::BTreeMap;
use std::sync::Arc;
use xmpp_parsers::jid::{BareJid, Jid};

#[derive(Default)]
pub(super) struct Archive {
    entries: BTreeMap<Place, Entry>,
    /// The newest stamp appended since the archive was made: kept when retention empties
    /// it, so later entries still sort after every id handed out.
    newest: u64,
    prefs: Option<Arc<ArchivePrefs>>,
    /// The retention the owner chose (seconds).
    retention: Option<u64>,
}

impl Archive {
    /// Removes the entries stamped before `before_micros`; how many went.
    fn expire(&mut self, before_micros: u64) -> u64 {
        let kept = self.entries.split_off(&place(before_micros, 0));
        std::mem::replace(&mut self.entries, kept).len() as u64
    }
}

struct Entry {
    /// The other party, as given.
    with: Jid,
    stanza: Vec<u8>,
}

/// One archive, as the query engine reads it.
struct View<'a> {
    archive: &'a Archive,
    ids: &'a Ids,
}

impl Entries for View<'_> {
    fn find(&self, id: &str) -> Result<(Place, String), StorageError> {
        let found = self.ids.decode(id).and_then(|place| Some((place, self.archive.entries.get(&place)?)));
        let (place, entry) = found.ok_or_else(|| StorageError::NotFound(id.to_string()))?;
        Ok((place, entry.with.to_string()))
    }

    fn scan(&self, span: Span, with: Option<&Jid>) -> Places<'_> {
        if span.lo > span.hi {
            return Box::new(std::iter::empty());
        }
        let with = with.cloned();
        let range = self.archive.entries.range(span.lo..=span.hi);
        let matching =
            range.filter(move |(_, entry)| with.as_ref().is_none_or(|w| with_matches(w, entry.with.as_str())));
        Box::new(matching.map(|(place, _)| Ok(*place)))
    }

    fn load(&self, place: Place) -> Result<Option<ArchivedMessage>, StorageError> {
        Ok(self.archive.entries.get(&place).map(|entry| ArchivedMessage {
            id: self.ids.encode(place),
            with: entry.with.clone(),
            stamp_micros: stamp_of(place),
            stanza: entry.stanza.clone(),
        }))
    }
}

impl ArchiveStore for MemoryStore {
    fn archive(&self, owner: &BareJid, with: &Jid, stamp_micros: u64, stanza: &[u8]) -> Reply<'_, String> {
        Reply::now(|| {
            let mut stripe = self.archives.lock(owner.as_str());
            let archive = stripe.entry(owner.to_string()).or_default();
            let stamp = stamp_micros.max(archive.newest);
            archive.newest = stamp;
            let place = place(stamp, self.next_id());
            archive.entries.insert(place, Entry { with: with.clone(), stanza: stanza.to_vec() });
            Ok(self.archive_ids.encode(place))
        })
    }

    fn unarchive(&self, owner: &BareJid, id: &str) -> Reply<'_, bool> {
        Reply::now(|| {
            let Some(place) = self.archive_ids.decode(id) else { return Ok(false) };
            let mut stripe = self.archives.lock(owner.as_str());
            Ok(stripe.get_mut(owner.as_str()).is_some_and(|archive| archive.entries.remove(&place).is_some()))
        })
    }

    fn query_archive(&self, owner: &BareJid, query: &ArchiveQuery) -> Reply<'_, ArchivePage> {
        Reply::now(|| {
            let stripe = self.archives.lock(owner.as_str());
            let empty = Archive::default();
            let archive = stripe.get(owner.as_str()).unwrap_or(&empty);
            paging::query(&View { archive, ids: &self.archive_ids }, query)
        })
    }

    fn archive_prefs(&self, owner: &BareJid) -> Reply<'_, Option<Arc<ArchivePrefs>>> {
        Reply::now(|| {
            Ok(self.archives.lock(owner.as_str()).get(owner.as_str()).and_then(|archive| archive.prefs.clone()))
        })
    }

    fn set_archive_prefs(&self, owner: &BareJid, prefs: &ArchivePrefs) -> Reply<'_, ()> {
        Reply::now(|| {
            let mut stripe = self.archives.lock(owner.as_str());
            stripe.entry(owner.to_string()).or_default().prefs = Some(Arc::new(prefs.clone()));
            Ok(())
        })
    }

    fn expire_archive(&self, before_micros: u64) -> Reply<'_, u64> {
        Reply::now(|| {
            let mut expired = 0;
            // A stripe at a time: appends to archives of other stripes go on meanwhile.
            self.archives.for_each(|archives| {
                for archive in archives.values_mut() {
                    expired += archive.expire(before_micros);
                }
            });
            Ok(expired)
        })
    }

    fn expire_archive_of(&self, owner: &BareJid, before_micros: u64) -> Reply<'_, u64> {
        Reply::now(|| {
            let mut stripe = self.archives.lock(owner.as_str());
            Ok(stripe.get_mut(owner.as_str()).map_or(0, |archive| archive.expire(before_micros)))
        })
    }

    fn archive_retention(&self, owner: &BareJid) -> Reply<'_, Option<u64>> {
        Reply::now(|| Ok(self.archives.lock(owner.as_str()).get(owner.as_str()).and_then(|a| a.retention)))
    }

    fn set_archive_retention(&self, owner: &BareJid, max_age_secs: Option<u64>) -> Reply<'_, ()> {
        Reply::now(|| {
            let mut stripe = self.archives.lock(owner.as_str());
            match (stripe.get_mut(owner.as_str()), max_age_secs) {
                (Some(archive), _) => archive.retention = max_age_secs,
                // Back to the server's, for an account with nothing here: nothing to keep.
                (None, None) => {}
                (None, Some(_)) => {
                    stripe.insert(owner.to_string(), Archive { retention: max_age_secs, ..Archive::default() });
                }
            }
            Ok(())
        })
    }

    fn archive_retentions(&self) -> Reply<'_, Vec<(BareJid, u64)>> {
        Reply::now(|| {
            let mut chosen = Vec::new();
            self.archives.for_each(|archives| {
                for (owner, archive) in archives.iter() {
                    if let (Some(secs), Ok(owner)) = (archive.retention, BareJid::new(owner)) {
                        chosen.push((owner, secs));
                    }
                }
            });
            Ok(chosen)
        })
    }

    fn delete_archive(&self, owner: &BareJid) -> Reply<'_, ()> {
        Reply::now(|| {
            let gone = self.archives.lock(owner.as_str()).remove(owner.as_str());
            // Freed once the stripe is released: a large archive holds up nobody.
            drop(gone);
            Ok(())
        })
    }
}
