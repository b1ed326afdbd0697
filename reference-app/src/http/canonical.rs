//! Canonical list queries in front of a shared response cache.
//!
//! The cache keys an entry by the query string, so `?limit=00020`, `?limit=20`
//! and no query at all would each make an entry of the same page. This layer
//! rewrites a list's query to [`PageParams::canonical_query`] before the cache
//! sees it; a query that does not parse is left alone for the handler to
//! refuse (a 422 is never cached).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use bff_core::pagination::PageParams;
use http::Uri;
use http::uri::PathAndQuery;

/// `axum::middleware::from_fn` body: rewrites the page parameters of the
/// request to their canonical form.
pub(crate) async fn page_query(mut request: Request, next: Next) -> Response {
    if let Some(uri) = canonical(request.uri()) {
        *request.uri_mut() = uri;
    }
    next.run(request).await
}

fn canonical(uri: &Uri) -> Option<Uri> {
    let query = uri.query()?;
    let params: PageParams = serde_urlencoded::from_str(query).ok()?;
    let canonical = params.canonical_query();
    if canonical == query {
        return None;
    }
    let path_and_query = if canonical.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{canonical}", uri.path())
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(path_and_query).ok()?);
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_queries_are_rewritten_and_others_left_alone() {
        let rewrite = |uri: &str| canonical(&uri.parse().expect("uri")).map(|u| u.to_string());
        assert_eq!(rewrite("/c?limit=00020").as_deref(), Some("/c"));
        assert_eq!(
            rewrite("/c?cursor=x&limit=05").as_deref(),
            Some("/c?limit=5&cursor=x")
        );
        assert_eq!(rewrite("/c?limit=5"), None);
        assert_eq!(rewrite("/c"), None);
        assert_eq!(rewrite("/c?junk=1"), None);
        assert_eq!(rewrite("/c?limit=abc"), None);
    }
}
