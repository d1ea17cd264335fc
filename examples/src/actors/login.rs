//! Step 1: the user authenticates at the IdMS and the UE obtains its tokens, through the
//! UE-side IdM client (authorization code + PKCE S256) of `examples/src/idm`.
//!
//! Not wired in this build: the IdM client and server (`examples/src/idm`) are not available
//! yet, so every function here reports step 1 (or the JWKS fetch) as not wired.

use std::time::Duration;

use super::ActorError;
use super::clock::Clock;
use super::config::{TokenKeys, UeConfig};
use crate::pki::DemoPki;
use crate::steps::StepFailure;
use crate::trace::Trace;

const NO_IDM: &str = "not wired yet: the IdMS and its UE-side client (examples/src/idm) are not available in this build";

/// What the UE holds after step 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    /// The access token (JWS compact JWT, `typ` `at+jwt`).
    pub access_token: String,
    /// The ID token.
    pub id_token: Option<String>,
    /// The refresh token.
    pub refresh_token: Option<String>,
    /// Lifetime of the access token, seconds.
    pub expires_in: Option<u64>,
}

fn not_wired() -> StepFailure {
    StepFailure {
        step: 1,
        reason: NO_IDM.into(),
    }
}

/// Step 1: logs the user in at the IdMS.
pub async fn login(config: &UeConfig, trace: &Trace, clock: &Clock) -> Result<Tokens, StepFailure> {
    let _ = (config, trace, clock);
    Err(not_wired())
}

/// Step 1 again: a `refresh_token` grant for fresh tokens.
pub async fn refresh(
    config: &UeConfig,
    tokens: &Tokens,
    trace: &Trace,
    clock: &Clock,
) -> Result<Tokens, StepFailure> {
    let _ = (config, tokens, trace, clock);
    Err(not_wired())
}

/// Fetches the IdMS issuer and JWKS over HTTPS.
pub async fn fetch_keys(
    idms: &str,
    issuer: Option<&str>,
    roots: &[rustls_pki_types::CertificateDer<'static>],
    clock: &Clock,
) -> Result<TokenKeys, ActorError> {
    let _ = (idms, issuer, roots, clock);
    Err(ActorError::NotWired {
        step: 8,
        what: NO_IDM.into(),
    })
}

/// An IdMS started in-process by `flow`.
#[derive(Debug)]
pub struct IdmsRunning {
    /// Its base URL.
    pub base_url: String,
    /// The issuer and JWKS the MCPTT server trusts.
    pub keys: TokenKeys,
}

impl IdmsRunning {
    /// Stops it.
    pub fn shutdown(self) {}
}

/// Starts the IdMS in-process.
pub async fn start_idms(
    pki: &DemoPki,
    users: &[String],
    audience: &str,
    lifetime: Duration,
    clock: &Clock,
) -> Result<IdmsRunning, ActorError> {
    let _ = (pki, users, audience, lifetime, clock);
    Err(ActorError::NotWired {
        step: 1,
        what: NO_IDM.into(),
    })
}
