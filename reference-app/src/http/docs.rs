//! Pieces of OpenAPI operation documentation that many routes share.
//!
//! Every API operation documents, besides its own outcomes, what the stack in
//! front of it can answer (`api`): 429 from the rate limits and 503 when a
//! backend is down or the request timed out. The body and query extractors
//! document their own 400, 413, 415 and 422 (`bff_core::extract`), and the
//! header extractors their headers (`super::extract`).

use aide::transform::TransformOperation;
use bff_core::openapi::problem;

/// What any API operation can answer besides its own outcomes: the per-client
/// (and, with a token, per-user) rate limit, and an outage or a timeout.
pub(crate) fn api(op: TransformOperation<'_>) -> TransformOperation<'_> {
    let op = problem(
        op,
        429,
        "`rate_limited`: over this client's (or user's) request quota; `Retry-After` says when to try again.",
    );
    problem(
        op,
        503,
        "`unavailable`: a backend is down or the request took too long; try again shortly (`Retry-After` when given).",
    )
}

/// Marks an operation as needing a bearer token or the browser-mode session
/// cookie (either one), and documents its 401, the cookie's 400 and 403, and
/// what every API operation can answer ([`api`]).
pub(crate) fn bearer(op: TransformOperation<'_>) -> TransformOperation<'_> {
    let op = api(op
        .security_requirement("bearer")
        .security_requirement("cookie"))
    .response_with::<401, bff_core::Problem, _>(|r| {
        r.description("Missing, invalid, expired or revoked access token or session.")
    });
    let op = problem(
        op,
        400,
        "A session cookie together with an `Authorization` header, or two session cookies.",
    );
    problem(
        op,
        403,
        "`csrf_failed`: a cookie request without `X-CSRF: 1`, or from another site.",
    )
}

/// Documents the 403 of a permission check.
pub(crate) fn forbidden(op: TransformOperation<'_>) -> TransformOperation<'_> {
    problem(op, 403, "The caller's role does not allow this.")
}

/// Documents a 404.
pub(crate) fn not_found<'a>(
    op: TransformOperation<'a>,
    what: &'static str,
) -> TransformOperation<'a> {
    problem(op, 404, what)
}

/// Documents the 422 of field validation.
pub(crate) fn invalid(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.response_with::<422, bff_core::Problem, _>(|r| {
        r.description("`validation_failed`: invalid fields, each named in `errors`.")
    })
}
