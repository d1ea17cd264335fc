//! The PUBLISH body: `multipart/mixed` (RFC 2046 §5.1) with mcptt-info and poc-settings parts,
//! or one of them alone.

use std::sync::OnceLock;

use bytes::Bytes;
use mcptt_sip::body::{Multipart, Part};
use mcptt_sip::{ContentType, Headers};

use super::mcptt_info::InfoRef;
use super::{MCPTT_INFO_CONTENT_TYPE, McpttInfo, POC_SETTINGS_CONTENT_TYPE, PocSettings};
use crate::error::{BodyKind, Error};
use crate::xml::XmlLimits;

/// Most parts accepted in a multipart body.
const MAX_PARTS: usize = 8;
/// Largest multipart body accepted (bytes).
const MAX_MULTIPART_BYTES: usize = 64 * 1024;

/// The two documents a PUBLISH (`Event: poc-settings`) may carry.
///
/// ```
/// use mcptt_service_state::body::{McpttInfo, PublishBody};
/// let body = PublishBody {
///     info: Some(McpttInfo { access_token: Some("tok".into()), ..McpttInfo::default() }),
///     settings: None,
/// };
/// let (content_type, bytes) = body.encode("b1");
/// assert_eq!(content_type, "multipart/mixed;boundary=b1");
/// assert_eq!(PublishBody::parse(&content_type, &bytes)?, body);
/// # Ok::<(), mcptt_service_state::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishBody {
    /// The `application/vnd.3gpp.mcptt-info+xml` part.
    pub info: Option<McpttInfo>,
    /// The `application/poc-settings+xml` part.
    pub settings: Option<PocSettings>,
}

fn bad(offset: usize, what: &str) -> Error {
    Error::MalformedBody {
        kind: BodyKind::Multipart,
        offset,
        what: what.into(),
    }
}

/// An `mcptt-sip` body error as ours.
fn sip_bad(e: &mcptt_sip::Error) -> Error {
    match e {
        mcptt_sip::Error::Body { offset, expected } => bad(*offset, expected),
        other => bad(0, &other.to_string()),
    }
}

impl PublishBody {
    /// Parses a PUBLISH body given its `Content-Type` header value, with default XML limits.
    ///
    /// Accepts `multipart/mixed` (parts of other types are ignored) or a single mcptt-info or
    /// poc-settings document. An empty body gives an empty `PublishBody`.
    ///
    /// # Errors
    /// [`Error::UnsupportedMediaType`] for other content types; body errors from the parts.
    pub fn parse(content_type: &str, body: &[u8]) -> Result<Self, Error> {
        Self::parse_with(content_type, body, &XmlLimits::default())
    }

    /// As [`PublishBody::parse`], with the given XML limits for the parts.
    ///
    /// # Errors
    /// As [`PublishBody::parse`].
    pub fn parse_with(content_type: &str, body: &[u8], limits: &XmlLimits) -> Result<Self, Error> {
        if body.is_empty() {
            return Ok(Self::default());
        }
        Self::parse_shared(content_type, Bytes::copy_from_slice(body), limits)
    }

    /// As [`PublishBody::parse_with`], for a body already held in [`Bytes`] (no copy; the
    /// multipart split is `mcptt-sip`'s).
    pub(crate) fn parse_shared(
        content_type: &str,
        body: Bytes,
        limits: &XmlLimits,
    ) -> Result<Self, Error> {
        if body.is_empty() {
            return Ok(Self::default());
        }
        if let Some(boundary) = simple_multipart_boundary(content_type) {
            return Self::parse_multipart(boundary, &body, limits).map(PublishParts::into_owned);
        }
        let ct = ContentType::parse(content_type)
            .map_err(|_| Error::UnsupportedMediaType(content_type.trim().to_ascii_lowercase()))?;
        Self::parse_typed(Some(&ct), &body, limits).map(PublishParts::into_owned)
    }

    /// As [`PublishBody::parse_shared`], for a `Content-Type` already read with `mcptt-sip`'s
    /// typed access (`None`: no such header).
    pub(crate) fn parse_typed<'b>(
        ct: Option<&ContentType>,
        body: &'b Bytes,
        limits: &XmlLimits,
    ) -> Result<PublishParts<'b>, Error> {
        let mut out = PublishParts::default();
        if body.is_empty() {
            return Ok(out);
        }
        let Some(ct) = ct else {
            return Err(Error::UnsupportedMediaType(String::new()));
        };
        if ct.is("multipart", "mixed") {
            let boundary = ct
                .boundary()
                .filter(|b| !b.is_empty() && b.len() <= 70)
                .ok_or_else(|| Error::MalformedMessage {
                    what: "a boundary parameter (1 to 70 characters) on multipart/mixed".into(),
                })?;
            Self::parse_multipart(&boundary, body, limits)
        } else {
            if !out.add(ct.mime_type(), body, limits)? {
                return Err(Error::UnsupportedMediaType(
                    ct.mime_type().to_ascii_lowercase(),
                ));
            }
            Ok(out)
        }
    }

    /// A `multipart/mixed` body with `boundary` (1 to 70 characters): split by
    /// [`split_simple`] when the body is in its plain form, else by `mcptt-sip`'s
    /// `Multipart` (which also reports every error).
    pub(crate) fn parse_multipart<'b>(
        boundary: &str,
        body: &'b Bytes,
        limits: &XmlLimits,
    ) -> Result<PublishParts<'b>, Error> {
        if body.len() > MAX_MULTIPART_BYTES {
            return Err(Error::BodyTooLarge {
                kind: BodyKind::Multipart,
                size: body.len(),
                limit: MAX_MULTIPART_BYTES,
            });
        }
        let mut out = PublishParts::default();
        if let Some(parts) = split_simple(boundary, body) {
            for (media, content) in parts.iter() {
                out.add(media, content, limits)?;
            }
            return Ok(out);
        }
        let multipart =
            Multipart::parse_with_boundary(boundary, body.clone()).map_err(|e| sip_bad(&e))?;
        if multipart.parts.len() > MAX_PARTS {
            return Err(Error::BodyLimit {
                kind: BodyKind::Multipart,
                what: "part count",
                limit: MAX_PARTS,
            });
        }
        for part in &multipart.parts {
            // RFC 2046 §5.1: a part without Content-Type is text/plain (not ours).
            let part_type = part.content_type().map_err(|e| sip_bad(&e))?;
            if let Some(t) = part_type {
                // The part is a buffer of the local split: its values are copied out.
                let mut one = PublishParts::default();
                if one.add(t.mime_type(), &part.body, limits)? {
                    out.info = one.info.map(InfoRef::detach).or(out.info);
                    out.settings = one.settings.or(out.settings);
                }
            }
        }
        Ok(out)
    }

    /// Encodes as `multipart/mixed` with `boundary`; returns the Content-Type value and the body.
    #[must_use]
    pub fn encode(&self, boundary: &str) -> (String, Vec<u8>) {
        let content_type = format!("multipart/mixed;boundary={boundary}");
        let mut multipart = Multipart {
            boundary: boundary.to_owned(),
            parts: Vec::with_capacity(2),
        };
        let mut part = |ct: &str, doc: String| {
            let mut headers = Headers::new();
            // Constant names and values without CR/LF: push cannot fail.
            if headers.push("Content-Type", ct).is_ok() {
                multipart.push(Part {
                    headers,
                    body: Bytes::from(doc),
                });
            }
        };
        if let Some(info) = &self.info {
            part(MCPTT_INFO_CONTENT_TYPE, info.encode());
        }
        if let Some(settings) = &self.settings {
            part(POC_SETTINGS_CONTENT_TYPE, settings.encode());
        }
        (content_type, Vec::from(multipart.encode()))
    }
}

/// A [`PublishBody`] whose mcptt-info values may borrow from the body (the server's view).
#[derive(Debug, Default)]
pub(crate) struct PublishParts<'b> {
    /// The `application/vnd.3gpp.mcptt-info+xml` part.
    pub(crate) info: Option<InfoRef<'b>>,
    /// The `application/poc-settings+xml` part.
    pub(crate) settings: Option<PocSettings>,
}

impl<'b> PublishParts<'b> {
    /// Parses one part; `false` when its type is not one of ours.
    fn add(&mut self, media: &str, part: &'b [u8], limits: &XmlLimits) -> Result<bool, Error> {
        // An exact match (as written by nearly everyone) is tested first: one compare.
        if media == MCPTT_INFO_CONTENT_TYPE || media.eq_ignore_ascii_case(MCPTT_INFO_CONTENT_TYPE) {
            self.info = Some(McpttInfo::parse_ref(part, limits)?);
        } else if media == POC_SETTINGS_CONTENT_TYPE
            || media.eq_ignore_ascii_case(POC_SETTINGS_CONTENT_TYPE)
        {
            self.settings = Some(PocSettings::parse_with(part, limits)?);
        } else {
            return Ok(false);
        }
        Ok(true)
    }

    /// The body owned.
    pub(crate) fn into_owned(self) -> PublishBody {
        PublishBody {
            info: self.info.map(InfoRef::into_owned),
            settings: self.settings,
        }
    }
}

/// The boundary of a `Content-Type` value written plainly as `multipart/mixed;boundary=B`
/// (`B` of token characters that are also boundary characters: letters, digits, `' + _ - .`),
/// else `None`: then the value is read with `mcptt-sip`'s typed access, which gives the same
/// boundary for these values.
pub(crate) fn simple_multipart_boundary(content_type: &str) -> Option<&str> {
    // `split_once(';')` then `split_once('=')` with both names matched exactly: the same as
    // one case-insensitive prefix.
    const PREFIX: &[u8] = b"multipart/mixed;boundary=";
    let b = content_type.as_bytes();
    let head = b.get(..PREFIX.len())?;
    if head != PREFIX && !head.eq_ignore_ascii_case(PREFIX) {
        return None;
    }
    let value = content_type.get(PREFIX.len()..)?;
    (!value.is_empty()
        && value.len() <= 70
        && value.bytes().all(|c| BOUNDARY_CHARS[usize::from(c)]))
    .then_some(value)
}

/// Bytes of a plain boundary for [`simple_multipart_boundary`]: letters, digits, `' + _ - .`.
static BOUNDARY_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        table[c] = b.is_ascii_alphanumeric() || matches!(b, b'\'' | b'+' | b'_' | b'-' | b'.');
        c += 1;
    }
    table
};

/// The parts of a multipart body in its plain form, as (media type, content), borrowed.
#[derive(Debug, Default)]
pub(crate) struct SimpleParts<'b> {
    parts: [(&'b str, &'b [u8]); MAX_PARTS],
    len: usize,
}

impl<'b> SimpleParts<'b> {
    fn iter(&self) -> impl Iterator<Item = &(&'b str, &'b [u8])> {
        self.parts.iter().take(self.len)
    }
}

/// Bytes of a plain media type for [`split_simple`]: ASCII letters, digits, `/ . + -` (a table:
/// one load per byte instead of a chain of range checks).
static MEDIA_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        table[c] = b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'+' | b'-');
        c += 1;
    }
    table
};

/// Splits a multipart body in the plain form this crate writes (and most clients): the first
/// delimiter at the very start, each delimiter line ended by CRLF, each part with one header,
/// `Content-Type: type/subtype` (no parameters), then an empty line, at most [`MAX_PARTS`]
/// parts. Content is cut exactly as `mcptt-sip`'s `Multipart` cuts it (RFC 2046 §5.1.1: up to
/// the next line starting with the delimiter, the line break before it belonging to the
/// delimiter). `None` for anything else: the caller then uses `Multipart`, which also reports
/// the errors (tests check the two agree).
pub(crate) fn split_simple<'b>(boundary: &str, body: &'b [u8]) -> Option<SimpleParts<'b>> {
    let bnd = boundary.as_bytes();
    let mut out = SimpleParts::default();
    // "--" boundary CRLF at the start.
    let first = body.get(..2 + bnd.len() + 2)?;
    if first.get(..2)? != b"--" || first.get(2..2 + bnd.len())? != bnd || !first.ends_with(b"\r\n")
    {
        return None;
    }
    let mut start = first.len();
    // `--boundary` after a line feed (the delimiter starts a line): `\n--` is searched with a
    // searcher built once per process, and the boundary compared after each hit.
    static LINE_DASHES: OnceLock<memchr::memmem::Finder<'static>> = OnceLock::new();
    let line_dashes = LINE_DASHES.get_or_init(|| memchr::memmem::Finder::new(b"\n--"));
    loop {
        // One header line: `Content-Type:`, an optional space, a plain media type, CRLF CRLF.
        let head = body.get(start..)?;
        let name = head.get(..13)?;
        if name != b"Content-Type:" && !name.eq_ignore_ascii_case(b"Content-Type:") {
            return None;
        }
        let mut v = 13;
        if head.get(v) == Some(&b' ') {
            v += 1;
        }
        let value = head.get(v..)?;
        // The two types of ours, as this crate writes them, are known without a scan.
        let known = [MCPTT_INFO_CONTENT_TYPE, POC_SETTINGS_CONTENT_TYPE]
            .into_iter()
            .find(|t| {
                value.starts_with(t.as_bytes())
                    && value.get(t.len()..t.len() + 4) == Some(b"\r\n\r\n")
            });
        let (media, value_len) = match known {
            Some(t) => (t, t.len()),
            None => {
                let value_len = value.iter().position(|&b| !MEDIA_CHARS[usize::from(b)])?;
                let media = std::str::from_utf8(value.get(..value_len)?).ok()?;
                let slashes = media.bytes().filter(|&b| b == b'/').count();
                if slashes != 1 || media.starts_with('/') || media.ends_with('/') {
                    return None;
                }
                (media, value_len)
            }
        };
        if head.get(v + value_len..v + value_len + 4)? != b"\r\n\r\n" {
            return None;
        }
        let content_start = start + v + value_len + 4;
        // The next line that starts with the delimiter (the content starts a line itself):
        // the first `--boundary` at or after the content start that follows a line feed.
        // A line feed at or after `content_start - 1` followed by `--boundary`.
        let mut at = content_start.checked_sub(1)?;
        let delim = loop {
            let dashes = at + 1 + line_dashes.find(body.get(at..)?)?;
            if body.get(dashes + 2..dashes + 2 + bnd.len()) == Some(bnd) {
                break dashes;
            }
            at = dashes;
        };
        let mut end = delim;
        if body.get(end - 1) == Some(&b'\n') {
            end -= 1;
            if body.get(end - 1) == Some(&b'\r') {
                end -= 1;
            }
        }
        let content = body.get(content_start..end.max(content_start))?;
        *out.parts.get_mut(out.len)? = (media, content);
        out.len += 1;
        let after = delim + 2 + bnd.len();
        match body.get(after..after + 2)? {
            b"--" => return Some(out),
            b"\r\n" => start = after + 2,
            _ => return None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::body::{AnswerMode, PocEntity};

    #[test]
    fn both_parts_with_preamble_and_lf_only() {
        let body = PublishBody {
            info: Some(McpttInfo {
                access_token: Some("a.b.c".into()),
                client_id: Some("client".into()),
                request_uri: None,
            }),
            settings: Some(PocSettings {
                entities: vec![PocEntity {
                    id: "x".into(),
                    answer_mode: Some(AnswerMode::Manual),
                    ..PocEntity::default()
                }],
            }),
        };
        let (ct, bytes) = body.encode("zz");
        assert_eq!(PublishBody::parse(&ct, &bytes).unwrap(), body);
        let mut with_preamble = b"preamble\r\n".to_vec();
        with_preamble.extend_from_slice(&bytes);
        let lf: Vec<u8> = with_preamble.into_iter().filter(|b| *b != b'\r').collect();
        assert_eq!(
            PublishBody::parse("Multipart/Mixed; boundary=\"zz\"", &lf).unwrap(),
            body
        );
    }

    /// Pieces of multipart bodies with boundary `b1`: delimiters (good, padded, LF only,
    /// prefixed), part headers (plain, lower-case, with parameters, other headers, compact),
    /// content with near-delimiters.
    const PIECES: [&str; 26] = [
        "\r\n--b1\r\nContent-Type: a/b\r\n\r\n",
        "Content-Type: application/poc-settings+xmlx\r\n",
        "Content-Type: application/vnd.3gpp.mcptt-info+xml",
        "\r\n--b1\r\nContent-Type: application/poc-settings+xml\r\n\r\n<p/>",
        "--b1\r\n",
        "--b1--",
        "--b1--\r\n",
        "--b1 \r\n",
        "--b1\n",
        "--b1x\r\n",
        "Content-Type: application/vnd.3gpp.mcptt-info+xml\r\n",
        "content-type:application/poc-settings+xml\r\n",
        "Content-Type: a/b;p=1\r\n",
        "Content-Type: /b\r\n",
        "X-Other: y\r\n",
        "c: a/b\r\n",
        "\r\n",
        "\n",
        "<x>content</x>",
        "\r\n--b1",
        "\n--b1",
        "x--b1",
        "\r\n--b1--",
        "epilogue",
        " ",
        "Content-Type: text/plain\r\n\r\nhello\r\n",
    ];

    /// (media type, content) of each part, as `mcptt-sip` splits them.
    fn full_split(body: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
        let m = Multipart::parse_with_boundary("b1", Bytes::copy_from_slice(body)).ok()?;
        m.parts
            .iter()
            .map(|p| {
                let ct = p.content_type().ok()??;
                Some((ct.mime_type().to_owned(), p.body.to_vec()))
            })
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

        /// Whatever the plain splitter splits, `mcptt-sip` splits the same way.
        #[test]
        fn simple_split_agrees_with_multipart(
            picks in proptest::collection::vec(0usize..PIECES.len(), 0..14),
            shape in 0u8..3,
        ) {
            // Mostly well-formed bodies: a first delimiter and header, then random pieces.
            let mut body = String::new();
            if shape > 0 {
                body.push_str("--b1\r\nContent-Type: application/x+xml\r\n\r\n");
            }
            body.extend(picks.iter().map(|&i| PIECES[i]));
            if shape == 2 {
                body.push_str("\r\n--b1--\r\n");
            }
            if let Some(parts) = split_simple("b1", body.as_bytes()) {
                let fast: Vec<(String, Vec<u8>)> =
                    parts.iter().map(|(m, c)| ((*m).to_owned(), c.to_vec())).collect();
                proptest::prop_assert_eq!(Some(fast), full_split(body.as_bytes()), "{:?}", body);
            }
        }

        /// A plain `multipart/mixed;boundary=B` gives the boundary the typed parse gives.
        #[test]
        fn simple_boundary_agrees_with_the_typed_parse(
            mime in proptest::sample::select(vec!["multipart/mixed", "Multipart/MIXED", "multipart/related", "text/plain"]),
            sep in proptest::sample::select(vec![";", "; ", ";;"]),
            name in proptest::sample::select(vec!["boundary", "BOUNDARY", "bound", "boundary "]),
            value in "[a-zA-Z0-9'+_.\"/ -]{0,8}",
        ) {
            let ct = format!("{mime}{sep}{name}={value}");
            if let Some(b) = simple_multipart_boundary(&ct) {
                let typed = ContentType::parse(&ct).unwrap();
                proptest::prop_assert!(typed.is("multipart", "mixed"));
                let typed_boundary = typed.boundary();
                proptest::prop_assert_eq!(typed_boundary.as_deref(), Some(b));
            }
        }
    }

    #[test]
    fn the_bodies_this_crate_writes_split_plainly() {
        let body = PublishBody {
            info: Some(McpttInfo {
                access_token: Some("a.b.c".into()),
                client_id: None,
                request_uri: None,
            }),
            settings: Some(PocSettings::default()),
        };
        let (ct, bytes) = body.encode("boundary1");
        let b = simple_multipart_boundary(&ct).unwrap();
        assert_eq!(b, "boundary1");
        let parts = split_simple(b, &bytes).unwrap();
        assert_eq!(parts.iter().count(), 2);
        assert_eq!(PublishBody::parse(&ct, &bytes).unwrap(), body);
    }

    #[test]
    fn single_part_and_errors() {
        let info = McpttInfo {
            access_token: Some("t".into()),
            ..McpttInfo::default()
        };
        let one = PublishBody::parse(MCPTT_INFO_CONTENT_TYPE, info.encode().as_bytes()).unwrap();
        assert_eq!(one.info, Some(info));
        assert!(matches!(
            PublishBody::parse("text/plain", b"x"),
            Err(Error::UnsupportedMediaType(_))
        ));
        assert!(matches!(
            PublishBody::parse("multipart/mixed", b"x"),
            Err(Error::MalformedMessage { .. })
        ));
        assert!(matches!(
            PublishBody::parse(
                "multipart/mixed;boundary=q",
                b"--q\r\nContent-Type: text/plain\r\n\r\nunterminated"
            ),
            Err(Error::MalformedBody { .. })
        ));
        let many = "--q\r\n\r\nx\r\n".repeat(9) + "--q--";
        assert!(matches!(
            PublishBody::parse("multipart/mixed;boundary=q", many.as_bytes()),
            Err(Error::BodyLimit {
                what: "part count",
                ..
            })
        ));
        assert_eq!(PublishBody::parse("", b"").unwrap(), PublishBody::default());
    }
}
