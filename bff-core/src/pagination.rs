//! Cursor pagination: `?limit=` (default 20, at most 100) and `?cursor=`, answered
//! with `{"items": [...], "next_cursor": "..." | null}`.
//!
//! A cursor is opaque to clients: base64url of a small JSON value (typically the
//! sort key of the last item) that only the server interprets. Fetch one row more
//! than the limit; [`Page::from_rows`] uses it to tell whether there is a next page.
//!
//! ```
//! use bff_core::pagination::{Page, PageParams};
//!
//! let params = PageParams { limit: Some(2), cursor: None };
//! let request = params.validate::<String>().expect("valid");
//! // SELECT ... WHERE code > $cursor ORDER BY code LIMIT request.fetch_limit()
//! let rows = vec!["EUR".to_owned(), "RUB".to_owned(), "USD".to_owned()];
//! let page = Page::from_rows(rows, request.limit, |last| last.clone());
//! assert_eq!(page.items, ["EUR", "RUB"]);
//! assert!(page.next_cursor.is_some());
//! ```

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::problem::Problem;

/// Page size when the client names none.
pub const DEFAULT_LIMIT: u32 = 20;
/// Largest page size a client may ask for.
pub const MAX_LIMIT: u32 = 100;
/// Longest cursor accepted, so a forged cursor cannot make the server decode megabytes.
pub const MAX_CURSOR_LEN: usize = 512;
/// JSON Schema pattern of a cursor: base64url without padding.
pub const CURSOR: &str = r"^[A-Za-z0-9_-]*$";

/// The `limit` and `cursor` query parameters, as sent. Any other parameter
/// is refused (422 naming it): a list takes no parameter it would ignore.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    /// Page size, 1 to 100 (default 20).
    #[cfg_attr(feature = "openapi", schemars(range(min = 1, max = MAX_LIMIT)))]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[cfg_attr(
        feature = "openapi",
        schemars(length(max = MAX_CURSOR_LEN), regex(pattern = CURSOR))
    )]
    pub cursor: Option<String>,
}

/// Validated page parameters, with the decoded cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest<C> {
    /// Page size.
    pub limit: u32,
    /// Where the page starts (exclusive); `None` for the first page.
    pub after: Option<C>,
}

impl<C> PageRequest<C> {
    /// How many rows to fetch: one more than the limit, to learn whether more exist.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.limit) + 1
    }
}

impl PageParams {
    /// Checks the limit and decodes the cursor; 422 naming the parameter otherwise.
    pub fn validate<C: DeserializeOwned>(&self) -> Result<PageRequest<C>, Problem> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(Problem::invalid_field(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let after = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(cursor) => Some(decode_cursor(cursor).ok_or_else(|| {
                Problem::invalid_field("cursor", "is not a cursor this API issued")
            })?),
        };
        Ok(PageRequest { limit, after })
    }
}

impl PageParams {
    /// The canonical query string of these parameters: the default limit left
    /// out, numbers without leading zeros, `limit` before `cursor`. Equal
    /// requests get equal strings, so a cache keyed by the query keeps one
    /// entry for them.
    pub fn canonical_query(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(limit) = self.limit.filter(|limit| *limit != DEFAULT_LIMIT) {
            query.append_pair("limit", &limit.to_string());
        }
        if let Some(cursor) = self.cursor.as_deref().filter(|c| !c.is_empty()) {
            query.append_pair("cursor", cursor);
        }
        query.finish()
    }
}

/// Encodes a cursor value.
pub fn encode_cursor<C: Serialize>(value: &C) -> String {
    // Serialising plain keys (strings, numbers, ids, timestamps) to JSON cannot fail.
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default())
}

fn decode_cursor<C: DeserializeOwned>(cursor: &str) -> Option<C> {
    if cursor.len() > MAX_CURSOR_LEN {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// One page of a list.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Cursor of the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows; `cursor_of` gives the cursor value
    /// of the last item kept when more rows exist.
    pub fn from_rows<C: Serialize>(
        mut rows: Vec<T>,
        limit: u32,
        cursor_of: impl FnOnce(&T) -> C,
    ) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|last| encode_cursor(&cursor_of(last)))
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }

    /// Maps the items, keeping the cursor.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bounds() {
        assert_eq!(
            PageParams::default()
                .validate::<String>()
                .map(|r| r.limit)
                .ok(),
            Some(DEFAULT_LIMIT)
        );
        for bad in [0, MAX_LIMIT + 1] {
            let problem = PageParams {
                limit: Some(bad),
                cursor: None,
            }
            .validate::<String>()
            .expect_err("out of range");
            assert_eq!(problem.errors[0].field, "limit");
        }
    }

    #[test]
    fn equal_requests_have_one_canonical_query() {
        let parse =
            |query: &str| -> PageParams { serde_urlencoded::from_str(query).expect("parses") };
        for same in [
            "",
            "limit=20",
            "limit=00020",
            "cursor=",
            "limit=020&cursor=",
        ] {
            assert_eq!(parse(same).canonical_query(), "", "{same}");
        }
        assert_eq!(
            parse("cursor=abc&limit=005").canonical_query(),
            "limit=5&cursor=abc"
        );
        assert!(serde_urlencoded::from_str::<PageParams>("junk=1").is_err());
    }

    #[test]
    fn cursor_round_trip_and_forgery() {
        let page = Page::from_rows(vec![1, 2, 3], 2, |last| *last);
        assert_eq!(page.items, [1, 2]);
        let cursor = page.next_cursor.expect("more rows");
        let request = PageParams {
            limit: None,
            cursor: Some(cursor),
        }
        .validate::<i32>()
        .expect("valid");
        assert_eq!(request.after, Some(2));
        for forged in ["%%%", "bm90IGpzb24", &"A".repeat(MAX_CURSOR_LEN + 1)] {
            let problem = PageParams {
                limit: None,
                cursor: Some(forged.to_owned()),
            }
            .validate::<i32>()
            .expect_err("forged");
            assert_eq!(problem.errors[0].field, "cursor");
        }
    }

    #[test]
    fn last_page_has_no_cursor() {
        assert_eq!(Page::from_rows(vec![1, 2], 2, |l| *l).next_cursor, None);
    }
}
