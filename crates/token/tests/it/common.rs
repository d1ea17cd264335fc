//! Shared helpers: vector paths, test keys, claims.

use mcptt_token::{AccessTokenClaims, Algorithm, SigningKey};

pub(crate) const JOSE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/jose/");
pub(crate) const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/");

pub(crate) fn jose(path: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(format!("{JOSE}{path}")).expect(path);
    serde_json::from_str(&text).expect(path)
}

pub(crate) fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DATA}{name}")).expect(name)
}

/// A signing key for every algorithm (RSA from the published RFC keys).
pub(crate) fn key(alg: Algorithm, kid: &str) -> SigningKey {
    let der = match alg {
        Algorithm::Es256 => data("p256_rfc7515_a3.pk8.der"),
        Algorithm::Rs256 => data("rsa2048_rfc7515_a2.pk8.der"),
        Algorithm::Ps256 => data("rsa2048_rfc7520_3_4.pk8.der"),
        Algorithm::EdDsa => data("ed25519_rfc8037_a1.pk8.der"),
    };
    SigningKey::from_pkcs8(alg, kid, &der).unwrap()
}

pub(crate) const ISS: &str = "https://idms.mcptt.example";
pub(crate) const AUD: &str = "sip:mcptt-server@mcptt.example";
pub(crate) const NOW: u64 = 1_800_000_000;

pub(crate) fn claims() -> AccessTokenClaims {
    AccessTokenClaims {
        iss: ISS.into(),
        sub: "alice".into(),
        aud: vec![AUD.into()],
        exp: NOW + 3600,
        iat: NOW - 10,
        jti: "5e3c1a9e-6a7b-4d7e-9a61-2f8c0b1d2e3f".into(),
        client_id: "mcptt-client".into(),
        scope: "openid 3gpp:mcptt:ptt_server".into(),
        mcptt_id: "sip:alice@mcptt.example".into(),
        ..Default::default()
    }
}

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcptt_token::{JwkSet, KeyStore, Validator, ValidatorConfig};
use ring::rand::SystemRandom;

pub(crate) fn b64(s: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

/// Signs arbitrary header and claims text (duplicates and all) with `key`.
pub(crate) fn forge(key: &SigningKey, header: &str, claims: &str) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let sig = key.sign(input.as_bytes(), &SystemRandom::new()).unwrap();
    format!("{input}.{}", b64(&sig))
}

/// The standard access-token header for `key`.
pub(crate) fn header(key: &SigningKey) -> String {
    format!(
        r#"{{"alg":"{}","typ":"at+jwt","kid":"{}"}}"#,
        key.algorithm(),
        key.kid()
    )
}

pub(crate) fn claims_json() -> serde_json::Value {
    serde_json::to_value(claims()).unwrap()
}

pub(crate) fn validator_for(keys: &[&SigningKey], config: ValidatorConfig) -> Validator {
    let set = JwkSet::from_keys(keys.iter().map(|k| k.public_jwk())).unwrap();
    Validator::new(config, KeyStore::new(set)).unwrap()
}

pub(crate) fn config() -> ValidatorConfig {
    ValidatorConfig::new(ISS, AUD)
}

/// Validates `token` through both [`Validator::validate_access_token`] and
/// [`Validator::validate_access_token_with`] and checks that they agree: the
/// same claims (read through every accessor of the borrowed view) or the same
/// error.
pub(crate) fn validate_both(
    v: &Validator,
    token: &str,
    now: u64,
) -> Result<mcptt_token::AccessToken, mcptt_token::Error> {
    let owned = v.validate_access_token(token, now);
    let borrowed = v.validate_access_token_with(token, now, |r| {
        let at = r.to_access_token();
        assert_eq!(r.mcptt_id(), at.mcptt_id);
        assert_eq!(r.subject(), at.subject);
        assert_eq!(r.client_id(), at.client_id);
        assert_eq!(r.scopes().collect::<Vec<_>>(), at.scopes);
        assert_eq!(r.audiences().collect::<Vec<_>>(), at.audiences);
        assert_eq!(r.issuer(), at.issuer);
        assert_eq!(r.expires_at(), at.expires_at);
        assert_eq!(r.issued_at(), at.issued_at);
        assert_eq!(r.token_id(), at.token_id);
        assert_eq!(r.acr(), at.acr.as_deref());
        assert_eq!(r.key_id(), at.key_id.as_deref());
        for s in &at.scopes {
            assert!(r.has_scope(s) && at.has_scope(s));
        }
        at
    });
    match (&owned, &borrowed) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        // The first call's unknown `kid` may have used up the refresh request.
        (Err(a), Err(b)) if a.kind() == "unknown_kid" => assert_eq!(b.kind(), "unknown_kid"),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!("the two paths disagree: {owned:?} vs {borrowed:?}"),
    }
    owned
}
