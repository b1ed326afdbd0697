//! The verified-token cache: token hash to claims, bounded, sharded.
//!
//! A sharded map rather than a general-purpose cache: the only operations are a
//! lookup and an insert, entries carry their own expiry (the token's `exp`), and
//! the insert sits on the cold path, whose cost should stay close to the
//! signature check's. When a shard is full, expired entries go first, then
//! arbitrary ones: any entry is cheap to rebuild (one verification).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::token::Claims;

const SHARDS: usize = 16;

struct Entry {
    claims: Arc<Claims>,
    kid: Arc<str>,
}

#[derive(Default)]
struct Shard {
    entries: HashMap<[u8; 32], Entry>,
    /// When expired entries were last swept (seconds since the epoch).
    swept_at: i64,
}

pub(super) struct TokenCache {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
}

impl TokenCache {
    pub(super) fn new(capacity: u64) -> Self {
        let per_shard = usize::try_from(capacity)
            .unwrap_or(usize::MAX)
            .div_ceil(SHARDS)
            .max(1);
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard,
        }
    }

    fn shard(&self, key: &[u8; 32]) -> MutexGuard<'_, Shard> {
        // The key is a SHA-256, so its first byte spreads evenly. A panic while a
        // lock was held cannot leave a cache entry half-written; keep using it.
        self.shards[usize::from(key[0]) % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The claims under `key` if they expire after `not_expired_at` and their key
    /// is still `published`; a stale entry is dropped.
    pub(super) fn get(
        &self,
        key: &[u8; 32],
        not_expired_at: i64,
        published: impl Fn(&str) -> bool,
    ) -> Option<Arc<Claims>> {
        let mut shard = self.shard(key);
        let entry = shard.entries.get(key)?;
        if entry.claims.exp > not_expired_at && published(&entry.kid) {
            return Some(Arc::clone(&entry.claims));
        }
        shard.entries.remove(key);
        None
    }

    pub(super) fn insert(&self, key: [u8; 32], claims: Arc<Claims>, kid: String) {
        let now = crate::token::unix_now();
        let mut shard = self.shard(&key);
        if shard.entries.len() >= self.per_shard {
            // Sweeping scans the shard, so a full shard sweeps at most once a
            // second; in between, an arbitrary entry makes room.
            if shard.swept_at < now {
                shard.swept_at = now;
                shard.entries.retain(|_, entry| entry.claims.exp > now);
            }
            if shard.entries.len() >= self.per_shard
                && let Some(victim) = shard.entries.keys().next().copied()
            {
                shard.entries.remove(&victim);
            }
        }
        shard.entries.insert(
            key,
            Entry {
                claims,
                kid: kid.into(),
            },
        );
    }

    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entries
                    .len()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::Audience;

    fn claims(exp: i64) -> Arc<Claims> {
        Arc::new(Claims {
            iss: "i".into(),
            aud: Audience::One("a".into()),
            sub: "s".into(),
            sid: "x".into(),
            role: "r".into(),
            iat: 0,
            nbf: 0,
            exp,
            jti: "j".into(),
        })
    }

    /// Keys that all land in one shard, to exercise its bound.
    fn key(n: u32) -> [u8; 32] {
        let mut key = [0u8; 32];
        key[1..5].copy_from_slice(&n.to_be_bytes());
        key
    }

    #[test]
    fn bounded_expiring_and_key_aware() {
        let cache = TokenCache::new(16 * 4);
        let far = crate::token::unix_now() + 3600;
        for n in 0..100 {
            cache.insert(key(n), claims(far), "k".into());
        }
        assert!(cache.len() <= 4, "{}", cache.len());
        cache.insert(key(1000), claims(far), "k".into());
        assert!(cache.get(&key(1000), 0, |_| true).is_some());
        assert!(cache.get(&key(1000), far, |_| true).is_none(), "expired");
        assert!(cache.get(&key(1000), 0, |_| true).is_none(), "and dropped");
        cache.insert(key(2000), claims(far), "old".into());
        assert!(
            cache.get(&key(2000), 0, |kid| kid != "old").is_none(),
            "retired key"
        );
    }

    #[test]
    fn expired_entries_make_room_first() {
        let cache = TokenCache::new(16 * 2);
        let now = crate::token::unix_now();
        cache.insert(key(1), claims(now - 10), "k".into());
        cache.insert(key(2), claims(now + 3600), "k".into());
        cache.insert(key(3), claims(now + 3600), "k".into());
        assert!(
            cache.get(&key(2), now, |_| true).is_some(),
            "the live entry survived"
        );
        assert!(cache.get(&key(3), now, |_| true).is_some());
    }
}
