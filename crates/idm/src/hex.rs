//! Lower-case hexadecimal, for MILENAGE values in files and forms.

use crate::Error;

/// Encodes bytes as lower-case hex.
#[must_use]
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes hex of exactly `N` bytes (either case).
///
/// # Errors
/// [`Error::Malformed`] on a wrong length or a non-hex character.
pub fn decode_array<const N: usize>(text: &str) -> Result<[u8; N], Error> {
    let bytes = text.as_bytes();
    if bytes.len() != 2 * N {
        return Err(Error::Malformed {
            what: "hex value",
            reason: "wrong length",
        });
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let (Some(hi), Some(lo)) = (nibble(pair[0]), nibble(pair[1])) else {
            return Err(Error::Malformed {
                what: "hex value",
                reason: "not a hex digit",
            });
        };
        *o = (hi << 4) | lo;
    }
    Ok(out)
}
