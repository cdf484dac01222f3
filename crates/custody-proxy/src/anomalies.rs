//! Unusual use, as each call finishes: the row goes through the per-user detector
//! (`custody-anomaly`), which says which signals it tripped; they are written into
//! the row's `anomalies` column, counted in `custody_anomalies_total{signal}` and
//! logged (signal, score, request id: never the user or a token). The baselines are
//! kept beside the spool (`anomalies.json`, written every `save_interval` and at
//! shutdown) so a restart keeps them (docs/anomalies.md).
//!
//! A call is observed when it carries a verified user: not an anonymous call, not
//! an identity refusal (whose `sub`, if any, belongs to a token that was not
//! accepted), and not a call refused by a cool-down. Its row gets `anomalies`
//! (empty when nothing tripped); other rows keep it null, as do all rows with
//! detection off.
//!
//! With `anomalies.action`, a call that trips one of the chosen signals starts a
//! **cool-down** for its user: until it ends, the pipeline refuses that user's
//! calls at once (stage 6b; 403, or 429 with `Retry-After`), recorded as a denial by
//! rule `anomaly:<signal>`. The users cooling down are a bounded map
//! ([`CoolDowns`]).

use crate::config::{AnomalyAction, AnomalyConfig, CoolDownResponse};
use crate::error::ProxyError;
use crate::metrics::Metrics;
use custody_anomaly::{Detector, Observation, Signal};
use custody_audit::read::now_micros;
use custody_audit::{AnomalyFinding, AuditRecord};
use custody_identity::Verified;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The rule prefix of a cool-down refusal (`anomaly:rate_spike`).
pub(crate) const RULE_PREFIX: &str = "anomaly:";

/// The detector and what it needs around it.
pub(crate) struct Anomalies {
    detector: Detector,
    /// The zone of users' usual hours.
    zone: jiff::tz::TimeZone,
    cool_downs: CoolDowns,
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
            zone: config.time_zone.clone(),
            cool_downs: CoolDowns::new(config.action.clone(), config.settings.max_users),
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
        let not_observed = record
            .policy
            .rule
            .as_deref()
            .is_some_and(|r| r.starts_with("identity:") || r.starts_with(RULE_PREFIX));
        let Some(user) = record.principal.sub.as_deref().filter(|_| !not_observed) else {
            return;
        };
        let seconds = record.event_time.div_euclid(1_000_000);
        let offset = jiff::Timestamp::from_second(seconds)
            .map(|at| self.zone.to_offset(at).seconds())
            .unwrap_or(0);
        let local = (seconds + i64::from(offset)).div_euclid(60);
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
            self.cool_downs.start(user, a.signal, record.event_time);
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

    /// A refusal for `record`'s user while they are cooling down after a call that
    /// tripped an acting signal (`jsonrpc`: the MCP requests to answer, asked for
    /// only then). While nobody cools down this reads one atomic: no clock, no lock.
    pub(crate) fn cooling_down(
        &self,
        record: &AuditRecord,
        jsonrpc: impl FnOnce() -> Option<crate::error::JsonRpcCall>,
    ) -> Option<ProxyError> {
        if !self.cool_downs.any() {
            return None;
        }
        let user = record.principal.sub.as_deref()?;
        let (signal, left) = self.cool_downs.check(user, now_micros())?;
        Some(ProxyError::CoolingDown {
            signal: signal.name(),
            // Whole seconds, rounded up: a client that waits that long is let in.
            retry_after: (left.max(1) as u64).div_ceil(1_000_000),
            throttle: self.cool_downs.action.response == CoolDownResponse::Throttle,
            jsonrpc: jsonrpc(),
        })
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

/// The users whose calls are refused for a while: user → (until, signal), at most
/// `cap` of them. Empty unless `anomalies.action` names signals, and then looked at
/// without a lock while nobody is cooling down.
struct CoolDowns {
    action: AnomalyAction,
    cap: usize,
    users: Mutex<HashMap<String, (i64, Signal)>>,
    /// Entries in `users`, read before taking the lock.
    entries: AtomicUsize,
}

impl CoolDowns {
    fn new(action: AnomalyAction, cap: usize) -> Self {
        Self {
            action,
            cap: cap.max(1),
            users: Mutex::new(HashMap::new()),
            entries: AtomicUsize::new(0),
        }
    }

    /// A call by `user` at `at` tripped `signal`: if it acts, the user cools down
    /// until `at + cool_down` (or longer, if already). At the cap, expired entries
    /// go first, then the one ending soonest.
    fn start(&self, user: &str, signal: Signal, at: i64) {
        if !self.action.signals.contains(&signal) {
            return;
        }
        let until = at.saturating_add(self.action.cool_down.as_micros() as i64);
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        if !users.contains_key(user) && users.len() >= self.cap {
            let now = now_micros();
            users.retain(|_, (end, _)| *end > now);
            if users.len() >= self.cap
                && let Some(soonest) = users
                    .iter()
                    .min_by_key(|(_, (end, _))| *end)
                    .map(|(k, _)| k.clone())
            {
                users.remove(&soonest);
            }
        }
        let entry = users.entry(user.to_owned()).or_insert((until, signal));
        if entry.0 < until {
            *entry = (until, signal);
        }
        self.entries.store(users.len(), Ordering::Release);
        tracing::warn!(
            signal = signal.name(),
            cool_down_s = self.action.cool_down.as_secs(),
            "anomaly action: a user's calls are refused for the cool-down"
        );
    }

    /// Whether anyone may be cooling down (one atomic read).
    fn any(&self) -> bool {
        self.entries.load(Ordering::Acquire) > 0
    }

    /// `(signal, µs left)` while `user` cools down at `now`; an ended cool-down is
    /// removed.
    fn check(&self, user: &str, now: i64) -> Option<(Signal, i64)> {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let &(until, signal) = users.get(user)?;
        if until > now {
            return Some((signal, until - now));
        }
        users.remove(user);
        self.entries.store(users.len(), Ordering::Release);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::{AnomalyAction, CoolDowns, Signal};
    use crate::config::CoolDownResponse;
    use std::time::Duration;

    fn cool_downs(cap: usize) -> CoolDowns {
        CoolDowns::new(
            AnomalyAction {
                signals: vec![Signal::RateSpike, Signal::TokenFanout],
                response: CoolDownResponse::Throttle,
                cool_down: Duration::from_secs(60),
            },
            cap,
        )
    }

    #[test]
    fn only_acting_signals_start_a_cool_down_and_it_ends() {
        let c = cool_downs(10);
        let t = custody_audit::read::now_micros();
        c.start("ana", Signal::FirstUse, t);
        assert_eq!(c.check("ana", t + 1), None);
        c.start("ana", Signal::RateSpike, t);
        assert_eq!(
            c.check("ana", t + 1_000_000),
            Some((Signal::RateSpike, 59_000_000))
        );
        assert_eq!(c.check("bob", t + 1_000_000), None);
        // A later trip extends it; an earlier one does not shorten it.
        c.start("ana", Signal::TokenFanout, t + 30_000_000);
        c.start("ana", Signal::RateSpike, t);
        assert_eq!(
            c.check("ana", t + 60_000_000),
            Some((Signal::TokenFanout, 30_000_000))
        );
        assert_eq!(c.check("ana", t + 90_000_000), None);
        assert_eq!(c.entries.load(std::sync::atomic::Ordering::Acquire), 0);
    }

    #[test]
    fn the_map_is_bounded_and_keeps_the_longest() {
        let c = cool_downs(3);
        let t = custody_audit::read::now_micros();
        for (i, user) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            c.start(user, Signal::RateSpike, t + i as i64 * 1_000_000);
        }
        assert_eq!(c.users.lock().expect("lock").len(), 3);
        let now = t + 5_000_000;
        assert!(c.check("a", now).is_none() && c.check("b", now).is_none());
        assert!(c.check("e", now).is_some() && c.check("c", now).is_some());
    }
}
