//! Secrets from the operating system's CSPRNG.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The operating system's random generator failed.
#[derive(Debug, thiserror::Error)]
#[error("the system random generator failed")]
pub struct RandomError(#[source] openssl::error::ErrorStack);

/// Fills `buffer` with random bytes.
pub fn fill(buffer: &mut [u8]) -> Result<(), RandomError> {
    openssl::rand::rand_bytes(buffer).map_err(RandomError)
}

/// `bytes` random bytes, base64url without padding.
pub fn base64url(bytes: usize) -> Result<String, RandomError> {
    let mut buffer = vec![0u8; bytes];
    fill(&mut buffer)?;
    Ok(URL_SAFE_NO_PAD.encode(buffer))
}
