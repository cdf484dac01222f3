//! Routing: longest prefix from a request path (reverse-proxy mode), or the host a
//! route claims in `routes[].hosts` (forward-proxy mode).

use crate::config::{IdentityMode, RouteConfig, TokenFrom, Upstream};
use crate::credentials::Credential;
use custody_core::RouteKind;
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
