//! Longest-prefix routing from a request path to a configured route.

use crate::config::{RouteConfig, Upstream};
use custody_core::RouteKind;

/// A route ready for matching.
#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) name: String,
    pub(crate) prefix: String,
    pub(crate) upstream: Upstream,
    pub(crate) kind: RouteKind,
}

/// Routes sorted by descending prefix length, so the first match is the longest.
#[derive(Debug)]
pub(crate) struct Router {
    routes: Vec<Route>,
    prefixes: String,
}

impl Router {
    pub(crate) fn new(config: &[RouteConfig]) -> Self {
        let mut routes: Vec<Route> = config
            .iter()
            .map(|r| Route {
                name: r.name.clone(),
                prefix: r.prefix.clone(),
                upstream: r.upstream.clone(),
                kind: r.kind,
            })
            .collect();
        let prefixes = routes
            .iter()
            .map(|r| r.prefix.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        Self { routes, prefixes }
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
            })
            .collect();
        Router::new(&routes)
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
    fn root_prefix_catches_everything_else() {
        let r = router(&["/", "/x"]);
        assert_eq!(r.find("/x/1").map(|(r, _)| r.name.as_str()), Some("/x"));
        assert_eq!(
            r.find("/y").map(|(r, rest)| (r.name.as_str(), rest)),
            Some(("/", "/y"))
        );
    }
}
