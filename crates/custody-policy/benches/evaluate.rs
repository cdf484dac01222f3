//! Policy evaluation speed on a generated policy of 200 rules and 50 roles
//! (target: p99 <= 5 µs per evaluation).
//!
//! Scenarios: an action that only the last rule matches; one that no rule matches
//! (every rule is tried, then the grant check allows); one whose arguments must be
//! parsed for an early rule's condition (then no rule matches); an LLM call.
//!
//! Before criterion's medians, a plain loop times 100 000 single evaluations per
//! scenario and prints percentiles (each sample includes ~20-40 ns of clock
//! overhead, so the percentiles slightly overstate).
//!
//! `cargo bench -p custody-policy --bench evaluate`

#![allow(missing_docs)]

use criterion::{Criterion, criterion_group};
use custody_core::{Action, ActionKind, Principal};
use custody_policy::{Input, Policy};
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Instant;

const ROLES: usize = 50;
const RULES: usize = 200;

/// 50 roles in chains of five (r1 inherits r0, ...), two scopes each; 100 tool
/// patterns; 6 model patterns; 200 rules of five shapes, the last one matching
/// only `late:tool`.
fn generated_policy() -> String {
    let mut y = String::from("format: 1\nroles:\n");
    for i in 0..ROLES {
        let _ = write!(
            y,
            "  r{i}:\n    grants: [tool:svc{i}:read, tool:svc{i}:write"
        );
        if i % 10 == 0 {
            y.push_str(", model:standard");
        }
        if i % 10 == 9 {
            y.push_str(", model:premium");
        }
        y.push_str("]\n");
        if i % 5 != 0 {
            let _ = writeln!(y, "    inherits: [r{}]", i - 1);
        }
    }
    y.push_str("tools:\n  \"late:tool\": [tool:svc0:read]\n");
    for i in 0..ROLES {
        let _ = writeln!(y, "  \"svc{i}:*\": [tool:svc{i}:read]");
        let _ = writeln!(y, "  \"svc{i}:write:*\": [tool:svc{i}:write]");
    }
    y.push_str("models:\n");
    for (p, s) in [
        ("gpt-4o-mini*", "model:standard"),
        ("gpt-4o*", "model:premium"),
        ("o3*", "model:premium"),
        ("claude-3-5-haiku*", "model:standard"),
        ("claude-*", "model:premium"),
        ("text-embedding-*", "model:standard"),
    ] {
        let _ = writeln!(y, "  \"{p}\": [{s}]");
    }
    y.push_str("rules:\n");
    y.push_str("  - name: own-org-svc1\n    effect: deny\n    when:\n      action: {tool: \"svc1:*\"}\n      arguments: [{path: $.org_id, not_equals_claim: org}]\n");
    for i in 1..RULES - 1 {
        let s = i % ROLES;
        let rule = match i % 5 {
            0 => format!(
                "  - name: rule-{i}\n    effect: deny\n    when:\n      principal: {{role: r{s}}}\n      action: {{tool: \"svc{s}:admin-{i}:*\"}}\n"
            ),
            1 => format!(
                "  - name: rule-{i}\n    effect: deny\n    when:\n      action: {{tool: \"svc{s}:export-{i}:*\"}}\n      arguments: [{{path: $.limit, gt: 1000}}]\n"
            ),
            2 => format!(
                "  - name: rule-{i}\n    effect: allow\n    when:\n      principal: {{sub: \"svc-account-{i}-*\"}}\n      action: {{kind: http, route: internal-{i}}}\n"
            ),
            3 => format!(
                "  - name: rule-{i}\n    effect: deny\n    when:\n      principal: {{org: [blocked-{i}, suspended-{i}]}}\n"
            ),
            _ => format!(
                "  - name: rule-{i}\n    effect: allow\n    when:\n      principal: {{role: r{s}, issuer: \"https://idp-{i}.example/*\"}}\n      action: {{method: [GET, HEAD], path: \"/reports/{i}/*\"}}\n"
            ),
        };
        y.push_str(&rule);
    }
    y.push_str("  - name: late\n    effect: allow\n    when:\n      principal: {role: [r3, r4]}\n      action: {tool: late:tool}\n");
    y
}

struct Scenario {
    name: &'static str,
    action: Action,
    model: Option<&'static str>,
    arguments: Option<&'static str>,
    expect: &'static str,
}

fn tool(name: &str) -> Action {
    let mut a = Action::new(ActionKind::Tool, "POST", "/mcp");
    a.route = Some("svc".into());
    a.tool = Some(name.into());
    a.operation = Some("tools/call".into());
    a
}

fn scenarios() -> Vec<Scenario> {
    let mut llm = Action::new(ActionKind::Llm, "POST", "/openai/v1/chat/completions");
    llm.route = Some("openai".into());
    llm.operation = Some("chat.completions".into());
    vec![
        Scenario {
            name: "late_match",
            action: tool("late:tool"),
            model: None,
            arguments: None,
            expect: "late",
        },
        Scenario {
            name: "no_rule_grant",
            action: tool("svc3:records:read"),
            model: None,
            arguments: None,
            expect: "role:r4 grants tool:svc3:read",
        },
        Scenario {
            name: "argument_condition",
            action: tool("svc1:records:search"),
            model: None,
            arguments: Some(
                r#"{"fields":["name","email","owner"],"limit":25,"org_id":"acme","query":"pipeline status for Globex this quarter"}"#,
            ),
            expect: "role:r4 grants tool:svc1:read",
        },
        Scenario {
            name: "llm_model",
            action: llm,
            model: Some("gpt-4o-mini-2024-07-18"),
            arguments: None,
            expect: "role:r4 grants model:standard",
        },
    ]
}

fn principal() -> Principal {
    Principal {
        sub: Some("alice@acme.example".into()),
        org: Some("acme".into()),
        role: Some("r4".into()),
        roles: Some(vec!["r4".into(), "employee".into()]),
        issuer: Some("https://idp.acme.example/realms/main".into()),
    }
}

fn input<'a>(p: &'a Principal, s: &'a Scenario, scopes: &'a [String]) -> Input<'a> {
    Input {
        principal: p,
        claims: None,
        token_scopes: Some(scopes),
        action: &s.action,
        model: s.model,
        arguments: s.arguments,
    }
}

fn load() -> Policy {
    let loaded = Policy::from_yaml(&generated_policy()).expect("generated policy is valid");
    assert_eq!(loaded.policy.rule_count(), RULES);
    for w in &loaded.warnings {
        eprintln!("{w}");
    }
    assert_eq!(loaded.policy.role_names().count(), ROLES);
    loaded.policy
}

fn token_scopes() -> Vec<String> {
    [
        "openid",
        "profile",
        "tool:svc1:read",
        "tool:svc3:read",
        "tool:svc4:read",
        "model:standard",
    ]
    .map(String::from)
    .to_vec()
}

/// 100 000 timed single evaluations per scenario; prints percentiles.
fn percentiles(policy: &Policy) {
    const N: usize = 100_000;
    let p = principal();
    let scopes = token_scopes();
    println!("policy: {RULES} rules, {ROLES} roles; {N} timed evaluations per scenario");
    for s in &scenarios() {
        let input = input(&p, s, &scopes);
        assert_eq!(policy.evaluate(&input).rule, s.expect, "{}", s.name);
        for _ in 0..10_000 {
            black_box(policy.evaluate(black_box(&input)));
        }
        let mut ns: Vec<u64> = (0..N)
            .map(|_| {
                let t = Instant::now();
                black_box(policy.evaluate(black_box(&input)));
                u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX)
            })
            .collect();
        ns.sort_unstable();
        let at = |q: f64| ns[((N as f64 * q) as usize).min(N - 1)];
        println!(
            "  {:<20} p50 {:>6} ns  p90 {:>6} ns  p99 {:>6} ns  p99.9 {:>6} ns  max {:>7} ns",
            s.name,
            at(0.50),
            at(0.90),
            at(0.99),
            at(0.999),
            ns[N - 1]
        );
    }
}

fn bench(c: &mut Criterion) {
    let policy = load();
    let p = principal();
    let scopes = token_scopes();
    let mut g = c.benchmark_group("evaluate_200_rules_50_roles");
    for s in &scenarios() {
        let input = input(&p, s, &scopes);
        g.bench_function(s.name, |b| b.iter(|| policy.evaluate(black_box(&input))));
    }
    g.finish();
    let text = generated_policy();
    c.bench_function("load_200_rules_50_roles", |b| {
        b.iter(|| Policy::from_yaml(black_box(&text)).map(|l| l.warnings.len()))
    });
}

criterion_group!(benches, bench);

fn main() {
    percentiles(&load());
    benches();
    Criterion::default().configure_from_args().final_summary();
}
