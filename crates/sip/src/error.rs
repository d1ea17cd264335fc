//! The crate's error type.

/// Everything that can go wrong while framing, parsing, validating or checking a SIP message.
///
/// Variants are grouped by cause (STYLE.md §4): malformed peer input (with the byte offset of the
/// problem, counted from the start of the message or of the value being parsed, and what was
/// expected there), an exceeded [`Limits`](crate::Limits) value (one variant per limit), a broken
/// protocol rule found by the semantic layer ([`Request::check`](crate::Request::check)), and caller
/// misuse. [`Error::status_code`] gives the SIP response to answer a request with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- malformed input -------------------------------------------------------------------
    /// The Request-Line or Status-Line is malformed (RFC 3261 §7.1, §7.2).
    #[error("malformed start line at byte {offset}: expected {expected}")]
    StartLine {
        /// Byte offset of the problem within the message.
        offset: usize,
        /// What the parser expected there.
        expected: &'static str,
    },
    /// The SIP-Version is well formed but not `SIP/2.0` (RFC 3261 §8.2.2 answers 505).
    #[error("unsupported SIP version at byte {offset}")]
    Version {
        /// Byte offset of the version within the message.
        offset: usize,
    },
    /// A header line or a header value is malformed (RFC 3261 §7.3, §25.1).
    #[error("malformed {name} header at byte {offset}: expected {expected}")]
    Header {
        /// The header name as found in the message (canonical form for known headers).
        name: String,
        /// Byte offset of the problem (within the message when found by the message parser).
        offset: usize,
        /// What the parser expected there.
        expected: &'static str,
    },
    /// A URI is malformed (RFC 3261 §19.1, RFC 3966, RFC 3986).
    #[error("malformed URI at byte {offset}: expected {expected}")]
    Uri {
        /// Byte offset of the problem within the URI text.
        offset: usize,
        /// What the parser expected there.
        expected: &'static str,
    },
    /// The header section is not terminated by an empty line (stream framing, RFC 3261 §7.5).
    #[error("header section is not terminated by an empty line")]
    UnterminatedHead,
    /// The message body is malformed (multipart or message/sip, RFC 2046 §5.1).
    #[error("malformed body at byte {offset}: expected {expected}")]
    Body {
        /// Byte offset of the problem within the body.
        offset: usize,
        /// What the parser expected there.
        expected: &'static str,
    },
    /// Content-Length announces more bytes than the datagram holds (RFC 3261 §18.3: 400).
    #[error("Content-Length is {declared} but only {available} body bytes are present")]
    BodyTruncated {
        /// The Content-Length value.
        declared: usize,
        /// The body bytes actually present.
        available: usize,
    },

    // ---- limits ----------------------------------------------------------------------------
    /// The whole message is larger than [`Limits::max_message_size`](crate::Limits::max_message_size).
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    MessageTooLarge {
        /// Size seen (or announced) so far.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The header section is larger than [`Limits::max_head_size`](crate::Limits::max_head_size).
    #[error("header section of at least {size} bytes exceeds the limit of {limit}")]
    HeadTooLarge {
        /// Size seen so far.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// More header lines than [`Limits::max_headers`](crate::Limits::max_headers).
    #[error("more than {limit} headers")]
    TooManyHeaders {
        /// The configured limit.
        limit: usize,
    },
    /// A line is longer than [`Limits::max_line_length`](crate::Limits::max_line_length).
    #[error("line at byte {offset} exceeds the limit of {limit} bytes")]
    LineTooLong {
        /// Byte offset of the line.
        offset: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A URI is longer than [`Limits::max_uri_length`](crate::Limits::max_uri_length) (414).
    #[error("URI of {size} bytes exceeds the limit of {limit}")]
    UriTooLong {
        /// The URI length.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The body is larger than [`Limits::max_body_size`](crate::Limits::max_body_size) (413).
    #[error("body of {size} bytes exceeds the limit of {limit}")]
    BodyTooLarge {
        /// The announced or actual body size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },

    // ---- protocol (semantic layer) ---------------------------------------------------------
    /// A header that the message must carry is missing (RFC 3261 §8.1.1, §8.2: 400).
    #[error("missing mandatory header {0}")]
    MissingHeader(&'static str),
    /// A stream message has no Content-Length (RFC 3261 §18.3, §20.14: 400).
    #[error("Content-Length is mandatory on stream transports")]
    MissingContentLength,
    /// A single-value header appears more than once (RFC 3261 §7.3: 400).
    #[error("header {0} appears more than once")]
    DuplicateHeader(&'static str),
    /// Several Content-Length headers disagree (RFC 4475 §3.3.9: 400).
    #[error("Content-Length headers disagree")]
    ContentLengthMismatch,
    /// The CSeq method differs from the request method (RFC 3261 §8.1.1.5: 400).
    #[error("CSeq method {cseq} does not match request method {method}")]
    CSeqMethodMismatch {
        /// The Request-Line method.
        method: String,
        /// The CSeq method.
        cseq: String,
    },
    /// The URI scheme is not supported (RFC 3261 §8.2.2.1: 416).
    #[error("unsupported URI scheme {0}")]
    UnsupportedUriScheme(String),
    /// The Request-URI names an unsupported method (RFC 3261 §8.2.1: 405).
    #[error("method {0} is not allowed")]
    MethodNotAllowed(String),
    /// Require names option tags the element does not support (RFC 3261 §8.2.2.3: 420).
    #[error("unsupported extensions: {0}")]
    BadExtension(String),
    /// The body's Content-Type is not supported (RFC 3261 §8.2.3: 415).
    #[error("unsupported media type {0}")]
    UnsupportedMediaType(String),
    /// No type the request's Accept header lists can be produced (RFC 3261 §8.2.3: 406).
    #[error("none of the accepted media types can be produced: {0}")]
    NotAcceptable(String),
    /// Max-Forwards reached zero on a request that must be forwarded (RFC 3261 §16.3: 483).
    #[error("too many hops")]
    TooManyHops,

    // ---- caller misuse ---------------------------------------------------------------------
    /// The caller used the API wrongly (a bug in the caller, never peer data).
    #[error("API misuse: {0}")]
    ApiMisuse(&'static str),
}

impl Error {
    /// The SIP status code to answer a request with, where there is one.
    ///
    /// Malformed input maps to 400, the unsupported version to 505, size limits to 413
    /// (body), 414 (URI) or 513 (message, head, headers, lines), and the semantic errors to
    /// their RFC 3261 codes (400, 405, 415, 416, 420, 483). Caller misuse has none.
    #[must_use]
    pub fn status_code(&self) -> Option<u16> {
        Some(match self {
            Self::StartLine { .. }
            | Self::Header { .. }
            | Self::Uri { .. }
            | Self::UnterminatedHead
            | Self::Body { .. }
            | Self::BodyTruncated { .. }
            | Self::MissingHeader(_)
            | Self::MissingContentLength
            | Self::DuplicateHeader(_)
            | Self::ContentLengthMismatch
            | Self::CSeqMethodMismatch { .. } => 400,
            Self::Version { .. } => 505,
            Self::MessageTooLarge { .. }
            | Self::HeadTooLarge { .. }
            | Self::TooManyHeaders { .. }
            | Self::LineTooLong { .. } => 513,
            Self::UriTooLong { .. } => 414,
            Self::BodyTooLarge { .. } => 413,
            Self::UnsupportedUriScheme(_) => 416,
            Self::MethodNotAllowed(_) => 405,
            Self::BadExtension(_) => 420,
            Self::UnsupportedMediaType(_) => 415,
            Self::NotAcceptable(_) => 406,
            Self::TooManyHops => 483,
            Self::ApiMisuse(_) => return None,
        })
    }

    /// The byte offset of the problem, for malformed-input errors.
    #[must_use]
    pub fn offset(&self) -> Option<usize> {
        match self {
            Self::StartLine { offset, .. }
            | Self::Version { offset }
            | Self::Header { offset, .. }
            | Self::Uri { offset, .. }
            | Self::Body { offset, .. }
            | Self::LineTooLong { offset, .. } => Some(*offset),
            _ => None,
        }
    }

    /// What the parser expected at [`Error::offset`], for malformed-input errors.
    #[must_use]
    pub fn expected(&self) -> Option<&'static str> {
        match self {
            Self::StartLine { expected, .. }
            | Self::Header { expected, .. }
            | Self::Uri { expected, .. }
            | Self::Body { expected, .. } => Some(expected),
            _ => None,
        }
    }

    /// Whether this error is about a configured [`Limits`](crate::Limits) value.
    #[must_use]
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            Self::MessageTooLarge { .. }
                | Self::HeadTooLarge { .. }
                | Self::TooManyHeaders { .. }
                | Self::LineTooLong { .. }
                | Self::UriTooLong { .. }
                | Self::BodyTooLarge { .. }
        )
    }

    /// Shift the offset of a malformed-input error by `by` bytes (used when a value parsed on its
    /// own is located inside a message).
    pub(crate) fn shifted(mut self, by: usize) -> Self {
        match &mut self {
            Self::StartLine { offset, .. }
            | Self::Version { offset }
            | Self::Header { offset, .. }
            | Self::Uri { offset, .. }
            | Self::Body { offset, .. }
            | Self::LineTooLong { offset, .. } => *offset += by,
            _ => {}
        }
        self
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
