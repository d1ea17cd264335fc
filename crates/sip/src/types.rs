//! Typed header values: CSeq, Contact, Event, Subscription-State, Content-Type, Warning, Date,
//! Accept-Contact, and token lists.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use bytestring::ByteString;

use crate::chars::{self, Cursor};
use crate::error::{Error, Result};
use crate::method::Method;
use crate::name_addr::{self, NameAddr};
use crate::params::{Params, parse_params, perr};
use crate::span::Span;
use crate::uri::Uri;

fn end(c: &mut Cursor<'_>) -> Result<()> {
    c.skip_lws();
    if c.at_end() {
        Ok(())
    } else {
        Err(perr(c.pos, "the end of the value"))
    }
}

// ---- CSeq ----------------------------------------------------------------------------------

/// The CSeq header: sequence number and method (RFC 3261 §20.16).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CSeq {
    /// The sequence number.
    pub seq: u32,
    /// The method.
    pub method: Method,
}

impl CSeq {
    /// Parse `NUMBER LWS METHOD`.
    ///
    /// # Errors
    /// [`Error::Header`] with the offset of the problem.
    pub fn parse(s: &str) -> Result<Self> {
        match Self::parse_plain(s) {
            Some(cseq) => Ok(cseq),
            None => Self::parse_general(s),
        }
    }

    /// The usual `NUMBER SP METHOD` (one space, nothing before or after) in one pass; `None`
    /// for anything else (which [`CSeq::parse_general`] reads, or rejects, as it always did).
    #[inline]
    fn parse_plain(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        // the number as the digits go by (more than 9 digits: read by `parse_u32` as before)
        let mut n: u32 = 0;
        let mut sp = 0;
        while let Some(&c) = b.get(sp) {
            if !c.is_ascii_digit() {
                break;
            }
            n = n.wrapping_mul(10).wrapping_add(u32::from(c - b'0'));
            sp += 1;
        }
        if sp == 0 || b.get(sp) != Some(&b' ') {
            return None;
        }
        let seq = if sp <= 9 {
            n
        } else {
            chars::parse_u32(b.get(..sp)?)?
        };
        // a method is a token: no white space or other byte after it
        let method = Method::parse_bytes(b.get(sp + 1..)?).ok()?;
        Some(Self { seq, method })
    }

    /// Any form of `NUMBER LWS METHOD`, with LWS around.
    pub(crate) fn parse_general(s: &str) -> Result<Self> {
        let mut c = Cursor::new(s);
        c.skip_lws();
        let r = c.take_while(|b| b.is_ascii_digit());
        let seq = chars::parse_u32(c.slice(r))
            .ok_or_else(|| perr(r.0, "a sequence number below 2^32"))?;
        if !c.skip_lws() {
            return Err(perr(c.pos, "white space after the sequence number"));
        }
        let m = c.token().ok_or_else(|| perr(c.pos, "a method token"))?;
        let method = Method::parse_bytes(c.slice(m)).map_err(|_| perr(m.0, "a method token"))?;
        end(&mut c)?;
        Ok(Self { seq, method })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

impl FromStr for CSeq {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

// ---- Contact -------------------------------------------------------------------------------

/// One Contact value (RFC 3261 §20.10): `*` (only in a REGISTER removing all bindings) or a
/// name-addr/addr-spec with parameters (`expires`, `q`, `+sip.instance`, `reg-id`, feature tags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contact {
    /// `Contact: *`.
    Star,
    /// An address with its parameters.
    Addr(NameAddr),
}

impl Contact {
    /// Parse one Contact value from text.
    ///
    /// # Errors
    /// [`Error::Header`] or [`Error::Uri`] with the offset of the problem.
    pub fn parse(s: &str) -> Result<Self> {
        if chars::trim_lws(s) == "*" {
            return Ok(Self::Star);
        }
        NameAddr::parse(s).map(Self::Addr)
    }

    /// Whether this is `*`.
    #[must_use]
    pub fn is_star(&self) -> bool {
        matches!(self, Self::Star)
    }

    /// The address, unless this is `*`.
    #[must_use]
    pub fn name_addr(&self) -> Option<&NameAddr> {
        match self {
            Self::Addr(a) => Some(a),
            Self::Star => None,
        }
    }

    /// The URI, unless this is `*`.
    #[must_use]
    pub fn uri(&self) -> Option<&Uri> {
        self.name_addr().map(NameAddr::uri)
    }

    /// The `expires` parameter.
    #[must_use]
    pub fn expires(&self) -> Option<u32> {
        self.name_addr().and_then(NameAddr::expires)
    }

    /// The `q` parameter, 0.0 to 1.0.
    #[must_use]
    pub fn q(&self) -> Option<f32> {
        self.name_addr().and_then(NameAddr::q)
    }

    /// The `q` parameter in thousandths.
    #[must_use]
    pub fn q_millis(&self) -> Option<u16> {
        self.name_addr().and_then(NameAddr::q_millis)
    }

    /// The `+sip.instance` parameter without quotes.
    #[must_use]
    pub fn sip_instance(&self) -> Option<Cow<'_, str>> {
        self.name_addr().and_then(NameAddr::sip_instance)
    }

    /// The `+g.3gpp.icsi-ref` feature tag, quotes removed and escapes decoded.
    #[must_use]
    pub fn icsi_ref(&self) -> Option<String> {
        self.name_addr().and_then(NameAddr::icsi_ref)
    }

    /// The display name without quotes and escapes.
    #[must_use]
    pub fn display_name(&self) -> Option<Cow<'_, str>> {
        self.name_addr().and_then(NameAddr::display_name)
    }

    /// Whether header parameter `name` is present.
    #[must_use]
    pub fn has_param(&self, name: &str) -> bool {
        self.name_addr().is_some_and(|a| a.has_param(name))
    }

    /// The `reg-id` parameter.
    #[must_use]
    pub fn reg_id(&self) -> Option<u32> {
        self.name_addr().and_then(NameAddr::reg_id)
    }

    /// A feature tag's value without quotes (`Some("")` for a flag).
    #[must_use]
    pub fn feature_tag(&self, name: &str) -> Option<Cow<'_, str>> {
        self.name_addr().and_then(|a| a.feature_tag(name))
    }

    /// The raw value of parameter `name`.
    #[must_use]
    pub fn param(&self, name: &str) -> Option<&str> {
        self.name_addr().and_then(|a| a.param(name))
    }
}

impl fmt::Display for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Star => f.write_str("*"),
            Self::Addr(a) => a.fmt(f),
        }
    }
}

impl FromStr for Contact {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

pub(crate) fn parse_contacts(src: &ByteString) -> Result<Vec<Contact>> {
    let mut out = Vec::new();
    parse_contacts_into(src, &mut out)?;
    Ok(out)
}

/// [`parse_contacts`], appending to `out`.
pub(crate) fn parse_contacts_into(src: &ByteString, out: &mut Vec<Contact>) -> Result<()> {
    if src.trim_ascii() == "*" {
        out.push(Contact::Star);
        return Ok(());
    }
    name_addr::parse_list_with(src, false, |a| out.push(Contact::Addr(a)))
}

// ---- value + params types ------------------------------------------------------------------

macro_rules! value_with_params {
    ($(#[$m:meta])* $t:ident) => {
        $(#[$m])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $t {
            params: Params,
            value: Span,
        }

        impl $t {
            fn src(&self) -> &ByteString {
                self.params.src()
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

            /// Whether parameter `name` is present.
            #[must_use]
            pub fn has_param(&self, name: &str) -> bool {
                self.params.contains(name)
            }

            /// The whole value as written.
            #[must_use]
            pub fn as_str(&self) -> &str {
                self.src()
            }

            /// Parse from text.
            ///
            /// # Errors
            /// [`Error::Header`] with the offset of the problem.
            pub fn parse(s: &str) -> Result<Self> {
                Self::from_text(&ByteString::from(chars::trim_lws(s)))
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($t), self.as_str())
            }
        }

        impl FromStr for $t {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::parse(s)
            }
        }
    };
}

value_with_params! {
    /// The Event header (RFC 6665 §8.2.1): package and parameters such as `id`.
    Event
}

impl Event {
    pub(crate) fn from_text(src: &ByteString) -> Result<Self> {
        let mut c = Cursor::new(src.as_bytes());
        c.skip_lws();
        let t = c.token().ok_or_else(|| perr(c.pos, "an event package"))?;
        let mut list = Vec::new();
        parse_params(&mut c, &mut list)?;
        end(&mut c)?;
        Ok(Self {
            params: Params::new(src.clone(), list),
            value: Span::new(t.0, t.1),
        })
    }

    /// The event package (e.g. `poc-settings`, `reg`), with its templates.
    #[must_use]
    pub fn package(&self) -> &str {
        self.value.text(self.src())
    }

    /// The `id` parameter.
    #[must_use]
    pub fn id(&self) -> Option<&str> {
        self.param("id")
    }
}

value_with_params! {
    /// The Subscription-State header (RFC 6665 §8.2.3): state, `reason`, `expires`, `retry-after`.
    SubscriptionState
}

impl SubscriptionState {
    pub(crate) fn from_text(src: &ByteString) -> Result<Self> {
        let mut c = Cursor::new(src.as_bytes());
        c.skip_lws();
        let t = c
            .token()
            .ok_or_else(|| perr(c.pos, "a subscription state"))?;
        let mut list = Vec::new();
        parse_params(&mut c, &mut list)?;
        end(&mut c)?;
        let s = Self {
            params: Params::new(src.clone(), list),
            value: Span::new(t.0, t.1),
        };
        for p in ["expires", "retry-after"] {
            if s.param(p)
                .is_some_and(|v| chars::parse_u32(v.as_bytes()).is_none())
            {
                return Err(perr(0, "expires/retry-after=delta-seconds"));
            }
        }
        Ok(s)
    }

    /// The state as written (`active`, `pending`, `terminated` or an extension).
    #[must_use]
    pub fn state(&self) -> &str {
        self.value.text(self.src())
    }

    /// The `reason` parameter.
    #[must_use]
    pub fn reason(&self) -> Option<&str> {
        self.param("reason")
    }

    /// The `expires` parameter.
    #[must_use]
    pub fn expires(&self) -> Option<u32> {
        self.param("expires")
            .and_then(|v| chars::parse_u32(v.as_bytes()))
    }

    /// The `retry-after` parameter.
    #[must_use]
    pub fn retry_after(&self) -> Option<u32> {
        self.param("retry-after")
            .and_then(|v| chars::parse_u32(v.as_bytes()))
    }
}

value_with_params! {
    /// A media type with parameters (Content-Type, RFC 3261 §20.15; Accept elements).
    ContentType
}

impl ContentType {
    pub(crate) fn from_text(src: &ByteString) -> Result<Self> {
        let mut c = Cursor::new(src.as_bytes());
        c.skip_lws();
        let s = c.pos;
        c.token().ok_or_else(|| perr(c.pos, "a media type"))?;
        if !c.eat_sep(b'/') {
            return Err(perr(c.pos, "'/' in the media type"));
        }
        let e = c.token().ok_or_else(|| perr(c.pos, "a media subtype"))?;
        let mut list = Vec::new();
        parse_params(&mut c, &mut list)?;
        end(&mut c)?;
        Ok(Self {
            params: Params::new(src.clone(), list),
            value: Span::new(s, e.1),
        })
    }

    /// `type/subtype` as written.
    #[must_use]
    pub fn mime_type(&self) -> &str {
        self.value.text(self.src())
    }

    /// The type (before `/`).
    #[must_use]
    pub fn main_type(&self) -> &str {
        let m = self.mime_type();
        chars::trim_lws(m.split('/').next().unwrap_or_default())
    }

    /// The subtype (after `/`).
    #[must_use]
    pub fn subtype(&self) -> &str {
        let m = self.mime_type();
        chars::trim_lws(m.split('/').nth(1).unwrap_or_default())
    }

    /// Whether this is `ty/sub` (case-insensitive).
    #[must_use]
    pub fn is(&self, ty: &str, sub: &str) -> bool {
        self.main_type().eq_ignore_ascii_case(ty) && self.subtype().eq_ignore_ascii_case(sub)
    }

    /// The `boundary` parameter without quotes (multipart bodies).
    #[must_use]
    pub fn boundary(&self) -> Option<Cow<'_, str>> {
        self.params.get_unquoted("boundary")
    }
}

value_with_params! {
    /// An Accept-Contact or Reject-Contact value (RFC 3841 §10): `*` with feature parameters
    /// and the `require` / `explicit` flags.
    AcceptContact
}

impl AcceptContact {
    pub(crate) fn from_text(src: &ByteString) -> Result<Self> {
        let mut c = Cursor::new(src.as_bytes());
        c.skip_lws();
        if !c.eat(b'*') {
            return Err(perr(c.pos, "'*'"));
        }
        let mut list = Vec::new();
        parse_params(&mut c, &mut list)?;
        end(&mut c)?;
        Ok(Self {
            params: Params::new(src.clone(), list),
            value: Span::new(0, 1),
        })
    }

    /// Whether the `require` flag is present.
    #[must_use]
    pub fn require(&self) -> bool {
        self.params.contains("require")
    }

    /// Whether the `explicit` flag is present.
    #[must_use]
    pub fn explicit(&self) -> bool {
        self.params.contains("explicit")
    }

    /// A feature tag's value without quotes (`Some("")` for a flag).
    #[must_use]
    pub fn feature_tag(&self, name: &str) -> Option<Cow<'_, str>> {
        self.params.get_unquoted(name)
    }
}

// ---- Warning -------------------------------------------------------------------------------

/// One Warning value (RFC 3261 §20.43): `code agent "text"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The three-digit warning code.
    pub code: u16,
    /// The warn-agent (`host[:port]` or pseudonym).
    pub agent: String,
    /// The warn-text with quotes and escapes removed.
    pub text: String,
}

impl Warning {
    /// Parse one warning value.
    ///
    /// # Errors
    /// [`Error::Header`] with the offset of the problem.
    pub fn parse(s: &str) -> Result<Self> {
        let mut c = Cursor::new(s);
        c.skip_lws();
        let r = c.take_while(|b| b.is_ascii_digit());
        if r.1 - r.0 != 3 {
            return Err(perr(r.0, "a three-digit warn-code"));
        }
        let code = chars::parse_u32(c.slice(r))
            .and_then(|v| u16::try_from(v).ok())
            .unwrap_or(0);
        if !c.skip_lws() {
            return Err(perr(c.pos, "SP after the warn-code"));
        }
        let a = c.take_while(|b| chars::is_token(b) || matches!(b, b':' | b'[' | b']'));
        if a.0 == a.1 {
            return Err(perr(a.0, "a warn-agent"));
        }
        if !c.skip_lws() {
            return Err(perr(c.pos, "SP after the warn-agent"));
        }
        let t = c
            .quoted()
            .ok_or_else(|| perr(c.pos, "a quoted warn-text"))?;
        end(&mut c)?;
        let agent = String::from_utf8_lossy(c.slice(a)).into_owned();
        let text = chars::unquote(std::str::from_utf8(c.slice(t)).unwrap_or_default()).into_owned();
        Ok(Self { code, agent, text })
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let esc = self.text.replace('\\', "\\\\").replace('"', "\\\"");
        write!(f, "{:03} {} \"{}\"", self.code, self.agent, esc)
    }
}

impl FromStr for Warning {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

// ---- Date ----------------------------------------------------------------------------------

/// The Date header (RFC 3261 §20.17): an RFC 1123 date, always GMT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Date {
    /// Year (four digits).
    pub year: u16,
    /// Month, 1..=12.
    pub month: u8,
    /// Day of the month, 1..=31.
    pub day: u8,
    /// Hour, 0..=23.
    pub hour: u8,
    /// Minute, 0..=59.
    pub minute: u8,
    /// Second, 0..=60.
    pub second: u8,
}

const WKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl Date {
    /// Parse `Wkd, DD Mon YYYY HH:MM:SS GMT`.
    ///
    /// # Errors
    /// [`Error::Header`] with the offset of the problem (e.g. a zone other than GMT).
    pub fn parse(s: &str) -> Result<Self> {
        let t = chars::trim_lws(s);
        let b = t.as_bytes();
        if b.len() != 29 {
            return Err(perr(0, "an RFC 1123 date (Wkd, DD Mon YYYY HH:MM:SS GMT)"));
        }
        let part = |a: usize, e: usize| t.get(a..e).unwrap_or_default();
        let num = |a: usize, e: usize| -> Result<u16> {
            chars::parse_u32(part(a, e).as_bytes())
                .and_then(|v| u16::try_from(v).ok())
                .ok_or_else(|| perr(a, "digits"))
        };
        if !WKDAYS.contains(&part(0, 3)) || part(3, 5) != ", " {
            return Err(perr(0, "a weekday and ', '"));
        }
        let month = MONTHS
            .iter()
            .position(|&m| m == part(8, 11))
            .ok_or_else(|| perr(8, "a month name"))?;
        if part(7, 8) != " "
            || part(11, 12) != " "
            || part(16, 17) != " "
            || part(19, 20) != ":"
            || part(22, 23) != ":"
            || part(25, 26) != " "
        {
            return Err(perr(0, "an RFC 1123 date layout"));
        }
        if part(26, 29) != "GMT" {
            return Err(perr(26, "GMT (RFC 3261 §20.17)"));
        }
        let d = Self {
            day: num(5, 7)? as u8,
            month: month as u8 + 1,
            year: num(12, 16)?,
            hour: num(17, 19)? as u8,
            minute: num(20, 22)? as u8,
            second: num(23, 25)? as u8,
        };
        if d.day == 0 || d.day > 31 || d.hour > 23 || d.minute > 59 || d.second > 60 {
            return Err(perr(5, "a valid day and time"));
        }
        Ok(d)
    }

    /// Seconds since the Unix epoch.
    #[must_use]
    pub fn unix_time(&self) -> i64 {
        days_from_civil(
            i64::from(self.year),
            i64::from(self.month),
            i64::from(self.day),
        ) * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }

    /// The date at `secs` seconds since the Unix epoch.
    #[must_use]
    pub fn from_unix_time(secs: i64) -> Self {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        // civil_from_days
        let z = days + 719_468;
        let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let y = yoe + era * 400;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = if m <= 2 { y + 1 } else { y };
        Self {
            year: y.clamp(0, 9999) as u16,
            month: m as u8,
            day: d as u8,
            hour: (rem / 3600) as u8,
            minute: (rem % 3600 / 60) as u8,
            second: (rem % 60) as u8,
        }
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = days_from_civil(
            i64::from(self.year),
            i64::from(self.month),
            i64::from(self.day),
        );
        let wd = WKDAYS
            .get((days + 3).rem_euclid(7) as usize)
            .copied()
            .unwrap_or("Mon");
        let mon = MONTHS
            .get(usize::from(self.month.saturating_sub(1)))
            .copied()
            .unwrap_or("Jan");
        write!(
            f,
            "{wd}, {:02} {mon} {:04} {:02}:{:02}:{:02} GMT",
            self.day, self.year, self.hour, self.minute, self.second
        )
    }
}

impl FromStr for Date {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

// ---- token lists ---------------------------------------------------------------------------

/// Parse a comma-separated list of tokens (Supported, Require, Allow, Allow-Events…); an
/// empty value is an empty list.
pub(crate) fn parse_tokens(s: &str) -> Result<Vec<&str>> {
    let mut c = Cursor::new(s);
    let mut out = Vec::new();
    c.skip_lws();
    if c.at_end() {
        return Ok(out);
    }
    loop {
        let t = c.token().ok_or_else(|| perr(c.pos, "a token"))?;
        out.push(s.get(t.0..t.1).unwrap_or_default());
        c.skip_lws();
        if c.at_end() {
            return Ok(out);
        }
        if !c.eat(b',') {
            return Err(perr(c.pos, "',' between tokens"));
        }
        c.skip_lws();
    }
}

/// Parse a delta-seconds value (u32).
pub(crate) fn parse_delta(s: &str) -> Result<u32> {
    chars::parse_u32(chars::trim_lws(s).as_bytes())
        .ok_or_else(|| perr(0, "delta-seconds below 2^32"))
}

/// Validate a comma-separated list of `token *(SEMI generic-param)` (Accept-Encoding,
/// Accept-Language, Content-Disposition, Reason…); `allow_empty` accepts an empty value.
pub(crate) fn check_token_param_list(s: &[u8], allow_empty: bool) -> Result<()> {
    let mut c = Cursor::new(s);
    c.skip_lws();
    if c.at_end() {
        return if allow_empty {
            Ok(())
        } else {
            Err(perr(0, "a value"))
        };
    }
    let mut scratch = Vec::new();
    loop {
        c.token().ok_or_else(|| perr(c.pos, "a token"))?;
        parse_params(&mut c, &mut scratch)?;
        scratch.clear();
        c.skip_lws();
        if c.at_end() {
            return Ok(());
        }
        if !c.eat(b',') {
            return Err(perr(c.pos, "',' or ';'"));
        }
        c.skip_lws();
    }
}

/// Validate a delta-seconds value followed by parameters (Session-Expires, Min-SE).
pub(crate) fn check_delta_params(s: &[u8]) -> Result<()> {
    let mut c = Cursor::new(s);
    c.skip_lws();
    let r = c.take_while(|b| b.is_ascii_digit());
    chars::parse_u32(c.slice(r)).ok_or_else(|| perr(r.0, "delta-seconds below 2^32"))?;
    parse_params(&mut c, &mut Vec::new())?;
    end(&mut c)
}

/// Validate credentials or a challenge (RFC 3261 §25.1, RFC 7235): an auth scheme, then
/// comma-separated `name=token/quoted-string` parameters or a token68.
pub(crate) fn check_auth(s: &[u8]) -> Result<()> {
    let mut c = Cursor::new(s);
    c.skip_lws();
    c.token().ok_or_else(|| perr(c.pos, "an auth scheme"))?;
    if c.at_end() {
        return Ok(());
    }
    if !c.skip_lws() {
        return Err(perr(c.pos, "white space after the auth scheme"));
    }
    let save = c.pos;
    // token68
    let t = c.take_while(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
    if t.0 != t.1 {
        c.take_while(|b| b == b'=');
        c.skip_lws();
        if c.at_end() {
            return Ok(());
        }
    }
    c.pos = save;
    loop {
        c.token()
            .ok_or_else(|| perr(c.pos, "an auth parameter name"))?;
        if !c.eat_sep(b'=') {
            return Err(perr(c.pos, "'=' in the auth parameter"));
        }
        if c.peek() == Some(b'"') {
            c.quoted()
                .ok_or_else(|| perr(c.pos, "a terminated quoted string"))?;
        } else {
            c.token()
                .ok_or_else(|| perr(c.pos, "an auth parameter value"))?;
        }
        c.skip_lws();
        if c.at_end() {
            return Ok(());
        }
        if !c.eat(b',') {
            return Err(perr(c.pos, "',' between auth parameters"));
        }
        c.skip_lws();
    }
}

/// Validate RAck: `response-num LWS CSeq-num LWS Method` (RFC 3262 §7.2).
pub(crate) fn check_rack(s: &[u8]) -> Result<()> {
    let mut c = Cursor::new(s);
    c.skip_lws();
    for _ in 0..2 {
        let r = c.take_while(|b| b.is_ascii_digit());
        chars::parse_u32(c.slice(r)).ok_or_else(|| perr(r.0, "a number below 2^32"))?;
        if !c.skip_lws() {
            return Err(perr(c.pos, "white space"));
        }
    }
    c.token().ok_or_else(|| perr(c.pos, "a method"))?;
    end(&mut c)
}

/// Validate Timestamp: `1*DIGIT ["." *DIGIT] [LWS delay]` (RFC 3261 §20.38).
pub(crate) fn check_timestamp(s: &[u8]) -> Result<()> {
    let mut c = Cursor::new(s);
    c.skip_lws();
    for i in 0..2 {
        let r = c.take_while(|b| b.is_ascii_digit());
        if r.0 == r.1 {
            return if i == 1 && c.at_end() {
                Ok(())
            } else {
                Err(perr(c.pos, "digits"))
            };
        }
        if c.eat(b'.') {
            c.take_while(|b| b.is_ascii_digit());
        }
        c.skip_lws();
        if c.at_end() {
            return Ok(());
        }
    }
    end(&mut c)
}

/// Validate a comma-separated list of `(token / quoted-string) [EQUAL gen-value] *(SEMI
/// generic-param)` (P-Charging-Vector, P-Visited-Network-ID, Authentication-Info…).
pub(crate) fn check_param_list(s: &[u8]) -> Result<()> {
    let mut c = Cursor::new(s);
    c.skip_lws();
    let mut scratch = Vec::new();
    loop {
        if c.peek() == Some(b'"') {
            c.quoted()
                .ok_or_else(|| perr(c.pos, "a terminated quoted string"))?;
        } else {
            c.token().ok_or_else(|| perr(c.pos, "a token"))?;
            if c.eat_sep(b'=') {
                let ok = if c.peek() == Some(b'"') {
                    c.quoted().is_some()
                } else {
                    let r = c.take_while(|b| chars::is_token(b) || matches!(b, b':' | b'[' | b']'));
                    r.0 != r.1
                };
                if !ok {
                    return Err(perr(c.pos, "a parameter value"));
                }
            }
        }
        parse_params(&mut c, &mut scratch)?;
        scratch.clear();
        c.skip_lws();
        if c.at_end() {
            return Ok(());
        }
        if !c.eat(b',') {
            return Err(perr(c.pos, "',' or ';'"));
        }
        c.skip_lws();
    }
}
