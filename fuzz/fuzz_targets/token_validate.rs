//! Fuzzes access-token, ID-token and key-set parsing of `mcptt-token`.
//!
//! The input is tried three ways: as a compact token against a fixed key
//! set, as a JWKS/JWK document, and as the claims (after a 0 byte: the
//! header too) of a token this target signs itself with Ed25519, so the
//! claim checks behind the signature are reached. Accepted tokens must
//! satisfy the validator's promises.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mcptt_token::{
    Algorithm, Jwk, JwkSet, KeyStore, SCOPE_PTT_SERVER, SigningKey, Validator, ValidatorConfig,
    sip_uri,
};

const NOW: u64 = 1_800_000_000;
const ED25519_PK8: &[u8] =
    include_bytes!("../../crates/token/tests/data/ed25519_rfc8037_a1.pk8.der");
const P256_PK8: &[u8] = include_bytes!("../../crates/token/tests/data/p256_rfc7515_a3.pk8.der");

struct Setup {
    validator: Validator,
    ed: SigningKey,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let ed = SigningKey::from_pkcs8(Algorithm::EdDsa, "ed", ED25519_PK8).expect("test key");
        let es = SigningKey::from_pkcs8(Algorithm::Es256, "es", P256_PK8).expect("test key");
        let set = JwkSet::from_keys([ed.public_jwk(), es.public_jwk()]).expect("distinct kids");
        let config =
            ValidatorConfig::new("https://idms.example", "sip:srv@mcptt.example").cache_capacity(4);
        let validator = Validator::new(config, KeyStore::new(set)).expect("valid config");
        Setup { validator, ed }
    })
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fuzz_target!(|data: &[u8]| {
    let s = setup();
    if let Ok(text) = std::str::from_utf8(data) {
        check(s.validator.validate_access_token(text, NOW));
        let _ = s.validator.validate_id_token(text, NOW, Some("nonce"));
        let _ = JwkSet::from_json(text);
        let _ = Jwk::from_json(text);
        let _ = sip_uri::check(text);
    }
    // Signed with a configured key: the claims path behind the signature.
    let (header, claims) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&br#"{"alg":"EdDSA","typ":"at+jwt","kid":"ed"}"#[..], data),
    };
    let input = format!("{}.{}", b64(header), b64(claims));
    let rng = ring::rand::SystemRandom::new();
    let Ok(sig) = s.ed.sign(input.as_bytes(), &rng) else {
        return;
    };
    let token = format!("{input}.{}", b64(&sig));
    // Twice: the second may come from the cache and must agree.
    let first = s.validator.validate_access_token(&token, NOW);
    let second = s.validator.validate_access_token(&token, NOW);
    assert_eq!(first.is_ok(), second.is_ok());
    check(first);
    let _ = s.validator.validate_id_token(&token, NOW, None);
});

fn check(result: Result<mcptt_token::AccessToken, mcptt_token::Error>) {
    match result {
        Ok(at) => {
            assert!(sip_uri::check(&at.mcptt_id).is_ok());
            assert!(at.has_scope(SCOPE_PTT_SERVER));
            assert!(at.expires_at + 60 > NOW);
            assert!(at.issued_at <= NOW + 60);
            assert!(at.audiences.iter().any(|a| a == "sip:srv@mcptt.example"));
            assert!(!at.subject.is_empty() && !at.client_id.is_empty() && !at.token_id.is_empty());
        }
        Err(e) => {
            assert!(!e.kind().is_empty());
            assert_eq!(e.status_code(), Some(403));
        }
    }
}
