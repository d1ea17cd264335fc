//! The PUBLISH body: `multipart/mixed` (RFC 2046 §5.1) with mcptt-info and poc-settings parts,
//! or one of them alone.

use memchr::memmem;

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

/// The media type (lower-cased `type/subtype`) and the `boundary` parameter of a Content-Type value.
fn media_type(content_type: &str) -> (String, Option<&str>) {
    let mut it = content_type.split(';');
    let media = it.next().unwrap_or("").trim().to_ascii_lowercase();
    let boundary = it.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"'))
    });
    (media, boundary)
}

fn bad(offset: usize, what: &str) -> Error {
    Error::MalformedBody {
        kind: BodyKind::Multipart,
        offset,
        what: what.into(),
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
        let mut out = Self::default();
        if body.is_empty() {
            return Ok(out);
        }
        let (media, boundary) = media_type(content_type);
        match media.as_str() {
            "multipart/mixed" => {
                let boundary = boundary
                    .filter(|b| !b.is_empty() && b.len() <= 70)
                    .ok_or_else(|| Error::MalformedMessage {
                        what: "a boundary parameter (1 to 70 characters) on multipart/mixed".into(),
                    })?;
                for (part_type, part) in split_multipart(boundary.as_bytes(), body)? {
                    let (media, _) = media_type(&part_type);
                    out.add(&media, part, limits)?;
                }
                Ok(out)
            }
            _ => {
                if !out.add(&media, body, limits)? {
                    return Err(Error::UnsupportedMediaType(media));
                }
                Ok(out)
            }
        }
    }

    /// Parses one part; `false` when its type is not one of ours.
    fn add(&mut self, media: &str, part: &[u8], limits: &XmlLimits) -> Result<bool, Error> {
        if media == MCPTT_INFO_CONTENT_TYPE {
            self.info = Some(McpttInfo::parse_with(part, limits)?);
        } else if media == POC_SETTINGS_CONTENT_TYPE {
            self.settings = Some(PocSettings::parse_with(part, limits)?);
        } else {
            return Ok(false);
        }
        Ok(true)
    }

    /// Encodes as `multipart/mixed` with `boundary`; returns the Content-Type value and the body.
    #[must_use]
    pub fn encode(&self, boundary: &str) -> (String, Vec<u8>) {
        let mut out = Vec::with_capacity(1024);
        let mut part = |ct: &str, doc: String| {
            out.extend_from_slice(format!("--{boundary}\r\nContent-Type: {ct}\r\n\r\n").as_bytes());
            out.extend_from_slice(doc.as_bytes());
            out.extend_from_slice(b"\r\n");
        };
        if let Some(info) = &self.info {
            part(MCPTT_INFO_CONTENT_TYPE, info.encode());
        }
        if let Some(settings) = &self.settings {
            part(POC_SETTINGS_CONTENT_TYPE, settings.encode());
        }
        out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        (format!("multipart/mixed;boundary={boundary}"), out)
    }
}

/// Splits a multipart body into (Content-Type, content) pairs (RFC 2046 §5.1.1).
fn split_multipart<'a>(boundary: &[u8], body: &'a [u8]) -> Result<Vec<(String, &'a [u8])>, Error> {
    if body.len() > MAX_MULTIPART_BYTES {
        return Err(Error::BodyTooLarge {
            kind: BodyKind::Multipart,
            size: body.len(),
            limit: MAX_MULTIPART_BYTES,
        });
    }
    let mut dash = Vec::with_capacity(boundary.len() + 3);
    dash.extend_from_slice(b"\n--");
    dash.extend_from_slice(boundary);
    let finder = memmem::Finder::new(&dash);
    // The first delimiter may open the body (no preamble) or follow a preamble line.
    let mut pos = if body.starts_with(&dash[1..]) {
        dash.len() - 1
    } else {
        finder
            .find(body)
            .map(|i| i + dash.len())
            .ok_or_else(|| bad(0, "a first boundary delimiter"))?
    };
    let mut parts = Vec::new();
    loop {
        let rest = body.get(pos..).unwrap_or_default();
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        // Skip transport padding up to the end of the delimiter line.
        let line_end =
            memchr::memchr(b'\n', rest).ok_or_else(|| bad(pos, "a line end after the boundary"))?;
        let start = pos + line_end + 1;
        let tail = body.get(start..).unwrap_or_default();
        let next = finder
            .find(tail)
            .ok_or_else(|| bad(start, "a closing boundary delimiter"))?;
        let mut end = start + next;
        if end > start && body.get(end - 1) == Some(&b'\r') {
            end -= 1;
        }
        let part = body.get(start..end).unwrap_or_default();
        if parts.len() == MAX_PARTS {
            return Err(Error::BodyLimit {
                kind: BodyKind::Multipart,
                what: "part count",
                limit: MAX_PARTS,
            });
        }
        parts.push(split_part(start, part)?);
        pos = start + next + dash.len();
    }
}

/// Splits a part into its Content-Type (default `text/plain`, RFC 2046 §5.1) and content.
fn split_part(offset: usize, part: &[u8]) -> Result<(String, &[u8]), Error> {
    let (head, content) = if part.starts_with(b"\r\n") {
        (&[][..], part.get(2..).unwrap_or_default())
    } else if part.starts_with(b"\n") {
        (&[][..], part.get(1..).unwrap_or_default())
    } else if let Some(i) = memmem::find(part, b"\r\n\r\n") {
        (
            part.get(..i).unwrap_or_default(),
            part.get(i + 4..).unwrap_or_default(),
        )
    } else if let Some(i) = memmem::find(part, b"\n\n") {
        (
            part.get(..i).unwrap_or_default(),
            part.get(i + 2..).unwrap_or_default(),
        )
    } else {
        return Err(bad(offset, "an empty line after the part headers"));
    };
    let head = std::str::from_utf8(head).map_err(|_| bad(offset, "UTF-8 part headers"))?;
    let mut content_type = String::from("text/plain");
    for line in head.lines() {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad(offset, "a part header line `Name: value`"))?;
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-type") || name.eq_ignore_ascii_case("c") {
            value.trim().clone_into(&mut content_type);
        }
    }
    Ok((content_type, content))
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
