//! Whom custody's TCP listeners answer: the agent on this machine or in this pod,
//! not a web page the user happens to have open.
//!
//! A page can make the user's browser send requests to `127.0.0.1:15080` — either
//! cross-site (`fetch` / a form / an `<img>` to the loopback address), or after
//! rebinding its own name to `127.0.0.1` (DNS rebinding), when the browser believes
//! it talks to the page's own site. Custody adds the credentials it holds
//! (`routes[].credentials`), so either would spend them as the user. Two checks,
//! one entry point ([`Guard::check`], a typed result), called by the pipeline
//! before routing takes effect and by the admin listener:
//!
//! 1. **Host** (TCP listeners, requests addressed to custody itself): every name the
//!    request carries — its URI authority (absolute form, HTTP/2 `:authority`) and
//!    its `Host` header — must be `localhost`, `127.0.0.1`, `[::1]` or the address
//!    the connection arrived at, with no port or the listener's port, or match
//!    `listen.allowed_hosts`. Two `Host` headers are refused. A forward-proxy
//!    request that names its target (an absolute-form request to another host,
//!    requests inside a `CONNECT` custody terminated) keeps its own rules: its
//!    authority is the target, not custody.
//! 2. **Origin** (TCP listeners and terminated `CONNECT`s): a request carrying
//!    `Origin`, or `Sec-Fetch-Site: cross-site` / `same-site`, comes from a browser
//!    and is refused unless its origin is on `listen.allowed_origins` (default
//!    empty; SDKs and agents send no `Origin`). `Origin: null` is never listed.
//!    custody's own origin (`http://localhost:<listener port>`, `127.0.0.1`,
//!    `[::1]`, the address the connection arrived at) is a same-origin request and
//!    passes without CORS headers, as the MCP transport's rebinding check expects.
//!
//! Refusals are [`Refusal`]s with reasons [`Reason::Host`] (421) and
//! [`Reason::Origin`] (403). A listed origin gets CORS from custody ([`Cors`]): its
//! preflight is answered by custody, its responses carry
//! `Access-Control-Allow-Origin` for it. Upstreams' own `Access-Control-*` headers
//! never pass: whom a browser may read custody's answers from is custody's decision.
//!
//! The Unix socket is not checked: no browser can connect to one.

use crate::config::{HostPattern, ListenConfig};
use crate::integrity::{Reason, Refusal};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use std::net::{IpAddr, SocketAddr};

/// `Sec-Fetch-Site` (Fetch Metadata).
const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");
/// What a listed origin may read of custody's answers (no credentials mode, so
/// `*` means every header).
const EXPOSE: HeaderValue = HeaderValue::from_static("*");
/// How long a browser may cache custody's preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: HeaderValue = HeaderValue::from_static("600");

/// Where a request arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// The Unix socket: not reachable by a browser, not checked.
    Unix,
    /// A TCP listener (proxy or admin); the address the connection arrived at.
    Tcp(SocketAddr),
    /// Inside a TLS connection custody terminated after a `CONNECT`: the host is
    /// the `CONNECT`'s target; only the origin is checked.
    Tunnel,
}

/// The checks, built once from `listen`.
#[derive(Debug, Default)]
pub(crate) struct Guard {
    hosts: Vec<HostPattern>,
    origins: Vec<String>,
}

/// What a request that passed gets: CORS for a listed origin, and the preflight
/// custody answers itself. The default: none (no browser origin).
#[derive(Clone, Debug, Default)]
pub(crate) struct Cors {
    /// The listed origin, as the browser sent it.
    origin: Option<HeaderValue>,
    /// A preflight (`OPTIONS` with `Access-Control-Request-Method`): the method
    /// and headers asked for.
    preflight: Option<(HeaderValue, Option<HeaderValue>)>,
}

impl Guard {
    pub(crate) fn new(listen: &ListenConfig) -> Self {
        Self {
            hosts: listen.allowed_hosts.clone(),
            origins: listen.allowed_origins.clone(),
        }
    }

    /// The one entry point: whether custody answers `req`, which arrived through
    /// `arrival`. `names_target`: a forward-proxy request whose authority names the
    /// host it is for (absolute form to another host), so the Host check does not
    /// apply to it.
    pub(crate) fn check<B>(
        &self,
        req: &Request<B>,
        arrival: Arrival,
        names_target: bool,
    ) -> Result<Cors, Refusal> {
        let own = match arrival {
            Arrival::Unix => return Ok(Cors::default()),
            Arrival::Tcp(local) if !names_target => {
                self.host(req, local)?;
                Some(local)
            }
            Arrival::Tcp(_) | Arrival::Tunnel => None,
        };
        let origin = self.origin(req.headers(), own)?;
        let preflight = match (&origin, req.method()) {
            (Some(_), &Method::OPTIONS) => req
                .headers()
                .get(header::ACCESS_CONTROL_REQUEST_METHOD)
                .map(|m| {
                    (
                        m.clone(),
                        req.headers()
                            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
                            .cloned(),
                    )
                }),
            _ => None,
        };
        Ok(Cors { origin, preflight })
    }

    /// Check 1: every name the request carries is one custody answers for.
    fn host<B>(&self, req: &Request<B>, local: SocketAddr) -> Result<(), Refusal> {
        let mut hosts = req.headers().get_all(header::HOST).iter();
        let host = hosts.next();
        if hosts.next().is_some() {
            return Err(Refusal::new(
                Reason::Host,
                "the request has more than one Host header",
            ));
        }
        let host = match host.map(HeaderValue::to_str) {
            Some(Ok(h)) => Some(h),
            Some(Err(_)) => return Err(refuse_host("(not text)")),
            None => None,
        };
        let authority = req.uri().authority().map(http::uri::Authority::as_str);
        for name in authority.into_iter().chain(host) {
            if !name.is_empty() && !self.answers(name, local) {
                return Err(refuse_host(name));
            }
        }
        Ok(())
    }

    /// Whether `name` (`host[:port]` as sent) is custody on `local`.
    fn answers(&self, name: &str, local: SocketAddr) -> bool {
        plainly_own(name, local) || self.answers_parsed(name, local)
    }

    /// [`Guard::answers`] by parsing the name: what every name takes but the
    /// usual ones ([`plainly_own`]).
    fn answers_parsed(&self, name: &str, local: SocketAddr) -> bool {
        if name.contains('@') {
            return false;
        }
        let Ok(authority) = name.parse::<http::uri::Authority>() else {
            return false;
        };
        // A port that is not a number ("localhost:x"), or an empty one.
        if authority.as_str().len() > authority.host().len() && authority.port_u16().is_none() {
            return false;
        }
        let raw = authority.host();
        let host = raw
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(raw)
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let port = authority.port_u16();
        let own = match host.parse::<IpAddr>() {
            Ok(ip) => {
                let ip = ip.to_canonical();
                ip == IpAddr::from([127, 0, 0, 1])
                    || ip == IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
                    || ip == local.ip().to_canonical()
            }
            Err(_) => host == "localhost",
        };
        (own && port.is_none_or(|p| p == local.port()))
            || self
                .hosts
                .iter()
                .any(|p| p.matches(&host, port.unwrap_or(80)))
    }

    /// Check 2: a browser's request comes from a listed origin, or from custody's
    /// own (`own`: the listener it arrived at, for requests addressed to custody).
    /// Returns the listed origin as sent (custody's own needs no CORS).
    fn origin(
        &self,
        headers: &HeaderMap,
        own: Option<SocketAddr>,
    ) -> Result<Option<HeaderValue>, Refusal> {
        let mut origins = headers.get_all(header::ORIGIN).iter();
        let origin = origins.next();
        if origins.next().is_some() {
            return Err(Refusal::new(
                Reason::Origin,
                "the request has more than one Origin header",
            ));
        }
        let cross_site = headers.get_all(SEC_FETCH_SITE).iter().any(|v| {
            v.as_bytes().eq_ignore_ascii_case(b"cross-site")
                || v.as_bytes().eq_ignore_ascii_case(b"same-site")
        });
        let Some(origin) = origin else {
            return if cross_site {
                Err(Refusal::new(
                    Reason::Origin,
                    "a browser sent this request from another site (Sec-Fetch-Site) without an Origin; custody answers browsers only from the origins listen.allowed_origins lists",
                ))
            } else {
                Ok(None)
            };
        };
        let serialised = origin.to_str().ok().and_then(crate::config::origin);
        let listed = serialised
            .as_ref()
            .is_some_and(|o| self.origins.contains(o));
        let custody = !cross_site
            && own
                .zip(serialised.as_deref())
                .is_some_and(|(local, o)| is_own_origin(o, local));
        if listed {
            Ok(Some(origin.clone()))
        } else if custody {
            Ok(None)
        } else {
            Err(Refusal::new(
                Reason::Origin,
                format!(
                    "a browser page at {} sent this request; custody answers browsers only from the origins listen.allowed_origins lists",
                    shown(&String::from_utf8_lossy(origin.as_bytes()))
                ),
            ))
        }
    }
}

/// Whether `name` is a loopback name written plainly: `127.0.0.1`, `[::1]` or
/// `localhost` (any case), alone or with the listener's port. These are the
/// names local clients send, and ones [`Guard::answers_parsed`] takes too; they
/// are recognised without parsing or allocating, and anything else goes to the
/// parse.
fn plainly_own(name: &str, local: SocketAddr) -> bool {
    const LOCALHOST: &[u8] = b"localhost";
    let rest = if let Some(rest) = name.strip_prefix("127.0.0.1") {
        rest
    } else if let Some(rest) = name.strip_prefix("[::1]") {
        rest
    } else if name
        .as_bytes()
        .get(..LOCALHOST.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(LOCALHOST))
    {
        // The first bytes are ASCII, so this is a character boundary.
        &name[LOCALHOST.len()..]
    } else {
        return false;
    };
    match rest.strip_prefix(':') {
        None => rest.is_empty(),
        Some(port) => {
            !port.starts_with('0')
                && port.bytes().all(|b| b.is_ascii_digit())
                && port.parse::<u16>() == Ok(local.port())
        }
    }
}

impl Cors {
    /// custody's answer to a preflight from a listed origin: 204, the origin, the
    /// method and headers it asked for, cached for ten minutes. `None` for any
    /// other request.
    pub(crate) fn preflight(&self) -> Option<Response<Full<Bytes>>> {
        let (method, headers) = self.preflight.as_ref()?;
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::NO_CONTENT;
        let h = response.headers_mut();
        self.apply(h);
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, method.clone());
        if let Some(asked) = headers {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
        }
        h.insert(header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE);
        h.append(
            header::VARY,
            HeaderValue::from_static(
                "Access-Control-Request-Method, Access-Control-Request-Headers",
            ),
        );
        Some(response)
    }

    /// Sets the response's CORS headers: none from the upstream, and for a listed
    /// origin `Access-Control-Allow-Origin` with it.
    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
        let upstream: Vec<HeaderName> = headers
            .keys()
            .filter(|k| k.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for name in upstream {
            headers.remove(name);
        }
        if let Some(origin) = &self.origin {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE);
            headers.append(header::VARY, HeaderValue::from_static("Origin"));
        }
    }
}

/// Whether `origin` (serialised) is custody's own on `local`: `http`, a loopback
/// name or the address the connection arrived at, the listener's port. A page
/// there was served through custody itself, so its requests are same-origin.
fn is_own_origin(origin: &str, local: SocketAddr) -> bool {
    let Some(authority) = origin.strip_prefix("http://") else {
        return false;
    };
    let Ok(authority) = authority.parse::<http::uri::Authority>() else {
        return false;
    };
    if authority.port_u16().unwrap_or(80) != local.port() {
        return false;
    }
    let raw = authority.host();
    let host = raw
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(raw);
    match host.parse::<IpAddr>() {
        Ok(ip) => {
            let ip = ip.to_canonical();
            ip.is_loopback() && (ip == IpAddr::from([127, 0, 0, 1]) || ip.is_ipv6())
                || ip == local.ip().to_canonical()
        }
        Err(_) => host == "localhost",
    }
}

fn refuse_host(name: &str) -> Refusal {
    Refusal::new(
        Reason::Host,
        format!(
            "the request names host {}; custody's TCP listeners answer only for localhost, 127.0.0.1, [::1], the address the connection arrived at and the names listen.allowed_hosts lists (a web page whose name was rebound to this address sends such requests)",
            shown(name)
        ),
    )
}

/// A client-sent value in a message: quoted, at most 100 characters.
fn shown(value: &str) -> String {
    let cut: String = value.chars().take(100).collect();
    format!("{cut:?}")
}

#[cfg(test)]
mod tests;
