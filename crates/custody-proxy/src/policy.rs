//! The policy stage: after identity and inspection, decide allow or deny with the
//! policy in force, and record the decision, the rule, the scopes that mattered
//! and the policy's version in the row.
//!
//! The policy file (`policy.file`) is loaded at startup (an invalid one stops
//! custody with every problem listed) and then checked every
//! `policy.reload_interval`: when its identity (device, inode, size, modification
//! time — following symlinks, so a Kubernetes ConfigMap's `..data` swap counts) or
//! its content hash changes, it is parsed again; a valid policy replaces the old
//! one atomically, an invalid one is logged with every problem, counted, and the
//! last good policy stays in force. Every row names the version that decided it.
//!
//! Without `policy`, every call is allowed and recorded as such
//! ([`custody_policy::NO_POLICY_RULE`]).

use crate::config::PolicyConfig;
use crate::error::StartError;
use crate::watch::Stamp;
use custody_audit::{AuditRecord, AuditTrail};
use custody_identity::Verified;
use custody_policy::{Input, Policy};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What the policy decided about a call (also recorded in the row's `policy`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// The call may proceed.
    Allow,
    /// The call is refused (403, or a JSON-RPC error on MCP routes).
    Deny {
        /// The rule that denied it (`policy.rule`).
        rule: String,
    },
}

/// The policy in force, and how its reloads went.
#[derive(Debug)]
pub(crate) struct PolicyStage {
    file: Option<PathBuf>,
    current: RwLock<Option<Arc<Policy>>>,
    /// The identity of the file last read.
    seen: RwLock<Option<Stamp>>,
    /// The text of the policy in force, as read.
    source: RwLock<Option<bytes::Bytes>>,
    /// Where each policy in force is written down (`policies/<version>.yaml` on
    /// the audit sink), once the trail has started.
    trail: OnceLock<AuditTrail>,
    pub(crate) reloads: AtomicU64,
    pub(crate) reload_failures: AtomicU64,
}

impl PolicyStage {
    /// Loads the configured policy, or none.
    pub(crate) fn load(config: Option<&PolicyConfig>) -> Result<Self, StartError> {
        let stage = Self {
            file: config.map(|c| c.file.clone()),
            current: RwLock::new(None),
            seen: RwLock::new(None),
            source: RwLock::new(None),
            trail: OnceLock::new(),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
        };
        if let Some(path) = &stage.file {
            let (stamp, text) = read(path).map_err(|message| StartError::Policy {
                path: path.clone(),
                message,
            })?;
            let loaded = Policy::from_yaml(&text).map_err(|e| StartError::Policy {
                path: path.clone(),
                message: e.to_string(),
            })?;
            for warning in &loaded.warnings {
                tracing::warn!(file = %path.display(), %warning, "policy warning");
            }
            tracing::info!(file = %path.display(), version = loaded.policy.version(), rules = loaded.policy.rule_count(), "policy loaded");
            *stage
                .current
                .write()
                .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(loaded.policy));
            *stage.seen.write().unwrap_or_else(PoisonError::into_inner) = Some(stamp);
            *stage.source.write().unwrap_or_else(PoisonError::into_inner) =
                Some(bytes::Bytes::from(text));
        }
        Ok(stage)
    }

    /// Writes the policy in force, and each one a reload puts in force later, to
    /// the audit sink (`policies/<version>.yaml`, listed by the next digest): the
    /// entitlements behind every `policy.version` in the trail can be read back.
    pub(crate) fn publish_to(&self, trail: AuditTrail) {
        let trail = self.trail.get_or_init(|| trail);
        if let Some(text) = self
            .source
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            trail.publish_policy(text);
        }
    }

    /// Whether a policy file is configured (every call is then decided by it).
    pub(crate) fn is_configured(&self) -> bool {
        self.file.is_some()
    }

    /// The version in force, if a policy is configured.
    pub(crate) fn version(&self) -> Option<String> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|p| p.version().to_owned())
    }

    /// Checks the file every `interval` for as long as the stage lives.
    pub(crate) fn spawn_reloader(self: &Arc<Self>, interval: Duration) {
        let Some(path) = self.file.clone() else {
            return;
        };
        let weak = Arc::downgrade(self);
        crate::watch::poll(interval, CancellationToken::new(), move || {
            let Some(stage) = weak.upgrade() else {
                return false;
            };
            stage.reload(&path);
            true
        });
    }

    /// Rereads the file if it changed; swaps in a valid policy, keeps the old one
    /// otherwise.
    fn reload(&self, path: &Path) {
        let stamp = match Stamp::of(path) {
            Ok(s) => s,
            Err(e) => {
                if self
                    .seen
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_some()
                {
                    self.reload_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(file = %path.display(), error = %e, "policy file unreadable; keeping the policy in force");
                    *self.seen.write().unwrap_or_else(PoisonError::into_inner) = None;
                }
                return;
            }
        };
        if *self.seen.read().unwrap_or_else(PoisonError::into_inner) == Some(stamp) {
            return;
        }
        *self.seen.write().unwrap_or_else(PoisonError::into_inner) = Some(stamp);
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                self.reload_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(file = %path.display(), error = %e, "policy file unreadable; keeping the policy in force");
                return;
            }
        };
        match Policy::from_yaml(&text) {
            Ok(loaded) => {
                let old = self.version();
                if old.as_deref() == Some(loaded.policy.version()) {
                    return;
                }
                for warning in &loaded.warnings {
                    tracing::warn!(file = %path.display(), %warning, "policy warning");
                }
                tracing::info!(file = %path.display(), version = loaded.policy.version(), previous = old.as_deref(), "policy reloaded");
                *self.current.write().unwrap_or_else(PoisonError::into_inner) =
                    Some(Arc::new(loaded.policy));
                let text = bytes::Bytes::from(text);
                *self.source.write().unwrap_or_else(PoisonError::into_inner) = Some(text.clone());
                if let Some(trail) = self.trail.get() {
                    trail.publish_policy(text);
                }
                self.reloads.fetch_add(1, Ordering::Relaxed);
            }
            Err(errors) => {
                self.reload_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(file = %path.display(), in_force = self.version().as_deref(), problems = %errors, "invalid policy rejected; keeping the policy in force");
            }
        }
    }

    /// The stage's one entry point: decides the call described by `record`
    /// (principal and action filled in, `action.parameters` not yet redacted) and
    /// records the decision in it.
    pub(crate) fn decide(
        &self,
        record: &mut AuditRecord,
        verified: Option<&Verified>,
        model: Option<&str>,
    ) -> Decision {
        let policy = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(policy) = policy else {
            // No policy: allowed, and the token's scopes stay as identity recorded them.
            record.policy.decision = Some("allow".to_owned());
            record.policy.rule = Some(custody_policy::NO_POLICY_RULE.to_owned());
            return Decision::Allow;
        };
        let decision = policy.evaluate(&Input {
            principal: &record.principal,
            claims: verified.map(|v| &*v.claims),
            token_scopes: verified.and_then(|v| v.scopes.as_deref()),
            action: &record.action,
            model,
            arguments: record.action.parameters.as_deref(),
        });
        let p = &mut record.policy;
        p.decision = Some(decision.as_str().to_owned());
        p.scopes = Some(decision.scopes);
        p.version = Some(decision.version.to_string());
        if decision.allow {
            p.rule = Some(decision.rule);
            Decision::Allow
        } else {
            p.rule = Some(decision.rule.clone());
            Decision::Deny {
                rule: decision.rule,
            }
        }
    }
}

fn read(path: &Path) -> Result<(Stamp, String), String> {
    let stamp = Stamp::of(path).map_err(|e| e.to_string())?;
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    Ok((stamp, text))
}
