//! The rule prefilter: before any rule is checked, bitsets built at load time
//! narrow the rules to those that can possibly match this input's kind, tool,
//! method, anonymity, org, sub, issuer, route, operation, model and roles.
//!
//! Soundness: a rule's bit is cleared only when one of its matchers provably
//! rejects the input (an exact-valued matcher whose values do not include the
//! input's, a kind it excludes, a tool segment none of its patterns can match, an
//! anonymity it does not accept). Matchers with wildcards are left to the full
//! check. The surviving rules are then checked in file order, so the first match
//! is the same as without the prefilter (tested against the unfiltered
//! [`crate::Policy::explain`] path).

use crate::eval::{Input, held_roles};
use crate::glob::{Glob, GlobSet};
use crate::index::{NameMap, SegmentIndex};
use crate::policy::{Attr, KINDS, Rule, kind_bit, kind_index};

/// A fixed-size set of rule indexes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Bits(Box<[u64]>);

impl Bits {
    fn new(words: usize) -> Self {
        Self(vec![0; words].into())
    }

    fn set(&mut self, i: usize) {
        if let Some(w) = self.0.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }

    fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }
}

/// Rules whose matcher on one attribute lists exact values only.
#[derive(Clone, Debug, Default)]
struct Exact {
    /// The rules constrained this way (the others always pass this filter).
    constrained: Bits,
    /// For each listed value, the constrained rules that list it.
    by_value: NameMap<Bits>,
}

impl Exact {
    fn build(
        rules: &[Rule],
        words: usize,
        values: impl Fn(&Rule) -> Option<Vec<&str>>,
    ) -> Option<Self> {
        let mut exact = Exact {
            constrained: Bits::new(words),
            by_value: NameMap::default(),
        };
        for (i, rule) in rules.iter().enumerate() {
            let Some(list) = values(rule) else { continue };
            exact.constrained.set(i);
            for v in list {
                exact
                    .by_value
                    .entry(v.into())
                    .or_insert_with(|| Bits::new(words))
                    .set(i);
            }
        }
        (!exact.constrained.is_empty()).then_some(exact)
    }
}

/// The exact values of a pattern set, if it has no wildcard.
fn exact_values(set: Option<&GlobSet>) -> Option<Vec<&str>> {
    let globs = set?.globs();
    globs
        .iter()
        .all(Glob::is_exact)
        .then(|| globs.iter().map(Glob::source).collect())
}

/// Bitsets over the rules, by attribute.
#[derive(Clone, Debug, Default)]
pub(crate) struct Prefilter {
    words: usize,
    kinds: [Bits; 3],
    /// Rules with a tool matcher.
    tool_constrained: Bits,
    /// By the tool's first segment: the rules that can match such a tool
    /// (including every rule without a tool matcher).
    tools: SegmentIndex,
    tool_sets: Vec<Bits>,
    anonymous_only: Bits,
    named_only: Bits,
    methods: Option<Exact>,
    roles: Option<Exact>,
    attrs: Vec<(Attr, Exact)>,
}

/// Rules fit in 16 words (1024 rules) without allocating.
const INLINE: usize = 16;

impl Prefilter {
    pub(crate) fn build(rules: &[Rule]) -> Self {
        let words = rules.len().div_ceil(64);
        let mut kinds = [Bits::new(words), Bits::new(words), Bits::new(words)];
        let mut tool_constrained = Bits::new(words);
        let (mut anonymous_only, mut named_only) = (Bits::new(words), Bits::new(words));
        for (i, rule) in rules.iter().enumerate() {
            let w = &rule.when;
            for kind in KINDS {
                if w.kinds.is_none_or(|k| k & kind_bit(kind) != 0) {
                    kinds[kind_index(kind)].set(i);
                }
            }
            if w.tool.is_some() {
                tool_constrained.set(i);
            }
            match w.anonymous {
                Some(true) => anonymous_only.set(i),
                Some(false) => named_only.set(i),
                None => {}
            }
        }
        // The segment index lists rule indexes; each distinct list becomes a bitset.
        let items: Vec<(u32, Option<&[Glob]>)> = rules
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                Some((
                    u32::try_from(i).ok()?,
                    r.when.tool.as_ref().map(GlobSet::globs),
                ))
            })
            .collect();
        let tools = SegmentIndex::build(&items);
        let tool_sets = tools
            .lists()
            .map(|list| {
                let mut bits = Bits::new(words);
                for &i in list {
                    bits.set(i as usize);
                }
                bits
            })
            .collect();
        let attrs = [
            Attr::Org,
            Attr::Sub,
            Attr::Issuer,
            Attr::Route,
            Attr::Operation,
            Attr::Model,
        ]
        .into_iter()
        .filter_map(|attr| {
            let exact = Exact::build(rules, words, |r| {
                let w = &r.when;
                exact_values(match attr {
                    Attr::Org => w.org.as_ref(),
                    Attr::Sub => w.sub.as_ref(),
                    Attr::Issuer => w.issuer.as_ref(),
                    Attr::Route => w.route.as_ref(),
                    Attr::Operation => w.operation.as_ref(),
                    Attr::Model => w.model.as_ref(),
                    Attr::Tool | Attr::Path => None,
                })
            })?;
            Some((attr, exact))
        })
        .collect();
        Self {
            words,
            kinds,
            tool_constrained,
            tools,
            tool_sets,
            anonymous_only,
            named_only,
            methods: Exact::build(rules, words, |r| {
                r.when
                    .methods
                    .as_ref()
                    .map(|m| m.iter().map(|m| &**m).collect())
            }),
            roles: Exact::build(rules, words, |r| exact_values(r.when.role.as_ref())),
            attrs,
        }
    }

    /// Calls `check` on each rule that survives the filter, in order, until it
    /// returns `true`; returns that rule's index.
    #[inline]
    pub(crate) fn first(
        &self,
        input: &Input<'_>,
        mut check: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        let mut inline = [0u64; INLINE];
        let mut heap = Vec::new();
        let mask: &mut [u64] = if self.words <= INLINE {
            &mut inline[..self.words]
        } else {
            heap.resize(self.words, 0);
            &mut heap
        };
        self.fill(input, mask);
        for (w, word) in mask.iter().enumerate() {
            let mut bits = *word;
            while bits != 0 {
                let i = w * 64 + bits.trailing_zeros() as usize;
                if check(i) {
                    return Some(i);
                }
                bits &= bits - 1;
            }
        }
        None
    }

    fn fill(&self, input: &Input<'_>, mask: &mut [u64]) {
        let (a, p) = (input.action, input.principal);
        mask.copy_from_slice(&self.kinds[kind_index(a.kind)].0);
        match a.tool.as_deref() {
            None => and_not(mask, &self.tool_constrained),
            Some(tool) => {
                if let Some(bits) = self.tool_sets.get(self.tools.slot(tool)) {
                    and(mask, bits);
                }
            }
        }
        and_not(
            mask,
            if p.sub.is_none() {
                &self.named_only
            } else {
                &self.anonymous_only
            },
        );
        if let Some(m) = &self.methods
            && !a.method.bytes().any(|b| b.is_ascii_lowercase())
        {
            restrict(mask, m, Some(a.method.as_str()));
        }
        for (attr, exact) in &self.attrs {
            let value = match attr {
                Attr::Org => p.org.as_deref(),
                Attr::Sub => p.sub.as_deref(),
                Attr::Issuer => p.issuer.as_deref(),
                Attr::Route => a.route.as_deref(),
                Attr::Operation => a.operation.as_deref(),
                Attr::Model => input.model,
                Attr::Tool | Attr::Path => continue,
            };
            restrict(mask, exact, value);
        }
        // Keep this filter last: it gives up early on unusually many roles.
        if let Some(roles) = &self.roles {
            let mut held: [Option<&Bits>; 8] = [None; 8];
            let mut n = 0;
            for r in held_roles(p) {
                if n == held.len() {
                    return; // Unusually many roles: skip this filter (always sound).
                }
                if let Some(bits) = roles.by_value.get(r) {
                    held[n] = Some(bits);
                    n += 1;
                }
            }
            for (w, word) in mask.iter_mut().enumerate() {
                let allowed = held[..n].iter().flatten().fold(0, |acc, b| acc | b.0[w]);
                *word &= !roles.constrained.0[w] | allowed;
            }
        }
    }
}

fn and(mask: &mut [u64], bits: &Bits) {
    for (m, b) in mask.iter_mut().zip(&bits.0) {
        *m &= b;
    }
}

fn and_not(mask: &mut [u64], bits: &Bits) {
    for (m, b) in mask.iter_mut().zip(&bits.0) {
        *m &= !b;
    }
}

/// Keeps the rules this attribute does not constrain, and those listing `value`.
fn restrict(mask: &mut [u64], exact: &Exact, value: Option<&str>) {
    match value.and_then(|v| exact.by_value.get(v)) {
        Some(listed) => {
            for ((m, c), l) in mask.iter_mut().zip(&exact.constrained.0).zip(&listed.0) {
                *m &= !c | l;
            }
        }
        None => and_not(mask, &exact.constrained),
    }
}

#[cfg(test)]
mod tests;
