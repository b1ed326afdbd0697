//! Password hashing with argon2id, off the async threads.
//!
//! Hashing is deliberately slow (OWASP's argon2id parameters by default: 19 MiB,
//! two passes, one lane), so it runs on the blocking pool behind a semaphore
//! sized to the cores: a login flood queues instead of starving the runtime.
//! Verifying against an unknown account uses a dummy hash with the same
//! parameters, so the answer takes as long as for a real account. Hashes are
//! PHC strings; [`Verification::needs_rehash`] says when a stored hash was made
//! with other parameters and should be replaced at the next successful login.
//!
//! ```
//! # tokio_test_block_on(async {
//! use bff_auth::password::{HashParams, PasswordHasher};
//!
//! let hasher = PasswordHasher::new(HashParams::default()).unwrap();
//! let phc = hasher.hash("correct horse battery staple".into()).await.unwrap();
//! assert!(hasher.verify("correct horse battery staple".into(), Some(phc)).await.unwrap().matches);
//! assert!(!hasher.verify("wrong".into(), None).await.unwrap().matches);
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    /// Memory in KiB (default 19456, i.e. 19 MiB).
    pub memory_kib: u32,
    /// Passes (default 2).
    pub iterations: u32,
    /// Lanes (default 1).
    pub parallelism: u32,
}

impl Default for HashParams {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Why hashing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// The parameters are outside argon2's limits.
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    /// Hashing failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The blocking task was cancelled or panicked.
    #[error("password hashing task failed")]
    Task,
}

/// The outcome of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    /// The password matches the hash.
    pub matches: bool,
    /// It matches, and the hash was made with other parameters: store a new one.
    pub needs_rehash: bool,
}

/// Hashes and verifies passwords; cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    params: Params,
    permits: Arc<Semaphore>,
    dummy: Arc<str>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .field("permits", &self.permits.available_permits())
            .finish()
    }
}

impl PasswordHasher {
    /// A hasher with `params`, allowing as many concurrent hashes as there are cores.
    pub fn new(params: HashParams) -> Result<Self, PasswordError> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_concurrency(params, cores)
    }

    /// A hasher allowing at most `concurrency` hashes at once.
    pub fn with_concurrency(params: HashParams, concurrency: usize) -> Result<Self, PasswordError> {
        let params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|e| PasswordError::Params(e.to_string()))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        // The dummy's password is random and discarded: nothing can ever match it.
        let secret =
            crate::random::base64url(32).map_err(|e| PasswordError::Hash(e.to_string()))?;
        let dummy = hash_with(&argon2, secret.as_bytes())?;
        Ok(Self {
            argon2,
            params,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy: dummy.into(),
        })
    }

    /// Hashes `password` into a PHC string.
    pub async fn hash(&self, password: SecretString) -> Result<String, PasswordError> {
        let argon2 = self.argon2.clone();
        self.run(move || hash_with(&argon2, password.expose_secret().as_bytes()))
            .await?
    }

    /// Verifies `password` against `phc`; with `None` (no such account) it
    /// verifies against a dummy hash, taking as long, and answers no match.
    pub async fn verify(
        &self,
        password: SecretString,
        phc: Option<String>,
    ) -> Result<Verification, PasswordError> {
        let argon2 = self.argon2.clone();
        let params = self.params.clone();
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.dummy.to_string());
        let dummy = Arc::clone(&self.dummy);
        self.run(move || {
            let (parsed, known) = match PasswordHash::new(&phc) {
                Ok(parsed) => (parsed, known),
                Err(_) => {
                    // A corrupt stored hash must neither let anyone in nor answer
                    // faster than a real check: verify against the dummy instead.
                    tracing::error!("stored password hash is not a PHC string");
                    match PasswordHash::new(&dummy) {
                        Ok(parsed) => (parsed, false),
                        Err(_) => {
                            return Verification {
                                matches: false,
                                needs_rehash: false,
                            };
                        }
                    }
                }
            };
            // The hash is always checked, then the account's existence: with `known`
            // first, `&&` would skip the work for unknown accounts and time would
            // tell them apart.
            let verified = argon2
                .verify_password(password.expose_secret().as_bytes(), &parsed)
                .is_ok();
            let matches = verified && known;
            let needs_rehash = matches && !same_params(&parsed, &params);
            Verification {
                matches,
                needs_rehash,
            }
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordError::Task)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| PasswordError::Task)
    }
}

fn hash_with(argon2: &Argon2<'_>, password: &[u8]) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon2
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

fn same_params(hash: &PasswordHash<'_>, params: &Params) -> bool {
    let Ok(stored) = Params::try_from(hash) else {
        return false;
    };
    hash.algorithm.as_str() == "argon2id"
        && hash.version == Some(Version::V0x13.into())
        && stored.m_cost() == params.m_cost()
        && stored.t_cost() == params.t_cost()
        && stored.p_cost() == params.p_cost()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> HashParams {
        HashParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[tokio::test]
    async fn hashes_verify_and_differ_by_salt() {
        let hasher = PasswordHasher::new(cheap()).expect("params");
        let a = hasher.hash("пароль-ünïcode".into()).await.expect("hash");
        let b = hasher.hash("пароль-ünïcode".into()).await.expect("hash");
        assert_ne!(a, b);
        assert!(a.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{a}");
        let ok = hasher
            .verify("пароль-ünïcode".into(), Some(a.clone()))
            .await
            .expect("verify");
        assert_eq!(
            ok,
            Verification {
                matches: true,
                needs_rehash: false
            }
        );
        assert!(
            !hasher
                .verify("пароль".into(), Some(a))
                .await
                .expect("verify")
                .matches
        );
    }

    #[tokio::test]
    async fn unknown_accounts_and_corrupt_hashes_never_match() {
        let hasher = PasswordHasher::new(cheap()).expect("params");
        assert!(
            !hasher
                .verify("anything".into(), None)
                .await
                .expect("verify")
                .matches
        );
        assert!(
            !hasher
                .verify("anything".into(), Some("not a phc".into()))
                .await
                .expect("verify")
                .matches
        );
    }

    #[tokio::test]
    async fn changed_parameters_ask_for_a_rehash() {
        let old = PasswordHasher::new(cheap()).expect("params");
        let phc = old.hash("secret password".into()).await.expect("hash");
        let new = PasswordHasher::new(HashParams {
            iterations: 2,
            ..cheap()
        })
        .expect("params");
        let verification = new
            .verify("secret password".into(), Some(phc))
            .await
            .expect("verify");
        assert_eq!(
            verification,
            Verification {
                matches: true,
                needs_rehash: true
            }
        );
    }

    #[tokio::test]
    async fn an_unknown_account_costs_as_much_as_a_wrong_password() {
        // Equal work, not a speed target: the dummy path must run argon2 too. A
        // cost high enough to dwarf scheduling noise, medians of several runs,
        // and a generous bound keep this stable on a loaded machine.
        let hasher = PasswordHasher::with_concurrency(
            HashParams {
                memory_kib: 8 * 1024,
                iterations: 3,
                parallelism: 1,
            },
            1,
        )
        .expect("params");
        let phc = hasher.hash("the real password".into()).await.expect("hash");
        let mut known = Vec::new();
        let mut unknown = Vec::new();
        for _ in 0..7 {
            let start = std::time::Instant::now();
            assert!(
                !hasher
                    .verify("wrong".into(), Some(phc.clone()))
                    .await
                    .expect("verify")
                    .matches
            );
            known.push(start.elapsed());
            let start = std::time::Instant::now();
            assert!(
                !hasher
                    .verify("wrong".into(), None)
                    .await
                    .expect("verify")
                    .matches
            );
            unknown.push(start.elapsed());
        }
        known.sort();
        unknown.sort();
        let (known, unknown) = (known[3], unknown[3]);
        assert!(
            unknown * 2 >= known,
            "unknown account {unknown:?} vs wrong password {known:?}"
        );
    }

    #[test]
    fn defaults_are_owasps() {
        assert_eq!(
            HashParams::default(),
            HashParams {
                memory_kib: 19456,
                iterations: 2,
                parallelism: 1
            }
        );
    }
}
