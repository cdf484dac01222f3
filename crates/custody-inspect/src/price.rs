//! Token prices and the cost of a call.
//!
//! The built-in table is `data/prices.yaml` (embedded at build time; its header
//! says where the prices come from and how names are matched); the config may
//! override and extend it with a document of the same shape.

use crate::Usage;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

const BUILTIN: &str = include_str!("../data/prices.yaml");

/// One model's prices, in USD per million tokens.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Uncached input tokens.
    pub input: f64,
    /// Output tokens.
    pub output: f64,
    /// Prompt-cache reads; `input` when absent.
    #[serde(default)]
    pub cached_input: Option<f64>,
    /// Prompt-cache writes; `input` when absent.
    #[serde(default)]
    pub cache_write: Option<f64>,
}

/// Why a price document was refused.
#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    /// Not YAML of the expected shape.
    #[error("prices: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    /// A negative or non-finite price.
    #[error("prices: model {model:?}: {field} must be a finite number >= 0, got {value}")]
    InvalidPrice {
        /// The model.
        model: String,
        /// `input`, `output`, `cached_input` or `cache_write`.
        field: &'static str,
        /// The value given.
        value: f64,
    },
    /// An alias naming a model the table does not have.
    #[error("prices: alias {alias:?} points to {target:?}, which is not in models")]
    UnknownAliasTarget {
        /// The alias.
        alias: String,
        /// Its target.
        target: String,
    },
}

/// A price document as written (`models`, `aliases`): the shape of
/// `data/prices.yaml` and of the config's `inspection.prices`. A config reader may
/// deserialize it itself (to report every structural problem with its path) and
/// hand it to [`PriceTable::with_document`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceFile {
    /// Prices by model name.
    #[serde(default)]
    pub models: BTreeMap<String, Price>,
    /// Other names of priced models.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
}

/// Prices by model name, with aliases.
#[derive(Clone, Debug, Default)]
pub struct PriceTable {
    models: HashMap<String, Price>,
    aliases: HashMap<String, String>,
}

fn parse(yaml: &str) -> Result<PriceFile, PriceError> {
    // An empty document (or one with only comments) is an empty table.
    let file: Option<PriceFile> = serde_yaml_ng::from_str(yaml)?;
    Ok(file.unwrap_or(PriceFile {
        models: BTreeMap::new(),
        aliases: BTreeMap::new(),
    }))
}

impl PriceTable {
    /// The built-in table (`data/prices.yaml`).
    pub fn builtin() -> Self {
        // The embedded file is checked by the tests; should it ever fail to
        // load, no cost is estimated rather than a wrong one.
        Self::default().with_overrides(BUILTIN).unwrap_or_default()
    }

    /// This table with the models and aliases of `overrides` (YAML of the same
    /// shape as `data/prices.yaml`) added or replaced.
    pub fn with_overrides(self, overrides: &str) -> Result<Self, PriceError> {
        let file = parse(overrides)?;
        self.with_document(file)
            .map_err(|mut problems| problems.swap_remove(0))
    }

    /// This table with the models and aliases of `file` added or replaced; `Err`
    /// lists every problem (negative or non-finite prices, aliases to models the
    /// table does not have), at least one.
    pub fn with_document(mut self, file: PriceFile) -> Result<Self, Vec<PriceError>> {
        let mut problems = Vec::new();
        for (model, price) in &file.models {
            for (field, value) in [
                ("input", Some(price.input)),
                ("output", Some(price.output)),
                ("cached_input", price.cached_input),
                ("cache_write", price.cache_write),
            ] {
                if let Some(value) = value
                    && !(value.is_finite() && value >= 0.0)
                {
                    problems.push(PriceError::InvalidPrice {
                        model: model.clone(),
                        field,
                        value,
                    });
                }
            }
        }
        self.models.extend(file.models);
        self.aliases.extend(file.aliases);
        let mut aliases: Vec<_> = self.aliases.iter().collect();
        aliases.sort();
        for (alias, target) in aliases {
            if !self.models.contains_key(target) {
                problems.push(PriceError::UnknownAliasTarget {
                    alias: alias.clone(),
                    target: target.clone(),
                });
            }
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(problems)
        }
    }

    /// Number of priced models.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// Whether no model is priced.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// The price of `model`: exact name, then alias, then without a trailing date
    /// (`-YYYY-MM-DD` / `-YYYYMMDD`), then without a provider prefix (`openai/`).
    pub fn lookup(&self, model: &str) -> Option<&Price> {
        self.resolve(model).or_else(|| {
            let (_, bare) = model.rsplit_once('/')?;
            self.resolve(bare)
        })
    }

    fn resolve(&self, name: &str) -> Option<&Price> {
        self.direct(name)
            .or_else(|| strip_date(name).and_then(|base| self.direct(base)))
    }

    fn direct(&self, name: &str) -> Option<&Price> {
        self.models
            .get(name)
            .or_else(|| self.aliases.get(name).and_then(|t| self.models.get(t)))
    }

    /// The cost of `usage` on `model` in USD; `None` when the model is unknown or
    /// the usage has no token counts. Uncached input (`input - cached - cache
    /// creation`) is priced at `input`, cached input at `cached_input`, cache
    /// creation at `cache_write` (both falling back to `input`), output at `output`.
    pub fn cost(&self, model: &str, usage: &Usage) -> Option<f64> {
        let price = self.lookup(model)?;
        if usage.input_tokens.is_none() && usage.output_tokens.is_none() {
            return None;
        }
        let count = |n: Option<i64>| n.unwrap_or(0).max(0) as f64;
        let input = count(usage.input_tokens);
        let cached = count(usage.cached_input_tokens);
        let creation = count(usage.cache_creation_input_tokens);
        let uncached = (input - cached - creation).max(0.0);
        let micro = uncached * price.input
            + cached * price.cached_input.unwrap_or(price.input)
            + creation * price.cache_write.unwrap_or(price.input)
            + count(usage.output_tokens) * price.output;
        Some(micro / 1_000_000.0)
    }
}

/// `name` without a trailing `-YYYY-MM-DD` or `-YYYYMMDD`.
fn strip_date(name: &str) -> Option<&str> {
    let b = name.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    let n = b.len();
    if n > 11
        && b[n - 11] == b'-'
        && b[n - 6] == b'-'
        && b[n - 3] == b'-'
        && digits(&b[n - 10..n - 6])
        && digits(&b[n - 5..n - 3])
        && digits(&b[n - 2..])
    {
        return Some(&name[..n - 11]);
    }
    if n > 9 && b[n - 9] == b'-' && digits(&b[n - 8..]) {
        return Some(&name[..n - 9]);
    }
    None
}

#[cfg(test)]
mod tests;
