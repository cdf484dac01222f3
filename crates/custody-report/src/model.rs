//! What a report says: one value, rendered as JSON as is, as HTML and as CSV
//! (`docs/report.md` describes every field).

use serde::Serialize;

/// The version of the report's JSON layout.
pub const REPORT_VERSION: u32 = 1;

/// A report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// [`REPORT_VERSION`].
    pub report_version: u32,
    /// When it was made (RFC 3339, UTC).
    pub generated: String,
    /// The sink read.
    pub sink: String,
    /// The period.
    pub period: PeriodOut,
    /// Files, rows, versions, gaps and integrity.
    pub coverage: Coverage,
    /// Who used what, and what was denied.
    pub access: Access,
    /// Each user against the period before.
    pub monitoring: Monitoring,
    /// PII and secrets found, and how they were handled.
    pub data_protection: DataProtection,
    /// Sessions, to reconstruct who did what.
    pub incidents: Incidents,
    /// What it cost.
    pub cost: Cost,
}

/// The period, as given and as shown.
#[derive(Clone, Debug, Serialize)]
pub struct PeriodOut {
    /// Inclusive start (RFC 3339, UTC).
    pub from: String,
    /// Exclusive end.
    pub to: String,
    /// The zone times are shown in.
    pub tz: String,
    /// `from` in that zone.
    pub from_local: String,
    /// `to` in that zone.
    pub to_local: String,
    /// The period before, of equal length (monitoring and first use compare with it).
    pub before_from: String,
}

/// A name and a count.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Count {
    /// What is counted (`(others)` sums the rest of a bounded table).
    pub key: String,
    /// How many.
    pub count: u64,
}

/// Files, rows, versions, gaps and integrity.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Coverage {
    /// Audit files read (their hour overlaps the period or the one before).
    pub files: u64,
    /// Files that could not be read (each named in `unreadable`).
    pub files_unreadable: u64,
    /// Rows in the period.
    pub rows: u64,
    /// Of them, protocol housekeeping (`action.housekeeping`).
    pub housekeeping_rows: u64,
    /// Rows by schema version.
    pub schema_versions: Vec<Count>,
    /// Gap rows: requests or records the trail could not hold, each stating how many.
    pub gap_rows: u64,
    /// What the gap rows say was not recorded, summed.
    pub not_recorded: u64,
    /// Rows written after a crash for requests whose outcome was lost.
    pub incomplete_rows: u64,
    /// The earliest and latest row in the period (RFC 3339), if any.
    pub first_row: Option<String>,
    /// See `first_row`.
    pub last_row: Option<String>,
    /// `custody verify`'s checks for the period.
    pub integrity: Integrity,
    /// The files that could not be read.
    pub unreadable: Vec<crate::scan::Unreadable>,
}

/// `custody verify`'s result for the period.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Integrity {
    /// Whether it was checked (`--public-key` given).
    pub checked: bool,
    /// No findings.
    pub verifies: bool,
    /// Files and rows checked against the digests.
    pub files: u64,
    /// See `files`.
    pub rows: u64,
    /// Findings, in verify's order (at most the top-N).
    pub findings: Vec<IntegrityFinding>,
    /// All findings.
    pub findings_total: u64,
    /// One line for the reader.
    pub summary: String,
}

/// One of verify's findings.
#[derive(Clone, Debug, Serialize)]
pub struct IntegrityFinding {
    /// Its kind (docs/verify.md).
    pub kind: String,
    /// The object.
    pub key: String,
    /// Details.
    pub detail: String,
}

/// Access controls.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Access {
    /// Users × tools and models: allowed, denied, refused before policy.
    pub users_targets: Vec<UserTarget>,
    /// Distinct (user, tool or model) pairs.
    pub users_targets_total: u64,
    /// Denials by the rule that decided.
    pub denials_by_rule: Vec<Count>,
    /// Denials by user.
    pub denials_by_user: Vec<Count>,
    /// The policy versions that decided in the period.
    pub policy_versions: Vec<PolicyVersion>,
    /// Users who used a tool or model in the period and not in the period before.
    pub first_use: Vec<FirstUse>,
    /// All such (user, tool or model) pairs.
    pub first_use_total: u64,
}

/// One (user, tool or model) pair.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct UserTarget {
    /// `principal.sub`, `(anonymous)` without one.
    pub user: String,
    /// The tool (`action.tool`) or, for LLM calls, the model.
    pub target: String,
    /// `tool` or `model`.
    pub target_kind: String,
    /// Calls allowed.
    pub allowed: u64,
    /// Calls denied by policy or identity.
    pub denied: u64,
    /// Calls refused before policy (malformed, too large, no route).
    pub refused: u64,
}

/// A policy version and when it decided.
#[derive(Clone, Debug, Serialize)]
pub struct PolicyVersion {
    /// `sha256:` + 16 hex (the file is `policies/<hex>.yaml` on the sink).
    pub version: String,
    /// The first and last decision (RFC 3339).
    pub first: String,
    /// See `first`.
    pub last: String,
    /// Decisions: allowed and denied.
    pub allowed: u64,
    /// See `allowed`.
    pub denied: u64,
}

/// A first use.
#[derive(Clone, Debug, Serialize)]
pub struct FirstUse {
    /// Who.
    pub user: String,
    /// What.
    pub target: String,
    /// When first (RFC 3339), and the row.
    pub first: String,
    /// The first call's row key.
    pub request_id: String,
    /// Its session.
    pub session_id: Option<String>,
    /// Whether that call was allowed.
    pub allowed: bool,
}

/// Monitoring: the calls the sidecars flagged as unusual for their user (the rows'
/// `anomalies`, schema v9; docs/anomalies.md).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Monitoring {
    /// Rows looked at by a detector (`anomalies` not null).
    pub rows_observed: u64,
    /// Rows with at least one signal.
    pub rows_flagged: u64,
    /// Signals tripped, by signal.
    pub by_signal: Vec<Count>,
    /// Users with flagged calls, the most flagged first.
    pub users: Vec<UserFlags>,
    /// Users with flagged calls.
    pub users_total: u64,
    /// The flagged calls (the earliest `top`).
    pub flagged: Vec<FlaggedCall>,
}

/// One user's flagged calls.
#[derive(Clone, Debug, Serialize)]
pub struct UserFlags {
    /// Who.
    pub user: String,
    /// Calls flagged.
    pub flagged: u64,
    /// The signals, each once, in the order first seen.
    pub signals: Vec<String>,
    /// The first flagged calls' row keys.
    pub request_ids: Vec<String>,
}

/// One flagged call.
#[derive(Clone, Debug, Serialize)]
pub struct FlaggedCall {
    /// When (RFC 3339).
    pub time: String,
    /// Who.
    pub user: String,
    /// Its signals.
    pub signals: Vec<String>,
    /// The highest score among them.
    pub score: f64,
    /// What it called.
    pub target: Option<String>,
    /// The row.
    pub request_id: String,
    /// Its session.
    pub session_id: Option<String>,
}

/// Data protection.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DataProtection {
    /// Rows scanned for PII and secrets (`content_safety.handling` set).
    pub rows_scanned: u64,
    /// Rows with a finding.
    pub rows_with_findings: u64,
    /// Rows by handling: `blocked`, `redacted`, `logged`, `none`.
    pub handling: Vec<Count>,
    /// Findings by kind.
    pub by_kind: Vec<KindCount>,
    /// Rows with a finding, by route.
    pub by_route: Vec<Count>,
    /// By tool.
    pub by_tool: Vec<Count>,
    /// By user.
    pub by_user: Vec<Count>,
    /// Allowed calls whose request carried a finding that was passed on as it was
    /// (`handling = logged`): sensitive values that reached an upstream.
    pub unredacted_upstream: Vec<Exposure>,
    /// All such calls.
    pub unredacted_upstream_total: u64,
}

/// Findings of one kind.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct KindCount {
    /// `EMAIL`, `CARD`, ….
    pub kind: String,
    /// Values found (each finding's count, summed).
    pub findings: u64,
    /// Rows with at least one.
    pub rows: u64,
    /// Findings by handling.
    pub blocked: u64,
    /// See `blocked`.
    pub redacted: u64,
    /// See `blocked`.
    pub logged: u64,
}

/// A call that passed a sensitive value on.
#[derive(Clone, Debug, Serialize)]
pub struct Exposure {
    /// When (RFC 3339).
    pub time: String,
    /// The row.
    pub request_id: String,
    /// Its session.
    pub session_id: Option<String>,
    /// Who.
    pub user: String,
    /// Where.
    pub route: Option<String>,
    /// The tool, if a tool call.
    pub tool: Option<String>,
    /// The kinds passed on.
    pub kinds: Vec<String>,
}

/// Incident traceability.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Incidents {
    /// Sessions in the period.
    pub sessions_total: u64,
    /// The most recent ones.
    pub sessions: Vec<SessionOut>,
    /// Rows without a session (refused before identity, unrouted).
    pub rows_without_session: u64,
}

/// One session.
#[derive(Clone, Debug, Serialize)]
pub struct SessionOut {
    /// Its id.
    pub session_id: String,
    /// Its user.
    pub user: String,
    /// Calls in the period.
    pub calls: u64,
    /// Tools called (the first few).
    pub tools: Vec<String>,
    /// Denied calls.
    pub denials: u64,
    /// Cost (USD).
    pub cost_usd: f64,
    /// First and last call (RFC 3339).
    pub first: String,
    /// See `first`.
    pub last: String,
    /// The command that prints it step by step.
    pub command: String,
}

/// Cost.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Cost {
    /// Estimated cost (USD) of the period.
    pub total_usd: f64,
    /// LLM calls with a cost, and without (model not priced, no usage).
    pub calls_priced: u64,
    /// See `calls_priced`.
    pub calls_unpriced: u64,
    /// By user.
    pub by_user: Vec<CostRow>,
    /// By organisation.
    pub by_org: Vec<CostRow>,
    /// By model.
    pub by_model: Vec<CostRow>,
    /// By route.
    pub by_route: Vec<CostRow>,
}

/// Cost of one group.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct CostRow {
    /// The group.
    pub key: String,
    /// Calls (LLM calls: those that can cost).
    pub calls: u64,
    /// Tokens.
    pub input_tokens: u64,
    /// See `input_tokens`.
    pub output_tokens: u64,
    /// USD.
    pub cost_usd: f64,
}
