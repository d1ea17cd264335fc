//! Errors of the Redis store.

/// Why a Redis store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- the store is unreachable or refused the command ----
    /// Redis could not be reached, timed out or answered with an error.
    #[error("redis unavailable: {0}")]
    Redis(#[from] redis::RedisError),

    // ---- stored data this crate cannot read ----
    /// A stored record could not be decoded (written by an incompatible version, or damaged).
    #[error("stored record of {aor} is corrupt: {reason}")]
    Corrupt {
        /// The address-of-record whose record failed to decode.
        aor: String,
        /// What was wrong.
        reason: &'static str,
    },
    /// Redis answered with a reply of an unexpected shape.
    #[error("unexpected reply from redis: {0}")]
    UnexpectedReply(&'static str),

    // ---- caller misuse ----
    /// A configuration value is out of range (a caller bug, never peer data).
    #[error("invalid configuration: {0}")]
    ApiMisuse(&'static str),
}

impl Error {
    /// The SIP status a request that needed the store should be answered with:
    /// `503 Service Unavailable` while Redis is unreachable (the request may be retried),
    /// `500 Server Internal Error` otherwise.
    #[must_use]
    pub fn status_code(&self) -> u16 {
        match self {
            Self::Redis(_) => 503,
            Self::Corrupt { .. } | Self::UnexpectedReply(_) | Self::ApiMisuse(_) => 500,
        }
    }
}
