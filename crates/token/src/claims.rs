//! Claims sets the IdMS signs, and the typed results of validation.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::json::Json;

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

/// The claims of a validated access token, borrowed from the decoded token
/// instead of copied: what [`Validator::validate_access_token_with`]
/// passes to its closure after the same checks as
/// [`Validator::validate_access_token`]. [`Self::to_access_token`] gives the
/// owned [`AccessToken`].
///
/// [`Validator::validate_access_token_with`]: crate::Validator::validate_access_token_with
/// [`Validator::validate_access_token`]: crate::Validator::validate_access_token
#[derive(Debug, Clone, Copy)]
pub struct AccessTokenRef<'a> {
    pub(crate) mcptt_id: &'a str,
    pub(crate) subject: &'a str,
    pub(crate) client_id: &'a str,
    pub(crate) scopes: Values<'a>,
    pub(crate) audiences: Values<'a>,
    pub(crate) issuer: &'a str,
    pub(crate) expires_at: u64,
    pub(crate) issued_at: u64,
    pub(crate) token_id: &'a str,
    pub(crate) acr: Option<&'a str>,
    pub(crate) key_id: Option<&'a str>,
}

/// A claim's list of strings, as it was checked.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Values<'a> {
    /// A single value (a string `aud`).
    One(&'a str),
    /// Non-empty values separated by single spaces (a checked `scope`).
    Words(&'a str),
    /// A JSON array whose items are all strings (a checked `aud` array).
    Json(&'a [Json<'a>]),
    /// Owned values (an [`AccessToken`]).
    Owned(&'a [String]),
}

impl<'a> Values<'a> {
    pub(crate) fn iter(self) -> impl Iterator<Item = &'a str> + 'a {
        // One iterator type for the four cases: at most one of them yields.
        let (one, words, json, owned) = match self {
            Self::One(s) => (Some(s), None, None, None),
            Self::Words(s) => (None, Some(s.split(' ')), None, None),
            Self::Json(items) => (
                None,
                None,
                Some(items.iter().filter_map(Json::as_str)),
                None,
            ),
            Self::Owned(items) => (None, None, None, Some(items.iter().map(String::as_str))),
        };
        one.into_iter()
            .chain(words.into_iter().flatten())
            .chain(json.into_iter().flatten())
            .chain(owned.into_iter().flatten())
    }
}

impl<'a> AccessTokenRef<'a> {
    /// The MCPTT ID (`mcptt_id`), a checked SIP URI.
    pub fn mcptt_id(&self) -> &'a str {
        self.mcptt_id
    }

    /// The subject (`sub`).
    pub fn subject(&self) -> &'a str {
        self.subject
    }

    /// The OAuth client (`client_id`).
    pub fn client_id(&self) -> &'a str {
        self.client_id
    }

    /// The scopes (`scope` split on spaces), in token order.
    pub fn scopes(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.scopes.iter()
    }

    /// Whether the token grants `scope` (a whole space-separated token).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    /// The audiences (`aud`), in token order.
    pub fn audiences(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.audiences.iter()
    }

    /// The issuer (`iss`).
    pub fn issuer(&self) -> &'a str {
        self.issuer
    }

    /// Expiry (`exp`), seconds since the Unix epoch.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// Issued-at (`iat`), seconds since the Unix epoch.
    pub fn issued_at(&self) -> u64 {
        self.issued_at
    }

    /// Token identifier (`jti`).
    pub fn token_id(&self) -> &'a str {
        self.token_id
    }

    /// Authentication context class (`acr`), when present.
    pub fn acr(&self) -> Option<&'a str> {
        self.acr
    }

    /// The `kid` of the key that verified the token, when the token named one.
    pub fn key_id(&self) -> Option<&'a str> {
        self.key_id
    }

    /// The owned [`AccessToken`] with these claims.
    pub fn to_access_token(&self) -> AccessToken {
        AccessToken {
            mcptt_id: self.mcptt_id.to_owned(),
            subject: self.subject.to_owned(),
            client_id: self.client_id.to_owned(),
            scopes: self.scopes().map(str::to_owned).collect(),
            audiences: self.audiences().map(str::to_owned).collect(),
            issuer: self.issuer.to_owned(),
            expires_at: self.expires_at,
            issued_at: self.issued_at,
            token_id: self.token_id.to_owned(),
            acr: self.acr.map(str::to_owned),
            key_id: self.key_id.map(str::to_owned),
        }
    }
}

impl<'a> From<&'a AccessToken> for AccessTokenRef<'a> {
    fn from(at: &'a AccessToken) -> Self {
        Self {
            mcptt_id: &at.mcptt_id,
            subject: &at.subject,
            client_id: &at.client_id,
            scopes: Values::Owned(&at.scopes),
            audiences: Values::Owned(&at.audiences),
            issuer: &at.issuer,
            expires_at: at.expires_at,
            issued_at: at.issued_at,
            token_id: &at.token_id,
            acr: at.acr.as_deref(),
            key_id: at.key_id.as_deref(),
        }
    }
}
