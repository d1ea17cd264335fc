//! Access-token and ID-token validation.

use std::sync::Arc;

use crate::cache::TokenCache;
use crate::claims::Values;
use crate::json::{self, Json, Num};
use crate::jws::{self, JwsLimits, PayloadBuf, TypRule};
use crate::keystore::KeyStore;
use crate::{AccessToken, AccessTokenRef, Error, IdToken, Part, sip_uri};

/// The Rel-13 MCPTT scope (TS 24.482).
pub const SCOPE_PTT_SERVER: &str = "3gpp:mcptt:ptt_server";
/// The scope name of later releases (TS 24.482 Rel-14 and on).
pub const SCOPE_PTT_SERVICE: &str = "3gpp:mc:ptt_service";
/// Default clock leeway in seconds.
pub const DEFAULT_LEEWAY_SECS: u64 = 60;
/// Largest leeway a [`Validator`] accepts, in seconds.
pub const MAX_LEEWAY_SECS: u64 = 300;

/// Configuration of a [`Validator`]; build with [`ValidatorConfig::new`] and
/// the builder methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorConfig {
    issuer: String,
    audience: String,
    scopes: Vec<String>,
    leeway: u64,
    limits: JwsLimits,
    cache_capacity: usize,
}

impl ValidatorConfig {
    /// Tokens must come from `issuer` (exact `iss` match) and name
    /// `audience` in `aud`. For ID tokens the audience is the client id.
    /// Defaults: scope [`SCOPE_PTT_SERVER`], leeway 60 s, 8192-byte tokens,
    /// JSON depth 16, no cache.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            scopes: vec![SCOPE_PTT_SERVER.to_owned()],
            leeway: DEFAULT_LEEWAY_SECS,
            limits: JwsLimits::default(),
            cache_capacity: 0,
        }
    }

    /// Requires exactly this scope (replaces the accepted list).
    #[must_use]
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes = vec![scope.into()];
        self
    }

    /// Also accepts this scope: a token must carry at least one accepted
    /// scope, e.g. both [`SCOPE_PTT_SERVER`] and [`SCOPE_PTT_SERVICE`].
    #[must_use]
    pub fn accept_scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.push(scope.into());
        self
    }

    /// Clock leeway for `exp`, `nbf` and `iat`, in seconds (at most 300).
    #[must_use]
    pub fn leeway(mut self, secs: u64) -> Self {
        self.leeway = secs;
        self
    }

    /// Longest token accepted, in bytes (checked before decoding).
    #[must_use]
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.limits.max_bytes = bytes;
        self
    }

    /// Deepest JSON nesting accepted in header and claims.
    #[must_use]
    pub fn max_json_depth(mut self, depth: usize) -> Self {
        self.limits.max_json_depth = depth;
        self
    }

    /// Caches up to `entries` verified access tokens (0 disables the cache).
    #[must_use]
    pub fn cache_capacity(mut self, entries: usize) -> Self {
        self.cache_capacity = entries;
        self
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The configured audience.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The accepted scopes.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// The leeway in seconds.
    pub fn leeway_secs(&self) -> u64 {
        self.leeway
    }

    /// The size and depth limits.
    pub fn limits(&self) -> JwsLimits {
        self.limits
    }
}

/// Validates MCPTT access tokens and ID tokens against one issuer's keys.
///
/// `Validator` is `Send + Sync`: share it (or its [`KeyStore`]) between
/// tasks; it spawns nothing and reads no clock.
#[derive(Debug)]
pub struct Validator {
    config: ValidatorConfig,
    keys: Arc<KeyStore>,
    cache: TokenCache,
}

/// Claims common to access and ID tokens, after the generic checks.
struct Common<'j> {
    issuer: &'j str,
    subject: &'j str,
    audiences: Values<'j>,
    exp: u64,
    iat: u64,
    valid_from: u64,
    mcptt_id: &'j str,
    acr: Option<&'j str>,
}

impl Validator {
    /// A validator using `keys`.
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] for an empty issuer, audience or scope list, a
    /// scope with spaces, a leeway above 300 s, or zero limits.
    pub fn new(config: ValidatorConfig, keys: impl Into<Arc<KeyStore>>) -> Result<Self, Error> {
        let misuse = |m: &str| Err(Error::ApiMisuse(format!("validator configuration: {m}")));
        if config.issuer.is_empty() || config.audience.is_empty() {
            return misuse("issuer and audience must not be empty");
        }
        if config.scopes.is_empty()
            || config
                .scopes
                .iter()
                .any(|s| s.is_empty() || s.contains(' '))
        {
            return misuse("scopes must be non-empty single scope tokens");
        }
        if config.leeway > MAX_LEEWAY_SECS {
            return misuse("leeway above 300 seconds");
        }
        if config.limits.max_bytes == 0 || config.limits.max_json_depth < 2 {
            return misuse("max_token_bytes must be > 0 and max_json_depth >= 2");
        }
        let cache = TokenCache::new(config.cache_capacity);
        Ok(Self {
            config,
            keys: keys.into(),
            cache,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ValidatorConfig {
        &self.config
    }

    /// The key store (to replace or refresh keys).
    pub fn keys(&self) -> &Arc<KeyStore> {
        &self.keys
    }

    /// Number of cached verified tokens.
    pub fn cached_tokens(&self) -> usize {
        self.cache.len()
    }

    /// Number of access-token validations answered from the cache so far.
    pub fn cache_hits(&self) -> u64 {
        self.cache.hits()
    }

    /// Empties the verified-token cache.
    pub fn clear_cache(&self) {
        self.cache.clear();
    }

    /// Validates an access token at wall-clock time `now_unix` (seconds).
    ///
    /// Besides the JWS checks of [`crate::verify_compact`]: `typ` must be
    /// `at+jwt` or `application/at+jwt` (RFC 9068 §4); the claims must be a
    /// JSON object with `iss` equal to the issuer, `aud` (string or array)
    /// containing the audience, `exp` and `iat` (and `nbf` when present) JSON
    /// numbers within the leeway, non-empty string `sub`, `client_id`, `jti`,
    /// `scope` a space-separated list holding an accepted scope as a whole
    /// token, and `mcptt_id` a SIP URI ([`crate::sip_uri::check`]).
    ///
    /// # Errors
    /// The [`Error`] of the first failed check; an unknown `kid` may request
    /// a key refresh ([`KeyStore::request_refresh`]).
    pub fn validate_access_token(&self, token: &str, now_unix: u64) -> Result<AccessToken, Error> {
        // (The steps of `validate_access_token_with`, written out: through it, a cache hit
        // and a cached fresh token would each be copied twice.)
        let snapshot = self.keys.snapshot();
        if let Some(hit) = self.cache.get(token, now_unix, snapshot.number) {
            return Ok(hit);
        }
        let mut buf = PayloadBuf::new();
        let (kid, payload) = self.verify(
            token,
            &snapshot.set,
            now_unix,
            TypRule::AccessToken,
            &mut buf,
        )?;
        let claims = self.parse_claims(payload)?;
        let (checked, valid_from) = self.access_claims(&Slots::of(&claims), kid, now_unix)?;
        let at = checked.to_access_token();
        self.cache
            .insert(token, &at, now_unix, valid_from, snapshot.number);
        Ok(at)
    }

    /// Validates an access token like [`Self::validate_access_token`] (same
    /// checks, same errors, same cache) and passes its claims to `f`
    /// borrowed from the decoded token, so that a caller needing a few
    /// claims copies only those.
    ///
    /// ```
    /// # use mcptt_token::{AccessTokenClaims, Algorithm, JwkSet, KeyStore, Signer, SigningKey,
    /// #                   Validator, ValidatorConfig};
    /// # use ring::rand::SystemRandom;
    /// # fn main() -> Result<(), mcptt_token::Error> {
    /// # let key = SigningKey::generate(Algorithm::Es256, "k1", &SystemRandom::new())?;
    /// # let keys = KeyStore::new(JwkSet::from_keys([key.public_jwk()])?);
    /// # let now = 1_800_000_000;
    /// # let token = Signer::new(key).sign_access_token(&AccessTokenClaims {
    /// #     iss: "https://idms.example".into(), sub: "alice".into(),
    /// #     aud: vec!["sip:mcptt-server@mcptt.example".into()], exp: now + 3600, iat: now,
    /// #     jti: "j1".into(), client_id: "mcptt-client".into(),
    /// #     scope: "openid 3gpp:mcptt:ptt_server".into(),
    /// #     mcptt_id: "sip:alice@mcptt.example".into(), ..Default::default()
    /// # })?;
    /// let validator = Validator::new(
    ///     ValidatorConfig::new("https://idms.example", "sip:mcptt-server@mcptt.example"),
    ///     keys,
    /// )?;
    /// let (exp, client_ok) = validator.validate_access_token_with(&token, now, |at| {
    ///     (at.expires_at(), at.client_id() == "mcptt-client")
    /// })?;
    /// assert_eq!((exp, client_ok), (now + 3600, true));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Self::validate_access_token`]; `f` runs only on success.
    pub fn validate_access_token_with<T>(
        &self,
        token: &str,
        now_unix: u64,
        f: impl FnOnce(AccessTokenRef<'_>) -> T,
    ) -> Result<T, Error> {
        let snapshot = self.keys.snapshot();
        if let Some(hit) = self.cache.get(token, now_unix, snapshot.number) {
            return Ok(f(AccessTokenRef::from(&hit)));
        }
        let mut buf = PayloadBuf::new();
        let (kid, payload) = self.verify(
            token,
            &snapshot.set,
            now_unix,
            TypRule::AccessToken,
            &mut buf,
        )?;
        let claims = self.parse_claims(payload)?;
        let (checked, valid_from) = self.access_claims(&Slots::of(&claims), kid, now_unix)?;
        if self.cache.enabled() {
            self.cache.insert(
                token,
                &checked.to_access_token(),
                now_unix,
                valid_from,
                snapshot.number,
            );
        }
        Ok(f(checked))
    }

    /// The access-token claim checks after the signature; the claims and
    /// the time from which the token is valid (for the cache).
    fn access_claims<'j>(
        &self,
        slots: &Slots<'j, '_>,
        kid: Option<&'j str>,
        now_unix: u64,
    ) -> Result<(AccessTokenRef<'j>, u64), Error> {
        let common = self.common(slots, now_unix)?;
        let client_id = required_str(slots.client_id, "client_id")?;
        let token_id = required_str(slots.jti, "jti")?;
        let scope = slots.scope.ok_or(Error::MissingClaim { name: "scope" })?;
        let Json::Str(scope) = scope else {
            return Err(invalid(
                "scope",
                "a space-separated string",
                scope.type_name(),
            ));
        };
        check_scope(scope)?;
        if !scope
            .split(' ')
            .any(|s| self.config.scopes.iter().any(|a| a == s))
        {
            return Err(Error::Scope {
                expected: self.config.scopes.clone(),
                received: scope.to_string(),
            });
        }
        let at = AccessTokenRef {
            mcptt_id: common.mcptt_id,
            subject: common.subject,
            client_id,
            scopes: Values::Words(scope),
            audiences: common.audiences,
            issuer: common.issuer,
            expires_at: common.exp,
            issued_at: common.iat,
            token_id,
            acr: common.acr,
            key_id: kid,
        };
        Ok((at, common.valid_from))
    }

    /// Validates an ID token (TS 33.180 §5.1.3, OpenID Connect Core §3.1.3.7)
    /// at `now_unix`: `typ` `JWT` or absent, `iss`, `sub`, `aud` containing
    /// the configured audience (the client id; with several audiences an
    /// `azp` must name it), `exp`, `iat`, `mcptt_id`; when `expected_nonce`
    /// is given, `nonce` must equal it.
    ///
    /// # Errors
    /// The [`Error`] of the first failed check.
    pub fn validate_id_token(
        &self,
        token: &str,
        now_unix: u64,
        expected_nonce: Option<&str>,
    ) -> Result<IdToken, Error> {
        let snapshot = self.keys.snapshot();
        let mut buf = PayloadBuf::new();
        let (_, payload) =
            self.verify(token, &snapshot.set, now_unix, TypRule::IdToken, &mut buf)?;
        let claims = self.parse_claims(payload)?;
        let slots = Slots::of(&claims);
        let common = self.common(&slots, now_unix)?;
        if common.audiences.iter().nth(1).is_some() {
            match optional_str(slots.azp, "azp")? {
                Some(azp) if azp == self.config.audience => {}
                _ => {
                    return Err(invalid(
                        "azp",
                        "the client id when aud has several values",
                        "absent or different",
                    ));
                }
            }
        }
        let nonce = optional_str(slots.nonce, "nonce")?;
        if let Some(expected) = expected_nonce {
            match &nonce {
                None => return Err(Error::Nonce { reason: "missing" }),
                Some(n) if *n != expected => {
                    return Err(Error::Nonce {
                        reason: "different",
                    });
                }
                Some(_) => {}
            }
        }
        let auth_time = match slots.auth_time {
            None => None,
            Some(v) => Some(numeric_date("auth_time", v, Round::Down)?),
        };
        Ok(IdToken {
            mcptt_id: common.mcptt_id.to_owned(),
            subject: common.subject.to_owned(),
            issuer: common.issuer.to_owned(),
            audiences: common.audiences.iter().map(str::to_owned).collect(),
            expires_at: common.exp,
            issued_at: common.iat,
            auth_time,
            nonce: nonce.map(str::to_owned),
            acr: common.acr.map(str::to_owned),
        })
    }

    fn verify<'k, 'b>(
        &self,
        token: &str,
        keys: &'k crate::JwkSet,
        now: u64,
        rule: TypRule,
        payload: &'b mut PayloadBuf,
    ) -> Result<(Option<&'k str>, &'b [u8]), Error> {
        match jws::verify_parts(token, keys, self.config.limits, rule, payload) {
            Ok((parts, _key)) => Ok((parts.kid, parts.payload)),
            Err(Error::UnknownKey { kid, .. }) => {
                let refresh_requested = self.keys.request_refresh(now);
                Err(Error::UnknownKey {
                    kid,
                    refresh_requested,
                })
            }
            Err(e) => Err(e),
        }
    }

    fn parse_claims<'p>(&self, payload: &'p [u8]) -> Result<[Option<Json<'p>>; 14], Error> {
        json::parse_fields(payload, self.config.limits.max_json_depth, &CLAIM_NAMES)
            .map_err(|e| jws::json_error(Part::Claims, e))?
            .map_err(|found| Error::NotObject {
                part: Part::Claims,
                found,
            })
    }

    fn common<'j>(&self, slots: &Slots<'j, '_>, now: u64) -> Result<Common<'j>, Error> {
        let leeway = self.config.leeway;
        // Issuer and audience first: a token for someone else is that, whatever its times.
        let issuer = required_str(slots.iss, "iss")?;
        if issuer != self.config.issuer {
            return Err(Error::Issuer {
                expected: self.config.issuer.clone(),
                received: issuer.to_owned(),
            });
        }
        let audiences = audiences(slots.aud)?;
        if !audiences.iter().any(|a| a == self.config.audience) {
            return Err(Error::Audience {
                expected: self.config.audience.clone(),
                received: audiences.iter().map(str::to_owned).collect(),
            });
        }
        let exp_v = slots.exp.ok_or(Error::MissingClaim { name: "exp" })?;
        let exp = numeric_date("exp", exp_v, Round::Down)?;
        let iat_v = slots.iat.ok_or(Error::MissingClaim { name: "iat" })?;
        let iat = numeric_date("iat", iat_v, Round::Up)?;
        let nbf = match slots.nbf {
            None => None,
            Some(v) => Some(numeric_date("nbf", v, Round::Up)?),
        };
        // RFC 7519 §4.1.4: now must be before exp.
        if now >= exp.saturating_add(leeway) {
            return Err(Error::Expired { exp, now, leeway });
        }
        if let Some(nbf) = nbf
            && nbf > now.saturating_add(leeway)
        {
            return Err(Error::NotYetValid { nbf, now, leeway });
        }
        if iat > now.saturating_add(leeway) {
            return Err(Error::IssuedInFuture { iat, now, leeway });
        }
        let subject = required_str(slots.sub, "sub")?;
        let mcptt_id = required_str(slots.mcptt_id, "mcptt_id")?;
        sip_uri::check(mcptt_id).map_err(|reason| Error::McpttId { reason })?;
        let acr = optional_str(slots.acr, "acr")?;
        let valid_from = nbf.unwrap_or(0).max(iat).saturating_sub(leeway);
        Ok(Common {
            issuer,
            subject,
            audiences,
            exp,
            iat,
            valid_from,
            mcptt_id,
            acr,
        })
    }
}

/// The registered claims this crate reads.
const CLAIM_NAMES: [&str; 14] = [
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
    "acr",
    "nonce",
    "azp",
    "auth_time",
];

/// The values of [`CLAIM_NAMES`], by name.
struct Slots<'j, 'a> {
    iss: Option<&'j Json<'a>>,
    sub: Option<&'j Json<'a>>,
    aud: Option<&'j Json<'a>>,
    exp: Option<&'j Json<'a>>,
    iat: Option<&'j Json<'a>>,
    nbf: Option<&'j Json<'a>>,
    jti: Option<&'j Json<'a>>,
    client_id: Option<&'j Json<'a>>,
    scope: Option<&'j Json<'a>>,
    mcptt_id: Option<&'j Json<'a>>,
    acr: Option<&'j Json<'a>>,
    nonce: Option<&'j Json<'a>>,
    azp: Option<&'j Json<'a>>,
    auth_time: Option<&'j Json<'a>>,
}

impl<'j, 'a> Slots<'j, 'a> {
    fn of(v: &'j [Option<Json<'a>>; 14]) -> Self {
        let [
            iss,
            sub,
            aud,
            exp,
            iat,
            nbf,
            jti,
            client_id,
            scope,
            mcptt_id,
            acr,
            nonce,
            azp,
            auth_time,
        ] = v;
        Self {
            iss: iss.as_ref(),
            sub: sub.as_ref(),
            aud: aud.as_ref(),
            exp: exp.as_ref(),
            iat: iat.as_ref(),
            nbf: nbf.as_ref(),
            jti: jti.as_ref(),
            client_id: client_id.as_ref(),
            scope: scope.as_ref(),
            mcptt_id: mcptt_id.as_ref(),
            acr: acr.as_ref(),
            nonce: nonce.as_ref(),
            azp: azp.as_ref(),
            auth_time: auth_time.as_ref(),
        }
    }
}

fn invalid(name: &'static str, expected: &'static str, received: &str) -> Error {
    Error::InvalidClaim {
        name,
        expected,
        received: received.to_owned(),
    }
}

fn required_str<'j>(slot: Option<&'j Json<'_>>, name: &'static str) -> Result<&'j str, Error> {
    match slot {
        None => Err(Error::MissingClaim { name }),
        Some(Json::Str(s)) if !s.is_empty() => Ok(s),
        Some(Json::Str(_)) => Err(invalid(name, "a non-empty string", "empty string")),
        Some(v) => Err(invalid(name, "a non-empty string", v.type_name())),
    }
}

fn optional_str<'j>(
    slot: Option<&'j Json<'_>>,
    name: &'static str,
) -> Result<Option<&'j str>, Error> {
    match slot {
        None => Ok(None),
        Some(Json::Str(s)) => Ok(Some(s)),
        Some(v) => Err(invalid(name, "a string", v.type_name())),
    }
}

fn audiences<'j>(slot: Option<&'j Json<'_>>) -> Result<Values<'j>, Error> {
    const EXPECTED: &str = "a non-empty string or array of non-empty strings";
    match slot {
        None => Err(Error::MissingClaim { name: "aud" }),
        Some(Json::Str(s)) if !s.is_empty() => Ok(Values::One(s)),
        Some(Json::Str(_)) => Err(invalid("aud", EXPECTED, "empty string")),
        Some(Json::Arr(items)) if items.is_empty() => Err(invalid("aud", EXPECTED, "empty array")),
        Some(Json::Arr(items)) => {
            for i in items {
                match i {
                    Json::Str(s) if !s.is_empty() => {}
                    Json::Str(_) => {
                        return Err(invalid("aud", EXPECTED, "array with an empty string"));
                    }
                    other => return Err(invalid("aud", EXPECTED, other.type_name())),
                }
            }
            Ok(Values::Json(items))
        }
        Some(v) => Err(invalid("aud", EXPECTED, v.type_name())),
    }
}

/// RFC 6749 §3.3: `scope = scope-token *( SP scope-token )`,
/// `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn check_scope(scope: &str) -> Result<(), Error> {
    for t in scope.split(' ') {
        let ok = !t.is_empty()
            && t.bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
        if !ok {
            return Err(invalid(
                "scope",
                "scope tokens separated by single spaces (RFC 6749 §3.3)",
                "empty token or invalid character",
            ));
        }
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Round {
    Down,
    Up,
}

/// A NumericDate (RFC 7519 §2): a JSON number of seconds, non-negative.
/// Fractions round towards the stricter side (`exp` down, `nbf`/`iat` up).
fn numeric_date(name: &'static str, v: &Json<'_>, round: Round) -> Result<u64, Error> {
    const EXPECTED: &str = "a non-negative JSON number (NumericDate)";
    match v {
        Json::Num(Num::U(n)) => Ok(*n),
        Json::Num(Num::I(_)) => Err(invalid(name, EXPECTED, "negative number")),
        Json::Num(Num::F(f)) => {
            // 2^53: beyond it f64 seconds are not exact; far beyond any real date anyway.
            if !f.is_finite() || *f < 0.0 || *f >= 9_007_199_254_740_992.0 {
                return Err(invalid(name, EXPECTED, "number out of range"));
            }
            let r = match round {
                Round::Down => f.floor(),
                Round::Up => f.ceil(),
            };
            // In range and integral after the check above.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Ok(r as u64)
        }
        other => Err(invalid(name, EXPECTED, other.type_name())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn scope_splitting() {
        assert!(check_scope("a b").is_ok());
        assert!(check_scope("openid 3gpp:mcptt:ptt_server").is_ok());
        for bad in ["", " a", "a ", "a  b", "a\tb", "a\"b", "a\\b"] {
            assert!(check_scope(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn numeric_dates() {
        let n = |j: &str, r| numeric_date("exp", &json::parse(j.as_bytes(), 4).unwrap(), r);
        assert_eq!(n("10", Round::Down).unwrap(), 10);
        assert_eq!(n("10.5", Round::Down).unwrap(), 10);
        assert_eq!(n("10.5", Round::Up).unwrap(), 11);
        assert_eq!(n("1e3", Round::Down).unwrap(), 1000);
        for bad in ["-1", "-0.5", "1e300", "\"10\"", "null", "true", "[10]"] {
            assert_eq!(
                n(bad, Round::Down).unwrap_err().kind(),
                "invalid_claim",
                "{bad}"
            );
        }
    }
}
