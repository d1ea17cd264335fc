//! The crate's error type.

use crate::authn::AuthFailure;

/// Errors of `mcptt-idm`, grouped by cause (STYLE.md §4).
///
/// OAuth protocol errors that go back to a client on the wire are a separate type,
/// [`crate::oauth::OAuthError`], because RFC 6749 fixes their form.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- malformed input ---
    /// A value (from a form, a file or the caller) is not in the expected form.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being read.
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The user directory file could not be read.
    #[error(transparent)]
    Directory(#[from] DirectoryError),

    // --- limits ---
    /// A configured limit was reached.
    #[error("limit reached: {what} (at most {limit})")]
    LimitExceeded {
        /// Which limit.
        what: &'static str,
        /// Its configured value.
        limit: usize,
    },

    // --- peer broke the protocol ---
    /// A login attempt failed (the reason is for the log; tell the user only that it failed).
    #[error("authentication failed: {0}")]
    Authentication(#[from] AuthFailure),

    // --- local failures ---
    /// Signing a token failed.
    #[error("token signing failed: {0}")]
    Token(#[from] mcptt_token::Error),
    /// The random generator failed.
    #[error("random generator failed")]
    Random,

    // --- caller misuse ---
    /// A caller bug, never peer data.
    #[error("API misuse: {0}")]
    ApiMisuse(&'static str),
}

impl Error {
    /// The HTTP status a server should answer with when this error ends a request.
    #[must_use]
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Malformed { .. } => 400,
            Self::Authentication(AuthFailure::Locked { .. }) | Self::LimitExceeded { .. } => 429,
            Self::Authentication(_) => 401,
            Self::Directory(_) | Self::Token(_) | Self::Random | Self::ApiMisuse(_) => 500,
        }
    }
}

/// A user directory file that could not be loaded, with the position of the problem.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("user directory, line {line}, column {column}: {message}")]
pub struct DirectoryError {
    /// 1-based line (0 when the problem has no position).
    pub line: usize,
    /// 1-based column (0 when the problem has no position).
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl DirectoryError {
    pub(crate) fn at(
        text: &str,
        span: Option<std::ops::Range<usize>>,
        message: impl Into<String>,
    ) -> Self {
        let (line, column) = match span {
            Some(span) => {
                let before = text.get(..span.start).unwrap_or(text);
                let line = before.matches('\n').count() + 1;
                let column = before.rfind('\n').map_or_else(
                    || before.chars().count(),
                    |i| before.get(i + 1..).map_or(0, |s| s.chars().count()),
                ) + 1;
                (line, column)
            }
            None => (0, 0),
        };
        Self {
            line,
            column,
            message: message.into(),
        }
    }
}
