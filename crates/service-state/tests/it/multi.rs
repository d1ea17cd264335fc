//! Two `Server` instances sharing one store: remote changes, token expiry handled by the
//! other instance, store failures, dialog take-over, concurrent writes.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use mcptt_service_state::body::{McpttInfo, ServiceState};
use mcptt_service_state::client::{Publisher, Subscriber, SubscriberEvent, UeConfig};
use mcptt_service_state::server::{Server, ServerConfig, ServerEvent};
use mcptt_service_state::store::{
    DialogRecord, MemoryStore, ServiceStateStore, StoreError, StoreKey, UeRecord,
};
use mcptt_service_state::{
    AuthorisationState, CombinedState, RegistrationChange, RegistrationState, SplitMix64,
    UeDirectory,
};
use mcptt_token::Validator;

use crate::harness::{HOST, Idms, Net, PSI, T0_UNIX, epoch, header, req, resp, status};

const ALICE: &str = "sip:alice@mcptt.example.org";
const UE1: &str = "sip:ue1@example.org";

/// A write made by "another instance" inside the store.
type Race = Box<dyn FnOnce(&mut MemoryStore)>;

/// One in-memory store shared by both instances, which the test can make unavailable, with
/// a change feed (keys written, in order) and a hook run before the next UE write (another
/// instance's write landing between a load and a write).
#[derive(Clone, Default)]
struct Shared {
    inner: Rc<RefCell<MemoryStore>>,
    down: Rc<Cell<bool>>,
    feed: Rc<RefCell<Vec<StoreKey>>>,
    race: Rc<RefCell<Option<Race>>>,
}

impl Shared {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.get() {
            Err(StoreError::Unavailable("store down (test)".into()))
        } else {
            Ok(())
        }
    }

    fn ue(&self, impu: &str) -> Option<(u64, UeRecord)> {
        self.inner.borrow().load_ue(impu).unwrap()
    }

    fn take_feed(&self) -> Vec<StoreKey> {
        std::mem::take(&mut *self.feed.borrow_mut())
    }
}

impl ServiceStateStore for Shared {
    fn load_ue(&self, impu: &str) -> Result<Option<(u64, UeRecord)>, StoreError> {
        self.check()?;
        self.inner.borrow().load_ue(impu)
    }

    fn write_ue(&mut self, impu: &str, expected: u64, record: UeRecord) -> Result<u64, StoreError> {
        if let Some(race) = self.race.borrow_mut().take() {
            race(&mut self.inner.borrow_mut());
        }
        self.check()?;
        let v = self.inner.borrow_mut().write_ue(impu, expected, record)?;
        self.feed.borrow_mut().push(StoreKey::Ue(impu.to_owned()));
        Ok(v)
    }

    fn load_dialog(&self, tag: u64) -> Result<Option<(u64, DialogRecord)>, StoreError> {
        self.check()?;
        self.inner.borrow().load_dialog(tag)
    }

    fn write_dialog(
        &mut self,
        tag: u64,
        expected: u64,
        record: Option<DialogRecord>,
    ) -> Result<u64, StoreError> {
        self.check()?;
        let v = self
            .inner
            .borrow_mut()
            .write_dialog(tag, expected, record)?;
        self.feed.borrow_mut().push(StoreKey::Dialog(tag));
        Ok(v)
    }

    fn due(&self, now: Instant, max: usize) -> Result<Vec<StoreKey>, StoreError> {
        self.check()?;
        self.inner.borrow().due(now, max)
    }

    fn next_expiry(&self) -> Option<Instant> {
        self.inner.borrow().next_expiry()
    }
}

type Srv = Server<Validator, SplitMix64, Shared>;

/// Two instances, one UE with a publisher and a subscriber; messages are routed by hand to
/// the instance each step names.
struct Pair {
    t0: Instant,
    now: Instant,
    idms: Idms,
    store: Shared,
    servers: [Srv; 2],
    events: [Vec<ServerEvent>; 2],
    publisher: Publisher<SplitMix64>,
    subscriber: Subscriber<SplitMix64>,
    /// Service states the subscriber was told, in order.
    states: Vec<ServiceState>,
    /// NOTIFYs each instance sent.
    notifies: [usize; 2],
}

impl Pair {
    fn new() -> Self {
        let idms = Idms::new();
        let store = Shared::default();
        let server = |id: u64, seed: u64| {
            let mut config = ServerConfig::new(HOST, PSI);
            config.directory = UeDirectory::default();
            config.instance_id = id;
            Server::with_store(config, idms.validator(), SplitMix64(seed), store.clone())
        };
        let servers = [server(1, 7), server(2, 8)];
        let t0 = epoch();
        let ue = UeConfig::new(UE1, "ue1.example.org", PSI);
        Self {
            t0,
            now: t0,
            store,
            servers,
            events: [Vec::new(), Vec::new()],
            publisher: Publisher::new(ue.clone(), SplitMix64(101), 3600),
            subscriber: Subscriber::new(ue, SplitMix64(102), 600),
            states: Vec::new(),
            notifies: [0, 0],
            idms,
        }
    }

    fn unix(&self) -> u64 {
        T0_UNIX + self.now.duration_since(self.t0).as_secs()
    }

    fn register(&mut self, on: usize) {
        let change = RegistrationChange {
            impu: UE1.into(),
            instance: Some("<urn:uuid:00000000-0000-0000-0000-000000000001>".into()),
            registered: true,
        };
        self.servers[on].handle_registration(self.now, change);
        self.drain(on);
    }

    /// Sends `bytes` (a UE request) to instance `on` through the SIP core; returns the
    /// status of the response.
    fn request(&mut self, on: usize, bytes: &[u8]) -> (u16, String) {
        let bytes = Net::assert_identity(bytes, UE1);
        let unix = self.unix();
        self.servers[on].handle_request(self.now, unix, &req(&bytes));
        let response = self.servers[on].poll_transmit().expect("a response");
        let text = String::from_utf8(response.bytes).unwrap();
        let code = status(&text).expect("a response first");
        // Hand the response to whichever UE side sent the request.
        if header(&text, "CSeq").is_some_and(|c| c.ends_with("PUBLISH")) {
            let _ = self
                .publisher
                .handle_response(self.now, &resp(text.as_bytes()));
        } else {
            let _ = self
                .subscriber
                .handle_response(self.now, &resp(text.as_bytes()));
        }
        self.drain(on);
        (code, text)
    }

    fn publish(&mut self, on: usize, token: &str) -> (u16, String) {
        self.publisher
            .publish(self.now, token, Some("mcptt-client"), None);
        let bytes = self.publisher.poll_transmit().unwrap().bytes;
        self.request(on, &bytes)
    }

    fn subscribe(&mut self, on: usize, info: Option<McpttInfo>) -> (u16, String) {
        self.subscriber.subscribe(self.now, info).unwrap();
        let bytes = self.subscriber.poll_transmit().unwrap().bytes;
        self.request(on, &bytes)
    }

    /// Delivers what instance `on` sent (NOTIFYs) to the subscriber and its answers back.
    fn drain(&mut self, on: usize) {
        while let Some(t) = self.servers[on].poll_transmit() {
            let text = String::from_utf8(t.bytes.clone()).unwrap();
            assert!(text.starts_with("NOTIFY "), "unexpected {text}");
            self.notifies[on] += 1;
            self.subscriber
                .handle_request(self.now, &req(&t.bytes))
                .unwrap();
            while let Some(answer) = self.subscriber.poll_transmit() {
                self.servers[on].handle_response(self.now, &resp(&answer.bytes));
            }
        }
        while let Some(e) = self.subscriber.poll_event() {
            if let SubscriberEvent::State(s) = e {
                self.states.push(s);
            }
        }
        while let Some(e) = self.servers[on].poll_event() {
            self.events[on].push(e);
        }
    }

    /// Feeds the store's change feed to instance `on`.
    fn propagate(&mut self, on: usize) {
        for key in self.store.take_feed() {
            self.servers[on]
                .handle_remote_change(self.now, &key)
                .unwrap();
        }
        self.drain(on);
    }

    fn token(&mut self, lifetime: u64) -> String {
        let unix = self.unix();
        self.idms.token(ALICE, unix, lifetime)
    }

    fn info(token: String) -> McpttInfo {
        McpttInfo {
            access_token: Some(token),
            client_id: Some("mcptt-client".into()),
            request_uri: Some(PSI.into()),
        }
    }
}

#[test]
fn publish_on_a_subscribe_on_b_notified_once_by_b() {
    let mut p = Pair::new();
    p.register(0);
    let token = p.token(3600);
    // The user subscribes through B first (naming itself with its token): limited.
    assert_eq!(p.subscribe(1, Some(Pair::info(token.clone()))).0, 200);
    assert_eq!(p.states.last().unwrap().state, CombinedState::Limited);
    assert_eq!(
        p.states.last().unwrap().registration,
        RegistrationState::Registered
    );
    // The PUBLISH lands on A, which holds no dialog: A sends no NOTIFY.
    assert_eq!(p.publish(0, &token).0, 200);
    assert_eq!(p.notifies[0], 0);
    let before = p.states.len();
    // B learns of it through the change feed and NOTIFYs full access, once.
    p.propagate(1);
    assert_eq!(
        p.states.len(),
        before + 1,
        "{:?} {:?} {:?}",
        p.notifies,
        p.events,
        p.store.ue(UE1)
    );
    let s = p.states.last().unwrap().clone();
    assert_eq!(s.state, CombinedState::FullAccess);
    assert_eq!(s.authorisation, AuthorisationState::Authorised);
    // The same change seen again (a duplicate in the feed) is not NOTIFYed again.
    p.servers[1]
        .handle_remote_change(p.now, &StoreKey::Ue(UE1.into()))
        .unwrap();
    p.drain(1);
    assert_eq!(p.states.len(), before + 1);
    // Both instances agree on the state and its version.
    let a = p.servers[0].state(UE1, ALICE).unwrap();
    let b = p.servers[1].state(UE1, ALICE).unwrap();
    assert_eq!((a.version, a.state), (b.version, b.state));
    assert_eq!(a.version, s.version);
}

#[test]
fn token_expiry_handled_by_a_is_notified_by_b() {
    let mut p = Pair::new();
    p.register(0);
    let token = p.token(300);
    assert_eq!(p.publish(0, &token).0, 200);
    // SUBSCRIBE on B without a body: B finds the signed-in user in the store.
    assert_eq!(p.subscribe(1, None).0, 200);
    assert_eq!(p.states.last().unwrap().state, CombinedState::FullAccess);
    p.store.take_feed();
    let seen = p.states.len();
    // B, alive, renews its dialog lease meanwhile (A leaves the dialog to it).
    for t in (30..300).step_by(30) {
        p.now = p.t0 + Duration::from_secs(t);
        p.servers[1].handle_timeout(p.now);
        p.drain(1);
    }
    p.store.take_feed();
    assert_eq!(p.states.len(), seen);
    // A's token timer fires at exp; A does not run its timers before.
    p.now = p.t0 + Duration::from_secs(300);
    p.servers[0].handle_timeout(p.now);
    p.drain(0);
    assert_eq!(p.notifies[0], 0, "A holds no dialog");
    assert_eq!(p.states.len(), seen, "nothing reached the subscriber yet");
    p.propagate(1);
    assert_eq!(p.states.len(), seen + 1);
    let s = p.states.last().unwrap();
    assert_eq!(s.authorisation, AuthorisationState::Expired);
    assert_eq!(s.state, CombinedState::Limited);
    // B's own token timer finds the expiry already applied: no second NOTIFY.
    p.servers[1].handle_timeout(p.now);
    p.drain(1);
    assert_eq!(p.states.len(), seen + 1);
}

#[test]
fn store_unavailable_503_with_retry_after_and_nothing_lost() {
    let mut p = Pair::new();
    p.register(0);
    let token = p.token(3600);
    let (code, _) = p.publish(0, &token);
    assert_eq!(code, 200);
    let etag = p.publisher.etag().unwrap().to_owned();
    let (v0, rec0) = p.store.ue(UE1).unwrap();
    p.store.down.set(true);
    // A refresh (on B) while the store is down: 503 + Retry-After, nothing changed.
    p.now += Duration::from_secs(60);
    let refresh = format!(
        "PUBLISH {PSI} SIP/2.0\r\nVia: SIP/2.0/TLS ue1.example.org;branch=z9hG4bKr1\r\n\
Max-Forwards: 70\r\nFrom: <{UE1}>;tag=r1\r\nTo: <{UE1}>\r\nCall-ID: refresh-1@ue1\r\n\
CSeq: 9 PUBLISH\r\nEvent: poc-settings\r\nExpires: 3600\r\nSIP-If-Match: {etag}\r\n\
Content-Length: 0\r\n\r\n"
    );
    let (code, text) = p.request(1, refresh.as_bytes());
    assert_eq!(code, 503, "{text}");
    assert_eq!(header(&text, "Retry-After").as_deref(), Some("5"));
    assert!(header(&text, "SIP-ETag").is_none());
    assert!(
        p.events[1]
            .iter()
            .any(|e| matches!(e, ServerEvent::StoreUnavailable { .. }))
    );
    // A SUBSCRIBE and a registration change fail the same way.
    assert_eq!(p.subscribe(0, None).0, 503);
    assert_eq!(p.servers[0].subscription_count(), 0);
    let dereg = RegistrationChange {
        impu: UE1.into(),
        instance: Some("<urn:uuid:00000000-0000-0000-0000-000000000001>".into()),
        registered: false,
    };
    p.servers[1].handle_registration(p.now, dereg);
    p.drain(1);
    // The store comes back: the record is exactly what it was ...
    p.store.down.set(false);
    assert_eq!(p.store.ue(UE1), Some((v0, rec0)));
    // ... the old entity-tag still refreshes, on either instance ...
    let (code, text) = p.request(0, refresh.replace("CSeq: 9", "CSeq: 10").as_bytes());
    assert_eq!(code, 200, "{text}");
    p.propagate(1);
    assert_eq!(
        p.servers[1].state(UE1, ALICE).map(|s| s.state),
        Some(CombinedState::FullAccess)
    );
    // ... and the deregistration B kept is applied at its retry time.
    p.now += Duration::from_secs(5);
    p.servers[1].handle_timeout(p.now);
    p.drain(1);
    let (_, rec) = p.store.ue(UE1).unwrap();
    assert!(rec.instances.is_empty(), "deregistration applied: {rec:?}");
    p.servers[0]
        .handle_remote_change(p.now, &StoreKey::Ue(UE1.into()))
        .unwrap();
    assert_eq!(
        p.servers[0].state(UE1, ALICE).map(|s| s.state),
        Some(CombinedState::Limited)
    );
}

#[test]
fn dialog_taken_over_after_the_holders_lease_expires() {
    let mut p = Pair::new();
    p.register(0);
    let token = p.token(7200);
    assert_eq!(p.publish(0, &token).0, 200);
    // B holds the dialog, then dies (is never run again).
    assert_eq!(p.subscribe(1, None).0, 200);
    let lease = p.servers[1].config().dialog_lease;
    let seen = p.states.len();
    // Before the lease ran out, A leaves the dialog alone.
    p.now = p.t0 + lease - Duration::from_secs(1);
    p.servers[0].handle_timeout(p.now);
    p.drain(0);
    assert_eq!(p.servers[0].subscription_count(), 0);
    // After it, A's timer (its poll_timeout says when) takes it over.
    let wake = p.servers[0].poll_timeout().unwrap();
    assert!(wake <= p.t0 + lease, "A wakes for the lease end");
    p.now = p.t0 + lease;
    p.servers[0].handle_timeout(p.now);
    p.drain(0);
    assert_eq!(p.servers[0].subscription_count(), 1);
    assert!(p.events[0].iter().any(|e| matches!(
        e,
        ServerEvent::SubscriptionCreated { impu, .. } if impu == UE1
    )));
    // The subscriber had the current state already: no NOTIFY for the take-over itself.
    assert_eq!(p.states.len(), seen);
    // The next change is NOTIFYed by A, in the same dialog (the subscriber accepts it).
    let token = p.token(600);
    let (code, _) = p.publish(0, &token);
    assert_eq!(code, 200);
    assert_eq!(p.states.len(), seen + 1);
    assert_eq!(p.notifies[0], 1);
    let s = p.states.last().unwrap();
    assert_eq!(s.state, CombinedState::FullAccess);
    assert_eq!(s.token_expires, Some(T0_UNIX + lease.as_secs() + 600));
    // A keeps its lease: B's record now names A as holder.
    let feed = p.store.take_feed();
    let tag = feed
        .iter()
        .find_map(|k| match k {
            StoreKey::Dialog(t) => Some(*t),
            _ => None,
        })
        .expect("A wrote the dialog");
    let (_, d) = p.store.inner.borrow().load_dialog(tag).unwrap().unwrap();
    assert_eq!(d.holder, 1);
    assert!(d.lease_expires > p.now);
}

#[test]
fn concurrent_writes_from_both_instances_lose_no_update() {
    let mut p = Pair::new();
    p.register(0);
    // Another instance's write (a second registered instance of the UE) lands between A's
    // load and A's write of the PUBLISH: A's write conflicts, A reloads and re-applies.
    *p.store.race.borrow_mut() = Some(Box::new(move |s: &mut MemoryStore| {
        let (v, mut rec) = s.load_ue(UE1).unwrap().unwrap();
        let mut instances = rec.instances.to_vec();
        instances.push("<urn:uuid:other>".into());
        rec.instances = instances.into();
        s.write_ue(UE1, v, rec).unwrap();
    }));
    let token = p.token(3600);
    let (code, text) = p.publish(0, &token);
    assert_eq!(code, 200, "{text}");
    assert!(p.store.race.borrow().is_none(), "the racing write happened");
    let (_, rec) = p.store.ue(UE1).unwrap();
    assert_eq!(rec.instances.len(), 2, "the racing write survived: {rec:?}");
    assert_eq!(rec.users.len(), 1, "the PUBLISH survived: {rec:?}");
    assert!(rec.users[0].auth.publication().is_some());
    // One 200 only (the failed attempt's answer was taken back).
    assert!(p.servers[0].poll_transmit().is_none());

    // Many interleaved operations through both instances against a model.
    let mut model_signed_in = true;
    let mut seed = SplitMix64(42);
    use mcptt_service_state::Random;
    for step in 0..40 {
        let on = (seed.next_u64() % 2) as usize;
        p.now += Duration::from_secs(61);
        match seed.next_u64() % 2 {
            0 => {
                let token = p.token(3600);
                assert_eq!(p.publish(on, &token).0, 200, "step {step}");
                model_signed_in = true;
            }
            _ if model_signed_in => {
                p.publisher.sign_off(p.now).unwrap();
                let bytes = p.publisher.poll_transmit().unwrap().bytes;
                assert_eq!(p.request(on, &bytes).0, 200, "step {step}");
                model_signed_in = false;
            }
            _ => {}
        }
        let (_, rec) = p.store.ue(UE1).unwrap();
        let stored = rec
            .users
            .iter()
            .any(|u| &*u.mcptt_id == ALICE && u.auth.publication().is_some());
        assert_eq!(stored, model_signed_in, "step {step}: {rec:?}");
        // Each instance, fed the changes, agrees with the store.
        for i in 0..2 {
            p.servers[i]
                .handle_remote_change(p.now, &StoreKey::Ue(UE1.into()))
                .unwrap();
            let auth = p.servers[i].state(UE1, ALICE).map(|s| s.authorisation);
            assert_eq!(
                auth == Some(AuthorisationState::Authorised),
                model_signed_in,
                "step {step} instance {i}"
            );
        }
        p.store.take_feed();
    }
}

#[test]
fn store_failing_between_read_and_write_leaves_the_instance_as_it_was() {
    let mut p = Pair::new();
    p.register(0);
    let token = p.token(3600);
    assert_eq!(p.publish(0, &token).0, 200);
    let etag = p.publisher.etag().unwrap().to_owned();
    let before = p.servers[0].state(UE1, ALICE).unwrap();
    let stored = p.store.ue(UE1);
    // The store answers the read, then fails the write.
    let down = Rc::clone(&p.store.down);
    *p.store.race.borrow_mut() = Some(Box::new(move |_: &mut MemoryStore| down.set(true)));
    p.now += Duration::from_secs(60);
    let modify = |cseq: u32, token: &str| {
        let body = format!(
            "<?xml version=\"1.0\"?><mcpttinfo xmlns=\"urn:3gpp:ns:mcpttInfo:1.0\"><mcptt-Params>\
<mcptt-access-token type=\"Normal\"><mcpttString>{token}</mcpttString></mcptt-access-token>\
</mcptt-Params></mcpttinfo>"
        );
        format!(
            "PUBLISH {PSI} SIP/2.0\r\nVia: SIP/2.0/TLS ue1.example.org;branch=z9hG4bKw{cseq}\r\n\
Max-Forwards: 70\r\nFrom: <{UE1}>;tag=w{cseq}\r\nTo: <{UE1}>\r\nCall-ID: modify@ue1\r\n\
CSeq: {cseq} PUBLISH\r\nEvent: poc-settings\r\nExpires: 3600\r\nSIP-If-Match: {etag}\r\n\
Content-Type: application/vnd.3gpp.mcptt-info+xml\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let token2 = p.token(7200);
    let (code, text) = p.request(0, modify(1, &token2).as_bytes());
    assert_eq!(code, 503, "{text}");
    assert!(header(&text, "SIP-ETag").is_none());
    // Nothing changed: not in the store, not in the instance (state, version, entity-tag).
    assert_eq!(p.store.ue(UE1), stored);
    assert_eq!(p.servers[0].state(UE1, ALICE).unwrap(), before);
    assert!(
        p.events[0]
            .iter()
            .all(|e| !matches!(e, ServerEvent::StateChanged(s) if s.version > before.version))
    );
    // Back up: the old entity-tag is still the live one and the modification goes through.
    p.store.down.set(false);
    let (code, text) = p.request(0, modify(2, &token2).as_bytes());
    assert_eq!(code, 200, "{text}");
    let after = p.servers[0].state(UE1, ALICE).unwrap();
    assert_eq!(after.token_expires, Some(p.unix() + 7200));
    assert!(after.version > before.version);
}

#[test]
fn refresh_landing_on_the_other_instance_moves_the_dialog_there() {
    let mut p = Pair::new();
    p.register(0);
    let token = p.token(7200);
    assert_eq!(p.publish(0, &token).0, 200);
    assert_eq!(p.subscribe(1, None).0, 200);
    assert_eq!(p.servers[1].subscription_count(), 1);
    p.store.take_feed();
    // B dies or is unreachable: the subscriber's in-dialog refresh reaches A.
    p.now += Duration::from_secs(120);
    p.subscriber.refresh(p.now).unwrap();
    let bytes = p.subscriber.poll_transmit().unwrap().bytes;
    let (code, text) = p.request(0, &bytes);
    assert_eq!(code, 200, "{text}");
    assert_eq!(p.servers[0].subscription_count(), 1);
    assert_eq!(
        p.notifies[0], 1,
        "the refresh's NOTIFY (RFC 6665 §4.2.1.2), from A"
    );
    // B, if alive, learns from the feed that A holds the dialog now and lets it go quietly.
    p.propagate(1);
    assert_eq!(p.servers[1].subscription_count(), 0);
    assert!(p.events[1].iter().any(|e| matches!(
        e,
        ServerEvent::SubscriptionTerminated {
            reason: mcptt_service_state::server::TerminationReason::TakenOver,
            ..
        }
    )));
    // A change made through B is NOTIFYed by A only, once.
    let seen = p.states.len();
    let token = p.token(600);
    assert_eq!(p.publish(1, &token).0, 200);
    assert_eq!(
        p.notifies[1], 1,
        "B sent only the first NOTIFY, before the move"
    );
    p.propagate(0);
    assert_eq!(p.states.len(), seen + 1);
    assert_eq!(p.states.last().unwrap().token_expires, Some(p.unix() + 600));
}

#[test]
fn resync_after_a_lost_change_feed_notifies_what_was_missed_once() {
    let mut p = Pair::new();
    p.register(0);
    let token = p.token(3600);
    // B holds the dialog; the user is limited (subscribed before signing in).
    assert_eq!(p.subscribe(1, Some(Pair::info(token.clone()))).0, 200);
    assert_eq!(p.states.last().unwrap().state, CombinedState::Limited);
    // The PUBLISH lands on A while B's change feed is down: B never hears of it.
    assert_eq!(p.publish(0, &token).0, 200);
    p.store.take_feed();
    let seen = p.states.len();
    p.servers[1].handle_timeout(p.now);
    p.drain(1);
    assert_eq!(p.states.len(), seen, "nothing reached the subscriber");
    // The feed reconnects; B resyncs and NOTIFYs the missed change, once.
    p.servers[1].resync(p.now).unwrap();
    p.drain(1);
    assert_eq!(p.states.len(), seen + 1);
    let s = p.states.last().unwrap().clone();
    assert_eq!(s.state, CombinedState::FullAccess);
    assert_eq!(s.version, p.servers[0].state(UE1, ALICE).unwrap().version);
    // Again: nothing changed, nothing sent.
    p.servers[1].resync(p.now).unwrap();
    p.drain(1);
    assert_eq!(p.states.len(), seen + 1);
    // A new token published on A, missed again; the store cannot answer B's first resync
    // (an error, nothing sent), the next one catches up.
    p.now += Duration::from_secs(60);
    let token = p.token(600);
    assert_eq!(p.publish(0, &token).0, 200);
    p.store.take_feed();
    p.store.down.set(true);
    assert!(matches!(
        p.servers[1].resync(p.now),
        Err(StoreError::Unavailable(_))
    ));
    p.drain(1);
    assert_eq!(p.states.len(), seen + 1);
    p.store.down.set(false);
    p.servers[1].resync(p.now).unwrap();
    p.drain(1);
    assert_eq!(p.states.len(), seen + 2);
    assert_eq!(p.states.last().unwrap().token_expires, Some(p.unix() + 600));
    // A dialog A took over while B missed the feed: B lets it go quietly.
    p.now += Duration::from_secs(120);
    p.subscriber.refresh(p.now).unwrap();
    let bytes = Net::assert_identity(&p.subscriber.poll_transmit().unwrap().bytes, UE1);
    let unix = p.unix();
    p.servers[0].handle_request(p.now, unix, &req(&bytes));
    // A's answer (after the NOTIFY of the version B sent but never recorded).
    let mut answered = None;
    while let Some(t) = p.servers[0].poll_transmit() {
        let text = String::from_utf8(t.bytes).unwrap();
        if let Some(code) = status(&text) {
            answered = Some(code);
        }
    }
    assert_eq!(answered, Some(200));
    p.store.take_feed();
    assert_eq!(p.servers[0].subscription_count(), 1);
    assert_eq!(p.servers[1].subscription_count(), 1);
    let sent = p.notifies[1];
    p.servers[1].resync(p.now).unwrap();
    p.drain(1);
    assert_eq!(p.servers[1].subscription_count(), 0);
    assert_eq!(p.notifies[1], sent, "no NOTIFY from B");
    assert_eq!(p.servers[0].subscription_count(), 1);
}

#[test]
fn sign_off_on_a_reaches_the_dialog_b_holds() {
    let mut p = Pair::new();
    p.register(0);
    let token = p.token(3600);
    assert_eq!(p.publish(0, &token).0, 200);
    // B holds the dialog; A holds nothing for the user but its publication.
    assert_eq!(p.subscribe(1, None).0, 200);
    assert_eq!(p.states.last().unwrap().state, CombinedState::FullAccess);
    p.propagate(0);
    let seen = p.states.len();
    let before = p.states.last().unwrap().version;
    // The user signs off through A: A lets the user go (no dialog there), so the UE record
    // no longer lists the user.
    p.publisher.sign_off(p.now).unwrap();
    let bytes = p.publisher.poll_transmit().unwrap().bytes;
    assert_eq!(p.request(0, &bytes).0, 200);
    assert_eq!(p.notifies[0], 0);
    // B, told by the change feed, NOTIFYs the end of the authorisation, once.
    p.propagate(1);
    assert_eq!(p.states.len(), seen + 1, "{:?}", p.store.ue(UE1));
    let s = p.states.last().unwrap();
    assert_eq!(s.state, CombinedState::Limited);
    assert_eq!(s.authorisation, AuthorisationState::SignedOff);
    assert!(s.version > before);
    p.servers[1].resync(p.now).unwrap();
    p.drain(1);
    assert_eq!(p.states.len(), seen + 1);
}

/// The holder stalls past its lease; the other instance takes the dialog over; then a
/// request reaches the stalled holder before it ran its timers or heard of the take-over.
/// The change is NOTIFYed once, by the new holder.
#[test]
fn stalled_holder_does_not_notify_a_dialog_taken_over_meanwhile() {
    let mut p = Pair::new();
    p.register(0);
    let token = p.token(3600);
    assert_eq!(p.publish(0, &token).0, 200);
    // B holds the dialog, then stalls (runs nothing) past its lease.
    assert_eq!(p.subscribe(1, None).0, 200);
    p.store.take_feed();
    let seen = p.states.len();
    let sent = p.notifies;
    p.now = p.t0 + p.servers[1].config().dialog_lease + Duration::from_secs(1);
    // A takes the dialog over.
    p.servers[0].handle_timeout(p.now);
    p.drain(0);
    assert_eq!(p.servers[0].subscription_count(), 1);
    // B wakes up with a refresh carrying a new token, before its timers and the feed.
    let token = p.token(7200);
    let (code, _) = p.publish(1, &token);
    assert_eq!(code, 200);
    assert_eq!(
        p.notifies[1], sent[1],
        "B no longer holds the dialog: no NOTIFY from B"
    );
    assert_eq!(p.servers[1].subscription_count(), 0);
    // A hears of B's write and NOTIFYs it: once.
    p.propagate(0);
    assert_eq!(p.notifies[0], sent[0] + 1);
    assert_eq!(p.states.len(), seen + 1);
    let s = p.states.last().unwrap();
    assert_eq!(s.state, CombinedState::FullAccess);
    assert_eq!(s.token_expires, Some(p.unix() + 7200));
}
