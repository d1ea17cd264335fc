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
        let value = if c.eat_sep(b'=') {
            let v = if c.peek() == Some(b'"') {
                c.quoted()
                    .ok_or_else(|| perr(c.pos, "a terminated quoted string"))?
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
        });
    }
    Ok(())
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
        let first = name.first()?.to_ascii_lowercase();
        self.list.iter().find(|p| {
            // length and first byte reject most names before the byte-wise comparison
            p.name.len() == name.len() && {
                let n = p.name.bytes(self.src.as_bytes());
                n.first().map(u8::to_ascii_lowercase) == Some(first) && chars::eq_ci(n, name)
            }
        })
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
        self.get(name).map(chars::unquote)
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
