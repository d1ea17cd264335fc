//! Byte classes of RFC 3261 §25.1 as lookup tables, and small scanning helpers.

pub(crate) const TOKEN: u8 = 1;
pub(crate) const WORD: u8 = 2;
/// unreserved = alphanum / mark
pub(crate) const UNRESERVED: u8 = 4;
/// user-unreserved
pub(crate) const USER: u8 = 8;
/// param-unreserved
pub(crate) const PARAM: u8 = 16;
/// hnv-unreserved
pub(crate) const HNV: u8 = 32;
/// password extra chars: "&" / "=" / "+" / "$" / ","
pub(crate) const PASSWORD: u8 = 64;
/// hostname characters: alphanum / "-" / "." (and "_", tolerated)
pub(crate) const HOST: u8 = 128;

const fn build() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let alnum = b.is_ascii_alphanumeric();
        let mut v = 0;
        if alnum
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            )
        {
            v |= TOKEN | WORD;
        }
        if matches!(
            b,
            b'(' | b')'
                | b'<'
                | b'>'
                | b':'
                | b'\\'
                | b'"'
                | b'/'
                | b'['
                | b']'
                | b'?'
                | b'{'
                | b'}'
        ) {
            v |= WORD;
        }
        if alnum
            || matches!(
                b,
                b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
            )
        {
            v |= UNRESERVED;
        }
        if matches!(b, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/') {
            v |= USER;
        }
        if matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$') {
            v |= PARAM;
        }
        if matches!(b, b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$') {
            v |= HNV;
        }
        if matches!(b, b'&' | b'=' | b'+' | b'$' | b',') {
            v |= PASSWORD;
        }
        if alnum || matches!(b, b'-' | b'.' | b'_') {
            v |= HOST;
        }
        t[c] = v;
        c += 1;
    }
    t
}

/// qdtext bytes that need no attention inside a quoted-string: not `"`, `\\`, DEL or a
/// control character other than SP/HTAB (UTF-8 bytes above 0x7f are qdtext).
static QDTEXT: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = (b >= 0x20 && b != 0x7f && b != b'"' && b != b'\\') || b == b'\t';
        c += 1;
    }
    t
};

/// The class table.
pub(crate) static CLASS: [u8; 256] = build();

#[inline]
pub(crate) fn is(b: u8, class: u8) -> bool {
    CLASS[b as usize] & class != 0
}

/// The end of the run of bytes of class `bit` (one class bit) in `s` from `i`: eight bytes
/// tested at a time (their class entries ANDed, one branch per eight), then byte by byte where
/// the run ends.
#[inline]
pub(crate) fn class_run(s: &[u8], i: usize, bit: u8) -> usize {
    debug_assert!(bit.is_power_of_two());
    let mut j = i;
    while let Some(chunk) = s.get(j..j + 8) {
        let all = chunk
            .iter()
            .fold(bit, |all, &c| all & CLASS[usize::from(c)]);
        if all == 0 {
            break;
        }
        j += 8;
    }
    while s.get(j).is_some_and(|&c| is(c, bit)) {
        j += 1;
    }
    j
}

#[inline]
pub(crate) fn is_token(b: u8) -> bool {
    is(b, TOKEN)
}

/// The first `needle` in `h`. On x86-64 the SSE2 searcher (part of the baseline there) is
/// inlined into the caller: header lines and values are short, and `memchr::memchr`'s
/// run-time dispatch to its AVX2 routine costs about as much as the search of a typical line.
#[inline]
pub(crate) fn find_byte(needle: u8, h: &[u8]) -> Option<usize> {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        if let Some(one) = memchr::arch::x86_64::sse2::memchr::One::new(needle) {
            return one.find(h);
        }
    }
    memchr::memchr(needle, h)
}

/// The first `\r` or `\n` in `h`: as [`find_byte`], the SSE2 searcher inlined on x86-64
/// (values are short; the run-time dispatch of `memchr::memchr2` costs more than the search).
#[inline]
pub(crate) fn find_cr_or_nl(h: &[u8]) -> Option<usize> {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        if let Some(two) = memchr::arch::x86_64::sse2::memchr::Two::new(b'\r', b'\n') {
            return two.find(h);
        }
    }
    memchr::memchr2(b'\r', b'\n', h)
}

/// The first `\n` in `h` ([`find_byte`]).
#[inline]
pub(crate) fn find_nl(h: &[u8]) -> Option<usize> {
    find_byte(b'\n', h)
}

/// Whether `s` is a non-empty token.
pub(crate) fn is_token_str(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_token(b))
}

/// ASCII case-insensitive equality (as `<[u8]>::eq_ignore_ascii_case`), a word at a time.
#[inline]
pub(crate) fn eq_ci(a: &[u8], b: &[u8]) -> bool {
    const L8: u64 = 0x0101_0101_0101_0101;
    const L4: u32 = 0x0101_0101;
    /// Lower-case the ASCII capitals of eight bytes at once (other bytes unchanged): bit 7 of
    /// each byte says ">= 'A'", "> 'Z'" and "ASCII".
    #[inline]
    fn lower8(x: u64) -> u64 {
        let low7 = x & (L8 * 0x7f);
        let upper = (low7 + L8 * (0x80 - 0x41)) & !(low7 + L8 * (0x80 - 0x5b)) & !x & (L8 * 0x80);
        x | (upper >> 2)
    }
    #[inline]
    fn lower4(x: u32) -> u32 {
        let low7 = x & (L4 * 0x7f);
        let upper = (low7 + L4 * (0x80 - 0x41)) & !(low7 + L4 * (0x80 - 0x5b)) & !x & (L4 * 0x80);
        x | (upper >> 2)
    }
    #[inline]
    fn eq8(a: &[u8], b: &[u8], at: usize) -> bool {
        let w = |s: &[u8]| {
            s.get(at..at + 8)
                .and_then(|x| <[u8; 8]>::try_from(x).ok())
                .map_or(0, u64::from_le_bytes)
        };
        let (x, y) = (w(a), w(b));
        x == y || lower8(x) == lower8(y)
    }
    #[inline]
    fn eq4(a: &[u8], b: &[u8], at: usize) -> bool {
        let w = |s: &[u8]| {
            s.get(at..at + 4)
                .and_then(|x| <[u8; 4]>::try_from(x).ok())
                .map_or(0, u32::from_le_bytes)
        };
        let (x, y) = (w(a), w(b));
        x == y || lower4(x) == lower4(y)
    }
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n >= 8 {
        // whole words, then one overlapping word for the tail
        let mut i = 0;
        while i + 8 < n {
            if !eq8(a, b, i) {
                return false;
            }
            i += 8;
        }
        eq8(a, b, n - 8)
    } else if n >= 4 {
        eq4(a, b, 0) && eq4(a, b, n - 4)
    } else {
        a.eq_ignore_ascii_case(b)
    }
}

/// Linear white space inside a header value: SP, HTAB, and the CR/LF of folded lines.
#[inline]
pub(crate) fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Trim LWS on both sides.
///
/// Byte by byte, without decoding characters: SP, HTAB, CR and LF are ASCII, and no byte of a
/// multi-byte UTF-8 character equals one, so both ends stay character boundaries.
pub(crate) fn trim_lws(s: &str) -> &str {
    let b = s.as_bytes();
    let start = b.iter().position(|&c| !is_lws(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|&c| !is_lws(c)).map_or(start, |k| k + 1);
    s.get(start..end).unwrap_or_default()
}

/// A cursor over a header value. Offsets are relative to the value start.
pub(crate) struct Cursor<'a> {
    pub(crate) s: &'a [u8],
    pub(crate) pos: usize,
    /// Set by [`Cursor::quoted`] when the string held a quoted-pair (never cleared by it).
    pub(crate) escapes: bool,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(s: &'a (impl AsRef<[u8]> + ?Sized)) -> Self {
        Self {
            s: s.as_ref(),
            pos: 0,
            escapes: false,
        }
    }

    #[inline]
    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    #[inline]
    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    /// Skip LWS; returns whether any was skipped.
    #[inline]
    pub(crate) fn skip_lws(&mut self) -> bool {
        let start = self.pos;
        self.take_while(is_lws);
        self.pos != start
    }

    /// Consume `b` if it is next.
    pub(crate) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Skip LWS, then consume `b` if next (SWS b SWS when `lws_after`), else restore.
    pub(crate) fn eat_sep(&mut self, b: u8) -> bool {
        let save = self.pos;
        self.skip_lws();
        if self.eat(b) {
            self.skip_lws();
            true
        } else {
            self.pos = save;
            false
        }
    }

    /// Consume bytes while `f` holds; returns the consumed range.
    #[inline]
    pub(crate) fn take_while(&mut self, f: impl Fn(u8) -> bool) -> (usize, usize) {
        let start = self.pos;
        let rest = self.s.get(start..).unwrap_or_default();
        // one pass over the slice, no per-byte bounds checks
        let n = rest.iter().position(|&b| !f(b)).unwrap_or(rest.len());
        self.pos = start + n;
        (start, self.pos)
    }

    /// Consume a token; `None` when there is none.
    pub(crate) fn token(&mut self) -> Option<(usize, usize)> {
        let r = self.take_while(is_token);
        (r.0 != r.1).then_some(r)
    }

    /// Skip plain qdtext (see [`QDTEXT`]): eight bytes a round while none of them is `"`,
    /// `\\`, DEL or below SP, then byte by byte up to the first byte that is not plain qdtext.
    #[inline]
    fn skip_qdtext(&mut self) {
        const L8: u64 = 0x0101_0101_0101_0101;
        const H8: u64 = 0x8080_8080_8080_8080;
        /// The high bit of the bytes below `n` (n <= 0x80); non-zero iff there is one.
        #[inline(always)]
        fn below(w: u64, n: u8) -> u64 {
            w.wrapping_sub(L8 * u64::from(n)) & !w & H8
        }
        let mut rest = self.s.get(self.pos..).unwrap_or_default();
        while let Some((c, tail)) = rest.split_first_chunk::<8>() {
            let w = u64::from_le_bytes(*c);
            // HTAB is qdtext but flagged with the other controls: the byte loop takes it
            let stop = below(w, 0x20)
                | below(w ^ (L8 * u64::from(b'"')), 1)
                | below(w ^ (L8 * u64::from(b'\\')), 1)
                | below(w ^ (L8 * 0x7f), 1);
            if stop != 0 {
                break;
            }
            self.pos += 8;
            rest = tail;
        }
        self.take_while(|b| QDTEXT[usize::from(b)]);
    }

    /// Consume a quoted-string (with the quotes); `None` if not at `"` or unterminated.
    pub(crate) fn quoted(&mut self) -> Option<(usize, usize)> {
        let start = self.pos;
        if !self.eat(b'"') {
            return None;
        }
        // runs of plain qdtext in one pass; the loop below sees only the bytes that stop them
        self.skip_qdtext();
        while let Some(b) = self.peek() {
            match b {
                b'"' => {
                    self.pos += 1;
                    return Some((start, self.pos));
                }
                b'\\' => {
                    // quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
                    match self.s.get(self.pos + 1) {
                        Some(&n) if n <= 0x7f && n != b'\n' && n != b'\r' => {
                            self.pos += 2;
                            self.escapes = true;
                            self.skip_qdtext();
                        }
                        _ => {
                            self.pos = start;
                            return None;
                        }
                    }
                }
                // qdtext excludes other control characters except LWS.
                b if b < 0x20 && !is_lws(b) => {
                    self.pos = start;
                    return None;
                }
                0x7f => {
                    self.pos = start;
                    return None;
                }
                _ => {
                    self.pos += 1;
                    self.skip_qdtext();
                }
            }
        }
        self.pos = start;
        None
    }

    pub(crate) fn slice(&self, r: (usize, usize)) -> &'a [u8] {
        self.s.get(r.0..r.1).unwrap_or_default()
    }
}

/// Remove the quotes and quoted-pair escapes of a quoted-string.
pub(crate) fn unquote(s: &str) -> std::borrow::Cow<'_, str> {
    let b = s.as_bytes();
    let inner = if b.len() >= 2 && b.first() == Some(&b'"') && b.last() == Some(&b'"') {
        s.get(1..s.len() - 1).unwrap_or_default()
    } else {
        s
    };
    if !inner.contains('\\') {
        return std::borrow::Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut it = inner.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            if let Some(n) = it.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Decode `%XX` escapes. Invalid escapes are kept as they are; bytes that do not form UTF-8
/// are replaced (U+FFFD).
pub(crate) fn unescape(s: &str) -> std::borrow::Cow<'_, str> {
    let b = s.as_bytes();
    // plain byte loops for the runs: these strings are short
    let run = |from: usize| {
        let rest = b.get(from..).unwrap_or_default();
        rest.iter().position(|&c| c == b'%').unwrap_or(rest.len())
    };
    let first = run(0);
    if first == b.len() {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(b.get(..first).unwrap_or_default());
    let mut p = first;
    // `p` is at a '%'
    while p < b.len() {
        let i = if let (Some(h), Some(l)) = (
            b.get(p + 1).and_then(|x| hex(*x)),
            b.get(p + 2).and_then(|x| hex(*x)),
        ) {
            out.push(h << 4 | l);
            p + 3
        } else {
            out.push(b'%');
            p + 1
        };
        let k = run(i);
        out.extend_from_slice(b.get(i..i + k).unwrap_or_default());
        p = i + k;
    }
    std::borrow::Cow::Owned(
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    )
}

pub(crate) fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Parse a decimal number made only of digits, rejecting overflow.
pub(crate) fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 40 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

/// Parse a decimal `u32` made only of digits.
#[inline]
pub(crate) fn parse_u32(s: &[u8]) -> Option<u32> {
    parse_u64(s).and_then(|v| u32::try_from(v).ok())
}

/// Whether `s` is an IPv6 address in RFC 4291 §2.2 text form (without brackets): eight groups
/// of 1-4 hex digits, at most one `::`, optionally ending in a dotted IPv4 address.
pub(crate) fn is_ipv6(s: &[u8]) -> bool {
    let mut groups = 0usize;
    let mut compressed = false;
    let mut i = 0;
    if s.starts_with(b"::") {
        compressed = true;
        i = 2;
        if s.len() == 2 {
            return true;
        }
    } else if s.first() == Some(&b':') {
        return false;
    }
    loop {
        // one group (or a trailing IPv4 address)
        let start = i;
        while s.get(i).is_some_and(u8::is_ascii_hexdigit) {
            i += 1;
        }
        if s.get(i) == Some(&b'.') {
            // dotted quad takes the place of two groups
            return is_ipv4(s.get(start..).unwrap_or_default())
                && if compressed {
                    groups + 2 < 8
                } else {
                    groups + 2 == 8
                };
        }
        let len = i - start;
        if len == 0 || len > 4 {
            return false;
        }
        groups += 1;
        match s.get(i) {
            None => return if compressed { groups < 8 } else { groups == 8 },
            Some(b':') => {
                if s.get(i + 1) == Some(&b':') {
                    if compressed {
                        return false;
                    }
                    compressed = true;
                    i += 2;
                    if i == s.len() {
                        return groups < 8;
                    }
                } else {
                    i += 1;
                }
            }
            Some(_) => return false,
        }
        if groups >= 8 {
            return false;
        }
    }
}

/// Whether `s` is a dotted-quad IPv4 address.
pub(crate) fn is_ipv4(s: &[u8]) -> bool {
    let mut n = 0;
    for part in s.split(|&b| b == b'.') {
        n += 1;
        if part.is_empty()
            || part.len() > 3
            || (part.len() > 1 && part.first() == Some(&b'0'))
            || !part.iter().all(u8::is_ascii_digit)
        {
            return false;
        }
        if parse_u64(part).is_none_or(|v| v > 255) {
            return false;
        }
    }
    n == 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_matches_std() {
        for s in [
            "::",
            "::1",
            "1::",
            "2001:db8::10",
            "2001:db8::10:5070",
            "::ffff:192.0.2.2",
            "2001:db8::192.0.2.1",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:192.0.2.1",
            "1::8",
            "fe80::1:2:3:4:5:6",
            "1:2:3:4:5:6:7::",
            "2001:db8:::192.0.2.1",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7",
            ":1::2",
            "1::2::3",
            "12345::",
            "g::1",
            "1:2:3:4:5:6:7:192.0.2.1",
            "::192.0.2.256",
            "::1.2.3",
            "1:",
            ":",
            "",
            "1::2:",
            "::ffff:1.2.3.04",
            "1:2:3:4:5:6:7:8::",
            "::1:2:3:4:5:6:7",
            "1:2:3:4::5:6:7:8",
        ] {
            let std_ok = s.parse::<std::net::Ipv6Addr>().is_ok();
            assert_eq!(is_ipv6(s.as_bytes()), std_ok, "{s:?}");
        }
    }

    /// The char-wise definition `trim_lws` replaced.
    fn trim_lws_ref(s: &str) -> &str {
        s.trim_matches(|c: char| c.is_ascii() && is_lws(c as u8))
    }

    #[test]
    fn trim_lws_examples() {
        for (s, want) in [
            ("", ""),
            (" \t\r\n", ""),
            (" 3600 ", "3600"),
            ("\r\n\tx y\t", "x y"),
            ("é ", "é"),
            (" \u{a0}x\u{a0} ", "\u{a0}x\u{a0}"),
        ] {
            assert_eq!(trim_lws(s), want, "{s:?}");
            assert_eq!(trim_lws_ref(s), want, "{s:?}");
        }
    }

    proptest::proptest! {
        /// The byte-wise trim gives what the char-wise one gives, on any text.
        #[test]
        fn trim_lws_agrees_with_char_trim(s in "[ \t\r\nab\u{a0}\u{85}é€😀]{0,12}", t in ".{0,8}") {
            proptest::prop_assert_eq!(trim_lws(&s), trim_lws_ref(&s));
            proptest::prop_assert_eq!(trim_lws(&t), trim_lws_ref(&t));
        }

        #[test]
        fn ipv6_agrees_with_std(s in "[0-9a-fA-F:.]{0,45}", g in proptest::prelude::any::<[u16; 8]>()) {
            proptest::prop_assert_eq!(is_ipv6(s.as_bytes()), s.parse::<std::net::Ipv6Addr>().is_ok(), "{:?}", s);
            let text = std::net::Ipv6Addr::from(g).to_string();
            proptest::prop_assert!(is_ipv6(text.as_bytes()), "{}", text);
        }
    }
}

#[cfg(test)]
mod eq_ci_tests {
    use super::{Cursor, is_lws, unescape, unquote};

    /// quoted-string by the grammar, byte by byte: the end offset.
    fn quoted_ref(s: &[u8]) -> Option<usize> {
        if s.first() != Some(&b'"') {
            return None;
        }
        let mut i = 1;
        while let Some(&b) = s.get(i) {
            match b {
                b'"' => return Some(i + 1),
                b'\\' => match s.get(i + 1) {
                    Some(&n) if n <= 0x7f && n != b'\n' && n != b'\r' => i += 2,
                    _ => return None,
                },
                0x7f => return None,
                b if b < 0x20 && !is_lws(b) => return None,
                _ => i += 1,
            }
        }
        None
    }

    proptest::proptest! {
        #[test]
        fn quoted_agrees_with_the_grammar(
            body in proptest::collection::vec(proptest::sample::select(
                vec![b'a', b'"', b'\\', b'\t', b'\r', b'\n', 1u8, 0x1f, b' ', 0x7f, 0xc3, 0xa9, b'%', b'4']
            ), 0..48),
        ) {
            let mut s = vec![b'"'];
            s.extend_from_slice(&body);
            let mut c = Cursor::new(&s[..]);
            let got = c.quoted().map(|r| r.1);
            proptest::prop_assert_eq!(got, quoted_ref(&s));
            proptest::prop_assert_eq!(c.pos, got.unwrap_or(0));
        }

        #[test]
        fn unquote_and_unescape_agree_with_char_loops(s in "[a\"\\\\%4Fé;]{0,24}") {
            // unquote: strip one pair of enclosing quotes, drop each quoting backslash
            let inner = s.strip_prefix('"').and_then(|x| x.strip_suffix('"')).unwrap_or(&s);
            let mut want = String::new();
            let mut it = inner.chars();
            while let Some(ch) = it.next() {
                if ch == '\\' {
                    if let Some(n) = it.next() { want.push(n); }
                } else {
                    want.push(ch);
                }
            }
            let got = unquote(&s);
            proptest::prop_assert_eq!(got.as_ref(), want.as_str());
            // unescape: %HH decoded, anything else kept
            let b = s.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < b.len() {
                let h = |k: usize| b.get(k).and_then(|x| (*x as char).to_digit(16));
                match (b[i], h(i + 1), h(i + 2)) {
                    (b'%', Some(x), Some(y)) => { out.push((x * 16 + y) as u8); i += 3; }
                    (c, _, _) => { out.push(c); i += 1; }
                }
            }
            let want = String::from_utf8_lossy(&out).into_owned();
            let got = unescape(&s);
            proptest::prop_assert_eq!(got.as_ref(), want.as_str());
        }
    }

    #[test]
    fn eq_ci_matches_std_on_every_byte_pair_and_long_names() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let x = [b'x', a, b'-', b'y', b'Z', b'q', b'.', b'+', a, b'k'];
                let y = [b'x', b, b'-', b'y', b'Z', b'q', b'.', b'+', b, b'k'];
                assert_eq!(
                    super::eq_ci(&x, &y),
                    x.eq_ignore_ascii_case(&y),
                    "{a:#x} {b:#x}"
                );
            }
        }
        // every length, with the differing byte at every position
        let base = b"+G.3gpp.ICSI-ref+sip.Instance";
        for n in 0..=base.len() {
            let x = &base[..n];
            for at in 0..n {
                for c in [b'a', b'A', b'@', b'`', b'[', b'{', 0xc1, 0xe1] {
                    let mut y = x.to_vec();
                    y[at] = c;
                    assert_eq!(
                        super::eq_ci(x, &y),
                        x.eq_ignore_ascii_case(&y),
                        "{n} {at} {c}"
                    );
                }
            }
            let lower = x.to_ascii_lowercase();
            assert!(super::eq_ci(x, &lower));
        }
        assert!(super::eq_ci(b"+G.3GPP.ICSI-REF", b"+g.3gpp.icsi-ref"));
        assert!(!super::eq_ci(b"+g.3gpp.icsi-reg", b"+g.3gpp.icsi-ref"));
        assert!(!super::eq_ci(b"abc", b"abcd"));
    }
}
