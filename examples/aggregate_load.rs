//! The servers of the aggregate load test (`scripts/load/aggregate.sh`).
//!
//! - `backends ADDR`: three HTTP backends on one port, `/profile`, `/orders` and
//!   `/loyalty`, answering after 10, 15 and 20 ms (the sleep is the backend's
//!   work; the load test measures what the BFF does with it).
//! - `bff ADDR BACKENDS_ADDR`: bare hyper serving `/dashboard` (the three calls
//!   through bff-aggregate), `/sequential` (the same three calls one after
//!   another) and `/hello` (hello-world, the machine's ceiling).
//! - `peer ADDR`: the work of the side-by-side benchmark with the peers of
//!   `../shared/peers` (`scripts/load/peers.sh`): `GET /agg` asks the three
//!   JSON backends on 127.0.0.1:18081-18083 at once through bff-aggregate
//!   (the query string passed on, so `?d=20` delays them), parses each body as
//!   JSON and answers one merged object `{"profile", "orders", "loyalty"}`,
//!   calling them with `bff_aggregate::http::Backend`; `peer-legacy` does the
//!   same through hyper-util's general client and `bff_aggregate::http::send`.
//!
//! ```text
//! cargo run --release --example aggregate_load -- backends 127.0.0.1:18201
//! cargo run --release --example aggregate_load -- bff 127.0.0.1:18200 127.0.0.1:18201
//! cargo run --release --example aggregate_load -- peer 127.0.0.1:18092
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bff_aggregate::http::Backend;
use bff_aggregate::{Aggregate, Call, Forward, Source, SourceError};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// The backends and their latencies.
const BACKENDS: [(&str, u64); 3] = [("profile", 10), ("orders", 15), ("loyalty", 20)];

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["backends", addr] => backends(addr.parse()?).await,
        ["bff", addr, backends] => bff(addr.parse()?, backends.parse()?).await,
        ["peer", addr] => peer(addr.parse()?, false).await,
        ["peer-legacy", addr] => peer(addr.parse()?, true).await,
        _ => Err(
            "usage: aggregate_load backends ADDR | bff ADDR BACKENDS_ADDR | peer[-legacy] ADDR"
                .into(),
        ),
    }
}

async fn serve<F, Fut>(addr: SocketAddr, handler: F) -> Result<(), Box<dyn std::error::Error>>
where
    F: Fn(Request<hyper::body::Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind(addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handler(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn backends(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    serve(addr, |req: Request<hyper::body::Incoming>| async move {
        let name = req.uri().path().trim_start_matches('/').to_owned();
        match BACKENDS.iter().find(|(n, _)| *n == name) {
            Some((_, ms)) => {
                tokio::time::sleep(Duration::from_millis(*ms)).await;
                Response::new(Full::new(Bytes::from(format!("{{\"{name}\":true}}"))))
            }
            None => not_found(),
        }
    })
    .await
}

fn not_found() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = hyper::StatusCode::NOT_FOUND;
    response
}

/// One backend call: GET `/name`, the body as bytes.
async fn fetch(
    client: &HttpClient,
    backends: SocketAddr,
    name: &str,
    forward: &Forward,
    call: &Call,
) -> Result<Bytes, SourceError> {
    fetch_url(client, &format!("http://{backends}/{name}"), forward, call).await
}

/// One backend call: GET `url`, the body as bytes.
async fn fetch_url(
    client: &HttpClient,
    url: &str,
    forward: &Forward,
    call: &Call,
) -> Result<Bytes, SourceError> {
    let request = Request::get(url)
        .body(Empty::new())
        .map_err(SourceError::permanent)?;
    let response = bff_aggregate::http::send(client, request, forward, call).await?;
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(SourceError::transient)?;
    Ok(body.to_bytes())
}

async fn bff(addr: SocketAddr, backends: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Arc<HttpClient> = Arc::new(
        Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(1024)
            .build(connector),
    );
    let deadline = Duration::from_secs(1);
    serve(addr, move |req: Request<hyper::body::Incoming>| {
        let client = Arc::clone(&client);
        async move {
            let forward = Forward::from_headers(req.headers());
            match req.uri().path() {
                "/hello" => Response::new(Full::new(Bytes::from_static(b"hello, world"))),
                "/dashboard" => {
                    let source = |name: &'static str| {
                        let (client, forward) = (Arc::clone(&client), forward.clone());
                        Source::required(name, deadline, move |call: Call| {
                            let (client, forward) = (Arc::clone(&client), forward.clone());
                            async move { fetch(&client, backends, name, &forward, &call).await }
                        })
                    };
                    let run = Aggregate::new(deadline)
                        .run((source("profile"), source("orders"), source("loyalty")))
                        .await;
                    match run {
                        Ok(assembled) => {
                            let (a, b, c) = assembled.parts;
                            Response::new(Full::new(Bytes::from([a, b, c].concat())))
                        }
                        Err(_) => unavailable(),
                    }
                }
                "/sequential" => {
                    let call = Call::within(deadline);
                    let mut parts = Vec::new();
                    for (name, _) in BACKENDS {
                        match fetch(&client, backends, name, &forward, &call).await {
                            Ok(part) => parts.push(part),
                            Err(_) => return unavailable(),
                        }
                    }
                    Response::new(Full::new(Bytes::from(parts.concat())))
                }
                _ => not_found(),
            }
        }
    })
    .await
}

fn unavailable() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
    response
}

/// The peers' backends: name and address.
const PEER_BACKENDS: [(&str, &str); 3] = [
    ("profile", "127.0.0.1:18081"),
    ("orders", "127.0.0.1:18082"),
    ("loyalty", "127.0.0.1:18083"),
];

/// How the peer server calls the backends.
#[derive(Clone)]
enum PeerClient {
    /// `bff_aggregate::http::Backend`, one per backend.
    Pooled(Arc<[Backend; 3]>),
    /// hyper-util's general client through `bff_aggregate::http::send`.
    Legacy(Arc<HttpClient>),
}

impl PeerClient {
    async fn fetch(
        &self,
        index: usize,
        query: &str,
        forward: &Forward,
        call: &Call,
    ) -> Result<Bytes, SourceError> {
        let (_, addr) = PEER_BACKENDS[index];
        match self {
            Self::Pooled(backends) => {
                let request = Request::get(format!("/{query}"))
                    .body(Bytes::new())
                    .map_err(SourceError::permanent)?;
                let response = backends[index].send(request, forward, call).await?;
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(SourceError::transient)?;
                Ok(body.to_bytes())
            }
            Self::Legacy(client) => {
                fetch_url(client, &format!("http://{addr}/{query}"), forward, call).await
            }
        }
    }
}

async fn peer(addr: SocketAddr, legacy: bool) -> Result<(), Box<dyn std::error::Error>> {
    let client = if legacy {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        PeerClient::Legacy(Arc::new(
            Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(1024)
                .build(connector),
        ))
    } else {
        let backend = |index: usize| Backend::new(&format!("http://{}", PEER_BACKENDS[index].1));
        PeerClient::Pooled(Arc::new([backend(0)?, backend(1)?, backend(2)?]))
    };
    let deadline = Duration::from_secs(1);
    serve(addr, move |req: Request<hyper::body::Incoming>| {
        let client = client.clone();
        async move {
            match req.uri().path() {
                "/hello" => Response::new(Full::new(Bytes::from_static(b"ok"))),
                "/agg" => {
                    let forward = Forward::from_headers(req.headers());
                    let query: Arc<str> = req
                        .uri()
                        .query()
                        .map_or("".into(), |q| format!("?{q}").into());
                    let source = |index: usize| {
                        let (client, forward, query) =
                            (client.clone(), forward.clone(), Arc::clone(&query));
                        Source::required(PEER_BACKENDS[index].0, deadline, move |call: Call| {
                            let (client, forward, query) =
                                (client.clone(), forward.clone(), Arc::clone(&query));
                            async move {
                                let body = client.fetch(index, &query, &forward, &call).await?;
                                serde_json::from_slice::<serde_json::Value>(&body)
                                    .map_err(SourceError::permanent)
                            }
                        })
                    };
                    let run = Aggregate::new(deadline)
                        .run((source(0), source(1), source(2)))
                        .await;
                    match run {
                        Ok(assembled) => {
                            let (profile, orders, loyalty) = assembled.parts;
                            let merged = serde_json::json!({
                                "profile": profile, "orders": orders, "loyalty": loyalty,
                            });
                            let mut response = Response::new(Full::new(Bytes::from(
                                serde_json::to_vec(&merged).unwrap_or_default(),
                            )));
                            response.headers_mut().insert(
                                hyper::header::CONTENT_TYPE,
                                hyper::header::HeaderValue::from_static("application/json"),
                            );
                            response
                        }
                        Err(_) => unavailable(),
                    }
                }
                _ => not_found(),
            }
        }
    })
    .await
}
