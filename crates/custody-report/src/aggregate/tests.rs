use super::*;
use crate::rows::Finding;

const DAY: i64 = 86_400_000_000;

fn period() -> Period {
    Period::parse("1970-01-03", "1970-01-04", None).expect("period")
}

fn row<'a>(time: i64, id: &'a str, user: &'a str) -> Row<'a> {
    Row {
        time,
        request_id: id,
        user: Some(user),
        kind: Some("llm"),
        model: Some("m"),
        decision: Some("allow"),
        session: Some("s1"),
        version: Some(8),
        ..Row::default()
    }
}

#[test]
fn gaps_exposures_and_the_period_before() {
    let mut agg = Aggregator::new(period(), 10, "/trail");
    let now = 2 * DAY + 1000;
    agg.add(&row(DAY + 5, "b1", "ann"));
    let mut plain = row(now, "r1", "ann");
    plain.anomalies = Some(Vec::new());
    agg.add(&plain);
    let mut tool = row(now + 1, "r2", "ann");
    tool.tool = Some("crm:export");
    tool.kind = Some("tool");
    tool.findings = vec![
        Finding {
            kind: "EMAIL",
            count: 2,
            side: "request",
            handling: "logged",
        },
        Finding {
            kind: "CARD",
            count: 1,
            side: "response",
            handling: "logged",
        },
    ];
    tool.handling = Some("logged");
    tool.anomalies = Some(vec![("first_use", 1.0)]);
    agg.add(&tool);
    let mut gap = row(now + 2, "gap_1", "ann");
    gap.error = Some("gap: 17 requests not recorded (audit spool full)");
    agg.add(&gap);
    let mut lost = row(now + 3, "r3", "bo");
    lost.error = Some(custody_audit::INCOMPLETE);
    lost.decision = Some("deny");
    agg.add(&lost);
    agg.add(&row(3 * DAY, "later", "ann")); // the period's end is excluded
    let r = agg.finish(Integrity::default());
    assert_eq!(r.coverage.rows, 4);
    assert_eq!((r.coverage.gap_rows, r.coverage.not_recorded), (1, 17));
    assert_eq!(r.coverage.incomplete_rows, 1);
    assert_eq!(r.data_protection.unredacted_upstream_total, 1);
    assert_eq!(
        r.data_protection.unredacted_upstream[0].kinds,
        ["EMAIL"],
        "a response finding went nowhere upstream"
    );
    // Flagged calls come from the rows' `anomalies`: ann's tool call.
    assert_eq!(
        (r.monitoring.rows_observed, r.monitoring.rows_flagged),
        (2, 1)
    );
    assert_eq!(r.monitoring.by_signal[0].key, "first_use");
    assert_eq!(r.monitoring.users[0].user, "ann");
    assert_eq!(r.monitoring.flagged[0].request_id, "r2");
    assert_eq!(
        r.monitoring.flagged[0].target.as_deref(),
        Some("crm:export")
    );
    assert_eq!(r.access.first_use[0].target, "crm:export");
    assert_eq!(
        r.access.first_use.len(),
        1,
        "bo had no calls before: no first use"
    );
    assert_eq!(
        r.incidents.sessions[0].command,
        "custody trail --sink /trail --session s1"
    );
}

#[test]
fn tables_are_cut_with_the_rest_summed() {
    let mut agg = Aggregator::new(period(), 2, "/trail");
    let names: Vec<String> = (0..5).map(|i| format!("u{i}")).collect();
    let ids: Vec<String> = (0..15).map(|i| format!("r{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let mut r = row(2 * DAY + i as i64, id, &names[i % 5]);
        r.decision = Some("deny");
        r.rule = Some("default:deny");
        agg.add(&r);
    }
    let r = agg.finish(Integrity::default());
    assert_eq!(r.access.users_targets.len(), 3);
    let total: u64 = r.access.users_targets.iter().map(|p| p.denied).sum();
    assert_eq!(total, 15);
    assert_eq!(
        r.access.denials_by_user.last().map(|c| c.key.as_str()),
        Some("(others) (3)")
    );
}
