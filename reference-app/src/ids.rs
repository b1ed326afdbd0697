//! Ids as requests carry them: the caller's, from the token, and a record's,
//! from the path.

use bff_auth::layer::Principal;
use bff_core::Problem;
use uuid::Uuid;

/// The caller's user id; a token whose subject is not one authenticates nobody.
pub(crate) fn caller_id(principal: &Principal) -> Result<Uuid, Problem> {
    Uuid::parse_str(&principal.user_id).map_err(|_| Problem::unauthorized())
}

/// An id from a path; a malformed one names nothing there, so it is a 404
/// like an id that does not exist or belongs to someone else.
pub(crate) fn path_id(value: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(value).map_err(|_| Problem::not_found())
}

/// An idempotency key as the API accepts it: 1 to 255 visible ASCII
/// characters, from the `Idempotency-Key` header or a backend call.
pub(crate) fn idempotency_key(key: &str) -> Result<&str, &'static str> {
    if (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(key)
    } else {
        Err("must be 1 to 255 visible ASCII characters")
    }
}
