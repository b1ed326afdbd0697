//! Which headers cross the proxy, each way.

use ::http::header::{self, HeaderName, HeaderValue};
use ::http::{HeaderMap, Uri};

/// The request headers sent on to an upstream; every other header of the
/// client's request (its `Cookie`, `Authorization`, `X-CSRF`,
/// `X-Forwarded-*`, `Host`, hop-by-hop headers, ...) stays behind.
pub const FORWARDED_REQUEST_HEADERS: [&str; 8] = [
    "accept",
    "accept-language",
    "content-type",
    "if-match",
    "if-none-match",
    "x-request-id",
    "traceparent",
    "tracestate",
];

/// Response headers that end at the proxy: `Set-Cookie` (an upstream never
/// sets a cookie on the BFF's origin) and the hop-by-hop headers of RFC 9110
/// section 7.6.1, which describe the upstream's connection, not the client's.
const DROPPED_RESPONSE_HEADERS: [HeaderName; 11] = [
    header::SET_COOKIE,
    HeaderName::from_static("set-cookie2"),
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The allow-listed headers of `incoming`, less any that its `Connection`
/// header names (those are hop-by-hop for this connection).
pub(crate) fn request_headers(incoming: &HeaderMap) -> HeaderMap {
    let hop_by_hop = connection_listed(incoming);
    let mut outgoing = HeaderMap::new();
    for name in FORWARDED_REQUEST_HEADERS {
        if hop_by_hop.iter().any(|listed| listed == name) {
            continue;
        }
        for value in incoming.get_all(name) {
            outgoing.append(HeaderName::from_static(name), value.clone());
        }
    }
    // With tracing on (feature `otel`), the upstream continues the proxy's
    // own trace rather than whatever the browser sent.
    for (name, value) in &crate::forward::trace_context() {
        outgoing.insert(name, value.clone());
    }
    outgoing
}

/// Removes `Set-Cookie`, the hop-by-hop headers and any header the
/// response's `Connection` header names.
pub(crate) fn strip_response_headers(headers: &mut HeaderMap) {
    for name in connection_listed(headers) {
        headers.remove(name.as_str());
    }
    for name in &DROPPED_RESPONSE_HEADERS {
        headers.remove(name);
    }
}

/// Points a redirect into the upstream back through the proxy, as nginx's
/// `proxy_redirect default` does: a `Location` on the upstream's origin
/// under its base path (absolute, or an absolute path) becomes
/// `{public_prefix}/{rest}`, so the browser's next request comes back through
/// the proxy (with a fresh token) and never learns the upstream's address.
/// Any other `Location` (another origin, a relative reference) is passed on
/// as it is; the proxy never follows it.
pub(crate) fn rewrite_location(headers: &mut HeaderMap, base: &Uri, public_prefix: &str) {
    let Some(location) = headers
        .get(header::LOCATION)
        .and_then(|value| value.to_str().ok())
    else {
        return;
    };
    // A network-path reference (`//host/...`) names another origin.
    if location.starts_with("//") {
        return;
    }
    let Ok(target) = location.parse::<Uri>() else {
        return;
    };
    match target.scheme() {
        Some(scheme) => {
            let same_origin = Some(scheme) == base.scheme()
                && target.authority().map(|a| a.as_str().to_ascii_lowercase())
                    == base.authority().map(|a| a.as_str().to_ascii_lowercase());
            if !same_origin {
                return;
            }
        }
        None if !location.starts_with('/') => return,
        None => {}
    }
    let base_path = base.path().trim_end_matches('/');
    let Some(rest) = target
        .path()
        .strip_prefix(base_path)
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
    else {
        return;
    };
    let mut rewritten = format!("{public_prefix}/{}", rest.trim_start_matches('/'));
    if let Some(query) = target.query() {
        rewritten.push('?');
        rewritten.push_str(query);
    }
    if let Ok(value) = HeaderValue::from_str(&rewritten) {
        headers.insert(header::LOCATION, value);
    }
}

fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(location: &str) -> String {
        let base: Uri = "http://catalog.internal:8081/api".parse().expect("uri");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::LOCATION,
            HeaderValue::from_str(location).expect("value"),
        );
        rewrite_location(&mut headers, &base, "/bff/api/catalog");
        headers[header::LOCATION]
            .to_str()
            .expect("ascii")
            .to_owned()
    }

    #[test]
    fn redirects_into_the_upstream_come_back_through_the_proxy() {
        assert_eq!(
            rewritten("http://catalog.internal:8081/api/v1/items?page=2"),
            "/bff/api/catalog/v1/items?page=2"
        );
        assert_eq!(
            rewritten("HTTP://Catalog.Internal:8081/api"),
            "/bff/api/catalog/"
        );
        assert_eq!(rewritten("/api/v1/next"), "/bff/api/catalog/v1/next");
    }

    #[test]
    fn other_redirects_pass_unchanged() {
        for location in [
            "https://catalog.internal:8081/api/v1",
            "http://catalog.internal:9999/api/v1",
            "https://login.example.com/authorize?x=1",
            "//evil.test/api/v1",
            "/apiary/v1",
            "/other",
            "v1/relative",
        ] {
            assert_eq!(rewritten(location), location, "{location}");
        }
    }

    #[test]
    fn only_allow_listed_headers_go_upstream() {
        let mut incoming = HeaderMap::new();
        for (name, value) in [
            ("cookie", "__Host-bff=secret"),
            ("authorization", "Bearer client"),
            ("x-csrf", "1"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-host", "evil.test"),
            ("host", "app.test"),
            ("connection", "keep-alive, Accept-Language"),
            ("accept", "application/json"),
            ("accept-language", "fr"),
            ("if-none-match", "\"a\""),
            ("if-none-match", "\"b\""),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
        ] {
            incoming.append(name, HeaderValue::from_static(value));
        }
        let outgoing = request_headers(&incoming);
        let mut names: Vec<_> = outgoing.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["accept", "if-none-match", "traceparent"]);
        assert_eq!(outgoing.get_all("if-none-match").iter().count(), 2);
    }

    #[test]
    fn cookies_and_hop_by_hop_headers_stay_upstream() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("set-cookie", "session=upstream; Path=/"),
            ("set-cookie", "other=1"),
            ("connection", "close, x-upstream-hop"),
            ("x-upstream-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("content-type", "application/json"),
            ("etag", "\"v1\""),
        ] {
            headers.append(name, HeaderValue::from_static(value));
        }
        strip_response_headers(&mut headers);
        let mut names: Vec<_> = headers.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-type", "etag"]);
    }
}
