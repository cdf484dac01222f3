//! The write side: the active segment, rolling, releasing and the group-commit
//! sync thread.

use super::format::{HEADER_LEN, MAX_PAYLOAD, PendingRecord, SegmentHeader, encode_header};
use super::scan::SegmentReader;
use super::{Durability, Position, RecordKind, SegmentInfo, SpoolConfig, SpoolError, SpoolStats};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use tokio::sync::oneshot;

type SyncResult = Result<(), SpoolError>;

/// The path of segment `id` in `dir`.
pub(super) fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

/// The id of the segment whose file is named `name` ([`segment_path`]'s form:
/// 20 digits and `.seg`); `None` for any other name.
pub(super) fn segment_id(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".seg")?;
    if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
        stem.parse().ok()
    } else {
        None
    }
}

/// Creates segment `header.id` with its header written (not synced).
pub(super) fn create_segment(dir: &Path, header: SegmentHeader) -> Result<File, SpoolError> {
    let path = segment_path(dir, header.id);
    let mut file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(&path)
        .map_err(SpoolError::io(format_args!("create {}", path.display())))?;
    if let Err(source) = file.write_all(&encode_header(header)) {
        let _ = std::fs::remove_file(&path);
        return Err(SpoolError::Io {
            context: format!("write {}", path.display()),
            source,
        });
    }
    Ok(file)
}

/// The segment appends go to.
#[derive(Debug)]
pub(super) struct Active {
    pub(super) id: u64,
    pub(super) file: Arc<File>,
    pub(super) first_seq: u64,
    pub(super) records: u64,
    pub(super) size: u64,
    pub(super) last: Option<Position>,
    /// A failed write could not be undone: roll before the next append.
    pub(super) broken: bool,
}

impl Active {
    pub(super) fn new(id: u64, file: File, first_seq: u64) -> Self {
        Self {
            id,
            file: Arc::new(file),
            first_seq,
            records: 0,
            size: HEADER_LEN as u64,
            last: None,
            broken: false,
        }
    }

    fn info(&self) -> SegmentInfo {
        SegmentInfo {
            id: self.id,
            first_seq: self.first_seq,
            records: self.records,
            bytes: self.size,
            last: self.last,
        }
    }
}

/// Everything behind the spool mutex.
#[derive(Debug)]
pub(super) struct State {
    pub(super) active: Active,
    pub(super) sealed: VecDeque<SegmentInfo>,
    pub(super) next_seq: u64,
    pub(super) backlog: u64,
    /// Rolled segments whose last writes are not yet synced (fsync mode).
    unsynced: Vec<Arc<File>>,
    /// A segment was created since the directory was last synced (fsync mode).
    dir_dirty: bool,
    /// Something needs the sync thread.
    sync_wanted: bool,
    /// Appends waiting for the next sync round; all their records are written.
    waiters: Vec<oneshot::Sender<SyncResult>>,
    failed: Option<Arc<str>>,
    shutdown: bool,
}

impl State {
    pub(super) fn new(active: Active, sealed: VecDeque<SegmentInfo>, next_seq: u64) -> Self {
        let backlog = active.size + sealed.iter().map(|s| s.bytes).sum::<u64>();
        Self {
            active,
            sealed,
            next_seq,
            backlog,
            unsynced: Vec::new(),
            dir_dirty: false,
            sync_wanted: false,
            waiters: Vec::new(),
            failed: None,
            shutdown: false,
        }
    }
}

/// State shared by the handles and the sync thread.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) config: SpoolConfig,
    /// The spool directory, for syncing new entries.
    pub(super) dir: File,
    pub(super) state: Mutex<State>,
    wake: Condvar,
    pub(super) stats: Arc<SpoolStats>,
}

impl Shared {
    pub(super) fn new(
        config: SpoolConfig,
        dir: File,
        state: State,
        stats: Arc<SpoolStats>,
    ) -> Self {
        stats.backlog_bytes.store(state.backlog, Ordering::Relaxed);
        stats
            .live_segments
            .store(state.sealed.len() as u64 + 1, Ordering::Relaxed);
        Self {
            config,
            dir,
            state: Mutex::new(state),
            wake: Condvar::new(),
            stats,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fsync_mode(&self) -> bool {
        self.config.durability == Durability::Fsync
    }

    /// Writes one record. With `wait` in fsync mode, also returns the receiver that
    /// resolves once a sync round covering it completes.
    pub(super) fn write(
        &self,
        kind: RecordKind,
        payload: &[u8],
        wait: bool,
    ) -> Result<(Position, Option<oneshot::Receiver<SyncResult>>), SpoolError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(SpoolError::TooLarge {
                len: payload.len(),
                max: MAX_PAYLOAD,
            });
        }
        if RecordKind::new(kind.code()).is_none() {
            return Err(SpoolError::ReservedKind(kind.code()));
        }
        let mut record = PendingRecord::new(kind, payload);
        let len = record.len() as u64;
        let mut st = self.lock();
        if let Some(msg) = &st.failed {
            return Err(SpoolError::Failed(msg.clone()));
        }
        let roll = st.active.broken
            || (st.active.records > 0 && st.active.size + len > self.config.segment_bytes);
        let need = len + if roll { HEADER_LEN as u64 } else { 0 };
        if st.backlog + need > self.config.max_bytes {
            SpoolStats::add(&self.stats.rejected_full, 1);
            return Err(SpoolError::Full {
                used: st.backlog,
                max: self.config.max_bytes,
            });
        }
        if roll {
            self.roll(&mut st)?;
        }
        let seq = st.next_seq;
        if let Err(source) = (&*st.active.file).write_all(record.seal(seq)) {
            // Undo a partial write so the next record follows a whole one.
            if st.active.file.set_len(st.active.size).is_err() {
                st.active.broken = true;
            }
            let path = segment_path(&self.config.dir, st.active.id);
            return Err(SpoolError::Io {
                context: format!("write {}", path.display()),
                source,
            });
        }
        let pos = Position {
            seq,
            segment: st.active.id,
        };
        st.next_seq += 1;
        st.active.records += 1;
        st.active.size += len;
        st.active.last = Some(pos);
        st.backlog += len;
        self.stats
            .backlog_bytes
            .store(st.backlog, Ordering::Relaxed);
        SpoolStats::add(&self.stats.records_appended, 1);
        SpoolStats::add(&self.stats.bytes_appended, len);
        if !self.fsync_mode() {
            return Ok((pos, None));
        }
        // Only a waiting append starts a round: a nowait append is covered by the
        // next round anyone asks for ([`Spool::flush`] or a waiting append), so it
        // never makes the next waiting append queue behind an extra fsync.
        let receiver = wait.then(|| {
            let (tx, rx) = oneshot::channel();
            st.waiters.push(tx);
            self.want_sync(&mut st);
            rx
        });
        Ok((pos, receiver))
    }

    fn want_sync(&self, st: &mut State) {
        if !st.sync_wanted {
            st.sync_wanted = true;
            self.wake.notify_one();
        }
    }

    /// Starts a new active segment; the old one joins the sealed list.
    fn roll(&self, st: &mut State) -> Result<SegmentInfo, SpoolError> {
        let id = st.active.id + 1;
        let file = create_segment(
            &self.config.dir,
            SegmentHeader {
                id,
                first_seq: st.next_seq,
            },
        )?;
        let old = std::mem::replace(&mut st.active, Active::new(id, file, st.next_seq));
        let info = old.info();
        st.sealed.push_back(info);
        st.backlog += HEADER_LEN as u64;
        self.stats
            .backlog_bytes
            .store(st.backlog, Ordering::Relaxed);
        SpoolStats::add(&self.stats.segments_created, 1);
        SpoolStats::add(&self.stats.live_segments, 1);
        if self.fsync_mode() {
            st.unsynced.push(old.file);
            st.dir_dirty = true;
            self.want_sync(st);
        }
        Ok(info)
    }

    pub(super) fn seal(&self) -> Result<Option<SegmentInfo>, SpoolError> {
        let mut st = self.lock();
        if st.active.records == 0 {
            return Ok(None);
        }
        self.roll(&mut st).map(Some)
    }

    pub(super) fn request_sync(&self) -> Option<oneshot::Receiver<SyncResult>> {
        if !self.fsync_mode() {
            return None;
        }
        let mut st = self.lock();
        let (tx, rx) = oneshot::channel();
        match &st.failed {
            Some(msg) => {
                let _ = tx.send(Err(SpoolError::Failed(msg.clone())));
            }
            None => {
                st.waiters.push(tx);
                self.want_sync(&mut st);
            }
        }
        Some(rx)
    }

    pub(super) fn sealed(&self) -> Vec<SegmentInfo> {
        self.lock().sealed.iter().copied().collect()
    }

    pub(super) fn segments(&self) -> Vec<SegmentInfo> {
        let st = self.lock();
        st.sealed
            .iter()
            .copied()
            .chain([st.active.info()])
            .collect()
    }

    pub(super) fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    pub(super) fn read_segment(&self, id: u64) -> Result<SegmentReader, SpoolError> {
        let info = self.lock().sealed.iter().find(|s| s.id == id).copied();
        let info = info.ok_or(SpoolError::UnknownSegment(id))?;
        let path = segment_path(&self.config.dir, id);
        let file =
            File::open(&path).map_err(SpoolError::io(format_args!("open {}", path.display())))?;
        SegmentReader::new(id, file, info.first_seq)
            .map_err(SpoolError::io(format_args!("read {}", path.display())))
    }

    /// Callers serialise releases, so the sealed list's front stays what was planned.
    pub(super) fn release_through(&self, pos: Position) -> Result<Vec<SegmentInfo>, SpoolError> {
        let plan: Vec<SegmentInfo> = {
            let st = self.lock();
            let done = |s: &&SegmentInfo| s.last.is_none_or(|last| last.seq <= pos.seq);
            st.sealed.iter().take_while(done).copied().collect()
        };
        let mut released = Vec::with_capacity(plan.len());
        let mut error = None;
        for info in plan {
            let path = segment_path(&self.config.dir, info.id);
            match std::fs::remove_file(&path) {
                Ok(()) => released.push(info),
                Err(e) if e.kind() == io::ErrorKind::NotFound => released.push(info),
                Err(source) => {
                    error = Some(SpoolError::Io {
                        context: format!("delete {}", path.display()),
                        source,
                    });
                    break;
                }
            }
        }
        let mut st = self.lock();
        for info in &released {
            st.sealed.pop_front();
            st.backlog -= info.bytes;
        }
        self.stats
            .backlog_bytes
            .store(st.backlog, Ordering::Relaxed);
        drop(st);
        let n = released.len() as u64;
        SpoolStats::add(&self.stats.segments_released, n);
        self.stats.live_segments.fetch_sub(n, Ordering::Relaxed);
        match error {
            Some(e) => Err(e),
            None => Ok(released),
        }
    }

    pub(super) fn shutdown(&self) {
        let mut st = self.lock();
        st.shutdown = true;
        self.wake.notify_one();
    }
}

/// Starts the group-commit thread in fsync mode.
pub(super) fn start_sync_thread(
    shared: &Arc<Shared>,
) -> Result<Option<JoinHandle<()>>, SpoolError> {
    if !shared.fsync_mode() {
        return Ok(None);
    }
    let shared = shared.clone();
    std::thread::Builder::new()
        .name("custody-spool-sync".into())
        .spawn(move || sync_loop(&shared))
        .map(Some)
        .map_err(SpoolError::io("spawn the spool sync thread"))
}

/// One round at a time: take everything written so far (files and waiters), sync
/// it without the lock, then answer the waiters. Appends made meanwhile wait for
/// the next round, which starts as soon as this one ends.
fn sync_loop(shared: &Shared) {
    let mut st = shared.lock();
    loop {
        while !st.sync_wanted && !st.shutdown {
            st = shared.wake.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        if !st.sync_wanted {
            return;
        }
        st.sync_wanted = false;
        let mut files = std::mem::take(&mut st.unsynced);
        files.push(st.active.file.clone());
        let dir_dirty = std::mem::take(&mut st.dir_dirty);
        let waiters = std::mem::take(&mut st.waiters);
        drop(st);

        let result = files.iter().try_for_each(|f| f.sync_data()).and_then(|()| {
            if dir_dirty {
                shared.dir.sync_all()
            } else {
                Ok(())
            }
        });
        SpoolStats::add(&shared.stats.fsyncs, 1);
        let failure: Option<Arc<str>> = result.err().map(|e| {
            SpoolStats::add(&shared.stats.fsync_errors, 1);
            tracing::error!(error = %e, dir = %shared.config.dir.display(), "spool fsync failed");
            Arc::from(format!("fsync in {}: {e}", shared.config.dir.display()))
        });
        st = shared.lock();
        if let Some(msg) = &failure {
            st.failed.get_or_insert_with(|| msg.clone());
        }
        let failed = st.failed.clone();
        drop(st);
        for waiter in waiters {
            let _ = waiter.send(match &failed {
                Some(msg) => Err(SpoolError::Failed(msg.clone())),
                None => Ok(()),
            });
        }
        st = shared.lock();
    }
}
