//! Password hashing with argon2id, off the async threads.
//!
//! Hashing is deliberately slow (OWASP's argon2id parameters by default: 19 MiB,
//! two passes, one lane), so it runs on a small pool of threads of its own,
//! one per permitted concurrent hash (the cores by default), each reusing one
//! argon2 memory buffer for every hash it computes: the memory of hashing is
//! `threads x m_cost`, allocated once, whatever the number of logins (a fresh
//! 19 MiB buffer per hash, as `Argon2::hash_password` allocates, is kept by the
//! allocator across threads and grows the process by hundreds of MB). Work
//! waits in a bounded queue; when it is full the call fails at once with
//! [`PasswordError::Busy`] (answer 503 with `Retry-After`) instead of making
//! the caller wait without bound. A caller that gives up before its turn
//! costs no hashing.
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

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::oneshot;

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
    /// The hashing thread panicked or is gone.
    #[error("password hashing task failed")]
    Task,
    /// The queue of hashes waiting for a thread is full: try again shortly.
    #[error("password hashing is at capacity")]
    Busy,
}

/// The outcome of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    /// The password matches the hash.
    pub matches: bool,
    /// It matches, and the hash was made with other parameters: store a new one.
    pub needs_rehash: bool,
}

/// Hashes and verifies passwords; cheap to clone (clones share the threads).
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    pool: Arc<Pool>,
    dummy: Arc<str>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .field("threads", &self.pool.threads)
            .field("queue", &self.pool.queue)
            .finish()
    }
}

/// The default queue: this many waiting hashes per thread (at 14 to 30 ms a
/// hash with the default parameters on one core, a quarter to half a second
/// of work).
pub const DEFAULT_QUEUE_PER_THREAD: usize = 16;

impl PasswordHasher {
    /// A hasher with `params`, hashing on as many threads as there are cores,
    /// with a queue of [`DEFAULT_QUEUE_PER_THREAD`] per thread.
    pub fn new(params: HashParams) -> Result<Self, PasswordError> {
        Self::with_concurrency(params, Self::default_threads())
    }

    /// The threads [`new`](Self::new) hashes on: one per core.
    pub fn default_threads() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// A hasher hashing on `concurrency` threads, with a queue of
    /// [`DEFAULT_QUEUE_PER_THREAD`] per thread.
    pub fn with_concurrency(params: HashParams, concurrency: usize) -> Result<Self, PasswordError> {
        let concurrency = concurrency.max(1);
        Self::with_pool(params, concurrency, concurrency * DEFAULT_QUEUE_PER_THREAD)
    }

    /// A hasher hashing on `threads` threads, with at most `queue` hashes
    /// waiting for one; past that, calls fail with [`PasswordError::Busy`].
    pub fn with_pool(
        params: HashParams,
        threads: usize,
        queue: usize,
    ) -> Result<Self, PasswordError> {
        let params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|e| PasswordError::Params(e.to_string()))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let pool = Pool::start(threads.max(1), queue, params.block_count())?;
        // The dummy's password is random and discarded: nothing can ever match it.
        let secret =
            crate::random::base64url(32).map_err(|e| PasswordError::Hash(e.to_string()))?;
        let mut memory = vec![Block::default(); params.block_count()];
        let dummy = hash_with(&argon2, secret.as_bytes(), &mut memory)?;
        drop(memory);
        Ok(Self {
            params,
            pool: Arc::new(pool),
            dummy: dummy.into(),
        })
    }

    /// Hashes `password` into a PHC string.
    pub async fn hash(&self, password: SecretString) -> Result<String, PasswordError> {
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone());
        self.pool
            .run(move |memory| hash_with(&argon2, password.expose_secret().as_bytes(), memory))
            .await?
    }

    /// Verifies `password` against `phc`; with `None` (no such account) it
    /// verifies against a dummy hash, taking as long, and answers no match.
    pub async fn verify(
        &self,
        password: SecretString,
        phc: Option<String>,
    ) -> Result<Verification, PasswordError> {
        let params = self.params.clone();
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.dummy.to_string());
        let dummy = Arc::clone(&self.dummy);
        self.pool
            .run(move |memory| {
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
                let verified = verify_with(password.expose_secret().as_bytes(), &parsed, memory);
                let matches = verified && known;
                let needs_rehash = matches && !same_params(&parsed, &params);
                Verification {
                    matches,
                    needs_rehash,
                }
            })
            .await
    }
}

/// One hash to compute, given the thread's memory.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// The hashing threads and their bounded queue. The threads end when the
/// last hasher is dropped (the queue's sender with it).
struct Pool {
    sender: SyncSender<Job>,
    threads: usize,
    queue: usize,
}

impl Pool {
    fn start(threads: usize, queue: usize, blocks: usize) -> Result<Self, PasswordError> {
        let (sender, receiver) = mpsc::sync_channel::<Job>(queue);
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..threads {
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || work(&receiver, blocks))
                .map_err(|_| PasswordError::Task)?;
        }
        Ok(Self {
            sender,
            threads,
            queue,
        })
    }

    /// Runs `job` on a hashing thread with its memory; `Busy` when the queue
    /// is full.
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let (done, answer) = oneshot::channel();
        let job: Job = Box::new(move |memory| {
            // The caller gave up (a closed connection, a timeout) before this
            // hash's turn: spend nothing on it.
            if done.is_closed() {
                return;
            }
            let _ = done.send(job(memory));
        });
        match self.sender.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                metrics::counter!("bff_password_hash_rejected_total").increment(1);
                return Err(PasswordError::Busy);
            }
            Err(TrySendError::Disconnected(_)) => return Err(PasswordError::Task),
        }
        answer.await.map_err(|_| PasswordError::Task)
    }
}

/// A hashing thread: one memory buffer, allocated at its first hash and
/// reused for every one after (grown for a stored hash made with more memory,
/// then shrunk back), so a thread that never hashed holds none.
fn work(receiver: &Mutex<Receiver<Job>>, blocks: usize) {
    let mut memory = Vec::new();
    loop {
        let job = match receiver.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        // A panicking job loses its answer (the caller sees `Task`), not the thread.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut memory)));
        // A stored hash made with more memory grew the buffer: give the
        // excess back rather than keep it for good.
        if memory.len() > blocks {
            memory.truncate(blocks);
            memory.shrink_to_fit();
        }
    }
}

/// Ensures `memory` holds at least `params`' blocks.
fn reserve(memory: &mut Vec<Block>, params: &Params) {
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
}

fn hash_with(
    argon2: &Argon2<'_>,
    password: &[u8],
    memory: &mut Vec<Block>,
) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_raw = salt
        .as_salt()
        .decode_b64(&mut salt_bytes)
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    let params = argon2.params().clone();
    reserve(memory, &params);
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2
        .hash_password_into_with_memory(password, salt_raw, &mut out, memory.as_mut_slice())
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    let output = Output::new(&out).map_err(|e| PasswordError::Hash(e.to_string()))?;
    let phc = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: params
            .try_into()
            .map_err(|e: argon2::password_hash::Error| PasswordError::Hash(e.to_string()))?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// Checks `password` against a parsed PHC hash with the hash's own
/// algorithm and parameters, in `memory`; the comparison is constant-time
/// (`Output`'s equality).
fn verify_with(password: &[u8], hash: &PasswordHash<'_>, memory: &mut Vec<Block>) -> bool {
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm) else {
        return false;
    };
    let version = hash
        .version
        .and_then(|v| Version::try_from(v).ok())
        .unwrap_or_default();
    // With the output length of the stored hash.
    let Ok(params) = Params::try_from(hash) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_raw) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    reserve(memory, &params);
    let argon2 = Argon2::new(algorithm, version, params);
    let mut out = [0u8; Output::MAX_LENGTH];
    let out = &mut out[..expected.len()];
    if argon2
        .hash_password_into_with_memory(password, salt_raw, out, memory.as_mut_slice())
        .is_err()
    {
        return false;
    }
    Output::new(out).is_ok_and(|actual| actual == expected)
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

    #[tokio::test]
    async fn hashes_are_argon2s_own_phc_strings_both_ways() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let hasher = PasswordHasher::new(cheap()).expect("params");
        let ours = hasher.hash("s3cret".into()).await.expect("hash");
        let reference = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(1024, 1, 1, None).expect("params"),
        );
        let parsed = PasswordHash::new(&ours).expect("phc");
        assert!(reference.verify_password(b"s3cret", &parsed).is_ok());
        assert!(reference.verify_password(b"s3cres", &parsed).is_err());
        // And a hash argon2 made (more memory than the threads hold) verifies here.
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        let theirs = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(2048, 2, 1, None).expect("params"),
        )
        .hash_password(b"s3cret", &salt)
        .expect("hash")
        .to_string();
        let verification = hasher
            .verify("s3cret".into(), Some(theirs.clone()))
            .await
            .expect("verify");
        assert!(verification.matches && verification.needs_rehash);
        assert!(
            !hasher
                .verify("nope".into(), Some(theirs))
                .await
                .expect("verify")
                .matches
        );
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_at_once_and_recovers() {
        // One thread, one waiting hash, slow parameters: of four at once, the
        // first runs, the second waits, the others are refused.
        let slow = HashParams {
            memory_kib: 8 * 1024,
            iterations: 8,
            parallelism: 1,
        };
        let hasher = PasswordHasher::with_pool(slow, 1, 1).expect("params");
        let calls = (0..4).map(|_| {
            let hasher = hasher.clone();
            tokio::spawn(async move { hasher.hash("pw".into()).await })
        });
        let mut busy = 0;
        let mut done = 0;
        for call in calls.collect::<Vec<_>>() {
            match call.await.expect("joined") {
                Ok(_) => done += 1,
                Err(PasswordError::Busy) => busy += 1,
                Err(other) => panic!("{other}"),
            }
        }
        assert!(busy >= 1 && done >= 1, "busy {busy}, done {done}");
        assert_eq!(busy + done, 4);
        // Once the queue drained, hashing works again.
        assert!(hasher.hash("pw".into()).await.is_ok());
    }
}
