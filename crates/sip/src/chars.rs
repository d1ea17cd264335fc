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

/// The class table.
pub(crate) static CLASS: [u8; 256] = build();

#[inline]
pub(crate) fn is(b: u8, class: u8) -> bool {
    CLASS[b as usize] & class != 0
}

#[inline]
pub(crate) fn is_token(b: u8) -> bool {
    is(b, TOKEN)
}

/// Whether `s` is a non-empty token.
pub(crate) fn is_token_str(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_token(b))
}

/// Linear white space inside a header value: SP, HTAB, and the CR/LF of folded lines.
#[inline]
pub(crate) fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Trim LWS on both sides.
pub(crate) fn trim_lws(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii() && is_lws(c as u8))
}

/// A cursor over a header value. Offsets are relative to the value start.
pub(crate) struct Cursor<'a> {
    pub(crate) s: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(s: &'a (impl AsRef<[u8]> + ?Sized)) -> Self {
        Self {
            s: s.as_ref(),
            pos: 0,
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
    pub(crate) fn skip_lws(&mut self) -> bool {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if is_lws(b) {
                self.pos += 1;
            } else {
                break;
            }
        }
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
    pub(crate) fn take_while(&mut self, f: impl Fn(u8) -> bool) -> (usize, usize) {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if f(b) {
                self.pos += 1;
            } else {
                break;
            }
        }
        (start, self.pos)
    }

    /// Consume a token; `None` when there is none.
    pub(crate) fn token(&mut self) -> Option<(usize, usize)> {
        let r = self.take_while(is_token);
        (r.0 != r.1).then_some(r)
    }

    /// Consume a quoted-string (with the quotes); `None` if not at `"` or unterminated.
    pub(crate) fn quoted(&mut self) -> Option<(usize, usize)> {
        let start = self.pos;
        if !self.eat(b'"') {
            return None;
        }
        while let Some(b) = self.peek() {
            match b {
                b'"' => {
                    self.pos += 1;
                    return Some((start, self.pos));
                }
                b'\\' => {
                    // quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
                    match self.s.get(self.pos + 1) {
                        Some(&n) if n <= 0x7f && n != b'\n' && n != b'\r' => self.pos += 2,
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
                _ => self.pos += 1,
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
    let inner = s
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s);
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
    if !s.contains('%') {
        return std::borrow::Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|x| hex(*x)),
                b.get(i + 2).and_then(|x| hex(*x)),
            )
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(c);
        i += 1;
    }
    std::borrow::Cow::Owned(String::from_utf8_lossy(&out).into_owned())
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
pub(crate) fn parse_u32(s: &[u8]) -> Option<u32> {
    parse_u64(s).and_then(|v| u32::try_from(v).ok())
}
