//! Requests, responses, the datagram-style parser, the encoder and the builders.

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use crate::error::{Error, Result};
use crate::headers::{self, Entry, EntrySource, Fresh, HeaderStorage, Headers};
use crate::limits::Limits;
use crate::method::{Method, reason_phrase};
use crate::names::Hid;
use crate::span::Span;
use crate::uri::Uri;

/// What requests and responses share: the buffer, the start line, the header index and the body.
#[derive(Clone)]
pub(crate) struct Head {
    /// The start line without its terminator.
    start_line: Span,
    headers: Headers,
    /// Body within `buf`, unless replaced.
    body: Span,
    body_override: Option<Bytes>,
    /// A replaced start line (without its terminator).
    start_override: Option<Box<str>>,
    /// Whether an empty line ended the header section.
    terminated: bool,
    /// The first Content-Length value, as parsed.
    declared_len: Option<usize>,
}

impl Head {
    fn is_clean(&self) -> bool {
        !self.headers.is_dirty() && self.body_override.is_none() && self.start_override.is_none()
    }

    fn start_line(&self) -> &str {
        match &self.start_override {
            Some(s) => s,
            None => self.headers.span_str(self.start_line),
        }
    }

    #[inline]
    fn body(&self) -> Bytes {
        match &self.body_override {
            Some(b) => b.clone(),
            None => self.headers.buf().slice(self.body.range()),
        }
    }

    fn body_len(&self) -> usize {
        self.body_override
            .as_ref()
            .map_or(self.body.len(), Bytes::len)
    }

    /// Appends the wire bytes to `out` (a `Vec` or, without a copy through a `Vec` first, a
    /// `BytesMut`).
    fn encode_vec(&self, out: &mut impl BufMut) {
        if self.is_clean() {
            out.put_slice(self.headers.buf());
            return;
        }
        match &self.start_override {
            Some(s) => out.put_slice(s.as_bytes()),
            None => out.put_slice(self.start_line.bytes(self.headers.buf())),
        }
        out.put_slice(b"\r\n");
        self.headers.encode_lines(out);
        out.put_slice(b"\r\n");
        match &self.body_override {
            Some(b) => out.put_slice(b),
            None => out.put_slice(self.body.bytes(self.headers.buf())),
        }
    }

    fn encode(&self) -> Bytes {
        if self.is_clean() {
            return self.headers.buf().clone();
        }
        let mut v = Vec::with_capacity(self.headers.buf().len() + 64);
        self.encode_vec(&mut v);
        Bytes::from(v)
    }

    fn encode_into(&self, out: &mut BytesMut) {
        if self.is_clean() {
            out.extend_from_slice(self.headers.buf());
            return;
        }
        // Written in place (room for the same estimate `encode` starts its `Vec` with).
        out.reserve(self.headers.buf().len() + 64);
        self.encode_vec(out);
    }

    fn set_body(&mut self, content_type: Option<&str>, body: Bytes) -> Result<()> {
        if let Some(ct) = content_type {
            self.headers.replace("Content-Type", ct)?;
        } else if body.is_empty() {
            self.headers.remove("Content-Type");
        }
        self.headers
            .replace("Content-Length", &body.len().to_string())?;
        self.body_override = Some(body);
        Ok(())
    }

    fn eq(&self, other: &Self) -> bool {
        self.headers == other.headers && self.body() == other.body()
    }
}

/// A SIP request (RFC 3261 §7.1).
#[derive(Clone)]
pub struct Request {
    method: Method,
    uri: Uri,
    head: Head,
}

/// A SIP response (RFC 3261 §7.2).
#[derive(Clone)]
pub struct Response {
    code: u16,
    reason: Span,
    head: Head,
}

/// A SIP request or response.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

fn start_err(offset: usize, expected: &'static str) -> Error {
    Error::StartLine { offset, expected }
}

/// Check `SIP/x.y` at `v`; `Ok(())` only for `SIP/2.0`.
fn check_version(v: &[u8], offset: usize) -> Result<()> {
    // the version every SIP/2.0 peer writes, in one comparison; the grammar below decides the rest
    if v == b"SIP/2.0" {
        return Ok(());
    }
    let Some(rest) = v
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case(b"SIP/"))
        .and_then(|_| v.get(4..))
    else {
        return Err(start_err(offset, "SIP-Version (SIP/2.0)"));
    };
    let dot = rest.iter().position(|&b| b == b'.');
    let ok_shape = dot.is_some_and(|d| {
        let (maj, min) = (
            rest.get(..d).unwrap_or_default(),
            rest.get(d + 1..).unwrap_or_default(),
        );
        !maj.is_empty() && !min.is_empty() && maj.iter().chain(min).all(u8::is_ascii_digit)
    });
    if !ok_shape {
        return Err(start_err(offset, "SIP-Version (SIP/2.0)"));
    }
    if rest != b"2.0" {
        return Err(Error::Version { offset });
    }
    Ok(())
}

/// The error of a head that is not UTF-8 from byte `at` on (naming the header whose line
/// holds it); `entries` go back to `storage`.
#[cold]
#[inline(never)]
fn utf8_error(
    at: usize,
    buf: Bytes,
    entries: Vec<Entry>,
    storage: &mut impl EntrySource,
) -> Failed {
    let name = entries
        .iter()
        .find(|x| (x.name.start as usize..x.line_end as usize).contains(&at))
        .and_then(|x| std::str::from_utf8(x.name.bytes(&buf)).ok())
        .unwrap_or_default()
        .to_owned();
    storage.put_back(entries);
    let e = Error::Header {
        name,
        offset: at,
        expected: "UTF-8 text",
    };
    Failed(e, buf)
}

/// The error of a Request-URI at `us` that does not parse (`err`) or carries headers
/// (`None`); the head's entries go back to `storage`.
#[cold]
#[inline(never)]
fn uri_error(
    err: Option<Error>,
    us: Span,
    buf: Bytes,
    entries: Vec<Entry>,
    storage: &mut impl EntrySource,
) -> Failed {
    storage.put_back(entries);
    let e = match err {
        Some(e) => e.shifted(us.start as usize),
        None => Error::Uri {
            offset: us.start as usize,
            expected: "a Request-URI without headers (RFC 3261 §19.1.1)",
        },
    };
    Failed(e, buf)
}

/// A message that was framed but does not parse: the error, and the message's bytes.
pub(crate) struct Failed(pub(crate) Error, pub(crate) Bytes);

impl Message {
    /// Parse one message from a datagram-style buffer with the default [`Limits`].
    ///
    /// The buffer must start with the start line (stream keep-alives are the framer's to skip,
    /// RFC 3261 §7.5), so an unmodified message encodes byte for byte as received. The body is
    /// the Content-Length bytes after the header
    /// section; bytes after that are ignored (RFC 3261 §18.3, RFC 4475 `dblreq`). Without a
    /// Content-Length the body is the rest of the buffer. If Content-Length announces more bytes
    /// than there are, the message keeps the bytes that are there and [`Message::validate`]
    /// reports [`Error::BodyTruncated`] (400). A header section that runs to the end of the
    /// buffer without an empty line is accepted (RFC 5118's §4.10 messages); stream framing
    /// ([`frame`](crate::frame)) requires the empty line.
    ///
    /// This is the fast path: it checks the start line, the Request-URI, the header lines
    /// (names are tokens, text is UTF-8) and the scalar headers Content-Length, CSeq (number)
    /// and Max-Forwards. [`Message::validate`] type-checks every other known header.
    ///
    /// # Errors
    /// Malformed input ([`Error::StartLine`], [`Error::Version`], [`Error::Header`],
    /// [`Error::Uri`]) or an exceeded limit.
    #[inline]
    pub fn parse(buf: Bytes) -> Result<Self> {
        Self::parse_with(buf, &Limits::default())
    }

    /// [`Message::parse`] with explicit limits.
    ///
    /// # Errors
    /// As [`Message::parse`].
    #[inline]
    pub fn parse_with(buf: Bytes, limits: &Limits) -> Result<Self> {
        Self::parse_in(buf, limits, &mut Fresh)
    }

    /// [`Message::parse_with`], building the header index in `storage` instead of a fresh
    /// allocation (see [`HeaderStorage`]).
    ///
    /// Same results and errors as [`Message::parse_with`], whatever `storage` held before.
    /// On success the storage moves into the message and `storage` is left empty: take it
    /// back with [`Message::into_storage`] (or [`Request::into_storage`],
    /// [`Response::into_storage`], [`Headers::into_storage`]) when done with the message.
    /// On error `storage` keeps its allocation (unless it grew above
    /// [`HeaderStorage::MAX_RETAINED_LINES`] lines, when it is freed).
    ///
    /// ```
    /// use mcptt_sip::{Bytes, HeaderStorage, Limits, Message};
    /// let limits = Limits::default();
    /// let wire = Bytes::from_static(
    ///     b"OPTIONS sip:a@example.com SIP/2.0\r\nCall-ID: c1\r\nContent-Length: 0\r\n\r\n",
    /// );
    /// let mut storage = HeaderStorage::with_capacity(16);
    /// let msg = Message::parse_with_storage(wire, &limits, &mut storage)?;
    /// assert_eq!(storage.capacity(), 0); // moved into `msg`
    /// assert_eq!(msg.call_id(), Some("c1"));
    /// storage = msg.into_storage();
    /// assert_eq!(storage.capacity(), 16); // ready for the next message
    /// # Ok::<(), mcptt_sip::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Message::parse`].
    #[inline]
    pub fn parse_with_storage(
        buf: Bytes,
        limits: &Limits,
        storage: &mut HeaderStorage,
    ) -> Result<Self> {
        Self::parse_in(buf, limits, storage)
    }

    /// [`Message::parse_with_storage`] with either kind of storage.
    #[inline]
    pub(crate) fn parse_in(
        buf: Bytes,
        limits: &Limits,
        storage: &mut impl EntrySource,
    ) -> Result<Self> {
        if buf.len() > limits.max_message_size || u32::try_from(buf.len()).is_err() {
            return Err(Error::MessageTooLarge {
                size: buf.len(),
                limit: limits.max_message_size,
            });
        }
        let parsed = parse_head(&buf, limits, storage)?;
        Self::finish(parsed, buf, storage, |f| f.0)
    }

    /// Give up the message and keep its header-line storage for another parse (see
    /// [`HeaderStorage`] and [`Message::parse_with_storage`]).
    #[must_use]
    #[inline(always)]
    pub fn into_storage(self) -> HeaderStorage {
        match self {
            Self::Request(r) => r.into_storage(),
            Self::Response(r) => r.into_storage(),
        }
    }

    /// Build the message from a head parsed over the start of `buf` ([`parse_head`]): the
    /// body is the Content-Length bytes after the head that `buf` holds. On error the head's
    /// entry list goes back to `storage`, and the error comes with `buf` (cut after the
    /// body: the message's bytes, for [`Framed::Malformed`](crate::Framed::Malformed)).
    /// `fail` makes the error returned from a [`Failed`] (called on the cold error paths
    /// only: the usual path does not carry the bytes along).
    #[inline]
    pub(crate) fn finish<E>(
        p: ParsedHead,
        mut buf: Bytes,
        storage: &mut impl EntrySource,
        fail: impl FnOnce(Failed) -> E,
    ) -> Result<Self, E> {
        let ParsedHead {
            kind,
            line_end,
            entries,
            index,
            he,
        } = p;
        let available = buf.len().saturating_sub(he.body_start);
        let body_len = match he.content_length {
            Some(n) => n.min(available),
            None => available,
        };
        let msg_end = he.body_start + body_len;
        buf.truncate(msg_end);
        // The head must be UTF-8 (RFC 3261 §7.3.1 TEXT-UTF8): checked once here, it becomes the
        // headers' text, which every value and typed accessor then reads without a check.
        let text = match ByteString::try_from(buf.slice(..he.body_start)) {
            Ok(text) => text,
            Err(e) => return Err(fail(utf8_error(e.valid_up_to(), buf, entries, storage))),
        };
        // The message is built in one expression per kind (the Request-URI parsed first), so
        // it is written where it is returned instead of being moved there (it is large).
        let head = |headers| Head {
            headers,
            start_line: Span::new(0, line_end),
            body: Span::new(he.body_start, msg_end),
            body_override: None,
            start_override: None,
            terminated: he.terminated,
            declared_len: he.content_length,
        };
        match kind {
            Kind::Req(method, us) => match Uri::from_text(us.sub(&text)) {
                Ok(uri) if !uri.has_headers() => Ok(Self::Request(Request {
                    method,
                    uri,
                    head: head(Headers::from_parts_indexed(buf, text, entries, index)),
                })),
                other => Err(fail(uri_error(other.err(), us, buf, entries, storage))),
            },
            Kind::Resp(code, reason) => Ok(Self::Response(Response {
                code,
                reason,
                head: head(Headers::from_parts_indexed(buf, text, entries, index)),
            })),
        }
    }

    pub(crate) fn head(&self) -> &Head {
        match self {
            Self::Request(r) => &r.head,
            Self::Response(r) => &r.head,
        }
    }

    fn head_mut(&mut self) -> &mut Head {
        match self {
            Self::Request(r) => &mut r.head,
            Self::Response(r) => &mut r.head,
        }
    }

    /// Whether this is a request.
    #[must_use]
    pub fn is_request(&self) -> bool {
        matches!(self, Self::Request(_))
    }

    /// The request, if this is one.
    #[must_use]
    pub fn as_request(&self) -> Option<&Request> {
        match self {
            Self::Request(r) => Some(r),
            Self::Response(_) => None,
        }
    }

    /// The response, if this is one.
    #[must_use]
    pub fn as_response(&self) -> Option<&Response> {
        match self {
            Self::Response(r) => Some(r),
            Self::Request(_) => None,
        }
    }

    /// The request, if this is one.
    #[must_use]
    pub fn into_request(self) -> Option<Request> {
        match self {
            Self::Request(r) => Some(r),
            Self::Response(_) => None,
        }
    }

    /// The response, if this is one.
    #[must_use]
    pub fn into_response(self) -> Option<Response> {
        match self {
            Self::Response(r) => Some(r),
            Self::Request(_) => None,
        }
    }

    /// Type-check the message: every known header against its grammar, the CSeq method
    /// against the request method, and Content-Length against the body present.
    ///
    /// # Errors
    /// The first problem found, with its offset in the message.
    pub fn validate(&self) -> Result<()> {
        crate::validate::validate(self)
    }
}

macro_rules! common_methods {
    ($t:ty) => {
        impl $t {
            /// The headers.
            #[must_use]
            pub fn headers(&self) -> &Headers {
                &self.head().headers
            }

            /// The headers, for editing; the message is re-encoded from them afterwards.
            pub fn headers_mut(&mut self) -> &mut Headers {
                &mut self.head_mut().headers
            }

            /// The body (zero-copy sub-slice of the message when parsed).
            #[must_use]
            #[inline]
            pub fn body(&self) -> Bytes {
                self.head().body()
            }

            /// The body length.
            #[must_use]
            pub fn body_len(&self) -> usize {
                self.head().body_len()
            }

            /// Replace the body, setting Content-Length and (if given) Content-Type; an empty body
            /// without a content type also removes Content-Type.
            ///
            /// # Errors
            /// [`Error::ApiMisuse`] if `content_type` contains CR or LF.
            pub fn set_body(&mut self, content_type: Option<&str>, body: Bytes) -> Result<()> {
                self.head_mut().set_body(content_type, body)
            }

            /// The first Content-Length value as parsed, if there was one.
            #[must_use]
            pub fn declared_content_length(&self) -> Option<usize> {
                self.head().declared_len
            }

            /// Whether an empty line ended the header section (always true for built messages
            /// and stream-framed ones).
            #[must_use]
            pub fn head_terminated(&self) -> bool {
                self.head().terminated
            }

            /// Encode to wire bytes. An unmodified parsed message encodes byte for byte as
            /// received (zero-copy); an edited one re-emits every untouched line as received.
            #[must_use]
            pub fn encode(&self) -> Bytes {
                self.head().encode()
            }

            /// Append the wire bytes to `out`.
            pub fn encode_into(&self, out: &mut BytesMut) {
                self.head().encode_into(out)
            }

            /// The start line as written (without its line terminator).
            #[must_use]
            pub fn start_line(&self) -> &str {
                self.head().start_line()
            }
        }
    };
}

common_methods!(Message);
common_methods!(Request);
common_methods!(Response);

impl Request {
    pub(crate) fn head(&self) -> &Head {
        &self.head
    }

    fn head_mut(&mut self) -> &mut Head {
        &mut self.head
    }

    /// Parse one request (see [`Message::parse`]).
    ///
    /// # Errors
    /// As [`Message::parse`], or [`Error::StartLine`] if the message is a response.
    pub fn parse(buf: Bytes) -> Result<Self> {
        Message::parse(buf)?
            .into_request()
            .ok_or_else(|| start_err(0, "a request"))
    }

    /// Start building a request; see [`RequestBuilder`].
    #[must_use]
    pub fn builder(method: Method, uri: Uri) -> RequestBuilder {
        RequestBuilder {
            method,
            uri,
            headers: Lines::default(),
            body: None,
            error: None,
        }
    }

    /// The method.
    #[must_use]
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The Request-URI.
    #[must_use]
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// Replace the Request-URI (e.g. when a proxy retargets the request, RFC 3261 §16.5).
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] if the URI carries headers, which a Request-URI may not
    /// (RFC 3261 §19.1.1).
    pub fn set_uri(&mut self, uri: Uri) -> Result<()> {
        if uri.has_headers() {
            return Err(Error::ApiMisuse("a Request-URI cannot carry headers"));
        }
        self.head.start_override = Some(format!("{} {} SIP/2.0", self.method, uri).into());
        self.uri = uri;
        Ok(())
    }

    /// Type-check the request (see [`Message::validate`]).
    ///
    /// # Errors
    /// As [`Message::validate`].
    pub fn validate(&self) -> Result<()> {
        crate::validate::validate_request(self)
    }

    /// Give up the request and keep its header-line storage for another parse (see
    /// [`HeaderStorage`] and [`Message::parse_with_storage`]).
    #[must_use]
    #[inline(always)]
    pub fn into_storage(self) -> HeaderStorage {
        self.head.headers.into_storage()
    }
}

impl Response {
    pub(crate) fn head(&self) -> &Head {
        &self.head
    }

    fn head_mut(&mut self) -> &mut Head {
        &mut self.head
    }

    /// Parse one response (see [`Message::parse`]).
    ///
    /// # Errors
    /// As [`Message::parse`], or [`Error::StartLine`] if the message is a request.
    pub fn parse(buf: Bytes) -> Result<Self> {
        Message::parse(buf)?
            .into_response()
            .ok_or_else(|| start_err(0, "a response"))
    }

    /// The status code.
    #[must_use]
    pub fn status(&self) -> u16 {
        self.code
    }

    /// Whether this is a provisional (1xx) response.
    #[must_use]
    pub fn is_provisional(&self) -> bool {
        self.code < 200
    }

    /// Whether this is a success (2xx) response.
    #[must_use]
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// Whether this is a final (2xx-6xx) response.
    #[must_use]
    pub fn is_final(&self) -> bool {
        self.code >= 200
    }

    /// The reason phrase as written (may be empty).
    #[must_use]
    pub fn reason(&self) -> &str {
        self.head.headers.span_str(self.reason)
    }

    /// Type-check the response (see [`Message::validate`]).
    ///
    /// # Errors
    /// As [`Message::validate`].
    pub fn validate(&self) -> Result<()> {
        crate::validate::validate_headers(&self.head.headers, None)?;
        crate::validate::check_body_len(&self.head)
    }

    /// Give up the response and keep its header-line storage for another parse (see
    /// [`HeaderStorage`] and [`Message::parse_with_storage`]).
    #[must_use]
    #[inline(always)]
    pub fn into_storage(self) -> HeaderStorage {
        self.head.headers.into_storage()
    }

    /// Start building a response; see [`ResponseBuilder`].
    #[must_use]
    pub fn builder(code: u16) -> ResponseBuilder {
        ResponseBuilder {
            code,
            reason: None,
            headers: Lines::default(),
            body: None,
            to_tag: None,
            error: None,
        }
    }

    /// Start building a response to `req`, with the headers [`Response::from_request`] copies;
    /// add a To tag with [`ResponseBuilder::to_tag`].
    #[must_use]
    pub fn builder_for(req: &Request, code: u16) -> ResponseBuilder {
        let mut b = Self::builder(code);
        for e in req.head.headers.entries() {
            if copied(req, code, e.id) {
                let h = &req.head.headers;
                // Folded values are copied unfolded (line breaks become spaces).
                let mut v = String::new();
                push_unfolded(&mut v, h.entry_value(e));
                if let Err(err) = b.headers.push(h.entry_name(e), &v) {
                    b.error.get_or_insert(err);
                }
            }
        }
        b
    }

    /// A response to `req` with the default reason phrase, copying Via, From, To, Call-ID and
    /// CSeq (RFC 3261 §8.2.6.2), Timestamp in a 100 (§8.2.6.1), and Record-Route in 101-299
    /// responses to INVITE, SUBSCRIBE and REFER (§12.1.1), with `Content-Length: 0`. Use
    /// [`Response::builder_for`] to add a To tag (which every response but 100 to a request
    /// without one needs, §8.2.6.2), other headers or a body.
    #[must_use]
    pub fn from_request(req: &Request, code: u16) -> Self {
        let reason = reason_phrase(code);
        // Built as a String from the request's text (every header value is UTF-8: parsed
        // values were checked, pushed ones are `&str`) and our own ASCII: no UTF-8 check.
        let mut v = String::with_capacity(req.head.headers.buf().len().min(1024));
        v.push_str("SIP/2.0 ");
        v.push_str(itoa::Buffer::new().format(code));
        v.push(' ');
        v.push_str(reason);
        let line_end = v.len();
        v.push_str("\r\n");
        let mut entries = Vec::with_capacity(8);
        let src = &req.head.headers;
        for e in src.entries() {
            if copied(req, code, e.id) {
                let ns = v.len();
                v.push_str(src.entry_name(e));
                let ne = v.len();
                v.push_str(": ");
                let vs = v.len();
                push_unfolded(&mut v, src.entry_value(e));
                let ve = v.len();
                v.push_str("\r\n");
                entries.push(Entry {
                    name: Span::new(ns, ne),
                    value: Span::new(vs, ve),
                    line_end: v.len() as u32,
                    id: e.id,
                    plain: true,
                });
            }
        }
        let ns = v.len();
        v.push_str("Content-Length: 0\r\n");
        entries.push(Entry {
            name: Span::new(ns, ns + 14),
            value: Span::new(ns + 16, ns + 17),
            line_end: v.len() as u32,
            id: Hid::ContentLength,
            plain: true,
        });
        v.push_str("\r\n");
        let end = v.len();
        let text = ByteString::from(v);
        let buf = text.as_bytes().clone();
        Self {
            code,
            reason: Span::new(line_end - reason.len(), line_end),
            head: Head {
                headers: Headers::from_parts(buf, text, entries),
                start_line: Span::new(0, line_end),
                body: Span::new(end, end),
                body_override: None,
                start_override: None,
                terminated: true,
                declared_len: Some(0),
            },
        }
    }
}

impl Response {
    /// Writes the head of [`Response::from_request`]`(req, code)` straight into `out`, without
    /// building a message: the status line and the copied header lines (Via, From, To,
    /// Call-ID, CSeq, and Timestamp or Record-Route where `from_request` copies them; folded
    /// values unfolded), each ended by CRLF, but **not** its `Content-Length: 0` line nor the
    /// empty line, so that the caller appends its own header lines and then ends the head
    /// (`Content-Length: 0\r\n\r\n`, or a body's). With `to_tag`, `;tag=` and it follow the
    /// first `To` value (RFC 3261 §8.2.6.2: give it only when the request's `To` has no tag).
    ///
    /// ```
    /// use mcptt_sip::{Request, Response};
    /// let req = Request::parse(bytes::Bytes::from_static(
    ///     b"OPTIONS sip:b@example.org SIP/2.0\r\nVia: SIP/2.0/TLS a.example.org;branch=z9hG4bK1\r\n\
    /// From: <sip:a@example.org>;tag=1\r\nTo: <sip:b@example.org>\r\nCall-ID: c\r\n\
    /// CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
    /// ))?;
    /// let mut out = Vec::new();
    /// Response::encode_head_for(&req, 200, None, &mut out);
    /// out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    /// assert_eq!(out, Response::from_request(&req, 200).encode());
    /// out.clear();
    /// Response::encode_head_for(&req, 200, Some("x7"), &mut out);
    /// out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    /// let resp = Response::parse(bytes::Bytes::from(out))?;
    /// assert_eq!(resp.to()?.tag(), Some("x7"));
    /// # Ok::<(), mcptt_sip::Error>(())
    /// ```
    pub fn encode_head_for(req: &Request, code: u16, to_tag: Option<&str>, out: &mut Vec<u8>) {
        let src = &req.head.headers;
        // The copied lines (at most the request's head), the status line and the tag, plus
        // room for a few more lines: one allocation, without a pass to size the copy.
        out.reserve(src.text().len() + to_tag.map_or(0, str::len) + 256);
        if code == 200 {
            // the usual answer, its status line written out once
            out.extend_from_slice(b"SIP/2.0 200 OK\r\n");
        } else {
            push_status_line(code, out);
        }
        Self::copy_head_lines(req, code, to_tag, out);
    }

    /// The lines of `req` that a `code` response copies ([`Response::encode_head_for`]).
    fn copy_head_lines(req: &Request, code: u16, to_tag: Option<&str>, out: &mut Vec<u8>) {
        let src = &req.head.headers;
        let mut to_tag = to_tag;
        let buf: &[u8] = src.buf();
        // Lines written as `Name: value` CRLF with a plain value are what the copy writes:
        // they are copied raw, adjacent ones in one run (`run`: a range of `buf` not yet
        // written).
        let mut run = 0..0;
        for e in src.entries() {
            if !copied(req, code, e.id) {
                continue;
            }
            let (ns, ve, le) = (
                e.name.start as usize,
                e.value.end as usize,
                e.line_end as usize,
            );
            // as `entry_name_value` checks it, on the bytes: `Name: value` with a value
            let name_colon_value = e.value.start < e.value.end
                && buf.get(e.name.end as usize..e.value.start as usize) == Some(b": ");
            if e.plain && name_colon_value && buf.get(ve..le) == Some(b"\r\n") {
                if run.end != ns {
                    out.extend_from_slice(buf.get(run).unwrap_or_default());
                    run = ns..ns;
                }
                run.end = le;
                if e.id == Hid::To
                    && let Some(tag) = to_tag.take()
                {
                    // the tag goes between the value and its CRLF
                    out.extend_from_slice(buf.get(run.start..ve).unwrap_or_default());
                    out.extend_from_slice(b";tag=");
                    out.extend_from_slice(tag.as_bytes());
                    run = ve..le;
                }
                continue;
            }
            out.extend_from_slice(buf.get(run).unwrap_or_default());
            run = 0..0;
            // The usual `Name: value` is copied as one run (the name has no line break).
            match src.entry_name_value(e) {
                Some(line) if e.plain => out.extend_from_slice(line.as_bytes()),
                Some(line) => push_unfolded_bytes(out, line),
                None => {
                    out.extend_from_slice(src.entry_name(e).as_bytes());
                    out.extend_from_slice(b": ");
                    push_unfolded_bytes(out, src.entry_value(e));
                }
            }
            if e.id == Hid::To
                && let Some(tag) = to_tag.take()
            {
                out.extend_from_slice(b";tag=");
                out.extend_from_slice(tag.as_bytes());
            }
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(buf.get(run).unwrap_or_default());
    }
}

/// Append the status line of a `code` response (its reason phrase from [`reason_phrase`]).
fn push_status_line(code: u16, out: &mut Vec<u8>) {
    let reason = reason_phrase(code);
    if (100..1000).contains(&code) {
        // the usual three digits, with the text around them in one copy
        let d = |k: u16| b'0' + (code / k % 10) as u8;
        out.extend_from_slice(&[
            b'S',
            b'I',
            b'P',
            b'/',
            b'2',
            b'.',
            b'0',
            b' ',
            d(100),
            d(10),
            d(1),
            b' ',
        ]);
    } else {
        out.extend_from_slice(b"SIP/2.0 ");
        let mut digits = [0u8; 5];
        let mut i = digits.len();
        let mut n = code;
        while i > 0 {
            i -= 1;
            if let Some(d) = digits.get_mut(i) {
                *d = b'0' + (n % 10) as u8;
            }
            n /= 10;
            if n == 0 {
                break;
            }
        }
        out.extend_from_slice(digits.get(i..).unwrap_or_default());
        out.push(b' ');
    }
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// As `push_unfolded`, into bytes.
fn push_unfolded_bytes(out: &mut Vec<u8>, v: &str) {
    let b = v.as_bytes();
    let mut start = 0;
    while let Some(k) = crate::chars::find_cr_or_nl(b.get(start..).unwrap_or_default()) {
        let at = start + k;
        out.extend_from_slice(b.get(start..at).unwrap_or_default());
        let mut j = at;
        while matches!(b.get(j), Some(b'\r' | b'\n' | b' ' | b'\t')) {
            j += 1;
        }
        out.push(b' ');
        start = j;
    }
    out.extend_from_slice(b.get(start..).unwrap_or_default());
}

/// Which request headers a response copies: Via, From, To, Call-ID and CSeq (RFC 3261
/// §8.2.6.2), Timestamp in a 100 (§8.2.6.1), and Record-Route in 101-299 responses to
/// dialog-creating requests (INVITE, SUBSCRIBE, REFER: §12.1.1, RFC 6665 §4.2.1).
fn copied(req: &Request, code: u16, id: Hid) -> bool {
    match id {
        Hid::Via | Hid::From | Hid::To | Hid::CallId | Hid::CSeq => true,
        Hid::Timestamp => code == 100,
        Hid::RecordRoute => {
            (101..300).contains(&code)
                && matches!(
                    req.method,
                    Method::Invite | Method::Subscribe | Method::Refer
                )
        }
        _ => false,
    }
}

/// Append `v` with each folded line break (CR or LF and the CR, LF and white space after
/// it) replaced by a single space; runs without a line break are copied whole (memchr2).
fn push_unfolded(out: &mut String, v: &str) {
    let b = v.as_bytes();
    let mut start = 0;
    while let Some(k) = crate::chars::find_cr_or_nl(b.get(start..).unwrap_or_default()) {
        let at = start + k;
        // CR and LF are ASCII: both ends of the copied run are character boundaries
        out.push_str(v.get(start..at).unwrap_or_default());
        let mut j = at;
        while matches!(b.get(j), Some(b'\r' | b'\n' | b' ' | b'\t')) {
            j += 1;
        }
        out.push(' ');
        start = j;
    }
    out.push_str(v.get(start..).unwrap_or_default());
}

/// The header lines a builder collects, as text in one growing buffer (no copy of the lines
/// before per added line, no parse until `build`).
#[derive(Debug, Clone, Default)]
struct Lines {
    text: String,
    /// Per line: start, value start, value end, end (after its CRLF), which header.
    lines: Vec<(usize, usize, usize, usize, Hid)>,
}

impl Lines {
    /// Append `name: value` (value written in place, then checked and trimmed of LWS as
    /// [`Headers::push`] does).
    fn push(&mut self, name: &str, value: impl std::fmt::Display) -> Result<()> {
        use std::fmt::Write as _;
        if !crate::chars::is_token_str(name.as_bytes()) {
            return Err(Error::ApiMisuse("header name must be a token"));
        }
        let start = self.text.len();
        self.text.push_str(name);
        self.text.push_str(": ");
        let vs = self.text.len();
        // writing into a String cannot fail unless `Display` itself does
        let written = write!(self.text, "{value}");
        let v = self.text.get(vs..).unwrap_or_default();
        if written.is_err() || crate::chars::find_cr_or_nl(v.as_bytes()).is_some() {
            self.text.truncate(start);
            return Err(Error::ApiMisuse("header value must not contain CR or LF"));
        }
        let lead = v.len() - v.trim_start_matches([' ', '\t']).len();
        if lead > 0 {
            self.text.replace_range(vs..vs + lead, "");
        }
        let trimmed = self.text.trim_end_matches([' ', '\t']).len().max(vs);
        self.text.truncate(trimmed);
        let ve = self.text.len();
        self.text.push_str("\r\n");
        self.lines.push((
            start,
            vs,
            ve,
            self.text.len(),
            crate::names::lookup(name.as_bytes()),
        ));
        Ok(())
    }

    /// The value of the first line of header `id`.
    fn first(&self, id: Hid) -> Option<&str> {
        self.lines
            .iter()
            .find(|l| l.4 == id)
            .and_then(|l| self.text.get(l.1..l.2))
    }
}

/// The start line, the builder's lines (the first To line's value replaced by `to`, later To
/// lines dropped, as [`Headers::replace`] would), Content-Type and Content-Length (which the
/// builders own) and the body, in one buffer.
fn assemble(
    start_line: &str,
    lines: &Lines,
    to: Option<&str>,
    body: Option<&(Option<String>, Bytes)>,
) -> Vec<u8> {
    let blen = body.map_or(0, |b| b.1.len());
    let mut v = Vec::with_capacity(start_line.len() + lines.text.len() + 96 + blen);
    v.extend_from_slice(start_line.as_bytes());
    v.extend_from_slice(b"\r\n");
    let ct = match body {
        Some((Some(ct), _)) => Some(crate::chars::trim_lws(ct)),
        _ => None,
    };
    let mut to_done = false;
    for &(a, _, _, b, id) in &lines.lines {
        match id {
            Hid::ContentLength => continue,
            Hid::ContentType if ct.is_some() => continue,
            Hid::To if to.is_some() => {
                if !to_done {
                    to_done = true;
                    v.extend_from_slice(b"To: ");
                    v.extend_from_slice(to.unwrap_or_default().as_bytes());
                    v.extend_from_slice(b"\r\n");
                }
                continue;
            }
            _ => {}
        }
        v.extend_from_slice(lines.text.get(a..b).unwrap_or_default().as_bytes());
    }
    // a Content-Type with CR or LF is left out (the parse of the result would fail on it)
    if let Some(ct) = ct.filter(|ct| !ct.contains(['\r', '\n'])) {
        v.extend_from_slice(b"Content-Type: ");
        v.extend_from_slice(ct.as_bytes());
        v.extend_from_slice(b"\r\n");
    }
    v.extend_from_slice(b"Content-Length: ");
    v.extend_from_slice(blen.to_string().as_bytes());
    v.extend_from_slice(b"\r\n\r\n");
    if let Some((_, b)) = body {
        v.extend_from_slice(b);
    }
    v
}

/// Builds a [`Request`]: `Request::builder(method, uri).header(..)..body(..).build()`.
///
/// `build` writes the start line, the headers in the order given, `Content-Type` (when a body
/// with a type is given) and `Content-Length`, then parses the result, so a built request is
/// exactly what a peer would see.
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    method: Method,
    uri: Uri,
    headers: Lines,
    body: Option<(Option<String>, Bytes)>,
    error: Option<Error>,
}

impl RequestBuilder {
    /// Append a header line (see [`Headers::push`]).
    #[must_use]
    pub fn header(mut self, name: &str, value: impl std::fmt::Display) -> Self {
        if let Err(e) = self.headers.push(name, value) {
            self.error.get_or_insert(e);
        }
        self
    }

    /// Set the body and its Content-Type.
    #[must_use]
    pub fn body(mut self, content_type: &str, body: impl Into<Bytes>) -> Self {
        self.body = Some((Some(content_type.to_owned()), body.into()));
        self
    }

    /// Build the request.
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] for a bad header name or value given earlier, or the parse error of
    /// the assembled bytes.
    pub fn build(self) -> Result<Request> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let line = format!("{} {} SIP/2.0", self.method, self.uri);
        let v = assemble(&line, &self.headers, None, self.body.as_ref());
        Message::parse_with(Bytes::from(v), &Limits::NONE)?
            .into_request()
            .ok_or(Error::ApiMisuse("the built bytes are not a request"))
    }
}

/// Builds a [`Response`]; see [`Response::builder`] and [`Response::builder_for`].
#[derive(Debug, Clone)]
pub struct ResponseBuilder {
    code: u16,
    reason: Option<String>,
    headers: Lines,
    body: Option<(Option<String>, Bytes)>,
    to_tag: Option<String>,
    error: Option<Error>,
}

impl ResponseBuilder {
    /// Set the reason phrase (default: [`reason_phrase`]).
    #[must_use]
    pub fn reason(mut self, reason: &str) -> Self {
        self.reason = Some(reason.to_owned());
        self
    }

    /// Add `;tag=TAG` to the To header if it has no tag yet (RFC 3261 §8.2.6.2).
    #[must_use]
    pub fn to_tag(mut self, tag: &str) -> Self {
        self.to_tag = Some(tag.to_owned());
        self
    }

    /// Append a header line (see [`Headers::push`]).
    #[must_use]
    pub fn header(mut self, name: &str, value: impl std::fmt::Display) -> Self {
        if let Err(e) = self.headers.push(name, value) {
            self.error.get_or_insert(e);
        }
        self
    }

    /// Set the body and its Content-Type.
    #[must_use]
    pub fn body(mut self, content_type: &str, body: impl Into<Bytes>) -> Self {
        self.body = Some((Some(content_type.to_owned()), body.into()));
        self
    }

    /// Build the response.
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] for a bad header, a status code outside 100..=699 or a reason with
    /// CR/LF; a parse error of the assembled bytes.
    pub fn build(self) -> Result<Response> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if !(100..=699).contains(&self.code) {
            return Err(Error::ApiMisuse("status code must be 100..=699"));
        }
        let reason = self
            .reason
            .as_deref()
            .unwrap_or_else(|| reason_phrase(self.code));
        if reason.contains(['\r', '\n']) {
            return Err(Error::ApiMisuse("reason phrase must not contain CR or LF"));
        }
        let mut new_to = None;
        if let Some(tag) = &self.to_tag {
            if !crate::chars::is_token_str(tag.as_bytes()) {
                return Err(Error::ApiMisuse("tag must be a token"));
            }
            if let Some(to) = self.headers.first(Hid::To) {
                let has_tag = crate::name_addr::header_param(to, "tag")
                    .map(|t| t.is_some())
                    .unwrap_or(true);
                if !has_tag {
                    new_to = Some(format!("{to};tag={tag}"));
                }
            }
        }
        let line = format!("SIP/2.0 {} {}", self.code, reason);
        let v = assemble(&line, &self.headers, new_to.as_deref(), self.body.as_ref());
        Message::parse_with(Bytes::from(v), &Limits::NONE)?
            .into_response()
            .ok_or(Error::ApiMisuse("the built bytes are not a response"))
    }
}

impl PartialEq for Request {
    fn eq(&self, other: &Self) -> bool {
        self.method == other.method && self.uri == other.uri && self.head.eq(&other.head)
    }
}

impl Eq for Request {}

impl PartialEq for Response {
    fn eq(&self, other: &Self) -> bool {
        self.code == other.code && self.reason() == other.reason() && self.head.eq(&other.head)
    }
}

impl Eq for Response {}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("uri", &self.uri)
            .field("headers", &self.head.headers)
            .field("body_len", &self.head.body_len())
            .finish()
    }
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.code)
            .field("reason", &self.reason())
            .field("headers", &self.head.headers)
            .field("body_len", &self.head.body_len())
            .finish()
    }
}

impl From<Request> for Message {
    fn from(r: Request) -> Self {
        Self::Request(r)
    }
}

impl From<Response> for Message {
    fn from(r: Response) -> Self {
        Self::Response(r)
    }
}

pub(crate) fn head_of_request(r: &Request) -> &Head {
    &r.head
}

impl Head {
    pub(crate) fn declared_len(&self) -> Option<usize> {
        self.declared_len
    }
    pub(crate) fn parsed_body_len(&self) -> usize {
        self.body.len()
    }
    pub(crate) fn has_override(&self) -> bool {
        self.body_override.is_some()
    }
}

#[cfg(test)]
mod tests;

#[derive(Debug)]
pub(crate) enum Kind {
    Req(Method, Span),
    Resp(u16, Span),
}

/// A parsed start line and header index, before the body and the Request-URI are attached.
#[derive(Debug)]
pub(crate) struct ParsedHead {
    kind: Kind,
    /// End of the start line without its terminator.
    line_end: usize,
    entries: Vec<Entry>,
    index: headers::Index,
    pub(crate) he: headers::HeadEnd,
}

impl ParsedHead {
    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Give the head up, keeping its entry list.
    pub(crate) fn into_entries(self) -> Vec<Entry> {
        self.entries
    }
}

/// The datagram-style parse of everything but the Request-URI and the UTF-8 check of the head
/// (both in [`Message::finish`]) over `s` (which must fit the size limits:
/// [`Message::parse_with`] checks them first). The header index is built in `storage`'s
/// entry list, which goes back to `storage` on error.
pub(crate) fn parse_head(
    s: &[u8],
    limits: &Limits,
    storage: &mut impl EntrySource,
) -> Result<ParsedHead> {
    let nl = crate::chars::find_nl(s).ok_or_else(|| {
        if s.len() > limits.max_line_length {
            Error::LineTooLong {
                offset: 0,
                limit: limits.max_line_length,
            }
        } else {
            start_err(s.len(), "a line break after the start line")
        }
    })?;
    if nl > limits.max_line_length {
        return Err(Error::LineTooLong {
            offset: 0,
            limit: limits.max_line_length,
        });
    }
    let line_end = if nl > 0 && s.get(nl - 1) == Some(&b'\r') {
        nl - 1
    } else {
        nl
    };
    let line = s.get(..line_end).unwrap_or_default();
    let start_end = nl + 1;

    let kind = if line.len() >= 4
        && line
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"))
    {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let sp = crate::chars::find_byte(b' ', line)
            .ok_or_else(|| start_err(line.len(), "SP after SIP-Version"))?;
        check_version(line.get(..sp).unwrap_or_default(), 0)?;
        let cs = sp + 1;
        let code_bytes = line.get(cs..cs + 3).unwrap_or_default();
        if code_bytes.len() != 3 || !code_bytes.iter().all(u8::is_ascii_digit) {
            return Err(start_err(cs, "a three-digit status code"));
        }
        if line.get(cs + 3) != Some(&b' ') {
            return Err(start_err(cs + 3, "SP after the status code"));
        }
        let code = code_bytes
            .iter()
            .fold(0u16, |a, &d| a * 10 + u16::from(d - b'0'));
        if !(100..=699).contains(&code) {
            return Err(start_err(cs, "a status code from 100 to 699"));
        }
        if line.contains(&b'\r') {
            return Err(start_err(cs + 4, "a reason phrase without CR"));
        }
        Kind::Resp(code, Span::new(cs + 4, line_end))
    } else {
        // Request-Line = Method SP Request-URI SP SIP-Version
        let m_end = line
            .iter()
            .position(|&b| !crate::chars::is_token(b))
            .unwrap_or(line.len());
        if m_end == 0 {
            return Err(start_err(0, "a method token"));
        }
        if line.get(m_end) != Some(&b' ') {
            return Err(start_err(m_end, "SP after the method"));
        }
        let us = m_end + 1;
        let ue = crate::chars::find_byte(b' ', line.get(us..).unwrap_or_default())
            .map(|k| k + us)
            .ok_or_else(|| start_err(line.len(), "SP after the Request-URI"))?;
        if ue == us {
            return Err(start_err(us, "a Request-URI"));
        }
        check_version(line.get(ue + 1..).unwrap_or_default(), ue + 1)?;
        if ue - us > limits.max_uri_length {
            return Err(Error::UriTooLong {
                size: ue - us,
                limit: limits.max_uri_length,
            });
        }
        let method = Method::parse_bytes(line.get(..m_end).unwrap_or_default())?;
        Kind::Req(method, Span::new(us, ue))
    };

    let mut entries = storage.take_entries();
    // (a fresh index per message: nothing of an earlier message's lookup index is kept)
    let mut index = headers::Index::default();
    let he = match headers::scan_indexed(s, start_end, limits, &mut entries, &mut index) {
        Ok(he) => he,
        Err(e) => return Err(hand_back(e, entries, storage)),
    };
    let available = s.len() - he.body_start;
    let announced = he.content_length.unwrap_or(available);
    if announced > limits.max_body_size {
        let e = Error::BodyTooLarge {
            size: announced,
            limit: limits.max_body_size,
        };
        return Err(hand_back(e, entries, storage));
    }
    Ok(ParsedHead {
        kind,
        line_end,
        entries,
        index,
        he,
    })
}

/// `e`, after `entries` went back to `storage` (a failed parse).
#[cold]
#[inline(never)]
fn hand_back(e: Error, entries: Vec<Entry>, storage: &mut impl EntrySource) -> Error {
    storage.put_back(entries);
    e
}
