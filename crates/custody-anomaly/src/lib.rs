//! What is unusual for *this* user: per-user baselines of how they use the agent,
//! and the signals that flag a call that departs from them (no I/O; time is
//! passed in).
//!
//! [`Detector::observe`] takes one finished call ([`Observation`]) and returns the
//! signals it tripped ([`Anomaly`]), usually none. Each signal has one rule, its
//! thresholds in [`Settings`]:
//!
//! | signal | fires when | once per |
//! |---|---|---|
//! | `rate_spike` | the user's calls in the current minute reach `rate_min_calls` and exceed their per-minute EWMA by `rate_k` × its mean absolute deviation (at least 1), after `rate_history_minutes` minutes of baseline | minute |
//! | `first_use` | a tool or model the user has not used before, once the pod is warm and the user has `first_use_min_calls` calls of history | tool or model |
//! | `denial_burst` | `burst_min` denials in the user's current `burst_window`, at least `denial_ratio` of its calls | window |
//! | `pii_burst` | `burst_min` calls with PII or secret findings (blocked ones included) in the current window, above the user's per-window EWMA by `burst_k` × its deviation (at least 1) | window |
//! | `cost_rate` | the user's cost in the current hour reaches `cost_min_usd` and exceeds their hourly EWMA by `cost_k` × its deviation (at least `cost_min_usd` / 10), after `cost_history_hours` hours of baseline | hour |
//! | `long_session` | a session's calls reach `session_min_calls` and exceed the user's session-length EWMA by `session_k` × its deviation (at least 5), after `session_history` finished sessions | session |
//! | `off_hours` | a call in a local hour of the day that holds under `off_hours_share` of the user's calls, once the pod is warm and the user has `off_hours_min_calls` calls over at least `off_hours_min_history` | hour |
//! | `token_fanout` | one token (its keyed fingerprint: the token is never stored) used by `fanout_sessions` sessions within `fanout_window` | window |
//!
//! "EWMA" is an exponentially weighted moving average (weight `alpha`) and its
//! band an exponentially weighted mean absolute deviation: a streaming, robust
//! stand-in for a median-absolute-deviation band, updated in O(1).
//!
//! **Warm-up.** A new pod starts with no baselines: `first_use` and `off_hours`
//! stay silent for `warmup` after detection began (or they would fire for every
//! user on every deploy); the others wait for their own history. Baselines
//! restored from a snapshot ([`Detector::restore`]) keep the time detection began.
//!
//! **Bounds.** At most `max_users` users (the least recently seen of a sample is
//! forgotten to make room), `max_targets` tools and models per user (past it, no
//! `first_use`), 8 open sessions per user and `max_tokens` token fingerprints:
//! memory stays under [`Detector::MAX_BYTES_PER_USER`] × `max_users` plus
//! [`Detector::MAX_BYTES_PER_TOKEN`] × `max_tokens`.

mod band;
mod user;

pub use band::Band;

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use user::{Token, User};

/// The thresholds (see the table above).
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Users kept at most.
    pub max_users: usize,
    /// Tools and models remembered per user.
    pub max_targets: usize,
    /// Token fingerprints kept at most.
    pub max_tokens: usize,
    /// How long `first_use` and `off_hours` stay silent after detection began.
    pub warmup: Duration,
    /// Weight of the newest value in every EWMA.
    pub alpha: f64,
    /// `rate_spike`: calls in a minute at least, band width, baseline minutes.
    pub rate_min_calls: u32,
    /// See `rate_min_calls`.
    pub rate_k: f64,
    /// See `rate_min_calls`.
    pub rate_history_minutes: u32,
    /// `first_use`: calls of history first.
    pub first_use_min_calls: u64,
    /// `denial_burst` and `pii_burst`: the window, the count, the PII band width.
    pub burst_window: Duration,
    /// See `burst_window`.
    pub burst_min: u32,
    /// See `burst_window`.
    pub burst_k: f64,
    /// `denial_burst`: the share of the window's calls denied.
    pub denial_ratio: f64,
    /// `cost_rate`: USD in the hour at least, band width, baseline hours.
    pub cost_min_usd: f64,
    /// See `cost_min_usd`.
    pub cost_k: f64,
    /// See `cost_min_usd`.
    pub cost_history_hours: u32,
    /// `long_session`: calls at least, band width, finished sessions of history.
    pub session_min_calls: u32,
    /// See `session_min_calls`.
    pub session_k: f64,
    /// See `session_min_calls`.
    pub session_history: u32,
    /// `off_hours`: the hour's share of the user's calls below which it is unusual,
    /// and the calls of history first.
    pub off_hours_share: f64,
    /// See `off_hours_share`.
    pub off_hours_min_calls: u64,
    /// `off_hours`: how long the user must have been known (their usual hours
    /// take days to learn).
    pub off_hours_min_history: Duration,
    /// `token_fanout`: sessions per token within the window.
    pub fanout_sessions: u32,
    /// See `fanout_sessions`.
    pub fanout_window: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_users: 10_000,
            max_targets: 64,
            max_tokens: 10_000,
            warmup: Duration::from_secs(3_600),
            alpha: 0.1,
            rate_min_calls: 20,
            rate_k: 6.0,
            rate_history_minutes: 30,
            first_use_min_calls: 50,
            burst_window: Duration::from_secs(300),
            burst_min: 5,
            burst_k: 4.0,
            denial_ratio: 0.5,
            cost_min_usd: 1.0,
            cost_k: 4.0,
            cost_history_hours: 3,
            session_min_calls: 50,
            session_k: 4.0,
            session_history: 5,
            off_hours_share: 0.01,
            off_hours_min_calls: 200,
            off_hours_min_history: Duration::from_secs(7 * 86_400),
            fanout_sessions: 5,
            fanout_window: Duration::from_secs(600),
        }
    }
}

/// One finished call, as the detector sees it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Observation<'a> {
    /// When it arrived (µs since the epoch).
    pub at: i64,
    /// The verified user (`principal.sub`); anonymous calls are not observed.
    pub user: Option<&'a str>,
    /// Its session.
    pub session: Option<&'a str>,
    /// The tool it called, or the model it asked for.
    pub target: Option<&'a str>,
    /// Denied (by policy, identity or content safety).
    pub denied: bool,
    /// PII or secrets were found (whatever was done with them).
    pub pii: bool,
    /// Its estimated cost (USD).
    pub cost_usd: Option<f64>,
    /// The hour of the day (0–23) in the configured time zone.
    pub local_hour: u8,
    /// A keyed fingerprint of the user's token (the token itself is never given).
    pub token: Option<u64>,
}

/// What tripped a signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Calls per minute far above the user's own.
    RateSpike,
    /// A tool or model the user never used.
    FirstUse,
    /// Many denials at once.
    DenialBurst,
    /// Many calls with PII or secrets at once.
    PiiBurst,
    /// Cost per hour far above the user's own.
    CostRate,
    /// A session far longer than the user's usual.
    LongSession,
    /// A call at an hour the user is rarely active.
    OffHours,
    /// One token used by many sessions at once.
    TokenFanout,
}

impl Signal {
    /// Every signal.
    pub const ALL: [Signal; 8] = [
        Signal::RateSpike,
        Signal::FirstUse,
        Signal::DenialBurst,
        Signal::PiiBurst,
        Signal::CostRate,
        Signal::LongSession,
        Signal::OffHours,
        Signal::TokenFanout,
    ];

    /// Its name in the trail and in metrics.
    pub fn name(self) -> &'static str {
        match self {
            Signal::RateSpike => "rate_spike",
            Signal::FirstUse => "first_use",
            Signal::DenialBurst => "denial_burst",
            Signal::PiiBurst => "pii_burst",
            Signal::CostRate => "cost_rate",
            Signal::LongSession => "long_session",
            Signal::OffHours => "off_hours",
            Signal::TokenFanout => "token_fanout",
        }
    }

    /// The signal named `name` (as [`Signal::name`] writes it).
    pub fn from_name(name: &str) -> Option<Signal> {
        Signal::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// One signal a call tripped.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Anomaly {
    /// Which.
    pub signal: Signal,
    /// How far from usual: (observed − baseline) / deviation for band signals,
    /// observed / threshold for counts, 1 for `first_use`.
    pub score: f64,
    /// The user's usual value, when the signal has one.
    pub baseline: Option<f64>,
    /// What was seen.
    pub observed: f64,
}

const SHARDS: usize = 16;

/// Per-user baselines for one pod.
pub struct Detector {
    settings: Settings,
    /// When detection began (µs): warm-up counts from here.
    began: i64,
    users: Vec<Mutex<HashMap<Box<str>, User>>>,
    tokens: Mutex<HashMap<u64, Token>>,
}

/// A snapshot of the baselines, to survive a restart.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: u32,
    began: i64,
    users: Vec<(String, User)>,
    tokens: Vec<(u64, Token)>,
}

const SNAPSHOT_VERSION: u32 = 1;

impl Detector {
    /// An upper bound of one user's memory (its name aside).
    pub const MAX_BYTES_PER_USER: usize = std::mem::size_of::<User>() + 64 * 8 + 8 * 24 + 96;
    /// An upper bound of one token fingerprint's memory.
    pub const MAX_BYTES_PER_TOKEN: usize = std::mem::size_of::<Token>() + 16 * 8 + 48;

    /// A detector with no baselines, detection beginning at `now` (µs).
    pub fn new(settings: Settings, now: i64) -> Self {
        Self {
            settings,
            began: now,
            users: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Users with a baseline.
    pub fn users(&self) -> usize {
        self.users
            .iter()
            .map(|s| s.lock().map_or(0, |m| m.len()))
            .sum()
    }

    /// Whether the pod's warm-up is over at `now`.
    pub fn warm(&self, now: i64) -> bool {
        now.saturating_sub(self.began) >= micros(self.settings.warmup)
    }

    /// Takes one finished call into the baselines; the signals it tripped.
    pub fn observe(&self, o: &Observation<'_>) -> Vec<Anomaly> {
        let mut out = Vec::new();
        let Some(name) = o.user else {
            return out;
        };
        let warm = self.warm(o.at);
        let shard = &self.users[fnv(name.as_bytes()) as usize % SHARDS];
        if let Ok(mut users) = shard.lock() {
            // One lookup for a known user (the common case); a new one is added.
            match users.get_mut(name) {
                Some(user) => user.observe(o, &self.settings, warm, &mut out),
                None => {
                    let cap = self.settings.max_users.div_ceil(SHARDS).max(1);
                    if users.len() >= cap {
                        evict_oldest(&mut users, |u: &User| u.last_seen);
                    }
                    let mut user = User::new(o.at);
                    user.observe(o, &self.settings, warm, &mut out);
                    users.insert(name.into(), user);
                }
            }
        }
        if let (Some(token), Some(session)) = (o.token, o.session)
            && let Ok(mut tokens) = self.tokens.lock()
        {
            if !tokens.contains_key(&token) && tokens.len() >= self.settings.max_tokens.max(1) {
                evict_oldest(&mut tokens, |t: &Token| t.window);
            }
            tokens.entry(token).or_default().observe(
                o.at,
                fnv(session.as_bytes()),
                &self.settings,
                &mut out,
            );
        }
        out
    }

    /// The users' baselines as bytes (JSON), to be written beside the spool (token
    /// fingerprints are left out).
    pub fn snapshot(&self) -> Vec<u8> {
        let mut users = Vec::new();
        for shard in &self.users {
            if let Ok(m) = shard.lock() {
                users.extend(m.iter().map(|(k, v)| (k.to_string(), v.clone())));
            }
        }
        // Token fingerprints are never written: they are keyed per process, and
        // their windows are minutes long.
        serde_json::to_vec(&Snapshot {
            version: SNAPSHOT_VERSION,
            began: self.began,
            users,
            tokens: Vec::new(),
        })
        .unwrap_or_default()
    }

    /// A detector with the baselines of `snapshot` (within `settings`' caps, the
    /// most recently seen kept); `Err` with why it cannot be read.
    pub fn restore(settings: Settings, snapshot: &[u8], now: i64) -> Result<Self, String> {
        let s: Snapshot = serde_json::from_slice(snapshot)
            .map_err(|e| format!("not a baseline snapshot: {e}"))?;
        if s.version != SNAPSHOT_VERSION {
            return Err(format!(
                "baseline snapshot version {} is not {SNAPSHOT_VERSION}",
                s.version
            ));
        }
        let mut d = Self::new(settings, s.began.min(now));
        let mut users = s.users;
        users.sort_by_key(|(_, u)| std::cmp::Reverse(u.last_seen));
        users.truncate(d.settings.max_users);
        for (name, user) in users {
            let shard = &d.users[fnv(name.as_bytes()) as usize % SHARDS];
            if let Ok(mut m) = shard.lock() {
                m.insert(name.into_boxed_str(), user);
            }
        }
        let mut tokens = s.tokens;
        tokens.sort_by_key(|(_, t)| std::cmp::Reverse(t.window));
        tokens.truncate(d.settings.max_tokens);
        d.tokens = Mutex::new(tokens.into_iter().collect());
        Ok(d)
    }
}

/// Removes the least recently seen of (up to) 8 entries: a sampled LRU, O(1).
fn evict_oldest<K: Clone + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    seen: impl Fn(&V) -> i64,
) {
    let oldest = map
        .iter()
        .take(8)
        .min_by_key(|(_, v)| seen(v))
        .map(|(k, _)| k.clone());
    if let Some(k) = oldest {
        map.remove(&k);
    }
}

/// FNV-1a, 64 bits: names and session ids to small keys (not a security boundary).
pub fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

pub(crate) fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
