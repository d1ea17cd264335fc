//! The crate's error type.

use std::fmt;

/// Which part of a token or key a malformed-input error refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Part {
    /// The JOSE header (first segment).
    Header,
    /// The payload / JWT claims set (second segment).
    Claims,
    /// The signature (third segment).
    Signature,
    /// A JSON Web Key or key set.
    Key,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Header => "header",
            Self::Claims => "claims",
            Self::Signature => "signature",
            Self::Key => "key",
        })
    }
}

/// Everything that can go wrong while validating, signing or loading keys.
///
/// Variants are grouped by cause: malformed token, configured limit, header
/// rule, signature, claim rule, key material, caller misuse. Every token
/// failure maps to the MCPTT answer `403 Forbidden` with
/// `Warning: 399 <host> "101 service authorisation failed"` (see
/// [`Error::status_code`]); the message itself is for the server's log.
/// [`Error::kind`] gives a stable, short string for metrics and log fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- malformed token -------------------------------------------------
    /// The compact serialization does not have exactly three `.`-separated segments.
    #[error("malformed token: expected 3 segments, found {found}")]
    Segments {
        /// Number of segments seen.
        found: usize,
    },
    /// A segment is not strict unpadded base64url (RFC 7515 §2, §3.1).
    #[error("malformed token: {part} is not unpadded base64url (byte {offset} of the segment)")]
    Base64 {
        /// The segment.
        part: Part,
        /// Offset of the first offending byte within the segment, when known.
        offset: usize,
    },
    /// A JSON document is not well-formed.
    #[error("malformed {part} JSON: {message}")]
    Json {
        /// The document.
        part: Part,
        /// The parser's description (position included).
        message: String,
    },
    /// A JSON object repeats a member name (RFC 7515 §5.2, RFC 7519 §7.2 step 4).
    #[error("malformed {part} JSON: duplicate member {name:?}")]
    DuplicateMember {
        /// The document.
        part: Part,
        /// The repeated name.
        name: String,
    },
    /// The header or claims set is valid JSON but not a JSON object.
    #[error("malformed {part}: expected a JSON object, found {found}")]
    NotObject {
        /// The document.
        part: Part,
        /// The JSON type found.
        found: &'static str,
    },

    // ---- limits ----------------------------------------------------------
    /// The token is longer than the configured maximum (checked before decoding).
    #[error("token too large: {actual} bytes, limit {limit}")]
    TooLarge {
        /// The configured limit in bytes.
        limit: usize,
        /// The token's length in bytes.
        actual: usize,
    },
    /// JSON nesting deeper than the configured maximum.
    #[error("{part} JSON nested deeper than {limit} levels")]
    TooDeep {
        /// The document.
        part: Part,
        /// The configured limit.
        limit: usize,
    },

    // ---- header rules ----------------------------------------------------
    /// The header `alg` is missing, not a supported algorithm, `none` or HMAC.
    #[error("unsupported algorithm {alg:?} (accepted: ES256, RS256, PS256, EdDSA)")]
    UnsupportedAlgorithm {
        /// The `alg` value received (empty when absent).
        alg: String,
    },
    /// The header `alg` differs from the algorithm the selected key is bound to.
    #[error("algorithm mismatch: key {kid:?} is bound to {expected}, token says {received}")]
    AlgorithmMismatch {
        /// The key id.
        kid: String,
        /// The key's algorithm.
        expected: &'static str,
        /// The token's `alg`.
        received: String,
    },
    /// No configured key has the token's `kid` (or, without `kid`, no single key fits).
    #[error("unknown key id {kid:?}{}", if *.refresh_requested { " (key set refresh requested)" } else { "" })]
    UnknownKey {
        /// The `kid` received (empty when absent).
        kid: String,
        /// Whether this miss asked the [`crate::KeyStore`] for a refresh.
        refresh_requested: bool,
    },
    /// The `typ` header is not the one this token kind requires (RFC 9068 §2.1, RFC 8725 §3.11).
    #[error("wrong token type: expected {expected}, received {}", .received.as_deref().map_or_else(|| "none".to_owned(), |t| format!("{t:?}")))]
    Type {
        /// What was expected.
        expected: &'static str,
        /// What was received (`None` when absent).
        received: Option<String>,
    },
    /// The header has a `crit` member; no extension is understood (RFC 7515 §4.1.11).
    #[error("critical header extension refused: {names:?}")]
    Critical {
        /// The names listed (as far as they are strings).
        names: Vec<String>,
    },
    /// The header carries `b64` (RFC 7797 unencoded payload), refused for JWTs.
    #[error("unencoded payload (b64) refused")]
    UnencodedPayload,
    /// The header says `cty: JWT` (a nested token), refused.
    #[error("nested JWT (cty {cty:?}) refused")]
    NestedToken {
        /// The `cty` value.
        cty: String,
    },
    /// The header carries a key or key reference (`jwk`, `jku`, `x5u`, `x5c`); keys come only from configuration.
    #[error("embedded key header {name:?} refused: keys come only from configuration")]
    EmbeddedKey {
        /// The header member.
        name: &'static str,
    },
    /// A header member has the wrong JSON type (e.g. `kid` not a string).
    #[error("header member {name:?} must be a {expected}")]
    HeaderType {
        /// The member.
        name: &'static str,
        /// The required JSON type.
        expected: &'static str,
    },

    // ---- signature -------------------------------------------------------
    /// The signature does not verify with the selected key (or has the wrong length/encoding).
    #[error("bad signature: {reason}")]
    Signature {
        /// Why (length, encoding or verification).
        reason: &'static str,
    },

    // ---- claims ----------------------------------------------------------
    /// A required claim is absent.
    #[error("missing claim {name:?}")]
    MissingClaim {
        /// The claim.
        name: &'static str,
    },
    /// A claim has the wrong JSON type or an invalid value.
    #[error("invalid claim {name:?}: expected {expected}, received {received}")]
    InvalidClaim {
        /// The claim.
        name: &'static str,
        /// What was required.
        expected: &'static str,
        /// What was received (JSON type or a short description).
        received: String,
    },
    /// `iss` differs from the configured issuer.
    #[error("wrong issuer: expected {expected:?}, received {received:?}")]
    Issuer {
        /// The configured issuer.
        expected: String,
        /// The token's issuer.
        received: String,
    },
    /// `aud` does not contain the configured audience.
    #[error("wrong audience: expected {expected:?}, received {received:?}")]
    Audience {
        /// The configured audience.
        expected: String,
        /// The token's audiences.
        received: Vec<String>,
    },
    /// `exp` is in the past (beyond the leeway).
    #[error("token expired at {exp} (now {now}, leeway {leeway} s)")]
    Expired {
        /// The `exp` claim.
        exp: u64,
        /// The caller's time.
        now: u64,
        /// The configured leeway.
        leeway: u64,
    },
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not valid before {nbf} (now {now}, leeway {leeway} s)")]
    NotYetValid {
        /// The `nbf` claim.
        nbf: u64,
        /// The caller's time.
        now: u64,
        /// The configured leeway.
        leeway: u64,
    },
    /// `iat` is in the future (beyond the leeway).
    #[error("token issued in the future at {iat} (now {now}, leeway {leeway} s)")]
    IssuedInFuture {
        /// The `iat` claim.
        iat: u64,
        /// The caller's time.
        now: u64,
        /// The configured leeway.
        leeway: u64,
    },
    /// `scope` does not contain a required scope as a whole space-separated token.
    #[error("insufficient scope: expected one of {expected:?}, received {received:?}")]
    Scope {
        /// The accepted scopes.
        expected: Vec<String>,
        /// The token's `scope` string.
        received: String,
    },
    /// `mcptt_id` is not a valid `sip:`/`sips:` URI with a user part.
    #[error("invalid mcptt_id: {reason}")]
    McpttId {
        /// What is wrong.
        reason: &'static str,
    },
    /// The ID token `nonce` is missing or differs from the expected one.
    #[error("nonce mismatch: {reason}")]
    Nonce {
        /// `missing` or `different`.
        reason: &'static str,
    },

    // ---- keys ------------------------------------------------------------
    /// A JWK or key set is unusable (wrong kty/crv/alg combination, bad point, private key…).
    #[error("invalid key{}: {reason}", kid.as_ref().map(|k| format!(" {k:?}")).unwrap_or_default())]
    InvalidKey {
        /// The key id, when known.
        kid: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// An RSA key is shorter than 2048 bits.
    #[error("RSA key too small: {bits} bits, minimum {min}")]
    WeakKey {
        /// The modulus size.
        bits: usize,
        /// The minimum accepted.
        min: usize,
    },

    // ---- caller misuse ---------------------------------------------------
    /// A caller bug (bad configuration, claims that cannot be signed…), never peer data.
    #[error("API misuse: {0}")]
    ApiMisuse(String),
    /// The signing primitive failed (e.g. the random source failed).
    #[error("signing failed")]
    Signing,
}

impl Error {
    /// A short, stable identifier of the failed check, for logs and metrics
    /// (e.g. `expired`, `bad_audience`, `bad_signature`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Segments { .. } => "malformed_segments",
            Self::Base64 { .. } => "malformed_base64",
            Self::Json { .. } => "malformed_json",
            Self::DuplicateMember { .. } => "duplicate_member",
            Self::NotObject { .. } => "not_object",
            Self::TooLarge { .. } => "too_large",
            Self::TooDeep { .. } => "too_deep",
            Self::UnsupportedAlgorithm { .. } => "unsupported_alg",
            Self::AlgorithmMismatch { .. } => "alg_mismatch",
            Self::UnknownKey { .. } => "unknown_kid",
            Self::Type { .. } => "bad_typ",
            Self::Critical { .. } => "crit",
            Self::UnencodedPayload => "b64",
            Self::NestedToken { .. } => "nested_jwt",
            Self::EmbeddedKey { .. } => "embedded_key",
            Self::HeaderType { .. } => "bad_header",
            Self::Signature { .. } => "bad_signature",
            Self::MissingClaim { .. } => "missing_claim",
            Self::InvalidClaim { .. } => "invalid_claim",
            Self::Issuer { .. } => "bad_issuer",
            Self::Audience { .. } => "bad_audience",
            Self::Expired { .. } => "expired",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::IssuedInFuture { .. } => "iat_in_future",
            Self::Scope { .. } => "insufficient_scope",
            Self::McpttId { .. } => "bad_mcptt_id",
            Self::Nonce { .. } => "bad_nonce",
            Self::InvalidKey { .. } => "invalid_key",
            Self::WeakKey { .. } => "weak_key",
            Self::ApiMisuse(_) => "api_misuse",
            Self::Signing => "signing_failed",
        }
    }

    /// The SIP status the MCPTT server answers with: `Some(403)` (with warning
    /// text `101 service authorisation failed`, TS 24.379) for every token
    /// failure; `None` for key, configuration and signing errors, which are
    /// the server's own problem.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            Self::InvalidKey { .. } | Self::WeakKey { .. } | Self::ApiMisuse(_) | Self::Signing => {
                None
            }
            _ => Some(403),
        }
    }

    /// Whether the error is about the token (peer input) rather than keys or the caller.
    pub fn is_token_error(&self) -> bool {
        self.status_code().is_some()
    }
}
