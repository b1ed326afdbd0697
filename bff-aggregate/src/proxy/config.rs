//! The static table of upstreams and each one's limits.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use ::http::Uri;

use super::path::normalize_path;

/// The longest an upstream name may be.
pub const MAX_NAME_LEN: usize = 64;

/// How long an upstream may take and how much it may be sent or send back.
///
/// ```
/// use std::time::Duration;
/// use bff_aggregate::proxy::Limits;
///
/// let limits = Limits::default()
///     .timeout(Duration::from_secs(2))
///     .request_body(64 * 1024)
///     .response_body(Some(4 * 1024 * 1024));
/// assert_eq!(limits.get_timeout(), Duration::from_secs(2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    timeout: Duration,
    request_body: usize,
    response_body: Option<usize>,
}

impl Default for Limits {
    /// 10 s to the response's head, 1 MiB of request body, no response limit.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            request_body: 1024 * 1024,
            response_body: None,
        }
    }
}

impl Limits {
    /// The longest the upstream may take to connect and answer with a
    /// response's head; past it the client gets a 504.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest request body sent on, in bytes; a larger one is a 413 and
    /// never reaches the upstream.
    pub fn request_body(mut self, bytes: usize) -> Self {
        self.request_body = bytes;
        self
    }

    /// The largest response body passed back, in bytes, or `None` for no
    /// limit. A response that declares a larger `Content-Length` is a 502; one
    /// that grows past the limit while streaming is cut off.
    pub fn response_body(mut self, bytes: Option<usize>) -> Self {
        self.response_body = bytes;
        self
    }

    /// The timeout; see [`timeout`](Self::timeout).
    pub fn get_timeout(&self) -> Duration {
        self.timeout
    }

    /// The request body limit; see [`request_body`](Self::request_body).
    pub fn get_request_body(&self) -> usize {
        self.request_body
    }

    /// The response body limit; see [`response_body`](Self::response_body).
    pub fn get_response_body(&self) -> Option<usize> {
        self.response_body
    }
}

/// One upstream: its name, the base URL its paths are appended to, and its
/// limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    name: String,
    base: Uri,
    limits: Limits,
}

impl Upstream {
    /// The name, as in `/bff/api/{name}/...` and the token's `aud`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The base URL (`scheme://host:port/base`).
    pub fn base(&self) -> &Uri {
        &self.base
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The URL for a checked `path` and the client's `query`.
    pub(crate) fn target(&self, path: &str, query: Option<&str>) -> Result<Uri, ::http::Error> {
        let base_path = self.base.path().trim_end_matches('/');
        let mut path_and_query = format!("{base_path}/{path}");
        if let Some(query) = query {
            path_and_query.push('?');
            path_and_query.push_str(query);
        }
        let mut parts = self.base.clone().into_parts();
        parts.path_and_query = Some(path_and_query.parse()?);
        Ok(Uri::from_parts(parts)?)
    }
}

/// Why an upstream table could not be read. The messages name the entry at
/// fault but never echo a URL, which could hold a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyConfigError {
    /// An entry is not `name=url`.
    #[error("upstream entry {0} is not `name=http(s)://host:port/base`")]
    Entry(usize),
    /// A name is not 1 to 64 of `a-z`, `0-9`, `_` and `-`.
    #[error("upstream name `{0}` is not 1 to 64 of a-z, 0-9, `_` and `-`")]
    Name(String),
    /// A name appears twice.
    #[error("upstream `{0}` is listed twice")]
    Duplicate(String),
    /// The URL is not an absolute `http` or `https` URL with a host.
    #[error("the URL of upstream `{0}` is not an absolute http(s) URL with a host")]
    Url(String),
    /// The URL has user information (`user:password@`), which would be sent
    /// to nobody and belongs in a secret store anyway.
    #[error("the URL of upstream `{0}` has user information")]
    UserInfo(String),
    /// The URL has a query or a fragment; the client's query is the only one
    /// sent.
    #[error("the URL of upstream `{0}` has a query or a fragment")]
    QueryOrFragment(String),
    /// The URL's path has dot segments, encoded separators or the like.
    #[error("the base path of upstream `{0}` is not a plain path")]
    BasePath(String),
    /// Limits were set for a name that is not in the table.
    #[error("no upstream named `{0}`")]
    Unknown(String),
}

/// The upstreams a proxy may reach: nothing else is reachable.
///
/// Read from the `BFF_PROXY_UPSTREAMS` form, `name=http(s)://host:port/base`
/// entries separated by commas:
///
/// ```
/// use std::time::Duration;
/// use bff_aggregate::proxy::{Limits, ProxyUpstreams};
///
/// let upstreams = ProxyUpstreams::parse(
///     "catalog=http://127.0.0.1:8081/api, billing=https://billing.internal/v2",
/// )?
/// .with_limits("billing", Limits::default().timeout(Duration::from_secs(3)))?;
/// assert_eq!(upstreams.get("catalog").unwrap().base().path(), "/api");
/// assert!(upstreams.get("admin").is_none());
/// # Ok::<(), bff_aggregate::proxy::ProxyConfigError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyUpstreams {
    upstreams: BTreeMap<String, Upstream>,
}

impl ProxyUpstreams {
    /// Reads a comma-separated list of `name=url` entries, each with
    /// [`Limits::default`]. Blanks around entries are ignored; an empty
    /// string is an empty table. Names are 1 to 64 of `a-z`, `0-9`, `_`, `-`;
    /// URLs are absolute `http` or `https` URLs with a host, without user
    /// information, query or fragment, and with a plain base path.
    pub fn parse(spec: &str) -> Result<Self, ProxyConfigError> {
        let mut upstreams = BTreeMap::new();
        for (index, entry) in spec.split(',').map(str::trim).enumerate() {
            if entry.is_empty() {
                if spec.trim().is_empty() {
                    continue;
                }
                return Err(ProxyConfigError::Entry(index + 1));
            }
            let (name, url) = entry
                .split_once('=')
                .ok_or(ProxyConfigError::Entry(index + 1))?;
            let (name, url) = (name.trim(), url.trim());
            if !valid_name(name) {
                return Err(ProxyConfigError::Name(name.to_owned()));
            }
            let base = parse_base(name, url)?;
            let upstream = Upstream {
                name: name.to_owned(),
                base,
                limits: Limits::default(),
            };
            if upstreams.insert(name.to_owned(), upstream).is_some() {
                return Err(ProxyConfigError::Duplicate(name.to_owned()));
            }
        }
        Ok(Self { upstreams })
    }

    /// Sets the limits of the upstream `name`.
    pub fn with_limits(mut self, name: &str, limits: Limits) -> Result<Self, ProxyConfigError> {
        let upstream = self
            .upstreams
            .get_mut(name)
            .ok_or_else(|| ProxyConfigError::Unknown(name.to_owned()))?;
        upstream.limits = limits;
        Ok(self)
    }

    /// Sets the same limits on every upstream (before any
    /// [`with_limits`](Self::with_limits) for one of them).
    pub fn with_default_limits(mut self, limits: Limits) -> Self {
        for upstream in self.upstreams.values_mut() {
            upstream.limits = limits;
        }
        self
    }

    /// The upstream named `name`, if it is in the table.
    pub fn get(&self, name: &str) -> Option<&Upstream> {
        self.upstreams.get(name)
    }

    /// The upstreams, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Upstream> {
        self.upstreams.values()
    }

    /// How many upstreams there are.
    pub fn len(&self) -> usize {
        self.upstreams.len()
    }

    /// Whether there are none (the proxy then answers 404 to everything).
    pub fn is_empty(&self) -> bool {
        self.upstreams.is_empty()
    }
}

impl fmt::Display for ProxyUpstreams {
    /// The table in its `BFF_PROXY_UPSTREAMS` form, for the startup log (the
    /// URLs hold no user information, so nothing secret).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, upstream) in self.upstreams.values().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}={}", upstream.name, upstream.base)?;
        }
        Ok(())
    }
}

fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn parse_base(name: &str, url: &str) -> Result<Uri, ProxyConfigError> {
    if url.contains(['?', '#']) {
        return Err(ProxyConfigError::QueryOrFragment(name.to_owned()));
    }
    let uri: Uri = url
        .parse()
        .map_err(|_| ProxyConfigError::Url(name.to_owned()))?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let authority = uri
        .authority()
        .filter(|a| scheme_ok && !a.host().is_empty())
        .ok_or_else(|| ProxyConfigError::Url(name.to_owned()))?;
    if authority.as_str().contains('@') {
        return Err(ProxyConfigError::UserInfo(name.to_owned()));
    }
    // The base's own path gets the same check as a client's; `/` alone is
    // the root.
    let path = uri.path().strip_prefix('/').unwrap_or(uri.path());
    if normalize_path(path).is_err() {
        return Err(ProxyConfigError::BasePath(name.to_owned()));
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_is_read_with_its_bases() {
        let upstreams =
            ProxyUpstreams::parse(" catalog=http://127.0.0.1:8081/api/ ,billing_2=https://b.test")
                .expect("valid");
        assert_eq!(upstreams.len(), 2);
        let catalog = upstreams.get("catalog").expect("catalog");
        assert_eq!(
            catalog.target("items/1", Some("q=a&b=c")).expect("uri"),
            "http://127.0.0.1:8081/api/items/1?q=a&b=c"
        );
        let billing = upstreams.get("billing_2").expect("billing");
        assert_eq!(billing.target("", None).expect("uri"), "https://b.test/");
        assert_eq!(
            upstreams.to_string(),
            "billing_2=https://b.test/,catalog=http://127.0.0.1:8081/api/"
        );
        assert!(ProxyUpstreams::parse("").expect("empty").is_empty());
        assert!(ProxyUpstreams::parse("  ").expect("blank").is_empty());
    }

    #[test]
    fn bad_tables_are_refused() {
        use ProxyConfigError as E;
        let cases = [
            ("catalog", E::Entry(1)),
            ("a=http://a.test,,b=http://b.test", E::Entry(2)),
            ("Catalog=http://a.test", E::Name("Catalog".into())),
            ("=http://a.test", E::Name(String::new())),
            ("a.b=http://a.test", E::Name("a.b".into())),
            ("a=http://a.test,a=http://b.test", E::Duplicate("a".into())),
            ("a=ftp://a.test/", E::Url("a".into())),
            ("a=/relative", E::Url("a".into())),
            ("a=a.test:80", E::Url("a".into())),
            ("a=http://user:pw@a.test/", E::UserInfo("a".into())),
            ("a=http://a.test/?x=1", E::QueryOrFragment("a".into())),
            ("a=http://a.test/#x", E::QueryOrFragment("a".into())),
            ("a=http://a.test/v1/../admin", E::BasePath("a".into())),
            ("a=http://a.test//x", E::BasePath("a".into())),
            ("a=http://a.test/a%2fb", E::BasePath("a".into())),
        ];
        for (spec, error) in cases {
            assert_eq!(ProxyUpstreams::parse(spec), Err(error), "{spec}");
        }
        let long = format!("{}=http://a.test", "a".repeat(MAX_NAME_LEN + 1));
        assert!(matches!(
            ProxyUpstreams::parse(&long),
            Err(ProxyConfigError::Name(_))
        ));
        let fits = format!("{}=http://a.test", "a".repeat(MAX_NAME_LEN));
        assert!(ProxyUpstreams::parse(&fits).is_ok());
    }

    #[test]
    fn limits_are_set_per_upstream() {
        let upstreams = ProxyUpstreams::parse("a=http://a.test,b=http://b.test")
            .expect("valid")
            .with_default_limits(Limits::default().request_body(10))
            .with_limits("b", Limits::default().timeout(Duration::from_millis(5)))
            .expect("known");
        let a = upstreams.get("a").expect("a").limits();
        let b = upstreams.get("b").expect("b").limits();
        assert_eq!(a.get_request_body(), 10);
        assert_eq!(b.get_timeout(), Duration::from_millis(5));
        assert_eq!(
            upstreams.with_limits("c", Limits::default()),
            Err(ProxyConfigError::Unknown("c".into()))
        );
    }
}
