//! Durable on-disk outbox for QoS 1 MQTT events: an append-only segment log plus a
//! persisted ack cursor. An entry is removed only after the broker acknowledged it, so broker
//! outages and process restarts lose nothing; unacknowledged entries are replayed in order.
//!
//! Layout in `dir` (normally `{data_dir}/outbox`):
//! * `{first_index:020}.seg` — segments; each record is
//!   `[len u32 LE][crc32 u32 LE][body]` with
//!   `body = [index u64][flags u8 (bit 0 retain)][qos u8][topic_len u16][topic][id_len u16][event_id][payload]`
//!   (all little-endian; `len` counts the body; the CRC covers the body).
//! * `cursor` — `[next_unacked_index u64 LE][crc32 u32 LE]`: every entry below it has been
//!   acknowledged. Written to a temp file, fsynced and renamed.
//!
//! Policies:
//! * **fsync**: [`Outbox::append`] writes the record to the segment file (so a killed process
//!   loses nothing); [`Outbox::sync`] fsyncs it. The MQTT sink syncs once per batch of
//!   appends before handing them to the broker (group commit), and every 250 ms while the
//!   broker is down, so a power loss can lose at most the batch being written or 250 ms.
//!   The fsync itself runs without the outbox lock, so appends never wait for the disk:
//!   [`Outbox::begin_sync`] (under the lock) takes what is unsynced — handles on the segment
//!   files written since the last sync, whether the directory needs one — and the index up
//!   to which that covers; [`SyncJob::run`] fsyncs (no lock); [`Outbox::finish_sync`]
//!   (under the lock) records the result. Records appended meanwhile stay unsynced for the
//!   next round, and only entries below [`Outbox::synced_below`] are handed to the broker. A
//!   segment rolled over during a flush keeps its handle in the list of files to sync; a
//!   failed fsync puts every file of the job back on it.
//! * **cursor**: persisted lazily (the sink does it every 250 ms and at shutdown). A cursor
//!   that lags only causes duplicates after a restart, never loss; consumers de-duplicate by
//!   `event_id`. Out-of-order acks beyond the cursor are kept in memory only.
//! * **bound**: the segment files together never exceed `max_bytes`. When an append would,
//!   the *new* event is refused with [`OutboxError::Full`] (drop-newest): what is already
//!   queued stays in order and complete, and the caller counts and logs the refusal. Space
//!   comes back as acknowledged segments are deleted. The last `max_bytes / 16` (4 KiB to
//!   1 MiB) is kept for [`Outbox::append_reserved`]: call lifecycle events and the clears of
//!   an ended call's retained topics.
//! * **corruption**: a record with a bad length, CRC or index is skipped on open: the scan
//!   looks for the next intact record after it (length, CRC, index in order, decodable) and
//!   goes on from there, so one damaged record mid-segment costs only itself. With no intact
//!   record after it (a torn write at the end after `kill -9` or power loss) the file is
//!   truncated there. A record found unreadable later, when it is about to be sent, is taken
//!   out of the queue the same way ([`Outbox::set_aside_corrupt`]). In every case the raw
//!   bytes are first copied to `corrupt/` in the outbox directory (`0600`, named
//!   `{segment}-{offset}.bin` or `entry-{index}.bin`) so an operator can recover what they
//!   held, and an error naming the file is logged; open never fails for it. What is kept
//!   there is bounded ([`CORRUPT_MAX_FILES`], [`CORRUPT_MAX_BYTES`], counted across
//!   restarts from what the directory holds): past that the bytes are not kept, only
//!   counted and logged.
//! * **permissions**: the directory is created `0700` (an existing one loses group and other
//!   access, never its sticky or setgid bit), segment and cursor files `0600`: events carry
//!   transcripts. Directories above it are only created (`0700`), never changed.

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The record at `off` of a segment whose first index is `first`, after index `prev`:
/// its index and body length, or why it is not an intact record.
fn parse_record(
    data: &[u8],
    off: usize,
    first: u64,
    prev: Option<u64>,
) -> Result<(u64, usize), String> {
    if data.len() - off < HEADER + 8 {
        return Err("torn record header".into());
    }
    let len = u32::from_le_bytes(data[off..off + 4].try_into().unwrap_or_default()) as usize;
    let crc = u32::from_le_bytes(data[off + 4..off + 8].try_into().unwrap_or_default());
    if !(10..=MAX_RECORD_BYTES).contains(&len) || data.len() - off - HEADER < len {
        return Err(format!("record length {len} invalid or past end of file"));
    }
    let body = &data[off + HEADER..off + HEADER + len];
    // The index first: cheap, and it rules out almost every offset when resynchronising.
    let index = u64::from_le_bytes(body[..8].try_into().unwrap_or_default());
    let in_order = match prev {
        Some(p) => index > p,
        None => index >= first,
    };
    if !in_order {
        return Err(format!("record index {index} out of order"));
    }
    if crc32fast::hash(body) != crc {
        return Err("record CRC mismatch".into());
    }
    if decode_body(body).is_none() {
        return Err(format!("record {index} undecodable"));
    }
    Ok((index, len))
}

/// Creates one of calltone's own directories (`outbox/`, `calls/`, `outbox-set-aside/`) and
/// any missing parents readable by the owner only. An existing one loses group and other
/// access (it holds transcripts), but keeps its sticky and setgid bits: only the `0o077`
/// bits are cleared, and only when one is set.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    create_dir_if_missing(dir)?;
    let mode = fs::metadata(dir)?.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode & !0o077))?;
    }
    Ok(())
}

/// Creates `dir` and any missing parents `0700`; an existing directory is left exactly as it
/// is. For the data directory, which the operator may point at a shared place (`/tmp`, a
/// setgid group directory): calltone tightens only what it creates inside it.
pub fn create_dir_if_missing(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Writes a whole file readable by the owner only (`0600` when it is created).
pub fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents)
}

/// Subdirectory of the outbox where the raw bytes of unreadable records are kept.
pub const CORRUPT_DIR: &str = "corrupt";
/// At most this many files in [`CORRUPT_DIR`]; further corrupt records are counted, not kept.
pub const CORRUPT_MAX_FILES: usize = 256;
/// At most this many bytes in [`CORRUPT_DIR`]; a region that does not fit is cut there.
pub const CORRUPT_MAX_BYTES: u64 = 16 << 20;

/// What became of an unreadable record's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetAside {
    /// Copied to this file (the first `bytes` of it, when the bound cut it).
    Kept { path: PathBuf, bytes: u64 },
    /// Not kept: the bound is reached, or the disk refused (why).
    NotKept(String),
}

/// Largest record accepted (MQTT payloads from calltone are far smaller).
pub const MAX_RECORD_BYTES: usize = 8 << 20;
const HEADER: usize = 8;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    #[error("outbox {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("outbox full: {used} of {max} bytes in use; event {event_id} refused")]
    Full {
        used: u64,
        max: u64,
        event_id: String,
    },
    #[error("outbox record of {0} bytes exceeds the {MAX_RECORD_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("outbox entry {0} is not pending")]
    NotPending(u64),
    #[error("outbox entry {index} is corrupt on disk")]
    Corrupt { index: u64 },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> OutboxError + '_ {
    move |source| OutboxError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One queued event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub index: u64,
    pub topic: String,
    pub event_id: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    pub qos: u8,
}

#[derive(Debug, Clone, Copy)]
struct Loc {
    index: u64,
    segment: u64,
    offset: u64,
    len: u32,
    acked: bool,
}

#[derive(Debug)]
struct Segment {
    first: u64,
    size: u64,
}

/// The outbox. Not thread-safe by itself; the sink keeps it behind a mutex.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    segments: VecDeque<Segment>,
    /// Append handle on the last segment, if it is still being written.
    active: Option<File>,
    readers: HashMap<u64, File>,
    /// Entries at or after the cursor, in index order.
    pending: VecDeque<Loc>,
    /// Entries in `pending` not acknowledged yet.
    unacked: usize,
    next_index: u64,
    cursor: u64,
    persisted_cursor: u64,
    total_bytes: u64,
    dirty: bool,
    new_segment_unsynced: bool,
    /// Earlier segments (by first index) rolled over with records not yet fsynced.
    unsynced_segments: Vec<(u64, File)>,
    /// Entries below this index have been through an fsync (see [`Outbox::synced_below`]).
    synced_below: u64,
    truncations: u64,
    /// Files and bytes in [`CORRUPT_DIR`].
    corrupt_files: usize,
    corrupt_bytes: u64,
    /// Corrupt regions found when opening: kept in [`CORRUPT_DIR`], or only counted.
    corrupt_kept_at_open: u64,
    corrupt_not_kept_at_open: u64,
}

/// An fsync of the outbox prepared by [`Outbox::begin_sync`] under the outbox lock, to run
/// without it ([`SyncJob::run`]) and be reported with [`Outbox::finish_sync`].
#[derive(Debug)]
pub struct SyncJob {
    /// The outbox directory.
    dir: PathBuf,
    /// Segment files with unsynced records, by first index (cloned handles).
    files: Vec<(u64, File)>,
    /// Whether the directory needs an fsync (a segment was created since the last one).
    sync_dir: bool,
    /// Every entry below this index was written before the job was taken.
    upto: u64,
}

impl SyncJob {
    /// fsyncs the files and the directory. Blocking disk I/O: call it without the lock.
    pub fn run(&self) -> Result<(), OutboxError> {
        for (first, f) in &self.files {
            f.sync_data()
                .map_err(io_err(&self.dir.join(seg_name(*first))))?;
        }
        if self.sync_dir {
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err(&self.dir))?;
        }
        Ok(())
    }
}

/// A cursor write prepared by [`Outbox::cursor_to_persist`].
#[derive(Debug)]
pub struct CursorWrite {
    dir: PathBuf,
    cursor: u64,
}

impl CursorWrite {
    /// Writes the cursor to a temp file, fsyncs it and renames it over `cursor`. Blocking
    /// disk I/O: call it without the lock.
    pub fn run(&self) -> Result<(), OutboxError> {
        let tmp = self.dir.join("cursor.tmp");
        let path = self.dir.join("cursor");
        let mut buf = self.cursor.to_le_bytes().to_vec();
        let crc = crc32fast::hash(&buf);
        buf.extend_from_slice(&crc.to_le_bytes());
        let write = || -> io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&buf)?;
            f.sync_data()?;
            fs::rename(&tmp, &path)
        };
        write().map_err(io_err(&path))
    }
}

fn seg_name(first: u64) -> String {
    format!("{first:020}.seg")
}

impl Outbox {
    /// Opens (or creates) the outbox in `dir`, bounded to `max_bytes` of segment files.
    /// Truncates a corrupt tail instead of failing.
    pub fn open(dir: impl Into<PathBuf>, max_bytes: u64) -> Result<Self, OutboxError> {
        let dir = dir.into();
        create_private_dir(&dir).map_err(io_err(&dir))?;
        let cursor = read_cursor(&dir);
        let mut firsts: Vec<u64> = fs::read_dir(&dir)
            .map_err(io_err(&dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".seg")?.parse::<u64>().ok()
            })
            .collect();
        firsts.sort_unstable();

        let mut ob = Outbox {
            segment_bytes: (max_bytes / 8).clamp(4096, 16 << 20),
            dir,
            max_bytes,
            segments: VecDeque::new(),
            active: None,
            readers: HashMap::new(),
            pending: VecDeque::new(),
            unacked: 0,
            next_index: cursor,
            cursor,
            persisted_cursor: cursor,
            total_bytes: 0,
            dirty: false,
            new_segment_unsynced: false,
            unsynced_segments: Vec::new(),
            synced_below: 0,
            truncations: 0,
            corrupt_files: 0,
            corrupt_bytes: 0,
            corrupt_kept_at_open: 0,
            corrupt_not_kept_at_open: 0,
        };
        if let Ok(rd) = fs::read_dir(ob.dir.join(CORRUPT_DIR)) {
            for e in rd.flatten() {
                ob.corrupt_files += 1;
                ob.corrupt_bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
        let mut last_index: Option<u64> = None;
        for first in firsts {
            let path = ob.dir.join(seg_name(first));
            let (size, locs) = ob.scan_segment(&path, first, last_index)?;
            if let Some(l) = locs.last() {
                last_index = Some(l.index);
            }
            ob.next_index = ob.next_index.max(first);
            ob.segments.push_back(Segment { first, size });
            ob.total_bytes += size;
            ob.pending
                .extend(locs.into_iter().filter(|l| l.index >= cursor));
        }
        if let Some(l) = last_index {
            ob.next_index = ob.next_index.max(l + 1);
        }
        // A cursor ahead of everything on disk (segments deleted after acks): start there.
        ob.cursor = ob
            .pending
            .front()
            .map(|l| l.index)
            .unwrap_or(ob.next_index)
            .max(cursor);
        ob.unacked = ob.pending.len();
        // What is on disk at open is what a restart has; nothing to wait for.
        ob.synced_below = ob.next_index;
        ob.drop_acked_segments()?;
        // Keep appending to the last segment if it has room.
        if let Some(last) = ob.segments.back() {
            if last.size < ob.segment_bytes {
                let path = ob.dir.join(seg_name(last.first));
                ob.active = Some(
                    OpenOptions::new()
                        .append(true)
                        .open(&path)
                        .map_err(io_err(&path))?,
                );
            }
        }
        Ok(ob)
    }

    /// Reads every record of a segment, truncating at the first bad one.
    fn scan_segment(
        &mut self,
        path: &Path,
        first: u64,
        mut prev: Option<u64>,
    ) -> Result<(u64, Vec<Loc>), OutboxError> {
        let mut data = Vec::new();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut data))
            .map_err(io_err(path))?;
        let mut locs = Vec::new();
        let mut off = 0usize;
        let mut bad: Option<String> = None;
        while off < data.len() {
            let (index, len) = match parse_record(&data, off, first, prev) {
                Ok(r) => r,
                Err(why) => {
                    // Resynchronise on the next intact record, if there is one.
                    match (off + 1..data.len())
                        .find(|&p| parse_record(&data, p, first, prev).is_ok())
                    {
                        Some(next) => {
                            tracing::warn!(
                                path = %path.display(),
                                offset = off,
                                skipped_bytes = next - off,
                                reason = %why,
                                "outbox: corrupt record skipped; the records after it are kept"
                            );
                            self.set_aside_at_open(first, off, &data[off..next], &why);
                            self.truncations += 1;
                            off = next;
                            continue;
                        }
                        None => {
                            bad = Some(why);
                            break;
                        }
                    }
                }
            };
            locs.push(Loc {
                index,
                segment: first,
                offset: off as u64,
                len: (HEADER + len) as u32,
                acked: false,
            });
            prev = Some(index);
            off += HEADER + len;
        }
        if let Some(why) = bad {
            self.set_aside_at_open(first, off, &data[off..], &why);
            tracing::warn!(
                path = %path.display(),
                offset = off,
                dropped_bytes = data.len() - off,
                reason = %why,
                "outbox: corrupt segment tail truncated"
            );
            let f = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(io_err(path))?;
            f.set_len(off as u64).map_err(io_err(path))?;
            f.sync_all().map_err(io_err(path))?;
            self.truncations += 1;
        }
        Ok((off as u64, locs))
    }

    /// Keeps a corrupt region found by the open-time scan (see [`Outbox::keep_corrupt`]).
    fn set_aside_at_open(&mut self, segment: u64, offset: usize, bytes: &[u8], why: &str) {
        let name = format!("{segment:020}-{offset:010}.bin");
        match self.keep_corrupt(&name, bytes) {
            SetAside::Kept { path, bytes: kept } => {
                self.corrupt_kept_at_open += 1;
                tracing::error!(path = %path.display(), bytes = kept, of_bytes = bytes.len(), segment = %seg_name(segment), offset, reason = %why, "outbox: unreadable record taken out of the queue; its raw bytes are kept for recovery");
            }
            SetAside::NotKept(not) => {
                self.corrupt_not_kept_at_open += 1;
                tracing::error!(bytes = bytes.len(), segment = %seg_name(segment), offset, reason = %why, not_kept = %not, "outbox: unreadable record taken out of the queue; its bytes are NOT kept");
            }
        }
    }

    /// Copies the raw bytes of an unreadable record to `{dir}/corrupt/{name}` (`0600`), within
    /// [`CORRUPT_MAX_FILES`] and [`CORRUPT_MAX_BYTES`]. The same name again (the same skipped
    /// region seen by a later open) is kept once.
    fn keep_corrupt(&mut self, name: &str, bytes: &[u8]) -> SetAside {
        let dir = self.dir.join(CORRUPT_DIR);
        let path = dir.join(name);
        if path.exists() {
            return SetAside::Kept {
                bytes: fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
                path,
            };
        }
        let room = CORRUPT_MAX_BYTES.saturating_sub(self.corrupt_bytes);
        if self.corrupt_files >= CORRUPT_MAX_FILES || room == 0 {
            return SetAside::NotKept(format!(
                "{} already holds {} files, {} bytes (the bound is {CORRUPT_MAX_FILES} files, {CORRUPT_MAX_BYTES} bytes)",
                dir.display(),
                self.corrupt_files,
                self.corrupt_bytes
            ));
        }
        let n = (bytes.len() as u64).min(room);
        let write = create_private_dir(&dir).and_then(|()| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            f.write_all(&bytes[..n as usize])?;
            f.sync_data()
        });
        match write {
            Ok(()) => {
                self.corrupt_files += 1;
                self.corrupt_bytes += n;
                SetAside::Kept { path, bytes: n }
            }
            Err(e) => {
                let _ = fs::remove_file(&path);
                SetAside::NotKept(format!("{}: {e}", path.display()))
            }
        }
    }

    /// Takes a pending entry that cannot be read back ([`Outbox::read`] failed) out of the
    /// queue: its raw bytes as stored are copied to [`CORRUPT_DIR`] first (see
    /// [`Outbox::keep_corrupt`]), then it is acknowledged so delivery goes on past it.
    pub fn set_aside_corrupt(&mut self, index: u64) -> Result<SetAside, OutboxError> {
        let i = self
            .pending
            .binary_search_by_key(&index, |l| l.index)
            .map_err(|_| OutboxError::NotPending(index))?;
        let loc = self.pending[i];
        let path = self.dir.join(seg_name(loc.segment));
        let mut buf = vec![0u8; loc.len as usize];
        let kept = match File::open(&path).and_then(|f| f.read_exact_at(&mut buf, loc.offset)) {
            Ok(()) => self.keep_corrupt(&format!("entry-{index:020}.bin"), &buf),
            Err(e) => SetAside::NotKept(format!("{}: {e}", path.display())),
        };
        self.ack(index)?;
        Ok(kept)
    }

    /// Corrupt regions found when this outbox was opened whose bytes were kept in
    /// [`CORRUPT_DIR`], and those that were only counted (the bound, or a disk error).
    pub fn corrupt_at_open(&self) -> (u64, u64) {
        (self.corrupt_kept_at_open, self.corrupt_not_kept_at_open)
    }

    /// Queues an event. The record is in the segment file when this returns (durable against
    /// a process kill); call [`Outbox::sync`] to make it durable against power loss.
    /// Refused with [`OutboxError::Full`] once the segments would pass `max_bytes` less the
    /// reserve (see [`Outbox::append_reserved`]).
    pub fn append(
        &mut self,
        topic: &str,
        event_id: &str,
        payload: &[u8],
        qos: u8,
        retain: bool,
    ) -> Result<u64, OutboxError> {
        self.append_within(topic, event_id, payload, qos, retain, self.reserve())
    }

    /// [`Outbox::append`] for the few records that keep the broker's view of calls right
    /// (`call_started`, `call_ended`, the clears of an ended call's retained topics): these
    /// may also use the reserve, the last `max_bytes / 16` (4 KiB to 1 MiB), so a call that
    /// ends while ordinary events fill the outbox is still ended on the broker.
    pub fn append_reserved(
        &mut self,
        topic: &str,
        event_id: &str,
        payload: &[u8],
        qos: u8,
        retain: bool,
    ) -> Result<u64, OutboxError> {
        self.append_within(topic, event_id, payload, qos, retain, 0)
    }

    /// Bytes kept free of ordinary events for [`Outbox::append_reserved`].
    pub fn reserve(&self) -> u64 {
        (self.max_bytes / 16)
            .clamp(4096, 1 << 20)
            .min(self.max_bytes / 2)
    }

    fn append_within(
        &mut self,
        topic: &str,
        event_id: &str,
        payload: &[u8],
        qos: u8,
        retain: bool,
        reserve: u64,
    ) -> Result<u64, OutboxError> {
        let index = self.next_index;
        let body = encode_body(index, topic, event_id, payload, qos, retain);
        if body.len() > MAX_RECORD_BYTES
            || topic.len() > u16::MAX as usize
            || event_id.len() > u16::MAX as usize
        {
            return Err(OutboxError::TooLarge(body.len()));
        }
        let rec_len = (HEADER + body.len()) as u64;
        if self.total_bytes + rec_len > self.max_bytes - reserve {
            return Err(OutboxError::Full {
                used: self.total_bytes,
                max: self.max_bytes,
                event_id: event_id.to_string(),
            });
        }
        let needs_roll = match self.segments.back() {
            None => true,
            Some(s) => {
                self.active.is_none() || (s.size > 0 && s.size + rec_len > self.segment_bytes)
            }
        };
        if needs_roll {
            self.roll(index)?;
        }
        let mut rec = Vec::with_capacity(rec_len as usize);
        rec.extend_from_slice(&(body.len() as u32).to_le_bytes());
        rec.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        rec.extend_from_slice(&body);
        let seg = self
            .segments
            .back_mut()
            .expect("roll() leaves an active segment");
        let path = self.dir.join(seg_name(seg.first));
        let file = self
            .active
            .as_mut()
            .expect("roll() leaves an active segment");
        if let Err(e) = file.write_all(&rec) {
            // Cut a partial record off so later appends stay readable.
            let _ = file.set_len(seg.size);
            return Err(io_err(&path)(e));
        }
        self.pending.push_back(Loc {
            index,
            segment: seg.first,
            offset: seg.size,
            len: rec_len as u32,
            acked: false,
        });
        seg.size += rec_len;
        self.unacked += 1;
        self.total_bytes += rec_len;
        self.next_index += 1;
        self.dirty = true;
        Ok(index)
    }

    fn roll(&mut self, first: u64) -> Result<(), OutboxError> {
        // The old segment's unsynced records are fsynced by the next sync, not here under
        // the lock.
        if let (Some(f), Some(seg)) = (self.active.take(), self.segments.back()) {
            if self.dirty {
                self.keep_unsynced(seg.first, f);
            }
        }
        self.dirty = false;
        let path = self.dir.join(seg_name(first));
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(&path))?;
        let size = f.metadata().map(|m| m.len()).unwrap_or(0);
        self.active = Some(f);
        self.segments.push_back(Segment { first, size });
        self.total_bytes += size;
        self.new_segment_unsynced = true;
        Ok(())
    }

    fn keep_unsynced(&mut self, first: u64, f: File) {
        if !self.unsynced_segments.iter().any(|(s, _)| *s == first) {
            self.unsynced_segments.push((first, f));
        }
    }

    /// fsyncs appended records (and the directory after a new segment was created), holding
    /// `&mut self` throughout. The sink uses [`Outbox::begin_sync`] and friends instead, so
    /// that appends do not wait for the disk.
    pub fn sync(&mut self) -> Result<(), OutboxError> {
        match self.begin_sync()? {
            None => Ok(()),
            Some(job) => {
                let r = job.run();
                self.finish_sync(job, r)
            }
        }
    }

    /// Takes what awaits an fsync (see [`SyncJob`]) and marks it clean, so that records
    /// appended from now on are dirty again; `None` when nothing awaits one. Cheap: no disk
    /// I/O beyond duplicating a file descriptor. One job at a time.
    pub fn begin_sync(&mut self) -> Result<Option<SyncJob>, OutboxError> {
        if !self.needs_sync() {
            self.synced_below = self.next_index;
            return Ok(None);
        }
        let mut files = std::mem::take(&mut self.unsynced_segments);
        if self.dirty {
            if let (Some(f), Some(seg)) = (&self.active, self.segments.back()) {
                let path = self.dir.join(seg_name(seg.first));
                let clone = match f.try_clone() {
                    Ok(c) => c,
                    Err(e) => {
                        self.unsynced_segments = files;
                        return Err(io_err(&path)(e));
                    }
                };
                if !files.iter().any(|(s, _)| *s == seg.first) {
                    files.push((seg.first, clone));
                }
            }
        }
        self.dirty = false;
        Ok(Some(SyncJob {
            dir: self.dir.clone(),
            files,
            sync_dir: std::mem::take(&mut self.new_segment_unsynced),
            upto: self.next_index,
        }))
    }

    /// Records how `job` went. On success its entries count as synced. On failure its files
    /// (and the directory) are unsynced again, to be retried by the next sync, and the error
    /// is returned; its entries are still released to the broker, as before this lock-free
    /// flush existed: a disk that refuses fsync is no reason to hold events back from the
    /// one place that could still keep them.
    pub fn finish_sync(
        &mut self,
        job: SyncJob,
        result: Result<(), OutboxError>,
    ) -> Result<(), OutboxError> {
        self.synced_below = self.synced_below.max(job.upto);
        if result.is_err() {
            for (first, f) in job.files {
                self.keep_unsynced(first, f);
            }
            if job.sync_dir {
                self.new_segment_unsynced = true;
            }
        }
        result
    }

    /// Entries below this index have been through an fsync (or were on disk at open): the
    /// only ones the sink may hand to the broker.
    pub fn synced_below(&self) -> u64 {
        self.synced_below
    }

    /// Marks an entry acknowledged; advances the cursor over the acknowledged prefix and
    /// deletes segments that hold only acknowledged entries.
    pub fn ack(&mut self, index: u64) -> Result<(), OutboxError> {
        if index < self.cursor {
            return Ok(());
        }
        if let Ok(i) = self.pending.binary_search_by_key(&index, |l| l.index) {
            if !self.pending[i].acked {
                self.pending[i].acked = true;
                self.unacked -= 1;
            }
        }
        while self.pending.front().is_some_and(|l| l.acked) {
            self.pending.pop_front();
        }
        self.cursor = self
            .pending
            .front()
            .map(|l| l.index)
            .unwrap_or(self.next_index);
        self.drop_acked_segments()
    }

    fn drop_acked_segments(&mut self) -> Result<(), OutboxError> {
        loop {
            let n = self.segments.len();
            let Some(front) = self.segments.front() else {
                return Ok(());
            };
            // Everything in the front segment is below the next segment's first index (or
            // below next_index if it is the last one).
            let end = if n > 1 {
                self.segments[1].first
            } else {
                self.next_index
            };
            if end > self.cursor || (n == 1 && front.size == 0) {
                return Ok(());
            }
            let first = front.first;
            let size = front.size;
            if n == 1 {
                self.active = None;
            }
            self.readers.remove(&first);
            let path = self.dir.join(seg_name(first));
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&path)(e)),
            }
            self.segments.pop_front();
            self.total_bytes -= size;
        }
    }

    /// Writes the cursor if it moved since the last call, holding `&mut self` throughout. The
    /// sink uses [`Outbox::cursor_to_persist`] instead, so appends do not wait for the disk.
    pub fn persist_cursor(&mut self) -> Result<(), OutboxError> {
        match self.cursor_to_persist() {
            None => Ok(()),
            Some(w) => {
                w.run()?;
                self.cursor_persisted(&w);
                Ok(())
            }
        }
    }

    /// The cursor write to do (without the lock: [`CursorWrite::run`]) if the cursor moved
    /// since it was last persisted; report it with [`Outbox::cursor_persisted`]. One at a
    /// time.
    pub fn cursor_to_persist(&self) -> Option<CursorWrite> {
        (self.cursor != self.persisted_cursor).then(|| CursorWrite {
            dir: self.dir.clone(),
            cursor: self.cursor,
        })
    }

    /// Records a cursor write that succeeded.
    pub fn cursor_persisted(&mut self, w: &CursorWrite) {
        self.persisted_cursor = w.cursor;
    }

    /// Reads a pending entry back from disk.
    pub fn read(&mut self, index: u64) -> Result<OutboxEntry, OutboxError> {
        let i = self
            .pending
            .binary_search_by_key(&index, |l| l.index)
            .map_err(|_| OutboxError::NotPending(index))?;
        let loc = self.pending[i];
        let path = self.dir.join(seg_name(loc.segment));
        let f = match self.readers.entry(loc.segment) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(File::open(&path).map_err(io_err(&path))?)
            }
        };
        let mut buf = vec![0u8; loc.len as usize];
        f.read_exact_at(&mut buf, loc.offset)
            .map_err(io_err(&path))?;
        let crc = u32::from_le_bytes(buf[4..8].try_into().unwrap_or_default());
        let body = &buf[HEADER..];
        if crc32fast::hash(body) != crc {
            return Err(OutboxError::Corrupt { index });
        }
        // A record that is intact but not the one asked for (the file changed under this
        // process) must never be published in its place.
        match decode_body(body) {
            Some(e) if e.index == index => Ok(e),
            _ => Err(OutboxError::Corrupt { index }),
        }
    }

    /// The first pending, unacknowledged index after `after` (from the start when `None`).
    pub fn next_pending_after(&self, after: Option<u64>) -> Option<u64> {
        let start = match after {
            None => 0,
            Some(a) => self.pending.partition_point(|l| l.index <= a),
        };
        self.pending
            .range(start..)
            .find(|l| !l.acked)
            .map(|l| l.index)
    }

    /// Whether appended records await [`Outbox::sync`].
    pub fn needs_sync(&self) -> bool {
        self.dirty || self.new_segment_unsynced || !self.unsynced_segments.is_empty()
    }

    /// Whether the cursor moved since it was last persisted.
    pub fn cursor_moved(&self) -> bool {
        self.cursor != self.persisted_cursor
    }

    /// Unacknowledged entries.
    pub fn depth(&self) -> usize {
        self.unacked
    }

    /// Bytes of segment files on disk.
    pub fn bytes(&self) -> u64 {
        self.total_bytes
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Corrupt tails truncated when this outbox was opened.
    pub fn truncations(&self) -> u64 {
        self.truncations
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn read_cursor(dir: &Path) -> u64 {
    let path = dir.join("cursor");
    match fs::read(&path) {
        Ok(b) if b.len() == 12 => {
            let crc = u32::from_le_bytes(b[8..12].try_into().unwrap_or_default());
            if crc32fast::hash(&b[..8]) == crc {
                return u64::from_le_bytes(b[..8].try_into().unwrap_or_default());
            }
            tracing::warn!(path = %path.display(), "outbox: cursor file corrupt; replaying every stored entry");
            0
        }
        Ok(_) => {
            tracing::warn!(path = %path.display(), "outbox: cursor file has the wrong size; replaying every stored entry");
            0
        }
        Err(_) => 0,
    }
}

fn encode_body(
    index: u64,
    topic: &str,
    event_id: &str,
    payload: &[u8],
    qos: u8,
    retain: bool,
) -> Vec<u8> {
    let mut b = Vec::with_capacity(14 + topic.len() + event_id.len() + payload.len());
    b.extend_from_slice(&index.to_le_bytes());
    b.push(retain as u8);
    b.push(qos);
    b.extend_from_slice(&(topic.len() as u16).to_le_bytes());
    b.extend_from_slice(topic.as_bytes());
    b.extend_from_slice(&(event_id.len() as u16).to_le_bytes());
    b.extend_from_slice(event_id.as_bytes());
    b.extend_from_slice(payload);
    b
}

fn decode_body(b: &[u8]) -> Option<OutboxEntry> {
    let index = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
    let flags = *b.get(8)?;
    let qos = *b.get(9)?;
    let tl = u16::from_le_bytes(b.get(10..12)?.try_into().ok()?) as usize;
    let topic = std::str::from_utf8(b.get(12..12 + tl)?).ok()?.to_string();
    let p = 12 + tl;
    let il = u16::from_le_bytes(b.get(p..p + 2)?.try_into().ok()?) as usize;
    let event_id = std::str::from_utf8(b.get(p + 2..p + 2 + il)?)
        .ok()?
        .to_string();
    let payload = b.get(p + 2 + il..)?.to_vec();
    Some(OutboxEntry {
        index,
        topic,
        event_id,
        payload,
        retain: flags & 1 != 0,
        qos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An outbox directory holding records 0..n, synced and closed.
    fn written(n: u64) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let mut ob = Outbox::open(dir.path(), 1 << 20).unwrap();
        for i in 0..n {
            add(&mut ob, i);
        }
        ob.sync().unwrap();
        dir
    }

    fn add(ob: &mut Outbox, n: u64) -> u64 {
        ob.append(
            &format!("t/{n}"),
            &format!("c:{n}"),
            format!("payload {n}").as_bytes(),
            1,
            false,
        )
        .unwrap()
    }

    fn pending(ob: &Outbox) -> Vec<u64> {
        let mut v = vec![];
        let mut after = None;
        while let Some(i) = ob.next_pending_after(after) {
            v.push(i);
            after = Some(i);
        }
        v
    }

    #[test]
    fn append_ack_reopen_replays_unacked_in_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut ob = Outbox::open(dir.path(), 1 << 20).unwrap();
            for n in 0..5 {
                assert_eq!(add(&mut ob, n), n);
            }
            ob.sync().unwrap();
            ob.ack(0).unwrap();
            ob.ack(1).unwrap();
            ob.ack(3).unwrap(); // out of order: kept in memory only
            assert_eq!(pending(&ob), vec![2, 4]);
            assert_eq!(ob.depth(), 2);
            ob.persist_cursor().unwrap();
            let e = ob.read(4).unwrap();
            assert_eq!(e.topic, "t/4");
            assert_eq!(e.event_id, "c:4");
            assert_eq!(e.payload, b"payload 4");
            assert_eq!(e.qos, 1);
        }
        let mut ob = Outbox::open(dir.path(), 1 << 20).unwrap();
        // 3 comes back: its ack was beyond the persisted cursor (a duplicate, never a loss).
        assert_eq!(pending(&ob), vec![2, 3, 4]);
        assert_eq!(ob.read(2).unwrap().event_id, "c:2");
        assert_eq!(add(&mut ob, 5), 5, "indices continue after reopen");
        for i in 2..=5 {
            ob.ack(i).unwrap();
        }
        assert_eq!(ob.depth(), 0);
        ob.persist_cursor().unwrap();
        drop(ob);
        let ob = Outbox::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(pending(&ob), Vec::<u64>::new());
        assert_eq!(ob.bytes(), 0, "fully acknowledged segments are deleted");
    }

    #[test]
    fn torn_tail_is_truncated_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let seg;
        {
            let mut ob = Outbox::open(dir.path(), 1 << 20).unwrap();
            for n in 0..3 {
                add(&mut ob, n);
            }
            ob.sync().unwrap();
            seg = dir.path().join(seg_name(0));
        }
        // Simulate a torn write: half a record at the end.
        let full = fs::read(&seg).unwrap();
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&full[..full.len() / 3 / 2]).unwrap();
        drop(f);
        let mut ob = Outbox::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(ob.truncations(), 1);
        assert_eq!(pending(&ob), vec![0, 1, 2]);
        assert_eq!(fs::read(&seg).unwrap().len(), full.len());
        assert_eq!(add(&mut ob, 3), 3);
        drop(ob);

        // A flipped bit in the last record: that record is dropped, earlier ones survive.
        let mut bytes = fs::read(&seg).unwrap();
        let n = bytes.len();
        bytes[n - 2] ^= 0x40;
        fs::write(&seg, &bytes).unwrap();
        let ob = Outbox::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(pending(&ob), vec![0, 1, 2]);
    }

    #[test]
    fn a_corrupt_record_mid_segment_loses_only_itself() {
        let dir = written(5);
        let seg = dir.path().join(seg_name(0));
        let mut bytes = fs::read(&seg).unwrap();
        let rec = bytes.len() / 5;
        // A flipped bit in record 1's payload, and record 3's length field smashed.
        bytes[rec + rec - 3] ^= 0x10;
        bytes[3 * rec..3 * rec + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        fs::write(&seg, &bytes).unwrap();
        let mut ob = Outbox::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(
            pending(&ob),
            vec![0, 2, 4],
            "the good records after each are kept"
        );
        assert_eq!(ob.truncations(), 2);
        assert_eq!(ob.read(4).unwrap().event_id, "c:4");
        assert_eq!(
            fs::read(&seg).unwrap().len(),
            bytes.len(),
            "nothing cut off"
        );
        assert_eq!(
            add(&mut ob, 5),
            5,
            "appends continue after the last good record"
        );
        drop(ob);
        let ob = Outbox::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(pending(&ob), vec![0, 2, 4, 5]);
    }

    #[test]
    fn records_appended_during_a_flush_stay_unsynced_for_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut ob = Outbox::open(dir.path(), 1 << 20).unwrap();
        add(&mut ob, 0);
        add(&mut ob, 1);
        let job = ob.begin_sync().unwrap().expect("records to sync");
        assert_eq!(job.upto, 2);
        assert!(job.sync_dir, "a new segment's directory entry is synced");
        // Appended while the fsync runs without the lock.
        add(&mut ob, 2);
        let r = job.run();
        ob.finish_sync(job, r).unwrap();
        assert_eq!(
            ob.synced_below(),
            2,
            "record 2 is not covered by that fsync"
        );
        assert!(ob.needs_sync(), "record 2 is still dirty");
        let job = ob.begin_sync().unwrap().expect("record 2 to sync");
        assert_eq!(job.files.len(), 1);
        assert!(!job.sync_dir);
        let r = job.run();
        ob.finish_sync(job, r).unwrap();
        assert_eq!(ob.synced_below(), 3);
        assert!(!ob.needs_sync());
        assert!(ob.begin_sync().unwrap().is_none());
    }

    #[test]
    fn a_segment_rolled_during_a_flush_is_still_synced() {
        let dir = tempfile::tempdir().unwrap();
        let mut ob = Outbox::open(dir.path(), 64 * 1024).unwrap(); // 8 KiB segments
        ob.append("t", "c:0", &[1u8; 500], 1, false).unwrap();
        ob.sync().unwrap();
        let job = ob.begin_sync().unwrap();
        assert!(job.is_none(), "nothing to sync");
        // A flush starts, then records fill segment 0 and roll over to new ones.
        ob.append("t", "c:1", &[1u8; 500], 1, false).unwrap();
        let job = ob.begin_sync().unwrap().expect("record 1");
        let mut n = 2;
        while ob.segments.len() < 3 {
            ob.append("t", &format!("c:{n}"), &[1u8; 500], 1, false)
                .unwrap();
            n += 1;
        }
        let r = job.run();
        ob.finish_sync(job, r).unwrap();
        assert!(ob.needs_sync());
        let job = ob.begin_sync().unwrap().expect("the rolled segments");
        let firsts: Vec<u64> = job.files.iter().map(|(f, _)| *f).collect();
        let expect: Vec<u64> = ob.segments.iter().map(|s| s.first).collect();
        assert_eq!(
            firsts, expect,
            "the old segment's records written after the flush began, and the new ones"
        );
        assert!(job.sync_dir, "the new segments' directory entries");
        assert_eq!(job.upto, n);
        let r = job.run();
        ob.finish_sync(job, r).unwrap();
        assert!(!ob.needs_sync());
        assert_eq!(ob.synced_below(), n);
    }

    #[test]
    fn a_failed_flush_leaves_its_records_unsynced() {
        let dir = tempfile::tempdir().unwrap();
        let mut ob = Outbox::open(dir.path(), 1 << 20).unwrap();
        add(&mut ob, 0);
        let job = ob.begin_sync().unwrap().unwrap();
        assert!(!ob.needs_sync(), "taken by the job");
        let failed = Err(OutboxError::Io {
            path: dir.path().into(),
            source: io::Error::other("EIO"),
        });
        assert!(ob.finish_sync(job, failed).is_err());
        assert!(ob.needs_sync(), "dirty again");
        let job = ob.begin_sync().unwrap().unwrap();
        assert_eq!(job.files.len(), 1, "the same segment, once");
        assert!(job.sync_dir, "the directory too");
        let r = job.run();
        ob.finish_sync(job, r).unwrap();
        assert!(!ob.needs_sync());
    }

    #[test]
    fn corrupt_records_are_kept_aside_for_recovery_within_a_bound() {
        use std::os::unix::fs::PermissionsExt;
        let dir = written(4);
        let seg = dir.path().join(seg_name(0));
        let mut bytes = fs::read(&seg).unwrap();
        let rec = bytes.len() / 4;
        bytes[rec + rec - 3] ^= 0x10; // record 1's payload
        fs::write(&seg, &bytes).unwrap();
        let ob = Outbox::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(pending(&ob), vec![0, 2, 3]);
        assert_eq!(ob.corrupt_at_open(), (1, 0));
        let kept = dir
            .path()
            .join(CORRUPT_DIR)
            .join(format!("{:020}-{:010}.bin", 0, rec));
        assert_eq!(fs::read(&kept).unwrap(), &bytes[rec..2 * rec]);
        assert_eq!(
            fs::metadata(&kept).unwrap().permissions().mode() & 0o777,
            0o600
        );
        drop(ob);
        // The same damaged region seen again by the next open is kept once.
        let ob = Outbox::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(ob.corrupt_at_open(), (1, 0));
        assert_eq!(
            fs::read_dir(dir.path().join(CORRUPT_DIR)).unwrap().count(),
            1
        );
        drop(ob);

        // Damaged after open, found when it is read for sending.
        let mut ob = Outbox::open(dir.path(), 1 << 20).unwrap();
        let mut bytes = fs::read(&seg).unwrap();
        let at = bytes.len() - 3; // record 3's payload
        bytes[at] ^= 0x01;
        fs::write(&seg, &bytes).unwrap();
        assert!(matches!(ob.read(3), Err(OutboxError::Corrupt { index: 3 })));
        let SetAside::Kept { path, bytes: n } = ob.set_aside_corrupt(3).unwrap() else {
            panic!("not kept")
        };
        assert_eq!(n as usize, rec);
        assert_eq!(fs::read(&path).unwrap(), &bytes[bytes.len() - rec..]);
        assert_eq!(pending(&ob), vec![0, 2], "taken out of the queue");

        // The bound: past it, nothing more is written.
        ob.corrupt_files = CORRUPT_MAX_FILES;
        assert!(matches!(ob.set_aside_corrupt(2), Ok(SetAside::NotKept(_))));
        assert_eq!(pending(&ob), vec![0]);
        ob.corrupt_files = 0;
        ob.corrupt_bytes = CORRUPT_MAX_BYTES - 5;
        add(&mut ob, 4);
        let SetAside::Kept { path, bytes: n } = ob.set_aside_corrupt(4).unwrap() else {
            panic!("not kept")
        };
        assert_eq!(
            (n, fs::metadata(&path).unwrap().len()),
            (5, 5),
            "cut at the bound"
        );
        assert!(matches!(ob.set_aside_corrupt(0), Ok(SetAside::NotKept(_))));
        assert_eq!(ob.depth(), 0);
    }

    #[test]
    fn the_outbox_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("outbox");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let mut ob = Outbox::open(&dir, 1 << 20).unwrap();
        add(&mut ob, 0);
        ob.ack(0).unwrap();
        add(&mut ob, 1);
        ob.persist_cursor().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700, "an existing directory is tightened");
        let shared = base.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
        create_dir_if_missing(&shared).unwrap();
        let full = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(
            full(&shared),
            0o1777,
            "an existing data_dir is left as it is"
        );
        create_private_dir(&shared).unwrap();
        assert_eq!(full(&shared), 0o1700, "the sticky bit survives tightening");
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
        let fresh = base.path().join("a/b/outbox");
        Outbox::open(&fresh, 1 << 20).unwrap();
        assert_eq!(mode(&fresh), 0o700);
    }

    #[test]
    fn a_record_with_another_index_is_corrupt_not_published() {
        let dir = tempfile::tempdir().unwrap();
        let mut ob = Outbox::open(dir.path(), 1 << 20).unwrap();
        add(&mut ob, 0);
        add(&mut ob, 1);
        ob.sync().unwrap();
        // Both records intact (CRC good), same length, but in each other's place: what a
        // second writer appending to the same segment does to this process's offsets.
        let seg = dir.path().join(seg_name(0));
        let bytes = fs::read(&seg).unwrap();
        let half = bytes.len() / 2;
        let swapped = [&bytes[half..], &bytes[..half]].concat();
        fs::write(&seg, swapped).unwrap();
        assert!(matches!(ob.read(0), Err(OutboxError::Corrupt { index: 0 })));
        assert!(matches!(ob.read(1), Err(OutboxError::Corrupt { index: 1 })));
    }

    #[test]
    fn bound_refuses_newest_and_frees_space_after_acks() {
        let dir = tempfile::tempdir().unwrap();
        let mut ob = Outbox::open(dir.path(), 8192).unwrap();
        let payload = vec![7u8; 900];
        let mut accepted = vec![];
        let mut refused = 0;
        for n in 0..20 {
            match ob.append("t", &format!("c:{n}"), &payload, 1, false) {
                Ok(i) => accepted.push(i),
                Err(OutboxError::Full { .. }) => refused += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(refused > 0 && !accepted.is_empty());
        assert!(ob.bytes() <= 8192);
        assert_eq!(
            accepted,
            (0..accepted.len() as u64).collect::<Vec<_>>(),
            "oldest are kept"
        );
        for i in &accepted {
            ob.ack(*i).unwrap();
        }
        assert_eq!(ob.bytes(), 0);
        assert!(ob.append("t", "c:new", &payload, 1, false).is_ok());
    }

    #[test]
    fn lifecycle_records_may_use_the_reserve() {
        let dir = tempfile::tempdir().unwrap();
        let mut ob = Outbox::open(dir.path(), 64 * 1024).unwrap();
        assert_eq!(ob.reserve(), 4096);
        let mut n = 0;
        while ob
            .append("t", &format!("c:{n}"), &[0u8; 300], 1, false)
            .is_ok()
        {
            n += 1;
        }
        // Down to the last bytes: the smallest ordinary record is refused too.
        while ob.append("t", &format!("c:{n}"), b"", 1, false).is_ok() {
            n += 1;
        }
        assert!(ob.bytes() <= 64 * 1024 - 4096 && ob.bytes() > 64 * 1024 - 4096 - 40);
        let mut reserved = 0;
        while ob
            .append_reserved("t/state", "c:clear", b"", 1, true)
            .is_ok()
        {
            reserved += 1;
        }
        assert!(reserved > 20, "only {reserved} clears fit in the reserve");
        assert!(ob.bytes() <= 64 * 1024);
    }

    #[test]
    fn segments_roll_and_acked_ones_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let mut ob = Outbox::open(dir.path(), 64 * 1024).unwrap(); // 8 KiB segments
        for n in 0..40 {
            ob.append("t", &format!("c:{n}"), &[1u8; 500], 1, true)
                .unwrap();
        }
        let segs = || {
            fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .path()
                        .extension()
                        .is_some_and(|x| x == "seg")
                })
                .count()
        };
        assert!(segs() >= 3);
        for i in 0..20 {
            ob.ack(i).unwrap();
        }
        let before = ob.bytes();
        assert!(before < 40 * 530);
        assert!(ob.read(25).unwrap().retain);
        ob.persist_cursor().unwrap();
        drop(ob);
        let ob = Outbox::open(dir.path(), 64 * 1024).unwrap();
        assert_eq!(pending(&ob), (20..40).collect::<Vec<_>>());
    }
}
