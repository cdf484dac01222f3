//! Each signal fires on its pattern and stays quiet for a steady user; warm-up,
//! caps and snapshots. Time is passed in: no test sleeps.

use super::*;

const MIN: i64 = 60_000_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
/// Monday 2026-03-02T00:00:00Z (µs).
const T0: i64 = 1_772_409_600_000_000;

fn at(t: i64) -> Observation<'static> {
    Observation {
        at: t,
        user: Some("ann"),
        session: Some("s"),
        target: Some("gpt-4o-mini"),
        cost_usd: Some(0.001),
        local_hour: ((t.rem_euclid(DAY)) / HOUR) as u8,
        token: Some(7),
        ..Observation::default()
    }
}

const SESSIONS: [&str; 4] = ["s0", "s1", "s2", "s3"];

/// Eight days of a steady user: 9:00 to 17:00 UTC, a call every 30 s, a new
/// session every 20 minutes, two tools, a little PII: and nothing fires.
fn steady() -> (Detector, i64) {
    let d = Detector::new(Settings::default(), T0);
    let mut fired = Vec::new();
    for day in 0..8 {
        for k in 0..(8 * 120) {
            let t = T0 + day * DAY + 9 * HOUR + k * 30_000_000;
            let mut o = at(t);
            o.session = Some(SESSIONS[((k / 40) % 4) as usize]);
            o.target = Some(if k % 3 == 0 {
                "crm:contacts:search"
            } else {
                "gpt-4o-mini"
            });
            o.pii = k % 120 == 7;
            o.denied = k % 200 == 11;
            fired.extend(d.observe(&o));
        }
    }
    assert_eq!(fired, vec![], "a steady user trips nothing");
    (d, T0 + 8 * DAY + 10 * HOUR)
}

// A user's baselines stay small: 10 000 users are a few MiB.
const _: () = assert!(Detector::MAX_BYTES_PER_USER < 2_048);

fn signals(a: &[Anomaly]) -> Vec<&'static str> {
    a.iter().map(|a| a.signal.name()).collect()
}

#[test]
fn a_rate_spike_fires_once_per_minute() {
    let (d, t) = steady();
    let mut fired = Vec::new();
    for i in 0..40 {
        fired.extend(d.observe(&at(t + i * 1_000_000)));
    }
    assert_eq!(signals(&fired), ["rate_spike"]);
    assert!(fired[0].baseline.expect("baseline") < 3.0 && fired[0].observed >= 20.0);
}

#[test]
fn a_first_use_fires_after_warm_up_only() {
    let (d, t) = steady();
    let mut o = at(t);
    o.target = Some("crm:contacts:export");
    assert_eq!(signals(&d.observe(&o)), ["first_use"]);
    assert_eq!(signals(&d.observe(&o)), Vec::<&str>::new(), "once");

    // A fresh pod: the same user history, but detection just began.
    let fresh = Detector::new(Settings::default(), T0);
    for k in 0..100 {
        fresh.observe(&at(T0 + k * 1_000_000));
    }
    let mut o = at(T0 + 200 * 1_000_000);
    o.target = Some("crm:contacts:export");
    assert_eq!(
        signals(&fresh.observe(&o)),
        Vec::<&str>::new(),
        "silent in warm-up"
    );
    let mut later = at(T0 + 2 * HOUR);
    later.target = Some("crm:contacts:delete");
    assert_eq!(signals(&fresh.observe(&later)), ["first_use"]);
}

#[test]
fn a_denial_burst_fires_on_denials_not_on_calls() {
    let (d, t) = steady();
    let mut fired = Vec::new();
    for i in 0..6 {
        let mut o = at(t + i * 1_000_000);
        o.denied = true;
        fired.extend(d.observe(&o));
    }
    assert_eq!(signals(&fired), ["denial_burst"]);
}

#[test]
fn a_pii_burst_fires_above_the_users_usual_findings() {
    let (d, t) = steady();
    let mut fired = Vec::new();
    for i in 0..6 {
        let mut o = at(t + i * 1_000_000);
        o.pii = true;
        fired.extend(d.observe(&o));
    }
    assert_eq!(signals(&fired), ["pii_burst"]);
}

#[test]
fn cost_per_hour_over_the_baseline_fires() {
    let (d, t) = steady();
    let mut o = at(t);
    o.cost_usd = Some(0.6);
    assert!(d.observe(&o).is_empty(), "under cost_min_usd");
    o.at += 1_000_000;
    assert_eq!(signals(&d.observe(&o)), ["cost_rate"]);
}

#[test]
fn a_session_much_longer_than_usual_fires() {
    let (d, t) = steady();
    let mut fired = Vec::new();
    for i in 0..120 {
        let mut o = at(t + i * 20_000_000);
        o.session = Some("marathon");
        fired.extend(d.observe(&o));
    }
    assert_eq!(signals(&fired), ["long_session"]);
    // The user's sessions run 40 calls: 40 + 4 × max(deviation, 5) is 60.
    assert!(
        (fired[0].baseline.expect("baseline") - 40.0).abs() < 1.0,
        "{fired:?}"
    );
    assert_eq!(fired[0].observed, 61.0);
}

#[test]
fn a_call_at_an_unusual_hour_fires_once_the_user_is_known() {
    let (d, t) = steady();
    let night = t - 10 * HOUR + 3 * HOUR + 24 * HOUR; // 03:00 the next day
    assert_eq!(signals(&d.observe(&at(night))), ["off_hours"]);
    assert!(d.observe(&at(night + MIN)).is_empty(), "once an hour");
}

#[test]
fn one_token_in_many_sessions_fires() {
    let (d, t) = steady();
    let mut fired = Vec::new();
    for (i, s) in ["a", "b", "c", "d", "e", "f"].into_iter().enumerate() {
        let mut o = at(t + i as i64 * 1_000_000);
        o.session = Some(s);
        o.token = Some(99);
        fired.extend(d.observe(&o));
    }
    assert_eq!(signals(&fired), ["token_fanout"]);
}

#[test]
fn anonymous_calls_are_not_observed() {
    let d = Detector::new(Settings::default(), T0);
    let mut o = at(T0);
    o.user = None;
    assert!(d.observe(&o).is_empty());
    assert_eq!(d.users(), 0);
}

#[test]
fn users_targets_and_tokens_stay_within_their_caps() {
    let settings = Settings {
        max_users: 32,
        max_targets: 4,
        max_tokens: 8,
        ..Settings::default()
    };
    let d = Detector::new(settings, T0 - 2 * HOUR);
    let names: Vec<String> = (0..1000).map(|i| format!("user-{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        let mut o = at(T0 + i as i64);
        o.user = Some(name);
        o.token = Some(i as u64);
        d.observe(&o);
    }
    assert!(d.users() <= 32, "{}", d.users());
    assert!(d.tokens.lock().expect("tokens").len() <= 8);
    // Past max_targets a user's new tools are not remembered, nor reported.
    let targets = ["t0", "t1", "t2", "t3", "t4", "t5"];
    let mut fired = Vec::new();
    for k in 0..60 {
        let mut o = at(T0 + HOUR + k);
        o.user = Some("heavy");
        o.target = Some(targets[(k as usize).min(5)]);
        fired.extend(d.observe(&o));
    }
    assert!(fired.is_empty(), "under 50 calls of history: {fired:?}");
}

#[test]
fn baselines_survive_a_restart() {
    let (d, t) = steady();
    let bytes = d.snapshot();
    let restored = Detector::restore(Settings::default(), &bytes, t).expect("restored");
    assert_eq!(restored.users(), 1);
    assert!(restored.warm(t), "warm-up is not restarted");
    let mut fired = Vec::new();
    for i in 0..40 {
        fired.extend(restored.observe(&at(t + i * 1_000_000)));
    }
    assert_eq!(
        signals(&fired),
        ["rate_spike"],
        "the restored baseline is used"
    );
    assert!(Detector::restore(Settings::default(), b"{}", t).is_err());
}
