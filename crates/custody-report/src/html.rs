//! A report as one self-contained HTML page: inline CSS and inline SVG charts, no
//! script, nothing fetched when it is opened (its Content-Security-Policy forbids
//! it), readable on screen and printable (each section starts a page). Every figure
//! and table cell carries a `data-` name, so a test (or a script) can read it back.

use crate::model::*;
use std::fmt::Write as _;

/// The page.
pub fn render(r: &Report) -> String {
    let mut h = String::with_capacity(64 << 10);
    let title = format!(
        "custody audit report: {} to {}",
        r.period.from_local, r.period.to_local
    );
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{CSS}</style></head><body>\n",
        esc(&title)
    );
    let _ = writeln!(
        h,
        "<header><h1>AI agent audit report</h1><p>Period <b>{}</b> to <b>{}</b> ({}; the end excluded), compared with the period of equal length before it. Trail: <code>{}</code>. Generated {} by custody report.</p></header>",
        esc(&r.period.from_local),
        esc(&r.period.to_local),
        esc(&r.period.tz),
        esc(&r.sink),
        esc(&r.generated)
    );
    coverage(&mut h, r);
    access(&mut h, r);
    monitoring(&mut h, r);
    data_protection(&mut h, r);
    incidents(&mut h, r);
    cost(&mut h, r);
    h.push_str("</body></html>\n");
    h
}

const CSS: &str = "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1b1f24;max-width:1100px;margin:2em auto;padding:0 1em}\
h1{font-size:1.6em;margin:0 0 .3em}h2{font-size:1.3em;border-bottom:2px solid #d0d7de;padding-bottom:.2em;margin-top:2em}h3{font-size:1.05em;margin:1.4em 0 .4em}\
table{border-collapse:collapse;width:100%;margin:.4em 0 1em;font-size:13px}th,td{border:1px solid #d0d7de;padding:3px 6px;text-align:left;vertical-align:top}\
th{background:#f3f5f7}td.n{text-align:right;font-variant-numeric:tabular-nums}code{font-size:12px;word-break:break-all}\
dl.figures{display:flex;flex-wrap:wrap;gap:.6em;margin:.6em 0}dl.figures div{border:1px solid #d0d7de;border-radius:6px;padding:.4em .8em;min-width:9em}\
dt{font-size:12px;color:#57606a}dd{margin:0;font-size:1.3em;font-weight:600}\
.ok{background:#e6f4ea;border:1px solid #1a7f37;padding:.5em .8em;border-radius:6px}.bad{background:#fdecea;border:1px solid #cf222e;padding:.5em .8em;border-radius:6px}\
.none{background:#f6f8fa;border:1px solid #d0d7de;padding:.5em .8em;border-radius:6px}p.note{color:#57606a;font-size:12px}svg{max-width:100%;height:auto}\
.sig{display:inline-block;background:#fff1e5;border:1px solid #bc4c00;border-radius:4px;padding:0 4px;margin:0 2px 2px 0;font-size:12px}\
@media print{body{margin:0;max-width:none}section{break-before:page}header+section{break-before:auto}table{font-size:10px}}";

fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn usd(v: f64) -> String {
    format!("{v:.4}")
}

fn figures(h: &mut String, items: &[(&str, &str, String)]) {
    h.push_str("<dl class=\"figures\">");
    for (name, label, value) in items {
        let _ = write!(
            h,
            "<div><dt>{}</dt><dd data-figure=\"{name}\">{}</dd></div>",
            esc(label),
            esc(value)
        );
    }
    h.push_str("</dl>\n");
}

/// A table: `name`, headers (column name, label, numeric), rows of cells.
fn table(h: &mut String, name: &str, columns: &[(&str, &str, bool)], rows: &[Vec<String>]) {
    if rows.is_empty() {
        let _ = writeln!(
            h,
            "<p class=\"note\" data-table=\"{name}\" data-rows=\"0\">None in the period.</p>"
        );
        return;
    }
    let _ = write!(
        h,
        "<table data-table=\"{name}\" data-rows=\"{}\"><thead><tr>",
        rows.len()
    );
    for (_, label, _) in columns {
        let _ = write!(h, "<th>{}</th>", esc(label));
    }
    h.push_str("</tr></thead><tbody>");
    for row in rows {
        h.push_str("<tr>");
        for ((col, _, numeric), cell) in columns.iter().zip(row) {
            let class = if *numeric { " class=\"n\"" } else { "" };
            let _ = write!(h, "<td data-col=\"{col}\"{class}>{}</td>", esc(cell));
        }
        h.push_str("</tr>");
    }
    h.push_str("</tbody></table>\n");
}

const BLUE: &str = "#0969da";
const RED: &str = "#cf222e";
const GREY: &str = "#8c959f";

/// A horizontal bar chart: one row per label, one bar segment per series (name,
/// colour).
fn chart(
    h: &mut String,
    name: &str,
    title: &str,
    series: &[(&str, &str)],
    rows: &[(String, Vec<f64>)],
) {
    if rows.is_empty() {
        return;
    }
    let rows = &rows[..rows.len().min(15)];
    let label_w = 220.0;
    let bar_w = 460.0;
    let row_h = 20.0;
    let top = 28.0;
    let height = top + row_h * rows.len() as f64 + 8.0;
    let max = rows
        .iter()
        .map(|(_, v)| v.iter().sum::<f64>())
        .fold(0.0_f64, f64::max)
        .max(f64::MIN_POSITIVE);
    let _ = write!(
        h,
        "<figure><svg data-chart=\"{name}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"760\" height=\"{height}\" viewBox=\"0 0 760 {height}\" role=\"img\" aria-label=\"{}\"><title>{}</title>",
        esc(title),
        esc(title)
    );
    let mut x = label_w;
    for (s, color) in series {
        let _ = write!(
            h,
            "<rect x=\"{x}\" y=\"6\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{}\" y=\"15\" font-size=\"11\">{}</text>",
            x + 14.0,
            esc(s)
        );
        x += 24.0 + 7.0 * s.len() as f64;
    }
    for (i, (label, values)) in rows.iter().enumerate() {
        let y = top + row_h * i as f64;
        let shown: String = label.chars().take(34).collect();
        let _ = write!(
            h,
            "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            label_w - 6.0,
            y + 13.0,
            esc(&shown)
        );
        let mut x = label_w;
        for (j, v) in values.iter().enumerate() {
            let w = bar_w * v / max;
            if w > 0.0 {
                let _ = write!(
                    h,
                    "<rect x=\"{x:.1}\" y=\"{}\" width=\"{w:.1}\" height=\"{}\" fill=\"{}\"/>",
                    y + 2.0,
                    row_h - 6.0,
                    series.get(j).map_or(GREY, |s| s.1)
                );
            }
            x += w;
        }
        let total: f64 = values.iter().sum();
        let text = if total.fract() == 0.0 {
            format!("{total:.0}")
        } else {
            format!("{total:.4}")
        };
        let _ = write!(
            h,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\">{text}</text>",
            x + 4.0,
            y + 13.0
        );
    }
    let _ = writeln!(
        h,
        "</svg><figcaption class=\"note\">{}</figcaption></figure>",
        esc(title)
    );
}

fn counts(h: &mut String, name: &str, label: &str, items: &[Count]) {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|c| vec![c.key.clone(), c.count.to_string()])
        .collect();
    table(
        h,
        name,
        &[("key", label, false), ("count", "count", true)],
        &rows,
    );
}

fn coverage(h: &mut String, r: &Report) {
    let c = &r.coverage;
    h.push_str("<section id=\"coverage\"><h2>Coverage and integrity</h2>\n");
    let i = &c.integrity;
    let class = match (i.checked, i.verifies) {
        (false, _) => "none",
        (true, true) => "ok",
        (true, false) => "bad",
    };
    let _ = writeln!(
        h,
        "<p class=\"{class}\" data-figure=\"integrity\">{}</p>",
        esc(&i.summary)
    );
    figures(
        h,
        &[
            (
                "files",
                "Audit files read (the period and the one before)",
                c.files.to_string(),
            ),
            ("rows", "Rows in the period", c.rows.to_string()),
            (
                "housekeeping_rows",
                "of them protocol housekeeping",
                c.housekeeping_rows.to_string(),
            ),
            ("gap_rows", "Gap rows", c.gap_rows.to_string()),
            (
                "not_recorded",
                "Requests or records not recorded (gap rows say)",
                c.not_recorded.to_string(),
            ),
            (
                "incomplete_rows",
                "Incomplete rows (custody restarted)",
                c.incomplete_rows.to_string(),
            ),
            (
                "files_unreadable",
                "Files unreadable",
                c.files_unreadable.to_string(),
            ),
        ],
    );
    let _ = writeln!(
        h,
        "<p>First row {}, last row {} (times in tables are UTC, RFC 3339).</p>",
        esc(c.first_row.as_deref().unwrap_or("none")),
        esc(c.last_row.as_deref().unwrap_or("none"))
    );
    h.push_str("<h3>Rows by schema version</h3>");
    counts(h, "schema_versions", "schema version", &c.schema_versions);
    if !i.findings.is_empty() {
        h.push_str("<h3>Integrity findings</h3>");
        let rows: Vec<Vec<String>> = i
            .findings
            .iter()
            .map(|f| vec![f.kind.clone(), f.key.clone(), f.detail.clone()])
            .collect();
        table(
            h,
            "integrity_findings",
            &[
                ("kind", "finding", false),
                ("key", "object", false),
                ("detail", "detail", false),
            ],
            &rows,
        );
    }
    if !c.unreadable.is_empty() {
        h.push_str("<h3>Files that could not be read</h3>");
        let rows: Vec<Vec<String>> = c
            .unreadable
            .iter()
            .map(|u| vec![u.key.clone(), u.error.clone()])
            .collect();
        table(
            h,
            "unreadable",
            &[("key", "file", false), ("error", "error", false)],
            &rows,
        );
    }
    h.push_str("</section>\n");
}

fn access(h: &mut String, r: &Report) {
    let a = &r.access;
    h.push_str("<section id=\"access\"><h2>Access controls</h2>\n<p>Who called which tool or model, and what the policy decided. <i>Refused</i>: stopped before identity and policy (malformed, too large, no route).</p>\n");
    figures(
        h,
        &[
            (
                "users_targets_total",
                "Distinct user × tool/model pairs",
                a.users_targets_total.to_string(),
            ),
            (
                "denials",
                "Denials",
                a.denials_by_rule
                    .iter()
                    .map(|c| c.count)
                    .sum::<u64>()
                    .to_string(),
            ),
            (
                "policy_versions",
                "Policy versions in force",
                a.policy_versions.len().to_string(),
            ),
            (
                "first_use_total",
                "First uses",
                a.first_use_total.to_string(),
            ),
        ],
    );
    let bars: Vec<(String, Vec<f64>)> = a
        .users_targets
        .iter()
        .map(|u| {
            (
                format!("{} · {}", u.user, u.target),
                vec![u.allowed as f64, u.denied as f64, u.refused as f64],
            )
        })
        .collect();
    chart(
        h,
        "users_targets",
        "Calls by user and tool or model",
        &[("allowed", BLUE), ("denied", RED), ("refused", GREY)],
        &bars,
    );
    let rows: Vec<Vec<String>> = a
        .users_targets
        .iter()
        .map(|u| {
            vec![
                u.user.clone(),
                u.target.clone(),
                u.target_kind.clone(),
                u.allowed.to_string(),
                u.denied.to_string(),
                u.refused.to_string(),
            ]
        })
        .collect();
    table(
        h,
        "users_targets",
        &[
            ("user", "user", false),
            ("target", "tool or model", false),
            ("target_kind", "", false),
            ("allowed", "allowed", true),
            ("denied", "denied", true),
            ("refused", "refused", true),
        ],
        &rows,
    );
    h.push_str("<h3>Denials by rule</h3>");
    let bars: Vec<(String, Vec<f64>)> = a
        .denials_by_rule
        .iter()
        .map(|c| (c.key.clone(), vec![c.count as f64]))
        .collect();
    chart(
        h,
        "denials_by_rule",
        "Denials by rule",
        &[("denied", RED)],
        &bars,
    );
    counts(h, "denials_by_rule", "rule", &a.denials_by_rule);
    h.push_str("<h3>Denials by user</h3>");
    counts(h, "denials_by_user", "user", &a.denials_by_user);
    h.push_str("<h3>Policy versions in force</h3><p class=\"note\">Each version's file is <code>policies/&lt;hex&gt;.yaml</code> on the sink.</p>");
    let rows: Vec<Vec<String>> = a
        .policy_versions
        .iter()
        .map(|p| {
            vec![
                p.version.clone(),
                p.first.clone(),
                p.last.clone(),
                p.allowed.to_string(),
                p.denied.to_string(),
            ]
        })
        .collect();
    table(
        h,
        "policy_versions",
        &[
            ("version", "version", false),
            ("first", "first decision", false),
            ("last", "last decision", false),
            ("allowed", "allowed", true),
            ("denied", "denied", true),
        ],
        &rows,
    );
    h.push_str("<h3>First use of a tool or model</h3><p class=\"note\">By users active in the period before, who had not used it then.</p>");
    let rows: Vec<Vec<String>> = a
        .first_use
        .iter()
        .map(|f| {
            vec![
                f.user.clone(),
                f.target.clone(),
                f.first.clone(),
                if f.allowed { "allowed" } else { "not allowed" }.to_owned(),
                f.request_id.clone(),
                f.session_id.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        h,
        "first_use",
        &[
            ("user", "user", false),
            ("target", "tool or model", false),
            ("first", "first", false),
            ("allowed", "decision", false),
            ("request_id", "request_id", false),
            ("session_id", "session", false),
        ],
        &rows,
    );
    h.push_str("</section>\n");
}

fn monitoring(h: &mut String, r: &Report) {
    let m = &r.monitoring;
    h.push_str("<section id=\"monitoring\"><h2>Monitoring</h2>\n<p>Calls each sidecar flagged, as they happened, as unusual <i>for their user</i> against that user's own baseline: a burst of calls, a first use of a tool or model, a run of denials or of PII, cost per hour, a long session, an unusual hour, one token in many sessions (the rows' <code>anomalies</code>; the rules are in docs/anomalies.md). Rows written before schema version 9, or with detection off, were not looked at.</p>\n");
    figures(
        h,
        &[
            (
                "rows_observed",
                "Rows looked at",
                m.rows_observed.to_string(),
            ),
            ("rows_flagged", "Rows flagged", m.rows_flagged.to_string()),
            (
                "users_total",
                "Users with flagged calls",
                m.users_total.to_string(),
            ),
        ],
    );
    let bars: Vec<(String, Vec<f64>)> = m
        .by_signal
        .iter()
        .map(|c| (c.key.clone(), vec![c.count as f64]))
        .collect();
    chart(
        h,
        "anomalies_by_signal",
        "Flagged calls by signal",
        &[("calls", RED)],
        &bars,
    );
    h.push_str("<h3>By signal</h3>");
    counts(h, "by_signal", "signal", &m.by_signal);
    h.push_str("<h3>By user</h3>");
    let rows: Vec<Vec<String>> = m
        .users
        .iter()
        .map(|u| {
            vec![
                u.user.clone(),
                u.flagged.to_string(),
                u.signals.join(", "),
                u.request_ids.join(" "),
            ]
        })
        .collect();
    table(
        h,
        "monitoring_users",
        &[
            ("user", "user", false),
            ("flagged", "flagged calls", true),
            ("signals", "signals", false),
            ("request_ids", "first flagged rows", false),
        ],
        &rows,
    );
    h.push_str("<h3>Flagged calls</h3>");
    let rows: Vec<Vec<String>> = m
        .flagged
        .iter()
        .map(|f| {
            vec![
                f.time.clone(),
                f.user.clone(),
                f.signals.join(", "),
                format!("{:.1}", f.score),
                f.target.clone().unwrap_or_default(),
                f.request_id.clone(),
                f.session_id.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        h,
        "flagged",
        &[
            ("time", "time", false),
            ("user", "user", false),
            ("signals", "signals", false),
            ("score", "score", true),
            ("target", "tool or model", false),
            ("request_id", "request_id", false),
            ("session_id", "session", false),
        ],
        &rows,
    );
    h.push_str("</section>\n");
}

fn data_protection(h: &mut String, r: &Report) {
    let d = &r.data_protection;
    h.push_str("<section id=\"data_protection\"><h2>Data protection</h2>\n<p>PII and secrets found in requests and responses (kinds and counts, never the values), and what happened to them: <i>blocked</i> (the request was refused), <i>redacted</i> (replaced before it went on), <i>logged</i> (passed on and recorded).</p>\n");
    figures(
        h,
        &[
            ("rows_scanned", "Rows scanned", d.rows_scanned.to_string()),
            (
                "rows_with_findings",
                "Rows with findings",
                d.rows_with_findings.to_string(),
            ),
            (
                "unredacted_upstream_total",
                "Allowed calls that passed a finding upstream",
                d.unredacted_upstream_total.to_string(),
            ),
        ],
    );
    h.push_str("<h3>Rows by handling</h3>");
    counts(h, "handling", "handling", &d.handling);
    let bars: Vec<(String, Vec<f64>)> = d
        .by_kind
        .iter()
        .map(|k| {
            (
                k.kind.clone(),
                vec![k.redacted as f64, k.blocked as f64, k.logged as f64],
            )
        })
        .collect();
    chart(
        h,
        "findings_by_kind",
        "Findings by kind and handling",
        &[("redacted", BLUE), ("blocked", RED), ("logged", GREY)],
        &bars,
    );
    let rows: Vec<Vec<String>> = d
        .by_kind
        .iter()
        .map(|k| {
            vec![
                k.kind.clone(),
                k.findings.to_string(),
                k.rows.to_string(),
                k.blocked.to_string(),
                k.redacted.to_string(),
                k.logged.to_string(),
            ]
        })
        .collect();
    table(
        h,
        "by_kind",
        &[
            ("kind", "kind", false),
            ("findings", "findings", true),
            ("rows", "rows", true),
            ("blocked", "blocked", true),
            ("redacted", "redacted", true),
            ("logged", "logged", true),
        ],
        &rows,
    );
    h.push_str("<h3>Rows with findings by route</h3>");
    counts(h, "by_route", "route", &d.by_route);
    h.push_str("<h3>by tool</h3>");
    counts(h, "by_tool", "tool", &d.by_tool);
    h.push_str("<h3>by user</h3>");
    counts(h, "by_user", "user", &d.by_user);
    h.push_str("<h3>Findings that reached an upstream unredacted</h3>");
    let rows: Vec<Vec<String>> = d
        .unredacted_upstream
        .iter()
        .map(|e| {
            vec![
                e.time.clone(),
                e.user.clone(),
                e.route.clone().unwrap_or_default(),
                e.tool.clone().unwrap_or_default(),
                e.kinds.join(", "),
                e.request_id.clone(),
                e.session_id.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        h,
        "unredacted_upstream",
        &[
            ("time", "time", false),
            ("user", "user", false),
            ("route", "route", false),
            ("tool", "tool", false),
            ("kinds", "kinds", false),
            ("request_id", "request_id", false),
            ("session_id", "session", false),
        ],
        &rows,
    );
    h.push_str("</section>\n");
}

fn incidents(h: &mut String, r: &Report) {
    let i = &r.incidents;
    h.push_str("<section id=\"incidents\"><h2>Incident traceability</h2>\n<p>Every session can be replayed step by step with the command shown (who, what, the decision and why, PII, cost, and the model turn that asked for each tool call).</p>\n");
    figures(
        h,
        &[
            ("sessions_total", "Sessions", i.sessions_total.to_string()),
            (
                "sessions_shown",
                "Shown (most recent)",
                i.sessions.len().to_string(),
            ),
            (
                "rows_without_session",
                "Rows without a session",
                i.rows_without_session.to_string(),
            ),
        ],
    );
    let rows: Vec<Vec<String>> = i
        .sessions
        .iter()
        .map(|s| {
            vec![
                s.session_id.clone(),
                s.user.clone(),
                s.calls.to_string(),
                s.tools.join(", "),
                s.denials.to_string(),
                usd(s.cost_usd),
                s.first.clone(),
                s.last.clone(),
                s.command.clone(),
            ]
        })
        .collect();
    table(
        h,
        "sessions",
        &[
            ("session_id", "session", false),
            ("user", "user", false),
            ("calls", "calls", true),
            ("tools", "tools", false),
            ("denials", "denials", true),
            ("cost_usd", "cost USD", true),
            ("first", "first", false),
            ("last", "last", false),
            ("command", "replay", false),
        ],
        &rows,
    );
    h.push_str("</section>\n");
}

fn cost(h: &mut String, r: &Report) {
    let c = &r.cost;
    h.push_str("<section id=\"cost\"><h2>Cost</h2>\n<p>Estimated at the price table's rates, LLM calls only; a call whose model has no price, or whose provider reported no usage, is counted as unpriced, never as free.</p>\n");
    figures(
        h,
        &[
            ("total_usd", "Total USD", usd(c.total_usd)),
            (
                "calls_priced",
                "LLM calls priced",
                c.calls_priced.to_string(),
            ),
            ("calls_unpriced", "unpriced", c.calls_unpriced.to_string()),
        ],
    );
    for (name, label, rows) in [
        ("cost_by_user", "user", &c.by_user),
        ("cost_by_org", "organisation", &c.by_org),
        ("cost_by_model", "model", &c.by_model),
        ("cost_by_route", "route", &c.by_route),
    ] {
        let _ = write!(h, "<h3>By {label}</h3>");
        if name == "cost_by_user" || name == "cost_by_model" {
            let bars: Vec<(String, Vec<f64>)> = rows
                .iter()
                .map(|r| (r.key.clone(), vec![r.cost_usd]))
                .collect();
            chart(
                h,
                name,
                &format!("Cost (USD) by {label}"),
                &[("USD", BLUE)],
                &bars,
            );
        }
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.key.clone(),
                    r.calls.to_string(),
                    r.input_tokens.to_string(),
                    r.output_tokens.to_string(),
                    usd(r.cost_usd),
                ]
            })
            .collect();
        table(
            h,
            name,
            &[
                ("key", label, false),
                ("calls", "calls", true),
                ("input_tokens", "input tokens", true),
                ("output_tokens", "output tokens", true),
                ("cost_usd", "USD", true),
            ],
            &cells,
        );
    }
    h.push_str("</section>\n");
}
