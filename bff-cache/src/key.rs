//! Keys of requests: what a rate limit counts, and whom a per-user cache
//! entry belongs to.
//!
//! A [`KeyExtractor`] reads a key from a request's [`RequestInfo`]: the
//! client's address ([`ClientIp`], from axum's `ConnectInfo`), the route
//! ([`Route`]), the authenticated user (`UserId`, feature `auth`), or anything
//! a closure finds ([`from_fn`]).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, MatchedPath};
use http::{Extensions, HeaderMap, Method, Uri};

/// The parts of a request a key is taken from.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo<'a> {
    /// The method.
    pub method: &'a Method,
    /// The URI.
    pub uri: &'a Uri,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The extensions (the peer address, the authenticated caller, the route).
    pub extensions: &'a Extensions,
}

/// Takes a key from a request; `None` means the policy does not apply to it
/// (a per-user limit on an anonymous request, say).
pub trait KeyExtractor: Send + Sync + 'static {
    /// The key.
    fn key(&self, request: &RequestInfo<'_>) -> Option<String>;
}

impl<F> KeyExtractor for F
where
    F: Fn(&RequestInfo<'_>) -> Option<String> + Send + Sync + 'static,
{
    fn key(&self, request: &RequestInfo<'_>) -> Option<String> {
        self(request)
    }
}

/// A key extractor from a closure (any `Fn(&RequestInfo) -> Option<String>` is one).
pub fn from_fn<F>(f: F) -> F
where
    F: Fn(&RequestInfo<'_>) -> Option<String> + Send + Sync + 'static,
{
    f
}

/// The route template (`/api/v1/items/{id}`), so one limit covers every
/// request to a route, whoever sends it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Route;

impl KeyExtractor for Route {
    fn key(&self, request: &RequestInfo<'_>) -> Option<String> {
        let path = request
            .extensions
            .get::<MatchedPath>()
            .map_or_else(|| request.uri.path(), MatchedPath::as_str);
        Some(format!("{} {path}", request.method))
    }
}

/// The authenticated user (the `sub` of bff-auth's `Principal`), for limits
/// and caches per user; `None` on anonymous requests. Place the layer inside
/// the authentication layer, which puts the `Principal` there.
#[cfg(feature = "auth")]
#[derive(Debug, Clone, Copy, Default)]
pub struct UserId;

#[cfg(feature = "auth")]
impl KeyExtractor for UserId {
    fn key(&self, request: &RequestInfo<'_>) -> Option<String> {
        request
            .extensions
            .get::<bff_auth::layer::Principal>()
            .map(|p| p.user_id.clone())
    }
}

/// The client's IP address: the peer address (axum's `ConnectInfo`), or, when
/// the peer is a trusted proxy, the address that proxy reports in
/// `X-Forwarded-For`. The header is read from the right, skipping trusted
/// proxies, so a client cannot choose its key by sending the header itself.
/// IPv6 clients are keyed by their /64, which one host commonly holds whole.
#[derive(Debug, Clone, Default)]
pub struct ClientIp {
    trusted: Vec<(IpAddr, u8)>,
}

impl ClientIp {
    /// Keyed by the peer address; `X-Forwarded-For` is ignored.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts proxies in `network` (an address and a prefix length, e.g.
    /// `10.0.0.0/8`) to report the client's address.
    #[must_use]
    pub fn trust(mut self, address: IpAddr, prefix: u8) -> Self {
        self.trusted.push((address, prefix));
        self
    }

    /// Trusts proxies given as CIDR text (`10.0.0.0/8`, `::1/128`, or a bare address).
    pub fn trust_cidr(self, cidr: &str) -> Result<Self, String> {
        let (address, prefix) = match cidr.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (cidr, None),
        };
        let address: IpAddr = address
            .trim()
            .parse()
            .map_err(|_| format!("{cidr:?} is not an address or a network"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{cidr:?} has an invalid prefix length"))?,
            None => max,
        };
        Ok(self.trust(address, prefix))
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted
            .iter()
            .any(|(network, prefix)| in_network(ip, *network, *prefix))
    }

    /// The client's address as this extractor sees it.
    pub fn client(&self, request: &RequestInfo<'_>) -> Option<IpAddr> {
        let peer = request
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| canonical(addr.ip()))?;
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let mut client = peer;
        let hops = request
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in hops.into_iter().rev() {
            // Some proxies add the port (`1.2.3.4:5678`, `[2001:db8::1]:443`).
            let parsed = hop
                .parse::<IpAddr>()
                .or_else(|_| hop.parse::<SocketAddr>().map(|a| a.ip()));
            let Ok(ip) = parsed.map(canonical) else {
                break;
            };
            client = ip;
            if !self.is_trusted(ip) {
                break;
            }
        }
        Some(client)
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn in_network(ip: IpAddr, network: IpAddr, prefix: u8) -> bool {
    match (ip, network) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// The key of a client address: an IPv4 address as is (IPv4-mapped IPv6 too),
/// an IPv6 one by its /64, which one host commonly holds whole.
pub fn ip_key(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

impl KeyExtractor for ClientIp {
    fn key(&self, request: &RequestInfo<'_>) -> Option<String> {
        self.client(request).map(ip_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info<'a>(
        extensions: &'a Extensions,
        headers: &'a HeaderMap,
        uri: &'a Uri,
    ) -> RequestInfo<'a> {
        RequestInfo {
            method: &Method::GET,
            uri,
            headers,
            extensions,
        }
    }

    fn key(extractor: &ClientIp, peer: &str, forwarded: Option<&str>) -> Option<String> {
        let mut extensions = Extensions::new();
        extensions.insert(ConnectInfo(
            format!("{peer}:1234")
                .parse::<SocketAddr>()
                .unwrap_or_else(|_| {
                    SocketAddr::new(peer.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])), 1234)
                }),
        ));
        let mut headers = HeaderMap::new();
        if let Some(forwarded) = forwarded {
            headers.insert("x-forwarded-for", forwarded.parse().expect("header"));
        }
        let uri = Uri::from_static("/");
        extractor.key(&info(&extensions, &headers, &uri))
    }

    #[test]
    fn untrusted_forwarding_headers_are_ignored() {
        let plain = ClientIp::new();
        assert_eq!(
            key(&plain, "203.0.113.9", Some("1.2.3.4")).as_deref(),
            Some("203.0.113.9")
        );
        let behind_proxy = ClientIp::new().trust_cidr("10.0.0.0/8").expect("cidr");
        // From a trusted proxy: the rightmost untrusted hop is the client.
        assert_eq!(
            key(
                &behind_proxy,
                "10.1.2.3",
                Some("6.6.6.6, 198.51.100.7, 10.9.9.9")
            )
            .as_deref(),
            Some("198.51.100.7")
        );
        // Not from the proxy: the header is the client's own words.
        assert_eq!(
            key(&behind_proxy, "203.0.113.9", Some("1.2.3.4")).as_deref(),
            Some("203.0.113.9")
        );
        // Hops with ports count too.
        assert_eq!(
            key(&behind_proxy, "10.1.2.3", Some("198.51.100.7:5678")).as_deref(),
            Some("198.51.100.7")
        );
        // Garbage in the header stops the walk at the last good hop.
        assert_eq!(
            key(&behind_proxy, "10.1.2.3", Some("nonsense, 10.0.0.5")).as_deref(),
            Some("10.0.0.5")
        );
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let plain = ClientIp::new();
        assert_eq!(
            key(&plain, "[2001:db8:1:2::7]", None),
            key(&plain, "[2001:db8:1:2:ffff::1]", None)
        );
        assert_eq!(
            ip_key("::ffff:203.0.113.7".parse().expect("ip")),
            "203.0.113.7"
        );
        assert!(ClientIp::new().trust_cidr("10.0.0.0/40").is_err());
        assert!(ClientIp::new().trust_cidr("nope").is_err());
    }
}
