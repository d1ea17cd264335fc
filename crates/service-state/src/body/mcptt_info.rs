//! `application/vnd.3gpp.mcptt-info+xml` (TS 24.379 Annex F.1), the parts this crate uses.

use crate::error::{BodyKind, Error};
use crate::xml::{self, Step, XmlLimits};

/// XML namespace of the mcptt-info document.
pub const MCPTT_INFO_NS: &str = "urn:3gpp:ns:mcpttInfo:1.0";

/// The `mcptt-Params` of an mcptt-info document that the service-authorisation flow uses.
///
/// Every field is optional in the schema. Only `type="Normal"` content is supported: an element
/// with `type="Encrypted"` makes [`McpttInfo::parse`] fail with
/// [`Error::UnsupportedContentType`]. Unknown elements are ignored.
///
/// ```
/// use mcptt_service_state::body::McpttInfo;
/// let info = McpttInfo {
///     access_token: Some("eyJhbGciOiJFUzI1NiJ9.e30.sig".into()),
///     client_id: Some("mcptt-client".into()),
///     request_uri: Some("sip:mcptt-server@example.org".into()),
/// };
/// let xml = info.encode();
/// assert_eq!(McpttInfo::parse(xml.as_bytes())?, info);
/// # Ok::<(), mcptt_service_state::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct McpttInfo {
    /// `mcptt-access-token` (`mcpttString`): the access token, a JWS compact JWT.
    pub access_token: Option<String>,
    /// `mcptt-client-id` (`mcpttString`): the OAuth client id of the MCPTT client.
    pub client_id: Option<String>,
    /// `mcptt-request-uri` (`mcpttURI`): the URI the request is for.
    pub request_uri: Option<String>,
}

impl McpttInfo {
    /// Parses a document with the default [`XmlLimits`].
    ///
    /// # Errors
    /// [`Error::MalformedBody`] for bad XML or a wrong root element, [`Error::UnsupportedContentType`]
    /// for `type="Encrypted"`, [`Error::BodyTooLarge`]/[`Error::BodyLimit`] beyond the limits.
    pub fn parse(input: &[u8]) -> Result<Self, Error> {
        Self::parse_with(input, &XmlLimits::default())
    }

    /// Parses a document with the given limits.
    ///
    /// # Errors
    /// As [`McpttInfo::parse`].
    pub fn parse_with(input: &[u8], limits: &XmlLimits) -> Result<Self, Error> {
        match Self::read(input, limits, true)? {
            Some(info) => Ok(info),
            None => Self::read(input, limits, false)?.ok_or_else(|| Error::MalformedBody {
                kind: BodyKind::McpttInfo,
                offset: 0,
                what: "a readable document".into(),
            }),
        }
    }

    /// One pass over the document with the simple reader (`None` when the document needs the
    /// full one) or the full reader.
    fn read(input: &[u8], limits: &XmlLimits, simple: bool) -> Result<Option<Self>, Error> {
        // One streaming pass over the document (no tree): only the text of the chosen
        // `<mcpttString>`/`<mcpttURI>` elements is copied out.
        let mut root_ok = false;
        let mut params = Params::None;
        let mut fields: [Field; 3] = Default::default();
        let mut cur: Option<usize> = None;
        let mut capture: Option<(usize, bool)> = None;
        let completed =
            xml::walk_either(
                BodyKind::McpttInfo,
                input,
                limits,
                simple,
                |step| match step {
                    Step::Start {
                        depth,
                        ns,
                        name,
                        attrs,
                    } => {
                        let ours = ns == Some(MCPTT_INFO_NS);
                        match depth {
                            0 => root_ok = ours && name == b"mcpttinfo",
                            1 if root_ok
                                && ours
                                && name == b"mcptt-Params"
                                && params == Params::None =>
                            {
                                params = Params::Open;
                            }
                            2 if params == Params::Open && ours => {
                                cur = FIELDS.iter().position(|f| f.as_bytes() == name);
                                match cur.and_then(|i| fields.get_mut(i)) {
                                    Some(f) if !f.seen => {
                                        f.seen = true;
                                        f.bad_type = match attrs.get(b"type") {
                                            None => None,
                                            Some(t) if t == "Normal" => None,
                                            Some(t) => Some(t.into_owned()),
                                        };
                                    }
                                    _ => cur = None,
                                }
                            }
                            3 if ours => {
                                if let Some(f) = cur.and_then(|i| fields.get_mut(i)) {
                                    let slot = match name {
                                        b"mcpttString" => Some((&mut f.string, false)),
                                        b"mcpttURI" => Some((&mut f.uri, true)),
                                        _ => None,
                                    };
                                    if let Some((slot @ None, uri)) = slot {
                                        *slot = Some(String::new());
                                        capture = cur.map(|i| (i, uri));
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                    Step::End { depth } => match depth {
                        1 if params == Params::Open => params = Params::Done,
                        2 => cur = None,
                        3 => capture = None,
                        _ => {}
                    },
                    Step::Text { depth: 3, text } => {
                        if let Some((i, uri)) = capture
                            && let Some(f) = fields.get_mut(i)
                            && let Some(buf) = if uri { &mut f.uri } else { &mut f.string }
                        {
                            buf.push_str(text);
                        }
                    }
                    Step::Text { .. } => {}
                },
            )?;
        if !completed {
            return Ok(None);
        }
        if !root_ok {
            return Err(Error::MalformedBody {
                kind: BodyKind::McpttInfo,
                offset: 0,
                what: format!("root element <mcpttinfo xmlns=\"{MCPTT_INFO_NS}\">"),
            });
        }
        let [access_token, client_id, request_uri] = fields;
        Ok(Some(Self {
            access_token: access_token.value(FIELDS[0])?,
            client_id: client_id.value(FIELDS[1])?,
            request_uri: request_uri.value(FIELDS[2])?,
        }))
    }

    /// Encodes the document (UTF-8, with an XML declaration).
    #[must_use]
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(
            256 + self.access_token.as_ref().map_or(0, String::len)
                + self.client_id.as_ref().map_or(0, String::len)
                + self.request_uri.as_ref().map_or(0, String::len),
        );
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<mcpttinfo xmlns=\"");
        out.push_str(MCPTT_INFO_NS);
        out.push_str("\">\n<mcptt-Params>\n");
        let mut push = |name: &str, choice: &str, value: &Option<String>| {
            if let Some(v) = value {
                out.push_str(&format!(
                    "<{name} type=\"Normal\"><{choice}>{}</{choice}></{name}>\n",
                    xml::escape(v)
                ));
            }
        };
        push("mcptt-access-token", "mcpttString", &self.access_token);
        push("mcptt-request-uri", "mcpttURI", &self.request_uri);
        push("mcptt-client-id", "mcpttString", &self.client_id);
        out.push_str("</mcptt-Params>\n</mcpttinfo>\n");
        out
    }
}

/// The `contentType` elements read, in the order their errors are reported.
const FIELDS: [&str; 3] = ["mcptt-access-token", "mcptt-client-id", "mcptt-request-uri"];

/// Where the walk is relative to the (first) `<mcptt-Params>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Params {
    None,
    Open,
    Done,
}

/// What the walk saw of the first `contentType` element of one name.
#[derive(Debug, Default)]
struct Field {
    seen: bool,
    /// The `type` attribute when it is not `Normal`.
    bad_type: Option<String>,
    /// Text of the first `<mcpttString>` child, if any.
    string: Option<String>,
    /// Text of the first `<mcpttURI>` child, if any.
    uri: Option<String>,
}

impl Field {
    /// The value of a `type="Normal"` element (`mcpttString` preferred over `mcpttURI`).
    fn value(self, name: &str) -> Result<Option<String>, Error> {
        if !self.seen {
            return Ok(None);
        }
        if let Some(other) = self.bad_type {
            return Err(Error::UnsupportedContentType(other));
        }
        let text = self
            .string
            .or(self.uri)
            .ok_or_else(|| Error::MalformedBody {
                kind: BodyKind::McpttInfo,
                offset: 0,
                what: format!("<mcpttString> or <mcpttURI> inside <{name}>"),
            })?;
        Ok(Some(trimmed(text)))
    }
}

/// `text` without surrounding whitespace, reusing its buffer.
pub(crate) fn trimmed(mut text: String) -> String {
    let end = text.trim_end().len();
    text.truncate(end);
    let start = text.len() - text.trim_start().len();
    if start > 0 {
        text.drain(..start);
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_ts_24_379_shape_with_prefixes_and_entities() {
        let doc = br#"<?xml version="1.0" encoding="UTF-8"?>
<m:mcpttinfo xmlns:m="urn:3gpp:ns:mcpttInfo:1.0">
  <m:mcptt-Params>
    <m:mcptt-access-token type="Normal"><m:mcpttString> abc.def.ghi </m:mcpttString></m:mcptt-access-token>
    <m:mcptt-client-id type="Normal"><m:mcpttString>c&amp;d</m:mcpttString></m:mcptt-client-id>
    <m:unknown-thing>ignored</m:unknown-thing>
  </m:mcptt-Params>
</m:mcpttinfo>"#;
        let info = McpttInfo::parse(doc).unwrap();
        assert_eq!(info.access_token.as_deref(), Some("abc.def.ghi"));
        assert_eq!(info.client_id.as_deref(), Some("c&d"));
        assert_eq!(info.request_uri, None);
    }

    #[test]
    fn encrypted_is_a_clear_unsupported_error() {
        let doc = br#"<mcpttinfo xmlns="urn:3gpp:ns:mcpttInfo:1.0"><mcptt-Params>
<mcptt-access-token type="Encrypted"><EncryptedData xmlns="http://www.w3.org/2001/04/xmlenc#"/></mcptt-access-token>
</mcptt-Params></mcpttinfo>"#;
        let err = McpttInfo::parse(doc).unwrap_err();
        assert!(
            matches!(err, Error::UnsupportedContentType(ref t) if t == "Encrypted"),
            "{err}"
        );
        assert!(err.to_string().contains("only type=\"Normal\""));
    }

    #[test]
    fn doctype_and_custom_entities_are_refused() {
        let xxe = br#"<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<mcpttinfo xmlns="urn:3gpp:ns:mcpttInfo:1.0">&x;</mcpttinfo>"#;
        let err = McpttInfo::parse(xxe).unwrap_err();
        assert!(err.to_string().contains("DOCTYPE"), "{err}");
        let undefined = br#"<mcpttinfo xmlns="urn:3gpp:ns:mcpttInfo:1.0">&x;</mcpttinfo>"#;
        assert!(matches!(
            McpttInfo::parse(undefined),
            Err(Error::MalformedBody { .. })
        ));
    }

    #[test]
    fn wrong_namespace_and_limits() {
        let doc = br#"<mcpttinfo xmlns="urn:other"/>"#;
        assert!(matches!(
            McpttInfo::parse(doc),
            Err(Error::MalformedBody { .. })
        ));
        let big = vec![b' '; 20_000];
        assert!(matches!(
            McpttInfo::parse(&big),
            Err(Error::BodyTooLarge { size: 20_000, .. })
        ));
        let deep = "<a>".repeat(40);
        assert!(matches!(
            McpttInfo::parse(deep.as_bytes()),
            Err(Error::BodyLimit {
                what: "nesting depth",
                ..
            })
        ));
        let limits = XmlLimits {
            max_elements: 3,
            ..XmlLimits::default()
        };
        let many = br#"<mcpttinfo xmlns="urn:3gpp:ns:mcpttInfo:1.0"><a/><b/><c/><d/></mcpttinfo>"#;
        assert!(matches!(
            McpttInfo::parse_with(many, &limits),
            Err(Error::BodyLimit {
                what: "element count",
                ..
            })
        ));
    }

    #[test]
    fn round_trip_escapes_markup() {
        let info = McpttInfo {
            access_token: Some("<&>\"'".into()),
            client_id: None,
            request_uri: Some("sip:a@b;x=<y>".into()),
        };
        assert_eq!(McpttInfo::parse(info.encode().as_bytes()).unwrap(), info);
    }

    #[test]
    fn uri_choice_split_text_and_first_element_rules() {
        let doc = br#"<mcpttinfo xmlns="urn:3gpp:ns:mcpttInfo:1.0"><mcptt-Params>
<mcptt-request-uri type="Normal"><mcpttURI> sip:a&#64;b<x>inner</x>;c </mcpttURI></mcptt-request-uri>
<mcptt-request-uri type="Encrypted"/>
<mcptt-client-id><mcpttString>one</mcpttString><mcpttString>two</mcpttString></mcptt-client-id>
</mcptt-Params><mcptt-Params><mcptt-access-token><mcpttString>later</mcpttString></mcptt-access-token></mcptt-Params></mcpttinfo>"#;
        let info = McpttInfo::parse(doc).unwrap();
        assert_eq!(info.request_uri.as_deref(), Some("sip:a@b;c"));
        assert_eq!(info.client_id.as_deref(), Some("one"));
        assert_eq!(info.access_token, None);
        let no_choice = br#"<mcpttinfo xmlns="urn:3gpp:ns:mcpttInfo:1.0"><mcptt-Params><mcptt-client-id/></mcptt-Params></mcpttinfo>"#;
        let err = McpttInfo::parse(no_choice).unwrap_err();
        assert!(err.to_string().contains("mcptt-client-id"), "{err}");
    }
}
