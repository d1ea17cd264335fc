//! Two `mcptt_service_state::Server` instances sharing service state through a real Redis
//! (each with its own `RedisServiceStateStore` and `ServiceStateFeed`, as two processes
//! would): remote changes NOTIFYed once by the dialog's holder, expiry and deregistration
//! through the other instance, dialog take-over, shareable and gateway UEs, persistence,
//! unavailability, concurrency against a model, and the store on its own.

use std::collections::HashMap;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use mcptt_service_state::body::{McpttInfo, ServiceState};
use mcptt_service_state::client::{Publisher, Subscriber, SubscriberEvent, UeConfig};
use mcptt_service_state::server::{Server, ServerConfig, ServerEvent};
use mcptt_service_state::store::{
    AuthRecord, DialogRecord, PublicationRecord, ServiceStateStore, StoreError, StoreKey, UeRecord,
    UserRecord,
};
use mcptt_service_state::{
    AuthorisationState, CombinedState, RegistrationChange, RegistrationState, SplitMix64,
    UeDirectory, UeKind,
};
use mcptt_store_redis::{
    RedisServiceStateStore, RedisStoreConfig, ServiceStateChoice, ServiceStateFeed, TimeBase,
};
use mcptt_token::{
    AccessTokenClaims, Algorithm, JwkSet, KeyStore, Signer, SigningKey, Validator, ValidatorConfig,
};
use redis::Commands;

use crate::support;

const HOST: &str = "mcptt.example.org";
const PSI: &str = "sip:mcptt-server@mcptt.example.org";
const ISSUER: &str = "https://idms.example.org";
const ALICE: &str = "sip:alice@mcptt.example.org";
const BOB: &str = "sip:bob@mcptt.example.org";
const UE1: &str = "sip:ue1@example.org";
const SHARED: &str = "sip:shared@example.org";
const GW: &str = "sip:gw@example.org";
/// Wall clock (token `iat`/`exp`) at the virtual epoch.
const T0_UNIX: u64 = 1_800_000_000;
/// How long a test waits for a pub/sub message that must come.
const FEED_WAIT: Duration = Duration::from_secs(5);

type Srv = Server<Validator, SplitMix64, RedisServiceStateStore>;

// ---- helpers copied in small from mcptt-service-state's tests -------------------------

/// Tokens signed with a fresh key (the IdMS), and validators that trust it.
struct Idms {
    signer: Signer,
    jwks: String,
    jti: u64,
}

impl Idms {
    fn new() -> Self {
        let rng = ring::rand::SystemRandom::new();
        let key = SigningKey::generate(Algorithm::Es256, "k1", &rng).unwrap();
        let jwks = JwkSet::from_keys([key.public_jwk()]).unwrap().to_json();
        Self {
            signer: Signer::new(key),
            jwks,
            jti: 0,
        }
    }

    fn validator(&self) -> Validator {
        let keys = KeyStore::new(JwkSet::from_json(&self.jwks).unwrap());
        Validator::new(ValidatorConfig::new(ISSUER, PSI), keys).unwrap()
    }

    fn token(&mut self, mcptt_id: &str, iat: u64, lifetime: u64) -> String {
        self.jti += 1;
        let claims = AccessTokenClaims {
            iss: ISSUER.into(),
            sub: mcptt_id.trim_start_matches("sip:").into(),
            aud: vec![PSI.into()],
            exp: iat + lifetime,
            iat,
            jti: format!("jti-{}", self.jti),
            client_id: "mcptt-client".into(),
            scope: "openid 3gpp:mcptt:ptt_server".into(),
            mcptt_id: mcptt_id.into(),
            ..Default::default()
        };
        self.signer.sign_access_token(&claims).unwrap()
    }
}

fn parse(bytes: &[u8]) -> mcptt_sip::Message {
    mcptt_sip::Message::parse(mcptt_sip::Bytes::copy_from_slice(bytes)).unwrap()
}

fn req(bytes: &[u8]) -> mcptt_sip::Request {
    parse(bytes).into_request().expect("a request")
}

fn resp(bytes: &[u8]) -> mcptt_sip::Response {
    parse(bytes).into_response().expect("a response")
}

fn header(msg: &str, name: &str) -> Option<String> {
    let head = msg.split("\r\n\r\n").next()?;
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_owned())
}

fn status(msg: &str) -> Option<u16> {
    msg.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

/// The SIP core: replaces any P-Asserted-Identity with the registered identity.
fn assert_identity(msg: &[u8], impu: &str) -> Vec<u8> {
    let text = String::from_utf8(msg.to_vec()).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines: Vec<&str> = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("p-asserted-identity:"))
        .collect();
    let pai = format!("P-Asserted-Identity: <{impu}>");
    lines.insert(1, &pai);
    format!("{}\r\n\r\n{body}", lines.join("\r\n")).into_bytes()
}

fn info(token: &str) -> McpttInfo {
    McpttInfo {
        access_token: Some(token.to_owned()),
        client_id: Some("mcptt-client".into()),
        request_uri: Some(PSI.into()),
    }
}

/// The virtual epoch and a time base pairing it with the real wall clock (so the key
/// expiries Redis applies lie in the future of the virtual clock's start).
#[allow(clippy::disallowed_methods)]
fn epoch() -> (Instant, TimeBase) {
    let tb = TimeBase::system();
    (Instant::now(), tb)
}

fn config(url: &str) -> RedisStoreConfig {
    RedisStoreConfig {
        url: url.to_owned(),
        buckets: 4,
        response_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_millis(300),
        // Tests step a virtual clock: scan on every poll_timeout.
        expiry_cache: Duration::ZERO,
        ..RedisStoreConfig::default()
    }
}

// ---- two instances over one Redis -----------------------------------------------------

/// A UE-side client and what it saw.
struct SubSide {
    impu: String,
    sub: Subscriber<SplitMix64>,
    states: Vec<ServiceState>,
}

/// Two instances (index 0 = A, 1 = B), publishers and subscribers; messages are routed by
/// hand to the instance each step names, changes through each instance's real feed.
struct Duo {
    t0: Instant,
    now: Instant,
    tb: TimeBase,
    idms: Idms,
    /// A Redis node to publish the feed sentinel on.
    url: String,
    cfg: RedisStoreConfig,
    servers: Vec<Option<Srv>>,
    feeds: Vec<Option<ServiceStateFeed>>,
    pubs: Vec<(String, Publisher<SplitMix64>)>,
    subs: Vec<SubSide>,
    /// Call-ID -> subscriber index.
    dialogs: HashMap<String, usize>,
    notifies: [usize; 2],
    events: [Vec<ServerEvent>; 2],
    sentinel: u64,
    seed: u64,
}

impl Duo {
    fn new(redis: &support::Server, directory: UeDirectory) -> Self {
        Self::on(config(&redis.url()), redis.url(), directory)
    }

    fn on(cfg: RedisStoreConfig, url: String, directory: UeDirectory) -> Self {
        let (t0, tb) = epoch();
        let idms = Idms::new();
        let mut duo = Self {
            t0,
            now: t0,
            tb,
            idms,
            url,
            cfg,
            servers: vec![None, None],
            feeds: vec![None, None],
            pubs: Vec::new(),
            subs: Vec::new(),
            dialogs: HashMap::new(),
            notifies: [0, 0],
            events: [Vec::new(), Vec::new()],
            sentinel: 0,
            seed: 100,
        };
        for i in 0..2 {
            duo.start(i, directory.clone());
        }
        duo
    }

    /// Starts instance `i` (again), with its own store connection and change feed.
    fn start(&mut self, i: usize, directory: UeDirectory) {
        let store = RedisServiceStateStore::new(self.cfg.clone(), self.tb).unwrap();
        let feed = store.subscribe_changes().unwrap();
        let mut cfg = ServerConfig::new(HOST, PSI);
        cfg.directory = directory;
        cfg.instance_id = i as u64 + 1;
        self.servers[i] = Some(Server::with_store(
            cfg,
            self.idms.validator(),
            SplitMix64(7 + i as u64 + self.seed),
            store,
        ));
        self.feeds[i] = Some(feed);
        self.seed += 10;
    }

    /// Instance `i` stops (crashes): it never runs again.
    fn stop(&mut self, i: usize) {
        self.servers[i] = None;
        self.feeds[i] = None;
    }

    fn srv(&mut self, i: usize) -> &mut Srv {
        self.servers[i].as_mut().expect("instance running")
    }

    fn unix(&self) -> u64 {
        T0_UNIX + self.now.duration_since(self.t0).as_secs()
    }

    fn token(&mut self, user: &str, lifetime: u64) -> String {
        let unix = self.unix();
        self.idms.token(user, unix, lifetime)
    }

    fn add_pub(&mut self, impu: &str) -> usize {
        self.seed += 1;
        let cfg = UeConfig::new(impu, "ue.example.org", PSI);
        self.pubs.push((
            impu.into(),
            Publisher::new(cfg, SplitMix64(self.seed), 3600),
        ));
        self.pubs.len() - 1
    }

    fn add_sub(&mut self, impu: &str) -> usize {
        self.seed += 1;
        let cfg = UeConfig::new(impu, "ue.example.org", PSI);
        self.subs.push(SubSide {
            impu: impu.into(),
            sub: Subscriber::new(cfg, SplitMix64(self.seed), 600),
            states: Vec::new(),
        });
        self.subs.len() - 1
    }

    fn register(&mut self, on: usize, impu: &str, registered: bool) {
        let change = RegistrationChange {
            impu: impu.into(),
            instance: Some("<urn:uuid:00000000-0000-0000-0000-000000000001>".into()),
            registered,
        };
        let now = self.now;
        self.srv(on).handle_registration(now, change);
        self.route(on);
    }

    /// Sends `bytes` from `impu` to instance `on`; returns the response (text).
    fn send(&mut self, on: usize, impu: &str, bytes: &[u8]) -> String {
        let bytes = assert_identity(bytes, impu);
        let (now, unix) = (self.now, self.unix());
        self.srv(on).handle_request(now, unix, &req(&bytes));
        let response = self.srv(on).poll_transmit().expect("a response");
        let text = String::from_utf8(response.bytes).unwrap();
        assert!(status(&text).is_some(), "a response first: {text}");
        text
    }

    /// A PUBLISH of `token` by publisher `p` through instance `on`: the response status.
    fn publish(&mut self, on: usize, p: usize, token: &str) -> (u16, String) {
        let now = self.now;
        let (impu, publisher) = &mut self.pubs[p];
        publisher.publish(now, token, Some("mcptt-client"), None);
        let bytes = publisher.poll_transmit().unwrap().bytes;
        let impu = impu.clone();
        self.publish_bytes(on, p, &impu, &bytes)
    }

    fn publish_bytes(&mut self, on: usize, p: usize, impu: &str, bytes: &[u8]) -> (u16, String) {
        let text = self.send(on, impu, bytes);
        let now = self.now;
        let _ = self.pubs[p].1.handle_response(now, &resp(text.as_bytes()));
        self.route(on);
        (status(&text).unwrap_or(0), text)
    }

    fn subscribe(&mut self, on: usize, s: usize, info: Option<McpttInfo>) -> u16 {
        let now = self.now;
        self.subs[s].sub.subscribe(now, info).unwrap();
        self.sub_request(on, s)
    }

    fn refresh(&mut self, on: usize, s: usize) -> u16 {
        let now = self.now;
        self.subs[s].sub.refresh(now).unwrap();
        self.sub_request(on, s)
    }

    fn sub_request(&mut self, on: usize, s: usize) -> u16 {
        let bytes = self.subs[s].sub.poll_transmit().unwrap().bytes;
        let call_id = header(std::str::from_utf8(&bytes).unwrap(), "Call-ID").unwrap();
        self.dialogs.insert(call_id, s);
        let impu = self.subs[s].impu.clone();
        let text = self.send(on, &impu, &bytes);
        let now = self.now;
        let _ = self.subs[s]
            .sub
            .handle_response(now, &resp(text.as_bytes()));
        self.route(on);
        status(&text).unwrap_or(0)
    }

    /// Delivers what instance `on` sent (NOTIFYs) to the subscribers and their answers back.
    fn route(&mut self, on: usize) {
        let now = self.now;
        while let Some(t) = self.srv(on).poll_transmit() {
            let text = String::from_utf8(t.bytes.clone()).unwrap();
            assert!(text.starts_with("NOTIFY "), "unexpected {text}");
            self.notifies[on] += 1;
            let s = *self
                .dialogs
                .get(&header(&text, "Call-ID").unwrap())
                .expect("a NOTIFY for a known dialog");
            self.subs[s]
                .sub
                .handle_request(now, &req(&t.bytes))
                .unwrap();
            while let Some(answer) = self.subs[s].sub.poll_transmit() {
                self.srv(on).handle_response(now, &resp(&answer.bytes));
            }
            while let Some(e) = self.subs[s].sub.poll_event() {
                if let SubscriberEvent::State(st) = e {
                    self.subs[s].states.push(st);
                }
            }
        }
        while let Some(e) = self.srv(on).poll_event() {
            self.events[on].push(e);
        }
    }

    /// Hands instance `on` every change other instances wrote so far, through its feed: a
    /// sentinel published after them marks the end (Redis delivers in execution order).
    fn propagate(&mut self, on: usize) -> usize {
        self.sentinel += 1;
        let mark = format!("sentinel-{}", self.sentinel);
        let mut c = redis::Client::open(self.url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        let channel = self.srv(on).store().change_channel();
        let _: i64 = c.publish(channel, format!("0 0 u{mark}")).unwrap();
        let now = self.now;
        let mut n = 0;
        loop {
            let key = self.feeds[on]
                .as_mut()
                .unwrap()
                .next(FEED_WAIT)
                .unwrap()
                .expect("the sentinel arrives");
            if key == StoreKey::Ue(mark.clone()) {
                break;
            }
            n += 1;
            self.srv(on).handle_remote_change(now, &key).unwrap();
        }
        self.route(on);
        n
    }

    /// Runs instance `on`'s timers at the current virtual time.
    fn tick(&mut self, on: usize) {
        let now = self.now;
        self.srv(on).handle_timeout(now);
        self.route(on);
    }

    fn states(&self, s: usize) -> &[ServiceState] {
        &self.subs[s].states
    }

    fn last(&self, s: usize) -> &ServiceState {
        self.subs[s].states.last().expect("a NOTIFY with a state")
    }

    fn store(&self) -> RedisServiceStateStore {
        RedisServiceStateStore::new(self.cfg.clone(), self.tb).unwrap()
    }
}

#[test]
fn publish_on_a_subscribe_on_b_notified_once_by_b_through_the_feed() {
    let redis = support::Server::start(false);
    let mut d = Duo::new(&redis, UeDirectory::new());
    d.register(0, UE1, true);
    let p = d.add_pub(UE1);
    let s = d.add_sub(UE1);
    let token = d.token(ALICE, 3600);
    // Subscribed on B first, naming the user with its token: limited (registered only).
    assert_eq!(d.subscribe(1, s, Some(info(&token))), 200);
    assert_eq!(d.last(s).state, CombinedState::Limited);
    assert_eq!(d.last(s).registration, RegistrationState::Registered);
    let seen = d.states(s).len();
    // The PUBLISH lands on A, which holds no dialog: A sends no NOTIFY.
    assert_eq!(d.publish(0, p, &token).0, 200);
    assert_eq!(d.notifies[0], 0);
    // B's feed hands it the change (ServiceStateFeed::deliver): B NOTIFYs full access, once.
    let now = d.now;
    let delivered = {
        let feed = d.feeds[1].as_mut().unwrap();
        let server = d.servers[1].as_mut().unwrap();
        feed.deliver(server, now, FEED_WAIT, 64).unwrap()
    };
    assert!(delivered >= 1, "the UE change reached B");
    d.route(1);
    d.propagate(1);
    assert_eq!(d.states(s).len(), seen + 1, "{:?}", d.events);
    let st = d.last(s).clone();
    assert_eq!(st.state, CombinedState::FullAccess);
    assert_eq!(st.authorisation, AuthorisationState::Authorised);
    // A's own writes never come back to A through its feed; B's SUBSCRIBE-time writes
    // reach A without NOTIFYs (A holds no dialog).
    d.propagate(0);
    assert_eq!(d.notifies[0], 0);
    // A duplicate of the change is not NOTIFYed again.
    let now = d.now;
    d.srv(1)
        .handle_remote_change(now, &StoreKey::Ue(UE1.into()))
        .unwrap();
    d.route(1);
    assert_eq!(d.states(s).len(), seen + 1);
    // Both instances agree on the state and its version.
    let a = d.srv(0).state(UE1, ALICE).unwrap();
    let b = d.srv(1).state(UE1, ALICE).unwrap();
    assert_eq!((a.version, a.state), (b.version, b.state));
    assert_eq!(a.version, st.version);
}

#[test]
fn token_expiry_on_a_and_deregistration_on_a_are_notified_by_b() {
    let redis = support::Server::start(false);
    let mut d = Duo::new(&redis, UeDirectory::new());
    d.register(0, UE1, true);
    let p = d.add_pub(UE1);
    let s = d.add_sub(UE1);
    let token = d.token(ALICE, 300);
    assert_eq!(d.publish(0, p, &token).0, 200);
    // SUBSCRIBE on B without a body: B finds the signed-in user in Redis.
    assert_eq!(d.subscribe(1, s, None), 200);
    assert_eq!(d.last(s).state, CombinedState::FullAccess);
    d.propagate(0);
    let seen = d.states(s).len();
    // B renews its dialog lease meanwhile (its timers run; the token has not expired).
    for t in (30..300).step_by(30) {
        d.now = d.t0 + Duration::from_secs(t);
        d.tick(1);
    }
    d.propagate(0);
    assert_eq!(d.states(s).len(), seen);
    // A's timer (Redis's deadline index lists the UE) applies the token expiry.
    d.now = d.t0 + Duration::from_secs(300);
    d.tick(0);
    assert_eq!(d.notifies[0], 0, "A holds no dialog");
    assert_eq!(
        d.states(s).len(),
        seen,
        "nothing reached the subscriber yet"
    );
    d.propagate(1);
    assert_eq!(d.states(s).len(), seen + 1);
    assert_eq!(d.last(s).authorisation, AuthorisationState::Expired);
    assert_eq!(d.last(s).state, CombinedState::Limited);
    // B's own timers find the expiry applied: no second NOTIFY.
    d.tick(1);
    assert_eq!(d.states(s).len(), seen + 1);
    // The UE deregisters through A: B NOTIFYs "not registered", once.
    d.register(0, UE1, false);
    assert_eq!(d.notifies[0], 0);
    d.propagate(1);
    assert_eq!(d.states(s).len(), seen + 2);
    assert_eq!(d.last(s).registration, RegistrationState::NotRegistered);
    assert_eq!(d.last(s).state, CombinedState::None);
    d.propagate(1);
    assert_eq!(d.states(s).len(), seen + 2);
}

#[test]
fn dialog_taken_over_after_the_holder_stops_and_refreshes_work_on_the_other_instance() {
    let redis = support::Server::start(false);
    let mut d = Duo::new(&redis, UeDirectory::new());
    d.register(0, UE1, true);
    let p = d.add_pub(UE1);
    let s = d.add_sub(UE1);
    let token = d.token(ALICE, 7200);
    assert_eq!(d.publish(1, p, &token).0, 200);
    // B holds the dialog, then dies.
    assert_eq!(d.subscribe(1, s, None), 200);
    let lease = d.srv(1).config().dialog_lease;
    d.stop(1);
    d.propagate(0);
    let seen = d.states(s).len();
    // Before the lease ran out, A leaves the dialog alone.
    d.now = d.t0 + lease - Duration::from_secs(1);
    d.tick(0);
    assert_eq!(d.srv(0).subscription_count(), 0);
    // A's poll_timeout (Redis's earliest deadline) wakes it at the lease end; it takes over.
    let wake = d.srv(0).poll_timeout().unwrap();
    assert!(
        wake <= d.t0 + lease + Duration::from_millis(1),
        "A wakes for the lease end"
    );
    d.now = wake.max(d.t0 + lease);
    d.tick(0);
    assert_eq!(d.srv(0).subscription_count(), 1);
    assert!(d.events[0].iter().any(|e| matches!(
        e,
        ServerEvent::SubscriptionCreated { impu, .. } if impu == UE1
    )));
    assert_eq!(
        d.states(s).len(),
        seen,
        "no NOTIFY for the take-over itself"
    );
    // The UE's next PUBLISH refresh (same entity-tag) and SUBSCRIBE refresh land on A.
    d.now += Duration::from_secs(60);
    let token = d.token(ALICE, 600);
    assert_eq!(d.publish(0, p, &token).0, 200);
    assert_eq!(
        d.states(s).len(),
        seen + 1,
        "A NOTIFYs in the taken-over dialog"
    );
    assert_eq!(d.last(s).token_expires, Some(d.unix() + 600));
    assert_eq!(d.refresh(0, s), 200);
    assert_eq!(d.last(s).state, CombinedState::FullAccess);
    // B comes back (a new process): the dialog is A's, a change through B is NOTIFYed by
    // A only.
    d.start(1, UeDirectory::new());
    let before = (d.notifies, d.states(s).len());
    d.now += Duration::from_secs(10);
    let token = d.token(ALICE, 900);
    assert_eq!(d.publish(1, p, &token).0, 200);
    assert_eq!(d.notifies[1], before.0[1]);
    d.propagate(0);
    assert_eq!(d.states(s).len(), before.1 + 1);
    assert_eq!(d.notifies[0], before.0[0] + 1);
    assert_eq!(d.last(s).token_expires, Some(d.unix() + 900));
}

#[test]
fn shareable_take_over_and_gateway_users_with_instances_mixed() {
    let redis = support::Server::start(false);
    let dir = UeDirectory::new()
        .with(SHARED, UeKind::Shareable)
        .with(GW, UeKind::Gateway);
    let mut d = Duo::new(&redis, dir);
    d.register(0, SHARED, true);
    d.register(1, GW, true);
    // Shareable: Alice signs in on A, subscribes on B; Bob takes the UE through A.
    let pa = d.add_pub(SHARED);
    let pb = d.add_pub(SHARED);
    let sa = d.add_sub(SHARED);
    let ta = d.token(ALICE, 3600);
    assert_eq!(d.publish(0, pa, &ta).0, 200);
    assert_eq!(d.subscribe(1, sa, None), 200);
    assert_eq!(d.last(sa).authorisation, AuthorisationState::Authorised);
    d.propagate(0);
    let tb = d.token(BOB, 3600);
    assert_eq!(d.publish(0, pb, &tb).0, 200);
    d.propagate(1);
    assert_eq!(d.notifies[0], 0, "A holds no dialog");
    assert_eq!(
        d.srv(1).state(SHARED, BOB).map(|s| s.state),
        Some(CombinedState::FullAccess),
        "B sees Bob's sign-in"
    );
    // Alice's old entity-tag refreshes nothing any more, on either instance.
    d.now += Duration::from_secs(60);
    let ta2 = d.token(ALICE, 3600);
    assert_eq!(d.publish(1, pa, &ta2).0, 412);
    assert_eq!(
        d.srv(1).state(SHARED, BOB).map(|s| s.state),
        Some(CombinedState::FullAccess)
    );

    // Gateway: Alice through A and Bob through B on the same UE, subscriptions crossed.
    let ga = d.add_pub(GW);
    let gb = d.add_pub(GW);
    let ta = d.token(ALICE, 3600);
    let tb = d.token(BOB, 4200);
    assert_eq!(d.publish(0, ga, &ta).0, 200);
    d.propagate(1);
    assert_eq!(d.publish(1, gb, &tb).0, 200);
    d.propagate(0);
    let s_alice = d.add_sub(GW);
    let s_bob = d.add_sub(GW);
    assert_eq!(d.subscribe(1, s_alice, Some(info(&ta))), 200);
    assert_eq!(d.subscribe(0, s_bob, Some(info(&tb))), 200);
    for (s, user) in [(s_alice, ALICE), (s_bob, BOB)] {
        let st = d.last(s);
        assert_eq!(
            (st.mcptt_id.as_str(), st.state, st.ue_kind),
            (user, CombinedState::FullAccess, UeKind::Gateway)
        );
    }
    // Bob signs off through A: only Bob's subscriber (held by A) hears of it.
    d.propagate(0);
    d.propagate(1);
    let (na, nb) = (d.states(s_alice).len(), d.states(s_bob).len());
    d.now += Duration::from_secs(1);
    let now = d.now;
    d.pubs[gb].1.sign_off(now).unwrap();
    let bytes = d.pubs[gb].1.poll_transmit().unwrap().bytes;
    assert_eq!(d.publish_bytes(0, gb, GW, &bytes).0, 200);
    d.propagate(1);
    assert_eq!(d.states(s_bob).len(), nb + 1);
    assert_eq!(d.last(s_bob).authorisation, AuthorisationState::SignedOff);
    assert_eq!(d.states(s_alice).len(), na, "Alice saw no change");
}

/// Bob's sign-in is handled by the instance that does not hold Alice's dialog; it drops
/// Alice from the UE record, and the holder infers the replacement from the record.
#[test]
fn shareable_replacement_through_the_non_holder_is_notified() {
    let redis = support::Server::start(false);
    let mut d = Duo::new(&redis, UeDirectory::new().with(SHARED, UeKind::Shareable));
    d.register(0, SHARED, true);
    let pa = d.add_pub(SHARED);
    let pb = d.add_pub(SHARED);
    let sa = d.add_sub(SHARED);
    let ta = d.token(ALICE, 3600);
    assert_eq!(d.publish(0, pa, &ta).0, 200);
    assert_eq!(d.subscribe(1, sa, None), 200);
    d.propagate(0);
    let tb = d.token(BOB, 3600);
    assert_eq!(d.publish(0, pb, &tb).0, 200);
    d.propagate(1);
    let st = d.last(sa);
    assert_eq!(
        (st.mcptt_id.as_str(), st.authorisation),
        (ALICE, AuthorisationState::Replaced)
    );
}

#[test]
fn redis_restart_with_aof_keeps_state_and_the_feed_resyncs() {
    let mut redis = support::Server::start(true);
    let mut d = Duo::new(&redis, UeDirectory::new());
    d.register(0, UE1, true);
    let p = d.add_pub(UE1);
    let s = d.add_sub(UE1);
    let token = d.token(ALICE, 3600);
    assert_eq!(d.publish(0, p, &token).0, 200);
    assert_eq!(d.subscribe(1, s, None), 200);
    d.propagate(0);
    let probe = d.store();
    let ue_before = probe.load_ue(UE1).unwrap().expect("stored");
    redis.restart();
    // Everything is still there, versions included.
    assert_eq!(probe.load_ue(UE1).unwrap(), Some(ue_before));
    // B's feed reconnected by itself: it reports that changes may have been missed.
    let mut saw_reconnect = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !saw_reconnect && Instant::now() < deadline {
        let feed = d.feeds[1].as_mut().unwrap();
        let _ = feed.next(Duration::from_millis(200));
        saw_reconnect = feed.is_connected() && feed.take_resync();
    }
    assert!(saw_reconnect, "the feed reconnected and asked for a resync");
    // A change made through A while B's feed was away is caught by B's resync.
    d.now += Duration::from_secs(60);
    let seen = d.states(s).len();
    let token = d.token(ALICE, 600);
    assert_eq!(d.publish(0, p, &token).0, 200);
    let now = d.now;
    d.srv(1).resync(now).unwrap();
    d.route(1);
    assert_eq!(d.states(s).len(), seen + 1);
    assert_eq!(d.last(s).token_expires, Some(d.unix() + 600));
    // The refresh with the surviving entity-tag works on B.
    d.now += Duration::from_secs(60);
    let token = d.token(ALICE, 900);
    assert_eq!(d.publish(1, p, &token).0, 200);
    assert_eq!(d.last(s).token_expires, Some(d.unix() + 900));
}

#[test]
fn redis_down_means_503_with_retry_after_and_recovery() {
    let mut redis = support::Server::start(true);
    let mut d = Duo::new(&redis, UeDirectory::new());
    d.register(0, UE1, true);
    let p = d.add_pub(UE1);
    let s = d.add_sub(UE1);
    let token = d.token(ALICE, 3600);
    assert_eq!(d.publish(0, p, &token).0, 200);
    assert_eq!(d.subscribe(1, s, None), 200);
    let before = d.srv(1).state(UE1, ALICE).unwrap();
    let stored = d.store().load_ue(UE1).unwrap();
    // B's feed is up to date before Redis goes away.
    d.propagate(1);
    redis.kill();
    // (Within B's dialog lease: B stays the holder.)
    d.now += Duration::from_secs(30);
    let token = d.token(ALICE, 600);
    let (code, text) = d.publish(1, p, &token);
    assert_eq!(code, 503, "{text}");
    assert!(header(&text, "Retry-After").is_some(), "{text}");
    assert!(header(&text, "SIP-ETag").is_none(), "{text}");
    assert!(
        d.events[1]
            .iter()
            .any(|e| matches!(e, ServerEvent::StoreUnavailable { .. }))
    );
    assert_eq!(
        d.srv(1).state(UE1, ALICE).unwrap(),
        before,
        "nothing changed"
    );
    assert!(
        d.srv(1)
            .store()
            .take_error()
            .is_some_and(|e| e.contains("redis")),
        "the failure is kept for the log"
    );
    // Unreachable is never mistaken for "no state".
    assert!(matches!(
        d.srv(0).store().load_ue(UE1),
        Err(StoreError::Unavailable(_))
    ));
    let now = d.now;
    assert!(matches!(
        d.srv(0).store().due(now, 9),
        Err(StoreError::Unavailable(_))
    ));
    // Redis is back: the record is as it was, and the same refresh now goes through.
    redis.restart();
    assert_eq!(d.store().load_ue(UE1).unwrap(), stored);
    let now = d.now;
    d.pubs[p].1.handle_timeout(now + Duration::from_secs(5));
    let retry = d.pubs[p].1.poll_transmit();
    let bytes = match retry {
        Some(t) => t.bytes,
        None => {
            d.pubs[p].1.publish(now, &token, Some("mcptt-client"), None);
            d.pubs[p].1.poll_transmit().unwrap().bytes
        }
    };
    // The refresh lands on A; B (holding the dialog) learns of it through its feed, which
    // lost its connection meanwhile: `deliver` reconnects, resyncs and NOTIFYs once.
    let seen = d.states(s).len();
    let (code, text) = d.publish_bytes(0, p, UE1, &bytes);
    assert_eq!(code, 200, "{text}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.states(s).len() == seen && Instant::now() < deadline {
        let now = d.now;
        let feed = d.feeds[1].as_mut().unwrap();
        // Errors while the listener reconnects; it does so by itself.
        let _ = feed.deliver(
            d.servers[1].as_mut().unwrap(),
            now,
            Duration::from_millis(100),
            64,
        );
        d.route(1);
    }
    assert_eq!(d.states(s).len(), seen + 1);
    assert_eq!(d.last(s).token_expires, Some(d.unix() + 600));
    assert!(d.feeds[1].as_ref().unwrap().is_connected());
    assert!(
        !d.feeds[1].as_mut().unwrap().take_resync(),
        "deliver resynced"
    );
    // Nothing more comes (the change message, if it came too, was not NOTIFYed again).
    d.propagate(1);
    assert_eq!(d.states(s).len(), seen + 1);
    assert_eq!(d.notifies[0], 0);
}

#[test]
fn many_ues_refreshing_through_both_instances_lose_no_update() {
    const UES: usize = 3;
    const ROUNDS: u64 = 30;
    let redis = support::Server::start(false);
    let (t0, tb) = epoch();
    let mut idms = Idms::new();
    let impus: Vec<String> = (0..UES).map(|i| format!("sip:gw{i}@example.org")).collect();
    let mut dir = UeDirectory::new();
    for i in &impus {
        dir.insert(i.clone(), UeKind::Gateway);
    }
    // Every UE is registered once.
    {
        let mut cfg = ServerConfig::new(HOST, PSI);
        cfg.directory = dir.clone();
        let store = RedisServiceStateStore::new(config(&redis.url()), tb).unwrap();
        let mut srv = Server::with_store(cfg, idms.validator(), SplitMix64(1), store);
        for impu in &impus {
            srv.handle_registration(
                t0,
                RegistrationChange {
                    impu: impu.clone(),
                    instance: None,
                    registered: true,
                },
            );
        }
        assert!(srv.poll_transmit().is_none());
    }
    // Instance i signs user i in on every UE, then refreshes with a new token each round;
    // both instances write the same UE records at the same time.
    let users = [ALICE, BOB];
    let tokens: Vec<Vec<Vec<(u64, String)>>> = users
        .iter()
        .map(|u| {
            (0..ROUNDS)
                .map(|r| {
                    (0..UES)
                        .map(|i| {
                            let life = 3600 + 10 * r + i as u64;
                            (T0_UNIX + life, idms.token(u, T0_UNIX, life))
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|inst| {
            let mut cfg = ServerConfig::new(HOST, PSI);
            cfg.directory = dir.clone();
            cfg.instance_id = inst as u64 + 1;
            let store = RedisServiceStateStore::new(config(&redis.url()), tb).unwrap();
            let validator = idms.validator();
            let tokens = tokens[inst].clone();
            let impus = impus.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut srv =
                    Server::with_store(cfg, validator, SplitMix64(50 + inst as u64), store);
                let mut pubs: Vec<Publisher<SplitMix64>> = impus
                    .iter()
                    .enumerate()
                    .map(|(i, impu)| {
                        let cfg = UeConfig::new(impu.as_str(), "gw.example.org", PSI);
                        Publisher::new(cfg, SplitMix64(1000 * inst as u64 + i as u64), 3600)
                    })
                    .collect();
                // The model: the token `exp` of the last PUBLISH answered 200, per UE.
                let mut model: Vec<Option<u64>> = vec![None; impus.len()];
                let mut refused = 0;
                barrier.wait();
                for (r, round) in tokens.iter().enumerate() {
                    for (i, (exp, token)) in round.iter().enumerate() {
                        let now = t0 + Duration::from_secs(r as u64);
                        pubs[i].publish(now, token, Some("mcptt-client"), None);
                        let bytes = pubs[i].poll_transmit().unwrap().bytes;
                        let bytes = assert_identity(&bytes, &impus[i]);
                        srv.handle_request(now, T0_UNIX + r as u64, &req(&bytes));
                        let out = srv.poll_transmit().unwrap();
                        let text = String::from_utf8(out.bytes).unwrap();
                        let _ = pubs[i].handle_response(now, &resp(text.as_bytes()));
                        match status(&text) {
                            Some(200) => model[i] = Some(*exp),
                            // Conflicts kept recurring: refused, so nothing may be stored.
                            Some(500) => refused += 1,
                            other => panic!("unexpected answer {other:?}: {text}"),
                        }
                    }
                }
                (model, refused, srv.store().conflicts())
            })
        })
        .collect();
    let results: Vec<(Vec<Option<u64>>, usize, u64)> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();
    let probe = RedisServiceStateStore::new(config(&redis.url()), tb).unwrap();
    let mut answered = 0;
    for (i, impu) in impus.iter().enumerate() {
        let (_, rec) = probe.load_ue(impu).unwrap().expect("record");
        assert_eq!(rec.instances.len(), 1, "registration kept: {rec:?}");
        for (inst, user) in users.iter().enumerate() {
            let stored = rec
                .users
                .iter()
                .find(|u| &*u.mcptt_id == *user)
                .map(|u| match u.auth {
                    AuthRecord::Authorised { token_exp, .. } => token_exp,
                    ref other => panic!("{user} on {impu}: {other:?}"),
                });
            assert_eq!(stored, results[inst].0[i], "{user} on {impu}");
            answered += usize::from(stored.is_some());
        }
    }
    assert_eq!(answered, 2 * UES, "every user signed in on every UE");
    let refused: usize = results.iter().map(|r| r.1).sum();
    let conflicts: u64 = results.iter().map(|r| r.2).sum();
    eprintln!("{conflicts} write conflicts, {refused} PUBLISHes answered 500");
    assert!(
        refused < 2 * UES * ROUNDS as usize / 2,
        "most refreshes went through"
    );
}

#[test]
fn two_instances_over_a_three_node_cluster() {
    let cluster = support::Cluster::start();
    let urls = cluster.urls();
    let cfg = RedisStoreConfig {
        cluster_nodes: urls.clone(),
        buckets: 16,
        response_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_millis(500),
        expiry_cache: Duration::ZERO,
        ..RedisStoreConfig::default()
    };
    let mut d = Duo::on(cfg, urls[0].clone(), UeDirectory::new());
    // Several UEs, so the buckets' hash tags spread the records over the nodes.
    let ues: Vec<String> = (0..12).map(|i| format!("sip:ue{i}@example.org")).collect();
    let mut subs = Vec::new();
    for (i, ue) in ues.iter().enumerate() {
        d.register(i % 2, ue, true);
        let p = d.add_pub(ue);
        let token = d.token(ALICE, 300 + i as u64);
        assert_eq!(d.publish(i % 2, p, &token).0, 200);
        let s = d.add_sub(ue);
        assert_eq!(d.subscribe(1 - i % 2, s, None), 200);
        assert_eq!(d.last(s).state, CombinedState::FullAccess);
        subs.push(s);
    }
    let counts = cluster.key_counts();
    assert!(counts.iter().all(|&k| k > 0), "keys per node {counts:?}");
    d.propagate(0);
    d.propagate(1);
    // Token expiries spread over the nodes: each instance's timers (the due scan across
    // all nodes) apply some; each holder NOTIFYs its dialogs once.
    d.now = d.t0 + Duration::from_secs(400);
    d.tick(0);
    d.tick(1);
    d.propagate(0);
    d.propagate(1);
    for &s in &subs {
        assert_eq!(d.states(s).len(), 2, "one expiry NOTIFY per subscriber");
        assert_eq!(d.last(s).authorisation, AuthorisationState::Expired);
    }
    assert_eq!(d.notifies[0] + d.notifies[1], 2 * ues.len());
}

// ---- the store on its own ---------------------------------------------------------

fn ue_record(t: Instant, secs: u64, registered: bool) -> UeRecord {
    UeRecord {
        last_version: 3,
        kind: UeKind::Personal,
        instances: if registered {
            Arc::from([Arc::from("<urn:uuid:1>")])
        } else {
            Arc::from([])
        },
        users: vec![UserRecord {
            mcptt_id: ALICE.into(),
            auth: AuthRecord::Authorised {
                publication: PublicationRecord {
                    etag: 0x1234_5678_9abc_def0,
                    expires_at: t + Duration::from_secs(secs),
                },
                token_deadline: t + Duration::from_secs(secs / 2),
                token_exp: T0_UNIX + secs / 2,
            },
            version: 3,
        }],
    }
}

fn dialog_record(t: Instant, holder: u64, lease: u64) -> DialogRecord {
    DialogRecord {
        impu: UE1.into(),
        mcptt_id: ALICE.into(),
        call_id: "c1@ue1".into(),
        their_tag: "t1".into(),
        local_uri: PSI.into(),
        remote_uri: UE1.into(),
        remote_target: "sip:ue1@192.0.2.1:5061;transport=tls".into(),
        route_set: vec!["<sip:core.example.org;lr>".to_owned()].into(),
        local_cseq: 2,
        remote_cseq: 1,
        event_id: None,
        expires_at: t + Duration::from_secs(600),
        holder,
        lease_expires: t + Duration::from_secs(lease),
        notified_version: 3,
    }
}

/// Same record up to the store's millisecond resolution (deadlines never earlier).
fn same_ue(got: &UeRecord, want: &UeRecord) {
    assert_eq!(
        (got.last_version, got.kind, &got.instances, got.users.len()),
        (
            want.last_version,
            want.kind,
            &want.instances,
            want.users.len()
        )
    );
    for (g, w) in got.users.iter().zip(&want.users) {
        assert_eq!((&g.mcptt_id, g.version), (&w.mcptt_id, w.version));
        let (Some(gd), Some(wd)) = (g.auth.next_deadline(), w.auth.next_deadline()) else {
            assert_eq!(g.auth, w.auth);
            continue;
        };
        assert!(gd >= wd && gd - wd < Duration::from_millis(1));
    }
}

#[test]
fn versioned_writes_ttls_round_trips_and_the_deadline_index() {
    let redis = support::Server::start(false);
    let (t, tb) = epoch();
    let mut s = RedisServiceStateStore::new(config(&redis.url()), tb).unwrap();
    assert_eq!(s.load_ue(UE1), Ok(None));
    let rec = ue_record(t, 600, true);
    let v1 = s.write_ue(UE1, 0, rec.clone()).unwrap();
    assert_eq!(
        s.write_ue(UE1, 0, rec.clone()),
        Err(StoreError::Conflict { current: v1 })
    );
    let (v, got) = s.load_ue(UE1).unwrap().unwrap();
    assert_eq!(v, v1);
    same_ue(&got, &rec);
    // load_ue_if_changed: one round trip, nothing copied when unchanged (once Redis has
    // the script: the first call per connection adds an EVAL after NOSCRIPT).
    assert_eq!(s.load_ue_if_changed(UE1, v1), Ok(None));
    let rt = s.round_trips();
    assert_eq!(s.load_ue_if_changed(UE1, v1), Ok(None));
    assert_eq!(s.round_trips() - rt, 1);
    assert_eq!(
        s.load_ue_if_changed(UE1, v1 + 1).unwrap().map(|l| l.0),
        Some(v1)
    );
    assert_eq!(
        s.load_ue_if_changed("sip:nobody@x", 5),
        Ok(Some((0, UeRecord::default())))
    );
    assert_eq!(s.load_ue_if_changed("sip:nobody@x", 0), Ok(None));
    // A write is one round trip once the script is cached.
    let rt = s.round_trips();
    let v2 = s.write_ue(UE1, v1, rec.clone()).unwrap();
    assert!(v2 > v1);
    assert_eq!(s.round_trips() - rt, 1);
    // A registered UE's record persists; an unregistered one expires in Redis at its last
    // deadline plus the grace.
    let mut c = redis.conn();
    let key = s.record_key(&StoreKey::Ue(UE1.into()));
    assert!(key.starts_with("{mcptt:ss:") && key.ends_with(&format!(":ue:{UE1}")));
    assert_eq!(c.pttl::<_, i64>(&key).unwrap(), -1);
    let v3 = s.write_ue(UE1, v2, ue_record(t, 600, false)).unwrap();
    let at: i64 = redis::cmd("PEXPIRETIME").arg(&key).query(&mut c).unwrap();
    let want = tb.to_unix_ms_ceil(t + Duration::from_secs(600)) + 60_000;
    assert_eq!(at, want);
    // The deadline index: the token deadline (300 s) is the UE's deadline, never early.
    assert_eq!(
        s.next_expiry().map(|e| e >= t + Duration::from_secs(300)),
        Some(true)
    );
    assert!(s.due(t + Duration::from_secs(299), 9).unwrap().is_empty());
    assert_eq!(
        s.due(t + Duration::from_secs(300) + Duration::from_millis(1), 9)
            .unwrap(),
        vec![StoreKey::Ue(UE1.into())]
    );
    // Dialogs: deadline = lease end, key expiry = later of subscription end and lease.
    let tag = 0xfeed_0000_0000_0001;
    let dv = s
        .write_dialog(tag, 0, Some(dialog_record(t, 1, 60)))
        .unwrap();
    let (gv, gd) = s.load_dialog(tag).unwrap().unwrap();
    assert_eq!((gv, gd.holder, gd.call_id.as_ref()), (dv, 1, "c1@ue1"));
    let dkey = s.record_key(&StoreKey::Dialog(tag));
    let at: i64 = redis::cmd("PEXPIRETIME").arg(&dkey).query(&mut c).unwrap();
    assert_eq!(
        at,
        tb.to_unix_ms_ceil(t + Duration::from_secs(600)) + 60_000
    );
    assert_eq!(
        s.due(t + Duration::from_secs(400), 9).unwrap(),
        vec![StoreKey::Dialog(tag), StoreKey::Ue(UE1.into())],
        "earliest deadline first"
    );
    assert_eq!(s.due(t + Duration::from_secs(400), 1).unwrap().len(), 1);
    // Deleting: version moves on, index emptied; a re-created key never reuses a version.
    let dv2 = s.write_dialog(tag, dv, None).unwrap();
    assert!(dv2 > dv);
    assert_eq!(s.load_dialog(tag), Ok(None));
    let v4 = s.write_ue(UE1, v3, UeRecord::default()).unwrap();
    assert!(v4 > v3);
    assert_eq!((s.load_ue(UE1), s.next_expiry()), (Ok(None), None));
    assert!(s.write_ue(UE1, 0, rec).unwrap() > v4);
}

#[test]
fn index_entries_of_records_redis_expired_are_dropped_and_corruption_is_unavailable() {
    let redis = support::Server::start(false);
    let (t, tb) = epoch();
    let mut s = RedisServiceStateStore::new(config(&redis.url()), tb).unwrap();
    let tag = 7;
    s.write_dialog(tag, 0, Some(dialog_record(t, 1, 60)))
        .unwrap();
    s.write_ue(UE1, 0, ue_record(t, 600, true)).unwrap();
    // Redis deleted the dialog by itself (as at its PEXPIREAT while no instance ran).
    let mut c = redis.conn();
    let _: i64 = c.del(s.record_key(&StoreKey::Dialog(tag))).unwrap();
    let later = t + Duration::from_secs(1000);
    assert_eq!(s.due(later, 9).unwrap(), vec![StoreKey::Ue(UE1.into())]);
    // The stale entry is gone from the index, the live one stays.
    let indexes: Vec<String> = c.keys("{mcptt:ss:*}:due").unwrap();
    let entries: usize = indexes
        .iter()
        .map(|k| c.zcard::<_, usize>(k).unwrap())
        .sum();
    assert_eq!(entries, 1);
    assert_eq!(s.due(later, 9).unwrap(), vec![StoreKey::Ue(UE1.into())]);
    // A damaged record is an error the server turns into 503, never "no state".
    let _: () = c
        .set(
            s.record_key(&StoreKey::Ue(UE1.into())),
            b"9 \x01\xff".as_slice(),
        )
        .unwrap();
    assert!(matches!(s.load_ue(UE1), Err(StoreError::Unavailable(_))));
    assert!(s.take_error().is_some_and(|e| e.contains("corrupt")));
}

#[test]
fn choice_opens_memory_or_redis_and_feeds_skip_own_writes() {
    let redis = support::Server::start(false);
    let (t, tb) = epoch();
    let mem = ServiceStateChoice::open("memory", tb).unwrap();
    assert!(matches!(mem, ServiceStateChoice::Memory(_)));
    assert!(mem.subscribe_changes().unwrap().is_none());
    assert!(ServiceStateChoice::open("http://x", tb).is_err());
    assert!(ServiceStateChoice::open("redis://127.0.0.1:1", tb).is_err());
    let mut a = ServiceStateChoice::open(&redis.url(), tb).unwrap();
    let b = ServiceStateChoice::open(&redis.url(), tb).unwrap();
    let mut fa = a.subscribe_changes().unwrap().unwrap();
    let mut fb = b.subscribe_changes().unwrap().unwrap();
    a.write_ue(UE1, 0, ue_record(t, 600, true)).unwrap();
    a.write_dialog(u64::MAX, 0, Some(dialog_record(t, 1, 60)))
        .unwrap();
    assert_eq!(fb.next(FEED_WAIT).unwrap(), Some(StoreKey::Ue(UE1.into())));
    assert_eq!(
        fb.next(FEED_WAIT).unwrap(),
        Some(StoreKey::Dialog(u64::MAX))
    );
    assert!(fb.is_connected() && !fb.take_resync());
    // The writer's own feed skips them.
    assert_eq!(fa.next(Duration::from_millis(300)).unwrap(), None);
    assert!(b.load_ue(UE1).unwrap().is_some());
}
