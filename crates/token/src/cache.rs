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

/// Hashes only the last 32 bytes of each write plus its length: a token
/// ends with its signature, which is as good as random, so this spreads
/// honest tokens well at a fraction of SipHash's cost on ~600-byte keys.
/// Only verified tokens are inserted, so chosen collisions gain an
/// attacker nothing (lookups still compare the full bytes).
#[derive(Default, Clone, Copy)]
struct TailHasher(u64);

impl std::hash::Hasher for TailHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let tail = bytes.get(bytes.len().saturating_sub(32)..).unwrap_or(bytes);
        let mut h = (self.0.rotate_left(5) ^ bytes.len() as u64).wrapping_mul(K);
        for chunk in tail.chunks(8) {
            let mut word = [0u8; 8];
            for (w, b) in word.iter_mut().zip(chunk) {
                *w = *b;
            }
            h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        self.0 = h;
    }
}

type TailState = std::hash::BuildHasherDefault<TailHasher>;

/// Verified access tokens keyed by their exact bytes, at most `capacity`
/// of them. An entry is returned only before its `exp` (never in the
/// leeway after it) and only while the key set that verified it is still
/// current, so a key rotation or revocation empties it in effect.
#[derive(Debug)]
pub(crate) struct TokenCache {
    capacity: usize,
    map: Mutex<HashMap<Box<str>, Entry, TailState>>,
    hits: AtomicU64,
}

impl TokenCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            map: Mutex::new(HashMap::default()),
            hits: AtomicU64::new(0),
        }
    }

    /// Whether tokens are cached at all (capacity above 0).
    pub(crate) fn enabled(&self) -> bool {
        self.capacity > 0
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
