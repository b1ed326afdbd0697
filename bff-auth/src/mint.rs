//! Tokens for backends: a user's own access token never leaves the BFF.
//!
//! A backend call carries a token minted for that backend's audience (`aud`
//! = `orders`, say), signed by the BFF's key, verified by the backend with the
//! JWKS, and valid for at most a minute. A token sniffed on the way (from a
//! message bus, say) works nowhere else: the BFF refuses a foreign audience,
//! and another backend refuses it too.
//!
//! One token is minted per (session, audience) and reused until shortly
//! before it expires, so backends that cache verified tokens keep hitting
//! their cache.
//!
//! ```
//! use std::time::Duration;
//! use bff_auth::keys::{Algorithm, KeySet, SigningKey};
//! use bff_auth::mint::{Minter, Subject};
//! use bff_auth::token::TokenIssuer;
//!
//! let key = SigningKey::generate(Algorithm::EdDsa).unwrap().signing_key().unwrap();
//! let issuer = TokenIssuer::new(KeySet::new(key, vec![]).unwrap(), "bff", "bff", Duration::from_secs(900));
//! let minter = Minter::new(issuer, Duration::from_secs(60)).unwrap();
//! let subject = Subject { user_id: "u1", session_id: "s1", role: "customer" };
//! let token = minter.token("orders", &subject).unwrap();
//! // The same session and audience reuse the token while it is fresh.
//! assert_eq!(token, minter.token("orders", &subject).unwrap());
//! assert_ne!(token, minter.token("loyalty", &subject).unwrap());
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::keys::KeyError;
use crate::token::TokenIssuer;

/// The longest a minted token may live.
pub const MAX_TTL: Duration = Duration::from_secs(60);

/// Entries kept before expired ones are swept.
const SWEEP_AT: usize = 10_000;

/// Whom a token is minted for: a caller the BFF has verified.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The user id (`sub`).
    pub user_id: &'a str,
    /// The session id (`sid`).
    pub session_id: &'a str,
    /// The role.
    pub role: &'a str,
}

/// Why a minter could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MintError {
    /// The lifetime is zero or above [`MAX_TTL`].
    #[error("minted tokens live more than 0 s and at most 60 s")]
    Ttl,
}

#[derive(Clone)]
struct Minted {
    token: Arc<str>,
    renew_at: Instant,
    expires_at: Instant,
}

/// Mints and reuses backend tokens; see the [module docs](self). Clones share
/// the cache.
#[derive(Clone)]
pub struct Minter {
    issuer: Arc<TokenIssuer>,
    ttl: Duration,
    cache: Arc<Mutex<HashMap<(String, String), Minted>>>,
}

impl std::fmt::Debug for Minter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minter")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Minter {
    /// A minter signing with `issuer`'s key and naming itself as its issuer,
    /// with tokens valid for `ttl` (at most [`MAX_TTL`]).
    pub fn new(issuer: TokenIssuer, ttl: Duration) -> Result<Self, MintError> {
        if ttl.is_zero() || ttl > MAX_TTL {
            return Err(MintError::Ttl);
        }
        Ok(Self {
            issuer: Arc::new(issuer),
            ttl,
            cache: Arc::default(),
        })
    }

    /// A token for `audience` on behalf of `subject`: the one minted for this
    /// session and audience while more than a quarter of its life is left,
    /// else a new one.
    pub fn token(&self, audience: &str, subject: &Subject<'_>) -> Result<Arc<str>, KeyError> {
        let key = (subject.session_id.to_owned(), audience.to_owned());
        let now = Instant::now();
        if let Some(minted) = self.lock().get(&key).filter(|m| m.renew_at > now) {
            return Ok(Arc::clone(&minted.token));
        }
        let issued = self.issuer.issue_for(
            audience,
            self.ttl,
            subject.user_id,
            subject.session_id,
            subject.role,
        )?;
        let token: Arc<str> = issued.access_token.into();
        let minted = Minted {
            token: Arc::clone(&token),
            renew_at: now + self.ttl.mul_f32(0.75),
            expires_at: now + self.ttl,
        };
        let mut cache = self.lock();
        if cache.len() >= SWEEP_AT {
            cache.retain(|_, m| m.expires_at > now);
        }
        cache.insert(key, minted);
        Ok(token)
    }

    /// Forgets the tokens of `session_id` (after a logout, say), so none is
    /// handed out again.
    pub fn forget_session(&self, session_id: &str) {
        self.lock().retain(|(session, _), _| session != session_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Minted>> {
        // A poisoned cache only holds tokens; its data is still sound.
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Algorithm, KeySet, SigningKey};
    use crate::token::{TokenVerifier, ValidationPolicy};

    fn minter(ttl: Duration) -> (Minter, KeySet) {
        let key = SigningKey::generate(Algorithm::EdDsa)
            .expect("key")
            .signing_key()
            .expect("signing");
        let keys = KeySet::new(key, vec![]).expect("keys");
        let issuer = TokenIssuer::new(keys.clone(), "bff", "bff", Duration::from_secs(900));
        (Minter::new(issuer, ttl).expect("ttl"), keys)
    }

    const ALICE: Subject<'static> = Subject {
        user_id: "u1",
        session_id: "s1",
        role: "customer",
    };

    #[test]
    fn a_minted_token_is_for_its_audience_only_and_short_lived() {
        let (minter, keys) = minter(Duration::from_secs(60));
        let token = minter.token("orders", &ALICE).expect("minted");
        let verifier = |audience: &str| {
            TokenVerifier::new(
                keys.verification_keys(),
                ValidationPolicy::new("bff", audience),
            )
        };
        let claims = verifier("orders").verify(&token).expect("valid for orders");
        assert_eq!((claims.sub.as_str(), claims.sid.as_str()), ("u1", "s1"));
        assert_eq!(claims.role, "customer");
        assert!(claims.exp - claims.iat <= 60);
        assert!(verifier("bff").verify(&token).is_err(), "not for the BFF");
        assert!(
            verifier("loyalty").verify(&token).is_err(),
            "not for another backend"
        );
    }

    #[test]
    fn tokens_are_reused_per_session_and_audience_until_renewal() {
        let (minter, _) = minter(Duration::from_millis(400));
        let first = minter.token("orders", &ALICE).expect("minted");
        assert_eq!(first, minter.token("orders", &ALICE).expect("reused"));
        let bob = Subject {
            session_id: "s2",
            ..ALICE
        };
        assert_ne!(first, minter.token("orders", &bob).expect("own session"));
        std::thread::sleep(Duration::from_millis(320));
        assert_ne!(first, minter.token("orders", &ALICE).expect("renewed"));
        let renewed = minter.token("orders", &ALICE).expect("reused");
        minter.forget_session("s1");
        assert_ne!(renewed, minter.token("orders", &ALICE).expect("fresh"));
    }

    #[test]
    fn lifetimes_are_bounded() {
        let key = SigningKey::generate(Algorithm::EdDsa)
            .expect("key")
            .signing_key()
            .expect("signing");
        let issuer = |keys| TokenIssuer::new(keys, "bff", "bff", Duration::from_secs(900));
        let keys = KeySet::new(key, vec![]).expect("keys");
        for bad in [Duration::ZERO, Duration::from_secs(61)] {
            assert_eq!(
                Minter::new(issuer(keys.clone()), bad).map(|_| ()),
                Err(MintError::Ttl)
            );
        }
    }
}
