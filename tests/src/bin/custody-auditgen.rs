//! `custody-auditgen --out DIR`: writes the multi-user trail the auditor's queries
//! (docs/auditor-queries.md) and the fleet-wide anomaly queries (docs/anomalies.md)
//! are checked on — 24 users in three roles and two organisations on three agent
//! pods, a working week (Monday 2026-03-02 to Friday), two sessions per user and
//! day on two pods, LLM and MCP calls, denials by policy and by content safety, PII
//! of four kinds handled every way, protocol housekeeping, one user's spike, one
//! user's run of denials and one user's run of e-mail addresses — with
//! custody-audit's own writer, and prints on stdout the answers each query must
//! give, tallied here as the rows are made (not by SQL).
//!
//! The rows are deterministic: the same command writes the same rows.

use clap::Parser;
use custody_audit::{AuditRecord, FileNamer, ParquetDirWriter, Redaction};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

#[derive(Parser, Debug)]
struct Args {
    /// The sink directory to write into (`dt=…/hour=…/` below it).
    #[arg(long)]
    out: PathBuf,
}

/// Monday 2026-03-02T00:00:00Z, in seconds.
const MONDAY: u64 = 1_772_409_600;
const DAYS: u64 = 5;
const USERS: usize = 24;
const ROLES: [&str; 3] = ["clinician", "analyst", "support"];
const DATES: [&str; 5] = [
    "2026-03-02",
    "2026-03-03",
    "2026-03-04",
    "2026-03-05",
    "2026-03-06",
];
/// The user whose calls spike on Thursday.
const SPIKE_USER: usize = 5;
/// The user (support) who tries patient records six more times on Friday.
const DENIAL_USER: usize = 8;
/// The user (an analyst) who pastes six e-mail addresses on Wednesday.
const PII_USER: usize = 10;
/// Agent pods; a user's two sessions of a day run on two of them.
const PODS: usize = 3;

#[derive(Default)]
struct Tally {
    rows: u64,
    /// role → tool → [allowed, denied]
    access: BTreeMap<String, BTreeMap<String, [u64; 2]>>,
    /// dt → user → [calls, denials, micro-USD]
    daily: BTreeMap<String, BTreeMap<String, [i64; 3]>>,
    /// kind → handling → values
    findings: BTreeMap<String, BTreeMap<String, i64>>,
    /// user → allowed calls that passed a request finding on unredacted
    unredacted: BTreeMap<String, u64>,
    /// users who read patient records on Tuesday, and who tried and were denied
    patients_tuesday: BTreeMap<String, [u64; 2]>,
    /// session → steps
    sessions: BTreeMap<String, u64>,
    /// (user, tool or model) pairs seen so far, and the day each was first used
    seen: std::collections::BTreeSet<(String, String)>,
    /// dt → user → tools and models used for the first time that day
    first_use: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

fn user_name(u: usize) -> String {
    format!("okta|user-{u:02}")
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut tally = Tally::default();
    let mut writers: Vec<ParquetDirWriter> = (0..PODS)
        .map(|p| ParquetDirWriter::new(&args.out, FileNamer::new(&format!("clinic-agent-{p}"))))
        .collect();
    let mut n = 0u64;
    for day in 0..DAYS {
        let mut rows: Vec<Vec<AuditRecord>> = vec![Vec::new(); PODS];
        for u in 0..USERS {
            let role = ROLES[u % 3];
            for s in 0..2u64 {
                let session = format!(
                    "hdr:{:016x}:d{day}-s{s}",
                    0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(u as u64 + 1)
                );
                let start = MONDAY + day * 86_400 + (9 + 3 * s) * 3_600 + u as u64 * 60;
                let mut calls: Vec<u64> = vec![0, 1, 2, 3];
                if u == SPIKE_USER && day == 3 && s == 0 {
                    calls.extend(std::iter::repeat_n(0, 50));
                }
                if u == DENIAL_USER && day == 4 && s == 1 {
                    calls.extend(std::iter::repeat_n(4, 6));
                }
                if u == PII_USER && day == 2 && s == 0 {
                    calls.extend(std::iter::repeat_n(5, 6));
                }
                let pod = (u + s as usize) % PODS;
                for (step, k) in calls.into_iter().enumerate() {
                    n += 1;
                    let at = start + step as u64 * 7;
                    let row = make_row(n, at, day, u, role, &session, step as i64 + 1, k);
                    record(&mut tally, &row, day, role);
                    rows[pod].push(row);
                }
            }
        }
        for (writer, rows) in writers.iter_mut().zip(&rows) {
            writer.write(rows)?;
        }
    }
    println!(
        "{}",
        json!({
            "rows": tally.rows,
            "access": tally.access,
            "daily": tally.daily.iter().map(|(d, users)| (d.clone(), users.iter().map(|(u, v)| (u.clone(), json!([v[0], v[1], v[2] as f64 / 1e6]))).collect::<BTreeMap<_, _>>())).collect::<BTreeMap<_, _>>(),
            "findings": tally.findings,
            "unredacted": tally.unredacted,
            "patients_tuesday": tally.patients_tuesday,
            "sessions": tally.sessions,
            "spike": {"user": user_name(SPIKE_USER), "dt": DATES[3]},
            "denial_burst": {"user": user_name(DENIAL_USER), "dt": DATES[4]},
            "pii_burst": {"user": user_name(PII_USER), "dt": DATES[2]},
            "first_use": tally.first_use,
            "pods": PODS,
        })
    );
    Ok(())
}

fn record(t: &mut Tally, row: &AuditRecord, day: u64, role: &str) {
    t.rows += 1;
    let user = row.principal.sub.clone().unwrap_or_default();
    let denied = row.policy.decision.as_deref() == Some("deny");
    let allowed = row.policy.decision.as_deref() == Some("allow");
    if let Some(tool) = &row.action.tool {
        let cell = t
            .access
            .entry(role.to_owned())
            .or_default()
            .entry(tool.clone())
            .or_default();
        cell[usize::from(denied)] += 1;
        if day == 1 && tool.starts_with("ehr:patients:") {
            t.patients_tuesday.entry(user.clone()).or_default()[usize::from(denied)] += 1;
        }
    }
    if row.action.housekeeping != Some(true) {
        let d = t
            .daily
            .entry(DATES[day as usize].to_owned())
            .or_default()
            .entry(user.clone())
            .or_default();
        d[0] += 1;
        d[1] += i64::from(denied);
        d[2] += (row.usage.estimated_cost_usd.unwrap_or(0.0) * 1e6).round() as i64;
    }
    let mut passed_on = false;
    for f in row.content_safety.redactions.iter().flatten() {
        let handling = f.handling.clone().unwrap_or_default();
        *t.findings
            .entry(f.kind.clone())
            .or_default()
            .entry(handling.clone())
            .or_default() += f.count;
        passed_on |= f.side.as_deref() == Some("request") && handling == "logged";
    }
    if allowed && passed_on {
        *t.unredacted.entry(user.clone()).or_default() += 1;
    }
    if let Some(s) = &row.session_id {
        *t.sessions.entry(s.clone()).or_default() += 1;
    }
    if let Some(target) = row.action.tool.clone().or(row.action.model.clone())
        && t.seen.insert((user.clone(), target.clone()))
    {
        t.first_use
            .entry(DATES[day as usize].to_owned())
            .or_default()
            .entry(user)
            .or_default()
            .push(target);
    }
}

fn finding(kind: &str, side: &str, count: i64, action: &str, handling: &str) -> Redaction {
    Redaction {
        kind: kind.into(),
        path: if side == "request" {
            "$.messages[0].content".into()
        } else {
            "response.choices[0].message.content".into()
        },
        count,
        action: action.into(),
        side: Some(side.into()),
        handling: Some(handling.into()),
    }
}

/// Call `k` of a session: 0 a model turn (standard model), 1 a tool call (patient
/// records for clinicians, and for support on Tuesday and Thursday, who may not;
/// a CRM export for analysts), 2 a premium model turn (analysts only; some others
/// try and are denied), 3 MCP `tools/list` (housekeeping); the injected bursts: 4
/// a denied patient-records read, 5 a model turn carrying an e-mail address,
/// passed on.
#[allow(clippy::too_many_arguments)]
fn make_row(
    n: u64,
    at: u64,
    day: u64,
    u: usize,
    role: &str,
    session: &str,
    step: i64,
    k: u64,
) -> AuditRecord {
    let mut r = AuditRecord::new(
        UNIX_EPOCH + Duration::from_secs(at),
        format!("0196{day:04x}-0000-7000-8000-{n:012x}"),
        custody_core::Action::new(
            custody_core::ActionKind::Llm,
            "POST",
            "/openai/v1/chat/completions",
        ),
    );
    r.principal.sub = Some(user_name(u));
    r.principal.org = Some(
        if u.is_multiple_of(2) {
            "org_north"
        } else {
            "org_south"
        }
        .into(),
    );
    r.principal.role = Some(role.into());
    r.principal.roles = Some(vec![role.into()]);
    r.principal.issuer = Some("https://login.clinic.example/".into());
    r.session_id = Some(session.into());
    r.session_step = Some(step);
    r.session_source = Some("header".into());
    r.span_id = Some(format!("{n:016x}"));
    r.action.route = Some("openai".into());
    r.action.operation = Some("chat.completions".into());
    r.action.inspected = Some(true);
    r.action.housekeeping = Some(false);
    r.policy.decision = Some("allow".into());
    r.policy.version = Some("sha256:7c1e0a9d5b2f4e68".into());
    r.content_safety.pii_detected = Some(false);
    r.content_safety.redactions = Some(Vec::new());
    r.content_safety.handling = Some("none".into());
    r.outcome.status = Some(200);
    r.outcome.duration_ms = 200.0;
    let llm = |r: &mut AuditRecord, model: &str, tokens: i64, per_m: (f64, f64)| {
        r.action.model = Some(model.into());
        r.usage.model = Some(format!("{model}-2024-08-06"));
        r.usage.input_tokens = Some(tokens);
        r.usage.output_tokens = Some(tokens / 5);
        r.usage.estimated_cost_usd =
            Some((tokens as f64 * per_m.0 + (tokens / 5) as f64 * per_m.1) / 1e6);
    };
    let deny = |r: &mut AuditRecord, rule: &str| {
        r.policy.decision = Some("deny".into());
        r.policy.rule = Some(rule.into());
        r.outcome.status = Some(403);
        r.outcome.error = Some(format!("denied: {rule}"));
        r.usage = Default::default();
    };
    let tool = |r: &mut AuditRecord, route: &str, name: &str| {
        r.action = custody_core::Action::new(custody_core::ActionKind::Tool, "POST", "/mcp");
        r.action.route = Some(route.into());
        r.action.operation = Some("tools/call".into());
        r.action.inspected = Some(true);
        r.action.housekeeping = Some(false);
        r.action.tool = Some(name.into());
        r.action.parameters = Some(r#"{"id":"p-1"}"#.into());
    };
    let pii = |r: &mut AuditRecord, findings: Vec<Redaction>| {
        let strongest = ["blocked", "redacted", "logged"]
            .into_iter()
            .find(|h| findings.iter().any(|f| f.handling.as_deref() == Some(*h)))
            .unwrap_or("none");
        r.content_safety.pii_detected = Some(true);
        r.content_safety.handling = Some(strongest.into());
        r.content_safety.redactions = Some(findings);
    };
    let seed = u as u64 + day;
    match k {
        0 => {
            llm(&mut r, "gpt-4o-mini", 800 + 40 * u as i64, (0.15, 0.60));
            r.policy.rule = Some(format!("role:{role} grants model:standard"));
            if seed.is_multiple_of(4) {
                pii(
                    &mut r,
                    vec![finding("EMAIL", "request", 1, "redact", "redacted")],
                );
            }
            if u.is_multiple_of(7) && day == 4 {
                pii(
                    &mut r,
                    vec![finding("CARD", "request", 1, "block", "blocked")],
                );
                deny(&mut r, "safety:block:CARD");
            }
        }
        1 if role == "analyst" => {
            tool(&mut r, "crm", "crm:contacts:export");
            r.policy.rule = Some("role:analyst grants tool:crm:export".into());
            if seed.is_multiple_of(3) {
                pii(
                    &mut r,
                    vec![finding("PHONE", "response", 3, "log", "logged")],
                );
            }
        }
        1 if role == "clinician" || day == 1 || day == 3 => {
            tool(&mut r, "ehr", "ehr:patients:read");
            if role == "clinician" {
                r.policy.rule = Some("role:clinician grants tool:ehr:read".into());
                if seed.is_multiple_of(3) {
                    pii(&mut r, vec![finding("MRN", "request", 1, "log", "logged")]);
                }
            } else {
                deny(&mut r, "missing-scope:tool:ehr:read");
            }
        }
        1 => {
            tool(&mut r, "ehr", "ehr:appointments:list");
            r.policy.rule = Some("role:support grants tool:ehr:schedule".into());
        }
        2 => {
            llm(&mut r, "gpt-4o", 1_200, (2.50, 10.0));
            if role == "analyst" {
                r.policy.rule = Some("role:analyst grants model:premium".into());
            } else if seed.is_multiple_of(5) {
                deny(&mut r, "missing-scope:model:premium");
            } else {
                llm(&mut r, "gpt-4o-mini", 600, (0.15, 0.60));
                r.policy.rule = Some(format!("role:{role} grants model:standard"));
            }
        }
        4 => {
            tool(&mut r, "ehr", "ehr:patients:read");
            deny(&mut r, "missing-scope:tool:ehr:read");
        }
        5 => {
            llm(&mut r, "gpt-4o-mini", 700, (0.15, 0.60));
            r.policy.rule = Some(format!("role:{role} grants model:standard"));
            pii(
                &mut r,
                vec![finding("EMAIL", "request", 1, "log", "logged")],
            );
        }
        _ => {
            r.action = custody_core::Action::new(custody_core::ActionKind::Tool, "POST", "/mcp");
            r.action.route = Some("ehr".into());
            r.action.operation = Some("tools/list".into());
            r.action.inspected = Some(true);
            r.action.housekeeping = Some(true);
            r.policy.rule = Some("mcp-session".into());
        }
    }
    r
}
