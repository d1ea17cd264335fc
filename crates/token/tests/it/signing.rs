//! Signing: PKCS#8 loading, JWKS publication, signatures that verify.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcptt_token::{Algorithm, IdTokenClaims, Jwk, JwkSet, Signer, SigningKey, verify_signature};
use ring::rand::SystemRandom;

use crate::common::{self, claims, key};

fn split(token: &str) -> (serde_json::Value, serde_json::Value, &str, Vec<u8>) {
    let (input, sig) = token.rsplit_once('.').unwrap();
    let (h, p) = input.split_once('.').unwrap();
    let h = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap();
    let p = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
    (h, p, input, URL_SAFE_NO_PAD.decode(sig).unwrap())
}

#[test]
fn every_algorithm_signs_tokens_that_verify_with_the_published_jwk() {
    for alg in Algorithm::ALL {
        let signer = Signer::new(key(alg, "k-1"));
        let jwks = JwkSet::from_keys([signer.key().public_jwk()])
            .unwrap()
            .to_json();
        let jwk = JwkSet::from_json(&jwks)
            .unwrap()
            .get("k-1")
            .unwrap()
            .clone();
        assert_eq!(jwk.algorithm(), alg);

        let token = signer.sign_access_token(&claims()).unwrap();
        let (header, payload, input, sig) = split(&token);
        assert_eq!(header["alg"], alg.as_str());
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(header["kid"], "k-1");
        assert_eq!(payload["aud"], common::AUD, "single audience is a string");
        assert_eq!(payload["mcptt_id"], "sip:alice@mcptt.example");
        assert!(payload.get("nbf").is_none());
        verify_signature(alg, &jwk, input.as_bytes(), &sig).unwrap();
        // The token's signature is what `SigningKey::sign` gives for its input (the same
        // bytes for the deterministic algorithms, the same length for all).
        let direct = signer
            .key()
            .sign(input.as_bytes(), &SystemRandom::new())
            .unwrap();
        assert_eq!(direct.len(), sig.len(), "{alg}");
        if matches!(alg, Algorithm::Rs256 | Algorithm::EdDsa) {
            assert_eq!(direct, sig, "{alg}");
        }
        verify_signature(alg, &jwk, input.as_bytes(), &direct).unwrap();
        // Same key, other bytes: refused.
        let mut tampered = input.as_bytes().to_vec();
        tampered[3] ^= 1;
        assert_eq!(
            verify_signature(alg, &jwk, &tampered, &sig)
                .unwrap_err()
                .kind(),
            "bad_signature"
        );

        let id = signer
            .sign_id_token(&IdTokenClaims {
                iss: common::ISS.into(),
                sub: "alice".into(),
                aud: "mcptt-client".into(),
                exp: common::NOW + 600,
                iat: common::NOW,
                nonce: Some("n-0S6_WzA2Mj".into()),
                mcptt_id: "sip:alice@mcptt.example".into(),
                ..Default::default()
            })
            .unwrap();
        let (header, payload, input, sig) = split(&id);
        assert_eq!(header["typ"], "JWT");
        assert_eq!(payload["nonce"], "n-0S6_WzA2Mj");
        verify_signature(alg, &jwk, input.as_bytes(), &sig).unwrap();
    }
}

#[test]
fn published_keys_match_the_rfc_public_keys() {
    let a2 = common::jose("rfc7515/rfc7515_A2_RS256.json");
    let jwk = key(Algorithm::Rs256, "a2").public_jwk();
    let json: serde_json::Value = serde_json::from_str(&jwk.to_json()).unwrap();
    assert_eq!(json["n"], a2["jwk_public"]["n"]);
    assert_eq!(json["e"], "AQAB");
    assert_eq!(json["alg"], "RS256");
    assert_eq!(jwk.rsa_bits(), Some(2048));

    let a3 = common::jose("rfc7515/rfc7515_A3_ES256.json");
    let json: serde_json::Value =
        serde_json::from_str(&key(Algorithm::Es256, "a3").public_jwk().to_json()).unwrap();
    assert_eq!(
        (&json["x"], &json["y"]),
        (&a3["jwk_public"]["x"], &a3["jwk_public"]["y"])
    );

    let ed = common::jose("rfc8037/rfc8037_A4_EdDSA.json");
    let json: serde_json::Value =
        serde_json::from_str(&key(Algorithm::EdDsa, "ed").public_jwk().to_json()).unwrap();
    assert_eq!(json["x"], ed["jwk_public"]["x"]);
}

#[test]
fn ed25519_signing_reproduces_rfc8037_a4() {
    let v = common::jose("rfc8037/rfc8037_A4_EdDSA.json");
    let k = key(Algorithm::EdDsa, "ed");
    let sig = k
        .sign(
            v["signing_input"].as_str().unwrap().as_bytes(),
            &SystemRandom::new(),
        )
        .unwrap();
    assert_eq!(
        URL_SAFE_NO_PAD.encode(sig),
        v["signature_b64u"].as_str().unwrap()
    );
}

#[test]
fn key_loading_and_claim_checks_refuse_misuse() {
    let rng = SystemRandom::new();
    // Wrong key type for the algorithm.
    let ec = common::data("p256_rfc7515_a3.pk8.der");
    assert_eq!(
        SigningKey::from_pkcs8(Algorithm::Rs256, "k", &ec)
            .unwrap_err()
            .kind(),
        "invalid_key"
    );
    assert_eq!(
        SigningKey::from_pkcs8(Algorithm::EdDsa, "k", &ec)
            .unwrap_err()
            .kind(),
        "invalid_key"
    );
    assert_eq!(
        SigningKey::from_pkcs8(Algorithm::Es256, "", &ec)
            .unwrap_err()
            .kind(),
        "api_misuse"
    );
    assert_eq!(
        SigningKey::generate(Algorithm::Rs256, "k", &rng)
            .unwrap_err()
            .kind(),
        "api_misuse"
    );
    // Generated keys work and are distinct.
    let a = SigningKey::generate(Algorithm::Es256, "a", &rng)
        .unwrap()
        .public_jwk();
    let b = SigningKey::generate(Algorithm::Es256, "a", &rng)
        .unwrap()
        .public_jwk();
    assert_ne!(a, b);
    assert_eq!(Jwk::from_json(&a.to_json()).unwrap(), a);

    let signer = Signer::new(key(Algorithm::Es256, "k"));
    let mut c = claims();
    c.mcptt_id = "alice@mcptt.example".into();
    assert_eq!(
        signer.sign_access_token(&c).unwrap_err().kind(),
        "api_misuse"
    );
    let mut c = claims();
    c.aud.clear();
    assert_eq!(
        signer.sign_access_token(&c).unwrap_err().kind(),
        "api_misuse"
    );
    let mut c = claims();
    c.extra.insert("exp".into(), serde_json::json!("never"));
    assert_eq!(
        signer.sign_access_token(&c).unwrap_err().kind(),
        "api_misuse"
    );
    let mut c = claims();
    c.exp = c.iat;
    assert_eq!(
        signer.sign_access_token(&c).unwrap_err().kind(),
        "api_misuse"
    );
    // Several audiences are an array.
    let mut c = claims();
    c.aud.push("sip:other@mcptt.example".into());
    let t = signer.sign_access_token(&c).unwrap();
    let (_, payload, _, _) = split(&t);
    assert_eq!(payload["aud"].as_array().unwrap().len(), 2);
}

/// Access and ID tokens carry the header encoded once per signer, other `typ`s one made per
/// call: each is exactly `{"alg":…,"kid":…,"typ":…}`, and each token verifies.
#[test]
fn headers_per_typ_are_exact() {
    let signer = Signer::new(key(Algorithm::Es256, "k-h"));
    let jwk = signer.key().public_jwk();
    for typ in ["at+jwt", "JWT", "logout+jwt", "at+jwt"] {
        let token = signer.sign_jwt(typ, br#"{"sub":"x"}"#).unwrap();
        let (h, _) = token.split_once('.').unwrap();
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap();
        assert_eq!(
            text,
            format!(r#"{{"alg":"ES256","kid":"k-h","typ":"{typ}"}}"#)
        );
        let (input, sig) = token.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        verify_signature(Algorithm::Es256, &jwk, input.as_bytes(), &sig).unwrap();
    }
}

#[test]
fn the_signed_payload_is_serde_jsons_serialization_at_any_size() {
    let signer = Signer::new(key(Algorithm::Es256, "k-1"));
    let base = serde_json::to_vec(&claims()).unwrap().len();
    // Around the 1024-byte buffer the claims are serialized into before signing, and far past it.
    for target in [base, 1000, 1023, 1024, 1025, 1100, 5000] {
        let mut c = claims();
        let pad = target.saturating_sub(base + r#","x":"""#.len());
        c.extra
            .insert("x".into(), serde_json::Value::String("p".repeat(pad)));
        let expected = serde_json::to_vec(&c).unwrap();
        let token = signer.sign_access_token(&c).unwrap();
        let (_, _, input, _) = split(&token);
        let payload = URL_SAFE_NO_PAD
            .decode(input.split_once('.').unwrap().1)
            .unwrap();
        assert_eq!(payload, expected, "{target}");
        let v = common::validator_for(&[signer.key()], common::config());
        assert!(
            v.validate_access_token(&token, common::NOW).is_ok(),
            "{target}"
        );
        let id = IdTokenClaims {
            iss: common::ISS.into(),
            sub: "alice".into(),
            aud: "mcptt-client".into(),
            exp: common::NOW + 600,
            iat: common::NOW,
            mcptt_id: "sip:alice@mcptt.example".into(),
            extra: c.extra.clone(),
            ..Default::default()
        };
        let token = signer.sign_id_token(&id).unwrap();
        let (_, _, input, _) = split(&token);
        let payload = URL_SAFE_NO_PAD
            .decode(input.split_once('.').unwrap().1)
            .unwrap();
        assert_eq!(payload, serde_json::to_vec(&id).unwrap(), "{target}");
    }
}
