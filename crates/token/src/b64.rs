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

/// Decodes like [`decode`] into `buf` when the result fits (no allocation),
/// otherwise into a new vector; returns the decoded bytes.
pub(crate) fn decode_small<'b, const N: usize>(
    input: &[u8],
    part: Part,
    buf: &'b mut [u8; N],
    spill: &'b mut Vec<u8>,
) -> Result<&'b [u8], Error> {
    if input.len() / 4 * 3 + 3 <= N {
        let n = URL_SAFE_NO_PAD
            .decode_slice(input, buf)
            .map_err(|e| map_slice_err(e, input, part))?;
        return Ok(buf.get(..n).unwrap_or_default());
    }
    *spill = decode(input, part)?;
    Ok(spill)
}

fn map_slice_err(e: base64::DecodeSliceError, input: &[u8], part: Part) -> Error {
    let offset = match e {
        base64::DecodeSliceError::DecodeError(
            base64::DecodeError::InvalidByte(o, _) | base64::DecodeError::InvalidLastSymbol(o, _),
        ) => o,
        base64::DecodeSliceError::DecodeError(base64::DecodeError::InvalidLength(l)) => l,
        _ => input.len(),
    };
    Error::Base64 { part, offset }
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
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips_through_both_paths(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let text = encode(&bytes);
            prop_assert_eq!(&decode(text.as_bytes(), Part::Claims).unwrap(), &bytes);
            let (mut buf, mut spill) = ([0u8; 64], Vec::new());
            let small = decode_small(text.as_bytes(), Part::Claims, &mut buf, &mut spill).unwrap();
            prop_assert_eq!(small, &bytes[..]);
        }
    }

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
        // The stack path and the spill path agree with `decode`.
        let long = encode(&[7u8; 100]);
        for input in [&b"Zm9v"[..], b"Zm8", long.as_bytes()] {
            let (mut buf, mut spill) = ([0u8; 16], Vec::new());
            let got = decode_small(input, Part::Claims, &mut buf, &mut spill)
                .unwrap()
                .to_vec();
            assert_eq!(got, decode(input, Part::Claims).unwrap());
        }
        let (mut buf, mut spill) = ([0u8; 16], Vec::new());
        assert!(matches!(
            decode_small(b"Zm+v", Part::Header, &mut buf, &mut spill),
            Err(Error::Base64 {
                part: Part::Header,
                offset: 2
            })
        ));
        assert!(decode_small(b"Zm9", Part::Header, &mut buf, &mut spill).is_err());
    }
}
