//! A bounded cache of verified tokens, so each token's signature is checked once.
//!
//! Keys are a 64-bit SipHash of the token under per-process random keys, plus the
//! token's length and the last 16 bytes of its signature: finding a second token
//! that matches all three requires forging the signature. Entries live until the
//! token's `exp`; a full cache drops expired entries, then everything.

use crate::verify::Verified;
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, PoisonError};

type Key = (u64, usize, [u8; 16]);

/// Verified tokens by fingerprint.
#[derive(Debug)]
pub struct VerifiedCache {
    hasher: RandomState,
    capacity: usize,
    entries: Mutex<HashMap<Key, Arc<Verified>>>,
}

impl VerifiedCache {
    /// A cache of at most `capacity` tokens.
    pub fn new(capacity: usize) -> Self {
        Self {
            hasher: RandomState::new(),
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn key(&self, token: &str) -> Key {
        let bytes = token.as_bytes();
        let mut tail = [0u8; 16];
        let n = bytes.len().min(16);
        tail[..n].copy_from_slice(&bytes[bytes.len() - n..]);
        (self.hasher.hash_one(bytes), bytes.len(), tail)
    }

    /// The cached verification of `token`, if it has not expired by `now` (seconds
    /// since the epoch).
    pub fn get(&self, token: &str, now: u64) -> Option<Arc<Verified>> {
        let key = self.key(token);
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.get(&key).filter(|v| v.exp > now).cloned()
    }

    /// Remembers a verified token.
    pub fn insert(&self, token: &str, verified: Arc<Verified>, now: u64) {
        let key = self.key(token);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity {
            entries.retain(|_, v| v.exp > now);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, verified);
    }

    /// How many tokens are cached.
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_core::Principal;

    fn verified(exp: u64) -> Arc<Verified> {
        Arc::new(Verified {
            principal: Principal::default(),
            scopes: None,
            jti: None,
            exp,
            claims: Arc::default(),
        })
    }

    #[test]
    fn hits_until_expiry_and_stays_bounded() {
        let cache = VerifiedCache::new(3);
        cache.insert("a.b.sig-one", verified(100), 0);
        assert!(cache.get("a.b.sig-one", 99).is_some());
        assert!(cache.get("a.b.sig-one", 100).is_none(), "expired");
        assert!(cache.get("a.b.sig-two", 0).is_none());
        for i in 0..10 {
            cache.insert(&format!("t{i}"), verified(1000), 0);
            assert!(cache.len() <= 3);
        }
    }
}
