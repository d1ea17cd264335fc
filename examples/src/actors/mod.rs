//! The actor tasks. `flow` starts them in one process on loopback ports; the separate
//! binaries (`sip-core`, `mcptt-server`, `ue`) run the same code.

pub mod clock;
pub mod config;
pub mod login;
pub mod mcptt_server;
pub mod net;
pub mod sip_core;
mod store_io;
pub mod ue;
pub mod wire;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use mcptt_service_state::client::PublisherEvent;

use self::clock::Clock;
use self::config::{LoginMethod, McpttServerConfig, SipCoreConfig, Transport, UeConfig};
use self::login::Tokens;
use self::ue::{Ue, UserSession};
use crate::cli::TlsMaterial;
use crate::demo::{FlowConfig, SignInResult};
use crate::pki::DemoPki;
use crate::scenario::{Scenario, SignIn};
use crate::steps::StepFailure;
use crate::trace::Trace;
use mcptt_service_state::UeKind;

/// Node URI of the demo SIP core.
pub const SIP_CORE_URI: &str = "sip:scscf.example.com";
/// Node URI of the demo MCPTT server.
pub const MCPTT_SERVER_URI: &str = "sip:mcptt.example.com";
/// Public service identity of the demo MCPTT server.
pub const PSI: &str = "sip:mcptt-server@example.com";
/// Audience of the access tokens (the `idms` binary's default too).
pub const AUDIENCE: &str = "mcptt-server";
/// OAuth client id of the demo MCPTT client.
pub const CLIENT_ID: &str = "mcptt-client";

/// The servers of a `flow` run (IdMS, SIP core, MCPTT server) and what UEs need to reach them.
#[derive(Debug)]
pub struct Servers {
    /// The demo CA.
    pub pki: DemoPki,
    /// The shared clock (advanced by the `expiry` scenario).
    pub clock: Clock,
    /// The IdMS, or why it could not start (steps 1 and 8–9 then fail, named).
    pub idms: Result<login::IdmsRunning, StepFailure>,
    /// The SIP core (the first instance).
    pub sip_core: sip_core::SipCoreHandle,
    /// The MCPTT server (the first instance).
    pub mcptt: mcptt_server::McpttServerHandle,
    /// Further SIP core instances ([`FlowConfig::instances`] > 1), sharing
    /// [`FlowConfig::store`] with the first.
    pub more_sip_cores: Vec<sip_core::SipCoreHandle>,
    /// Further MCPTT server instances ([`FlowConfig::instances`] > 1), sharing
    /// [`FlowConfig::store`] with the first.
    pub more_mcptt: Vec<mcptt_server::McpttServerHandle>,
}

impl Servers {
    /// Every SIP core instance, the first first.
    #[must_use]
    pub fn sip_cores(&self) -> Vec<&sip_core::SipCoreHandle> {
        std::iter::once(&self.sip_core)
            .chain(&self.more_sip_cores)
            .collect()
    }

    /// Every MCPTT server instance, the first first.
    #[must_use]
    pub fn mcptt_servers(&self) -> Vec<&mcptt_server::McpttServerHandle> {
        std::iter::once(&self.mcptt)
            .chain(&self.more_mcptt)
            .collect()
    }

    /// The address of SIP core instance `n` (modulo the number of instances).
    #[must_use]
    pub fn sip_core_addr(&self, n: usize) -> SocketAddr {
        let cores = self.sip_cores();
        cores
            .get(n % cores.len())
            .map_or_else(|| self.sip_core.local_addr(), |c| c.local_addr())
    }

    /// The SIP core the `step`-th request phase of UE `ue` (its label) goes through: with
    /// several instances, UEs start on different ones (by label) and move on to the next
    /// instance at each later phase, so the instances are mixed.
    #[must_use]
    pub fn sip_core_for(&self, ue: &str, step: usize) -> SocketAddr {
        let start = ue
            .bytes()
            .fold(0usize, |h, b| h.wrapping_add(usize::from(b)));
        self.sip_core_addr(start.wrapping_add(step))
    }

    /// Stops every server task.
    pub async fn shutdown(self) {
        self.sip_core.shutdown().await;
        for c in self.more_sip_cores {
            c.shutdown().await;
        }
        self.mcptt.shutdown().await;
        for m in self.more_mcptt {
            m.shutdown().await;
        }
        if let Ok(idms) = self.idms {
            idms.shutdown();
        }
    }
}

fn setup_err(step: u8, e: impl std::fmt::Display) -> StepFailure {
    StepFailure {
        step,
        reason: e.to_string(),
    }
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Starts IdMS, MCPTT server and SIP core on loopback ports ([`FlowConfig::instances`] of
/// each, sharing [`FlowConfig::store`]; SIP core `k` lists the MCPTT servers starting with
/// server `k`, so the instances are mixed).
///
/// A missing IdMS does not stop the run: the SIP core and the MCPTT server still start, so
/// steps 2–6 run and the report names step 1 as failed.
pub async fn start_servers(
    config: &FlowConfig,
    sign_ins: &[SignIn],
    trace: &Trace,
) -> Result<Servers, StepFailure> {
    let clock = Clock::new();
    let pki = DemoPki::generate().map_err(|e| setup_err(2, e))?;
    let users: Vec<String> = sign_ins.iter().map(|s| s.user.clone()).collect();
    let idms = login::start_idms(
        &pki,
        &users,
        AUDIENCE,
        config.token_lifetime,
        &clock,
        config.idms_runtime.as_ref(),
    )
    .await
    .map_err(|e| setup_err(e.step().max(1), e));
    let server_tls = |uri: &str| -> Result<TlsMaterial, StepFailure> {
        Ok(TlsMaterial {
            identity: pki.issue_server(uri).map_err(|e| setup_err(2, e))?,
            roots: vec![pki.ca_cert()],
        })
    };
    let mut directory: Vec<(String, UeKind)> = Vec::new();
    for s in sign_ins {
        if s.kind != UeKind::Personal
            && !directory.iter().any(|(i, _)| *i == s.public_user_identity)
        {
            directory.push((s.public_user_identity.clone(), s.kind));
        }
    }
    let instances = config.instances.max(1);
    // The `expiry` scenario moves the shared clock past the token expiry in one jump. To a
    // shared store, a jump longer than the dialog lease looks like a stalled holder: another
    // instance would take the live holder's dialogs over while the holder still NOTIFYs
    // (two NOTIFYs of one state). The lease outlasts the jump there.
    let jump = config.token_lifetime + Duration::from_secs(config.leeway + 1);
    let dialog_lease = if config.scenario == Scenario::Expiry && config.load.is_none() {
        config::DEFAULT_DIALOG_LEASE.max(jump + Duration::from_secs(60))
    } else {
        config::DEFAULT_DIALOG_LEASE
    };
    let mut mcptts = Vec::with_capacity(instances);
    for _ in 0..instances {
        let m = mcptt_server::spawn(
            McpttServerConfig {
                listen: loopback(),
                transport: Transport::Tls,
                tls: server_tls(MCPTT_SERVER_URI)?,
                node_uri: MCPTT_SERVER_URI.into(),
                psi: PSI.into(),
                keys: idms.as_ref().ok().map(|i| i.keys.clone()),
                leeway: config.leeway,
                audience: AUDIENCE.into(),
                scopes: vec![
                    mcptt_token::SCOPE_PTT_SERVER.into(),
                    mcptt_token::SCOPE_PTT_SERVICE.into(),
                ],
                ue_directory: directory.clone(),
                subscription_expires: 3600,
                trusted_cores: vec![SIP_CORE_URI.into()],
                store: config.store.clone(),
                dialog_lease,
            },
            trace.clone(),
            clock.clone(),
        )
        .await
        .map_err(|e| setup_err(5, e))?;
        mcptts.push(m);
    }
    let addrs: Vec<SocketAddr> = mcptts.iter().map(|m| m.local_addr()).collect();
    let identities: Vec<(String, Vec<String>)> = sign_ins
        .iter()
        .map(|s| {
            (
                s.public_user_identity.clone(),
                vec![s.public_user_identity.clone()],
            )
        })
        .collect();
    let mut cores = Vec::with_capacity(instances);
    for k in 0..instances {
        let mut mcptt_servers = addrs.clone();
        mcptt_servers.rotate_left(k % addrs.len().max(1));
        let core = sip_core::spawn(
            SipCoreConfig {
                listen: loopback(),
                tls: server_tls(SIP_CORE_URI)?,
                mcptt_servers,
                mcptt_transport: Transport::Tls,
                mcptt_timeout: config::DEFAULT_MCPTT_TIMEOUT,
                mcptt_hold_down: config::DEFAULT_MCPTT_HOLD_DOWN,
                node_uri: SIP_CORE_URI.into(),
                application_server: MCPTT_SERVER_URI.into(),
                psi: PSI.into(),
                identities: identities.clone(),
                max_expires: 3600,
                max_connections_per_ip: sign_ins.len().max(256),
                store: config.store.clone(),
            },
            trace.clone(),
            clock.clone(),
        )
        .await
        .map_err(|e| setup_err(2, e))?;
        cores.push(core);
    }
    let mut cores = cores.into_iter();
    let mut mcptts = mcptts.into_iter();
    let (Some(sip_core), Some(mcptt)) = (cores.next(), mcptts.next()) else {
        return Err(setup_err(2, "no server instance started"));
    };
    Ok(Servers {
        pki,
        clock,
        idms,
        sip_core,
        mcptt,
        more_sip_cores: cores.collect(),
        more_mcptt: mcptts.collect(),
    })
}

/// The UE configuration of a sign-in: a client certificate for its public user identity from
/// the demo CA, and the servers' addresses.
pub fn ue_config(
    config: &FlowConfig,
    servers: &Servers,
    s: &SignIn,
) -> Result<UeConfig, StepFailure> {
    let identity = servers
        .pki
        .issue_ue(&s.public_user_identity)
        .map_err(|e| setup_err(2, e))?;
    Ok(UeConfig {
        label: s.label.clone(),
        ue_label: s.ue.clone(),
        idms: servers
            .idms
            .as_ref()
            .map_or_else(|_| String::new(), |i| i.base_url.clone()),
        idms_roots: vec![servers.pki.ca_cert()],
        client_id: CLIENT_ID.into(),
        user: s.user.clone(),
        password: format!("{}-password", s.user),
        method: if config.load.is_some() {
            config.login
        } else {
            LoginMethod::Password
        },
        // With several SIP core instances, UEs are spread over them by their label.
        sip_core: servers.sip_core_for(&s.ue, 0),
        tls: TlsMaterial {
            identity,
            roots: vec![servers.pki.ca_cert()],
        },
        public_user_identity: s.public_user_identity.clone(),
        psi: PSI.into(),
        register_expires: config.register_expires,
        publish_expires: 600,
        subscribe_expires: 600,
        timeout: config.step_timeout,
    })
}

fn fail(step: u8, reason: impl Into<String>) -> StepFailure {
    StepFailure {
        step,
        reason: reason.into(),
    }
}

/// Step 1, or the IdMS's own failure when it could not start.
async fn do_login(
    servers_idms: Option<&StepFailure>,
    cfg: &UeConfig,
    trace: &Trace,
    clock: &Clock,
) -> Result<Tokens, StepFailure> {
    match servers_idms {
        Some(e) => Err(e.clone()),
        None => login::login(cfg, trace, clock).await,
    }
}

/// Checks the states a session saw against the sign-in's expectations.
fn check_states(s: &SignIn, session: Option<&UserSession>) -> Result<(), StepFailure> {
    let Some(last) = session.and_then(UserSession::last_state) else {
        return Err(fail(16, "no service state was NOTIFYed"));
    };
    let state = ue::combined(last.state);
    let auth = last.authorisation.as_str();
    if state != s.final_state || auth != s.final_authorisation {
        return Err(fail(
            16,
            format!(
                "final service state {state} ({auth}), expected {} ({})",
                s.final_state, s.final_authorisation
            ),
        ));
    }
    if let Some(want) = s.must_see {
        let seen =
            session.is_some_and(|u| u.states.iter().any(|st| st.authorisation.as_str() == want));
        if !seen {
            return Err(fail(15, format!("no NOTIFY showed `{want}`")));
        }
    }
    Ok(())
}

/// One UE, one user, steps 1–18 (basic, multi-device, `--ues N`).
async fn independent(
    cfg: UeConfig,
    s: SignIn,
    idms_err: Option<StepFailure>,
    trace: Trace,
    clock: Clock,
) -> (Option<Duration>, Result<(), StepFailure>) {
    let start = Instant::now();
    let login = do_login(idms_err.as_ref(), &cfg, &trace, &clock).await;
    let mut ue = match Ue::connect(cfg, trace.clone(), clock).await {
        Ok(ue) => ue,
        Err(e) => return (None, Err(login.err().unwrap_or(e))),
    };
    let result = async {
        ue.register().await?;
        let tokens = login?;
        let idx = ue.publish(&s.label, tokens).await?;
        expect_published(&ue, idx)?;
        ue.subscribe(idx).await?;
        let latency = start.elapsed();
        check_states(&s, ue.users().get(idx))?;
        // Step 18 (the SIP core relaying this answer to the MCPTT server) is waited for by
        // `run_ues` once all UEs are done: closing now cannot lose it (the SIP core reads the
        // answer before the end of the connection), and a wait per UE here cost the servers'
        // thread a cross-thread wake-up per UE.
        Ok(latency)
    }
    .await;
    ue.close().await;
    match result {
        Ok(latency) => (Some(latency), Ok(())),
        Err(e) => (None, Err(e)),
    }
}

/// Waits (bounded) until the SIP core relayed the UE's answer to the last NOTIFY to the
/// MCPTT server (step 18), so the run's record is complete before the servers stop.
async fn settle(trace: &Trace, label: &str, timeout: Duration) {
    let _ = trace.wait_label_step(label, 18, timeout).await;
}

/// Waits (bounded by one `timeout` for all) until every sign-in that succeeded and expects
/// step 18 has it: the UEs of [`independent`] stop after their answer to the first NOTIFY
/// (step 17), and the SIP core relays that answer to the MCPTT server on its own time. By
/// then most have it (no wait, no wake-up of this task by the servers' thread).
async fn settle_all(
    results: &[SignInResult],
    sign_ins: &[SignIn],
    trace: &Trace,
    timeout: Duration,
) {
    let limit = tokio::time::Instant::now() + timeout;
    for (r, s) in results.iter().zip(sign_ins) {
        if r.outcome.is_ok() && s.steps.contains(&18) {
            let left = limit.saturating_duration_since(tokio::time::Instant::now());
            let _ = trace.wait_label_step(&s.label, 18, left).await;
        }
    }
}

fn expect_published(ue: &Ue, idx: usize) -> Result<(), StepFailure> {
    match ue.users().get(idx).and_then(|u| u.last_publish.clone()) {
        Some(PublisherEvent::Published { .. }) => Ok(()),
        Some(PublisherEvent::Rejected { status, warning }) => Err(fail(
            9,
            format!(
                "PUBLISH refused with {status}{}",
                warning
                    .map(|w| format!(", Warning: {w}"))
                    .unwrap_or_default()
            ),
        )),
        other => Err(fail(10, format!("unexpected PUBLISH outcome {other:?}"))),
    }
}

/// Several users on one UE (shareable, gateway): the first runs steps 1–18, the next ones
/// log in and publish on the registered UE.
async fn shared(
    config: &FlowConfig,
    servers: &Servers,
    sign_ins: &[SignIn],
    trace: &Trace,
) -> Vec<SignInResult> {
    let idms_err = servers.idms.as_ref().err().cloned();
    let mut results: Vec<SignInResult> = sign_ins
        .iter()
        .map(|s| SignInResult {
            label: s.label.clone(),
            final_state: None,
            latency: None,
            outcome: Ok(()),
        })
        .collect();
    let fail_all = |results: &mut Vec<SignInResult>, e: StepFailure| {
        for r in results.iter_mut() {
            if r.outcome.is_ok() {
                r.outcome = Err(e.clone());
            }
        }
    };
    let Some(first) = sign_ins.first() else {
        return results;
    };
    let cfg = match ue_config(config, servers, first) {
        Ok(c) => c,
        Err(e) => {
            fail_all(&mut results, e);
            return results;
        }
    };
    let mut logins = Vec::new();
    let first_login = do_login(idms_err.as_ref(), &cfg, trace, &servers.clock).await;
    let mut ue = match Ue::connect(cfg.clone(), trace.clone(), servers.clock.clone()).await {
        Ok(ue) => ue,
        Err(e) => {
            fail_all(&mut results, first_login.err().unwrap_or(e));
            return results;
        }
    };
    if let Err(e) = ue.register().await {
        fail_all(&mut results, first_login.err().unwrap_or(e));
        ue.close().await;
        return results;
    }
    logins.push(first_login);
    let mut sessions: Vec<Option<usize>> = Vec::new();
    for (i, s) in sign_ins.iter().enumerate() {
        let start = Instant::now();
        let login = if i == 0 {
            logins.pop().unwrap_or_else(|| Err(fail(1, "no login")))
        } else {
            let mut c = cfg.clone();
            c.label.clone_from(&s.label);
            c.user.clone_from(&s.user);
            c.password = format!("{}-password", s.user);
            do_login(idms_err.as_ref(), &c, trace, &servers.clock).await
        };
        let step = async {
            if i > 0 {
                // With several SIP core instances, each user signs in through the next one.
                ue.use_core(servers.sip_core_for(&first.ue, i)).await?;
            }
            let idx = ue.publish(&s.label, login?).await?;
            expect_published(&ue, idx)?;
            ue.subscribe(idx).await?;
            Ok::<usize, StepFailure>(idx)
        }
        .await;
        match step {
            Ok(idx) => {
                if let Some(r) = results.get_mut(i) {
                    r.latency = Some(start.elapsed());
                }
                sessions.push(Some(idx));
            }
            Err(e) => {
                if let Some(r) = results.get_mut(i) {
                    r.outcome = Err(e);
                }
                sessions.push(None);
            }
        }
        // A takeover must reach the replaced user: wait for its NOTIFY.
        if i > 0 && s.kind == UeKind::Shareable {
            for (j, prev) in sign_ins.iter().enumerate().take(i) {
                if prev.final_authorisation == "replaced"
                    && let Some(Some(pidx)) = sessions.get(j)
                {
                    let seen = ue.users().get(*pidx).map_or(0, |u| u.states.len());
                    let _ = ue.wait_states(*pidx, seen.max(2)).await;
                }
            }
        }
    }
    for (i, s) in sign_ins.iter().enumerate() {
        let session = sessions
            .get(i)
            .copied()
            .flatten()
            .and_then(|idx| ue.users().get(idx));
        if let Some(r) = results.get_mut(i)
            && r.outcome.is_ok()
        {
            r.outcome = check_states(s, session);
        }
    }
    for s in sign_ins {
        settle(trace, &s.label, config.step_timeout).await;
    }
    ue.close().await;
    results
}

/// A tampered access token: the last signature character changed (still valid base64url).
fn tamper(token: &str) -> String {
    let mut t = token.to_owned();
    if let Some(last) = t.pop() {
        t.push(if last == 'A' { 'B' } else { 'A' });
    }
    t
}

/// `bad-token`: PUBLISH with a tampered token → 403 + Warning 101 at steps 9–10; the
/// SUBSCRIBE is refused the same way (steps 13–14) and the UE stays registered only.
async fn bad_token(
    config: &FlowConfig,
    servers: &Servers,
    s: &SignIn,
    trace: &Trace,
) -> SignInResult {
    let mut result = SignInResult {
        label: s.label.clone(),
        final_state: None,
        latency: None,
        outcome: Ok(()),
    };
    let outcome = async {
        let cfg = ue_config(config, servers, s)?;
        let idms_err = servers.idms.as_ref().err().cloned();
        let login = do_login(idms_err.as_ref(), &cfg, trace, &servers.clock).await;
        let mut ue = Ue::connect(cfg, trace.clone(), servers.clock.clone()).await?;
        ue.register().await?;
        let mut tokens = login?;
        tokens.access_token = tamper(&tokens.access_token);
        let idx = ue.publish(&s.label, tokens).await?;
        match ue.users().get(idx).and_then(|u| u.last_publish.clone()) {
            Some(PublisherEvent::Rejected {
                status: 403,
                warning: Some(w),
            }) if w.contains("101") => {}
            other => {
                return Err(fail(
                    9,
                    format!("expected 403 with Warning 101, got {other:?}"),
                ));
            }
        }
        match ue.subscribe(idx).await {
            Err(e) if e.step == 14 => {}
            Err(e) => return Err(e),
            Ok(()) => return Err(fail(13, "SUBSCRIBE with a refused token was accepted")),
        }
        if !ue.is_registered() {
            return Err(fail(4, "the UE lost its registration"));
        }
        let _ = trace
            .wait_label_step(&s.label, 14, config.step_timeout)
            .await;
        ue.close().await;
        Ok(())
    }
    .await;
    result.outcome = outcome;
    result
}

/// `expiry`: full access, then the token expires (the shared clock is advanced past `exp`
/// plus the leeway), the NOTIFY shows `expired`, the UE refreshes its token (refresh_token
/// grant) and re-publishes, and full access comes back.
async fn expiry(config: &FlowConfig, servers: &Servers, s: &SignIn, trace: &Trace) -> SignInResult {
    let start = Instant::now();
    let outcome = async {
        let cfg = ue_config(config, servers, s)?;
        let idms_err = servers.idms.as_ref().err().cloned();
        let login = do_login(idms_err.as_ref(), &cfg, trace, &servers.clock).await;
        let mut ue = Ue::connect(cfg.clone(), trace.clone(), servers.clock.clone()).await?;
        ue.register().await?;
        let tokens = login?;
        let idx = ue.publish(&s.label, tokens.clone()).await?;
        expect_published(&ue, idx)?;
        ue.subscribe(idx).await?;
        // The answer to the first NOTIFY must reach the server before time jumps.
        settle(trace, &s.label, config.step_timeout).await;
        let n = ue.users().get(idx).map_or(0, |u| u.states.len());
        let jump = config.token_lifetime + Duration::from_secs(config.leeway + 1);
        if jump >= Duration::from_secs(u64::from(config.register_expires)) {
            return Err(fail(
                15,
                format!(
                    "token lifetime + leeway ({} s) must be shorter than the registration expiry ({} s)",
                    jump.as_secs(),
                    config.register_expires
                ),
            ));
        }
        tracing::info!(?jump, "advancing the shared clock past the token expiry");
        servers.clock.advance(jump);
        trace.record(
            crate::trace::Actor::McpttServer,
            crate::trace::Observation {
                from: Some(crate::trace::Actor::McpttServer),
                ue: s.label.clone(),
                method: "CLOCK".into(),
                first_line: format!(
                    "(clock of the in-process actors moved {} s forward: token exp + leeway passed)",
                    jump.as_secs()
                ),
                ..crate::trace::Observation::default()
            },
        );
        ue.wait_states(idx, n + 1).await?;
        let fresh = login::refresh(&cfg, &tokens, trace, &servers.clock).await?;
        let n = ue.users().get(idx).map_or(0, |u| u.states.len());
        // With several SIP core instances, the refresh goes through another one.
        ue.use_core(servers.sip_core_for(&s.ue, 1)).await?;
        ue.republish(idx, fresh).await?;
        expect_published(&ue, idx)?;
        ue.wait_states(idx, n + 1).await?;
        let checked = check_states(s, ue.users().get(idx));
        settle(trace, &s.label, config.step_timeout).await;
        ue.close().await;
        checked
    }
    .await;
    SignInResult {
        label: s.label.clone(),
        final_state: None,
        latency: outcome.is_ok().then(|| start.elapsed()),
        outcome,
    }
}

/// Runs every sign-in of the scenario and reports each one.
pub async fn run_ues(
    config: &FlowConfig,
    servers: &Servers,
    sign_ins: &[SignIn],
    trace: &Trace,
    on_done: &(dyn Fn() + Sync),
) -> Vec<SignInResult> {
    let results = match (config.load, config.scenario) {
        (None, Scenario::Shareable | Scenario::Gateway) => {
            shared(config, servers, sign_ins, trace).await
        }
        (None, Scenario::BadToken) => {
            let mut v = Vec::new();
            for s in sign_ins {
                v.push(bad_token(config, servers, s, trace).await);
            }
            v
        }
        (None, Scenario::Expiry) => {
            let mut v = Vec::new();
            for s in sign_ins {
                v.push(expiry(config, servers, s, trace).await);
            }
            v
        }
        _ => {
            let mut set = tokio::task::JoinSet::new();
            let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(config.concurrency.max(1)));
            let idms_err = servers.idms.as_ref().err().cloned();
            let mut results: Vec<SignInResult> = Vec::with_capacity(sign_ins.len());
            for (i, s) in sign_ins.iter().enumerate() {
                results.push(SignInResult {
                    label: s.label.clone(),
                    final_state: None,
                    latency: None,
                    outcome: Err(fail(1, "did not run")),
                });
                match ue_config(config, servers, s) {
                    Ok(cfg) => {
                        let fut = independent(
                            cfg,
                            s.clone(),
                            idms_err.clone(),
                            trace.clone(),
                            servers.clock.clone(),
                        );
                        let slots = slots.clone();
                        set.spawn(async move {
                            // Bounded concurrency: a UE starts (and its latency clock runs)
                            // once it has a slot.
                            let _slot = slots.acquire_owned().await;
                            (i, fut.await)
                        });
                    }
                    Err(e) => {
                        if let Some(r) = results.get_mut(i) {
                            r.outcome = Err(e);
                        }
                    }
                }
            }
            while let Some(joined) = set.join_next().await {
                on_done();
                if let Ok((i, (latency, outcome))) = joined
                    && let Some(r) = results.get_mut(i)
                {
                    r.latency = latency;
                    r.outcome = outcome;
                }
            }
            settle_all(&results, sign_ins, trace, config.step_timeout).await;
            return results;
        }
    };
    for _ in &results {
        on_done();
    }
    results
}

/// Why an actor could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActorError {
    /// A workspace crate this actor needs does not offer what it needs yet: the step is not
    /// wired, and nothing is faked in its place.
    #[error("step {step} not wired: {what}")]
    NotWired {
        /// The first step that cannot happen.
        step: u8,
        /// What is missing.
        what: String,
    },
    /// Certificates or keys could not be loaded or issued.
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    /// A socket could not be bound or used.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// Invalid configuration.
    #[error("configuration: {0}")]
    Config(String),
}

impl ActorError {
    /// The step this error blocks (0 when it blocks everything).
    #[must_use]
    pub fn step(&self) -> u8 {
        match self {
            Self::NotWired { step, .. } => *step,
            _ => 0,
        }
    }
}

/// Runs a server binary: builds the runtime, starts the actor with `start`, waits for Ctrl-C,
/// then stops it with `stop`. Exit code 2 when it could not start.
pub fn serve<H, F, S, SF>(name: &str, start: F, stop: S) -> ExitCode
where
    F: Future<Output = Result<H, ActorError>>,
    S: FnOnce(H) -> SF,
    SF: Future<Output = ()>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = runtime.block_on(async {
        let handle = match start.await {
            Ok(h) => h,
            Err(e) => {
                eprintln!("{name}: {e}");
                return ExitCode::from(2);
            }
        };
        if let Err(e) = tokio::signal::ctrl_c().await {
            eprintln!("{name}: cannot wait for Ctrl-C: {e}");
        }
        eprintln!("{name}: shutting down");
        // Watchdog: whatever happens below, the process ends within 5 s of Ctrl-C.
        let owner = name.to_owned();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(5));
            eprintln!("{owner}: shutdown did not finish in 5 s; exiting");
            std::process::exit(1);
        });
        if tokio::time::timeout(Duration::from_secs(3), stop(handle))
            .await
            .is_err()
        {
            eprintln!("{name}: shutdown took longer than 3 s; exiting anyway");
        }
        ExitCode::SUCCESS
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}
