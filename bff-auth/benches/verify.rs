//! Token verification cost: the signature alone, the full verifier, and JwtLayer
//! on a cold (uncached) and a cached token, for each algorithm.
//!
//! ```text
//! cargo bench -p bff-auth --bench verify
//! ```
//!
//! Results and the machine they came from are in `docs/benchmarks.md`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bff_auth::keys::{Algorithm, KeySet, SigningKey};
use bff_auth::layer::JwtLayer;
use bff_auth::token::{TokenIssuer, TokenVerifier, ValidationPolicy};
use criterion::{Criterion, criterion_group, criterion_main};
use josekit::jws::JwsVerifier as _;

/// Distinct tokens per algorithm for the cold benchmark.
const COLD_TOKENS: usize = 5_000;

fn setup(algorithm: Algorithm) -> (KeySet, TokenIssuer, TokenVerifier) {
    let key = SigningKey::generate(algorithm)
        .expect("keygen")
        .signing_key()
        .expect("load");
    let keys = KeySet::new(key, Vec::new()).expect("keys");
    let issuer = TokenIssuer::new(keys.clone(), "bench", "bench", Duration::from_secs(3600));
    let verifier = TokenVerifier::new(
        keys.verification_keys(),
        ValidationPolicy::new("bench", "bench"),
    );
    (keys, issuer, verifier)
}

fn verification(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    for algorithm in Algorithm::ALL {
        let (keys, issuer, verifier) = setup(algorithm);
        let token = issuer
            .issue("user", "session", "customer")
            .expect("issue")
            .access_token;
        let (input, signature) = token.rsplit_once('.').expect("compact JWS");
        let signature =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, signature)
                .expect("b64");
        let public = keys.signing_key().public_key().clone();

        let mut group = c.benchmark_group(algorithm.name());
        group.bench_function("signature only", |b| {
            b.iter(|| assert!(public.verify(black_box(input.as_bytes()), black_box(&signature))))
        });
        if algorithm == Algorithm::EdDsa {
            // What the Ed25519 check cost before ed25519-dalek: OpenSSL through
            // josekit, in the same run.
            let openssl = josekit::jws::EdDSA
                .verifier_from_jwk(public.jwk())
                .expect("josekit verifier");
            group.bench_function("signature only, OpenSSL", |b| {
                b.iter(|| {
                    assert!(
                        openssl
                            .verify(black_box(input.as_bytes()), black_box(&signature))
                            .is_ok()
                    )
                })
            });
        }
        group.bench_function("TokenVerifier", |b| {
            b.iter(|| verifier.verify(black_box(&token)).expect("valid"))
        });

        // Cold: every token is new to the layer, so each is verified and inserted.
        // The tokens are made beforehand: signing (RSA's especially) inside the
        // loop would evict the CPU caches the timed code runs in.
        let tokens: Vec<String> = (0..COLD_TOKENS)
            .map(|_| {
                issuer
                    .issue("user", "session", "customer")
                    .expect("issue")
                    .access_token
            })
            .collect();
        group.bench_function("JwtLayer cold", |b| {
            b.iter_custom(|iters| {
                // A fresh layer per pass over the tokens, outside the timing, so
                // every timed call meets a token its layer has not seen.
                let mut elapsed = Duration::ZERO;
                let mut remaining = usize::try_from(iters).unwrap_or(usize::MAX);
                while remaining > 0 {
                    let layer = JwtLayer::new(verifier.clone());
                    let pass = &tokens[..remaining.min(tokens.len())];
                    let start = Instant::now();
                    for token in pass {
                        runtime
                            .block_on(layer.authenticate(black_box(token)))
                            .expect("valid");
                    }
                    elapsed += start.elapsed();
                    remaining -= pass.len();
                }
                elapsed
            })
        });

        // Cached: the same token again, as a busy client sends it.
        let layer = JwtLayer::new(verifier.clone());
        runtime.block_on(layer.authenticate(&token)).expect("valid");
        group.bench_function("JwtLayer cached", |b| {
            b.iter(|| {
                runtime
                    .block_on(layer.authenticate(black_box(&token)))
                    .expect("valid")
            })
        });
        group.finish();
    }
}

criterion_group!(benches, verification);
criterion_main!(benches);
