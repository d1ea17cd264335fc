//! Property tests: sign → validate round trips for every algorithm, and no
//! single-bit change of a valid token is accepted.

use mcptt_token::{AccessTokenClaims, Algorithm, Signer};
use proptest::prelude::*;

use crate::common::{AUD, ISS, NOW, config, key, validate_both, validator_for};

fn arb_alg() -> impl Strategy<Value = Algorithm> {
    prop::sample::select(Algorithm::ALL.to_vec())
}

fn arb_claims() -> impl Strategy<Value = AccessTokenClaims> {
    (
        "[a-zA-Z0-9._-]{1,24}",
        "[a-z0-9]{1,16}",
        "[ -~]{1,40}",
        1u64..86_400,
        0u64..600,
        prop::collection::vec("[a-z:_]{1,12}", 0..4),
        prop::option::of("[a-z:]{1,20}"),
        prop::collection::vec("[ -~]{1,12}", 0..3),
    )
        .prop_map(|(user, jti, sub, life, age, extra_scopes, acr, more_aud)| {
            let mut scopes = extra_scopes;
            scopes.push("3gpp:mcptt:ptt_server".into());
            let mut aud = more_aud;
            aud.insert(0, AUD.into());
            AccessTokenClaims {
                iss: ISS.into(),
                sub,
                aud,
                exp: NOW + life,
                iat: NOW - age,
                jti,
                client_id: "mcptt-client".into(),
                scope: scopes.join(" "),
                mcptt_id: format!("sip:{user}@mcptt.example"),
                acr,
                ..Default::default()
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn sign_then_validate_round_trips(alg in arb_alg(), c in arb_claims()) {
        let k = key(alg, "p");
        let v = validator_for(&[&k], config());
        let token = Signer::new(k).sign_access_token(&c).unwrap();
        let at = validate_both(&v, &token, NOW).unwrap();
        prop_assert_eq!(&at.mcptt_id, &c.mcptt_id);
        prop_assert_eq!(&at.subject, &c.sub);
        prop_assert_eq!(&at.token_id, &c.jti);
        prop_assert_eq!(at.expires_at, c.exp);
        prop_assert_eq!(at.issued_at, c.iat);
        prop_assert_eq!(at.scopes.join(" "), c.scope);
        prop_assert_eq!(&at.acr, &c.acr);
        prop_assert_eq!(at.audiences, c.aud);
    }

    #[test]
    fn any_single_bit_flip_is_rejected(alg in arb_alg(), c in arb_claims(), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let k = key(alg, "p");
        let v = validator_for(&[&k], config());
        let token = Signer::new(k).sign_access_token(&c).unwrap();
        let mut bytes = token.into_bytes();
        let i = pos.index(bytes.len());
        bytes[i] ^= 1 << bit;
        // A flip may leave UTF-8; such input never reaches the validator as &str.
        if let Ok(flipped) = String::from_utf8(bytes) {
            let r = validate_both(&v, &flipped, NOW);
            prop_assert!(r.is_err(), "bit {} of byte {} accepted", bit, i);
        }
    }
}

/// Exhaustive version for one token per algorithm: every bit of every byte.
#[test]
fn every_single_bit_flip_is_rejected() {
    for alg in [Algorithm::Es256, Algorithm::EdDsa] {
        let k = key(alg, "p");
        let v = validator_for(&[&k], config());
        let token = Signer::new(k)
            .sign_access_token(&crate::common::claims())
            .unwrap();
        let mut checked = 0;
        for i in 0..token.len() {
            for bit in 0..7 {
                let mut bytes = token.clone().into_bytes();
                bytes[i] ^= 1 << bit;
                let flipped = String::from_utf8(bytes).unwrap();
                assert!(
                    v.validate_access_token(&flipped, NOW).is_err(),
                    "{alg} byte {i} bit {bit}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, token.len() * 7);
    }
}
