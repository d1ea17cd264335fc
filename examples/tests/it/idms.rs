//! The IdMS end to end: HTTPS on loopback, real HTTP requests, tokens checked with
//! `mcptt-token`, and the login page driven by headless Chromium.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use mcptt_examples::idm::client::{
    ClientError, Credentials, HttpResponse, IdmClient, LoginRequest,
};
use mcptt_examples::idm::demo;
use mcptt_examples::idm::server::{self, Clock, IdmsHandle};
use mcptt_idm::oauth::{parse_form, percent_encode, s256_challenge};
use mcptt_idm::{
    ACR_PASSWORD, ACR_SIM, ACR_TWO_FACTOR, Idms, IdmsConfig, KeyRing, SystemRandom, hex,
};
use mcptt_token::{Algorithm, JwkSet, KeyStore, SigningKey, Validator, ValidatorConfig};

const T0: u64 = 1_800_000_000;
const REDIRECT: &str = "http://127.0.0.1:9/cb";
const SCOPE: &str = "openid 3gpp:mcptt:ptt_server";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

struct Setup {
    handle: IdmsHandle,
    client: IdmClient,
    time: Arc<AtomicU64>,
}

impl Setup {
    fn advance(&self, secs: u64) {
        self.time.fetch_add(secs, Ordering::SeqCst);
    }
    fn now(&self) -> u64 {
        self.time.load(Ordering::SeqCst)
    }
}

async fn start(extra_redirects: &[String]) -> Setup {
    start_with(1000, None, extra_redirects).await
}

/// An IdMS whose demo users' passwords are hashed with `iterations` PBKDF2 iterations, named
/// `issuer` (default: its URL).
async fn start_with(iterations: u32, issuer: Option<&str>, extra_redirects: &[String]) -> Setup {
    let time = Arc::new(AtomicU64::new(T0));
    let t = time.clone();
    let clock: Clock = Arc::new(move || UNIX_EPOCH + Duration::from_secs(t.load(Ordering::SeqCst)));
    let mut redirects = vec![REDIRECT.to_owned()];
    redirects.extend(extra_redirects.iter().cloned());
    let directory = demo::demo_directory(iterations, &redirects, &SystemRandom::new()).unwrap();
    let rng = ring::rand::SystemRandom::new();
    let mut keys = KeyRing::new(SigningKey::generate(Algorithm::Es256, "old", &rng).unwrap());
    keys.rotate(SigningKey::generate(Algorithm::Es256, "new", &rng).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config =
        IdmsConfig::new(issuer.map_or_else(|| format!("https://{addr}"), str::to_owned));
    config.audience = vec!["mcptt-server".into()];
    let idms = Idms::new(config, directory, keys).unwrap();
    let (der, key, _) = demo::self_signed_cert().unwrap();
    let tls = server::tls_config(vec![der.clone()], key).unwrap();
    let handle = server::spawn(listener, tls, idms, clock.clone(), 64).unwrap();
    let client = IdmClient::new(&handle.base_url(), std::slice::from_ref(&der))
        .unwrap()
        .with_clock(clock);
    Setup {
        handle,
        client,
        time,
    }
}

fn password(user: &str, pw: &str) -> LoginRequest {
    LoginRequest {
        client_id: demo::DEMO_CLIENT_ID.into(),
        redirect_uri: REDIRECT.into(),
        scope: SCOPE.into(),
        credentials: Credentials::Password {
            username: user.into(),
            password: pw.into(),
        },
    }
}

async fn validator(s: &Setup, audience: &str) -> Validator {
    let issuer = s.client.discovery().await.unwrap()["issuer"]
        .as_str()
        .unwrap()
        .to_owned();
    let set = JwkSet::from_json(&s.client.jwks().await.unwrap()).unwrap();
    Validator::new(ValidatorConfig::new(issuer, audience), KeyStore::new(set)).unwrap()
}

/// The authorization request form (without credentials) with our fixed verifier.
fn authorize_form(acr: &str, user: &str) -> String {
    format!(
        "response_type=code&client_id={}&redirect_uri={}&scope={}&state=st&nonce=nn&code_challenge={}&code_challenge_method=S256&acr_values={}&username={}",
        demo::DEMO_CLIENT_ID,
        percent_encode(REDIRECT),
        percent_encode(SCOPE),
        s256_challenge(VERIFIER),
        percent_encode(acr),
        percent_encode(user)
    )
}

async fn post(s: &Setup, path: &str, form: &str) -> HttpResponse {
    s.client
        .request("POST", path, Some(form), "application/json")
        .await
        .unwrap()
}

fn code_of(r: &HttpResponse) -> String {
    assert_eq!(r.status, 303, "{}", r.text());
    let location = r.header("location").unwrap();
    let q = parse_form(location.split_once('?').unwrap().1, 8).unwrap();
    assert_eq!(q[1], ("state".into(), "st".into()));
    q[0].1.clone()
}

fn error_of(r: &HttpResponse) -> String {
    let v: serde_json::Value =
        serde_json::from_slice(&r.body).unwrap_or_else(|_| panic!("not JSON: {}", r.text()));
    v["error"].as_str().unwrap().to_owned()
}

fn token_form(code: &str, verifier: Option<&str>, redirect: &str) -> String {
    let mut f = format!(
        "grant_type=authorization_code&client_id={}&code={code}&redirect_uri={}",
        demo::DEMO_CLIENT_ID,
        percent_encode(redirect)
    );
    if let Some(v) = verifier {
        f.push_str(&format!("&code_verifier={v}"));
    }
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_jwks_over_https() {
    let s = start(&[]).await;
    let d = s.client.discovery().await.unwrap();
    assert_eq!(d["issuer"], s.handle.base_url());
    assert_eq!(
        d["authorization_endpoint"],
        format!("{}/authorize", s.handle.base_url())
    );
    assert_eq!(
        d["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    let set = JwkSet::from_json(&s.client.jwks().await.unwrap()).unwrap();
    assert_eq!(set.len(), 2, "JWKS carries the previous key too");
    assert!(set.get("old").is_some() && set.get("new").is_some());
    // An unknown path is a plain 404; the server is not tricked by a client that trusts nothing.
    assert_eq!(
        s.client
            .request("GET", "/nope", None, "*/*")
            .await
            .unwrap()
            .status,
        404
    );
    let stranger =
        IdmClient::new(&s.handle.base_url(), &[demo::self_signed_cert().unwrap().0]).unwrap();
    assert!(matches!(
        stranger.discovery().await,
        Err(ClientError::Transport(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_login_tokens_and_refresh_rotation() {
    let s = start(&[]).await;
    let before = s.handle.connections_accepted();
    let tokens = s
        .client
        .login(&password("alice", "alice-password"))
        .await
        .unwrap();
    // Authorize, token, discovery and JWKS share one keep-alive HTTPS connection.
    assert_eq!(s.handle.connections_accepted() - before, 1);
    assert_eq!(tokens.id_token.mcptt_id, "sip:alice@example.com");
    assert_eq!(tokens.id_token.acr.as_deref(), Some(ACR_PASSWORD));
    let at = validator(&s, "mcptt-server")
        .await
        .validate_access_token(&tokens.response.access_token, s.now())
        .unwrap();
    assert_eq!(
        (at.mcptt_id.as_str(), at.client_id.as_str()),
        ("sip:alice@example.com", demo::DEMO_CLIENT_ID)
    );
    assert_eq!(at.scopes, ["openid", "3gpp:mcptt:ptt_server"]);
    assert_eq!(at.key_id.as_deref(), Some("new"));

    // Refresh: new tokens, and the old refresh token is spent.
    s.advance(100);
    let r1 = s
        .client
        .refresh(demo::DEMO_CLIENT_ID, &tokens.response.refresh_token)
        .await
        .unwrap();
    assert_ne!(r1.refresh_token, tokens.response.refresh_token);
    assert!(
        validator(&s, "mcptt-server")
            .await
            .validate_access_token(&r1.access_token, s.now())
            .is_ok()
    );
    let again = s
        .client
        .refresh(demo::DEMO_CLIENT_ID, &tokens.response.refresh_token)
        .await
        .unwrap_err();
    assert!(
        matches!(&again, ClientError::TokenRefused { status: 400, error, .. } if error == "invalid_grant"),
        "{again}"
    );
    // Reuse revoked the family: the rotated-in token is dead as well.
    let dead = s
        .client
        .refresh(demo::DEMO_CLIENT_ID, &r1.refresh_token)
        .await
        .unwrap_err();
    assert!(
        matches!(&dead, ClientError::TokenRefused { error, .. } if error == "invalid_grant"),
        "{dead}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_token_issuer_other_than_the_url_is_checked_against_discovery() {
    // An IdMS reached at https://127.0.0.1:PORT but named otherwise (e.g. behind a proxy):
    // the ID token's `iss` is not the client's URL, so the client reads the issuer from the
    // discovery document, and the login succeeds.
    let s = start_with(1000, Some("https://idms.example.com"), &[]).await;
    let tokens = s
        .client
        .login(&password("alice", "alice-password"))
        .await
        .unwrap();
    assert_eq!(tokens.id_token.mcptt_id, "sip:alice@example.com");
    assert_eq!(
        s.client.discovery().await.unwrap()["issuer"],
        "https://idms.example.com"
    );
    // The other checks hold on that path too: another audience is refused.
    let again = s
        .client
        .validate_id_token(&tokens.response, demo::DEMO_CLIENT_ID, None)
        .await
        .unwrap();
    assert_eq!(again.mcptt_id, "sip:alice@example.com");
    let err = s
        .client
        .validate_id_token(&tokens.response, "another-client", None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::IdToken(mcptt_token::Error::Audience { .. })
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn costly_password_checks_run_off_the_request_task() {
    // Above INLINE_VERIFY_ITERATIONS the check goes to a blocking thread: same outcomes.
    let s = start_with(server::INLINE_VERIFY_ITERATIONS + 1, None, &[]).await;
    let tokens = s
        .client
        .login(&password("alice", "alice-password"))
        .await
        .unwrap();
    assert_eq!(tokens.id_token.mcptt_id, "sip:alice@example.com");
    let err = s
        .client
        .login(&password("alice", "wrong"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::LoginRefused { status: 401, .. }),
        "{err}"
    );
    assert_eq!(s.handle.idms.lock().unwrap().logins_in_flight(), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_lockout() {
    let s = start(&[]).await;
    for _ in 0..5 {
        let e = s.client.login(&password("bob", "guess")).await.unwrap_err();
        assert!(
            matches!(&e, ClientError::LoginRefused { status: 401, error, .. } if error == "access_denied"),
            "{e}"
        );
    }
    let r = post(
        &s,
        "/authorize",
        &format!(
            "{}&password=bob-password",
            authorize_form(ACR_PASSWORD, "bob")
        ),
    )
    .await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("30"));
    // Other users are not affected; bob gets in once the lock has passed.
    assert!(
        s.client
            .login(&password("carol", "carol-password"))
            .await
            .is_ok()
    );
    s.advance(30);
    assert!(
        s.client
            .login(&password("bob", "bob-password"))
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_factor_success_wrong_replayed_stale() {
    let s = start(&[]).await;
    let totp = demo::demo_totp();
    let req = LoginRequest {
        credentials: Credentials::TwoFactor {
            username: "dave".into(),
            password: "dave-password".into(),
            totp: totp.clone(),
        },
        ..password("", "")
    };
    let tokens = s.client.login(&req).await.unwrap();
    assert_eq!(tokens.id_token.acr.as_deref(), Some(ACR_TWO_FACTOR));
    // The same code again (same virtual time): replay.
    let e = s.client.login(&req).await.unwrap_err();
    assert!(
        matches!(e, ClientError::LoginRefused { status: 401, .. }),
        "{e}"
    );
    // Wrong and stale codes.
    s.advance(30);
    let current = totp.code_at(s.now()).unwrap();
    let wrong = if current == "000000" {
        "000001".to_owned()
    } else {
        "000000".to_owned()
    };
    let stale = totp.code_at(s.now() - 90).unwrap();
    for code in [wrong, stale] {
        let r = post(
            &s,
            "/authorize",
            &format!(
                "{}&password=dave-password&otp={code}",
                authorize_form(ACR_TWO_FACTOR, "dave")
            ),
        )
        .await;
        assert_eq!(
            (r.status, error_of(&r).as_str()),
            (401, "access_denied"),
            "{code}"
        );
    }
    let r = post(
        &s,
        "/authorize",
        &format!(
            "{}&password=dave-password&otp={current}",
            authorize_form(ACR_TWO_FACTOR, "dave")
        ),
    )
    .await;
    let code = code_of(&r);
    assert_eq!(
        post(&s, "/token", &token_form(&code, Some(VERIFIER), REDIRECT))
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_success_wrong_res_sqn_replay_and_resync() {
    let s = start(&[]).await;
    let usim = Arc::new(Mutex::new(demo::demo_usim("erin")));
    let req = LoginRequest {
        credentials: Credentials::Sim {
            username: "erin".into(),
            usim: usim.clone(),
        },
        ..password("", "")
    };
    let before = s.handle.connections_accepted();
    let tokens = s.client.login(&req).await.unwrap();
    // Two authorize rounds (challenge, answer), token, discovery, JWKS: one connection.
    assert_eq!(s.handle.connections_accepted() - before, 1);
    assert_eq!(tokens.id_token.acr.as_deref(), Some(ACR_SIM));
    assert_eq!(tokens.id_token.mcptt_id, "sip:erin@example.com");

    // By hand: a challenge, a wrong RES, then the right RES for the spent challenge.
    let form = authorize_form(ACR_SIM, "erin");
    let r = post(&s, "/authorize", &form).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let ch: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let (id, rand, autn) = (
        ch["challenge_id"].as_str().unwrap(),
        ch["rand"].as_str().unwrap(),
        ch["autn"].as_str().unwrap(),
    );
    let (rand, autn) = (
        hex::decode_array::<16>(rand).unwrap(),
        hex::decode_array::<16>(autn).unwrap(),
    );
    let res = usim.lock().unwrap().respond(&rand, &autn).unwrap();
    let mut wrong = res;
    wrong[0] ^= 0xff;
    let r = post(
        &s,
        "/authorize",
        &format!("{form}&challenge_id={id}&res={}", hex::encode(&wrong)),
    )
    .await;
    assert_eq!((r.status, error_of(&r).as_str()), (401, "access_denied"));
    let r = post(
        &s,
        "/authorize",
        &format!("{form}&challenge_id={id}&res={}", hex::encode(&res)),
    )
    .await;
    assert_eq!(r.status, 401, "a spent challenge is not accepted again");
    // SQN replay: the SIM refuses the same AUTN a second time.
    assert!(matches!(
        usim.lock().unwrap().respond(&rand, &autn),
        Err(mcptt_idm::milenage::AkaFailure::Sync { .. })
    ));

    // A SIM far ahead of the IdMS: the client answers AUTS, the IdMS resynchronises.
    let ahead = Arc::new(Mutex::new(mcptt_idm::milenage::Usim::new(
        mcptt_idm::milenage::Milenage::new(demo::demo_sim_key("carol"), demo::DEMO_OPC),
        1_000_000,
    )));
    let req = LoginRequest {
        credentials: Credentials::Sim {
            username: "carol".into(),
            usim: ahead.clone(),
        },
        ..password("", "")
    };
    assert!(s.client.login(&req).await.is_ok());
    assert!(ahead.lock().unwrap().sqn_ms() > 1_000_000);
    // A SIM with another key refuses the IdMS's challenge (MAC failure).
    let stranger = Arc::new(Mutex::new(demo::demo_usim("alice")));
    let req = LoginRequest {
        credentials: Credentials::Sim {
            username: "carol".into(),
            usim: stranger,
        },
        ..password("", "")
    };
    assert!(matches!(
        s.client.login(&req).await,
        Err(ClientError::Sim(mcptt_idm::milenage::AkaFailure::Mac))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkce_rules_over_https() {
    let s = start(&[]).await;
    let login_form = format!(
        "{}&password=alice-password",
        authorize_form(ACR_PASSWORD, "alice")
    );
    // Missing and wrong verifier; code reuse after a failure; redirect mismatch.
    for (verifier, redirect) in [
        (None, REDIRECT),
        (Some("x".repeat(43)), REDIRECT),
        (Some(VERIFIER.to_owned()), "http://127.0.0.1:9/other"),
    ] {
        let code = code_of(&post(&s, "/authorize", &login_form).await);
        let r = post(
            &s,
            "/token",
            &token_form(&code, verifier.as_deref(), redirect),
        )
        .await;
        assert_eq!(
            (r.status, error_of(&r).as_str()),
            (400, "invalid_grant"),
            "{verifier:?} {redirect}"
        );
        assert_eq!(r.header("cache-control"), Some("no-store"));
        let r = post(&s, "/token", &token_form(&code, Some(VERIFIER), REDIRECT)).await;
        assert_eq!(
            (r.status, error_of(&r).as_str()),
            (400, "invalid_grant"),
            "code spent"
        );
    }
    // Code reuse after success.
    let code = code_of(&post(&s, "/authorize", &login_form).await);
    assert_eq!(
        post(&s, "/token", &token_form(&code, Some(VERIFIER), REDIRECT))
            .await
            .status,
        200
    );
    let r = post(&s, "/token", &token_form(&code, Some(VERIFIER), REDIRECT)).await;
    assert_eq!((r.status, error_of(&r).as_str()), (400, "invalid_grant"));
    // Plain method, no method, no challenge: redirected back with invalid_request.
    let plain = login_form.replace("code_challenge_method=S256", "code_challenge_method=plain");
    let no_method = login_form.replace("&code_challenge_method=S256", "");
    let no_challenge =
        login_form.replace(&format!("&code_challenge={}", s256_challenge(VERIFIER)), "");
    for form in [plain, no_method, no_challenge] {
        let r = post(&s, "/authorize", &form).await;
        assert_eq!(r.status, 303);
        let location = r.header("location").unwrap();
        assert!(
            location.starts_with(&format!("{REDIRECT}?error=invalid_request")),
            "{location}"
        );
        assert!(location.ends_with("&state=st"), "{location}");
    }
    // An unregistered redirect URI is never redirected to.
    let evil = login_form.replace(
        &percent_encode(REDIRECT),
        &percent_encode("https://evil.example/cb"),
    );
    let r = s
        .client
        .request("POST", "/authorize", Some(&evil), "text/html")
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert!(r.header("location").is_none());
    assert!(
        r.text().contains("redirect_uri is not registered"),
        "{}",
        r.text()
    );
    // Token endpoint errors: unknown client (401 + WWW-Authenticate), unsupported grant, not a form.
    let r = post(
        &s,
        "/token",
        "grant_type=authorization_code&client_id=nobody&code=x&redirect_uri=y&code_verifier=z",
    )
    .await;
    assert_eq!((r.status, error_of(&r).as_str()), (401, "invalid_client"));
    assert!(r.header("www-authenticate").is_some());
    let r = post(
        &s,
        "/token",
        &format!("grant_type=password&client_id={}", demo::DEMO_CLIENT_ID),
    )
    .await;
    assert_eq!(
        (r.status, error_of(&r).as_str()),
        (400, "unsupported_grant_type")
    );
    let r = s
        .client
        .request("POST", "/token", None, "application/json")
        .await
        .unwrap();
    assert_eq!((r.status, error_of(&r).as_str()), (400, "invalid_request"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_form_for_people() {
    let s = start(&[]).await;
    let query = authorize_form(ACR_TWO_FACTOR, "bob");
    let r = s
        .client
        .request(
            "GET",
            &format!("/authorize?{query}&login_hint=bob"),
            None,
            "text/html",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let page = r.text();
    for needle in [
        "<form method=\"post\" action=\"/authorize\"",
        "name=\"username\" value=\"bob\"",
        "name=\"password\"",
        "name=\"otp\"",
        "name=\"code_challenge\"",
        "id=\"submit\"",
    ] {
        assert!(page.contains(needle), "{needle} missing in {page}");
    }
    // A failed submission shows the form again with a message (HTML, 401).
    let r = s
        .client
        .request(
            "POST",
            "/authorize",
            Some(&format!("{query}&password=x&otp=1")),
            "text/html",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    assert!(r.text().contains("Sign-in failed."));
    // SIM login in the browser: the first submission shows RAND and AUTN and asks for RES.
    let sim = authorize_form(ACR_SIM, "erin");
    let r = s
        .client
        .request("POST", "/authorize", Some(&sim), "text/html")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let page = r.text();
    for needle in [
        "id=\"rand\"",
        "id=\"autn\"",
        "name=\"challenge_id\"",
        "name=\"res\"",
    ] {
        assert!(page.contains(needle), "{needle} missing in {page}");
    }
    // Markup in parameters is escaped.
    let q = query.replace("state=st", "state=%3Cscript%3E");
    let page = s
        .client
        .request("GET", &format!("/authorize?{q}"), None, "text/html")
        .await
        .unwrap()
        .text();
    assert!(page.contains("&lt;script&gt;") && !page.contains("<script>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_limits_hold() {
    let s = start(&[]).await;
    // A body over 16 KiB is refused before it is read into memory.
    let big = format!(
        "grant_type=refresh_token&client_id=x&refresh_token={}",
        "a".repeat(20 * 1024)
    );
    assert_eq!(post(&s, "/token", &big).await.status, 413);
    // More than 64 form fields.
    let many: Vec<String> = (0..100).map(|i| format!("f{i}=v")).collect();
    let r = post(&s, "/token", &many.join("&")).await;
    assert_eq!((r.status, error_of(&r).as_str()), (400, "invalid_request"));
    // A request head over 16 KiB is answered 431 by hyper, never reaching the IdMS core.
    let long_query = format!("/authorize?state={}", "s".repeat(20 * 1024));
    let r = s
        .client
        .request("GET", &long_query, None, "text/html")
        .await;
    assert_eq!(r.unwrap().status, 431);
    // The server still serves afterwards.
    assert!(s.client.discovery().await.is_ok());
}

/// Drives the login page with headless Chromium through WebDriver (chromedriver).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_page_in_headless_chromium() {
    let Some(chromium) = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        eprintln!(
            "SKIPPED login_page_in_headless_chromium: Chromium is not installed (Debian packages `chromium` and `chromium-driver`)"
        );
        return;
    };
    let driver_path = "/usr/bin/chromedriver";
    assert!(
        std::path::Path::new(driver_path).exists(),
        "Chromium is installed but {driver_path} is missing: install the Debian package `chromium-driver`"
    );
    // The client's redirect target: a plain HTTP server on loopback recording the query.
    let callback = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cb_addr = callback.local_addr().unwrap();
    let redirect = format!("http://{cb_addr}/cb");
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    tokio::spawn(serve_callback(callback, tx));
    let s = start(std::slice::from_ref(&redirect)).await;

    let driver = ChromeDriver::start(driver_path).await;
    let wd = WebDriver::new(driver.addr, chromium).await;
    let query = authorize_form(ACR_PASSWORD, "")
        .replace(&percent_encode(REDIRECT), &percent_encode(&redirect));
    wd.navigate(&format!("{}/authorize?{query}", s.handle.base_url()))
        .await;
    assert_eq!(wd.text("#acr").await, ACR_PASSWORD);
    // Wrong password first: the page says so.
    wd.type_into("#username", "alice").await;
    wd.type_into("#password", "not-her-password").await;
    wd.click("#submit").await;
    assert_eq!(wd.text("#error").await, "Sign-in failed.");
    // The username is kept; the right password gets the browser redirected with a code.
    wd.type_into("#password", "alice-password").await;
    wd.click("#submit").await;
    let query = tokio::time::timeout(Duration::from_secs(20), rx)
        .await
        .expect("browser never reached the redirect URI")
        .unwrap();
    let q = parse_form(&query, 8).unwrap();
    assert_eq!(q[1], ("state".into(), "st".into()));
    let url = wd.current_url().await;
    assert!(url.starts_with(&format!("{redirect}?code=")), "{url}");
    wd.quit().await;
    // The code works exactly like one obtained by a program.
    let r = post(
        &s,
        "/token",
        &token_form(&q[0].1, Some(VERIFIER), &redirect),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let tokens: mcptt_idm::TokenResponse = serde_json::from_slice(&r.body).unwrap();
    let at = validator(&s, "mcptt-server")
        .await
        .validate_access_token(&tokens.access_token, s.now())
        .unwrap();
    assert_eq!(at.mcptt_id, "sip:alice@example.com");
    drop(driver);
}

async fn serve_callback(
    listener: tokio::net::TcpListener,
    tx: tokio::sync::oneshot::Sender<String>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tx = Some(tx);
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        let mut buf = vec![0u8; 8192];
        let mut n = 0;
        while n < buf.len() {
            let Ok(m) = sock.read(&mut buf[n..]).await else {
                break;
            };
            if m == 0 {
                break;
            }
            n += m;
            if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        let head = String::from_utf8_lossy(&buf[..n]).into_owned();
        let target = head.split_whitespace().nth(1).unwrap_or("").to_owned();
        let _ = sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
        if let Some(query) = target.strip_prefix("/cb?")
            && let Some(tx) = tx.take()
        {
            let _ = tx.send(query.to_owned());
        }
    }
}

/// A chromedriver process, killed on drop.
struct ChromeDriver {
    child: std::process::Child,
    addr: SocketAddr,
}

impl ChromeDriver {
    async fn start(path: &str) -> Self {
        use std::io::BufRead as _;
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut child = std::process::Command::new(path)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        // Wait for its "started successfully" line rather than sleeping.
        let ready = tokio::task::spawn_blocking(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            lines.any(|l| l.is_ok_and(|l| l.contains("started successfully")))
        });
        assert!(
            tokio::time::timeout(Duration::from_secs(20), ready)
                .await
                .unwrap()
                .unwrap(),
            "chromedriver did not start"
        );
        Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The few WebDriver (W3C) commands the test needs, over plain HTTP/1.1 to chromedriver.
struct WebDriver {
    addr: SocketAddr,
    session: String,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl WebDriver {
    async fn call(
        addr: SocketAddr,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        use http_body_util::BodyExt as _;
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", addr.to_string())
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(60), sender.send_request(req))
            .await
            .unwrap()
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert!(
            status.is_success(),
            "WebDriver {method} {path}: {status} {v}"
        );
        v["value"].clone()
    }

    async fn new(addr: SocketAddr, chromium: &str) -> Self {
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            // Element lookups wait (up to 10 s) for the page a click loads, instead of
            // failing on the page before it.
            "timeouts": {"implicit": 10000},
            "goog:chromeOptions": {"binary": chromium, "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]}
        }}});
        let v = Self::call(addr, "POST", "/session", Some(caps)).await;
        Self {
            addr,
            session: v["sessionId"].as_str().unwrap().to_owned(),
        }
    }

    async fn cmd(
        &self,
        method: &str,
        rest: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        Self::call(
            self.addr,
            method,
            &format!("/session/{}{rest}", self.session),
            body,
        )
        .await
    }

    async fn navigate(&self, url: &str) {
        self.cmd("POST", "/url", Some(serde_json::json!({ "url": url })))
            .await;
    }

    async fn current_url(&self) -> String {
        self.cmd("GET", "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .cmd(
                "POST",
                "/element",
                Some(serde_json::json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT].as_str().unwrap().to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.cmd(
            "POST",
            &format!("/element/{e}/clear"),
            Some(serde_json::json!({})),
        )
        .await;
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            Some(serde_json::json!({ "text": text })),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.cmd(
            "POST",
            &format!("/element/{e}/click"),
            Some(serde_json::json!({})),
        )
        .await;
    }

    async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.cmd("GET", &format!("/element/{e}/text"), None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn quit(&self) {
        Self::call(
            self.addr,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        )
        .await;
    }
}
