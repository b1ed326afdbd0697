//! The frontend URLs a social-login flow may return to.
//!
//! A `redirect_uri` is allowed when it equals an entry of
//! `BFF_OAUTH_REDIRECT_URIS`, or when the entry ends in `/` and the candidate
//! has the same scheme, host and port and a path below the entry's. Before any
//! comparison the candidate's raw text is refused if it could be read two ways:
//! backslashes, encoded slashes or backslashes, whitespace or control
//! characters, a fragment, userinfo, or anything but an absolute `http(s)` URL.
//! What passes is parsed (WHATWG rules: dot segments resolved, the host
//! lower-cased) and compared parsed, so the comparison sees what a browser will.

use url::Url;

/// The allow-list, parsed once at start.
#[derive(Debug, Clone, Default)]
pub struct RedirectAllowList {
    entries: Vec<Url>,
}

impl RedirectAllowList {
    /// Parses `entries`; in prod (`allow_plain_http` false) an `http://` entry
    /// must point at a loopback host.
    pub fn parse(entries: &[String], allow_plain_http: bool) -> Result<Self, String> {
        let mut parsed = Vec::with_capacity(entries.len());
        for raw in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            let url = strict_parse(raw)
                .ok_or_else(|| format!("BFF_OAUTH_REDIRECT_URIS: {raw:?} is not an absolute http(s) URL without userinfo, fragment or ambiguous characters"))?;
            if url.scheme() == "http" && !allow_plain_http && !is_loopback(&url) {
                return Err(format!(
                    "BFF_OAUTH_REDIRECT_URIS: {raw:?} is plain http to a host other than loopback; the prod profile needs https"
                ));
            }
            parsed.push(url);
        }
        Ok(Self { entries: parsed })
    }

    /// Whether the list has no entries (then every flow is refused).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `candidate`, parsed, if it is allowed.
    pub fn check(&self, candidate: &str) -> Option<Url> {
        let url = strict_parse(candidate)?;
        self.entries
            .iter()
            .any(|entry| allows(entry, &url))
            .then_some(url)
    }
}

fn allows(entry: &Url, url: &Url) -> bool {
    if entry.as_str() == url.as_str() {
        return true;
    }
    entry.path().ends_with('/')
        && entry.query().is_none()
        && entry.scheme() == url.scheme()
        && entry.host_str() == url.host_str()
        && entry.port_or_known_default() == url.port_or_known_default()
        && url.path().starts_with(entry.path())
}

/// The URL in `raw` when nothing about it is ambiguous.
fn strict_parse(raw: &str) -> Option<Url> {
    let lower = raw.to_ascii_lowercase();
    let ambiguous = raw
        .chars()
        .any(|c| c == '\\' || c == '#' || c.is_whitespace() || c.is_control())
        || ["%2f", "%5c", "%00", "%23"]
            .iter()
            .any(|encoded| lower.contains(encoded));
    // The scheme must be spelt out with its `//`: `https:evil.com` is parsed
    // by browsers as `https://evil.com`.
    let spelt_out = lower.starts_with("https://") || lower.starts_with("http://");
    if ambiguous || !spelt_out {
        return None;
    }
    let url = Url::parse(raw).ok()?;
    let plain = matches!(url.scheme(), "http" | "https")
        && url.username().is_empty()
        && url.password().is_none()
        && url.fragment().is_none()
        && url.host_str().is_some_and(|host| !host.is_empty());
    plain.then_some(url)
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> RedirectAllowList {
        RedirectAllowList::parse(
            &[
                "https://app.example.com/auth/done".to_owned(),
                "https://app.example.com/spa/".to_owned(),
                "http://127.0.0.1:3000/".to_owned(),
            ],
            false,
        )
        .expect("valid")
    }

    #[test]
    fn exact_entries_and_paths_below_a_slash_entry_pass() {
        let list = list();
        for ok in [
            "https://app.example.com/auth/done",
            "https://APP.example.com/auth/done",
            "https://app.example.com:443/auth/done",
            "https://app.example.com/spa/",
            "https://app.example.com/spa/callback?x=1",
            "http://127.0.0.1:3000/anything",
        ] {
            assert!(list.check(ok).is_some(), "{ok}");
        }
    }

    #[test]
    fn tricks_are_refused() {
        let list = list();
        for bad in [
            "https://app.example.com.evil.com/auth/done",
            "https://app.example.com@evil.com/auth/done",
            "https://user:pw@app.example.com/auth/done",
            "//evil.com",
            "/\\evil.com",
            "https://app.example.com/spa/..\\..\\evil",
            "%2F%2Fevil.com",
            "https://app.example.com/spa/%2F%2Fevil.com",
            "https://app.example.com/spa/%5Cevil.com",
            "https:evil.com",
            "https:/app.example.com/spa/",
            "javascript:alert(1)",
            "JavaScript://app.example.com/spa/%0aalert(1)",
            "data:text/html,hi",
            "https://app.example.com:8443/auth/done",
            "http://app.example.com/auth/done",
            "https://app.example.com/auth/done#frag",
            "https://app.example.com/auth/done/more",
            "https://app.example.com/auth/don",
            "https://app.example.com/spa",
            "https://app.example.com/spa/../admin",
            "https://app.example.com/spax/",
            " https://app.example.com/auth/done",
            "https://app.example.com/auth/done\n",
            "",
        ] {
            assert!(list.check(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn prod_refuses_plain_http_except_loopback() {
        assert!(RedirectAllowList::parse(&["http://app.example.com/".to_owned()], false).is_err());
        assert!(RedirectAllowList::parse(&["http://localhost:3000/".to_owned()], false).is_ok());
        assert!(RedirectAllowList::parse(&["http://[::1]:3000/".to_owned()], false).is_ok());
        assert!(RedirectAllowList::parse(&["http://app.example.com/".to_owned()], true).is_ok());
        assert!(
            RedirectAllowList::parse(&["https://u@app.example.com/".to_owned()], true).is_err()
        );
    }
}
