//! Stream framing (RFC 3261 §18.3): find where each message ends on TCP/TLS.

use bytes::{Bytes, BytesMut};

use crate::error::{Error, Result};
use crate::headers::{EntrySource, Fresh, HeaderStorage};
use crate::limits::Limits;
use crate::message::{Failed, Message, ParsedHead, parse_head};
use crate::names::Hid;

/// Finds the CRLF empty line that ends a head (built once: building a finder costs more than
/// searching a head).
static EMPTY_LINE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\n\r\n"));

/// The result of [`frame`]: not enough bytes yet, or the length of the first whole message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// More bytes are needed.
    Partial,
    /// The first message is complete and is this many bytes long.
    Complete(usize),
}

/// Whether `line` (without its terminator) is a Content-Length line, and its value: the
/// name before the first `:` (trailing ASCII white space trimmed) is `Content-Length` or `l`
/// in any case. `pos` is the line's offset (for the error).
#[cold]
#[inline(never)]
fn content_length_line(line: &[u8], pos: usize) -> Result<Option<usize>> {
    // the usual spellings, `Content-Length:` and `l:` in any case, need no search
    let colon = if line.get(14) == Some(&b':')
        && crate::chars::eq_ci(line.get(..14).unwrap_or_default(), b"content-length")
    {
        14
    } else if line.get(1) == Some(&b':') && matches!(line.first(), Some(b'l' | b'L')) {
        1
    } else {
        let Some(colon) = memchr::memchr(b':', line) else {
            return Ok(None);
        };
        let name = line.get(..colon).unwrap_or_default().trim_ascii_end();
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            return Ok(None);
        }
        colon
    };
    let v = line.get(colon + 1..).unwrap_or_default().trim_ascii();
    crate::chars::parse_u64(v)
        .and_then(|n| usize::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| Error::Header {
            name: "Content-Length".into(),
            offset: pos + colon + 1,
            expected: "a decimal Content-Length",
        })
}

/// A line (without its LF) that may be a Content-Length line: its value, if it is one, must
/// agree with the one seen before.
#[cold]
#[inline(never)]
fn content_length_candidate(line: &[u8], pos: usize, cl: &mut Option<usize>) -> Result<()> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if let Some(n) = content_length_line(line, pos)? {
        match *cl {
            Some(prev) if prev != n => return Err(Error::ContentLengthMismatch),
            _ => *cl = Some(n),
        }
    }
    Ok(())
}

/// Find the end of the message at the start of `buf` (which must begin with a start line;
/// skip CRLF keep-alives first, see [`keepalive_len`]).
///
/// Content-Length is mandatory on streams. Limits are checked as soon as the bytes that break
/// them are seen, before waiting for (or buffering) more: a header section longer than
/// `max_head_size` or a line longer than `max_line_length` fails without finding its end, and
/// a Content-Length above `max_body_size` (or a total above `max_message_size`) fails before
/// the body arrives.
///
/// Each call scans the head from the start; [`frame_resume`] keeps its progress between calls
/// over a growing buffer.
///
/// # Errors
/// [`Error::MissingContentLength`], [`Error::ContentLengthMismatch`], a malformed
/// Content-Length ([`Error::Header`]), a leading CR/LF ([`Error::StartLine`]), or a limit.
pub fn frame(buf: &[u8], limits: &Limits) -> Result<Status> {
    frame_from(buf, limits, &mut Scan::default())
}

/// How far the framing of the message at the start of a buffer got, kept by the caller
/// between calls of [`frame_resume`] so that a message arriving in many reads is scanned
/// once (linear time in its size) instead of once per read.
///
/// Start with [`FrameScan::default`] and reset it ([`FrameScan::reset`]) after each
/// [`Status::Complete`] (when the next message starts) and after an error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameScan(Scan);

impl FrameScan {
    /// Forget the progress (the next message starts at the start of the buffer).
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

/// [`frame`], resuming where the previous call with the same `scan` stopped.
///
/// Same contract, results and errors as [`frame`], provided `buf` holds the bytes of the
/// previous call (same message, same start) plus any that arrived since, and `scan` was reset
/// after the previous message's [`Status::Complete`]. Lines already scanned are not scanned
/// again, so feeding a message one byte at a time costs O(head) in all rather than O(head²).
/// A `buf` shorter than what `scan` has seen (a caller bug) is framed from its start.
///
/// ```
/// use mcptt_sip::{FrameScan, Limits, Status, frame_resume};
/// let limits = Limits::default();
/// let wire = b"OPTIONS sip:a@example.com SIP/2.0\r\nContent-Length: 2\r\n\r\nhi";
/// let mut scan = FrameScan::default();
/// let mut got = None;
/// for end in 1..=wire.len() {
///     if let Status::Complete(n) = frame_resume(&wire[..end], &limits, &mut scan)? {
///         got = Some(n);
///         scan.reset();
///         break;
///     }
/// }
/// assert_eq!(got, Some(wire.len()));
/// # Ok::<(), mcptt_sip::Error>(())
/// ```
///
/// # Errors
/// As [`frame`].
pub fn frame_resume(buf: &[u8], limits: &Limits, scan: &mut FrameScan) -> Result<Status> {
    if scan.0.pos > buf.len() || scan.0.head_end.is_some_and(|h| h > buf.len()) {
        scan.reset();
    }
    frame_from(buf, limits, &mut scan.0)
}

/// How far [`frame_from`] got in the current message, so that a framer fed small chunks
/// resumes instead of rescanning (linear time in the message size).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Scan {
    /// Start of the first line not yet scanned.
    pos: usize,
    /// Whether the start line was scanned.
    started: bool,
    cl: Option<usize>,
    head_end: Option<usize>,
}

fn frame_from(buf: &[u8], limits: &Limits, st: &mut Scan) -> Result<Status> {
    if matches!(buf.first(), Some(b'\r' | b'\n')) {
        return Err(Error::StartLine {
            offset: 0,
            expected: "a start line (skip CRLF keep-alives first)",
        });
    }
    let window = buf.len().min(limits.max_head_size.saturating_add(1));
    let head_end = match st.head_end {
        Some(h) => h,
        None => {
            let win = buf.get(..window).unwrap_or_default();
            let mut pos = st.pos;
            // the rest of the window from `pos`, advanced line by line
            let mut rest = win.get(pos..).unwrap_or_default();
            loop {
                let Some(k) = crate::chars::find_nl(rest) else {
                    st.pos = pos;
                    if window.saturating_sub(pos) > limits.max_line_length {
                        return Err(Error::LineTooLong {
                            offset: pos,
                            limit: limits.max_line_length,
                        });
                    }
                    if window > limits.max_head_size {
                        return Err(Error::HeadTooLarge {
                            size: window,
                            limit: limits.max_head_size,
                        });
                    }
                    return Ok(Status::Partial);
                };
                if k > limits.max_line_length {
                    return Err(Error::LineTooLong {
                        offset: pos,
                        limit: limits.max_line_length,
                    });
                }
                if st.started {
                    // the line without its terminator is empty: the head ends
                    let b0 = rest.first().copied().unwrap_or(b'\n');
                    if k == 0 || (k == 1 && b0 == b'\r') {
                        let end = pos + k + 1;
                        st.pos = end;
                        st.head_end = Some(end);
                        break end;
                    }
                    // Only a line starting `Content-Length` or `l` + non-token (any case) can
                    // be a Content-Length line: look closer at those alone.
                    let maybe_cl = match b0 | 0x20 {
                        // `content-` with bit 0x20 set in each byte (a filter only: the exact
                        // name check follows)
                        b'c' => rest.first_chunk::<8>().is_some_and(|p| {
                            u64::from_le_bytes(*p) | 0x2020_2020_2020_2020
                                == u64::from_le_bytes(*b"content-")
                        }),
                        b'l' => rest.get(1).is_none_or(|&b| !crate::chars::is_token(b)),
                        _ => false,
                    };
                    if maybe_cl {
                        let line = rest.get(..k).unwrap_or_default();
                        content_length_candidate(line, pos, &mut st.cl)?;
                    }
                }
                st.started = true;
                pos += k + 1;
                rest = rest.get(k + 1..).unwrap_or_default();
            }
        }
    };
    let body = st.cl.ok_or(Error::MissingContentLength)?;
    if body > limits.max_body_size {
        return Err(Error::BodyTooLarge {
            size: body,
            limit: limits.max_body_size,
        });
    }
    let total = head_end.saturating_add(body);
    if total > limits.max_message_size {
        return Err(Error::MessageTooLarge {
            size: total,
            limit: limits.max_message_size,
        });
    }
    Ok(if buf.len() >= total {
        Status::Complete(total)
    } else {
        Status::Partial
    })
}

/// The single-pass parse of the head of the message at the start of `buf`, when it decides
/// the framing exactly as [`frame`] would: the head is complete and within the limits, and
/// every Content-Length agrees. `None` whenever that is not conclusive (head incomplete, any
/// error, any limit close); callers then frame and parse in two passes, which decides
/// exactly as before. Returns the head and the message's total length. The head is parsed
/// into `storage`'s entry list, which goes back to `storage` on `None`.
fn one_pass_head(
    buf: &[u8],
    limits: &Limits,
    storage: &mut impl EntrySource,
) -> Option<(ParsedHead, usize)> {
    let window = buf
        .len()
        .min(limits.max_message_size)
        .min(limits.max_head_size.saturating_add(1));
    let s = buf.get(..window)?;
    u32::try_from(buf.len().min(limits.max_message_size)).ok()?;
    let head = parse_head(s, limits, storage).ok()?;
    match framing_of(&head, s, window, limits) {
        Some(total) => Some((head, total)),
        None => {
            storage.put_back(head.into_entries());
            None
        }
    }
}

/// The total length of the message whose head `head` was parsed over `s` (`window` bytes),
/// when the framing rules decide it exactly as [`frame`] would ([`one_pass_head`]).
#[inline]
fn framing_of(head: &ParsedHead, s: &[u8], window: usize, limits: &Limits) -> Option<usize> {
    let he = head.he;
    let cl = he.content_length?;
    // frame(): the head ends within max_head_size + 1 bytes, every Content-Length agrees
    if !he.terminated || he.body_start > window {
        return None;
    }
    for e in head.entries().iter().filter(|e| e.id == Hid::ContentLength) {
        // frame() reads one physical line: a folded Content-Length is for the two passes
        if !e.plain {
            return None;
        }
        let v = crate::chars::parse_u64(e.value.bytes(s))?;
        if usize::try_from(v).ok()? != cl {
            return None;
        }
    }
    let total = he.body_start.checked_add(cl)?;
    if cl > limits.max_body_size || total > limits.max_message_size {
        return None;
    }
    Some(total)
}

/// What [`frame_parse`] found at the start of the buffer.
// Returned by value once per message and matched at once: boxing the message would add an
// allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framed {
    /// More bytes are needed; nothing was taken from the buffer.
    Partial,
    /// The first message, parsed; its bytes were taken from the buffer.
    Message(Message),
    /// The first message is framed (its bytes, here, were taken from the buffer) but does
    /// not parse: the stream stays in step, the transport may answer 400 and go on.
    Malformed(Bytes, Error),
}

/// Frame and parse the first message of a stream buffer, in one pass over its head when
/// the whole head is there.
///
/// Same results and errors as [`frame_resume`] followed, on [`Status::Complete`], by
/// splitting the message off `buf` and [`Message::parse_with`] on it (a parse error gives
/// [`Framed::Malformed`] with the message's bytes), with `scan` reset after a message:
/// `buf` must start with a start line (skip keep-alives first, [`keepalive_len`]); an error
/// is a framing error (the stream cannot be resynchronised) and leaves `buf` as it was.
///
/// When `scan` is fresh and the head is complete, the head is parsed once and the framing
/// rules are checked on the result instead of scanning it twice; a head that is not
/// complete yet is measured by the resumable scan (kept in `scan`), so bytes arriving a few
/// at a time cost linear time, as with [`frame_resume`].
///
/// ```
/// use mcptt_sip::{BytesMut, FrameScan, Framed, Limits, frame_parse};
/// let limits = Limits::default();
/// let mut scan = FrameScan::default();
/// let mut buf = BytesMut::from(&b"OPTIONS sip:a@example.com SIP/2.0\r\nContent-Len"[..]);
/// assert_eq!(frame_parse(&mut buf, &limits, &mut scan)?, Framed::Partial);
/// buf.extend_from_slice(b"gth: 0\r\n\r\nOPTIONS");
/// let Framed::Message(m) = frame_parse(&mut buf, &limits, &mut scan)? else {
///     panic!("a whole message")
/// };
/// assert!(m.is_request());
/// assert_eq!(&buf[..], b"OPTIONS");
/// # Ok::<(), mcptt_sip::Error>(())
/// ```
///
/// # Errors
/// As [`frame`].
pub fn frame_parse(buf: &mut BytesMut, limits: &Limits, scan: &mut FrameScan) -> Result<Framed> {
    frame_parse_in(buf, limits, scan, &mut Fresh)
}

/// [`frame_parse`], building the header index of a parsed message in `storage` instead of
/// a fresh allocation (see [`HeaderStorage`]).
///
/// Same results and errors as [`frame_parse`], whatever `storage` held before. When it
/// returns [`Framed::Message`] the storage has moved into the message and `storage` is left
/// empty: take it back with [`Message::into_storage`] when done with the message. On every
/// other outcome (partial, malformed, error) `storage` keeps its allocation (unless it grew
/// above [`HeaderStorage::MAX_RETAINED_LINES`] lines, when it is freed).
///
/// ```
/// use mcptt_sip::{BytesMut, FrameScan, Framed, HeaderStorage, Limits, frame_parse_with_storage};
/// let limits = Limits::default();
/// let (mut scan, mut storage) = (FrameScan::default(), HeaderStorage::new());
/// let one = &b"OPTIONS sip:a@example.com SIP/2.0\r\nCall-ID: c\r\nContent-Length: 0\r\n\r\n"[..];
/// let mut buf = BytesMut::from(&one.repeat(3)[..]);
/// let mut n = 0;
/// while let Framed::Message(m) = frame_parse_with_storage(&mut buf, &limits, &mut scan, &mut storage)? {
///     assert_eq!(m.call_id(), Some("c"));
///     n += 1;
///     storage = m.into_storage(); // the next message's index reuses this one's allocation
/// }
/// assert_eq!((n, buf.len()), (3, 0));
/// # Ok::<(), mcptt_sip::Error>(())
/// ```
///
/// # Errors
/// As [`frame`].
pub fn frame_parse_with_storage(
    buf: &mut BytesMut,
    limits: &Limits,
    scan: &mut FrameScan,
    storage: &mut HeaderStorage,
) -> Result<Framed> {
    frame_parse_in(buf, limits, scan, storage)
}

/// [`frame_parse_with_storage`] with either kind of storage.
#[inline]
fn frame_parse_in(
    buf: &mut BytesMut,
    limits: &Limits,
    scan: &mut FrameScan,
    storage: &mut impl EntrySource,
) -> Result<Framed> {
    if *scan == FrameScan::default()
        && !matches!(buf.first(), Some(b'\r' | b'\n'))
        && let Some((head, total)) = one_pass_head(buf, limits, storage)
    {
        if buf.len() >= total {
            // (the bytes of a message that does not parse come back with the error)
            let bytes = buf.split_to(total).freeze();
            return Ok(
                match Message::finish(head, bytes, storage, |Failed(e, b)| (e, b)) {
                    Ok(m) => Framed::Message(m),
                    Err((e, bytes)) => Framed::Malformed(bytes, e),
                },
            );
        }
        // the body is not all there yet: the framing scan below says so
        storage.put_back(head.into_entries());
    }
    match frame_resume(buf, limits, scan)? {
        Status::Partial => Ok(Framed::Partial),
        Status::Complete(n) => {
            scan.reset();
            let bytes = buf.split_to(n).freeze();
            Ok(match Message::parse_in(bytes.clone(), limits, storage) {
                Ok(m) => Framed::Message(m),
                Err(e) => Framed::Malformed(bytes, e),
            })
        }
    }
}

/// How many CR/LF bytes (RFC 5626 keep-alives, RFC 3261 §7.5 leading CRLFs) start `buf`.
#[must_use]
pub fn keepalive_len(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count()
}

/// Turns a byte stream into messages: push chunks of any size, take whole messages.
///
/// CRLF keep-alives between messages are skipped (RFC 5626 §4.4.1); [`Framer::take_pings`]
/// says how many double-CRLF pings arrived, for the transport to answer with CRLF pongs. After an error the stream cannot be
/// resynchronised: close the connection (a 400/513 may be sent first).
///
/// ```
/// use mcptt_sip::{Framer, Limits};
/// let mut f = Framer::new(Limits::default());
/// f.push(b"\r\n\r\nOPTIONS sip:a@example.com SIP/2.0\r\nContent-Len");
/// assert!(f.next_message()?.is_none());
/// f.push(b"gth: 0\r\n\r\n");
/// let m = f.next_message()?.expect("a whole message");
/// assert!(m.is_request());
/// # Ok::<(), mcptt_sip::Error>(())
/// ```
#[derive(Debug)]
pub struct Framer {
    buf: BytesMut,
    limits: Limits,
    error: Option<Error>,
    /// Keep-alive state between messages: CR/LF bytes seen in the current run.
    crlf_run: u8,
    pings: usize,
    /// Progress of the framing scan of the buffered message.
    scan: Scan,
    /// The buffered message's head, parsed in one pass, and its total length: waiting for
    /// the rest of its body.
    pending: Option<(ParsedHead, usize)>,
}

impl Framer {
    /// A framer with these limits.
    #[must_use]
    pub fn new(limits: Limits) -> Self {
        Self {
            buf: BytesMut::new(),
            limits,
            error: None,
            crlf_run: 0,
            pings: 0,
            scan: Scan::default(),
            pending: None,
        }
    }

    /// Count the keep-alive bytes at the start of `bytes` (between messages) and return how
    /// many there are. A double CRLF is a ping (RFC 5626 §4.4.1).
    fn skip_keepalives(&mut self, bytes: &[u8]) -> usize {
        let n = keepalive_len(bytes);
        for &b in bytes.get(..n).unwrap_or_default() {
            // the run follows CR LF CR LF; anything else starts over
            let expect = if self.crlf_run.is_multiple_of(2) {
                b'\r'
            } else {
                b'\n'
            };
            self.crlf_run = if b == expect {
                self.crlf_run + 1
            } else {
                u8::from(b == b'\r')
            };
            if self.crlf_run == 4 {
                self.pings += 1;
                self.crlf_run = 0;
            }
        }
        n
    }

    /// How many double-CRLF keep-alive pings (RFC 5626 §4.4.1) were skipped since the last
    /// call; the transport answers each with a single CRLF pong.
    pub fn take_pings(&mut self) -> usize {
        std::mem::take(&mut self.pings)
    }

    /// Append received bytes. Nothing is buffered beyond the current message's limits: once a
    /// limit is broken the framer keeps the error (returned by [`Framer::next_message`]) and
    /// drops further input.
    pub fn push(&mut self, mut chunk: &[u8]) {
        if self.error.is_some() {
            return;
        }
        if self.buf.is_empty() {
            let n = self.skip_keepalives(chunk);
            chunk = chunk.get(n..).unwrap_or_default();
        }
        if chunk.is_empty() {
            return;
        }
        if self.buf.len() + chunk.len() > self.limits.max_message_size {
            // Only buffer past the limit if what is buffered already holds a whole message
            // (then the caller is draining pipelined messages).
            let skip = keepalive_len(&self.buf);
            match frame(self.buf.get(skip..).unwrap_or_default(), &self.limits) {
                Ok(Status::Complete(_)) => {}
                Ok(Status::Partial) => {
                    let size = self.buf.len() + chunk.len();
                    self.error = Some(Error::MessageTooLarge {
                        size,
                        limit: self.limits.max_message_size,
                    });
                    self.buf.clear();
                    return;
                }
                Err(e) => {
                    self.error = Some(e);
                    self.buf.clear();
                    return;
                }
            }
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The next whole message, `Ok(None)` if more bytes are needed.
    ///
    /// # Errors
    /// A framing error ([`frame`]) or a parse error ([`Message::parse_with`]); the error is
    /// sticky.
    pub fn next_message(&mut self) -> Result<Option<Message>> {
        self.next_in(&mut Fresh)
    }

    /// [`Framer::next_message`], building the header index of the message in `storage`
    /// instead of a fresh allocation (see [`HeaderStorage`]).
    ///
    /// Same results and errors as [`Framer::next_message`], whatever `storage` held before.
    /// When a message comes out, the storage has moved into it (`storage` is left empty, or
    /// it went into a head waiting for the rest of its body on an earlier call): take it back
    /// with [`Message::into_storage`] when done with the message. Otherwise `storage` keeps
    /// its allocation (unless it grew above [`HeaderStorage::MAX_RETAINED_LINES`] lines, when
    /// it is freed).
    ///
    /// ```
    /// use mcptt_sip::{Framer, HeaderStorage, Limits};
    /// let mut f = Framer::new(Limits::default());
    /// let mut storage = HeaderStorage::new();
    /// f.push(&b"OPTIONS sip:a@example.com SIP/2.0\r\nCall-ID: c\r\nContent-Length: 0\r\n\r\n".repeat(3));
    /// let mut n = 0;
    /// while let Some(m) = f.next_message_with_storage(&mut storage)? {
    ///     assert_eq!(m.call_id(), Some("c"));
    ///     n += 1;
    ///     storage = m.into_storage();
    /// }
    /// assert_eq!(n, 3);
    /// # Ok::<(), mcptt_sip::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Framer::next_message`].
    pub fn next_message_with_storage(
        &mut self,
        storage: &mut HeaderStorage,
    ) -> Result<Option<Message>> {
        self.next_in(storage)
    }

    /// [`Framer::next_message`] with either kind of storage.
    #[inline]
    fn next_in(&mut self, storage: &mut impl EntrySource) -> Result<Option<Message>> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let skip = keepalive_len(&self.buf);
        if skip > 0 {
            let prefix = self.buf.split_to(skip);
            self.skip_keepalives(&prefix);
            self.scan = Scan::default();
        }
        if self.buf.is_empty() {
            return Ok(None);
        }
        // a message starts: the next keep-alive run starts afresh
        self.crlf_run = 0;
        if let Some((_, total)) = &self.pending {
            if self.buf.len() < *total {
                return Ok(None);
            }
            let total = *total;
            return match self.pending.take() {
                Some((head, _)) => Ok(Some(self.take_parsed(head, total, storage)?)),
                None => Ok(None),
            };
        }
        // Until the framing scan has found the end of the head, a buffered empty line lets the
        // head be parsed once instead of scanned to its end and then parsed.
        if self.scan.head_end.is_none()
            && let Some((head, total)) = self.one_pass(storage)
        {
            if self.buf.len() < total {
                self.pending = Some((head, total));
                return Ok(None);
            }
            return Ok(Some(self.take_parsed(head, total, storage)?));
        }
        match frame_from(&self.buf, &self.limits, &mut self.scan) {
            Ok(Status::Partial) => Ok(None),
            Ok(Status::Complete(n)) => {
                self.scan = Scan::default();
                let bytes = self.buf.split_to(n).freeze();
                match Message::parse_in(bytes, &self.limits, storage) {
                    Ok(m) => Ok(Some(m)),
                    Err(e) => {
                        self.error = Some(e.clone());
                        self.buf.clear();
                        Err(e)
                    }
                }
            }
            Err(e) => {
                self.error = Some(e.clone());
                self.buf.clear();
                Err(e)
            }
        }
    }

    /// The single-pass path: when the buffered head is complete, parse it once (the header
    /// index the framing scan would only have measured) and check the framing rules on the
    /// result. `None` whenever that is not conclusive (head incomplete, any error, any limit
    /// close): the caller then takes the two-pass path, which decides exactly as before, so
    /// errors and their order are unchanged. Returns the head and the message's total length.
    fn one_pass(&self, storage: &mut impl EntrySource) -> Option<(ParsedHead, usize)> {
        let limits = &self.limits;
        let window = self
            .buf
            .len()
            .min(limits.max_message_size)
            .min(limits.max_head_size.saturating_add(1));
        // cheap test that an empty CRLF line is there before parsing anything
        EMPTY_LINE.find(self.buf.get(..window)?)?;
        one_pass_head(&self.buf, limits, storage)
    }

    /// Hand out the first `total` buffered bytes as the message whose head is parsed.
    fn take_parsed(
        &mut self,
        head: ParsedHead,
        total: usize,
        storage: &mut impl EntrySource,
    ) -> Result<Message> {
        self.scan = Scan::default();
        let bytes = self.buf.split_to(total).freeze();
        Message::finish(head, bytes, storage, |f| f.0).inspect_err(|e| {
            self.error = Some(e.clone());
            self.buf.clear();
        })
    }

    /// Bytes buffered and not yet returned as messages.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The limits in force.
    #[must_use]
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
}
