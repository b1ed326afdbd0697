//! Codes on the bus are sealed: a reader of the `NOTIFICATIONS` stream (or of
//! the outbox table) sees ciphertext, and only the notifier, which holds the
//! code secret, opens it.
//!
//! The `code` field of a notification is `v1.` and the base64url (no padding)
//! of a 12-byte random nonce, the AES-256-GCM ciphertext and its 16-byte tag.
//! The key is HMAC-SHA-256 of `bff notification code key v1` under
//! `BFF_CODE_SECRET`; the associated data is `<id>|<to>`, so a sealed code
//! opens only in the message it was written for. A notifier of one's own
//! decrypts with the same recipe.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bff_auth::code::CodeSecret;
use openssl::symm::{Cipher, decrypt_aead, encrypt_aead};
use uuid::Uuid;

/// The label of the key derived from the code secret.
const KEY_LABEL: &str = "bff notification code key v1";
const VERSION: &str = "v1.";
const NONCE: usize = 12;
const TAG: usize = 16;

/// Seals and opens codes with a key derived from the code secret.
#[derive(Clone)]
pub struct CodeSeal {
    key: [u8; 32],
}

impl std::fmt::Debug for CodeSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeSeal([REDACTED])")
    }
}

/// A code that could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// Not a sealed code of this version, or altered, or sealed under another
    /// key or for another message.
    #[error("the sealed code does not open")]
    Unopenable,
    /// The cipher or the random generator failed.
    #[error("sealing failed: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
}

impl CodeSeal {
    /// The seal keyed by `secret`.
    pub fn new(secret: &CodeSecret) -> Self {
        Self {
            key: secret.derive_key(KEY_LABEL),
        }
    }

    /// `code`, sealed for the notification `id` to `to`.
    pub fn seal(&self, id: Uuid, to: &str, code: &str) -> Result<String, SealError> {
        let mut nonce = [0_u8; NONCE];
        openssl::rand::rand_bytes(&mut nonce)?;
        let mut tag = [0_u8; TAG];
        let ciphertext = encrypt_aead(
            Cipher::aes_256_gcm(),
            &self.key,
            Some(&nonce),
            aad(id, to).as_bytes(),
            code.as_bytes(),
            &mut tag,
        )?;
        let mut sealed = Vec::with_capacity(NONCE + ciphertext.len() + TAG);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed.extend_from_slice(&tag);
        Ok(format!("{VERSION}{}", URL_SAFE_NO_PAD.encode(sealed)))
    }

    /// The code sealed in `sealed` for the notification `id` to `to`.
    pub fn open(&self, id: Uuid, to: &str, sealed: &str) -> Result<String, SealError> {
        let bytes = sealed
            .strip_prefix(VERSION)
            .and_then(|b64| URL_SAFE_NO_PAD.decode(b64).ok())
            .filter(|bytes| bytes.len() > NONCE + TAG)
            .ok_or(SealError::Unopenable)?;
        let (nonce, rest) = bytes.split_at(NONCE);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG);
        let code = decrypt_aead(
            Cipher::aes_256_gcm(),
            &self.key,
            Some(nonce),
            aad(id, to).as_bytes(),
            ciphertext,
            tag,
        )
        .map_err(|_| SealError::Unopenable)?;
        String::from_utf8(code).map_err(|_| SealError::Unopenable)
    }
}

fn aad(id: Uuid, to: &str) -> String {
    format!("{id}|{to}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(byte: u8) -> CodeSeal {
        CodeSeal::new(&CodeSecret::new(vec![byte; 32]).expect("secret"))
    }

    #[test]
    fn a_sealed_code_opens_only_with_its_key_and_in_its_message() {
        let (id, other_id) = (Uuid::now_v7(), Uuid::now_v7());
        let sealed = seal(1).seal(id, "a@example.com", "012345").expect("sealed");
        assert!(!sealed.contains("012345"));
        assert!(sealed.starts_with("v1."));
        assert_eq!(
            seal(1).open(id, "a@example.com", &sealed).expect("opens"),
            "012345"
        );
        // Each seal is fresh.
        assert_ne!(
            sealed,
            seal(1).seal(id, "a@example.com", "012345").expect("sealed")
        );
        assert!(seal(2).open(id, "a@example.com", &sealed).is_err());
        assert!(seal(1).open(other_id, "a@example.com", &sealed).is_err());
        assert!(seal(1).open(id, "b@example.com", &sealed).is_err());
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).expect("ascii");
        for bad in [tampered.as_str(), "012345", "v1.", "v1.AAAA", ""] {
            assert!(seal(1).open(id, "a@example.com", bad).is_err(), "{bad}");
        }
    }
}
