//! What is stored and how it is replayed: keys, storability, ETags.

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use http::header::{self, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

use super::layer::Shared;
use super::store::Entry;
use crate::key::RequestInfo;

/// Headers that describe one exchange rather than the representation.
pub(super) fn replayable(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "content-length"
            | "date"
            | "etag"
            | "x-cache"
            | "x-request-id"
            | "ratelimit"
            | "ratelimit-policy"
            | "retry-after"
            | "set-cookie"
    )
}

pub(super) fn cache_key(shared: &Shared, info: &RequestInfo<'_>, user: Option<&str>) -> String {
    let mut params: Vec<&str> = info
        .uri
        .query()
        .map(|q| q.split('&').filter(|p| !p.is_empty()).collect())
        .unwrap_or_default();
    // By name only, and stably: repeated parameters keep their order, which
    // a handler may depend on.
    params.sort_by_key(|p| p.split('=').next().unwrap_or(""));
    let mut key = format!(
        "{}|{}?{}",
        escape(&shared.name),
        escape(info.uri.path()),
        escape(&params.join("&"))
    );
    for header in &shared.vary {
        let value = info
            .headers
            .get(header)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        key.push('|');
        key.push_str(&escape(value));
    }
    if let Some(user) = user {
        key.push_str("|u=");
        key.push_str(&escape(user));
    }
    // Long keys (big queries) are hashed so stores see bounded keys.
    if key.len() > 200 {
        format!("{}|{}", shared.name, hex(&Sha256::digest(key.as_bytes())))
    } else {
        key
    }
}

/// Parts of a key with the separator escaped, so no two requests share a key.
fn escape(part: &str) -> std::borrow::Cow<'_, str> {
    if part.contains(['|', '%']) {
        part.replace('%', "%25").replace('|', "%7C").into()
    } else {
        part.into()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn etag_of(body: &[u8]) -> String {
    format!("\"{}\"", hex(&Sha256::digest(body)[..16]))
}

fn matches_etag(if_none_match: Option<&HeaderValue>, etag: &str) -> bool {
    if_none_match
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == "*" || t == etag)
        })
}

pub(super) fn respond(
    entry: &Entry,
    outcome: &'static str,
    if_none_match: Option<&HeaderValue>,
    head: bool,
) -> Response {
    let not_modified = matches_etag(if_none_match, &entry.etag);
    let body = if not_modified || head {
        Body::empty()
    } else {
        Body::from(entry.body.clone())
    };
    let mut response = Response::new(body);
    *response.status_mut() = if not_modified {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::from_u16(entry.status).unwrap_or(StatusCode::OK)
    };
    for (name, value) in &entry.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    if let Ok(etag) = HeaderValue::from_str(&entry.etag) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    if head && !not_modified {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(entry.body.len()));
    }
    response
        .headers_mut()
        .insert("x-cache", HeaderValue::from_static(outcome));
    response
}

/// Whether the handler allows storing its response here.
pub(super) fn storable(response: &Response, per_user: bool, vary: &[HeaderName]) -> bool {
    if response.status() != StatusCode::OK || response.headers().contains_key(header::SET_COOKIE) {
        return false;
    }
    // A variation the cache was not told about would be served to the wrong
    // requests.
    let unknown_vary = response
        .headers()
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .any(|v| v == "*" || !vary.iter().any(|h| h.as_str().eq_ignore_ascii_case(v)));
    if unknown_vary {
        return false;
    }
    let directives = response
        .headers()
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_ascii_lowercase())
        .collect::<Vec<_>>();
    !directives.iter().any(|d| d == "no-store")
        && (per_user || !directives.iter().any(|d| d == "private"))
}
