//! The in-memory limiter against the `governor` crate (the best-known Rust
//! GCRA), side by side in one run, on the same 1,000 keys:
//!
//! ```text
//! cargo bench -p bff-cache --bench ratelimit
//! ```

use std::hint::black_box;
use std::num::NonZeroU32;

use bff_cache::ratelimit::{MemoryBackend, Quota};
use criterion::{Criterion, criterion_group, criterion_main};

fn keys() -> Vec<String> {
    (0..1_000).map(|i| format!("client-{i}")).collect()
}

fn decisions(c: &mut Criterion) {
    let keys = keys();
    let mut group = c.benchmark_group("rate limit decision, 1000 keys");

    let ours = MemoryBackend::default();
    // A quota no benchmark exhausts, so every decision is a full allow path.
    let quota = Quota::per_second(1_000_000_000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();
    let mut i = 0;
    group.bench_function("bff-cache MemoryBackend", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(ours.decide(black_box(&keys[i]), &quota))
        })
    });

    let limit = NonZeroU32::new(1_000_000_000).unwrap_or(NonZeroU32::MIN);
    let governor = governor::RateLimiter::keyed(governor::Quota::per_second(limit));
    let mut j = 0;
    group.bench_function("governor keyed (dashmap)", |b| {
        b.iter(|| {
            j = (j + 1) % keys.len();
            black_box(governor.check_key(black_box(&keys[j])).is_ok())
        })
    });
    group.finish();
}

criterion_group!(benches, decisions);
criterion_main!(benches);
