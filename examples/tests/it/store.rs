//! `--store redis://…`: two SIP core instances sharing their registrations through a real
//! `redis-server` (started on a free loopback port by each test, killed by its pid), one
//! MCPTT server, and UEs moving between the cores. The MCPTT server's own publications and
//! subscriptions stay in its memory (not what these tests cover).
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::Duration;

use mcptt_examples::actors::clock::Clock;
use mcptt_examples::actors::config::{LoginMethod, Transport, UeConfig};
use mcptt_examples::actors::ue::{self, Ue};
use mcptt_examples::actors::{self, PSI};
use mcptt_examples::cli::TlsMaterial;
use mcptt_examples::demo::FlowConfig;
use mcptt_examples::pki::DemoPki;
use mcptt_examples::scenario::Scenario;
use mcptt_examples::trace::{Actor, Seen, Trace};
use mcptt_registration::RegistrationStore;
use mcptt_registration::reginfo::{ContactState, DocState, RegInfo, RegistrationState};

use crate::support::{IMPU, Redis, assert_published, core, free_port, loopback, requests, ue_at};

fn instance_of(contact: &str) -> String {
    contact
        .split("+sip.instance=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sip_cores_share_registrations_through_redis() {
    let redis = Redis::start();
    let config = FlowConfig::new(Scenario::Basic);
    let sign_ins = config.sign_ins();
    let trace = Trace::new();
    // IdMS and MCPTT server (and an in-memory SIP core this test does not use).
    let servers = actors::start_servers(&config, &sign_ins, &trace)
        .await
        .unwrap();
    let mcptt = servers.mcptt.local_addr();
    let (a, trace_a) = core(
        &servers.pki,
        &servers.clock,
        vec![mcptt],
        Transport::Tls,
        &redis.url(),
    )
    .await;
    let (b, trace_b) = core(
        &servers.pki,
        &servers.clock,
        vec![mcptt],
        Transport::Tls,
        &redis.url(),
    )
    .await;
    assert_eq!((a.store(), b.store()), ("redis", "redis"));

    let (mut ue, tokens, _) = ue_at(&config, &servers, a.local_addr(), &trace).await;

    // Steps 3–6 through core A: the binding lands in Redis.
    ue.register().await.unwrap();
    assert_eq!(ue.sip_core(), a.local_addr());
    let inspect = redis.store();
    let (v1, record) = inspect.load(IMPU).unwrap().unwrap();
    assert_eq!(record.bindings.len(), 1);
    assert!(
        record.bindings[0]
            .contact
            .contains(&ue.local_addr().to_string())
    );
    assert_eq!(requests(&trace_a, "REGISTER").len(), 1);

    // Steps 7–10 through core B, which never saw a REGISTER: it asserts the identity the
    // shared store holds a binding for.
    ue.use_core(b.local_addr()).await.unwrap();
    let idx = ue.publish("ue1/alice", tokens).await.unwrap();
    assert_published(&ue, idx);
    assert!(requests(&trace_b, "REGISTER").is_empty());
    let publish_b = requests(&trace_b, "PUBLISH");
    assert_eq!(publish_b.len(), 1);
    assert!(requests(&trace_a, "PUBLISH").is_empty());
    let at_server: Vec<Seen> = trace
        .seen_by(Actor::McpttServer)
        .into_iter()
        .filter(|s| !s.is_response() && s.method == "PUBLISH")
        .collect();
    assert_eq!(at_server.len(), 1);
    assert_eq!(
        at_server[0].header("P-Asserted-Identity"),
        Some("<sip:ue1@example.com>")
    );

    // Steps 11–18 through core A again: full access.
    ue.use_core(a.local_addr()).await.unwrap();
    ue.subscribe(idx).await.unwrap();
    let last = ue.users()[idx].last_state().unwrap();
    assert_eq!(ue::combined(last.state), "full-access");
    assert_eq!(last.authorisation.as_str(), "authorised");
    assert_eq!(requests(&trace_a, "SUBSCRIBE").len(), 1);
    assert!(requests(&trace_b, "SUBSCRIBE").is_empty());
    assert_eq!(requests(&trace_a, "NOTIFY").len(), 1);

    // The UE refreshes its registration through core B, from its connection there: the
    // binding registered through A is refreshed (same instance, one binding), not doubled.
    ue.use_core(b.local_addr()).await.unwrap();
    let first_contact = requests(&trace_a, "REGISTER")[0]
        .header("Contact")
        .unwrap()
        .to_owned();
    ue.register().await.unwrap();
    let ok = ue.last_register_response().unwrap();
    assert_eq!(ok.status(), 200);
    let listed: Vec<&str> = ok.headers().values("Contact").collect();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(
        listed[0].contains(&ue.local_addr().to_string()),
        "{listed:?}"
    );
    let register_b = requests(&trace_b, "REGISTER");
    assert_eq!(register_b.len(), 1);
    assert_eq!(
        instance_of(register_b[0].header("Contact").unwrap()),
        instance_of(&first_contact)
    );
    let (v2, record) = inspect.load(IMPU).unwrap().unwrap();
    assert!(v2 > v1);
    assert_eq!(record.bindings.len(), 1);
    assert!(
        record.bindings[0]
            .contact
            .contains(&ue.local_addr().to_string())
    );

    // The user signs off through B; the MCPTT server's NOTIFY goes back through A, the core
    // holding the subscription dialog.
    let seen = ue.users()[idx].states.len();
    ue.sign_off(idx).await.unwrap();
    ue.wait_states(idx, seen + 1).await.unwrap();
    let last = ue.users()[idx].last_state().unwrap();
    assert_eq!(last.authorisation.as_str(), "signed-off");
    assert_ne!(ue::combined(last.state), "full-access");
    // Every NOTIFY the UE got came through A.
    assert_eq!(
        requests(&trace_a, "NOTIFY").len(),
        ue.users()[idx].states.len()
    );
    assert!(requests(&trace_b, "NOTIFY").is_empty());

    ue.close().await;
    a.shutdown().await;
    b.shutdown().await;
    servers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_register_gets_503_with_retry_after_and_recovers() {
    let mut redis = Redis::start();
    let clock = Clock::new();
    let pki = DemoPki::generate().unwrap();
    // No MCPTT server: third-party REGISTERs fail, which does not matter here.
    let dead = TcpListener::bind(loopback()).unwrap().local_addr().unwrap();
    let (a, trace_a) = core(&pki, &clock, vec![dead], Transport::Tls, &redis.url()).await;
    let trace = Trace::new();
    let mut ue = ue_on(&pki, a.local_addr(), &trace, &clock).await;
    ue.register().await.unwrap();
    assert!(ue.is_registered());

    redis.kill();
    let err = ue.register().await.unwrap_err();
    assert_eq!(err.step, 4);
    assert!(err.reason.contains("503"), "{err:?}");
    assert!(!ue.is_registered());
    let refused = ue.last_register_response().unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(
        refused.headers().get("Retry-After").map(str::trim),
        Some("5")
    );
    // The SIP core says why.
    let events: Vec<Seen> = trace_a
        .seen_by(Actor::SipCore)
        .into_iter()
        .filter(|s| s.method == "EVENT" && s.first_line.contains("503"))
        .collect();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert!(
        events[0].first_line.contains("Retry-After 5")
            && events[0].first_line.contains("store unavailable")
            && events[0].first_line.contains("redis"),
        "{}",
        events[0].first_line
    );

    // Redis comes back (empty: no persistence): the next REGISTER is accepted and stored.
    redis.spawn();
    ue.register().await.unwrap();
    assert!(ue.is_registered());
    assert_eq!(ue.last_register_response().unwrap().status(), 200);
    let (_, record) = redis.store().load(IMPU).unwrap().unwrap();
    assert_eq!(record.bindings.len(), 1);

    ue.close().await;
    a.shutdown().await;
}

#[test]
fn sip_core_binary_documents_and_checks_store() {
    let exe = env!("CARGO_BIN_EXE_sip-core");
    let help = Command::new(exe).arg("--help").output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("--store"), "{text}");
    assert!(text.contains("redis://"), "{text}");
    assert!(text.contains("[default: memory]"), "{text}");

    // A Redis nobody listens on: the binary refuses to start, and says why.
    let pki_dir = std::env::temp_dir().join(format!("mcptt-examples-pki-{}", std::process::id()));
    let out = Command::new(exe)
        .args(["--listen", "127.0.0.1:0", "--store"])
        .arg(format!("redis://127.0.0.1:{}", free_port()))
        .arg("--pki-dir")
        .arg(&pki_dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&pki_dir);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("registration store"), "{err}");
    assert!(err.contains("redis"), "{err}");
}

fn reginfo(body: &str) -> RegInfo {
    RegInfo::parse(body.as_bytes()).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn active_contacts(info: &RegInfo) -> Vec<String> {
    info.registrations
        .iter()
        .flat_map(|r| &r.contacts)
        .filter(|c| c.state == ContactState::Active)
        .map(|c| c.uri.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reg_event_subscription_on_core_a_is_notified_of_changes_made_through_core_b() {
    let redis = Redis::start();
    let clock = Clock::new();
    let pki = DemoPki::generate().unwrap();
    let dead = TcpListener::bind(loopback()).unwrap().local_addr().unwrap();
    let (a, _trace_a) = core(&pki, &clock, vec![dead], Transport::Tls, &redis.url()).await;
    let (b, trace_b) = core(&pki, &clock, vec![dead], Transport::Tls, &redis.url()).await;
    let trace = Trace::new();
    let mut ue = ue_on(&pki, a.local_addr(), &trace, &clock).await;
    ue.register().await.unwrap();
    let contact_a = ue.local_addr().to_string();
    // The UE watches its own registration through core A (RFC 3680).
    ue.subscribe_reg(600).await.unwrap();
    assert_eq!(ue.reg_notifications().len(), 1);
    let first = reginfo(&ue.reg_notifications()[0]);
    assert_eq!(first.state, DocState::Full);
    assert_eq!(first.registrations[0].state, RegistrationState::Active);
    assert_eq!(
        active_contacts(&first),
        [format!("sip:ue1@{contact_a};transport=tls")]
    );

    // A refresh through core B (new connection, new Contact): core A hears of it on the
    // Redis change feed and NOTIFYs its subscriber; core B holds no subscription.
    ue.use_core(b.local_addr()).await.unwrap();
    ue.register().await.unwrap();
    let contact_b = ue.local_addr().to_string();
    ue.wait_reg_notifications(2).await.unwrap();
    assert_eq!(ue.reg_notifications().len(), 2);
    let second = reginfo(&ue.reg_notifications()[1]);
    assert!(second.version > first.version);
    assert_eq!(second.registrations[0].state, RegistrationState::Active);
    assert_eq!(
        active_contacts(&second),
        [format!("sip:ue1@{contact_b};transport=tls")]
    );
    assert!(requests(&trace_b, "SUBSCRIBE").is_empty());

    // De-registration through B: A NOTIFYs that the registration ended.
    ue.deregister().await.unwrap();
    ue.wait_reg_notifications(3).await.unwrap();
    assert_eq!(ue.reg_notifications().len(), 3);
    let third = reginfo(&ue.reg_notifications()[2]);
    assert!(third.version > second.version);
    assert_eq!(third.registrations[0].aor, IMPU);
    // Full state of a record that no longer exists: no active registration (`init`).
    assert_ne!(third.registrations[0].state, RegistrationState::Active);
    assert!(active_contacts(&third).is_empty());
    assert!(redis.store().load(IMPU).unwrap().is_none());

    ue.close().await;
    a.shutdown().await;
    b.shutdown().await;
}

/// A UE for IMPU that skips the IdMS (no token: registration only), on the SIP core at `core`.
async fn ue_on(pki: &DemoPki, core: SocketAddr, trace: &Trace, clock: &Clock) -> Ue {
    let cfg = UeConfig {
        label: "ue1/alice".into(),
        ue_label: "ue1".into(),
        idms: String::new(),
        idms_roots: Vec::new(),
        client_id: actors::CLIENT_ID.into(),
        user: "alice".into(),
        password: String::new(),
        method: LoginMethod::Password,
        sip_core: core,
        tls: TlsMaterial {
            identity: pki.issue_ue(IMPU).unwrap(),
            roots: vec![pki.ca_cert()],
        },
        public_user_identity: IMPU.into(),
        psi: PSI.into(),
        register_expires: 600,
        publish_expires: 600,
        subscribe_expires: 600,
        timeout: Duration::from_secs(10),
    };
    Ue::connect(cfg, trace.clone(), clock.clone())
        .await
        .unwrap()
}
