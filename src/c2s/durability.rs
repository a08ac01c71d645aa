//! Group commit within one stream. A stored message (offline, in flight, archived) must
//! be on disk before the client learns that it was taken: no answer to the client (to its
//! next stanza, an XEP-0198 `<a/>`, the dialect's `<ack/>`) is written until then. Messages
//! delivered to it from others meanwhile are no answer, and are not held back. The
//! flush is asked for as soon as something is stored, and waited for only before the next
//! write, so the stanzas a client pipelines are stored while the disk works, and share
//! flushes.

use crate::core::state::ServerState;
use crate::storage::flusher::Pending;
use crate::storage::StorageError;

#[derive(Default)]
pub struct Durability {
    /// Flushes asked for, oldest first.
    asked: Vec<Pending>,
    /// Something was stored after the last flush was asked for.
    dirty: bool,
}

impl Durability {
    /// Something was stored: a flush is asked for now unless one is already coming (the
    /// stores after it are covered by the one asked before the next write).
    pub fn stored(&mut self, state: &ServerState) {
        if self.asked.is_empty() {
            self.asked.push(state.flusher.request());
        } else {
            self.dirty = true;
        }
    }

    /// Whether anything stored is not yet known durable.
    pub fn owed(&self) -> bool {
        self.dirty || !self.asked.is_empty()
    }

    /// Returns once everything stored so far is on disk.
    pub async fn settle(&mut self, state: &ServerState) -> Result<(), StorageError> {
        if std::mem::take(&mut self.dirty) {
            self.asked.push(state.flusher.request());
        }
        for pending in std::mem::take(&mut self.asked) {
            pending.wait().await?;
        }
        Ok(())
    }
}
