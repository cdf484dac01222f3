//! Causal links: the tool calls a model asked for, remembered per subject, matched
//! to the MCP / REST call that carries one out and to the later LLM request that
//! returns its result.
//!
//! Calls are remembered per *subject* (verified `sub`, or the one anonymous
//! subject), not per session: an agent's LLM requests and its MCP requests usually
//! carry different session signals (no header on one, `mcp-session-id` on the
//! other), yet the link between them is what an auditor needs. A subject never sees
//! another subject's calls. Among matching calls, one from the same session is
//! preferred, then the oldest.
//!
//! What is kept per call: 128-bit keyed digest of the canonical arguments, two
//! 64-bit keyed hashes of the tool name, the tool call id, the model request's id
//! (shared by the calls of one turn), the time and two flags — never the raw
//! arguments.

use std::sync::MutexGuard;

use crate::canonical::{Arguments, digest};
use crate::ids::Key;
use crate::table::{Entry, Shard, TICK};
use crate::tracker::{SessionStep, SessionTracker};

/// A tool call a model asked for in its response.
#[derive(Clone, Copy, Debug)]
pub struct ModelToolCall<'a> {
    /// The provider's call id (`call_...`, `toolu_...`, a Responses `call_id`).
    pub id: Option<&'a str>,
    /// The function / tool name the model used.
    pub name: &'a str,
    /// The arguments the model gave.
    pub arguments: Arguments<'a>,
}

/// The model turn behind a tool call, or behind a tool result sent back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolLink {
    /// The provider's id of the tool call (`None` when the model gave none).
    pub tool_call_id: Option<String>,
    /// The `request_id` of the LLM request whose response asked for the call.
    pub model_request_id: String,
}

const ARGS_KNOWN: u8 = 1;
const EXECUTED: u8 = 2;

/// A string in a scope's text arena; `len == 0` means none. (The offset is
/// stored as bytes so the struct packs into 3 bytes.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Text {
    off: [u8; 2],
    len: u8,
}

impl Text {
    fn range(self) -> std::ops::Range<usize> {
        let off = usize::from(u16::from_le_bytes(self.off));
        off..off + usize::from(self.len)
    }
}

/// One remembered call: 40 bytes; its id and its request's id live in the scope's
/// text arena.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pending {
    args: [u8; 16],
    name: u32,
    base: u32,
    session: u32,
    /// Seconds (`now_ms / 1000`, truncated to 32 bits).
    at: u32,
    id: Text,
    request: Text,
    flags: u8,
}

/// A subject's remembered calls, oldest first, and the ids they refer to.
#[derive(Debug, Default)]
pub(crate) struct Scope {
    pub(crate) calls: Vec<Pending>,
    /// Call ids and request ids, concatenated (a turn's request id once).
    text: String,
    /// Bytes of `text` no call refers to any more (the arena is below 64 KiB).
    garbage: u16,
    referenced: bool,
}

impl Entry for Scope {
    fn referenced(&mut self) -> &mut bool {
        &mut self.referenced
    }

    fn weight(&self) -> usize {
        self.calls.len()
    }
}

fn secs(now_ms: u64) -> u32 {
    // Truncation is intended: ages are computed with wrapping arithmetic.
    #[allow(clippy::cast_possible_truncation)]
    let s = (now_ms / 1000) as u32;
    s
}

fn age(now: u32, at: u32) -> u32 {
    let a = now.wrapping_sub(at);
    // A clock that went backwards gives a "negative" age: treat it as 0.
    if a > u32::MAX / 2 { 0 } else { a }
}

impl Scope {
    /// Expired when it holds no call younger than the TTL (seconds).
    pub(crate) fn expired(&self, now_ms: u64, ttl_s: u32) -> bool {
        let now = secs(now_ms);
        self.calls.last().is_none_or(|c| age(now, c.at) > ttl_s)
    }

    fn str(&self, t: Text) -> Option<&str> {
        (t.len > 0).then(|| self.text.get(t.range())).flatten()
    }

    /// Appends `s` (at most 255 bytes, arena below 64 KiB: ensured by config).
    fn push_text(&mut self, s: &str) -> Text {
        match (u16::try_from(self.text.len()), u8::try_from(s.len())) {
            (Ok(off), Ok(len)) if usize::from(off) + s.len() <= usize::from(u16::MAX) => {
                self.text.push_str(s);
                Text {
                    off: off.to_le_bytes(),
                    len,
                }
            }
            _ => Text::default(),
        }
    }

    /// Keeps the calls `keep(index, call)` accepts, then compacts the arena when
    /// more than half of it is garbage. Returns how many were removed.
    fn remove_calls(&mut self, mut keep: impl FnMut(usize, &Pending) -> bool) -> usize {
        let before = self.calls.len();
        let mut i = 0;
        let mut freed = 0;
        // The calls of one model turn are adjacent and share their request text,
        // which becomes garbage when none of them is kept.
        let mut run: Option<(Text, bool)> = None;
        self.calls.retain(|c| {
            let k = keep(i, c);
            i += 1;
            match &mut run {
                Some((r, live)) if *r == c.request => *live |= k,
                _ => {
                    if let Some((r, false)) = run {
                        freed += usize::from(r.len);
                    }
                    run = Some((c.request, k));
                }
            }
            if !k {
                freed += usize::from(c.id.len);
            }
            k
        });
        if let Some((r, false)) = run {
            freed += usize::from(r.len);
        }
        self.garbage = self
            .garbage
            .saturating_add(u16::try_from(freed).unwrap_or(u16::MAX));
        if self.calls.is_empty() {
            self.calls = Vec::new();
            self.text = String::new();
            self.garbage = 0;
        } else {
            if usize::from(self.garbage) * 2 > self.text.len() {
                self.compact();
            }
            if self.calls.capacity() > 8 && self.calls.len() * 4 < self.calls.capacity() {
                self.calls.shrink_to_fit();
            }
        }
        before - self.calls.len()
    }

    /// Drops calls older than the TTL; returns how many.
    fn expire(&mut self, now_ms: u64, ttl_s: u32) -> usize {
        let now = secs(now_ms);
        let n = self
            .calls
            .iter()
            .take_while(|c| age(now, c.at) > ttl_s)
            .count();
        if n == 0 {
            return 0;
        }
        self.remove_calls(|i, _| i >= n)
    }

    /// Rewrites the arena with only the live strings.
    fn compact(&mut self) {
        let old = std::mem::take(&mut self.text);
        let mut calls = std::mem::take(&mut self.calls);
        let mut last: Option<(Text, Text)> = None;
        for c in &mut calls {
            let get = |t: Text| old.get(t.range()).unwrap_or("");
            c.request = match last {
                Some((old_t, new_t)) if old_t == c.request => new_t,
                _ => {
                    let new_t = self.push_text(get(c.request));
                    last = Some((c.request, new_t));
                    new_t
                }
            };
            if c.id.len > 0 {
                c.id = self.push_text(get(c.id));
            }
        }
        self.calls = calls;
        self.text.shrink_to_fit();
        self.garbage = 0;
    }

    /// Estimated heap bytes owned (glibc malloc rounding).
    pub(crate) fn heap_bytes(&self) -> usize {
        let mut total = 0;
        if self.calls.capacity() > 0 {
            total += alloc_size(self.calls.capacity() * std::mem::size_of::<Pending>());
        }
        if self.text.capacity() > 0 {
            total += alloc_size(self.text.capacity());
        }
        total
    }
}

/// glibc: request + 8 bytes of header, rounded up to 16, at least 32.
fn alloc_size(n: usize) -> usize {
    ((n + 8 + 15) & !15).max(32)
}

/// Hashes of the names an executed tool may have had in the model's request:
/// the name itself, every suffix after a `:` (custody names MCP tools
/// `<route>:<tool>`), and the name with `:` spelled `_`.
struct Candidates {
    hashes: [u32; 10],
    len: usize,
}

impl Candidates {
    fn contains(&self, h: u32) -> bool {
        self.hashes[..self.len].contains(&h)
    }
}

const NAME: u8 = b'n';

impl SessionTracker {
    fn name_hash(&self, name: &str) -> u32 {
        // The low half of a keyed hash: a collision also needs equal arguments.
        #[allow(clippy::cast_possible_truncation)]
        let h = self.keys.hash64(NAME, name.as_bytes()) as u32;
        h
    }

    /// Locks the shard holding `subject`'s scope and advances its hand, adding
    /// the calls of the scopes that expire on the way to `forgotten`.
    fn lock_scopes(
        &self,
        subject: &Key,
        now_ms: u64,
        forgotten: &mut u64,
    ) -> MutexGuard<'_, Shard<Scope>> {
        let ttl = self.ttl.pending_s;
        let mut shard = self.scopes.lock(subject);
        shard.tick(
            TICK,
            |s| s.expired(now_ms, ttl),
            |s, _| *forgotten += s.calls.len() as u64,
        );
        shard
    }

    fn candidates(&self, tool: &str) -> Candidates {
        let mut c = Candidates {
            hashes: [0; 10],
            len: 0,
        };
        let mut push = |h| {
            if c.len < c.hashes.len() {
                c.hashes[c.len] = h;
                c.len += 1;
            }
        };
        push(self.name_hash(tool));
        for (i, _) in tool.match_indices(':').take(8) {
            push(self.name_hash(&tool[i + 1..]));
        }
        if tool.contains(':') {
            push(self.name_hash(&tool.replace(':', "_")));
        }
        c
    }

    /// Remembers the tool calls a model's response asked for (call once per LLM
    /// response, with the LLM request's id). Returns how many were remembered:
    /// calls whose id is already remembered are skipped; a call id longer than
    /// `max_id_len` is not kept (the call is, without an id); nothing is kept for a
    /// request id longer than `max_id_len`.
    pub fn record_model_tool_calls(
        &self,
        step: &SessionStep,
        request_id: &str,
        calls: &[ModelToolCall<'_>],
        now_ms: u64,
    ) -> usize {
        let max_id = self.config.max_id_len;
        if calls.is_empty() || request_id.is_empty() || request_id.len() > max_id {
            return 0;
        }
        let at = secs(now_ms);
        let session = session_tag(step);
        // Hashing (the expensive part) happens before taking the lock.
        let prepared: Vec<(Pending, Option<&str>)> = calls
            .iter()
            .map(|c| {
                let base = c.name.rsplit_once("__").map_or(c.name, |(_, b)| b);
                let args = digest(&self.keys, c.arguments);
                let mut digest_bytes = [0u8; 16];
                if let Some(k) = args {
                    digest_bytes[..8].copy_from_slice(&k.0.to_le_bytes());
                    digest_bytes[8..].copy_from_slice(&k.1.to_le_bytes());
                }
                let pending = Pending {
                    args: digest_bytes,
                    name: self.name_hash(c.name),
                    base: self.name_hash(base),
                    session,
                    at,
                    id: Text::default(),
                    request: Text::default(),
                    flags: if args.is_some() { ARGS_KNOWN } else { 0 },
                };
                let id = c.id.filter(|id| !id.is_empty() && id.len() <= max_id);
                (pending, id)
            })
            .collect();

        let ttl = self.ttl.pending_s;
        let cap = self.config.max_pending_per_subject;
        let expired = |s: &Scope| s.expired(now_ms, ttl);
        let mut forgotten = 0u64;
        let mut shard = self.scopes.lock(&step.subject);
        shard.tick(TICK, expired, |s, _| forgotten += s.calls.len() as u64);
        if shard.get_mut(&step.subject).is_none() {
            shard.insert(step.subject, Scope::default(), expired, |s, _| {
                forgotten += s.calls.len() as u64;
            });
        }
        let (before, after, recorded) = {
            let Some(scope) = shard.get_mut(&step.subject) else {
                return 0;
            };
            let before = scope.calls.len();
            forgotten += scope.expire(now_ms, ttl) as u64;
            let fresh: Vec<_> = prepared
                .into_iter()
                .filter(|(_, id)| {
                    id.is_none_or(|id| !scope.calls.iter().any(|c| scope.str(c.id) == Some(id)))
                })
                .collect();
            let recorded = fresh.len();
            // Make room first, so the arena stays within its bounds.
            let room = cap.saturating_sub(recorded.min(cap));
            if scope.calls.len() > room {
                let extra = scope.calls.len() - room;
                forgotten += scope.remove_calls(|i, _| i >= extra) as u64;
            }
            if recorded > 0 {
                let text: usize = request_id.len()
                    + fresh
                        .iter()
                        .map(|(_, id)| id.map_or(0, str::len))
                        .sum::<usize>();
                if scope.text.len() + text > usize::from(u16::MAX) {
                    scope.compact();
                }
                scope.text.reserve_exact(text);
                scope.calls.reserve_exact(recorded.min(cap));
                let request = scope.push_text(request_id);
                let skip = recorded.saturating_sub(cap);
                forgotten += skip as u64;
                for (mut p, id) in fresh.into_iter().skip(skip) {
                    p.request = request;
                    if let Some(id) = id {
                        p.id = scope.push_text(id);
                    }
                    scope.calls.push(p);
                }
            }
            (before, scope.calls.len(), recorded)
        };
        shard.add_weight(after);
        shard.sub_weight(before);
        while shard.over_weight() {
            let evicted = shard.evict_one(expired, |s, _| forgotten += s.calls.len() as u64);
            if !evicted {
                break;
            }
        }
        shard.counters.forgotten += forgotten;
        recorded
    }

    /// Links a tool call being carried out (MCP `tools/call`, a mapped REST tool)
    /// to the model turn that asked for it, consuming that pending call.
    ///
    /// A pending call matches when its name matches (the executed name equals the
    /// model's name, or ends with `:` + the model's name, or equals it with `:` read
    /// as `_`; a model name `mcp__server__tool` is also known as `tool`) and its
    /// arguments are canonically equal (when either side's arguments are
    /// [`Arguments::Unknown`], by name alone). The oldest match from the same
    /// session wins, else the oldest match. Each pending call links at most one
    /// execution; it stays remembered (for [`Self::link_tool_results`]) if it has
    /// an id.
    pub fn link_tool_execution(
        &self,
        step: &SessionStep,
        tool: &str,
        arguments: Arguments<'_>,
        now_ms: u64,
    ) -> Option<ToolLink> {
        let names = self.candidates(tool);
        let args = digest(&self.keys, arguments).map(|k| {
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&k.0.to_le_bytes());
            b[8..].copy_from_slice(&k.1.to_le_bytes());
            b
        });
        let session = session_tag(step);
        let ttl = self.ttl.pending_s;
        let mut forgotten = 0u64;
        let mut shard = self.lock_scopes(&step.subject, now_ms, &mut forgotten);
        let (link, removed) = match shard.get_mut(&step.subject) {
            None => (None, 0),
            Some(scope) => {
                let expired = scope.expire(now_ms, ttl);
                forgotten += expired as u64;
                let matches = |c: &Pending| {
                    c.flags & EXECUTED == 0
                        && (names.contains(c.name) || names.contains(c.base))
                        && match args {
                            Some(a) => c.flags & ARGS_KNOWN == 0 || c.args == a,
                            None => true,
                        }
                };
                let pos = scope
                    .calls
                    .iter()
                    .position(|c| c.session == session && matches(c))
                    .or_else(|| scope.calls.iter().position(matches));
                match pos {
                    None => (None, expired),
                    Some(i) => {
                        let c = scope.calls[i];
                        let link = ToolLink {
                            tool_call_id: scope.str(c.id).map(str::to_owned),
                            model_request_id: scope.str(c.request).unwrap_or("").to_owned(),
                        };
                        // Without an id no result can be linked to it later.
                        let gone = if c.id.len == 0 {
                            scope.remove_calls(|j, _| j != i)
                        } else {
                            scope.calls[i].flags |= EXECUTED;
                            0
                        };
                        (Some(link), expired + gone)
                    }
                }
            }
        };
        shard.sub_weight(removed);
        shard.counters.forgotten += forgotten;
        if link.is_some() {
            shard.counters.linked_execution += 1;
        }
        link
    }

    /// Links the tool results a later LLM request carries back (by tool call id) to
    /// the model turns that asked for them. Each remembered call links the first
    /// request that returns its result and is then forgotten (chat histories
    /// resend old results; those are not linked again). Links come in the order of
    /// `tool_call_ids`; unknown ids are skipped.
    pub fn link_tool_results(
        &self,
        step: &SessionStep,
        tool_call_ids: &[&str],
        now_ms: u64,
    ) -> Vec<ToolLink> {
        let mut links = Vec::new();
        if tool_call_ids.is_empty() {
            return links;
        }
        let ttl = self.ttl.pending_s;
        let mut forgotten = 0u64;
        let mut shard = self.lock_scopes(&step.subject, now_ms, &mut forgotten);
        let mut removed = 0;
        if let Some(scope) = shard.get_mut(&step.subject) {
            let expired = scope.expire(now_ms, ttl);
            forgotten += expired as u64;
            removed += expired;
            let mut found = Vec::new();
            for id in tool_call_ids {
                let pos = scope
                    .calls
                    .iter()
                    .position(|c| scope.str(c.id) == Some(*id));
                if let Some(i) = pos.filter(|i| !found.contains(i)) {
                    found.push(i);
                    let request = scope.str(scope.calls[i].request).unwrap_or("");
                    links.push(ToolLink {
                        tool_call_id: Some((*id).to_owned()),
                        model_request_id: request.to_owned(),
                    });
                }
            }
            if !found.is_empty() {
                removed += scope.remove_calls(|j, _| !found.contains(&j));
            }
        }
        shard.sub_weight(removed);
        shard.counters.forgotten += forgotten;
        shard.counters.linked_result += links.len() as u64;
        links
    }
}

/// The low half of the session's table key: prefers calls from the same session.
fn session_tag(step: &SessionStep) -> u32 {
    #[allow(clippy::cast_possible_truncation)]
    let t = step.session_tag as u32;
    t
}

#[cfg(test)]
mod tests;
