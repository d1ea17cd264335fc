//! Strict base64url without padding (RFC 7515 §2, RFC 4648 §5).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::{Error, Part};

/// Decodes strict unpadded base64url: no `=`, no `+`/`/`, no whitespace,
/// no non-zero trailing bits (so every byte string has one encoding).
pub(crate) fn decode(input: &[u8], part: Part) -> Result<Vec<u8>, Error> {
    URL_SAFE_NO_PAD.decode(input).map_err(|e| {
        let offset = match e {
            base64::DecodeError::InvalidByte(o, _)
            | base64::DecodeError::InvalidLastSymbol(o, _) => o,
            base64::DecodeError::InvalidLength(l) => l,
            base64::DecodeError::InvalidPadding => input.len(),
        };
        Error::Base64 { part, offset }
    })
}

/// Encodes as unpadded base64url.
pub(crate) fn encode(input: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(input)
}

/// Appends the unpadded base64url encoding of `input` to `out`.
pub(crate) fn encode_into(input: &[u8], out: &mut String) {
    URL_SAFE_NO_PAD.encode_string(input, out);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn strictness() {
        assert_eq!(decode(b"Zm9v", Part::Claims).unwrap(), b"foo");
        assert_eq!(decode(b"Zm8", Part::Claims).unwrap(), b"fo");
        for bad in [
            &b"Zm8="[..],
            b"Zm+v",
            b"Zm/v",
            b"Zm9v ",
            b" Zm9v",
            b"Zm\n9v",
            b"Zm9",
            b"Z",
        ] {
            assert!(decode(bad, Part::Claims).is_err(), "{bad:?}");
        }
        assert!(matches!(
            decode(b"Zm+v", Part::Header),
            Err(Error::Base64 {
                part: Part::Header,
                offset: 2
            })
        ));
        assert_eq!(encode(b"\xfb\xff"), "-_8");
    }
}
