//! The hasher of the maps keyed by identities (public user identities of UEs).
//!
//! Identities are asserted by the trusted SIP core, but peers still pick them (a UE registers the
//! identity it was given, a third-party REGISTER names any), so a map keyed by them must not let
//! anyone who can guess the hash function force collisions (HashDoS). SipHash, the standard
//! library's default, costs ~160 instructions per identity here; foldhash with a secret per-map
//! seed costs a fraction of that. Both of foldhash's seeds (the process-wide shared one and the
//! per-map one) are drawn from the standard library's randomly keyed [`std::hash::RandomState`]
//! (keys from the operating system), not from foldhash's own address-and-clock entropy.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

use foldhash::SharedSeed;
use foldhash::fast::SeedableRandomState;

/// A map keyed by an identity (`Arc<str>`, `String`), hashed with [`IdentityState`].
pub(crate) type IdentityMap<K, V> = HashMap<K, V, IdentityState>;

/// Builds foldhash hashers with secret seeds taken from the operating system's randomness
/// (through the standard library's `RandomState`): one shared by the process, one per map.
#[derive(Clone, Debug)]
pub(crate) struct IdentityState(SeedableRandomState);

impl IdentityState {
    /// A state with a fresh secret seed.
    pub(crate) fn new() -> Self {
        static SHARED: OnceLock<SharedSeed> = OnceLock::new();
        let shared = SHARED.get_or_init(|| SharedSeed::from_u64(secret_u64()));
        Self(SeedableRandomState::with_seed(secret_u64(), shared))
    }
}

/// A secret 64-bit value: std's `RandomState` is keyed from the OS once per thread and stepped
/// per instance, so its hash of a constant is unpredictable and differs per call.
fn secret_u64() -> u64 {
    let mut seeder = std::hash::RandomState::new().build_hasher();
    seeder.write_u64(0x6d63_7074_745f_6964);
    seeder.finish()
}

impl Default for IdentityState {
    fn default() -> Self {
        Self::new()
    }
}

impl BuildHasher for IdentityState {
    type Hasher = <SeedableRandomState as BuildHasher>::Hasher;

    fn build_hasher(&self) -> Self::Hasher {
        self.0.build_hasher()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_get_different_seeds_and_equal_keys_hash_equal() {
        let a = IdentityState::new();
        let b = IdentityState::new();
        let key = "sip:alice@example.org";
        assert_eq!(a.hash_one(key), a.hash_one(key));
        assert_ne!(a.hash_one(key), b.hash_one(key));
        let mut map: IdentityMap<String, u32> = IdentityMap::default();
        map.insert(key.to_owned(), 7);
        assert_eq!(map.get(key), Some(&7));
        assert_eq!(map.get("sip:bob@example.org"), None);
    }
}
