//! Routes as policies write them: `"[METHOD ]/path"`, where `*` matches
//! one segment and a trailing `/**` any rest. One syntax for the auth
//! check's rules and the gateway's routes; a route of literal segments
//! ending in `/**` is also where a gateway mounts a function ([`MountPath`]).

use http::Method;

/// A parsed `route`: method (none: any) and path pattern segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern {
    method: Option<Method>,
    segments: Vec<String>,
    rest: bool,
}

impl RoutePattern {
    /// Parses `"[METHOD ]/path"`.
    pub fn parse(route: &str) -> Result<RoutePattern, &'static str> {
        let (method, path) = match route.trim().split_once(' ') {
            Some((m, p)) => (Some(m), p.trim()),
            None => (None, route.trim()),
        };
        let method = match method {
            None | Some("*") => None,
            Some(m) => Some(
                Method::from_bytes(m.as_bytes())
                    .ok()
                    .filter(|m| m.as_str().bytes().all(|b| b.is_ascii_uppercase()))
                    .ok_or("must start with an upper-case HTTP method or *")?,
            ),
        };
        if !path.starts_with('/') {
            return Err("must have a path starting with /");
        }
        let mut segments: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let rest = segments.last().is_some_and(|s| s == "**");
        if rest {
            segments.pop();
        }
        if segments.iter().any(|s| s.contains("**")) {
            return Err("may use ** only as the last segment");
        }
        Ok(RoutePattern {
            method,
            segments,
            rest,
        })
    }

    /// Whether a request with `method` and `path` matches.
    pub fn matches(&self, method: &Method, path: &str) -> bool {
        if self.method.as_ref().is_some_and(|m| m != method) {
            return false;
        }
        let mut parts = path.split('/').filter(|s| !s.is_empty());
        for pattern in &self.segments {
            match parts.next() {
                Some(part) if pattern == "*" || pattern == part => {}
                _ => return false,
            }
        }
        self.rest || parts.next().is_none()
    }
}

impl RoutePattern {
    /// The method the route is limited to, if any.
    pub fn method(&self) -> Option<&Method> {
        self.method.as_ref()
    }

    /// The path as a metrics label: the pattern itself (`/api/*/items`,
    /// `/spatial/**`), never a raw path.
    pub fn template(&self) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            out.push('/');
            out.push_str(segment);
        }
        if self.rest {
            out.push_str("/**");
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }

    /// Where a function mounted on this route lives: its literal segments,
    /// when the route is literal segments followed by `/**`.
    pub fn mount_path(&self) -> Option<MountPath> {
        let literal = self.segments.iter().all(|s| s != "*");
        (self.rest && literal).then(|| MountPath(self.segments.clone()))
    }
}

/// The path prefix a mounted function lives under (`/spatial`), stripped
/// from the path it sees: `/spatial/assets/radius` reaches it as
/// `/assets/radius`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPath(Vec<String>);

impl MountPath {
    /// The rest of `path` under this prefix (`/` when nothing follows), or
    /// `None` when `path` is not under it.
    pub fn strip<'p>(&self, path: &'p str) -> Option<&'p str> {
        let mut rest = path;
        for segment in &self.0 {
            rest = rest.strip_prefix('/')?.strip_prefix(segment.as_str())?;
            if !(rest.is_empty() || rest.starts_with('/')) {
                return None;
            }
        }
        Some(if rest.is_empty() { "/" } else { rest })
    }

    /// The prefix as written (`/spatial`; `` for the root).
    pub fn prefix(&self) -> String {
        self.0.iter().map(|s| format!("/{s}")).collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_segments_and_rests() {
        let p = RoutePattern::parse("GET /api/*/items").unwrap();
        assert!(p.matches(&Method::GET, "/api/v1/items"));
        assert!(!p.matches(&Method::POST, "/api/v1/items"));
        assert!(!p.matches(&Method::GET, "/api/v1/items/2"));
        let any = RoutePattern::parse("/spatial/**").unwrap();
        assert!(any.matches(&Method::PUT, "/spatial"));
        assert!(any.matches(&Method::PUT, "/spatial/assets/radius"));
        assert!(!any.matches(&Method::PUT, "/spatially"));
        assert_eq!(any.template(), "/spatial/**");
        assert!(RoutePattern::parse("get /x").is_err());
        assert!(RoutePattern::parse("/a/**/b").is_err());
    }

    #[test]
    fn mount_paths_strip_whole_segments() {
        let mount = RoutePattern::parse("/spatial/v1/**")
            .unwrap()
            .mount_path()
            .unwrap();
        assert_eq!(mount.strip("/spatial/v1/assets"), Some("/assets"));
        assert_eq!(mount.strip("/spatial/v1"), Some("/"));
        assert_eq!(mount.strip("/spatial/v10"), None);
        assert_eq!(mount.strip("/other"), None);
        assert_eq!(mount.prefix(), "/spatial/v1");
        assert!(
            RoutePattern::parse("/a/*/**")
                .unwrap()
                .mount_path()
                .is_none()
        );
        assert!(RoutePattern::parse("/a/b").unwrap().mount_path().is_none());
        let root = RoutePattern::parse("/**").unwrap().mount_path().unwrap();
        assert_eq!(root.strip("/x/y"), Some("/x/y"));
    }
}
