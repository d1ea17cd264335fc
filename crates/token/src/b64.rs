//! Strict base64url without padding (RFC 7515 §2, RFC 4648 §5).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::{Error, Part};

/// Decodes strict unpadded base64url: no `=`, no `+`/`/`, no whitespace,
/// no non-zero trailing bits (so every byte string has one encoding).
pub(crate) fn decode(input: &[u8], part: Part) -> Result<Vec<u8>, Error> {
    #[cfg(test)]
    if crate::json::REFERENCE_ONLY.with(std::cell::Cell::get) {
        return decode_crate(input, part);
    }
    if let Some(len) = decoded_len(input.len()) {
        let mut out = vec![0u8; len];
        if decode_into(input, &mut out).is_some() {
            return Ok(out);
        }
    }
    decode_crate(input, part)
}

/// [`decode`] through the `base64` crate: the reference, and the source of
/// the error (with its offset) for whatever [`decode_into`] refuses.
fn decode_crate(input: &[u8], part: Part) -> Result<Vec<u8>, Error> {
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
/// otherwise into `spill`; returns the decoded bytes.
pub(crate) fn decode_small<'b, const N: usize>(
    input: &[u8],
    part: Part,
    buf: &'b mut [u8; N],
    spill: &'b mut Vec<u8>,
) -> Result<&'b [u8], Error> {
    #[cfg(test)]
    let reference = crate::json::REFERENCE_ONLY.with(std::cell::Cell::get);
    #[cfg(not(test))]
    let reference = false;
    if !reference
        && let Some(out) = decoded_len(input.len()).and_then(|len| buf.get_mut(..len))
        && decode_into(input, out).is_some()
    {
        return Ok(out);
    }
    // Too long for `buf`, or refused: `decode` reports the error.
    *spill = decode(input, part)?;
    Ok(spill)
}

/// The decoded length of `n` base64url characters without padding; `None`
/// for a length no encoding has (`n % 4 == 1`).
fn decoded_len(n: usize) -> Option<usize> {
    let tail = match n % 4 {
        0 => 0,
        2 => 1,
        3 => 2,
        _ => return None,
    };
    Some(n / 4 * 3 + tail)
}

/// Sextet values of the base64url alphabet (RFC 4648 §5); 0xff elsewhere.
const SEXTETS: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut i = 0;
    while i < 64 {
        t[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// Strict base64url without padding into `out`, which must be exactly
/// [`decoded_len`] long: `None` on any byte outside the alphabet, a
/// length no encoding has or non-zero trailing bits (the caller then asks
/// the `base64` crate for the error). Accepts exactly what `URL_SAFE_NO_PAD`
/// accepts and writes the same bytes (tested against it).
fn decode_into(input: &[u8], out: &mut [u8]) -> Option<()> {
    let sextet = |b: &u8| u32::from(SEXTETS[usize::from(*b)]);
    // Invalid characters map to 0xff: OR-ing every value and testing bit 7
    // once replaces a branch per character.
    let mut bad = 0u32;
    let (quads, tail) = input.as_chunks::<4>();
    let (out_body, out_tail) = out.split_at_mut(quads.len().checked_mul(3)?.min(out.len()));
    let (triples, _) = out_body.as_chunks_mut::<3>();
    if triples.len() != quads.len() {
        return None;
    }
    for ([a, b, c, d], [x, y, z]) in quads.iter().zip(triples) {
        let [a, b, c, d] = [a, b, c, d].map(sextet);
        bad |= a | b | c | d;
        let [_, hi, mid, lo] = ((a << 18) | (b << 12) | (c << 6) | d).to_be_bytes();
        (*x, *y, *z) = (hi, mid, lo);
    }
    if bad & 0x80 != 0 {
        return None;
    }
    match (tail, out_tail) {
        ([], []) => Some(()),
        ([a, b], [x]) => {
            let (a, b) = (sextet(a), sextet(b));
            // The last character's low 4 bits are padding and must be zero.
            if (a | b) & 0x80 != 0 || b & 0x0f != 0 {
                return None;
            }
            let [.., byte] = ((a << 2) | (b >> 4)).to_be_bytes();
            *x = byte;
            Some(())
        }
        ([a, b, c], [x, y]) => {
            let (a, b, c) = (sextet(a), sextet(b), sextet(c));
            // The last character's low 2 bits are padding and must be zero.
            if (a | b | c) & 0x80 != 0 || c & 0x03 != 0 {
                return None;
            }
            let n = (a << 10) | (b << 4) | (c >> 2);
            let [_, _, hi, lo] = n.to_be_bytes();
            *x = hi;
            *y = lo;
            Some(())
        }
        _ => None,
    }
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

    /// Base64url text with, now and then, a character from outside the
    /// alphabet or padding, at lengths of every residue mod 4.
    fn near_base64() -> impl Strategy<Value = Vec<u8>> {
        let chars: Vec<u8> = (b'A'..=b'Z')
            .chain(b'a'..=b'z')
            .chain(b'0'..=b'9')
            .chain(*b"-_")
            .collect();
        let odd = prop::sample::select(b"+/= .\n\x00\x80\xff".to_vec());
        prop::collection::vec(
            prop_oneof![8 => prop::sample::select(chars), 1 => odd],
            0..80,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn direct_decoder_agrees_with_the_base64_crate(text in near_base64()) {
            let reference = decode_crate(&text, Part::Claims);
            prop_assert_eq!(&decode(&text, Part::Claims), &reference);
            let (mut buf, mut spill) = ([0u8; 32], Vec::new());
            let small = decode_small(&text, Part::Claims, &mut buf, &mut spill).map(<[u8]>::to_vec);
            prop_assert_eq!(&small, &reference);
            let mut out = vec![0u8; decoded_len(text.len()).unwrap_or(0)];
            let direct = decoded_len(text.len()).and_then(|_| decode_into(&text, &mut out));
            prop_assert_eq!(direct.is_some(), reference.is_ok());
        }

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
