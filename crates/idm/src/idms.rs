//! The IdMS core: authorization endpoint with login, token endpoint, discovery and JWKS, as
//! plain functions of the request data, `now`, the source address and a random source.

use crate::authn::{
    ACR_PASSWORD, AuthFailure, Authenticator, Challenge, Field, LoginInput, Outcome,
    PasswordMethod, SimConfig, SimMethod, TwoFactorMethod,
};
use crate::directory::{Directory, User};
use crate::issue::{KeyRing, TokenConfig, TokenResponse, issue_owned};
use crate::oauth::{
    AuthorizationServer, AuthorizeError, AuthorizeRequest, ErrorCode, Fields, Form, OAuthConfig,
    OAuthError, parse_authorize_fields,
};
use crate::password::PasswordHash;
use crate::random::RandomSource;
use crate::throttle::{Refusal, Throttle, ThrottleConfig};
use crate::{Error, unix_seconds};
use std::borrow::Cow;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

/// Path of the discovery document.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
/// Path of the authorization endpoint.
pub const AUTHORIZE_PATH: &str = "/authorize";
/// Path of the token endpoint.
pub const TOKEN_PATH: &str = "/token";
/// Path of the JWKS.
pub const JWKS_PATH: &str = "/jwks";

/// Configuration of an [`Idms`].
#[derive(Clone, Debug)]
pub struct IdmsConfig {
    /// Issuer identifier: the base URL, e.g. `https://127.0.0.1:8443` (no trailing slash).
    pub issuer: String,
    /// `aud` of access tokens.
    pub audience: Vec<String>,
    /// Access token lifetime.
    pub access_lifetime: Duration,
    /// ID token lifetime.
    pub id_lifetime: Duration,
    /// The method used when the request names no `acr_values`.
    pub default_acr: String,
    /// OAuth limits and lifetimes.
    pub oauth: OAuthConfig,
    /// Brute-force protection.
    pub throttle: ThrottleConfig,
    /// SIM method limits.
    pub sim: SimConfig,
}

impl IdmsConfig {
    /// Defaults for an issuer URL: one-hour tokens, password login by default, audience
    /// `sip:mcptt-server@mcptt.example`.
    #[must_use]
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into().trim_end_matches('/').to_owned(),
            audience: vec!["sip:mcptt-server@mcptt.example".into()],
            access_lifetime: Duration::from_secs(3600),
            id_lifetime: Duration::from_secs(3600),
            default_acr: ACR_PASSWORD.into(),
            oauth: OAuthConfig::default(),
            throttle: ThrottleConfig::default(),
            sim: SimConfig::default(),
        }
    }
}

/// The login form to show for an authorization request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginPage {
    /// The validated request (carried through the form as hidden fields).
    pub request: AuthorizeRequest,
    /// The method chosen from `acr_values`.
    pub acr: String,
    /// The method's fields (besides `username`).
    pub fields: &'static [Field],
    /// The MCPTT ID to pre-fill.
    pub username: Option<String>,
}

/// Result of a login form submission.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginOutcome {
    /// Authenticated: redirect (303) to this location, which carries `code` and `state`.
    Redirect(String),
    /// The method needs another round: show the challenge.
    Challenge {
        /// The form to show again.
        page: LoginPage,
        /// The challenge to answer.
        challenge: Challenge,
    },
    /// Login failed: show the form again with a generic message; log `failure`.
    Failed {
        /// The form to show again.
        page: LoginPage,
        /// Why (for the log only).
        failure: AuthFailure,
    },
    /// The authorization request itself is invalid.
    Error(AuthorizeError),
}

/// A login submission admitted by [`Idms::begin_login`]: its password check (PBKDF2, the
/// expensive part) runs in [`PendingLogin::verify`], which needs no [`Idms`], and
/// [`Idms::finish_login`] completes it. Every `PendingLogin` must be finished: until then it
/// holds one of the throttle's in-flight slots for its user and source.
#[derive(Debug)]
#[must_use = "a pending login holds a throttle slot until Idms::finish_login"]
pub struct PendingLogin {
    inner: Pending,
}

#[derive(Debug)]
enum Pending {
    /// Decided without a password check (bad request, locked out, missing username).
    Decided(LoginOutcome),
    /// Admitted; the password check is to run against `check`'s hash.
    Admitted(Admitted),
}

/// The submitted fields a pending login keeps for [`Idms::finish_login`].
#[derive(Debug)]
enum OwnedFields {
    Pairs(Vec<(String, String)>),
    Form(Form),
}

impl OwnedFields {
    fn view(&self) -> Fields<'_> {
        match self {
            Self::Pairs(p) => Fields::Pairs(p),
            Self::Form(f) => Fields::Form(f),
        }
    }
}

#[derive(Debug)]
struct Admitted {
    params: OwnedFields,
    page: LoginPage,
    index: usize,
    source: IpAddr,
    /// The hash to check the submitted password against (the user's, or the dummy for an
    /// unknown user) and, once [`PendingLogin::verify`] ran, the result.
    check: Option<(PasswordHash, Option<bool>)>,
}

impl PendingLogin {
    /// Runs the password check (PBKDF2-HMAC-SHA256 at the stored iteration count), if the
    /// login needs one. Call it without holding the lock on the [`Idms`].
    pub fn verify(mut self) -> Self {
        if let Pending::Admitted(a) = &mut self.inner
            && let Some((hash, result @ None)) = &mut a.check
        {
            let password = a.params.view().get("password").unwrap_or("");
            *result = Some(hash.verify(password));
        }
        self
    }

    /// Whether [`PendingLogin::verify`] has a password check to run (the expensive part).
    #[must_use]
    pub fn needs_verify(&self) -> bool {
        matches!(&self.inner, Pending::Admitted(a) if matches!(a.check, Some((_, None))))
    }

    /// The PBKDF2 iteration count of the password check [`PendingLogin::verify`] will run,
    /// if it has one to run: what a server weighs to run it in place or off its request
    /// threads.
    #[must_use]
    pub fn verify_iterations(&self) -> Option<u32> {
        match &self.inner {
            Pending::Admitted(a) => match &a.check {
                Some((hash, None)) => Some(hash.iterations()),
                _ => None,
            },
            Pending::Decided(_) => None,
        }
    }

    /// Whether the outcome is already known (no password check is needed).
    #[must_use]
    pub fn is_decided(&self) -> bool {
        matches!(self.inner, Pending::Decided(_))
    }
}

/// The throttle's key for a login as `username`: the user's MCPTT ID, or for an unknown user
/// the name as given (at most 256 characters).
fn throttle_key<'a>(user: Option<&'a User>, username: &str) -> Cow<'a, str> {
    match user {
        Some(u) => Cow::Borrowed(u.mcptt_id.as_str()),
        None => Cow::Owned(username.chars().take(256).collect()),
    }
}

/// The identity management server core.
pub struct Idms {
    config: IdmsConfig,
    directory: Directory,
    methods: Vec<Box<dyn Authenticator>>,
    throttle: Throttle,
    oauth: AuthorizationServer,
    keys: KeyRing,
    /// The token settings of `config`, made once.
    token_config: TokenConfig,
    dummy: PasswordHash,
    /// The JWKS and discovery documents as served, made on first use and dropped whenever
    /// what they show can change (`keys_mut`, `add_method`): both are fetched on every login.
    jwks_cache: std::sync::OnceLock<String>,
    discovery_cache: std::sync::OnceLock<String>,
}

impl std::fmt::Debug for Idms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idms")
            .field("issuer", &self.config.issuer)
            .field("methods", &self.acr_values())
            .finish_non_exhaustive()
    }
}

impl Idms {
    /// Creates the IdMS with the three built-in methods (password, two-factor, SIM).
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] never in practice (the dummy hash for unknown users uses fixed inputs).
    pub fn new(config: IdmsConfig, directory: Directory, keys: KeyRing) -> Result<Self, Error> {
        // Unknown users cost the same PBKDF2 work as known ones.
        let iterations = directory
            .users()
            .find_map(|u| u.password.as_ref().map(PasswordHash::iterations))
            .unwrap_or(1000);
        let dummy = PasswordHash::derive("", b"mcptt-idm-unknown-user", iterations)?;
        let methods: Vec<Box<dyn Authenticator>> = vec![
            Box::new(PasswordMethod),
            Box::new(TwoFactorMethod::new()),
            Box::new(SimMethod::new(config.sim)),
        ];
        let token_config = TokenConfig {
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            access_lifetime: config.access_lifetime,
            id_lifetime: config.id_lifetime,
        };
        Ok(Self {
            token_config,
            throttle: Throttle::new(config.throttle),
            oauth: AuthorizationServer::new(config.oauth.clone()),
            config,
            directory,
            methods,
            keys,
            dummy,
            jwks_cache: std::sync::OnceLock::new(),
            discovery_cache: std::sync::OnceLock::new(),
        })
    }

    /// Registers another method (replacing a method with the same `acr`).
    pub fn add_method(&mut self, method: Box<dyn Authenticator>) {
        let acr = method.acr().to_owned();
        self.methods.retain(|m| m.acr() != acr);
        self.methods.push(method);
        self.discovery_cache = std::sync::OnceLock::new();
    }

    /// The `acr` values of the registered methods.
    #[must_use]
    pub fn acr_values(&self) -> Vec<String> {
        self.methods.iter().map(|m| m.acr().to_owned()).collect()
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &IdmsConfig {
        &self.config
    }

    /// The user directory.
    #[must_use]
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// The signing keys (to rotate them).
    pub fn keys_mut(&mut self) -> &mut KeyRing {
        // Whatever the caller changes shows in the next JWKS and discovery documents.
        self.jwks_cache = std::sync::OnceLock::new();
        self.discovery_cache = std::sync::OnceLock::new();
        &mut self.keys
    }

    fn method_index(&self, request: &AuthorizeRequest) -> Result<usize, AuthorizeError> {
        let find = |acr: &str| self.methods.iter().position(|m| m.acr() == acr);
        let found = if request.acr_values.is_empty() {
            find(&self.config.default_acr)
        } else {
            request.acr_values.iter().find_map(|a| find(a))
        };
        found.ok_or_else(|| AuthorizeError::Redirect {
            redirect_uri: request.redirect_uri.clone(),
            state: Some(request.state.clone()),
            error: OAuthError::new(
                ErrorCode::InvalidRequest,
                "none of the acr_values is supported",
            ),
        })
    }

    fn page(&self, request: AuthorizeRequest, index: usize, username: Option<String>) -> LoginPage {
        let method = &self.methods[index.min(self.methods.len() - 1)];
        let username = username.or_else(|| request.login_hint.clone());
        LoginPage {
            acr: method.acr().to_owned(),
            fields: method.fields(),
            request,
            username,
        }
    }

    /// Validates an authorization request (`GET /authorize`) and returns the login form to show.
    ///
    /// # Errors
    /// [`AuthorizeError`]: show it, or redirect to its [`AuthorizeError::location`].
    pub fn authorize(&self, params: &[(String, String)]) -> Result<LoginPage, AuthorizeError> {
        self.authorize_fields(Fields::Pairs(params))
    }

    /// [`Idms::authorize`] over a decoded [`Form`] (the query).
    ///
    /// # Errors
    /// As [`Idms::authorize`].
    pub fn authorize_form(&self, form: &Form) -> Result<LoginPage, AuthorizeError> {
        self.authorize_fields(Fields::Form(form))
    }

    fn authorize_fields(&self, params: Fields<'_>) -> Result<LoginPage, AuthorizeError> {
        let request = parse_authorize_fields(params, &self.directory, &self.config.oauth)?;
        let index = self.method_index(&request)?;
        Ok(self.page(request, index, None))
    }

    /// Handles a login form submission (`POST /authorize`): the authorization request's
    /// parameters plus `username` and the method's fields. The same as
    /// [`Idms::begin_login`], [`PendingLogin::verify`] and [`Idms::finish_login`] in a row;
    /// a server that shares the `Idms` between requests calls those three instead, so the
    /// password check (PBKDF2) runs without the `Idms` locked.
    pub fn login(
        &mut self,
        params: &[(String, String)],
        source: IpAddr,
        now: SystemTime,
        rng: &dyn RandomSource,
    ) -> LoginOutcome {
        let pending = self.begin_login(params, source, now).verify();
        self.finish_login(pending, now, rng)
    }

    /// First part of a login: validates the authorization request, finds the method and the
    /// user, and admits the attempt through the brute-force throttle (an attempt in flight
    /// counts as a possible failure until [`Idms::finish_login`], so attempts running at once
    /// cannot get past the lock-out threshold). Cheap: the password check is left to
    /// [`PendingLogin::verify`]. An unknown user gets a check against a dummy hash of the same
    /// cost, so the time of a login does not tell whether the user exists.
    pub fn begin_login(
        &mut self,
        params: &[(String, String)],
        source: IpAddr,
        now: SystemTime,
    ) -> PendingLogin {
        self.begin_login_owned(params.to_vec(), source, now)
    }

    /// [`Idms::begin_login`] taking the parameters by value: the pending login keeps them
    /// for [`Idms::finish_login`] without copying each one (a server that parsed the form
    /// for this call alone passes it on).
    pub fn begin_login_owned(
        &mut self,
        params: Vec<(String, String)>,
        source: IpAddr,
        now: SystemTime,
    ) -> PendingLogin {
        self.begin_login_fields(OwnedFields::Pairs(params), source, now)
    }

    /// [`Idms::begin_login_owned`] taking a decoded [`Form`] (the request body).
    pub fn begin_login_form(
        &mut self,
        form: Form,
        source: IpAddr,
        now: SystemTime,
    ) -> PendingLogin {
        self.begin_login_fields(OwnedFields::Form(form), source, now)
    }

    fn begin_login_fields(
        &mut self,
        params: OwnedFields,
        source: IpAddr,
        now: SystemTime,
    ) -> PendingLogin {
        let decided = |outcome| PendingLogin {
            inner: Pending::Decided(outcome),
        };
        let request =
            match parse_authorize_fields(params.view(), &self.directory, &self.config.oauth) {
                Ok(r) => r,
                Err(e) => return decided(LoginOutcome::Error(e)),
            };
        let index = match self.method_index(&request) {
            Ok(i) => i,
            Err(e) => return decided(LoginOutcome::Error(e)),
        };
        let input = LoginInput::from_fields(params.view());
        let username = input.get("username").map(str::trim).unwrap_or("");
        let page = self.page(
            request,
            index,
            (!username.is_empty()).then(|| username.to_owned()),
        );
        if username.is_empty() {
            return decided(LoginOutcome::Failed {
                page,
                failure: AuthFailure::MissingField("username"),
            });
        }
        let user = self.directory.user(username);
        let key = throttle_key(user, username);
        match self.throttle.begin(&key, source, now) {
            Ok(()) => {}
            Err(Refusal::Locked(until)) => {
                return decided(LoginOutcome::Failed {
                    page,
                    failure: AuthFailure::Locked { until },
                });
            }
            Err(_) => {
                return decided(LoginOutcome::Failed {
                    page,
                    failure: AuthFailure::Busy,
                });
            }
        }
        let password = input.get("password");
        let hash = match user {
            None => password.map(|_| self.dummy.clone()),
            Some(user)
                if user.allows_client(&page.request.client_id)
                    && self.methods.get(index).is_some_and(|m| m.uses_password()) =>
            {
                password.and_then(|_| user.password.clone())
            }
            Some(_) => None,
        };
        PendingLogin {
            inner: Pending::Admitted(Admitted {
                params,
                page,
                index,
                source,
                check: hash.map(|h| (h, None)),
            }),
        }
    }

    /// Last part of a login: runs the method with the password check of
    /// [`PendingLogin::verify`] (done here if it was not), records the outcome in the
    /// throttle and, on success, issues the authorization code.
    pub fn finish_login(
        &mut self,
        pending: PendingLogin,
        now: SystemTime,
        rng: &dyn RandomSource,
    ) -> LoginOutcome {
        let a = match pending.inner {
            Pending::Decided(outcome) => return outcome,
            Pending::Admitted(a) => a,
        };
        let Admitted {
            params,
            page,
            index,
            source,
            check,
        } = a;
        // Admitted logins have a username, which `page` shows. The directory does not change
        // under an `Idms`: the user, and the throttle key, are those `begin_login` found.
        let username = page.username.as_deref().unwrap_or("");
        let user = self.directory.user(username);
        let key = throttle_key(user, username);
        self.throttle.end(&key, source);
        let mut input = LoginInput::from_fields(params.view());
        let result = match user {
            None => {
                // Same work as a known user's check (done now unless verify() ran).
                if let Some((hash, None)) = &check {
                    let _ = hash.verify(input.get("password").unwrap_or(""));
                }
                Err(AuthFailure::UnknownUser)
            }
            Some(user) if !user.allows_client(&page.request.client_id) => {
                Err(AuthFailure::ClientNotAllowed)
            }
            Some(user) => {
                // Use the check only if it was made against this user's current hash.
                if let Some((hash, Some(ok))) = &check
                    && user.password.as_ref() == Some(hash)
                {
                    input = input.with_password_checked(*ok);
                }
                match self.methods.get_mut(index) {
                    Some(method) => method
                        .authenticate(user, &input, now, rng)
                        .map(|o| (o, user)),
                    None => Err(AuthFailure::Internal),
                }
            }
        };
        match result {
            Ok((Outcome::Authenticated, user)) => {
                let mcptt_id = user.mcptt_id.clone();
                self.throttle.record_success(&key);
                let mut page = page;
                let acr = std::mem::take(&mut page.acr);
                match self
                    .oauth
                    .issue_code_taking(&mut page.request, mcptt_id, acr, now, rng)
                {
                    Ok(location) => LoginOutcome::Redirect(location),
                    Err(_) => LoginOutcome::Error(AuthorizeError::Redirect {
                        redirect_uri: page.request.redirect_uri.clone(),
                        state: Some(page.request.state.clone()),
                        error: OAuthError::new(
                            ErrorCode::TemporarilyUnavailable,
                            "cannot issue a code now",
                        ),
                    }),
                }
            }
            Ok((Outcome::Challenge(challenge), _)) => LoginOutcome::Challenge { page, challenge },
            Err(failure) => {
                if !matches!(failure, AuthFailure::Busy | AuthFailure::Internal) {
                    self.throttle.record_failure(&key, source, now);
                }
                LoginOutcome::Failed { page, failure }
            }
        }
    }

    /// Attempts admitted by [`Idms::begin_login`] and not yet finished (users, sources).
    #[must_use]
    pub fn logins_in_flight(&self) -> (u32, u32) {
        self.throttle.in_flight()
    }

    /// Handles a token request (`POST /token`, form fields decoded).
    ///
    /// # Errors
    /// [`OAuthError`] per RFC 6749 §5.2.
    pub fn token(
        &mut self,
        params: &[(String, String)],
        now: SystemTime,
        rng: &dyn RandomSource,
    ) -> Result<TokenResponse, OAuthError> {
        self.token_fields(Fields::Pairs(params), now, rng)
    }

    /// [`Idms::token`] over a decoded [`Form`] (the request body).
    ///
    /// # Errors
    /// As [`Idms::token`].
    pub fn token_form(
        &mut self,
        form: &Form,
        now: SystemTime,
        rng: &dyn RandomSource,
    ) -> Result<TokenResponse, OAuthError> {
        self.token_fields(Fields::Form(form), now, rng)
    }

    fn token_fields(
        &mut self,
        params: Fields<'_>,
        now: SystemTime,
        rng: &dyn RandomSource,
    ) -> Result<TokenResponse, OAuthError> {
        let grant = self.oauth.token_fields(params, &self.directory, now, rng)?;
        Ok(issue_owned(
            &self.keys,
            &self.token_config,
            grant,
            unix_seconds(now),
            rng,
        )?)
    }

    /// The JWKS document (every key of the ring).
    ///
    /// # Errors
    /// [`Error::Token`] when the ring holds a key the token crate refuses.
    pub fn jwks_json(&self) -> Result<String, Error> {
        Ok(self.keys.jwks()?.to_json())
    }

    /// The JWKS document as [`Idms::jwks_json`] makes it, made once and kept until the keys
    /// change ([`Idms::keys_mut`]): what a server answers `GET` [`JWKS_PATH`] with.
    ///
    /// # Errors
    /// As [`Idms::jwks_json`] (nothing is kept then).
    pub fn jwks_document(&self) -> Result<&str, Error> {
        if let Some(doc) = self.jwks_cache.get() {
            return Ok(doc);
        }
        let doc = self.jwks_json()?;
        Ok(self.jwks_cache.get_or_init(|| doc))
    }

    /// The discovery document ([`Idms::discovery`]) as JSON text, made once and kept until
    /// the keys or the methods change: what a server answers `GET` [`DISCOVERY_PATH`] with.
    #[must_use]
    pub fn discovery_document(&self) -> &str {
        self.discovery_cache
            .get_or_init(|| self.discovery().to_string())
    }

    /// The discovery document (OpenID Connect Discovery 1.0 §3).
    #[must_use]
    pub fn discovery(&self) -> serde_json::Value {
        let iss = &self.config.issuer;
        serde_json::json!({
            "issuer": iss,
            "authorization_endpoint": format!("{iss}{AUTHORIZE_PATH}"),
            "token_endpoint": format!("{iss}{TOKEN_PATH}"),
            "jwks_uri": format!("{iss}{JWKS_PATH}"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "scopes_supported": self.config.oauth.allowed_scopes,
            "acr_values_supported": self.acr_values(),
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [self.keys.active().key().algorithm().as_str()],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "azp", "mcptt_id"],
        })
    }
}
