//! A bounded cache of verified access tokens.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::AccessToken;

#[derive(Debug)]
struct Entry {
    token: AccessToken,
    /// Earliest time the token was valid (max of `nbf`, `iat`, minus leeway).
    valid_from: u64,
    /// `exp`: the entry is never returned at or after it.
    expires_at: u64,
    /// The key-set generation that verified it.
    generation: u64,
}

/// Verified access tokens keyed by their exact bytes, at most `capacity`
/// of them. An entry is returned only before its `exp` (never in the
/// leeway after it) and only while the key set that verified it is still
/// current, so a key rotation or revocation empties it in effect.
#[derive(Debug)]
pub(crate) struct TokenCache {
    capacity: usize,
    map: Mutex<HashMap<Box<str>, Entry>>,
    hits: AtomicU64,
}

impl TokenCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            map: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
        }
    }

    pub(crate) fn get(&self, token: &str, now: u64, generation: u64) -> Option<AccessToken> {
        if self.capacity == 0 {
            return None;
        }
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let e = map.get(token)?;
        let fresh = now < e.expires_at && now >= e.valid_from && e.generation == generation;
        let hit = fresh.then(|| e.token.clone());
        drop(map);
        if hit.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub(crate) fn insert(
        &self,
        token: &str,
        at: &AccessToken,
        now: u64,
        valid_from: u64,
        generation: u64,
    ) {
        if self.capacity == 0 || now >= at.expires_at {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= self.capacity && !map.contains_key(token) {
            map.retain(|_, e| now < e.expires_at && e.generation == generation);
            if map.len() >= self.capacity {
                // Evict the entry that would expire first.
                let victim = map
                    .iter()
                    .min_by_key(|(_, e)| e.expires_at)
                    .map(|(k, _)| k.clone());
                if let Some(k) = victim {
                    map.remove(&k);
                }
            }
        }
        map.insert(
            token.into(),
            Entry {
                token: at.clone(),
                valid_from,
                expires_at: at.expires_at,
                generation,
            },
        );
    }

    pub(crate) fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub(crate) fn clear(&self) {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}
