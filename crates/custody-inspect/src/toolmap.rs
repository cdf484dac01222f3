//! REST tool mapping for `kind: http` routes: method + path template → tool name.
//!
//! A template is an absolute path whose segments are literals (matched exactly,
//! case-sensitively) or `{name}` (matches one non-empty segment, percent-decoded
//! into the path parameter `name`). A trailing slash is ignored on both sides.
//! Among the templates that match, the one with the most literal segments wins;
//! ties go to a specific method over `*` / `ANY`, then to the earlier entry.

use crate::text::percent_decode;

/// One configured mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolMapping {
    /// HTTP method (case-insensitive), or `*` / `ANY` for every method.
    pub method: String,
    /// Path template, e.g. `/api/crm/contacts/{id}/notes`.
    pub path: String,
    /// Tool name, e.g. `crm:contacts:notes`.
    pub tool: String,
}

/// A request matched to a tool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolMatch<'a> {
    /// The mapping's tool name.
    pub tool: &'a str,
    /// The template's parameters, in template order, percent-decoded.
    pub path_params: Vec<(String, String)>,
}

/// Why a mapping was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template does not start with `/`.
    #[error("path template {path:?} must start with '/'")]
    NotAbsolute {
        /// The template.
        path: String,
    },
    /// `//` inside the template.
    #[error("path template {path:?} has an empty segment ('//')")]
    EmptySegment {
        /// The template.
        path: String,
    },
    /// A `{` or `}` that does not enclose a whole segment, e.g. `{id`, `a{id}`, `{{id}}`.
    #[error(
        "path template {path:?}: segment {segment:?} has an unbalanced or misplaced brace (a parameter is a whole segment like '{{id}}')"
    )]
    UnbalancedBrace {
        /// The template.
        path: String,
        /// The offending segment.
        segment: String,
    },
    /// `{}`.
    #[error("path template {path:?} has a parameter without a name ('{{}}')")]
    EmptyParamName {
        /// The template.
        path: String,
    },
    /// The same `{name}` twice.
    #[error("path template {path:?} uses parameter {name:?} twice")]
    DuplicateParam {
        /// The template.
        path: String,
        /// The repeated name.
        name: String,
    },
    /// An empty method.
    #[error("mapping for {path:?} has an empty method (use '*' or 'ANY' for every method)")]
    EmptyMethod {
        /// The template.
        path: String,
    },
    /// An empty tool name.
    #[error("mapping for {path:?} has an empty tool name")]
    EmptyTool {
        /// The template.
        path: String,
    },
}

#[derive(Clone, Debug)]
enum Segment {
    Literal(String),
    Param(String),
}

#[derive(Clone, Debug)]
struct Entry {
    /// Upper-cased; `None` for any method.
    method: Option<String>,
    segments: Vec<Segment>,
    literals: usize,
    tool: String,
}

/// The compiled mappings of one route.
#[derive(Clone, Debug, Default)]
pub struct ToolMap {
    entries: Vec<Entry>,
}

/// Splits a path into segments, ignoring one trailing slash (`/` has none).
fn split_path(path: &str) -> impl Iterator<Item = &str> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    let empty = trimmed.is_empty();
    trimmed.split('/').filter(move |_| !empty)
}

fn compile(mapping: ToolMapping) -> Result<Entry, TemplateError> {
    let path = &mapping.path;
    if !path.starts_with('/') {
        return Err(TemplateError::NotAbsolute { path: path.clone() });
    }
    let method = mapping.method.trim();
    if method.is_empty() {
        return Err(TemplateError::EmptyMethod { path: path.clone() });
    }
    if mapping.tool.trim().is_empty() {
        return Err(TemplateError::EmptyTool { path: path.clone() });
    }
    let mut segments = Vec::new();
    let mut literals = 0;
    for seg in split_path(path) {
        if seg.is_empty() {
            return Err(TemplateError::EmptySegment { path: path.clone() });
        }
        if !seg.contains(['{', '}']) {
            segments.push(Segment::Literal(seg.to_owned()));
            literals += 1;
            continue;
        }
        let name = seg
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .filter(|name| !name.contains(['{', '}']))
            .ok_or_else(|| TemplateError::UnbalancedBrace {
                path: path.clone(),
                segment: seg.to_owned(),
            })?;
        if name.is_empty() {
            return Err(TemplateError::EmptyParamName { path: path.clone() });
        }
        if segments
            .iter()
            .any(|s| matches!(s, Segment::Param(n) if n == name))
        {
            return Err(TemplateError::DuplicateParam {
                path: path.clone(),
                name: name.to_owned(),
            });
        }
        segments.push(Segment::Param(name.to_owned()));
    }
    let method = match method.to_ascii_uppercase() {
        m if m == "*" || m == "ANY" => None,
        m => Some(m),
    };
    Ok(Entry {
        method,
        segments,
        literals,
        tool: mapping.tool,
    })
}

impl ToolMap {
    /// Compiles `entries`; the first invalid template is reported.
    pub fn new(entries: Vec<ToolMapping>) -> Result<Self, TemplateError> {
        let entries = entries
            .into_iter()
            .map(compile)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { entries })
    }

    /// How many mappings there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no mappings.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The most specific mapping for `method` on `path` (no query string).
    pub fn find(&self, method: &str, path: &str) -> Option<ToolMatch<'_>> {
        let request: Vec<&str> = split_path(path).collect();
        let mut best: Option<(&Entry, (usize, bool))> = None;
        for entry in &self.entries {
            if let Some(m) = &entry.method
                && !m.eq_ignore_ascii_case(method)
            {
                continue;
            }
            if !matches_segments(&entry.segments, &request) {
                continue;
            }
            let rank = (entry.literals, entry.method.is_some());
            if best.is_none_or(|(_, r)| rank > r) {
                best = Some((entry, rank));
            }
        }
        let (entry, _) = best?;
        let path_params = entry
            .segments
            .iter()
            .zip(&request)
            .filter_map(|(seg, value)| match seg {
                Segment::Param(name) => Some((name.clone(), percent_decode(value, false))),
                Segment::Literal(_) => None,
            })
            .collect();
        Some(ToolMatch {
            tool: &entry.tool,
            path_params,
        })
    }
}

fn matches_segments(template: &[Segment], request: &[&str]) -> bool {
    template.len() == request.len()
        && template.iter().zip(request).all(|(seg, value)| match seg {
            Segment::Literal(lit) => lit == value,
            Segment::Param(_) => !value.is_empty(),
        })
}

#[cfg(test)]
mod tests;
