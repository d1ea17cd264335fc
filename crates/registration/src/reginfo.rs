//! `application/reginfo+xml` documents (RFC 3680 §5): build, encode and parse.
//!
//! Parsing is bounded by [`XmlLimits`] and never expands entities other than the five
//! predefined ones and character references; a `<!DOCTYPE>` is refused outright, so
//! neither external entities nor entity expansion attacks are possible.

use std::fmt::Write as _;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event as XmlEvent};

use crate::error::{Error, XmlErrorKind};

/// The media type of reginfo documents.
pub const CONTENT_TYPE: &str = "application/reginfo+xml";
/// The XML namespace of reginfo documents.
pub const NAMESPACE: &str = "urn:ietf:params:xml:ns:reginfo";

/// Limits applied when parsing a reginfo document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XmlLimits {
    /// Maximum document size in bytes.
    pub max_size: usize,
    /// Maximum number of `<registration>` elements.
    pub max_registrations: usize,
    /// Maximum number of `<contact>` elements per registration.
    pub max_contacts: usize,
    /// Maximum number of `<unknown-param>` elements per contact.
    pub max_params: usize,
    /// Maximum element nesting depth.
    pub max_depth: usize,
    /// Maximum length of any text value or attribute value, in bytes.
    pub max_value_len: usize,
}

impl Default for XmlLimits {
    fn default() -> Self {
        Self {
            max_size: 64 * 1024,
            max_registrations: 64,
            max_contacts: 64,
            max_params: 16,
            max_depth: 16,
            max_value_len: 1024,
        }
    }
}

/// Whether a document carries the full state or only changes (RFC 3680 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocState {
    /// The complete registration state.
    Full,
    /// Only the registrations that changed.
    Partial,
}

/// State of one address-of-record (RFC 3680 §5.2 `registration/@state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegistrationState {
    /// No contacts, and none was ever seen in this subscription.
    Init,
    /// At least one active contact.
    Active,
    /// The last contact went away.
    Terminated,
}

/// State of one contact (RFC 3680 §5.2 `contact/@state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContactState {
    /// Bound.
    Active,
    /// No longer bound.
    Terminated,
}

/// What happened to a contact (RFC 3680 §5.2 `contact/@event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContactEvent {
    /// Added by a REGISTER.
    Registered,
    /// Added administratively.
    Created,
    /// Refreshed by a REGISTER.
    Refreshed,
    /// Expiry shortened administratively.
    Shortened,
    /// Expired.
    Expired,
    /// Removed administratively, the UE may re-register.
    Deactivated,
    /// Removed administratively, the UE should re-register later.
    Probation,
    /// Removed by a REGISTER (expires 0).
    Unregistered,
    /// Removed administratively, the UE must not re-register.
    Rejected,
}

impl ContactEvent {
    const ALL: [(Self, &'static str); 9] = [
        (Self::Registered, "registered"),
        (Self::Created, "created"),
        (Self::Refreshed, "refreshed"),
        (Self::Shortened, "shortened"),
        (Self::Expired, "expired"),
        (Self::Deactivated, "deactivated"),
        (Self::Probation, "probation"),
        (Self::Unregistered, "unregistered"),
        (Self::Rejected, "rejected"),
    ];

    /// The wire token.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(e, _)| *e == self)
            .map_or("registered", |(_, s)| s)
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().find(|(_, t)| *t == s).map(|(e, _)| *e)
    }
}

/// One `<contact>` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactInfo {
    /// Identifier of the binding, stable while it exists.
    pub id: String,
    /// `active` or `terminated`.
    pub state: ContactState,
    /// What happened.
    pub event: ContactEvent,
    /// Remaining seconds (`expires` attribute).
    pub expires: Option<u32>,
    /// Seconds since the binding was created (`duration-registered`).
    pub duration_registered: Option<u32>,
    /// `q` attribute, as written.
    pub q: Option<String>,
    /// Call-ID of the REGISTER that created or refreshed the binding.
    pub call_id: Option<String>,
    /// CSeq of that REGISTER.
    pub cseq: Option<u32>,
    /// The contact URI.
    pub uri: String,
    /// Optional display name.
    pub display_name: Option<String>,
    /// `<unknown-param name=…>value</unknown-param>` elements: Contact header parameters such
    /// as `+sip.instance` and `reg-id` (RFC 5626 §10), or feature tags.
    pub params: Vec<(String, String)>,
}

impl ContactInfo {
    /// The value of the `unknown-param` named `name`, if any.
    #[must_use]
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One `<registration>` element: the state of one address-of-record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationInfo {
    /// The address-of-record (public user identity).
    pub aor: String,
    /// Identifier of this registration, stable while it exists.
    pub id: String,
    /// Registration state.
    pub state: RegistrationState,
    /// Contacts (all of them in a full document; the changed ones in a partial one).
    pub contacts: Vec<ContactInfo>,
}

/// A reginfo document (RFC 3680 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegInfo {
    /// Version, incremented by one for each document sent in a subscription.
    pub version: u32,
    /// Full or partial.
    pub state: DocState,
    /// Registrations.
    pub registrations: Vec<RegistrationInfo>,
}

fn esc(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

impl RegInfo {
    /// Encodes the document as UTF-8 XML.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut o = String::with_capacity(256 + 320 * self.registrations.len());
        o.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            o,
            "<reginfo xmlns=\"{NAMESPACE}\" version=\"{}\" state=\"{}\">",
            self.version,
            match self.state {
                DocState::Full => "full",
                DocState::Partial => "partial",
            }
        );
        for r in &self.registrations {
            o.push_str(" <registration aor=\"");
            esc(&mut o, &r.aor);
            o.push_str("\" id=\"");
            esc(&mut o, &r.id);
            o.push_str("\" state=\"");
            o.push_str(match r.state {
                RegistrationState::Init => "init",
                RegistrationState::Active => "active",
                RegistrationState::Terminated => "terminated",
            });
            o.push_str("\">\n");
            for c in &r.contacts {
                o.push_str("  <contact id=\"");
                esc(&mut o, &c.id);
                let _ = write!(
                    o,
                    "\" state=\"{}\" event=\"{}\"",
                    match c.state {
                        ContactState::Active => "active",
                        ContactState::Terminated => "terminated",
                    },
                    c.event.as_str()
                );
                if let Some(e) = c.expires {
                    let _ = write!(o, " expires=\"{e}\"");
                }
                if let Some(d) = c.duration_registered {
                    let _ = write!(o, " duration-registered=\"{d}\"");
                }
                if let Some(q) = &c.q {
                    o.push_str(" q=\"");
                    esc(&mut o, q);
                    o.push('"');
                }
                if let Some(id) = &c.call_id {
                    o.push_str(" callid=\"");
                    esc(&mut o, id);
                    o.push('"');
                }
                if let Some(n) = c.cseq {
                    let _ = write!(o, " cseq=\"{n}\"");
                }
                o.push_str(">\n   <uri>");
                esc(&mut o, &c.uri);
                o.push_str("</uri>\n");
                if let Some(d) = &c.display_name {
                    o.push_str("   <display-name>");
                    esc(&mut o, d);
                    o.push_str("</display-name>\n");
                }
                for (n, v) in &c.params {
                    o.push_str("   <unknown-param name=\"");
                    esc(&mut o, n);
                    o.push_str("\">");
                    esc(&mut o, v);
                    o.push_str("</unknown-param>\n");
                }
                o.push_str("  </contact>\n");
            }
            o.push_str(" </registration>\n");
        }
        o.push_str("</reginfo>\n");
        o
    }

    /// Parses a document with the default [`XmlLimits`].
    ///
    /// # Errors
    /// [`Error::Xml`] when malformed, [`Error::XmlLimit`] when a limit is exceeded.
    pub fn parse(input: &[u8]) -> Result<Self, Error> {
        Self::parse_with(input, &XmlLimits::default())
    }

    /// Parses a document under `limits`.
    ///
    /// Unknown elements and attributes are skipped (RFC 3680 allows extensions), but still
    /// count against the depth and size limits.
    ///
    /// # Errors
    /// [`Error::Xml`] when malformed, [`Error::XmlLimit`] when a limit is exceeded.
    pub fn parse_with(input: &[u8], limits: &XmlLimits) -> Result<Self, Error> {
        if input.len() > limits.max_size {
            return Err(Error::XmlLimit {
                what: "max_size",
                limit: limits.max_size,
            });
        }
        let text = std::str::from_utf8(input).map_err(|e| Error::Xml {
            offset: e.valid_up_to() as u64,
            kind: XmlErrorKind::Encoding,
        })?;
        Parser::new(text, limits).run()
    }
}

/// Which text-bearing element we are inside.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TextTarget {
    Uri,
    DisplayName,
    Param,
}

struct Parser<'a> {
    reader: Reader<&'a [u8]>,
    limits: &'a XmlLimits,
    depth: usize,
    doc: Option<RegInfo>,
    reg: Option<RegistrationInfo>,
    contact: Option<ContactInfo>,
    param_name: Option<String>,
    text: Option<(TextTarget, usize, String)>,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, limits: &'a XmlLimits) -> Self {
        let mut reader = Reader::from_str(text);
        let cfg = reader.config_mut();
        cfg.trim_text(false);
        cfg.check_end_names = true;
        cfg.expand_empty_elements = true;
        Self {
            reader,
            limits,
            depth: 0,
            doc: None,
            reg: None,
            contact: None,
            param_name: None,
            text: None,
        }
    }

    fn err(&self, kind: XmlErrorKind) -> Error {
        Error::Xml {
            offset: self.reader.buffer_position(),
            kind,
        }
    }

    fn limit(what: &'static str, limit: usize) -> Error {
        Error::XmlLimit { what, limit }
    }

    fn attr(&self, e: &BytesStart<'_>, name: &'static str) -> Result<Option<String>, Error> {
        for a in e.attributes() {
            let a = a.map_err(|_| self.err(XmlErrorKind::Syntax))?;
            if a.key.local_name().as_ref() == name.as_bytes() {
                let v = a
                    .unescape_value()
                    .map_err(|_| self.err(XmlErrorKind::UnknownEntity))?;
                if v.len() > self.limits.max_value_len {
                    return Err(Self::limit("max_value_len", self.limits.max_value_len));
                }
                return Ok(Some(v.into_owned()));
            }
        }
        Ok(None)
    }

    fn req_attr(&self, e: &BytesStart<'_>, name: &'static str) -> Result<String, Error> {
        self.attr(e, name)?
            .ok_or_else(|| self.err(XmlErrorKind::MissingAttribute(name)))
    }

    fn num_attr(&self, e: &BytesStart<'_>, name: &'static str) -> Result<Option<u32>, Error> {
        match self.attr(e, name)? {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| self.err(XmlErrorKind::InvalidValue(name))),
        }
    }

    fn push_text(&mut self, s: &str) -> Result<(), Error> {
        if let Some((_, _, buf)) = &mut self.text {
            if buf.len() + s.len() > self.limits.max_value_len {
                return Err(Self::limit("max_value_len", self.limits.max_value_len));
            }
            buf.push_str(s);
        }
        Ok(())
    }

    fn start(&mut self, e: &BytesStart<'_>) -> Result<(), Error> {
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            return Err(Self::limit("max_depth", self.limits.max_depth));
        }
        let name = e.local_name();
        let name = name.as_ref();
        match (self.depth, name) {
            (1, b"reginfo") => {
                let version = self
                    .num_attr(e, "version")?
                    .ok_or_else(|| self.err(XmlErrorKind::MissingAttribute("version")))?;
                let state = match self.req_attr(e, "state")?.as_str() {
                    "full" => DocState::Full,
                    "partial" => DocState::Partial,
                    _ => return Err(self.err(XmlErrorKind::InvalidValue("state"))),
                };
                self.doc = Some(RegInfo {
                    version,
                    state,
                    registrations: Vec::new(),
                });
            }
            (1, _) => return Err(self.err(XmlErrorKind::NotReginfo)),
            (2, b"registration") => {
                let n = self.doc.as_ref().map_or(0, |d| d.registrations.len());
                if n >= self.limits.max_registrations {
                    return Err(Self::limit(
                        "max_registrations",
                        self.limits.max_registrations,
                    ));
                }
                let state = match self.req_attr(e, "state")?.as_str() {
                    "init" => RegistrationState::Init,
                    "active" => RegistrationState::Active,
                    "terminated" => RegistrationState::Terminated,
                    _ => return Err(self.err(XmlErrorKind::InvalidValue("state"))),
                };
                self.reg = Some(RegistrationInfo {
                    aor: self.req_attr(e, "aor")?,
                    id: self.req_attr(e, "id")?,
                    state,
                    contacts: Vec::new(),
                });
            }
            (3, b"contact") if self.reg.is_some() => {
                let n = self.reg.as_ref().map_or(0, |r| r.contacts.len());
                if n >= self.limits.max_contacts {
                    return Err(Self::limit("max_contacts", self.limits.max_contacts));
                }
                let state = match self.req_attr(e, "state")?.as_str() {
                    "active" => ContactState::Active,
                    "terminated" => ContactState::Terminated,
                    _ => return Err(self.err(XmlErrorKind::InvalidValue("state"))),
                };
                let event = ContactEvent::parse(&self.req_attr(e, "event")?)
                    .ok_or_else(|| self.err(XmlErrorKind::InvalidValue("event")))?;
                self.contact = Some(ContactInfo {
                    id: self.req_attr(e, "id")?,
                    state,
                    event,
                    expires: self.num_attr(e, "expires")?,
                    duration_registered: self.num_attr(e, "duration-registered")?,
                    q: self.attr(e, "q")?,
                    call_id: self.attr(e, "callid")?,
                    cseq: self.num_attr(e, "cseq")?,
                    uri: String::new(),
                    display_name: None,
                    params: Vec::new(),
                });
            }
            (4, b"uri") if self.contact.is_some() => {
                self.text = Some((TextTarget::Uri, self.depth, String::new()));
            }
            (4, b"display-name") if self.contact.is_some() => {
                self.text = Some((TextTarget::DisplayName, self.depth, String::new()));
            }
            (4, b"unknown-param") if self.contact.is_some() => {
                let n = self.contact.as_ref().map_or(0, |c| c.params.len());
                if n >= self.limits.max_params {
                    return Err(Self::limit("max_params", self.limits.max_params));
                }
                self.param_name = Some(self.req_attr(e, "name")?);
                self.text = Some((TextTarget::Param, self.depth, String::new()));
            }
            _ => {} // extension element: skipped
        }
        Ok(())
    }

    fn end(&mut self) -> Result<(), Error> {
        let depth = self.depth;
        if let Some((target, d, _)) = &self.text
            && *d == depth
        {
            let target = *target;
            let Some((_, _, mut value)) = self.text.take() else {
                return Ok(());
            };
            // Surrounding white space is layout, not value (checked as a whole so that
            // entity references inside the value keep their neighbours' spaces).
            let trimmed = value.trim();
            if trimmed.len() != value.len() {
                value = trimmed.to_owned();
            }
            if let Some(c) = &mut self.contact {
                match target {
                    TextTarget::Uri => c.uri = value,
                    TextTarget::DisplayName => c.display_name = Some(value),
                    TextTarget::Param => {
                        if let Some(n) = self.param_name.take() {
                            c.params.push((n, value));
                        }
                    }
                }
            }
        } else if depth == 3
            && let Some(c) = self.contact.take()
        {
            if c.uri.is_empty() {
                return Err(self.err(XmlErrorKind::MissingElement("uri")));
            }
            if let Some(r) = &mut self.reg {
                r.contacts.push(c);
            }
        } else if depth == 2
            && let Some(r) = self.reg.take()
            && let Some(d) = &mut self.doc
        {
            d.registrations.push(r);
        }
        self.depth = self.depth.saturating_sub(1);
        Ok(())
    }

    fn run(mut self) -> Result<RegInfo, Error> {
        loop {
            let ev = self
                .reader
                .read_event()
                .map_err(|_| self.err(XmlErrorKind::Syntax))?;
            match ev {
                XmlEvent::Start(e) => self.start(&e)?,
                XmlEvent::End(_) => self.end()?,
                XmlEvent::Empty(e) => {
                    // not produced with expand_empty_elements, handled for safety
                    self.start(&e)?;
                    self.end()?;
                }
                XmlEvent::Text(t) => {
                    let s = t.decode().map_err(|_| self.err(XmlErrorKind::Encoding))?;
                    self.push_text(&s)?;
                }
                XmlEvent::CData(t) => {
                    let s = t.decode().map_err(|_| self.err(XmlErrorKind::Encoding))?;
                    self.push_text(&s)?;
                }
                XmlEvent::GeneralRef(r) => {
                    let c = match r.resolve_char_ref() {
                        Ok(Some(c)) => c,
                        Ok(None) => match r.as_ref() {
                            b"lt" => '<',
                            b"gt" => '>',
                            b"amp" => '&',
                            b"quot" => '"',
                            b"apos" => '\'',
                            _ => return Err(self.err(XmlErrorKind::UnknownEntity)),
                        },
                        Err(_) => return Err(self.err(XmlErrorKind::UnknownEntity)),
                    };
                    let mut b = [0u8; 4];
                    self.push_text(c.encode_utf8(&mut b))?;
                }
                XmlEvent::DocType(_) => return Err(self.err(XmlErrorKind::DocType)),
                XmlEvent::Decl(_) | XmlEvent::PI(_) | XmlEvent::Comment(_) => {}
                XmlEvent::Eof => break,
            }
        }
        if self.depth != 0 {
            return Err(self.err(XmlErrorKind::Syntax));
        }
        let err = self.err(XmlErrorKind::NotReginfo);
        self.doc.ok_or(err)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample(state: DocState) -> RegInfo {
        RegInfo {
            version: 7,
            state,
            registrations: vec![RegistrationInfo {
                aor: "sip:alice@example.com".into(),
                id: "r1".into(),
                state: RegistrationState::Active,
                contacts: vec![ContactInfo {
                    id: "c1".into(),
                    state: ContactState::Active,
                    event: ContactEvent::Registered,
                    expires: Some(3600),
                    duration_registered: Some(0),
                    q: Some("0.5".into()),
                    call_id: Some("a<b>&\"'".into()),
                    cseq: Some(3),
                    uri: "sip:alice@192.0.2.1;transport=tls".into(),
                    display_name: Some("Alice & Co".into()),
                    params: vec![
                        (
                            "+sip.instance".into(),
                            "\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\"".into(),
                        ),
                        ("reg-id".into(), "1".into()),
                    ],
                }],
            }],
        }
    }

    #[test]
    fn roundtrip_full_and_partial() {
        for st in [DocState::Full, DocState::Partial] {
            let d = sample(st);
            let xml = d.encode();
            assert_eq!(RegInfo::parse(xml.as_bytes()).unwrap(), d, "{xml}");
        }
    }

    #[test]
    fn parses_rfc3680_example() {
        // RFC 3680 §6 example (trimmed to one registration).
        let xml = br#"<?xml version="1.0"?>
 <reginfo xmlns="urn:ietf:params:xml:ns:reginfo"
          version="0" state="full">
   <registration aor="sip:user@example.com" id="as9"
                 state="active">
     <contact id="76" state="active" event="registered"
              duration-registered="7322"
              q="0.8">
              <uri>sip:user@pc887.example.com</uri>
     </contact>
     <contact id="77" state="terminated" event="expired"
              duration-registered="3600"
              q="0.5">
              <uri>sip:user@university.edu</uri>
     </contact>
   </registration>
 </reginfo>"#;
        let d = RegInfo::parse(xml).unwrap();
        assert_eq!(d.version, 0);
        assert_eq!(d.state, DocState::Full);
        let r = &d.registrations[0];
        assert_eq!(r.aor, "sip:user@example.com");
        assert_eq!(r.contacts.len(), 2);
        assert_eq!(r.contacts[1].event, ContactEvent::Expired);
        assert_eq!(r.contacts[1].state, ContactState::Terminated);
        assert_eq!(r.contacts[0].uri, "sip:user@pc887.example.com");
        assert_eq!(r.contacts[0].duration_registered, Some(7322));
    }

    #[test]
    fn refuses_doctype_and_unknown_entities() {
        let xxe = br#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><reginfo version="0" state="full"/>"#;
        assert!(matches!(
            RegInfo::parse(xxe),
            Err(Error::Xml {
                kind: XmlErrorKind::DocType,
                ..
            })
        ));
        let ent = br#"<reginfo version="0" state="full"><registration aor="a" id="1" state="active"><contact id="1" state="active" event="registered"><uri>&x;</uri></contact></registration></reginfo>"#;
        assert!(matches!(
            RegInfo::parse(ent),
            Err(Error::Xml {
                kind: XmlErrorKind::UnknownEntity,
                ..
            })
        ));
    }

    #[test]
    fn limits_and_malformed() {
        let mut lim = XmlLimits::default();
        let xml = sample(DocState::Full).encode();
        lim.max_size = 10;
        assert!(matches!(
            RegInfo::parse_with(xml.as_bytes(), &lim),
            Err(Error::XmlLimit {
                what: "max_size",
                ..
            })
        ));
        lim = XmlLimits {
            max_contacts: 0,
            ..XmlLimits::default()
        };
        assert!(matches!(
            RegInfo::parse_with(xml.as_bytes(), &lim),
            Err(Error::XmlLimit {
                what: "max_contacts",
                ..
            })
        ));
        let deep = "<a>".repeat(100);
        assert!(
            RegInfo::parse(format!("<reginfo version=\"1\" state=\"full\">{deep}").as_bytes())
                .is_err()
        );
        assert!(RegInfo::parse(b"<other/>").is_err());
        assert!(RegInfo::parse(b"<reginfo version=\"x\" state=\"full\"/>").is_err());
        assert!(RegInfo::parse(b"<reginfo version=\"1\" state=\"full\">").is_err());
        assert!(RegInfo::parse(b"").is_err());
        assert!(RegInfo::parse(&[0xff, 0xfe]).is_err());
    }
}
