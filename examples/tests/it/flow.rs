//! The flow end to end, per scenario: IdMS, SIP core, MCPTT server and UEs in-process on
//! loopback (real HTTPS, real mutual TLS, real SIP through the workspace crates), asserting on
//! what each actor saw: methods, key headers, bodies and order. No sleeps: the `expiry`
//! scenario moves the actors' shared clock.
#![allow(clippy::unwrap_used)]

use mcptt_examples::demo::{FlowConfig, FlowReport, run};
use mcptt_examples::scenario::Scenario;
use mcptt_examples::steps::check_order;
use mcptt_examples::trace::{Actor, Seen, Trace};

async fn flow(scenario: Scenario) -> FlowReport {
    let config = FlowConfig::new(scenario);
    run(&config, Trace::new(), &|| {}).await
}

fn assert_success(report: &FlowReport) {
    if let Some((who, failure)) = report.failure() {
        let ladder = mcptt_examples::ladder::render_all(
            &report.trace.snapshot(),
            mcptt_examples::ladder::Detail::KeyHeaders,
        );
        panic!("{who}: {failure}\n{ladder}");
    }
    assert!(report.success());
}

/// Records `observer` saw of `method` (requests) or responses to `method`, for `label`.
fn seen(report: &FlowReport, observer: Actor, label: &str) -> Vec<Seen> {
    report
        .trace
        .seen_by(observer)
        .into_iter()
        .filter(|s| s.ue == label)
        .collect()
}

fn requests<'a>(records: &'a [Seen], method: &str) -> Vec<&'a Seen> {
    records
        .iter()
        .filter(|s| !s.is_response() && s.method == method)
        .collect()
}

fn responses<'a>(records: &'a [Seen], method: &str) -> Vec<&'a Seen> {
    records
        .iter()
        .filter(|s| s.is_response() && s.method == method)
        .collect()
}

/// The service-state JSON bodies of the NOTIFYs the UE received for `label`, in order, as
/// (state, authorisation, mcptt-id).
fn notified(report: &FlowReport, label: &str) -> Vec<(String, String, String)> {
    requests(&seen(report, Actor::Ue, label), "NOTIFY")
        .iter()
        .map(|n| {
            let v: serde_json::Value = serde_json::from_str(&n.body).unwrap();
            let s = |k: &str| v[k].as_str().unwrap().to_owned();
            (s("state"), s("authorisation"), s("mcptt-id"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_runs_all_18_steps_through_every_actor() {
    let report = flow(Scenario::Basic).await;
    assert_success(&report);
    let all = report.trace.for_labels(&["ue1/alice", "ue1"]);
    check_order(&all, &mcptt_examples::steps::ALL).unwrap();

    // Step 1: the UE holds tokens from the IdMS.
    let ue = seen(&report, Actor::Ue, "ue1/alice");
    let login = ue.iter().find(|s| s.step == Some(1)).unwrap();
    assert_eq!(login.from, Actor::Idms);
    assert_eq!(login.header("mcptt_id"), Some("sip:alice@example.com"));
    assert!(
        login
            .header("scope")
            .unwrap()
            .contains("3gpp:mcptt:ptt_server")
    );

    // Step 2 and 3 at the SIP core: the verified client certificate, then the REGISTER.
    let core_ue = seen(&report, Actor::SipCore, "ue1");
    let tls = core_ue.iter().find(|s| s.step == Some(2)).unwrap();
    assert_eq!(
        tls.header("Client-Certificate-URI-SAN"),
        Some("sip:ue1@example.com")
    );
    let register = requests(&core_ue, "REGISTER");
    assert_eq!(register.len(), 1);
    let contact = register[0].header("Contact").unwrap();
    for tag in [
        "+sip.instance=\"<urn:uuid:",
        "+g.3gpp.mcptt",
        "urn%3Aurn-7%3A3gpp-service.ims.icsi.mcptt",
        "transport=tls",
    ] {
        assert!(contact.contains(tag), "{tag} missing from {contact}");
    }
    // Step 4 at the UE: 200 OK listing the binding.
    let ue_reg = seen(&report, Actor::Ue, "ue1");
    let ok = responses(&ue_reg, "REGISTER");
    assert_eq!(ok[0].status, Some(200));
    assert!(ok[0].header("Contact").unwrap().contains("+sip.instance"));

    // Steps 5–6: third-party REGISTER with the UE's REGISTER as message/sip.
    let server_reg = seen(&report, Actor::McpttServer, "ue1");
    let third = requests(&server_reg, "REGISTER");
    assert_eq!(third.len(), 1);
    assert!(
        third[0]
            .first_line
            .starts_with("REGISTER sip:mcptt.example.com SIP/2.0")
    );
    assert_eq!(third[0].header("Content-Type"), Some("message/sip"));
    assert!(
        third[0]
            .header("To")
            .unwrap()
            .contains("sip:ue1@example.com")
    );
    assert!(
        third[0]
            .header("From")
            .unwrap()
            .contains("sip:scscf.example.com")
    );
    assert!(
        third[0]
            .body
            .starts_with("REGISTER sip:example.com SIP/2.0")
    );
    assert!(third[0].body.contains("+g.3gpp.mcptt"));
    assert_eq!(
        responses(&seen(&report, Actor::SipCore, "ue1"), "REGISTER")[0].status,
        Some(200)
    );

    // Steps 7–10: PUBLISH with the token; the server sees the core's P-Asserted-Identity.
    let server = seen(&report, Actor::McpttServer, "ue1/alice");
    let methods: Vec<String> = server
        .iter()
        .map(|s| {
            if s.is_response() {
                format!("{} {}", s.status.unwrap(), s.method)
            } else {
                s.method.clone()
            }
        })
        .collect();
    assert_eq!(methods, ["PUBLISH", "SUBSCRIBE", "200 NOTIFY"]);
    let publish = requests(&server, "PUBLISH")[0];
    assert_eq!(publish.header("Event"), Some("poc-settings"));
    assert_eq!(
        publish.header("P-Asserted-Identity"),
        Some("<sip:ue1@example.com>")
    );
    assert!(
        publish
            .header("Content-Type")
            .unwrap()
            .starts_with("multipart/mixed")
    );
    assert!(publish.body.contains("urn:3gpp:ns:mcpttInfo:1.0"));
    assert!(publish.body.contains("<mcptt-access-token"));
    let published = responses(&ue, "PUBLISH")[0];
    assert_eq!(published.status, Some(200));
    assert!(published.header("SIP-ETag").is_some());

    // Steps 11–18: SUBSCRIBE, NOTIFY full-access, answered.
    let subscribe = requests(&server, "SUBSCRIBE")[0];
    assert_eq!(subscribe.header("Event"), Some("mcptt-service-state"));
    assert_eq!(
        subscribe.header("P-Asserted-Identity"),
        Some("<sip:ue1@example.com>")
    );
    let notify = requests(&ue, "NOTIFY")[0];
    assert!(
        notify
            .header("Subscription-State")
            .unwrap()
            .starts_with("active")
    );
    assert_eq!(
        notified(&report, "ue1/alice"),
        [(
            "full-access".into(),
            "authorised".into(),
            "sip:alice@example.com".into()
        )]
    );
    assert_eq!(responses(&server, "NOTIFY")[0].status, Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_device_signs_one_user_in_on_three_ues() {
    let report = flow(Scenario::MultiDevice).await;
    assert_success(&report);
    for ue in ["ue1", "ue2", "ue3"] {
        let label = format!("{ue}/alice");
        let third = requests(&seen(&report, Actor::McpttServer, ue), "REGISTER").len();
        assert_eq!(third, 1, "{ue}: one third-party REGISTER");
        let publish = requests(&seen(&report, Actor::McpttServer, &label), "PUBLISH")[0].clone();
        assert_eq!(
            publish.header("P-Asserted-Identity"),
            Some(format!("<sip:{ue}@example.com>").as_str())
        );
        assert_eq!(
            notified(&report, &label),
            [(
                "full-access".into(),
                "authorised".into(),
                "sip:alice@example.com".into()
            )]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shareable_takeover_replaces_the_first_user() {
    let report = flow(Scenario::Shareable).await;
    assert_success(&report);
    // One UE registration, two users publishing from it.
    assert_eq!(
        requests(&seen(&report, Actor::SipCore, "ue1"), "REGISTER").len(),
        1
    );
    for user in ["alice", "bob"] {
        let p = requests(
            &seen(&report, Actor::McpttServer, &format!("ue1/{user}")),
            "PUBLISH",
        )[0]
        .clone();
        assert_eq!(
            p.header("P-Asserted-Identity"),
            Some("<sip:ue1@example.com>")
        );
    }
    assert_eq!(
        notified(&report, "ue1/alice"),
        [
            (
                "full-access".into(),
                "authorised".into(),
                "sip:alice@example.com".into()
            ),
            (
                "limited".into(),
                "replaced".into(),
                "sip:alice@example.com".into()
            ),
        ]
    );
    assert_eq!(
        notified(&report, "ue1/bob"),
        [(
            "full-access".into(),
            "authorised".into(),
            "sip:bob@example.com".into()
        )]
    );
    // Alice was replaced only after Bob's PUBLISH reached the server.
    let all = report.trace.snapshot();
    let bob_publish = all
        .iter()
        .position(|s| s.ue == "ue1/bob" && s.step == Some(8))
        .unwrap();
    let replaced = all
        .iter()
        .position(|s| s.ue == "ue1/alice" && s.step == Some(16) && s.body.contains("\"replaced\""))
        .unwrap();
    assert!(bob_publish < replaced);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_keeps_three_users_at_full_access() {
    let report = flow(Scenario::Gateway).await;
    assert_success(&report);
    assert_eq!(
        requests(&seen(&report, Actor::SipCore, "gw1"), "REGISTER").len(),
        1
    );
    for user in ["alice", "bob", "carol"] {
        let label = format!("gw1/{user}");
        let sub = requests(&seen(&report, Actor::McpttServer, &label), "SUBSCRIBE")[0].clone();
        // A gateway's SUBSCRIBE names its user with the token in an mcptt-info body.
        assert!(sub.body.contains("<mcptt-access-token"), "{label}");
        assert_eq!(
            notified(&report, &label),
            [(
                "full-access".into(),
                "authorised".into(),
                format!("sip:{user}@example.com")
            )]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_token_is_refused_with_warning_101_and_no_notify() {
    let report = flow(Scenario::BadToken).await;
    assert_success(&report);
    let ue = seen(&report, Actor::Ue, "ue1/alice");
    for method in ["PUBLISH", "SUBSCRIBE"] {
        let r = responses(&ue, method)[0];
        assert_eq!(r.status, Some(403), "{method}");
        assert_eq!(
            r.header("Warning"),
            Some("399 mcptt.example.com \"101 service authorisation failed\""),
            "{method}"
        );
    }
    assert!(requests(&ue, "NOTIFY").is_empty());
    // The server saw the PUBLISH (with the asserted identity) and refused it; the UE stays
    // registered (limited: registered, not authorised).
    let server = seen(&report, Actor::McpttServer, "ue1/alice");
    assert_eq!(requests(&server, "PUBLISH").len(), 1);
    assert_eq!(
        responses(&seen(&report, Actor::Ue, "ue1"), "REGISTER")[0].status,
        Some(200)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_notifies_expired_then_full_access_after_refresh() {
    let report = flow(Scenario::Expiry).await;
    assert_success(&report);
    assert_eq!(
        notified(&report, "ue1/alice"),
        [
            (
                "full-access".into(),
                "authorised".into(),
                "sip:alice@example.com".into()
            ),
            (
                "limited".into(),
                "expired".into(),
                "sip:alice@example.com".into()
            ),
            (
                "full-access".into(),
                "authorised".into(),
                "sip:alice@example.com".into()
            ),
        ]
    );
    let ue = seen(&report, Actor::Ue, "ue1/alice");
    let logins: Vec<&Seen> = ue.iter().filter(|s| s.step == Some(1)).collect();
    assert_eq!(logins.len(), 2);
    assert!(logins[1].first_line.contains("refresh_token"));
    // The second PUBLISH (new token) refreshes the same publication: SIP-If-Match.
    let server = seen(&report, Actor::McpttServer, "ue1/alice");
    let publishes = requests(&server, "PUBLISH");
    assert_eq!(publishes.len(), 2);
    assert!(publishes[0].header("SIP-If-Match").is_none());
    assert!(publishes[1].header("SIP-If-Match").is_some());
}

// ---------------------------------------------------------------------------------------------
// Faults.

use std::time::Duration;

use mcptt_examples::actors::clock::Clock;
use mcptt_examples::actors::config::{LoginMethod, SipCoreConfig, Transport, UeConfig};
use mcptt_examples::actors::ue::{self, Ue};
use mcptt_examples::actors::{self, MCPTT_SERVER_URI, PSI, SIP_CORE_URI, login, sip_core};
use mcptt_examples::cli::TlsMaterial;
use mcptt_examples::pki::DemoPki;

fn loopback() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcptt_server_unreachable_at_step_5_keeps_the_binding_and_says_so() {
    let trace = Trace::new();
    let clock = Clock::new();
    let pki = DemoPki::generate().unwrap();
    // A loopback port nobody listens on.
    let dead = std::net::TcpListener::bind(loopback())
        .unwrap()
        .local_addr()
        .unwrap();
    let impu = "sip:ue1@example.com".to_owned();
    let core = sip_core::spawn(
        SipCoreConfig {
            listen: loopback(),
            tls: TlsMaterial {
                identity: pki.issue_server(SIP_CORE_URI).unwrap(),
                roots: vec![pki.ca_cert()],
            },
            mcptt_servers: vec![dead],
            mcptt_transport: Transport::Tls,
            mcptt_timeout: actors::config::DEFAULT_MCPTT_TIMEOUT,
            mcptt_hold_down: actors::config::DEFAULT_MCPTT_HOLD_DOWN,
            node_uri: SIP_CORE_URI.into(),
            application_server: MCPTT_SERVER_URI.into(),
            psi: PSI.into(),
            identities: vec![(impu.clone(), vec![impu.clone()])],
            max_expires: 3600,
            max_connections_per_ip: 16,
            store: actors::config::MEMORY_STORE.into(),
        },
        trace.clone(),
        clock.clone(),
    )
    .await
    .unwrap();
    let cfg = UeConfig {
        label: "ue1/alice".into(),
        ue_label: "ue1".into(),
        idms: String::new(),
        idms_roots: Vec::new(),
        client_id: actors::CLIENT_ID.into(),
        user: "alice".into(),
        password: String::new(),
        method: LoginMethod::Password,
        sip_core: core.local_addr(),
        tls: TlsMaterial {
            identity: pki.issue_ue(&impu).unwrap(),
            roots: vec![pki.ca_cert()],
        },
        public_user_identity: impu,
        psi: PSI.into(),
        register_expires: 600,
        publish_expires: 600,
        subscribe_expires: 600,
        timeout: Duration::from_secs(10),
    };
    let mut ue = Ue::connect(cfg, trace.clone(), clock.clone())
        .await
        .unwrap();
    // Steps 3–4 do not wait for the application server.
    ue.register().await.unwrap();
    assert!(ue.is_registered());
    // Past the third-party REGISTER timeout (64·T1 = 32 s) on the actors' clock.
    clock.advance(Duration::from_secs(33));
    let logged = trace
        .wait_until(Duration::from_secs(10), |r| {
            r.iter()
                .any(|s| s.method == "EVENT" && s.first_line.contains("third-party REGISTER"))
        })
        .await;
    assert!(logged, "the failure is not in the record");
    let event = trace
        .seen_by(Actor::SipCore)
        .into_iter()
        .find(|s| s.method == "EVENT")
        .unwrap();
    assert!(
        event.first_line.contains(MCPTT_SERVER_URI),
        "{}",
        event.first_line
    );
    assert!(event.first_line.contains("Timeout"), "{}", event.first_line);
    // The filter's default handling is to keep the binding: a refresh is still accepted.
    assert!(event.first_line.contains("Keep"), "{}", event.first_line);
    assert!(trace.seen_by(Actor::McpttServer).is_empty());
    ue.register().await.unwrap();
    assert!(ue.is_registered());
    ue.close().await;
    core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_ue_connection_ends_everything_by_expiry() {
    let config = FlowConfig::new(Scenario::Basic);
    let sign_ins = config.sign_ins();
    let trace = Trace::new();
    let servers = actors::start_servers(&config, &sign_ins, &trace)
        .await
        .unwrap();
    let cfg = actors::ue_config(&config, &servers, &sign_ins[0]).unwrap();
    let tokens = login::login(&cfg, &trace, &servers.clock).await.unwrap();
    let mut ue = Ue::connect(cfg, trace.clone(), servers.clock.clone())
        .await
        .unwrap();
    ue.register().await.unwrap();
    let idx = ue.publish("ue1/alice", tokens).await.unwrap();
    ue.subscribe(idx).await.unwrap();
    let (counts, ok) = servers
        .mcptt
        .wait_counts(Duration::from_secs(10), |c| {
            c.publications == 1 && c.subscriptions == 1 && c.registered_identities == 1
        })
        .await;
    assert!(ok, "{counts:?}");
    // The connection drops: no sign-off, no unsubscribe, no de-registration.
    ue.close().await;
    // Registration, publication and subscription all lapse after 600 s.
    servers.clock.advance(Duration::from_secs(601));
    let (counts, ok) = servers
        .mcptt
        .wait_counts(Duration::from_secs(10), |c| {
            c.publications == 0 && c.subscriptions == 0 && c.registered_identities == 0
        })
        .await;
    assert!(ok, "server state after expiry: {counts:?}");
    // The SIP core told the server by a third-party REGISTER with Expires: 0.
    let told = trace
        .wait_until(Duration::from_secs(10), |r| {
            r.iter().any(|s| {
                s.observer == Actor::McpttServer
                    && s.method == "REGISTER"
                    && !s.is_response()
                    && s.header("Expires") == Some("0")
            })
        })
        .await;
    assert!(
        told,
        "no third-party REGISTER with Expires: 0 reached the server"
    );
    let dereg = seen(&servers_trace(&trace), Actor::McpttServer, "ue1");
    let ends: Vec<&Seen> = requests(&dereg, "REGISTER")
        .into_iter()
        .filter(|s| s.header("Expires") == Some("0"))
        .collect();
    assert_eq!(
        ends.len(),
        1,
        "{:#?}",
        trace
            .seen_by(Actor::McpttServer)
            .iter()
            .map(|s| (&s.ue, &s.first_line, &s.headers))
            .collect::<Vec<_>>()
    );
    servers.shutdown().await;
}

fn servers_trace(trace: &Trace) -> FlowReport {
    FlowReport {
        trace: trace.clone(),
        results: Vec::new(),
        elapsed: Duration::ZERO,
        setup_time: Duration::ZERO,
        setup: Ok(()),
        server_cpu: None,
        server_user_system: None,
        idms_cpu: None,
        work: mcptt_examples::demo::FloorWork::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_core_restart_mid_flow_the_ue_reconnects_and_regains_full_access() {
    let config = FlowConfig::new(Scenario::Basic);
    let sign_ins = config.sign_ins();
    let trace = Trace::new();
    let mut servers = actors::start_servers(&config, &sign_ins, &trace)
        .await
        .unwrap();
    let cfg = actors::ue_config(&config, &servers, &sign_ins[0]).unwrap();
    let tokens = login::login(&cfg, &trace, &servers.clock).await.unwrap();
    let mut ue = Ue::connect(cfg, trace.clone(), servers.clock.clone())
        .await
        .unwrap();
    ue.register().await.unwrap();
    let idx = ue.publish("ue1/alice", tokens).await.unwrap();
    ue.subscribe(idx).await.unwrap();
    assert!(
        trace
            .wait_label_step("ue1/alice", 18, Duration::from_secs(10))
            .await
    );
    let first_local = ue.local_addr();
    let before = trace.snapshot().len();

    // The SIP core restarts on the same address: the UE's connection ends, and the new SIP
    // core knows no binding, no connection and no dialog.
    let core_addr = servers.sip_core.local_addr();
    servers.sip_core.restart().await.unwrap();
    assert_eq!(servers.sip_core.local_addr(), core_addr);
    ue.wait_closed().await.unwrap();
    assert!(ue.is_closed());
    ue.recover().await.unwrap();
    assert!(!ue.is_closed());
    assert!(ue.is_registered());
    assert_ne!(ue.local_addr(), first_local);
    let last = ue.users()[idx].last_state().unwrap();
    assert_eq!(ue::combined(last.state), "full-access");
    assert!(
        trace
            .wait_until(Duration::from_secs(10), |r| {
                r.iter()
                    .filter(|s| {
                        s.ue == "ue1/alice"
                            && s.observer == Actor::McpttServer
                            && s.method == "NOTIFY"
                            && s.is_response()
                    })
                    .count()
                    == 2
            })
            .await
    );

    // What the actors saw after the restart, in order.
    let after: Vec<Seen> = trace.snapshot().into_iter().skip(before).collect();
    let at = |observer: Actor, label: &str, what: &str| -> Vec<Seen> {
        after
            .iter()
            .filter(|s| s.observer == observer && s.ue == label)
            .filter(|s| {
                if let Some(status) = what.strip_prefix("2xx ") {
                    s.is_response() && s.method == status && s.status == Some(200)
                } else {
                    !s.is_response() && s.method == what
                }
            })
            .cloned()
            .collect()
    };
    // Step 2 again: a new mutual-TLS handshake from a new port, with the same certificate.
    let tls = at(Actor::SipCore, "ue1", mcptt_examples::steps::TLS);
    assert_eq!(tls.len(), 1, "{after:#?}");
    assert_eq!(
        tls[0].header("Client-Certificate-URI-SAN"),
        Some("sip:ue1@example.com")
    );
    assert_eq!(
        tls[0].header("Peer"),
        Some(ue.local_addr().to_string().as_str())
    );
    // Steps 3–6 again: REGISTER of the new Contact (same instance), third-party REGISTER.
    let register = at(Actor::SipCore, "ue1", "REGISTER");
    assert_eq!(register.len(), 1);
    let contact = register[0].header("Contact").unwrap();
    assert!(contact.contains(&format!("@{};transport=tls", ue.local_addr())));
    let first_contact = requests(
        &seen(&servers_trace(&trace), Actor::SipCore, "ue1"),
        "REGISTER",
    )[0]
    .header("Contact")
    .unwrap()
    .to_owned();
    let instance = |c: &str| {
        c.split(";+sip.instance=")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(instance(contact), instance(&first_contact));
    assert_eq!(at(Actor::Ue, "ue1", "2xx REGISTER").len(), 1);
    let third = at(Actor::McpttServer, "ue1", "REGISTER");
    assert_eq!(third.len(), 1);
    assert!(third[0].body.contains(&ue.local_addr().to_string()));
    // Steps 7–18 again: a new publication and a new subscription, asserted by the new core.
    let publish = at(Actor::McpttServer, "ue1/alice", "PUBLISH");
    assert_eq!(publish.len(), 1);
    assert_eq!(
        publish[0].header("P-Asserted-Identity"),
        Some("<sip:ue1@example.com>")
    );
    assert!(publish[0].body.contains("<mcptt-access-token"));
    assert_eq!(at(Actor::Ue, "ue1/alice", "2xx PUBLISH").len(), 1);
    let subscribe = at(Actor::McpttServer, "ue1/alice", "SUBSCRIBE");
    assert_eq!(subscribe.len(), 1);
    assert_eq!(
        subscribe[0].header("P-Asserted-Identity"),
        Some("<sip:ue1@example.com>")
    );
    let notify = at(Actor::Ue, "ue1/alice", "NOTIFY");
    assert_eq!(notify.len(), 1);
    let body: serde_json::Value = serde_json::from_str(&notify[0].body).unwrap();
    assert_eq!(body["state"], "full-access");
    assert_eq!(body["authorisation"], "authorised");
    // Order: handshake, REGISTER, third-party REGISTER, PUBLISH, SUBSCRIBE, NOTIFY.
    let seqs = [
        tls[0].seq,
        register[0].seq,
        third[0].seq,
        publish[0].seq,
        subscribe[0].seq,
        notify[0].seq,
    ];
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    ue.close().await;
    servers.shutdown().await;
}

/// `flow --ues N` with the servers on their own named thread (a current-thread runtime, as
/// `flow` runs them with the in-memory stores): every UE completes and the report carries
/// the servers' CPU time (SIP core, MCPTT server, IdMS), not the UEs'.
#[test]
fn load_run_on_a_separate_server_runtime_reports_server_cpu() {
    let servers_rt =
        mcptt_examples::runtime::ServerThread::start(mcptt_examples::cpu::SERVER_THREAD_NAME)
            .unwrap();
    let ues_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut config = FlowConfig::new(Scenario::Basic);
    config.load = Some(4);
    config.servers_runtime = Some(servers_rt.handle().clone());
    let report = ues_rt.block_on(run(&config, Trace::new(), &|| {}));
    assert_success(&report);
    assert_eq!(report.results.len(), 4);
    let cpu = report.server_cpu.expect("per-thread CPU readable on Linux");
    // The user/kernel split is read from the same threads (tick-sampled, so only bounded by
    // the precise total plus a tick per thread and field).
    let split = report
        .server_user_system
        .expect("per-thread stat readable on Linux");
    assert!(
        split.user + split.system <= cpu + Duration::from_millis(100),
        "{split:?} vs {cpu:?}"
    );
    // Four mutual-TLS handshakes, four logins and eight token checks at least.
    let floor = mcptt_examples::cpu::measure_floor(5).unwrap();
    assert!(cpu > floor.mutual_tls_server * 4, "{cpu:?} vs {floor:?}");
    // The work the floor counts per UE, as this run did it: one IdMS handshake and one SIP
    // core handshake per UE, two tokens presented (PUBLISH and SUBSCRIBE).
    assert_eq!(
        report.work,
        mcptt_examples::demo::FloorWork {
            idms_handshakes: 4,
            sip_core_handshakes: 4,
            tokens_presented: 4 * u64::from(mcptt_examples::cpu::FLOOR_VERIFICATIONS),
        }
    );
    // The servers ran on their runtime: its threads are named as the report reads them.
    assert!(mcptt_examples::cpu::threads_cpu(mcptt_examples::cpu::SERVER_THREAD_NAME).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcptt_server_stops_promptly_while_the_sip_core_stays_connected() {
    let config = FlowConfig::new(Scenario::Basic);
    let sign_ins = config.sign_ins();
    let trace = Trace::new();
    let servers = actors::start_servers(&config, &sign_ins, &trace)
        .await
        .unwrap();
    let cfg = actors::ue_config(&config, &servers, &sign_ins[0]).unwrap();
    let tokens = login::login(&cfg, &trace, &servers.clock).await.unwrap();
    let mut ue = Ue::connect(cfg, trace.clone(), servers.clock.clone())
        .await
        .unwrap();
    ue.register().await.unwrap();
    let idx = ue.publish("ue1/alice", tokens).await.unwrap();
    ue.subscribe(idx).await.unwrap();
    let actors::Servers {
        mcptt, sip_core, ..
    } = servers;
    let started = std::time::Instant::now();
    let stopped = tokio::time::timeout(Duration::from_secs(3), mcptt.shutdown()).await;
    let took = started.elapsed();
    assert!(stopped.is_ok(), "MCPTT server shutdown hung ({took:?})");
    ue.close().await;
    sip_core.shutdown().await;
}
