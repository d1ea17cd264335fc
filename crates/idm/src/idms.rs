//! The IdMS core: authorization endpoint with login, token endpoint, discovery and JWKS, as
//! plain functions of the request data, `now`, the source address and a random source.

use crate::authn::{
    ACR_PASSWORD, AuthFailure, Authenticator, Challenge, Field, LoginInput, Outcome,
    PasswordMethod, SimConfig, SimMethod, TwoFactorMethod,
};
use crate::directory::Directory;
use crate::issue::{KeyRing, TokenConfig, TokenResponse, issue};
use crate::oauth::{
    AuthorizationServer, AuthorizeError, AuthorizeRequest, ErrorCode, OAuthConfig, OAuthError,
    parse_authorize,
};
use crate::password::PasswordHash;
use crate::random::RandomSource;
use crate::throttle::{Throttle, ThrottleConfig};
use crate::{Error, unix_seconds};
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

/// The identity management server core.
pub struct Idms {
    config: IdmsConfig,
    directory: Directory,
    methods: Vec<Box<dyn Authenticator>>,
    throttle: Throttle,
    oauth: AuthorizationServer,
    keys: KeyRing,
    dummy: PasswordHash,
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
        Ok(Self {
            throttle: Throttle::new(config.throttle),
            oauth: AuthorizationServer::new(config.oauth.clone()),
            config,
            directory,
            methods,
            keys,
            dummy,
        })
    }

    /// Registers another method (replacing a method with the same `acr`).
    pub fn add_method(&mut self, method: Box<dyn Authenticator>) {
        let acr = method.acr().to_owned();
        self.methods.retain(|m| m.acr() != acr);
        self.methods.push(method);
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
        let request = parse_authorize(params, &self.directory, &self.config.oauth)?;
        let index = self.method_index(&request)?;
        Ok(self.page(request, index, None))
    }

    /// Handles a login form submission (`POST /authorize`): the authorization request's
    /// parameters plus `username` and the method's fields.
    pub fn login(
        &mut self,
        params: &[(String, String)],
        source: IpAddr,
        now: SystemTime,
        rng: &dyn RandomSource,
    ) -> LoginOutcome {
        let request = match parse_authorize(params, &self.directory, &self.config.oauth) {
            Ok(r) => r,
            Err(e) => return LoginOutcome::Error(e),
        };
        let index = match self.method_index(&request) {
            Ok(i) => i,
            Err(e) => return LoginOutcome::Error(e),
        };
        let input = LoginInput::new(params);
        let username = input
            .get("username")
            .map(str::trim)
            .unwrap_or("")
            .to_owned();
        let page = self.page(
            request,
            index,
            (!username.is_empty()).then(|| username.clone()),
        );
        if username.is_empty() {
            return LoginOutcome::Failed {
                page,
                failure: AuthFailure::MissingField("username"),
            };
        }
        let key: String = self.directory.user(&username).map_or_else(
            || username.chars().take(256).collect(),
            |u| u.mcptt_id.to_string(),
        );
        if let Err(until) = self.throttle.check(&key, source, now) {
            return LoginOutcome::Failed {
                page,
                failure: AuthFailure::Locked { until },
            };
        }
        let result = match self.directory.user(&username) {
            None => {
                if input.get("password").is_some() {
                    let _ = self.dummy.verify(input.get("password").unwrap_or(""));
                }
                Err(AuthFailure::UnknownUser)
            }
            Some(user) if !user.allows_client(&page.request.client_id) => {
                Err(AuthFailure::ClientNotAllowed)
            }
            Some(user) => match self.methods.get_mut(index) {
                Some(method) => method
                    .authenticate(user, &input, now, rng)
                    .map(|o| (o, user.mcptt_id.clone())),
                None => Err(AuthFailure::Internal),
            },
        };
        match result {
            Ok((Outcome::Authenticated, mcptt_id)) => {
                self.throttle.record_success(&key);
                match self
                    .oauth
                    .issue_code(&page.request, &mcptt_id, &page.acr, now, rng)
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
        let grant = self.oauth.token(params, &self.directory, now, rng)?;
        let config = TokenConfig {
            issuer: self.config.issuer.clone(),
            audience: self.config.audience.clone(),
            access_lifetime: self.config.access_lifetime,
            id_lifetime: self.config.id_lifetime,
        };
        Ok(issue(&self.keys, &config, &grant, unix_seconds(now), rng)?)
    }

    /// The JWKS document (every key of the ring).
    ///
    /// # Errors
    /// [`Error::Token`] when the ring holds a key the token crate refuses.
    pub fn jwks_json(&self) -> Result<String, Error> {
        Ok(self.keys.jwks()?.to_json())
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
