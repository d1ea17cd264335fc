//! Password storage: PBKDF2-HMAC-SHA256 (RFC 8018 §5.2, via ring) with a per-user salt.
//!
//! Stored form (PHC string format): `$pbkdf2-sha256$i=ITERATIONS$SALT$HASH`, salt and hash in
//! standard base64 without padding. Verification goes through `ring::pbkdf2::verify`, which
//! compares in constant time.

use crate::Error;
use crate::random::RandomSource;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use std::num::NonZeroU32;

/// Default iteration count for new hashes (OWASP 2023 guidance for PBKDF2-HMAC-SHA256).
pub const DEFAULT_ITERATIONS: u32 = 600_000;
/// Largest iteration count accepted from a file (bounds the work a login can cost).
pub const MAX_ITERATIONS: u32 = 10_000_000;
/// Salt length of new hashes in bytes.
pub const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;
const PREFIX: &str = "$pbkdf2-sha256$i=";

/// A stored password hash.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    iterations: NonZeroU32,
    salt: Vec<u8>,
    hash: [u8; HASH_LEN],
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHash")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl PasswordHash {
    /// Hashes `password` with `salt` and `iterations`.
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] for zero iterations, more than [`MAX_ITERATIONS`], or a salt
    /// shorter than 8 bytes.
    pub fn derive(password: &str, salt: &[u8], iterations: u32) -> Result<Self, Error> {
        let iterations = check_iterations(iterations).ok_or(Error::ApiMisuse(
            "PBKDF2 iterations must be 1 to 10 000 000",
        ))?;
        if salt.len() < 8 {
            return Err(Error::ApiMisuse("PBKDF2 salt must be at least 8 bytes"));
        }
        let mut hash = [0u8; HASH_LEN];
        ring::pbkdf2::derive(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            salt,
            password.as_bytes(),
            &mut hash,
        );
        Ok(Self {
            iterations,
            salt: salt.to_vec(),
            hash,
        })
    }

    /// Hashes `password` with a fresh random salt of [`SALT_LEN`] bytes.
    ///
    /// # Errors
    /// As [`PasswordHash::derive`], or [`Error::Random`].
    pub fn generate(
        password: &str,
        iterations: u32,
        rng: &dyn RandomSource,
    ) -> Result<Self, Error> {
        let mut salt = [0u8; SALT_LEN];
        rng.fill(&mut salt)?;
        Self::derive(password, &salt, iterations)
    }

    /// Checks `password` against the hash, in constant time.
    #[must_use]
    pub fn verify(&self, password: &str) -> bool {
        ring::pbkdf2::verify(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            self.iterations,
            &self.salt,
            password.as_bytes(),
            &self.hash,
        )
        .is_ok()
    }

    /// The iteration count.
    #[must_use]
    pub fn iterations(&self) -> u32 {
        self.iterations.get()
    }

    /// Parses the stored form `$pbkdf2-sha256$i=N$SALT$HASH`.
    ///
    /// # Errors
    /// [`Error::Malformed`] naming what is wrong.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bad = |reason| Error::Malformed {
            what: "password hash",
            reason,
        };
        let rest = text
            .strip_prefix(PREFIX)
            .ok_or_else(|| bad("expected `$pbkdf2-sha256$i=ITERATIONS$SALT$HASH`"))?;
        let mut parts = rest.split('$');
        let (Some(iter), Some(salt), Some(hash), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected `$pbkdf2-sha256$i=ITERATIONS$SALT$HASH`"));
        };
        let iterations = iter
            .parse::<u32>()
            .ok()
            .and_then(check_iterations)
            .ok_or_else(|| bad("iterations must be 1 to 10 000 000"))?;
        let salt = STANDARD_NO_PAD
            .decode(salt)
            .map_err(|_| bad("salt is not unpadded base64"))?;
        if salt.len() < 8 {
            return Err(bad("salt shorter than 8 bytes"));
        }
        let hash = STANDARD_NO_PAD
            .decode(hash)
            .map_err(|_| bad("hash is not unpadded base64"))?;
        let hash: [u8; HASH_LEN] = hash.try_into().map_err(|_| bad("hash must be 32 bytes"))?;
        Ok(Self {
            iterations,
            salt,
            hash,
        })
    }

    /// The stored form, accepted by [`PasswordHash::parse`].
    #[must_use]
    pub fn encode(&self) -> String {
        format!(
            "{PREFIX}{}${}${}",
            self.iterations,
            STANDARD_NO_PAD.encode(&self.salt),
            STANDARD_NO_PAD.encode(self.hash)
        )
    }
}

fn check_iterations(n: u32) -> Option<NonZeroU32> {
    if n > MAX_ITERATIONS {
        None
    } else {
        NonZeroU32::new(n)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::random::testing::SeqRandom;

    #[test]
    fn derive_verify_round_trip() {
        let h = PasswordHash::generate("correct horse", 1000, &SeqRandom::default()).unwrap();
        assert!(h.verify("correct horse"));
        assert!(!h.verify("correct hors"));
        assert!(!h.verify("Correct horse"));
        assert!(!h.verify(""));
        let text = h.encode();
        assert!(text.starts_with("$pbkdf2-sha256$i=1000$"), "{text}");
        let back = PasswordHash::parse(&text).unwrap();
        assert_eq!(back, h);
        assert!(back.verify("correct horse"));
        assert_eq!(back.iterations(), 1000);
    }

    #[test]
    fn per_user_salt_changes_the_hash() {
        let rng = SeqRandom::default();
        let a = PasswordHash::generate("pw", 10, &rng).unwrap();
        let b = PasswordHash::generate("pw", 10, &rng).unwrap();
        assert_ne!(a.encode(), b.encode());
        // The iteration count is part of the hash.
        let c = PasswordHash::derive("pw", b"saltsalt", 10).unwrap();
        let d = PasswordHash::derive("pw", b"saltsalt", 11).unwrap();
        assert_ne!(c.hash, d.hash);
    }

    #[test]
    fn parse_errors() {
        for bad in [
            "",
            "pbkdf2-sha256$i=1$c2FsdHNhbHQ$AAAA",
            "$pbkdf2-sha256$i=0$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "$pbkdf2-sha256$i=x$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "$pbkdf2-sha256$i=99999999$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "$pbkdf2-sha256$i=1$c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "$pbkdf2-sha256$i=1$c2FsdHNhbHQ$AAAA",
            "$pbkdf2-sha256$i=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA$x",
            "$pbkdf2-sha256$i=1$!!$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(
                matches!(PasswordHash::parse(bad), Err(Error::Malformed { .. })),
                "{bad:?}"
            );
        }
        assert!(
            PasswordHash::parse(
                "$pbkdf2-sha256$i=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            )
            .is_ok()
        );
        assert!(PasswordHash::derive("x", b"short", 1).is_err());
        assert!(PasswordHash::derive("x", b"longsalt", 0).is_err());
    }
}
