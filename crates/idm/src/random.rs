//! Injected randomness (STYLE.md §2): the crate never picks its own source.

use crate::Error;

/// A source of cryptographically secure random bytes.
///
/// Production code passes [`SystemRandom`] (ring's operating-system generator); tests pass a
/// seeded generator so that runs repeat exactly.
pub trait RandomSource {
    /// Fills `dest` with random bytes.
    ///
    /// # Errors
    /// [`Error::Random`] when the generator fails.
    fn fill(&self, dest: &mut [u8]) -> Result<(), Error>;
}

/// The operating system's generator, through `ring::rand::SystemRandom`.
#[derive(Debug)]
pub struct SystemRandom(ring::rand::SystemRandom);

impl SystemRandom {
    /// Creates the generator.
    #[must_use]
    pub fn new() -> Self {
        Self(ring::rand::SystemRandom::new())
    }
}

impl Default for SystemRandom {
    fn default() -> Self {
        Self::new()
    }
}

impl RandomSource for SystemRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<(), Error> {
        ring::rand::SecureRandom::fill(&self.0, dest).map_err(|_| Error::Random)
    }
}

/// Returns `n` random bytes encoded as unpadded base64url (used for codes, tokens and ids).
pub(crate) fn token(rng: &dyn RandomSource, n: usize) -> Result<String, Error> {
    use base64::Engine as _;
    let mut buf = vec![0u8; n];
    rng.fill(&mut buf)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}

#[cfg(test)]
pub(crate) mod testing {
    use super::RandomSource;
    use crate::Error;
    use std::cell::Cell;

    /// A deterministic generator for tests: a counter hashed with SHA-256.
    #[derive(Debug, Default)]
    pub(crate) struct SeqRandom(Cell<u64>);

    impl RandomSource for SeqRandom {
        fn fill(&self, dest: &mut [u8]) -> Result<(), Error> {
            for chunk in dest.chunks_mut(32) {
                let n = self.0.get();
                self.0.set(n + 1);
                let d = ring::digest::digest(&ring::digest::SHA256, &n.to_be_bytes());
                chunk.copy_from_slice(&d.as_ref()[..chunk.len()]);
            }
            Ok(())
        }
    }
}
