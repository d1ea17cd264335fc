//! The crate's error type.

use std::fmt;

/// Which body an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BodyKind {
    /// `application/vnd.3gpp.mcptt-info+xml`.
    McpttInfo,
    /// `application/poc-settings+xml`.
    PocSettings,
    /// `application/vnd.mcptt-service-state+json`.
    ServiceState,
    /// `multipart/mixed` (the PUBLISH body).
    Multipart,
}

impl fmt::Display for BodyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::McpttInfo => crate::body::MCPTT_INFO_CONTENT_TYPE,
            Self::PocSettings => crate::body::POC_SETTINGS_CONTENT_TYPE,
            Self::ServiceState => crate::body::SERVICE_STATE_CONTENT_TYPE,
            Self::Multipart => "multipart/mixed",
        })
    }
}

/// Errors of `mcptt-service-state`, grouped by cause (STYLE.md §4).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- malformed peer input ---
    /// A body is not well-formed or does not follow its schema.
    #[error("malformed {kind} body at byte {offset}: expected {what}")]
    MalformedBody {
        /// The body concerned.
        kind: BodyKind,
        /// Byte offset into the body where the problem was found.
        offset: usize,
        /// What was expected there.
        what: String,
    },
    /// An `mcptt-info` element uses `type="Encrypted"` (or another type) that is not supported yet.
    #[error("unsupported mcptt-info content type {0:?}: only type=\"Normal\" is supported")]
    UnsupportedContentType(String),
    /// A SIP message from the peer could not be read (bad or missing header).
    #[error("malformed SIP message: {what}")]
    MalformedMessage {
        /// What was wrong or missing.
        what: String,
    },
    /// A body has a content type this crate does not accept there.
    #[error("unsupported body content type {0:?}")]
    UnsupportedMediaType(String),

    // --- limits ---
    /// A body is larger than the configured limit.
    #[error("{kind} body of {size} bytes exceeds the limit of {limit}")]
    BodyTooLarge {
        /// The body concerned.
        kind: BodyKind,
        /// Its size in bytes.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A structural limit (depth, element count, ...) of a body was exceeded.
    #[error("{kind} body exceeds the {what} limit of {limit}")]
    BodyLimit {
        /// The body concerned.
        kind: BodyKind,
        /// Which limit.
        what: &'static str,
        /// The configured limit.
        limit: usize,
    },

    // --- protocol state ---
    /// A NOTIFY arrived with a CSeq not above the last one accepted (RFC 3261 §12.2.2).
    #[error("out-of-order NOTIFY: CSeq {got} is not above {last}")]
    OutOfOrderCSeq {
        /// The CSeq received.
        got: u32,
        /// The highest CSeq accepted so far.
        last: u32,
    },
    /// A NOTIFY or response does not belong to the dialog or transaction it was given to.
    #[error("message does not match the dialog or transaction: {0}")]
    NoMatch(&'static str),
    /// The request names an event package this side does not serve (RFC 6665 §8.2.3: 489).
    #[error("unsupported event package {0:?}")]
    BadEvent(String),

    // --- caller misuse ---
    /// The caller used the API in a way it does not allow (a caller bug, never peer data).
    #[error("API misuse: {0}")]
    ApiMisuse(&'static str),
}

impl Error {
    /// The SIP status code to answer with, where a request caused the error.
    #[must_use]
    pub fn status_code(&self) -> Option<u16> {
        match self {
            Self::MalformedBody { .. } | Self::MalformedMessage { .. } => Some(400),
            Self::UnsupportedContentType(_) | Self::UnsupportedMediaType(_) => Some(415),
            Self::BodyTooLarge { .. } | Self::BodyLimit { .. } => Some(413),
            Self::OutOfOrderCSeq { .. } => Some(500),
            Self::NoMatch(_) => Some(481),
            Self::BadEvent(_) => Some(489),
            Self::ApiMisuse(_) => None,
        }
    }
}
