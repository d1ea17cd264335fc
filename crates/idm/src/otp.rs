//! One-time passwords: HOTP (RFC 4226) and TOTP (RFC 6238).
//!
//! [`hotp`] is the HMAC-based code of RFC 4226 §5.3 with the dynamic truncation of §5.4;
//! [`Totp`] derives the counter from the time (RFC 6238 §4.2), accepts codes within a
//! configurable window of steps (RFC 6238 §5.2) and, given the last accepted step, refuses a
//! code that was already used ("the verifier MUST NOT accept the second attempt of the OTP
//! after the successful validation has been issued for the first OTP", RFC 6238 §5.2).

use crate::Error;
use ring::hmac;
use serde::{Deserialize, Serialize};

/// The HMAC hash of an OTP generator (RFC 6238 §1.2 allows SHA-1, SHA-256 and SHA-512).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum OtpAlgorithm {
    /// HMAC-SHA-1 (the RFC 4226 default and what most authenticator apps use).
    #[default]
    #[serde(alias = "SHA-1", alias = "sha1")]
    Sha1,
    /// HMAC-SHA-256.
    #[serde(alias = "SHA-256", alias = "sha256")]
    Sha256,
    /// HMAC-SHA-512.
    #[serde(alias = "SHA-512", alias = "sha512")]
    Sha512,
}

impl OtpAlgorithm {
    fn ring(self) -> hmac::Algorithm {
        match self {
            Self::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => hmac::HMAC_SHA256,
            Self::Sha512 => hmac::HMAC_SHA512,
        }
    }
}

/// Smallest number of digits accepted (RFC 4226 §5.3: at least 6).
pub const MIN_DIGITS: u8 = 6;
/// Largest number of digits accepted (a 31-bit value has at most 10 digits; 9 keep the modulus exact).
pub const MAX_DIGITS: u8 = 9;

/// Computes the HOTP value of RFC 4226 §5.3 for `counter`, `digits` long, zero-padded.
///
/// # Errors
/// [`Error::ApiMisuse`] when `digits` is outside [`MIN_DIGITS`]..=[`MAX_DIGITS`].
pub fn hotp(
    key: &[u8],
    counter: u64,
    digits: u8,
    algorithm: OtpAlgorithm,
) -> Result<String, Error> {
    if !(MIN_DIGITS..=MAX_DIGITS).contains(&digits) {
        return Err(Error::ApiMisuse("OTP digits must be 6 to 9"));
    }
    let key = hmac::Key::new(algorithm.ring(), key);
    let tag = hmac::sign(&key, &counter.to_be_bytes());
    let hs = tag.as_ref();
    // RFC 4226 §5.4: the offset is the low 4 bits of the last byte. Every HMAC output here is at
    // least 20 bytes long, so offset + 3 < len.
    let last = hs.last().copied().unwrap_or(0);
    let offset = usize::from(last & 0x0f);
    let bytes = hs
        .get(offset..offset + 4)
        .ok_or(Error::ApiMisuse("HMAC output too short"))?;
    let bin = u32::from_be_bytes([bytes[0] & 0x7f, bytes[1], bytes[2], bytes[3]]);
    let modulus = 10u32.pow(u32::from(digits));
    Ok(format!(
        "{:0width$}",
        bin % modulus,
        width = usize::from(digits)
    ))
}

/// Why a one-time code was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OtpFailure {
    /// The code matches no time step inside the window (wrong or stale).
    #[error("one-time code wrong or outside the accepted window")]
    Wrong,
    /// The code matches a time step at or before the last one accepted (RFC 6238 §5.2).
    #[error("one-time code already used")]
    Replayed,
}

/// A TOTP generator and verifier (RFC 6238).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Totp {
    key: Vec<u8>,
    /// HMAC hash.
    pub algorithm: OtpAlgorithm,
    /// Code length in digits (6 to 9).
    pub digits: u8,
    /// Time step X in seconds (RFC 6238 §4.1; 30 by default).
    pub step: u64,
    /// Unix time T0 the steps count from (0 by default).
    pub t0: u64,
    /// Steps accepted on either side of the current one (RFC 6238 §5.2 recommends at most one).
    pub window: u64,
}

impl Totp {
    /// Creates a verifier with the RFC 6238 defaults: 30 s steps from T0 = 0, one step of
    /// window each way.
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] when `digits` is outside 6..=9 or the key is empty.
    pub fn try_new(key: Vec<u8>, algorithm: OtpAlgorithm, digits: u8) -> Result<Self, Error> {
        if key.is_empty() {
            return Err(Error::ApiMisuse("empty TOTP key"));
        }
        if !(MIN_DIGITS..=MAX_DIGITS).contains(&digits) {
            return Err(Error::ApiMisuse("OTP digits must be 6 to 9"));
        }
        Ok(Self {
            key,
            algorithm,
            digits,
            step: 30,
            t0: 0,
            window: 1,
        })
    }

    /// Sets the time step (seconds, at least 1).
    #[must_use]
    pub fn with_step(mut self, step: u64) -> Self {
        self.step = step.max(1);
        self
    }

    /// Sets the accepted window (steps on either side of the current one).
    #[must_use]
    pub fn with_window(mut self, window: u64) -> Self {
        self.window = window;
        self
    }

    /// The time step counter T for a Unix time (RFC 6238 §4.2).
    #[must_use]
    pub fn counter_at(&self, unix: u64) -> u64 {
        unix.saturating_sub(self.t0) / self.step.max(1)
    }

    /// The code for a Unix time.
    ///
    /// # Errors
    /// Never in practice: the digits were checked by [`Totp::try_new`].
    pub fn code_at(&self, unix: u64) -> Result<String, Error> {
        hotp(
            &self.key,
            self.counter_at(unix),
            self.digits,
            self.algorithm,
        )
    }

    /// Verifies `code` at Unix time `unix`.
    ///
    /// `last_used` is the step counter of the last code accepted for this user; a code matching
    /// that step or an earlier one is refused as a replay. On success returns the matched step
    /// counter, which the caller stores as the new `last_used`.
    ///
    /// # Errors
    /// [`OtpFailure::Wrong`] or [`OtpFailure::Replayed`].
    pub fn verify(&self, code: &str, unix: u64, last_used: Option<u64>) -> Result<u64, OtpFailure> {
        let now = self.counter_at(unix);
        let mut matched = None;
        // Every candidate step is computed and compared in constant time, so the time taken
        // does not tell which step matched.
        for counter in now.saturating_sub(self.window)..=now.saturating_add(self.window) {
            let Ok(expected) = hotp(&self.key, counter, self.digits, self.algorithm) else {
                return Err(OtpFailure::Wrong);
            };
            if crate::ct_eq(expected.as_bytes(), code.as_bytes()) {
                matched = Some(counter);
            }
        }
        let counter = matched.ok_or(OtpFailure::Wrong)?;
        if last_used.is_some_and(|last| counter <= last) {
            return Err(OtpFailure::Replayed);
        }
        Ok(counter)
    }
}

/// Decodes RFC 4648 base32 (the usual encoding of TOTP secrets), ignoring case, spaces and
/// padding.
///
/// # Errors
/// [`Error::Malformed`] on any other character or a dangling partial byte with bits set.
pub fn decode_base32(text: &str) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut acc: u64 = 0;
    let mut bits = 0u32;
    for c in text.chars() {
        let v = match c {
            'A'..='Z' => c as u64 - 'A' as u64,
            'a'..='z' => c as u64 - 'a' as u64,
            '2'..='7' => c as u64 - '2' as u64 + 26,
            ' ' | '=' | '-' => continue,
            _ => {
                return Err(Error::Malformed {
                    what: "base32 secret",
                    reason: "invalid character",
                });
            }
        };
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    if bits > 0 && acc & ((1 << bits) - 1) != 0 {
        return Err(Error::Malformed {
            what: "base32 secret",
            reason: "trailing bits",
        });
    }
    Ok(out)
}

/// Encodes bytes as RFC 4648 base32 without padding (for `otpauth://` URIs and demo output).
#[must_use]
pub fn encode_base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut acc: u64 = 0;
    let mut bits = 0u32;
    for &b in bytes {
        acc = (acc << 8) | u64::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(Deserialize)]
    struct Vectors {
        hotp: Vec<HotpVector>,
        totp: Vec<TotpVector>,
    }
    #[derive(Deserialize)]
    struct HotpVector {
        secret_ascii: String,
        counter: u64,
        value: String,
    }
    #[derive(Deserialize)]
    struct TotpVector {
        secret_ascii: String,
        algorithm: OtpAlgorithm,
        time: u64,
        step_hex: String,
        value: String,
    }

    fn vectors() -> Vectors {
        let text = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/otp.json"));
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn rfc4226_appendix_d() {
        let v = vectors();
        assert_eq!(v.hotp.len(), 10);
        for t in v.hotp {
            let got = hotp(t.secret_ascii.as_bytes(), t.counter, 6, OtpAlgorithm::Sha1).unwrap();
            assert_eq!(got, t.value, "counter {}", t.counter);
        }
    }

    #[test]
    fn rfc6238_appendix_b() {
        let v = vectors();
        assert_eq!(v.totp.len(), 18);
        for t in v.totp {
            let totp = Totp::try_new(t.secret_ascii.into_bytes(), t.algorithm, 8).unwrap();
            let counter = totp.counter_at(t.time);
            assert_eq!(format!("{counter:016X}"), t.step_hex, "time {}", t.time);
            assert_eq!(
                totp.code_at(t.time).unwrap(),
                t.value,
                "time {} {:?}",
                t.time,
                t.algorithm
            );
            assert_eq!(totp.verify(&t.value, t.time, None), Ok(counter));
        }
    }

    #[test]
    fn window_replay_and_stale() {
        let totp =
            Totp::try_new(b"12345678901234567890".to_vec(), OtpAlgorithm::Sha256, 6).unwrap();
        let t = 1_700_000_000;
        let code = totp.code_at(t).unwrap();
        let step = totp.counter_at(t);
        // Accepted one step late (window 1), refused two steps late (stale).
        assert_eq!(totp.verify(&code, t + 30, None), Ok(step));
        assert_eq!(totp.verify(&code, t + 60, None), Err(OtpFailure::Wrong));
        // A wider window accepts it.
        assert_eq!(
            totp.clone().with_window(2).verify(&code, t + 60, None),
            Ok(step)
        );
        // Replay of the same step, and of an earlier one, is refused.
        assert_eq!(totp.verify(&code, t, Some(step)), Err(OtpFailure::Replayed));
        assert_eq!(
            totp.verify(&code, t, Some(step + 1)),
            Err(OtpFailure::Replayed)
        );
        assert_eq!(totp.verify(&code, t, Some(step - 1)), Ok(step));
        // Wrong codes: one digit changed, wrong length, empty.
        let mut wrong = code.clone().into_bytes();
        wrong[0] = if wrong[0] == b'9' { b'0' } else { wrong[0] + 1 };
        let wrong = String::from_utf8(wrong).unwrap();
        assert_eq!(totp.verify(&wrong, t, None), Err(OtpFailure::Wrong));
        assert_eq!(totp.verify(&code[..5], t, None), Err(OtpFailure::Wrong));
        assert_eq!(totp.verify("", t, None), Err(OtpFailure::Wrong));
        // Custom step: 60 s.
        let slow = totp.with_step(60);
        assert_eq!(slow.counter_at(t), t / 60);
        assert_eq!(
            slow.verify(&slow.code_at(t).unwrap(), t + 59, None),
            Ok(t / 60)
        );
    }

    #[test]
    fn digits_checked() {
        assert!(hotp(b"k", 0, 5, OtpAlgorithm::Sha1).is_err());
        assert!(hotp(b"k", 0, 10, OtpAlgorithm::Sha1).is_err());
        assert_eq!(hotp(b"k", 0, 9, OtpAlgorithm::Sha1).unwrap().len(), 9);
        assert!(Totp::try_new(Vec::new(), OtpAlgorithm::Sha1, 6).is_err());
    }

    #[test]
    fn base32_round_trip() {
        // RFC 4648 §10 test vectors.
        for (plain, enc) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(encode_base32(plain.as_bytes()), enc);
            assert_eq!(decode_base32(enc).unwrap(), plain.as_bytes());
        }
        assert_eq!(decode_base32("mzxw 6ytb oi======").unwrap(), b"foobar");
        assert!(decode_base32("MZ1").is_err());
        assert_eq!(decode_base32("MY").unwrap(), b"f");
        assert!(decode_base32("MZ").is_err(), "trailing bits set");
    }
}
