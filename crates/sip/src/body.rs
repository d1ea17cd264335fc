//! Message bodies: `multipart/mixed` (RFC 2046 §5.1) and `message/sip` (RFC 3261 §7.4, 27.5).

use bytes::Bytes;

use crate::chars;
use crate::error::{Error, Result};
use crate::headers::{self, Headers};
use crate::limits::Limits;
use crate::message::Message;
use crate::types::ContentType;

fn body_err(offset: usize, expected: &'static str) -> Error {
    Error::Body { offset, expected }
}

/// One body part: its MIME headers and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The part's headers (Content-Type, Content-ID, …).
    pub headers: Headers,
    /// The part's content (zero-copy when parsed).
    pub body: Bytes,
}

impl Part {
    /// A part with a Content-Type header.
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] if `content_type` contains CR or LF.
    pub fn new(content_type: &str, body: impl Into<Bytes>) -> Result<Self> {
        let mut headers = Headers::new();
        headers.push("Content-Type", content_type)?;
        Ok(Self {
            headers,
            body: body.into(),
        })
    }

    /// The part's Content-Type.
    ///
    /// # Errors
    /// [`Error::Header`] for a malformed value.
    pub fn content_type(&self) -> Result<Option<ContentType>> {
        self.headers.content_type()
    }
}

/// A `multipart/*` body: boundary and parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Multipart {
    /// The boundary (without the leading `--`).
    pub boundary: String,
    /// The parts, in order.
    pub parts: Vec<Part>,
}

fn valid_boundary(b: &str) -> bool {
    // RFC 2046 §5.1.1: 1..70 bcharsnospace, optionally with inner spaces
    !b.is_empty()
        && b.len() <= 70
        && !b.ends_with(' ')
        && b.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&c))
}

impl Multipart {
    /// An empty multipart body with this boundary.
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] if the boundary is not a valid RFC 2046 boundary.
    pub fn new(boundary: &str) -> Result<Self> {
        if !valid_boundary(boundary) {
            return Err(Error::ApiMisuse("invalid multipart boundary"));
        }
        Ok(Self {
            boundary: boundary.to_owned(),
            parts: Vec::new(),
        })
    }

    /// Split `body` using the boundary of `content_type` (which must be `multipart/*`).
    ///
    /// # Errors
    /// [`Error::Body`] if the type is not multipart, has no boundary, or the body does not
    /// follow RFC 2046 §5.1.1.
    pub fn parse(content_type: &ContentType, body: Bytes) -> Result<Self> {
        if !content_type.main_type().eq_ignore_ascii_case("multipart") {
            return Err(body_err(0, "a multipart Content-Type"));
        }
        let b = content_type
            .boundary()
            .ok_or_else(|| body_err(0, "a boundary parameter"))?;
        Self::parse_with_boundary(&b, body)
    }

    /// Split `body` with an explicit boundary.
    ///
    /// # Errors
    /// As [`Multipart::parse`].
    pub fn parse_with_boundary(boundary: &str, body: Bytes) -> Result<Self> {
        if !valid_boundary(boundary) {
            return Err(body_err(0, "a valid boundary"));
        }
        let bnd = boundary.as_bytes();
        let s: &[u8] = &body;
        // "--" boundary at `k`
        let delim_at = |k: usize| {
            s.get(k..k + 2) == Some(b"--") && s.get(k + 2..).is_some_and(|r| r.starts_with(bnd))
        };
        // the first delimiter at or after `from` that starts a line (RFC 2046 §5.1.1): line
        // starts are visited one line break at a time (no searcher to build per body; each
        // check stops at the first byte that differs, so the work stays linear)
        let find_from = |from: usize| -> Option<usize> {
            if (from == 0 || s.get(from - 1) == Some(&b'\n')) && delim_at(from) {
                return Some(from);
            }
            let mut at = from;
            loop {
                let k = chars::find_nl(s.get(at..)?)? + at + 1;
                if delim_at(k) {
                    return Some(k);
                }
                at = k;
            }
        };
        let mut d = find_from(0).ok_or_else(|| body_err(0, "the first boundary delimiter"))?;
        // sized directly for the usual bodies (SIP multiparts carry two or three parts, each
        // with a few header lines) rather than through the growth path
        let mut parts = Vec::with_capacity(4);
        loop {
            let after = d + 2 + bnd.len();
            if s.get(after..after + 2) == Some(b"--") {
                break;
            }
            // transport padding, then the line break
            let mut p = after;
            while matches!(s.get(p), Some(b' ' | b'\t')) {
                p += 1;
            }
            if s.get(p) == Some(&b'\r') {
                p += 1;
            }
            if s.get(p) != Some(&b'\n') {
                return Err(body_err(p, "a line break after the boundary"));
            }
            let start = p + 1;
            let next = find_from(start)
                .ok_or_else(|| body_err(start, "the closing boundary delimiter"))?;
            // the CRLF before the delimiter belongs to it
            let mut end = next;
            if end > start && s.get(end - 1) == Some(&b'\n') {
                end -= 1;
                if end > start && s.get(end - 1) == Some(&b'\r') {
                    end -= 1;
                }
            }
            let end = end.max(start);
            let part = body.slice(start..end);
            let mut entries = Vec::with_capacity(4);
            let he = headers::scan(&part, 0, &Limits::default(), &mut entries)
                .map_err(|e| e.shifted(start))?;
            let body_start = if he.terminated {
                he.body_start
            } else {
                part.len()
            };
            parts.push(Part {
                body: part.slice(body_start.min(part.len())..),
                headers: Headers::from_parts(
                    part.clone(),
                    // the part's head as checked text when it is UTF-8 (else read per value)
                    bytestring::ByteString::try_from(part.slice(..body_start.min(part.len())))
                        .unwrap_or_default(),
                    entries,
                ),
            });
            d = next;
        }
        Ok(Self {
            boundary: boundary.to_owned(),
            parts,
        })
    }

    /// Append a part.
    pub fn push(&mut self, part: Part) {
        self.parts.push(part);
    }

    /// The Content-Type value for this body: `multipart/mixed;boundary=…`.
    #[must_use]
    pub fn content_type(&self) -> String {
        format!("multipart/mixed;boundary=\"{}\"", self.boundary)
    }

    /// Encode the body: each part as delimiter, headers, empty line, content; then the close
    /// delimiter.
    #[must_use]
    pub fn encode(&self) -> Bytes {
        let mut v = Vec::new();
        for p in &self.parts {
            v.extend_from_slice(b"--");
            v.extend_from_slice(self.boundary.as_bytes());
            v.extend_from_slice(b"\r\n");
            p.headers.encode_lines(&mut v);
            v.extend_from_slice(b"\r\n");
            v.extend_from_slice(&p.body);
            v.extend_from_slice(b"\r\n");
        }
        v.extend_from_slice(b"--");
        v.extend_from_slice(self.boundary.as_bytes());
        v.extend_from_slice(b"--\r\n");
        Bytes::from(v)
    }
}

/// `message/sip` bodies: a whole SIP message carried as a body (e.g. the UE's REGISTER inside
/// a third-party REGISTER, 3GPP TS 24.229 §5.4.1.7).
pub mod message_sip {
    use super::*;

    /// The media type.
    pub const CONTENT_TYPE: &str = "message/sip";

    /// Parse the carried message (datagram style: the body is exactly the message).
    ///
    /// # Errors
    /// As [`Message::parse`].
    pub fn parse(body: Bytes) -> Result<Message> {
        Message::parse(body)
    }

    /// Encode a message as a body (byte for byte if it was parsed and not edited).
    #[must_use]
    pub fn build(message: &Message) -> Bytes {
        message.encode()
    }
}
