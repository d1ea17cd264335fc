//! The SIP edge of the drivers (private): messages are read with `mcptt-sip` (parse and typed
//! header access) and answered with `mcptt_sip::Response::encode_head_for`; requests are built
//! with `mcptt_sip::Request::builder`.

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};
use mcptt_sip::{CSeq, Headers, KnownHeader, Method, NameAddr, Request, Response};

/// Normalises a URI for identity comparison: angle brackets and URI parameters/headers removed,
/// scheme and host lower-cased (RFC 3261 §19.1.4: user parts stay case-sensitive). Borrows
/// when the URI is already in that form.
pub(crate) fn identity(uri: &str) -> Cow<'_, str> {
    // `str::trim` is a no-op when both ends are printable ASCII (no white space there).
    let b = uri.as_bytes();
    let graphic = |c: Option<&u8>| c.is_some_and(u8::is_ascii_graphic);
    let uri = if graphic(b.first()) && graphic(b.last()) {
        uri
    } else {
        uri.trim()
    };
    let uri = uri.trim_start_matches('<');
    // One pass: the end (first `>`, `;` or `?`, all ASCII, so a char boundary), the first `:`,
    // whether an `@` follows it, and whether a capital sits in the scheme, after the `:` or
    // after the last `@` (a table: one load and test per ordinary byte).
    let b = uri.as_bytes();
    let mut end = b.len();
    let mut colon = None;
    let mut at = false;
    let (mut upper_scheme, mut upper_after_colon, mut upper_since_at) = (false, false, false);
    for (i, &c) in b.iter().enumerate() {
        match ID_BYTES[usize::from(c)] {
            0 => {}
            1 => {
                end = i;
                break;
            }
            2 => {
                if colon.is_none() {
                    colon = Some(i);
                }
            }
            3 => {
                if colon.is_some() {
                    at = true;
                    upper_since_at = false;
                }
            }
            _ => {
                if colon.is_none() {
                    upper_scheme = true;
                } else {
                    upper_after_colon = true;
                }
                upper_since_at = true;
            }
        }
    }
    let uri = uri.get(..end).unwrap_or(uri);
    let Some(colon) = colon else {
        // No scheme: written out as `:` + the text (host part lower-cased).
        let host = uri.rsplit_once('@').map_or(uri, |(_, h)| h);
        let mut out = String::with_capacity(uri.len() + 1);
        out.push(':');
        if let Some((user, _)) = uri.rsplit_once('@') {
            out.push_str(user);
            out.push('@');
        }
        out.push_str(&host.to_ascii_lowercase());
        return Cow::Owned(out);
    };
    // Capitals after the last `@` (or after the `:` when there is none) are the host's.
    let upper_host = if at {
        upper_since_at
    } else {
        upper_after_colon
    };
    if !upper_scheme && !upper_host {
        return Cow::Borrowed(uri);
    }
    let (scheme, rest) = (
        uri.get(..colon).unwrap_or(""),
        uri.get(colon + 1..).unwrap_or(""),
    );
    let (user, host) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let mut out = String::with_capacity(uri.len() + 1);
    out.push_str(&scheme.to_ascii_lowercase());
    out.push(':');
    if let Some(u) = user {
        out.push_str(u);
        out.push('@');
    }
    out.push_str(&host.to_ascii_lowercase());
    Cow::Owned(out)
}

/// Token characters (RFC 3261 §25.1: letters, digits, `- . ! % * _ + ` ' ~`), one load each.
pub(crate) static TOKEN_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        table[c] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        c += 1;
    }
    table
};

/// Byte classes of [`identity`]: 1 ends the URI (`>`, `;`, `?`), 2 `:`, 3 `@`, 4 a capital.
const ID_BYTES: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b'>' as usize] = 1;
    t[b';' as usize] = 1;
    t[b'?' as usize] = 1;
    t[b':' as usize] = 2;
    t[b'@' as usize] = 3;
    let mut c = b'A';
    while c <= b'Z' {
        t[c as usize] = 4;
        c += 1;
    }
    t
};

/// The first `needle` in `h`. On x86-64 the SSE2 searcher (part of the baseline there) is
/// inlined into the caller: the values searched are short, and `memchr::memchr`'s run-time
/// dispatch to its AVX2 routine costs about as much as the search.
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

/// As [`find_byte`], for the first of three bytes (`memchr::memchr3`).
#[inline]
pub(crate) fn find_byte3(a: u8, b: u8, c: u8, h: &[u8]) -> Option<usize> {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        if let Some(three) = memchr::arch::x86_64::sse2::memchr::Three::new(a, b, c) {
            return three.find(h);
        }
    }
    memchr::memchr3(a, b, c, h)
}

/// The first version of [`identity`], kept as the reference the tests compare with.
#[cfg(test)]
fn identity_reference(uri: &str) -> Cow<'_, str> {
    let uri = uri.trim().trim_start_matches('<');
    let end = uri
        .bytes()
        .position(|b| matches!(b, b'>' | b';' | b'?'))
        .unwrap_or(uri.len());
    let uri = uri.get(..end).unwrap_or(uri);
    let (scheme, rest) = uri.split_once(':').unwrap_or(("", uri));
    let (user, host) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let lower = |s: &str| !s.bytes().any(|b| b.is_ascii_uppercase());
    if lower(scheme) && lower(host) && rest.len() < uri.len() {
        return Cow::Borrowed(uri);
    }
    let mut out = String::with_capacity(uri.len() + 1);
    out.push_str(&scheme.to_ascii_lowercase());
    out.push(':');
    if let Some(u) = user {
        out.push_str(u);
        out.push('@');
    }
    out.push_str(&host.to_ascii_lowercase());
    Cow::Owned(out)
}

/// Byte classes of [`plain_sip_uri`]: 1 user part, 2 host, 4 parameter name or value.
const PLAIN_URI: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let alnum = b.is_ascii_alphanumeric();
        t[c] = (if alnum || matches!(b, b'-' | b'_' | b'.' | b'+' | b'~') {
            1
        } else {
            0
        }) | (if alnum || matches!(b, b'-' | b'.') {
            2
        } else {
            0
        }) | (if alnum || matches!(b, b'-' | b'_' | b'.' | b'~') {
            4
        } else {
            0
        });
        c += 1;
    }
    t
};

/// The end of the run of `class` bytes of [`PLAIN_URI`] in `b` from `i`.
fn run(b: &[u8], i: usize, class: u8) -> usize {
    crate::xml::class_run(&PLAIN_URI, b, i, class)
}

/// Whether `uri` is a SIP URI in the plain form of nearly every identity, contact and route
/// (`sip:` or `sips:`, an optional user part of letters, digits and `- _ . + ~` with `@`, a
/// host of letters, digits, `.` and `-`, then `;name` or `;name=value` parameters of letters,
/// digits and `- _ . ~`): such a URI is one `mcptt_sip::Uri::parse` accepts as a whole (a test
/// checks it), so it needs no parse where only its validity and text are used.
pub(crate) fn plain_sip_uri(uri: &str) -> bool {
    plain_sip_host(uri).is_some()
}

/// As [`plain_sip_uri`], giving the host's byte range in `uri` when the URI is plain.
pub(crate) fn plain_sip_host(uri: &str) -> Option<std::ops::Range<usize>> {
    let scheme = if uri.starts_with("sip:") {
        4
    } else if uri.starts_with("sips:") {
        5
    } else {
        return None;
    };
    let b = uri.as_bytes().get(scheme..)?;
    let user = run(b, 0, 1);
    let host_start = if user > 0 && b.get(user) == Some(&b'@') {
        user + 1
    } else {
        0
    };
    let host_end = run(b, host_start, 2);
    if host_end == host_start {
        return None;
    }
    let mut i = host_end;
    while b.get(i) == Some(&b';') {
        let name = run(b, i + 1, 4);
        if name == i + 1 {
            return None;
        }
        i = name;
        if b.get(i) == Some(&b'=') {
            let value = run(b, i + 1, 4);
            if value == i + 1 {
                return None;
            }
            i = value;
        }
    }
    (i == b.len()).then_some(scheme + host_start..scheme + host_end)
}

/// [`identity`] of a URI [`plain_sip_uri`] accepted, its host being `host` (from
/// [`plain_sip_host`]): the text up to the end of the host (the parameters cut off), borrowed
/// unless the host has a capital (the scheme is lower-case and nothing else changes).
pub(crate) fn plain_sip_identity(uri: &str, host: std::ops::Range<usize>) -> Cow<'_, str> {
    let end = host.end;
    match uri.as_bytes().get(host) {
        // A branch-free OR over the host (vectorised), not a test per byte.
        Some(h) if !h.iter().fold(false, |up, b| up | b.is_ascii_uppercase()) => {
            Cow::Borrowed(uri.get(..end).unwrap_or(uri))
        }
        _ => identity(uri),
    }
}

/// Reads one encoded request with `mcptt-sip` (the client's `*_bytes` entry points).
pub(crate) fn parse_request(bytes: &[u8]) -> Result<Request, &'static str> {
    match mcptt_sip::Message::parse(Bytes::copy_from_slice(bytes)) {
        Ok(mcptt_sip::Message::Request(r)) => Ok(r),
        Ok(mcptt_sip::Message::Response(_)) => Err("a request, not a response"),
        Err(_) => Err("a well-formed SIP message"),
    }
}

/// Reads one encoded response with `mcptt-sip` (the client's `*_bytes` entry points).
pub(crate) fn parse_response(bytes: &[u8]) -> Result<Response, &'static str> {
    match mcptt_sip::Message::parse(Bytes::copy_from_slice(bytes)) {
        Ok(mcptt_sip::Message::Response(r)) => Ok(r),
        Ok(mcptt_sip::Message::Request(_)) => Err("a response, not a request"),
        Err(_) => Err("a well-formed SIP message"),
    }
}

/// A receive buffer reused from message to message: each message is copied into it and
/// handed out as a shared [`Bytes`] (so the parse's clones of it allocate nothing); once the
/// message is dropped, the next copy reuses the same allocation (`BytesMut::reserve` takes
/// the whole buffer back when nothing else holds it, and allocates anew when something does).
#[derive(Debug, Default)]
pub(crate) struct RxBuffer(BytesMut);

impl RxBuffer {
    /// `bytes` in a buffer of its own (shared, reference-counted).
    pub(crate) fn copy(&mut self, bytes: &[u8]) -> Bytes {
        self.0.clear();
        self.0.reserve(bytes.len());
        self.0.extend_from_slice(bytes);
        self.0.split().freeze()
    }
}

/// The first `CSeq`, as `Headers::cseq` reads it: the usual `NUMBER SP METHOD` with up to nine
/// digits and one of the methods this crate meets (PUBLISH, SUBSCRIBE, NOTIFY) is read here
/// from the value; anything else goes through the typed parse.
pub(crate) fn read_cseq(headers: &Headers) -> Option<CSeq> {
    let value = headers.get_known(KnownHeader::CSeq)?.as_bytes();
    let digits = value
        .iter()
        .take(10)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if (1..=9).contains(&digits) && value.get(digits) == Some(&b' ') {
        let method = match value.get(digits + 1..) {
            Some(b"NOTIFY") => Some(Method::Notify),
            Some(b"PUBLISH") => Some(Method::Publish),
            Some(b"SUBSCRIBE") => Some(Method::Subscribe),
            _ => None,
        };
        if let (Some(method), Some(n)) = (method, value.get(..digits)) {
            let seq = n.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
            return Some(CSeq { seq, method });
        }
    }
    headers.cseq().ok()
}

/// The headers that identify the transaction and dialog of every request and response
/// (RFC 3261 §8.1.1), read with `mcptt-sip`'s typed access; a message without them cannot be
/// answered.
pub(crate) struct Ids<'m> {
    /// `Call-ID`.
    pub(crate) call_id: &'m str,
    /// `CSeq`.
    pub(crate) cseq: CSeq,
    /// `From`.
    pub(crate) from: Party<'m>,
    /// `To`.
    pub(crate) to: Party<'m>,
}

/// The URI and tag of a `From` or `To` header: borrowed from the message when the value is
/// written plainly (see [`plain_name_addr`]), else read with `mcptt-sip`'s name-addr parse.
pub(crate) enum Party<'m> {
    /// `<URI>` or `<URI>;tag=T`, as written.
    Plain {
        /// The URI.
        uri: &'m str,
        /// The tag.
        tag: Option<&'m str>,
    },
    /// Any other form, parsed (boxed: [`Ids`] stays small, so it is not copied with
    /// `memcpy` where it moves).
    Typed(Box<NameAddr>),
}

impl<'m> Party<'m> {
    /// Reads header `value` (the first line's, `None` when absent) in its plain form, else
    /// with `typed` (the typed accessor of the same header).
    fn read(
        value: Option<&'m str>,
        typed: impl FnOnce() -> mcptt_sip::Result<NameAddr>,
        known: [Option<&str>; 2],
    ) -> mcptt_sip::Result<Self> {
        match value.and_then(|v| plain_name_addr_known(v, known)) {
            Some((uri, tag)) => Ok(Self::Plain { uri, tag }),
            None => typed().map(|n| Self::Typed(Box::new(n))),
        }
    }

    /// The URI as written.
    pub(crate) fn uri(&self) -> &str {
        match self {
            Self::Plain { uri, .. } => uri,
            Self::Typed(n) => n.uri().as_str(),
        }
    }

    /// The `tag` parameter.
    pub(crate) fn tag(&self) -> Option<&str> {
        match self {
            Self::Plain { tag, .. } => *tag,
            Self::Typed(n) => n.tag(),
        }
    }
}

/// A name-addr written plainly as `<URI>` or `<URI>;tag=T` (`URI` a [`plain_sip_uri`], `T` of
/// token characters, no display name, no other parameter): its URI and tag, as
/// `mcptt_sip::NameAddr::parse` would read them (a test checks it); `None` for anything else.
#[cfg(test)]
pub(crate) fn plain_name_addr(value: &str) -> Option<(&str, Option<&str>)> {
    plain_name_addr_known(value, [None, None])
}

/// As [`plain_name_addr`]; a URI written exactly as `known` (a [`plain_sip_uri`] itself, such
/// as the configured service URI) is not checked again.
fn plain_name_addr_known<'v>(
    value: &'v str,
    known: [Option<&str>; 2],
) -> Option<(&'v str, Option<&'v str>)> {
    let rest = value.strip_prefix('<')?;
    let close = find_byte(b'>', rest.as_bytes())?;
    let uri = rest.get(..close)?;
    let after = rest.get(close + 1..)?;
    let tag = if after.is_empty() {
        None
    } else {
        let tag = after.strip_prefix(";tag=")?;
        if tag.is_empty() || !tag.bytes().all(|b| TOKEN_CHARS[usize::from(b)]) {
            return None;
        }
        Some(tag)
    };
    (known.contains(&Some(uri)) || plain_sip_uri(uri)).then_some((uri, tag))
}

impl<'m> Ids<'m> {
    /// Checks that all four are present and reads `Call-ID` and `CSeq` only (`From` and `To` are
    /// parsed where their tags or URIs are needed); `Err` names the first one missing or
    /// malformed.
    pub(crate) fn check(headers: &'m Headers) -> Result<(&'m str, CSeq), &'static str> {
        if !headers.contains_known(KnownHeader::From) {
            return Err("From header");
        }
        Self::check_after_from(headers)
    }

    /// [`Ids::check`] once `From` is known to be present.
    pub(crate) fn check_after_from(headers: &'m Headers) -> Result<(&'m str, CSeq), &'static str> {
        if !headers.contains_known(KnownHeader::To) {
            return Err("To header");
        }
        let call_id = headers.call_id().ok_or("Call-ID header")?;
        let cseq = read_cseq(headers).ok_or("CSeq header")?;
        Ok((call_id, cseq))
    }

    /// Reads them; `Err` names the first one missing or malformed.
    pub(crate) fn read(headers: &'m Headers) -> Result<Self, &'static str> {
        Self::read_known(headers, None, None)
    }

    /// As [`Ids::read`]; a `From` or `To` URI written exactly as `known`, or a `From` URI
    /// written exactly as `known_from` (each a [`plain_sip_uri`] itself: the caller checked it
    /// once), is not checked again.
    pub(crate) fn read_known(
        headers: &'m Headers,
        known: Option<&str>,
        known_from: Option<&str>,
    ) -> Result<Self, &'static str> {
        let from = Party::read(
            headers.get_known(KnownHeader::From),
            || headers.from(),
            [known, known_from],
        )
        .map_err(|_| "From header")?;
        let to = Party::read(
            headers.get_known(KnownHeader::To),
            || headers.to(),
            [known, None],
        )
        .map_err(|_| "To header")?;
        let call_id = headers.call_id().ok_or("Call-ID header")?;
        let cseq = read_cseq(headers).ok_or("CSeq header")?;
        Ok(Self {
            call_id,
            cseq,
            from,
            to,
        })
    }
}

/// The end of a response head without a body.
const LENGTH_ZERO_END: &[u8] = b"Content-Length: 0\r\n\r\n";

/// A response to a request, written straight into one buffer: the head of
/// `Response::from_request` (Via, From, To, Call-ID, CSeq and, for a 2xx to SUBSCRIBE,
/// Record-Route copied per RFC 3261 §8.2.6.2 and §12.1.1; no body) by
/// `Response::encode_head_for`, then the header lines a driver adds.
pub(crate) struct Answer {
    out: Vec<u8>,
}

impl Answer {
    /// The response with code `code` to `req`.
    pub(crate) fn new(req: &Request, code: u16) -> Self {
        Self::write(Vec::new(), req, code, None)
    }

    /// As [`Answer::new`], appended to `out` (a buffer reused from message to message: once
    /// large enough, no allocation); [`Answer::finish`] gives `out` back.
    pub(crate) fn new_in(out: Vec<u8>, req: &Request, code: u16) -> Self {
        Self::write(out, req, code, None)
    }

    /// As [`Answer::new`], adding `;tag=TAG` to `To` (whose value in the request was `to`) when
    /// it has no tag (RFC 3261 §8.2.6.2).
    #[cfg(test)]
    pub(crate) fn with_to_tag(req: &Request, code: u16, to: &Party<'_>, tag: &str) -> Self {
        Self::with_to_tag_in(Vec::new(), req, code, to, tag)
    }

    /// As [`Answer::with_to_tag`], appended to `out` (see [`Answer::new_in`]).
    pub(crate) fn with_to_tag_in(
        out: Vec<u8>,
        req: &Request,
        code: u16,
        to: &Party<'_>,
        tag: &str,
    ) -> Self {
        Self::write(out, req, code, to.tag().is_none().then_some(tag))
    }

    fn write(mut out: Vec<u8>, req: &Request, code: u16, to_tag: Option<&str>) -> Self {
        // `encode_head_for` reserves for what it copies plus room for the lines added here.
        Response::encode_head_for(req, code, to_tag, &mut out);
        Self { out }
    }

    /// Adds a header line. Names are constants; a value with CR or LF (only a misconfigured
    /// host or contact could have one) is left out rather than sent.
    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        if !value.bytes().any(|b| b == b'\r' || b == b'\n') {
            self.out.extend_from_slice(name.as_bytes());
            self.out.extend_from_slice(b": ");
            self.out.extend_from_slice(value.as_bytes());
            self.out.extend_from_slice(b"\r\n");
        }
        self
    }

    /// Adds a header line already written out (`Name: value` CRLF, as [`Answer::header_line`]
    /// writes it once; empty when the value could not be sent).
    pub(crate) fn line(mut self, line: &[u8]) -> Self {
        self.out.extend_from_slice(line);
        self
    }

    /// The line [`Answer::header`] adds, written out once for a value used again and again
    /// (empty when the value has CR or LF, as `header` leaves the line out then).
    pub(crate) fn header_line(name: &str, value: &str) -> Vec<u8> {
        let mut line = Vec::new();
        if !value.bytes().any(|b| b == b'\r' || b == b'\n') {
            line.extend_from_slice(name.as_bytes());
            line.extend_from_slice(b": ");
            line.extend_from_slice(value.as_bytes());
            line.extend_from_slice(b"\r\n");
        }
        line
    }

    /// Adds a header line with a decimal value; `name_colon` is the name with its `: `
    /// (`"Expires: "`: one piece).
    pub(crate) fn header_num(mut self, name_colon: &str, value: u64) -> Self {
        self.out.extend_from_slice(name_colon.as_bytes());
        push_u64(&mut self.out, value);
        self.out.extend_from_slice(b"\r\n");
        self
    }

    /// Adds a header line with a 16-hex-digit value (tags and entity-tags); `name_colon` as
    /// for [`Answer::header_num`].
    pub(crate) fn header_hex16(mut self, name_colon: &str, value: u64) -> Self {
        self.out.extend_from_slice(name_colon.as_bytes());
        push_hex16(&mut self.out, value);
        self.out.extend_from_slice(b"\r\n");
        self
    }

    /// The wire bytes (after what the buffer held before, for [`Answer::new_in`]).
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.out.extend_from_slice(LENGTH_ZERO_END);
        self.out
    }
}

/// `00` to `99`, two bytes each.
const PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

/// The two digits of `n` (below 100).
#[inline]
fn pair(n: usize) -> [u8; 2] {
    let i = n % 100 * 2;
    [
        PAIRS.get(i).copied().unwrap_or(b'0'),
        PAIRS.get(i + 1).copied().unwrap_or(b'0'),
    ]
}

/// Appends `n` in decimal. Numbers of up to four digits (expiries, lengths, sequence numbers)
/// are written inline as one fixed-size piece; longer ones by [`push_u64_long`].
#[inline]
pub(crate) fn push_u64(out: &mut Vec<u8>, n: u64) {
    if n < 100 {
        if n < 10 {
            out.push(b'0' + n as u8);
        } else {
            out.extend_from_slice(&pair(n as usize));
        }
    } else if n < 10_000 {
        let n = n as usize;
        let ([a, b], [c, d]) = (pair(n / 100), pair(n % 100));
        if n < 1000 {
            out.extend_from_slice(&[b, c, d]);
        } else {
            out.extend_from_slice(&[a, b, c, d]);
        }
    } else {
        push_u64_long(out, n);
    }
}

/// [`push_u64`] for any `n`: two digits per division, then the last one or two.
fn push_u64_long(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    while n >= 100 {
        i -= 2;
        if let Some(d) = digits.get_mut(i..i + 2) {
            d.copy_from_slice(&pair((n % 100) as usize));
        }
        n /= 100;
    }
    if n >= 10 {
        i -= 2;
        if let Some(d) = digits.get_mut(i..i + 2) {
            d.copy_from_slice(&pair(n as usize));
        }
    } else {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b'0' + n as u8;
        }
    }
    out.extend_from_slice(digits.get(i..).unwrap_or_default());
}

/// `n` as 16 lower-case hex digits, on the stack.
pub(crate) struct Hex16([u8; 16]);

impl Hex16 {
    pub(crate) fn new(n: u64) -> Self {
        /// The eight hex digits of `x`, most significant first, eight bytes at a time: each
        /// nibble spread to its own byte, then `'0'` added, and `'a' - '0' - 10` more where the
        /// nibble is 10 or above (`v + 6` carries into bit 4 exactly then; no byte overflows).
        fn eight(x: u32) -> [u8; 8] {
            const ONES: u64 = 0x0101_0101_0101_0101;
            let x = u64::from(x);
            let x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
            let x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
            let x = (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
            let letters = ((x + 6 * ONES) >> 4) & ONES;
            (x + u64::from(b'0') * ONES + letters * u64::from(b'a' - b'0' - 10)).to_be_bytes()
        }
        let mut digits = [0u8; 16];
        let (high, low) = digits.split_at_mut(8);
        high.copy_from_slice(&eight((n >> 32) as u32));
        low.copy_from_slice(&eight(n as u32));
        Self(digits)
    }

    pub(crate) fn as_str(&self) -> &str {
        // Hex digits are ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Appends `n` as 16 lower-case hex digits (the form of this crate's tags and entity-tags).
pub(crate) fn push_hex16(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(&Hex16::new(n).0);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{Answer, Ids, identity, push_hex16, push_u64};

    #[test]
    fn hex16_writes_sixteen_lower_case_digits() {
        let mut n = 0x0123_4567_89ab_cdefu64;
        for v in [0, 1, 9, 10, 15, 16, 0xab, u64::MAX, 0xf0f0_0a0a_9999_aaaa] {
            assert_eq!(super::Hex16::new(v).as_str(), format!("{v:016x}"));
        }
        for _ in 0..1000 {
            n = n.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            assert_eq!(super::Hex16::new(n).as_str(), format!("{n:016x}"));
        }
    }

    #[test]
    fn answers_build_on_from_request() {
        let req = mcptt_sip::Request::parse(bytes::Bytes::from_static(
            b"SUBSCRIBE sip:psi@example.org SIP/2.0\r\nVia: SIP/2.0/TLS a;branch=z9hG4bK1\r\n\
Record-Route: <sip:p1;lr>, <sip:p2;lr>\r\nf: <sip:u@example.org>;tag=x\r\nt: <sip:psi@example.org>\r\n\
i: c1\r\nCSeq: 7 SUBSCRIBE\r\nContact: <sip:u@h>\r\nContent-Length: 0\r\n\r\n",
        ))
        .unwrap();
        let ids = Ids::read(req.headers()).unwrap();
        assert_eq!((ids.call_id, ids.cseq.seq), ("c1", 7));
        let wire = Answer::with_to_tag(&req, 200, &ids.to, "00000000000000ab")
            .header_num("Expires: ", 600)
            .header_hex16("SIP-ETag: ", 0xab)
            .header("Bad", "a\r\nInjected: 1")
            .finish();
        let resp = mcptt_sip::Response::parse(bytes::Bytes::from(wire)).unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.to().unwrap().tag(), Some("00000000000000ab"));
        assert_eq!(resp.expires().unwrap(), Some(600));
        assert_eq!(resp.sip_etag().unwrap(), Some("00000000000000ab"));
        assert_eq!(resp.record_route().unwrap().len(), 2);
        assert_eq!(resp.headers().get("Injected"), None);
        assert_eq!(resp.content_length().unwrap(), Some(0));
        assert_eq!(resp.headers().count("Content-Length"), 1);
        // A To that already has a tag (an in-dialog request) keeps it.
        let in_dialog = mcptt_sip::Request::parse(bytes::Bytes::from_static(
            b"SUBSCRIBE sip:psi@example.org SIP/2.0\r\nVia: SIP/2.0/TLS a;branch=z9hG4bK2\r\n\
From: <sip:u@example.org>;tag=x\r\nTo: <sip:psi@example.org>;tag=ee\r\n\
Call-ID: c1\r\nCSeq: 8 SUBSCRIBE\r\nContent-Length: 0\r\n\r\n",
        ))
        .unwrap();
        let in_ids = Ids::read(in_dialog.headers()).unwrap();
        let again = Answer::with_to_tag(&in_dialog, 481, &in_ids.to, "ff").finish();
        let again = mcptt_sip::Response::parse(bytes::Bytes::from(again)).unwrap();
        assert_eq!(again.to().unwrap().tag(), Some("ee"));
        let plain = Answer::new(&req, 405).header("Allow", "PUBLISH").finish();
        let plain = mcptt_sip::Response::parse(bytes::Bytes::from(plain)).unwrap();
        assert_eq!(plain.to().unwrap().tag(), None);
        assert_eq!(plain.headers().get("Allow"), Some("PUBLISH"));
        // A line written out once is what `header` adds, and left out alike.
        for value in [
            "<sip:mcptt@example.org;transport=tls>",
            "a\r\nInjected: 1",
            "b\nc",
        ] {
            assert_eq!(
                Answer::new(&req, 200)
                    .line(&Answer::header_line("Contact", value))
                    .finish(),
                Answer::new(&req, 200).header("Contact", value).finish()
            );
        }
        assert!(Answer::header_line("Contact", "x\ry").is_empty());
    }

    #[test]
    fn cseq_reads_what_the_typed_parse_reads() {
        let mut parsed = 0;
        for value in [
            "1 PUBLISH",
            "0 NOTIFY",
            "7 SUBSCRIBE",
            "999999999 SUBSCRIBE",
            "1234567890 NOTIFY",
            "4294967295 NOTIFY",
            "4294967296 NOTIFY",
            "01 NOTIFY",
            "1 publish",
            "1 Notify",
            "1 NOTIFYX",
            "1 NOTIF",
            "1  NOTIFY",
            "1\tNOTIFY",
            " 1 NOTIFY",
            "1 NOTIFY ",
            "1 NOTIFY;x",
            "1 INVITE",
            "1 FOO",
            "x NOTIFY",
            "-1 NOTIFY",
            "1",
            "NOTIFY",
            "",
        ] {
            for extra in ["", "CSeq: 2 NOTIFY\r\n"] {
                let wire = format!(
                    "SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS a;branch=z9hG4bK1\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: c\r\nCSeq: {value}\r\n{extra}\
Content-Length: 0\r\n\r\n"
                );
                let Ok(resp) = mcptt_sip::Response::parse(bytes::Bytes::from(wire)) else {
                    continue;
                };
                let h = resp.headers();
                assert_eq!(super::read_cseq(h), h.cseq().ok(), "{value:?} {extra:?}");
                parsed += 1;
            }
        }
        // The message parse takes most of these (the typed read comes later).
        assert!(parsed >= 30, "{parsed}");
    }

    #[test]
    fn number_writers() {
        let mut out = Vec::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for shift in 0..64 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let n = x >> shift;
            out.clear();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
        for n in [
            0,
            7,
            9,
            10,
            11,
            99,
            100,
            101,
            999,
            1000,
            1001,
            3600,
            9999,
            10_000,
            10_001,
            99_999,
            1_800_000_000,
            u64::MAX,
        ] {
            out.clear();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
            out.clear();
            push_hex16(&mut out, n);
            assert_eq!(out, format!("{n:016x}").as_bytes());
            assert_eq!(super::Hex16::new(n).as_str(), format!("{n:016x}"));
        }
    }

    #[test]
    fn plain_sip_uris() {
        for uri in [
            "sip:ue000001@example.org",
            "sips:a@b",
            "sip:core.example.org;transport=tls;lr",
            "sip:mcptt-server@mcptt.example.org",
        ] {
            assert!(super::plain_sip_uri(uri), "{uri}");
        }
        for uri in [
            "sip:",
            "sip:@b",
            "sip:a@",
            "sip:a@b;",
            "sip:a@b;x=",
            "sip:a@b:5060",
            "tel:+1",
            "SIP:a@b",
            "sip:a@b?x=y",
            "sip:a b@c",
        ] {
            assert!(!super::plain_sip_uri(uri), "{uri}");
        }
    }

    /// When `plain_sip_uri` accepts `uri`, `mcptt_sip::Uri::parse` accepts it as the same text.
    fn plain_sip_uri_parses_alike(uri: &str) -> Result<(), proptest::test_runner::TestCaseError> {
        if let Some(host) = super::plain_sip_host(uri) {
            proptest::prop_assert_eq!(super::plain_sip_identity(uri, host), identity(uri));
            let parsed = mcptt_sip::Uri::parse(uri);
            proptest::prop_assert!(parsed.is_ok(), "{}", uri);
            let parsed = parsed.unwrap();
            proptest::prop_assert_eq!(parsed.as_str(), uri);
        }
        Ok(())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

        /// What `plain_sip_uri` accepts, `mcptt_sip::Uri::parse` accepts (as the same text).
        #[test]
        fn plain_sip_uris_parse(uri in "(sip|sips|SIP|tel|x):[a-zA-Z0-9@.;=_+~:%?&/ \\[\\]!*'-]{0,20}") {
            plain_sip_uri_parses_alike(&uri)?;
        }

        /// What `plain_name_addr` reads, `NameAddr::parse` reads alike.
        #[test]
        fn plain_name_addrs_read_as_parsed(
            display in "(\"A\" |B )?",
            uri in "(sip|sips|tel):([a-z0-9.+_-]{1,5}@)?[a-zA-Z0-9.-]{0,6}(;[a-z]{1,3}(=[a-z0-9]{0,2})?)?",
            close in "(>|> | >|)",
            tag in "(;tag=[a-zA-Z0-9%!*'~.`+_-]{0,6}|;TAG=1|;tag=1;x=2|;x=1| ;tag=1|)",
        ) {
            let value = format!("{display}<{uri}{close}{tag}");
            // A known plain URI skips its check and reads alike.
            if super::plain_sip_uri(&uri) {
                proptest::prop_assert_eq!(
                    super::plain_name_addr_known(&value, [Some(&uri), None]),
                    super::plain_name_addr(&value)
                );
                proptest::prop_assert_eq!(
                    super::plain_name_addr_known(&value, [Some("sip:x@y"), Some(&uri)]),
                    super::plain_name_addr(&value)
                );
            }
            if let Some((u, t)) = super::plain_name_addr(&value) {
                let parsed = mcptt_sip::NameAddr::parse(&value);
                proptest::prop_assert!(parsed.is_ok(), "{}", value);
                let parsed = parsed.unwrap();
                proptest::prop_assert_eq!(parsed.uri().as_str(), u);
                proptest::prop_assert_eq!(parsed.tag(), t);
            }
        }

        /// The same on URIs built from the pieces the plain form has.
        #[test]
        fn plain_sip_uri_pieces_parse(
            user in "([a-zA-Z0-9._+~-]{0,6}@)?",
            host in "[a-zA-Z0-9._-]{0,8}",
            params in proptest::collection::vec("[a-z0-9_.~-]{0,4}(=[a-z0-9_.~-]{0,4})?", 0..3),
        ) {
            let mut uri = format!("sip:{user}{host}");
            for p in params {
                uri.push(';');
                uri.push_str(&p);
            }
            plain_sip_uri_parses_alike(&uri)?;
        }

        /// The one-pass `identity` gives what the first version gave, borrowing alike.
        #[test]
        fn identity_matches_the_reference(uri in "[<> ]{0,2}[sSiIpP:tel+@aA.;?>xX1-]{0,24}") {
            let (got, want) = (identity(&uri), super::identity_reference(&uri));
            proptest::prop_assert_eq!(&got, &want);
            proptest::prop_assert_eq!(
                matches!(got, std::borrow::Cow::Borrowed(_)),
                matches!(want, std::borrow::Cow::Borrowed(_))
            );
        }
    }

    #[test]
    fn rx_buffer_reuses_a_free_buffer_and_never_overwrites_a_held_one() {
        let mut rx = super::RxBuffer::default();
        let first = rx.copy(b"first message");
        let first_ptr = first.as_ptr();
        drop(first);
        // Nothing holds the first copy (which filled the buffer): the second one reuses it.
        let second = rx.copy(b"second");
        assert_eq!(&second[..], b"second");
        assert_eq!(second.as_ptr(), first_ptr);
        // A copy still held (here a clone of a slice of it) is left as it was.
        let held = second.slice(1..4);
        drop(second);
        let third = rx.copy(b"third message, longer");
        assert_eq!(&held[..], b"eco");
        assert_eq!(&third[..], b"third message, longer");
        assert_ne!(third.as_ptr(), first_ptr);
    }

    #[test]
    fn identity_normalises_brackets_params_and_host_case() {
        assert_eq!(
            identity("<sip:Alice@EXAMPLE.org;user=phone>"),
            "sip:Alice@example.org"
        );
        assert_eq!(identity("SIP:ue1@Example.org"), "sip:ue1@example.org");
        assert_eq!(identity("tel:+123"), "tel:+123");
        assert!(matches!(
            identity("<sip:ue1@example.org>"),
            std::borrow::Cow::Borrowed("sip:ue1@example.org")
        ));
        assert_eq!(identity("no-scheme"), ":no-scheme");
    }
}
