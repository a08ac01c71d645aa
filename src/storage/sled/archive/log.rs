//! The archives' log: one file at a time in `DATA_DIR/archive-log/`, beside sled,
//! written and synced once per group commit (sled would write a value this large as a
//! file of its own, a blob, on every insert).
//!
//! A file is a sequence of frames, each at a multiple of [`BLOCK`] bytes: length (4,
//! big-endian), CRC-32 of the file's number (8, big-endian) and the batch (4), the batch
//! (log records, `records.rs`), zeros up to the next block. A frame never shares a block
//! with an earlier one, so a write torn by a crash can only damage its own frame. Files
//! are written with `O_DIRECT` where the file system takes it: from our buffer to the
//! disk, with no copy into the kernel's page cache (pages the kernel must find, fill and
//! write back; measured in docs/performance.md).
//!
//! Files are numbered; each start opens a new one, so nothing is ever appended after a
//! frame a crash cut short. At start every file is read back in order, each up to its
//! first frame that is short or fails its CRC (the tail of a write the crash interrupted:
//! never acknowledged). Maintenance starts a new file when it writes every tail out
//! (`rotate`; at the latest once a file holds [`FILE_BYTES`]), and the files before it go
//! once those chunks are durable (`remove_upto`).
//!
//! A file that goes is kept as a spare (up to [`SPARES`]) and becomes a later number's
//! file, overwritten from its start: the file system already holds its blocks, so a sync
//! changes no metadata. What the spare held before fails the CRC under its new number, so
//! reading stops at the end of what was written since. Files of the older format
//! (`.log`, CRC of the batch alone, frames end to end) are still read, then deleted.

use crate::storage::StorageError;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

fn io(e: std::io::Error) -> StorageError {
    StorageError::Io(format!("archive log: {e}"))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Bytes before each batch: its length and CRC.
pub const FRAME_HEAD: usize = 8;
/// Frames start at multiples of this, and `O_DIRECT` writes whole ones from a buffer
/// aligned to it (a file system block and the largest logical block of common disks).
const BLOCK: usize = 4096;
/// A burst's write buffer bigger than this is not kept.
const KEPT_BUFFER: usize = 16 << 20;
/// Bytes of a file that start a full maintenance (`chunks.rs`): the log, and the pages it
/// keeps in the kernel's cache, stay this small whatever the rate of appends.
pub const FILE_BYTES: u64 = 64 << 20;
/// Files kept for reuse.
const SPARES: usize = 2;
/// A file bigger than this (a burst's) is deleted rather than kept.
const SPARE_MAX: u64 = 2 * FILE_BYTES;

/// How a file's frames are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// `NUMBER.log`, before spares: the CRC covers the batch alone.
    Plain,
    /// `NUMBER.wal`: the CRC covers the file's number, then the batch.
    Numbered,
}

fn name(number: u64) -> String {
    format!("{number:016}.wal")
}

fn file_name(number: u64, format: Format) -> String {
    match format {
        Format::Numbered => name(number),
        Format::Plain => format!("{number:016}.log"),
    }
}

fn spare_name(number: u64) -> String {
    format!("{number:016}.spare")
}

/// What a directory holds: the log files, oldest first, and the spares.
struct Listing {
    files: Vec<(u64, Format)>,
    spares: Vec<u64>,
}

fn list(dir: &Path) -> Result<Listing, StorageError> {
    let mut listing = Listing { files: Vec::new(), spares: Vec::new() };
    for entry in fs::read_dir(dir).map_err(io)? {
        let name = entry.map_err(io)?.file_name();
        let Some((number, kind)) = name.to_str().and_then(|n| n.split_once('.')) else { continue };
        let Ok(number) = number.parse::<u64>() else { continue };
        match kind {
            "wal" => listing.files.push((number, Format::Numbered)),
            "log" => listing.files.push((number, Format::Plain)),
            "spare" => listing.spares.push(number),
            _ => {}
        }
    }
    listing.files.sort_unstable_by_key(|(number, _)| *number);
    Ok(listing)
}

fn checksum(number: u64, format: Format, batch: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    if format == Format::Numbered {
        hasher.update(&number.to_be_bytes());
    }
    hasher.update(batch);
    hasher.finalize()
}

/// `n` rounded up to a whole number of blocks.
fn whole_blocks(n: usize) -> usize {
    n.div_ceil(BLOCK) * BLOCK
}

/// Opens a log file for writing, with `O_DIRECT` when the file system takes it; says
/// whether it did.
/// Created if need be: the number is past every file the log had at start, so a file of
/// that name is one an earlier attempt of this process made (the first try below, or a
/// spare renamed before a failure), holding nothing that checks out under its number.
fn open_for_writing(path: &Path) -> std::io::Result<(File, bool)> {
    // Linux creates the file before it refuses O_DIRECT: the second try finds it there.
    let open = |flags| OpenOptions::new().write(true).create(true).truncate(false).custom_flags(flags).open(path);
    match open(libc::O_DIRECT) {
        Ok(file) => Ok((file, true)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            tracing::info!(file = %path.display(), "archive log: no O_DIRECT on this file system; writing through the page cache");
            Ok((open(0)?, false))
        }
        Err(e) => Err(e),
    }
}

/// A write buffer whose frames start at a block-aligned address, as `O_DIRECT` requires.
#[derive(Default)]
struct Aligned {
    bytes: Vec<u8>,
}

impl Aligned {
    /// `frame`, then zeros to a whole block, at an aligned address.
    fn blocks(&mut self, frame: &[u8]) -> &[u8] {
        let len = whole_blocks(frame.len());
        if self.bytes.len() < len + BLOCK || self.bytes.len() > (len + BLOCK).max(KEPT_BUFFER) {
            self.bytes = vec![0; len + BLOCK];
        }
        // Never more than a block in: the buffer has a block to spare. (Were it not
        // aligned, `O_DIRECT` would refuse the write and the file would be reopened
        // without it.)
        let start = self.bytes.as_ptr().align_offset(BLOCK).min(BLOCK);
        let out = &mut self.bytes[start..start + len];
        out[..frame.len()].copy_from_slice(frame);
        out[frame.len()..].fill(0);
        out
    }
}

pub struct Log {
    /// None for a temporary store: nothing is kept.
    dir: Option<PathBuf>,
    current: Mutex<Current>,
    /// The numbers of the spare files.
    spares: Mutex<Vec<u64>>,
}

struct Current {
    number: u64,
    file: Option<File>,
    /// Whether `file` was opened with `O_DIRECT`.
    direct: bool,
    /// Kept from file to file.
    buffer: Aligned,
    /// Where the next frame goes: 0 while nothing is written (a frame takes a block).
    end: u64,
}

impl Current {
    fn new(number: u64) -> Current {
        Current { number, file: None, direct: false, buffer: Aligned::default(), end: 0 }
    }
}

impl Log {
    /// Opens the log in `dir` (None: a log that keeps nothing); returns it and every batch
    /// the files hold, oldest first.
    pub fn open(dir: Option<&Path>) -> Result<(Log, Vec<Vec<u8>>), StorageError> {
        let Some(dir) = dir else {
            return Ok((Log { dir: None, current: Mutex::new(Current::new(0)), spares: Mutex::default() }, Vec::new()));
        };
        fs::create_dir_all(dir).map_err(io)?;
        let listing = list(dir)?;
        let mut batches = Vec::new();
        for (number, format) in &listing.files {
            read_frames(&dir.join(file_name(*number, *format)), *number, *format, &mut batches)?;
        }
        // Past every number a file had, spares' included: what a spare held never checks
        // out under its next number.
        let next =
            listing.files.iter().map(|(n, _)| *n).chain(listing.spares.iter().copied()).max().map_or(0, |n| n + 1);
        let log = Log {
            dir: Some(dir.to_path_buf()),
            current: Mutex::new(Current::new(next)),
            spares: Mutex::new(listing.spares),
        };
        Ok((log, batches))
    }

    /// Appends one frame and syncs it to disk: `frame` is the batch after [`FRAME_HEAD`]
    /// bytes, which this fills in.
    pub fn append(&self, frame: &mut [u8]) -> Result<(), StorageError> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let mut guard = lock(&self.current);
        let current = &mut *guard;
        if current.file.is_none() {
            let (file, direct) = self.new_file(dir, current.number)?;
            (current.file, current.direct) = (Some(file), direct);
        }
        let (head, batch) = frame.split_at_mut(FRAME_HEAD);
        let len = u32::try_from(batch.len()).map_err(|_| StorageError::Backend("archive log batch too big".into()))?;
        head[..4].copy_from_slice(&len.to_be_bytes());
        head[4..].copy_from_slice(&checksum(current.number, Format::Numbered, batch).to_be_bytes());
        let blocks = current.buffer.blocks(frame);
        let end = current.end;
        let file = current.file.as_ref().ok_or_else(|| StorageError::Backend("archive log closed".into()))?;
        // At a position, not appended: a write that failed is overwritten by the next.
        let mut written = file.write_all_at(blocks, end);
        if current.direct && written.as_ref().is_err_and(|e| e.raw_os_error() == Some(libc::EINVAL)) {
            // A file system that opens with O_DIRECT but refuses the write.
            tracing::info!("archive log: O_DIRECT refused; writing through the page cache");
            let path = dir.join(name(current.number));
            let reopened = OpenOptions::new().write(true).open(path).map_err(io)?;
            written = reopened.write_all_at(blocks, end);
            (current.file, current.direct) = (Some(reopened), false);
        }
        let file = current.file.as_ref().ok_or_else(|| StorageError::Backend("archive log closed".into()))?;
        written.and_then(|()| file.sync_data()).map_err(io)?;
        current.end = end + blocks.len() as u64;
        Ok(())
    }

    /// The file for `number`: a spare renamed, or a new one. Its name is durable before
    /// anything is written to it.
    fn new_file(&self, dir: &Path, number: u64) -> Result<(File, bool), StorageError> {
        let path = dir.join(name(number));
        let spare = lock(&self.spares).pop();
        let file = match spare {
            Some(spare) => fs::rename(dir.join(spare_name(spare)), &path).and_then(|()| open_for_writing(&path)),
            None => open_for_writing(&path),
        };
        let file = file.map_err(io)?;
        File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        Ok(file)
    }

    /// Bytes written to the current file.
    pub fn bytes(&self) -> u64 {
        lock(&self.current).end
    }

    /// Later batches go to a new file; returns the number of the last file before it
    /// (every batch appended so far is in it or an earlier one), or None when nothing was
    /// appended since the last time.
    pub fn rotate(&self) -> Option<u64> {
        let mut current = lock(&self.current);
        if current.end == 0 {
            return current.number.checked_sub(1);
        }
        let last = current.number;
        (current.number, current.file, current.end) = (last + 1, None, 0);
        Some(last)
    }

    /// The files numbered up to `last` go: kept as spares while there is room, else
    /// deleted.
    pub fn remove_upto(&self, last: u64) -> Result<(), StorageError> {
        let Some(dir) = &self.dir else { return Ok(()) };
        for (number, format) in list(dir)?.files.into_iter().take_while(|(n, _)| *n <= last) {
            let path = dir.join(file_name(number, format));
            let mut spares = lock(&self.spares);
            let small = fs::metadata(&path).map(|m| m.len() <= SPARE_MAX).unwrap_or(false);
            if format == Format::Numbered && spares.len() < SPARES && small {
                fs::rename(&path, dir.join(spare_name(number))).map_err(io)?;
                spares.push(number);
            } else {
                fs::remove_file(&path).map_err(io)?;
            }
        }
        Ok(())
    }

    /// How many log files are left, spares not counted (tests).
    #[cfg(test)]
    pub fn files(&self) -> usize {
        self.dir.as_deref().map_or(0, |dir| list(dir).map(|l| l.files.len()).unwrap_or(0))
    }
}

/// The whole frames of one file, up to the first short or damaged one.
fn read_frames(path: &Path, number: u64, format: Format, batches: &mut Vec<Vec<u8>>) -> Result<(), StorageError> {
    let mut bytes = Vec::new();
    File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(io)?;
    let mut rest = bytes.as_slice();
    while !rest.is_empty() {
        if format == Format::Numbered {
            // Each frame starts a block.
            let at = bytes.len() - rest.len();
            rest = bytes.get(whole_blocks(at)..).unwrap_or_default();
            if rest.is_empty() {
                break;
            }
        }
        let whole = rest.get(..FRAME_HEAD).and_then(|head| {
            let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
            let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
            let batch = rest.get(FRAME_HEAD..FRAME_HEAD.checked_add(len)?)?;
            (checksum(number, format, batch) == crc).then_some((batch, FRAME_HEAD + len))
        });
        let Some((batch, used)) = whole else {
            // A write a crash cut short (never synced, never acknowledged), or what a
            // reused file held before.
            tracing::debug!(file = %path.display(), bytes = rest.len(), "archive log: read up to an incomplete or older frame");
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
    use std::io::Write;

    fn framed(batch: &[u8]) -> Vec<u8> {
        let mut frame = vec![0; FRAME_HEAD];
        frame.extend_from_slice(batch);
        frame
    }

    fn spares(dir: &Path) -> Vec<u64> {
        let mut spares = list(dir).expect("list").spares;
        spares.sort_unstable();
        spares
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
            assert_eq!(log.bytes(), BLOCK as u64, "a frame takes whole blocks");
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

    #[test]
    fn a_spare_is_written_over_and_what_it_held_never_comes_back() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (log, _) = Log::open(Some(dir.path())).expect("open");
        for batch in [&b"old one, longer than what replaces it"[..], b"old two", b"old three"] {
            log.append(&mut framed(batch)).expect("append");
        }
        assert_eq!(log.rotate(), Some(0));
        log.append(&mut framed(b"kept")).expect("append");
        log.remove_upto(0).expect("remove");
        assert_eq!((log.files(), spares(dir.path())), (1, vec![0]), "file 0 is a spare");
        assert_eq!(log.rotate(), Some(1));
        log.append(&mut framed(b"new")).expect("append to the spare");
        assert!(spares(dir.path()).is_empty(), "the spare is file 2 now");
        let reused = fs::metadata(dir.path().join(name(2))).expect("file 2").len();
        assert!(reused > (FRAME_HEAD + 3) as u64, "it still holds its old frames past the new one");
        drop(log);
        let (log, batches) = Log::open(Some(dir.path())).expect("reopen");
        assert_eq!(batches, [b"kept".to_vec(), b"new".to_vec()]);
        // Up to two spares; a third file is deleted.
        log.append(&mut framed(b"after")).expect("append");
        log.remove_upto(3).expect("remove");
        assert_eq!((log.files(), spares(dir.path())), (0, vec![1, 2]));
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 2);
        let (log, batches) = Log::open(Some(dir.path())).expect("reopen");
        assert!(batches.is_empty());
        log.append(&mut framed(b"next")).expect("append");
        let (_, batches) = Log::open(Some(dir.path())).expect("reopen");
        assert_eq!(batches, [b"next".to_vec()]);
    }

    #[test]
    fn a_file_left_by_a_failed_attempt_is_taken_over() {
        // As Linux leaves it when it refuses O_DIRECT, or a spare renamed before a failure.
        let dir = tempfile::tempdir().expect("temporary directory");
        fs::write(dir.path().join(name(0)), b"left over, never a frame").expect("left over");
        let (log, batches) = Log::open(Some(dir.path())).expect("open");
        assert!(batches.is_empty(), "nothing in it checks out");
        drop(log);
        // A log whose next number is 1 finds a file 1 there.
        fs::write(dir.path().join(name(1)), b"").expect("empty file");
        let log =
            Log { dir: Some(dir.path().to_path_buf()), current: Mutex::new(Current::new(1)), spares: Mutex::default() };
        log.append(&mut framed(b"taken over")).expect("append");
        let (_, batches) = Log::open(Some(dir.path())).expect("reopen");
        assert_eq!(batches, [b"taken over".to_vec()]);
    }

    #[test]
    fn files_of_the_older_format_are_read_then_deleted() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut older = Vec::new();
        for batch in [&b"first"[..], b"second"] {
            older.extend_from_slice(&(batch.len() as u32).to_be_bytes());
            older.extend_from_slice(&crc32fast::hash(batch).to_be_bytes());
            older.extend_from_slice(batch);
        }
        fs::write(dir.path().join("0000000000000004.log"), older).expect("older file");
        let (log, batches) = Log::open(Some(dir.path())).expect("open");
        assert_eq!(batches, [b"first".to_vec(), b"second".to_vec()]);
        log.append(&mut framed(b"third")).expect("append");
        assert!(dir.path().join(name(5)).exists());
        log.remove_upto(4).expect("remove");
        assert_eq!((log.files(), spares(dir.path())), (1, vec![]), "an older file is not kept as a spare");
    }
}
