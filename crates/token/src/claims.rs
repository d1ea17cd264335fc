//! Claims sets the IdMS signs, and the typed results of validation.

use std::collections::BTreeMap;

use serde::Serialize;

/// Claims of an MCPTT access token (RFC 9068 §2.2 plus `mcptt_id`, TS 24.482).
///
/// Build with struct syntax and `..Default::default()` so that fields added
/// later do not break callers. `aud` is serialized as a string when it has
/// one element, as an array otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AccessTokenClaims {
    /// Issuer: the IdMS's issuer identifier (URL).
    pub iss: String,
    /// Subject: the user's identifier at the IdMS.
    pub sub: String,
    /// Audiences: the MCPTT server(s) the token is meant for.
    #[serde(serialize_with = "ser_aud")]
    pub aud: Vec<String>,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issued-at, seconds since the Unix epoch.
    pub iat: u64,
    /// Not-before, seconds since the Unix epoch (optional).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Token identifier, unique per token.
    pub jti: String,
    /// The OAuth client the token was issued to.
    pub client_id: String,
    /// Space-separated scopes, e.g. `openid 3gpp:mcptt:ptt_server`.
    pub scope: String,
    /// The MCPTT ID (a SIP URI, e.g. `sip:alice@mcptt.example`).
    pub mcptt_id: String,
    /// Time of the user's authentication (optional).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<u64>,
    /// Authentication context class (optional, e.g. `3gpp:acr:password`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// Further claims, signed as given. Names used by the fields above are refused when signing.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// Claims of an MCPTT ID token (OpenID Connect Core §2, TS 33.180 §5.1.3).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IdTokenClaims {
    /// Issuer: the IdMS's issuer identifier (URL).
    pub iss: String,
    /// Subject: the user's identifier at the IdMS.
    pub sub: String,
    /// Audience: the client id of the MCPTT client.
    pub aud: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issued-at, seconds since the Unix epoch.
    pub iat: u64,
    /// Time of the user's authentication (optional).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<u64>,
    /// The nonce from the authorization request (optional).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Authentication context class (optional).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// Authentication methods (optional).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    /// Authorized party (optional).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    /// The MCPTT ID (a SIP URI).
    pub mcptt_id: String,
    /// Further claims, signed as given. Names used by the fields above are refused when signing.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

fn ser_aud<S: serde::Serializer>(aud: &[String], s: S) -> Result<S::Ok, S::Error> {
    match aud {
        [one] => s.serialize_str(one),
        many => many.serialize(s),
    }
}

pub(crate) const ACCESS_FIELDS: [&str; 12] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "client_id",
    "scope",
    "mcptt_id",
    "auth_time",
    "acr",
];
pub(crate) const ID_FIELDS: [&str; 11] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "azp",
    "mcptt_id",
];

/// A validated access token: the claims the MCPTT server acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccessToken {
    /// The MCPTT ID (`mcptt_id`), a checked SIP URI.
    pub mcptt_id: String,
    /// The subject (`sub`).
    pub subject: String,
    /// The OAuth client (`client_id`).
    pub client_id: String,
    /// The scopes (`scope` split on spaces).
    pub scopes: Vec<String>,
    /// The audiences (`aud`).
    pub audiences: Vec<String>,
    /// The issuer (`iss`).
    pub issuer: String,
    /// Expiry (`exp`), seconds since the Unix epoch.
    pub expires_at: u64,
    /// Issued-at (`iat`), seconds since the Unix epoch.
    pub issued_at: u64,
    /// Token identifier (`jti`).
    pub token_id: String,
    /// Authentication context class (`acr`), when present.
    pub acr: Option<String>,
    /// The `kid` of the key that verified the token, when the token named one.
    pub key_id: Option<String>,
}

impl AccessToken {
    /// Whether the token grants `scope` (a whole space-separated token).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// A validated ID token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdToken {
    /// The MCPTT ID (`mcptt_id`), a checked SIP URI.
    pub mcptt_id: String,
    /// The subject (`sub`).
    pub subject: String,
    /// The issuer (`iss`).
    pub issuer: String,
    /// The audiences (`aud`; contains the client id).
    pub audiences: Vec<String>,
    /// Expiry (`exp`), seconds since the Unix epoch.
    pub expires_at: u64,
    /// Issued-at (`iat`), seconds since the Unix epoch.
    pub issued_at: u64,
    /// Authentication time (`auth_time`), when present.
    pub auth_time: Option<u64>,
    /// The nonce (`nonce`), when present.
    pub nonce: Option<String>,
    /// Authentication context class (`acr`), when present.
    pub acr: Option<String>,
}
