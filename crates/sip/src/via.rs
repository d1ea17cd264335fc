//! The Via header (RFC 3261 §20.42, RFC 3581 rport, RFC 5118 IPv6).

use std::net::IpAddr;
use std::str::FromStr;

use bytestring::ByteString;

use crate::chars::{self, Cursor};
use crate::error::Result;
use crate::params::{Params, parse_params, perr};
use crate::span::Span;

/// The RFC 3261 §8.1.1.7 magic cookie that starts a compliant branch.
pub const BRANCH_COOKIE: &str = "z9hG4bK";

/// One Via value: `SIP/2.0/TRANSPORT host[:port];params`.
#[derive(Clone)]
pub struct Via {
    params: Params,
    whole: Span,
    protocol: Span,
    version: Span,
    transport: Span,
    host: Span,
    port: Option<u16>,
}

fn parse_host(c: &mut Cursor<'_>) -> Result<Span> {
    let hs = c.pos;
    if c.peek() == Some(b'[') {
        let close = memchr::memchr(b']', c.s.get(hs..).unwrap_or_default())
            .map(|k| k + hs)
            .ok_or_else(|| perr(hs, "']' closing the IPv6 reference"))?;
        let inner = c.s.get(hs + 1..close).unwrap_or_default();
        let ok = chars::is_ipv6(inner);
        if !ok {
            return Err(perr(hs + 1, "an IPv6 address (RFC 4291)"));
        }
        c.pos = close + 1;
    } else {
        let r = c.take_while(|b| chars::is(b, chars::HOST));
        if r.0 == r.1 {
            return Err(perr(hs, "a host"));
        }
    }
    Ok(Span::new(hs, c.pos))
}

/// Whether `v` is an IPv4 address or an IPv6 address with or without brackets (RFC 5118 §4.5).
fn is_ip(v: &[u8]) -> bool {
    match v.strip_prefix(b"[").and_then(|v| v.strip_suffix(b"]")) {
        Some(v6) => chars::is_ipv6(v6),
        None => chars::is_ipv4(v) || chars::is_ipv6(v),
    }
}

/// Parse an IP address written with or without IPv6 brackets.
pub(crate) fn parse_ip(v: &str) -> Option<IpAddr> {
    let v = v
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or(v);
    IpAddr::from_str(v).ok()
}

fn parse_one(src: &ByteString, c: &mut Cursor<'_>) -> Result<Via> {
    let start = c.pos;
    let protocol = c
        .token()
        .ok_or_else(|| perr(c.pos, "a protocol name (SIP)"))?;
    if !c.eat_sep(b'/') {
        return Err(perr(c.pos, "'/' after the protocol name"));
    }
    let version = c.token().ok_or_else(|| perr(c.pos, "a protocol version"))?;
    if !c.eat_sep(b'/') {
        return Err(perr(c.pos, "'/' after the protocol version"));
    }
    let transport = c.token().ok_or_else(|| perr(c.pos, "a transport"))?;
    if !c.skip_lws() {
        return Err(perr(c.pos, "white space before sent-by"));
    }
    let host = parse_host(c)?;
    let mut port = None;
    if c.eat_sep(b':') {
        let r = c.take_while(|b| b.is_ascii_digit());
        port = Some(
            chars::parse_u64(c.slice(r))
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| perr(r.0, "a port number (0-65535)"))?,
        );
    }
    let mut list = Vec::new();
    parse_params(c, &mut list)?;
    let v = Via {
        params: Params::new(src.clone(), list),
        whole: Span::new(start, c.pos),
        protocol: Span::new(protocol.0, protocol.1),
        version: Span::new(version.0, version.1),
        transport: Span::new(transport.0, transport.1),
        host,
        port,
    };
    // RFC 3261 §20.42 / RFC 3581 / RFC 5118 value checks, in one pass over the parameters
    let src = v.params.src();
    for p in v.params.spans() {
        let name = p.name.bytes(src.as_bytes());
        let value = p.value.map(|x| x.bytes(src.as_bytes()));
        let bad = match name.len() {
            8 if name.eq_ignore_ascii_case(b"received") => value
                .is_none_or(|r| !is_ip(r))
                .then_some("received=IP address"),
            5 if name.eq_ignore_ascii_case(b"rport") => value
                .is_some_and(|r| chars::parse_u64(r).is_none_or(|n| n > 65535))
                .then_some("rport=port number"),
            3 if name.eq_ignore_ascii_case(b"ttl") => value
                .is_none_or(|t| chars::parse_u64(t).is_none_or(|n| n > 255))
                .then_some("ttl=0..255"),
            6 if name.eq_ignore_ascii_case(b"branch") => value
                .is_none_or(|b| b.is_empty() || b.starts_with(b"\""))
                .then_some("branch=token"),
            _ => None,
        };
        if let Some(expected) = bad {
            return Err(perr(p.name.start as usize, expected));
        }
    }
    Ok(v)
}

/// Parse a comma-separated Via list over the whole of `src`.
pub(crate) fn parse_list(src: &ByteString) -> Result<Vec<Via>> {
    let mut c = Cursor::new(src.as_bytes());
    let mut out = Vec::new();
    loop {
        c.skip_lws();
        out.push(parse_one(src, &mut c)?);
        c.skip_lws();
        if c.at_end() {
            return Ok(out);
        }
        if !c.eat(b',') {
            return Err(perr(c.pos, "',' or the end of the Via value"));
        }
    }
}

/// Parse the first Via value of `src` (the rest of the list is not examined).
pub(crate) fn parse_first(src: &ByteString) -> Result<Via> {
    let mut c = Cursor::new(src.as_bytes());
    c.skip_lws();
    let v = parse_one(src, &mut c)?;
    c.skip_lws();
    if c.at_end() || c.eat(b',') {
        Ok(v)
    } else {
        Err(perr(c.pos, "',' or the end of the Via value"))
    }
}

impl Via {
    /// Parse one Via value from text (copies it).
    ///
    /// # Errors
    /// [`Error::Header`](crate::Error::Header) with the offset of the problem.
    pub fn parse(s: &str) -> Result<Self> {
        let src = ByteString::from(s);
        let mut v = parse_list(&src)?;
        if v.len() != 1 {
            return Err(perr(0, "exactly one Via value"));
        }
        v.pop().ok_or_else(|| perr(0, "a Via value"))
    }

    /// Build `SIP/2.0/TRANSPORT host[:port];branch=BRANCH`.
    ///
    /// # Errors
    /// [`Error::Header`](crate::Error::Header) if the parts do not form a valid Via.
    pub fn new(transport: &str, host: &str, port: Option<u16>, branch: &str) -> Result<Self> {
        let text = match port {
            Some(p) => format!("SIP/2.0/{transport} {host}:{p};branch={branch}"),
            None => format!("SIP/2.0/{transport} {host};branch={branch}"),
        };
        Self::parse(&text)
    }

    fn src(&self) -> &ByteString {
        self.params.src()
    }

    /// The protocol name (`SIP`).
    #[must_use]
    pub fn protocol(&self) -> &str {
        self.protocol.text(self.src())
    }

    /// The protocol version (`2.0`).
    #[must_use]
    pub fn version(&self) -> &str {
        self.version.text(self.src())
    }

    /// The transport as written (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, …).
    #[must_use]
    pub fn transport(&self) -> &str {
        self.transport.text(self.src())
    }

    /// The sent-by host (IPv6 references keep their brackets).
    #[must_use]
    pub fn host(&self) -> &str {
        self.host.text(self.src())
    }

    /// The sent-by port, if written.
    #[must_use]
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The parameters.
    #[must_use]
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The raw value of parameter `name` (`Some("")` for a flag).
    #[must_use]
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name)
    }

    /// The `branch` parameter.
    #[must_use]
    pub fn branch(&self) -> Option<&str> {
        self.param("branch")
    }

    /// Whether the branch starts with the RFC 3261 magic cookie `z9hG4bK`.
    #[must_use]
    pub fn is_rfc3261_branch(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with(BRANCH_COOKIE))
    }

    /// The `received` parameter as written (an IPv6 address may come with or without brackets,
    /// RFC 5118 §4.5).
    #[must_use]
    pub fn received(&self) -> Option<&str> {
        self.param("received")
    }

    /// The `received` parameter as an IP address.
    #[must_use]
    pub fn received_ip(&self) -> Option<IpAddr> {
        self.received().and_then(parse_ip)
    }

    /// The `rport` parameter (RFC 3581): `None` when absent, `Some(None)` for a bare `rport`,
    /// `Some(Some(port))` when filled in.
    #[must_use]
    pub fn rport(&self) -> Option<Option<u16>> {
        self.param("rport").map(|v| v.parse().ok())
    }

    /// Whether the `rport` parameter is present (filled in or not).
    #[must_use]
    pub fn has_rport(&self) -> bool {
        self.params.contains("rport")
    }

    /// Whether parameter `name` is present.
    #[must_use]
    pub fn has_param(&self, name: &str) -> bool {
        self.params.contains(name)
    }

    /// The `maddr` parameter.
    #[must_use]
    pub fn maddr(&self) -> Option<&str> {
        self.param("maddr")
    }

    /// The `ttl` parameter.
    #[must_use]
    pub fn ttl(&self) -> Option<u8> {
        self.param("ttl").and_then(|v| v.parse().ok())
    }

    /// The value as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.whole.text(self.src())
    }
}

text_value_traits!(Via);
