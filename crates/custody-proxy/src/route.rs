//! The route stage ([`RouteStage::admit`], with its [`Admission`]): whom custody
//! answers ([`crate::loopback`]), the one normalised path
//! ([`crate::integrity::path`]), and the route: longest prefix from a request path
//! (reverse-proxy mode), or the host a route claims in `routes[].hosts`
//! (forward-proxy mode).

use crate::config::{IdentityMode, RouteConfig, TokenFrom, Upstream};
use crate::credentials::Credential;
use crate::entrance::Entrance;
use crate::error::ProxyError;
use crate::integrity;
use crate::loopback::{Arrival, Cors, Guard};
use bytes::Bytes;
use custody_core::{Action, ActionKind, RouteKind};
use http::{Request, Response, Version};
use http_body_util::Full;
use std::collections::HashMap;
use std::sync::Arc;

/// A route ready for matching.
#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) name: String,
    pub(crate) prefix: String,
    pub(crate) upstream: Upstream,
    pub(crate) kind: RouteKind,
    pub(crate) identity: IdentityMode,
    pub(crate) token_from: TokenFrom,
    pub(crate) credential: Option<Arc<Credential>>,
    pub(crate) tools: Arc<custody_inspect::ToolMap>,
    pub(crate) force_stream_usage: bool,
}

/// Routes sorted by descending prefix length, so the first match is the longest.
#[derive(Debug)]
pub(crate) struct Router {
    routes: Vec<Route>,
    prefixes: String,
    /// Claimed host (lowercase) → index in `routes`.
    hosts: HashMap<String, usize>,
}

impl Router {
    /// Routes from config; `credentials` holds the loaded credential of each route
    /// that has one, by route name.
    pub(crate) fn new(
        config: &[RouteConfig],
        credentials: &HashMap<String, Arc<Credential>>,
    ) -> Self {
        let mut routes: Vec<Route> = config
            .iter()
            .map(|r| Route {
                name: r.name.clone(),
                prefix: r.prefix.clone(),
                upstream: r.upstream.clone(),
                kind: r.kind,
                identity: r.identity,
                token_from: r.token_from,
                credential: credentials.get(&r.name).cloned(),
                tools: r.tools.clone(),
                force_stream_usage: r.force_stream_usage,
            })
            .collect();
        let prefixes = routes
            .iter()
            .map(|r| r.prefix.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        let mut hosts = HashMap::new();
        for (i, r) in routes.iter().enumerate() {
            if let Some(c) = config.iter().find(|c| c.name == r.name) {
                for h in &c.hosts {
                    hosts.entry(h.clone()).or_insert(i);
                }
            }
        }
        Self {
            routes,
            prefixes,
            hosts,
        }
    }

    /// The route claiming `host` (a host name or IP, without port; any case, a
    /// trailing dot ignored).
    pub(crate) fn find_host(&self, host: &str) -> Option<&Route> {
        let host = host.strip_suffix('.').unwrap_or(host);
        let i = match self.hosts.get(host) {
            Some(i) => *i,
            None if host.bytes().any(|b| b.is_ascii_uppercase()) => {
                *self.hosts.get(&host.to_ascii_lowercase())?
            }
            None => return None,
        };
        self.routes.get(i)
    }

    /// The route for `path` and the rest of the path after its prefix (`""` or
    /// starting with `/`). A prefix matches whole segments only: `/openai` matches
    /// `/openai` and `/openai/v1`, not `/openaix`.
    pub(crate) fn find<'p>(&self, path: &'p str) -> Option<(&Route, &'p str)> {
        self.routes.iter().find_map(|r| {
            if r.prefix == "/" {
                return Some((r, path));
            }
            let rest = path.strip_prefix(r.prefix.as_str())?;
            (rest.is_empty() || rest.starts_with('/')).then_some((r, rest))
        })
    }

    /// The configured prefixes, for error messages.
    pub(crate) fn prefixes(&self) -> &str {
        &self.prefixes
    }
}

/// The route stage: the routes, and whom custody answers.
#[derive(Debug)]
pub(crate) struct RouteStage {
    router: Router,
    /// Forward-proxy mode is on: absolute-form requests are routed by host.
    forward_proxy: bool,
    /// Whom the TCP listeners answer (`listen.allowed_hosts`, `allowed_origins`).
    loopback: Guard,
}

/// What the route stage made of a request.
#[derive(Debug)]
pub(crate) struct Admission<'r> {
    /// The row's action: kind (the route's), method, normalised path, route name,
    /// and the raw path when it differs.
    pub(crate) action: Action,
    /// Forward-proxy mode: the `host:port` asked for (the row's
    /// `intercepted_host`).
    pub(crate) intercepted_host: Option<String>,
    /// The CORS headers of the answer (none for a refused request).
    pub(crate) cors: Cors,
    /// What happens next.
    pub(crate) next: Next<'r>,
}

/// What happens to an admitted request.
#[derive(Debug)]
pub(crate) enum Next<'r> {
    /// On through the pipeline.
    Forward(Routed<'r>),
    /// A listed origin's preflight: custody answers it itself (204).
    Preflight(Response<Full<Bytes>>),
    /// Refused: a host or origin custody does not answer (421, 403), a path it
    /// cannot normalise (400), no route (404, or 403 for a host no route claims).
    Refuse(ProxyError),
}

/// A request's route.
#[derive(Debug)]
pub(crate) struct Routed<'r> {
    pub(crate) route: &'r Route,
    /// The path forwarded after the upstream's base path: the rest after the
    /// prefix, or the whole path when the route was chosen by host.
    pub(crate) rest: String,
}

/// The route (or why none), and the `host:port` asked for in forward-proxy mode.
struct Selection<'r> {
    route: Result<Routed<'r>, ProxyError>,
    intercepted_host: Option<String>,
}

impl RouteStage {
    pub(crate) fn new(router: Router, forward_proxy: bool, loopback: Guard) -> Self {
        Self {
            router,
            forward_proxy,
            loopback,
        }
    }

    /// The routes.
    pub(crate) fn router(&self) -> &Router {
        &self.router
    }

    /// The stage's one entry point: whom custody answers (a request to a TCP
    /// listener naming another host is refused, a browser's from an unlisted
    /// origin too, a listed origin's preflight is answered), then the one
    /// normalised path (integrity::path) used for routing, templates, policy, the
    /// row and the upstream (the raw path only when it cannot be normalised),
    /// then the route. Checks come first: a refusal of the host or origin wins
    /// over one of the path, which wins over a missing route.
    pub(crate) fn admit<B>(
        &self,
        req: &Request<B>,
        entrance: &Entrance,
        arrival: Arrival,
    ) -> Admission<'_> {
        let raw_path = req.uri().path();
        let normalised = integrity::path::normalise(raw_path);
        let path = normalised.as_ref().map_or(raw_path, |n| n.path.as_str());
        let Selection {
            route,
            intercepted_host,
        } = self.select(req, entrance, path);
        let mut action = Action::new(
            route
                .as_ref()
                .map_or(ActionKind::Http, |r| r.route.kind.action_kind()),
            req.method().as_str(),
            path,
        );
        action.route = route.as_ref().ok().map(|r| r.route.name.clone());
        action.raw_path = (path != raw_path).then(|| raw_path.to_owned());
        let answered = self
            .loopback
            .check(req, arrival, intercepted_host.is_some());
        let refused = match &answered {
            Err(refusal) => Some(refusal.clone().into()),
            // Host-routed requests forward the whole path: no prefix to name.
            Ok(_) => integrity::path_refusal(
                &normalised,
                route
                    .as_ref()
                    .ok()
                    .filter(|_| intercepted_host.is_none())
                    .map(|r| r.route.prefix.as_str()),
                raw_path,
            ),
        };
        let cors = answered.unwrap_or_default();
        let next = match (route, refused) {
            (_, Some(e)) | (Err(e), None) => Next::Refuse(e),
            (Ok(routed), None) => match cors.preflight() {
                Some(answer) => Next::Preflight(answer),
                None => Next::Forward(routed),
            },
        };
        Admission {
            action,
            intercepted_host,
            cors,
            next,
        }
    }

    /// The route and the path forwarded after the upstream's base path, and the
    /// `host:port` asked for in forward-proxy mode.
    fn select<B>(&self, req: &Request<B>, entrance: &Entrance, path: &str) -> Selection<'_> {
        let by_path = || {
            self.router
                .find(path)
                .map(|(route, rest)| Routed {
                    route,
                    rest: rest.to_owned(),
                })
                .ok_or_else(|| ProxyError::RouteNotFound {
                    path: path.to_owned(),
                    prefixes: self.router.prefixes().to_owned(),
                })
        };
        let whole = |route| Routed {
            route,
            rest: path.to_owned(),
        };
        match entrance {
            Entrance::Intercepted(c) => Selection {
                route: self.router.find_host(&c.host).map(whole).ok_or_else(|| {
                    ProxyError::HostNotIntercepted {
                        host: c.authority.clone(),
                    }
                }),
                intercepted_host: Some(c.authority.clone()),
            },
            Entrance::Direct => {
                // Absolute-form (`GET http://host/path`): a forward-proxy request.
                // HTTP/2 requests always carry an authority, so only HTTP/1 counts.
                if self.forward_proxy
                    && req.version() <= Version::HTTP_11
                    && let Some(authority) = req.uri().authority()
                {
                    let default_port = if req.uri().scheme() == Some(&http::uri::Scheme::HTTPS) {
                        443
                    } else {
                        80
                    };
                    let (host, host_port) =
                        crate::entrance::split_authority(authority, default_port);
                    if let Some(route) = self.router.find_host(&host) {
                        return Selection {
                            route: Ok(whole(route)),
                            intercepted_host: Some(host_port),
                        };
                    }
                    // Addressed to custody itself (a client whose proxy setting also
                    // covers loopback): reverse-proxy routing by path.
                    if !is_loopback(&host) {
                        return Selection {
                            route: Err(ProxyError::HostNotIntercepted {
                                host: host_port.clone(),
                            }),
                            intercepted_host: Some(host_port),
                        };
                    }
                }
                Selection {
                    route: by_path(),
                    intercepted_host: None,
                }
            }
        }
    }
}

/// `localhost` or a loopback address: custody's own listeners.
fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate_parse_upstream as up;

    fn router(prefixes: &[&str]) -> Router {
        let routes: Vec<RouteConfig> = prefixes
            .iter()
            .map(|p| RouteConfig {
                name: p.to_string(),
                prefix: p.to_string(),
                upstream: up("http://u").expect("upstream"),
                kind: RouteKind::Http,
                identity: IdentityMode::Off,
                token_from: TokenFrom::Header,
                credentials: None,
                tools: Default::default(),
                force_stream_usage: false,
                hosts: vec![format!("{}.example", p.trim_matches('/').replace('/', "-"))],
            })
            .collect();
        Router::new(&routes, &HashMap::new())
    }

    #[test]
    fn longest_prefix_on_segment_boundaries() {
        let r = router(&["/a", "/a/b", "/openai"]);
        let hit = |p: &str| {
            r.find(p)
                .map(|(route, rest)| (route.name.clone(), rest.to_owned()))
        };
        assert_eq!(hit("/a/b/c"), Some(("/a/b".into(), "/c".into())));
        assert_eq!(hit("/a/bc"), Some(("/a".into(), "/bc".into())));
        assert_eq!(hit("/a"), Some(("/a".into(), "".into())));
        assert_eq!(hit("/openaix"), None);
        assert_eq!(hit("/"), None);
    }

    #[test]
    fn hosts_find_their_route_in_any_case() {
        let r = router(&["/a", "/a/b"]);
        let name = |h: &str| r.find_host(h).map(|r| r.name.clone());
        assert_eq!(name("a-b.example"), Some("/a/b".into()));
        assert_eq!(name("A.Example."), Some("/a".into()));
        assert_eq!(name("b.example"), None);
    }

    #[test]
    fn root_prefix_catches_everything_else() {
        let r = router(&["/", "/x"]);
        assert_eq!(r.find("/x/1").map(|(r, _)| r.name.as_str()), Some("/x"));
        assert_eq!(
            r.find("/y").map(|(r, rest)| (r.name.as_str(), rest)),
            Some(("/", "/y"))
        );
    }
}
