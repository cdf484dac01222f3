//! One pass over the rows: every section's figures, kept in maps whose size is the
//! number of distinct users, tools, sessions, … (never the number of rows), and cut
//! to the top N when the report is made (the rest summed as `(others)`).

use crate::model::*;
use crate::period::Period;
use crate::rows::Row;
use custody_audit::read::now_micros;
use custody_audit::read::rfc3339;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

const ANONYMOUS: &str = "(anonymous)";
const OTHERS: &str = "(others)";

#[derive(Default)]
struct Pair {
    kind: &'static str,
    allowed: u64,
    denied: u64,
    refused: u64,
    first: i64,
    first_request: String,
    first_session: Option<String>,
    first_allowed: bool,
}

/// A user's calls in the period and before (first uses count only for users
/// active before).
#[derive(Default)]
struct User {
    calls: u64,
    calls_before: u64,
}

/// A user's flagged calls.
#[derive(Default)]
struct Flags {
    flagged: u64,
    signals: Vec<String>,
    request_ids: Vec<String>,
}

struct Session {
    user: String,
    calls: u64,
    tools: Vec<String>,
    denials: u64,
    cost: f64,
    first: i64,
    last: i64,
}

#[derive(Default)]
struct Money {
    calls: u64,
    input: u64,
    output: u64,
    cost: f64,
}

#[derive(Default)]
struct Kind {
    findings: u64,
    rows: u64,
    blocked: u64,
    redacted: u64,
    logged: u64,
}

/// The figures so far.
pub struct Aggregator {
    period: Period,
    before: Period,
    top: usize,
    sink: String,
    coverage: Coverage,
    versions: BTreeMap<i32, u64>,
    first_row: Option<i64>,
    last_row: Option<i64>,
    pairs: HashMap<(String, String), Pair>,
    pairs_before: HashSet<(String, String)>,
    denials_rule: HashMap<String, u64>,
    denials_user: HashMap<String, u64>,
    policies: HashMap<String, (i64, i64, u64, u64)>,
    users: HashMap<String, User>,
    mon_observed: u64,
    mon_flagged: u64,
    mon_signals: HashMap<String, u64>,
    mon_users: HashMap<String, Flags>,
    flagged: BinaryHeap<(i64, String)>,
    flagged_rows: HashMap<String, FlaggedCall>,
    dp_scanned: u64,
    dp_rows: u64,
    dp_handling: HashMap<String, u64>,
    dp_kinds: HashMap<String, Kind>,
    dp_route: HashMap<String, u64>,
    dp_tool: HashMap<String, u64>,
    dp_user: HashMap<String, u64>,
    exposures: BinaryHeap<(i64, String)>,
    exposure_rows: HashMap<String, Exposure>,
    exposures_total: u64,
    sessions: HashMap<String, Session>,
    no_session: u64,
    cost_total: f64,
    priced: u64,
    unpriced: u64,
    by_user: HashMap<String, Money>,
    by_org: HashMap<String, Money>,
    by_model: HashMap<String, Money>,
    by_route: HashMap<String, Money>,
}

impl Aggregator {
    /// Figures for `period` (and the period before it), tables cut to `top` rows,
    /// `custody trail` commands naming `sink`.
    pub fn new(period: Period, top: usize, sink: &str) -> Self {
        let before = period.before();
        Self {
            period,
            before,
            top: top.max(1),
            sink: sink.to_owned(),
            coverage: Coverage::default(),
            versions: BTreeMap::new(),
            first_row: None,
            last_row: None,
            pairs: HashMap::new(),
            pairs_before: HashSet::new(),
            denials_rule: HashMap::new(),
            denials_user: HashMap::new(),
            policies: HashMap::new(),
            users: HashMap::new(),
            mon_observed: 0,
            mon_flagged: 0,
            mon_signals: HashMap::new(),
            mon_users: HashMap::new(),
            flagged: BinaryHeap::new(),
            flagged_rows: HashMap::new(),
            dp_scanned: 0,
            dp_rows: 0,
            dp_handling: HashMap::new(),
            dp_kinds: HashMap::new(),
            dp_route: HashMap::new(),
            dp_tool: HashMap::new(),
            dp_user: HashMap::new(),
            exposures: BinaryHeap::new(),
            exposure_rows: HashMap::new(),
            exposures_total: 0,
            sessions: HashMap::new(),
            no_session: 0,
            cost_total: 0.0,
            priced: 0,
            unpriced: 0,
            by_user: HashMap::new(),
            by_org: HashMap::new(),
            by_model: HashMap::new(),
            by_route: HashMap::new(),
        }
    }

    /// A file was read (or could not be).
    pub fn file(&mut self, unreadable: Option<crate::scan::Unreadable>) {
        self.coverage.files += 1;
        if let Some(u) = unreadable {
            self.coverage.files_unreadable += 1;
            if self.coverage.unreadable.len() < self.top {
                self.coverage.unreadable.push(u);
            }
        }
    }

    /// Whether a row at `time` is read at all (the period or the one before).
    pub fn wants(&self, time: i64) -> bool {
        self.before.from <= time && time < self.period.to
    }

    /// Adds one row.
    pub fn add(&mut self, row: &Row<'_>) {
        if self.period.contains(row.time) {
            self.add_current(row);
        } else if self.before.contains(row.time) {
            self.add_before(row);
        }
    }

    fn add_before(&mut self, row: &Row<'_>) {
        let user = row.user.unwrap_or(ANONYMOUS);
        if let Some((target, _)) = target(row) {
            self.pairs_before
                .insert((user.to_owned(), target.to_owned()));
        }
        if row.housekeeping || is_gap(row) {
            return;
        }
        self.users.entry(user.to_owned()).or_default().calls_before += 1;
    }

    fn add_current(&mut self, row: &Row<'_>) {
        let c = &mut self.coverage;
        c.rows += 1;
        c.housekeeping_rows += u64::from(row.housekeeping);
        *self.versions.entry(row.version.unwrap_or(0)).or_default() += 1;
        self.first_row = Some(self.first_row.map_or(row.time, |f| f.min(row.time)));
        self.last_row = Some(self.last_row.map_or(row.time, |l| l.max(row.time)));
        if is_gap(row) {
            c.gap_rows += 1;
            c.not_recorded += row
                .error
                .and_then(|e| e.strip_prefix("gap: "))
                .and_then(|e| e.split(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(1);
            return;
        }
        if row
            .error
            .is_some_and(|e| e.starts_with(custody_audit::INCOMPLETE))
        {
            c.incomplete_rows += 1;
        }
        let user = row.user.unwrap_or(ANONYMOUS);
        let denied = row.decision == Some("deny");
        let allowed = row.decision == Some("allow");

        // Access.
        if let Some((target, kind)) = target(row) {
            let pair = self
                .pairs
                .entry((user.to_owned(), target.to_owned()))
                .or_insert_with(|| Pair {
                    kind,
                    first: i64::MAX,
                    ..Pair::default()
                });
            match row.decision {
                Some("allow") => pair.allowed += 1,
                Some("deny") => pair.denied += 1,
                _ => pair.refused += 1,
            }
            if row.time < pair.first {
                pair.first = row.time;
                pair.first_request = row.request_id.to_owned();
                pair.first_session = row.session.map(str::to_owned);
                pair.first_allowed = allowed;
            }
        }
        if denied {
            *self
                .denials_rule
                .entry(row.rule.unwrap_or("?").to_owned())
                .or_default() += 1;
            *self.denials_user.entry(user.to_owned()).or_default() += 1;
        }
        if let Some(v) = row.policy_version {
            let p = self
                .policies
                .entry(v.to_owned())
                .or_insert((i64::MAX, i64::MIN, 0, 0));
            p.0 = p.0.min(row.time);
            p.1 = p.1.max(row.time);
            p.2 += u64::from(allowed);
            p.3 += u64::from(denied);
        }

        // Monitoring: what the sidecars flagged.
        if !row.housekeeping {
            self.users.entry(user.to_owned()).or_default().calls += 1;
        }
        if let Some(found) = &row.anomalies {
            self.mon_observed += 1;
            if !found.is_empty() {
                self.mon_flagged += 1;
                let flags = self.mon_users.entry(user.to_owned()).or_default();
                flags.flagged += 1;
                if flags.request_ids.len() < 3 {
                    flags.request_ids.push(row.request_id.to_owned());
                }
                for (signal, _) in found {
                    *self.mon_signals.entry((*signal).to_owned()).or_default() += 1;
                    if !flags.signals.iter().any(|s| s == signal) {
                        flags.signals.push((*signal).to_owned());
                    }
                }
                self.flagged.push((row.time, row.request_id.to_owned()));
                self.flagged_rows.insert(
                    row.request_id.to_owned(),
                    FlaggedCall {
                        time: rfc3339(row.time),
                        user: user.to_owned(),
                        signals: found.iter().map(|(s, _)| (*s).to_owned()).collect(),
                        score: found.iter().map(|(_, sc)| *sc).fold(f64::MIN, f64::max),
                        target: target(row).map(|(t, _)| t.to_owned()),
                        request_id: row.request_id.to_owned(),
                        session_id: row.session.map(str::to_owned),
                    },
                );
                while self.flagged.len() > self.top {
                    if let Some((_, id)) = self.flagged.pop() {
                        self.flagged_rows.remove(&id);
                    }
                }
            }
        }

        // Data protection.
        if row.handling.is_some() {
            self.dp_scanned += 1;
            *self
                .dp_handling
                .entry(row.handling.unwrap_or("none").to_owned())
                .or_default() += 1;
        }
        if !row.findings.is_empty() {
            self.dp_rows += 1;
            let mut seen: Vec<&str> = Vec::new();
            let mut passed_on: Vec<String> = Vec::new();
            for f in &row.findings {
                let k = self.dp_kinds.entry(f.kind.to_owned()).or_default();
                let n = u64::try_from(f.count).unwrap_or(0);
                k.findings += n;
                match f.handling {
                    "blocked" => k.blocked += n,
                    "redacted" => k.redacted += n,
                    _ => k.logged += n,
                }
                if !seen.contains(&f.kind) {
                    seen.push(f.kind);
                    k.rows += 1;
                }
                if f.side == "request"
                    && f.handling == "logged"
                    && !passed_on.iter().any(|p| p == f.kind)
                {
                    passed_on.push(f.kind.to_owned());
                }
            }
            *self
                .dp_route
                .entry(row.route.unwrap_or("(no route)").to_owned())
                .or_default() += 1;
            if let Some(t) = row.tool {
                *self.dp_tool.entry(t.to_owned()).or_default() += 1;
            }
            *self.dp_user.entry(user.to_owned()).or_default() += 1;
            if allowed && !passed_on.is_empty() {
                self.exposures_total += 1;
                self.exposures.push((row.time, row.request_id.to_owned()));
                self.exposure_rows.insert(
                    row.request_id.to_owned(),
                    Exposure {
                        time: rfc3339(row.time),
                        request_id: row.request_id.to_owned(),
                        session_id: row.session.map(str::to_owned),
                        user: user.to_owned(),
                        route: row.route.map(str::to_owned),
                        tool: row.tool.map(str::to_owned),
                        kinds: passed_on,
                    },
                );
                // Keep the earliest `top`: drop the latest.
                while self.exposures.len() > self.top {
                    if let Some((_, id)) = self.exposures.pop() {
                        self.exposure_rows.remove(&id);
                    }
                }
            }
        }

        // Incidents.
        match row.session {
            Some(s) => {
                let session = self
                    .sessions
                    .entry(s.to_owned())
                    .or_insert_with(|| Session {
                        user: user.to_owned(),
                        calls: 0,
                        tools: Vec::new(),
                        denials: 0,
                        cost: 0.0,
                        first: row.time,
                        last: row.time,
                    });
                session.calls += 1;
                session.denials += u64::from(denied);
                session.cost += row.cost.unwrap_or(0.0);
                session.first = session.first.min(row.time);
                session.last = session.last.max(row.time);
                if let Some(t) = row.tool
                    && session.tools.len() < 5
                    && !session.tools.iter().any(|x| x == t)
                {
                    session.tools.push(t.to_owned());
                }
            }
            None => self.no_session += 1,
        }

        // Cost: LLM calls.
        if row.kind == Some("llm") {
            match row.cost {
                Some(c) => {
                    self.priced += 1;
                    self.cost_total += c;
                }
                None => self.unpriced += 1,
            }
            let add = |m: &mut HashMap<String, Money>, key: &str| {
                let e = m.entry(key.to_owned()).or_default();
                e.calls += 1;
                e.input += u64::try_from(row.input_tokens.unwrap_or(0)).unwrap_or(0);
                e.output += u64::try_from(row.output_tokens.unwrap_or(0)).unwrap_or(0);
                e.cost += row.cost.unwrap_or(0.0);
            };
            add(&mut self.by_user, user);
            add(&mut self.by_org, row.org.unwrap_or("(none)"));
            add(&mut self.by_model, row.model.unwrap_or("(none)"));
            add(&mut self.by_route, row.route.unwrap_or("(no route)"));
        }
    }

    /// The report, with `integrity` as checked.
    pub fn finish(mut self, integrity: Integrity) -> Report {
        let top = self.top;
        let mut coverage = std::mem::take(&mut self.coverage);
        coverage.schema_versions = self
            .versions
            .iter()
            .map(|(v, n)| Count {
                key: v.to_string(),
                count: *n,
            })
            .collect();
        coverage.first_row = self.first_row.map(rfc3339);
        coverage.last_row = self.last_row.map(rfc3339);
        coverage.integrity = integrity;

        // Access.
        let mut pairs: Vec<UserTarget> = self
            .pairs
            .iter()
            .map(|((user, target), p)| UserTarget {
                user: user.clone(),
                target: target.clone(),
                target_kind: p.kind.to_owned(),
                allowed: p.allowed,
                denied: p.denied,
                refused: p.refused,
            })
            .collect();
        pairs.sort_by(|a, b| {
            (b.allowed + b.denied + b.refused, &a.user, &a.target).cmp(&(
                a.allowed + a.denied + a.refused,
                &b.user,
                &b.target,
            ))
        });
        if pairs.len() > top {
            let rest = pairs.split_off(top);
            pairs.push(UserTarget {
                user: OTHERS.into(),
                target: format!("{OTHERS} ({} pairs)", rest.len()),
                target_kind: String::new(),
                allowed: rest.iter().map(|p| p.allowed).sum(),
                denied: rest.iter().map(|p| p.denied).sum(),
                refused: rest.iter().map(|p| p.refused).sum(),
            });
        }
        let mut first_use: Vec<FirstUse> = self
            .pairs
            .iter()
            .filter(|(key, _)| {
                !self.pairs_before.contains(*key)
                    && self.users.get(&key.0).is_some_and(|u| u.calls_before > 0)
            })
            .map(|((user, target), p)| FirstUse {
                user: user.clone(),
                target: target.clone(),
                first: rfc3339(p.first),
                request_id: p.first_request.clone(),
                session_id: p.first_session.clone(),
                allowed: p.first_allowed,
            })
            .collect();
        first_use.sort_by(|a, b| (&a.first, &a.user).cmp(&(&b.first, &b.user)));
        let first_use_total = first_use.len() as u64;
        first_use.truncate(top);
        let mut policy_versions: Vec<PolicyVersion> = self
            .policies
            .iter()
            .map(|(v, (first, last, allowed, denied))| PolicyVersion {
                version: v.clone(),
                first: rfc3339(*first),
                last: rfc3339(*last),
                allowed: *allowed,
                denied: *denied,
            })
            .collect();
        policy_versions.sort_by(|a, b| a.first.cmp(&b.first));
        let access = Access {
            users_targets_total: self.pairs.len() as u64,
            users_targets: pairs,
            denials_by_rule: counts(&self.denials_rule, top),
            denials_by_user: counts(&self.denials_user, top),
            policy_versions,
            first_use,
            first_use_total,
        };

        // Monitoring.
        let mut users: Vec<UserFlags> = self
            .mon_users
            .into_iter()
            .map(|(user, f)| UserFlags {
                user,
                flagged: f.flagged,
                signals: f.signals,
                request_ids: f.request_ids,
            })
            .collect();
        users.sort_by(|a, b| (b.flagged, &a.user).cmp(&(a.flagged, &b.user)));
        let users_total = users.len() as u64;
        users.truncate(top);
        let mut flagged: Vec<FlaggedCall> = self.flagged_rows.into_values().collect();
        flagged.sort_by(|a, b| (&a.time, &a.request_id).cmp(&(&b.time, &b.request_id)));
        let monitoring = Monitoring {
            rows_observed: self.mon_observed,
            rows_flagged: self.mon_flagged,
            by_signal: counts(&self.mon_signals, usize::MAX),
            users,
            users_total,
            flagged,
        };

        // Data protection.
        let mut kinds: Vec<KindCount> = self
            .dp_kinds
            .iter()
            .map(|(k, v)| KindCount {
                kind: k.clone(),
                findings: v.findings,
                rows: v.rows,
                blocked: v.blocked,
                redacted: v.redacted,
                logged: v.logged,
            })
            .collect();
        kinds.sort_by(|a, b| (b.findings, &a.kind).cmp(&(a.findings, &b.kind)));
        let mut exposures: Vec<Exposure> = self.exposure_rows.into_values().collect();
        exposures.sort_by(|a, b| (&a.time, &a.request_id).cmp(&(&b.time, &b.request_id)));
        let mut handling = counts(&self.dp_handling, usize::MAX);
        let order = ["blocked", "redacted", "logged", "none"];
        handling.sort_by_key(|c| order.iter().position(|o| *o == c.key).unwrap_or(9));
        let data_protection = DataProtection {
            rows_scanned: self.dp_scanned,
            rows_with_findings: self.dp_rows,
            handling,
            by_kind: kinds,
            by_route: counts(&self.dp_route, top),
            by_tool: counts(&self.dp_tool, top),
            by_user: counts(&self.dp_user, top),
            unredacted_upstream: exposures,
            unredacted_upstream_total: self.exposures_total,
        };

        // Incidents.
        let sessions_total = self.sessions.len() as u64;
        let mut sessions: Vec<(String, Session)> = self.sessions.into_iter().collect();
        sessions.sort_by(|a, b| (b.1.last, &a.0).cmp(&(a.1.last, &b.0)));
        sessions.truncate(top);
        let sink = &self.sink;
        let incidents = Incidents {
            sessions_total,
            sessions: sessions
                .into_iter()
                .map(|(id, s)| SessionOut {
                    command: format!(
                        "custody trail --sink {} --session {}",
                        shell(sink),
                        shell(&id)
                    ),
                    session_id: id,
                    user: s.user,
                    calls: s.calls,
                    tools: s.tools,
                    denials: s.denials,
                    cost_usd: round(s.cost),
                    first: rfc3339(s.first),
                    last: rfc3339(s.last),
                })
                .collect(),
            rows_without_session: self.no_session,
        };

        let cost = Cost {
            total_usd: round(self.cost_total),
            calls_priced: self.priced,
            calls_unpriced: self.unpriced,
            by_user: money(&self.by_user, top),
            by_org: money(&self.by_org, top),
            by_model: money(&self.by_model, top),
            by_route: money(&self.by_route, top),
        };
        Report {
            report_version: REPORT_VERSION,
            generated: rfc3339(now_micros()),
            sink: self.sink.clone(),
            period: PeriodOut {
                from: rfc3339(self.period.from),
                to: rfc3339(self.period.to),
                tz: self.period.tz_name.clone(),
                from_local: self.period.show(self.period.from),
                to_local: self.period.show(self.period.to),
                before_from: rfc3339(self.before.from),
            },
            coverage,
            access,
            monitoring,
            data_protection,
            incidents,
            cost,
        }
    }
}

/// The tool a row called, or for an LLM call the model; `None` for other rows.
fn target<'a>(row: &Row<'a>) -> Option<(&'a str, &'static str)> {
    match (row.tool, row.kind) {
        (Some(t), _) => Some((t, "tool")),
        (None, Some("llm")) => Some((row.model.unwrap_or("(none)"), "model")),
        _ => None,
    }
}

fn is_gap(row: &Row<'_>) -> bool {
    row.request_id.starts_with("gap_") && row.error.is_some_and(|e| e.starts_with("gap: "))
}

/// `map` as counts, largest first, cut to `top` with the rest summed.
fn counts(map: &HashMap<String, u64>, top: usize) -> Vec<Count> {
    let mut v: Vec<Count> = map
        .iter()
        .map(|(k, n)| Count {
            key: k.clone(),
            count: *n,
        })
        .collect();
    v.sort_by(|a, b| (b.count, &a.key).cmp(&(a.count, &b.key)));
    if v.len() > top {
        let rest = v.split_off(top);
        v.push(Count {
            key: format!("{OTHERS} ({})", rest.len()),
            count: rest.iter().map(|c| c.count).sum(),
        });
    }
    v
}

fn money(map: &HashMap<String, Money>, top: usize) -> Vec<CostRow> {
    let mut v: Vec<CostRow> = map
        .iter()
        .map(|(k, m)| CostRow {
            key: k.clone(),
            calls: m.calls,
            input_tokens: m.input,
            output_tokens: m.output,
            cost_usd: round(m.cost),
        })
        .collect();
    v.sort_by(|a, b| {
        b.cost_usd
            .total_cmp(&a.cost_usd)
            .then(b.calls.cmp(&a.calls))
            .then(a.key.cmp(&b.key))
    });
    if v.len() > top {
        let rest = v.split_off(top);
        v.push(CostRow {
            key: format!("{OTHERS} ({})", rest.len()),
            calls: rest.iter().map(|c| c.calls).sum(),
            input_tokens: rest.iter().map(|c| c.input_tokens).sum(),
            output_tokens: rest.iter().map(|c| c.output_tokens).sum(),
            cost_usd: round(rest.iter().map(|c| c.cost_usd).sum()),
        });
    }
    v
}

/// USD to a millionth of a cent.
fn round(usd: f64) -> f64 {
    (usd * 1e8).round() / 1e8
}

/// `text` quoted for a POSIX shell when it needs it.
fn shell(text: &str) -> String {
    if text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.:/=@+,".contains(&b))
    {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests;
