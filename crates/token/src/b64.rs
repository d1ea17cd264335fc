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

/// The base64url alphabet (RFC 4648 §5).
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Marks a character outside the alphabet in [`SHIFTED`] (above the 24 data bits).
const INVALID: u32 = 0xff00_0000;

/// Per position `k` in a group of four characters, each character's sextet
/// shifted to its place in the 24-bit group (`<< 18 - 6k`), or [`INVALID`]:
/// a group decodes with four lookups and three ORs, and one test of the OR
/// of all groups finds any invalid character.
const SHIFTED: [[u32; 256]; 4] = {
    let mut t = [[INVALID; 256]; 4];
    let mut i = 0;
    while i < 64 {
        let c = ALPHABET[i] as usize;
        let v = i as u32;
        t[0][c] = v << 18;
        t[1][c] = v << 12;
        t[2][c] = v << 6;
        t[3][c] = v;
        i += 1;
    }
    t
};

/// The 24 bits of four characters (with [`INVALID`] bits for a bad one).
fn group(q: &[u8; 4]) -> u32 {
    let [a, b, c, d] = *q;
    let [t0, t1, t2, t3] = &SHIFTED;
    t0[usize::from(a)] | t1[usize::from(b)] | t2[usize::from(c)] | t3[usize::from(d)]
}

/// Strict base64url without padding into `out`, which must be exactly
/// [`decoded_len`] long: `None` on any byte outside the alphabet, a
/// length no encoding has or non-zero trailing bits (the caller then asks
/// the `base64` crate for the error). Accepts exactly what `URL_SAFE_NO_PAD`
/// accepts and writes the same bytes (tested against it).
fn decode_into(input: &[u8], out: &mut [u8]) -> Option<()> {
    let mut bad = 0u32;
    // Eight characters (two groups) give six bytes per step.
    let (octets, rest) = input.as_chunks::<8>();
    let (out_octets, out_rest) = out.split_at_mut(octets.len().checked_mul(6)?.min(out.len()));
    let (sixes, _) = out_octets.as_chunks_mut::<6>();
    if sixes.len() != octets.len() {
        return None;
    }
    for ([a, b, c, d, e, f, g, h], bytes) in octets.iter().zip(sixes) {
        let (g1, g2) = (group(&[*a, *b, *c, *d]), group(&[*e, *f, *g, *h]));
        bad |= g1 | g2;
        let [x0, x1, x2, x3, x4, x5, _, _] =
            ((u64::from(g1) << 40) | (u64::from(g2) << 16)).to_be_bytes();
        *bytes = [x0, x1, x2, x3, x4, x5];
    }
    let (quads, tail) = rest.as_chunks::<4>();
    let (out_quads, out_tail) =
        out_rest.split_at_mut(quads.len().checked_mul(3)?.min(out_rest.len()));
    let (triples, _) = out_quads.as_chunks_mut::<3>();
    if triples.len() != quads.len() {
        return None;
    }
    for (q, triple) in quads.iter().zip(triples) {
        let g = group(q);
        bad |= g;
        let [_, x, y, z] = g.to_be_bytes();
        *triple = [x, y, z];
    }
    if bad & INVALID != 0 {
        return None;
    }
    let [t0, t1, t2, _] = &SHIFTED;
    match (tail, out_tail) {
        ([], []) => Some(()),
        ([a, b], [x]) => {
            let g = t0[usize::from(*a)] | t1[usize::from(*b)];
            // The last character's low 4 bits are padding and must be zero.
            if g & (INVALID | 0xffff) != 0 {
                return None;
            }
            let [_, hi, _, _] = g.to_be_bytes();
            *x = hi;
            Some(())
        }
        ([a, b, c], [x, y]) => {
            let g = t0[usize::from(*a)] | t1[usize::from(*b)] | t2[usize::from(*c)];
            // The last character's low 2 bits are padding and must be zero.
            if g & (INVALID | 0xff) != 0 {
                return None;
            }
            let [_, hi, mid, _] = g.to_be_bytes();
            *x = hi;
            *y = mid;
            Some(())
        }
        _ => None,
    }
}

/// Encodes as unpadded base64url.
pub(crate) fn encode(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    encode_into(input, &mut out);
    out
}

/// Two base64url characters per 12-bit value: three input bytes encode with
/// two lookups.
const PAIRS: [[u8; 2]; 4096] = {
    let mut t = [[0u8; 2]; 4096];
    let mut i = 0;
    while i < 4096 {
        t[i] = [ALPHABET[i >> 6], ALPHABET[i & 63]];
        i += 1;
    }
    t
};

/// Appends the unpadded base64url encoding of `input` to `out` (the same
/// text as `URL_SAFE_NO_PAD`, tested against it).
pub(crate) fn encode_into(input: &[u8], out: &mut String) {
    // Through a stack buffer, 48 times six bytes at a time.
    const STEP: usize = 288;
    let mut buf = [0u8; STEP / 3 * 4];
    out.reserve(input.len().div_ceil(3) * 4);
    let pair = |a: u8, b: u8, c: u8| {
        let v = (usize::from(a) << 16) | (usize::from(b) << 8) | usize::from(c);
        let [p, q] = PAIRS[v >> 12];
        let [r, s] = PAIRS[v & 0xfff];
        [p, q, r, s]
    };
    for chunk in input.chunks(STEP) {
        let (sixes, rest) = chunk.as_chunks::<6>();
        let (eights, _) = buf.as_chunks_mut::<8>();
        for ([a, b, c, d, e, f], o) in sixes.iter().zip(eights.iter_mut()) {
            let [p, q, r, s] = pair(*a, *b, *c);
            let [t, u, v, w] = pair(*d, *e, *f);
            *o = [p, q, r, s, t, u, v, w];
        }
        let mut n = sixes.len() * 8;
        let (triples, tail) = rest.as_chunks::<3>();
        for [a, b, c] in triples {
            if let Some(o) = buf.get_mut(n..n + 4) {
                o.copy_from_slice(&pair(*a, *b, *c));
            }
            n += 4;
        }
        let sextet = |v: u8| ALPHABET[usize::from(v & 63)];
        let last: &[u8] = match tail {
            [a] => &[sextet(a >> 2), sextet(a << 4)],
            [a, b] => &[sextet(a >> 2), sextet((a << 4) | (b >> 4)), sextet(b << 2)],
            _ => &[],
        };
        if let Some(o) = buf.get_mut(n..n + last.len()) {
            o.copy_from_slice(last);
        }
        n += last.len();
        // The alphabet is ASCII: the conversion succeeds.
        out.push_str(std::str::from_utf8(buf.get(..n).unwrap_or_default()).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    /// Base64url text with, now and then (or never, or rarely), a character
    /// from outside the alphabet or padding, at lengths of every residue mod 4.
    fn near_base64() -> impl Strategy<Value = Vec<u8>> {
        let chars: Vec<u8> = (b'A'..=b'Z')
            .chain(b'a'..=b'z')
            .chain(b'0'..=b'9')
            .chain(*b"-_")
            .collect();
        let odd = prop::sample::select(b"+/= .\n\x00\x80\xff".to_vec());
        let with = |w| prop_oneof![w => prop::sample::select(chars.clone()), 1 => odd.clone()];
        prop_oneof![
            prop::collection::vec(with(8), 0..120),
            prop::collection::vec(with(400), 0..120),
            prop::collection::vec(prop::sample::select(chars.clone()), 0..120),
        ]
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
        fn encoder_agrees_with_the_base64_crate(bytes in prop::collection::vec(any::<u8>(), 0..700)) {
            let text = encode(&bytes);
            prop_assert_eq!(&text, &URL_SAFE_NO_PAD.encode(&bytes));
            let mut appended = String::from("x.");
            encode_into(&bytes, &mut appended);
            prop_assert_eq!(appended, format!("x.{text}"));
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
