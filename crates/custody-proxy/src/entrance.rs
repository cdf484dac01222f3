//! How a request reached the pipeline ([`Entrance`]): straight from a listener, or
//! inside a TLS connection custody terminated after a forward-proxy `CONNECT`
//! ([`Connected`]); and the two readings of forward-proxy requests both sides need
//! ([`split_authority`], [`proxy_bearer`]). Depends on nothing else in the crate, so
//! that the pipeline and forward-proxy mode ([`crate::intercept`]) can both use it.

use std::fmt;
use std::sync::Arc;

/// How a request reached the pipeline.
#[derive(Clone, Debug, Default)]
pub(crate) enum Entrance {
    /// A connection to a listener: reverse-proxy mode, or an absolute-form
    /// forward-proxy request (decided per request).
    #[default]
    Direct,
    /// Inside a TLS connection custody terminated after a `CONNECT`.
    Intercepted(Arc<Connected>),
}

/// What the `CONNECT` of an intercepted connection asked for.
pub(crate) struct Connected {
    /// The host, lowercase, without brackets (route lookup, leaf name).
    pub(crate) host: String,
    /// `host:port`, as recorded in `intercepted_host`.
    pub(crate) authority: String,
    /// The bearer token of the `CONNECT`'s `Proxy-Authorization`, if any.
    pub(crate) proxy_token: Option<String>,
}

impl fmt::Debug for Connected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the token.
        f.debug_struct("Connected")
            .field("authority", &self.authority)
            .field(
                "proxy_token",
                &self.proxy_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// `(host, host:port)` of an authority: the host lowercase and without IPv6
/// brackets, the port `default_port` when absent.
pub(crate) fn split_authority(
    authority: &http::uri::Authority,
    default_port: u16,
) -> (String, String) {
    let host = authority.host();
    let port = authority.port_u16().unwrap_or(default_port);
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .trim_end_matches('.')
        .to_ascii_lowercase();
    (bare, format!("{}:{port}", host.to_ascii_lowercase()))
}

/// The bearer token of a `Proxy-Authorization` header.
pub(crate) fn proxy_bearer(headers: &http::HeaderMap) -> Option<String> {
    let v = headers
        .get(http::header::PROXY_AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let token = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))?
        .trim();
    (!token.is_empty()).then(|| token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_split_into_host_and_host_port() {
        let a = |s: &str| s.parse::<http::uri::Authority>().expect("authority");
        assert_eq!(
            split_authority(&a("API.OpenAI.com:443"), 80),
            ("api.openai.com".into(), "api.openai.com:443".into())
        );
        assert_eq!(
            split_authority(&a("example.com"), 80),
            ("example.com".into(), "example.com:80".into())
        );
        assert_eq!(
            split_authority(&a("[::1]:8443"), 443),
            ("::1".into(), "[::1]:8443".into())
        );
    }

    #[test]
    fn proxy_bearer_tokens_only() {
        let mut h = http::HeaderMap::new();
        assert_eq!(proxy_bearer(&h), None);
        h.insert(
            "proxy-authorization",
            "Basic dXNlcjpwYXNz".parse().expect("v"),
        );
        assert_eq!(proxy_bearer(&h), None);
        h.insert("proxy-authorization", "Bearer abc.def".parse().expect("v"));
        assert_eq!(proxy_bearer(&h).as_deref(), Some("abc.def"));
        let c = Connected {
            host: "h".into(),
            authority: "h:443".into(),
            proxy_token: proxy_bearer(&h),
        };
        assert!(!format!("{c:?}").contains("abc.def"));
    }
}
