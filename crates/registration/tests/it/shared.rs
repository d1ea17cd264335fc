//! Several registrar instances sharing one store: a store that can be unavailable,
//! binding ids unique across instances, store round trips per REGISTER, and remote
//! changes NOTIFYed once by the instance holding the reg event subscription.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::time::Instant;

use mcptt_registration::reginfo::{ContactState, DocState};
use mcptt_registration::{
    AorRecord, Binding, Error, Event, FailurePolicy, FilterCriteria, MemoryStore, RegEventConfig,
    RegInfo, Registrar, RegistrationStore, RegistrationView, RemovalReason, ServerConfig,
    ServerEvent, StoreError, Transmit,
};
use mcptt_sip::{Message, Request, Response};

use crate::support::*;

#[derive(Debug, Default)]
struct Inner {
    store: MemoryStore,
    down: bool,
    loads: usize,
    writes: usize,
    /// AoRs written, in order: the change feed of a shared store.
    feed: Vec<String>,
}

/// A [`MemoryStore`] shared by several registrars (one process standing in for a Redis),
/// which counts round trips, records a change feed and can be made unavailable.
#[derive(Debug, Clone, Default)]
struct Shared(Rc<RefCell<Inner>>);

impl Shared {
    fn set_down(&self, down: bool) {
        self.0.borrow_mut().down = down;
    }
    fn round_trips(&self) -> usize {
        let i = self.0.borrow();
        i.loads + i.writes
    }
    fn take_feed(&self) -> Vec<String> {
        std::mem::take(&mut self.0.borrow_mut().feed)
    }
    fn check(&self) -> Result<(), StoreError> {
        if self.0.borrow().down {
            Err(StoreError::Unavailable("connection refused".into()))
        } else {
            Ok(())
        }
    }
}

impl RegistrationStore for Shared {
    fn load(&self, aor: &str) -> Result<Option<(u64, AorRecord)>, StoreError> {
        self.check()?;
        self.0.borrow_mut().loads += 1;
        self.0.borrow().store.load(aor)
    }
    fn write(&mut self, aor: &str, expected: u64, record: AorRecord) -> Result<u64, StoreError> {
        self.check()?;
        let mut i = self.0.borrow_mut();
        i.writes += 1;
        let v = i.store.write(aor, expected, record)?;
        i.feed.push(aor.to_owned());
        Ok(v)
    }
    fn remove_expired(&mut self, aor: &str, now: Instant) -> Result<Vec<Binding>, StoreError> {
        self.check()?;
        let mut i = self.0.borrow_mut();
        i.writes += 1;
        let gone = i.store.remove_expired(aor, now)?;
        if !gone.is_empty() {
            i.feed.push(aor.to_owned());
        }
        Ok(gone)
    }
    fn next_expiry(&self) -> Option<Instant> {
        self.0.borrow().store.next_expiry()
    }
    fn due(&self, now: Instant, max: usize) -> Result<Vec<String>, StoreError> {
        self.check()?;
        self.0.borrow().store.due(now, max)
    }
    fn aor_count(&self) -> usize {
        self.0.borrow().store.aor_count()
    }
    fn binding_count(&self) -> usize {
        self.0.borrow().store.binding_count()
    }
}

fn instance(store: &Shared, seed: u64, filters: Vec<FilterCriteria>) -> Registrar<Shared> {
    let mut cfg = config();
    cfg.filters = filters;
    cfg.reg_event = RegEventConfig {
        trusted_subscribers: HashSet::from([SERVER_PEER.to_owned()]),
        ..RegEventConfig::default()
    };
    Registrar::with_store(cfg, store.clone(), seed)
}

fn events<S: RegistrationStore>(r: &mut Registrar<S>) -> Vec<Event> {
    std::iter::from_fn(|| r.poll_event()).collect()
}

fn transmits<S: RegistrationStore>(r: &mut Registrar<S>) -> Vec<Transmit> {
    std::iter::from_fn(|| r.poll_transmit()).collect()
}

fn on_wire(t: &Transmit) -> Request {
    Message::parse(t.request.encode())
        .unwrap()
        .into_request()
        .unwrap()
}

fn response(r: &Response) -> Response {
    Message::parse(r.encode()).unwrap().into_response().unwrap()
}

fn view() -> RegistrationView {
    RegistrationView::new(
        ServerConfig {
            trusted_cores: HashSet::from([CORE_PEER.to_owned()]),
            server_uri: AS_URI.into(),
            subscription_expires: 600,
            ..ServerConfig::default()
        },
        11,
    )
}

/// `view` subscribes to AOR at `reg`; the initial NOTIFY is applied.
fn subscribe<S: RegistrationStore>(
    reg: &mut Registrar<S>,
    view: &mut RegistrationView,
    now: Instant,
) {
    view.subscribe(now, AOR, CORE).unwrap();
    let sub = view.poll_transmit().unwrap();
    let resp = reg.handle_subscribe(now, SERVER_PEER, &on_wire(&sub));
    assert_eq!(resp.status(), 200);
    assert!(view.handle_subscribe_response(now, &response(&resp)));
    let n = reg.poll_transmit().expect("initial NOTIFY");
    assert_eq!(
        view.handle_notify(now, CORE_PEER, &on_wire(&n)).status(),
        200
    );
}

#[test]
fn unavailable_store_is_503_with_retry_after_not_retried_and_nothing_lost() {
    let store = Shared::default();
    let mut r = instance(&store, 1, vec![FilterCriteria::mcptt(AS_URI)]);
    let mut clock = Clock::new();
    let now = clock.now();
    let ok = r.handle_register(
        now,
        PEER,
        &register(AOR, "c1", 1, &[ue_contact(1, "")], Some(120)),
    );
    assert_eq!(ok.response.status(), 200);
    events(&mut r);
    transmits(&mut r);

    store.set_down(true);
    let trips = store.round_trips();
    let out = r.handle_register(
        now,
        PEER,
        &register(AOR, "c1", 2, &[ue_contact(1, "")], Some(600)),
    );
    assert_eq!(out.response.status(), 503);
    assert_eq!(out.response.headers().get("Retry-After"), Some("5"));
    assert_eq!(
        out.result,
        Err(Error::StoreUnavailable("connection refused".into()))
    );
    assert_eq!(out.registered_identity, None);
    assert_eq!(
        store.round_trips(),
        trips,
        "not retried against a down store"
    );
    assert!(events(&mut r).is_empty() && transmits(&mut r).is_empty());
    // Read-only paths report the failure instead of "no binding".
    assert_eq!(
        r.bindings(now, AOR),
        Err(Error::StoreUnavailable("connection refused".into()))
    );
    assert!(r.is_registered(now, AOR).is_err());
    // A reg event SUBSCRIBE is refused with 503 and creates no subscription.
    let mut v = view();
    v.subscribe(now, AOR, CORE).unwrap();
    let sub = v.poll_transmit().unwrap();
    let resp = r.handle_subscribe(now, SERVER_PEER, &on_wire(&sub));
    assert_eq!(resp.status(), 503);
    assert_eq!(r.subscription_count(), 0);
    assert!(r.poll_transmit().is_none());
    // Expiry while down: reported, nothing removed, nothing lost.
    let later = clock.advance(121);
    r.handle_timeout(later);
    let evs = events(&mut r);
    assert!(
        evs.iter().any(|e| matches!(
            e,
            Event::StoreUnavailable {
                operation: "expiry",
                ..
            }
        )),
        "{evs:?}"
    );
    assert!(
        !evs.iter()
            .any(|e| matches!(e, Event::BindingRemoved { .. })),
        "{evs:?}"
    );

    // The store is back: the expiry that was due happens, once.
    store.set_down(false);
    r.handle_timeout(later);
    let evs = events(&mut r);
    assert!(
        matches!(
            evs.as_slice(),
            [Event::BindingRemoved {
                reason: RemovalReason::Expired,
                ..
            }]
        ),
        "{evs:?}"
    );
    let out = r.handle_register(
        later,
        PEER,
        &register(AOR, "c1", 3, &[ue_contact(1, "")], Some(600)),
    );
    assert_eq!(out.response.status(), 200);
    assert_eq!(r.bindings(later, AOR).unwrap().len(), 1);
}

#[test]
fn binding_ids_are_unique_across_instances_sharing_a_store() {
    let store = Shared::default();
    let policy = FailurePolicy::Deregister;
    let filters = vec![FilterCriteria::mcptt(AS_URI).with_default_handling(policy)];
    let mut a = instance(&store, 1, filters.clone());
    let mut b = instance(&store, 2, filters);
    let now = Clock::new().now();
    // Two devices of one user, each registered through its own SIP core instance.
    let out = a.handle_register(
        now,
        PEER,
        &register(AOR, "d1", 1, &[ue_contact(1, "")], Some(600)),
    );
    assert_eq!(out.response.status(), 200);
    let out = b.handle_register(
        now,
        PEER,
        &register(AOR, "d2", 1, &[ue_contact(2, "")], Some(600)),
    );
    assert_eq!(out.response.status(), 200);
    let ids: HashSet<u64> = a.bindings(now, AOR).unwrap().iter().map(|x| x.id).collect();
    assert_eq!(ids.len(), 2, "each binding has its own id: {ids:?}");
    events(&mut a);
    events(&mut b);
    // B's application server refuses B's third-party REGISTER: only device 2 goes.
    transmits(&mut a);
    let t = transmits(&mut b).pop().unwrap();
    let refused = response(&Response::from_request(&t.request, 403));
    assert!(b.handle_third_party_response(now, &refused));
    let evs = events(&mut b);
    let removed: Vec<&Binding> = evs
        .iter()
        .filter_map(|e| match e {
            Event::BindingRemoved { binding, .. } => Some(binding),
            _ => None,
        })
        .collect();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].call_id, "d2");
    let left = a.bindings(now, AOR).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].call_id, "d1", "the other device's binding stays");
}

#[test]
fn at_most_two_store_round_trips_per_register_with_filters_and_subscribers() {
    let store = Shared::default();
    let filters = vec![
        FilterCriteria::mcptt(AS_URI),
        FilterCriteria::mcptt("sip:second-as.example.com"),
    ];
    let mut r = instance(&store, 1, filters);
    let mut v = view();
    let now = Clock::new().now();
    subscribe(&mut r, &mut v, now);
    for (cseq, expires) in [(1, 600), (2, 900), (3, 0)] {
        let before = store.round_trips();
        let out = r.handle_register(
            now,
            PEER,
            &register(AOR, "c1", cseq, &[ue_contact(1, "")], Some(expires)),
        );
        assert_eq!(out.response.status(), 200);
        assert_eq!(store.round_trips() - before, 2, "REGISTER {cseq}");
        let sent = transmits(&mut r);
        // Two third-party REGISTERs and one partial NOTIFY.
        assert_eq!(sent.len(), 3);
    }
}

#[test]
fn remote_change_is_notified_once_by_the_subscription_holder() {
    let store = Shared::default();
    let mut a = instance(&store, 1, Vec::new());
    let mut b = instance(&store, 2, Vec::new());
    let mut v = view();
    let mut clock = Clock::new();
    let now = clock.now();
    subscribe(&mut a, &mut v, now);
    while v.poll_event().is_some() {}
    store.take_feed();

    // The UE registers through B; B holds no subscription, so B sends no NOTIFY.
    let out = b.handle_register(
        now,
        PEER,
        &register(AOR, "c1", 1, &[ue_contact(1, "")], Some(120)),
    );
    assert_eq!(out.response.status(), 200);
    assert!(transmits(&mut b).is_empty());
    // The feed reaches both instances; only A, the holder, NOTIFYs.
    let feed = store.take_feed();
    assert_eq!(feed, [AOR]);
    let trips = store.round_trips();
    for aor in &feed {
        b.handle_remote_change(now, aor).unwrap();
        a.handle_remote_change(now, aor).unwrap();
    }
    assert_eq!(
        store.round_trips(),
        trips + 1,
        "only the holder reads the record"
    );
    assert!(transmits(&mut b).is_empty());
    let sent = transmits(&mut a);
    assert_eq!(sent.len(), 1);
    let doc = RegInfo::parse(&sent[0].request.body()).unwrap();
    assert_eq!(doc.state, DocState::Full);
    assert_eq!(doc.registrations[0].contacts[0].state, ContactState::Active);
    assert_eq!(
        v.handle_notify(now, CORE_PEER, &on_wire(&sent[0])).status(),
        200
    );
    assert!(matches!(
        v.poll_event(),
        Some(ServerEvent::UeRegistered { .. })
    ));
    // The same change delivered again (or a stale one) is not NOTIFYed twice.
    a.handle_remote_change(now, AOR).unwrap();
    assert!(transmits(&mut a).is_empty());
    // Other AoRs cost nothing.
    let trips = store.round_trips();
    a.handle_remote_change(now, "sip:bob@example.com").unwrap();
    assert_eq!(store.round_trips(), trips);

    // B expires the binding; A NOTIFYs its subscriber, which drops the UE.
    let later = clock.advance(121);
    b.handle_timeout(later);
    assert!(matches!(
        events(&mut b).as_slice(),
        [
            _,
            Event::BindingRemoved {
                reason: RemovalReason::Expired,
                ..
            }
        ]
    ));
    assert!(transmits(&mut b).is_empty());
    for aor in store.take_feed() {
        a.handle_remote_change(later, &aor).unwrap();
    }
    let sent = transmits(&mut a);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        v.handle_notify(later, CORE_PEER, &on_wire(&sent[0]))
            .status(),
        200
    );
    assert!(matches!(
        v.poll_event(),
        Some(ServerEvent::UeDeregistered { .. })
    ));
    assert!(v.ues(later, AOR).is_empty());

    // A change A itself made is NOTIFYed by A right away (partial) and not again when
    // the feed brings it back.
    let out = a.handle_register(
        later,
        PEER,
        &register(AOR, "c2", 1, &[ue_contact(2, "")], Some(600)),
    );
    assert_eq!(out.response.status(), 200);
    let sent = transmits(&mut a);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        RegInfo::parse(&sent[0].request.body()).unwrap().state,
        DocState::Partial
    );
    for aor in store.take_feed() {
        a.handle_remote_change(later, &aor).unwrap();
    }
    assert!(transmits(&mut a).is_empty());

    // Store down during a remote change: an error, nothing sent; a resync catches up.
    let out = b.handle_register(
        later,
        PEER,
        &register(AOR, "c2", 2, &[ue_contact(2, "")], Some(0)),
    );
    assert_eq!(out.response.status(), 200);
    store.set_down(true);
    assert!(matches!(
        a.handle_remote_change(later, AOR),
        Err(Error::StoreUnavailable(_))
    ));
    assert!(transmits(&mut a).is_empty());
    store.set_down(false);
    a.handle_remote_resync(later).unwrap();
    let sent = transmits(&mut a);
    assert_eq!(sent.len(), 1);
    let doc = RegInfo::parse(&sent[0].request.body()).unwrap();
    assert!(doc.registrations[0].contacts.is_empty());
}

#[test]
fn subscriber_moves_to_a_live_instance_when_the_dialog_holder_died() {
    let store = Shared::default();
    let mut a = instance(&store, 1, Vec::new());
    let mut b = instance(&store, 2, Vec::new());
    let mut v = view();
    let mut clock = Clock::new();
    let now = clock.now();
    subscribe(&mut a, &mut v, now);
    while v.poll_event().is_some() {}
    // Instance A dies with the dialog; the UE registers through B meanwhile. B holds no
    // subscription: nobody NOTIFYs yet.
    drop(a);
    let out = b.handle_register(
        now,
        PEER,
        &register(AOR, "c1", 1, &[ue_contact(1, "")], Some(3600)),
    );
    assert_eq!(out.response.status(), 200);
    assert!(transmits(&mut b).is_empty());
    // At the refresh time (80% of the 600 s granted) the view refreshes in the dialog;
    // behind the shared address the refresh lands on B, which answers 481.
    let refresh = v.poll_timeout().unwrap();
    assert_eq!(refresh, now + std::time::Duration::from_secs(480));
    let now = clock.advance(480);
    v.handle_timeout(now);
    let sub = v.poll_transmit().unwrap();
    let resp = b.handle_subscribe(now, SERVER_PEER, &on_wire(&sub));
    assert_eq!(resp.status(), 481);
    assert!(v.handle_subscribe_response(now, &response(&resp)));
    assert!(matches!(
        v.poll_event(),
        Some(ServerEvent::RegEventResync { .. })
    ));
    // The view starts a new subscription, which B accepts with full state.
    let sub = v.poll_transmit().expect("a new SUBSCRIBE");
    assert_eq!(
        on_wire(&sub)
            .headers()
            .get("To")
            .map(|t| t.contains("tag=")),
        Some(false)
    );
    let resp = b.handle_subscribe(now, SERVER_PEER, &on_wire(&sub));
    assert_eq!(resp.status(), 200);
    assert!(v.handle_subscribe_response(now, &response(&resp)));
    let n = transmits(&mut b);
    assert_eq!(n.len(), 1);
    assert_eq!(
        v.handle_notify(now, CORE_PEER, &on_wire(&n[0])).status(),
        200
    );
    assert!(matches!(
        v.poll_event(),
        Some(ServerEvent::UeRegistered { .. })
    ));
    assert_eq!(v.ues(now, AOR).len(), 1);
    // From now on B NOTIFYs the changes.
    let out = b.handle_register(
        now,
        PEER,
        &register(AOR, "c1", 2, &[ue_contact(1, "")], Some(0)),
    );
    assert_eq!(out.response.status(), 200);
    let n = transmits(&mut b);
    assert_eq!(n.len(), 1);
    assert_eq!(
        v.handle_notify(now, CORE_PEER, &on_wire(&n[0])).status(),
        200
    );
    assert!(v.ues(now, AOR).is_empty());
}
