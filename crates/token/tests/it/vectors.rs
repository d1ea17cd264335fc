//! The vendored JOSE vectors (testdata/jose, see SOURCES.md), table-driven,
//! all through this crate's own verification path.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcptt_token::{Algorithm, Error, Jwk, JwkSet, JwsLimits, verify_compact, verify_signature};
use serde_json::{Value, json};

use crate::common::jose;

fn set_of(jwk: &Value) -> Result<JwkSet, Error> {
    JwkSet::from_json(&json!({ "keys": [jwk] }).to_string())
}

/// RFC keys carry no `alg`; binding comes from configuration, as for any JWKS.
fn with_alg(jwk: &Value, alg: &str) -> Value {
    let mut k = jwk.clone();
    k["alg"] = json!(alg);
    k
}

fn verify(token: &str, keys: &JwkSet) -> Result<Vec<u8>, Error> {
    verify_compact(token, keys, JwsLimits::default()).map(|v| v.payload)
}

#[test]
fn rfc7515_a2_a3_and_rfc8037_verify() {
    for (file, alg) in [
        ("rfc7515/rfc7515_A2_RS256.json", "RS256"),
        ("rfc7515/rfc7515_A3_ES256.json", "ES256"),
        ("rfc8037/rfc8037_A4_EdDSA.json", "EdDSA"),
    ] {
        let v = jose(file);
        let keys = set_of(&with_alg(&v["jwk_public"], alg)).unwrap();
        let compact = v["compact"].as_str().unwrap();
        // The .jws file holds the same token.
        let jws_file = std::fs::read_to_string(format!(
            "{}{}",
            crate::common::JOSE,
            file.replace(".json", ".jws")
        ))
        .unwrap();
        assert_eq!(jws_file.trim(), compact, "{file}");
        let payload = verify(compact, &keys).unwrap();
        assert_eq!(
            payload,
            v["payload_utf8"].as_str().unwrap().as_bytes(),
            "{file}"
        );
        let verified = verify_compact(compact, &keys, JwsLimits::default()).unwrap();
        assert_eq!(verified.algorithm.as_str(), alg);
        // The same key under another algorithm binding refuses it.
        let other = if alg == "RS256" { "PS256" } else { "RS256" };
        if alg == "RS256" {
            let wrong = set_of(&with_alg(&v["jwk_public"], other)).unwrap();
            assert_eq!(
                verify(compact, &wrong).unwrap_err().kind(),
                "unknown_kid",
                "{file}"
            );
        }
    }
    // EC and OKP keys bind without `alg`, from their curve.
    let a3 = jose("rfc7515/rfc7515_A3_ES256.json");
    assert_eq!(
        Jwk::from_json(&a3["jwk_public"].to_string())
            .unwrap()
            .algorithm(),
        Algorithm::Es256
    );
}

#[test]
fn rfc7515_a1_hs256_is_refused() {
    let v = jose("rfc7515/rfc7515_A1_HS256.json");
    let a2 = jose("rfc7515/rfc7515_A2_RS256.json");
    let keys = set_of(&with_alg(&a2["jwk_public"], "RS256")).unwrap();
    let token = v["compact"].as_str().unwrap();
    assert_eq!(verify(token, &keys).unwrap_err().kind(), "unsupported_alg");
    // Nor can its symmetric key be configured.
    let k = v.get("jwk").or_else(|| v.get("jwk_private")).unwrap();
    assert_eq!(set_of(k).unwrap_err().kind(), "invalid_key");
}

#[test]
fn rfc7515_derived_negative_cases_are_rejected_with_the_right_kind() {
    let v = jose("rfc7515/derived_negative_cases.json");
    let a2 = jose("rfc7515/rfc7515_A2_RS256.json");
    let keys = set_of(&with_alg(&a2["jwk_public"], "RS256")).unwrap();
    let expected = [
        ("alg_none_empty_sig", "unsupported_alg"),
        ("alg_none_keep_sig", "unsupported_alg"),
        ("alg_NONE_case", "unsupported_alg"),
        ("alg_switched_to_HS256_same_sig", "unsupported_alg"),
        ("payload_modified", "bad_signature"),
        ("signature_truncated", "malformed_base64"),
        ("signature_padded_b64", "malformed_base64"),
        ("signature_std_b64_alphabet", "malformed_base64"),
        ("four_segments", "malformed_segments"),
        ("two_segments", "malformed_segments"),
        ("crit_unknown", "crit"),
        ("b64_false", "b64"),
        ("whitespace_in_token", "malformed_base64"),
    ];
    let cases = v["cases"].as_object().unwrap();
    assert_eq!(
        cases.len(),
        expected.len(),
        "every vendored case is in the table"
    );
    for (name, kind) in expected {
        let token = cases[name].as_str().unwrap();
        let err = verify(token, &keys).unwrap_err();
        assert_eq!(err.kind(), kind, "{name}: {err}");
    }
}

#[test]
fn rfc7520_examples() {
    let rsa = jose("rfc7520/3_3.rsa_public_key.json");
    let ec = jose("rfc7520/3_1.ec_public_key.json");
    // 4.1 RS256 verifies.
    let v = jose("rfc7520/4_1.rsa_v15_signature.json");
    let keys = set_of(&with_alg(&rsa, "RS256")).unwrap();
    let payload = verify(v["output"]["compact"].as_str().unwrap(), &keys).unwrap();
    assert_eq!(payload, v["input"]["payload"].as_str().unwrap().as_bytes());
    // 4.2 is PS384: not supported, with a clear error.
    let v = jose("rfc7520/4_2.rsa-pss_signature.json");
    let err = verify(v["output"]["compact"].as_str().unwrap(), &keys).unwrap_err();
    assert_eq!(
        (err.kind(), err.to_string().contains("PS384")),
        ("unsupported_alg", true)
    );
    // 4.3 is ES512 on P-521: the key is skipped as unsupported, the token refused.
    let v = jose("rfc7520/4_3.ecdsa_signature.json");
    let ec_set = set_of(&ec).unwrap();
    assert!(ec_set.is_empty() && ec_set.skipped().len() == 1);
    let err = verify(v["output"]["compact"].as_str().unwrap(), &ec_set).unwrap_err();
    assert_eq!(err.kind(), "unsupported_alg");
    // 4.4 HMAC, 4.5 detached HMAC: refused.
    for f in [
        "rfc7520/4_4.hmac-sha2_integrity_protection.json",
        "rfc7520/4_5.signature_with_detached_content.json",
    ] {
        let v = jose(f);
        let err = verify(v["output"]["compact"].as_str().unwrap(), &keys).unwrap_err();
        assert_eq!(err.kind(), "unsupported_alg", "{f}");
    }
    // The private key files cannot be configured as verification keys.
    for f in [
        "rfc7520/3_2.ec_private_key.json",
        "rfc7520/3_4.rsa_private_key.json",
    ] {
        assert_eq!(set_of(&jose(f)).unwrap_err().kind(), "invalid_key", "{f}");
    }
}

#[test]
fn rfc7797_unencoded_payload_is_refused() {
    let v = jose("rfc7797/4.2.hmac-sha2_b64_false.json");
    let flat = &v["output"]["json_flat"];
    // JSON serialization only; rebuilt as compact (payload encoded) it is still refused.
    let token = format!(
        "{}.{}.{}",
        flat["protected"].as_str().unwrap(),
        URL_SAFE_NO_PAD.encode(flat["payload"].as_str().unwrap()),
        flat["signature"].as_str().unwrap()
    );
    let ed = jose("rfc8037/rfc8037_A4_EdDSA.json");
    let keys = set_of(&ed["jwk_public"]).unwrap();
    assert_eq!(verify(&token, &keys).unwrap_err().kind(), "unsupported_alg");
    // The same header with an accepted alg: refused for b64 (and crit).
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"EdDSA","b64":false}"#);
    let token = format!("{header}.JC4wMg.{}", flat["signature"].as_str().unwrap());
    assert_eq!(verify(&token, &keys).unwrap_err().kind(), "b64");
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"EdDSA","b64":false,"crit":["b64"]}"#);
    let token = format!("{header}.JC4wMg.{}", flat["signature"].as_str().unwrap());
    assert_eq!(verify(&token, &keys).unwrap_err().kind(), "b64");
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"EdDSA","crit":["exp"]}"#);
    let token = format!("{header}.JC4wMg.{}", flat["signature"].as_str().unwrap());
    assert_eq!(verify(&token, &keys).unwrap_err().kind(), "crit");
}

/// Outcome of one Wycheproof case through our path.
fn wycheproof_outcome(keys: Result<JwkSet, Error>, jws: &str) -> Result<Vec<u8>, Error> {
    verify(jws, &keys?)
}

fn header_alg(jws: &str) -> String {
    let h = jws.split('.').next().unwrap_or_default();
    URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v["alg"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn supported(alg: &str) -> bool {
    Algorithm::from_name(alg).is_some()
}

#[test]
fn wycheproof_json_web_signature() {
    let v = jose("wycheproof/json_web_signature_test.json");
    let (mut valid_ok, mut refused_unsupported, mut invalid_rejected, mut total) = (0, 0, 0, 0);
    for g in v["testGroups"].as_array().unwrap() {
        // Verification keys come from the public JWK; groups with only a
        // private (e.g. HMAC) key offer nothing we accept as configuration.
        let keys = match g.get("public") {
            Some(k) => set_of(k),
            None => set_of(&g["private"]),
        };
        for t in g["tests"].as_array().unwrap() {
            total += 1;
            let id = &t["tcId"];
            let Some(jws) = t["jws"].as_str() else {
                // JSON serialization: not a compact JWS, so not a token we accept.
                assert_ne!(
                    t["result"], "valid",
                    "tc {id}: JSON serialization marked valid?"
                );
                continue;
            };
            let alg = header_alg(jws);
            let out = wycheproof_outcome(keys.clone(), jws);
            match t["result"].as_str().unwrap() {
                "valid" if supported(&alg) => {
                    let payload =
                        out.unwrap_or_else(|e| panic!("tc {id} ({alg}) must verify: {e}"));
                    assert!(!payload.is_empty() || jws.split('.').nth(1) == Some(""));
                    valid_ok += 1;
                }
                "valid" => {
                    let e = out.expect_err("unsupported algorithms are refused");
                    assert!(
                        ["unsupported_alg", "invalid_key", "unknown_kid"].contains(&e.kind()),
                        "tc {id} ({alg}): {e}"
                    );
                    refused_unsupported += 1;
                }
                "invalid" => {
                    assert!(
                        out.is_err(),
                        "tc {id} ({alg}) {} must be rejected",
                        t["comment"]
                    );
                    invalid_rejected += 1;
                }
                _ => {}
            }
        }
    }
    // Counted from the file: 16 valid ES256/PS256/RS256 cases, 30 valid
    // cases with algorithms refused by design (HS*, RS384/512, PS384/512, ES512),
    // 355 invalid ones.
    assert_eq!(
        (valid_ok, refused_unsupported, invalid_rejected),
        (16, 30, 355),
        "of {total}"
    );
}

#[test]
fn wycheproof_json_web_key() {
    let v = jose("wycheproof/json_web_key_test.json");
    let mut checked = 0;
    for g in v["testGroups"].as_array().unwrap() {
        let keys = match g.get("public") {
            Some(k) => JwkSet::from_json(&k.to_string()),
            None => JwkSet::from_json(&g["private"].to_string()),
        };
        for t in g["tests"].as_array().unwrap() {
            let jws = t["jws"].as_str().unwrap();
            let alg = header_alg(jws);
            let out = wycheproof_outcome(keys.clone(), jws);
            let id = &t["tcId"];
            match (t["result"].as_str().unwrap(), supported(&alg)) {
                ("valid", true) => {
                    out.unwrap_or_else(|e| panic!("tc {id}: {e}"));
                }
                (_, _) if t["result"] == "acceptable" => continue,
                _ => assert!(out.is_err(), "tc {id} {} must be rejected", t["comment"]),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, v["numberOfTests"].as_u64().unwrap());
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Runs one primitive file: `key(group)` builds the JWK, every case goes
/// through `verify_signature`; returns (valid verified, invalid rejected).
fn primitive_file(file: &str, alg: Algorithm, key: impl Fn(&Value) -> Value) -> (usize, usize) {
    let v = jose(file);
    let (mut ok, mut rejected) = (0, 0);
    for g in v["testGroups"].as_array().unwrap() {
        let jwk = Jwk::from_json(&key(g).to_string());
        for t in g["tests"].as_array().unwrap() {
            let msg = hex(t["msg"].as_str().unwrap());
            let sig = hex(t["sig"].as_str().unwrap());
            let out = jwk
                .clone()
                .and_then(|k| verify_signature(alg, &k, &msg, &sig));
            let id = &t["tcId"];
            match t["result"].as_str().unwrap() {
                "valid" => {
                    out.unwrap_or_else(|e| panic!("{file} tc {id} {}: {e}", t["comment"]));
                    ok += 1;
                }
                "invalid" => {
                    assert!(out.is_err(), "{file} tc {id} {} accepted", t["comment"]);
                    rejected += 1;
                }
                _ => {}
            }
        }
    }
    (ok, rejected)
}

fn rsa_jwk(g: &Value, alg: &str) -> Value {
    let pk = &g["publicKey"];
    let n = hex(pk["modulus"].as_str().unwrap());
    let e = hex(pk["publicExponent"].as_str().unwrap());
    json!({"kty": "RSA", "alg": alg, "n": URL_SAFE_NO_PAD.encode(n), "e": URL_SAFE_NO_PAD.encode(e)})
}

#[test]
fn wycheproof_p256_p1363() {
    let (ok, rejected) = primitive_file(
        "wycheproof/ecdsa_secp256r1_sha256_p1363_test.json",
        Algorithm::Es256,
        |g| {
            let u = hex(g["publicKey"]["uncompressed"].as_str().unwrap());
            json!({"kty": "EC", "crv": "P-256",
                   "x": URL_SAFE_NO_PAD.encode(&u[1..33]), "y": URL_SAFE_NO_PAD.encode(&u[33..])})
        },
    );
    assert_eq!((ok, rejected), (173, 89));
}

#[test]
fn wycheproof_rsa_pkcs1_2048() {
    let (ok, rejected) = primitive_file(
        "wycheproof/rsa_signature_2048_sha256_test.json",
        Algorithm::Rs256,
        |g| rsa_jwk(g, "RS256"),
    );
    assert_eq!((ok, rejected), (9, 249));
}

#[test]
fn wycheproof_rsa_pss_2048() {
    let (ok, rejected) = primitive_file(
        "wycheproof/rsa_pss_2048_sha256_mgf1_32_test.json",
        Algorithm::Ps256,
        |g| rsa_jwk(g, "PS256"),
    );
    assert_eq!((ok, rejected), (63, 45));
}

#[test]
fn wycheproof_ed25519() {
    let (ok, rejected) = primitive_file("wycheproof/ed25519_test.json", Algorithm::EdDsa, |g| {
        json!({"kty": "OKP", "crv": "Ed25519",
               "x": URL_SAFE_NO_PAD.encode(hex(g["publicKey"]["pk"].as_str().unwrap()))})
    });
    assert_eq!((ok, rejected), (88, 63));
}

#[test]
fn tokens_signed_by_another_implementation() {
    let v: Value =
        serde_json::from_slice(&crate::common::data("interop_es256_tokens.json")).unwrap();
    let keys = mcptt_token::KeyStore::new(JwkSet::from_json(&v["jwks"].to_string()).unwrap());
    let validator = mcptt_token::Validator::new(
        mcptt_token::ValidatorConfig::new(
            v["issuer"].as_str().unwrap(),
            v["audience"].as_str().unwrap(),
        ),
        keys,
    )
    .unwrap();
    let now = v["now"].as_u64().unwrap();
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 7);
    for c in cases {
        let got = match validator.validate_access_token(c["token"].as_str().unwrap(), now) {
            Ok(at) => {
                assert_eq!(at.mcptt_id, "sip:alice@mcptt.example");
                "accept"
            }
            Err(e) => e.kind(),
        };
        assert_eq!(got, c["expected"].as_str().unwrap(), "{}", c["name"]);
    }
}
