//! Injected randomness (STYLE.md §2): a seeded SplitMix64 generator for Call-IDs and tags.

/// A small deterministic generator; seed it from a CSPRNG in production, from a constant in
/// tests.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A 16 hex digit token.
    pub(crate) fn token(&mut self) -> String {
        format!("{:016x}", self.next_u64())
    }
}
