//! Validation of the `inspection` section and of the routes' inspection settings
//! (`tools`, `force_stream_usage`).

use super::InspectionConfig;
use super::collect::deserialize_at;
use super::problems::Problems;
use super::raw::{RawInspection, RawToolMapping};
use super::units::parse_size;
use custody_core::RouteKind;
use custody_inspect::{Limits, PriceFile, PriceTable, ToolMap, ToolMapping};
use std::sync::Arc;

/// A size within `range` bytes, or the default (recording the problem).
fn size(
    value: Option<&super::raw::NumberOrText>,
    at: &str,
    default: usize,
    range: std::ops::RangeInclusive<u64>,
    issues: &mut Problems,
) -> usize {
    let Some(value) = value else { return default };
    match parse_size(&value.text()) {
        Ok(n) if range.contains(&n) => usize::try_from(n).unwrap_or(default),
        Ok(n) => {
            issues.push(
                at,
                format!(
                    "{n} bytes is outside {}..={} bytes",
                    range.start(),
                    range.end()
                ),
            );
            default
        }
        Err(m) => {
            issues.push(at, m);
            default
        }
    }
}

pub(crate) fn validate_inspection(raw: RawInspection, issues: &mut Problems) -> InspectionConfig {
    let defaults = Limits::default();
    let limits = Limits {
        max_parameters_bytes: size(
            raw.max_parameters.as_ref(),
            "inspection.max_parameters",
            defaults.max_parameters_bytes,
            256..=(1 << 20),
            issues,
        ),
        max_body_bytes: size(
            raw.max_body.as_ref(),
            "inspection.max_body",
            defaults.max_body_bytes,
            (1 << 10)..=(64 << 20),
            issues,
        ),
        max_event_bytes: size(
            raw.max_event.as_ref(),
            "inspection.max_event",
            defaults.max_event_bytes,
            (1 << 10)..=(16 << 20),
            issues,
        ),
    };
    let builtin = PriceTable::builtin();
    let prices = match raw.prices {
        None | Some(serde_yaml_ng::Value::Null) => builtin,
        // Read like a section (every structural problem with its path), then
        // checked as a whole (every bad price and dangling alias).
        Some(doc) => match deserialize_at::<PriceFile>("inspection.prices", doc, issues) {
            None => builtin,
            Some(file) => match PriceTable::builtin().with_document(file) {
                Ok(table) => table,
                Err(problems) => {
                    for p in problems {
                        let message = p.to_string();
                        issues.push(
                            "inspection.prices",
                            message.trim_start_matches("prices: ").to_owned(),
                        );
                    }
                    builtin
                }
            },
        },
    };
    InspectionConfig {
        limits,
        prices: Arc::new(prices),
    }
}

/// `routes[i].tools` and `routes[i].force_stream_usage`, checked against the kind.
pub(crate) fn validate_route_inspection(
    kind: RouteKind,
    tools: Vec<RawToolMapping>,
    force_stream_usage: Option<bool>,
    at: &dyn Fn(&str) -> String,
    issues: &mut Problems,
) -> Option<(Arc<ToolMap>, bool)> {
    let start = issues.len();
    if !tools.is_empty() && kind != RouteKind::Http {
        issues.push(
            at("tools"),
            format!("tool mappings apply to kind: http routes, not {kind}"),
        );
    }
    if force_stream_usage.is_some() && kind != RouteKind::Openai {
        issues.push(
            at("force_stream_usage"),
            format!("applies to kind: openai routes, not {kind}"),
        );
    }
    let mut mappings = Vec::with_capacity(tools.len());
    for (j, t) in tools.into_iter().enumerate() {
        let here = at(&format!("tools[{j}]"));
        if t.tool.trim().is_empty() {
            issues.push(format!("{here}.tool"), "must not be empty");
        }
        let method = t.method.trim().to_ascii_uppercase();
        if method.is_empty() || http::Method::from_bytes(method.as_bytes()).is_err() {
            issues.push(
                format!("{here}.method"),
                format!("{:?} is not an HTTP method (or * for any)", t.method),
            );
        }
        // Each template on its own, so every bad one is reported with its index.
        if let Err(e) = ToolMap::new(vec![ToolMapping {
            method: method.clone(),
            path: t.path.clone(),
            tool: t.tool.clone(),
        }]) {
            issues.push(format!("{here}.path"), e.to_string());
        }
        mappings.push(ToolMapping {
            method,
            path: t.path,
            tool: t.tool,
        });
    }
    if issues.len() > start {
        return None;
    }
    match ToolMap::new(mappings) {
        // On by default for OpenAI routes: without it a stream that did not ask for
        // `include_usage` leaves its row without tokens or cost (spend undercounted).
        Ok(map) => Some((
            Arc::new(map),
            force_stream_usage.unwrap_or(kind == RouteKind::Openai),
        )),
        Err(e) => {
            issues.push(at("tools"), e.to_string());
            None
        }
    }
}
