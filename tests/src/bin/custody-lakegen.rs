//! `custody-lakegen --out DIR`: writes a generated audit trail as a fleet leaves it
//! across an upgrade — two pods, two days, seven hours a day, five users — in files
//! of **every schema version** this build knows (custody-audit's own writer,
//! projected to each earlier version's columns), and prints on stdout a JSON
//! summary of what it wrote (rows per version, per user, spend, denials, …), the
//! answers the lakehouse tests expect every engine to give.
//!
//! The rows are deterministic: the same command writes the same rows (file names
//! carry a fresh id).

use clap::Parser;
use custody_audit::{
    AuditRecord, FileNamer, ParquetDirWriter, Redaction, SCHEMA_VERSION, ToolResult,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

#[derive(Parser, Debug)]
struct Args {
    /// The sink directory to write into (`dt=…/hour=…/` below it).
    #[arg(long)]
    out: PathBuf,
    /// Instead: a benchmark trail of this many current-version rows (100 000 an hour
    /// from 2026-03-05, 2 000 users, a session per 20 calls), and no summary.
    #[arg(long, value_name = "N")]
    bench_rows: Option<u64>,
}

/// 2026-03-05T00:00:00Z, in seconds.
const DAY0: u64 = 1_772_668_800;
const PODS: [&str; 2] = ["agents-7d9f-x2k4p", "agents-7d9f-q8m3z"];
const HOURS: std::ops::Range<u64> = 9..16;
/// (sub, role) of the five users.
const USERS: [(&str, &str); 5] = [
    ("auth0|alice", "analyst"),
    ("auth0|bob", "engineer"),
    ("auth0|carol", "support"),
    ("auth0|dan", "analyst"),
    ("auth0|erin", "admin"),
];

#[derive(Default)]
struct Summary {
    rows: u64,
    by_version: BTreeMap<i32, u64>,
    by_user: BTreeMap<String, u64>,
    spend_micro_usd: BTreeMap<String, i64>,
    denials: u64,
    tool_calls: u64,
    pii_rows: u64,
    housekeeping: u64,
    sessions: BTreeMap<String, u64>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(total) = args.bench_rows {
        return bench(&args.out, total);
    }
    let mut summary = Summary::default();
    let mut n = 0u64;
    for (p, pod) in PODS.iter().enumerate() {
        // Each pod's rows are numbered 1, 2, … (row_seq, from version 7 on).
        let mut seq = 0i64;
        let mut writer = ParquetDirWriter::new(&args.out, FileNamer::new(pod));
        for day in 0..2u64 {
            for (h, hour) in HOURS.enumerate() {
                // Pods upgrade at different times: each hour's file is of some
                // version, every version several times over.
                let version = 1 + ((h + p + 3 * day as usize) % SCHEMA_VERSION as usize) as i32;
                let start = DAY0 + day * 86_400 + hour * 3_600;
                let mut rows = Vec::new();
                for (u, (sub, role)) in USERS.iter().enumerate() {
                    for k in 0..4u64 {
                        n += 1;
                        let at = start + 60 * (u as u64 * 4 + k) + p as u64;
                        let mut row = make_row(n, at, pod, day, u, sub, role, k);
                        seq += 1;
                        row.row_seq = Some(seq);
                        tally(&mut summary, &row, version);
                        rows.push(row);
                    }
                }
                writer.write_version(&rows, version)?;
            }
        }
    }
    let spend: BTreeMap<_, _> = summary
        .spend_micro_usd
        .iter()
        .map(|(u, m)| (u.clone(), *m as f64 / 1e6))
        .collect();
    println!(
        "{}",
        json!({
            "rows": summary.rows,
            "by_version": summary.by_version.iter().map(|(v, c)| (v.to_string(), c)).collect::<BTreeMap<_, _>>(),
            "by_user": summary.by_user,
            "spend_usd": spend,
            "denials": summary.denials,
            "tool_calls": summary.tool_calls,
            "pii_rows": summary.pii_rows,
            "housekeeping": summary.housekeeping,
            "sessions": summary.sessions,
        })
    );
    Ok(())
}

/// `total` rows for `custody report`'s benchmark (docs/performance.md).
fn bench(out: &std::path::Path, total: u64) -> anyhow::Result<()> {
    const PER_HOUR: u64 = 100_000;
    let pod = "bench-pod";
    let mut writer = ParquetDirWriter::new(out, FileNamer::new(pod));
    let mut rows = Vec::with_capacity(PER_HOUR as usize);
    for i in 0..total {
        let hour = i / PER_HOUR;
        let at = DAY0 + hour * 3_600 + (i % PER_HOUR) * 3_600 / PER_HOUR;
        let u = (i % 5) as usize;
        let (sub, role) = USERS[u];
        let sub = format!("{sub}-{}", (i / 5) % 400);
        let mut row = make_row(i + 1, at, pod, hour / 24, u, &sub, role, i % 4);
        row.session_id = Some(format!("hdr:bench:{}", i / 20));
        row.row_seq = Some(i as i64 + 1);
        rows.push(row);
        if rows.len() as u64 == PER_HOUR || i + 1 == total {
            writer.write(&rows)?;
            rows.clear();
        }
    }
    Ok(())
}

fn tally(s: &mut Summary, row: &AuditRecord, version: i32) {
    s.rows += 1;
    *s.by_version.entry(version).or_default() += 1;
    let who = row.principal.sub.clone().unwrap_or_else(|| "(none)".into());
    *s.by_user.entry(who.clone()).or_default() += 1;
    if let Some(cost) = row.usage.estimated_cost_usd {
        *s.spend_micro_usd.entry(who).or_default() += (cost * 1e6).round() as i64;
    }
    if row.policy.decision.as_deref() == Some("deny") {
        s.denials += 1;
    }
    if row.action.tool.is_some() {
        s.tool_calls += 1;
    }
    if row.content_safety.pii_detected == Some(true) {
        s.pii_rows += 1;
    }
    // Only files of versions that have the column say so.
    if row.action.housekeeping == Some(true)
        && version >= custody_audit::schema::added_in("action.housekeeping")
    {
        s.housekeeping += 1;
    }
    if let Some(session) = &row.session_id {
        *s.sessions.entry(session.clone()).or_default() += 1;
    }
}

/// The `k`-th of a user's four calls in an hour: a model turn that asks for a
/// tool, the tool call (with an e-mail found in its response for some users), a
/// third that is denied for analysts and a model turn with the result otherwise,
/// and an MCP `tools/list` (protocol housekeeping).
#[allow(clippy::too_many_arguments)]
fn make_row(
    n: u64,
    at: u64,
    pod: &str,
    day: u64,
    user: usize,
    sub: &str,
    role: &str,
    k: u64,
) -> AuditRecord {
    let id = |n: u64| format!("0195{:04x}-0000-7000-8000-{n:012x}", day);
    let mut r = AuditRecord::new(
        UNIX_EPOCH + Duration::from_secs(at),
        id(n),
        custody_core::Action::new(
            custody_core::ActionKind::Llm,
            "POST",
            "/openai/v1/chat/completions",
        ),
    );
    r.principal.sub = Some(sub.to_owned());
    r.principal.org = Some("org_acme".into());
    r.principal.role = Some(role.to_owned());
    r.principal.roles = Some(vec![role.to_owned()]);
    r.principal.issuer = Some("https://idp.example.com/".into());
    // The subject part stands for a hash of the user's `sub`, as custody writes it.
    let subject = 0x5d41_402a_bc4b_2a76_u64.wrapping_mul(user as u64 + 1);
    r.session_id = Some(format!(
        "hdr:{subject:016x}:conv-{}",
        8812 + 10 * day + user as u64
    ));
    r.session_step = Some(k as i64 + 1);
    r.session_source = Some("header".into());
    r.trace_id = Some(format!("{:032x}", n * 104_729));
    r.span_id = Some(format!("{:016x}", n));
    r.action.route = Some("openai".into());
    r.action.operation = Some("chat.completions".into());
    r.action.inspected = Some(true);
    r.action.upstream = Some("https://api.openai.com/v1/chat/completions".into());
    r.policy.decision = Some("allow".into());
    r.policy.rule = Some(format!("role:{role} grants model:standard"));
    r.policy.scopes = Some(vec!["model:standard".into()]);
    r.policy.version = Some("sha256:3f26ef61d4782e3c".into());
    r.content_safety.pii_detected = Some(false);
    r.content_safety.redactions = Some(Vec::new());
    r.content_safety.handling = Some("none".into());
    r.action.housekeeping = Some(false);
    r.outcome.status = Some(200);
    r.outcome.duration_ms = 120.0 + (n % 17) as f64;
    r.outcome.bytes_in = 900 + (n % 50) as i64;
    r.outcome.bytes_out = 2_000 + (n % 300) as i64;
    r.outcome.bytes_announced = Some(r.outcome.bytes_in);
    r.client_request_id = Some(format!("{pod}-turn-{n}"));
    let call_id = format!("call_{:x}", n - k);
    let llm = |r: &mut AuditRecord, tokens: i64| {
        r.action.model = Some("gpt-4o-mini".into());
        r.usage.model = Some("gpt-4o-mini-2024-07-18".into());
        r.usage.input_tokens = Some(tokens);
        r.usage.output_tokens = Some(tokens / 4);
        r.usage.cached_input_tokens = Some(0);
        // gpt-4o-mini: $0.15 / $0.60 per million tokens.
        r.usage.estimated_cost_usd =
            Some((tokens as f64 * 0.15 + (tokens / 4) as f64 * 0.60) / 1e6);
    };
    match k {
        0 => {
            llm(&mut r, 1_000 + 100 * user as i64);
            r.action.model_tool_calls = Some(vec![custody_core::ToolCallRequest {
                id: Some(call_id),
                name: "crm_search_contacts".into(),
            }]);
        }
        1 => {
            r.action = custody_core::Action::new(custody_core::ActionKind::Tool, "POST", "/mcp");
            r.action.route = Some("crm".into());
            r.action.operation = Some("tools/call".into());
            r.action.inspected = Some(true);
            r.action.upstream = Some("http://crm.internal:8080/mcp".into());
            r.action.tool = Some("crm:search_contacts".into());
            r.action.parameters = Some(r#"{"query":"acme"}"#.into());
            r.policy.rule = Some(format!("role:{role} grants tool:crm"));
            r.policy.scopes = Some(vec!["tool:crm".into()]);
            r.links.tool_call_id = Some(call_id);
            r.links.model_request_id = Some(id(n - 1));
            if user.is_multiple_of(2) {
                r.content_safety.pii_detected = Some(true);
                r.content_safety.redactions = Some(vec![Redaction {
                    kind: "EMAIL".into(),
                    path: "response".into(),
                    count: 2,
                    action: "redact".into(),
                    side: Some("response".into()),
                    handling: Some("redacted".into()),
                }]);
                r.content_safety.handling = Some("redacted".into());
            }
        }
        3 => {
            // MCP housekeeping: the client lists the tools before calling one.
            r.action = custody_core::Action::new(custody_core::ActionKind::Tool, "POST", "/mcp");
            r.action.route = Some("crm".into());
            r.action.operation = Some("tools/list".into());
            r.action.inspected = Some(true);
            r.action.housekeeping = Some(true);
            r.policy.rule = Some(format!("role:{role} grants tool:crm"));
            r.policy.scopes = Some(vec!["tool:crm".into()]);
        }
        _ if role == "analyst" => {
            r.action = custody_core::Action::new(custody_core::ActionKind::Tool, "POST", "/mcp");
            r.action.route = Some("crm".into());
            r.action.operation = Some("tools/call".into());
            r.action.tool = Some("crm:delete_contact".into());
            r.action.parameters = Some(r#"{"id":"c-1"}"#.into());
            r.policy.decision = Some("deny".into());
            r.policy.rule = Some("missing-scope:tool:crm:write".into());
            r.policy.scopes = Some(vec!["tool:crm:write".into()]);
            r.outcome.status = Some(403);
            r.outcome.error = Some("denied by policy: missing-scope:tool:crm:write".into());
        }
        _ => {
            llm(&mut r, 1_500);
            r.links.tool_results = Some(vec![ToolResult {
                tool_call_id: call_id,
                model_request_id: Some(id(n - 2)),
            }]);
        }
    }
    r
}
