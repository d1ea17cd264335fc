//! Generic `;name=value` parameter lists of header values (RFC 3261 §25.1 generic-param).

use std::borrow::Cow;

use bytestring::ByteString;

use crate::chars::{self, Cursor};
use crate::error::{Error, Result};
use crate::span::Span;

/// One parameter: name and optional value, as spans of the owning value's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ParamSpan {
    pub(crate) name: Span,
    pub(crate) value: Option<Span>,
    /// [`name_key`] of the name: lookups compare it before the name itself.
    key: u32,
    /// The value is a quoted-string with a quoted-pair (`\\x`) in it.
    escaped: bool,
}

/// Length, first, middle and last byte of a parameter name, with bit 0x20 set in each byte:
/// names equal but for ASCII case have equal keys.
#[inline]
fn name_key(n: &[u8]) -> u32 {
    let (Some(&f), Some(&l)) = (n.first(), n.last()) else {
        return 0;
    };
    let m = n.get(n.len() / 2).copied().unwrap_or(0);
    (n.len() as u32 & 0xff)
        | u32::from(f | 0x20) << 8
        | u32::from(m | 0x20) << 16
        | u32::from(l | 0x20) << 24
}

pub(crate) fn perr(at: usize, expected: &'static str) -> Error {
    Error::Header {
        name: String::new(),
        offset: at,
        expected,
    }
}

#[inline]
fn is_value_char(b: u8) -> bool {
    // gen-value = token / host / quoted-string; host adds ':' and '[' ']' (IPv6)
    chars::is_token(b) || matches!(b, b':' | b'[' | b']')
}

/// Parse `*( SEMI generic-param )` at the cursor, appending to `out`.
pub(crate) fn parse_params(c: &mut Cursor<'_>, out: &mut Vec<ParamSpan>) -> Result<()> {
    while c.eat_sep(b';') {
        let name = c.token().ok_or_else(|| perr(c.pos, "a parameter name"))?;
        let mut escaped = false;
        let value = if c.eat_sep(b'=') {
            let v = if c.peek() == Some(b'"') {
                c.escapes = false;
                let q = c
                    .quoted()
                    .ok_or_else(|| perr(c.pos, "a terminated quoted string"))?;
                escaped = c.escapes;
                q
            } else {
                let r = c.take_while(is_value_char);
                if r.0 == r.1 {
                    return Err(perr(c.pos, "a parameter value"));
                }
                r
            };
            Some(Span::new(v.0, v.1))
        } else {
            None
        };
        if out.capacity() == 0 {
            // one allocation for the usual lists (a Contact carries five or six), made
            // directly rather than through the growth path of `reserve`
            *out = Vec::with_capacity(8);
        }
        out.push(ParamSpan {
            name: Span::new(name.0, name.1),
            value,
            key: name_key(c.slice(name)),
            escaped,
        });
    }
    Ok(())
}

/// Parse `*( SEMI generic-param )` at the cursor and return the raw value (`""` for a
/// flag, quotes kept) of the first parameter named `name` (case-insensitive), as
/// [`Params::get`] would, without building a list (the grammar is [`parse_params`]'s).
pub(crate) fn find_param(c: &mut Cursor<'_>, name: &[u8]) -> Result<Option<(usize, usize)>> {
    let key = name_key(name);
    let mut found = None;
    while c.eat_sep(b';') {
        let n = c.token().ok_or_else(|| perr(c.pos, "a parameter name"))?;
        let value = if c.eat_sep(b'=') {
            if c.peek() == Some(b'"') {
                c.quoted()
                    .ok_or_else(|| perr(c.pos, "a terminated quoted string"))?
            } else {
                let r = c.take_while(is_value_char);
                if r.0 == r.1 {
                    return Err(perr(c.pos, "a parameter value"));
                }
                r
            }
        } else {
            (0, 0)
        };
        if found.is_none() && name_key(c.slice(n)) == key && c.slice(n).eq_ignore_ascii_case(name) {
            found = Some(value);
        }
    }
    Ok(found)
}

/// A parsed parameter list over a shared buffer, with lookups by name (case-insensitive).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Params {
    src: ByteString,
    list: Vec<ParamSpan>,
}

impl Params {
    pub(crate) fn new(src: ByteString, list: Vec<ParamSpan>) -> Self {
        Self { src, list }
    }

    pub(crate) fn src(&self) -> &ByteString {
        &self.src
    }

    pub(crate) fn spans(&self) -> &[ParamSpan] {
        &self.list
    }

    /// Number of parameters.
    #[must_use]
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The parameters in order, as `(name, raw value)`; quoted values keep their quotes.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> + '_ {
        self.list
            .iter()
            .map(|p| (p.name.text(&self.src), p.value.map(|v| v.text(&self.src))))
    }

    /// The raw value of parameter `name`: `Some("")` for a flag, quoted values with quotes.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.find(name)
            .map(|p| p.value.map(|v| v.text(&self.src)).unwrap_or_default())
    }

    fn find(&self, name: &str) -> Option<&ParamSpan> {
        let name = name.as_bytes();
        if name.is_empty() {
            return None;
        }
        // the key (length and three bytes) rejects the other names in one comparison
        let key = name_key(name);
        self.list
            .iter()
            .find(|p| p.key == key && chars::eq_ci(p.name.bytes(self.src.as_bytes()), name))
    }

    /// The raw value of `name` as bytes (no UTF-8 conversion): for numeric values.
    pub(crate) fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        self.find(name).map(|p| {
            p.value
                .map(|v| v.bytes(self.src.as_bytes()))
                .unwrap_or_default()
        })
    }

    /// The value of parameter `name` with quotes and escapes removed.
    #[must_use]
    pub fn get_unquoted(&self, name: &str) -> Option<Cow<'_, str>> {
        let p = self.find(name)?;
        let raw = p.value.map(|v| v.text(&self.src)).unwrap_or_default();
        if p.escaped {
            return Some(chars::unquote(raw));
        }
        // no quoted-pair (the parse saw none), so no backslash: only the quotes go
        Some(Cow::Borrowed(
            raw.strip_prefix('"')
                .and_then(|r| r.strip_suffix('"'))
                .unwrap_or(raw),
        ))
    }

    /// Whether parameter `name` is present.
    #[must_use]
    pub fn contains(&self, name: &str) -> bool {
        self.find(name).is_some()
    }
}

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use crate::NameAddr;

    #[test]
    fn lookups_fold_case_and_unquote_only_what_needs_it() {
        let a = NameAddr::parse(
            r#"<sip:a@b>;x="a\"b\\c";Y="<urn:x>";z=tok;Expires=5;ab;ba;abc=1;acb=2"#,
        )
        .unwrap();
        assert_eq!(a.feature_tag("x").as_deref(), Some(r#"a"b\c"#));
        assert_eq!(a.feature_tag("y").as_deref(), Some("<urn:x>"));
        assert_eq!(a.feature_tag("Z").as_deref(), Some("tok"));
        assert_eq!(a.param("y"), Some(r#""<urn:x>""#));
        assert_eq!(a.expires(), Some(5));
        // same length, first and last byte as other names: the key only filters
        assert_eq!((a.param("AB"), a.param("bA")), (Some(""), Some("")));
        assert_eq!((a.param("abc"), a.param("ACB")), (Some("1"), Some("2")));
        assert_eq!(
            (a.param("bb"), a.param("expire"), a.param("")),
            (None, None, None)
        );
    }
}
