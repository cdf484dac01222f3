//! One user's baselines, and one token's sessions: the rules of the crate's table.

use crate::{Anomaly, Band, Observation, Settings, Signal, fnv, micros};
use serde::{Deserialize, Serialize};

const MINUTE: i64 = 60_000_000;
const HOUR: i64 = 3_600_000_000;
/// Open sessions remembered per user; a session idle this long has ended.
const OPEN_SESSIONS: usize = 8;
const SESSION_IDLE: i64 = 30 * MINUTE;
/// Empty minutes, windows and hours taken into a baseline after a gap, at most
/// (older ones no longer move an EWMA measurably).
const GAP_FILL: i64 = 60;

/// One open session: its key, calls, whether it fired, its last call.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct OpenSession(u64, u32, bool, i64);

/// One user's baselines.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct User {
    first_seen: i64,
    pub(crate) last_seen: i64,
    calls: u64,
    minute: i64,
    minute_calls: u32,
    rate: Band,
    rate_fired: i64,
    targets: Vec<u64>,
    window: i64,
    window_calls: u32,
    window_denials: u32,
    window_pii: u32,
    denial_fired: bool,
    pii_fired: bool,
    pii: Band,
    hour: i64,
    hour_cost: f64,
    cost: Band,
    cost_fired: bool,
    sessions: Vec<OpenSession>,
    session_length: Band,
    hours: [u32; 24],
    off_fired: i64,
}

impl User {
    pub(crate) fn new(now: i64) -> Self {
        Self {
            first_seen: now,
            last_seen: now,
            calls: 0,
            minute: now.div_euclid(MINUTE),
            minute_calls: 0,
            rate: Band::default(),
            rate_fired: i64::MIN,
            targets: Vec::new(),
            window: i64::MIN,
            window_calls: 0,
            window_denials: 0,
            window_pii: 0,
            denial_fired: false,
            pii_fired: false,
            pii: Band::default(),
            hour: now.div_euclid(HOUR),
            hour_cost: 0.0,
            cost: Band::default(),
            cost_fired: false,
            sessions: Vec::new(),
            session_length: Band::default(),
            hours: [0; 24],
            off_fired: i64::MIN,
        }
    }

    pub(crate) fn observe(
        &mut self,
        o: &Observation<'_>,
        s: &Settings,
        warm: bool,
        out: &mut Vec<Anomaly>,
    ) {
        let at = o.at;
        self.last_seen = self.last_seen.max(at);
        self.calls += 1;
        self.rate(at, s, out);
        if let Some(target) = o.target {
            let h = fnv(target.as_bytes());
            if !self.targets.contains(&h) && self.targets.len() < s.max_targets {
                self.targets.push(h);
                if warm && self.calls > s.first_use_min_calls {
                    out.push(Anomaly {
                        signal: Signal::FirstUse,
                        score: 1.0,
                        baseline: None,
                        observed: self.targets.len() as f64,
                    });
                }
            }
        }
        self.bursts(o, s, out);
        self.cost(o, s, out);
        if let Some(session) = o.session {
            self.session(at, fnv(session.as_bytes()), s, out);
        }
        self.off_hours(o, s, warm, out);
    }

    fn rate(&mut self, at: i64, s: &Settings, out: &mut Vec<Anomaly>) {
        let m = at.div_euclid(MINUTE);
        if m > self.minute {
            self.rate.update(f64::from(self.minute_calls), s.alpha);
            for _ in 0..(m - self.minute - 1).min(GAP_FILL) {
                self.rate.update(0.0, s.alpha);
            }
            self.minute = m;
            self.minute_calls = 0;
        }
        self.minute_calls += 1;
        if self.rate.n >= s.rate_history_minutes
            && self.minute_calls >= s.rate_min_calls
            && self.rate_fired != self.minute
        {
            let observed = f64::from(self.minute_calls);
            let score = self.rate.score(observed, 1.0);
            if score > s.rate_k {
                self.rate_fired = self.minute;
                out.push(Anomaly {
                    signal: Signal::RateSpike,
                    score,
                    baseline: Some(self.rate.mean),
                    observed,
                });
            }
        }
    }

    fn bursts(&mut self, o: &Observation<'_>, s: &Settings, out: &mut Vec<Anomaly>) {
        let w = o.at.div_euclid(micros(s.burst_window).max(1));
        if w > self.window {
            if self.window != i64::MIN {
                self.pii.update(f64::from(self.window_pii), s.alpha);
                for _ in 0..(w - self.window - 1).min(GAP_FILL) {
                    self.pii.update(0.0, s.alpha);
                }
            }
            self.window = w;
            self.window_calls = 0;
            self.window_denials = 0;
            self.window_pii = 0;
            self.denial_fired = false;
            self.pii_fired = false;
        }
        self.window_calls += 1;
        self.window_denials += u32::from(o.denied);
        self.window_pii += u32::from(o.pii);
        let denials = f64::from(self.window_denials);
        if !self.denial_fired
            && self.window_denials >= s.burst_min
            && denials >= s.denial_ratio * f64::from(self.window_calls)
        {
            self.denial_fired = true;
            out.push(Anomaly {
                signal: Signal::DenialBurst,
                score: denials / f64::from(s.burst_min.max(1)),
                baseline: None,
                observed: denials,
            });
        }
        let pii = f64::from(self.window_pii);
        if !self.pii_fired && self.window_pii >= s.burst_min {
            let score = self.pii.score(pii, 1.0);
            if score > s.burst_k {
                self.pii_fired = true;
                out.push(Anomaly {
                    signal: Signal::PiiBurst,
                    score,
                    baseline: Some(self.pii.mean),
                    observed: pii,
                });
            }
        }
    }

    fn cost(&mut self, o: &Observation<'_>, s: &Settings, out: &mut Vec<Anomaly>) {
        let h = o.at.div_euclid(HOUR);
        if h > self.hour {
            self.cost.update(self.hour_cost, s.alpha);
            for _ in 0..(h - self.hour - 1).min(GAP_FILL) {
                self.cost.update(0.0, s.alpha);
            }
            self.hour = h;
            self.hour_cost = 0.0;
            self.cost_fired = false;
        }
        self.hour_cost += o.cost_usd.unwrap_or(0.0).max(0.0);
        if !self.cost_fired
            && self.cost.n >= s.cost_history_hours
            && self.hour_cost >= s.cost_min_usd
        {
            let score = self.cost.score(self.hour_cost, s.cost_min_usd / 10.0);
            if score > s.cost_k {
                self.cost_fired = true;
                out.push(Anomaly {
                    signal: Signal::CostRate,
                    score,
                    baseline: Some(self.cost.mean),
                    observed: self.hour_cost,
                });
            }
        }
    }

    fn session(&mut self, at: i64, key: u64, s: &Settings, out: &mut Vec<Anomaly>) {
        // Sessions idle long enough have ended: their lengths make the baseline.
        let mut i = 0;
        while i < self.sessions.len() {
            if self.sessions[i].0 != key && at - self.sessions[i].3 > SESSION_IDLE {
                let ended = self.sessions.remove(i);
                self.session_length.update(f64::from(ended.1), s.alpha);
            } else {
                i += 1;
            }
        }
        match self.sessions.iter().position(|x| x.0 == key) {
            Some(i) => {
                let mut open = self.sessions.remove(i);
                open.1 += 1;
                open.3 = at;
                self.sessions.push(open);
            }
            None => {
                if self.sessions.len() >= OPEN_SESSIONS {
                    let ended = self.sessions.remove(0);
                    self.session_length.update(f64::from(ended.1), s.alpha);
                }
                self.sessions.push(OpenSession(key, 1, false, at));
            }
        }
        let band = self.session_length;
        if let Some(open) = self.sessions.last_mut()
            && !open.2
            && band.n >= s.session_history
            && open.1 >= s.session_min_calls
        {
            let observed = f64::from(open.1);
            let score = band.score(observed, 5.0);
            if score > s.session_k {
                open.2 = true;
                out.push(Anomaly {
                    signal: Signal::LongSession,
                    score,
                    baseline: Some(band.mean),
                    observed,
                });
            }
        }
    }

    fn off_hours(&mut self, o: &Observation<'_>, s: &Settings, warm: bool, out: &mut Vec<Anomaly>) {
        let hour = usize::from(o.local_hour.min(23));
        let total: u64 = self.hours.iter().map(|h| u64::from(*h)).sum();
        let h = o.at.div_euclid(HOUR);
        let known = o.at - self.first_seen >= micros(s.off_hours_min_history);
        if warm && known && total >= s.off_hours_min_calls && self.off_fired != h {
            let share = f64::from(self.hours[hour]) / total as f64;
            if share < s.off_hours_share {
                self.off_fired = h;
                out.push(Anomaly {
                    signal: Signal::OffHours,
                    score: (s.off_hours_share / share.max(1e-6)).min(100.0),
                    baseline: Some(share),
                    observed: hour as f64,
                });
            }
        }
        self.hours[hour] = self.hours[hour].saturating_add(1);
    }
}

/// One token fingerprint: the sessions that used it in the current window.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Token {
    pub(crate) window: i64,
    sessions: Vec<u64>,
    fired: bool,
}

impl Token {
    pub(crate) fn observe(&mut self, at: i64, session: u64, s: &Settings, out: &mut Vec<Anomaly>) {
        let w = at.div_euclid(micros(s.fanout_window).max(1));
        if w != self.window {
            self.window = w;
            self.sessions.clear();
            self.fired = false;
        }
        if !self.sessions.contains(&session) && self.sessions.len() < 16 {
            self.sessions.push(session);
        }
        let n = self.sessions.len() as u32;
        if !self.fired && n >= s.fanout_sessions {
            self.fired = true;
            out.push(Anomaly {
                signal: Signal::TokenFanout,
                score: f64::from(n) / f64::from(s.fanout_sessions.max(1)),
                baseline: None,
                observed: f64::from(n),
            });
        }
    }
}
