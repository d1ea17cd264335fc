//! The crate's error type (STYLE.md §4).

use thiserror::Error as ThisError;

/// What was wrong in an `application/reginfo+xml` document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum XmlErrorKind {
    /// Not well-formed XML (syntax, unbalanced tags, bad escape).
    Syntax,
    /// Not UTF-8.
    Encoding,
    /// A `<!DOCTYPE>` was present: DTDs (and so external entities) are refused.
    DocType,
    /// An entity reference other than the five predefined ones or a character reference.
    UnknownEntity,
    /// The root element is not `<reginfo>`.
    NotReginfo,
    /// A required attribute is missing.
    MissingAttribute(&'static str),
    /// An attribute or element value is not in its grammar.
    InvalidValue(&'static str),
    /// A required element (such as `<uri>`) is missing.
    MissingElement(&'static str),
}

impl std::fmt::Display for XmlErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Syntax => f.write_str("XML syntax error"),
            Self::Encoding => f.write_str("not UTF-8"),
            Self::DocType => f.write_str("DOCTYPE not allowed"),
            Self::UnknownEntity => f.write_str("unknown entity reference"),
            Self::NotReginfo => f.write_str("root element is not reginfo"),
            Self::MissingAttribute(a) => write!(f, "missing attribute `{a}`"),
            Self::InvalidValue(a) => write!(f, "invalid value of `{a}`"),
            Self::MissingElement(e) => write!(f, "missing element `{e}`"),
        }
    }
}

/// Errors of `mcptt-registration`, grouped by cause.
///
/// Errors caused by a peer's request map to the SIP response the registrar sends, via
/// [`Error::status_code`].
#[derive(Debug, Clone, PartialEq, Eq, ThisError)]
#[non_exhaustive]
pub enum Error {
    // ---- malformed peer input ----
    /// A SIP header could not be parsed by `mcptt-sip`.
    #[error("malformed SIP header: {0}")]
    Sip(#[from] mcptt_sip::Error),
    /// A header the request needs is missing.
    #[error("missing header `{0}`")]
    MissingHeader(&'static str),
    /// A header is present but its value is unusable here.
    #[error("invalid header `{header}`: {reason}")]
    InvalidHeader {
        /// Header name.
        header: &'static str,
        /// What was wrong.
        reason: &'static str,
    },
    /// The request body is not what this request must carry.
    #[error("invalid body: {0}")]
    InvalidBody(&'static str),
    /// The body's media type is not the one expected.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// A reginfo XML document is malformed.
    #[error("malformed reginfo document at byte {offset}: {kind}")]
    Xml {
        /// Byte offset in the document where the problem was seen.
        offset: u64,
        /// What was wrong.
        kind: XmlErrorKind,
    },

    // ---- configured limits ----
    /// An address-of-record already holds the configured maximum number of bindings.
    #[error("too many bindings for the address-of-record (limit {limit})")]
    TooManyBindings {
        /// The configured limit.
        limit: usize,
    },
    /// The registrar already holds the configured maximum number of bindings in total.
    #[error("registrar full (limit {limit} bindings)")]
    RegistrarFull {
        /// The configured limit.
        limit: usize,
    },
    /// Too many subscriptions or pending requests.
    #[error("too many subscriptions (limit {limit})")]
    TooManySubscriptions {
        /// The configured limit.
        limit: usize,
    },
    /// A reginfo document exceeded a configured limit.
    #[error("reginfo document exceeds limit `{what}` ({limit})")]
    XmlLimit {
        /// Which limit.
        what: &'static str,
        /// Its configured value.
        limit: usize,
    },

    // ---- protocol ----
    /// The requested expiry is below the configured minimum (RFC 3261 §10.3 step 7).
    #[error("interval too brief: minimum is {min_expires} s")]
    IntervalTooBrief {
        /// Value for the `Min-Expires` header.
        min_expires: u32,
    },
    /// Same Call-ID with a CSeq not above the stored one: replayed or out of order
    /// (RFC 3261 §10.3 step 7).
    #[error("REGISTER out of order: CSeq {cseq} not above {last}")]
    OutOfOrder {
        /// CSeq of the refused request.
        cseq: u32,
        /// CSeq stored for the binding.
        last: u32,
    },
    /// The authenticated peer may not register (or subscribe to) this public user identity.
    #[error("peer `{peer}` may not use identity `{aor}`")]
    Forbidden {
        /// The authenticated peer identity.
        peer: String,
        /// The address-of-record it asked for.
        aor: String,
    },
    /// The request came from a peer that is not a configured trusted SIP core.
    #[error("untrusted peer `{0}`")]
    UntrustedPeer(String),
    /// The To URI is not a usable address-of-record, or not one of the Request-URI's
    /// domain (RFC 3261 §10.3 step 5).
    #[error("not a valid address-of-record")]
    InvalidAor,
    /// The Request-URI's scheme is not `sip`/`sips` (RFC 3261 §10.3 step 1, §21.4.16).
    #[error("unsupported Request-URI scheme `{0}`")]
    UnsupportedUriScheme(String),
    /// The Request-URI names a domain this registrar does not serve
    /// ([`RegistrarConfig::domains`](crate::RegistrarConfig::domains); RFC 3261 §10.3
    /// step 1: the registrar is no proxy, so it does not forward).
    #[error("domain `{0}` not served here")]
    UnknownDomain(String),
    /// The request requires an extension this registrar does not support (RFC 3261 §10.3
    /// step 2); the response lists it in `Unsupported`.
    #[error("unsupported extension `{0}`")]
    BadExtension(String),
    /// An `Event` package other than `reg`.
    #[error("bad event package")]
    BadEvent,
    /// A request inside a subscription that this side does not know.
    #[error("no such subscription")]
    NoSuchSubscription,
    /// A partial reginfo notification skipped versions: the subscriber must refresh
    /// (RFC 3680 §4.1.2).
    #[error("reginfo version gap: expected {expected}, got {got}")]
    VersionGap {
        /// The version expected next.
        expected: u32,
        /// The version received.
        got: u32,
    },
    /// The store refused a versioned write again and again (another instance kept writing).
    #[error("store write conflict for `{0}`")]
    StoreConflict(String),

    // ---- the binding store ----
    /// The binding store could not be reached (the cause, for the log); nothing changed.
    /// Answered with `503` and `Retry-After` ([`Error::RETRY_AFTER_SECS`]), not retried.
    #[error("binding store unavailable: {0}")]
    StoreUnavailable(String),

    // ---- caller misuse ----
    /// The caller used the API wrongly (a bug in the caller, never peer data).
    #[error("API misuse: {0}")]
    ApiMisuse(&'static str),
}

impl Error {
    /// `Retry-After` (seconds) of the `503` answering [`Error::StoreUnavailable`].
    pub const RETRY_AFTER_SECS: u32 = 5;

    /// The SIP status code to answer with, if this error answers a request.
    #[must_use]
    pub fn status_code(&self) -> Option<u16> {
        Some(match self {
            Self::Sip(e) => e.status_code().unwrap_or(400),
            Self::MissingHeader(_)
            | Self::InvalidHeader { .. }
            | Self::InvalidBody(_)
            | Self::Xml { .. }
            | Self::XmlLimit { .. }
            | Self::VersionGap { .. } => 400,
            Self::UnsupportedMediaType => 415,
            Self::TooManyBindings { .. } | Self::RegistrarFull { .. } => 503,
            Self::TooManySubscriptions { .. } | Self::StoreUnavailable(_) => 503,
            Self::IntervalTooBrief { .. } => 423,
            Self::OutOfOrder { .. } | Self::StoreConflict(_) => 500,
            Self::Forbidden { .. } | Self::UntrustedPeer(_) => 403,
            Self::InvalidAor | Self::UnknownDomain(_) => 404,
            Self::UnsupportedUriScheme(_) => 416,
            Self::BadEvent => 489,
            Self::BadExtension(_) => 420,
            Self::NoSuchSubscription => 481,
            Self::ApiMisuse(_) => return None,
        })
    }
}
