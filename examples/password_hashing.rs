//! Password hashing with bff-auth's `PasswordHasher`, and what it costs, with
//! no infrastructure:
//!
//! ```text
//! cargo run --release --example password_hashing [HASHES]      (default 200)
//! ```
//!
//! It verifies `HASHES` passwords through the hasher (OWASP's parameters, the
//! defaults: 19 MiB, two passes) from several concurrent callers and prints
//! the rate and the process's resident memory, which stays near
//! `threads x 19 MiB` however many hashes are made. Then it times argon2id
//! alone on one thread, which gives the machine's ceiling (cores / time per
//! hash) to compare the rate with, and shows the memory that argon2's own
//! `hash_password` leaves behind (a fresh buffer per hash). Last, a
//! hasher with one thread and a queue of one, sent more work than it takes,
//! answers `Busy` at once (an app maps it to 503 with `Retry-After`).

use std::time::Instant;

use argon2::password_hash::{PasswordHasher as _, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use bff_auth::password::{HashParams, PasswordError, PasswordHasher};

/// `println!`, through `writeln!` (the workspace warns on `println!`).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let hashes: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 200,
    };
    let params = HashParams::default();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let hasher = PasswordHasher::new(params)?;
    let stored = hasher.hash("correct horse".into()).await?;
    say!("rss before: {} MB", rss_mb());
    let started = Instant::now();
    let callers = cores * 4;
    let mut tasks = tokio::task::JoinSet::new();
    for caller in 0..callers {
        let hasher = hasher.clone();
        let stored = stored.clone();
        let share = hashes / callers + usize::from(caller < hashes % callers);
        tasks.spawn(async move {
            let mut matched = 0;
            for _ in 0..share {
                let verification = hasher
                    .verify("correct horse".into(), Some(stored.clone()))
                    .await?;
                matched += usize::from(verification.matches);
            }
            Ok::<_, PasswordError>(matched)
        });
    }
    let mut matched = 0;
    while let Some(done) = tasks.join_next().await {
        matched += done??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rate = hashes as f64 / elapsed;
    say!(
        "PasswordHasher ({cores} threads): {matched}/{hashes} verified in {elapsed:.1} s, {rate:.1}/s; rss after: {} MB",
        rss_mb()
    );

    // argon2id alone on one thread, in one buffer: the compute a hash costs,
    // so the ceiling is cores / that.
    let reference = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|e| e.to_string())?,
    );
    let rounds = 20;
    let mut memory = vec![Block::default(); reference.params().block_count()];
    let mut output = [0u8; 32];
    let started = Instant::now();
    for _ in 0..rounds {
        reference
            .hash_password_into_with_memory(
                b"correct horse",
                b"a salt of 16 b.",
                &mut output,
                &mut memory,
            )
            .map_err(|e| e.to_string())?;
    }
    drop(memory);
    let per_hash = started.elapsed().as_secs_f64() / f64::from(rounds);
    let ceiling = cores as f64 / per_hash;
    say!(
        "argon2id alone: {:.1} ms a hash on one thread, a ceiling of {ceiling:.1}/s on {cores} cores: \
         the hasher did {:.0}% of it",
        per_hash * 1000.0,
        100.0 * rate / ceiling
    );

    // What the hasher avoids: argon2's own `hash_password` allocates a fresh
    // buffer per hash, which the allocator keeps.
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    for _ in 0..rounds {
        reference
            .hash_password(b"correct horse", &salt)
            .map_err(|e| e.to_string())?;
    }
    say!(
        "rss after {rounds} more hashes by argon2's own hash_password, one thread: {} MB",
        rss_mb()
    );

    // A full queue refuses at once instead of making callers wait.
    let small = PasswordHasher::with_pool(params, 1, 1)?;
    let attempts: Vec<_> = (0..4)
        .map(|_| {
            let small = small.clone();
            tokio::spawn(async move { small.hash("correct horse".into()).await })
        })
        .collect();
    let mut busy = 0;
    for attempt in attempts {
        busy += usize::from(matches!(attempt.await?, Err(PasswordError::Busy)));
    }
    say!("one thread, queue of one, four hashes at once: {busy} answered Busy");
    Ok(())
}

/// The process's resident memory in MB (Linux; 0 elsewhere).
fn rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|value| value.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}
