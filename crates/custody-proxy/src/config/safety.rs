//! The `safety` section as written, and its translation into custody-safety's
//! typed [`SafetyConfig`], which that crate validates into the [`SafetyPolicy`]
//! the request path consults. The proxy adds the one check the crate cannot make:
//! every route named under `safety.routes` exists.

use super::RouteConfig;
use super::problems::Problems;
use custody_safety::{
    CustomDetector, RedactionConfig, ResponseMode, Rules, SafetyConfig, SafetyPolicy, Setting,
    StyleName,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `safety` as written; every key optional. Absent, every detector runs in
/// `log` mode.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawSafety {
    detectors: BTreeMap<String, Setting>,
    routes: BTreeMap<String, RawRules>,
    tools: BTreeMap<String, RawRules>,
    custom: Vec<RawCustom>,
    redaction: RawRedaction,
    responses: Option<ResponseMode>,
}

/// `safety.routes.<name>` and `safety.tools.<name>`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawRules {
    detectors: BTreeMap<String, Setting>,
    responses: Option<ResponseMode>,
}

/// `safety.redaction`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawRedaction {
    style: StyleName,
    key_file: Option<PathBuf>,
}

/// One entry of `safety.custom`: `name` is required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCustom {
    name: String,
    #[serde(default)]
    regex: Option<String>,
    #[serde(default)]
    terms: Option<Vec<String>>,
    #[serde(default)]
    case_insensitive: bool,
}

impl From<RawRules> for Rules {
    fn from(raw: RawRules) -> Self {
        Rules {
            detectors: raw.detectors,
            responses: raw.responses,
        }
    }
}

impl From<RawSafety> for SafetyConfig {
    fn from(raw: RawSafety) -> Self {
        let rules = |m: BTreeMap<String, RawRules>| -> BTreeMap<String, Rules> {
            m.into_iter().map(|(k, r)| (k, r.into())).collect()
        };
        SafetyConfig {
            detectors: raw.detectors,
            routes: rules(raw.routes),
            tools: rules(raw.tools),
            custom: raw
                .custom
                .into_iter()
                .map(|c| CustomDetector {
                    name: c.name,
                    regex: c.regex,
                    terms: c.terms,
                    case_insensitive: c.case_insensitive,
                })
                .collect(),
            redaction: RedactionConfig {
                style: raw.redaction.style,
                key_file: raw.redaction.key_file,
            },
            responses: raw.responses,
        }
    }
}

/// The section's policy: route names checked here, everything else by
/// [`SafetyConfig::validate`]. With problems, the default policy (they are
/// reported, and the config is refused as a whole).
pub(crate) fn validate_safety(
    raw: RawSafety,
    routes: &[RouteConfig],
    issues: &mut Problems,
) -> SafetyPolicy {
    for name in raw.routes.keys() {
        if !routes.iter().any(|r| &r.name == name) {
            issues.push(format!("safety.routes.{name}"), "no route has this name");
        }
    }
    match SafetyConfig::from(raw).validate() {
        Ok(policy) => policy,
        Err(problems) => {
            for p in problems {
                issues.push(p.path, p.message);
            }
            SafetyPolicy::default()
        }
    }
}

#[cfg(test)]
mod tests;
