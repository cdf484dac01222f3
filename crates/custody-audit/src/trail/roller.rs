//! The roller thread: seal → build → upload → release (see the [parent](super)
//! module docs and [`super::pairing`]).

use super::envelope::{self, CARRY, COMPLETION, ROW};
use super::files::{BuiltFile, SegmentFiles};
use super::pairing::{self, Pairing, Tally};
use super::{Command, Shared, lock};
use crate::ship::{ShipError, Shipper};
use crate::spool::{SegmentInfo, Spool};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

mod drain;

/// A segment's files, built, with the pairing state after it, until they are all
/// uploaded.
struct Prepared {
    segment: SegmentInfo,
    files: Vec<BuiltFile>,
    done: Vec<bool>,
    pairing: Pairing,
    tally: Tally,
    /// Restored gap rows found among the segment's rows.
    gaps_found: Vec<String>,
    /// The `row_seq` after the segment's last row.
    next_seq: i64,
}

pub(super) struct Roller {
    shared: Arc<Shared>,
    shipper: Shipper,
    instance: String,
    spool_id: String,
    pairing: Pairing,
    /// The last segment left by the previous process, until the replay reaches it.
    replay_until: Option<u64>,
    /// Intents of the previous process that still need an `incomplete` completion.
    unfinished: Vec<(u64, Arc<Vec<u8>>)>,
    /// Gap rows restored from `GAPS` that the previous process may have spooled
    /// already: held back until the replay shows whether it did.
    restored_gaps: Vec<String>,
    /// The newest segment whose files are all uploaded.
    processed: Option<u64>,
    prepared: Option<Prepared>,
    roll_age: Duration,
    unsealed_since: Option<Instant>,
    retry_at: Option<Instant>,
    backoff: Duration,
    /// The signed digest chain over delivered files (`audit.digests`).
    chain: Option<crate::digest::Chain>,
    /// The next `row_seq`, kept in the spool directory.
    row_seq: super::row_seq::RowSeq,
    /// Policy files to store on the sink (`AuditTrail::publish_policy`).
    policies: Vec<bytes::Bytes>,
}

/// How a round of uploads ended.
enum Outcome {
    /// Nothing sealed is left to upload.
    Idle,
    /// An upload failed (or the deadline passed); try again later.
    Stalled,
}

impl Roller {
    pub(super) fn new(
        shared: Arc<Shared>,
        shipper: Shipper,
        instance: &str,
        spool_id: &str,
        replay_until: Option<u64>,
        roll_age: Duration,
        (chain, row_seq): (Option<crate::digest::Chain>, super::row_seq::RowSeq),
    ) -> Self {
        let restored_gaps = if replay_until.is_some() {
            lock(&shared.gap).restored_ids()
        } else {
            Vec::new()
        };
        Self {
            shared,
            shipper,
            restored_gaps,
            instance: crate::writer::sanitize_instance(instance),
            spool_id: spool_id.to_owned(),
            pairing: Pairing::new(spool_id, replay_until.is_some()),
            replay_until,
            unfinished: Vec::new(),
            processed: None,
            prepared: None,
            roll_age,
            unsealed_since: None,
            retry_at: None,
            backoff: Duration::ZERO,
            chain,
            row_seq,
            policies: Vec::new(),
        }
    }

    pub(super) fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the audit roller's runtime; rows stay spooled");
                return;
            }
        };
        let tick = (self.roll_age / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        runtime.block_on(async move {
            loop {
                match tokio::time::timeout(tick, commands.recv()).await {
                    Ok(Some(Command::Work)) | Err(_) => {
                        self.round(false, None).await;
                    }
                    Ok(Some(Command::Policy(bytes))) => {
                        self.policies.push(bytes);
                        self.round(false, None).await;
                    }
                    Ok(Some(Command::Flush(done))) => {
                        self.drain(None).await;
                        let _ = done.send(());
                    }
                    Ok(Some(Command::Stop(deadline, done))) => {
                        let report = self.drain(Some(deadline)).await;
                        self.digest(crate::digest::Kind::Shutdown, Some(deadline))
                            .await;
                        let _ = done.send(report);
                        return;
                    }
                    Ok(None) => return,
                }
            }
        });
    }

    /// One round: spool what waits in memory, seal if due (or `force`), upload the
    /// sealed segments. Returns whether everything sealed got uploaded.
    async fn round(&mut self, force: bool, deadline: Option<Instant>) -> bool {
        self.shared.woken.store(false, Ordering::Release);
        self.drain_overflow();
        self.write_gap();
        self.seal_if_due(force);
        if !force && self.retry_at.is_some_and(|t| Instant::now() < t) {
            return false;
        }
        let outcome = self.process(deadline).await;
        self.store_policies().await;
        if self.chain.as_ref().is_some_and(crate::digest::Chain::due) {
            self.digest(crate::digest::Kind::Periodic, deadline).await;
        }
        match outcome {
            Outcome::Idle => {
                self.retry_at = None;
                self.backoff = Duration::ZERO;
                self.shared.stats.failing.store(false, Ordering::Relaxed);
                true
            }
            Outcome::Stalled => {
                self.backoff =
                    (self.backoff * 2).clamp(Duration::from_millis(250), Duration::from_secs(5));
                self.retry_at = Some(Instant::now() + self.backoff);
                false
            }
        }
    }

    fn seal_if_due(&mut self, force: bool) {
        let rows = self.shared.unsealed_rows.load(Ordering::Relaxed);
        if rows == 0 && !force {
            self.unsealed_since = None;
            return;
        }
        let since = *self.unsealed_since.get_or_insert_with(Instant::now);
        let due = force || rows >= self.shared.roll_rows || since.elapsed() >= self.roll_age;
        if !due {
            return;
        }
        match self.shared.spool.seal() {
            Ok(_) => {
                self.shared.unsealed_rows.fetch_sub(rows, Ordering::Relaxed);
                self.unsealed_since = None;
            }
            Err(e) => tracing::error!(error = %e, "cannot seal the audit spool segment"),
        }
    }

    /// Moves completions waiting in memory into the spool.
    fn drain_overflow(&self) {
        let sh = &self.shared;
        let mut live = lock(&sh.live);
        let mut overflow = lock(&sh.overflow);
        while let Some(payload) = overflow.front() {
            if sh.spool.append_nowait(COMPLETION, payload).is_err() {
                break;
            }
            if let Some((key, _)) = envelope::split_keyed(payload) {
                live.remove(&key);
            }
            overflow.pop_front();
            sh.stats.completions_waiting.fetch_sub(1, Ordering::Relaxed);
            sh.note_row();
        }
    }

    /// Spools the gap rows for requests not recorded, once there is room: a
    /// damaged count's, then the `writing` window's, taking the open window first if
    /// none is being written (see [`super::gaps`]). Rows restored from `GAPS` wait
    /// for the replay, which may show them spooled already.
    fn write_gap(&self) {
        let sh = &self.shared;
        if !self.restored_gaps.is_empty() {
            return;
        }
        // Only once there is room: the open window keeps counting until then, so
        // a long outage makes one gap row, not one per round.
        if sh.admits(4096).is_err() {
            return;
        }
        let lost = lock(&sh.gap).lost.clone();
        if let Some(lost) = lost {
            if sh
                .spool
                .append_nowait(ROW, &envelope::row(&lost.row()))
                .is_err()
            {
                return;
            }
            lost.done();
            lock(&sh.gap).lost = None;
            sh.stats.damage_gap_rows.fetch_add(1, Ordering::Relaxed);
            sh.note_row();
            tracing::warn!(
                "audit gap row written for requests not recorded before a restart, of unknown number"
            );
        }
        let w = {
            let mut guard = lock(&sh.gap);
            let gap = &mut *guard;
            if gap.windows.take_for_writing() {
                gap.file.store(&gap.windows);
            }
            match gap.windows.writing {
                Some(w) => w,
                None => return,
            }
        };
        if sh
            .spool
            .append_nowait(ROW, &envelope::row(&w.row()))
            .is_err()
        {
            return;
        }
        let mut guard = lock(&sh.gap);
        let gap = &mut *guard;
        gap.windows.writing = None;
        gap.file.store(&gap.windows);
        drop(guard);
        sh.stats.gap_rows.fetch_add(1, Ordering::Relaxed);
        sh.note_row();
        tracing::warn!(
            requests = w.count,
            rejected = w.rejected,
            "audit gap row written: requests not recorded while the spool was full"
        );
    }

    /// Builds and uploads sealed segments oldest first, releasing what is done.
    async fn process(&mut self, deadline: Option<Instant>) -> Outcome {
        if self.shared.fsync
            && let Err(e) = self.shared.spool.flush().await
        {
            tracing::error!(error = %e, "audit spool fsync failed");
            return Outcome::Stalled;
        }
        loop {
            if self.prepared.is_none() {
                let next = self
                    .shared
                    .spool
                    .sealed_segments()
                    .into_iter()
                    .find(|s| self.processed.is_none_or(|p| s.id > p));
                let Some(segment) = next else {
                    self.finish_replay();
                    self.release().await;
                    return Outcome::Idle;
                };
                match self.prepare(segment) {
                    Ok(p) => self.prepared = Some(p),
                    Err(e) => {
                        tracing::error!(segment = segment.id, error = %e, "cannot read an audit spool segment; retrying later");
                        return self.stall();
                    }
                }
            }
            if !self.upload(deadline).await {
                return self.stall();
            }
            let Some(p) = self.prepared.take() else {
                continue;
            };
            self.commit(p);
            self.finish_replay();
            self.release().await;
        }
    }

    /// Reads a sealed segment and builds its files (blocking reads; this thread
    /// serves nothing else).
    /// A segment could not be read or uploaded: counts an upload failure, marks
    /// the sink failing and stalls the round.
    fn stall(&self) -> Outcome {
        self.shared
            .stats
            .upload_failures
            .fetch_add(1, Ordering::Relaxed);
        self.shared.stats.failing.store(true, Ordering::Relaxed);
        Outcome::Stalled
    }

    fn prepare(&self, segment: SegmentInfo) -> Result<Prepared, String> {
        let mut pairing = self.pairing.clone();
        let built = build_segment(
            &self.shared.spool,
            &mut pairing,
            segment.id,
            (&self.instance, &self.spool_id),
            &self.restored_gaps,
            self.row_seq.first_for(segment.id),
        )?;
        if built.damaged > 0 {
            self.shared
                .stats
                .undecodable_records
                .fetch_add(built.damaged, Ordering::Relaxed);
        }
        self.shared
            .stats
            .files_built
            .fetch_add(built.files.len() as u64, Ordering::Relaxed);
        Ok(Prepared {
            segment,
            done: vec![false; built.files.len()],
            files: built.files,
            pairing,
            tally: built.tally,
            gaps_found: built.gaps_found,
            next_seq: built.next_seq,
        })
    }

    /// Uploads the prepared files not uploaded yet; whether all are.
    async fn upload(&mut self, deadline: Option<Instant>) -> bool {
        let Some(p) = self.prepared.as_mut() else {
            return true;
        };
        let stats = &self.shared.stats;
        for (file, done) in p.files.iter().zip(p.done.iter_mut()) {
            if *done {
                continue;
            }
            let upload = self.shipper.upload(&file.key, file.bytes.clone());
            let result = match deadline {
                Some(d) => match tokio::time::timeout_at(d.into(), upload).await {
                    Ok(r) => r,
                    Err(_) => return false,
                },
                None => upload.await,
            };
            match result {
                Ok(_) => {}
                Err(ShipError::Conflict { .. }) => {
                    // A file of this name with other contents is stored: built
                    // before this segment was damaged and repaired. Keep it.
                    stats.upload_conflicts.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(key = %file.key, "a different audit file of the same name is already stored; left as it is");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "audit upload failed; the segment stays spooled and is retried");
                    return false;
                }
            }
            *done = true;
            stats.files_uploaded.fetch_add(1, Ordering::Relaxed);
            stats.rows_uploaded.fetch_add(file.rows, Ordering::Relaxed);
            tracing::debug!(key = %file.key, rows = file.rows, "audit file stored");
        }
        true
    }

    /// Stores the policy files waiting to be (each a conditional create of its
    /// content-addressed key) and tells the digest chain. A sink that fails for
    /// now is retried at the next round. An object already there with other bytes
    /// is left alone and the digest still lists what custody enforced, so
    /// `custody verify` reports it (`policy_modified`); a refusal retrying cannot
    /// fix (access denied) is logged and the file given up.
    async fn store_policies(&mut self) {
        while let Some(bytes) = self.policies.first() {
            let entry = crate::digest::PolicyEntry::of(bytes);
            match self.shipper.upload(&entry.key, bytes.clone()).await {
                Ok(_) => {
                    tracing::info!(key = %entry.key, "policy file stored on the audit sink");
                }
                Err(e @ crate::ship::ShipError::Conflict { .. }) => {
                    tracing::error!(key = %entry.key, error = %e, "another policy file is stored under this policy's name; left as it is (custody verify reports it)");
                }
                Err(e) if e.is_permanent() => {
                    tracing::error!(key = %entry.key, error = %e, "policy file cannot be stored on the audit sink; given up");
                    self.policies.remove(0);
                    continue;
                }
                Err(e) => {
                    tracing::warn!(key = %entry.key, error = %e, "policy file not stored on the audit sink; retried at the next round");
                    return;
                }
            }
            if let Some(chain) = self.chain.as_mut()
                && let Err(e) = chain.policy_stored(entry)
            {
                tracing::error!(error = %e, "cannot record a stored policy file for the digest chain; no digest will list it");
            }
            self.policies.remove(0);
        }
    }

    /// Writes a digest of what was delivered since the last one; a failure is
    /// logged and retried at the next round.
    async fn digest(&mut self, kind: crate::digest::Kind, deadline: Option<Instant>) {
        let Some(chain) = self.chain.as_mut() else {
            return;
        };
        let write = chain.write(&self.shipper, kind);
        let result = match deadline {
            Some(d) => tokio::time::timeout_at(d.into(), write).await.ok(),
            None => Some(write.await),
        };
        let stats = &self.shared.stats;
        match result {
            Some(Ok(())) => {
                stats.digests_written.fetch_add(1, Ordering::Relaxed);
            }
            Some(Err(e)) => {
                stats.digest_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, ?kind, "audit digest not written; retried at the next round");
            }
            None => {
                stats.digest_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    ?kind,
                    "audit digest not written before the shutdown deadline; the next start writes it"
                );
            }
        }
    }

    fn commit(&mut self, p: Prepared) {
        // Before the segment can go: a rebuild would number its rows the same.
        let oldest_kept = self.shared.spool.sealed_segments().first().map(|s| s.id);
        let first = self.row_seq.first_for(p.segment.id);
        if let Err(e) = self
            .row_seq
            .stored(p.segment.id, first, p.next_seq, oldest_kept)
        {
            tracing::error!(error = %e, "cannot record the next row_seq in the spool; after a restart row numbers may repeat");
        }
        if let Some(chain) = self.chain.as_mut()
            && let Err(e) = chain.delivered(p.files.iter().map(super::files::BuiltFile::entry))
        {
            self.shared
                .stats
                .digest_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "cannot record delivered audit files for the digest chain; no digest will list them");
        }
        self.restored_gaps_spooled(&p.gaps_found);
        let stats = &self.shared.stats;
        self.pairing = p.pairing;
        self.processed = Some(p.segment.id);
        stats.segments_processed.fetch_add(1, Ordering::Relaxed);
        stats
            .damage_gap_rows
            .fetch_add(p.tally.gaps, Ordering::Relaxed);
        stats
            .undecodable_records
            .fetch_add(p.tally.undecodable, Ordering::Relaxed);
        if p.tally.gaps > 0 {
            tracing::warn!(
                segment = p.segment.id,
                gap_rows = p.tally.gaps,
                lost_records = p.tally.lost_records,
                "spool records lost to disk damage reported as gap rows"
            );
        }
    }

    /// Gap rows restored from `GAPS` that the replay found spooled already (by a
    /// process killed before it could clear them): they are not written again.
    fn restored_gaps_spooled(&mut self, found: &[String]) {
        if found.is_empty() {
            return;
        }
        let mut guard = lock(&self.shared.gap);
        let gap = &mut *guard;
        if let Some(w) = gap.windows.writing
            && found.contains(&super::gaps::row_id(w.id))
        {
            gap.windows.writing = None;
            gap.file.store(&gap.windows);
        }
        if let Some(lost) = &gap.lost
            && found.contains(&super::gaps::row_id(lost.id))
        {
            lost.done();
            gap.lost = None;
        }
        drop(guard);
        self.restored_gaps.retain(|id| !found.contains(id));
        tracing::info!(
            rows = found.len(),
            "gap rows spooled before the last restart found in the replay; not written again"
        );
    }

    /// Once the previous process's segments are replayed, its open intents get
    /// `incomplete` completions.
    fn finish_replay(&mut self) {
        if let Some(last) = self.replay_until
            && self.processed.is_some_and(|p| p >= last)
        {
            self.replay_until = None;
            // Not among the replayed rows: they are still to be written.
            self.restored_gaps.clear();
            self.unfinished = self.pairing.end_replay();
            if !self.unfinished.is_empty() {
                tracing::warn!(
                    requests = self.unfinished.len(),
                    "requests forwarded before the last restart never finished; recording them as incomplete"
                );
            }
        }
        let sh = &self.shared;
        while let Some((key, json)) = self.unfinished.first() {
            let payload = match pairing::incomplete_row(json).map(|row| envelope::keyed(*key, &row))
            {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "undecodable intent; no incomplete row");
                    self.pairing.finalized(*key);
                    self.unfinished.remove(0);
                    continue;
                }
            };
            if sh.spool.append_nowait(COMPLETION, &payload).is_err() {
                return;
            }
            self.pairing.finalized(*key);
            self.unfinished.remove(0);
            sh.stats.incomplete_rows.fetch_add(1, Ordering::Relaxed);
            sh.note_row();
        }
    }

    /// Carries open intents forward and deletes the processed segments nothing pins.
    ///
    /// Nothing is released while the previous process's segments are replayed: a
    /// completion read there may still be followed by a copy of its intent that the
    /// previous process carried, and only the replay's end proves there is none.
    async fn release(&mut self) {
        let Some(processed) = self.processed else {
            return;
        };
        if self.replay_until.is_some() {
            return;
        }
        let sh = &self.shared;
        let mut carried = false;
        for (key, json) in self.pairing.to_carry(processed) {
            // Carried only while its completion is not in the spool (checked and
            // appended under the lock completions take): a copy never follows its
            // completion. An intent already completed stays pinned until the
            // completion is read.
            let live = lock(&sh.live);
            if !live.contains(&key) {
                continue;
            }
            if sh
                .spool
                .append_nowait(CARRY, &envelope::keyed_raw(key, &json))
                .is_err()
            {
                break;
            }
            drop(live);
            self.pairing.carried(key);
            sh.stats.intents_carried.fetch_add(1, Ordering::Relaxed);
            carried = true;
        }
        if (carried || !self.unfinished.is_empty()) && sh.fsync && sh.spool.flush().await.is_err() {
            return;
        }
        let limit = match self.pairing.pin() {
            Some(pin) => match pin.checked_sub(1) {
                Some(below) => below.min(processed),
                None => return,
            },
            None => processed,
        };
        let Some(last) = sh
            .spool
            .sealed_segments()
            .into_iter()
            .take_while(|s| s.id <= limit)
            .filter_map(|s| s.last)
            .last()
        else {
            return;
        };
        if let Err(e) = sh.spool.release_through(last) {
            tracing::error!(error = %e, "cannot delete an uploaded audit spool segment");
        }
    }
}

/// A sealed segment's files, built.
pub(crate) struct BuiltSegment {
    /// One file per hour partition.
    pub(crate) files: Vec<BuiltFile>,
    /// What the pairing saw.
    pub(crate) tally: Tally,
    /// Damaged regions skipped (found after open).
    pub(crate) damaged: u64,
    /// The `watch`ed request ids among the segment's rows.
    pub(crate) gaps_found: Vec<String>,
    /// The `row_seq` of the next segment's first row.
    pub(crate) next_seq: i64,
}

/// Reads sealed segment `id` (streamed, blocking reads), pairs its records and
/// builds its Parquet files (named from `(instance, spool id)`): the roller's whole
/// path from a segment to files. Notes which `watch`ed request ids it holds.
pub(crate) fn build_segment(
    spool: &Spool,
    pairing: &mut Pairing,
    id: u64,
    (instance, spool_id): (&str, &str),
    watch: &[String],
    first_seq: i64,
) -> Result<BuiltSegment, String> {
    let reader = spool.read_segment(id).map_err(|e| e.to_string())?;
    // Streamed: a segment is never held in memory whole.
    let mut damaged = 0u64;
    let mut failure = None;
    let records = reader.map_while(|rec| match rec {
        Ok(r) => Some(Some(r)),
        Err(crate::spool::SpoolError::Corrupt { offset, len, .. }) => {
            damaged += 1;
            tracing::error!(
                segment = id,
                offset,
                len,
                "audit spool segment damaged after it was written; skipping the damage"
            );
            Some(None)
        }
        Err(e) => {
            failure = Some(e.to_string());
            None
        }
    });
    let mut files = SegmentFiles::starting_at(first_seq);
    let mut gaps_found = Vec::new();
    let tally = pairing.segment(id, records.flatten(), &mut |row| {
        if !watch.is_empty() && watch.contains(&row.request_id) {
            gaps_found.push(row.request_id.clone());
        }
        files.push(row);
    });
    if let Some(e) = failure {
        return Err(e);
    }
    let next_seq = files.next_seq();
    let files = files
        .finish(instance, spool_id, id)
        .map_err(|e| e.to_string())?;
    Ok(BuiltSegment {
        files,
        tally,
        damaged,
        gaps_found,
        next_seq,
    })
}
