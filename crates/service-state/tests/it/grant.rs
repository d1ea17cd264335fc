//! `TokenValidator::validate_with` against `validate`: the borrowed grant of the
//! `mcptt_token::Validator` implementation, the default implementation, and the forwarding
//! through `Arc` and `&`.

use std::sync::Arc;

use mcptt_service_state::{TokenGrant, TokenValidator};
use mcptt_token::Validator;

use crate::harness::{Idms, T0_UNIX};

/// Implements only `validate`: `validate_with` is the trait's default.
struct OnlyValidate<'a>(&'a Validator);

impl TokenValidator for OnlyValidate<'_> {
    fn validate(
        &self,
        token: &str,
        now_unix: u64,
    ) -> Result<TokenGrant, Box<dyn std::error::Error + Send + Sync>> {
        TokenValidator::validate(self.0, token, now_unix)
    }
}

type Seen = Vec<(String, Option<String>, u64)>;

fn with(v: &dyn TokenValidator, token: &str, now: u64) -> (Result<(), String>, Seen) {
    let mut seen = Vec::new();
    let r = v.validate_with(token, now, &mut |g| {
        seen.push((
            g.mcptt_id.to_owned(),
            g.client_id.map(str::to_owned),
            g.expires_at,
        ));
    });
    (r.map_err(|e| e.to_string()), seen)
}

#[test]
fn validate_with_passes_what_validate_returns() {
    let mut idms = Idms::new();
    let v = idms.validator();
    let alice = "sip:alice@mcptt.example.org";
    let good = idms.token(alice, T0_UNIX, 3600);
    let claims = idms.claims(alice, T0_UNIX, 3600);
    let forged = idms.forger.sign_access_token(&claims).unwrap();
    let cases = [
        (good.as_str(), T0_UNIX + 10, true),
        (good.as_str(), T0_UNIX + 3600 + 60, false),
        (forged.as_str(), T0_UNIX + 10, false),
        ("a.b.c", T0_UNIX, false),
        ("", T0_UNIX, false),
    ];
    let shared: Arc<Validator> = Arc::new(idms.validator());
    let by_ref = &v;
    let default = OnlyValidate(&v);
    let validators: [&dyn TokenValidator; 4] = [&v, &shared, &by_ref, &default];
    for (token, now, ok) in cases {
        let owned = TokenValidator::validate(&v, token, now);
        assert_eq!(owned.is_ok(), ok, "{token:?} at {now}");
        for validator in validators {
            let (r, seen) = with(validator, token, now);
            match &owned {
                Ok(g) => {
                    assert_eq!(r, Ok(()));
                    assert_eq!(
                        seen,
                        [(g.mcptt_id.clone(), g.client_id.clone(), g.expires_at)]
                    );
                }
                Err(e) => {
                    assert_eq!(r, Err(e.to_string()), "{token:?} at {now}");
                    assert!(seen.is_empty(), "no grant on failure");
                }
            }
        }
    }
    let (_, seen) = with(&v, &good, T0_UNIX);
    assert_eq!(
        seen,
        [(
            alice.to_owned(),
            Some("mcptt-client".to_owned()),
            T0_UNIX + 3600
        )]
    );
}
