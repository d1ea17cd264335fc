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

impl AccessTokenClaims {
    /// The JSON payload: the bytes `serde_json::to_vec` gives, written
    /// directly when there are no `extra` claims (through serde_json
    /// otherwise); serde_json's struct serialisation with the flattened
    /// `extra` map cost ~7k instructions per token.
    pub(crate) fn to_json_vec(&self) -> Result<Vec<u8>, serde_json::Error> {
        if !self.extra.is_empty() {
            return serde_json::to_vec(self);
        }
        let mut w = JsonObject::with_capacity(
            160 + self.iss.len()
                + self.sub.len()
                + self.aud.iter().map(|a| a.len() + 3).sum::<usize>()
                + self.jti.len()
                + self.client_id.len()
                + self.scope.len()
                + self.mcptt_id.len()
                + self.acr.as_ref().map_or(0, String::len),
        );
        w.str("iss", &self.iss)?;
        w.str("sub", &self.sub)?;
        match self.aud.as_slice() {
            [one] => w.str("aud", one)?,
            many => w.strs("aud", many)?,
        }
        w.num("exp", self.exp);
        w.num("iat", self.iat);
        if let Some(nbf) = self.nbf {
            w.num("nbf", nbf);
        }
        w.str("jti", &self.jti)?;
        w.str("client_id", &self.client_id)?;
        w.str("scope", &self.scope)?;
        w.str("mcptt_id", &self.mcptt_id)?;
        if let Some(t) = self.auth_time {
            w.num("auth_time", t);
        }
        if let Some(acr) = &self.acr {
            w.str("acr", acr)?;
        }
        Ok(w.finish())
    }
}

impl IdTokenClaims {
    /// The JSON payload, as [`AccessTokenClaims::to_json_vec`].
    pub(crate) fn to_json_vec(&self) -> Result<Vec<u8>, serde_json::Error> {
        if !self.extra.is_empty() {
            return serde_json::to_vec(self);
        }
        let mut w = JsonObject::with_capacity(
            160 + self.iss.len()
                + self.sub.len()
                + self.aud.len()
                + self.nonce.as_ref().map_or(0, String::len)
                + self.acr.as_ref().map_or(0, String::len)
                + self
                    .amr
                    .as_ref()
                    .map_or(0, |a| a.iter().map(|m| m.len() + 3).sum())
                + self.azp.as_ref().map_or(0, String::len)
                + self.mcptt_id.len(),
        );
        w.str("iss", &self.iss)?;
        w.str("sub", &self.sub)?;
        w.str("aud", &self.aud)?;
        w.num("exp", self.exp);
        w.num("iat", self.iat);
        if let Some(t) = self.auth_time {
            w.num("auth_time", t);
        }
        if let Some(nonce) = &self.nonce {
            w.str("nonce", nonce)?;
        }
        if let Some(acr) = &self.acr {
            w.str("acr", acr)?;
        }
        if let Some(amr) = &self.amr {
            w.strs("amr", amr)?;
        }
        if let Some(azp) = &self.azp {
            w.str("azp", azp)?;
        }
        w.str("mcptt_id", &self.mcptt_id)?;
        Ok(w.finish())
    }
}

/// A compact JSON object written member by member, in serde_json's format.
struct JsonObject {
    out: Vec<u8>,
}

impl JsonObject {
    fn with_capacity(n: usize) -> Self {
        let mut out = Vec::with_capacity(n);
        out.push(b'{');
        Self { out }
    }

    /// `"name":` after a comma unless first (names here need no escaping).
    fn name(&mut self, name: &str) {
        if self.out.len() > 1 {
            self.out.push(b',');
        }
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn str(&mut self, name: &str, v: &str) -> Result<(), serde_json::Error> {
        self.name(name);
        self.string(v)
    }

    fn strs(&mut self, name: &str, vs: &[String]) -> Result<(), serde_json::Error> {
        self.name(name);
        self.out.push(b'[');
        for (i, v) in vs.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.string(v)?;
        }
        self.out.push(b']');
        Ok(())
    }

    fn num(&mut self, name: &str, v: u64) {
        self.name(name);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    }

    /// A JSON string: copied between quotes when it is printable ASCII
    /// without `"` or `\` (nothing to escape), else through serde_json.
    fn string(&mut self, v: &str) -> Result<(), serde_json::Error> {
        // No early exit: the fold over every byte vectorizes.
        let odd = v.bytes().fold(false, |odd, b| {
            odd | !(0x20..0x7f).contains(&b) | (b == b'"') | (b == b'\\')
        });
        if odd {
            return serde_json::to_writer(&mut self.out, v);
        }
        self.out.push(b'"');
        self.out.extend_from_slice(v.as_bytes());
        self.out.push(b'"');
        Ok(())
    }

    fn finish(mut self) -> Vec<u8> {
        self.out.push(b'}');
        self.out
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn access() -> AccessTokenClaims {
        AccessTokenClaims {
            iss: "https://idms.mcptt.example".into(),
            sub: "sip:alice@mcptt.example".into(),
            aud: vec!["sip:mcptt-server@mcptt.example".into()],
            exp: 1_800_003_600,
            iat: 1_800_000_000,
            jti: "8d3f2b6a1c4e4f9ab7d25e6f708192a3".into(),
            client_id: "mcptt-client".into(),
            scope: "openid 3gpp:mcptt:ptt_server".into(),
            mcptt_id: "sip:alice@mcptt.example".into(),
            auth_time: Some(1_799_999_990),
            acr: Some("urn:3gpp:sim".into()),
            ..Default::default()
        }
    }

    fn id() -> IdTokenClaims {
        IdTokenClaims {
            iss: "https://idms.mcptt.example".into(),
            sub: "sip:alice@mcptt.example".into(),
            aud: "mcptt-client".into(),
            exp: 1_800_003_600,
            iat: 1_800_000_000,
            auth_time: Some(1_799_999_990),
            nonce: Some("n-0S6_WzA2Mj".into()),
            acr: Some("urn:3gpp:sim".into()),
            amr: Some(vec!["sim".into(), "otp".into()]),
            azp: Some("mcptt-client".into()),
            mcptt_id: "sip:alice@mcptt.example".into(),
            ..Default::default()
        }
    }

    fn same_as_serde(a: &AccessTokenClaims, i: &IdTokenClaims) {
        assert_eq!(a.to_json_vec().unwrap(), serde_json::to_vec(a).unwrap());
        assert_eq!(i.to_json_vec().unwrap(), serde_json::to_vec(i).unwrap());
    }

    /// The direct writer gives serde_json's bytes: optional members present
    /// and absent, one and several audiences, escaped and non-ASCII text,
    /// extreme numbers, extra claims.
    #[test]
    fn direct_json_is_serde_json() {
        same_as_serde(&access(), &id());
        same_as_serde(&AccessTokenClaims::default(), &IdTokenClaims::default());
        let mut a = access();
        let mut i = id();
        a.aud = vec!["a".into(), "b\"".into(), "c".into()];
        a.nbf = Some(0);
        a.exp = u64::MAX;
        i.amr = Some(Vec::new());
        same_as_serde(&a, &i);
        a.aud.clear();
        (
            a.auth_time,
            a.acr,
            i.auth_time,
            i.nonce,
            i.acr,
            i.amr,
            i.azp,
        ) = (None, None, None, None, None, None, None);
        same_as_serde(&a, &i);
        for odd in [
            "a \"q", "b\\s", "t\tab", "n\nl", "c\u{1}", "d\u{7f}", "é", "✓", "</",
        ] {
            let mut a = access();
            let mut i = id();
            a.sub = odd.into();
            a.scope = odd.into();
            i.nonce = Some(odd.into());
            i.amr = Some(vec![odd.into()]);
            same_as_serde(&a, &i);
        }
        let mut a = access();
        let mut i = id();
        a.extra
            .insert("z".into(), serde_json::json!({"k": [1, "x"]}));
        i.extra.insert("a".into(), serde_json::json!(-1.5));
        same_as_serde(&a, &i);
    }

    /// Mostly printable ASCII (the direct path), sometimes any text.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![3 => "[ -~]{0,24}", 1 => any::<String>()]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

        #[test]
        fn direct_json_is_serde_json_for_any_text(
            text in prop::collection::vec(text(), 6),
            aud in prop::collection::vec(text(), 0..3),
            nums in prop::collection::vec(any::<u64>(), 4),
            flags in prop::collection::vec(any::<bool>(), 4),
        ) {
            let opt = |f: bool, s: &String| f.then(|| s.clone());
            let a = AccessTokenClaims {
                iss: text[0].clone(),
                sub: text[1].clone(),
                aud: aud.clone(),
                exp: nums[0],
                iat: nums[1],
                nbf: flags[0].then_some(nums[2]),
                jti: text[2].clone(),
                client_id: text[3].clone(),
                scope: text[4].clone(),
                mcptt_id: text[5].clone(),
                auth_time: flags[1].then_some(nums[3]),
                acr: opt(flags[2], &text[0]),
                ..Default::default()
            };
            let i = IdTokenClaims {
                iss: text[5].clone(),
                sub: text[4].clone(),
                aud: text[3].clone(),
                exp: nums[3],
                iat: nums[2],
                auth_time: flags[0].then_some(nums[1]),
                nonce: opt(flags[1], &text[2]),
                acr: opt(flags[2], &text[1]),
                amr: flags[3].then(|| aud.clone()),
                azp: opt(flags[3], &text[0]),
                mcptt_id: text[0].clone(),
                ..Default::default()
            };
            prop_assert_eq!(a.to_json_vec().unwrap(), serde_json::to_vec(&a).unwrap());
            prop_assert_eq!(i.to_json_vec().unwrap(), serde_json::to_vec(&i).unwrap());
        }
    }
}
