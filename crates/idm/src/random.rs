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

/// The operating system's generator read in blocks: one `getrandom` call serves many
/// draws (a login's code, refresh token and token id take one call per ~10 logins instead
/// of three each).
///
/// Every byte handed out comes straight from the operating system's generator and is
/// handed out once (then overwritten in the block); nothing is derived or stretched, so the
/// output is exactly as strong as [`SystemRandom`]'s. Draws larger than a block go to the
/// operating system directly. Unused bytes wait in the process's memory until drawn, as the
/// signing keys do; a forked child must not share the parent's generator (the IdMS does not
/// fork).
#[derive(Debug)]
pub struct BufferedRandom {
    os: ring::rand::SystemRandom,
    block: std::sync::Mutex<Block>,
}

#[derive(Debug)]
struct Block {
    bytes: [u8; BLOCK],
    /// Bytes before this index were handed out (and zeroed).
    used: usize,
}

/// Size of a [`BufferedRandom`] block.
const BLOCK: usize = 1024;

impl BufferedRandom {
    /// Creates the generator (the first draw fills the first block).
    #[must_use]
    pub fn new() -> Self {
        Self {
            os: ring::rand::SystemRandom::new(),
            block: std::sync::Mutex::new(Block {
                bytes: [0; BLOCK],
                used: BLOCK,
            }),
        }
    }
}

impl Default for BufferedRandom {
    fn default() -> Self {
        Self::new()
    }
}

impl RandomSource for BufferedRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<(), Error> {
        if dest.len() > BLOCK / 4 {
            return ring::rand::SecureRandom::fill(&self.os, dest).map_err(|_| Error::Random);
        }
        let mut block = self
            .block
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let block = &mut *block;
        if BLOCK - block.used < dest.len() {
            ring::rand::SecureRandom::fill(&self.os, &mut block.bytes)
                .map_err(|_| Error::Random)?;
            block.used = 0;
        }
        let end = block.used + dest.len();
        let Some(fresh) = block.bytes.get_mut(block.used..end) else {
            return Err(Error::Random);
        };
        dest.copy_from_slice(fresh);
        fresh.fill(0);
        block.used = end;
        Ok(())
    }
}

/// Returns `n` random bytes encoded as unpadded base64url (used for codes, tokens and ids).
pub(crate) fn token(rng: &dyn RandomSource, n: usize) -> Result<String, Error> {
    use base64::Engine as _;
    let mut small = [0u8; 32];
    let mut large = Vec::new();
    let buf = match small.get_mut(..n) {
        Some(b) => b,
        None => {
            large.resize(n, 0);
            &mut large[..]
        }
    };
    rng.fill(buf)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}

/// The `N` bytes a [`token`] of `N` bytes encodes: `None` unless `text` is exactly the
/// unpadded base64url of `N` bytes (the decoder refuses non-zero trailing bits, so each byte
/// string has one text). `N` is at most 48.
pub(crate) fn token_bytes<const N: usize>(text: &str) -> Option<[u8; N]> {
    use base64::Engine as _;
    if text.len() != (4 * N).div_ceil(3) {
        return None;
    }
    let mut buf = [0u8; 50];
    match base64::engine::general_purpose::URL_SAFE_NO_PAD.decode_slice(text, &mut buf) {
        Ok(n) if n == N => buf.get(..N)?.try_into().ok(),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::{BLOCK, BufferedRandom, RandomSource, token, token_bytes};

    /// `token_bytes` gives back the bytes a `token` encodes, and refuses any other text:
    /// another length, a non-alphabet byte, or the same bytes with non-zero trailing bits.
    #[test]
    fn token_bytes_inverts_token() {
        let rng = BufferedRandom::new();
        for _ in 0..64 {
            let t16 = token(&rng, 16).unwrap();
            let t32 = token(&rng, 32).unwrap();
            let b16: [u8; 16] = token_bytes(&t16).unwrap();
            let b32: [u8; 32] = token_bytes(&t32).unwrap();
            use base64::Engine as _;
            let enc = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            assert_eq!(enc.encode(b16), t16);
            assert_eq!(enc.encode(b32), t32);
            assert_eq!(token_bytes::<16>(&t32), None);
            assert_eq!(token_bytes::<32>(&t32[1..]), None);
            let mut bad = t32.clone().into_bytes();
            bad[5] = b'=';
            assert_eq!(token_bytes::<32>(std::str::from_utf8(&bad).unwrap()), None);
            // The last character carries 2 unused bits for 32 bytes: setting them changes
            // the text but not the bytes, and is refused.
            let mut odd = t32.into_bytes();
            let last = odd.last_mut().unwrap();
            let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let v = alphabet.iter().position(|c| c == last).unwrap();
            *last = alphabet[v ^ 1];
            assert_eq!(token_bytes::<32>(std::str::from_utf8(&odd).unwrap()), None);
        }
    }

    /// Draws never repeat bytes across block refills, large draws bypass the block, and
    /// handed-out bytes are wiped from it.
    #[test]
    fn buffered_draws_are_fresh() {
        let rng = BufferedRandom::new();
        let mut seen = std::collections::HashSet::new();
        // Three blocks' worth of 32-byte draws: refills happen in between.
        for _ in 0..(3 * BLOCK / 32) {
            let mut d = [0u8; 32];
            rng.fill(&mut d).unwrap();
            assert_ne!(d, [0u8; 32]);
            assert!(seen.insert(d), "a 32-byte draw repeated");
        }
        // An odd size straddling a refill.
        let mut odd = [0u8; 200];
        for _ in 0..8 {
            rng.fill(&mut odd).unwrap();
            assert_ne!(odd, [0u8; 200]);
        }
        let mut big = vec![0u8; BLOCK];
        rng.fill(&mut big).unwrap();
        assert!(big.iter().any(|&b| b != 0));
        let block = rng.block.lock().unwrap();
        assert!(block.bytes[..block.used].iter().all(|&b| b == 0));
    }
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
