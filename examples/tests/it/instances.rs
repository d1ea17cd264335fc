//! Several SIP core and MCPTT server instances behind one service (issue 10): two SIP cores
//! and two MCPTT servers sharing registrations and service state through a real
//! `redis-server` (started on a free loopback port by each test, killed by its pid), UEs
//! moving between the cores, an MCPTT server killed mid-flow, and the SIP core's failover
//! between MCPTT servers. Time moves on the actors' virtual clock; nothing sleeps.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use mcptt_examples::actors::config::{
    DEFAULT_MCPTT_TIMEOUT, MEMORY_STORE, McpttServerConfig, Transport, UeConfig,
};
use mcptt_examples::actors::login::Tokens;
use mcptt_examples::actors::mcptt_server::{self, McpttServerHandle, ServerCounts};
use mcptt_examples::actors::sip_core::SipCoreHandle;
use mcptt_examples::actors::ue::{self, Ue};
use mcptt_examples::actors::{self, AUDIENCE, MCPTT_SERVER_URI, PSI, SIP_CORE_URI, login};
use mcptt_examples::cli::TlsMaterial;
use mcptt_examples::demo::FlowConfig;
use mcptt_examples::scenario::Scenario;
use mcptt_examples::steps::check_order;
use mcptt_examples::trace::{Actor, Seen, Trace};
use mcptt_registration::RegistrationStore as _;
use mcptt_service_state::body::ServiceState;
use mcptt_service_state::client::PublisherEvent;
use mcptt_service_state::store::{AuthRecord, ServiceStateStore as _};
use mcptt_service_state::{AuthorisationState, RegistrationState};
use mcptt_store_redis::{RedisServiceStateStore, RedisStoreConfig, TimeBase};

use crate::support::{IMPU, Redis, assert_published, core, loopback, requests, ue_at};

const LABEL: &str = "ue1/alice";
/// The MCPTT servers' dialog lease in these tests.
const LEASE: Duration = Duration::from_secs(20);
/// Bound on every wait for something the actors do (real time; never reached when all is
/// well).
const WAIT: Duration = Duration::from_secs(10);

/// What an MCPTT server's trace holds of `method` (requests, or responses to it).
fn at_server(trace: &Trace, method: &str, response: bool) -> Vec<Seen> {
    trace
        .seen_by(Actor::McpttServer)
        .into_iter()
        .filter(|s| s.is_response() == response && s.method == method)
        .collect()
}

/// Waits until an MCPTT server's trace holds `n` answers to its `method` requests.
async fn wait_at_server(trace: &Trace, method: &str, n: usize) {
    let ok = trace
        .wait_until(WAIT, |r| {
            r.iter()
                .filter(|s| {
                    s.observer == Actor::McpttServer && s.is_response() && s.method == method
                })
                .count()
                >= n
        })
        .await;
    assert!(ok, "{n} answers to {method} never reached the server");
}

/// An MCPTT server on `store` trusting the IdMS of `servers`, recording in a trace of its
/// own.
async fn mcptt(
    servers: &actors::Servers,
    store: &str,
    transport: Transport,
) -> (McpttServerHandle, Trace) {
    let trace = Trace::new();
    let handle = mcptt_server::spawn(
        McpttServerConfig {
            listen: loopback(),
            transport,
            tls: TlsMaterial {
                identity: servers.pki.issue_server(MCPTT_SERVER_URI).unwrap(),
                roots: vec![servers.pki.ca_cert()],
            },
            node_uri: MCPTT_SERVER_URI.into(),
            psi: PSI.into(),
            keys: Some(servers.idms.as_ref().unwrap().keys.clone()),
            leeway: 60,
            audience: AUDIENCE.into(),
            scopes: vec![mcptt_token::SCOPE_PTT_SERVER.into()],
            ue_directory: Vec::new(),
            subscription_expires: 3600,
            trusted_cores: vec![SIP_CORE_URI.into(), "tcp:127.0.0.1".into()],
            store: store.into(),
            dialog_lease: LEASE,
        },
        trace.clone(),
        servers.clock.clone(),
    )
    .await
    .unwrap();
    (handle, trace)
}

/// Redis, the IdMS (with an in-memory SIP core and MCPTT server these tests do not use),
/// MCPTT servers X and Y and SIP cores A (servers X, Y) and B (servers Y, X), all on Redis.
struct Cluster {
    redis: Redis,
    servers: actors::Servers,
    /// UE and IdMS records.
    trace: Trace,
    x: Option<McpttServerHandle>,
    tx: Trace,
    y: McpttServerHandle,
    ty: Trace,
    a: SipCoreHandle,
    ta: Trace,
    b: SipCoreHandle,
    tb: Trace,
}

impl Cluster {
    async fn start() -> Self {
        let redis = Redis::start();
        let config = FlowConfig::new(Scenario::Basic);
        let trace = Trace::new();
        let servers = actors::start_servers(&config, &config.sign_ins(), &trace)
            .await
            .unwrap();
        let url = redis.url();
        let (x, tx) = mcptt(&servers, &url, Transport::Tls).await;
        let (y, ty) = mcptt(&servers, &url, Transport::Tls).await;
        let (xa, ya) = (x.local_addr(), y.local_addr());
        let (a, ta) = core(
            &servers.pki,
            &servers.clock,
            vec![xa, ya],
            Transport::Tls,
            &url,
        )
        .await;
        let (b, tb) = core(
            &servers.pki,
            &servers.clock,
            vec![ya, xa],
            Transport::Tls,
            &url,
        )
        .await;
        Self {
            redis,
            servers,
            trace,
            x: Some(x),
            tx,
            y,
            ty,
            a,
            ta,
            b,
            tb,
        }
    }

    fn x(&self) -> &McpttServerHandle {
        self.x.as_ref().unwrap()
    }

    /// The UE of ue1/alice, logged in at the IdMS, connected to core A.
    async fn ue(&self) -> (Ue, Tokens, UeConfig) {
        let config = FlowConfig::new(Scenario::Basic);
        ue_at(&config, &self.servers, self.a.local_addr(), &self.trace).await
    }

    /// What the service-state store in Redis holds for IMPU.
    fn ue_record(&self) -> mcptt_service_state::store::UeRecord {
        let store = self.redis.service_state();
        store.load_ue(IMPU).unwrap().unwrap().1
    }

    async fn shutdown(self) {
        self.a.shutdown().await;
        self.b.shutdown().await;
        if let Some(x) = self.x {
            x.shutdown().await;
        }
        self.y.shutdown().await;
        self.servers.shutdown().await;
    }
}

/// Register through A (third-party REGISTER to X, A's first server), publish through B
/// (PUBLISH to Y, B's first), subscribe through A (SUBSCRIBE to X, which then holds the
/// dialog): full access. Returns the session index.
async fn register_publish_subscribe(c: &Cluster, ue: &mut Ue, tokens: Tokens) -> usize {
    ue.register().await.unwrap();
    let (counts, ok) = c
        .x()
        .wait_counts(WAIT, |n| n.registered_identities == 1)
        .await;
    assert!(ok, "X never saw the third-party REGISTER: {counts:?}");
    assert_eq!(at_server(&c.tx, "REGISTER", false).len(), 1);
    assert!(at_server(&c.ty, "REGISTER", false).is_empty());

    ue.use_core(c.b.local_addr()).await.unwrap();
    let idx = ue.publish(LABEL, tokens).await.unwrap();
    assert_published(ue, idx);
    assert_eq!(at_server(&c.ty, "PUBLISH", false).len(), 1);
    assert!(at_server(&c.tx, "PUBLISH", false).is_empty());
    assert_eq!(requests(&c.tb, "PUBLISH").len(), 1);

    ue.use_core(c.a.local_addr()).await.unwrap();
    ue.subscribe(idx).await.unwrap();
    assert_eq!(at_server(&c.tx, "SUBSCRIBE", false).len(), 1);
    assert!(at_server(&c.ty, "SUBSCRIBE", false).is_empty());
    // X, which handled neither the PUBLISH nor (from its own view) more than the
    // registration, NOTIFYs full access: registration from its view, authorisation from
    // Y's write in Redis.
    let first = ue.users()[idx].last_state().unwrap().clone();
    assert_eq!(ue::combined(first.state), "full-access");
    assert_eq!(first.authorisation, AuthorisationState::Authorised);
    assert_eq!(first.registration, RegistrationState::Registered);
    assert_eq!(first.mcptt_id, "sip:alice@example.com");
    // The UE's answer to the NOTIFY went back to X, through A.
    wait_at_server(&c.tx, "NOTIFY", 1).await;
    assert!(at_server(&c.ty, "NOTIFY", true).is_empty());
    assert_eq!(requests(&c.ta, "NOTIFY").len(), 1);
    let (counts, ok) = c.x().wait_counts(WAIT, |n| n.subscriptions == 1).await;
    assert!(ok, "{counts:?}");
    assert_eq!(c.y.counts().subscriptions, 0);
    idx
}

fn last(ue: &Ue, idx: usize) -> ServiceState {
    ue.users()[idx].last_state().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_cores_two_servers_register_via_a_publish_via_b_subscribe_via_a() {
    let c = Cluster::start().await;
    assert_eq!((c.x().store(), c.y.store()), ("redis", "redis"));
    assert_ne!(c.x().instance_id(), c.y.instance_id());
    let (mut ue, tokens, cfg) = c.ue().await;
    let idx = register_publish_subscribe(&c, &mut ue, tokens.clone()).await;

    // A few seconds on, the UE refreshes its token and re-publishes through B (to Y): Y
    // changes the state in Redis (new token expiry), and X, the dialog's holder, NOTIFYs
    // it, once, through A.
    c.servers.clock.advance(Duration::from_secs(5));
    let fresh = login::refresh(&cfg, &tokens, &c.trace, &c.servers.clock)
        .await
        .unwrap();
    ue.use_core(c.b.local_addr()).await.unwrap();
    let seen = ue.users()[idx].states.len();
    ue.republish(idx, fresh).await.unwrap();
    ue.wait_states(idx, seen + 1).await.unwrap();
    let first = ue.users()[idx].states[0].clone();
    let now = last(&ue, idx);
    assert_eq!(ue::combined(now.state), "full-access");
    assert!(now.version > first.version);
    assert!(now.token_expires > first.token_expires, "{now:?}");
    assert_eq!(at_server(&c.ty, "PUBLISH", false).len(), 2);
    assert!(at_server(&c.tx, "PUBLISH", false).is_empty());
    // X sent both NOTIFYs; Y, holding no dialog, none.
    let (counts, ok) = c.x().wait_counts(WAIT, |n| n.notifies == 2).await;
    assert!(ok, "{counts:?}");
    assert_eq!(
        c.y.counts().notifies,
        0,
        "Y holds no dialog: it NOTIFYs nothing"
    );
    // The UE answered on its current connection (to B), which did not relay the NOTIFY:
    // B hands the answer to every server, so X, its sender, still gets it (its NOTIFY
    // transaction does not time out).
    wait_at_server(&c.tx, "NOTIFY", 2).await;
    assert_eq!(requests(&c.ta, "NOTIFY").len(), 2);
    assert!(requests(&c.tb, "NOTIFY").is_empty());
    assert_eq!(ue.users()[idx].states.len(), 2, "each change NOTIFYed once");

    ue.close().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_off_through_the_other_server_is_notified_by_the_dialog_holder() {
    let c = Cluster::start().await;
    let (mut ue, tokens, _) = c.ue().await;
    let idx = register_publish_subscribe(&c, &mut ue, tokens).await;
    // The user signs off through B (PUBLISH Expires 0 to Y); X, the holder, NOTIFYs it.
    ue.use_core(c.b.local_addr()).await.unwrap();
    let seen = ue.users()[idx].states.len();
    ue.sign_off(idx).await.unwrap();
    ue.wait_states(idx, seen + 1).await.unwrap();
    let off = last(&ue, idx);
    // The writer (Y) drops the signed-off user from the UE record; the holder NOTIFYs the
    // sign-off at the record's version (the publication it knew was still live).
    assert_eq!(off.authorisation, AuthorisationState::SignedOff, "{off:?}");
    assert_ne!(ue::combined(off.state), "full-access");
    assert!(off.version > ue.users()[idx].states[0].version);
    let (counts, ok) = c.x().wait_counts(WAIT, |n| n.notifies == 2).await;
    assert!(ok, "{counts:?}");
    assert_eq!(c.y.counts().notifies, 0);
    assert_eq!(requests(&c.ta, "NOTIFY").len(), 2);
    ue.close().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mcptt_server_its_dialog_is_taken_over_within_the_lease_nothing_lost() {
    let mut c = Cluster::start().await;
    let (mut ue, tokens, cfg) = c.ue().await;
    let idx = register_publish_subscribe(&c, &mut ue, tokens.clone()).await;
    let x_answers = at_server(&c.tx, "NOTIFY", true).len();

    // X, holding the subscription dialog, dies.
    c.x.take().unwrap().kill().await;

    // Nothing the UE did is lost: Redis still has the registration and the publication.
    let record = c.ue_record();
    assert_eq!(record.instances.len(), 1, "{record:?}");
    let alice = record
        .users
        .iter()
        .find(|u| &*u.mcptt_id == "sip:alice@example.com")
        .unwrap();
    assert!(
        matches!(alice.auth, AuthRecord::Authorised { .. }),
        "{alice:?}"
    );
    let (_, bindings) = c.redis.store().load(IMPU).unwrap().unwrap();
    assert_eq!(bindings.bindings.len(), 1);

    // While the holder is dead, the UE refreshes its token and re-publishes through A: A
    // finds X gone (held down) and sends the PUBLISH to Y, which writes the new state; the
    // dialog is still X's (its lease runs), so nobody NOTIFYs yet.
    c.servers.clock.advance(Duration::from_secs(2));
    let fresh = login::refresh(&cfg, &tokens, &c.trace, &c.servers.clock)
        .await
        .unwrap();
    let seen = ue.users()[idx].states.len();
    ue.republish(idx, fresh).await.unwrap();
    assert_published(&ue, idx);
    assert_eq!(at_server(&c.ty, "PUBLISH", false).len(), 2);
    assert_eq!(ue.users()[idx].states.len(), seen);

    // Past the lease, Y takes the dialog over and NOTIFYs what the subscriber has not seen:
    // full access, with the new token's expiry.
    c.servers.clock.advance(LEASE);
    let (counts, ok) = c.y.wait_counts(WAIT, |n| n.subscriptions == 1).await;
    assert!(ok, "Y did not take the dialog over: {counts:?}");
    ue.wait_states(idx, seen + 1).await.unwrap();
    let back = last(&ue, idx);
    assert_eq!(ue::combined(back.state), "full-access");
    assert_eq!(back.registration, RegistrationState::Registered);
    let versions: Vec<u64> = ue.users()[idx].states.iter().map(|s| s.version).collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    assert!(
        back.token_expires > ue.users()[idx].states[0].token_expires,
        "{back:?}"
    );
    // Y sent it, through A, the core in the dialog's route set.
    let (counts, ok) = c.y.wait_counts(WAIT, |n| n.notifies == 1).await;
    assert!(ok, "{counts:?}");
    assert_eq!(at_server(&c.tx, "NOTIFY", true).len(), x_answers);
    assert_eq!(requests(&c.ta, "NOTIFY").len(), 2);
    assert!(requests(&c.tb, "NOTIFY").is_empty());

    // The UE's next refreshes work wherever they land: the registration through B goes to
    // Y, and the binding stays one.
    ue.use_core(c.b.local_addr()).await.unwrap();
    ue.register().await.unwrap();
    let (counts, ok) =
        c.y.wait_counts(WAIT, |n| n.registered_identities == 1)
            .await;
    assert!(ok, "{counts:?}");
    let (_, bindings) = c.redis.store().load(IMPU).unwrap().unwrap();
    assert_eq!(bindings.bindings.len(), 1);
    assert!(!c.ue_record().instances.is_empty());

    ue.close().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deregistration_reaching_a_server_that_never_saw_the_ue_ends_the_registration() {
    let mut c = Cluster::start().await;
    let (mut ue, _tokens, _cfg) = c.ue().await;
    // Registered through A: the third-party REGISTER goes to X, which writes the UE's
    // registered instance to the shared service state.
    ue.register().await.unwrap();
    let (counts, ok) = c
        .x()
        .wait_counts(WAIT, |n| n.registered_identities == 1)
        .await;
    assert!(ok, "{counts:?}");
    assert_eq!(c.ue_record().instances.len(), 1);

    // X dies; the UE de-registers through A, whose third-party REGISTER (Expires 0) fails
    // over to Y. Y's view never saw this UE, yet the shared state must lose its instance.
    c.x.take().unwrap().kill().await;
    ue.deregister().await.unwrap();
    // Y publishes its counts after it has applied what the request changed.
    let (counts, ok) = c.y.wait_counts(WAIT, |n| n.requests >= 1).await;
    assert!(ok, "{counts:?}");
    assert_eq!(at_server(&c.ty, "REGISTER", false).len(), 1);
    assert_eq!(
        counts.registered_identities, 0,
        "Y never saw the UE register"
    );
    assert_eq!(
        store_instances(&c),
        Some(0),
        "still registered in the shared state"
    );
    let (_, bindings) = c.redis.store().load(IMPU).unwrap().unwrap_or_default();
    assert!(bindings.bindings.is_empty());

    ue.close().await;
    c.shutdown().await;
}

/// How many registered instances the shared service state holds for IMPU (`None`: no
/// record at all).
fn store_instances(c: &Cluster) -> Option<usize> {
    let store = RedisServiceStateStore::new(
        RedisStoreConfig {
            url: c.redis.url(),
            ..RedisStoreConfig::default()
        },
        TimeBase::system(),
    )
    .ok()?;
    store
        .load_ue(IMPU)
        .ok()?
        .map(|(_, r)| r.instances.len())
        .or(Some(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_core_fails_over_on_timeout_and_refuses_with_503_when_no_server_answers() {
    let config = FlowConfig::new(Scenario::Basic);
    let trace = Trace::new();
    let servers = actors::start_servers(&config, &config.sign_ins(), &trace)
        .await
        .unwrap();
    // A "server" that accepts TCP connections and never answers (the kernel's backlog).
    let silent = std::net::TcpListener::bind(loopback()).unwrap();
    let (m, tm) = mcptt(&servers, MEMORY_STORE, Transport::Tcp).await;
    let (a, ta) = core(
        &servers.pki,
        &servers.clock,
        vec![silent.local_addr().unwrap(), m.local_addr()],
        Transport::Tcp,
        MEMORY_STORE,
    )
    .await;
    let (mut ue, tokens, _) = ue_at(&config, &servers, a.local_addr(), &trace).await;

    // The third-party REGISTER goes to the silent server first; after the timeout (on the
    // actors' clock) it fails over to the real one, well within the registrar's own 32 s.
    ue.register().await.unwrap();
    assert!(at_server(&tm, "REGISTER", false).is_empty());
    servers
        .clock
        .advance(DEFAULT_MCPTT_TIMEOUT + Duration::from_secs(1));
    let (counts, ok) = m.wait_counts(WAIT, |n| n.registered_identities == 1).await;
    assert!(ok, "no failover: {counts:?}");
    assert_eq!(at_server(&tm, "REGISTER", false).len(), 1);
    assert!(
        !ta.seen_by(Actor::SipCore)
            .iter()
            .any(|s| s.method == "EVENT" && s.first_line.contains("third-party")),
        "the registrar saw no failure"
    );

    // The silent server is held down: the flow goes straight to the real one.
    let idx = ue.publish(LABEL, tokens).await.unwrap();
    assert_published(&ue, idx);
    ue.subscribe(idx).await.unwrap();
    assert_eq!(ue::combined(last(&ue, idx).state), "full-access");
    assert_eq!(requests(&ta, "NOTIFY").len(), 1);

    // The real server goes away too: a request no server answers is refused with 503.
    m.kill().await;
    drop(silent);
    let seen = ue.users()[idx].states.len();
    ue.sign_off(idx).await.unwrap();
    match &ue.users()[idx].last_publish {
        Some(PublisherEvent::Rejected { status, .. }) => assert_eq!(*status, 503),
        other => panic!("expected 503, got {other:?}"),
    }
    assert_eq!(ue.users()[idx].states.len(), seen);

    ue.close().await;
    a.shutdown().await;
    servers.shutdown().await;
}

/// Runs `scenario` with two SIP cores and two MCPTT servers on Redis (UEs and their later
/// requests spread over the cores; core k prefers server k), through the flow's own
/// drivers, and checks each sign-in's steps and final state as `flow` does, and that both
/// MCPTT servers did part of the work.
async fn mixed(scenario: Scenario) {
    let redis = Redis::start();
    let mut config = FlowConfig::new(scenario);
    config.store = redis.url();
    config.instances = 2;
    let sign_ins = config.sign_ins();
    let trace = Trace::new();
    let servers = actors::start_servers(&config, &sign_ins, &trace)
        .await
        .unwrap();
    assert_eq!(servers.sip_cores().len(), 2);
    assert_eq!(servers.mcptt_servers().len(), 2);
    let results = actors::run_ues(&config, &servers, &sign_ins, &trace, &|| {}).await;
    assert_eq!(results.len(), sign_ins.len());
    for (r, s) in results.iter().zip(&sign_ins) {
        if r.outcome.is_err() {
            // What the actors saw of the state changes, for the failure report.
            for x in trace.snapshot() {
                if ["NOTIFY", "PUBLISH", "CLOCK"].contains(&x.method.as_str()) {
                    eprintln!(
                        "{:?} {:?} <- {:?}: {} {:?}",
                        x.at,
                        x.observer,
                        x.from,
                        x.first_line,
                        x.header("Body")
                    );
                }
            }
        }
        assert!(r.outcome.is_ok(), "{}: {:?}", s.label, r.outcome);
        let records = trace.for_labels(&[&s.label, &s.ue]);
        check_order(&records, s.steps).unwrap_or_else(|e| panic!("{}: {e:?}", s.label));
    }
    // Both MCPTT servers handled requests (their counts are published after each input
    // is handled, so wait for them).
    for m in servers.mcptt_servers() {
        let (counts, ok): (ServerCounts, bool) = m.wait_counts(WAIT, |n| n.requests > 0).await;
        assert!(ok, "an MCPTT server instance got no request: {counts:?}");
    }
    servers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_device_with_instances_mixed() {
    mixed(Scenario::MultiDevice).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shareable_with_instances_mixed() {
    mixed(Scenario::Shareable).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_with_instances_mixed() {
    mixed(Scenario::Gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_with_instances_mixed() {
    mixed(Scenario::Expiry).await;
}

#[test]
fn binaries_document_the_server_list_and_the_store() {
    let help = |exe: &str| {
        let out = std::process::Command::new(exe)
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let core = help(env!("CARGO_BIN_EXE_sip-core"));
    for needle in [
        "--mcptt-server",
        "ADDR:PORT[,ADDR:PORT...]",
        "--mcptt-timeout",
    ] {
        assert!(core.contains(needle), "{needle}: {core}");
    }
    let server = help(env!("CARGO_BIN_EXE_mcptt-server"));
    for needle in ["--store", "redis://", "[default: memory]", "--dialog-lease"] {
        assert!(server.contains(needle), "{needle}: {server}");
    }
    let flow = help(env!("CARGO_BIN_EXE_flow"));
    assert!(flow.contains("--store"), "{flow}");
}

/// The MCPTT server binary reads its UE directory file with the library's `UeKind` names and
/// refuses to start on a word that is none of them, naming the line's identity and the word.
#[test]
fn mcptt_server_refuses_an_unknown_ue_kind_in_its_directory() {
    let dir = std::env::temp_dir().join(format!("mcptt-examples-ue-kinds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ues.txt");
    std::fs::write(
        &file,
        "# impu kind\nsip:gw@example.com gateway\nsip:ue7@example.com Shareable\n",
    )
    .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_mcptt-server"))
        .arg("--ue-directory")
        .arg(&file)
        .arg("--pki-dir")
        .arg(dir.join("pki"))
        .args(["--listen", "127.0.0.1:0"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Had it accepted the file, it would go on to start (and, with an IdMS at the default
    // address, serve until Ctrl-C): bound the wait and stop it.
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let out = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
            panic!("mcptt-server started with an unknown UE kind in its directory");
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("sip:ue7@example.com: unknown UE kind \"Shareable\""),
        "{err}"
    );
}

#[test]
fn flow_binary_runs_the_demo_through_redis() {
    let redis = Redis::start();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flow"))
        .args(["--scenario", "shareable", "--store"])
        .arg(redis.url())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("in causal order"), "{text}");
    // The run went through Redis: the service state of ue1 is there.
    let store = redis.service_state();
    let (_, record) = store.load_ue(IMPU).unwrap().unwrap();
    assert!(
        record
            .users
            .iter()
            .any(|u| &*u.mcptt_id == "sip:bob@example.com"),
        "{record:?}"
    );
    // And the SIP core's registration of ue1 too.
    let (_, bindings) = redis.store().load(IMPU).unwrap().unwrap();
    assert_eq!(bindings.bindings.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_mcptt_server_answers_503_says_why_and_recovers() {
    let mut redis = Redis::start();
    let config = FlowConfig::new(Scenario::Basic);
    let trace = Trace::new();
    let servers = actors::start_servers(&config, &config.sign_ins(), &trace)
        .await
        .unwrap();
    let (m, tm) = mcptt(&servers, &redis.url(), Transport::Tls).await;
    let (a, _ta) = core(
        &servers.pki,
        &servers.clock,
        vec![m.local_addr()],
        Transport::Tls,
        &redis.url(),
    )
    .await;
    let (mut ue, tokens, _) = ue_at(&config, &servers, a.local_addr(), &trace).await;
    ue.register().await.unwrap();
    let idx = ue.publish(LABEL, tokens.clone()).await.unwrap();
    ue.subscribe(idx).await.unwrap();
    assert_eq!(ue::combined(last(&ue, idx).state), "full-access");

    // Redis goes away: the next PUBLISH is refused with 503 (nothing silently dropped), and
    // the server's record says why.
    redis.kill();
    let seen = ue.users()[idx].states.len();
    ue.republish(idx, tokens.clone()).await.unwrap();
    match &ue.users()[idx].last_publish {
        Some(PublisherEvent::Rejected { status, .. }) => assert_eq!(*status, 503),
        other => panic!("expected 503, got {other:?}"),
    }
    assert_eq!(ue.users()[idx].states.len(), seen);
    let events: Vec<Seen> = tm
        .seen_by(Actor::McpttServer)
        .into_iter()
        .filter(|s| s.method == "EVENT" && s.first_line.contains("store unavailable"))
        .collect();
    assert!(!events.is_empty());

    // Redis comes back (empty: no persistence in this test): the UE registers and signs in
    // again, and the server stores it.
    redis.spawn();
    ue.register().await.unwrap();
    let again = ue.publish(LABEL, tokens).await.unwrap();
    assert_published(&ue, again);
    let store = redis.service_state();
    let (_, record) = store.load_ue(IMPU).unwrap().unwrap();
    assert!(
        record
            .users
            .iter()
            .any(|u| matches!(u.auth, AuthRecord::Authorised { .. })),
        "{record:?}"
    );

    ue.close().await;
    a.shutdown().await;
    m.shutdown().await;
    servers.shutdown().await;
}
