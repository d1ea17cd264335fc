//! Attack and claim cases, each with the error kind it must produce.

use mcptt_token::{Algorithm, Error, JwkSet, KeyStore, Signer, SigningKey, Validator};
use ring::rand::SystemRandom;
use serde_json::{Value, json};

use crate::common::{self, AUD, NOW, b64, claims_json, config, forge, header, key, validator_for};

fn es256() -> SigningKey {
    key(Algorithm::Es256, "es")
}

/// Signs `claims` with the standard header of `k`.
fn token_with(k: &SigningKey, claims: &Value) -> String {
    forge(k, &header(k), &claims.to_string())
}

/// Claims with one member replaced (or removed when `value` is `None`).
fn claims_with(name: &str, value: Option<Value>) -> Value {
    let mut c = claims_json();
    let obj = c.as_object_mut().unwrap();
    match value {
        Some(v) => obj.insert(name.into(), v),
        None => obj.remove(name),
    };
    c
}

fn kind(v: &Validator, token: &str) -> &'static str {
    match common::validate_both(v, token, NOW) {
        Ok(at) => panic!("accepted: {at:?}"),
        Err(e) => {
            assert_eq!(e.status_code(), Some(403), "{e}");
            assert!(!e.to_string().is_empty());
            e.kind()
        }
    }
}

#[test]
fn the_baseline_token_is_accepted() {
    let k = es256();
    let v = validator_for(&[&k], config());
    let at = common::validate_both(&v, &token_with(&k, &claims_json()), NOW).unwrap();
    assert_eq!(at.mcptt_id, "sip:alice@mcptt.example");
    assert_eq!(at.subject, "alice");
    assert_eq!(at.client_id, "mcptt-client");
    assert_eq!(at.scopes, ["openid", "3gpp:mcptt:ptt_server"]);
    assert!(at.has_scope("3gpp:mcptt:ptt_server") && !at.has_scope("3gpp:mcptt"));
    assert_eq!(at.expires_at, NOW + 3600);
    assert_eq!(at.key_id.as_deref(), Some("es"));
    assert_eq!(at.token_id, common::claims().jti);
}

#[test]
fn header_and_algorithm_attacks() {
    let k = es256();
    let v = validator_for(&[&k], config());
    let c = claims_json().to_string();
    let good = token_with(&k, &claims_json());
    let (input, sig) = good.rsplit_once('.').unwrap();
    let sig_bytes =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sig).unwrap();
    let attacker = SigningKey::generate(Algorithm::Es256, "es", &SystemRandom::new()).unwrap();
    let attacker_jwk = attacker.public_jwk().to_json();

    // HMAC with the public key as secret (classic alg confusion).
    let hs_header = r#"{"alg":"HS256","typ":"at+jwt","kid":"es"}"#;
    let hs_input = format!("{}.{}", b64(hs_header.as_bytes()), b64(c.as_bytes()));
    let mac_key =
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, k.public_jwk().to_json().as_bytes());
    let hs_token = format!(
        "{hs_input}.{}",
        b64(ring::hmac::sign(&mac_key, hs_input.as_bytes()).as_ref())
    );

    // DER encoding of the valid (r, s).
    let der_sig = {
        let int = |b: &[u8]| {
            let b: Vec<u8> = b.iter().copied().skip_while(|x| *x == 0).collect();
            let mut v = vec![0x02];
            if b[0] & 0x80 != 0 {
                v.extend([b.len() as u8 + 1, 0]);
            } else {
                v.push(b.len() as u8);
            }
            v.extend(b);
            v
        };
        let (r, s) = sig_bytes.split_at(32);
        let body = [int(r), int(s)].concat();
        [vec![0x30, body.len() as u8], body].concat()
    };
    // r = n, s = n (the group order) and r = s = 0: both must fail.
    let order =
        "_____wAAAAD__________7zm-q2nF56E87nKwvxjJVH_____AAAAAP__________vOb6racXnoTzucrC_GMlUQ";

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "alg none",
            forge(&k, r#"{"alg":"none","typ":"at+jwt","kid":"es"}"#, &c)
                .rsplit_once('.')
                .unwrap()
                .0
                .to_owned()
                + ".",
            "unsupported_alg",
        ),
        (
            "alg absent",
            forge(&k, r#"{"typ":"at+jwt","kid":"es"}"#, &c),
            "unsupported_alg",
        ),
        (
            "alg HS256 with public key as secret",
            hs_token,
            "unsupported_alg",
        ),
        (
            "alg ES512",
            forge(&k, r#"{"alg":"ES512","typ":"at+jwt","kid":"es"}"#, &c),
            "unsupported_alg",
        ),
        (
            "alg RS256 on an ES256 key",
            forge(&k, r#"{"alg":"RS256","typ":"at+jwt","kid":"es"}"#, &c),
            "alg_mismatch",
        ),
        (
            "alg EdDSA on an ES256 key",
            forge(&k, r#"{"alg":"EdDSA","typ":"at+jwt","kid":"es"}"#, &c),
            "alg_mismatch",
        ),
        (
            "psychic signature r=s=0",
            format!("{input}.{}", b64(&[0u8; 64])),
            "bad_signature",
        ),
        ("r=s=n", format!("{input}.{order}"), "bad_signature"),
        (
            "DER-encoded ECDSA signature",
            format!("{input}.{}", b64(&der_sig)),
            "bad_signature",
        ),
        ("empty signature", format!("{input}."), "bad_signature"),
        (
            "wrong key, same kid",
            token_with(&attacker, &claims_json()),
            "bad_signature",
        ),
        (
            "embedded jwk",
            forge(
                &attacker,
                &format!(r#"{{"alg":"ES256","typ":"at+jwt","jwk":{attacker_jwk}}}"#),
                &c,
            ),
            "embedded_key",
        ),
        (
            "embedded jwk with known kid",
            forge(
                &attacker,
                &format!(r#"{{"alg":"ES256","typ":"at+jwt","kid":"es","jwk":{attacker_jwk}}}"#),
                &c,
            ),
            "embedded_key",
        ),
        (
            "jku",
            forge(
                &attacker,
                r#"{"alg":"ES256","typ":"at+jwt","kid":"es","jku":"https://evil.example/jwks"}"#,
                &c,
            ),
            "embedded_key",
        ),
        (
            "x5u",
            forge(
                &attacker,
                r#"{"alg":"ES256","typ":"at+jwt","kid":"es","x5u":"https://evil.example/c.pem"}"#,
                &c,
            ),
            "embedded_key",
        ),
        (
            "x5c",
            forge(
                &attacker,
                r#"{"alg":"ES256","typ":"at+jwt","kid":"es","x5c":["MIIB"]}"#,
                &c,
            ),
            "embedded_key",
        ),
        (
            "unknown kid",
            forge(&k, r#"{"alg":"ES256","typ":"at+jwt","kid":"nope"}"#, &c),
            "unknown_kid",
        ),
        (
            "kid not a string",
            forge(&k, r#"{"alg":"ES256","typ":"at+jwt","kid":7}"#, &c),
            "bad_header",
        ),
        (
            "crit",
            forge(
                &k,
                r#"{"alg":"ES256","typ":"at+jwt","kid":"es","crit":["exp"]}"#,
                &c,
            ),
            "crit",
        ),
        (
            "crit empty",
            forge(
                &k,
                r#"{"alg":"ES256","typ":"at+jwt","kid":"es","crit":[]}"#,
                &c,
            ),
            "crit",
        ),
        (
            "b64 false",
            forge(
                &k,
                r#"{"alg":"ES256","typ":"at+jwt","kid":"es","b64":false}"#,
                &c,
            ),
            "b64",
        ),
        (
            "b64 true",
            forge(
                &k,
                r#"{"alg":"ES256","typ":"at+jwt","kid":"es","b64":true}"#,
                &c,
            ),
            "b64",
        ),
        (
            "cty JWT (nested)",
            forge(
                &k,
                r#"{"alg":"ES256","typ":"at+jwt","kid":"es","cty":"JWT"}"#,
                &c,
            ),
            "nested_jwt",
        ),
        (
            "typ absent",
            forge(&k, r#"{"alg":"ES256","kid":"es"}"#, &c),
            "bad_typ",
        ),
        (
            "typ JWT",
            forge(&k, r#"{"alg":"ES256","typ":"JWT","kid":"es"}"#, &c),
            "bad_typ",
        ),
        (
            "typ at+jwt-ish",
            forge(&k, r#"{"alg":"ES256","typ":"at+jwtx","kid":"es"}"#, &c),
            "bad_typ",
        ),
        (
            "duplicate alg",
            forge(
                &k,
                r#"{"alg":"ES256","alg":"none","typ":"at+jwt","kid":"es"}"#,
                &c,
            ),
            "duplicate_member",
        ),
        (
            "duplicate kid via escape",
            forge(
                &k,
                r#"{"alg":"ES256","typ":"at+jwt","kid":"es","\u006bid":"x"}"#,
                &c,
            ),
            "duplicate_member",
        ),
        (
            "header is an array",
            forge(&k, r#"["ES256"]"#, &c),
            "not_object",
        ),
        (
            "header is not JSON",
            forge(&k, "alg=ES256", &c),
            "malformed_json",
        ),
        (
            "header nested bomb",
            forge(
                &k,
                &format!(
                    r#"{{"alg":"ES256","typ":"at+jwt","kid":"es","x":{}{}}}"#,
                    "[".repeat(1000),
                    "]".repeat(1000)
                ),
                &c,
            ),
            "too_deep",
        ),
        ("five segments", format!("{good}.a.b"), "malformed_segments"),
        (
            "one segment",
            "eyJhbGciOiJFUzI1NiJ9".to_owned(),
            "malformed_segments",
        ),
        ("empty token", String::new(), "malformed_segments"),
        ("padding", format!("{good}=="), "malformed_base64"),
        (
            // The signature is random: it may hold no '-' or '_' to swap for the standard
            // alphabet's '+' and '/', so put one in (a swap alone left the token unchanged,
            // and accepted, in about one run out of 15).
            "standard alphabet",
            format!("{input}.+{}", &sig[1..]),
            "malformed_base64",
        ),
        (
            "standard alphabet slash",
            format!("{input}./{}", &sig[1..]),
            "malformed_base64",
        ),
        ("trailing newline", format!("{good}\n"), "malformed_base64"),
        (
            "oversized",
            format!(
                "{}.{}.{}",
                "a".repeat(4000),
                "b".repeat(4000),
                "c".repeat(200)
            ),
            "too_large",
        ),
    ];
    for (name, token, expected) in &cases {
        assert_eq!(kind(&v, token), *expected, "{name}");
    }
}

#[test]
fn claim_attacks() {
    let k = es256();
    let v = validator_for(&[&k], config());
    let t = |name: &str, value: Option<Value>| token_with(&k, &claims_with(name, value));
    let raw = |claims: &str| forge(&k, &header(&k), claims);
    let big = format!(
        r#"{{"iss":"{}","x":{}{}}}"#,
        common::ISS,
        "[".repeat(1500),
        "]".repeat(1500)
    );
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "exp as string",
            t("exp", Some(json!((NOW + 3600).to_string()))),
            "invalid_claim",
        ),
        ("exp negative", t("exp", Some(json!(-1))), "invalid_claim"),
        ("exp null", t("exp", Some(Value::Null)), "invalid_claim"),
        ("exp missing", t("exp", None), "missing_claim"),
        ("exp passed", t("exp", Some(json!(NOW - 61))), "expired"),
        (
            "exp huge float",
            t("exp", Some(json!(1e300))),
            "invalid_claim",
        ),
        (
            "iat as string",
            t("iat", Some(json!("1800000000"))),
            "invalid_claim",
        ),
        ("iat missing", t("iat", None), "missing_claim"),
        (
            "iat in the future",
            t("iat", Some(json!(NOW + 61))),
            "iat_in_future",
        ),
        ("nbf as bool", t("nbf", Some(json!(true))), "invalid_claim"),
        (
            "nbf in the future",
            t("nbf", Some(json!(NOW + 61))),
            "not_yet_valid",
        ),
        ("aud missing", t("aud", None), "missing_claim"),
        (
            "aud empty string",
            t("aud", Some(json!(""))),
            "invalid_claim",
        ),
        (
            "aud empty array",
            t("aud", Some(json!([]))),
            "invalid_claim",
        ),
        (
            "aud other",
            t("aud", Some(json!("sip:other@mcptt.example"))),
            "bad_audience",
        ),
        (
            "aud prefix",
            t("aud", Some(json!("sip:mcptt-server@mcptt.example.evil"))),
            "bad_audience",
        ),
        (
            "aud array of others",
            t("aud", Some(json!(["a", "b"]))),
            "bad_audience",
        ),
        (
            "aud number in array",
            t("aud", Some(json!([AUD, 5]))),
            "invalid_claim",
        ),
        (
            "aud object",
            t("aud", Some(json!({"aud": AUD}))),
            "invalid_claim",
        ),
        (
            "iss other",
            t("iss", Some(json!("https://evil.example"))),
            "bad_issuer",
        ),
        (
            "iss trailing slash",
            t("iss", Some(json!(format!("{}/", common::ISS)))),
            "bad_issuer",
        ),
        ("iss missing", t("iss", None), "missing_claim"),
        ("sub missing", t("sub", None), "missing_claim"),
        ("sub empty", t("sub", Some(json!(""))), "invalid_claim"),
        ("client_id missing", t("client_id", None), "missing_claim"),
        ("jti missing", t("jti", None), "missing_claim"),
        ("jti number", t("jti", Some(json!(7))), "invalid_claim"),
        ("scope missing", t("scope", None), "missing_claim"),
        (
            "scope array",
            t("scope", Some(json!(["3gpp:mcptt:ptt_server"]))),
            "invalid_claim",
        ),
        (
            "scope suffix",
            t("scope", Some(json!("3gpp:mcptt:ptt_server_admin"))),
            "insufficient_scope",
        ),
        (
            "scope prefix",
            t("scope", Some(json!("x3gpp:mcptt:ptt_server"))),
            "insufficient_scope",
        ),
        (
            "scope truncated",
            t("scope", Some(json!("3gpp:mcptt:ptt_serve"))),
            "insufficient_scope",
        ),
        (
            "scope comma list",
            t("scope", Some(json!("openid,3gpp:mcptt:ptt_server"))),
            "insufficient_scope",
        ),
        (
            "scope other case",
            t("scope", Some(json!("3GPP:MCPTT:PTT_SERVER"))),
            "insufficient_scope",
        ),
        (
            "scope tab separated",
            t("scope", Some(json!("openid\t3gpp:mcptt:ptt_server"))),
            "invalid_claim",
        ),
        (
            "scope double space",
            t("scope", Some(json!("openid  3gpp:mcptt:ptt_server"))),
            "invalid_claim",
        ),
        ("scope empty", t("scope", Some(json!(""))), "invalid_claim"),
        ("mcptt_id missing", t("mcptt_id", None), "missing_claim"),
        (
            "mcptt_id no scheme",
            t("mcptt_id", Some(json!("alice@mcptt.example"))),
            "bad_mcptt_id",
        ),
        (
            "mcptt_id tel",
            t("mcptt_id", Some(json!("tel:+4912345"))),
            "bad_mcptt_id",
        ),
        (
            "mcptt_id no user",
            t("mcptt_id", Some(json!("sip:mcptt.example"))),
            "bad_mcptt_id",
        ),
        (
            "mcptt_id number",
            t("mcptt_id", Some(json!(5))),
            "invalid_claim",
        ),
        (
            "duplicate exp",
            raw(&claims_json().to_string().replacen(
                '{',
                &format!(r#"{{"exp":{},"#, NOW + 99_999),
                1,
            )),
            "duplicate_member",
        ),
        (
            "duplicate aud via escape",
            raw(&claims_json()
                .to_string()
                .replacen('{', r#"{"\u0061ud":"x","#, 1)),
            "duplicate_member",
        ),
        ("claims nested bomb", raw(&big), "too_deep"),
        ("claims are an array", raw("[1,2]"), "not_object"),
        ("claims are a string", raw(r#""sub""#), "not_object"),
        ("claims not JSON", raw("{\"iss\":"), "malformed_json"),
        (
            "claims trailing garbage",
            raw(&format!("{} x", claims_json())),
            "malformed_json",
        ),
        (
            "claims invalid UTF-8",
            {
                let input = format!(
                    "{}.{}",
                    b64(header(&k).as_bytes()),
                    b64(b"{\"sub\":\"\xff\"}")
                );
                let sig = k.sign(input.as_bytes(), &SystemRandom::new()).unwrap();
                format!("{input}.{}", b64(&sig))
            },
            "malformed_json",
        ),
    ];
    for (name, token, expected) in &cases {
        assert_eq!(kind(&v, token), *expected, "{name}");
    }
    // Error messages carry expected vs received where that is safe.
    let e = v
        .validate_access_token(&t("aud", Some(json!("sip:other@x.example"))), NOW)
        .unwrap_err();
    assert!(
        e.to_string().contains(AUD) && e.to_string().contains("sip:other@x.example"),
        "{e}"
    );
    let e = v
        .validate_access_token(&t("exp", Some(json!("soon"))), NOW)
        .unwrap_err();
    assert!(
        e.to_string().contains("exp") && e.to_string().contains("string"),
        "{e}"
    );
}

#[test]
fn times_and_leeway_boundaries() {
    let k = es256();
    let exp = NOW + 100;
    let token = token_with(&k, &claims_with("exp", Some(json!(exp))));
    let v = validator_for(&[&k], config());
    assert!(v.validate_access_token(&token, exp + 59).is_ok());
    assert_eq!(
        v.validate_access_token(&token, exp + 60)
            .unwrap_err()
            .kind(),
        "expired"
    );
    let strict = validator_for(&[&k], config().leeway(0));
    assert!(strict.validate_access_token(&token, exp - 1).is_ok());
    assert_eq!(
        strict
            .validate_access_token(&token, exp)
            .unwrap_err()
            .kind(),
        "expired"
    );
    // Fractional NumericDates round to the stricter side.
    let frac = token_with(&k, &claims_with("exp", Some(json!(exp as f64 + 0.9))));
    assert_eq!(
        strict.validate_access_token(&frac, exp).unwrap_err().kind(),
        "expired"
    );
    let nbf = token_with(&k, &claims_with("nbf", Some(json!(NOW + 30))));
    assert!(v.validate_access_token(&nbf, NOW).is_ok());
    assert_eq!(
        strict.validate_access_token(&nbf, NOW).unwrap_err().kind(),
        "not_yet_valid"
    );
    assert!(strict.validate_access_token(&nbf, NOW + 30).is_ok());
    // Leeway is capped at 5 minutes.
    let set = JwkSet::from_keys([k.public_jwk()]).unwrap();
    let e = Validator::new(config().leeway(301), KeyStore::new(set.clone())).unwrap_err();
    assert_eq!(e.kind(), "api_misuse");
    assert!(Validator::new(config().leeway(300), KeyStore::new(set.clone())).is_ok());
    assert_eq!(
        Validator::new(config().scope("a b"), KeyStore::new(set))
            .unwrap_err()
            .kind(),
        "api_misuse"
    );
}

#[test]
fn typ_variants_and_both_scope_names() {
    let k = es256();
    let c = claims_json().to_string();
    let v = validator_for(&[&k], config());
    for typ in [
        "at+jwt",
        "application/at+jwt",
        "AT+JWT",
        "Application/At+Jwt",
    ] {
        let tok = forge(
            &k,
            &format!(r#"{{"alg":"ES256","typ":"{typ}","kid":"es"}}"#),
            &c,
        );
        assert!(v.validate_access_token(&tok, NOW).is_ok(), "{typ}");
    }
    let later = token_with(
        &k,
        &claims_with("scope", Some(json!("3gpp:mc:ptt_service"))),
    );
    assert_eq!(kind(&v, &later), "insufficient_scope");
    let both = validator_for(&[&k], config().accept_scope(mcptt_token::SCOPE_PTT_SERVICE));
    assert!(both.validate_access_token(&later, NOW).is_ok());
    assert!(
        both.validate_access_token(&token_with(&k, &claims_json()), NOW)
            .is_ok()
    );
    let only_later = validator_for(&[&k], config().scope(mcptt_token::SCOPE_PTT_SERVICE));
    assert_eq!(
        kind(&only_later, &token_with(&k, &claims_json())),
        "insufficient_scope"
    );
    // Scope names in errors.
    let e = only_later
        .validate_access_token(&token_with(&k, &claims_json()), NOW)
        .unwrap_err();
    assert!(e.to_string().contains("3gpp:mc:ptt_service"), "{e}");
}

#[test]
fn size_cap_is_checked_before_decoding_and_is_configurable() {
    let k = es256();
    let token = token_with(&k, &claims_json());
    let v = validator_for(&[&k], config().max_token_bytes(token.len()));
    assert!(v.validate_access_token(&token, NOW).is_ok());
    let v = validator_for(&[&k], config().max_token_bytes(token.len() - 1));
    match v.validate_access_token(&token, NOW).unwrap_err() {
        Error::TooLarge { limit, actual } => {
            assert_eq!((limit, actual), (token.len() - 1, token.len()))
        }
        e => panic!("{e}"),
    }
    // Garbage of 1 MiB is refused by its length alone.
    let v = validator_for(&[&k], config());
    assert_eq!(kind(&v, &"\u{0}".repeat(1 << 20)), "too_large");
    // A depth limit of 2 still takes the flat baseline token.
    let v = validator_for(&[&k], config().max_json_depth(2));
    assert!(v.validate_access_token(&token, NOW).is_ok());
}

#[test]
fn rsa_keys_below_2048_bits_and_rs_ps_confusion() {
    // The Wycheproof 1024-bit RS256 key.
    let wp = common::jose("wycheproof/json_web_key_test.json");
    let small = wp["testGroups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["comment"] == "keysize_too_small")
        .unwrap();
    let e = JwkSet::from_json(&small["public"].to_string()).unwrap_err();
    assert_eq!(e.kind(), "weak_key");
    assert!(matches!(
        e,
        Error::WeakKey {
            bits: 1024,
            min: 2048
        }
    ));
    // An RS256-bound key refuses PS256 tokens signed with the same private key.
    let rs = key(Algorithm::Rs256, "rsa");
    let v = validator_for(&[&rs], config());
    let ps_signer = Signer::new(
        SigningKey::from_pkcs8(
            Algorithm::Ps256,
            "rsa",
            &common::data("rsa2048_rfc7515_a2.pk8.der"),
        )
        .unwrap(),
    );
    let ps_token = ps_signer.sign_access_token(&common::claims()).unwrap();
    assert_eq!(kind(&v, &ps_token), "alg_mismatch");
    let rs_token = Signer::new(rs)
        .sign_access_token(&common::claims())
        .unwrap();
    assert!(v.validate_access_token(&rs_token, NOW).is_ok());
}

#[test]
fn id_tokens() {
    let k = es256();
    let signer = Signer::new(key(Algorithm::Es256, "es"));
    let v = validator_for(
        &[&k],
        mcptt_token::ValidatorConfig::new(common::ISS, "mcptt-client"),
    );
    let base = mcptt_token::IdTokenClaims {
        iss: common::ISS.into(),
        sub: "alice".into(),
        aud: "mcptt-client".into(),
        exp: NOW + 300,
        iat: NOW,
        nonce: Some("n-1".into()),
        acr: Some("3gpp:acr:password".into()),
        mcptt_id: "sip:alice@mcptt.example".into(),
        ..Default::default()
    };
    let id = signer.sign_id_token(&base).unwrap();
    let t = v.validate_id_token(&id, NOW, Some("n-1")).unwrap();
    assert_eq!(
        (t.subject.as_str(), t.nonce.as_deref(), t.acr.as_deref()),
        ("alice", Some("n-1"), Some("3gpp:acr:password"))
    );
    assert!(v.validate_id_token(&id, NOW, None).is_ok());
    assert_eq!(
        v.validate_id_token(&id, NOW, Some("n-2"))
            .unwrap_err()
            .kind(),
        "bad_nonce"
    );
    let no_nonce = signer
        .sign_id_token(&mcptt_token::IdTokenClaims {
            nonce: None,
            ..base.clone()
        })
        .unwrap();
    assert_eq!(
        v.validate_id_token(&no_nonce, NOW, Some("n-1"))
            .unwrap_err()
            .kind(),
        "bad_nonce"
    );
    // An access token is not an ID token, and vice versa (typ).
    let at = Signer::new(key(Algorithm::Es256, "es"))
        .sign_access_token(&mcptt_token::AccessTokenClaims {
            aud: vec!["mcptt-client".into()],
            ..common::claims()
        })
        .unwrap();
    assert_eq!(
        v.validate_id_token(&at, NOW, None).unwrap_err().kind(),
        "bad_typ"
    );
    assert_eq!(
        v.validate_access_token(&id, NOW).unwrap_err().kind(),
        "bad_typ"
    );
    // typ absent is fine for ID tokens.
    let mut c = serde_json::to_value(&base).unwrap();
    let untyped = forge(&k, r#"{"alg":"ES256","kid":"es"}"#, &c.to_string());
    assert!(v.validate_id_token(&untyped, NOW, Some("n-1")).is_ok());
    // Several audiences need azp = client id.
    c["aud"] = json!(["mcptt-client", "other"]);
    let multi = forge(&k, r#"{"alg":"ES256","kid":"es"}"#, &c.to_string());
    assert_eq!(
        v.validate_id_token(&multi, NOW, None).unwrap_err().kind(),
        "invalid_claim"
    );
    c["azp"] = json!("mcptt-client");
    let multi = forge(&k, r#"{"alg":"ES256","kid":"es"}"#, &c.to_string());
    assert!(v.validate_id_token(&multi, NOW, None).is_ok());
    // Wrong audience, expired, missing mcptt_id.
    let other = signer
        .sign_id_token(&mcptt_token::IdTokenClaims {
            aud: "other".into(),
            ..base
        })
        .unwrap();
    assert_eq!(
        v.validate_id_token(&other, NOW, None).unwrap_err().kind(),
        "bad_audience"
    );
    assert_eq!(
        v.validate_id_token(&id, NOW + 360, None)
            .unwrap_err()
            .kind(),
        "expired"
    );
    c.as_object_mut().unwrap().remove("mcptt_id");
    let no_id = forge(&k, r#"{"alg":"ES256","kid":"es"}"#, &c.to_string());
    assert_eq!(
        v.validate_id_token(&no_id, NOW, None).unwrap_err().kind(),
        "missing_claim"
    );
}
