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
    /// The JSON body: the same text as `serde_json::to_string` gives, written directly (the
    /// tokens are base64url and dots, about 1.2 KB that need no escaping: serde_json's
    /// character-by-character escaping of them cost ~12k instructions per response).
    #[must_use]
    pub fn to_json(&self) -> String {
        let tokens = self.access_token.len()
            + self.refresh_token.len()
            + self.id_token.as_ref().map_or(0, String::len);
        let mut out = String::with_capacity(tokens + self.scope.len() + 128);
        out.push_str("{\"access_token\":");
        push_json_str(&mut out, &self.access_token);
        out.push_str(",\"token_type\":");
        push_json_str(&mut out, &self.token_type);
        {
            use std::fmt::Write as _;
            let _ = write!(out, ",\"expires_in\":{}", self.expires_in);
        }
        out.push_str(",\"refresh_token\":");
        push_json_str(&mut out, &self.refresh_token);
        if let Some(id_token) = &self.id_token {
            out.push_str(",\"id_token\":");
            push_json_str(&mut out, id_token);
        }
        out.push_str(",\"scope\":");
        push_json_str(&mut out, &self.scope);
        out.push('}');
        out
    }
}

/// Appends `s` as a JSON string: copied between quotes when it is printable ASCII without
/// `"` or `\` (nothing to escape), else through serde_json (RFC 8259 §7).
pub(crate) fn push_json_str(out: &mut String, s: &str) {
    // No early exit: the fold over every byte vectorizes.
    let odd = s.bytes().fold(false, |odd, b| {
        odd | !(0x20..0x7f).contains(&b) | (b == b'"') | (b == b'\\')
    });
    if !odd {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::Value::from(s).to_string());
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
    issue_owned(keys, config, grant.clone(), now, rng)
}

/// [`issue`] taking the grant by value: its strings move into the claims and the response
/// instead of being copied.
pub(crate) fn issue_owned(
    keys: &KeyRing,
    config: &TokenConfig,
    grant: Grant,
    now: u64,
    rng: &dyn RandomSource,
) -> Result<TokenResponse, Error> {
    let Grant {
        mcptt_id,
        client_id,
        scope,
        nonce,
        acr,
        auth_time,
        refresh_token,
    } = grant;
    let signer = keys.active();
    let access_exp = now + config.access_lifetime.as_secs().max(1);
    // The grant's strings move into the access token's claims, and from there (once signed)
    // into the ID token's and the response: each is copied only where two places keep it.
    let sub = mcptt_id.into_string();
    let access = AccessTokenClaims {
        iss: config.issuer.clone(),
        mcptt_id: sub.clone(),
        sub,
        aud: config.audience.clone(),
        exp: access_exp,
        iat: now,
        jti: token(rng, 16)?,
        client_id,
        scope: scope.join(" "),
        auth_time: Some(auth_time),
        acr: Some(acr),
        ..Default::default()
    };
    let access_token = signer.sign_access_token(&access)?;
    let AccessTokenClaims {
        iss,
        sub,
        client_id,
        scope,
        mcptt_id,
        acr,
        ..
    } = access;
    let id_token = signer.sign_id_token(&IdTokenClaims {
        iss,
        sub,
        aud: client_id.clone(),
        exp: now + config.id_lifetime.as_secs().max(1),
        iat: now,
        auth_time: Some(auth_time),
        nonce,
        acr,
        azp: Some(client_id),
        mcptt_id,
        ..Default::default()
    })?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer".into(),
        expires_in: access_exp - now,
        refresh_token,
        id_token: Some(id_token),
        scope,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{KeyRing, TokenConfig, TokenResponse, issue};
    use crate::directory::McpttId;
    use crate::oauth::Grant;
    use crate::random::testing::SeqRandom;
    use base64::Engine as _;
    use mcptt_token::{AccessTokenClaims, Algorithm, IdTokenClaims, SigningKey};

    /// The claims of the tokens `issue` signs are those the claims built field by field from
    /// copies (as before the strings moved from one to the next) serialize to, byte for byte.
    #[test]
    fn issued_claims_are_the_copied_ones() {
        let key = SigningKey::generate(Algorithm::Es256, "k", &ring::rand::SystemRandom::new());
        let keys = KeyRing::new(key.unwrap());
        let config = TokenConfig {
            issuer: "https://idms.example".into(),
            audience: vec!["sip:a@x".into(), "sip:b@x".into()],
            access_lifetime: std::time::Duration::from_secs(3600),
            id_lifetime: std::time::Duration::from_secs(600),
        };
        for nonce in [None, Some("n-1".to_owned())] {
            let grant = Grant {
                mcptt_id: McpttId::parse("sip:alice@example.com").unwrap(),
                client_id: "mcptt-client".into(),
                scope: vec!["openid".into(), "3gpp:mcptt:ptt_server".into()],
                nonce: nonce.clone(),
                acr: "3gpp:acr:password".into(),
                auth_time: 1_700_000_000,
                refresh_token: "r".into(),
            };
            let now = 1_700_000_100;
            let r = issue(&keys, &config, &grant, now, &SeqRandom::default()).unwrap();
            let jti = crate::random::token(&SeqRandom::default(), 16).unwrap();
            let sub = grant.mcptt_id.as_str().to_owned();
            let access = AccessTokenClaims {
                iss: config.issuer.clone(),
                sub: sub.clone(),
                aud: config.audience.clone(),
                exp: now + 3600,
                iat: now,
                jti,
                client_id: grant.client_id.clone(),
                scope: "openid 3gpp:mcptt:ptt_server".into(),
                mcptt_id: sub.clone(),
                auth_time: Some(grant.auth_time),
                acr: Some(grant.acr.clone()),
                ..Default::default()
            };
            let id = IdTokenClaims {
                iss: config.issuer.clone(),
                sub: sub.clone(),
                aud: grant.client_id.clone(),
                exp: now + 600,
                iat: now,
                auth_time: Some(grant.auth_time),
                nonce,
                acr: Some(grant.acr.clone()),
                azp: Some(grant.client_id.clone()),
                mcptt_id: sub,
                ..Default::default()
            };
            let payload = |jwt: &str| {
                let part = jwt.split('.').nth(1).unwrap().to_owned();
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(part)
                    .unwrap()
            };
            assert_eq!(
                payload(&r.access_token),
                serde_json::to_vec(&access).unwrap()
            );
            let id_token = r.id_token.as_deref().unwrap();
            assert_eq!(payload(id_token), serde_json::to_vec(&id).unwrap());
            assert_eq!(r.scope, access.scope);
            assert_eq!((r.token_type.as_str(), r.expires_in), ("Bearer", 3600));
            assert_eq!(r.refresh_token, "r");
        }
    }

    /// The direct writer gives serde_json's text, escaping included, and reads back.
    #[test]
    fn to_json_is_serde_json() {
        let base = TokenResponse {
            access_token: "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln-_".into(),
            token_type: "Bearer".into(),
            expires_in: 3600,
            refresh_token: "r-_0".into(),
            id_token: Some("a.b.c".into()),
            scope: "openid 3gpp:mcptt:ptt_server".into(),
        };
        let mut cases = vec![base.clone()];
        // Each character serde_json escapes, or that is not ASCII, alone in a field.
        for odd in [
            "a \"q", "b\\s", "t\tab", "n\nl", "c\u{1}", "d\u{7f}", "é", "✓",
        ] {
            cases.push(TokenResponse {
                scope: odd.into(),
                ..base.clone()
            });
            cases.push(TokenResponse {
                access_token: odd.into(),
                id_token: None,
                ..base.clone()
            });
        }
        for r in cases {
            let json = r.to_json();
            assert_eq!(json, serde_json::to_string(&r).unwrap());
            assert_eq!(serde_json::from_str::<TokenResponse>(&json).unwrap(), r);
        }
    }
}
