//! Name patterns: `*` matches any run of characters (including none, and
//! including `:` and `/`); every other character matches itself, case-sensitively.
//! `?`, `[`, `]`, `{`, `}` and `\` are reserved (refused) so that they can gain a
//! meaning later without changing what existing policies match.
//!
//! Patterns are compiled once: an exact name, `*`, a prefix (`crm:*`), a suffix
//! (`*:read`) or the general form, which is matched greedily without backtracking
//! (correct for `*`-only patterns) in time linear in the name.

use std::fmt;

const RESERVED: [char; 6] = ['?', '[', ']', '{', '}', '\\'];

#[derive(Clone, Debug, PartialEq, Eq)]
enum Shape {
    Exact,
    Any,
    Prefix(Box<str>),
    Suffix(Box<str>),
    /// Split on `*`: at least two parts; the first is anchored at the start, the
    /// last at the end (either may be empty).
    Parts(Box<[Box<str>]>),
}

/// A compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Glob {
    source: Box<str>,
    shape: Shape,
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

impl Glob {
    /// Compiles `source`; the error says why it is not a valid pattern.
    pub(crate) fn parse(source: &str) -> Result<Self, String> {
        if source.is_empty() {
            return Err("empty pattern (use \"*\" to match anything)".into());
        }
        if let Some(c) = source.chars().find(|c| RESERVED.contains(c)) {
            return Err(format!(
                "bad pattern {source:?}: {c:?} is reserved (only '*' is a wildcard)"
            ));
        }
        if source.contains("**") {
            return Err(format!(
                "bad pattern {source:?}: '**' (a single '*' already matches any characters, ':' and '/' included)"
            ));
        }
        let stars = source.matches('*').count();
        let shape = match stars {
            0 => Shape::Exact,
            _ if source == "*" => Shape::Any,
            1 if source.ends_with('*') => Shape::Prefix(source[..source.len() - 1].into()),
            1 if source.starts_with('*') => Shape::Suffix(source[1..].into()),
            _ => Shape::Parts(source.split('*').map(Box::from).collect()),
        };
        Ok(Self {
            source: source.into(),
            shape,
        })
    }

    /// The pattern as written.
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// Whether the pattern has no wildcard.
    pub(crate) fn is_exact(&self) -> bool {
        self.shape == Shape::Exact
    }

    /// How many literal (non-`*`) characters it has: the more, the more specific.
    pub(crate) fn literal_len(&self) -> usize {
        self.source.chars().filter(|&c| c != '*').count()
    }

    /// Whether `name` matches.
    #[inline]
    pub(crate) fn matches(&self, name: &str) -> bool {
        match &self.shape {
            Shape::Exact => *self.source == *name,
            Shape::Any => true,
            Shape::Prefix(p) => name.starts_with(&**p),
            Shape::Suffix(s) => name.ends_with(&**s),
            Shape::Parts(parts) => parts_match(parts, name),
        }
    }

    /// The literal text every match starts with.
    fn head(&self) -> &str {
        match &self.shape {
            Shape::Exact => &self.source,
            Shape::Any | Shape::Suffix(_) => "",
            Shape::Prefix(p) => p,
            Shape::Parts(parts) => parts.first().map_or("", |p| p),
        }
    }

    /// The literal text every match ends with.
    fn tail(&self) -> &str {
        match &self.shape {
            Shape::Exact => &self.source,
            Shape::Any | Shape::Prefix(_) => "",
            Shape::Suffix(s) => s,
            Shape::Parts(parts) => parts.last().map_or("", |p| p),
        }
    }

    /// Whether every name `other` matches is also matched by `self`. Conservative:
    /// `false` means "not proven".
    pub(crate) fn covers(&self, other: &Glob) -> bool {
        match (&self.shape, &other.shape) {
            (Shape::Any, _) => true,
            (_, Shape::Exact) => self.matches(&other.source),
            _ if self.source == other.source => true,
            (Shape::Prefix(p), _) => other.head().starts_with(&**p),
            (Shape::Suffix(s), _) => other.tail().ends_with(&**s),
            _ => false,
        }
    }
}

fn parts_match(parts: &[Box<str>], name: &str) -> bool {
    let (Some((first, rest)), Some(last)) = (parts.split_first(), parts.last()) else {
        return false;
    };
    if name.len() < first.len() + last.len() || !name.starts_with(&**first) {
        return false;
    }
    if !name.ends_with(&**last) {
        return false;
    }
    let mut middle = &name[first.len()..name.len() - last.len()];
    let inner = &rest[..rest.len().saturating_sub(1)];
    for part in inner {
        match middle.find(&**part) {
            Some(i) => middle = &middle[i + part.len()..],
            None => return false,
        }
    }
    true
}

/// Any of several patterns (a matcher field given as one string or a list).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GlobSet(Box<[Glob]>);

impl GlobSet {
    pub(crate) fn new(globs: Vec<Glob>) -> Self {
        Self(globs.into())
    }

    /// Whether any pattern matches `name`.
    #[inline]
    pub(crate) fn matches(&self, name: &str) -> bool {
        self.0.iter().any(|g| g.matches(name))
    }

    /// The patterns.
    pub(crate) fn globs(&self) -> &[Glob] {
        &self.0
    }

    /// Whether every name `other` matches is matched here (conservative).
    pub(crate) fn covers(&self, other: &GlobSet) -> bool {
        other.0.iter().all(|o| self.0.iter().any(|g| g.covers(o)))
    }
}

impl fmt::Display for GlobSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            [one] => write!(f, "{one}"),
            many => {
                f.write_str("[")?;
                for (i, g) in many.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{g}")?;
                }
                f.write_str("]")
            }
        }
    }
}

#[cfg(test)]
mod tests;
