//! Credentials: custody verifies exactly one value, and forwards no credential
//! other than the one it verified or the one it injects.
//!
//! - The header custody verifies (custody's token header, or `Authorization` with
//!   `token_from: authorization`) must carry one value: two header lines, or one
//!   line holding comma-joined values (`Bearer a, Bearer b`), are refused — an
//!   upstream reading the other value would act as someone the row does not name.
//! - On a route with `routes[].credentials`, every client credential header
//!   ([`CLIENT_CREDENTIALS`] and the route's own header) is removed before
//!   custody sets its own, so the upstream sees custody's credential only.

use super::{Reason, Refusal};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// The headers that carry a credential to an LLM provider or a tool server.
pub(crate) const CLIENT_CREDENTIALS: [HeaderName; 5] = [
    header::AUTHORIZATION,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("x-api-key"),
    HeaderName::from_static("api-key"),
    HeaderName::from_static("x-goog-api-key"),
];

/// The one value of `name`, if any; a refusal when there is more than one.
pub(crate) fn single<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'h HeaderValue>, Refusal> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    let more = values.count();
    // (A bearer token is long: `memchr` scans it a word or a vector at a time.)
    let joined = first.is_some_and(|v| memchr::memchr(b',', v.as_bytes()).is_some());
    if more > 0 || joined {
        let count = if more > 0 {
            format!("{} {name} headers", more + 1)
        } else {
            format!("one {name} header holding comma-separated values")
        };
        return Err(Refusal::new(
            Reason::DuplicateCredentials,
            format!(
                "the request carries {count}: custody verifies exactly one credential per request, so that the upstream cannot act on another one (send a single value)"
            ),
        ));
    }
    Ok(first)
}

/// Replaces every client credential with the route's own (`header: value`).
pub(crate) fn inject(headers: &mut HeaderMap, header: &HeaderName, value: HeaderValue) {
    for name in &CLIENT_CREDENTIALS {
        headers.remove(name);
    }
    headers.remove(header);
    headers.insert(header.clone(), value);
}
