//! The ordered header index of a message.

use bytes::Bytes;
use bytestring::ByteString;

use crate::chars::{self, is_lws};
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::names::{self, HID_COUNT, Hid, KnownHeader, lookup};
use crate::span::Span;

/// One header line: where its name and value are in the buffer, and which header it is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub(crate) name: Span,
    pub(crate) value: Span,
    /// End of the raw line including its line terminator (if it had one).
    pub(crate) line_end: u32,
    pub(crate) id: Hid,
    /// The value holds no CR or LF (its line was not folded and has no lone CR): it is copied
    /// as written, without unfolding. `false` says nothing (the value may still be plain).
    pub(crate) plain: bool,
}

/// The headers of a message, in order, as an index of offsets into one shared buffer.
///
/// Names match case-insensitively and compact forms are equivalent to their long forms
/// (`get("v")` finds `Via` lines and `get("Via")` finds `v` lines). Values are returned as
/// written, trimmed of surrounding white space; a folded value keeps its inner line breaks,
/// which every typed parser of this crate reads as white space. Unknown headers are kept, in
/// order. Editing a header leaves the others byte for byte as they were.
#[derive(Clone, Default)]
pub struct Headers {
    buf: Bytes,
    /// A prefix of `buf` known to be UTF-8 (the parsed head): values inside it are read
    /// without another UTF-8 check; values after it (lines appended to a buffer whose body is
    /// not UTF-8) are checked when read.
    text: ByteString,
    entries: Vec<Entry>,
    /// Where the lines of each header are, kept with `entries`.
    index: Index,
    dirty: bool,
}

/// Reusable storage for the header index of parsed messages: the one heap allocation
/// [`Message::parse_with`](crate::Message::parse_with) makes per message (one small entry per
/// header line; the buffer itself is the caller's [`Bytes`]).
///
/// A server that parses many messages hands the storage to
/// [`Message::parse_with_storage`](crate::Message::parse_with_storage) (or
/// [`frame_parse_with_storage`](crate::frame_parse_with_storage)), which moves it into the
/// parsed message, and takes it back with
/// [`Message::into_storage`](crate::Message::into_storage) once it is done with the message;
/// the next parse then allocates nothing for its header index. Results and errors are exactly
/// those of the parse without storage.
///
/// **Bounded.** Storage whose capacity grew above [`HeaderStorage::MAX_RETAINED_LINES`]
/// header lines (one large message) is not kept: handing it back (`into_storage`, or a parse
/// that fails) frees it and leaves empty storage, so the next parse allocates the usual small
/// index again. The storage never holds message data: it is emptied whenever it is handed
/// back, and the per-message lookup index (first line of each known header) is rebuilt by
/// every parse.
///
/// ```
/// use mcptt_sip::{Bytes, HeaderStorage, Limits, Message};
///
/// let limits = Limits::default();
/// let mut storage = HeaderStorage::new();
/// for wire in [
///     &b"OPTIONS sip:a@example.com SIP/2.0\r\nCall-ID: 1\r\nContent-Length: 0\r\n\r\n"[..],
///     &b"SIP/2.0 200 OK\r\nCall-ID: 2\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"[..],
/// ] {
///     let bytes = Bytes::copy_from_slice(wire);
///     let msg = Message::parse_with_storage(bytes.clone(), &limits, &mut storage)?;
///     // the same message as a parse without storage
///     assert_eq!(msg, Message::parse_with(bytes, &limits)?);
///     assert!(msg.call_id().is_some());
///     // done with the message: its header storage serves the next parse
///     storage = msg.into_storage();
///     assert!(storage.capacity() >= 3);
/// }
/// // A failed parse leaves the storage with the caller.
/// let bad = Bytes::from_static(b"OPTIONS sip:a@example.com SIP/2.0\r\nCSeq: x\r\n\r\n");
/// assert!(Message::parse_with_storage(bad, &limits, &mut storage).is_err());
/// assert!(storage.capacity() >= 3);
/// # Ok::<(), mcptt_sip::Error>(())
/// ```
#[derive(Default)]
pub struct HeaderStorage {
    /// Always empty between parses; only its capacity is kept.
    entries: Vec<Entry>,
}

impl HeaderStorage {
    /// Storage with a capacity above this many header lines is freed rather than kept when
    /// it is handed back (about 1.5 KiB: 24 bytes per line).
    pub const MAX_RETAINED_LINES: usize = 64;

    /// The capacity a parse reserves when the storage has less: what a parse without storage
    /// allocates.
    pub(crate) const INITIAL_LINES: usize = 16;

    /// Empty storage (no allocation until a parse needs it).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Storage with room for `lines` header lines, at most
    /// [`HeaderStorage::MAX_RETAINED_LINES`].
    #[must_use]
    pub fn with_capacity(lines: usize) -> Self {
        Self {
            entries: Vec::with_capacity(lines.min(Self::MAX_RETAINED_LINES)),
        }
    }

    /// How many header lines a message can have before its parse allocates.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.entries.capacity()
    }

    /// Keep `entries` as storage: emptied, or freed when its capacity is above the bound.
    #[inline]
    pub(crate) fn from_entries(mut entries: Vec<Entry>) -> Self {
        if entries.capacity() > Self::MAX_RETAINED_LINES {
            return Self::default();
        }
        entries.clear();
        Self { entries }
    }

    /// The (empty) entry list to parse into, with room for at least the usual head; the
    /// storage is left empty.
    #[inline(always)]
    pub(crate) fn take_entries(&mut self) -> Vec<Entry> {
        if self.entries.capacity() >= Self::INITIAL_LINES {
            // (empty: every way in empties it)
            std::mem::take(&mut self.entries)
        } else {
            // what a parse without storage allocates (a smaller allocation is not worth
            // growing: it is freed)
            self.entries = Vec::new();
            Vec::with_capacity(Self::INITIAL_LINES)
        }
    }

    /// Put back the entry list of a parse that failed.
    #[inline]
    pub(crate) fn put_back(&mut self, entries: Vec<Entry>) {
        *self = Self::from_entries(entries);
    }
}

/// Where a parse takes its entry list from and where a failed parse puts it back: the
/// caller's [`HeaderStorage`], or [`Fresh`] (a new list per parse, dropped on error).
pub(crate) trait EntrySource {
    /// An empty entry list with room for the usual head.
    fn take_entries(&mut self) -> Vec<Entry>;
    /// The entry list of a parse that failed.
    fn put_back(&mut self, entries: Vec<Entry>);
}

/// A new entry list for each parse (the parse functions without storage).
pub(crate) struct Fresh;

impl EntrySource for Fresh {
    #[inline(always)]
    fn take_entries(&mut self) -> Vec<Entry> {
        Vec::with_capacity(HeaderStorage::INITIAL_LINES)
    }

    #[inline(always)]
    fn put_back(&mut self, _entries: Vec<Entry>) {}
}

impl EntrySource for HeaderStorage {
    #[inline(always)]
    fn take_entries(&mut self) -> Vec<Entry> {
        Self::take_entries(self)
    }

    #[inline(always)]
    fn put_back(&mut self, entries: Vec<Entry>) {
        Self::put_back(self, entries);
    }
}

impl std::fmt::Debug for HeaderStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderStorage")
            .field("capacity", &self.capacity())
            .finish()
    }
}

/// Per header identifier, where its first line is and whether it has more than one, so that
/// lookups by identifier do not walk the entries.
#[derive(Debug, Clone)]
pub(crate) struct Index {
    /// Entry number + 1 of the first line of each identifier (0: none; [`Index::FAR`]: at or
    /// after entry `FAR - 1`, found by a walk from there).
    first: [u8; HID_COUNT],
    /// Bit `id % 32` of word `id / 32`: the identifier has two lines or more.
    several: [u32; HID_COUNT.div_ceil(32)],
}

impl Index {
    const FAR: u8 = u8::MAX;

    fn new(entries: &[Entry]) -> Self {
        let mut index = Self {
            first: [0; HID_COUNT],
            several: [0; HID_COUNT.div_ceil(32)],
        };
        for (i, e) in entries.iter().enumerate() {
            index.note(e.id, i);
        }
        index
    }

    /// Entry number `n` is a line of `id` (entries noted in order).
    #[inline(always)]
    fn note(&mut self, id: Hid, n: usize) {
        let id = id as usize;
        match self.first.get_mut(id) {
            Some(f @ 0) => *f = u8::try_from(n + 1).unwrap_or(Self::FAR),
            Some(_) => {
                if let Some(w) = self.several.get_mut(id / 32) {
                    *w |= 1 << (id % 32);
                }
            }
            None => {}
        }
    }

    #[inline]
    fn several(&self, id: Hid) -> bool {
        let id = id as usize;
        self.several
            .get(id / 32)
            .is_some_and(|w| w >> (id % 32) & 1 == 1)
    }

    /// The entry number to start a search for the lines of `id` at (`None`: it has none).
    #[inline]
    fn start(&self, id: Hid) -> Option<usize> {
        match self.first.get(id as usize).copied().unwrap_or(0) {
            0 => None,
            f => Some(usize::from(f) - 1),
        }
    }
}

impl Default for Index {
    #[inline]
    fn default() -> Self {
        Self {
            first: [0; HID_COUNT],
            several: [0; HID_COUNT.div_ceil(32)],
        }
    }
}

/// Where the header section ended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadEnd {
    /// Offset of the body (after the empty line), or the buffer length if unterminated.
    pub(crate) body_start: usize,
    /// Whether an empty line ended the header section.
    pub(crate) terminated: bool,
    /// The first Content-Length value.
    pub(crate) content_length: Option<usize>,
}

fn header_err(id: Hid, name: &[u8], offset: usize, expected: &'static str) -> Error {
    let name = match id {
        Hid::Other => String::from_utf8_lossy(name).into_owned(),
        h => h.name().to_owned(),
    };
    Error::Header {
        name,
        offset,
        expected,
    }
}

/// Scan header lines from `pos` to the empty line (or the end of `buf`), appending entries.
///
/// The common line (`Name: value CRLF` with a known or token name right before the colon, not
/// folded) takes one straight path ([`fast_line`]; near the end of `buf`, over a zero-padded
/// copy of the line) over offsets relative to the line start: the colon is found a word (8
/// bytes) at a time and a known name is recognised from those words
/// ([`names::lookup_words`]), the line break is found a word at a time (past a value's first
/// 32 bytes, with the inlined SSE2 search), and nothing is indexed in a way peer data can
/// break. The empty line is recognised where that path gives up; every other line is read out
/// of line ([`slow_line`], which answers as before for all of them).
pub(crate) fn scan(
    buf: &[u8],
    pos: usize,
    limits: &Limits,
    entries: &mut Vec<Entry>,
) -> Result<HeadEnd> {
    scan_indexed(buf, pos, limits, entries, &mut Index::default())
}

/// One header line, offsets relative to its start.
#[derive(Clone, Copy)]
struct Line {
    /// End of the name.
    ne: usize,
    /// The value, trimmed.
    a: usize,
    b: usize,
    /// End of the line, terminator included.
    line_end: usize,
    id: Hid,
    plain: bool,
}

/// What [`slow_line`] read at a line start.
enum Step {
    /// A header line.
    Line(Line),
    /// The end of the header section: where the body starts, and whether an empty line ended
    /// the section.
    End(usize, bool),
}

/// [`scan`], noting each line in `index` as well (which must hold the lines of `entries`).
#[inline]
pub(crate) fn scan_indexed(
    buf: &[u8],
    mut pos: usize,
    limits: &Limits,
    entries: &mut Vec<Entry>,
    index: &mut Index,
) -> Result<HeadEnd> {
    let mut content_length = None;
    loop {
        if pos > limits.max_head_size {
            return Err(Error::HeadTooLarge {
                size: pos,
                limit: limits.max_head_size,
            });
        }
        let rest = buf.get(pos..).unwrap_or_default();
        let line = match fast_line(rest) {
            Some(line) => line,
            None => match rest {
                [b'\r', b'\n', ..] | [b'\n', ..] => {
                    let at = if rest.first() == Some(&b'\n') { 1 } else { 2 };
                    return Ok(HeadEnd {
                        body_start: pos + at,
                        terminated: true,
                        content_length,
                    });
                }
                _ => match short_line(rest) {
                    Some(line) => line,
                    None => match slow_line(rest, pos)? {
                        Step::Line(line) => line,
                        Step::End(at, terminated) => {
                            return Ok(HeadEnd {
                                body_start: pos + at,
                                terminated,
                                content_length,
                            });
                        }
                    },
                },
            },
        };
        if line.line_end > limits.max_line_length {
            return Err(Error::LineTooLong {
                offset: pos,
                limit: limits.max_line_length,
            });
        }
        if entries.len() >= limits.max_headers {
            return Err(Error::TooManyHeaders {
                limit: limits.max_headers,
            });
        }
        let Line {
            ne,
            a,
            b,
            line_end,
            id,
            plain,
        } = line;
        if matches!(id, Hid::ContentLength | Hid::CSeq | Hid::MaxForwards) {
            let name = rest.get(..ne).unwrap_or_default();
            let value = rest.get(a..b).unwrap_or_default();
            check_number(id, name, value, pos + a, &mut content_length)?;
        }
        entries.push(Entry {
            name: Span::new(pos, pos + ne),
            value: Span::new(pos + a, pos + b),
            line_end: (pos + line_end) as u32,
            id,
            plain,
        });
        index.note(id, entries.len() - 1);
        pos += line_end;
    }
}

/// The common header line at the start of `rest`, read in one straight path: a known name
/// (any case) or other token right before the first colon, which is within the first 24
/// bytes; the value's first CR or LF (found by [`find_cr`]) must be the CR of a CRLF that no
/// SP or HTAB follows (not folded), and the value must neither start with two white space
/// bytes nor end with one. `None` for every other line (and the empty line), left to
/// [`slow_line`]; the answer for a line read here is the one [`slow_line`] gives.
#[inline(always)]
fn fast_line(rest: &[u8]) -> Option<Line> {
    let head = rest.first_chunk::<24>()?;
    let (w0, w1, w2) = (word(head, 0), word(head, 8), word(head, 16));
    // the colon and the header (names of one word are looked up by that word alone)
    let (c, id) = if let Some(k) = find_in_word(w0, b':') {
        let id = match k {
            0 => return None,
            1 => names::compact((w0 as u8).to_ascii_lowercase()),
            _ => names::lookup_words(k, [low_bytes(w0, k)]),
        };
        (k, id)
    } else if let Some(k) = find_in_word(w1, b':') {
        (8 + k, names::lookup_words(8 + k, [w0, low_bytes(w1, k)]))
    } else {
        let k = find_in_word(w2, b':')?;
        (
            16 + k,
            names::lookup_words(16 + k, [w0, w1, low_bytes(w2, k)]),
        )
    };
    // a known name is made of letters and '-'; any other name must be a token
    if id == Hid::Other && !head.get(..c)?.iter().all(|&b| chars::is_token(b)) {
        return None;
    }
    let vs = c + 1;
    // the value: its first CR or LF must be the CR of a CRLF that no SP or HTAB follows, and
    // it must neither start with two white space bytes (the first byte below 0x0E is at most
    // the second) nor end with one
    let v = rest.get(vs..)?;
    let at = vs + find_cr(v)?;
    // the bytes from the one before the CR: that byte, CR, LF, the next line's first byte
    let around = u32::from_le_bytes(*rest.get(at - 1..)?.first_chunk::<4>()?);
    let (last, next) = (around as u8, (around >> 24) as u8);
    // (both bytes are usually above SP: one test each)
    if around & 0x00ff_ff00 != 0x000a_0d00
        || ((last <= b' ' || next <= b' ') && sp_or_htab(last, next))
    {
        return None;
    }
    let lead = match v.first_chunk::<2>()? {
        [b' ', b' '] => return None,
        [b' ', _] => 1,
        _ => 0,
    };
    Some(Line {
        ne: c,
        a: vs + lead,
        b: at,
        line_end: at + 2,
        id,
        plain: true,
    })
}

/// Whether `a` or `b` is SP or HTAB.
#[cold]
#[inline(never)]
fn sp_or_htab(a: u8, b: u8) -> bool {
    matches!(a, b' ' | b'\t') || matches!(b, b' ' | b'\t')
}

/// [`fast_line`] for a line near the end of the buffer (the last line of a head without a
/// body), read from a zero-padded copy of `rest`: zero bytes are not a colon and are below
/// 0x0E but not CR, so an answer read from the copy lies within `rest` and is the one
/// [`fast_line`] would give if `rest` went on (the bytes after a line's CRLF only decide
/// whether it is folded: a zero byte does not fold it, nor does the end of the buffer).
#[inline(never)]
fn short_line(rest: &[u8]) -> Option<Line> {
    let mut padded = [0u8; 48];
    padded.get_mut(..rest.len())?.copy_from_slice(rest);
    fast_line(&padded)
}

/// The first CR or LF of a value `v`, or another byte below 0x0E before it: the first 32
/// bytes are looked at a word at a time for bytes below 0x0E (CR, LF, HTAB and other controls;
/// a value is a few dozen bytes, which this reaches for less than the setup of the SSE2
/// search), then the SSE2 search looks for CR or LF in the rest. `None` near the end of `v`
/// (the value and its CRLF not in whole words). (A `v` of 32 bytes or more, the usual case, is
/// read as one fixed-size chunk: about 5 instructions less per line than the loop over
/// `chunks_exact`.)
#[inline(always)]
fn find_cr(v: &[u8]) -> Option<usize> {
    if let Some(c) = v.first_chunk::<32>() {
        // (over a fixed 32 bytes, written out: no iterator, no bounds to check; a loop over
        // the four offsets measured about one instruction more per line)
        let m = below(word(c, 0), 0x0e);
        if m != 0 {
            return Some((m.trailing_zeros() / 8) as usize);
        }
        let m = below(word(c, 8), 0x0e);
        if m != 0 {
            return Some(8 + (m.trailing_zeros() / 8) as usize);
        }
        let m = below(word(c, 16), 0x0e);
        if m != 0 {
            return Some(16 + (m.trailing_zeros() / 8) as usize);
        }
        let m = below(word(c, 24), 0x0e);
        if m != 0 {
            return Some(24 + (m.trailing_zeros() / 8) as usize);
        }
    } else {
        let mut i = 0;
        for w in v.chunks_exact(8).take(4) {
            let m = below(u64::from_le_bytes(w.try_into().unwrap_or_default()), 0x0e);
            if m != 0 {
                return Some(i + (m.trailing_zeros() / 8) as usize);
            }
            i += 8;
        }
    }
    // (one call site: with two, the flow's build stopped inlining the SSE2 search)
    find_cr_or_nl_from(v, 32)
}

/// Any line start [`fast_line`] leaves: the empty line, the end of the buffer, or a header
/// line (`pos` is where `rest` starts in the buffer, for errors).
#[cold]
#[inline(never)]
fn slow_line(rest: &[u8], pos: usize) -> Result<Step> {
    let Some(&b0) = rest.first() else {
        return Ok(Step::End(0, false));
    };
    if b0 == b'\n' {
        return Ok(Step::End(1, true));
    }
    if b0 == b'\r' && rest.get(1) == Some(&b'\n') {
        return Ok(Step::End(2, true));
    }
    // header name and colon (offsets from here on are relative to the line start)
    let (ne, vs, id, first_break) = match fast_name(rest, b0) {
        Some((c, id, first_break)) => (c, c + 1, id, first_break),
        None => {
            let (ne, vs, id) = general_name(rest, pos)?;
            (ne, vs, id, find_cr_or_nl_from(rest, vs))
        }
    };
    // the logical line, folded lines included; the first CR or LF is the usual CRLF (or a
    // bare LF) ending an unfolded line, anything else goes further out of line
    let (content_end, line_end, plain) = match first_break {
        None => (rest.len(), rest.len(), true),
        Some(at) => {
            let nl = if rest.get(at) == Some(&b'\n') {
                Some(at)
            } else if rest.get(at + 1) == Some(&b'\n') {
                Some(at + 1)
            } else {
                None
            };
            match nl {
                Some(nl) if !matches!(rest.get(nl + 1), Some(b' ' | b'\t')) => (at, nl + 1, true),
                _ => {
                    let (ce, le) = line_end_slow(rest, vs);
                    (ce, le, false)
                }
            }
        }
    };
    // (a plain value holds no CR or LF: only SP and HTAB to trim)
    let (mut a, mut b) = (vs, content_end);
    if plain {
        // `content_end` is the first CR or LF at or after `vs` (or the end): SP or HTAB at
        // `a` means `a < content_end`
        while matches!(rest.get(a), Some(b' ' | b'\t')) {
            a += 1;
        }
        while b > a && matches!(rest.get(b - 1), Some(b' ' | b'\t')) {
            b -= 1;
        }
    } else {
        (a, b) = trim_folded(rest, a, b);
    }
    Ok(Step::Line(Line {
        ne,
        a,
        b,
        line_end,
        id,
        plain,
    }))
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The 8 bytes of `s` at `at`, little-endian; bytes past the end of `s` read as zero.
#[inline(always)]
fn word(s: &[u8], at: usize) -> u64 {
    match s.get(at..).and_then(<[u8]>::first_chunk::<8>) {
        Some(w) => u64::from_le_bytes(*w),
        None => word_tail(s, at),
    }
}

/// [`word`] near the end of `s`.
#[cold]
#[inline(never)]
fn word_tail(s: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    for (d, &b) in w.iter_mut().zip(s.get(at..).unwrap_or_default()) {
        *d = b;
    }
    u64::from_le_bytes(w)
}

/// Bit 7 set in the lowest byte of `w` below `n` (`n <= 0x80`) and maybe in higher bytes
/// (borrows): only the lowest set bit is exact. Zero when no byte is below `n`.
#[inline(always)]
const fn below(w: u64, n: u8) -> u64 {
    w.wrapping_sub(ONES * n as u64) & !w & HIGHS
}

/// The position of the first byte `b` in `w`, if any.
#[inline(always)]
fn find_in_word(w: u64, b: u8) -> Option<usize> {
    let z = below(w ^ (ONES * u64::from(b)), 1);
    (z != 0).then_some((z.trailing_zeros() / 8) as usize)
}

/// The bytes of a word below byte `k` (`k < 8`).
#[inline(always)]
fn low_bytes(w: u64, k: usize) -> u64 {
    w & ((1u64 << (8 * k)) - 1)
}

/// The usual header name: a known name (any case) or other token right before the first
/// colon of the line, which starts within its first 24 bytes. Gives the name end (the colon),
/// the header and the first CR or LF after the colon (`None`: none before the end of `rest`),
/// or `None` for every other line (left to [`general_name`], which answers exactly as before
/// for all of them).
#[inline(always)]
fn fast_name(rest: &[u8], b0: u8) -> Option<(usize, Hid, Option<usize>)> {
    let w0 = word(rest, 0);
    // the colon and the header (names of one word are looked up by that word alone)
    let (c, id) = if let Some(k) = find_in_word(w0, b':') {
        let id = match k {
            0 => return None,
            1 => names::compact(b0.to_ascii_lowercase()),
            _ => names::lookup_words(k, [low_bytes(w0, k)]),
        };
        (k, id)
    } else {
        let w1 = word(rest, 8);
        if let Some(k) = find_in_word(w1, b':') {
            (8 + k, names::lookup_words(8 + k, [w0, low_bytes(w1, k)]))
        } else {
            let w2 = word(rest, 16);
            let k = find_in_word(w2, b':')?;
            (
                16 + k,
                names::lookup_words(16 + k, [w0, w1, low_bytes(w2, k)]),
            )
        }
    };
    // a known name is made of letters and '-'; any other name must be a token
    if id == Hid::Other && !rest.get(..c)?.iter().all(|&b| chars::is_token(b)) {
        return None;
    }
    Some((c, id, find_cr_or_nl_from(rest, c + 1)))
}

/// The header name of any line [`fast_name`] leaves: the longest token at the line start,
/// then SP or HTAB, then the colon. Gives the name end, the value start and the header.
#[cold]
#[inline(never)]
fn general_name(rest: &[u8], pos: usize) -> Result<(usize, usize, Hid)> {
    let ne = rest
        .iter()
        .position(|&b| !chars::is_token(b))
        .unwrap_or(rest.len());
    if ne == 0 {
        return Err(Error::Header {
            name: String::new(),
            offset: pos,
            expected: "a header name",
        });
    }
    let name = rest.get(..ne).unwrap_or_default();
    let mut colon = ne;
    while matches!(rest.get(colon), Some(b' ' | b'\t')) {
        colon += 1;
    }
    if rest.get(colon) != Some(&b':') {
        return Err(header_err(
            lookup(name),
            name,
            pos + colon,
            "':' after the header name",
        ));
    }
    Ok((ne, colon + 1, lookup(name)))
}

/// The first CR or LF of `s` at or after `from`.
#[inline(always)]
fn find_cr_or_nl_from(s: &[u8], from: usize) -> Option<usize> {
    chars::find_cr_or_nl(s.get(from..)?).map(|k| from + k)
}

/// The end of the logical line of `rest` whose value starts at `vs` (folded lines included,
/// a lone CR kept in the value): the end of its content (before a final CR) and of the line,
/// relative to `rest`.
#[cold]
#[inline(never)]
fn line_end_slow(rest: &[u8], vs: usize) -> (usize, usize) {
    match chars::find_nl(rest.get(vs..).unwrap_or_default()) {
        None => (rest.len(), rest.len()),
        Some(k) => {
            let nl = vs + k;
            if matches!(rest.get(nl + 1), Some(b' ' | b'\t')) {
                folded_line_end(rest, vs, nl + 1)
            } else if nl > vs && rest.get(nl - 1) == Some(&b'\r') {
                (nl - 1, nl + 1)
            } else {
                (nl, nl + 1)
            }
        }
    }
}

/// The end of a folded logical line of `rest` whose value starts at `vs`, the search going
/// on at `from` (just after a line break followed by SP or HTAB): the end of its content
/// (before a final CR) and of the line, relative to `rest`.
#[cold]
#[inline(never)]
fn folded_line_end(rest: &[u8], vs: usize, mut from: usize) -> (usize, usize) {
    loop {
        match chars::find_nl(rest.get(from..).unwrap_or_default()) {
            None => return (rest.len(), rest.len()),
            Some(k) => {
                let nl = from + k;
                if matches!(rest.get(nl + 1), Some(b' ' | b'\t')) {
                    from = nl + 1;
                    continue;
                }
                let ce = if nl > vs && rest.get(nl - 1) == Some(&b'\r') {
                    nl - 1
                } else {
                    nl
                };
                return (ce, nl + 1);
            }
        }
    }
}

/// The value `a..b` of a folded line (or one with a lone CR) trimmed of LWS.
#[cold]
#[inline(never)]
fn trim_folded(rest: &[u8], mut a: usize, mut b: usize) -> (usize, usize) {
    while a < b && rest.get(a).is_some_and(|&c| is_lws(c)) {
        a += 1;
    }
    while b > a && rest.get(b - 1).is_some_and(|&c| is_lws(c)) {
        b -= 1;
    }
    (a, b)
}

/// The numbers the fast path checks: Content-Length (the first one is kept), the CSeq
/// number and Max-Forwards. `at` is the value's offset (for the error).
#[inline]
fn check_number(
    id: Hid,
    name: &[u8],
    value: &[u8],
    at: usize,
    content_length: &mut Option<usize>,
) -> Result<()> {
    match id {
        Hid::ContentLength => {
            let v = chars::parse_u64(value)
                .and_then(|v| usize::try_from(v).ok())
                .ok_or_else(|| header_err(id, name, at, "a decimal Content-Length"))?;
            if content_length.is_none() {
                *content_length = Some(v);
            }
        }
        Hid::CSeq => {
            let d = value
                .iter()
                .position(|&c| !c.is_ascii_digit())
                .unwrap_or(value.len());
            if chars::parse_u32(value.get(..d).unwrap_or_default()).is_none() {
                return Err(header_err(id, name, at, "a CSeq number below 2^32"));
            }
        }
        Hid::MaxForwards if chars::parse_u64(value).is_none_or(|v| v > 255) => {
            return Err(header_err(
                id,
                name,
                at,
                "a Max-Forwards number from 0 to 255",
            ));
        }
        _ => {}
    }
    Ok(())
}

/// Split a header value on commas that are outside quoted strings and `<...>`; elements are
/// trimmed and empty ones skipped.
pub fn split_commas(value: &str) -> impl Iterator<Item = &str> {
    let b = value.as_bytes();
    let mut start = 0;
    let mut i = 0;
    let mut done = false;
    std::iter::from_fn(move || {
        while !done {
            let mut in_quote = false;
            let mut in_angle = false;
            while let Some(&c) = b.get(i) {
                match c {
                    b'\\' if in_quote => i += 1,
                    b'"' if !in_angle => in_quote = !in_quote,
                    b'<' if !in_quote => in_angle = true,
                    b'>' if !in_quote => in_angle = false,
                    b',' if !in_quote && !in_angle => break,
                    _ => {}
                }
                i += 1;
            }
            let end = i.min(b.len());
            let item = chars::trim_lws(value.get(start..end).unwrap_or_default());
            if i >= b.len() {
                done = true;
            } else {
                i += 1;
                start = i;
            }
            if !item.is_empty() {
                return Some(item);
            }
        }
        None
    })
}

impl Headers {
    /// An empty header list.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// `text` must be a prefix of `buf` (or empty).
    pub(crate) fn from_parts(buf: Bytes, text: ByteString, entries: Vec<Entry>) -> Self {
        Self {
            buf,
            text,
            index: Index::new(&entries),
            entries,
            dirty: false,
        }
    }

    /// `index` must be the index of `entries` (as [`scan_indexed`] builds it).
    pub(crate) fn from_parts_indexed(
        buf: Bytes,
        text: ByteString,
        entries: Vec<Entry>,
        index: Index,
    ) -> Self {
        Self {
            buf,
            text,
            entries,
            index,
            dirty: false,
        }
    }

    /// Give up the headers and keep their header-line storage for another parse (see
    /// [`HeaderStorage`]; storage above [`HeaderStorage::MAX_RETAINED_LINES`] lines is
    /// freed instead). The message buffer is released.
    #[must_use]
    #[inline(always)]
    pub fn into_storage(self) -> HeaderStorage {
        HeaderStorage::from_entries(self.entries)
    }

    /// Rebuild the index after the entries changed.
    fn reindex(&mut self) {
        self.index = Index::new(&self.entries);
    }

    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub(crate) fn buf(&self) -> &Bytes {
        &self.buf
    }

    /// Whether the headers were edited since parsing.
    pub(crate) fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// The text of `sp`: from the checked prefix when it lies there, else checked now.
    #[inline]
    pub(crate) fn span_str(&self, sp: Span) -> &str {
        if sp.end as usize <= self.text.len() {
            sp.text(&self.text)
        } else {
            sp.str(&self.buf)
        }
    }

    #[inline]
    pub(crate) fn entry_value(&self, e: &Entry) -> &str {
        self.span_str(e.value)
    }

    pub(crate) fn entry_name(&self, e: &Entry) -> &str {
        self.span_str(e.name)
    }

    /// `name: value` of an entry as one run of text (name and value as written, trimmed value)
    /// when the name is followed by exactly `": "` before the value; `None` otherwise.
    #[inline]
    pub(crate) fn entry_name_value(&self, e: &Entry) -> Option<&str> {
        let sep = Span {
            start: e.name.end,
            end: e.value.start,
        };
        (e.value.start < e.value.end && sep.bytes(&self.buf) == b": ").then(|| {
            self.span_str(Span {
                start: e.name.start,
                end: e.value.end,
            })
        })
    }

    /// The checked UTF-8 prefix of the buffer (the parsed head).
    pub(crate) fn text(&self) -> &ByteString {
        &self.text
    }

    /// The raw line of an entry, terminator included if it had one.
    pub(crate) fn entry_line(&self, e: &Entry) -> &[u8] {
        self.buf
            .get(e.name.start as usize..e.line_end as usize)
            .unwrap_or_default()
    }

    pub(crate) fn value_bytes(&self, e: &Entry) -> Bytes {
        self.buf.slice(e.value.range())
    }

    /// The value of an entry as a zero-copy string, checked for UTF-8 once here so that
    /// typed values read it without further checks.
    pub(crate) fn value_text(&self, e: &Entry) -> Result<ByteString> {
        if e.value.end as usize <= self.text.len() {
            return Ok(e.value.sub(&self.text));
        }
        ByteString::try_from(self.value_bytes(e)).map_err(|u| Error::Header {
            name: String::new(),
            offset: u.valid_up_to(),
            expected: "UTF-8 text",
        })
    }

    /// Entries matching `name` (case-insensitive, compact forms included).
    pub(crate) fn matching<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        // Header names in the index are tokens; other names match nothing.
        let token = chars::is_token_str(name.as_bytes());
        let id = if token {
            lookup(name.as_bytes())
        } else {
            Hid::Other
        };
        let from = match id {
            Hid::Other => 0,
            _ => self.index.start(id).unwrap_or(self.entries.len()),
        };
        let entries = self.entries.get(from..).unwrap_or_default();
        entries.iter().filter(move |e| {
            if id == Hid::Other {
                e.id == Hid::Other
                    && e.name
                        .bytes(&self.buf)
                        .eq_ignore_ascii_case(name.as_bytes())
            } else {
                e.id == id
            }
        })
    }

    pub(crate) fn by_id(&self, id: Hid) -> impl Iterator<Item = &Entry> + '_ {
        let from = self.index.start(id).unwrap_or(self.entries.len());
        self.entries
            .get(from..)
            .unwrap_or_default()
            .iter()
            .filter(move |e| e.id == id)
    }

    #[inline]
    pub(crate) fn first_id(&self, id: Hid) -> Option<&Entry> {
        let from = self.index.start(id)?;
        let rest = self.entries.get(from..)?;
        match rest.first() {
            Some(e) if e.id == id => Some(e),
            // only past the index's reach (`Index::FAR`)
            _ => rest.iter().find(|e| e.id == id),
        }
    }

    /// The only line of `id`, if it has exactly one.
    #[inline]
    fn single_id(&self, id: Hid) -> Option<&Entry> {
        if self.index.several(id) {
            return None;
        }
        self.first_id(id)
    }

    /// Number of header lines.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no headers.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// All header lines in order, as `(name as written, value)`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.entries
            .iter()
            .map(|e| (self.entry_name(e), self.entry_value(e)))
    }

    /// The value of the first header called `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.matching(name).next().map(|e| self.entry_value(e))
    }

    /// The value of the first header called `name`, as a zero-copy sub-slice of the message.
    #[must_use]
    pub fn get_bytes(&self, name: &str) -> Option<Bytes> {
        self.matching(name).next().map(|e| self.value_bytes(e))
    }

    /// The values of every header line called `name`, in order (one item per line).
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.matching(name).map(|e| self.entry_value(e))
    }

    /// The comma-separated elements of every header line called `name`, in order; commas inside
    /// quoted strings and `<...>` do not split (RFC 3261 §7.3.1).
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.get_all(name).flat_map(split_commas)
    }

    /// How many header lines are called `name`.
    #[must_use]
    pub fn count(&self, name: &str) -> usize {
        self.matching(name).count()
    }

    /// Whether a header called `name` is present.
    #[must_use]
    pub fn contains(&self, name: &str) -> bool {
        self.matching(name).next().is_some()
    }

    /// The value of the first line of a known header: what [`Headers::get`] gives for its
    /// name (long or compact form), without looking the name up.
    #[must_use]
    #[inline]
    pub fn get_known(&self, header: KnownHeader) -> Option<&str> {
        self.first_id(header.hid()).map(|e| self.entry_value(e))
    }

    /// The values of every line of a known header, in order: what [`Headers::get_all`] gives
    /// for its name, without looking the name up.
    pub fn get_all_known(&self, header: KnownHeader) -> impl Iterator<Item = &str> + '_ {
        self.by_id(header.hid()).map(|e| self.entry_value(e))
    }

    /// The value of a known header when exactly one line carries it (`None` when there is
    /// none or more than one).
    #[must_use]
    #[inline]
    pub fn get_single_known(&self, header: KnownHeader) -> Option<&str> {
        self.single_id(header.hid()).map(|e| self.entry_value(e))
    }

    /// Whether a line of a known header is present: what [`Headers::contains`] gives for its
    /// name, without looking the name up.
    #[must_use]
    #[inline]
    pub fn contains_known(&self, header: KnownHeader) -> bool {
        self.first_id(header.hid()).is_some()
    }

    fn make_line(&mut self, name: &str, value: &str) -> Result<Entry> {
        let trimmed = check_line(name, value)?;
        let mut at = self.buf.len();
        self.append_lines(
            name.len() + trimmed.len() + 4,
            &[HeaderEdit::Push(name, value)],
        )?;
        self.dirty = true;
        Ok(new_entry(&mut at, name, value))
    }

    /// Append a header line `name: value`.
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] if `name` is not a token or `value` contains CR or LF.
    pub fn push(&mut self, name: &str, value: &str) -> Result<()> {
        let e = self.make_line(name, value)?;
        self.entries.push(e);
        self.reindex();
        Ok(())
    }

    /// Insert a header line at position `index` (clamped to the end).
    ///
    /// # Errors
    /// As [`Headers::push`].
    pub fn insert(&mut self, index: usize, name: &str, value: &str) -> Result<()> {
        let e = self.make_line(name, value)?;
        let index = index.min(self.entries.len());
        self.entries.insert(index, e);
        self.reindex();
        Ok(())
    }

    /// Insert a header line before the first one called `name` (e.g. a new top Via), or
    /// append it if there is none.
    ///
    /// # Errors
    /// As [`Headers::push`].
    pub fn push_front(&mut self, name: &str, value: &str) -> Result<()> {
        let id = lookup(name.as_bytes());
        let pos = self.position(name, id).unwrap_or(self.entries.len());
        self.insert(pos, name, value)
    }

    fn position(&self, name: &str, id: Hid) -> Option<usize> {
        self.entries.iter().position(|e| {
            if id == Hid::Other {
                e.id == Hid::Other
                    && e.name
                        .bytes(&self.buf)
                        .eq_ignore_ascii_case(name.as_bytes())
            } else {
                e.id == id
            }
        })
    }

    /// Remove every header line called `name`; returns how many were removed.
    pub fn remove(&mut self, name: &str) -> usize {
        let removed = self.remove_entries(name);
        if removed > 0 {
            self.dirty = true;
            self.reindex();
        }
        removed
    }

    /// Drop the entries of every line called `name` (the index is left to the caller).
    fn remove_entries(&mut self, name: &str) -> usize {
        let id = lookup(name.as_bytes());
        let before = self.entries.len();
        let buf = &self.buf;
        self.entries.retain(|e| {
            if id == Hid::Other {
                !(e.id == Hid::Other && e.name.bytes(buf).eq_ignore_ascii_case(name.as_bytes()))
            } else {
                e.id != id
            }
        });
        before - self.entries.len()
    }

    /// Remove the first header line called `name`; returns its value's bytes.
    pub fn remove_first(&mut self, name: &str) -> Option<Bytes> {
        let pos = self.position(name, lookup(name.as_bytes()))?;
        let e = self.entries.remove(pos);
        self.dirty = true;
        self.reindex();
        Some(self.value_bytes(&e))
    }

    /// Replace every header line called `name` by one line `name: value`, placed where the
    /// first one was (or appended if there was none).
    ///
    /// # Errors
    /// As [`Headers::push`].
    pub fn replace(&mut self, name: &str, value: &str) -> Result<()> {
        let id = lookup(name.as_bytes());
        let pos = self.position(name, id);
        let e = self.make_line(name, value)?;
        self.remove(name);
        match pos {
            Some(p) => self.entries.insert(p.min(self.entries.len()), e),
            None => self.entries.push(e),
        }
        self.reindex();
        Ok(())
    }

    /// Apply several edits in order, copying the message buffer once for all the lines they
    /// add (each of [`Headers::push`], [`Headers::insert`], [`Headers::push_front`] and
    /// [`Headers::replace`] copies it once per call).
    ///
    /// The headers end up as the same calls made one by one leave them (they encode byte for
    /// byte alike), with two differences: the counts and values [`Headers::remove`] and
    /// [`Headers::remove_first`] return are not returned, and the edits are checked before
    /// any is applied, so that on an error none is.
    ///
    /// ```
    /// use mcptt_sip::{Bytes, HeaderEdit, Message};
    ///
    /// let wire = Bytes::from_static(
    ///     b"MESSAGE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/TLS ue;branch=z9hG4bK1\r\n\
    ///       Max-Forwards: 70\r\nP-Asserted-Identity: <sip:forged@example.com>\r\n\
    ///       Call-ID: 1\r\nContent-Length: 0\r\n\r\n",
    /// );
    /// let mut msg = Message::parse(wire)?;
    /// let edits = [
    ///     HeaderEdit::Remove("P-Asserted-Identity"),
    ///     HeaderEdit::PushFront("Via", "SIP/2.0/TLS core;branch=z9hG4bK2"),
    ///     HeaderEdit::Push("P-Asserted-Identity", "<sip:a@example.com>"),
    ///     HeaderEdit::Replace("Max-Forwards", "69"),
    /// ];
    /// // the same edits one call at a time
    /// let mut one_by_one = msg.clone();
    /// let h = one_by_one.headers_mut();
    /// h.remove("P-Asserted-Identity");
    /// h.push_front("Via", "SIP/2.0/TLS core;branch=z9hG4bK2")?;
    /// h.push("P-Asserted-Identity", "<sip:a@example.com>")?;
    /// h.replace("Max-Forwards", "69")?;
    ///
    /// msg.headers_mut().apply(&edits)?;
    /// assert_eq!(msg.encode(), one_by_one.encode());
    /// assert_eq!(msg.headers().get("Via"), Some("SIP/2.0/TLS core;branch=z9hG4bK2"));
    /// assert_eq!(msg.headers().count("Via"), 2);
    /// assert_eq!(msg.headers().get("Max-Forwards"), Some("69"));
    ///
    /// // A line that cannot be written fails the whole batch, leaving the headers as they were.
    /// let before = msg.encode();
    /// let bad = [HeaderEdit::Remove("Via"), HeaderEdit::Push("X-Bad", "a\r\nInjected: 1")];
    /// assert!(msg.headers_mut().apply(&bad).is_err());
    /// assert_eq!(msg.encode(), before);
    /// # Ok::<(), mcptt_sip::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] (and no edit applied) if a line to add has a name that is not a
    /// token or a value that contains CR or LF, or the lines would take the buffer past 4 GiB.
    pub fn apply(&mut self, edits: &[HeaderEdit<'_>]) -> Result<()> {
        let mut added = 0usize;
        for (name, value) in edits.iter().filter_map(HeaderEdit::line) {
            let value = check_line(name, value)?;
            added = added.saturating_add(name.len() + value.len() + 4);
        }
        let mut at = self.buf.len();
        if added > 0 {
            self.append_lines(added, edits)?;
            // (room for every added line at once)
            self.entries
                .reserve(edits.iter().filter(|e| e.line().is_some()).count());
        }
        let mut changed = added > 0;
        for edit in edits {
            match *edit {
                HeaderEdit::Push(name, value) => {
                    let e = new_entry(&mut at, name, value);
                    self.entries.push(e);
                }
                HeaderEdit::Insert(index, name, value) => {
                    let e = new_entry(&mut at, name, value);
                    let index = index.min(self.entries.len());
                    self.entries.insert(index, e);
                }
                HeaderEdit::PushFront(name, value) => {
                    let e = new_entry(&mut at, name, value);
                    let pos = self
                        .position(name, lookup(name.as_bytes()))
                        .unwrap_or(self.entries.len());
                    self.entries.insert(pos, e);
                }
                HeaderEdit::Replace(name, value) => {
                    let e = new_entry(&mut at, name, value);
                    let pos = self.position(name, lookup(name.as_bytes()));
                    self.remove_entries(name);
                    match pos {
                        Some(p) => self.entries.insert(p.min(self.entries.len()), e),
                        None => self.entries.push(e),
                    }
                }
                HeaderEdit::Remove(name) => changed |= self.remove_entries(name) > 0,
                HeaderEdit::RemoveFirst(name) => {
                    if let Some(pos) = self.position(name, lookup(name.as_bytes())) {
                        self.entries.remove(pos);
                        changed = true;
                    }
                }
            }
        }
        if changed {
            self.dirty = true;
            self.reindex();
        }
        Ok(())
    }

    /// Append the lines the `edits` add (checked, `added` bytes in all) to the buffer: one copy.
    fn append_lines(&mut self, added: usize, edits: &[HeaderEdit<'_>]) -> Result<()> {
        let len = self.buf.len().saturating_add(added);
        if u32::try_from(len).is_err() {
            return Err(Error::ApiMisuse("header section larger than 4 GiB"));
        }
        let lines = edits
            .iter()
            .filter_map(HeaderEdit::line)
            .map(|(name, value)| (name, chars::trim_lws(value)));
        let (buf, text) = if self.text.len() == self.buf.len() {
            // the whole buffer is checked text: the new one is too, built as a String
            let mut s = String::with_capacity(len);
            s.push_str(&self.text);
            for (name, value) in lines {
                s.push_str(name);
                s.push_str(": ");
                s.push_str(value);
                s.push_str("\r\n");
            }
            let text = ByteString::from(s);
            (text.as_bytes().clone(), text)
        } else {
            // a body that was not checked (or is not UTF-8) sits between: check the copy once
            // (the checked prefix stays at least where it was)
            let mut v = Vec::with_capacity(len);
            v.extend_from_slice(&self.buf);
            for (name, value) in lines {
                v.extend_from_slice(name.as_bytes());
                v.extend_from_slice(b": ");
                v.extend_from_slice(value.as_bytes());
                v.extend_from_slice(b"\r\n");
            }
            let buf = Bytes::from(v);
            let text = ByteString::try_from(buf.clone()).unwrap_or_else(|_| {
                ByteString::try_from(buf.slice(..self.text.len())).unwrap_or_default()
            });
            (buf, text)
        };
        self.text = text;
        self.buf = buf;
        Ok(())
    }

    /// Encode the header lines (each with its terminator) into `out`.
    pub(crate) fn encode_lines(&self, out: &mut impl bytes::BufMut) {
        for e in &self.entries {
            let line = self.entry_line(e);
            out.put_slice(line);
            if !line.ends_with(b"\n") {
                out.put_slice(b"\r\n");
            }
        }
    }
}

/// One edit of a [`Headers::apply`] batch: the [`Headers`] method of the same name, with
/// its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderEdit<'a> {
    /// [`Headers::push`]: append `name: value`.
    Push(&'a str, &'a str),
    /// [`Headers::insert`]: insert `name: value` at a position (clamped to the end).
    Insert(usize, &'a str, &'a str),
    /// [`Headers::push_front`]: insert `name: value` before the first line called `name`
    /// (appended if there is none).
    PushFront(&'a str, &'a str),
    /// [`Headers::replace`]: replace every line called `name` by `name: value`, placed where
    /// the first one was (appended if there was none).
    Replace(&'a str, &'a str),
    /// [`Headers::remove`]: remove every line called `name`.
    Remove(&'a str),
    /// [`Headers::remove_first`]: remove the first line called `name`.
    RemoveFirst(&'a str),
}

impl<'a> HeaderEdit<'a> {
    /// The line (name, value as given) the edit adds, if it adds one.
    fn line(&self) -> Option<(&'a str, &'a str)> {
        match *self {
            Self::Push(n, v)
            | Self::Insert(_, n, v)
            | Self::PushFront(n, v)
            | Self::Replace(n, v) => Some((n, v)),
            Self::Remove(_) | Self::RemoveFirst(_) => None,
        }
    }
}

/// A line to add: `name` must be a token and `value` hold no CR or LF; gives the value
/// trimmed of LWS (as written to the buffer).
fn check_line<'v>(name: &str, value: &'v str) -> Result<&'v str> {
    if !chars::is_token_str(name.as_bytes()) {
        return Err(Error::ApiMisuse("header name must be a token"));
    }
    // (the SSE2 search: a byte loop cost ~4 instructions per value byte)
    if chars::find_cr_or_nl(value.as_bytes()).is_some() {
        return Err(Error::ApiMisuse("header value must not contain CR or LF"));
    }
    Ok(chars::trim_lws(value))
}

/// The entry of a line `name: value` (value trimmed) written at `*at` by
/// [`Headers::append_lines`]; `*at` moves past it.
fn new_entry(at: &mut usize, name: &str, value: &str) -> Entry {
    let value = chars::trim_lws(value);
    let ns = *at;
    let (ne, vs) = (ns + name.len(), ns + name.len() + 2);
    let ve = vs + value.len();
    *at = ve + 2;
    Entry {
        name: Span::new(ns, ne),
        value: Span::new(vs, ve),
        line_end: *at as u32,
        id: lookup(name.as_bytes()),
        plain: true,
    }
}

impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_split_outside_quotes_and_angles() {
        let v: Vec<_> = split_commas(r#""a,\"b" <sip:x;y=1,2>;p=1 , <sip:z> ,, c"#).collect();
        assert_eq!(v, [r#""a,\"b" <sip:x;y=1,2>;p=1"#, "<sip:z>", "c"]);
        assert_eq!(split_commas("").count(), 0);
        assert_eq!(split_commas(" , ,").count(), 0);
    }

    #[test]
    fn edits_after_a_body_that_is_not_utf8_read_back() {
        let mut m = crate::Message::parse(Bytes::from_static(
            b"MESSAGE sip:a@b SIP/2.0\r\nCall-ID: x\r\nSubject: caf\xc3\xa9\r\nContent-Length: 2\r\n\r\n\xff\xfe",
        ))
        .unwrap();
        let h = m.headers_mut();
        h.push("X-New", "d\u{e9}j\u{e0}").unwrap();
        h.push("X-Two", "2").unwrap();
        assert_eq!(h.get("x-new"), Some("d\u{e9}j\u{e0}"));
        assert_eq!(h.get("x-two"), Some("2"));
        assert_eq!(h.get("subject"), Some("caf\u{e9}"));
        assert_eq!(m.call_id(), Some("x"));
        // a UTF-8 buffer stays text across edits (the String path)
        let mut h = Headers::new();
        h.push("Subject", "\u{e9}t\u{e9}").unwrap();
        h.push("To", "<sip:b@c>;tag=1").unwrap();
        assert_eq!(h.get("subject"), Some("\u{e9}t\u{e9}"));
        assert_eq!(h.to().unwrap().tag(), Some("1"));
    }

    #[test]
    fn known_accessors_agree_with_the_name_accessors() {
        let m = crate::Message::parse(Bytes::from_static(
            b"SUBSCRIBE sip:a@b SIP/2.0\r\nv: SIP/2.0/TLS a;branch=z9hG4bK1\r\nRecord-Route: <sip:p1>\r\n\
              VIA: SIP/2.0/TLS b;branch=z9hG4bK2\r\nrecord-route: <sip:p2>\r\nEvent: x\r\n\
              X-Event: y\r\nContent-Length: 0\r\n\r\n",
        ))
        .unwrap();
        let h = m.headers();
        for name in [
            "Via",
            "v",
            "Record-Route",
            "Event",
            "o",
            "Contact",
            "Content-Length",
        ] {
            let k = KnownHeader::lookup(name).unwrap();
            assert_eq!(h.get_known(k), h.get(name), "{name}");
            assert!(h.get_all_known(k).eq(h.get_all(name)), "{name}");
            assert_eq!(h.contains_known(k), h.contains(name), "{name}");
            let single = (h.count(name) == 1).then(|| h.get(name)).flatten();
            assert_eq!(h.get_single_known(k), single, "{name}");
        }
        assert_eq!(h.get_known(KnownHeader::Event), Some("x"));
        assert_eq!(h.get_single_known(KnownHeader::Via), None);
        assert_eq!(h.get_single_known(KnownHeader::Event), Some("x"));
        assert_eq!(h.get_single_known(KnownHeader::Contact), None);
        assert!(!h.contains_known(KnownHeader::Contact));
        assert_eq!(h.get_all_known(KnownHeader::RecordRoute).count(), 2);
    }

    #[test]
    fn edits_keep_order_and_names() {
        let mut h = Headers::new();
        h.push("Via", "SIP/2.0/TLS a;branch=z9hG4bK1").unwrap();
        h.push("X-Foo", "1").unwrap();
        h.push("v", "SIP/2.0/TLS b;branch=z9hG4bK2").unwrap();
        assert_eq!(h.count("via"), 2);
        assert_eq!(h.get("x-foo"), Some("1"));
        h.push_front("Via", "SIP/2.0/TLS top;branch=z9hG4bK0")
            .unwrap();
        assert_eq!(h.get("V"), Some("SIP/2.0/TLS top;branch=z9hG4bK0"));
        h.replace("x-FOO", "2").unwrap();
        assert_eq!(h.iter().nth(2), Some(("x-FOO", "2")));
        assert_eq!(h.remove("via"), 3);
        assert_eq!(h.len(), 1);
        assert!(h.push("Bad Name", "x").is_err());
        assert!(h.push("X", "a\r\nInjected: 1").is_err());
    }
}
