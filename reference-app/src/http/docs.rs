//! Pieces of OpenAPI operation documentation that many routes share.

use aide::transform::TransformOperation;
use bff_core::Problem;

/// Marks an operation as needing a bearer token and documents its 401.
pub(crate) fn bearer(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.security_requirement("bearer")
        .response_with::<401, Problem, _>(|r| {
            r.description("Missing, invalid, expired or revoked access token.")
        })
}

/// Documents the 403 of a permission check.
pub(crate) fn forbidden(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.response_with::<403, Problem, _>(|r| r.description("The caller's role does not allow this."))
}

/// Documents a 404.
pub(crate) fn not_found<'a>(
    op: TransformOperation<'a>,
    what: &'static str,
) -> TransformOperation<'a> {
    op.response_with::<404, Problem, _>(|r| r.description(what))
}

/// Documents the 422 of field validation.
pub(crate) fn invalid(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.response_with::<422, Problem, _>(|r| r.description("Invalid fields, named in `errors`."))
}
