//! A small, bounded, streaming XML reader on top of `quick-xml` (private).
//!
//! The bodies this crate reads are tiny documents; [`walk`] hands each element start, end and
//! piece of text to the body's reader, borrowed from the input, so nothing is allocated per
//! event. Safety rules for peer XML:
//! - a document type declaration (`<!DOCTYPE …>`) is refused outright, so no internal or external
//!   entity is ever defined or fetched;
//! - only the five predefined entities and character references are expanded;
//! - the size, nesting depth and element count are bounded by [`XmlLimits`]; attributes per
//!   element and namespace declarations in scope by fixed tables (32 each);
//! - attribute names must be distinct and element prefixes declared (XML Namespaces 1.0).

use std::borrow::Cow;

use quick_xml::events::{BytesStart, Event as XmlEvent};
use quick_xml::reader::Reader;

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
/// Most namespace declarations in scope at once (a fixed table: nothing is allocated).
const MAX_NS_BINDINGS: usize = 32;
/// Most attributes on one element (duplicates are found in a fixed table).
const MAX_ATTRIBUTES: usize = 32;

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
    /// (well-formed, no duplicates, only predefined entities); read them with [`attr`].
    Start {
        /// Nesting depth (root 0).
        depth: usize,
        /// Namespace URI, if the element is in one (namespaces this crate does not know are
        /// all [`OTHER_NS`]).
        ns: Option<&'static str>,
        /// Local name.
        name: &'s [u8],
        /// Its attributes (namespace declarations left out).
        attrs: AttrList<'s, 'e>,
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

/// `piece`, when it is a sub-slice of the (UTF-8) document `doc`, cut out of `doc` without a
/// second UTF-8 check (the reader cuts only at ASCII markup, so the bounds are char
/// boundaries; `str::get` checks that in constant time).
fn doc_slice<'d>(doc: &'d str, piece: &[u8]) -> Option<&'d str> {
    let start = (piece.as_ptr() as usize).wrapping_sub(doc.as_ptr() as usize);
    doc.get(start..start.wrapping_add(piece.len()))
        .filter(|s| s.as_ptr() == piece.as_ptr())
}

/// `piece` as text: a sub-slice of `doc` without a second UTF-8 check, anything else checked.
fn piece_str<'a>(doc: &'a str, piece: &'a [u8]) -> Option<&'a str> {
    doc_slice(doc, piece).or_else(|| std::str::from_utf8(piece).ok())
}

/// Whether an attribute key declares a namespace (`xmlns` or `xmlns:p`).
fn is_xmlns(key: &[u8]) -> bool {
    key == b"xmlns" || key.starts_with(b"xmlns:")
}

/// The attributes of one start tag, as the walk checked them: local names and raw values,
/// borrowed from the document, in a fixed table of `N` (nothing is allocated per element).
struct Attrs<'d, const N: usize> {
    items: [(&'d [u8], &'d str); N],
    len: usize,
}

impl<'d, const N: usize> Attrs<'d, N> {
    fn new() -> Self {
        Self {
            items: [(b"", ""); N],
            len: 0,
        }
    }

    /// The attributes held, as a step shows them.
    fn list(&self) -> AttrList<'_, 'd> {
        AttrList(self.items.get(..self.len).unwrap_or_default())
    }
}

/// The attributes of one start tag in a [`Step::Start`].
#[derive(Clone, Copy)]
pub(crate) struct AttrList<'a, 'd>(&'a [(&'d [u8], &'d str)]);

impl<'d> AttrList<'_, 'd> {
    /// The unescaped value of the attribute with local name `name`.
    pub(crate) fn get(&self, name: &[u8]) -> Option<Cow<'d, str>> {
        let (_, raw) = self.0.iter().find(|(k, _)| *k == name)?;
        if raw.contains('&') {
            quick_xml::escape::unescape(raw).ok()
        } else {
            Some(Cow::Borrowed(*raw))
        }
    }
}

/// A namespace binding in scope: prefix (empty for the default namespace), the namespace
/// (`None` when `xmlns=""` undeclares the default) and the depth of the declaring element.
#[derive(Clone, Copy)]
struct Binding<'d> {
    prefix: &'d [u8],
    ns: Option<&'static str>,
    depth: usize,
}

/// The namespaces in scope, in a fixed table of `N` (XML Namespaces 1.0 §6).
struct Scope<'d, const N: usize> {
    bindings: [Binding<'d>; N],
    len: usize,
}

impl<'d, const N: usize> Scope<'d, N> {
    fn new() -> Self {
        Self {
            bindings: [Binding {
                prefix: b"",
                ns: None,
                depth: 0,
            }; N],
            len: 0,
        }
    }

    fn push(&mut self, kind: BodyKind, b: Binding<'d>) -> Result<(), Error> {
        let slot = self.bindings.get_mut(self.len).ok_or(Error::BodyLimit {
            kind,
            what: "namespace declarations in scope",
            limit: N,
        })?;
        *slot = b;
        self.len += 1;
        Ok(())
    }

    /// Drops the bindings declared at `depth` or deeper.
    fn pop_to(&mut self, depth: usize) {
        while self.len > 0
            && self
                .bindings
                .get(self.len - 1)
                .is_some_and(|b| b.depth >= depth)
        {
            self.len -= 1;
        }
    }

    /// The namespace of `prefix`: `Err` when it is not declared.
    fn resolve(&self, prefix: &[u8]) -> Result<Option<&'static str>, ()> {
        let in_scope = self.bindings.get(..self.len).unwrap_or_default();
        match in_scope.iter().rev().find(|b| b.prefix == prefix) {
            Some(b) => Ok(b.ns),
            None if prefix.is_empty() => Ok(None),
            // The `xml` prefix is bound by definition (XML Namespaces 1.0 §3).
            None if prefix == b"xml" => Ok(Some(OTHER_NS)),
            None => Err(()),
        }
    }
}

/// The namespace a declared URI stands for here.
fn known_ns(uri: &[u8]) -> &'static str {
    KNOWN_NS
        .iter()
        .find(|k| k.as_bytes() == uri)
        .copied()
        .unwrap_or(OTHER_NS)
}

/// Checks the attributes of a start tag (syntax, duplicates, entities) and declares its
/// namespaces at `depth`.
fn start_tag<'d>(
    kind: BodyKind,
    offset: u64,
    doc: &'d str,
    start: &BytesStart<'d>,
    depth: usize,
    scope: &mut Scope<'d, MAX_NS_BINDINGS>,
    attrs: &mut Attrs<'d, MAX_ATTRIBUTES>,
) -> Result<(), Error> {
    attrs.len = 0;
    if start.attributes_raw().iter().all(u8::is_ascii_whitespace) {
        // Most elements of these bodies carry no attribute at all.
        return Ok(());
    }
    let mut keys: [&[u8]; MAX_ATTRIBUTES] = [b""; MAX_ATTRIBUTES];
    for (count, attr) in start.attributes().with_checks(false).enumerate() {
        let attr = attr.map_err(|e| malformed(kind, offset, format!("an attribute ({e})")))?;
        // Key and value borrow the tag, which borrows the document: take them from `doc` so
        // that they can outlive this tag.
        let key = doc_slice(doc, attr.key.into_inner())
            .ok_or_else(|| malformed(kind, offset, "an attribute name"))?
            .as_bytes();
        let seen = keys.get(..count).unwrap_or_default();
        if seen.contains(&key) {
            return Err(malformed(kind, offset, "attributes with distinct names"));
        }
        let slot = keys.get_mut(count).ok_or(Error::BodyLimit {
            kind,
            what: "attributes per element",
            limit: MAX_ATTRIBUTES,
        })?;
        *slot = key;
        let raw = doc_slice(doc, &attr.value)
            .ok_or_else(|| malformed(kind, offset, "a UTF-8 attribute value"))?;
        let value = if raw.contains('&') {
            quick_xml::escape::unescape(raw).map_err(|_| {
                malformed(kind, offset, "a predefined entity or character reference")
            })?
        } else {
            Cow::Borrowed(raw)
        };
        if is_xmlns(key) {
            let prefix = key.get(6..).unwrap_or_default();
            let ns = match (prefix.is_empty(), value.is_empty()) {
                (true, true) => None,
                (false, true) => {
                    return Err(malformed(kind, offset, "a non-empty namespace URI"));
                }
                (_, false) => Some(known_ns(value.as_bytes())),
            };
            scope.push(kind, Binding { prefix, ns, depth })?;
        } else if let Some(item) = attrs.items.get_mut(attrs.len) {
            // `keys` bounds the count, so every attribute has its slot.
            *item = (split_qname(key).1, raw);
            attrs.len += 1;
        }
    }
    Ok(())
}

/// Walks `input` with the safety rules and limits of this module, calling `visit` for each
/// element start, end and piece of text. Character data outside the root (other than
/// whitespace), a second root, a DOCTYPE, undeclared prefixes and undefined entities are errors.
///
/// quick-xml's plain [`Reader`] over the borrowed input does the tokenising; namespace prefixes
/// are resolved here against a fixed table of the declarations in scope, only as far as the
/// bodies need (which of the crate's namespaces, if any, an element is in).
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
    let doc = std::str::from_utf8(input).map_err(|e| Error::MalformedBody {
        kind,
        offset: e.valid_up_to(),
        what: "UTF-8 document".into(),
    })?;
    let mut reader = Reader::from_str(doc);
    reader.config_mut().check_end_names = true;
    reader.config_mut().expand_empty_elements = false;
    let mut scope = Scope::<MAX_NS_BINDINGS>::new();
    let mut attrs = Attrs::<MAX_ATTRIBUTES>::new();
    let mut depth = 0usize;
    let mut root_seen = false;
    let mut elements = 0usize;
    loop {
        let offset = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| malformed(kind, offset, format!("well-formed XML ({e})")))?;
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
                let open = matches!(event, XmlEvent::Start(_));
                if open && depth >= limits.max_depth {
                    return Err(Error::BodyLimit {
                        kind,
                        what: "nesting depth",
                        limit: limits.max_depth,
                    });
                }
                start_tag(kind, offset, doc, start, depth, &mut scope, &mut attrs)?;
                let qname = start.name().into_inner();
                let (prefix, name) = split_qname(qname);
                let ns = scope
                    .resolve(prefix)
                    .map_err(|()| malformed(kind, offset, "a declared namespace prefix"))?;
                visit(Step::Start {
                    depth,
                    ns,
                    name,
                    attrs: attrs.list(),
                });
                if open {
                    depth += 1;
                } else {
                    scope.pop_to(depth);
                    visit(Step::End { depth });
                }
            }
            XmlEvent::End(_) => {
                let Some(d) = depth.checked_sub(1) else {
                    return Err(malformed(kind, offset, "a matching start tag"));
                };
                depth = d;
                scope.pop_to(depth);
                visit(Step::End { depth });
            }
            XmlEvent::Text(t) => {
                let s = piece_str(doc, &t).ok_or_else(|| malformed(kind, offset, "UTF-8 text"))?;
                text_step(kind, offset, depth, s, &mut visit)?;
            }
            XmlEvent::CData(t) => {
                let s = piece_str(doc, &t).ok_or_else(|| malformed(kind, offset, "UTF-8 CDATA"))?;
                text_step(kind, offset, depth, s, &mut visit)?;
            }
            XmlEvent::GeneralRef(r) => {
                let mut buf = [0u8; 4];
                let resolved: Option<&str> = if r.is_char_ref() {
                    r.resolve_char_ref()
                        .ok()
                        .flatten()
                        .map(|c| &*c.encode_utf8(&mut buf))
                } else {
                    piece_str(doc, &r).and_then(quick_xml::escape::resolve_predefined_entity)
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

/// The XML declarations [`walk_simple`] accepts (at the very start of the document only).
const SIMPLE_DECLS: [&[u8]; 4] = [
    b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
    b"<?xml version=\"1.0\" encoding=\"utf-8\"?>",
    b"<?xml version=\"1.0\"?>",
    b"<?xml version='1.0' encoding='UTF-8'?>",
];
/// Deepest nesting [`walk_simple`] tracks (deeper documents go to [`walk`]).
const SIMPLE_MAX_DEPTH: usize = 16;
/// Most attributes per element [`walk_simple`] takes (more go to [`walk`]).
const SIMPLE_MAX_ATTRIBUTES: usize = 8;
/// Most namespace declarations in scope [`walk_simple`] takes (more go to [`walk`]).
const SIMPLE_MAX_BINDINGS: usize = 8;

fn is_xml_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn skip_ws(b: &[u8], mut pos: usize) -> usize {
    while b.get(pos).copied().is_some_and(is_xml_ws) {
        pos += 1;
    }
    pos
}

/// Bytes of a plain name for [`walk_simple`]: 1 = may start a name, 2 = may continue one.
const NAME_CHARS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        table[c] = if b.is_ascii_alphabetic() || b == b'_' {
            3
        } else if b.is_ascii_digit() || b == b'.' || b == b'-' {
            2
        } else {
            0
        };
        c += 1;
    }
    table
};

/// Bytes that end a run of text or an attribute value in [`walk_simple`]: `<` (1), `&` and
/// `>` (2, outside the subset), quotes (4).
const STOPS: [u8; 256] = {
    let mut table = [0u8; 256];
    table[b'<' as usize] = 1;
    table[b'&' as usize] = 2;
    table[b'>' as usize] = 2;
    table[b'"' as usize] = 4;
    table[b'\'' as usize] = 4;
    table
};

/// The first position at or after `pos` whose byte is in `class` of [`STOPS`] (the end of
/// `b` when none): a plain loop, cheaper than a vector search on these short runs.
fn find_stop(b: &[u8], pos: usize, class: u8) -> usize {
    let rest = b.get(pos..).unwrap_or_default();
    pos + rest
        .iter()
        .position(|&c| STOPS[usize::from(c)] & class != 0)
        .unwrap_or(rest.len())
}

/// The end of a plain name starting at `pos`: ASCII letters, digits, `_ . -`, at most one
/// `:` inside, starting with a letter or `_`. `None` for anything else.
fn scan_name(b: &[u8], pos: usize) -> Option<usize> {
    let class = |i: usize| b.get(i).map_or(0, |&c| NAME_CHARS[usize::from(c)]);
    // The end of the run of name bytes from `from` (a slice walk: no bounds check per byte).
    let run_end = |from: usize| {
        let rest = b.get(from..).unwrap_or_default();
        from + rest
            .iter()
            .position(|&c| NAME_CHARS[usize::from(c)] == 0)
            .unwrap_or(rest.len())
    };
    if class(pos) & 1 == 0 {
        return None;
    }
    let mut end = run_end(pos + 1);
    if b.get(end) == Some(&b':') {
        // One prefix: the local part must follow.
        if class(end + 1) & 1 == 0 {
            return None;
        }
        end = run_end(end + 2);
    }
    Some(end)
}

/// The fast path of [`walk`]: the same [`Step`]s, for documents in a plain subset of XML
/// (what this crate and usual clients write): an optional standard XML declaration at the
/// start, elements with plain names and `name="value"` attributes, text without `&` or `>`,
/// no comment, CDATA section, processing instruction or DOCTYPE, within the limits.
///
/// Returns `false` as soon as the document leaves that subset, possibly after some steps were
/// visited: the caller then starts over with [`walk`], which also reports every error (so
/// documents are accepted and read exactly as [`walk`] does; tests check the two agree).
/// Nothing is allocated: the input is scanned byte by byte in one pass.
pub(crate) fn walk_simple<F>(input: &[u8], limits: &XmlLimits, mut visit: F) -> bool
where
    F: FnMut(Step<'_, '_>),
{
    if input.len() > limits.max_bytes {
        return false;
    }
    let Ok(doc) = std::str::from_utf8(input) else {
        return false;
    };
    let b = doc.as_bytes();
    let mut pos = SIMPLE_DECLS
        .iter()
        .find(|d| b.starts_with(d))
        .map_or(0, |d| d.len());
    let mut scope = Scope::<SIMPLE_MAX_BINDINGS>::new();
    let mut attrs = Attrs::<SIMPLE_MAX_ATTRIBUTES>::new();
    let mut open: [&[u8]; SIMPLE_MAX_DEPTH] = [b""; SIMPLE_MAX_DEPTH];
    let mut depth = 0usize;
    let mut root_seen = false;
    let mut elements = 0usize;
    loop {
        let end = find_stop(b, pos, 3);
        if b.get(end).is_some_and(|&c| c != b'<') {
            // `&` or `>` in text.
            return false;
        }
        let next = (end < b.len()).then_some(end);
        if end > pos {
            let Some(text) = doc.get(pos..end) else {
                return false;
            };
            match depth.checked_sub(1) {
                Some(d) => visit(Step::Text { depth: d, text }),
                None if text.bytes().all(is_xml_ws) => {}
                None => return false,
            }
        }
        if next.is_none() {
            break;
        }
        pos = end + 1;
        match b.get(pos) {
            Some(b'/') => {
                // The end tag must name the open element exactly: `</name>`.
                let Some(d) = depth.checked_sub(1) else {
                    return false;
                };
                let name = open.get(d).copied().unwrap_or_default();
                let name_end = pos + 1 + name.len();
                if b.get(pos + 1..name_end) != Some(name) || b.get(name_end) != Some(&b'>') {
                    return false;
                }
                depth = d;
                scope.pop_to(depth);
                visit(Step::End { depth });
                pos = name_end + 1;
            }
            Some(b'!' | b'?') | None => return false,
            Some(_) => {
                elements += 1;
                if elements > limits.max_elements || (depth == 0 && root_seen) {
                    return false;
                }
                root_seen = true;
                let Some(name_end) = scan_name(b, pos) else {
                    return false;
                };
                let qname = b.get(pos..name_end).unwrap_or_default();
                let Some((after, is_open)) =
                    simple_attrs(doc, name_end, depth, &mut scope, &mut attrs)
                else {
                    return false;
                };
                if is_open && (depth >= limits.max_depth || depth >= SIMPLE_MAX_DEPTH) {
                    return false;
                }
                let (prefix, name) = split_qname(qname);
                let Ok(ns) = scope.resolve(prefix) else {
                    return false;
                };
                visit(Step::Start {
                    depth,
                    ns,
                    name,
                    attrs: attrs.list(),
                });
                if is_open {
                    if let Some(slot) = open.get_mut(depth) {
                        *slot = qname;
                    }
                    depth += 1;
                } else {
                    scope.pop_to(depth);
                    visit(Step::End { depth });
                }
                pos = after;
            }
        }
    }
    depth == 0 && root_seen
}

/// The attributes of a start tag for [`walk_simple`], from just after its name: the position
/// after the tag and whether it stays open (`>`) or is empty (`/>`); `None` outside the subset.
fn simple_attrs<'d>(
    doc: &'d str,
    mut pos: usize,
    depth: usize,
    scope: &mut Scope<'d, SIMPLE_MAX_BINDINGS>,
    attrs: &mut Attrs<'d, SIMPLE_MAX_ATTRIBUTES>,
) -> Option<(usize, bool)> {
    let b = doc.as_bytes();
    attrs.len = 0;
    // Most elements of these bodies carry no attribute at all.
    if b.get(pos) == Some(&b'>') {
        return Some((pos + 1, true));
    }
    let mut keys: [&[u8]; SIMPLE_MAX_ATTRIBUTES] = [b""; SIMPLE_MAX_ATTRIBUTES];
    let mut count = 0usize;
    loop {
        let ws = skip_ws(b, pos);
        match b.get(ws) {
            Some(b'>') => return Some((ws + 1, true)),
            Some(b'/') if b.get(ws + 1) == Some(&b'>') => return Some((ws + 2, false)),
            Some(_) if ws > pos => {}
            _ => return None,
        }
        let key_end = scan_name(b, ws)?;
        let key = b.get(ws..key_end)?;
        let quote = *b.get(key_end + 1)?;
        if b.get(key_end) != Some(&b'=') || !matches!(quote, b'"' | b'\'') {
            return None;
        }
        let value_start = key_end + 2;
        let value_end = find_stop(b, value_start, 7);
        // The value must end at its own quote, with no markup or reference inside.
        if b.get(value_end) != Some(&quote) || keys.get(..count)?.contains(&key) {
            return None;
        }
        let value_len = value_end - value_start;
        let value = doc.get(value_start..value_end)?;
        *keys.get_mut(count)? = key;
        count += 1;
        if is_xmlns(key) {
            let prefix = key.get(6..).unwrap_or_default();
            let ns = match (prefix.is_empty(), value.is_empty()) {
                (true, true) => None,
                (false, true) => return None,
                (_, false) => Some(known_ns(value.as_bytes())),
            };
            scope
                .push(BodyKind::McpttInfo, Binding { prefix, ns, depth })
                .ok()?;
        } else {
            *attrs.items.get_mut(attrs.len)? = (split_qname(key).1, value);
            attrs.len += 1;
        }
        pos = value_start + value_len + 1;
    }
}

/// [`walk_simple`] when `simple`, else [`walk`]: `Ok(false)` when the simple walk gave up.
///
/// # Errors
/// As [`walk`] (only when not `simple`).
pub(crate) fn walk_either<F>(
    kind: BodyKind,
    input: &[u8],
    limits: &XmlLimits,
    simple: bool,
    visit: F,
) -> Result<bool, Error>
where
    F: FnMut(Step<'_, '_>),
{
    if simple {
        Ok(walk_simple(input, limits, visit))
    } else {
        walk(kind, input, limits, visit).map(|()| true)
    }
}

/// The fastest path of the body readers: a document matched against the exact text this
/// crate's encoders write (the "canonical form"), literal runs compared as slices and the
/// holes (element text, attribute values) cut out between them. Holes take printable ASCII,
/// space, and (in element text) tab and line feed; markup characters (`<`, `>`, `&`, and in
/// attribute values the quote, tab and line feed) make the match fail, as does anything else
/// unexpected. A reader that fails here goes on to [`walk_simple`] / [`walk`], which give the
/// same result for every document the template accepts (tests check it).
pub(crate) struct Template<'d> {
    /// The document, read as UTF-8 once (a document that is not cannot match: the literals
    /// and holes are ASCII), so that holes are handed out without a check each.
    doc: &'d str,
    pos: usize,
}

/// Bytes a [`Template`] hole may hold: 1 in element text, 2 in an attribute value.
const HOLE_CHARS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut c = 0x20;
    while c < 0x7f {
        table[c] = 3;
        c += 1;
    }
    table[b'\t' as usize] = 1;
    table[b'\n' as usize] = 1;
    table[b'<' as usize] = 0;
    table[b'>' as usize] = 0;
    table[b'&' as usize] = 0;
    table[b'"' as usize] = 1;
    table
};

impl<'d> Template<'d> {
    /// A template match over `doc`, `None` beyond `limits.max_bytes` or when the limits are
    /// tighter than the canonical documents need (depth 4): the full walk reports those.
    pub(crate) fn new(doc: &'d [u8], limits: &XmlLimits) -> Option<Self> {
        if doc.len() > limits.max_bytes || limits.max_depth < 4 {
            return None;
        }
        let doc = std::str::from_utf8(doc).ok()?;
        Some(Self { doc, pos: 0 })
    }

    /// Consumes `lit` when the document continues with it.
    pub(crate) fn eat(&mut self, lit: &[u8]) -> bool {
        let end = self.pos + lit.len();
        if self.doc.as_bytes().get(self.pos..end) == Some(lit) {
            self.pos = end;
            true
        } else {
            false
        }
    }

    /// Consumes `lit`; `None` when the document does not continue with it.
    pub(crate) fn lit(&mut self, lit: &[u8]) -> Option<()> {
        self.eat(lit).then_some(())
    }

    /// Element text up to the next `<` (not consumed).
    pub(crate) fn text(&mut self) -> Option<&'d str> {
        self.hole(1, b'<')
    }

    /// An attribute value up to the closing `"` (not consumed).
    pub(crate) fn attr(&mut self) -> Option<&'d str> {
        self.hole(2, b'"')
    }

    fn hole(&mut self, class: u8, stop: u8) -> Option<&'d str> {
        let rest = self.doc.as_bytes().get(self.pos..)?;
        let len = class_run(&HOLE_CHARS, rest, 0, class);
        // The hole ends at the stop byte (not at the end of the document).
        if rest.get(len) != Some(&stop) {
            return None;
        }
        // Printable ASCII between ASCII bytes: on char boundaries.
        let hole = self.doc.get(self.pos..self.pos + len)?;
        self.pos += len;
        Some(hole)
    }

    /// Whether the whole document has been matched.
    pub(crate) fn done(&self) -> bool {
        self.pos == self.doc.len()
    }
}

/// The end of the run of bytes from `i` in `b` whose entry in `table` has a bit of `class`:
/// eight bytes tested at a time (one branch per eight), then byte by byte where the run ends.
pub(crate) fn class_run(table: &[u8; 256], b: &[u8], i: usize, class: u8) -> usize {
    let mut j = i;
    while let Some(chunk) = b.get(j..j + 8) {
        let all = chunk
            .iter()
            .fold(class, |all, &c| all & table[usize::from(c)]);
        if all == 0 {
            break;
        }
        j += 8;
    }
    while let Some(&c) = b.get(j) {
        if table[usize::from(c)] & class == 0 {
            break;
        }
        j += 1;
    }
    j
}

/// Prefix (empty when none) and local name of a qualified name.
fn split_qname(qname: &[u8]) -> (&[u8], &[u8]) {
    match qname.iter().position(|&b| b == b':') {
        Some(i) => (
            qname.get(..i).unwrap_or_default(),
            qname.get(i + 1..).unwrap_or_default(),
        ),
        None => (b"", qname),
    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// (depth, namespace, local name, `a` attribute) of one element start.
    type Seen = (usize, Option<&'static str>, String, Option<String>);

    /// Every element start of `doc`.
    fn starts(doc: &str) -> Result<Vec<Seen>, Error> {
        let mut out = Vec::new();
        walk(
            BodyKind::McpttInfo,
            doc.as_bytes(),
            &XmlLimits::default(),
            |step| {
                if let Step::Start {
                    depth,
                    ns,
                    name,
                    attrs,
                } = step
                {
                    out.push((
                        depth,
                        ns,
                        String::from_utf8_lossy(name).into_owned(),
                        attrs.get(b"a").map(Cow::into_owned),
                    ));
                }
            },
        )?;
        Ok(out)
    }

    /// Every step of a walk, as text.
    fn steps(doc: &[u8], simple: bool) -> Result<(bool, Vec<String>), Error> {
        let mut out = Vec::new();
        let visit = |step: Step<'_, '_>| {
            out.push(match step {
                Step::Start {
                    depth,
                    ns,
                    name,
                    attrs,
                } => format!(
                    "start {depth} {ns:?} {} {:?}",
                    String::from_utf8_lossy(name),
                    attrs
                        .0
                        .iter()
                        .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), *v))
                        .collect::<Vec<_>>()
                ),
                Step::End { depth } => format!("end {depth}"),
                Step::Text { depth, text } => format!("text {depth} {text:?}"),
            });
        };
        let done = walk_either(
            BodyKind::McpttInfo,
            doc,
            &XmlLimits::default(),
            simple,
            visit,
        )?;
        Ok((done, out))
    }

    /// Pieces of documents, plain and not: names, prefixes, namespaces, attributes (good,
    /// duplicated, spaced, unquoted), entities, comments, CDATA, PIs, DOCTYPE, stray markup.
    const PIECES: [&str; 34] = [
        "<a>",
        "</a>",
        "<m:b xmlns:m=\"urn:3gpp:ns:mcpttInfo:1.0\">",
        "</m:b>",
        "<c/>",
        "<c />",
        " ",
        "\r\n",
        "tok.en-_1",
        "é€",
        "&amp;",
        "&#65;",
        "<!-- c -->",
        "<![CDATA[x<y]]>",
        "<?pi x?>",
        "<?xml version=\"1.0\"?>",
        "<!DOCTYPE a>",
        "<d a=\"1\" b='2'>",
        "<d a=\"1\" a=\"2\">",
        "</d>",
        "<e xmlns=\"\">",
        "</e>",
        ">",
        "]]>",
        "<x:y>",
        "</x:y>",
        "<f a = \"1\">",
        "<g\ta=\"1\"\n/>",
        "<h a=\"<\"/>",
        "<i a=\"1\"b=\"2\"/>",
        "</a >",
        "<j xml:lang=\"en\" p:q=\"1\"/>",
        "<k xmlns:p=\"\"/>",
        "<l a=\"x&amp;y\"/>",
    ];

    /// A document built from `choices`: mostly well-formed trees, with stray pieces mixed in.
    fn build(choices: &[u8]) -> String {
        let mut out = String::new();
        let mut stack: Vec<&str> = Vec::new();
        let mut it = choices.iter().copied();
        if choices.first().is_some_and(|c| c % 3 == 0) {
            out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        }
        out.push_str("<r xmlns=\"urn:3gpp:ns:mcpttInfo:1.0\">");
        stack.push("r");
        while let Some(c) = it.next() {
            match c % 8 {
                0 | 1 => {
                    let names = ["a", "m:mcpttString", "mcptt-Params", "p:x"];
                    let name = names[usize::from(it.next().unwrap_or(0)) % names.len()];
                    out.push('<');
                    out.push_str(name);
                    if name.starts_with("m:") {
                        out.push_str(" xmlns:m=\"urn:3gpp:ns:mcpttInfo:1.0\"");
                    }
                    if name.starts_with("p:") {
                        out.push_str(" xmlns:p=\"urn:oma:params:xml:ns:poc:poc-settings\"");
                    }
                    if c % 8 == 1 {
                        out.push_str(" type=\"Normal\" id='i1'");
                    }
                    out.push('>');
                    stack.push(name);
                }
                2 | 3 => {
                    if let Some(name) = stack.pop() {
                        out.push_str("</");
                        out.push_str(name);
                        out.push('>');
                    }
                }
                4 | 5 => out.push_str(" text\t"),
                6 => out.push_str("\r\n  "),
                _ => out.push_str(PIECES[usize::from(it.next().unwrap_or(0)) % PIECES.len()]),
            }
        }
        while let Some(name) = stack.pop() {
            out.push_str("</");
            out.push_str(name);
            out.push('>');
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

        /// Whatever the simple reader reads completely, the full reader accepts and reads
        /// into the same steps.
        #[test]
        fn simple_walk_agrees_with_the_full_walk(choices in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)) {
            let doc = build(&choices);
            let (done, fast) = steps(doc.as_bytes(), true).unwrap();
            if done {
                let full = steps(doc.as_bytes(), false);
                proptest::prop_assert!(full.is_ok(), "{doc}: {full:?}");
                let (_, slow) = full.unwrap();
                proptest::prop_assert_eq!(fast, slow, "{}", doc);
            }
        }

        /// Any bytes: the simple reader never reads what the full one refuses, nor reads it
        /// differently.
        #[test]
        fn simple_walk_agrees_on_any_pieces(picks in proptest::collection::vec(0usize..PIECES.len(), 0..12)) {
            let doc: String = picks.iter().map(|&i| PIECES[i]).collect();
            let (done, fast) = steps(doc.as_bytes(), true).unwrap();
            if done {
                let full = steps(doc.as_bytes(), false);
                proptest::prop_assert!(full.is_ok(), "{doc}: {full:?}");
                proptest::prop_assert_eq!(fast, full.unwrap().1, "{}", doc);
            }
        }
    }

    #[test]
    fn simple_walk_reads_the_documents_this_crate_writes() {
        use crate::body::{AnswerMode, McpttInfo, PocEntity, PocSettings};
        let info = McpttInfo {
            access_token: Some("eyJhbGciOiJFUzI1NiJ9.e30.sig".into()),
            client_id: Some("mcptt-client".into()),
            request_uri: Some("sip:mcptt-server@example.org".into()),
        }
        .encode();
        let settings = PocSettings {
            entities: vec![PocEntity {
                id: "urn:uuid:00000000-0000-0000-0000-000000000001".into(),
                answer_mode: Some(AnswerMode::Automatic),
                incoming_personal_alert_barring: Some(false),
                allow_session_participation: Some(true),
            }],
        }
        .encode();
        for doc in [info, settings] {
            let (done, fast) = steps(doc.as_bytes(), true).unwrap();
            assert!(done, "{doc}");
            assert_eq!(fast, steps(doc.as_bytes(), false).unwrap().1);
        }
        // Outside the subset: left to the full reader.
        for doc in [
            "<a>&amp;</a>",
            "<a><!-- c --></a>",
            "<!DOCTYPE a><a/>",
            " <?xml version=\"1.0\"?><a/>",
            "<a b = \"1\"/>",
            "<a></b>",
            "<a/><b/>",
            "<p:a/>",
        ] {
            assert!(!steps(doc.as_bytes(), true).unwrap().0, "{doc}");
        }
    }

    #[test]
    fn namespaces_resolve_by_scope() {
        let info = crate::body::MCPTT_INFO_NS;
        let doc = format!(
            r#"<r xmlns="{info}" xmlns:p="urn:x"><p:a a="1&amp;2"/><b xmlns=""><c/></b><d xmlns:p="{info}"><p:e/></d><p:f/></r>"#
        );
        let got = starts(&doc).unwrap();
        let ns: Vec<(usize, Option<&str>, &str)> = got
            .iter()
            .map(|(d, n, l, _)| (*d, *n, l.as_str()))
            .collect();
        assert_eq!(
            ns,
            vec![
                (0, Some(info), "r"),
                (1, Some(OTHER_NS), "a"),
                (1, None, "b"),
                (2, None, "c"),
                (1, Some(info), "d"),
                (2, Some(info), "e"),
                (1, Some(OTHER_NS), "f"),
            ]
        );
        assert_eq!(got[1].3.as_deref(), Some("1&2"));
    }

    #[test]
    fn malformed_attributes_and_prefixes_are_refused() {
        for doc in [
            r#"<r a="1" a="2"/>"#,
            r#"<r p:a="1" p:a="2" xmlns:p="urn:x"/>"#,
            r#"<p:r/>"#,
            r#"<r><p:a xmlns:p="urn:x"/><p:b/></r>"#,
            r#"<r xmlns:p=""/>"#,
            r#"<r a="&bogus;"/>"#,
            r#"<r><a></b></r>"#,
        ] {
            assert!(
                matches!(starts(doc), Err(Error::MalformedBody { .. })),
                "{doc}: {:?}",
                starts(doc)
            );
        }
        let many: String = (0..=MAX_ATTRIBUTES)
            .map(|i| format!(" a{i}=\"\""))
            .collect();
        assert!(matches!(
            starts(&format!("<r{many}/>")),
            Err(Error::BodyLimit {
                what: "attributes per element",
                ..
            })
        ));
        let decls: String = (0..=MAX_NS_BINDINGS)
            .map(|i| format!(" xmlns:p{i}=\"urn:x\""))
            .collect();
        assert!(matches!(
            starts(&format!("<r{decls}/>")),
            Err(Error::BodyLimit { .. })
        ));
    }
}
