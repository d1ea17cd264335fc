//! name-addr / addr-spec values with header parameters (From, To, Contact, Route, P-Asserted-Identity…).

use std::borrow::Cow;

use bytes::Bytes;
use bytestring::ByteString;

use crate::chars::{self, Cursor};
use crate::error::{Error, Result};
use crate::params::{ParamSpan, Params, parse_params, perr};
use crate::span::Span;
use crate::uri::Uri;

/// `[display-name] <URI>` or a bare `URI` (addr-spec), followed by header parameters
/// (RFC 3261 §20.10, §20.20, §20.39, §25.1).
///
/// Without angle brackets, the `;params` after the URI are header parameters (RFC 3261 §20;
/// RFC 4475 `cparam01`), and the URI may not contain `,`, `;` or `?`.
#[derive(Clone)]
pub struct NameAddr {
    params: Params,
    whole: Span,
    display: Option<Span>,
    uri: Uri,
    angle: bool,
}

impl NameAddr {
    /// Parse one name-addr or addr-spec with parameters from text (copies it).
    ///
    /// # Errors
    /// [`Error::Header`] or [`Error::Uri`] with the offset of the problem.
    pub fn parse(s: &str) -> Result<Self> {
        Self::from_text(ByteString::from(s))
    }

    /// Parse one name-addr over `src` (zero-copy); the whole of `src` must be used.
    ///
    /// # Errors
    /// As [`NameAddr::parse`].
    pub fn from_bytes(src: Bytes) -> Result<Self> {
        let src = ByteString::try_from(src).map_err(|e| perr(e.valid_up_to(), "UTF-8 text"))?;
        Self::from_text(src)
    }

    /// Parse from text (a header value of a parsed message, zero-copy).
    pub(crate) fn from_text(src: ByteString) -> Result<Self> {
        let mut c = Cursor::new(src.as_bytes());
        c.skip_lws();
        let na = parse_one(&src, &mut c)?;
        c.skip_lws();
        if !c.at_end() {
            return Err(perr(c.pos, "the end of the value"));
        }
        Ok(na.finish(src))
    }

    /// Build `"display" <uri>` (display name quoted when it is not a token sequence).
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] if the display name contains CR or LF.
    pub fn new(display_name: Option<&str>, uri: &Uri) -> Result<Self> {
        let text = match display_name {
            Some(d) if d.contains(['\r', '\n']) => {
                return Err(Error::ApiMisuse("display name must not contain CR or LF"));
            }
            Some(d) => {
                let esc = d.replace('\\', "\\\\").replace('"', "\\\"");
                format!("\"{esc}\" <{uri}>")
            }
            None => format!("<{uri}>"),
        };
        Self::parse(&text)
    }

    /// The display name as written (quotes kept), if any.
    #[must_use]
    pub fn display_name_raw(&self) -> Option<&str> {
        self.display.map(|d| d.text(self.src()))
    }

    /// The display name with quotes and escapes removed, if any.
    #[must_use]
    pub fn display_name(&self) -> Option<Cow<'_, str>> {
        self.display_name_raw().map(chars::unquote)
    }

    /// The URI.
    #[must_use]
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// Whether the URI was enclosed in `<>` (name-addr form).
    #[must_use]
    pub fn is_name_addr(&self) -> bool {
        self.angle
    }

    /// The header parameters (after the URI).
    #[must_use]
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The raw value of header parameter `name` (`Some("")` for a flag).
    #[must_use]
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name)
    }

    /// The `tag` parameter (From/To, RFC 3261 §19.3).
    #[must_use]
    pub fn tag(&self) -> Option<&str> {
        self.param("tag")
    }

    /// The `expires` parameter (Contact), validated as a 32-bit number when parsed.
    #[must_use]
    pub fn expires(&self) -> Option<u32> {
        self.params.get_bytes("expires").and_then(chars::parse_u32)
    }

    /// The `q` parameter (Contact), 0.0 to 1.0.
    #[must_use]
    pub fn q(&self) -> Option<f32> {
        self.q_millis().map(|q| f32::from(q) / 1000.0)
    }

    /// The `q` parameter (Contact) in thousandths (`q=0.5` → 500), exact.
    #[must_use]
    pub fn q_millis(&self) -> Option<u16> {
        self.param("q").and_then(parse_qvalue)
    }

    /// Whether header parameter `name` is present (case-insensitive).
    #[must_use]
    pub fn has_param(&self, name: &str) -> bool {
        self.params.contains(name)
    }

    /// The `+sip.instance` parameter without quotes, e.g. `<urn:uuid:…>` (RFC 5626).
    #[must_use]
    pub fn sip_instance(&self) -> Option<Cow<'_, str>> {
        self.params.get_unquoted("+sip.instance")
    }

    /// The `reg-id` parameter (RFC 5626).
    #[must_use]
    pub fn reg_id(&self) -> Option<u32> {
        self.params.get_bytes("reg-id").and_then(chars::parse_u32)
    }

    /// The value of a feature tag (RFC 3840), quotes removed: `Some("")` for a flag such as
    /// `+g.3gpp.mcptt`, the string for `+g.3gpp.icsi-ref="urn%3A…"`.
    #[must_use]
    pub fn feature_tag(&self, name: &str) -> Option<Cow<'_, str>> {
        self.params.get_unquoted(name)
    }

    /// The `+g.3gpp.icsi-ref` feature tag value, quotes removed and `%` escapes decoded.
    #[must_use]
    pub fn icsi_ref(&self) -> Option<String> {
        self.feature_tag("+g.3gpp.icsi-ref")
            .map(|v| chars::unescape(&v).into_owned())
    }

    /// The value as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.whole.text(self.src())
    }

    fn src(&self) -> &ByteString {
        self.params.src()
    }
}

/// Parse a qvalue (RFC 3261 §25.1) into thousandths.
pub(crate) fn parse_qvalue(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let f: u16 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<3}").parse().ok()?
    };
    match int {
        "0" => Some(f),
        "1" if f == 0 => Some(1000),
        _ => None,
    }
}

/// A name-addr being parsed (before the parameter list is attached).
pub(crate) struct Partial {
    whole: Span,
    display: Option<Span>,
    uri: Uri,
    angle: bool,
    list: Vec<ParamSpan>,
}

impl Partial {
    pub(crate) fn finish(self, src: ByteString) -> NameAddr {
        NameAddr {
            params: Params::new(src, self.list),
            whole: self.whole,
            display: self.display,
            uri: self.uri,
            angle: self.angle,
        }
    }
}

fn addr_spec_end(b: u8) -> bool {
    chars::is_lws(b) || matches!(b, b';' | b',')
}

/// Parse one `name-addr / addr-spec *(SEMI param)` at the cursor (LWS already skipped).
pub(crate) fn parse_one(src: &ByteString, c: &mut Cursor<'_>) -> Result<Partial> {
    let start = c.pos;
    let mut display = None;
    let angle;
    // display-name = *(token LWS) / quoted-string
    if c.peek() == Some(b'"') {
        let q = c
            .quoted()
            .ok_or_else(|| perr(c.pos, "a terminated quoted display name"))?;
        display = Some(Span::new(q.0, q.1));
        c.skip_lws();
        if c.peek() != Some(b'<') {
            return Err(perr(c.pos, "'<' after the display name"));
        }
        angle = true;
    } else if c.peek() == Some(b'<') {
        angle = true;
    } else {
        // tokens followed by '<' are a display name; otherwise this is an addr-spec
        let save = c.pos;
        let mut last_end = None;
        while let Some(t) = c.token() {
            last_end = Some(t.1);
            c.skip_lws();
        }
        if c.peek() == Some(b'<') && last_end.is_some() {
            display = last_end.map(|e| Span::new(save, e));
            angle = true;
        } else {
            c.pos = save;
            angle = false;
        }
    }
    let uri = if angle {
        // skip '<'
        c.pos += 1;
        let us = c.pos;
        let close = chars::find_byte(b'>', c.s.get(us..).unwrap_or_default())
            .map(|k| k + us)
            .ok_or_else(|| perr(us, "'>' closing the URI"))?;
        let uri = Uri::from_text(Span::new(us, close).sub(src)).map_err(|e| e.shifted(us))?;
        c.pos = close + 1;
        uri
    } else {
        let us = c.pos;
        let r = c.take_while(|b| !addr_spec_end(b));
        if r.0 == r.1 {
            return Err(perr(us, "a URI"));
        }
        let text = c.slice(r);
        if text.contains(&b'?') {
            return Err(perr(
                us,
                "a URI with headers to be enclosed in <> (RFC 3261 §20)",
            ));
        }
        Uri::from_text(Span::new(r.0, r.1).sub(src)).map_err(|e| e.shifted(us))?
    };
    let mut list = Vec::new();
    parse_params(c, &mut list)?;
    // validate well-known Contact parameters
    for p in &list {
        let n = p.name.bytes(src.as_bytes());
        if !matches!(n.len(), 1 | 6 | 7) {
            continue;
        }
        let v = p.value.map(|v| v.bytes(src.as_bytes()));
        if n.eq_ignore_ascii_case(b"expires") && v.and_then(chars::parse_u32).is_none() {
            return Err(perr(
                p.name.start as usize,
                "expires=delta-seconds below 2^32",
            ));
        }
        if n.eq_ignore_ascii_case(b"q")
            && v.and_then(|v| std::str::from_utf8(v).ok())
                .and_then(parse_qvalue)
                .is_none()
        {
            return Err(perr(
                p.name.start as usize,
                "q=qvalue (0 to 1, three decimals)",
            ));
        }
        if n.eq_ignore_ascii_case(b"reg-id") && v.and_then(chars::parse_u32).is_none() {
            return Err(perr(p.name.start as usize, "reg-id=number"));
        }
    }
    Ok(Partial {
        whole: Span::new(start, c.pos),
        display,
        uri,
        angle,
        list,
    })
}

/// The raw value of header parameter `name` (`""` for a flag, quotes kept) of the single
/// name-addr / addr-spec that makes up `s`, found as [`parse_one`] finds it but without
/// typing the display name's URI: the URI is only delimited (`<...>`, or up to LWS, `;` or `,`
/// for an addr-spec), the parameter list is checked against its grammar and nothing may follow
/// it. No allocation.
pub(crate) fn header_param<'a>(s: &'a str, name: &str) -> Result<Option<&'a str>> {
    let mut c = Cursor::new(s.as_bytes());
    c.skip_lws();
    let angle = if c.peek() == Some(b'"') {
        c.quoted()
            .ok_or_else(|| perr(c.pos, "a terminated quoted display name"))?;
        c.skip_lws();
        if c.peek() != Some(b'<') {
            return Err(perr(c.pos, "'<' after the display name"));
        }
        true
    } else if c.peek() == Some(b'<') {
        true
    } else {
        let save = c.pos;
        let mut any = false;
        while c.token().is_some() {
            any = true;
            c.skip_lws();
        }
        if c.peek() == Some(b'<') && any {
            true
        } else {
            c.pos = save;
            false
        }
    };
    if angle {
        let us = c.pos + 1;
        let close = chars::find_byte(b'>', c.s.get(us..).unwrap_or_default())
            .map(|k| k + us)
            .ok_or_else(|| perr(us, "'>' closing the URI"))?;
        if close == us {
            return Err(perr(us, "a URI"));
        }
        c.pos = close + 1;
    } else {
        let us = c.pos;
        let r = c.take_while(|b| !addr_spec_end(b));
        if r.0 == r.1 {
            return Err(perr(us, "a URI"));
        }
        if c.slice(r).contains(&b'?') {
            return Err(perr(
                us,
                "a URI with headers to be enclosed in <> (RFC 3261 §20)",
            ));
        }
    }
    let found = crate::params::find_param(&mut c, name.as_bytes())?;
    c.skip_lws();
    if !c.at_end() {
        return Err(perr(c.pos, "the end of the value"));
    }
    Ok(found.map(|(a, b)| s.get(a..b).unwrap_or_default()))
}

/// The first name-addr of a comma-separated list over `src`; what follows its `,` is not
/// examined.
pub(crate) fn parse_first(src: &ByteString) -> Result<NameAddr> {
    let mut c = Cursor::new(src.as_bytes());
    c.skip_lws();
    let p = parse_one(src, &mut c)?;
    c.skip_lws();
    if !c.at_end() && c.peek() != Some(b',') {
        return Err(perr(c.pos, "',' or the end of the value"));
    }
    Ok(p.finish(src.clone()))
}

/// Parse a comma-separated list of name-addrs over the whole of `src`.
pub(crate) fn parse_list(src: &ByteString, require_angle: bool) -> Result<Vec<NameAddr>> {
    let mut out = Vec::new();
    parse_list_with(src, require_angle, |a| out.push(a))?;
    Ok(out)
}

/// [`parse_list`], handing each name-addr to `out` as it is parsed (no list of its own).
pub(crate) fn parse_list_with(
    src: &ByteString,
    require_angle: bool,
    mut out: impl FnMut(NameAddr),
) -> Result<()> {
    let mut c = Cursor::new(src.as_bytes());
    loop {
        c.skip_lws();
        let p = parse_one(src, &mut c)?;
        if require_angle && !p.angle {
            return Err(perr(p.whole.start as usize, "a name-addr (<URI>)"));
        }
        out(p.finish(src.clone()));
        c.skip_lws();
        if c.at_end() {
            return Ok(());
        }
        if !c.eat(b',') {
            return Err(perr(c.pos, "',' or the end of the value"));
        }
    }
}

text_value_traits!(NameAddr);
