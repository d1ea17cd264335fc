//! A small, bounded, streaming XML reader on top of `quick-xml` (private).
//!
//! The bodies this crate reads are tiny documents; [`walk`] hands each element start, end and
//! piece of text to the body's reader, borrowed from the input, so nothing is allocated per
//! event. Safety rules for peer XML:
//! - a document type declaration (`<!DOCTYPE …>`) is refused outright, so no internal or external
//!   entity is ever defined or fetched;
//! - only the five predefined entities and character references are expanded;
//! - the size, nesting depth and element count are bounded by [`XmlLimits`].

use std::borrow::Cow;

use quick_xml::events::{BytesStart, Event as XmlEvent};
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

fn malformed(kind: BodyKind, offset: u64, what: impl Into<String>) -> Error {
    Error::MalformedBody {
        kind,
        offset: usize::try_from(offset).unwrap_or(usize::MAX),
        what: what.into(),
    }
}

/// One step of a document walk, borrowed from the input (nothing allocated per event).
pub(crate) enum Step<'s, 'e> {
    /// An element opens at `depth` (the root is at 0). Its attributes have been checked
    /// (well-formed, UTF-8, only predefined entities); read them with [`attr`].
    Start {
        /// Nesting depth (root 0).
        depth: usize,
        /// Namespace URI, if the element is in one (namespaces this crate does not know are
        /// all [`OTHER_NS`]).
        ns: Option<&'static str>,
        /// Local name.
        name: &'s [u8],
        /// The start tag.
        start: &'s BytesStart<'e>,
    },
    /// The element opened at `depth` closes (also sent for empty elements).
    End {
        /// Nesting depth.
        depth: usize,
    },
    /// Character data directly inside the element open at `depth` (text, CDATA, or a resolved
    /// entity or character reference; one element's text may come in several pieces).
    Text {
        /// Nesting depth of the element the text is in.
        depth: usize,
        /// The text.
        text: &'s str,
    },
}

/// The unescaped value of the attribute with local name `name` of a start tag that
/// [`walk`] has already checked.
pub(crate) fn attr<'a>(start: &'a BytesStart<'_>, name: &[u8]) -> Option<Cow<'a, str>> {
    // Already checked by `walk` (including duplicates), so the lookup skips the checks.
    start.attributes().with_checks(false).find_map(|a| {
        let a = a.ok()?;
        if a.key.local_name().as_ref() != name
            || a.key.as_ref() == b"xmlns"
            || a.key.prefix().is_some_and(|p| p.as_ref() == b"xmlns")
        {
            return None;
        }
        match a.value {
            Cow::Borrowed(raw) => {
                let raw = std::str::from_utf8(raw).ok()?;
                quick_xml::escape::unescape(raw).ok()
            }
            Cow::Owned(raw) => {
                let raw = String::from_utf8(raw).ok()?;
                quick_xml::escape::unescape(&raw)
                    .ok()
                    .map(|v| Cow::Owned(v.into_owned()))
            }
        }
    })
}

/// Walks `input` with the safety rules and limits of this module, calling `visit` for each
/// element start, end and piece of text. Character data outside the root (other than
/// whitespace), a second root, a DOCTYPE, undeclared prefixes and undefined entities are errors.
pub(crate) fn walk<F>(
    kind: BodyKind,
    input: &[u8],
    limits: &XmlLimits,
    mut visit: F,
) -> Result<(), Error>
where
    F: FnMut(Step<'_, '_>),
{
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
    let mut depth = 0usize;
    let mut root_seen = false;
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
                if depth == 0 && root_seen {
                    return Err(malformed(kind, offset, "a single root element"));
                }
                root_seen = true;
                // Names and attribute values are slices of the input, which is known to be
                // UTF-8 and is cut only at ASCII markup: no per-name UTF-8 check is needed.
                let name = start.local_name().into_inner();
                for attr in start.attributes() {
                    let attr =
                        attr.map_err(|e| malformed(kind, offset, format!("an attribute ({e})")))?;
                    let key = attr.key;
                    if key.as_ref() == b"xmlns"
                        || key.prefix().is_some_and(|p| p.as_ref() == b"xmlns")
                    {
                        continue;
                    }
                    if attr.value.contains(&b'&') {
                        let raw = std::str::from_utf8(&attr.value)
                            .map_err(|_| malformed(kind, offset, "UTF-8 attribute value"))?;
                        quick_xml::escape::unescape(raw).map_err(|_| {
                            malformed(kind, offset, "a predefined entity or character reference")
                        })?;
                    }
                }
                let open = matches!(event, XmlEvent::Start(_));
                if open && depth >= limits.max_depth {
                    return Err(Error::BodyLimit {
                        kind,
                        what: "nesting depth",
                        limit: limits.max_depth,
                    });
                }
                visit(Step::Start {
                    depth,
                    ns,
                    name,
                    start,
                });
                if open {
                    depth += 1;
                } else {
                    visit(Step::End { depth });
                }
            }
            XmlEvent::End(_) => {
                let Some(d) = depth.checked_sub(1) else {
                    return Err(malformed(kind, offset, "a matching start tag"));
                };
                depth = d;
                visit(Step::End { depth });
            }
            XmlEvent::Text(t) => {
                let s = t
                    .decode()
                    .map_err(|_| malformed(kind, offset, "UTF-8 text"))?;
                text_step(kind, offset, depth, &s, &mut visit)?;
            }
            XmlEvent::CData(t) => {
                let s = t
                    .decode()
                    .map_err(|_| malformed(kind, offset, "UTF-8 CDATA"))?;
                text_step(kind, offset, depth, &s, &mut visit)?;
            }
            XmlEvent::GeneralRef(r) => {
                let mut buf = [0u8; 4];
                let resolved: Option<&str> = if r.is_char_ref() {
                    r.resolve_char_ref()
                        .ok()
                        .flatten()
                        .map(|c| &*c.encode_utf8(&mut buf))
                } else {
                    r.decode()
                        .ok()
                        .and_then(|name| quick_xml::escape::resolve_predefined_entity(&name))
                };
                let Some(s) = resolved else {
                    return Err(malformed(
                        kind,
                        offset,
                        "a predefined entity or character reference",
                    ));
                };
                text_step(kind, offset, depth, s, &mut visit)?;
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
    if depth != 0 {
        return Err(malformed(kind, input.len() as u64, "closing tags"));
    }
    if !root_seen {
        return Err(malformed(kind, 0, "a root element"));
    }
    Ok(())
}

fn text_step<F>(
    kind: BodyKind,
    offset: u64,
    depth: usize,
    s: &str,
    visit: &mut F,
) -> Result<(), Error>
where
    F: FnMut(Step<'_, '_>),
{
    match depth.checked_sub(1) {
        Some(depth) => {
            visit(Step::Text { depth, text: s });
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
pub(crate) fn escape(s: &str) -> Cow<'_, str> {
    quick_xml::escape::escape(s)
}
