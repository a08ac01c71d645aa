//! The archives' log: one append-only file at a time in `DATA_DIR/archive-log/`, beside
//! sled, written and synced once per group commit (sled would write a value this large as
//! a file of its own, a blob, on every insert).
//!
//! A file is a sequence of frames: length (4, big-endian), CRC-32 of the batch (4), the
//! batch (log records, `records.rs`). Files are numbered; each start opens a new one, so
//! nothing is ever appended after a frame a crash cut short. At start every file is read
//! back in order, each up to its first frame that is short or fails its CRC (the tail of
//! a write the crash interrupted: never acknowledged). Maintenance starts a new file when
//! it writes every tail out (`rotate`), and the files before it go once those chunks are
//! durable (`remove_upto`).

use crate::storage::StorageError;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

fn io(e: std::io::Error) -> StorageError {
    StorageError::Io(format!("archive log: {e}"))
}

/// Bytes before each batch: its length and CRC.
pub const FRAME_HEAD: usize = 8;

pub struct Log {
    /// None for a temporary store: nothing is kept.
    dir: Option<PathBuf>,
    current: Mutex<Current>,
}

struct Current {
    number: u64,
    file: Option<File>,
    /// Frames written to it.
    frames: u64,
}

fn name(number: u64) -> String {
    format!("{number:016}.log")
}

/// The numbers of the log files in `dir`, oldest first.
fn numbers(dir: &Path) -> Result<Vec<u64>, StorageError> {
    let mut numbers = Vec::new();
    for entry in fs::read_dir(dir).map_err(io)? {
        let name = entry.map_err(io)?.file_name();
        let number = name.to_str().and_then(|n| n.strip_suffix(".log")).and_then(|n| n.parse::<u64>().ok());
        numbers.extend(number);
    }
    numbers.sort_unstable();
    Ok(numbers)
}

impl Log {
    /// Opens the log in `dir` (None: a log that keeps nothing); returns it and every batch
    /// the files hold, oldest first.
    pub fn open(dir: Option<&Path>) -> Result<(Log, Vec<Vec<u8>>), StorageError> {
        let Some(dir) = dir else {
            return Ok((
                Log { dir: None, current: Mutex::new(Current { number: 0, file: None, frames: 0 }) },
                Vec::new(),
            ));
        };
        fs::create_dir_all(dir).map_err(io)?;
        let numbers = numbers(dir)?;
        let mut batches = Vec::new();
        for number in &numbers {
            read_frames(&dir.join(name(*number)), &mut batches)?;
        }
        let log = Log {
            dir: Some(dir.to_path_buf()),
            current: Mutex::new(Current { number: numbers.last().map_or(0, |n| n + 1), file: None, frames: 0 }),
        };
        Ok((log, batches))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends one frame and syncs it to disk: `frame` is the batch after [`FRAME_HEAD`]
    /// bytes, which this fills in.
    pub fn append(&self, frame: &mut [u8]) -> Result<(), StorageError> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let mut current = self.lock();
        if current.file.is_none() {
            let file = OpenOptions::new().create_new(true).append(true).open(dir.join(name(current.number)));
            current.file = Some(file.map_err(io)?);
            // The new file's name is durable too.
            File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        let (head, batch) = frame.split_at_mut(FRAME_HEAD);
        let len = u32::try_from(batch.len()).map_err(|_| StorageError::Backend("archive log batch too big".into()))?;
        head[..4].copy_from_slice(&len.to_be_bytes());
        head[4..].copy_from_slice(&crc32fast::hash(batch).to_be_bytes());
        let file = current.file.as_mut().ok_or_else(|| StorageError::Backend("archive log closed".into()))?;
        file.write_all(frame).and_then(|()| file.sync_data()).map_err(io)?;
        current.frames += 1;
        Ok(())
    }

    /// Later batches go to a new file; returns the number of the last file before it
    /// (every batch appended so far is in it or an earlier one), or None when nothing was
    /// appended since the last time.
    pub fn rotate(&self) -> Option<u64> {
        let mut current = self.lock();
        if current.frames == 0 {
            return current.number.checked_sub(1);
        }
        let last = current.number;
        *current = Current { number: last + 1, file: None, frames: 0 };
        Some(last)
    }

    /// Deletes the files numbered up to `last`.
    pub fn remove_upto(&self, last: u64) -> Result<(), StorageError> {
        let Some(dir) = &self.dir else { return Ok(()) };
        for number in numbers(dir)?.into_iter().take_while(|n| *n <= last) {
            fs::remove_file(dir.join(name(number))).map_err(io)?;
        }
        Ok(())
    }

    /// Whether any log file is left (tests).
    #[cfg(test)]
    pub fn files(&self) -> usize {
        self.dir.as_deref().map_or(0, |dir| numbers(dir).map(|n| n.len()).unwrap_or(0))
    }
}

/// The whole frames of one file, up to the first short or damaged one.
fn read_frames(path: &Path, batches: &mut Vec<Vec<u8>>) -> Result<(), StorageError> {
    let mut bytes = Vec::new();
    File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(io)?;
    let mut rest = bytes.as_slice();
    while !rest.is_empty() {
        let whole = rest.get(..8).and_then(|head| {
            let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
            let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
            rest.get(8..8 + len).filter(|batch| crc32fast::hash(batch) == crc).map(|batch| (batch, 8 + len))
        });
        let Some((batch, used)) = whole else {
            // A write a crash cut short: never synced, never acknowledged.
            tracing::warn!(file = %path.display(), bytes = rest.len(), "archive log: an incomplete last write is ignored");
            return Ok(());
        };
        batches.push(batch.to_vec());
        rest = &rest[used..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(batch: &[u8]) -> Vec<u8> {
        let mut frame = vec![0; FRAME_HEAD];
        frame.extend_from_slice(batch);
        frame
    }

    #[test]
    fn batches_come_back_in_order_and_a_cut_write_is_dropped() {
        let dir = tempfile::tempdir().expect("temporary directory");
        {
            let (log, old) = Log::open(Some(dir.path())).expect("open");
            assert!(old.is_empty());
            log.append(&mut framed(b"one")).expect("append");
            log.append(&mut framed(b"two")).expect("append");
            assert_eq!(log.rotate(), Some(0));
            log.append(&mut framed(b"three")).expect("append");
        }
        // A crash in the middle of a fourth write.
        let mut last = OpenOptions::new().append(true).open(dir.path().join(name(1))).expect("file");
        last.write_all(&[0, 0, 0, 9, 1, 2, 3, 4, b'x']).expect("torn write");
        let (log, batches) = Log::open(Some(dir.path())).expect("reopen");
        assert_eq!(batches, [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]);
        log.append(&mut framed(b"four")).expect("append to a new file");
        assert_eq!(log.files(), 3);
        log.remove_upto(1).expect("remove");
        let (_, batches) = Log::open(Some(dir.path())).expect("reopen");
        assert_eq!(batches, [b"four".to_vec()]);
    }
}
