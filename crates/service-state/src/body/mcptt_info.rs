//! `application/vnd.3gpp.mcptt-info+xml` (TS 24.379 Annex F.1), the parts this crate uses.

use crate::error::{BodyKind, Error};
use crate::xml::{self, Element, XmlLimits};

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
        let root = xml::parse(BodyKind::McpttInfo, input, limits)?;
        if !root.is(MCPTT_INFO_NS, "mcpttinfo") {
            return Err(Error::MalformedBody {
                kind: BodyKind::McpttInfo,
                offset: 0,
                what: format!("root element <mcpttinfo xmlns=\"{MCPTT_INFO_NS}\">"),
            });
        }
        let mut info = Self::default();
        let Some(params) = root.child(MCPTT_INFO_NS, "mcptt-Params") else {
            return Ok(info);
        };
        info.access_token = content(params, "mcptt-access-token")?;
        info.client_id = content(params, "mcptt-client-id")?;
        info.request_uri = content(params, "mcptt-request-uri")?;
        Ok(info)
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

/// Reads a `contentType` element (`mcpttString` or `mcpttURI` choice) of `type="Normal"`.
fn content(params: &Element, name: &str) -> Result<Option<String>, Error> {
    let Some(el) = params.child(MCPTT_INFO_NS, name) else {
        return Ok(None);
    };
    match el.attr("type") {
        None | Some("Normal") => {}
        Some(other) => return Err(Error::UnsupportedContentType(other.to_owned())),
    }
    let value = el
        .child(MCPTT_INFO_NS, "mcpttString")
        .or_else(|| el.child(MCPTT_INFO_NS, "mcpttURI"))
        .ok_or_else(|| Error::MalformedBody {
            kind: BodyKind::McpttInfo,
            offset: 0,
            what: format!("<mcpttString> or <mcpttURI> inside <{name}>"),
        })?;
    Ok(Some(value.text.trim().to_owned()))
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
}
