//! The log at each group commit, and maintenance: tails written out as chunks.
//!
//! The group commit ([`Archives::write_log`], then sled's flush) appends one frame to the
//! log file whatever the number of appends. Maintenance runs after it, off the
//! acknowledgement path (the flusher calls it once its waiters are answered):
//! - an archive whose tail reached a chunk's size is written out as chunks;
//! - every [`FULL_EVERY`], or once the tails hold [`TAIL_BYTES`] or the log file
//!   [`log::FILE_BYTES`], every tail is; the log
//!   moves to a new file first, and the files before it, whose entries are then all in
//!   chunks, go after the next flush has made the chunks durable
//!   ([`Archives::after_flush`]).
//!
//! Chunks are plain inserts, the index's before the archive's. A reader snapshots the
//! tail before it reads chunks, and entries leave a tail only once their chunks are in,
//! so every entry is always found in one or the other, and entries found in both are the
//! same (`view.rs`).

use super::records::Indexed;
use super::tail::{Tail, TailEntry, CHUNK_BYTES, CHUNK_ENTRIES};
use super::{keys, log, packed, Archives};
use crate::storage::sled::backend;
use crate::storage::StorageError;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The longest an entry waits in a tail (and the log) before it is in a chunk.
pub const FULL_EVERY: Duration = Duration::from_secs(60);
/// Bytes of tails (and so of log) that start a full maintenance.
pub const TAIL_BYTES: usize = 16 << 20;

impl Archives {
    /// Writes the log records of every append so far as one batch, synced; sled's flush
    /// follows.
    pub fn write_log(&self) -> Result<(), StorageError> {
        // One buffer, kept: a batch is copied once, from the stripes into the frame.
        let mut frame = self.frame.lock().unwrap_or_else(|p| p.into_inner());
        frame.clear();
        frame.resize(log::FRAME_HEAD, 0);
        self.take_log(&mut frame);
        if frame.len() == log::FRAME_HEAD {
            return Ok(());
        }
        let written = self.log.append(&mut frame);
        // A burst's buffer is not kept for ever.
        if frame.capacity() > TAIL_BYTES {
            *frame = Vec::new();
        }
        written
    }

    /// After a flush: the log files whose entries are all in (now durable) chunks go.
    pub fn after_flush(&self) -> Result<(), StorageError> {
        let done = self.log_done.lock().unwrap_or_else(|p| p.into_inner()).take();
        match done {
            Some(last) => self.log.remove_upto(last),
            None => Ok(()),
        }
    }

    /// Writes out the tails that are due (see the module doc); cheap when none is.
    pub fn maintain(&self) -> Result<(), StorageError> {
        let full = self.tail_bytes.load(Ordering::Relaxed) >= TAIL_BYTES
            || self.log.bytes() >= log::FILE_BYTES
            || self.last_full.lock().map(|at| at.elapsed() >= FULL_EVERY).unwrap_or(true);
        if !full && self.due.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        self.write_tails(full)
    }

    /// Writes tails out as chunks: every one with `full`, else those due.
    pub fn write_tails(&self, full: bool) -> Result<(), StorageError> {
        let _turn = self.lock_maintenance();
        // Every batch in the log files up to this one was written from appends already in
        // the tails; later batches go to a new file.
        let logged = if full { self.log.rotate() } else { None };
        for (owner, tail) in self.work(full) {
            if let Some(last) = tail.last() {
                self.write_chunks(&owner, &tail)?;
                self.written(&owner, last.place);
            } else {
                self.written(&owner, 0);
            }
        }
        if full {
            self.forget_idle();
            if let Some(logged) = logged {
                *self.log_done.lock().unwrap_or_else(|p| p.into_inner()) = Some(logged);
            }
            if let Ok(mut at) = self.last_full.lock() {
                *at = Instant::now();
            }
        }
        Ok(())
    }

    /// Writes a tail's entries as chunks: each conversation's index first, then the
    /// archive's (slices of the tail's buffer).
    pub fn write_chunks(&self, owner: &str, tail: &Tail) -> Result<(), StorageError> {
        let mut conversations: BTreeMap<&str, Vec<TailEntry<'_>>> = BTreeMap::new();
        for entry in tail.iter() {
            conversations.entry(entry.bare()).or_default().push(entry);
        }
        for (bare, entries) in conversations {
            let prefix = keys::conversation(owner, bare);
            for group in entries.chunks(CHUNK_ENTRIES) {
                let mut chunk = Vec::new();
                for e in group {
                    Indexed { place: e.place, ord: e.conv_ord, with: e.with() }.write(&mut chunk)?;
                }
                self.chunks.insert(keys::at(&prefix, group[0].place), packed::pack(&chunk)).map_err(backend)?;
            }
        }
        let prefix = keys::data(owner);
        let entries: Vec<TailEntry<'_>> = tail.iter().collect();
        for (from, to) in groups(&entries) {
            let value = packed::pack(tail.records(from, to));
            self.chunks.insert(keys::at(&prefix, entries[from].place), value).map_err(backend)?;
        }
        Ok(())
    }
}

/// Entries cut into chunks (position ranges) of at most [`CHUNK_ENTRIES`] and, beyond
/// their first entry, [`CHUNK_BYTES`].
fn groups(entries: &[TailEntry<'_>]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, entry) in entries.iter().enumerate() {
        let full = i - start >= CHUNK_ENTRIES || (i > start && bytes + entry.record.len() > CHUNK_BYTES);
        if full {
            out.push((start, i));
            (start, bytes) = (i, 0);
        }
        bytes += entry.record.len();
    }
    if start < entries.len() {
        out.push((start, entries.len()));
    }
    out
}
