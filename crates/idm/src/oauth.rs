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
use crate::random::{RandomSource, token};
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
pub const AUTHORIZE_PARAMS: &[&str] = &[
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

/// Appends query parameters to a URI (percent-encoding them).
#[must_use]
pub fn append_query(uri: &str, params: &[(&str, &str)]) -> String {
    let mut out = uri.to_owned();
    let mut sep = if uri.contains('?') { '&' } else { '?' };
    for (k, v) in params {
        out.push(sep);
        sep = '&';
        out.push_str(&percent_encode(k));
        out.push('=');
        out.push_str(&percent_encode(v));
    }
    out
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
#[must_use]
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `application/x-www-form-urlencoded` text (also a URL query) into name–value pairs.
///
/// # Errors
/// [`Error::Malformed`] for bad percent-escapes or invalid UTF-8; [`Error::LimitExceeded`] for
/// more than `max_pairs` pairs.
pub fn parse_form(text: &str, max_pairs: usize) -> Result<Vec<(String, String)>, Error> {
    let mut out = Vec::new();
    for part in text.split('&').filter(|p| !p.is_empty()) {
        if out.len() >= max_pairs {
            return Err(Error::LimitExceeded {
                what: "form fields",
                limit: max_pairs,
            });
        }
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        out.push((form_decode(k)?, form_decode(v)?));
    }
    Ok(out)
}

fn form_decode(s: &str) -> Result<String, Error> {
    let bad = |reason| Error::Malformed {
        what: "form encoding",
        reason,
    };
    let special = |b: &u8| *b == b'%' || *b == b'+';
    // Most values (codes, tokens, ids, base64url) have nothing to decode.
    let Some(first) = s.bytes().position(|b| special(&b)) else {
        return Ok(s.to_owned());
    };
    let hex = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let (plain, mut rest) = s.as_bytes().split_at(first);
    let mut bytes = Vec::with_capacity(s.len());
    bytes.extend_from_slice(plain);
    // Runs without escapes are copied whole; `rest` starts at a `%` or `+` or is empty.
    loop {
        rest = match rest {
            [] => break,
            [b'+', more @ ..] => {
                bytes.push(b' ');
                more
            }
            [b'%', h, l, more @ ..] => {
                let (Some(h), Some(l)) = (hex(*h), hex(*l)) else {
                    return Err(bad("bad percent-escape"));
                };
                bytes.push(h << 4 | l);
                more
            }
            _ => return Err(bad("truncated percent-escape")),
        };
        let run = rest.iter().position(special).unwrap_or(rest.len());
        let (plain, more) = rest.split_at(run);
        bytes.extend_from_slice(plain);
        rest = more;
    }
    String::from_utf8(bytes).map_err(|_| bad("not UTF-8"))
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
    let display = |d| AuthorizeError::Display(OAuthError::new(ErrorCode::InvalidRequest, d));
    let single = |name: &str| -> Result<Option<&str>, ()> {
        let mut it = params.iter().filter(|(n, _)| n == name);
        let first = it.next().map(|(_, v)| v.as_str());
        if it.next().is_some() {
            Err(())
        } else {
            Ok(first)
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
    // From here on, errors go back to the client.
    let state_raw = single("state")
        .ok()
        .flatten()
        .filter(|s| s.len() <= config.max_param_len)
        .map(str::to_owned);
    let fail = |code, description| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.to_owned(),
        state: state_raw.clone(),
        error: OAuthError::new(code, description),
    };
    for (name, value) in params {
        if value.len() > config.max_param_len {
            return Err(fail(ErrorCode::InvalidRequest, "parameter too long"));
        }
        if AUTHORIZE_PARAMS.contains(&name.as_str())
            && params.iter().filter(|(n, _)| n == name).count() > 1
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
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(code_challenge);
    if code_challenge.len() != 43 || decoded.map(|d| d.len()) != Ok(32) {
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
#[derive(Debug)]
struct Expiring<V> {
    map: HashMap<String, V>,
    queue: VecDeque<(SystemTime, String)>,
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

    fn insert(&mut self, key: String, value: V) {
        self.queue.push_back((value.expires(), key.clone()));
        self.map.insert(key, value);
    }

    /// The live entry under `key`.
    fn get(&self, key: &str, now: SystemTime) -> Option<&V> {
        self.map.get(key).filter(|v| v.expires() > now)
    }

    /// Takes the entry under `key` out, live or not (an expired one is `Err`).
    fn remove(&mut self, key: &str, now: SystemTime) -> Option<Result<V, V>> {
        let v = self.map.remove(key)?;
        Some(if v.expires() > now { Ok(v) } else { Err(v) })
    }

    fn retain(&mut self, keep: impl FnMut(&String, &mut V) -> bool) {
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
    scope: Vec<String>,
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
        self.purge(now);
        if self.codes.len() >= self.config.max_codes {
            return Err(Error::LimitExceeded {
                what: "outstanding authorization codes",
                limit: self.config.max_codes,
            });
        }
        let code = token(rng, 32)?;
        let family = self.next_family;
        self.next_family += 1;
        self.codes.insert(
            code.clone(),
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
        use ErrorCode::{
            InvalidClient, InvalidGrant, InvalidRequest, InvalidScope, UnsupportedGrantType,
        };
        let err = OAuthError::new;
        let mut get_err = None;
        let mut get = |name: &str| {
            let mut it = params.iter().filter(|(n, _)| n == name);
            let first = it.next().map(|(_, v)| v.as_str());
            if it.next().is_some() {
                get_err = Some(err(InvalidRequest, "parameter repeated (RFC 6749 §3.2)"));
            }
            first
        };
        let grant_type = get("grant_type");
        let client_id = get("client_id");
        let code = get("code");
        let redirect_uri = get("redirect_uri");
        let verifier = get("code_verifier");
        let refresh_token = get("refresh_token");
        let scope = get("scope");
        if let Some(e) = get_err {
            return Err(e);
        }
        if params
            .iter()
            .any(|(_, v)| v.len() > self.config.max_param_len)
        {
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
                self.used_codes
                    .insert(code.to_owned(), (grant.expires, grant.family));
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
                let computed = s256_challenge(verifier);
                if !crate::ct_eq(computed.as_bytes(), grant.code_challenge.as_bytes()) {
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
                self.rotated
                    .insert(presented.to_owned(), (old.expires, old.family));
                if old.client_id != client_id {
                    self.revoke_family(old.family);
                    return Err(err(
                        InvalidGrant,
                        "refresh token was issued to another client",
                    ));
                }
                let scope = match scope {
                    None => old.scope.clone(),
                    Some(s) => {
                        let asked: Vec<String> = s
                            .split(' ')
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect();
                        if asked.is_empty() || asked.iter().any(|a| !old.scope.contains(a)) {
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
        let t = token(rng, 32)?;
        self.refresh.insert(
            t.clone(),
            RefreshGrant {
                client_id: client_id.to_owned(),
                mcptt_id: mcptt_id.clone(),
                scope: scope.to_vec(),
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
