//! OAuth 2.0 authorization code grant with PKCE (RFC 6749 §4.1, RFC 7636), S256 only, and
//! refresh tokens with rotation.
//!
//! ```text
//!  authorize request ──▶ parse_authorize ──▶ (login) ──▶ issue_code ─▶ code (single use,
//!                                                                         short-lived, bound
//!  token request: grant_type=authorization_code ──▶ redeem ◀──────────── to client, redirect
//!                 grant_type=refresh_token ───────▶ refresh (rotation)    URI and challenge)
//! ```
//!
//! Errors on the token endpoint are [`OAuthError`]s with the codes of RFC 6749 §5.2. Errors on
//! the authorization endpoint are [`AuthorizeError`]s: shown to the person when the client or
//! redirect URI is wrong (RFC 6749 §4.1.2.1: never redirect then), redirected otherwise.
//!
//! A reused authorization code, or a refresh token used after rotation, revokes every refresh
//! token descended from the same grant (RFC 6749 §4.1.2 and §10.4; RFC 9700 §4.14.2).

use crate::directory::{Directory, McpttId};
use crate::random::RandomSource;
use crate::{Error, unix_seconds};
use base64::Engine as _;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

/// A registered OAuth client (a public client: it proves possession through PKCE).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    /// The client identifier.
    pub client_id: String,
    /// Registered redirect URIs, compared by exact string match (RFC 6749 §3.1.2.3).
    pub redirect_uris: Vec<String>,
}

/// OAuth error codes (RFC 6749 §4.1.2.1 and §5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `invalid_request`
    InvalidRequest,
    /// `invalid_client`
    InvalidClient,
    /// `invalid_grant`
    InvalidGrant,
    /// `unauthorized_client`
    UnauthorizedClient,
    /// `unsupported_grant_type`
    UnsupportedGrantType,
    /// `unsupported_response_type`
    UnsupportedResponseType,
    /// `invalid_scope`
    InvalidScope,
    /// `access_denied`
    AccessDenied,
    /// `server_error`
    ServerError,
    /// `temporarily_unavailable`
    TemporarilyUnavailable,
}

impl ErrorCode {
    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::AccessDenied => "access_denied",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }
}

/// An OAuth error response (RFC 6749 §5.2).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {description}", code.as_str())]
pub struct OAuthError {
    /// The error code.
    pub code: ErrorCode,
    /// `error_description`: for developers, never secret.
    pub description: &'static str,
}

impl OAuthError {
    pub(crate) const fn new(code: ErrorCode, description: &'static str) -> Self {
        Self { code, description }
    }

    /// HTTP status of a token-endpoint error: 401 for `invalid_client`, 500/503 for server
    /// trouble, 400 otherwise (RFC 6749 §5.2).
    #[must_use]
    pub fn http_status(&self) -> u16 {
        match self.code {
            ErrorCode::InvalidClient => 401,
            ErrorCode::ServerError => 500,
            ErrorCode::TemporarilyUnavailable => 503,
            _ => 400,
        }
    }

    /// The JSON body `{"error":…,"error_description":…}`.
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::json!({ "error": self.code.as_str(), "error_description": self.description })
            .to_string()
    }
}

impl From<Error> for OAuthError {
    fn from(_: Error) -> Self {
        Self::new(ErrorCode::ServerError, "internal error")
    }
}

/// An authorization-endpoint error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorizeError {
    /// Client or redirect URI invalid: show the error, do not redirect (RFC 6749 §4.1.2.1).
    #[error("{0}")]
    Display(OAuthError),
    /// Redirect to the client with the error.
    #[error("{error}")]
    Redirect {
        /// The validated redirect URI.
        redirect_uri: String,
        /// The client's `state`, echoed.
        state: Option<String>,
        /// The error.
        error: OAuthError,
    },
}

impl AuthorizeError {
    /// The redirect location for [`AuthorizeError::Redirect`].
    #[must_use]
    pub fn location(&self) -> Option<String> {
        match self {
            Self::Display(_) => None,
            Self::Redirect {
                redirect_uri,
                state,
                error,
            } => {
                let mut params = vec![
                    ("error", error.code.as_str()),
                    ("error_description", error.description),
                ];
                if let Some(s) = state {
                    params.push(("state", s));
                }
                Some(append_query(redirect_uri, &params))
            }
        }
    }

    /// The OAuth error inside.
    #[must_use]
    pub fn error(&self) -> &OAuthError {
        match self {
            Self::Display(e) | Self::Redirect { error: e, .. } => e,
        }
    }
}

/// Limits and lifetimes of the authorization server.
#[derive(Clone, Debug)]
pub struct OAuthConfig {
    /// Authorization code lifetime (RFC 6749 §4.1.2 recommends at most 10 minutes).
    pub code_lifetime: Duration,
    /// Refresh token lifetime.
    pub refresh_lifetime: Duration,
    /// Scopes a client may ask for; `openid` is required in every request.
    pub allowed_scopes: Vec<String>,
    /// Longest accepted parameter value.
    pub max_param_len: usize,
    /// Most outstanding authorization codes.
    pub max_codes: usize,
    /// Most live refresh tokens.
    pub max_refresh_tokens: usize,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        Self {
            code_lifetime: Duration::from_secs(60),
            refresh_lifetime: Duration::from_secs(12 * 3600),
            allowed_scopes: vec![
                "openid".into(),
                "3gpp:mcptt:ptt_server".into(),
                "3gpp:mc:ptt_service".into(),
                "offline_access".into(),
            ],
            max_param_len: 1024,
            max_codes: 10_000,
            max_refresh_tokens: 100_000,
        }
    }
}

/// A validated authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3, OIDC Core §3.1.2.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizeRequest {
    /// The registered client.
    pub client_id: String,
    /// The redirect URI, exactly as registered.
    pub redirect_uri: String,
    /// Requested scopes (contains `openid`).
    pub scope: Vec<String>,
    /// The client's `state`.
    pub state: String,
    /// OIDC `nonce`, copied into the ID token.
    pub nonce: Option<String>,
    /// `code_challenge` (S256).
    pub code_challenge: String,
    /// Requested `acr_values`, in order of preference.
    pub acr_values: Vec<String>,
    /// OIDC `login_hint` (pre-fills the MCPTT ID field).
    pub login_hint: Option<String>,
}

/// The parameters of an authorization request that a login form carries along.
pub const AUTHORIZE_PARAMS: &[&str] = &AUTHORIZE_NAMES;

/// [`AUTHORIZE_PARAMS`] as an array (for [`Fields::named`]).
const AUTHORIZE_NAMES: [&str; 10] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "acr_values",
    "login_hint",
];

impl AuthorizeRequest {
    /// The request as name–value pairs (to carry through a login form or build a URL).
    #[must_use]
    pub fn to_params(&self) -> Vec<(&'static str, String)> {
        let mut p = vec![
            ("response_type", "code".to_owned()),
            ("client_id", self.client_id.clone()),
            ("redirect_uri", self.redirect_uri.clone()),
            ("scope", self.scope.join(" ")),
            ("state", self.state.clone()),
            ("code_challenge", self.code_challenge.clone()),
            ("code_challenge_method", "S256".to_owned()),
        ];
        if let Some(n) = &self.nonce {
            p.push(("nonce", n.clone()));
        }
        if !self.acr_values.is_empty() {
            p.push(("acr_values", self.acr_values.join(" ")));
        }
        if let Some(h) = &self.login_hint {
            p.push(("login_hint", h.clone()));
        }
        p
    }
}

/// Checks a PKCE code verifier's syntax (RFC 7636 §4.1: 43–128 unreserved characters).
#[must_use]
pub fn is_valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The S256 code challenge of a verifier: BASE64URL(SHA256(ASCII(verifier))) (RFC 7636 §4.2).
#[must_use]
pub fn s256_challenge(verifier: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// Whether `verifier`'s S256 challenge is `challenge` (RFC 7636 §4.6), compared in constant
/// time: [`s256_challenge`]'s text, written on the stack.
fn s256_matches(verifier: &str, challenge: &str) -> bool {
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    // 43 characters: the unpadded base64url of a SHA-256 digest.
    let mut text = [0u8; 43];
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    engine
        .encode_slice(digest, &mut text)
        .is_ok_and(|n| crate::ct_eq(text.get(..n).unwrap_or_default(), challenge.as_bytes()))
}

/// Appends query parameters to a URI (percent-encoding them).
#[must_use]
pub fn append_query(uri: &str, params: &[(&str, &str)]) -> String {
    let encoded: usize = params.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    let mut out = String::with_capacity(uri.len() + encoded);
    out.push_str(uri);
    let mut sep = if uri.contains('?') { '&' } else { '?' };
    for (k, v) in params {
        out.push(sep);
        sep = '&';
        push_percent_encoded(&mut out, k);
        out.push('=');
        push_percent_encoded(&mut out, v);
    }
    out
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
#[must_use]
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_percent_encoded(&mut out, s);
    out
}

/// Appends `s` to `out`, percent-encoding everything but RFC 3986 unreserved characters.
fn push_percent_encoded(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    // Runs of unreserved characters (all of a code, token or base64url value) are copied
    // whole; they are ASCII, so each run is a `str`.
    let mut run = 0;
    for (i, b) in s.bytes().enumerate() {
        if !unreserved(b) {
            out.push_str(s.get(run..i).unwrap_or_default());
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
            run = i + 1;
        }
    }
    out.push_str(s.get(run..).unwrap_or_default());
}

/// Decodes `application/x-www-form-urlencoded` text (also a URL query) into name–value pairs.
///
/// # Errors
/// [`Error::Malformed`] for bad percent-escapes or invalid UTF-8; [`Error::LimitExceeded`] for
/// more than `max_pairs` pairs.
pub fn parse_form(text: &str, max_pairs: usize) -> Result<Vec<(String, String)>, Error> {
    Ok(Form::parse(text, max_pairs)?.to_pairs())
}

/// Decoded `application/x-www-form-urlencoded` fields (a request body or a URL query), held
/// in one buffer: what [`parse_form`] gives without a `String` per name and value. The
/// [`crate::Idms`] methods ending in `_form` take it.
///
/// ```
/// use mcptt_idm::oauth::Form;
/// let f = Form::parse("a=1&b=x+y%2Bz&a=2", 10).unwrap();
/// assert_eq!(f.get("b"), Some("x y+z"));
/// assert_eq!(f.get("a"), Some("1"));
/// assert_eq!(f.iter().count(), 3);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Form {
    /// The decoded names and values, one after the other.
    text: String,
    /// Per pair: where its name starts, where its name ends and its value starts, where its
    /// value ends (in `text`).
    spans: Vec<(usize, usize, usize)>,
}

impl Form {
    /// Decodes form text: the same pairs, in the same order and with the same errors, as
    /// [`parse_form`].
    ///
    /// # Errors
    /// [`Error::Malformed`] for bad percent-escapes or invalid UTF-8; [`Error::LimitExceeded`]
    /// for more than `max_pairs` pairs.
    pub fn parse(text: &str, max_pairs: usize) -> Result<Self, Error> {
        let bytes = text.as_bytes();
        let mut form = Self {
            text: String::with_capacity(text.len()),
            spans: Vec::with_capacity(max_pairs.min(16)),
        };
        let mut scratch = Vec::new();
        // One pass: `part` is where the current pair starts in `text`, `run` where its
        // not yet copied plain bytes start, `name_end` where its name ends in `form.text`
        // (once its first `=` is seen), `start` where the pair starts in `form.text`.
        let (mut part, mut run, mut start) = (0, 0, 0);
        let mut name_end = None;
        let mut utf8_ok = true;
        let bad = |reason| Error::Malformed {
            what: "form encoding",
            reason,
        };
        let mut i = 0;
        while let Some(&c) = bytes.get(i) {
            if i == part && c != b'&' && form.spans.len() >= max_pairs {
                return Err(Error::LimitExceeded {
                    what: "form fields",
                    limit: max_pairs,
                });
            }
            if !matches!(c, b'&' | b'=' | b'+' | b'%') || (c == b'=' && name_end.is_some()) {
                i += 1;
                continue;
            }
            // Specials are ASCII: the plain run before one is a `str`.
            form.text.push_str(text.get(run..i).unwrap_or_default());
            i += 1;
            match c {
                b'&' => {
                    if !utf8_ok {
                        return Err(bad("not UTF-8"));
                    }
                    form.end_pair(part + 1 < i, start, name_end);
                    part = i;
                    start = form.text.len();
                    name_end = None;
                }
                b'=' => {
                    if !utf8_ok {
                        return Err(bad("not UTF-8"));
                    }
                    name_end = Some(form.text.len());
                }
                b'+' => form.text.push(' '),
                _ => {
                    let in_name = name_end.is_none();
                    let text = &mut form.text;
                    i = decode_escapes(bytes, i - 1, in_name, text, &mut scratch, &mut utf8_ok)?;
                }
            }
            run = i;
        }
        form.text.push_str(text.get(run..).unwrap_or_default());
        if !utf8_ok {
            return Err(bad("not UTF-8"));
        }
        form.end_pair(part < bytes.len(), start, name_end);
        Ok(form)
    }

    /// Records the pair that started at `start` in `text` (if its text was not empty).
    fn end_pair(&mut self, non_empty: bool, start: usize, name_end: Option<usize>) {
        if non_empty {
            let end = self.text.len();
            self.spans.push((start, name_end.unwrap_or(end), end));
        }
    }

    /// Number of pairs.
    #[must_use]
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there is no pair.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The pair at `index` (in the order of the text).
    #[must_use]
    pub fn pair(&self, index: usize) -> Option<(&str, &str)> {
        let &(start, mid, end) = self.spans.get(index)?;
        Some((self.text.get(start..mid)?, self.text.get(mid..end)?))
    }

    /// The pairs, in the order of the text.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        Fields::Form(self).iter()
    }

    /// The value of the first pair named `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The pairs as owned strings (what [`parse_form`] returns).
    #[must_use]
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect()
    }
}

/// Decoded name–value pairs as the core reads them: a slice of owned pairs or a [`Form`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Fields<'a> {
    Pairs(&'a [(String, String)]),
    Form(&'a Form),
}

impl<'a> Fields<'a> {
    /// The pairs, in order.
    pub(crate) fn iter(self) -> FieldsIter<'a> {
        match self {
            Self::Pairs(p) => FieldsIter::Pairs(p.iter()),
            Self::Form(f) => FieldsIter::Form(&f.text, f.spans.iter()),
        }
    }

    /// The value of the first pair named `name`.
    pub(crate) fn get(self, name: &str) -> Option<&'a str> {
        match self {
            Self::Pairs(p) => p.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()),
            Self::Form(f) => {
                // Names compared as bytes; a `str` is cut for the value found only.
                let text = f.text.as_bytes();
                f.spans
                    .iter()
                    .find(|&&(start, mid, _)| text.get(start..mid) == Some(name.as_bytes()))
                    .and_then(|&(_, mid, end)| f.text.get(mid..end))
            }
        }
    }

    /// For each of `names`, the value of its first pair and how many pairs have that name;
    /// and the length of the longest value of all pairs. In one pass.
    pub(crate) fn named<const N: usize>(self, names: &[&str; N]) -> Named<'a, N> {
        let mut named = Named {
            first: [None; N],
            count: [0; N],
            longest: 0,
        };
        match self {
            Self::Pairs(p) => {
                for (name, value) in p {
                    named.note(names, name.as_bytes(), value.len(), || value);
                }
            }
            Self::Form(f) => {
                let text = f.text.as_bytes();
                for &(start, mid, end) in &f.spans {
                    let name = text.get(start..mid).unwrap_or_default();
                    let value = || f.text.get(mid..end).unwrap_or_default();
                    named.note(names, name, end - mid, value);
                }
            }
        }
        named
    }
}

/// What [`Fields::named`] found.
pub(crate) struct Named<'a, const N: usize> {
    /// Per name: the value of its first pair.
    pub(crate) first: [Option<&'a str>; N],
    /// Per name: how many pairs have it.
    pub(crate) count: [u32; N],
    /// Length of the longest value (all pairs).
    pub(crate) longest: usize,
}

impl<'a, const N: usize> Named<'a, N> {
    fn note(
        &mut self,
        names: &[&str; N],
        name: &[u8],
        len: usize,
        value: impl FnOnce() -> &'a str,
    ) {
        self.longest = self.longest.max(len);
        if let Some(i) = names.iter().position(|n| n.as_bytes() == name)
            && let (Some(first), Some(count)) = (self.first.get_mut(i), self.count.get_mut(i))
        {
            if first.is_none() {
                *first = Some(value());
            }
            *count += 1;
        }
    }
}

/// The iterator of [`Fields::iter`].
pub(crate) enum FieldsIter<'a> {
    Pairs(std::slice::Iter<'a, (String, String)>),
    Form(&'a str, std::slice::Iter<'a, (usize, usize, usize)>),
}

impl<'a> Iterator for FieldsIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Self::Pairs(it) => it.next().map(|(n, v)| (n.as_str(), v.as_str())),
            Self::Form(text, it) => {
                let &(start, mid, end) = it.next()?;
                // The spans cut `text` where Form::parse put them: always in bounds.
                Some((
                    text.get(start..mid).unwrap_or_default(),
                    text.get(mid..end).unwrap_or_default(),
                ))
            }
        }
    }
}

/// Decodes the run of `%XX` escapes at `at` in `bytes` onto `out` and returns where it
/// ends. Escaped non-ASCII bytes gather in `scratch` and make characters only if they are
/// UTF-8 on their own (an ASCII byte never sits inside a character); when they are not,
/// `utf8_ok` turns false, and the caller reports it at the end of the name or value, so a bad
/// escape later in the same name or value is the error reported, as a decoder that checks
/// UTF-8 last would. An escape is cut ("truncated") where the name (`in_name`: at `=` or
/// `&`) or value (at `&`) ends, as in a decoder given that name or value alone.
fn decode_escapes(
    bytes: &[u8],
    at: usize,
    in_name: bool,
    out: &mut String,
    scratch: &mut Vec<u8>,
    utf8_ok: &mut bool,
) -> Result<usize, Error> {
    let bad = |reason| Error::Malformed {
        what: "form encoding",
        reason,
    };
    let hex = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let mut flush = |out: &mut String, scratch: &mut Vec<u8>| {
        if !scratch.is_empty() {
            match std::str::from_utf8(scratch) {
                Ok(chars) => out.push_str(chars),
                Err(_) => *utf8_ok = false,
            }
            scratch.clear();
        }
    };
    let mut i = at;
    while bytes.get(i) == Some(&b'%') {
        let ends = |b: &&u8| **b == b'&' || (in_name && **b == b'=');
        let (Some(&h), Some(&l)) = (
            bytes.get(i + 1).filter(|b| !ends(b)),
            bytes.get(i + 2).filter(|b| !ends(b)),
        ) else {
            return Err(bad("truncated percent-escape"));
        };
        let (Some(h), Some(l)) = (hex(h), hex(l)) else {
            return Err(bad("bad percent-escape"));
        };
        let byte = h << 4 | l;
        if byte.is_ascii() {
            flush(out, scratch);
            out.push(char::from(byte));
        } else {
            scratch.push(byte);
        }
        i += 3;
    }
    flush(out, scratch);
    Ok(i)
}

/// Validates an authorization request.
///
/// # Errors
/// [`AuthorizeError::Display`] for a missing, unknown or repeated `client_id`, or a
/// `redirect_uri` that is missing or not registered for it; [`AuthorizeError::Redirect`] for
/// everything else (`response_type` not `code`, `scope` without `openid` or with an unknown
/// scope, missing `state`, missing `code_challenge`, `code_challenge_method` absent or not
/// `S256`, malformed challenge, repeated or oversized parameters).
pub fn parse_authorize(
    params: &[(String, String)],
    directory: &Directory,
    config: &OAuthConfig,
) -> Result<AuthorizeRequest, AuthorizeError> {
    parse_authorize_fields(Fields::Pairs(params), directory, config)
}

/// [`parse_authorize`] over a [`Form`].
///
/// # Errors
/// As [`parse_authorize`].
pub fn parse_authorize_form(
    form: &Form,
    directory: &Directory,
    config: &OAuthConfig,
) -> Result<AuthorizeRequest, AuthorizeError> {
    parse_authorize_fields(Fields::Form(form), directory, config)
}

pub(crate) fn parse_authorize_fields(
    params: Fields<'_>,
    directory: &Directory,
    config: &OAuthConfig,
) -> Result<AuthorizeRequest, AuthorizeError> {
    let display = |d| AuthorizeError::Display(OAuthError::new(ErrorCode::InvalidRequest, d));
    // Each parameter of the request: its first value and how often it came, in one pass.
    let Named {
        first,
        count,
        longest,
    } = params.named(&AUTHORIZE_NAMES);
    let index = |name: &str| AUTHORIZE_NAMES.iter().position(|n| *n == name);
    let single = |name: &str| -> Result<Option<&str>, ()> {
        let i = index(name);
        match i.and_then(|i| count.get(i)) {
            Some(n) if *n > 1 => Err(()),
            _ => Ok(i.and_then(|i| first.get(i).copied().flatten())),
        }
    };
    let client_id = single("client_id")
        .map_err(|()| display("client_id repeated"))?
        .ok_or_else(|| display("client_id missing"))?;
    let client = directory
        .client(client_id)
        .ok_or(AuthorizeError::Display(OAuthError::new(
            ErrorCode::InvalidClient,
            "unknown client_id",
        )))?;
    let redirect_uri = single("redirect_uri")
        .map_err(|()| display("redirect_uri repeated"))?
        .ok_or_else(|| display("redirect_uri missing"))?;
    if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
        return Err(display("redirect_uri is not registered for this client"));
    }
    // From here on, errors go back to the client (with the client's `state`, if usable).
    let fail = |code, description| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.to_owned(),
        state: single("state")
            .ok()
            .flatten()
            .filter(|s| s.len() <= config.max_param_len)
            .map(str::to_owned),
        error: OAuthError::new(code, description),
    };
    // The first parameter too long or repeated (if any) names the error.
    // (The pairs are walked only then: a lazy filter would still step through each.)
    let suspect = longest > config.max_param_len || count.iter().any(|n| *n > 1);
    for (name, value) in suspect.then(|| params.iter()).into_iter().flatten() {
        if value.len() > config.max_param_len {
            return Err(fail(ErrorCode::InvalidRequest, "parameter too long"));
        }
        if index(name)
            .and_then(|i| count.get(i))
            .is_some_and(|n| *n > 1)
        {
            return Err(fail(
                ErrorCode::InvalidRequest,
                "parameter repeated (RFC 6749 §3.1)",
            ));
        }
    }
    let get = |name: &str| single(name).ok().flatten();
    match get("response_type") {
        None => return Err(fail(ErrorCode::InvalidRequest, "response_type missing")),
        Some("code") => {}
        Some(_) => {
            return Err(fail(
                ErrorCode::UnsupportedResponseType,
                "only response_type=code is supported",
            ));
        }
    }
    let state = get("state")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| fail(ErrorCode::InvalidRequest, "state missing"))?;
    let scope: Vec<String> = get("scope")
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if !scope.iter().any(|s| s == "openid") {
        return Err(fail(ErrorCode::InvalidScope, "scope must contain openid"));
    }
    if scope.iter().any(|s| !config.allowed_scopes.contains(s)) {
        return Err(fail(ErrorCode::InvalidScope, "unknown scope"));
    }
    let code_challenge = get("code_challenge").ok_or_else(|| {
        fail(
            ErrorCode::InvalidRequest,
            "code_challenge required (PKCE, RFC 7636 §4.4.1)",
        )
    })?;
    match get("code_challenge_method") {
        Some("S256") => {}
        None | Some("plain") => {
            return Err(fail(
                ErrorCode::InvalidRequest,
                "code_challenge_method must be S256; plain is not supported",
            ));
        }
        Some(_) => {
            return Err(fail(
                ErrorCode::InvalidRequest,
                "transform algorithm not supported",
            ));
        }
    }
    if code_challenge.len() != 43 || secret_key(code_challenge).is_none() {
        return Err(fail(
            ErrorCode::InvalidRequest,
            "code_challenge is not a base64url SHA-256 value",
        ));
    }
    let acr_values = get("acr_values")
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(AuthorizeRequest {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        scope,
        state: state.to_owned(),
        nonce: get("nonce").filter(|s| !s.is_empty()).map(str::to_owned),
        code_challenge: code_challenge.to_owned(),
        acr_values,
        login_hint: get("login_hint")
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
    })
}

/// What a grant carries into the tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The user.
    pub mcptt_id: McpttId,
    /// The client.
    pub client_id: String,
    /// Granted scopes.
    pub scope: Vec<String>,
    /// OIDC nonce (only for the code grant).
    pub nonce: Option<String>,
    /// The method the user authenticated with.
    pub acr: String,
    /// When the user authenticated (Unix seconds).
    pub auth_time: u64,
    /// The new refresh token.
    pub refresh_token: String,
}

/// A value with an expiry time, kept in an [`Expiring`] map.
trait Expires {
    fn expires(&self) -> SystemTime;
}

/// A map whose entries leave at their expiry, at amortised O(1) cost per entry: entries are
/// also queued in insertion order, and [`Expiring::purge`] pops only the expired front of
/// the queue (one map's lifetime is one configured constant, so insertion order is expiry
/// order; after a wall-clock step back an entry may wait behind a later one, which is why
/// lookups check the expiry too). A full sweep on every request made each login cost
/// O(live refresh tokens).
///
/// A removed entry's queue slot stays until its expiry (its key is then looked up and found
/// gone), so the queue holds at most the keys inserted within one lifetime.
///
/// Keys are the 32 random bytes of a code or refresh token (the token is their unpadded
/// base64url text, see [`secret_key`]): no heap allocation per entry for the key.
#[derive(Debug)]
struct Expiring<V> {
    map: HashMap<Secret, V>,
    queue: VecDeque<(SystemTime, Secret)>,
}

/// The random bytes of an authorization code or refresh token.
type Secret = [u8; SECRET_LEN];

/// Random bytes in an authorization code or refresh token.
const SECRET_LEN: usize = 32;

/// The bytes of a code or refresh token given as text: `None` unless it is the unpadded
/// base64url of [`SECRET_LEN`] bytes (43 characters), the only text [`new_secret`] makes. The
/// decoder refuses non-zero trailing bits, so each key has exactly one text.
fn secret_key(text: &str) -> Option<Secret> {
    crate::random::token_bytes(text)
}

/// A fresh code or refresh token: its bytes (the map key) and its text (base64url).
fn new_secret(rng: &dyn RandomSource) -> Result<(Secret, String), Error> {
    let mut key = [0u8; SECRET_LEN];
    rng.fill(&mut key)?;
    Ok((
        key,
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key),
    ))
}

impl<V: Expires> Expiring<V> {
    fn new() -> Self {
        Self {
            map: HashMap::new(),
            queue: VecDeque::new(),
        }
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn insert(&mut self, key: Secret, value: V) {
        self.queue.push_back((value.expires(), key));
        self.map.insert(key, value);
    }

    /// The live entry under the token `text`.
    fn get(&self, text: &str, now: SystemTime) -> Option<&V> {
        self.map
            .get(&secret_key(text)?)
            .filter(|v| v.expires() > now)
    }

    /// Takes the entry under the token `text` out, live or not (an expired one is `Err`).
    fn remove(&mut self, text: &str, now: SystemTime) -> Option<Result<V, V>> {
        let v = self.map.remove(&secret_key(text)?)?;
        Some(if v.expires() > now { Ok(v) } else { Err(v) })
    }

    fn retain(&mut self, keep: impl FnMut(&Secret, &mut V) -> bool) {
        self.map.retain(keep);
    }

    fn purge(&mut self, now: SystemTime) {
        while let Some((at, _)) = self.queue.front() {
            if *at > now {
                break;
            }
            let Some((at, key)) = self.queue.pop_front() else {
                break;
            };
            if self.map.get(&key).is_some_and(|v| v.expires() == at) {
                self.map.remove(&key);
            }
        }
    }
}

impl Expires for (SystemTime, u64) {
    fn expires(&self) -> SystemTime {
        self.0
    }
}

impl Expires for CodeGrant {
    fn expires(&self) -> SystemTime {
        self.expires
    }
}

impl Expires for RefreshGrant {
    fn expires(&self) -> SystemTime {
        self.expires
    }
}

#[derive(Clone, Debug)]
struct CodeGrant {
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    mcptt_id: McpttId,
    scope: Vec<String>,
    nonce: Option<String>,
    acr: String,
    auth_time: u64,
    expires: SystemTime,
    family: u64,
}

#[derive(Clone, Debug)]
struct RefreshGrant {
    client_id: String,
    mcptt_id: McpttId,
    /// The granted scopes, space-separated (one allocation instead of one per scope).
    scope: String,
    acr: String,
    auth_time: u64,
    expires: SystemTime,
    family: u64,
}

/// The authorization server's state: outstanding codes and refresh tokens.
#[derive(Debug)]
pub struct AuthorizationServer {
    config: OAuthConfig,
    codes: Expiring<CodeGrant>,
    /// Redeemed codes until their expiry, with the grant family they started.
    used_codes: Expiring<(SystemTime, u64)>,
    refresh: Expiring<RefreshGrant>,
    /// Rotated-out refresh tokens until their expiry, with their family.
    rotated: Expiring<(SystemTime, u64)>,
    next_family: u64,
}

impl AuthorizationServer {
    /// Creates an empty server.
    #[must_use]
    pub fn new(config: OAuthConfig) -> Self {
        Self {
            config,
            codes: Expiring::new(),
            used_codes: Expiring::new(),
            refresh: Expiring::new(),
            rotated: Expiring::new(),
            next_family: 1,
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &OAuthConfig {
        &self.config
    }

    /// Drops what has expired (amortised O(1) per entry; see [`Expiring`]).
    fn purge(&mut self, now: SystemTime) {
        self.codes.purge(now);
        self.used_codes.purge(now);
        self.refresh.purge(now);
        self.rotated.purge(now);
    }

    fn revoke_family(&mut self, family: u64) {
        self.refresh.retain(|_, r| r.family != family);
    }

    /// Issues an authorization code after a successful login (RFC 6749 §4.1.2) and returns the
    /// redirect location `redirect_uri?code=…&state=…`.
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] when too many codes are outstanding; [`Error::Random`].
    pub fn issue_code(
        &mut self,
        request: &AuthorizeRequest,
        mcptt_id: &McpttId,
        acr: &str,
        now: SystemTime,
        rng: &dyn RandomSource,
    ) -> Result<String, Error> {
        let (key, code, family) = self.new_code(now, rng)?;
        self.codes.insert(
            key,
            CodeGrant {
                client_id: request.client_id.clone(),
                redirect_uri: request.redirect_uri.clone(),
                code_challenge: request.code_challenge.clone(),
                mcptt_id: mcptt_id.clone(),
                scope: request.scope.clone(),
                nonce: request.nonce.clone(),
                acr: acr.to_owned(),
                auth_time: unix_seconds(now),
                expires: now + self.config.code_lifetime,
                family,
            },
        );
        Ok(append_query(
            &request.redirect_uri,
            &[("code", &code), ("state", &request.state)],
        ))
    }

    /// [`AuthorizationServer::issue_code`] moving the request's values into the grant
    /// instead of copying them: on success `request` is left with its `state` only (the
    /// rest taken); on error it is untouched.
    pub(crate) fn issue_code_taking(
        &mut self,
        request: &mut AuthorizeRequest,
        mcptt_id: McpttId,
        acr: String,
        now: SystemTime,
        rng: &dyn RandomSource,
    ) -> Result<String, Error> {
        let (key, code, family) = self.new_code(now, rng)?;
        let location = append_query(
            &request.redirect_uri,
            &[("code", &code), ("state", &request.state)],
        );
        self.codes.insert(
            key,
            CodeGrant {
                client_id: std::mem::take(&mut request.client_id),
                redirect_uri: std::mem::take(&mut request.redirect_uri),
                code_challenge: std::mem::take(&mut request.code_challenge),
                mcptt_id,
                scope: std::mem::take(&mut request.scope),
                nonce: request.nonce.take(),
                acr,
                auth_time: unix_seconds(now),
                expires: now + self.config.code_lifetime,
                family,
            },
        );
        Ok(location)
    }

    /// Purges, checks the limit on outstanding codes and draws a code and its family.
    fn new_code(
        &mut self,
        now: SystemTime,
        rng: &dyn RandomSource,
    ) -> Result<(Secret, String, u64), Error> {
        self.purge(now);
        if self.codes.len() >= self.config.max_codes {
            return Err(Error::LimitExceeded {
                what: "outstanding authorization codes",
                limit: self.config.max_codes,
            });
        }
        let (key, code) = new_secret(rng)?;
        let family = self.next_family;
        self.next_family += 1;
        Ok((key, code, family))
    }

    /// Handles a token request (RFC 6749 §4.1.3 and §6) given its decoded form fields.
    ///
    /// `directory` is consulted for the client registration and to check that the user still
    /// exists and may use the client.
    ///
    /// # Errors
    /// [`OAuthError`] with the RFC 6749 §5.2 code.
    pub fn token(
        &mut self,
        params: &[(String, String)],
        directory: &Directory,
        now: SystemTime,
        rng: &dyn RandomSource,
    ) -> Result<Grant, OAuthError> {
        self.token_fields(Fields::Pairs(params), directory, now, rng)
    }

    /// [`AuthorizationServer::token`] over a [`Form`].
    ///
    /// # Errors
    /// As [`AuthorizationServer::token`].
    pub fn token_form(
        &mut self,
        form: &Form,
        directory: &Directory,
        now: SystemTime,
        rng: &dyn RandomSource,
    ) -> Result<Grant, OAuthError> {
        self.token_fields(Fields::Form(form), directory, now, rng)
    }

    pub(crate) fn token_fields(
        &mut self,
        params: Fields<'_>,
        directory: &Directory,
        now: SystemTime,
        rng: &dyn RandomSource,
    ) -> Result<Grant, OAuthError> {
        use ErrorCode::{
            InvalidClient, InvalidGrant, InvalidRequest, InvalidScope, UnsupportedGrantType,
        };
        let err = OAuthError::new;
        let Named {
            first,
            count,
            longest,
        } = params.named(&[
            "grant_type",
            "client_id",
            "code",
            "redirect_uri",
            "code_verifier",
            "refresh_token",
            "scope",
        ]);
        let [
            grant_type,
            client_id,
            code,
            redirect_uri,
            verifier,
            refresh_token,
            scope,
        ] = first;
        if count.iter().any(|n| *n > 1) {
            return Err(err(InvalidRequest, "parameter repeated (RFC 6749 §3.2)"));
        }
        if longest > self.config.max_param_len {
            return Err(err(InvalidRequest, "parameter too long"));
        }
        let grant_type = grant_type.ok_or_else(|| err(InvalidRequest, "grant_type missing"))?;
        let client_id = client_id.ok_or_else(|| {
            err(
                InvalidClient,
                "client_id missing (public clients identify themselves)",
            )
        })?;
        if directory.client(client_id).is_none() {
            return Err(err(InvalidClient, "unknown client_id"));
        }
        self.purge(now);
        match grant_type {
            "authorization_code" => {
                let code = code.ok_or_else(|| err(InvalidRequest, "code missing"))?;
                let redirect_uri =
                    redirect_uri.ok_or_else(|| err(InvalidRequest, "redirect_uri missing"))?;
                let Some(Ok(grant)) = self.codes.remove(code, now) else {
                    if let Some(&(_, family)) = self.used_codes.get(code, now) {
                        // RFC 6749 §4.1.2: a code used twice revokes what it produced.
                        self.revoke_family(family);
                        return Err(err(InvalidGrant, "authorization code already used"));
                    }
                    return Err(err(InvalidGrant, "unknown or expired authorization code"));
                };
                // The code is spent from here on, whatever happens next.
                if let Some(key) = secret_key(code) {
                    self.used_codes.insert(key, (grant.expires, grant.family));
                }
                if grant.client_id != client_id {
                    return Err(err(InvalidGrant, "code was issued to another client"));
                }
                if grant.redirect_uri != redirect_uri {
                    return Err(err(
                        InvalidGrant,
                        "redirect_uri differs from the authorization request",
                    ));
                }
                let verifier =
                    verifier.ok_or_else(|| err(InvalidGrant, "code_verifier missing (PKCE)"))?;
                if !is_valid_verifier(verifier) {
                    return Err(err(InvalidGrant, "code_verifier malformed (RFC 7636 §4.1)"));
                }
                if !s256_matches(verifier, &grant.code_challenge) {
                    return Err(err(
                        InvalidGrant,
                        "code_verifier does not match code_challenge",
                    ));
                }
                let user = directory
                    .user(grant.mcptt_id.as_str())
                    .filter(|u| u.allows_client(client_id));
                if user.is_none() {
                    return Err(err(InvalidGrant, "user no longer allowed"));
                }
                let refresh_token = self.new_refresh(
                    &grant.client_id,
                    &grant.mcptt_id,
                    &grant.scope,
                    &grant.acr,
                    grant.auth_time,
                    grant.family,
                    now,
                    rng,
                )?;
                Ok(Grant {
                    mcptt_id: grant.mcptt_id,
                    client_id: grant.client_id,
                    scope: grant.scope,
                    nonce: grant.nonce,
                    acr: grant.acr,
                    auth_time: grant.auth_time,
                    refresh_token,
                })
            }
            "refresh_token" => {
                let presented =
                    refresh_token.ok_or_else(|| err(InvalidRequest, "refresh_token missing"))?;
                let Some(Ok(old)) = self.refresh.remove(presented, now) else {
                    if let Some(&(_, family)) = self.rotated.get(presented, now) {
                        // A rotated-out token came back: somebody holds a copy. Revoke the family.
                        self.revoke_family(family);
                        return Err(err(InvalidGrant, "refresh token already used"));
                    }
                    return Err(err(InvalidGrant, "unknown or expired refresh token"));
                };
                if let Some(key) = secret_key(presented) {
                    self.rotated.insert(key, (old.expires, old.family));
                }
                if old.client_id != client_id {
                    self.revoke_family(old.family);
                    return Err(err(
                        InvalidGrant,
                        "refresh token was issued to another client",
                    ));
                }
                let scope = match scope {
                    None => old
                        .scope
                        .split(' ')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    Some(s) => {
                        let asked: Vec<String> = s
                            .split(' ')
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect();
                        if asked.is_empty()
                            || asked.iter().any(|a| !old.scope.split(' ').any(|s| s == a))
                        {
                            // RFC 6749 §6: no scope beyond the original grant. The old token stays spent.
                            return Err(err(InvalidScope, "scope exceeds the original grant"));
                        }
                        asked
                    }
                };
                if directory
                    .user(old.mcptt_id.as_str())
                    .filter(|u| u.allows_client(client_id))
                    .is_none()
                {
                    return Err(err(InvalidGrant, "user no longer allowed"));
                }
                let refresh_token = self.new_refresh(
                    &old.client_id,
                    &old.mcptt_id,
                    &scope,
                    &old.acr,
                    old.auth_time,
                    old.family,
                    now,
                    rng,
                )?;
                Ok(Grant {
                    mcptt_id: old.mcptt_id,
                    client_id: old.client_id,
                    scope,
                    nonce: None,
                    acr: old.acr,
                    auth_time: old.auth_time,
                    refresh_token,
                })
            }
            _ => Err(err(
                UnsupportedGrantType,
                "only authorization_code and refresh_token are supported",
            )),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn new_refresh(
        &mut self,
        client_id: &str,
        mcptt_id: &McpttId,
        scope: &[String],
        acr: &str,
        auth_time: u64,
        family: u64,
        now: SystemTime,
        rng: &dyn RandomSource,
    ) -> Result<String, OAuthError> {
        if self.refresh.len() >= self.config.max_refresh_tokens {
            return Err(OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "too many live refresh tokens",
            ));
        }
        let (key, t) = new_secret(rng)?;
        self.refresh.insert(
            key,
            RefreshGrant {
                client_id: client_id.to_owned(),
                mcptt_id: mcptt_id.clone(),
                scope: scope.join(" "),
                acr: acr.to_owned(),
                auth_time,
                expires: now + self.config.refresh_lifetime,
                family,
            },
        );
        Ok(t)
    }
}

#[cfg(test)]
mod tests;
