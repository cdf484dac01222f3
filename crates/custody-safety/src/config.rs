//! The `safety` configuration, typed ([`SafetyConfig`], filled by the proxy's
//! config parser from the section below), and its validated form,
//! [`SafetyPolicy`], which answers "what happens to kind K on route R / tool T".
//! The setting names (`off`, `log`, `redact`, `block`; `label`, `token`) are
//! this crate's: [`Setting`], [`ResponseMode`] and [`StyleName`] deserialize
//! from them.
//!
//! ```yaml
//! safety:
//!   detectors: {EMAIL: redact, CARD: block, IP_ADDRESS: off, "*": log}
//!   routes:  {crm: {detectors: {EMAIL: log}}}
//!   tools:   {"crm:contacts:search": {detectors: {PHONE: redact}, responses: redact}}
//!   custom:
//!     - {name: MRN, regex: 'MRN-\d{7}'}
//!     - {name: CODENAME, terms: [falcon, osprey], case_insensitive: true}
//!   redaction: {style: token, key_file: /var/run/custody/safety-key}
//! ```
//!
//! Precedence, most specific first: the tool's entry for the kind, its `*`;
//! the route's entry, its `*`; the global entry, its `*`; else `log`. `off`
//! ignores the kind there (globally: the detector does not run).
//!
//! `responses` (global, per route, per tool; same precedence; default `log`):
//! with `redact`, a non-streamed response is held until complete, scanned, and
//! every value of a kind that is `redact` or `block` there is redacted before
//! the client sees it (a response cannot be un-sent upstream, so `block` means
//! redact). Streamed responses are always scanned in `log` mode.

use crate::detect::{CustomDetector, Detectors};
use crate::kind::{Action, Kind};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// A per-kind setting: an action, or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Setting {
    /// Ignore this kind here.
    Off,
    /// Record only.
    Log,
    /// Redact the value.
    Redact,
    /// Refuse the request.
    Block,
}

impl Setting {
    fn action(self) -> Option<Action> {
        match self {
            Setting::Off => None,
            Setting::Log => Some(Action::Log),
            Setting::Redact => Some(Action::Redact),
            Setting::Block => Some(Action::Block),
        }
    }
}

/// What happens to responses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResponseMode {
    /// Scanned as they stream by; findings recorded, bytes untouched.
    #[default]
    Log,
    /// Non-streamed responses are held, scanned and redacted (kinds set to
    /// `redact` or `block`) before the client sees them.
    Redact,
}

/// Settings by kind name (`EMAIL`, a custom name, or `*` for every kind).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// Kind name → setting.
    pub detectors: BTreeMap<String, Setting>,
    /// Responses here (unset: the next less specific setting).
    pub responses: Option<ResponseMode>,
}

impl Rules {
    fn lookup(&self, kind: &Kind) -> Option<Setting> {
        self.detectors
            .get(kind.as_str())
            .or_else(|| self.detectors.get("*"))
            .copied()
    }
}

/// How redacted values are replaced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedactionConfig {
    /// `label` (`[REDACTED:EMAIL]`, the default) or `token` (`[EMAIL:…]`,
    /// keyed and deterministic; needs `key_file`).
    pub style: StyleName,
    /// A file holding the HMAC key for `token` (read by the proxy).
    pub key_file: Option<PathBuf>,
}

/// The name of a redaction style.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StyleName {
    /// `[REDACTED:KIND]`.
    #[default]
    Label,
    /// `[KIND:hex]`.
    Token,
}

/// The `safety` section, typed. The default: every detector runs in `log` mode.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SafetyConfig {
    /// Global settings by kind.
    pub detectors: BTreeMap<String, Setting>,
    /// Settings by route name.
    pub routes: BTreeMap<String, Rules>,
    /// Settings by tool name.
    pub tools: BTreeMap<String, Rules>,
    /// Custom detectors.
    pub custom: Vec<CustomDetector>,
    /// Redaction style.
    pub redaction: RedactionConfig,
    /// Responses everywhere unless a route or tool says otherwise (default `log`).
    pub responses: Option<ResponseMode>,
}

/// One problem found by [`SafetyConfig::validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Where, e.g. `safety.routes.crm.detectors.EMALI`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// The validated configuration: compiled detectors and the action lookup.
#[derive(Clone, Debug)]
pub struct SafetyPolicy {
    detectors: Arc<Detectors>,
    global: Rules,
    routes: BTreeMap<String, Rules>,
    tools: BTreeMap<String, Rules>,
    redaction: RedactionConfig,
}

impl Default for SafetyPolicy {
    fn default() -> Self {
        SafetyPolicy {
            detectors: Arc::new(Detectors::builtin()),
            global: Rules::default(),
            routes: BTreeMap::new(),
            tools: BTreeMap::new(),
            redaction: RedactionConfig::default(),
        }
    }
}

impl SafetyConfig {
    /// Checks everything (no I/O) and reports every problem at once.
    pub fn validate(&self) -> Result<SafetyPolicy, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let mut detectors = match Detectors::with_custom(&self.custom) {
            Ok(d) => d,
            Err(e) => {
                problems.push(ConfigProblem {
                    path: "safety.custom".into(),
                    message: e.to_string(),
                });
                Detectors::builtin()
            }
        };
        let known = |name: &str| {
            name == "*"
                || Kind::builtin(name).is_some()
                || self.custom.iter().any(|c| c.name == name)
        };
        let mut check = |path: String, rules: &BTreeMap<String, Setting>| {
            for name in rules.keys().filter(|n| !known(n)) {
                problems.push(ConfigProblem {
                    path: format!("{path}.{name}"),
                    message: "unknown detector".into(),
                });
            }
        };
        check("safety.detectors".into(), &self.detectors);
        for (route, rules) in &self.routes {
            check(format!("safety.routes.{route}.detectors"), &rules.detectors);
        }
        for (tool, rules) in &self.tools {
            check(format!("safety.tools.{tool}.detectors"), &rules.detectors);
        }
        if self.redaction.style == StyleName::Token && self.redaction.key_file.is_none() {
            problems.push(ConfigProblem {
                path: "safety.redaction.key_file".into(),
                message: "style `token` needs a key_file".into(),
            });
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        for kind in Kind::BUILTIN {
            let setting = self
                .detectors
                .get(kind.as_str())
                .or_else(|| self.detectors.get("*"));
            if setting == Some(&Setting::Off) {
                detectors = detectors.without(&kind);
            }
        }
        Ok(SafetyPolicy {
            detectors: Arc::new(detectors),
            global: Rules {
                detectors: self.detectors.clone(),
                responses: self.responses,
            },
            routes: self.routes.clone(),
            tools: self.tools.clone(),
            redaction: self.redaction.clone(),
        })
    }
}

impl SafetyPolicy {
    /// The compiled detectors.
    pub fn detectors(&self) -> &Arc<Detectors> {
        &self.detectors
    }

    /// What happens to `kind` on `route` (and `tool`, if the call is a tool
    /// call); `None` = ignored there.
    pub fn action(&self, route: Option<&str>, tool: Option<&str>, kind: &Kind) -> Option<Action> {
        let tool = tool
            .and_then(|t| self.tools.get(t))
            .and_then(|r| r.lookup(kind));
        let route = route
            .and_then(|r| self.routes.get(r))
            .and_then(|r| r.lookup(kind));
        tool.or(route)
            .or_else(|| self.global.lookup(kind))
            .unwrap_or(Setting::Log)
            .action()
    }

    /// Whether some kind is redacted or blocked on this route / tool: then a
    /// scan failure must refuse the request (fail closed).
    pub fn enforcing(&self, route: Option<&str>, tool: Option<&str>) -> bool {
        Kind::BUILTIN
            .iter()
            .cloned()
            .chain(self.detectors.custom_kinds())
            .any(|k| {
                matches!(
                    self.action(route, tool, &k),
                    Some(Action::Redact | Action::Block)
                )
            })
    }

    /// Whether some kind is redacted or blocked on this route for some call on it
    /// (the route's own rules, or any tool's): what custody cannot read on such a
    /// route it cannot let pass, since it cannot tell which rules would apply.
    pub fn enforcing_on_route(&self, route: &str) -> bool {
        self.enforcing(Some(route), None)
            || self
                .tools
                .keys()
                .any(|tool| self.enforcing(Some(route), Some(tool)))
    }

    /// Whether non-streamed responses on this route / tool are redacted.
    pub fn redacts_responses(&self, route: Option<&str>, tool: Option<&str>) -> bool {
        let tool = tool
            .and_then(|t| self.tools.get(t))
            .and_then(|r| r.responses);
        let route = route
            .and_then(|r| self.routes.get(r))
            .and_then(|r| r.responses);
        tool.or(route).or(self.global.responses).unwrap_or_default() == ResponseMode::Redact
    }

    /// The routes and the tools with rules of their own (for summaries).
    pub fn overrides(&self) -> (Vec<&str>, Vec<&str>) {
        (
            self.routes.keys().map(String::as_str).collect(),
            self.tools.keys().map(String::as_str).collect(),
        )
    }

    /// The configured redaction style and key file (the proxy reads the file
    /// and builds a [`RedactStyle`](crate::RedactStyle)).
    pub fn redaction(&self) -> &RedactionConfig {
        &self.redaction
    }
}

#[cfg(test)]
mod tests;
