#![allow(clippy::unwrap_used)]
//! Whole logins through [`Idms`]: each method, lock-out, tokens checked with the real
//! `mcptt-token` validator, key rotation.

use mcptt_idm::milenage::{Milenage, Usim};
use mcptt_idm::oauth::{ErrorCode, parse_form, percent_encode, s256_challenge};
use mcptt_idm::otp::{Totp, encode_base32};
use mcptt_idm::password::PasswordHash;
use mcptt_idm::{
    ACR_PASSWORD, ACR_SIM, ACR_TWO_FACTOR, AuthFailure, Directory, Idms, IdmsConfig, KeyRing,
    LoginOutcome, SystemRandom,
};
use mcptt_token::{Algorithm, JwkSet, KeyStore, SigningKey, Validator, ValidatorConfig};
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const ISSUER: &str = "https://idms.test";
const AUDIENCE: &str = "sip:mcptt-server@mcptt.example";
const REDIRECT: &str = "http://127.0.0.1:7777/cb";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const TOTP_KEY: &[u8] = b"12345678901234567890";
const K: &str = "465b5ce8b199b49faa5f0a2ee238a6bc";
const OPC: &str = "cd63cb71954a9f4e48a5994e37a02baf";
const T0: u64 = 1_800_000_000;

fn at(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0 + s)
}

fn source(n: u8) -> IpAddr {
    IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, n))
}

fn idms() -> Idms {
    let hash = PasswordHash::derive("pw", b"per-user-salt", 10)
        .unwrap()
        .encode();
    let text = format!(
        r#"
[[client]]
client_id = "mcptt-ue"
redirect_uris = ["{REDIRECT}"]
[[client]]
client_id = "dispatcher-console"
redirect_uris = ["{REDIRECT}"]

[[user]]
mcptt_id = "sip:alice@mcptt.example"
password = "{hash}"
clients = ["mcptt-ue"]

[[user]]
mcptt_id = "sip:bob@mcptt.example"
password = "{hash}"
[user.totp]
secret = "{}"

[[user]]
mcptt_id = "sip:carol@mcptt.example"
[user.sim]
k = "{K}"
opc = "{OPC}"
sqn = 64
"#,
        encode_base32(TOTP_KEY)
    );
    let dir = Directory::from_toml(&text).unwrap();
    let key =
        SigningKey::generate(Algorithm::Es256, "k1", &ring::rand::SystemRandom::new()).unwrap();
    Idms::new(IdmsConfig::new(ISSUER), dir, KeyRing::new(key)).unwrap()
}

fn authorize_params(acr: &str) -> String {
    format!(
        "response_type=code&client_id=mcptt-ue&redirect_uri={}&scope=openid+3gpp%3Amcptt%3Aptt_server&state=s1&nonce=n1&code_challenge={}&code_challenge_method=S256&acr_values={}",
        percent_encode(REDIRECT),
        s256_challenge(VERIFIER),
        percent_encode(acr)
    )
}

fn login(idms: &mut Idms, acr: &str, extra: &str, from: IpAddr, now: SystemTime) -> LoginOutcome {
    let form = parse_form(&format!("{}&{extra}", authorize_params(acr)), 64).unwrap();
    idms.login(&form, from, now, &SystemRandom::new())
}

fn code_of(outcome: &LoginOutcome) -> String {
    let LoginOutcome::Redirect(location) = outcome else {
        panic!("not a redirect: {outcome:?}")
    };
    assert!(
        location.starts_with(&format!("{REDIRECT}?code=")),
        "{location}"
    );
    assert!(location.ends_with("&state=s1"), "{location}");
    let q = parse_form(location.split_once('?').unwrap().1, 4).unwrap();
    q[0].1.clone()
}

fn redeem(
    idms: &mut Idms,
    code: &str,
    now: SystemTime,
) -> Result<mcptt_idm::TokenResponse, mcptt_idm::oauth::OAuthError> {
    let form = parse_form(
        &format!("grant_type=authorization_code&client_id=mcptt-ue&code={code}&redirect_uri={}&code_verifier={VERIFIER}", percent_encode(REDIRECT)),
        16,
    )
    .unwrap();
    idms.token(&form, now, &SystemRandom::new())
}

fn validator(idms: &Idms, audience: &str) -> Validator {
    let set = JwkSet::from_json(&idms.jwks_json().unwrap()).unwrap();
    Validator::new(ValidatorConfig::new(ISSUER, audience), KeyStore::new(set)).unwrap()
}

fn check_tokens(idms: &Idms, t: &mcptt_idm::TokenResponse, mcptt_id: &str, acr: &str, now: u64) {
    assert_eq!(
        (t.token_type.as_str(), t.expires_in, t.scope.as_str()),
        ("Bearer", 3600, "openid 3gpp:mcptt:ptt_server")
    );
    let at = validator(idms, AUDIENCE)
        .validate_access_token(&t.access_token, now)
        .unwrap();
    assert_eq!(at.mcptt_id, mcptt_id);
    assert_eq!(at.client_id, "mcptt-ue");
    assert_eq!(at.scopes, ["openid", "3gpp:mcptt:ptt_server"]);
    assert_eq!(at.acr.as_deref(), Some(acr));
    assert_eq!(at.expires_at, now + 3600);
    assert!(!at.token_id.is_empty());
    let id = validator(idms, "mcptt-ue")
        .validate_id_token(t.id_token.as_ref().unwrap(), now, Some("n1"))
        .unwrap();
    assert_eq!(id.mcptt_id, mcptt_id);
    assert_eq!(id.acr.as_deref(), Some(acr));
}

#[test]
fn password_login_to_tokens() {
    let mut idms = idms();
    let page = idms
        .authorize(&parse_form(&authorize_params(ACR_PASSWORD), 64).unwrap())
        .unwrap();
    assert_eq!((page.acr.as_str(), page.fields.len()), (ACR_PASSWORD, 1));
    let out = login(
        &mut idms,
        ACR_PASSWORD,
        "username=alice%40mcptt.example&password=wrong",
        source(1),
        at(0),
    );
    assert!(
        matches!(
            out,
            LoginOutcome::Failed {
                failure: AuthFailure::WrongPassword,
                ..
            }
        ),
        "{out:?}"
    );
    let code = code_of(&login(
        &mut idms,
        ACR_PASSWORD,
        "username=sip%3Aalice%40mcptt.example&password=pw",
        source(1),
        at(1),
    ));
    let tokens = redeem(&mut idms, &code, at(2)).unwrap();
    check_tokens(
        &idms,
        &tokens,
        "sip:alice@mcptt.example",
        ACR_PASSWORD,
        T0 + 2,
    );
    // Alice may not use the dispatcher console client.
    let form = parse_form(
        &format!(
            "{}&username=sip%3Aalice%40mcptt.example&password=pw",
            authorize_params(ACR_PASSWORD)
                .replace("client_id=mcptt-ue", "client_id=dispatcher-console")
        ),
        64,
    )
    .unwrap();
    let out = idms.login(&form, source(1), at(3), &SystemRandom::new());
    assert!(
        matches!(
            out,
            LoginOutcome::Failed {
                failure: AuthFailure::ClientNotAllowed,
                ..
            }
        ),
        "{out:?}"
    );
    // Unknown user.
    let out = login(
        &mut idms,
        ACR_PASSWORD,
        "username=sip%3Amallory%40mcptt.example&password=pw",
        source(1),
        at(3),
    );
    assert!(
        matches!(
            out,
            LoginOutcome::Failed {
                failure: AuthFailure::UnknownUser,
                ..
            }
        ),
        "{out:?}"
    );
}

#[test]
fn two_factor_login() {
    let mut idms = idms();
    let totp = Totp::try_new(TOTP_KEY.to_vec(), mcptt_idm::otp::OtpAlgorithm::Sha1, 6).unwrap();
    let code = totp.code_at(T0 + 5).unwrap();
    let extra = format!("username=sip%3Abob%40mcptt.example&password=pw&otp={code}");
    let c = code_of(&login(&mut idms, ACR_TWO_FACTOR, &extra, source(2), at(5)));
    let t = redeem(&mut idms, &c, at(6)).unwrap();
    check_tokens(&idms, &t, "sip:bob@mcptt.example", ACR_TWO_FACTOR, T0 + 6);
    // Replay of the same code.
    let out = login(&mut idms, ACR_TWO_FACTOR, &extra, source(2), at(7));
    assert!(
        matches!(
            out,
            LoginOutcome::Failed {
                failure: AuthFailure::Otp(mcptt_idm::otp::OtpFailure::Replayed),
                ..
            }
        ),
        "{out:?}"
    );
    // Alice has no second factor.
    let out = login(
        &mut idms,
        ACR_TWO_FACTOR,
        "username=sip%3Aalice%40mcptt.example&password=pw&otp=123456",
        source(2),
        at(8),
    );
    assert!(
        matches!(
            out,
            LoginOutcome::Failed {
                failure: AuthFailure::MethodNotAvailable,
                ..
            }
        ),
        "{out:?}"
    );
}

#[test]
fn sim_login() {
    let mut idms = idms();
    let out = login(
        &mut idms,
        ACR_SIM,
        "username=sip%3Acarol%40mcptt.example",
        source(3),
        at(0),
    );
    let LoginOutcome::Challenge { challenge, page } = out else {
        panic!("{out:?}")
    };
    assert_eq!(page.acr, ACR_SIM);
    let (rand, autn) = mcptt_idm::authn::sim_challenge_params(&challenge.params).unwrap();
    let milenage = Milenage::new(
        mcptt_idm::hex::decode_array(K).unwrap(),
        mcptt_idm::hex::decode_array(OPC).unwrap(),
    );
    let mut usim = Usim::new(milenage, 64);
    let res = mcptt_idm::hex::encode(&usim.respond(&rand, &autn).unwrap());
    // Wrong RES first: the challenge is then spent.
    let mut wrong = res.clone().into_bytes();
    wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
    let wrong = String::from_utf8(wrong).unwrap();
    let out = login(
        &mut idms,
        ACR_SIM,
        &format!(
            "username=sip%3Acarol%40mcptt.example&challenge_id={}&res={wrong}",
            challenge.id
        ),
        source(3),
        at(1),
    );
    assert!(
        matches!(
            out,
            LoginOutcome::Failed {
                failure: AuthFailure::WrongRes,
                ..
            }
        ),
        "{out:?}"
    );
    let out = login(
        &mut idms,
        ACR_SIM,
        &format!(
            "username=sip%3Acarol%40mcptt.example&challenge_id={}&res={res}",
            challenge.id
        ),
        source(3),
        at(1),
    );
    assert!(
        matches!(
            out,
            LoginOutcome::Failed {
                failure: AuthFailure::UnknownChallenge,
                ..
            }
        ),
        "{out:?}"
    );
    // A new challenge, right RES.
    let LoginOutcome::Challenge { challenge, .. } = login(
        &mut idms,
        ACR_SIM,
        "username=sip%3Acarol%40mcptt.example",
        source(3),
        at(2),
    ) else {
        panic!()
    };
    let (rand, autn) = mcptt_idm::authn::sim_challenge_params(&challenge.params).unwrap();
    let res = mcptt_idm::hex::encode(&usim.respond(&rand, &autn).unwrap());
    let out = login(
        &mut idms,
        ACR_SIM,
        &format!(
            "username=sip%3Acarol%40mcptt.example&challenge_id={}&res={res}",
            challenge.id
        ),
        source(3),
        at(3),
    );
    let c = code_of(&out);
    let t = redeem(&mut idms, &c, at(4)).unwrap();
    check_tokens(&idms, &t, "sip:carol@mcptt.example", ACR_SIM, T0 + 4);
}

#[test]
fn lockout_through_login() {
    let mut idms = idms();
    for i in 0..5 {
        let out = login(
            &mut idms,
            ACR_PASSWORD,
            "username=sip%3Aalice%40mcptt.example&password=guess",
            source(4),
            at(i),
        );
        assert!(
            matches!(
                out,
                LoginOutcome::Failed {
                    failure: AuthFailure::WrongPassword,
                    ..
                }
            ),
            "{i}: {out:?}"
        );
    }
    // Locked: even the right password is refused, from any source, until the lock ends.
    let right = "username=sip%3Aalice%40mcptt.example&password=pw";
    let out = login(&mut idms, ACR_PASSWORD, right, source(5), at(5));
    let LoginOutcome::Failed {
        failure: AuthFailure::Locked { until },
        ..
    } = out
    else {
        panic!("{out:?}")
    };
    assert_eq!(until, at(4 + 30));
    assert!(matches!(
        login(&mut idms, ACR_PASSWORD, right, source(5), at(34)),
        LoginOutcome::Redirect(_)
    ));
}

/// The split login a server uses to check passwords outside its lock: attempts in flight
/// count against the lock-out, so concurrent guesses get no more checks than sequential ones.
#[test]
fn concurrent_logins_respect_the_lockout() {
    let mut idms = idms();
    let form = |pw: &str| {
        parse_form(
            &format!(
                "{}&username=sip%3Aalice%40mcptt.example&password={pw}",
                authorize_params(ACR_PASSWORD)
            ),
            64,
        )
        .unwrap()
    };
    let guess = form("guess");
    // Five guesses in flight at once (from five sources); the sixth is refused unchecked.
    let pending: Vec<_> = (0..5)
        .map(|i| idms.begin_login(&guess, source(10 + i), at(0)))
        .collect();
    assert!(pending.iter().all(|p| !p.is_decided()));
    assert_eq!(idms.logins_in_flight(), (5, 5));
    let sixth = idms.begin_login(&guess, source(20), at(0));
    assert!(sixth.is_decided());
    assert!(matches!(
        idms.finish_login(sixth, at(0), &SystemRandom::new()),
        LoginOutcome::Failed {
            failure: AuthFailure::Busy,
            ..
        }
    ));
    // The checks run without the Idms (a server runs them outside its lock).
    let checked: Vec<_> = pending.into_iter().map(|p| p.verify()).collect();
    for p in checked {
        let out = idms.finish_login(p, at(1), &SystemRandom::new());
        assert!(
            matches!(
                out,
                LoginOutcome::Failed {
                    failure: AuthFailure::WrongPassword,
                    ..
                }
            ),
            "{out:?}"
        );
    }
    assert_eq!(idms.logins_in_flight(), (0, 0));
    // Five failures: locked, even for the right password.
    let out = idms.begin_login(&form("pw"), source(30), at(2));
    assert!(out.is_decided());
    assert!(matches!(
        idms.finish_login(out, at(2), &SystemRandom::new()),
        LoginOutcome::Failed {
            failure: AuthFailure::Locked { .. },
            ..
        }
    ));
}

#[test]
fn split_login_checks_known_and_unknown_users_alike() {
    let mut idms = idms();
    let rng = SystemRandom::new();
    let form = |user: &str, pw: &str| {
        parse_form(
            &format!(
                "{}&username={}&password={pw}",
                authorize_params(ACR_PASSWORD),
                percent_encode(user)
            ),
            64,
        )
        .unwrap()
    };
    // An unknown user's attempt waits for a (dummy) password check like a known user's.
    let unknown = idms.begin_login(&form("sip:nobody@mcptt.example", "pw"), source(1), at(0));
    let known = idms.begin_login(&form("sip:alice@mcptt.example", "pw"), source(1), at(0));
    assert!(!unknown.is_decided() && !known.is_decided());
    assert!(unknown.needs_verify() && known.needs_verify());
    // Both at the users' cost (the dummy hash takes the known users' iteration count).
    assert_eq!(known.verify_iterations(), Some(10));
    assert_eq!(unknown.verify_iterations(), Some(10));
    let unknown = unknown.verify();
    assert_eq!(unknown.verify_iterations(), None, "checked already");
    let out = idms.finish_login(unknown, at(0), &rng);
    assert!(
        matches!(
            out,
            LoginOutcome::Failed {
                failure: AuthFailure::UnknownUser,
                ..
            }
        ),
        "{out:?}"
    );
    code_of(&idms.finish_login(known.verify(), at(0), &rng));
    // Finished without verify(): the check is done under the lock instead, same outcome.
    let wrong = idms.begin_login(&form("sip:alice@mcptt.example", "nope"), source(1), at(0));
    assert!(matches!(
        idms.finish_login(wrong, at(0), &rng),
        LoginOutcome::Failed {
            failure: AuthFailure::WrongPassword,
            ..
        }
    ));
    let right = idms.begin_login(&form("sip:alice@mcptt.example", "pw"), source(1), at(0));
    code_of(&idms.finish_login(right, at(0), &rng));
    // The same with the parameters handed over by value: the same checks and outcomes.
    let owned = form("sip:alice@mcptt.example", "nope");
    let wrong = idms.begin_login_owned(owned, source(1), at(0));
    assert!(matches!(
        idms.finish_login(wrong, at(0), &rng),
        LoginOutcome::Failed {
            failure: AuthFailure::WrongPassword,
            ..
        }
    ));
    let right = idms.begin_login_owned(form("sip:alice@mcptt.example", "pw"), source(1), at(0));
    code_of(&idms.finish_login(right, at(0), &rng));
    // Attempts in flight are released under the key they were admitted with: an unknown
    // name longer than the key's 256 characters, and a known user spelled another way.
    let long = format!("sip:{}@mcptt.example", "n".repeat(300));
    let unknown = idms.begin_login(&form(&long, "pw"), source(2), at(0));
    let known = idms.begin_login(&form(" alice@MCPTT.example", "pw"), source(2), at(0));
    assert_eq!(idms.logins_in_flight(), (2, 2));
    assert!(matches!(
        idms.finish_login(unknown, at(0), &rng),
        LoginOutcome::Failed {
            failure: AuthFailure::UnknownUser,
            ..
        }
    ));
    code_of(&idms.finish_login(known, at(0), &rng));
    assert_eq!(idms.logins_in_flight(), (0, 0));
    // A method without a password (SIM) is not held up by a check.
    let sim = parse_form(
        &format!(
            "{}&username=sip%3Acarol%40mcptt.example",
            authorize_params(ACR_SIM)
        ),
        64,
    )
    .unwrap();
    let p = idms.begin_login(&sim, source(1), at(0));
    assert!(!p.is_decided() && !p.needs_verify());
    assert_eq!(p.verify_iterations(), None);
    assert!(matches!(
        idms.finish_login(p, at(0), &rng),
        LoginOutcome::Challenge { .. }
    ));
    assert_eq!(idms.logins_in_flight(), (0, 0));
}

#[test]
fn acr_values_choose_the_method() {
    let idms = idms();
    let e = idms
        .authorize(&parse_form(&authorize_params("urn:unknown"), 64).unwrap())
        .unwrap_err();
    assert_eq!(e.error().code, ErrorCode::InvalidRequest);
    assert!(e.location().unwrap().contains("error=invalid_request"));
    let page = idms
        .authorize(&parse_form(&authorize_params(&format!("urn:unknown {ACR_SIM}")), 64).unwrap())
        .unwrap();
    assert_eq!(page.acr, ACR_SIM);
    let no_acr = authorize_params("x").replace("&acr_values=x", "");
    assert_eq!(
        idms.authorize(&parse_form(&no_acr, 64).unwrap())
            .unwrap()
            .acr,
        ACR_PASSWORD
    );
}

#[test]
fn key_rotation_keeps_old_tokens_valid() {
    let mut idms = idms();
    let code = code_of(&login(
        &mut idms,
        ACR_PASSWORD,
        "username=sip%3Aalice%40mcptt.example&password=pw",
        source(6),
        at(0),
    ));
    let old = redeem(&mut idms, &code, at(1)).unwrap();
    let k2 =
        SigningKey::generate(Algorithm::Es256, "k2", &ring::rand::SystemRandom::new()).unwrap();
    let before = idms.jwks_document().unwrap().to_owned();
    assert_eq!(JwkSet::from_json(&before).unwrap().len(), 1);
    idms.keys_mut().rotate(k2);
    let jwks = JwkSet::from_json(&idms.jwks_json().unwrap()).unwrap();
    assert_eq!(jwks.len(), 2);
    // The served document follows the rotation (the kept one was dropped).
    assert_eq!(idms.jwks_document().unwrap(), idms.jwks_json().unwrap());
    assert_ne!(idms.jwks_document().unwrap(), before);
    assert_eq!(idms.keys_mut().kids(), ["k1", "k2"]);
    let code = code_of(&login(
        &mut idms,
        ACR_PASSWORD,
        "username=sip%3Aalice%40mcptt.example&password=pw",
        source(6),
        at(2),
    ));
    let new = redeem(&mut idms, &code, at(3)).unwrap();
    let v = validator(&idms, AUDIENCE);
    assert_eq!(
        v.validate_access_token(&old.access_token, T0 + 3)
            .unwrap()
            .key_id
            .as_deref(),
        Some("k1")
    );
    assert_eq!(
        v.validate_access_token(&new.access_token, T0 + 3)
            .unwrap()
            .key_id
            .as_deref(),
        Some("k2")
    );
    // After retiring k1, old tokens no longer verify.
    assert!(idms.keys_mut().retire("k1"));
    assert!(!idms.keys_mut().retire("k2"), "the active key stays");
    assert_eq!(idms.keys_mut().kids(), ["k2"]);
    assert!(
        validator(&idms, AUDIENCE)
            .validate_access_token(&old.access_token, T0 + 3)
            .is_err()
    );
    // Refresh gives new tokens signed by k2.
    let form = parse_form(
        &format!(
            "grant_type=refresh_token&client_id=mcptt-ue&refresh_token={}",
            new.refresh_token
        ),
        8,
    )
    .unwrap();
    let refreshed = idms.token(&form, at(10), &SystemRandom::new()).unwrap();
    assert_ne!(refreshed.refresh_token, new.refresh_token);
    assert!(
        validator(&idms, AUDIENCE)
            .validate_access_token(&refreshed.access_token, T0 + 10)
            .is_ok()
    );
    assert_eq!(
        idms.token(&form, at(11), &SystemRandom::new())
            .unwrap_err()
            .code,
        ErrorCode::InvalidGrant
    );
}

#[test]
fn discovery_document() {
    let idms = idms();
    let served: serde_json::Value = serde_json::from_str(idms.discovery_document()).unwrap();
    assert_eq!(served, idms.discovery());
    let d = idms.discovery();
    assert_eq!(d["issuer"], ISSUER);
    assert_eq!(d["token_endpoint"], format!("{ISSUER}/token"));
    assert_eq!(d["jwks_uri"], format!("{ISSUER}/jwks"));
    assert_eq!(
        d["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        d["acr_values_supported"],
        serde_json::json!([ACR_PASSWORD, ACR_TWO_FACTOR, ACR_SIM])
    );
}

/// An agency's own method, plugged in through the trait.
struct BadgeMethod;

impl mcptt_idm::Authenticator for BadgeMethod {
    fn acr(&self) -> &str {
        "urn:example-agency:acr:badge"
    }
    fn fields(&self) -> &'static [mcptt_idm::authn::Field] {
        &[mcptt_idm::authn::Field {
            name: "badge",
            label: "Badge",
            kind: mcptt_idm::authn::FieldKind::Password,
        }]
    }
    fn authenticate(
        &mut self,
        user: &mcptt_idm::User,
        input: &mcptt_idm::authn::LoginInput<'_>,
        _now: SystemTime,
        _rng: &dyn mcptt_idm::RandomSource,
    ) -> Result<mcptt_idm::authn::Outcome, AuthFailure> {
        match input.get("badge") {
            Some("4711") if user.mcptt_id.as_str() == "sip:alice@mcptt.example" => {
                Ok(mcptt_idm::authn::Outcome::Authenticated)
            }
            Some(_) => Err(AuthFailure::WrongPassword),
            None => Err(AuthFailure::MissingField("badge")),
        }
    }
}

#[test]
fn agency_method_plugs_in() {
    let mut idms = idms();
    assert!(!idms.discovery_document().contains("badge"));
    idms.add_method(Box::new(BadgeMethod));
    let acr = "urn:example-agency:acr:badge";
    // The served document shows the new method (the kept one was dropped).
    assert!(idms.discovery_document().contains(acr));
    assert!(idms.acr_values().iter().any(|a| a == acr));
    assert_eq!(
        idms.discovery()["acr_values_supported"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let page = idms
        .authorize(&parse_form(&authorize_params(acr), 64).unwrap())
        .unwrap();
    assert_eq!(page.fields[0].name, "badge");
    let out = login(
        &mut idms,
        acr,
        "username=sip%3Aalice%40mcptt.example&badge=1234",
        source(7),
        at(0),
    );
    assert!(
        matches!(
            out,
            LoginOutcome::Failed {
                failure: AuthFailure::WrongPassword,
                ..
            }
        ),
        "{out:?}"
    );
    let code = code_of(&login(
        &mut idms,
        acr,
        "username=sip%3Aalice%40mcptt.example&badge=4711",
        source(7),
        at(1),
    ));
    let t = redeem(&mut idms, &code, at(2)).unwrap();
    check_tokens(&idms, &t, "sip:alice@mcptt.example", acr, T0 + 2);
}
