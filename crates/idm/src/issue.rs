//! Token issuing through `mcptt-token`: signing keys with rotation, and the token response.

use crate::Error;
use crate::oauth::Grant;
use crate::random::{RandomSource, token};
use mcptt_token::{AccessTokenClaims, IdTokenClaims, JwkSet, Signer, SigningKey};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The IdMS's signing keys: one active key signs, every key in the ring is published in the
/// JWKS so tokens signed before a rotation still verify.
///
/// ```text
///  new(k1) ─▶ [k1*] ─rotate(k2)─▶ [k1, k2*] ─retire("k1")─▶ [k2*]      (* = signs)
/// ```
#[derive(Debug)]
pub struct KeyRing {
    signers: Vec<Signer>,
}

impl KeyRing {
    /// A ring with one key, which signs.
    #[must_use]
    pub fn new(key: SigningKey) -> Self {
        Self {
            signers: vec![Signer::new(key)],
        }
    }

    /// Adds a key that signs from now on; the previous keys stay published.
    pub fn rotate(&mut self, key: SigningKey) {
        self.signers.retain(|s| s.key().kid() != key.kid());
        self.signers.push(Signer::new(key));
    }

    /// Removes a key that no longer signs; returns whether it was removed. The active key
    /// cannot be retired.
    pub fn retire(&mut self, kid: &str) -> bool {
        let before = self.signers.len();
        let active = self.active().key().kid().to_owned();
        if kid != active {
            self.signers.retain(|s| s.key().kid() != kid);
        }
        self.signers.len() != before
    }

    /// The `kid`s in the ring, oldest first (the last one signs).
    #[must_use]
    pub fn kids(&self) -> Vec<&str> {
        self.signers.iter().map(|s| s.key().kid()).collect()
    }

    /// The signer in use.
    #[must_use]
    pub fn active(&self) -> &Signer {
        // Invariant: the ring is created with one signer and `retire` never removes the active (last) one.
        &self.signers[self.signers.len() - 1]
    }

    /// The public keys of every key in the ring.
    ///
    /// # Errors
    /// [`Error::Token`] if the token crate refuses a key (duplicate `kid`, which `rotate` prevents).
    pub fn jwks(&self) -> Result<JwkSet, Error> {
        Ok(JwkSet::from_keys(
            self.signers.iter().map(|s| s.key().public_jwk()),
        )?)
    }
}

/// Lifetimes and names for issued tokens.
#[derive(Clone, Debug)]
pub struct TokenConfig {
    /// `iss`: the issuer identifier (the IdMS's base URL).
    pub issuer: String,
    /// `aud` of access tokens: the MCPTT server(s).
    pub audience: Vec<String>,
    /// Access token lifetime.
    pub access_lifetime: Duration,
    /// ID token lifetime.
    pub id_lifetime: Duration,
}

/// A successful token response (RFC 6749 §5.1, OIDC Core §3.1.3.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The access token (JWT, `typ` `at+jwt`).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Access token lifetime in seconds.
    pub expires_in: u64,
    /// The new refresh token (the one presented, if any, is now spent).
    pub refresh_token: String,
    /// The ID token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// Granted scopes, space-separated.
    pub scope: String,
}

impl TokenResponse {
    /// The JSON body.
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Signs the access and ID tokens for a grant.
///
/// # Errors
/// [`Error::Token`] or [`Error::Random`].
pub fn issue(
    keys: &KeyRing,
    config: &TokenConfig,
    grant: &Grant,
    now: u64,
    rng: &dyn RandomSource,
) -> Result<TokenResponse, Error> {
    let signer = keys.active();
    let scope = grant.scope.join(" ");
    let access_exp = now + config.access_lifetime.as_secs().max(1);
    let access_token = signer.sign_access_token(&AccessTokenClaims {
        iss: config.issuer.clone(),
        sub: grant.mcptt_id.to_string(),
        aud: config.audience.clone(),
        exp: access_exp,
        iat: now,
        jti: token(rng, 16)?,
        client_id: grant.client_id.clone(),
        scope: scope.clone(),
        mcptt_id: grant.mcptt_id.to_string(),
        auth_time: Some(grant.auth_time),
        acr: Some(grant.acr.clone()),
        ..Default::default()
    })?;
    let id_token = signer.sign_id_token(&IdTokenClaims {
        iss: config.issuer.clone(),
        sub: grant.mcptt_id.to_string(),
        aud: grant.client_id.clone(),
        exp: now + config.id_lifetime.as_secs().max(1),
        iat: now,
        auth_time: Some(grant.auth_time),
        nonce: grant.nonce.clone(),
        acr: Some(grant.acr.clone()),
        azp: Some(grant.client_id.clone()),
        mcptt_id: grant.mcptt_id.to_string(),
        ..Default::default()
    })?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer".into(),
        expires_in: access_exp - now,
        refresh_token: grant.refresh_token.clone(),
        id_token: Some(id_token),
        scope,
    })
}
