#![allow(clippy::unwrap_used)]
use super::*;
use crate::directory::{McpttId, User};
use crate::password::PasswordHash;
use crate::random::testing::SeqRandom;
use std::time::UNIX_EPOCH;

const REDIRECT: &str = "http://127.0.0.1:7777/cb";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn at(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s)
}

fn dir() -> Directory {
    let mut d = Directory::new();
    d.insert_client(Client {
        client_id: "ue".into(),
        redirect_uris: vec![REDIRECT.into()],
    });
    d.insert_client(Client {
        client_id: "other".into(),
        redirect_uris: vec!["http://127.0.0.1:9/x".into()],
    });
    let mut u = User::new(McpttId::parse("sip:alice@mcptt.example").unwrap());
    u.password = Some(PasswordHash::derive("pw", b"saltsalt", 1).unwrap());
    d.insert(u);
    d
}

fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

fn good_params() -> Vec<(String, String)> {
    let challenge = s256_challenge(VERIFIER);
    p(&[
        ("response_type", "code"),
        ("client_id", "ue"),
        ("redirect_uri", REDIRECT),
        ("scope", "openid 3gpp:mcptt:ptt_server"),
        ("state", "st"),
        ("nonce", "n-1"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
        ("acr_values", "3gpp:acr:password"),
    ])
}

fn with(
    mut params: Vec<(String, String)>,
    name: &str,
    value: Option<&str>,
) -> Vec<(String, String)> {
    params.retain(|(n, _)| n != name);
    if let Some(v) = value {
        params.push((name.to_owned(), v.to_owned()));
    }
    params
}

#[test]
fn rfc7636_appendix_b_challenge() {
    assert_eq!(
        s256_challenge(VERIFIER),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
    assert!(is_valid_verifier(VERIFIER));
    assert!(!is_valid_verifier(&"a".repeat(42)));
    assert!(is_valid_verifier(&"a".repeat(128)));
    assert!(!is_valid_verifier(&"a".repeat(129)));
    assert!(!is_valid_verifier(&format!("{}+", "a".repeat(43))));
    // The stack-written comparison the token endpoint makes, on the same vector.
    assert!(s256_matches(
        VERIFIER,
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    ));
    assert!(!s256_matches(
        VERIFIER,
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"
    ));
}

proptest::proptest! {
    /// `s256_matches` agrees with comparing to `s256_challenge`'s text, for the verifier's
    /// own challenge, another verifier's, and texts of other lengths.
    #[test]
    fn s256_matches_is_the_text_comparison(
        v in "[A-Za-z0-9._~-]{43,128}",
        w in "[A-Za-z0-9._~-]{43,128}",
        cut in 0usize..44,
    ) {
        let own = s256_challenge(&v);
        proptest::prop_assert!(s256_matches(&v, &own));
        let other = s256_challenge(&w);
        proptest::prop_assert_eq!(s256_matches(&v, &other), own == other);
        let short = own.get(..cut).unwrap_or_default();
        proptest::prop_assert_eq!(s256_matches(&v, short), own == short);
        let longer = format!("{own}A");
        proptest::prop_assert!(!s256_matches(&v, &longer));
    }
}

#[test]
fn authorize_request_rules() {
    let (d, c) = (dir(), OAuthConfig::default());
    let r = parse_authorize(&good_params(), &d, &c).unwrap();
    assert_eq!(r.scope, ["openid", "3gpp:mcptt:ptt_server"]);
    assert_eq!((r.state.as_str(), r.nonce.as_deref()), ("st", Some("n-1")));
    assert_eq!(r.acr_values, ["3gpp:acr:password"]);
    // Round trip through to_params.
    let again: Vec<(String, String)> = r
        .to_params()
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b))
        .collect();
    assert_eq!(parse_authorize(&again, &d, &c).unwrap(), r);

    // Shown, never redirected: client and redirect URI problems.
    for params in [
        with(good_params(), "client_id", None),
        with(good_params(), "client_id", Some("nobody")),
        with(good_params(), "redirect_uri", None),
        with(
            good_params(),
            "redirect_uri",
            Some("http://127.0.0.1:7777/cb/"),
        ),
        with(good_params(), "redirect_uri", Some("http://127.0.0.1:9/x")),
        {
            let mut v = good_params();
            v.push(("client_id".into(), "ue".into()));
            v
        },
    ] {
        let e = parse_authorize(&params, &d, &c).unwrap_err();
        let query = append_query("", &pairs_ref(&params));
        let form = Form::parse(query.trim_start_matches('?'), 20).unwrap();
        assert_eq!(parse_authorize_form(&form, &d, &c), Err(e.clone()));
        assert!(
            matches!(e, AuthorizeError::Display(_)),
            "{params:?} gave {e:?}"
        );
        assert_eq!(e.location(), None);
    }

    // Redirected with an error code.
    let cases: Vec<(Vec<(String, String)>, ErrorCode)> = vec![
        (
            with(good_params(), "response_type", Some("token")),
            ErrorCode::UnsupportedResponseType,
        ),
        (
            with(good_params(), "response_type", None),
            ErrorCode::InvalidRequest,
        ),
        (
            with(good_params(), "scope", Some("3gpp:mcptt:ptt_server")),
            ErrorCode::InvalidScope,
        ),
        (with(good_params(), "scope", None), ErrorCode::InvalidScope),
        (
            with(good_params(), "scope", Some("openid admin")),
            ErrorCode::InvalidScope,
        ),
        (
            with(good_params(), "state", None),
            ErrorCode::InvalidRequest,
        ),
        (
            with(good_params(), "code_challenge", None),
            ErrorCode::InvalidRequest,
        ),
        (
            with(good_params(), "code_challenge_method", None),
            ErrorCode::InvalidRequest,
        ),
        (
            with(good_params(), "code_challenge_method", Some("plain")),
            ErrorCode::InvalidRequest,
        ),
        (
            with(good_params(), "code_challenge_method", Some("S512")),
            ErrorCode::InvalidRequest,
        ),
        (
            with(good_params(), "code_challenge", Some("short")),
            ErrorCode::InvalidRequest,
        ),
        (
            with(good_params(), "code_challenge", Some(&"*".repeat(43))),
            ErrorCode::InvalidRequest,
        ),
        (
            with(good_params(), "nonce", Some(&"n".repeat(2000))),
            ErrorCode::InvalidRequest,
        ),
        (
            {
                let mut v = good_params();
                v.push(("scope".into(), "openid".into()));
                v
            },
            ErrorCode::InvalidRequest,
        ),
    ];
    for (params, code) in cases {
        let e = parse_authorize(&params, &d, &c).unwrap_err();
        // The same error, description and location through a decoded form.
        let query = append_query("", &pairs_ref(&params));
        let form = Form::parse(query.trim_start_matches('?'), 20).unwrap();
        assert_eq!(parse_authorize_form(&form, &d, &c), Err(e.clone()));
        assert_eq!(e.error().code, code, "{params:?}");
        let loc = e
            .location()
            .unwrap_or_else(|| panic!("{params:?} not redirected"));
        assert!(loc.starts_with("http://127.0.0.1:7777/cb?error="), "{loc}");
        assert!(loc.contains(&format!("error={}", code.as_str())), "{loc}");
    }
    // The state is echoed when present.
    let e =
        parse_authorize(&with(good_params(), "response_type", Some("token")), &d, &c).unwrap_err();
    assert!(e.location().unwrap().ends_with("&state=st"));
}

fn issue(server: &mut AuthorizationServer, now: SystemTime, rng: &SeqRandom) -> String {
    let (d, c) = (dir(), OAuthConfig::default());
    let request = parse_authorize(&good_params(), &d, &c).unwrap();
    let location = server
        .issue_code(
            &request,
            &McpttId::parse("sip:alice@mcptt.example").unwrap(),
            "3gpp:acr:password",
            now,
            rng,
        )
        .unwrap();
    let query = location.strip_prefix("http://127.0.0.1:7777/cb?").unwrap();
    let q = parse_form(query, 10).unwrap();
    assert_eq!(q[1], ("state".to_owned(), "st".to_owned()));
    q[0].1.clone()
}

fn redeem(code: &str) -> Vec<(String, String)> {
    p(&[
        ("grant_type", "authorization_code"),
        ("client_id", "ue"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ])
}

#[test]
fn code_redeemed_once() {
    let (d, rng) = (dir(), SeqRandom::default());
    let mut s = AuthorizationServer::new(OAuthConfig::default());
    let code = issue(&mut s, at(0), &rng);
    let g = s.token(&redeem(&code), &d, at(1), &rng).unwrap();
    assert_eq!(g.mcptt_id.as_str(), "sip:alice@mcptt.example");
    assert_eq!(
        (g.client_id.as_str(), g.nonce.as_deref(), g.acr.as_str()),
        ("ue", Some("n-1"), "3gpp:acr:password")
    );
    assert_eq!(g.auth_time, 1_700_000_000);
    // Reuse: refused, and the refresh token it produced is revoked.
    let e = s.token(&redeem(&code), &d, at(2), &rng).unwrap_err();
    assert_eq!(
        (e.code, e.description),
        (ErrorCode::InvalidGrant, "authorization code already used")
    );
    let r = p(&[
        ("grant_type", "refresh_token"),
        ("client_id", "ue"),
        ("refresh_token", &g.refresh_token),
    ]);
    assert_eq!(
        s.token(&r, &d, at(3), &rng).unwrap_err().code,
        ErrorCode::InvalidGrant
    );
}

#[test]
fn every_pkce_and_binding_rule() {
    let (d, rng) = (dir(), SeqRandom::default());
    let mut s = AuthorizationServer::new(OAuthConfig::default());
    type MakeRequest = Box<dyn Fn(&str) -> Vec<(String, String)>>;
    let cases: Vec<(MakeRequest, ErrorCode, &str)> = vec![
        (
            Box::new(|c| with(redeem(c), "code_verifier", None)),
            ErrorCode::InvalidGrant,
            "code_verifier missing (PKCE)",
        ),
        (
            Box::new(|c| with(redeem(c), "code_verifier", Some(&"x".repeat(43)))),
            ErrorCode::InvalidGrant,
            "code_verifier does not match code_challenge",
        ),
        (
            Box::new(|c| with(redeem(c), "code_verifier", Some("short"))),
            ErrorCode::InvalidGrant,
            "code_verifier malformed (RFC 7636 §4.1)",
        ),
        // A "plain" client sends the challenge itself as verifier: it does not hash to itself.
        (
            Box::new(|c| with(redeem(c), "code_verifier", Some(&s256_challenge(VERIFIER)))),
            ErrorCode::InvalidGrant,
            "code_verifier does not match code_challenge",
        ),
        (
            Box::new(|c| {
                with(
                    redeem(c),
                    "redirect_uri",
                    Some("http://127.0.0.1:7777/other"),
                )
            }),
            ErrorCode::InvalidGrant,
            "redirect_uri differs from the authorization request",
        ),
        (
            Box::new(|c| with(redeem(c), "client_id", Some("other"))),
            ErrorCode::InvalidGrant,
            "code was issued to another client",
        ),
    ];
    for (make, code, description) in cases {
        let c = issue(&mut s, at(0), &rng);
        let e = s.token(&make(&c), &d, at(1), &rng).unwrap_err();
        assert_eq!((e.code, e.description), (code, description));
        // A failed attempt spends the code: even the right request fails now.
        assert_eq!(
            s.token(&redeem(&c), &d, at(2), &rng)
                .unwrap_err()
                .description,
            "authorization code already used"
        );
    }
    // Expired code (lifetime 60 s).
    let c = issue(&mut s, at(0), &rng);
    assert_eq!(
        s.token(&redeem(&c), &d, at(60), &rng)
            .unwrap_err()
            .description,
        "unknown or expired authorization code"
    );
    // Unknown code, missing fields, unknown client, unsupported grant type, repeated parameter.
    assert_eq!(
        s.token(&redeem("nope"), &d, at(0), &rng).unwrap_err().code,
        ErrorCode::InvalidGrant
    );
    let c = issue(&mut s, at(0), &rng);
    assert_eq!(
        s.token(&with(redeem(&c), "redirect_uri", None), &d, at(0), &rng)
            .unwrap_err()
            .code,
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        s.token(&with(redeem(&c), "code", None), &d, at(0), &rng)
            .unwrap_err()
            .code,
        ErrorCode::InvalidRequest
    );
    let e = s
        .token(
            &with(redeem(&c), "client_id", Some("nobody")),
            &d,
            at(0),
            &rng,
        )
        .unwrap_err();
    assert_eq!((e.code, e.http_status()), (ErrorCode::InvalidClient, 401));
    assert_eq!(
        s.token(&with(redeem(&c), "client_id", None), &d, at(0), &rng)
            .unwrap_err()
            .code,
        ErrorCode::InvalidClient
    );
    let e = s
        .token(
            &with(redeem(&c), "grant_type", Some("password")),
            &d,
            at(0),
            &rng,
        )
        .unwrap_err();
    assert_eq!(
        (e.code, e.http_status()),
        (ErrorCode::UnsupportedGrantType, 400)
    );
    assert_eq!(
        s.token(&with(redeem(&c), "grant_type", None), &d, at(0), &rng)
            .unwrap_err()
            .code,
        ErrorCode::InvalidRequest
    );
    let mut twice = redeem(&c);
    twice.push(("code".into(), c.clone()));
    assert_eq!(
        s.token(&twice, &d, at(0), &rng).unwrap_err().code,
        ErrorCode::InvalidRequest
    );
    // The untouched code still works after all that.
    assert!(s.token(&redeem(&c), &d, at(0), &rng).is_ok());
    assert_eq!(
        OAuthError::new(ErrorCode::InvalidGrant, "x").to_json(),
        r#"{"error":"invalid_grant","error_description":"x"}"#
    );
}

#[test]
fn refresh_rotation() {
    let (d, rng) = (dir(), SeqRandom::default());
    let mut s = AuthorizationServer::new(OAuthConfig::default());
    let code = issue(&mut s, at(0), &rng);
    let g1 = s.token(&redeem(&code), &d, at(1), &rng).unwrap();
    let refresh = |t: &str| {
        p(&[
            ("grant_type", "refresh_token"),
            ("client_id", "ue"),
            ("refresh_token", t),
        ])
    };
    let g2 = s
        .token(&refresh(&g1.refresh_token), &d, at(2), &rng)
        .unwrap();
    assert_ne!(g2.refresh_token, g1.refresh_token);
    assert_eq!(
        (g2.scope.clone(), g2.nonce.clone(), g2.auth_time),
        (g1.scope.clone(), None, g1.auth_time)
    );
    // The old token works once only; its reuse revokes the whole family (g2's token too).
    assert_eq!(
        s.token(&refresh(&g1.refresh_token), &d, at(3), &rng)
            .unwrap_err()
            .description,
        "refresh token already used"
    );
    assert_eq!(
        s.token(&refresh(&g2.refresh_token), &d, at(4), &rng)
            .unwrap_err()
            .code,
        ErrorCode::InvalidGrant
    );

    // Narrowing the scope is allowed, widening is not; another client may not use the token.
    let c = issue(&mut s, at(10), &rng);
    let g = s.token(&redeem(&c), &d, at(10), &rng).unwrap();
    let narrow = s
        .token(
            &with(refresh(&g.refresh_token), "scope", Some("openid")),
            &d,
            at(11),
            &rng,
        )
        .unwrap();
    assert_eq!(narrow.scope, ["openid"]);
    let e = s
        .token(
            &with(
                refresh(&narrow.refresh_token),
                "scope",
                Some("openid 3gpp:mc:ptt_service"),
            ),
            &d,
            at(12),
            &rng,
        )
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidScope);
    let c = issue(&mut s, at(20), &rng);
    let g = s.token(&redeem(&c), &d, at(20), &rng).unwrap();
    let e = s
        .token(
            &with(refresh(&g.refresh_token), "client_id", Some("other")),
            &d,
            at(21),
            &rng,
        )
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidGrant);
    // Expiry.
    let c = issue(&mut s, at(30), &rng);
    let g = s.token(&redeem(&c), &d, at(30), &rng).unwrap();
    let e = s
        .token(&refresh(&g.refresh_token), &d, at(30 + 12 * 3600), &rng)
        .unwrap_err();
    assert_eq!(e.description, "unknown or expired refresh token");
    assert_eq!(
        s.token(&with(refresh("x"), "refresh_token", None), &d, at(0), &rng)
            .unwrap_err()
            .code,
        ErrorCode::InvalidRequest
    );
}

#[test]
fn limits_hold() {
    let (d, rng) = (dir(), SeqRandom::default());
    let mut s = AuthorizationServer::new(OAuthConfig {
        max_codes: 2,
        max_refresh_tokens: 1,
        ..OAuthConfig::default()
    });
    let c1 = issue(&mut s, at(0), &rng);
    issue(&mut s, at(0), &rng);
    let request = parse_authorize(&good_params(), &d, s.config()).unwrap();
    let id = McpttId::parse("sip:alice@mcptt.example").unwrap();
    assert!(matches!(
        s.issue_code(&request, &id, "a", at(0), &rng),
        Err(Error::LimitExceeded { .. })
    ));
    assert!(
        s.issue_code(&request, &id, "a", at(61), &rng).is_ok(),
        "expired codes make room"
    );
    let _ = c1;
    let c = issue(&mut s, at(61), &rng);
    s.token(&redeem(&c), &d, at(61), &rng).unwrap();
    let c = s.issue_code(&request, &id, "a", at(62), &rng).unwrap();
    let code = c
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(
        s.token(&redeem(&code), &d, at(62), &rng).unwrap_err().code,
        ErrorCode::TemporarilyUnavailable
    );
}

#[test]
fn expiry_survives_a_clock_step_back() {
    let (d, rng) = (dir(), SeqRandom::default());
    let mut s = AuthorizationServer::new(OAuthConfig::default());
    // Issued at 100 (expires 160), then the clock steps back: issued at 0 (expires 60) is
    // queued behind it, so the purge at 61 stops at the front; the lookup still refuses it.
    let late = issue(&mut s, at(100), &rng);
    let early = issue(&mut s, at(0), &rng);
    s.purge(at(61));
    assert_eq!((s.codes.len(), s.codes.queue.len()), (2, 2));
    assert_eq!(
        s.token(&redeem(&early), &d, at(61), &rng)
            .unwrap_err()
            .description,
        "unknown or expired authorization code"
    );
    let g = s.token(&redeem(&late), &d, at(110), &rng).unwrap();
    assert_eq!(g.mcptt_id.as_str(), "sip:alice@mcptt.example");
    // A redeemed code's queue slot lingers until its expiry, then everything is gone.
    assert_eq!((s.codes.len(), s.used_codes.len()), (0, 1));
    s.purge(at(160));
    assert_eq!((s.codes.queue.len(), s.used_codes.len()), (0, 0));
    assert_eq!(s.refresh.len(), 1);
    s.purge(at(110 + 12 * 3600));
    assert_eq!((s.refresh.len(), s.refresh.queue.len()), (0, 0));
}

#[test]
fn form_codec() {
    let f = parse_form("a=1&b=x+y%2Bz&c=&d&e=%E2%82%AC", 10).unwrap();
    assert_eq!(
        f,
        p(&[("a", "1"), ("b", "x y+z"), ("c", ""), ("d", ""), ("e", "€")])
    );
    assert!(parse_form("a=%2", 10).is_err());
    assert!(parse_form("a=%zz", 10).is_err());
    assert!(parse_form("a=%ff", 10).is_err());
    // Two hex digits exactly (a sign is no digit), either case.
    assert!(parse_form("a=%+1", 10).is_err());
    assert_eq!(parse_form("a=%c3%A4%2b", 10).unwrap(), p(&[("a", "ä+")]));
    assert!(matches!(
        parse_form("a&b&c", 2),
        Err(Error::LimitExceeded { .. })
    ));
    assert_eq!(
        append_query("http://h/p?x=1", &[("s", "a b&c")]),
        "http://h/p?x=1&s=a%20b%26c"
    );
    assert_eq!(percent_encode("aä€b~ "), "a%C3%A4%E2%82%ACb~%20");
    assert_eq!(percent_encode("€"), "%E2%82%AC");
    assert_eq!(
        parse_form(&percent_encode("ä ~+&="), 1).unwrap()[0].0,
        "ä ~+&="
    );
}

fn reference_decode(s: &str) -> Result<String, &'static str> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::new();
    let mut it = s.bytes();
    while let Some(b) = it.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let (Some(h), Some(l)) = (it.next(), it.next()) else {
                    return Err("truncated percent-escape");
                };
                let (Some(h), Some(l)) = (hex(h), hex(l)) else {
                    return Err("bad percent-escape");
                };
                out.push(h << 4 | l);
            }
            _ => out.push(b),
        }
    }
    String::from_utf8(out).map_err(|_| "not UTF-8")
}

/// The run-copying decoder answers as a byte-at-a-time reference (value or error reason) on
/// escapes at the start, middle and end, cut escapes, non-hex digits and bad UTF-8.
#[test]
fn form_decode_matches_reference() {
    let cases = [
        "",
        "plain",
        "+",
        "++a+",
        "%41",
        "a%41b",
        "ab%41",
        "%",
        "a%",
        "%4",
        "a%4",
        "%4g",
        "%g4",
        "%%41",
        "%+1",
        "x+%20y+",
        "%c3%a4",
        "%c3",
        "%C3%A4%2B%2b",
        "sip%3Aue1%40mcptt.example",
        "é+%E2%82%AC",
        "%ff+%zz",
        "%e2%82+%ac",
        "%e2%82%ac%41%e2%82%ac+x%c3",
        "%C3%A4%",
    ];
    // The decoder as a form's value (and, with the `=` escaped, as a name).
    let form_decode = |s: &str| {
        let value = Form::parse(&format!("x={s}"), 1).map(|f| f.pair(0).unwrap().1.to_owned());
        let name = Form::parse(&s.replace('=', "%3D"), 1)
            .map(|f| f.pair(0).map_or(String::new(), |p| p.0.to_owned()));
        assert_eq!(
            value.as_ref().map_err(ToString::to_string),
            name.as_ref().map_err(ToString::to_string),
            "{s:?}"
        );
        value
    };
    for s in cases {
        let got = form_decode(s).map_err(|e| match e {
            Error::Malformed { reason, .. } => reason,
            _ => "other",
        });
        assert_eq!(got.as_deref(), reference_decode(s).as_deref(), "{s:?}");
    }
}

/// Reference form decoding: split with `str::split`, decode byte at a time; the first
/// failure in text order (a pair beyond `max`, or a pair that does not decode) is the error.
fn reference_form(text: &str, max: usize) -> Result<Vec<(String, String)>, &'static str> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .enumerate()
        .map(|(i, p)| {
            if i >= max {
                return Err("limit");
            }
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((reference_decode(k)?, reference_decode(v)?))
        })
        .collect()
}

/// `Form::parse`'s pairs, or its error reason.
fn form_pairs(text: &str, max: usize) -> Result<Vec<(String, String)>, &'static str> {
    Form::parse(text, max)
        .map(|f| f.to_pairs())
        .map_err(|e| match e {
            Error::Malformed { reason, .. } => reason,
            Error::LimitExceeded { .. } => "limit",
            _ => "other",
        })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, ..Default::default() })]

    /// Any text of form-significant characters (escapes valid or not, runs of plain bytes
    /// between the specials) decodes as the reference does, errors included.
    #[test]
    fn form_parse_is_the_reference(text in "([a-z0-9.~:/é_-]{0,12}|[&=+%]|%[0-9a-fA-FgG]{0,2}){0,14}") {
        proptest::prop_assert_eq!(form_pairs(&text, 3), reference_form(&text, 3), "{:?}", text);
    }
}

/// A `Form` holds the pairs `parse_form` gives (errors included), and the core answers the
/// same through either: a code issued with `issue_code_taking` is redeemed through the form
/// path, the authorization request parses the same from both.
#[test]
fn form_is_parse_form() {
    for text in [
        "",
        "&&",
        "a=1&b=x+y%2Bz&c=&d&e=%E2%82%AC",
        "=v&k=&k=2",
        "x=%c3&y=%a4",
        "a=%2",
        "a&b&c",
        "a=%4&b=1",
        "a%=1",
        "a%4=1",
        "a=%4=&b",
        "%e2%82=x",
        "k=%e2%82&b=%zz",
        "k=%e2%82%zz",
        "a=b=c&&=&x",
        "&a&b&%zz",
        "+=+&%41%42=%43+",
    ] {
        let expected = reference_form(text, 2);
        assert_eq!(form_pairs(text, 2), expected, "{text:?}");
        assert_eq!(parse_form(text, 2).ok(), expected.ok(), "{text:?}");
    }
    let f = Form::parse("a=1&b=2&a=3", 10).unwrap();
    assert_eq!((f.len(), f.get("a"), f.get("c")), (3, Some("1"), None));
    assert_eq!(f.pair(2), Some(("a", "3")));
    assert_eq!(f.pair(3), None);

    let (d, c, rng) = (dir(), OAuthConfig::default(), SeqRandom::default());
    let query = append_query("", &pairs_ref(&good_params()));
    let form = Form::parse(query.trim_start_matches('?'), 20).unwrap();
    let mut request = parse_authorize_form(&form, &d, &c).unwrap();
    assert_eq!(request, parse_authorize(&good_params(), &d, &c).unwrap());
    let mut s = AuthorizationServer::new(c);
    let alice = McpttId::parse("sip:alice@mcptt.example").unwrap();
    let location = s
        .issue_code_taking(&mut request, alice, "3gpp:acr:password".into(), at(0), &rng)
        .unwrap();
    let q = Form::parse(location.split_once('?').unwrap().1, 10).unwrap();
    assert_eq!(q.get("state"), Some("st"));
    let code = q.get("code").unwrap();
    assert_eq!(code.len(), 43);
    let body = append_query("", &pairs_ref(&redeem(code)));
    let body = Form::parse(body.trim_start_matches('?'), 10).unwrap();
    let g = s.token_form(&body, &d, at(1), &rng).unwrap();
    assert_eq!(
        (g.client_id.as_str(), g.nonce.as_deref(), g.scope.len()),
        ("ue", Some("n-1"), 2)
    );
    // Spent, and reported as reused whichever path presents it again.
    let e = s.token(&redeem(code), &d, at(2), &rng).unwrap_err();
    assert_eq!(e.description, "authorization code already used");
}

fn pairs_ref(p: &[(String, String)]) -> Vec<(&str, &str)> {
    p.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

/// Codes and refresh tokens are looked up by their 32 bytes: only the one canonical
/// 43-character base64url text of those bytes finds them (same length with other trailing
/// bits, padding, other lengths or alphabets do not).
#[test]
fn secret_text_is_canonical() {
    let rng = SeqRandom::default();
    let (key, text) = new_secret(&rng).unwrap();
    assert_eq!(text.len(), 43);
    assert_eq!(secret_key(&text), Some(key));
    let last = text.as_bytes()[42];
    // The last character carries 4 bits and 2 zero bits: another one with the same 4 bits
    // but a non-zero low bit decodes to the same bytes in a lenient decoder.
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let i = alphabet.iter().position(|&c| c == last).unwrap();
    let odd = format!("{}{}", &text[..42], char::from(alphabet[i | 1]));
    assert_eq!(secret_key(&odd), None);
    assert_eq!(secret_key(&format!("{text}=")), None);
    assert_eq!(secret_key(&text[..42]), None);
    assert_eq!(
        secret_key(&text.replace('-', "+").replace('_', "/")).is_some(),
        !text.contains(['-', '_'])
    );
}
