//! Strict base64url without padding (RFC 7515 §2, RFC 4648 §5).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::{Error, Part};

/// Sextet value of each base64url byte; `0xFF` for every other byte.
const TABLE: [u8; 256] = {
    let mut t = [0xFFu8; 256];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut i = 0;
    while i < 64 {
        t[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// Decoded length of `len` base64url characters, `None` for an impossible length.
fn decoded_len(len: usize) -> Option<usize> {
    match len % 4 {
        1 => None,
        0 => Some(len / 4 * 3),
        r => Some(len / 4 * 3 + r - 1),
    }
}

/// Strict unpadded base64url into `out` (which must be exactly
/// `decoded_len(input.len())` long): no `=`, no `+`/`/`, no whitespace, no
/// non-zero trailing bits, so every byte string has exactly one encoding.
fn decode_into(input: &[u8], out: &mut [u8], part: Part) -> Result<(), Error> {
    let bad = |offset: usize| Error::Base64 { part, offset };
    let full = input.len() / 4;
    let (chunks, tail) = input.split_at(full * 4);
    let (out_full, out_tail) = out.split_at_mut(full * 3);
    for (i, (c, o)) in chunks
        .chunks_exact(4)
        .zip(out_full.chunks_exact_mut(3))
        .enumerate()
    {
        let [a, b, c2, d] = [c[0], c[1], c[2], c[3]].map(|x| TABLE[usize::from(x)]);
        if (a | b | c2 | d) & 0x80 != 0 {
            let j = c
                .iter()
                .position(|x| TABLE[usize::from(*x)] == 0xFF)
                .unwrap_or(0);
            return Err(bad(i * 4 + j));
        }
        let n = u32::from(a) << 18 | u32::from(b) << 12 | u32::from(c2) << 6 | u32::from(d);
        o.copy_from_slice(&n.to_be_bytes()[1..]);
    }
    let base = full * 4;
    let mut v = [0u8; 3];
    for (j, x) in tail.iter().enumerate() {
        let t = TABLE[usize::from(*x)];
        if t == 0xFF {
            return Err(bad(base + j));
        }
        v[j] = t;
    }
    match (tail.len(), out_tail) {
        (0, []) => Ok(()),
        (2, [o0]) => {
            if v[1] & 0x0F != 0 {
                return Err(bad(base + 1));
            }
            *o0 = v[0] << 2 | v[1] >> 4;
            Ok(())
        }
        (3, [o0, o1]) => {
            if v[2] & 0x03 != 0 {
                return Err(bad(base + 2));
            }
            *o0 = v[0] << 2 | v[1] >> 4;
            *o1 = v[1] << 4 | v[2] >> 2;
            Ok(())
        }
        _ => Err(bad(input.len())),
    }
}

/// Decodes strict unpadded base64url: no `=`, no `+`/`/`, no whitespace,
/// no non-zero trailing bits (so every byte string has one encoding).
pub(crate) fn decode(input: &[u8], part: Part) -> Result<Vec<u8>, Error> {
    let len = decoded_len(input.len()).ok_or(Error::Base64 {
        part,
        offset: input.len(),
    })?;
    let mut out = vec![0u8; len];
    decode_into(input, &mut out, part)?;
    Ok(out)
}

/// Decodes like [`decode`] into `buf` when the result fits (no allocation),
/// otherwise into `spill`; returns the decoded bytes.
pub(crate) fn decode_small<'b, const N: usize>(
    input: &[u8],
    part: Part,
    buf: &'b mut [u8; N],
    spill: &'b mut Vec<u8>,
) -> Result<&'b [u8], Error> {
    let len = decoded_len(input.len()).ok_or(Error::Base64 {
        part,
        offset: input.len(),
    })?;
    let out = match buf.get_mut(..len) {
        Some(out) => out,
        None => {
            *spill = vec![0u8; len];
            spill.as_mut_slice()
        }
    };
    decode_into(input, out, part)?;
    Ok(out)
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
    use proptest::prelude::*;

    proptest! {
        /// Our decoder agrees with the `base64` crate's strict URL-safe,
        /// no-padding engine on every input: same bytes, same refusals.
        #[test]
        fn agrees_with_the_base64_crate(input in "[A-Za-z0-9_+/= .-]{0,40}") {
            let ours = decode(input.as_bytes(), Part::Claims).ok();
            let theirs = URL_SAFE_NO_PAD.decode(input.as_bytes()).ok();
            prop_assert_eq!(ours, theirs);
        }

        #[test]
        fn round_trips(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
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
