//! A persistent queue on disk: a write-ahead log of opaque entries.
//!
//! - [`Wal::append`] writes an entry (a sequence number, a one-byte tag and
//!   the data) to the active segment file; [`Wal::sync`] fsyncs what was
//!   written. Whether to sync after every append (group commit), on a timer
//!   or never is the caller's policy.
//! - A single [`Reader`] hands entries out in order, waiting for new ones.
//! - [`Wal::ack`] marks an entry done; acknowledgements may come in any
//!   order. The low-watermark (everything at or below it is done) is the
//!   smallest entry still in flight minus one; [`Wal::collect`] persists it
//!   and deletes the segments wholly below it.
//! - On [`Wal::open`], entries above the persisted watermark are handed out
//!   again (at-least-once), and a torn or corrupt tail is truncated and
//!   reported, never a panic.
//! - The files on disk are capped at `max_bytes`: an append beyond it fails
//!   with [`AppendError::Full`] (an entry into an empty queue is always admitted,
//!   so that one oversized entry cannot wedge it).
//!
//! Plain `std::fs` and a mutex: no async runtime. Callers run it on threads
//! of their own (or `spawn_blocking`).

mod lock;
pub mod segment;
pub mod watermark;

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use segment::{ReadOutcome, MAGIC};

/// How the queue is opened.
#[derive(Debug, Clone)]
pub struct Options {
    /// Directory holding the segments, the watermark and the lock.
    pub dir: PathBuf,
    /// Cap on the bytes of all segment files together.
    pub max_bytes: u64,
    /// A segment is rolled over once it would grow beyond this.
    pub segment_bytes: u64,
    /// Whether [`Wal::collect`] fsyncs the watermark file (off for a policy of "never").
    pub sync_watermark: bool,
}

impl Options {
    /// Segments of 32 MiB, or an eighth of the cap if that is smaller (at least 64 KiB).
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64) -> Self {
        Self {
            dir: dir.into(),
            max_bytes,
            segment_bytes: (max_bytes / 8).clamp(64 * 1024, 32 * 1024 * 1024),
            sync_watermark: true,
        }
    }
}

/// Why an append failed.
#[derive(Debug)]
pub enum AppendError {
    /// The cap is reached: retry once entries are acknowledged.
    Full,
    /// The queue is closed.
    Closed,
    /// Writing failed (the partial write was rolled back).
    Io(io::Error),
}

impl std::fmt::Display for AppendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppendError::Full => f.write_str("the persistent queue is full"),
            AppendError::Closed => f.write_str("the persistent queue is closed"),
            AppendError::Io(e) => write!(f, "writing the persistent queue: {e}"),
        }
    }
}

impl std::error::Error for AppendError {}

/// What [`Wal::open`] found on disk.
#[derive(Debug, Default, Clone)]
pub struct OpenReport {
    /// Entries above the watermark, to be handed out again.
    pub replay_entries: u64,
    /// Entries with a sequence number up to this one are replays.
    pub replay_until: u64,
    /// Torn or corrupt places found (each one cut off the rest of its segment).
    pub corrupt: u64,
    /// Bytes cut off because of them.
    pub truncated_bytes: u64,
    /// The watermark file was unreadable (everything on disk is replayed).
    pub watermark_unreadable: bool,
}

/// An entry handed out by the [`Reader`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub tag: u8,
    pub data: Vec<u8>,
}

/// Sizes for gauges.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Bytes of all segment files (including acknowledged entries not yet collected).
    pub bytes: u64,
    /// Entries not yet acknowledged (on disk, or in flight).
    pub entries: u64,
}

#[derive(Debug)]
struct Segment {
    first_seq: u64,
    /// Bytes written (and readable).
    len: u64,
    /// Sequence number of the last entry, if any.
    last_seq: Option<u64>,
}

struct State {
    segments: Vec<Segment>,
    active: File,
    /// Files written since the last sync other than `active` (rolled over).
    unsynced: Vec<File>,
    dirty: bool,
    dir_dirty: bool,
    next_seq: u64,
    /// Highest sequence number handed out by the reader (or the watermark at open).
    read_upto: u64,
    in_flight: BTreeSet<u64>,
    persisted_watermark: u64,
    bytes: u64,
    entries: u64,
    closed: bool,
    buf: Vec<u8>,
}

impl State {
    fn watermark(&self) -> u64 {
        match self.in_flight.first() {
            Some(&seq) => seq - 1,
            None => self.read_upto,
        }
    }
}

struct Shared {
    opts: Options,
    state: Mutex<State>,
    /// Signalled on append and close.
    appended: Condvar,
    /// Held for a whole sync, so that a sync returns only once what was
    /// written before it is on disk.
    sync_lock: Mutex<()>,
    reader_taken: std::sync::atomic::AtomicBool,
    _lock: lock::DirLock,
}

/// The queue; cheap to clone, safe to share between threads.
#[derive(Clone)]
pub struct Wal {
    shared: Arc<Shared>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Wal {
    /// Opens (or creates) the queue in `opts.dir`; fails if another process
    /// holds the directory (`ErrorKind::WouldBlock`).
    pub fn open(opts: Options) -> io::Result<(Wal, OpenReport)> {
        fs::create_dir_all(&opts.dir)?;
        let dir_lock = lock::acquire(&opts.dir)?;
        let mut report = OpenReport::default();
        let watermark = match watermark::read(&opts.dir) {
            Ok(w) => w.unwrap_or(0),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                report.watermark_unreadable = true;
                0
            }
            Err(e) => return Err(e),
        };

        let mut names: Vec<u64> = fs::read_dir(&opts.dir)?
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| segment::parse_file_name(entry.file_name().to_str()?))
            .collect();
        names.sort_unstable();

        let mut segments = Vec::new();
        let mut next_seq = watermark + 1;
        let mut entries = 0u64;
        for first_seq in names {
            let path = opts.dir.join(segment::file_name(first_seq));
            let scan = segment::scan(&path)?;
            let file_len = fs::metadata(&path)?.len();
            if scan.corrupt {
                report.corrupt += 1;
            }
            if !scan.has_magic {
                // Not even a header: nothing in it can be read.
                report.truncated_bytes += file_len;
                fs::remove_file(&path)?;
                next_seq = next_seq.max(first_seq);
                continue;
            }
            if scan.valid_len < file_len {
                report.truncated_bytes += file_len - scan.valid_len;
                OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .set_len(scan.valid_len)?;
            }
            next_seq = next_seq.max(first_seq);
            if let Some(&last) = scan.seqs.last() {
                next_seq = next_seq.max(last + 1);
            }
            let unacked = scan.seqs.iter().filter(|&&s| s > watermark).count() as u64;
            entries += unacked;
            if unacked > 0 {
                report.replay_until = report.replay_until.max(*scan.seqs.last().unwrap());
            }
            segments.push(Segment {
                first_seq,
                len: scan.valid_len,
                last_seq: scan.seqs.last().copied(),
            });
        }
        report.replay_entries = entries;

        // Segments wholly acknowledged go, except the newest, which stays the
        // active one (its name keeps sequence numbers from going backwards).
        let mut dir_dirty = false;
        while segments.len() > 1 && segments[0].last_seq.is_none_or(|s| s <= watermark) {
            let seg = segments.remove(0);
            fs::remove_file(opts.dir.join(segment::file_name(seg.first_seq)))?;
            dir_dirty = true;
        }
        let active = match segments.last() {
            Some(seg) => OpenOptions::new()
                .append(true)
                .open(opts.dir.join(segment::file_name(seg.first_seq)))?,
            None => {
                let (file, seg) = create_segment(&opts.dir, next_seq)?;
                segments.push(seg);
                dir_dirty = true;
                file
            }
        };
        if dir_dirty || report.truncated_bytes > 0 {
            active.sync_data()?;
            watermark::sync_dir(&opts.dir)?;
        }
        let bytes = segments.iter().map(|s| s.len).sum();
        let state = State {
            segments,
            active,
            unsynced: Vec::new(),
            dirty: false,
            dir_dirty: false,
            next_seq,
            read_upto: watermark,
            in_flight: BTreeSet::new(),
            persisted_watermark: watermark,
            bytes,
            entries,
            closed: false,
            buf: Vec::new(),
        };
        let wal = Wal {
            shared: Arc::new(Shared {
                opts,
                state: Mutex::new(state),
                appended: Condvar::new(),
                sync_lock: Mutex::new(()),
                reader_taken: Default::default(),
                _lock: dir_lock,
            }),
        };
        Ok((wal, report))
    }

    /// The directory the queue lives in.
    pub fn dir(&self) -> &Path {
        &self.shared.opts.dir
    }

    /// Appends an entry (not yet synced) and returns its sequence number.
    pub fn append(&self, tag: u8, data: &[u8]) -> Result<u64, AppendError> {
        let opts = &self.shared.opts;
        let mut state = lock(&self.shared.state);
        if state.closed {
            return Err(AppendError::Closed);
        }
        let frame = segment::frame_len(data.len());
        let active_len = state.segments.last().map_or(0, |s| s.len);
        let roll = active_len > MAGIC.len() as u64 && active_len + frame > opts.segment_bytes;
        let needed = frame + if roll { MAGIC.len() as u64 } else { 0 };
        if state.bytes + needed > opts.max_bytes {
            collect_locked(&self.shared, &mut state, true).map_err(AppendError::Io)?;
            let active_len = state.segments.last().map_or(0, |s| s.len);
            let roll = active_len > MAGIC.len() as u64 && active_len + frame > opts.segment_bytes;
            let needed = frame + if roll { MAGIC.len() as u64 } else { 0 };
            if state.entries > 0 && state.bytes + needed > opts.max_bytes {
                return Err(AppendError::Full);
            }
        }
        let active_len = state.segments.last().map_or(0, |s| s.len);
        if active_len > MAGIC.len() as u64 && active_len + frame > opts.segment_bytes {
            roll_locked(&opts.dir, &mut state).map_err(AppendError::Io)?;
        }
        let seq = state.next_seq;
        let mut buf = std::mem::take(&mut state.buf);
        buf.clear();
        segment::encode_frame(seq, tag, data, &mut buf);
        let written = state.active.write_all(&buf);
        state.buf = buf;
        if let Err(e) = written {
            // Roll back a partial write, so the segment stays readable.
            let len = state.segments.last().map_or(0, |s| s.len);
            let _ = state.active.set_len(len);
            return Err(AppendError::Io(e));
        }
        state.next_seq += 1;
        state.bytes += frame;
        state.entries += 1;
        state.dirty = true;
        let seg = state
            .segments
            .last_mut()
            .expect("there is an active segment");
        seg.len += frame;
        seg.last_seq = Some(seq);
        drop(state);
        self.shared.appended.notify_all();
        Ok(seq)
    }

    /// Fsyncs everything appended before the call (a no-op if nothing was).
    pub fn sync(&self) -> io::Result<()> {
        let _sync = self
            .shared
            .sync_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let (files, dir_dirty) = {
            let mut state = lock(&self.shared.state);
            if !state.dirty && !state.dir_dirty {
                return Ok(());
            }
            let mut files = std::mem::take(&mut state.unsynced);
            if state.dirty {
                files.push(state.active.try_clone()?);
            }
            let dir_dirty = state.dir_dirty;
            state.dirty = false;
            state.dir_dirty = false;
            (files, dir_dirty)
        };
        let result = (|| {
            for file in &files {
                file.sync_data()?;
            }
            if dir_dirty {
                watermark::sync_dir(&self.shared.opts.dir)?;
            }
            Ok(())
        })();
        if result.is_err() {
            let mut state = lock(&self.shared.state);
            state.dirty = true;
            state.dir_dirty |= dir_dirty;
        }
        result
    }

    /// Marks an entry handed out by the reader as done.
    pub fn ack(&self, seq: u64) {
        let mut state = lock(&self.shared.state);
        if state.in_flight.remove(&seq) {
            state.entries -= 1;
        }
    }

    /// The low-watermark: every entry at or below it is done.
    pub fn watermark(&self) -> u64 {
        lock(&self.shared.state).watermark()
    }

    /// Persists the watermark if it moved and deletes the segments wholly
    /// below it (never the active one).
    pub fn collect(&self) -> io::Result<()> {
        let mut state = lock(&self.shared.state);
        collect_locked(&self.shared, &mut state, false)
    }

    /// Sizes for gauges.
    pub fn stats(&self) -> Stats {
        let state = lock(&self.shared.state);
        Stats {
            bytes: state.bytes,
            entries: state.entries,
        }
    }

    /// Refuses further appends, wakes the reader (which then ends), syncs
    /// and persists the watermark.
    pub fn close(&self) -> io::Result<()> {
        lock(&self.shared.state).closed = true;
        self.shared.appended.notify_all();
        self.sync()?;
        self.collect()
    }

    /// The single reader. Panics if called twice.
    pub fn reader(&self) -> Reader {
        let taken = self
            .shared
            .reader_taken
            .swap(true, std::sync::atomic::Ordering::AcqRel);
        assert!(!taken, "a Wal has a single reader");
        Reader {
            shared: self.shared.clone(),
            current: None,
            corrupt: 0,
        }
    }
}

fn create_segment(dir: &Path, first_seq: u64) -> io::Result<(File, Segment)> {
    let mut file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(dir.join(segment::file_name(first_seq)))?;
    file.write_all(MAGIC)?;
    Ok((
        file,
        Segment {
            first_seq,
            len: MAGIC.len() as u64,
            last_seq: None,
        },
    ))
}

fn roll_locked(dir: &Path, state: &mut State) -> io::Result<()> {
    let (file, seg) = create_segment(dir, state.next_seq)?;
    let old = std::mem::replace(&mut state.active, file);
    if state.dirty {
        state.unsynced.push(old);
    }
    state.dirty = true;
    state.dir_dirty = true;
    state.bytes += seg.len;
    state.segments.push(seg);
    Ok(())
}

/// With `roll_if_done`, an active segment holding only finished entries is
/// rolled over first so that it can go too (used when the cap is reached).
fn collect_locked(shared: &Shared, state: &mut State, roll_if_done: bool) -> io::Result<()> {
    let watermark = state.watermark();
    let done = |seg: &Segment| seg.last_seq.is_none_or(|s| s <= watermark);
    if roll_if_done
        && state
            .segments
            .last()
            .is_some_and(|s| s.last_seq.is_some() && done(s))
    {
        roll_locked(&shared.opts.dir, state)?;
    }
    let removable = state.segments[..state.segments.len() - 1]
        .iter()
        .take_while(|s| done(s))
        .count();
    if watermark != state.persisted_watermark || removable > 0 {
        // The watermark first: deleting segments it does not yet cover would
        // be harmless, but this order keeps the directory self-explanatory.
        watermark::write(&shared.opts.dir, watermark, shared.opts.sync_watermark)?;
        state.persisted_watermark = watermark;
    }
    for seg in state.segments.drain(..removable) {
        fs::remove_file(shared.opts.dir.join(segment::file_name(seg.first_seq)))?;
        state.bytes -= seg.len;
        state.dir_dirty = true;
    }
    Ok(())
}

/// Hands out entries in order; see [`Wal::reader`].
pub struct Reader {
    shared: Arc<Shared>,
    /// Segment being read: first sequence number, file, position.
    current: Option<(u64, File, u64)>,
    corrupt: u64,
}

impl Reader {
    /// The next entry, waiting up to `timeout` for one. `Ok(None)` on
    /// timeout or once the queue is closed and everything was read.
    pub fn next(&mut self, timeout: Duration) -> io::Result<Option<Entry>> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let state = lock(&self.shared.state);
            // Where to read next, and up to where.
            let target = loop {
                let current_first = self.current.as_ref().map(|c| c.0);
                let pos = self.current.as_ref().map_or(0, |c| c.2);
                let index = match current_first {
                    Some(first) => state.segments.iter().position(|s| s.first_seq == first),
                    None => None,
                };
                if let Some(i) = index {
                    if pos < state.segments[i].len {
                        break Some(state.segments[i].len);
                    }
                }
                // Move on to the next segment, if there is one.
                let next = state
                    .segments
                    .iter()
                    .find(|s| current_first.is_none_or(|first| s.first_seq > first));
                match next {
                    Some(seg) => {
                        let first = seg.first_seq;
                        let file =
                            File::open(self.shared.opts.dir.join(segment::file_name(first)))?;
                        self.current = Some((first, file, MAGIC.len() as u64));
                    }
                    None => break None,
                }
            };
            let Some(limit) = target else {
                if state.closed {
                    return Ok(None);
                }
                let now = std::time::Instant::now();
                if now >= deadline {
                    return Ok(None);
                }
                let (guard, _) = self
                    .shared
                    .appended
                    .wait_timeout(state, deadline - now)
                    .unwrap_or_else(|p| p.into_inner());
                drop(guard);
                continue;
            };
            drop(state);
            let (first, file, pos) = self.current.as_mut().expect("set above");
            let first = *first;
            match segment::read_at(file, *pos, limit)? {
                ReadOutcome::Frame(frame) => {
                    *pos += segment::frame_len(frame.data.len());
                    let mut state = lock(&self.shared.state);
                    if frame.seq <= state.read_upto {
                        continue; // acknowledged before a restart
                    }
                    state.read_upto = frame.seq;
                    state.in_flight.insert(frame.seq);
                    return Ok(Some(Entry {
                        seq: frame.seq,
                        tag: frame.tag,
                        data: frame.data,
                    }));
                }
                ReadOutcome::End => continue,
                ReadOutcome::Corrupt => {
                    // Only a disk going bad gets here (start-up truncated
                    // anything torn): skip the rest of the segment.
                    self.corrupt += 1;
                    *pos = limit;
                    let mut state = lock(&self.shared.state);
                    if let Some(seg) = state.segments.iter().find(|s| s.first_seq == first) {
                        if let Some(last) = seg.last_seq {
                            let skipped = last.saturating_sub(state.read_upto);
                            state.read_upto = state.read_upto.max(last);
                            state.entries = state.entries.saturating_sub(skipped);
                        }
                    }
                }
            }
        }
    }

    /// Corrupt places skipped while running (not counting those found at open).
    pub fn corrupt(&self) -> u64 {
        self.corrupt
    }
}

#[cfg(test)]
mod tests;
