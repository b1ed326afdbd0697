//! `login_code`: what the callback hands the frontend instead of tokens.
//!
//! A login code is 32 random bytes (base64url, 43 characters), good for one
//! exchange within 60 seconds. The session it stands for is opened at the
//! callback; the store keeps, under a hash of the code, the session's id, its
//! user and its refresh token sealed with AES-256-GCM under a key derived from
//! the code itself: what Redis holds is useless without the code, which only
//! the frontend's URL ever carried.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bff_auth::oauth::StateStore;
use openssl::symm::{Cipher, decrypt_aead, encrypt_aead};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// How long a login code can be exchanged.
pub const LOGIN_CODE_TTL: Duration = Duration::from_secs(60);
const NONCE: usize = 12;
const TAG: usize = 16;

/// What a login code stands for.
#[derive(Serialize, Deserialize)]
pub struct LoginGrant {
    /// The session opened at the callback.
    pub session_id: String,
    /// Its user.
    pub user_id: Uuid,
    /// Its refresh token.
    pub refresh_token: String,
}

impl std::fmt::Debug for LoginGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginGrant")
            .field("session_id", &self.session_id)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

/// Why a login code could not be made or redeemed.
#[derive(Debug, thiserror::Error)]
pub enum LoginCodeError {
    /// The store failed.
    #[error("login code store: {0}")]
    Store(#[from] bff_auth::oauth::OAuthError),
    /// The cipher or the random generator failed.
    #[error("login code crypto: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
    /// The grant did not serialise.
    #[error("login code encoding: {0}")]
    Encoding(#[from] serde_json::Error),
}

/// Login codes in a one-time store.
#[derive(Debug, Clone)]
pub struct LoginCodes {
    store: Arc<dyn StateStore>,
}

fn derive(label: &str, code: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(label.as_bytes());
    hasher.update([0]);
    hasher.update(code.as_bytes());
    hasher.finalize().into()
}

fn store_key(code: &str) -> String {
    derive("bff oauth login code id v1", code)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl LoginCodes {
    /// Codes kept in `store`.
    pub fn new(store: Arc<dyn StateStore>) -> Self {
        Self { store }
    }

    /// A new code for `grant`.
    pub async fn issue(&self, grant: &LoginGrant) -> Result<String, LoginCodeError> {
        let mut raw = [0_u8; 32];
        openssl::rand::rand_bytes(&mut raw)?;
        let code = URL_SAFE_NO_PAD.encode(raw);
        let key = derive("bff oauth login code key v1", &code);
        let mut nonce = [0_u8; NONCE];
        openssl::rand::rand_bytes(&mut nonce)?;
        let mut tag = [0_u8; TAG];
        let plain = serde_json::to_vec(grant)?;
        let ciphertext = encrypt_aead(
            Cipher::aes_256_gcm(),
            &key,
            Some(&nonce),
            b"login_code",
            &plain,
            &mut tag,
        )?;
        let mut sealed = Vec::with_capacity(NONCE + ciphertext.len() + TAG);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed.extend_from_slice(&tag);
        self.store
            .put(&store_key(&code), sealed, LOGIN_CODE_TTL)
            .await?;
        Ok(code)
    }

    /// The grant of `code`, used up; `None` for an unknown, used or expired
    /// code (or one that does not open).
    pub async fn redeem(&self, code: &str) -> Result<Option<LoginGrant>, LoginCodeError> {
        if code.len() != 43
            || !code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Ok(None);
        }
        let Some(sealed) = self.store.take(&store_key(code)).await? else {
            return Ok(None);
        };
        if sealed.len() < NONCE + TAG {
            return Ok(None);
        }
        let (nonce, rest) = sealed.split_at(NONCE);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG);
        let key = derive("bff oauth login code key v1", code);
        let Ok(plain) = decrypt_aead(
            Cipher::aes_256_gcm(),
            &key,
            Some(nonce),
            b"login_code",
            ciphertext,
            tag,
        ) else {
            return Ok(None);
        };
        Ok(serde_json::from_slice(&plain).ok())
    }
}
