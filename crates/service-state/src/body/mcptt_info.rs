//! `application/vnd.3gpp.mcptt-info+xml` (TS 24.379 Annex F.1), the parts this crate uses.

use std::borrow::Cow;

use crate::error::{BodyKind, Error};
use crate::xml::{self, Step, Template, XmlLimits};

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
        if let Some(info) = Self::read_canonical(input, limits) {
            return Ok(info.into_owned());
        }
        Self::parse_xml(input, limits)
    }

    /// As [`McpttInfo::parse_with`], the values borrowed from `input` when it is in the
    /// canonical form (what the server needs: nothing is copied).
    pub(crate) fn parse_ref<'a>(input: &'a [u8], limits: &XmlLimits) -> Result<InfoRef<'a>, Error> {
        if let Some(info) = Self::read_canonical(input, limits) {
            return Ok(info);
        }
        let Self {
            access_token,
            client_id,
            request_uri,
        } = Self::parse_xml(input, limits)?;
        Ok(InfoRef {
            access_token: access_token.map(Cow::Owned),
            client_id: client_id.map(Cow::Owned),
            request_uri: request_uri.map(Cow::Owned),
        })
    }

    /// The XML readers: the simple one, then the full one when the document needs it.
    fn parse_xml(input: &[u8], limits: &XmlLimits) -> Result<Self, Error> {
        match Self::read(input, limits, true)? {
            Some(info) => Ok(info),
            None => Self::read(input, limits, false)?.ok_or_else(|| Error::MalformedBody {
                kind: BodyKind::McpttInfo,
                offset: 0,
                what: "a readable document".into(),
            }),
        }
    }

    /// The document in the exact form [`McpttInfo::encode`] writes (values without markup
    /// characters), matched as a [`Template`]; `None` for anything else (then the XML readers
    /// decide; they read these documents alike, which tests check).
    fn read_canonical<'a>(input: &'a [u8], limits: &XmlLimits) -> Option<InfoRef<'a>> {
        let mut t = Template::new(input, limits)?;
        t.lit(CANONICAL_HEAD)?;
        let field = |t: &mut Template<'a>, open: &[u8], close: &[u8]| {
            if !t.eat(open) {
                return Some(None);
            }
            // As `str::trim`, which [`trimmed`] uses on the text the XML readers collect: a hole
            // holds no white space but space, tab and line feed, all ASCII.
            let text = t.text()?.trim_ascii();
            t.lit(close)?;
            Some(Some(Cow::Borrowed(text)))
        };
        let access_token = field(
            &mut t,
            b"<mcptt-access-token type=\"Normal\"><mcpttString>",
            b"</mcpttString></mcptt-access-token>\n",
        )?;
        let request_uri = field(
            &mut t,
            b"<mcptt-request-uri type=\"Normal\"><mcpttURI>",
            b"</mcpttURI></mcptt-request-uri>\n",
        )?;
        let client_id = field(
            &mut t,
            b"<mcptt-client-id type=\"Normal\"><mcpttString>",
            b"</mcpttString></mcptt-client-id>\n",
        )?;
        t.lit(b"</mcptt-Params>\n</mcpttinfo>\n")?;
        // At most 2 + 3 * 2 elements: within any element limit of 8 or more.
        (t.done() && limits.max_elements >= 8).then_some(InfoRef {
            access_token,
            client_id,
            request_uri,
        })
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
        out.push_str(CANONICAL_HEAD_STR);
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

/// An [`McpttInfo`] whose values may borrow from the document (the server's view).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct InfoRef<'a> {
    /// `mcptt-access-token`.
    pub(crate) access_token: Option<Cow<'a, str>>,
    /// `mcptt-client-id`.
    pub(crate) client_id: Option<Cow<'a, str>>,
    /// `mcptt-request-uri`.
    pub(crate) request_uri: Option<Cow<'a, str>>,
}

impl InfoRef<'_> {
    /// The values owned.
    pub(crate) fn into_owned(self) -> McpttInfo {
        McpttInfo {
            access_token: self.access_token.map(Cow::into_owned),
            client_id: self.client_id.map(Cow::into_owned),
            request_uri: self.request_uri.map(Cow::into_owned),
        }
    }

    /// The values owned, as a view of any lifetime.
    pub(crate) fn detach(self) -> InfoRef<'static> {
        InfoRef {
            access_token: self.access_token.map(|v| Cow::Owned(v.into_owned())),
            client_id: self.client_id.map(|v| Cow::Owned(v.into_owned())),
            request_uri: self.request_uri.map(|v| Cow::Owned(v.into_owned())),
        }
    }
}

/// The start of every document [`McpttInfo::encode`] writes.
const CANONICAL_HEAD_STR: &str = concat!(
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<mcpttinfo xmlns=\"",
    "urn:3gpp:ns:mcpttInfo:1.0",
    "\">\n<mcptt-Params>\n"
);
const CANONICAL_HEAD: &[u8] = CANONICAL_HEAD_STR.as_bytes();

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

    /// The full XML reader (no fast path) on `doc`.
    fn full(doc: &[u8], limits: &XmlLimits) -> Result<Option<McpttInfo>, Error> {
        McpttInfo::read(doc, limits, false)
    }

    #[test]
    fn canonical_head_names_the_namespace() {
        assert!(CANONICAL_HEAD_STR.contains(&format!("xmlns=\"{MCPTT_INFO_NS}\"")));
        let doc = McpttInfo::default().encode();
        assert!(McpttInfo::read_canonical(doc.as_bytes(), &XmlLimits::default()).is_some());
        // Tighter limits than the canonical documents need leave them to the XML readers.
        let tight = XmlLimits {
            max_depth: 3,
            ..XmlLimits::default()
        };
        assert!(McpttInfo::read_canonical(doc.as_bytes(), &tight).is_none());
        assert!(McpttInfo::parse_with(doc.as_bytes(), &tight).is_ok());
        let info = McpttInfo {
            access_token: Some("t".into()),
            ..McpttInfo::default()
        };
        let doc = info.encode();
        assert!(McpttInfo::parse_with(doc.as_bytes(), &tight).is_err());
        assert!(McpttInfo::read_canonical(doc.as_bytes(), &tight).is_none());
    }

    #[test]
    fn parse_ref_borrows_the_canonical_form_and_copies_the_rest() {
        let info = McpttInfo {
            access_token: Some(" a.b.c ".into()),
            client_id: Some("c&d".into()),
            request_uri: None,
        };
        let limits = XmlLimits::default();
        let plain = McpttInfo {
            client_id: Some("cd".into()),
            ..info.clone()
        };
        let doc = plain.encode();
        let got = McpttInfo::parse_ref(doc.as_bytes(), &limits).unwrap();
        assert!(matches!(got.access_token, Some(Cow::Borrowed("a.b.c"))));
        assert_eq!(got.into_owned(), McpttInfo::parse(doc.as_bytes()).unwrap());
        // `c&amp;d` leaves the template: read by the XML readers, owned.
        let doc = info.encode();
        let got = McpttInfo::parse_ref(doc.as_bytes(), &limits).unwrap();
        assert!(matches!(got.access_token, Some(Cow::Owned(_))));
        assert_eq!(got.client_id.as_deref(), Some("c&d"));
        assert_eq!(got.into_owned(), McpttInfo::parse(doc.as_bytes()).unwrap());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

        /// What `encode` writes is read by the template exactly as the full reader reads it;
        /// values with markup or non-ASCII characters are left to the XML readers.
        #[test]
        fn canonical_reads_what_the_full_reader_reads(
            token in proptest::option::of("[ a-zA-Z0-9._|:\t\n<>&\"'\u{e9}-]{0,24}"),
            client in proptest::option::of("[ a-z&]{0,8}"),
            uri in proptest::option::of("[ a-z:@.;=<]{0,16}"),
        ) {
            let info = McpttInfo { access_token: token, client_id: client, request_uri: uri };
            let doc = info.encode();
            let limits = XmlLimits::default();
            let fast = McpttInfo::read_canonical(doc.as_bytes(), &limits).map(InfoRef::into_owned);
            let plain = |v: &Option<String>| v.as_deref().is_none_or(|v| {
                v.bytes().all(|b| b == b' ' || b == b'\t' || b == b'\n' || (b.is_ascii_graphic() && !b"<>&\"'".contains(&b)))
            });
            proptest::prop_assert_eq!(
                fast.is_some(),
                plain(&info.access_token) && plain(&info.client_id) && plain(&info.request_uri)
            );
            if let Some(fast) = fast {
                proptest::prop_assert_eq!(Some(fast), full(doc.as_bytes(), &limits).unwrap());
            }
        }

        /// Any edit of a canonical document that the template still accepts is read as the
        /// full reader reads it.
        #[test]
        fn canonical_agrees_on_edited_documents(
            edits in proptest::collection::vec((0usize..400, 0u8..4, proptest::sample::select(b" \n\t<>&\"/=xa\r\x01\xc3".to_vec())), 1..4),
        ) {
            let info = McpttInfo {
                access_token: Some("eyJ0.e30.sig".into()),
                client_id: Some("mcptt-client".into()),
                request_uri: Some("sip:psi@example.org".into()),
            };
            let mut doc = info.encode().into_bytes();
            crate::body::apply_edits(&mut doc, &edits);
            let limits = XmlLimits::default();
            if let Some(fast) = McpttInfo::read_canonical(&doc, &limits).map(InfoRef::into_owned) {
                proptest::prop_assert_eq!(Some(fast), full(&doc, &limits).unwrap());
            }
        }
    }
}
