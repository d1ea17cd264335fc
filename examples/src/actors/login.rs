//! Step 1: the user authenticates at the IdMS and the UE obtains its tokens, through the
//! UE-side IdM client (authorization code + PKCE S256) of [`crate::idm::client`]; and the
//! in-process IdMS `flow` starts ([`crate::idm::server`] over `mcptt-idm`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use mcptt_idm::directory::SimCredentials;
use mcptt_idm::milenage::Milenage;
use mcptt_idm::password::PasswordHash;
use mcptt_idm::{Idms, IdmsConfig, KeyRing, McpttId, SystemRandom, TOKEN_PATH, User};
use mcptt_token::{Algorithm, SigningKey};

use super::ActorError;
use super::clock::Clock;
use super::config::{LoginMethod, TokenKeys, UeConfig};
use crate::idm::client::{Credentials, IdmClient, LoginRequest};
use crate::idm::{demo, server};
use crate::pki::DemoPki;
use crate::steps::{LOGIN, StepFailure};
use crate::trace::{Actor, Observation, Trace};

/// Scopes the UE asks for.
pub const SCOPE: &str = "openid 3gpp:mcptt:ptt_server";
/// PBKDF2 iterations of the users `flow` creates (kept low: the demo hashes hundreds).
pub const FLOW_ITERATIONS: u32 = 1_000;

/// What the UE holds after step 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    /// The access token (JWS compact JWT, `typ` `at+jwt`).
    pub access_token: String,
    /// The ID token.
    pub id_token: Option<String>,
    /// The refresh token.
    pub refresh_token: Option<String>,
    /// Lifetime of the access token, seconds.
    pub expires_in: Option<u64>,
}

fn fail(reason: impl std::fmt::Display) -> StepFailure {
    StepFailure {
        step: 1,
        reason: reason.to_string(),
    }
}

fn wall_clock(clock: &Clock) -> server::Clock {
    let clock = clock.clone();
    Arc::new(move || SystemTime::now() + clock.offset())
}

fn client(
    idms: &str,
    roots: &[rustls_pki_types::CertificateDer<'static>],
    clock: &Clock,
) -> Result<IdmClient, StepFailure> {
    Ok(IdmClient::new(idms, roots)
        .map_err(fail)?
        .with_clock(wall_clock(clock)))
}

fn short(token: &str) -> String {
    let head: String = token.chars().take(16).collect();
    format!("{head}… ({} bytes)", token.len())
}

/// Step 1: logs the user in at the IdMS (authorization code + PKCE S256, with the configured
/// method) and records the token response as the UE received it.
pub async fn login(config: &UeConfig, trace: &Trace, clock: &Clock) -> Result<Tokens, StepFailure> {
    let c = client(&config.idms, &config.idms_roots, clock)?;
    let credentials = match config.method {
        LoginMethod::Password => Credentials::Password {
            username: config.user.clone(),
            password: config.password.clone(),
        },
        LoginMethod::TwoFactor => Credentials::TwoFactor {
            username: config.user.clone(),
            password: config.password.clone(),
            totp: demo::demo_totp(),
        },
        LoginMethod::Sim => Credentials::Sim {
            username: config.user.clone(),
            usim: Arc::new(Mutex::new(demo::demo_usim(&config.user))),
        },
    };
    let acr = credentials.acr();
    let request = LoginRequest {
        client_id: config.client_id.clone(),
        redirect_uri: demo::DEMO_REDIRECT_URI.into(),
        scope: SCOPE.into(),
        credentials,
    };
    let tokens = tokio::time::timeout(config.timeout, c.login(&request))
        .await
        .map_err(|_| fail("IdMS login timed out"))?
        .map_err(|e| fail(format!("IdMS login failed: {e}")))?;
    let r = &tokens.response;
    trace.record(
        Actor::Ue,
        Observation {
            from: Some(Actor::Idms),
            ue: config.label.clone(),
            method: LOGIN.into(),
            first_line: format!(
                "POST {TOKEN_PATH} (authorization_code, PKCE S256) -> 200: access, ID and refresh tokens"
            ),
            headers: vec![
                ("acr_values".into(), acr.into()),
                ("scope".into(), r.scope.clone()),
                ("expires_in".into(), r.expires_in.to_string()),
                ("mcptt_id".into(), tokens.id_token.mcptt_id.clone()),
                ("access_token".into(), short(&r.access_token)),
            ],
            body: r.to_json(),
            full: r.to_json(),
            ..Observation::default()
        },
    );
    Ok(Tokens {
        access_token: r.access_token.clone(),
        id_token: r.id_token.clone(),
        refresh_token: Some(r.refresh_token.clone()),
        expires_in: Some(r.expires_in),
    })
}

/// Step 1 again: a `refresh_token` grant for fresh tokens.
pub async fn refresh(
    config: &UeConfig,
    tokens: &Tokens,
    trace: &Trace,
    clock: &Clock,
) -> Result<Tokens, StepFailure> {
    let c = client(&config.idms, &config.idms_roots, clock)?;
    let refresh_token = tokens
        .refresh_token
        .as_deref()
        .ok_or_else(|| fail("no refresh token"))?;
    let r = tokio::time::timeout(config.timeout, c.refresh(&config.client_id, refresh_token))
        .await
        .map_err(|_| fail("token refresh timed out"))?
        .map_err(|e| fail(format!("token refresh failed: {e}")))?;
    trace.record(
        Actor::Ue,
        Observation {
            from: Some(Actor::Idms),
            ue: config.label.clone(),
            method: LOGIN.into(),
            first_line: format!("POST {TOKEN_PATH} (refresh_token) -> 200: fresh access token"),
            headers: vec![
                ("scope".into(), r.scope.clone()),
                ("expires_in".into(), r.expires_in.to_string()),
                ("access_token".into(), short(&r.access_token)),
            ],
            body: r.to_json(),
            full: r.to_json(),
            ..Observation::default()
        },
    );
    Ok(Tokens {
        access_token: r.access_token.clone(),
        id_token: r.id_token.clone(),
        refresh_token: Some(r.refresh_token.clone()),
        expires_in: Some(r.expires_in),
    })
}

/// Fetches the IdMS discovery document (for its `issuer`, unless given) and JWKS over HTTPS,
/// as the MCPTT server trusts them.
pub async fn fetch_keys(
    idms: &str,
    issuer: Option<&str>,
    roots: &[rustls_pki_types::CertificateDer<'static>],
    clock: &Clock,
) -> Result<TokenKeys, ActorError> {
    let err = |what: &str, e: &dyn std::fmt::Display| {
        ActorError::Config(format!("{what} from the IdMS at {idms}: {e}"))
    };
    let c = IdmClient::new(idms, roots)
        .map_err(|e| err("client", &e))?
        .with_clock(wall_clock(clock));
    let issuer = match issuer {
        Some(i) => i.to_owned(),
        None => c
            .discovery()
            .await
            .map_err(|e| err("discovery document", &e))?
            .get("issuer")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or_else(|| ActorError::Config("IdMS discovery document has no issuer".into()))?,
    };
    let jwks_json = c.jwks().await.map_err(|e| err("JWKS", &e))?;
    Ok(TokenKeys { issuer, jwks_json })
}

/// An IdMS started in-process by `flow`.
#[derive(Debug)]
pub struct IdmsRunning {
    /// Its base URL.
    pub base_url: String,
    /// The issuer and JWKS the MCPTT server trusts (fetched over HTTPS like a real server).
    pub keys: TokenKeys,
    handle: server::IdmsHandle,
}

impl IdmsRunning {
    /// How many TCP (TLS) connections it has accepted so far.
    #[must_use]
    pub fn connections_accepted(&self) -> u64 {
        self.handle.connections_accepted()
    }

    /// Stops it.
    pub fn shutdown(self) {
        self.handle.shutdown();
    }
}

/// Starts the IdMS in-process on a loopback port with the demo users plus `users` (password
/// `NAME-password`), its HTTPS certificate issued by `pki`, access tokens for `audience` living
/// `lifetime`, on `clock`, on `runtime` (the caller's when `None`); then fetches its keys over
/// HTTPS.
pub async fn start_idms(
    pki: &DemoPki,
    users: &[String],
    audience: &str,
    lifetime: Duration,
    clock: &Clock,
    runtime: Option<&tokio::runtime::Handle>,
) -> Result<IdmsRunning, ActorError> {
    let cfg = |e: &dyn std::fmt::Display| ActorError::Config(format!("IdMS: {e}"));
    let rng = SystemRandom::new();
    let mut directory = demo::demo_directory(FLOW_ITERATIONS, &[], &rng).map_err(|e| cfg(&e))?;
    for name in users {
        if directory.user(name).is_some() {
            continue;
        }
        let mut u = User::new(McpttId::parse(&demo::demo_mcptt_id(name)).map_err(|e| cfg(&e))?);
        u.login = Some(name.clone());
        u.password = Some(
            PasswordHash::generate(&format!("{name}-password"), FLOW_ITERATIONS, &rng)
                .map_err(|e| cfg(&e))?,
        );
        // Every login method works for every user, as for the demo users.
        u.totp = Some(demo::demo_totp());
        u.sim = Some(SimCredentials {
            milenage: Milenage::new(demo::demo_sim_key(name), demo::DEMO_OPC),
            amf: [0x80, 0x00],
            sqn: 0,
        });
        directory.insert(u);
    }
    let io = |source| ActorError::Io {
        what: "IdMS listener".into(),
        source,
    };
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(io)?;
    listener.set_nonblocking(true).map_err(io)?;
    let addr = listener.local_addr().map_err(io)?;
    let base_url = format!("https://{addr}");
    let key = SigningKey::generate(
        Algorithm::Es256,
        "flow-es256",
        &ring::rand::SystemRandom::new(),
    )
    .map_err(|e| cfg(&e))?;
    let mut config = IdmsConfig::new(base_url.clone());
    config.audience = vec![audience.to_owned()];
    // Every flow UE signs in from 127.0.0.1, and logins in flight count against the
    // per-source limit: allow one per user at once from this one address.
    config.throttle.max_source_failures = config
        .throttle
        .max_source_failures
        .max(u32::try_from(directory.users().count() + 1).unwrap_or(u32::MAX));
    config.access_lifetime = lifetime;
    let idms = Idms::new(config, directory, KeyRing::new(key)).map_err(|e| cfg(&e))?;
    let cert = pki.issue_server("sip:idms.example.com")?;
    let tls = server::tls_config(cert.chain(), cert.key()).map_err(|e| cfg(&e))?;
    let handle = {
        // On `runtime` when given: the listener, the server's tasks and its blocking threads.
        let _enter = runtime.map(tokio::runtime::Handle::enter);
        let listener = tokio::net::TcpListener::from_std(listener).map_err(io)?;
        server::spawn(listener, tls, idms, wall_clock(clock), 4096).map_err(|e| cfg(&e))?
    };
    let keys = fetch_keys(&base_url, None, &[pki.ca_cert()], clock).await?;
    Ok(IdmsRunning {
        base_url,
        keys,
        handle,
    })
}
