//! The in-memory backend: sharded, evicting idle keys.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;

use super::{Backend, BoxFuture, Decision, Quota, RateLimitError, gcra};

/// GCRA state in this process: for a single instance, for examples, and as
/// the fallback when Redis is away.
///
/// Keys are spread over shards, each behind its own short-held lock. A key
/// whose bucket is full again (its TAT has passed) carries no information, so
/// idle keys are dropped whenever a shard grows past its share of the key
/// budget; memory stays bounded by the keys active within one burst window.
/// Keys are hashed with a per-process random seed, so clients cannot choose
/// keys that collide. Time is the system's monotonic clock, or tokio's (which
/// tests can pause and advance) with [`MemoryBackend::with_tokio_clock`].
#[derive(Debug)]
pub struct MemoryBackend {
    shards: Box<[Mutex<Shard>]>,
    hasher: foldhash::quality::RandomState,
    clock: Clock,
    max_keys_per_shard: usize,
}

#[derive(Debug, Clone, Copy)]
enum Clock {
    System(std::time::Instant),
    Tokio(tokio::time::Instant),
}

#[derive(Debug, Default)]
struct Shard {
    tats: HashMap<String, u64, foldhash::quality::RandomState>,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self::new(100_000)
    }
}

impl MemoryBackend {
    /// A backend sized for about `max_keys` active keys.
    pub fn new(max_keys: usize) -> Self {
        let shards = std::thread::available_parallelism()
            .map_or(4, |n| n.get() * 4)
            .next_power_of_two();
        Self {
            shards: (0..shards).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: foldhash::quality::RandomState::default(),
            clock: Clock::System(std::time::Instant::now()),
            max_keys_per_shard: (max_keys / shards).max(16),
        }
    }

    /// Uses tokio's clock, which tests can pause and advance. (The system
    /// clock is cheaper to read when tokio's test utilities are compiled in.)
    #[must_use]
    pub fn with_tokio_clock(mut self) -> Self {
        self.clock = Clock::Tokio(tokio::time::Instant::now());
        self
    }

    /// Nanoseconds since this backend was made, offset by a second so that a
    /// fresh key's TAT (0) is always in the past.
    fn now(&self) -> u64 {
        let elapsed = match self.clock {
            Clock::System(epoch) => epoch.elapsed(),
            Clock::Tokio(epoch) => epoch.elapsed(),
        };
        u64::try_from(elapsed.as_nanos())
            .unwrap_or(u64::MAX)
            .saturating_add(1_000_000_000)
    }

    /// Decides one request synchronously (the backend never waits on I/O).
    pub fn decide(&self, key: &str, quota: &Quota) -> Decision {
        let now = self.now();
        let hash = self.hasher.hash_one(key);
        // The high bits pick the shard; the map inside uses its own seed.
        let index = usize::try_from(hash >> 48).unwrap_or(0) & (self.shards.len() - 1);
        // A poisoned shard only means another thread panicked mid-update of a
        // plain integer map; its data is still sound.
        let mut shard = self.shards[index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(stored) = shard.tats.get_mut(key) {
            let (decision, next) = gcra(quota, *stored, now);
            *stored = next;
            return decision;
        }
        let (decision, next) = gcra(quota, 0, now);
        if decision.allowed {
            if shard.tats.len() >= self.max_keys_per_shard {
                shard.tats.retain(|_, tat| *tat > now);
            }
            shard.tats.insert(key.to_owned(), next);
        }
        decision
    }

    /// Keys currently held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |s| s.tats.len()))
            .sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Backend for MemoryBackend {
    fn check<'a>(
        &'a self,
        key: &'a str,
        quota: &'a Quota,
    ) -> BoxFuture<'a, Result<Decision, RateLimitError>> {
        let decision = self.decide(key, quota);
        Box::pin(std::future::ready(Ok(decision)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_refill_on_tokios_clock() {
        let backend = MemoryBackend::default().with_tokio_clock();
        let quota = Quota::per_second(2).with_burst(4);
        for remaining in [3, 2, 1, 0] {
            let decision = backend.decide("k", &quota);
            assert!(decision.allowed);
            assert_eq!(decision.remaining, remaining);
        }
        let refused = backend.decide("k", &quota);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_millis(500));
        tokio::time::advance(Duration::from_millis(499)).await;
        assert!(!backend.decide("k", &quota).allowed);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(backend.decide("k", &quota).allowed);
        assert!(backend.decide("other", &quota).allowed, "keys are separate");
        // Two seconds idle: the bucket is full again, and no fuller.
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(backend.decide("k", &quota).remaining, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_keys_are_evicted() {
        let backend = MemoryBackend::new(16).with_tokio_clock();
        let quota = Quota::per_second(1);
        for i in 0..1_000 {
            backend.decide(&format!("key-{i}"), &quota);
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        // Keys idle for more than a second are gone; only recent ones remain.
        assert!(backend.len() < 400, "{}", backend.len());
    }
}
