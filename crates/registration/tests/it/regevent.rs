//! The reg event package (RFC 3680) in both directions: the registrar notifies, the MCPTT
//! server's view subscribes and applies full and partial documents.

use std::collections::HashSet;

use mcptt_registration::reginfo::{ContactEvent, ContactState, DocState};
use mcptt_registration::{
    RegEventConfig, RegInfo, Registrar, RegistrationView, ServerConfig, ServerEvent, Transmit,
    UeRemoval,
};
use mcptt_sip::{Message, Response};

use crate::support::*;

fn pair() -> (Registrar, RegistrationView) {
    let mut cfg = config();
    cfg.filters.clear(); // only reg event here
    cfg.reg_event = RegEventConfig {
        trusted_subscribers: HashSet::from([SERVER_PEER.to_owned()]),
        ..RegEventConfig::default()
    };
    let view = RegistrationView::new(
        ServerConfig {
            trusted_cores: HashSet::from([CORE_PEER.to_owned()]),
            server_uri: AS_URI.into(),
            subscription_expires: 600,
            ..ServerConfig::default()
        },
        11,
    );
    (Registrar::new(cfg, 9), view)
}

/// Encode and re-parse: what crosses the wire.
fn wire(t: &Transmit) -> mcptt_sip::Request {
    Message::parse(t.request.encode())
        .unwrap()
        .into_request()
        .unwrap()
}

fn doc_of(t: &Transmit) -> RegInfo {
    assert_eq!(
        t.request.headers().get("Content-Type"),
        Some(mcptt_registration::reginfo::CONTENT_TYPE)
    );
    RegInfo::parse(&t.request.body()).unwrap()
}

/// Subscribes `view` to AOR at `reg`; returns the initial NOTIFY.
fn subscribe(
    reg: &mut Registrar,
    view: &mut RegistrationView,
    now: std::time::Instant,
) -> Transmit {
    view.subscribe(now, AOR, CORE).unwrap();
    let sub = view.poll_transmit().unwrap();
    assert_eq!(sub.request.method().as_str(), "SUBSCRIBE");
    assert_eq!(sub.request.headers().get("Event"), Some("reg"));
    let resp = reg.handle_subscribe(now, SERVER_PEER, &wire(&sub));
    assert_eq!(resp.status(), 200);
    assert!(
        view.handle_subscribe_response(
            now,
            &Message::parse(resp.encode())
                .unwrap()
                .into_response()
                .unwrap()
        )
    );
    let n = reg.poll_transmit().expect("initial NOTIFY");
    assert_eq!(n.request.method().as_str(), "NOTIFY");
    assert!(
        n.request
            .headers()
            .get("Subscription-State")
            .unwrap()
            .starts_with("active")
    );
    n
}

#[test]
fn full_then_partial_notifications_keep_the_view_exact() {
    let (mut reg, mut view) = pair();
    let mut clock = Clock::new();
    let now = clock.now();
    // A UE registered before the subscription.
    reg.handle_register(
        now,
        PEER,
        &register(AOR, "c1", 1, &[ue_contact(1, ";expires=600")], None),
    );
    let n = subscribe(&mut reg, &mut view, now);
    let d = doc_of(&n);
    assert_eq!((d.version, d.state), (0, DocState::Full));
    assert_eq!(d.registrations[0].contacts.len(), 1);
    assert_eq!(view.handle_notify(now, CORE_PEER, &wire(&n)).status(), 200);
    assert!(matches!(
        view.poll_event(),
        Some(ServerEvent::UeRegistered { .. })
    ));
    assert_eq!(view.ues(now, AOR).len(), 1);

    // A second UE registers: partial NOTIFY, version 1.
    let now = clock.advance(10);
    reg.handle_register(
        now,
        PEER,
        &register(AOR, "c2", 1, &[ue_contact(2, ";expires=600")], None),
    );
    let n = reg.poll_transmit().unwrap();
    let d = doc_of(&n);
    assert_eq!((d.version, d.state), (1, DocState::Partial));
    assert_eq!(d.registrations[0].contacts.len(), 1);
    assert_eq!(
        d.registrations[0].contacts[0].event,
        ContactEvent::Registered
    );
    assert_eq!(view.handle_notify(now, CORE_PEER, &wire(&n)).status(), 200);
    assert_eq!(view.ues(now, AOR).len(), 2);

    // The first deregisters: partial NOTIFY with a terminated contact.
    reg.handle_register(
        now,
        PEER,
        &register(AOR, "c1", 2, &[ue_contact(1, ";expires=0")], None),
    );
    let n = reg.poll_transmit().unwrap();
    let d = doc_of(&n);
    assert_eq!(d.version, 2);
    assert_eq!(
        d.registrations[0].contacts[0].state,
        ContactState::Terminated
    );
    assert_eq!(
        d.registrations[0].contacts[0].event,
        ContactEvent::Unregistered
    );
    view.handle_notify(now, CORE_PEER, &wire(&n));
    let ues = view.ues(now, AOR);
    assert_eq!(ues.len(), 1);
    assert_eq!(
        ues[0].instance.as_deref(),
        Some("<urn:uuid:00000000-0000-1000-8000-000000000002>")
    );

    // Expiry of the second: partial NOTIFY `expired`, registration terminated.
    let now = clock.advance(600);
    reg.handle_timeout(now);
    let n = reg.poll_transmit().unwrap();
    let d = doc_of(&n);
    assert_eq!(d.registrations[0].contacts[0].event, ContactEvent::Expired);
    assert_eq!(
        d.registrations[0].state,
        mcptt_registration::reginfo::RegistrationState::Terminated
    );
    while view.poll_event().is_some() {}
    view.handle_notify(now, CORE_PEER, &wire(&n));
    assert!(view.ues(now, AOR).is_empty());
    assert!(matches!(
        view.poll_event(),
        Some(ServerEvent::UeDeregistered {
            reason: UeRemoval::RegEvent,
            ..
        })
    ));
}

#[test]
fn a_lost_partial_notification_triggers_a_resync_with_full_state() {
    let (mut reg, mut view) = pair();
    let now = Clock::new().now();
    let n = subscribe(&mut reg, &mut view, now);
    view.handle_notify(now, CORE_PEER, &wire(&n));
    reg.handle_register(
        now,
        PEER,
        &register(AOR, "c1", 1, &[ue_contact(1, "")], Some(600)),
    );
    let _lost = reg.poll_transmit().unwrap();
    reg.handle_register(
        now,
        PEER,
        &register(AOR, "c2", 1, &[ue_contact(2, "")], Some(600)),
    );
    let n = reg.poll_transmit().unwrap();
    assert_eq!(doc_of(&n).version, 2);
    // Gap: version 2 after 0. Answered 200 (the NOTIFY itself is fine), view asks again.
    let resp = view.handle_notify(now, CORE_PEER, &wire(&n));
    assert_eq!(resp.status(), 200);
    assert!(matches!(
        view.poll_event(),
        Some(ServerEvent::RegEventResync { .. })
    ));
    let resub = view.poll_transmit().expect("refreshing SUBSCRIBE");
    assert!(
        resub.request.headers().get("To").unwrap().contains("tag="),
        "in-dialog"
    );
    let resp = reg.handle_subscribe(now, SERVER_PEER, &wire(&resub));
    assert_eq!(resp.status(), 200);
    let full = reg.poll_transmit().unwrap();
    let d = doc_of(&full);
    assert_eq!((d.version, d.state), (3, DocState::Full));
    assert_eq!(
        view.handle_notify(now, CORE_PEER, &wire(&full)).status(),
        200
    );
    assert_eq!(view.ues(now, AOR).len(), 2);
}

#[test]
fn subscription_rules() {
    let (mut reg, mut view) = pair();
    let mut clock = Clock::new();
    let now = clock.now();
    view.subscribe(now, AOR, CORE).unwrap();
    let sub = view.poll_transmit().unwrap();
    // Untrusted subscriber for someone else's identity: 403.
    let resp = reg.handle_subscribe(now, "ue2.example.com", &wire(&sub));
    assert_eq!(resp.status(), 403);
    // The UE itself may watch its own identity.
    let resp = reg.handle_subscribe(now, PEER, &wire(&sub));
    assert_eq!(resp.status(), 200);
    assert_eq!(reg.subscription_count(), 1);
    // Another peer cannot refresh or end that subscription, even knowing the dialog.
    let n0 = reg.poll_transmit().unwrap();
    let to_tag = n0
        .request
        .headers()
        .from()
        .unwrap()
        .tag()
        .unwrap()
        .to_owned();
    let hijack = parse_request(&format!(
        "SUBSCRIBE {AOR} SIP/2.0\nVia: SIP/2.0/TLS h;branch=z9hG4bK9\nFrom: {}\nTo: <{AOR}>;tag={to_tag}\nCall-ID: {}\nCSeq: 9 SUBSCRIBE\nEvent: reg\nContact: <{AS_URI}>\nExpires: 0\nContent-Length: 0\n\n",
        sub.request.headers().get("From").unwrap(),
        sub.request.headers().call_id().unwrap(),
    ));
    assert_eq!(
        reg.handle_subscribe(now, "ue2.example.com", &hijack)
            .status(),
        403
    );
    assert_eq!(reg.subscription_count(), 1);
    let n = n0;
    // NOTIFY from an untrusted peer is refused by the view.
    assert_eq!(view.handle_notify(now, "intruder", &wire(&n)).status(), 403);
    // Subscription expiry: final NOTIFY terminated.
    let now = clock.advance(600);
    reg.handle_timeout(now);
    let last = reg.poll_transmit().unwrap();
    assert!(
        last.request
            .headers()
            .get("Subscription-State")
            .unwrap()
            .starts_with("terminated")
    );
    assert_eq!(reg.subscription_count(), 0);
    // A NOTIFY response 481 for an unknown dialog matches nothing.
    let r481 = Response::from_request(&last.request, 481);
    assert!(!reg.handle_notify_response(now, &r481));
}

#[test]
fn wrong_event_package_is_489() {
    let (mut reg, _) = pair();
    let now = Clock::new().now();
    let sub = parse_request(&format!(
        "SUBSCRIBE {AOR} SIP/2.0\nVia: SIP/2.0/TLS h;branch=z9hG4bK1\nFrom: <{AS_URI}>;tag=1\nTo: <{AOR}>\nCall-ID: s\nCSeq: 1 SUBSCRIBE\nEvent: presence\nContact: <{AS_URI}>\nExpires: 600\nContent-Length: 0\n\n"
    ));
    assert_eq!(reg.handle_subscribe(now, SERVER_PEER, &sub).status(), 489);
}
