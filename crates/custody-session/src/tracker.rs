//! The session tracker: which session a request belongs to, its step number and
//! its W3C ids.

use crate::config::{SessionConfig, millis};
use crate::ids::{IdGen, Key, Keys, push_hex, stable_hash};
use crate::links::Scope;
use crate::table::{Entry, TICK, Table};
use crate::trace::{SAMPLED, SpanIds, TraceContext};
use crate::{ConfigError, SessionStats};

/// What a request says about its session.
#[derive(Clone, Copy, Debug, Default)]
pub struct SessionInput<'a> {
    /// The verified `sub`; `None` for an anonymous caller (all anonymous callers
    /// are one subject).
    pub sub: Option<&'a str>,
    /// The value of the session header (see [`SessionConfig::header`]).
    pub explicit: Option<&'a [u8]>,
    /// The request's valid `traceparent`.
    pub traceparent: Option<&'a TraceContext>,
    /// The value of the `mcp-session-id` header.
    pub mcp_session: Option<&'a [u8]>,
}

/// Where a session came from (the first that applies, in this order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SessionSource {
    /// The explicit session header.
    Header,
    /// The trace id of the incoming `traceparent`.
    Traceparent,
    /// The MCP session id.
    Mcp,
    /// Per-subject sessionization by inactivity.
    Inactivity,
}

impl SessionSource {
    /// The audit spelling: `header`, `traceparent`, `mcp`, `inactivity`.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionSource::Header => "header",
            SessionSource::Traceparent => "traceparent",
            SessionSource::Mcp => "mcp",
            SessionSource::Inactivity => "inactivity",
        }
    }

    /// The prefix of session ids from this source.
    fn prefix(self) -> &'static str {
        match self {
            SessionSource::Header => "hdr:",
            SessionSource::Traceparent => "trace:",
            SessionSource::Mcp => "mcp:",
            SessionSource::Inactivity => "auto:",
        }
    }

    fn tag(self) -> u8 {
        match self {
            SessionSource::Header => 1,
            SessionSource::Traceparent => 2,
            SessionSource::Mcp => 3,
            SessionSource::Inactivity => 4,
        }
    }
}

/// One request's place in its session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionStep {
    /// The session id recorded in the row (see the crate docs for its shape).
    pub session_id: String,
    /// Where the session came from.
    pub source: SessionSource,
    /// 1 for the request that started (or restarted) the session, then 2, 3, ...
    pub step: u64,
    /// The span custody opened for this call; forward it upstream as
    /// [`SessionStep::traceparent`].
    pub trace: TraceContext,
    /// The caller's span (from the incoming `traceparent`), if any.
    pub parent_span_id: Option<[u8; 8]>,
    pub(crate) subject: Key,
    pub(crate) session_tag: u64,
}

impl SessionStep {
    /// The `traceparent` to send upstream: custody's span, a child of the caller's
    /// span when there was one.
    pub fn traceparent(&self) -> String {
        self.trace.to_header()
    }

    /// The W3C ids for the audit row.
    pub fn span_ids(&self) -> SpanIds {
        SpanIds {
            trace_id: self.trace.trace_id_hex(),
            span_id: self.trace.span_id_hex(),
            parent_span_id: self.parent_span_id.map(|p| crate::ids::hex(&p)),
        }
    }
}

/// The state of one session: 24 bytes, no heap. (The random part of an
/// inactivity session's id is a keyed hash of its key and start time, so it needs
/// no room here.)
#[derive(Debug)]
pub(crate) struct Session {
    last_seen: u64,
    started: u64,
    step: u32,
    source: SessionSource,
    referenced: bool,
}

impl Entry for Session {
    fn referenced(&mut self) -> &mut bool {
        &mut self.referenced
    }
}

/// Tracks sessions, step numbers and pending tool calls; thread-safe, bounded.
///
/// All methods take `&self` and the current time in milliseconds (`now_ms`, e.g.
/// since the Unix epoch; it only needs to be consistent between calls, and a clock
/// going backwards never ends a session early).
pub struct SessionTracker {
    pub(crate) config: SessionConfig,
    pub(crate) ids: IdGen,
    pub(crate) keys: Keys,
    sessions: Table<Session>,
    pub(crate) scopes: Table<Scope>,
    pub(crate) ttl: Ttls,
}

/// The keyed-hash domain of inactivity session nonces (tool names hash under
/// `b'n'`).
const NONCE: u8 = b'o';

/// Slots an assisting hand advances (one operation in 32 per table).
const ASSIST_TICK: usize = 8;

/// Durations in milliseconds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ttls {
    idle_gap: u64,
    max_duration: u64,
    state: u64,
    /// Seconds.
    pub(crate) pending_s: u32,
}

impl SessionTracker {
    /// A tracker for a validated configuration.
    pub fn new(config: SessionConfig) -> Result<Self, Vec<ConfigError>> {
        Self::with_ids(config, IdGen::new())
    }

    /// A tracker drawing span ids and session nonces from `ids` (reproducible tests).
    pub fn with_ids(config: SessionConfig, ids: IdGen) -> Result<Self, Vec<ConfigError>> {
        config.validate()?;
        let scopes = Table::new(config.max_subjects, config.max_pending_total);
        Ok(Self {
            ttl: Ttls {
                idle_gap: millis(config.idle_gap),
                max_duration: millis(config.max_duration),
                state: millis(config.state_ttl),
                pending_s: u32::try_from(config.pending_ttl.as_secs()).unwrap_or(u32::MAX / 4),
            },
            sessions: Table::new(config.max_sessions, 0),
            scopes,
            config,
            ids,
            keys: Keys::new(),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Assigns a request to its session and counts its step.
    ///
    /// Source precedence: explicit header, then `traceparent`, then MCP session id,
    /// then inactivity. Empty header values count as absent. The session is always
    /// scoped by `sub`: two subjects sending the same header value get different
    /// sessions with different ids.
    pub fn begin(&self, input: &SessionInput<'_>, now_ms: u64) -> SessionStep {
        let explicit = input.explicit.map(trim).filter(|v| !v.is_empty());
        let mcp = input.mcp_session.map(trim).filter(|v| !v.is_empty());
        let (source, value): (SessionSource, &[u8]) = match (explicit, input.traceparent, mcp) {
            (Some(v), _, _) => (SessionSource::Header, v),
            (None, Some(tp), _) => (SessionSource::Traceparent, &tp.trace_id),
            (None, None, Some(v)) => (SessionSource::Mcp, v),
            (None, None, None) => (SessionSource::Inactivity, &[]),
        };
        let subject = self.subject_key(input.sub);
        // The subject, the source and the value's length in one write (fixed
        // widths, so no two inputs run together), then the value.
        let mut head = [0u8; 25];
        head[..8].copy_from_slice(&subject.0.to_le_bytes());
        head[8..16].copy_from_slice(&subject.1.to_le_bytes());
        head[16] = source.tag();
        head[17..].copy_from_slice(&(value.len() as u64).to_le_bytes());
        let mut h = self.keys.pair();
        h.write(&head);
        h.write(value);
        let key = h.finish();

        let (step, started) = self.count_step(key, source, now_ms);
        let nonce = if source == SessionSource::Inactivity {
            let mut seed = [0u8; 24];
            seed[..8].copy_from_slice(&key.0.to_le_bytes());
            seed[8..16].copy_from_slice(&key.1.to_le_bytes());
            seed[16..].copy_from_slice(&started.to_le_bytes());
            self.keys.hash64(NONCE, &seed)
        } else {
            0
        };

        let session_id = self.session_id(input.sub, source, value, started, nonce);
        let (trace, parent_span_id) = match input.traceparent {
            Some(tp) => (tp.child(&self.ids), Some(tp.span_id)),
            None => {
                let t = stable_hash(b"custody-trace\0", session_id.as_bytes()).to_be_bytes();
                (TraceContext::in_trace(t, SAMPLED, &self.ids), None)
            }
        };
        self.assist(u64::from_be_bytes(trace.span_id), now_ms);
        SessionStep {
            session_id,
            source,
            step,
            trace,
            parent_span_id,
            subject,
            session_tag: key.0,
        }
    }

    /// Counts the step under the shard lock: (step, started).
    fn count_step(&self, key: Key, source: SessionSource, now: u64) -> (u64, u64) {
        let ttl = self.ttl;
        let expired = |s: &Session| now.saturating_sub(s.last_seen) > ttl.of(s.source);
        let mut shard = self.sessions.lock(&key);
        shard.tick(TICK, expired, |_, _| {});
        if let Some(s) = shard.get_mut(&key) {
            let idle = now.saturating_sub(s.last_seen);
            let restart = idle > ttl.of(source)
                || (source == SessionSource::Inactivity
                    && now.saturating_sub(s.started) >= ttl.max_duration);
            if restart {
                s.started = now;
                s.step = 0;
            }
            s.step = s.step.saturating_add(1);
            s.last_seen = s.last_seen.max(now);
            let out = (u64::from(s.step), s.started);
            if restart {
                shard.counters.started += 1;
            }
            return out;
        }
        let session = Session {
            last_seen: now,
            started: now,
            step: 1,
            source,
            referenced: false,
        };
        shard.insert(key, session, expired, |_, _| {});
        shard.counters.started += 1;
        (1, now)
    }

    /// Advances the clock hand of a random session shard or subject shard (each one
    /// operation in 32, eight slots), so idle entries in shards that see no
    /// traffic are found too.
    fn assist(&self, random: u64, now: u64) {
        let ttl = self.ttl;
        match random & 31 {
            0 => {
                if let Some(mut shard) = self.sessions.try_lock_at(random >> 5) {
                    shard.tick(
                        ASSIST_TICK,
                        |s| now.saturating_sub(s.last_seen) > ttl.of(s.source),
                        |_, _| {},
                    );
                }
            }
            1 => {
                if let Some(mut shard) = self.scopes.try_lock_at(random >> 5) {
                    let mut forgotten = 0;
                    shard.tick(
                        ASSIST_TICK,
                        |s| s.expired(now, ttl.pending_s),
                        |s, _| forgotten += s.calls.len() as u64,
                    );
                    shard.counters.forgotten += forgotten;
                }
            }
            _ => {}
        }
    }

    fn subject_key(&self, sub: Option<&str>) -> Key {
        let mut h = self.keys.pair();
        match sub {
            Some(s) => {
                h.write_u8(b's');
                h.write_field(s.as_bytes());
            }
            None => h.write_u8(b'a'),
        }
        h.finish()
    }

    fn session_id(
        &self,
        sub: Option<&str>,
        source: SessionSource,
        value: &[u8],
        started: u64,
        nonce: u64,
    ) -> String {
        let mut id = String::with_capacity(24 + value.len().min(self.config.max_id_len) + 32);
        id.push_str(source.prefix());
        crate::lookup::push_subject_tag(&mut id, sub);
        id.push(':');
        match source {
            SessionSource::Traceparent => push_hex(&mut id, value),
            SessionSource::Inactivity => {
                push_hex(&mut id, &started.to_be_bytes()[2..]);
                id.push('-');
                push_hex(&mut id, &nonce.to_be_bytes());
            }
            SessionSource::Header | SessionSource::Mcp => match verbatim(value, &self.config) {
                Some(v) => id.push_str(v),
                None => crate::lookup::push_hashed(&mut id, value),
            },
        }
        id
    }

    /// Removes every expired session and subject now (the clock hand does this
    /// gradually on its own; call this from a timer to reclaim memory while idle).
    pub fn sweep(&self, now_ms: u64) {
        let ttl = self.ttl;
        self.sessions.for_each_shard(|s| {
            s.sweep(
                |e| now_ms.saturating_sub(e.last_seen) > ttl.of(e.source),
                |_, _| {},
            );
        });
        self.scopes.for_each_shard(|s| {
            let mut forgotten = 0;
            s.sweep(
                |e| e.expired(now_ms, ttl.pending_s),
                |e, _| forgotten += e.calls.len() as u64,
            );
            s.counters.forgotten += forgotten;
        });
    }

    /// Counters and sizes. Walks every table (a few milliseconds at 100 000
    /// sessions): meant for metrics scrapes, not for the request path.
    pub fn stats(&self) -> SessionStats {
        let mut st = SessionStats::default();
        self.sessions.for_each_shard(|s| {
            st.sessions += s.len();
            st.sessions_started += s.counters.started;
            st.sessions_evicted_idle += s.counters.evicted_idle;
            st.sessions_evicted_capacity += s.counters.evicted_capacity;
            st.approx_bytes += s.table_bytes();
        });
        self.scopes.for_each_shard(|s| {
            st.subjects += s.len();
            st.pending_tool_calls += s.weight;
            st.subjects_evicted += s.counters.evicted_idle + s.counters.evicted_capacity;
            st.tool_calls_forgotten += s.counters.forgotten;
            st.links_execution += s.counters.linked_execution;
            st.links_result += s.counters.linked_result;
            st.approx_bytes += s.table_bytes();
            st.approx_bytes += s.map.values().map(Scope::heap_bytes).sum::<usize>();
        });
        st.approx_bytes += std::mem::size_of::<Self>();
        st
    }
}

impl Ttls {
    fn of(&self, source: SessionSource) -> u64 {
        match source {
            SessionSource::Inactivity => self.idle_gap,
            _ => self.state,
        }
    }
}

impl std::fmt::Debug for SessionTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionTracker")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// `value` as text when it may appear verbatim in a session id: 1..=max_id_len
/// visible ASCII characters, not starting with `~` (which marks a hashed value).
fn verbatim<'a>(value: &'a [u8], config: &SessionConfig) -> Option<&'a str> {
    let ok = !value.is_empty()
        && value.len() <= config.max_id_len
        && value[0] != b'~'
        && value.iter().all(u8::is_ascii_graphic);
    ok.then(|| std::str::from_utf8(value).ok()).flatten()
}

fn trim(v: &[u8]) -> &[u8] {
    v.trim_ascii()
}

#[cfg(test)]
mod tests;
