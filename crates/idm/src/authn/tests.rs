#![allow(clippy::unwrap_used)]
use super::*;
use crate::directory::User;
use crate::milenage::{Milenage, Usim};
use crate::otp::{OtpAlgorithm, Totp};
use crate::password::PasswordHash;
use crate::random::testing::SeqRandom;
use std::time::UNIX_EPOCH;

fn at(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s)
}

fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

const K: [u8; 16] = [
    0x46, 0x5b, 0x5c, 0xe8, 0xb1, 0x99, 0xb4, 0x9f, 0xaa, 0x5f, 0x0a, 0x2e, 0xe2, 0x38, 0xa6, 0xbc,
];
const OPC: [u8; 16] = [
    0xcd, 0x63, 0xcb, 0x71, 0x95, 0x4a, 0x9f, 0x4e, 0x48, 0xa5, 0x99, 0x4e, 0x37, 0xa0, 0x2b, 0xaf,
];

fn user() -> User {
    let mut u = User::new(McpttId::parse("sip:alice@mcptt.example").unwrap());
    u.password = Some(PasswordHash::derive("pw-alice", b"salt-alice", 10).unwrap());
    u.totp = Some(Totp::try_new(b"12345678901234567890".to_vec(), OtpAlgorithm::Sha1, 6).unwrap());
    u.sim = Some(crate::directory::SimCredentials {
        milenage: Milenage::new(K, OPC),
        amf: [0x80, 0],
        sqn: 100,
    });
    u
}

#[test]
fn password_success_and_failures() {
    let (u, rng) = (user(), SeqRandom::default());
    let mut m = PasswordMethod;
    assert_eq!(m.acr(), "3gpp:acr:password");
    let ok = fields(&[("password", "pw-alice")]);
    assert_eq!(
        m.authenticate(&u, &LoginInput::new(&ok), at(0), &rng),
        Ok(Outcome::Authenticated)
    );
    let wrong = fields(&[("password", "pw-alicE")]);
    assert_eq!(
        m.authenticate(&u, &LoginInput::new(&wrong), at(0), &rng),
        Err(AuthFailure::WrongPassword)
    );
    assert_eq!(
        m.authenticate(&u, &LoginInput::new(&[]), at(0), &rng),
        Err(AuthFailure::MissingField("password"))
    );
    let mut no_pw = u.clone();
    no_pw.password = None;
    assert_eq!(
        m.authenticate(&no_pw, &LoginInput::new(&ok), at(0), &rng),
        Err(AuthFailure::MethodNotAvailable)
    );
}

#[test]
fn two_factor_success_wrong_replayed_stale() {
    let (u, rng) = (user(), SeqRandom::default());
    let totp = u.totp.clone().unwrap();
    let mut m = TwoFactorMethod::new();
    let t = 1_700_000_000 + 10;
    let code = totp.code_at(t).unwrap();
    // Right password, wrong code.
    let bad_code = if code == "000000" { "000001" } else { "000000" };
    let f = fields(&[("password", "pw-alice"), ("otp", bad_code)]);
    assert_eq!(
        m.authenticate(&u, &LoginInput::new(&f), at(10), &rng),
        Err(AuthFailure::Otp(OtpFailure::Wrong))
    );
    // Wrong password, right code: refused, and the code is not consumed.
    let f = fields(&[("password", "nope"), ("otp", &code)]);
    assert_eq!(
        m.authenticate(&u, &LoginInput::new(&f), at(10), &rng),
        Err(AuthFailure::WrongPassword)
    );
    // Both right.
    let f = fields(&[("password", "pw-alice"), ("otp", &code)]);
    assert_eq!(
        m.authenticate(&u, &LoginInput::new(&f), at(10), &rng),
        Ok(Outcome::Authenticated)
    );
    // Same code again, even within its step: replay.
    assert_eq!(
        m.authenticate(&u, &LoginInput::new(&f), at(12), &rng),
        Err(AuthFailure::Otp(OtpFailure::Replayed))
    );
    // Stale: a code from three steps back.
    let old = totp.code_at(t - 90).unwrap();
    let f = fields(&[("password", "pw-alice"), ("otp", &old)]);
    assert_eq!(
        m.authenticate(&u, &LoginInput::new(&f), at(10), &rng),
        Err(AuthFailure::Otp(OtpFailure::Wrong))
    );
    // The next step's code works.
    let next = totp.code_at(t + 30).unwrap();
    let f = fields(&[("password", "pw-alice"), ("otp", &next)]);
    assert_eq!(
        m.authenticate(&u, &LoginInput::new(&f), at(40), &rng),
        Ok(Outcome::Authenticated)
    );
    // Missing OTP; user without TOTP.
    let f = fields(&[("password", "pw-alice")]);
    assert_eq!(
        m.authenticate(&u, &LoginInput::new(&f), at(40), &rng),
        Err(AuthFailure::MissingField("otp"))
    );
    let mut plain = u.clone();
    plain.totp = None;
    assert_eq!(
        m.authenticate(&plain, &LoginInput::new(&f), at(40), &rng),
        Err(AuthFailure::MethodNotAvailable)
    );
}

fn challenge(m: &mut SimMethod, u: &User, now: SystemTime, rng: &SeqRandom) -> Challenge {
    match m.authenticate(u, &LoginInput::new(&[]), now, rng) {
        Ok(Outcome::Challenge(c)) => c,
        other => panic!("expected a challenge, got {other:?}"),
    }
}

fn answer(
    m: &mut SimMethod,
    u: &User,
    id: &str,
    res: &str,
    now: SystemTime,
    rng: &SeqRandom,
) -> Result<Outcome, AuthFailure> {
    let f = fields(&[("challenge_id", id), ("res", res)]);
    m.authenticate(u, &LoginInput::new(&f), now, rng)
}

#[test]
fn sim_success_wrong_res_and_single_use() {
    let (u, rng) = (user(), SeqRandom::default());
    let mut m = SimMethod::new(SimConfig::default());
    let mut usim = Usim::new(Milenage::new(K, OPC), 100);
    let c = challenge(&mut m, &u, at(0), &rng);
    assert_eq!(m.sqn(&u.mcptt_id), Some(132), "SQN advanced by the step");
    let (rand, autn) = sim_challenge_params(&c.params).unwrap();
    let res = hex::encode(&usim.respond(&rand, &autn).unwrap());
    assert_eq!(usim.sqn_ms(), 132);
    assert_eq!(
        answer(&mut m, &u, &c.id, &res, at(1), &rng),
        Ok(Outcome::Authenticated)
    );
    // The same response again: the challenge is spent.
    assert_eq!(
        answer(&mut m, &u, &c.id, &res, at(2), &rng),
        Err(AuthFailure::UnknownChallenge)
    );

    // Wrong RES (one bit flipped) fails and spends the challenge too.
    let c = challenge(&mut m, &u, at(3), &rng);
    let (rand, autn) = sim_challenge_params(&c.params).unwrap();
    let mut good = usim.respond(&rand, &autn).unwrap();
    good[7] ^= 1;
    assert_eq!(
        answer(&mut m, &u, &c.id, &hex::encode(&good), at(4), &rng),
        Err(AuthFailure::WrongRes)
    );
    good[7] ^= 1;
    assert_eq!(
        answer(&mut m, &u, &c.id, &hex::encode(&good), at(4), &rng),
        Err(AuthFailure::UnknownChallenge)
    );

    // Malformed and missing RES.
    let c = challenge(&mut m, &u, at(5), &rng);
    assert_eq!(
        answer(&mut m, &u, &c.id, "zz", at(5), &rng),
        Err(AuthFailure::Malformed("res"))
    );
    let c = challenge(&mut m, &u, at(5), &rng);
    let f = fields(&[("challenge_id", &c.id)]);
    assert_eq!(
        m.authenticate(&u, &LoginInput::new(&f), at(5), &rng),
        Err(AuthFailure::MissingField("res"))
    );
}

#[test]
fn sim_sqn_replay_expiry_and_other_user() {
    let (u, rng) = (user(), SeqRandom::default());
    let mut m = SimMethod::new(SimConfig::default());
    let mut usim = Usim::new(Milenage::new(K, OPC), 100);
    let first = challenge(&mut m, &u, at(0), &rng);
    let second = challenge(&mut m, &u, at(0), &rng);
    let (r2, a2) = sim_challenge_params(&second.params).unwrap();
    let res2 = usim.respond(&r2, &a2).unwrap();
    assert_eq!(
        answer(&mut m, &u, &second.id, &hex::encode(&res2), at(1), &rng),
        Ok(Outcome::Authenticated)
    );
    // The older challenge (lower SQN) is replayed to the SIM: it refuses with a sync failure.
    let (r1, a1) = sim_challenge_params(&first.params).unwrap();
    assert!(matches!(
        usim.respond(&r1, &a1),
        Err(AkaFailure::Sync { .. })
    ));
    // The same AUTN again: refused as well.
    assert!(matches!(
        usim.respond(&r2, &a2),
        Err(AkaFailure::Sync { .. })
    ));

    // Expired challenge.
    let c = challenge(&mut m, &u, at(10), &rng);
    let (r, a) = sim_challenge_params(&c.params).unwrap();
    let res = usim.respond(&r, &a).unwrap();
    assert_eq!(
        answer(&mut m, &u, &c.id, &hex::encode(&res), at(10 + 120), &rng),
        Err(AuthFailure::ChallengeExpired)
    );

    // A challenge issued to alice cannot be answered as bob.
    let c = challenge(&mut m, &u, at(200), &rng);
    let (r, a) = sim_challenge_params(&c.params).unwrap();
    let res = usim.respond(&r, &a).unwrap();
    let mut bob = u.clone();
    bob.mcptt_id = McpttId::parse("sip:bob@mcptt.example").unwrap();
    assert_eq!(
        answer(&mut m, &bob, &c.id, &hex::encode(&res), at(201), &rng),
        Err(AuthFailure::UnknownChallenge)
    );
}

#[test]
fn sim_resynchronisation() {
    let (u, rng) = (user(), SeqRandom::default());
    let mut m = SimMethod::new(SimConfig::default());
    // The SIM has seen a far higher SQN than the IdMS's record (e.g. another network used it).
    let mut usim = Usim::new(Milenage::new(K, OPC), 5_000);
    let c = challenge(&mut m, &u, at(0), &rng);
    let (rand, autn) = sim_challenge_params(&c.params).unwrap();
    let Err(AkaFailure::Sync { auts }) = usim.respond(&rand, &autn) else {
        panic!("stale SQN accepted")
    };
    // A tampered AUTS is refused.
    let mut bad = auts;
    bad[0] ^= 1;
    let f = fields(&[("challenge_id", &c.id), ("auts", &hex::encode(&bad))]);
    assert_eq!(
        m.authenticate(&u, &LoginInput::new(&f), at(1), &rng),
        Err(AuthFailure::Aka(AkaFailure::Mac))
    );
    // A genuine AUTS moves the IdMS to SQN_MS and yields a fresh challenge the SIM accepts.
    let c = challenge(&mut m, &u, at(2), &rng);
    let (rand, autn) = sim_challenge_params(&c.params).unwrap();
    let Err(AkaFailure::Sync { auts }) = usim.respond(&rand, &autn) else {
        panic!("stale SQN accepted")
    };
    let f = fields(&[("challenge_id", &c.id), ("auts", &hex::encode(&auts))]);
    let Ok(Outcome::Challenge(c2)) = m.authenticate(&u, &LoginInput::new(&f), at(3), &rng) else {
        panic!("no new challenge")
    };
    assert_eq!(m.sqn(&u.mcptt_id), Some(5_000 + 32));
    let (rand, autn) = sim_challenge_params(&c2.params).unwrap();
    let res = usim.respond(&rand, &autn).unwrap();
    assert_eq!(
        answer(&mut m, &u, &c2.id, &hex::encode(&res), at(4), &rng),
        Ok(Outcome::Authenticated)
    );
}

#[test]
fn sim_pending_is_bounded() {
    let (u, rng) = (user(), SeqRandom::default());
    let mut m = SimMethod::new(SimConfig {
        max_pending: 2,
        ..SimConfig::default()
    });
    challenge(&mut m, &u, at(0), &rng);
    challenge(&mut m, &u, at(0), &rng);
    assert_eq!(
        m.authenticate(&u, &LoginInput::new(&[]), at(0), &rng),
        Err(AuthFailure::Busy)
    );
    // Expired ones make room.
    assert!(matches!(
        m.authenticate(&u, &LoginInput::new(&[]), at(121), &rng),
        Ok(Outcome::Challenge(_))
    ));
    let mut no_sim = u.clone();
    no_sim.sim = None;
    assert_eq!(
        m.authenticate(&no_sim, &LoginInput::new(&[]), at(0), &rng),
        Err(AuthFailure::MethodNotAvailable)
    );
}

/// The directly written challenge object is the text serde_json gives for it, with a
/// parameter replacing a field of its name and values that need escaping.
#[test]
fn challenge_json_is_serde_json() {
    let base = Challenge {
        id: "c-1_x".into(),
        params: vec![("rand", "00ff".into()), ("autn", "a1b2".into())],
        fields: &[],
        expires: UNIX_EPOCH,
    };
    let mut odd = base.clone();
    odd.params.push(("acr", "over \"ridden\"".into()));
    odd.params.push(("zeta", "é\n".into()));
    odd.id = "back\\slash".into();
    for (c, acr, exp) in [(base, "3gpp:acr:sim", 120), (odd, "x", 0)] {
        let mut doc = serde_json::json!({
            "challenge_id": c.id,
            "acr": acr,
            "expires_in": exp,
        });
        for (k, v) in &c.params {
            doc[*k] = serde_json::Value::String(v.clone());
        }
        assert_eq!(c.to_json(acr, exp), doc.to_string());
    }
}
