//! A remote-API proxy for browser apps: `/bff/api/{name}/{path}` on the BFF
//! becomes `{base}/{path}` on the upstream `name`, with the user's session
//! turned into a short-lived token minted for that upstream alone.
//!
//! ```
//! use bff_aggregate::proxy::{Proxy, ProxyError, ProxyUpstreams};
//! use bytes::Bytes;
//! use http_body_util::Empty;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Once, at startup, from `BFF_PROXY_UPSTREAMS`.
//! let proxy = Proxy::new(ProxyUpstreams::parse("catalog=http://127.0.0.1:8081/api")?);
//!
//! // Per request: the name and the raw rest of the path come from the URI,
//! // and the closure mints a token for the upstream's name (its `aud`).
//! let request = http::Request::get("/bff/api/catalog/v1/%2e%2e/admin").body(Empty::<Bytes>::new())?;
//! let path = request.uri().path().strip_prefix("/bff/api/catalog/").unwrap_or_default().to_owned();
//! let answer = proxy
//!     .forward("catalog", &path, request, |audience| {
//!         Ok::<_, std::convert::Infallible>(format!("token-for-{audience}"))
//!     })
//!     .await;
//! // The traversal never reaches the upstream.
//! let Err(error) = answer else { unreachable!() };
//! assert_eq!(error.status(), http::StatusCode::BAD_REQUEST);
//! assert!(matches!(error, ProxyError::Path(_)));
//! # Ok(())
//! # }
//! ```
//!
//! ## What crosses, each way
//!
//! - Only upstreams of the static [`ProxyUpstreams`] table are reachable; any
//!   other name is a 404.
//! - The path is checked by [`normalize_path`]: dot segments, encoded `/`
//!   and `\`, a plain `\`, double encoding, control characters and empty
//!   segments are a 400 and never reach the upstream. The client's query is
//!   kept as it is.
//! - Only the headers of [`FORWARDED_REQUEST_HEADERS`] go upstream; the
//!   browser's `Cookie`, `Authorization`, `X-CSRF`, `X-Forwarded-*`, `Host`
//!   and hop-by-hop headers do not. The proxy adds
//!   `Authorization: Bearer <token>` with the token the caller's closure gives
//!   for the upstream's name.
//! - The request body is read up to the upstream's limit first (a 413 over
//!   it), so an oversized body never reaches the upstream.
//! - The response comes back with its status and body, less `Set-Cookie` and
//!   hop-by-hop headers. Redirects are passed back (3xx with `Location`),
//!   never followed: the proxy has no redirect logic, and a followed
//!   redirect would carry the token to wherever it points. A `Location`
//!   into the upstream itself is rewritten to the proxy's public path
//!   ([`Proxy::mounted_at`]), so the browser comes back through the proxy
//!   and never learns the upstream's address; any other is left as it is.
//! - An upstream slower than its [`Limits::timeout`] to the response's head
//!   is a 504; one that cannot be reached is a 502.
//!
//! ## The token
//!
//! The proxy does not mint tokens: [`Proxy::forward`] takes a closure from
//! upstream name to token, called only once the name and path are accepted
//! (so a made-up name mints nothing). With bff-auth's minter, the closure is
//! `|audience| minter.token(audience, &subject)`: a JWT for that audience
//! alone, with the caller's `sub`, `sid` and `role`, valid at most 60 s and
//! signed with the BFF's key, so the upstream verifies it with the BFF's
//! JWKS. This keeps bff-aggregate free of bff-auth.
//!
//! ## Why here
//!
//! The proxy lives in bff-aggregate, behind the `proxy` feature, rather than
//! in bff-core: this crate already owns the BFF's outbound HTTP (hyper-util's
//! client, deadlines, the `http` feature's sources), while bff-core is
//! about the inbound side (problems, request ids, the server). A service
//! that proxies nothing does not build the client or TLS.

mod config;
mod error;
mod headers;
mod path;

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use ::http::header::{AUTHORIZATION, CONTENT_LENGTH, HeaderValue};
use ::http::{Method, Request, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub use config::{Limits, MAX_NAME_LEN, ProxyConfigError, ProxyUpstreams, Upstream};
pub use error::ProxyError;
pub use headers::FORWARDED_REQUEST_HEADERS;
pub use path::{MAX_PATH_LEN, PathError, normalize_path};

type BoxError = Box<dyn StdError + Send + Sync>;

/// Where [`Proxy::new`] assumes it is served; see [`Proxy::mounted_at`].
pub const DEFAULT_MOUNT: &str = "/bff/api";

/// The body of a proxied response: the upstream's body, streamed, cut off
/// with an error if it grows past the upstream's
/// [response limit](Limits::response_body).
pub type ProxyBody = Limited<Incoming>;

/// The proxy: a table of upstreams and one HTTP(S) client for all of them.
/// Clones share the client and its connection pool; make one at startup.
#[derive(Clone)]
pub struct Proxy {
    upstreams: Arc<ProxyUpstreams>,
    mount: Arc<str>,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("upstreams", &self.upstreams)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// A proxy to `upstreams`, with a client that speaks HTTP/1.1 over plain
    /// TCP or TLS (trusting the webpki roots) and never follows redirects.
    pub fn new(upstreams: ProxyUpstreams) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .build(connector);
        Self {
            upstreams: Arc::new(upstreams),
            mount: Arc::from(DEFAULT_MOUNT),
            client,
        }
    }

    /// Where the proxy is served: `/bff/api` by default, so that upstream
    /// `name` is at `{mount}/{name}/{path}`. Only redirects use it: a
    /// `Location` into the upstream is rewritten to this public path.
    pub fn mounted_at(mut self, mount: &str) -> Self {
        self.mount = Arc::from(mount.trim_end_matches('/'));
        self
    }

    /// The table of upstreams.
    pub fn upstreams(&self) -> &ProxyUpstreams {
        &self.upstreams
    }

    /// Sends `request` to the upstream `name` at `path`, and returns its
    /// response less `Set-Cookie` and hop-by-hop headers.
    ///
    /// `path` is the rest of the request's path after `/bff/api/{name}/`,
    /// **still percent-encoded**: take it from `request.uri().path()`, not
    /// from a router's decoded path parameter, or `%2F` can no longer be told
    /// from `/`. The query is taken from `request.uri()`. `token` is called
    /// with the upstream's name once the name, method and path are accepted
    /// and the body is read, and its token is sent as
    /// `Authorization: Bearer <token>`.
    ///
    /// The upstream's timeout bounds connecting and waiting for the
    /// response's head; reading the response's body is up to the caller
    /// (the server's own request timeout bounds it). Reading the client's
    /// body is bounded in size, not in time, for the same reason.
    ///
    /// See the [module docs](self) for what is sent and refused.
    pub async fn forward<B, F, T, E>(
        &self,
        name: &str,
        path: &str,
        request: Request<B>,
        token: F,
    ) -> Result<Response<ProxyBody>, ProxyError>
    where
        B: http_body::Body,
        B::Error: Into<BoxError>,
        F: FnOnce(&str) -> Result<T, E>,
        T: AsRef<str>,
        E: Into<BoxError>,
    {
        let upstream = self
            .upstreams
            .get(name)
            .ok_or(ProxyError::UnknownUpstream)?;
        let path = normalize_path(path)?;
        let (parts, body) = request.into_parts();
        if !proxied(&parts.method) {
            return Err(ProxyError::Method(parts.method));
        }
        let uri = upstream
            .target(&path, parts.uri.query())
            .map_err(|_| PathError::Character)?;
        let limits = upstream.limits();
        let body = read_body(body, &parts.headers, limits.get_request_body()).await?;

        let token = token(upstream.name()).map_err(|error| ProxyError::Token(error.into()))?;
        let mut bearer = HeaderValue::try_from(format!("Bearer {}", token.as_ref()))
            .map_err(|error| ProxyError::Token(error.into()))?;
        bearer.set_sensitive(true);
        let mut outgoing = Request::new(Full::new(body));
        *outgoing.method_mut() = parts.method;
        *outgoing.uri_mut() = uri;
        *outgoing.headers_mut() = headers::request_headers(&parts.headers);
        outgoing.headers_mut().insert(AUTHORIZATION, bearer);

        let response = tokio::time::timeout(limits.get_timeout(), self.client.request(outgoing))
            .await
            .map_err(|_elapsed| ProxyError::Timeout)?
            .map_err(|error| ProxyError::Unreachable(error.into()))?;
        let (mut parts, body) = response.into_parts();
        headers::strip_response_headers(&mut parts.headers);
        if parts.status.is_redirection() {
            let public = format!("{}/{}", self.mount, upstream.name());
            headers::rewrite_location(&mut parts.headers, upstream.base(), &public);
        }
        let limit = limits.get_response_body();
        if let Some(limit) = limit
            && content_length(&parts.headers).is_some_and(|length| length > limit as u64)
        {
            return Err(ProxyError::ResponseTooLarge { limit });
        }
        let body = Limited::new(body, limit.unwrap_or(usize::MAX));
        Ok(Response::from_parts(parts, body))
    }
}

/// The methods of RFC 9110 an API uses; `CONNECT` would open a tunnel and
/// `TRACE` would echo the request (with the minted token) back.
fn proxied(method: &Method) -> bool {
    [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
    ]
    .contains(method)
}

fn content_length(headers: &::http::HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Reads the client's body whole, refusing it as soon as it is known to be
/// over `limit`: from its `Content-Length`, or once that many bytes came.
async fn read_body<B>(
    body: B,
    headers: &::http::HeaderMap,
    limit: usize,
) -> Result<Bytes, ProxyError>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let too_large = ProxyError::RequestTooLarge { limit };
    if content_length(headers).is_some_and(|length| length > limit as u64)
        || body.size_hint().lower() > limit as u64
    {
        return Err(too_large);
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(too_large),
        Err(error) => Err(ProxyError::RequestBody(error)),
    }
}
