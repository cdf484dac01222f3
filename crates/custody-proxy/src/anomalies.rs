//! Unusual use, as each call finishes: the row goes through the per-user detector
//! (`custody-anomaly`), which says which signals it tripped; they are written into
//! the row's `anomalies` column, counted in `custody_anomalies_total{signal}` and
//! logged (signal, score, request id: never the user or a token). The baselines are
//! kept beside the spool (`anomalies.json`, written every `save_interval` and at
//! shutdown) so a restart keeps them (docs/anomalies.md).
//!
//! A call is observed when it carries a verified user: not an anonymous call, and
//! not an identity refusal (whose `sub`, if any, belongs to a token that was not
//! accepted). Its row gets `anomalies` (empty when nothing tripped); other rows keep
//! it null, as do all rows with detection off.

use crate::config::AnomalyConfig;
use crate::metrics::Metrics;
use custody_anomaly::{Detector, Observation};
use custody_audit::read::now_micros;
use custody_audit::{AnomalyFinding, AuditRecord};
use custody_identity::Verified;
use std::hash::BuildHasher;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The detector and what it needs around it.
pub(crate) struct Anomalies {
    detector: Detector,
    offset_minutes: i64,
    /// Keys the token fingerprints: random per process, never written.
    tokens: std::collections::hash_map::RandomState,
    state_file: PathBuf,
}

impl std::fmt::Debug for Anomalies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Anomalies")
            .field("users", &self.detector.users())
            .field("state_file", &self.state_file)
            .finish_non_exhaustive()
    }
}

impl Anomalies {
    /// The detector for `config` (`None` when detection is off), with the
    /// baselines saved by an earlier run (beside `spool_dir` unless configured).
    pub(crate) fn start(config: &AnomalyConfig, spool_dir: &Path) -> Option<Arc<Self>> {
        if !config.enabled {
            return None;
        }
        let state_file = config
            .state_file
            .clone()
            .unwrap_or_else(|| spool_dir.join("anomalies.json"));
        let now = now_micros();
        let settings = config.settings.clone();
        let detector = match std::fs::read(&state_file) {
            Ok(bytes) => match Detector::restore(settings.clone(), &bytes, now) {
                Ok(d) => {
                    tracing::info!(file = %state_file.display(), users = d.users(), "anomaly baselines restored");
                    d
                }
                Err(e) => {
                    tracing::warn!(file = %state_file.display(), error = %e, "anomaly baselines unreadable; starting without them");
                    Detector::new(settings, now)
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Detector::new(settings, now),
            Err(e) => {
                tracing::warn!(file = %state_file.display(), error = %e, "anomaly baselines unreadable; starting without them");
                Detector::new(settings, now)
            }
        };
        Some(Arc::new(Self {
            detector,
            offset_minutes: i64::from(config.utc_offset_minutes),
            tokens: std::collections::hash_map::RandomState::new(),
            state_file,
        }))
    }

    /// A keyed fingerprint of the verified token: its issuer and `jti`, or without
    /// a `jti` its issuer, subject and expiry.
    pub(crate) fn fingerprint(&self, v: &Verified) -> u64 {
        match &v.jti {
            Some(jti) => self.tokens.hash_one((&v.principal.issuer, jti)),
            None => self
                .tokens
                .hash_one((&v.principal.issuer, &v.principal.sub, v.exp)),
        }
    }

    /// Observes the finished call of `record`; writes what it tripped into it.
    pub(crate) fn observe(&self, record: &mut AuditRecord, token: Option<u64>, metrics: &Metrics) {
        let identity_refusal = record
            .policy
            .rule
            .as_deref()
            .is_some_and(|r| r.starts_with("identity:"));
        let Some(user) = record
            .principal
            .sub
            .as_deref()
            .filter(|_| !identity_refusal)
        else {
            return;
        };
        let local = record.event_time.div_euclid(1_000_000) / 60 + self.offset_minutes;
        let target = record.action.tool.as_deref().or(match record.action.kind {
            custody_core::ActionKind::Llm => record
                .action
                .model
                .as_deref()
                .or(record.usage.model.as_deref()),
            _ => None,
        });
        let found = self.detector.observe(&Observation {
            at: record.event_time,
            user: Some(user),
            session: record.session_id.as_deref(),
            target,
            denied: record.policy.decision.as_deref() == Some("deny"),
            pii: record.content_safety.pii_detected == Some(true),
            cost_usd: record.usage.estimated_cost_usd,
            local_hour: (local.rem_euclid(24 * 60) / 60) as u8,
            token,
        });
        for a in &found {
            metrics.anomaly(a.signal);
            tracing::warn!(
                signal = a.signal.name(),
                score = a.score,
                observed = a.observed,
                request_id = %record.request_id,
                "anomalous usage"
            );
        }
        record.anomalies = Some(
            found
                .into_iter()
                .map(|a| AnomalyFinding {
                    signal: a.signal.name().to_owned(),
                    score: a.score,
                    baseline: a.baseline,
                    observed: a.observed,
                })
                .collect(),
        );
    }

    /// Writes the baselines to the state file (atomically: a temporary file
    /// renamed over it).
    pub(crate) fn save(&self) -> std::io::Result<()> {
        let bytes = self.detector.snapshot();
        let tmp = self.state_file.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.state_file)
    }

    /// Saves every `interval` on a blocking thread until `stop`, then once more.
    pub(crate) fn spawn_saver(
        self: &Arc<Self>,
        interval: std::time::Duration,
        stop: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                let stopping = tokio::select! {
                    _ = tick.tick() => false,
                    () = stop.cancelled() => true,
                };
                let saver = Arc::clone(&this);
                let result = tokio::task::spawn_blocking(move || saver.save()).await;
                if let Ok(Err(e)) = result {
                    tracing::warn!(file = %this.state_file.display(), error = %e, "could not save the anomaly baselines");
                }
                if stopping {
                    break;
                }
            }
        })
    }
}
