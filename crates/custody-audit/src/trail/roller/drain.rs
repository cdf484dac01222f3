//! The roller at a shutdown or a flush: [`Roller::drain`] uploads until nothing is
//! left or the deadline passes, retrying a failing sink with backoff, and reports
//! what it left behind (rows counted in the spool; abandoned when the spool is
//! ephemeral).

use super::Roller;
use crate::trail::envelope;
use crate::trail::{StopReport, lock};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

impl Roller {
    /// Seals, builds and uploads until nothing is left or the deadline passes. With
    /// a deadline (shutdown), a failed upload round is retried with backoff (250 ms
    /// doubling to 2 s) until the deadline: a sink down for a moment must not cost
    /// the rows of a pod whose spool goes with it. Without one (a flush), one failed
    /// round ends it.
    pub(super) async fn drain(&mut self, deadline: Option<Instant>) -> StopReport {
        self.retry_at = None;
        let mut drained = false;
        let mut rounds = 0u32;
        let mut backoff = Duration::from_millis(250);
        loop {
            rounds += 1;
            let idle = self.round(true, deadline).await;
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                break;
            }
            if idle {
                let pending = self.shared.unsealed_rows.load(Ordering::Relaxed) > 0
                    || !lock(&self.shared.overflow).is_empty()
                    || lock(&self.shared.gap).pending()
                    || !self.unfinished.is_empty()
                    || !self.policies.is_empty()
                    || self.replay_until.is_some();
                if !pending {
                    drained = true;
                    break;
                }
                if rounds >= 8 {
                    match deadline {
                        None => break,
                        // Waiting on something else (rows still arriving): no spin.
                        Some(d) => tokio::time::sleep(Duration::from_millis(50).min(d - now)).await,
                    }
                }
                continue;
            }
            let Some(d) = deadline else { break };
            let wait = backoff.min(d - now);
            self.shared
                .stats
                .shutdown_upload_retries
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                retry_in_ms = wait.as_millis() as u64,
                left_ms = (d - now).as_millis() as u64,
                "audit upload failed while shutting down; retrying until the deadline"
            );
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
        let stats = &self.shared.stats;
        let waiting = lock(&self.shared.overflow).len() as u64;
        let rows_left = if drained || deadline.is_none() {
            0
        } else {
            self.rows_in_spool()
        };
        let abandoned = if self.shared.ephemeral { rows_left } else { 0 };
        let report = StopReport {
            drained,
            backlog_bytes: self.shared.spool.backlog_bytes(),
            rows_left,
            rows_lost: waiting,
            rows_abandoned: abandoned,
        };
        if deadline.is_some() {
            if waiting > 0 {
                stats.rows_lost.fetch_add(waiting, Ordering::Relaxed);
                tracing::error!(
                    rows = waiting,
                    "audit spool never had room for these rows; lost"
                );
            }
            let (pending, unwritten) = {
                let gap = lock(&self.shared.gap);
                (gap.pending(), gap.windows.count())
            };
            if pending {
                tracing::warn!(
                    requests = unwritten,
                    "the gap row for requests not recorded could not be spooled before exit; their count is kept for the next start"
                );
            }
            let retries = stats.shutdown_upload_retries.load(Ordering::Relaxed);
            if drained {
                tracing::info!(
                    backlog_bytes = report.backlog_bytes,
                    retries,
                    "audit trail uploaded; spool drained"
                );
            } else if self.shared.ephemeral {
                stats.rows_abandoned.fetch_add(abandoned, Ordering::Relaxed);
                tracing::error!(
                    rows = rows_left,
                    backlog_bytes = report.backlog_bytes,
                    retries,
                    "audit upload not finished before the deadline; the spool is ephemeral (audit.spool.ephemeral) and goes with the pod: these rows are lost"
                );
            } else {
                tracing::warn!(
                    rows = rows_left,
                    backlog_bytes = report.backlog_bytes,
                    open_intents = self.pairing.open_count(),
                    retries,
                    "audit upload not finished before the deadline; the rest stays spooled for the next start"
                );
            }
        }
        report
    }

    /// The rows the spool still holds, as a next start would upload them: final
    /// rows (completions and rows without an intent), plus one `incomplete` row per
    /// intent (or carried intent) without its completion. Reads every segment: only
    /// for a shutdown that could not upload everything.
    fn rows_in_spool(&self) -> u64 {
        let spool = &self.shared.spool;
        let mut rows = 0u64;
        let mut open = std::collections::HashSet::new();
        let mut completed = std::collections::HashSet::new();
        for segment in spool.segments() {
            let reader = match spool.read_segment(segment.id) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(segment = segment.id, error = %e, "cannot count the rows of a spool segment");
                    continue;
                }
            };
            for record in reader.flatten() {
                match record.kind {
                    k if k == envelope::INTENT => {
                        open.insert(record.pos.seq);
                    }
                    k if k == envelope::CARRY => {
                        if let Some((key, _)) = envelope::split_keyed(&record.payload) {
                            open.insert(key);
                        }
                    }
                    k if k == envelope::COMPLETION => {
                        rows += 1;
                        if let Some((key, _)) = envelope::split_keyed(&record.payload) {
                            completed.insert(key);
                        }
                    }
                    k if k == envelope::ROW => rows += 1,
                    _ => {}
                }
            }
        }
        rows + open.difference(&completed).count() as u64
    }
}
