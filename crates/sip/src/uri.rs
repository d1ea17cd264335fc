//! SIP, SIPS and TEL URIs (RFC 3261 §19.1, RFC 3966), and other absolute URIs kept as text.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use bytestring::ByteString;

use crate::chars::{self, HNV, PARAM, PASSWORD, UNRESERVED, USER, hex, is};
use crate::error::{Error, Result};
use crate::span::Span;

/// The scheme of a [`Uri`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// `sip:` (RFC 3261 §19.1).
    Sip,
    /// `sips:` (RFC 3261 §19.1).
    Sips,
    /// `tel:` (RFC 3966).
    Tel,
    /// Any other absolute URI (RFC 3986); see [`Uri::scheme_str`].
    Other,
}

/// A parsed URI over a shared buffer.
///
/// SIP and SIPS URIs are split into user, password, host (IPv6 references keep their brackets),
/// port, parameters and headers; TEL URIs into the number (as [`Uri::user`]) and parameters.
/// Other schemes (RFC 3261 absoluteURI) are kept as text and only their scheme is typed: the
/// semantic layer answers them with 416 ([`Request::check`](crate::Request::check)).
///
/// Accessors return the text as it appears on the wire (with `%` escapes); use
/// [`Uri::user_unescaped`] or [`unescape`](crate::unescape) for decoded values. Equality is
/// textual (the exact wire form).
#[derive(Clone)]
pub struct Uri {
    src: ByteString,
    /// Where each part is in `src`.
    p: Parts,
}

/// What [`Uri::scan`] finds: the fields of a [`Uri`] but its text.
#[derive(Clone, Copy)]
struct Parts {
    scheme: Scheme,
    scheme_end: u32,
    user: Option<Span>,
    password: Option<Span>,
    host: Span,
    port: Option<u16>,
    params: Option<Span>,
    headers: Option<Span>,
}

fn uri_err(offset: usize, expected: &'static str) -> Error {
    Error::Uri { offset, expected }
}

/// Check a run of `class` bytes or `%HH` escapes; returns the end (`%` is in none of the
/// classes this is called with, so it always starts an escape).
fn scan_escaped(s: &[u8], mut i: usize, class: u8) -> Result<usize> {
    loop {
        // the run of class bytes, then an escape or the end
        let run = s.get(i..).unwrap_or_default();
        i += run.iter().position(|&b| !is(b, class)).unwrap_or(run.len());
        if s.get(i) != Some(&b'%') {
            return Ok(i);
        }
        match (
            s.get(i + 1).and_then(|x| hex(*x)),
            s.get(i + 2).and_then(|x| hex(*x)),
        ) {
            (Some(_), Some(_)) => i += 3,
            _ => return Err(uri_err(i, "two hex digits after %")),
        }
    }
}

impl Uri {
    /// Parse a URI from text (copies it into a new buffer).
    ///
    /// # Errors
    /// [`Error::Uri`] with the offset of the first byte that does not fit the grammar.
    pub fn parse(s: &str) -> Result<Self> {
        Self::from_text(ByteString::from(s))
    }

    /// Parse a URI that is the whole of `src` (zero-copy).
    ///
    /// # Errors
    /// [`Error::Uri`] with the offset of the first byte that does not fit the grammar.
    pub fn from_bytes(src: Bytes) -> Result<Self> {
        let parts = Self::scan(&src)?;
        // the grammar admits ASCII only, so this holds for every URI that scanned
        let src = ByteString::try_from(src).map_err(|e| uri_err(e.valid_up_to(), "UTF-8 text"))?;
        Ok(Self::with_parts(src, parts))
    }

    /// Parse a URI that is the whole of `src` (zero-copy, no UTF-8 check).
    pub(crate) fn from_text(src: ByteString) -> Result<Self> {
        let parts = Self::scan(src.as_bytes())?;
        Ok(Self::with_parts(src, parts))
    }

    /// The scheme of `s` and its end (the `:` after it).
    fn scan_scheme(s: &[u8]) -> Result<(Scheme, usize)> {
        // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
        let mut i = 0;
        match s.first() {
            Some(b) if b.is_ascii_alphabetic() => i += 1,
            _ => return Err(uri_err(0, "a URI scheme")),
        }
        while let Some(&b) = s.get(i) {
            if b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.') {
                i += 1;
            } else {
                break;
            }
        }
        if s.get(i) != Some(&b':') {
            return Err(uri_err(i, "':' after the URI scheme"));
        }
        let scheme_bytes = s.get(..i).unwrap_or_default();
        let scheme = if scheme_bytes.eq_ignore_ascii_case(b"sip") {
            Scheme::Sip
        } else if scheme_bytes.eq_ignore_ascii_case(b"sips") {
            Scheme::Sips
        } else if scheme_bytes.eq_ignore_ascii_case(b"tel") {
            Scheme::Tel
        } else {
            Scheme::Other
        };
        Ok((scheme, i))
    }

    /// The grammar check and the offsets.
    fn scan(s: &[u8]) -> Result<Parts> {
        if u32::try_from(s.len()).is_err() {
            return Err(uri_err(0, "a shorter URI"));
        }
        // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ); the usual lower-case `sip:`
        // is recognised from its four bytes
        let (scheme, i) = match s.first_chunk::<4>() {
            Some(b"sip:") => (Scheme::Sip, 3),
            _ => Self::scan_scheme(s)?,
        };
        let mut uri = Parts {
            scheme,
            scheme_end: i as u32,
            user: None,
            password: None,
            host: Span::EMPTY,
            port: None,
            params: None,
            headers: None,
        };
        let start = i + 1;
        match scheme {
            Scheme::Sip | Scheme::Sips => uri.parse_sip(s, start)?,
            Scheme::Tel => uri.parse_tel(s, start)?,
            Scheme::Other => {
                // absoluteURI: hier-part / opaque-part; we accept the printable URI characters.
                if start >= s.len() {
                    return Err(uri_err(start, "the rest of the URI"));
                }
                for (k, &b) in s.iter().enumerate().skip(start) {
                    if b <= b' ' || b >= 0x7f || matches!(b, b'<' | b'>' | b'"') {
                        return Err(uri_err(k, "a URI character"));
                    }
                }
            }
        }
        Ok(uri)
    }

    /// The URI of `src` with the offsets `p` found in it.
    #[inline]
    fn with_parts(src: ByteString, p: Parts) -> Self {
        Self { src, p }
    }
}

impl Parts {
    fn parse_sip(&mut self, s: &[u8], start: usize) -> Result<()> {
        let mut i = start;
        // userinfo: no '@' may appear elsewhere in a SIP URI (escaped it is %40).
        if let Some(at) = chars::find_byte(b'@', s.get(start..).unwrap_or_default()) {
            let at = start + at;
            let user_end = scan_escaped(s, start, UNRESERVED | USER)?;
            if user_end == start {
                return Err(uri_err(start, "a user part"));
            }
            self.user = Some(Span::new(start, user_end));
            i = user_end;
            if s.get(i) == Some(&b':') {
                let pw_end = scan_escaped(s, i + 1, UNRESERVED | PASSWORD)?;
                self.password = Some(Span::new(i + 1, pw_end));
                i = pw_end;
            }
            if i != at {
                return Err(uri_err(i, "'@' after the user part"));
            }
            i = at + 1;
        }
        // host
        let host_start = i;
        if s.get(i) == Some(&b'[') {
            let close = memchr::memchr(b']', s.get(i..).unwrap_or_default())
                .map(|k| k + i)
                .ok_or_else(|| uri_err(i, "']' closing the IPv6 reference"))?;
            let inner = s.get(i + 1..close).unwrap_or_default();
            let ok = chars::is_ipv6(inner);
            if !ok {
                return Err(uri_err(i + 1, "an IPv6 address (RFC 4291)"));
            }
            i = close + 1;
        } else {
            i = chars::class_run(s, i, chars::HOST);
            if i == host_start {
                return Err(uri_err(i, "a host"));
            }
        }
        self.host = Span::new(host_start, i);
        if s.get(i) == Some(&b':') {
            let ps = i + 1;
            i = ps;
            while s.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            let port = chars::parse_u64(s.get(ps..i).unwrap_or_default())
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| uri_err(ps, "a port number (0-65535)"))?;
            self.port = Some(port);
        }
        if s.get(i) == Some(&b';') {
            let ps = i + 1;
            while s.get(i) == Some(&b';') {
                i += 1;
                let n = scan_escaped(s, i, UNRESERVED | PARAM)?;
                if n == i {
                    return Err(uri_err(i, "a URI parameter name"));
                }
                i = n;
                if s.get(i) == Some(&b'=') {
                    i += 1;
                    let v = scan_escaped(s, i, UNRESERVED | PARAM)?;
                    if v == i {
                        return Err(uri_err(i, "a URI parameter value"));
                    }
                    i = v;
                }
            }
            self.params = Some(Span::new(ps, i));
        }
        if s.get(i) == Some(&b'?') {
            let hs = i + 1;
            loop {
                i += 1;
                let n = scan_escaped(s, i, UNRESERVED | HNV)?;
                if n == i {
                    return Err(uri_err(i, "a URI header name"));
                }
                if s.get(n) != Some(&b'=') {
                    return Err(uri_err(n, "'=' after the URI header name"));
                }
                i = scan_escaped(s, n + 1, UNRESERVED | HNV)?;
                if s.get(i) != Some(&b'&') {
                    break;
                }
            }
            self.headers = Some(Span::new(hs, i));
        }
        if i != s.len() {
            return Err(uri_err(i, "the end of the URI"));
        }
        Ok(())
    }

    fn parse_tel(&mut self, s: &[u8], start: usize) -> Result<()> {
        let mut i = start;
        while s.get(i).is_some_and(|&b| {
            b.is_ascii_hexdigit()
                || matches!(
                    b,
                    b'*' | b'#' | b'+' | b'-' | b'.' | b'(' | b')' | b'p' | b'w'
                )
        }) {
            i += 1;
        }
        if i == start {
            return Err(uri_err(i, "a telephone number"));
        }
        self.user = Some(Span::new(start, i));
        self.host = Span::new(i, i);
        if s.get(i) == Some(&b';') {
            let ps = i + 1;
            while s.get(i) == Some(&b';') {
                i += 1;
                let n = scan_escaped(s, i, UNRESERVED | PARAM)?;
                if n == i {
                    return Err(uri_err(i, "a tel parameter name"));
                }
                i = n;
                if s.get(i) == Some(&b'=') {
                    i = scan_escaped(s, i + 1, UNRESERVED | PARAM)?;
                }
            }
            self.params = Some(Span::new(ps, i));
        }
        if i != s.len() {
            return Err(uri_err(i, "the end of the tel URI"));
        }
        Ok(())
    }
}

impl Uri {
    fn text(&self, sp: Span) -> &str {
        sp.text(&self.src)
    }

    /// The whole URI as it appears on the wire.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.src
    }

    /// The underlying buffer (a sub-slice of the message it was parsed from).
    #[must_use]
    pub fn as_bytes(&self) -> &Bytes {
        self.src.as_bytes()
    }

    /// The scheme.
    #[must_use]
    pub fn scheme(&self) -> Scheme {
        self.p.scheme
    }

    /// The scheme as written (e.g. `sip`, `SIPS`, `soap.beep`).
    #[must_use]
    pub fn scheme_str(&self) -> &str {
        self.text(Span::new(0, self.p.scheme_end as usize))
    }

    /// Whether this is a `sips:` URI.
    #[must_use]
    pub fn is_sips(&self) -> bool {
        self.p.scheme == Scheme::Sips
    }

    /// The user part (SIP/SIPS) or the telephone number (TEL), escapes kept.
    #[must_use]
    pub fn user(&self) -> Option<&str> {
        self.p.user.map(|s| self.text(s))
    }

    /// The user part with `%` escapes decoded.
    #[must_use]
    pub fn user_unescaped(&self) -> Option<Cow<'_, str>> {
        self.user().map(chars::unescape)
    }

    /// The password of the userinfo (deprecated by RFC 3261 but part of the grammar).
    #[must_use]
    pub fn password(&self) -> Option<&str> {
        self.p.password.map(|s| self.text(s))
    }

    /// The host: a name, an IPv4 address, or an IPv6 reference with its brackets. Empty for
    /// TEL and other schemes.
    #[must_use]
    pub fn host(&self) -> &str {
        self.text(self.p.host)
    }

    /// The port, if written.
    #[must_use]
    pub fn port(&self) -> Option<u16> {
        self.p.port
    }

    /// `host[:port]` as written.
    #[must_use]
    pub fn host_port(&self) -> &str {
        let end = self
            .p
            .params
            .map(|p| p.start as usize - 1)
            .or_else(|| self.p.headers.map(|h| h.start as usize - 1))
            .unwrap_or_else(|| self.src.len());
        self.text(Span::new(self.p.host.start as usize, end))
    }

    /// The URI parameters in order, as `(name, value)`; flag parameters have no value.
    pub fn params(&self) -> impl Iterator<Item = (&str, Option<&str>)> + '_ {
        let text = self.p.params.map(|p| self.text(p)).unwrap_or_default();
        text.split(';')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (p, None),
            })
    }

    /// The value of URI parameter `name` (case-insensitive); `Some("")` for a flag parameter.
    #[must_use]
    pub fn param(&self, name: &str) -> Option<&str> {
        if name.is_empty() || name.contains('=') {
            return self
                .params()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.unwrap_or_default());
        }
        // as `params()`, one byte loop over the text (no splitting, no vectorised search:
        // parameter lists are short)
        let text = self.p.params.map(|p| self.text(p)).unwrap_or_default();
        let (b, n) = (text.as_bytes(), name.len());
        let mut start = 0;
        while start <= b.len() {
            let seg = b.get(start..).unwrap_or_default();
            let end = start + seg.iter().position(|&c| c == b';').unwrap_or(seg.len());
            if end - start >= n
                && chars::eq_ci(b.get(start..start + n).unwrap_or_default(), name.as_bytes())
            {
                match b.get(start + n) {
                    None | Some(b';') => return Some(""),
                    Some(b'=') => return text.get(start + n + 1..end),
                    Some(_) => {}
                }
            }
            start = end + 1;
        }
        None
    }

    /// Whether URI parameter `name` is present.
    #[must_use]
    pub fn has_param(&self, name: &str) -> bool {
        self.param(name).is_some()
    }

    /// The `transport` parameter.
    #[must_use]
    pub fn transport(&self) -> Option<&str> {
        self.param("transport")
    }

    /// The URI headers (after `?`) in order, as `(name, value)`, escapes kept.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        let text = self.p.headers.map(|p| self.text(p)).unwrap_or_default();
        text.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
    }

    /// Whether the URI carries headers (`?name=value`), which RFC 3261 §19.1.1 forbids in a
    /// Request-URI.
    #[must_use]
    pub fn has_headers(&self) -> bool {
        self.p.headers.is_some()
    }

    /// The URI without its headers part (`?...`), e.g. to use a Contact as a target.
    #[must_use]
    pub fn without_headers(&self) -> Self {
        match self.p.headers {
            None => self.clone(),
            Some(h) => {
                let mut u = self.clone();
                u.src = Span::new(0, h.start as usize - 1).sub(&self.src);
                u.p.headers = None;
                u
            }
        }
    }
}

impl Uri {
    /// URI equivalence of RFC 3261 §19.1.4 (for SIP/SIPS; RFC 3966 §4 for TEL, where visual
    /// separators are ignored): scheme, unescaped user and password (case-sensitive), host
    /// and port (case-insensitive, no default port); `user`, `ttl`, `method`, `maddr` and
    /// `transport` must agree when either side has them; other parameters must agree when both
    /// have them; URI headers must be the same set. Other schemes compare as text with a
    /// case-insensitive scheme.
    #[must_use]
    pub fn matches(&self, other: &Self) -> bool {
        if self.p.scheme != other.p.scheme {
            return false;
        }
        match self.p.scheme {
            Scheme::Other => {
                let (a, b) = (self.as_str(), other.as_str());
                let (sa, ra) = a.split_at(self.p.scheme_end as usize);
                let (sb, rb) = b.split_at(other.p.scheme_end as usize);
                sa.eq_ignore_ascii_case(sb) && ra == rb
            }
            Scheme::Tel => {
                let digits = |u: &Self| -> String {
                    u.user()
                        .unwrap_or_default()
                        .chars()
                        .filter(|c| !matches!(c, '-' | '.' | '(' | ')'))
                        .map(|c| c.to_ascii_lowercase())
                        .collect()
                };
                digits(self) == digits(other) && params_match(self, other, &[])
            }
            Scheme::Sip | Scheme::Sips => {
                fn un(s: Option<&str>) -> Option<Cow<'_, str>> {
                    s.map(chars::unescape)
                }
                un(self.user()) == un(other.user())
                    && un(self.password()) == un(other.password())
                    && self.host().eq_ignore_ascii_case(other.host())
                    && self.p.port == other.p.port
                    && params_match(
                        self,
                        other,
                        &["user", "ttl", "method", "maddr", "transport"],
                    )
                    && headers_match(self, other)
            }
        }
    }
}

fn params_match(a: &Uri, b: &Uri, must: &[&str]) -> bool {
    let get = |u: &Uri, n: &str| {
        u.params()
            .find(|(k, _)| chars::unescape(k).eq_ignore_ascii_case(n))
            .map(|(_, v)| chars::unescape(v.unwrap_or_default()).to_ascii_lowercase())
    };
    for n in must {
        if get(a, n) != get(b, n) {
            return false;
        }
    }
    a.params().all(|(k, _)| {
        let k = chars::unescape(k);
        match (get(a, &k), get(b, &k)) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        }
    })
}

fn headers_match(a: &Uri, b: &Uri) -> bool {
    let set = |u: &Uri| {
        let mut v: Vec<(String, String)> = u
            .headers()
            .map(|(k, v)| {
                (
                    chars::unescape(k).to_ascii_lowercase(),
                    chars::unescape(v).into_owned(),
                )
            })
            .collect();
        v.sort();
        v
    };
    set(a) == set(b)
}

impl PartialEq for Uri {
    fn eq(&self, other: &Self) -> bool {
        self.src == other.src
    }
}

impl Eq for Uri {}

impl std::hash::Hash for Uri {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.src.hash(state);
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uri({:?})", self.as_str())
    }
}

impl FromStr for Uri {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests;
