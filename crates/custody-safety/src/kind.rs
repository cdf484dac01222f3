//! What a finding is ([`Kind`]) and what is done about it ([`Action`]).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// The kind of a finding: a built-in detector or a named custom one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// An e-mail address (`EMAIL`).
    Email,
    /// A telephone number (`PHONE`).
    Phone,
    /// A US social security number (`SSN`).
    Ssn,
    /// A payment card number (`CARD`).
    Card,
    /// An international bank account number (`IBAN`).
    Iban,
    /// An IPv4 or IPv6 address (`IP_ADDRESS`).
    IpAddress,
    /// An AWS access key id (`AWS_ACCESS_KEY`).
    AwsAccessKey,
    /// An OpenAI- or Anthropic-style API key `sk-...` (`API_KEY`).
    ApiKey,
    /// A GitHub token (`GITHUB_TOKEN`).
    GithubToken,
    /// A Slack token (`SLACK_TOKEN`).
    SlackToken,
    /// A JSON web token (`JWT`).
    Jwt,
    /// A PEM private key block (`PRIVATE_KEY`).
    PrivateKey,
    /// The value of a secret-looking assignment such as `api_key=...` (`SECRET`).
    Secret,
    /// A custom detector from configuration, by its name.
    Custom(Arc<str>),
}

impl Kind {
    /// Every built-in kind, in a stable order.
    pub const BUILTIN: [Kind; 13] = [
        Kind::Email,
        Kind::Phone,
        Kind::Ssn,
        Kind::Card,
        Kind::Iban,
        Kind::IpAddress,
        Kind::AwsAccessKey,
        Kind::ApiKey,
        Kind::GithubToken,
        Kind::SlackToken,
        Kind::Jwt,
        Kind::PrivateKey,
        Kind::Secret,
    ];

    /// The name recorded in the audit row and used in configuration.
    pub fn as_str(&self) -> &str {
        match self {
            Kind::Email => "EMAIL",
            Kind::Phone => "PHONE",
            Kind::Ssn => "SSN",
            Kind::Card => "CARD",
            Kind::Iban => "IBAN",
            Kind::IpAddress => "IP_ADDRESS",
            Kind::AwsAccessKey => "AWS_ACCESS_KEY",
            Kind::ApiKey => "API_KEY",
            Kind::GithubToken => "GITHUB_TOKEN",
            Kind::SlackToken => "SLACK_TOKEN",
            Kind::Jwt => "JWT",
            Kind::PrivateKey => "PRIVATE_KEY",
            Kind::Secret => "SECRET",
            Kind::Custom(name) => name,
        }
    }

    /// The built-in kind with this name, if any.
    pub fn builtin(name: &str) -> Option<Kind> {
        Kind::BUILTIN.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether this kind is a credential (as opposed to personal data).
    pub fn is_secret(&self) -> bool {
        matches!(
            self,
            Kind::AwsAccessKey
                | Kind::ApiKey
                | Kind::GithubToken
                | Kind::SlackToken
                | Kind::Jwt
                | Kind::PrivateKey
                | Kind::Secret
        )
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens to a request or response carrying a finding.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Record the finding only (the default).
    #[default]
    Log,
    /// Replace the value in the forwarded body.
    Redact,
    /// Refuse the request.
    Block,
}

impl Action {
    /// `log`, `redact` or `block`, as recorded in the audit row.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Log => "log",
            Action::Redact => "redact",
            Action::Block => "block",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
