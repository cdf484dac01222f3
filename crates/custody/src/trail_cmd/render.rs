//! What `custody trail` prints: a session step by step, a list of sessions, or
//! the newest rows one per line.

use super::gather::SessionSummary;
use custody_audit::read::{TrailRow, rfc3339, spool::IN_FLIGHT};
use std::collections::HashMap;
use std::fmt::Write as _;

/// Dollars with up to 8 decimals, trailing zeros trimmed.
fn usd(v: f64) -> String {
    let s = format!("{v:.8}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("${s}")
}

fn step(r: &TrailRow) -> String {
    r.session_step.map_or("?".to_owned(), |s| s.to_string())
}

/// The text timeline.
pub(super) fn render_text(rows: &[TrailRow]) -> String {
    let by_request: HashMap<&str, &TrailRow> =
        rows.iter().map(|r| (r.request_id.as_str(), r)).collect();
    let mut out = String::new();
    if let Some(first) = rows.first() {
        let start = rows.iter().map(|r| r.event_time).min().unwrap_or_default();
        let end = rows.iter().map(|r| r.event_time).max().unwrap_or_default();
        let _ = writeln!(
            out,
            "session {} ({}): {} call{}, {} .. {}",
            first.session_id.as_deref().unwrap_or("?"),
            first.session_source.as_deref().unwrap_or("source unknown"),
            rows.len(),
            if rows.len() == 1 { "" } else { "s" },
            rfc3339(start),
            rfc3339(end),
        );
    }
    for r in rows {
        render_row(&mut out, r, rows, &by_request);
    }
    render_summary(&mut out, rows);
    out
}

/// The tool, else the operation, else `METHOD path`.
fn what(r: &TrailRow) -> String {
    let a = &r.action;
    a.tool
        .clone()
        .or_else(|| a.operation.clone())
        .unwrap_or_else(|| {
            format!(
                "{} {}",
                a.method.as_deref().unwrap_or("?"),
                a.path.as_deref().unwrap_or("?")
            )
        })
}

fn who(r: &TrailRow) -> String {
    let p = &r.principal;
    let mut who = p.sub.clone().unwrap_or_else(|| "anonymous".to_owned());
    let extra: Vec<&str> = [p.role.as_deref(), p.org.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    if !extra.is_empty() {
        let _ = write!(who, " ({})", extra.join(", "));
    }
    who
}

fn render_row(
    out: &mut String,
    r: &TrailRow,
    rows: &[TrailRow],
    by_request: &HashMap<&str, &TrailRow>,
) {
    let a = &r.action;
    let what = what(r);
    let _ = write!(
        out,
        "#{} {} {} {} {} {} -> {} {}",
        step(r),
        r.time_rfc3339(),
        who(r),
        a.kind.as_deref().unwrap_or("?"),
        a.route.as_deref().unwrap_or("-"),
        what,
        r.outcome.status.map_or("-".to_owned(), |s| s.to_string()),
        r.policy.decision.as_deref().unwrap_or("-"),
    );
    if let Some(rule) = &r.policy.rule {
        let _ = write!(out, " ({rule})");
    }
    out.push('\n');

    let mut detail = |line: String| {
        let _ = writeln!(out, "    {line}");
    };
    let mut request = format!("request {}", r.request_id);
    if let Some(client) = &r.client_request_id {
        let _ = write!(request, " (client id {client})");
    }
    if let Some(ms) = r.outcome.duration_ms {
        let _ = write!(request, ", {ms:.1} ms");
    }
    detail(request);

    let cs = &r.content_safety;
    match cs.redactions.as_deref() {
        Some(items) if !items.is_empty() => {
            let found: Vec<String> = items
                .iter()
                .map(|f| format!("{} x{} at {} ({})", f.kind, f.count, f.path, f.action))
                .collect();
            detail(format!("PII: {}", found.join("; ")));
        }
        _ if cs.pii_detected == Some(true) => detail("PII: detected".to_owned()),
        _ => {}
    }

    let u = &r.usage;
    if u.input_tokens.is_some() || u.output_tokens.is_some() || u.estimated_cost_usd.is_some() {
        let mut line = format!("model {}:", u.model.as_deref().unwrap_or("?"));
        if let Some(n) = u.input_tokens {
            let _ = write!(line, " {n} in");
            if let Some(c) = u.cached_input_tokens.filter(|&c| c > 0) {
                let _ = write!(line, " ({c} cached)");
            }
        }
        if let Some(n) = u.output_tokens {
            let _ = write!(line, " / {n} out");
        }
        line += " tokens, ";
        line += &u.estimated_cost_usd.map_or("cost unknown".to_owned(), usd);
        detail(line);
    } else if let Some(model) = &u.model {
        detail(format!("model {model}"));
    }

    if let Some(calls) = a.model_tool_calls.as_deref().filter(|c| !c.is_empty()) {
        let asked: Vec<String> = calls
            .iter()
            .map(|c| {
                let Some(id) = &c.id else {
                    return c.name.clone();
                };
                let done = rows.iter().find(|t| {
                    t.links.tool_call_id.as_deref() == Some(id.as_str())
                        && t.links.model_request_id.as_deref() == Some(r.request_id.as_str())
                });
                match done {
                    Some(t) => format!("{} ({id}, carried out at step {})", c.name, step(t)),
                    None => format!("{} ({id}, not carried out in this session)", c.name),
                }
            })
            .collect();
        detail(format!("asked for: {}", asked.join(", ")));
    }

    let origin = |model_request: Option<&str>| -> String {
        match model_request {
            None => String::new(),
            Some(req) => match by_request.get(req) {
                Some(m) => format!(" asked at step {} (req {req})", step(m)),
                None => format!(" asked by req {req} (not in this session)"),
            },
        }
    };
    if let Some(id) = &r.links.tool_call_id {
        detail(format!(
            "carries out {id}{}",
            origin(r.links.model_request_id.as_deref())
        ));
    }
    for res in r.links.tool_results.as_deref().unwrap_or_default() {
        let mut line = format!(
            "returns results of {}{}",
            res.tool_call_id,
            origin(res.model_request_id.as_deref())
        );
        let done = rows.iter().find(|t| {
            t.links.tool_call_id.as_deref() == Some(res.tool_call_id.as_str())
                && (res.model_request_id.is_none()
                    || t.links.model_request_id == res.model_request_id)
        });
        if let Some(t) = done {
            let _ = write!(line, ", carried out at step {}", step(t));
        }
        detail(line);
    }

    if let Some(e) = &r.outcome.error {
        detail(format!("error: {e}"));
    }
}

fn render_summary(out: &mut String, rows: &[TrailRow]) {
    let count = |kind: &str| {
        rows.iter()
            .filter(|r| r.action.kind.as_deref() == Some(kind))
            .count()
    };
    let denied = rows
        .iter()
        .filter(|r| r.policy.decision.as_deref() == Some("deny"))
        .count();
    let pii = rows
        .iter()
        .filter(|r| r.content_safety.pii_detected == Some(true))
        .count();
    let input: i64 = rows.iter().filter_map(|r| r.usage.input_tokens).sum();
    let output: i64 = rows.iter().filter_map(|r| r.usage.output_tokens).sum();
    let costs: Vec<f64> = rows
        .iter()
        .filter_map(|r| r.usage.estimated_cost_usd)
        .collect();
    let cost = if costs.is_empty() {
        "cost unknown".to_owned()
    } else {
        usd(costs.iter().sum())
    };
    let _ = writeln!(
        out,
        "total: {} llm, {} tool, {} http; {denied} denied; PII in {pii} call{}; {input} in / {output} out tokens, {cost}",
        count("llm"),
        count("tool"),
        count("http"),
        if pii == 1 { "" } else { "s" },
    );
}

/// Sessions, one per line: id, who, first and last call, rows.
pub(super) fn render_sessions(sessions: &[SessionSummary]) -> String {
    let mut out = String::new();
    for s in sessions {
        let _ = writeln!(
            out,
            "  {}  {}  {} .. {}  {} row{}",
            s.session_id,
            s.sub.as_deref().unwrap_or("anonymous"),
            rfc3339(s.first),
            rfc3339(s.last),
            s.rows,
            if s.rows == 1 { "" } else { "s" },
        );
    }
    out
}

/// Rows of any session, oldest first, one line each:
/// `<time> <session> #<step> <who> <kind> <route> <what> -> <status> <decision> (<rule>)`.
pub(super) fn render_recent(rows: &[TrailRow]) -> String {
    let mut out = String::new();
    for r in rows {
        let _ = write!(
            out,
            "{} {} #{} {} {} {} {} -> {} {}",
            r.time_rfc3339(),
            r.session_id.as_deref().unwrap_or("-"),
            step(r),
            who(r),
            r.action.kind.as_deref().unwrap_or("?"),
            r.action.route.as_deref().unwrap_or("-"),
            what(r),
            r.outcome.status.map_or("-".to_owned(), |s| s.to_string()),
            r.policy.decision.as_deref().unwrap_or("-"),
        );
        if let Some(rule) = &r.policy.rule {
            let _ = write!(out, " ({rule})");
        }
        match r.outcome.error.as_deref() {
            Some(IN_FLIGHT) => out.push_str(" [in flight]"),
            Some(e) => {
                let _ = write!(out, " [error: {e}]");
            }
            None => {}
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_are_trimmed() {
        assert_eq!(usd(0.0000024), "$0.0000024");
        assert_eq!(usd(1.5), "$1.5");
        assert_eq!(usd(0.0), "$0");
    }
}
