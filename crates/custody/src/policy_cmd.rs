//! `custody policy check | test | explain`: work with a policy file offline.
//!
//! Each command reads the policy file, validates it as a whole and prints to
//! stdout; problems go to stderr. Exit codes, as everywhere in custody: 0 success,
//! 1 a check that ran and failed (a case mismatched, warnings under
//! `--deny-warnings`, stdout closed), 2 invalid input (an unreadable or invalid
//! policy or cases file, a malformed flag). `explain` prints a decision, allow
//! or deny, and exits 0 either way. The output is specified in `docs/policy.md`.

use clap::Subcommand;
use custody_policy::cases::{self, CaseInput, Parts};
use custody_policy::{Loaded, Policy, Problem};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit status for invalid input (an unreadable or invalid file, a bad flag).
const INVALID: u8 = 2;

#[derive(Subcommand, Debug)]
pub(crate) enum PolicyCommand {
    /// Validate a policy file: print its version, counts and every warning, or list every problem.
    Check {
        /// The policy file (YAML).
        file: PathBuf,
        /// Exit 1 when the policy loads but has warnings.
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Run a table of test cases against a policy and report every mismatch.
    Test {
        /// The policy file (YAML).
        file: PathBuf,
        /// The cases file (YAML; see docs/policy.md).
        cases: PathBuf,
    },
    /// Show the decision for one call and why.
    Explain {
        /// The policy file (YAML).
        file: PathBuf,
        /// The caller, as YAML: `{sub, org, role, roles, issuer}`. Absent = anonymous.
        #[arg(long, value_name = "YAML")]
        principal: Option<String>,
        /// The action, as YAML: `{kind, route, method, path, tool, operation, model}`.
        #[arg(long, value_name = "YAML")]
        action: String,
        /// The tool's arguments, as JSON text (used verbatim, like `action.parameters`).
        #[arg(long, value_name = "JSON")]
        arguments: Option<String>,
        /// The token's claims, as a YAML or JSON mapping.
        #[arg(long, value_name = "JSON")]
        claims: Option<String>,
        /// The token's scopes, separated by commas or spaces (repeatable). Absent = the
        /// token has no scope claim; `''` = a scope claim with no scopes.
        #[arg(long, value_name = "SCOPES")]
        token_scopes: Vec<String>,
    },
}

/// Runs a `custody policy` command and returns its exit status.
pub(crate) fn run(command: PolicyCommand) -> ExitCode {
    let result = match command {
        PolicyCommand::Check {
            file,
            deny_warnings,
        } => check(&file, deny_warnings),
        PolicyCommand::Test { file, cases } => test(&file, &cases),
        PolicyCommand::Explain {
            file,
            principal,
            action,
            arguments,
            claims,
            token_scopes,
        } => {
            let scopes = token_scopes_yaml(&token_scopes);
            let parts = Parts {
                principal: principal.as_deref(),
                action: &action,
                arguments: arguments.as_deref(),
                claims: claims.as_deref(),
                token_scopes: scopes.as_deref(),
            };
            explain(&file, &parts)
        }
    };
    result.unwrap_or_else(|code| code)
}

fn check(file: &Path, deny_warnings: bool) -> Result<ExitCode, ExitCode> {
    let loaded = load(file)?;
    let mut out = check_summary(file, &loaded);
    for w in &loaded.warnings {
        out += &format!("{w}\n");
    }
    emit(&out)?;
    let n = loaded.warnings.len();
    if deny_warnings && n > 0 {
        eprintln!(
            "custody: {}: {n} warning{} and --deny-warnings is set",
            file.display(),
            plural(n)
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The lines `check` prints before the warnings.
fn check_summary(file: &Path, loaded: &Loaded) -> String {
    let p = &loaded.policy;
    format!(
        "policy {} is valid\n\
         version:      {}\n\
         roles:        {}\n\
         rules:        {}\n\
         token_scopes: {}\n\
         warnings:     {}\n",
        file.display(),
        p.version(),
        p.role_names().count(),
        p.rule_count(),
        p.token_scopes().as_str(),
        loaded.warnings.len()
    )
}

fn test(file: &Path, cases_file: &Path) -> Result<ExitCode, ExitCode> {
    let loaded = load(file)?;
    note_warnings(file, &loaded);
    let text = read(cases_file, "cases")?;
    let report = cases::run(&loaded.policy, &text).map_err(|e| {
        eprintln!("custody: {}: {e}", cases_file.display());
        ExitCode::from(INVALID)
    })?;
    emit(&report.to_string())?;
    Ok(if report.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn explain(file: &Path, parts: &Parts<'_>) -> Result<ExitCode, ExitCode> {
    let loaded = load(file)?;
    note_warnings(file, &loaded);
    let input = CaseInput::from_parts(parts).map_err(|e| {
        eprintln!(
            "custody: {}",
            problems("invalid explain input", &e.problems)
        );
        ExitCode::from(INVALID)
    })?;
    emit(&loaded.policy.explain(&input.input()).to_string())?;
    Ok(ExitCode::SUCCESS)
}

/// `--token-scopes` values as the YAML list [`Parts`] expects: each value split
/// on commas and whitespace; no flag at all = no scope claim.
fn token_scopes_yaml(values: &[String]) -> Option<String> {
    if values.is_empty() {
        return None;
    }
    let scopes: Vec<&str> = values
        .iter()
        .flat_map(|v| v.split(|c: char| c == ',' || c.is_whitespace()))
        .filter(|s| !s.is_empty())
        .collect();
    // Single-quoted YAML scalars have one escape: `''` for `'`.
    let quoted: Vec<String> = scopes
        .iter()
        .map(|s| format!("'{}'", s.replace('\'', "''")))
        .collect();
    Some(format!("[{}]", quoted.join(", ")))
}

fn load(file: &Path) -> Result<Loaded, ExitCode> {
    let text = read(file, "policy")?;
    Policy::from_yaml(&text).map_err(|e| {
        eprintln!("custody: {}: {e}", file.display());
        ExitCode::from(INVALID)
    })
}

fn read(file: &Path, what: &str) -> Result<String, ExitCode> {
    std::fs::read_to_string(file).map_err(|e| {
        eprintln!("custody: reading {what} {}: {e}", file.display());
        ExitCode::from(INVALID)
    })
}

/// `test` and `explain` do not list warnings (that is `check`'s job) but say so.
fn note_warnings(file: &Path, loaded: &Loaded) {
    let n = loaded.warnings.len();
    if n > 0 {
        eprintln!(
            "custody: {}: {n} warning{}; see `custody policy check {}`",
            file.display(),
            plural(n),
            file.display()
        );
    }
}

fn problems(what: &str, list: &[Problem]) -> String {
    let n = list.len();
    let mut out = format!("{what}: {n} problem{}", plural(n));
    for p in list {
        out += &format!("\n  - {p}");
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Writes to stdout; a closed stdout (`| head`) is a failure, not a panic.
fn emit(text: &str) -> Result<(), ExitCode> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|_| ExitCode::FAILURE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_scopes_split_on_commas_and_spaces() {
        let v = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(token_scopes_yaml(&[]), None);
        assert_eq!(token_scopes_yaml(&v(&[""])).as_deref(), Some("[]"));
        assert_eq!(
            token_scopes_yaml(&v(&["a,b", "c d", "e:f"])).as_deref(),
            Some("['a', 'b', 'c', 'd', 'e:f']")
        );
        assert_eq!(
            token_scopes_yaml(&v(&["it's"])).as_deref(),
            Some("['it''s']")
        );
    }
}
