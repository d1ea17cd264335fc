//! The PUBLISH body: `multipart/mixed` (RFC 2046 §5.1) with mcptt-info and poc-settings parts,
//! or one of them alone.

use bytes::Bytes;
use mcptt_sip::body::{Multipart, Part};
use mcptt_sip::{ContentType, Headers};

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
        let ct = ContentType::parse(content_type)
            .map_err(|_| Error::UnsupportedMediaType(content_type.trim().to_ascii_lowercase()))?;
        Self::parse_typed(Some(&ct), body, limits)
    }

    /// As [`PublishBody::parse_shared`], for a `Content-Type` already read with `mcptt-sip`'s
    /// typed access (`None`: no such header).
    pub(crate) fn parse_typed(
        ct: Option<&ContentType>,
        body: Bytes,
        limits: &XmlLimits,
    ) -> Result<Self, Error> {
        let mut out = Self::default();
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
            if body.len() > MAX_MULTIPART_BYTES {
                return Err(Error::BodyTooLarge {
                    kind: BodyKind::Multipart,
                    size: body.len(),
                    limit: MAX_MULTIPART_BYTES,
                });
            }
            let multipart =
                Multipart::parse_with_boundary(&boundary, body).map_err(|e| sip_bad(&e))?;
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
                    out.add(t.mime_type(), &part.body, limits)?;
                }
            }
            Ok(out)
        } else {
            if !out.add(ct.mime_type(), &body, limits)? {
                return Err(Error::UnsupportedMediaType(
                    ct.mime_type().to_ascii_lowercase(),
                ));
            }
            Ok(out)
        }
    }

    /// Parses one part; `false` when its type is not one of ours.
    fn add(&mut self, media: &str, part: &[u8], limits: &XmlLimits) -> Result<bool, Error> {
        if media.eq_ignore_ascii_case(MCPTT_INFO_CONTENT_TYPE) {
            self.info = Some(McpttInfo::parse_with(part, limits)?);
        } else if media.eq_ignore_ascii_case(POC_SETTINGS_CONTENT_TYPE) {
            self.settings = Some(PocSettings::parse_with(part, limits)?);
        } else {
            return Ok(false);
        }
        Ok(true)
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
