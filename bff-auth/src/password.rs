//! Password hashing with argon2id, off the async threads.
//!
//! Hashing is deliberately slow (OWASP's argon2id parameters by default: 19 MiB,
//! two passes, one lane), so it runs on a small pool of threads of its own,
//! one per permitted concurrent hash (the cores by default), each reusing one
//! argon2 memory buffer for every hash it computes while it has work: the
//! memory of hashing is at most `threads x m_cost`, whatever the number of
//! logins (a fresh 19 MiB buffer per hash, as `Argon2::hash_password`
//! allocates, is kept by the allocator across threads and grows the process
//! by hundreds of MB), and a thread idle for [`IDLE_RELEASE`] gives its
//! buffer back to the system. Work
//! waits in a bounded queue; when it is full the call fails at once with
//! [`PasswordError::Busy`] (answer 503 with `Retry-After`) instead of making
//! the caller wait without bound. A caller that gives up before its turn
//! costs no hashing.
//! Each hash is a `password.hash` or `password.verify` span (a trace span
//! with OpenTelemetry), queueing included.
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

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::oneshot;
use tracing::Instrument;

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
            .field("held_bytes", &self.held_bytes())
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
        Self::with_idle_release(params, threads, queue, IDLE_RELEASE)
    }

    /// [`with_pool`](Self::with_pool), with threads giving their memory back
    /// after `idle_release` without work (instead of [`IDLE_RELEASE`]).
    pub fn with_idle_release(
        params: HashParams,
        threads: usize,
        queue: usize,
        idle_release: Duration,
    ) -> Result<Self, PasswordError> {
        let params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|e| PasswordError::Params(e.to_string()))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let pool = Pool::start(threads.max(1), queue, params.block_count(), idle_release)?;
        // The dummy's password is random and discarded: nothing can ever match it.
        let secret =
            crate::random::base64url(32).map_err(|e| PasswordError::Hash(e.to_string()))?;
        let mut memory = Vec::new();
        let dummy = hash_with(&argon2, secret.as_bytes(), &mut memory)?;
        drop(memory);
        Ok(Self {
            params,
            pool: Arc::new(pool),
            dummy: dummy.into(),
        })
    }

    /// The bytes of argon2 memory the hashing threads hold now: a buffer per
    /// thread that hashed within [`IDLE_RELEASE`], none for the others.
    pub fn held_bytes(&self) -> usize {
        self.pool.shared.held.load(Ordering::Relaxed)
    }

    /// Hashes `password` into a PHC string.
    pub async fn hash(&self, password: SecretString) -> Result<String, PasswordError> {
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone());
        self.pool
            .run(move |memory| hash_with(&argon2, password.expose_secret().as_bytes(), memory))
            .instrument(tracing::info_span!("password.hash"))
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
            .instrument(tracing::info_span!("password.verify"))
            .await
    }
}

/// Gauge of the bytes of argon2 memory held by hashing threads (of every
/// hasher in the process).
pub const MEMORY_GAUGE: &str = "bff_password_hash_memory_bytes";

/// One hash to compute, given the thread's memory.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// How long a hashing thread keeps its memory with nothing to hash: after
/// that it gives the buffer back (19 MiB with the default parameters), so a
/// service that is not logging anyone in holds none, and a burst of logins
/// costs one allocation per thread.
pub const IDLE_RELEASE: Duration = Duration::from_secs(10);

/// The hashing threads and their bounded queue. The threads end when the
/// last hasher is dropped.
struct Pool {
    shared: Arc<Shared>,
    threads: usize,
    queue: usize,
}

/// What the pool's threads and its callers share.
struct Shared {
    state: Mutex<Queue>,
    /// Signalled when a job is queued or the pool closes.
    ready: Condvar,
    /// The bytes of argon2 memory the threads hold now.
    held: AtomicUsize,
    idle_release: Duration,
}

struct Queue {
    jobs: VecDeque<Job>,
    /// How many jobs may wait with every thread busy.
    capacity: usize,
    /// Threads waiting for a job: each takes one at once, so a queue of 0
    /// still accepts a job while a thread is free.
    idle: usize,
    closed: bool,
}

impl Pool {
    fn start(
        threads: usize,
        queue: usize,
        blocks: usize,
        idle_release: Duration,
    ) -> Result<Self, PasswordError> {
        let shared = Arc::new(Shared {
            state: Mutex::new(Queue {
                jobs: VecDeque::with_capacity(queue),
                capacity: queue,
                idle: 0,
                closed: false,
            }),
            ready: Condvar::new(),
            held: AtomicUsize::new(0),
            idle_release,
        });
        for index in 0..threads {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || work(&shared, blocks))
                .map_err(|_| PasswordError::Task)?;
        }
        Ok(Self {
            shared,
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
        {
            let mut state = self.shared.state.lock().map_err(|_| PasswordError::Task)?;
            if state.closed {
                return Err(PasswordError::Task);
            }
            if state.jobs.len() >= state.capacity + state.idle {
                metrics::counter!("bff_password_hash_rejected_total").increment(1);
                return Err(PasswordError::Busy);
            }
            state.jobs.push_back(job);
        }
        self.shared.ready.notify_one();
        answer.await.map_err(|_| PasswordError::Task)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if let Ok(mut state) = self.shared.state.lock() {
            state.closed = true;
        }
        self.shared.ready.notify_all();
    }
}

/// A hashing thread: one memory buffer, allocated at its first hash and
/// reused for every one after (dropped after a stored hash made with more
/// memory grew it), and given back after [`IDLE_RELEASE`] without work, so
/// a thread that is not hashing holds none.
fn work(shared: &Shared, blocks: usize) {
    let mut memory: Vec<Block> = Vec::new();
    let mut counted = 0;
    loop {
        let Some(job) = next_job(shared, &mut memory, &mut counted) else {
            // The pool is closed: the buffer goes with the thread.
            account(shared, 0, &mut counted);
            return;
        };
        // A panicking job loses its answer (the caller sees `Task`), not the thread.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut memory)));
        // A stored hash made with more memory grew the buffer: give it back
        // rather than keep it for good (the next hash maps a new one).
        if memory.len() > blocks {
            memory = Vec::new();
        }
        account(shared, memory.len(), &mut counted);
    }
}

/// Brings the pool's count of held bytes up to date with a thread's buffer of
/// `blocks` blocks, of which `counted` bytes were counted before.
#[allow(clippy::cast_precision_loss)]
fn account(shared: &Shared, blocks: usize, counted: &mut usize) {
    let now = blocks * size_of::<Block>();
    let total = if now >= *counted {
        shared.held.fetch_add(now - *counted, Ordering::Relaxed);
        HELD_IN_PROCESS.fetch_add(now - *counted, Ordering::Relaxed) + (now - *counted)
    } else {
        shared.held.fetch_sub(*counted - now, Ordering::Relaxed);
        HELD_IN_PROCESS.fetch_sub(*counted - now, Ordering::Relaxed) - (*counted - now)
    };
    *counted = now;
    // Set, not moved by the change: a recorder installed after the first
    // hashes (the seed user's, at start) still reads the whole amount.
    metrics::gauge!(MEMORY_GAUGE).set(total as f64);
}

/// The bytes of argon2 memory held by the hashing threads of every hasher.
static HELD_IN_PROCESS: AtomicUsize = AtomicUsize::new(0);

/// The next job for a thread holding `memory`; `None` once the pool is closed
/// and drained. Waiting longer than the pool's idle period releases `memory`.
fn next_job(shared: &Shared, memory: &mut Vec<Block>, counted: &mut usize) -> Option<Job> {
    let mut state = shared.state.lock().ok()?;
    loop {
        if let Some(job) = state.jobs.pop_front() {
            return Some(job);
        }
        if state.closed {
            return None;
        }
        state.idle += 1;
        if memory.capacity() == 0 {
            state = shared.ready.wait(state).ok()?;
            state.idle -= 1;
            continue;
        }
        let (next, timeout) = shared.ready.wait_timeout(state, shared.idle_release).ok()?;
        state = next;
        state.idle -= 1;
        if timeout.timed_out() && state.jobs.is_empty() {
            *memory = Vec::new();
            account(shared, 0, counted);
        }
    }
}

/// The least a hashing buffer reserves: 32 MiB and a block, above glibc's
/// largest dynamic mmap threshold (`DEFAULT_MMAP_THRESHOLD_MAX`, 32 MiB on
/// 64-bit). glibc then maps every buffer on its own and unmaps it when it is
/// freed, whatever buffers came before; a 19 MiB buffer freed once raises the
/// threshold above 19 MiB, and the next ones are carved from a thread's arena
/// and never given back. Only the blocks a hash uses are ever touched, so
/// the rest of the reservation costs address space, not memory.
const RESERVED_BLOCKS: usize = 32 * 1024 + 1;

/// Ensures `memory` holds at least `params`' blocks.
fn reserve(memory: &mut Vec<Block>, params: &Params) {
    let needed = params.block_count();
    if memory.len() < needed {
        if memory.capacity() < needed {
            *memory = Vec::with_capacity(needed.max(RESERVED_BLOCKS));
        }
        memory.resize(needed, Block::default());
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

    /// Whether `check` holds within 5 s (asked every 10 ms).
    async fn eventually(check: impl Fn() -> bool) -> bool {
        let wait = async {
            while !check() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn idle_threads_give_their_memory_back() {
        const MIB: usize = 1024 * 1024;
        let params = cheap();
        let hasher = PasswordHasher::with_idle_release(params, 2, 8, Duration::from_millis(300))
            .expect("params");
        assert_eq!(hasher.held_bytes(), 0, "no thread has hashed yet");
        // The count follows each answer (a thread counts its buffer once it
        // has answered): wait for it to settle at `check`.
        let this = &hasher;
        let settled = |check: fn(usize) -> bool| eventually(move || check(this.held_bytes()));
        let phc = hasher.hash("pw".into()).await.expect("hash");
        // Busy threads keep their buffer from one hash to the next: one or
        // two buffers, never more.
        for _ in 0..5 {
            assert!(
                hasher
                    .verify("pw".into(), Some(phc.clone()))
                    .await
                    .expect("verify")
                    .matches
            );
            assert!(
                settled(|held| held == MIB || held == 2 * MIB).await,
                "{} bytes held",
                hasher.held_bytes()
            );
        }
        assert!(
            settled(|held| held == 0).await,
            "idle threads release their memory"
        );
        // A released thread hashes again, in a new buffer.
        assert!(
            hasher
                .verify("pw".into(), Some(phc))
                .await
                .expect("verify")
                .matches
        );
        assert!(settled(|held| held >= MIB).await);
    }

    #[tokio::test]
    async fn a_queue_of_zero_takes_a_hash_while_a_thread_is_free() {
        let hasher = PasswordHasher::with_pool(cheap(), 1, 0).expect("params");
        // Until the thread waits for work, nothing may wait for it.
        let free = || async {
            let waiting = || hasher.pool.shared.state.lock().expect("state").idle > 0;
            assert!(eventually(waiting).await, "the thread waits for work");
        };
        free().await;
        let phc = hasher
            .hash("pw".into())
            .await
            .expect("a free thread takes it");
        free().await;
        assert!(
            hasher
                .verify("pw".into(), Some(phc))
                .await
                .expect("verify")
                .matches
        );
    }
}
