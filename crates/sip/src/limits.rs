//! Configurable size limits.

/// Size limits applied while framing and parsing peer input.
///
/// Every limit has its own [`Error`](crate::Error) variant. The defaults are conservative for
/// SIP signalling (MCPTT registrations and PUBLISH bodies stay well below them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest whole message (start line, headers and body), in bytes. Default 64 KiB.
    pub max_message_size: usize,
    /// Largest header section (start line and headers, without the body), in bytes. Default 16 KiB.
    pub max_head_size: usize,
    /// Most header lines per message. Default 128.
    pub max_headers: usize,
    /// Longest line (a folded header counts as one line), in bytes. Default 8 KiB.
    pub max_line_length: usize,
    /// Longest Request-URI, in bytes. Default 4 KiB.
    pub max_uri_length: usize,
    /// Largest body, in bytes. Default 48 KiB.
    pub max_body_size: usize,
}

impl Limits {
    /// No limit at all: for re-parsing text this program wrote itself (as the builders do),
    /// never for peer input.
    pub const NONE: Self = Self {
        max_message_size: usize::MAX,
        max_head_size: usize::MAX,
        max_headers: usize::MAX,
        max_line_length: usize::MAX,
        max_uri_length: usize::MAX,
        max_body_size: usize::MAX,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_size: 64 * 1024,
            max_head_size: 16 * 1024,
            max_headers: 128,
            max_line_length: 8 * 1024,
            max_uri_length: 4 * 1024,
            max_body_size: 48 * 1024,
        }
    }
}
