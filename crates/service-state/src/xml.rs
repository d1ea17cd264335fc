//! A small, bounded XML tree reader on top of `quick-xml` (private).
//!
//! The bodies this crate reads are tiny documents. Reading them into a small owned tree keeps the
//! element-by-element rules of each body simple. Safety rules for peer XML:
//! - a document type declaration (`<!DOCTYPE …>`) is refused outright, so no internal or external
//!   entity is ever defined or fetched;
//! - only the five predefined entities and character references are expanded;
//! - the size, nesting depth and element count are bounded by [`XmlLimits`].

use quick_xml::events::Event as XmlEvent;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use crate::error::{BodyKind, Error};

/// Limits applied to every XML body this crate parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XmlLimits {
    /// Largest accepted document, in bytes (default 16 KiB).
    pub max_bytes: usize,
    /// Deepest accepted element nesting (default 16).
    pub max_depth: usize,
    /// Most elements accepted in one document (default 256).
    pub max_elements: usize,
}

impl Default for XmlLimits {
    fn default() -> Self {
        Self {
            max_bytes: 16 * 1024,
            max_depth: 16,
            max_elements: 256,
        }
    }
}

/// Namespaces the bodies of this crate use.
const KNOWN_NS: [&str; 2] = [crate::body::MCPTT_INFO_NS, crate::body::POC_SETTINGS_NS];
/// Stands for every other namespace (no real namespace URI is empty).
pub(crate) const OTHER_NS: &str = "";

/// One element of a parsed document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Element {
    /// Namespace URI, if the element is in one (namespaces this crate does not know are all
    /// represented by [`OTHER_NS`], so no namespace string is allocated per element).
    pub(crate) ns: Option<&'static str>,
    /// Local name.
    pub(crate) name: String,
    /// Attributes (local name, unescaped value); namespace declarations are left out.
    pub(crate) attrs: Vec<(String, String)>,
    /// Concatenated character data directly inside the element.
    pub(crate) text: String,
    /// Child elements in document order.
    pub(crate) children: Vec<Self>,
}

impl Element {
    /// The value of the attribute with this local name.
    pub(crate) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first child with this local name in namespace `ns`.
    pub(crate) fn child(&self, ns: &str, name: &str) -> Option<&Self> {
        self.children
            .iter()
            .find(|c| c.name == name && c.ns == Some(ns))
    }

    /// Whether the element is `name` in namespace `ns`.
    pub(crate) fn is(&self, ns: &str, name: &str) -> bool {
        self.name == name && self.ns == Some(ns)
    }
}

fn malformed(kind: BodyKind, offset: u64, what: impl Into<String>) -> Error {
    Error::MalformedBody {
        kind,
        offset: usize::try_from(offset).unwrap_or(usize::MAX),
        what: what.into(),
    }
}

fn utf8(kind: BodyKind, offset: u64, bytes: &[u8]) -> Result<String, Error> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| malformed(kind, offset, "UTF-8 text"))
}

/// Parses `input` into its root element.
pub(crate) fn parse(kind: BodyKind, input: &[u8], limits: &XmlLimits) -> Result<Element, Error> {
    if input.len() > limits.max_bytes {
        return Err(Error::BodyTooLarge {
            kind,
            size: input.len(),
            limit: limits.max_bytes,
        });
    }
    let text = std::str::from_utf8(input).map_err(|e| Error::MalformedBody {
        kind,
        offset: e.valid_up_to(),
        what: "UTF-8 document".into(),
    })?;
    let mut reader = NsReader::from_str(text);
    reader.config_mut().check_end_names = true;
    reader.config_mut().expand_empty_elements = false;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut elements = 0usize;
    loop {
        let offset = reader.buffer_position();
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|e| malformed(kind, offset, format!("well-formed XML ({e})")))?;
        let ns = match ns {
            ResolveResult::Bound(ns) => Some(
                KNOWN_NS
                    .iter()
                    .find(|k| k.as_bytes() == ns.0)
                    .copied()
                    .unwrap_or(OTHER_NS),
            ),
            ResolveResult::Unbound => None,
            ResolveResult::Unknown(_) => {
                return Err(malformed(kind, offset, "a declared namespace prefix"));
            }
        };
        match event {
            XmlEvent::Start(ref start) | XmlEvent::Empty(ref start) => {
                elements += 1;
                if elements > limits.max_elements {
                    return Err(Error::BodyLimit {
                        kind,
                        what: "element count",
                        limit: limits.max_elements,
                    });
                }
                if root.is_some() {
                    return Err(malformed(kind, offset, "a single root element"));
                }
                let mut element = Element {
                    ns,
                    name: utf8(kind, offset, start.local_name().as_ref())?,
                    ..Element::default()
                };
                for attr in start.attributes() {
                    let attr =
                        attr.map_err(|e| malformed(kind, offset, format!("an attribute ({e})")))?;
                    let key = attr.key;
                    if key.as_ref() == b"xmlns"
                        || key.prefix().is_some_and(|p| p.as_ref() == b"xmlns")
                    {
                        continue;
                    }
                    let raw = std::str::from_utf8(&attr.value)
                        .map_err(|_| malformed(kind, offset, "UTF-8 attribute value"))?;
                    let value = quick_xml::escape::unescape(raw).map_err(|_| {
                        malformed(kind, offset, "a predefined entity or character reference")
                    })?;
                    element.attrs.push((
                        utf8(kind, offset, key.local_name().as_ref())?,
                        value.into_owned(),
                    ));
                }
                if matches!(event, XmlEvent::Start(_)) {
                    if stack.len() >= limits.max_depth {
                        return Err(Error::BodyLimit {
                            kind,
                            what: "nesting depth",
                            limit: limits.max_depth,
                        });
                    }
                    stack.push(element);
                } else {
                    attach(&mut stack, &mut root, element);
                }
            }
            XmlEvent::End(_) => {
                let Some(done) = stack.pop() else {
                    return Err(malformed(kind, offset, "a matching start tag"));
                };
                attach(&mut stack, &mut root, done);
            }
            XmlEvent::Text(t) => {
                let s = t
                    .decode()
                    .map_err(|_| malformed(kind, offset, "UTF-8 text"))?;
                push_text(kind, offset, &mut stack, &s)?;
            }
            XmlEvent::CData(t) => {
                let s = t
                    .decode()
                    .map_err(|_| malformed(kind, offset, "UTF-8 CDATA"))?;
                push_text(kind, offset, &mut stack, &s)?;
            }
            XmlEvent::GeneralRef(r) => {
                let resolved = if r.is_char_ref() {
                    r.resolve_char_ref().ok().flatten().map(|c| c.to_string())
                } else {
                    r.decode()
                        .ok()
                        .and_then(|name| quick_xml::escape::resolve_predefined_entity(&name))
                        .map(str::to_owned)
                };
                let Some(s) = resolved else {
                    return Err(malformed(
                        kind,
                        offset,
                        "a predefined entity or character reference",
                    ));
                };
                push_text(kind, offset, &mut stack, &s)?;
            }
            XmlEvent::DocType(_) => {
                return Err(Error::MalformedBody {
                    kind,
                    offset: usize::try_from(offset).unwrap_or(usize::MAX),
                    what: "no DOCTYPE (document type declarations are refused)".into(),
                });
            }
            XmlEvent::Decl(_) | XmlEvent::PI(_) | XmlEvent::Comment(_) => {}
            XmlEvent::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(malformed(kind, input.len() as u64, "closing tags"));
    }
    root.ok_or_else(|| malformed(kind, 0, "a root element"))
}

fn attach(stack: &mut [Element], root: &mut Option<Element>, element: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None => *root = Some(element),
    }
}

fn push_text(kind: BodyKind, offset: u64, stack: &mut [Element], s: &str) -> Result<(), Error> {
    match stack.last_mut() {
        // Leading whitespace is insignificant in every body this crate reads (values are
        // trimmed); skipping it spares an allocation per container element.
        Some(parent) if parent.text.is_empty() && s.trim().is_empty() => Ok(()),
        Some(parent) => {
            parent.text.push_str(s);
            Ok(())
        }
        None if s.trim().is_empty() => Ok(()),
        None => Err(malformed(
            kind,
            offset,
            "markup, not text, outside the root element",
        )),
    }
}

/// Escapes text for element content and attribute values.
pub(crate) fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(s)
}
