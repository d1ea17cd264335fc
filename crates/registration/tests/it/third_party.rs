//! Third-party registration (DESIGN.md §3) from the registrar to the MCPTT server's
//! registration view, and application server failure handling.

use std::collections::HashSet;

use mcptt_registration::{
    Event, FailurePolicy, FilterCriteria, Registrar, RegistrationView, RemovalReason, ServerConfig,
    ServerEvent, ThirdPartyFailure, Transmit, UeRemoval,
};
use mcptt_sip::{Message, Response};

use crate::support::*;

fn server() -> RegistrationView {
    RegistrationView::new(
        ServerConfig {
            trusted_cores: HashSet::from([CORE_PEER.to_owned()]),
            server_uri: AS_URI.into(),
            ..ServerConfig::default()
        },
        3,
    )
}

fn drain_events(r: &mut Registrar) -> Vec<Event> {
    std::iter::from_fn(|| r.poll_event()).collect()
}

fn only_transmit(r: &mut Registrar) -> Transmit {
    let t = r.poll_transmit().expect("a third-party REGISTER");
    assert!(r.poll_transmit().is_none(), "exactly one request");
    t
}

fn answer(t: &Transmit, code: u16) -> Response {
    Response::from_request(&t.request, code)
}

#[test]
fn third_party_register_matches_design_and_reaches_the_server() {
    let mut r = registrar();
    let mut s = server();
    let mut clock = Clock::new();
    let now = clock.now();
    let ue_register = register(AOR, "c1", 1, &[ue_contact(1, ";expires=600")], None);
    assert_eq!(
        r.handle_register(now, PEER, &ue_register).response.status(),
        200
    );
    let t = only_transmit(&mut r);
    let req = &t.request;
    assert_eq!(t.destination, AS_URI);
    assert_eq!(req.method().as_str(), "REGISTER");
    assert_eq!(req.uri().to_string(), AS_URI);
    let h = req.headers();
    assert!(h.get("To").unwrap().contains(AOR));
    assert!(h.get("From").unwrap().contains(CORE));
    assert!(h.get("Contact").unwrap().contains(CORE));
    assert_eq!(h.get("Expires"), Some("600"));
    assert_eq!(h.get("Content-Type"), Some("message/sip"));
    // The body is the UE's REGISTER byte for byte.
    assert_eq!(req.body(), ue_register.encode());
    // It survives the wire.
    let wire = Message::parse(req.encode())
        .unwrap()
        .into_request()
        .unwrap();

    // MCPTT server side: accepted from the trusted core only.
    let resp = s.handle_third_party_register(now, "intruder.example.com", &wire);
    assert_eq!(resp.status(), 403);
    assert!(s.poll_event().is_none());
    let resp = s.handle_third_party_register(now, CORE_PEER, &wire);
    assert_eq!(resp.status(), 200);
    let ev = s.poll_event().unwrap();
    let ServerEvent::UeRegistered { impu, ue } = ev else {
        panic!("{ev:?}")
    };
    assert_eq!(impu, AOR);
    assert_eq!(
        ue.instance.as_deref(),
        Some("<urn:uuid:00000000-0000-1000-8000-000000000001>")
    );
    assert_eq!(ue.contact, "sip:alice@192.0.2.1:5061;transport=tls");
    assert!(s.is_registered(now, AOR, "<urn:uuid:00000000-0000-1000-8000-000000000001>"));
    assert!(r.handle_third_party_response(now, &answer(&t, 200)));
    assert!(
        drain_events(&mut r)
            .iter()
            .all(|e| !matches!(e, Event::ThirdPartyFailed { .. }))
    );

    // Refresh: Expires follows the binding.
    let now = clock.advance(300);
    let refresh = register(AOR, "c1", 2, &[ue_contact(1, ";expires=900")], None);
    assert_eq!(
        r.handle_register(now, PEER, &refresh).response.status(),
        200
    );
    let t = only_transmit(&mut r);
    assert_eq!(t.request.headers().get("Expires"), Some("900"));
    assert_eq!(t.request.body(), refresh.encode());
    assert_eq!(
        s.handle_third_party_register(now, CORE_PEER, &t.request)
            .status(),
        200
    );
    assert!(matches!(
        s.poll_event(),
        Some(ServerEvent::UeRefreshed { .. })
    ));
    assert!(r.handle_third_party_response(now, &answer(&t, 200)));

    // Deregistration: Expires 0.
    let dereg = register(AOR, "c1", 3, &[ue_contact(1, ";expires=0")], None);
    assert_eq!(r.handle_register(now, PEER, &dereg).response.status(), 200);
    let t = only_transmit(&mut r);
    assert_eq!(t.request.headers().get("Expires"), Some("0"));
    assert_eq!(t.request.body(), dereg.encode());
    assert_eq!(
        s.handle_third_party_register(now, CORE_PEER, &t.request)
            .status(),
        200
    );
    assert!(matches!(
        s.poll_event(),
        Some(ServerEvent::UeDeregistered {
            reason: UeRemoval::Deregistered,
            ..
        })
    ));
    assert!(s.ues(now, AOR).is_empty());
}

#[test]
fn expiry_sends_expires_zero_and_server_expires_on_its_own_too() {
    let mut r = registrar();
    let mut s = server();
    let mut clock = Clock::new();
    let now = clock.now();
    let ue_register = register(AOR, "c1", 1, &[ue_contact(1, ";expires=120")], None);
    r.handle_register(now, PEER, &ue_register);
    let t = only_transmit(&mut r);
    s.handle_third_party_register(now, CORE_PEER, &t.request);
    r.handle_third_party_response(now, &answer(&t, 200));
    while s.poll_event().is_some() {}
    let now = clock.advance(120);
    r.handle_timeout(now);
    let t = only_transmit(&mut r);
    assert_eq!(t.request.headers().get("Expires"), Some("0"));
    assert_eq!(t.request.body(), ue_register.encode());
    // The server's own timer also expires the UE at the same instant.
    assert_eq!(s.poll_timeout(), Some(now));
    s.handle_timeout(now);
    assert!(matches!(
        s.poll_event(),
        Some(ServerEvent::UeDeregistered {
            reason: UeRemoval::Expired,
            ..
        })
    ));
    assert_eq!(
        s.handle_third_party_register(now, CORE_PEER, &t.request)
            .status(),
        200
    );
    assert!(s.poll_event().is_none(), "already gone: no second event");
}

#[test]
fn star_deregistration_reaches_the_server() {
    let mut r = registrar();
    let mut s = server();
    let now = Clock::new().now();
    r.handle_register(
        now,
        PEER,
        &register(
            AOR,
            "c1",
            1,
            &[ue_contact(1, ""), ue_contact(2, "")],
            Some(600),
        ),
    );
    let t = only_transmit(&mut r);
    s.handle_third_party_register(now, CORE_PEER, &t.request);
    assert_eq!(s.ues(now, AOR).len(), 2);
    r.handle_register(now, PEER, &register(AOR, "c1", 2, &["*".into()], Some(0)));
    let t = only_transmit(&mut r);
    assert_eq!(t.request.headers().get("Expires"), Some("0"));
    s.handle_third_party_register(now, CORE_PEER, &t.request);
    assert!(s.ues(now, AOR).is_empty());
}

#[test]
fn no_filter_match_no_third_party() {
    let mut r = registrar();
    let now = Clock::new().now();
    let out = r.handle_register(
        now,
        PEER,
        &register(
            AOR,
            "c1",
            1,
            &["<sip:alice@198.51.100.7>".into()],
            Some(600),
        ),
    );
    assert_eq!(out.response.status(), 200);
    assert!(r.poll_transmit().is_none());

    // The ICSI filter matches on the ICSI value only.
    let mut cfg = config();
    cfg.filters = vec![FilterCriteria::mcptt_icsi(AS_URI)];
    let mut r = Registrar::new(cfg, 1);
    let other_icsi =
        "<sip:alice@198.51.100.7>;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel\""
            .to_owned();
    r.handle_register(now, PEER, &register(AOR, "c1", 1, &[other_icsi], Some(600)));
    assert!(r.poll_transmit().is_none());
    r.handle_register(
        now,
        PEER,
        &register(AOR, "c1", 2, &[ue_contact(1, "")], Some(600)),
    );
    assert!(r.poll_transmit().is_some());
}

fn registrar_with_policy(policy: FailurePolicy) -> Registrar {
    let mut cfg = config();
    cfg.filters = vec![FilterCriteria::mcptt(AS_URI).with_default_handling(policy)];
    Registrar::new(cfg, 5)
}

#[test]
fn as_failure_with_keep_policy_is_an_event_and_keeps_the_binding() {
    let mut r = registrar_with_policy(FailurePolicy::Keep);
    let now = Clock::new().now();
    r.handle_register(
        now,
        PEER,
        &register(AOR, "c1", 1, &[ue_contact(1, "")], Some(600)),
    );
    drain_events(&mut r);
    let t = only_transmit(&mut r);
    assert!(
        r.handle_third_party_response(now, &answer(&t, 100)),
        "provisional matched"
    );
    assert!(r.handle_third_party_response(now, &answer(&t, 503)));
    let evs = drain_events(&mut r);
    assert_eq!(
        evs,
        vec![Event::ThirdPartyFailed {
            aor: AOR.into(),
            application_server: AS_URI.into(),
            failure: ThirdPartyFailure::Status(503),
            action: FailurePolicy::Keep,
        }]
    );
    assert!(r.is_registered(now, AOR).unwrap());
    // A second final response to the same transaction is not matched again.
    assert!(!r.handle_third_party_response(now, &answer(&t, 503)));
}

#[test]
fn as_failure_with_deregister_policy_removes_the_binding() {
    let mut r = registrar_with_policy(FailurePolicy::Deregister);
    let now = Clock::new().now();
    r.handle_register(
        now,
        PEER,
        &register(AOR, "c1", 1, &[ue_contact(1, "")], Some(600)),
    );
    drain_events(&mut r);
    let t = only_transmit(&mut r);
    r.handle_third_party_response(now, &answer(&t, 403));
    let evs = drain_events(&mut r);
    assert!(matches!(
        evs.first(),
        Some(Event::ThirdPartyFailed {
            failure: ThirdPartyFailure::Status(403),
            action: FailurePolicy::Deregister,
            ..
        })
    ));
    assert!(matches!(
        evs.get(1),
        Some(Event::BindingRemoved {
            reason: RemovalReason::ApplicationServerFailure,
            ..
        })
    ));
    assert!(!r.is_registered(now, AOR).unwrap());
}

#[test]
fn as_timeout_is_an_event() {
    let mut r = registrar_with_policy(FailurePolicy::Deregister);
    let mut clock = Clock::new();
    let now = clock.now();
    r.handle_register(
        now,
        PEER,
        &register(AOR, "c1", 1, &[ue_contact(1, "")], Some(600)),
    );
    drain_events(&mut r);
    let t = only_transmit(&mut r);
    assert_eq!(r.poll_timeout(), Some(now + r.config().third_party_timeout));
    let now = clock.advance(31);
    r.handle_timeout(now);
    assert!(drain_events(&mut r).is_empty());
    let now = clock.advance(1);
    r.handle_timeout(now);
    let evs = drain_events(&mut r);
    assert!(matches!(
        evs.first(),
        Some(Event::ThirdPartyFailed {
            failure: ThirdPartyFailure::Timeout,
            ..
        })
    ));
    assert!(!r.is_registered(now, AOR).unwrap());
    // A late answer matches nothing.
    assert!(!r.handle_third_party_response(now, &answer(&t, 200)));
}

#[test]
fn server_refuses_bad_third_party_bodies() {
    let mut s = server();
    let now = Clock::new().now();
    let no_body = parse_request(&format!(
        "REGISTER {AS_URI} SIP/2.0\nVia: SIP/2.0/TLS h;branch=z9hG4bK1\nFrom: <{CORE}>;tag=1\nTo: <{AOR}>\nCall-ID: x\nCSeq: 1 REGISTER\nExpires: 600\nContent-Length: 0\n\n"
    ));
    assert_eq!(
        s.handle_third_party_register(now, CORE_PEER, &no_body)
            .status(),
        400
    );
    let wrong_type = parse_request(&format!(
        "REGISTER {AS_URI} SIP/2.0\nVia: SIP/2.0/TLS h;branch=z9hG4bK1\nFrom: <{CORE}>;tag=1\nTo: <{AOR}>\nCall-ID: x\nCSeq: 1 REGISTER\nExpires: 600\nContent-Type: text/plain\nContent-Length: 5\n\nhello"
    ));
    assert_eq!(
        s.handle_third_party_register(now, CORE_PEER, &wrong_type)
            .status(),
        415
    );
    let garbage = parse_request(&format!(
        "REGISTER {AS_URI} SIP/2.0\nVia: SIP/2.0/TLS h;branch=z9hG4bK1\nFrom: <{CORE}>;tag=1\nTo: <{AOR}>\nCall-ID: x\nCSeq: 1 REGISTER\nExpires: 600\nContent-Type: message/sip\nContent-Length: 5\n\nhello"
    ));
    assert_eq!(
        s.handle_third_party_register(now, CORE_PEER, &garbage)
            .status(),
        400
    );
    // Embedded REGISTER for another identity.
    let inner = register(
        "sip:bob@example.com",
        "i",
        1,
        &[ue_contact(1, "")],
        Some(600),
    )
    .encode();
    let mismatch = mcptt_sip::Request::builder(
        mcptt_sip::Method::Register,
        mcptt_sip::Uri::parse(AS_URI).unwrap(),
    )
    .header("Via", "SIP/2.0/TLS h;branch=z9hG4bK1")
    .header("From", format!("<{CORE}>;tag=1"))
    .header("To", format!("<{AOR}>"))
    .header("Call-ID", "x")
    .header("CSeq", "1 REGISTER")
    .header("Expires", 600)
    .body("message/sip", inner)
    .build()
    .unwrap();
    assert_eq!(
        s.handle_third_party_register(now, CORE_PEER, &mismatch)
            .status(),
        400
    );
    assert!(s.poll_event().is_none());
    assert_eq!(s.identity_count(), 0);
}

#[test]
fn server_expires_each_ue_even_with_equal_expiry_instants() {
    let mut s = server();
    let mut clock = Clock::new();
    let now = clock.now();
    let mut r = registrar();
    // Two UEs of one identity with the same expiry instant, then one deregisters.
    r.handle_register(
        now,
        PEER,
        &register(AOR, "c1", 1, &[ue_contact(1, "")], Some(600)),
    );
    s.handle_third_party_register(now, CORE_PEER, &only_transmit(&mut r).request);
    r.handle_register(
        now,
        PEER,
        &register(AOR, "c2", 1, &[ue_contact(2, "")], Some(600)),
    );
    s.handle_third_party_register(now, CORE_PEER, &only_transmit(&mut r).request);
    r.handle_register(
        now,
        PEER,
        &register(AOR, "c1", 2, &[ue_contact(1, "")], Some(0)),
    );
    s.handle_third_party_register(now, CORE_PEER, &only_transmit(&mut r).request);
    assert_eq!(s.ues(now, AOR).len(), 1);
    // The remaining UE still has its timer.
    assert_eq!(
        s.poll_timeout(),
        Some(now + std::time::Duration::from_secs(600))
    );
    let now = clock.advance(600);
    s.handle_timeout(now);
    assert_eq!(s.identity_count(), 0);
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn deregistration_of_a_ue_registered_at_another_instance_is_reported() {
    // The UE's REGISTERs went to another MCPTT server instance; its de-registration reaches
    // this one, which never saw it.
    let mut r = registrar();
    let mut s = RegistrationView::new(
        ServerConfig {
            trusted_cores: HashSet::from([CORE_PEER.to_owned()]),
            server_uri: AS_URI.into(),
            report_unknown_deregistrations: true,
            ..ServerConfig::default()
        },
        3,
    );
    let mut quiet = server();
    let clock = Clock::new();
    let now = clock.now();
    let reg = register(AOR, "c1", 1, &[ue_contact(1, ";expires=600")], None);
    assert_eq!(r.handle_register(now, PEER, &reg).response.status(), 200);
    let first = only_transmit(&mut r);
    assert!(r.handle_third_party_response(now, &answer(&first, 200)));
    let dereg = register(AOR, "c1", 2, &[ue_contact(1, ";expires=0")], None);
    assert_eq!(r.handle_register(now, PEER, &dereg).response.status(), 200);
    let t = only_transmit(&mut r);
    assert_eq!(
        s.handle_third_party_register(now, CORE_PEER, &t.request)
            .status(),
        200
    );
    let Some(ServerEvent::UeDeregistered { impu, ue, reason }) = s.poll_event() else {
        panic!("a de-registration event")
    };
    assert_eq!(impu, AOR);
    assert_eq!(reason, UeRemoval::Deregistered);
    assert_eq!(
        ue.instance.as_deref(),
        Some("<urn:uuid:00000000-0000-1000-8000-000000000001>")
    );
    assert_eq!(ue.contact, "sip:alice@192.0.2.1:5061;transport=tls");
    assert!(s.poll_event().is_none(), "one event");
    assert!(s.ues(now, AOR).is_empty());
    // Off (the default): a single instance says nothing about a UE it does not know.
    assert_eq!(
        quiet
            .handle_third_party_register(now, CORE_PEER, &t.request)
            .status(),
        200
    );
    assert!(quiet.poll_event().is_none());
}

/// Every contact of a third-party REGISTER gets its event naming the identity, whichever
/// contact comes last (the last one's event takes the identity read from `To`, the others a
/// copy): two new UEs, then a refresh, a removal and a new UE in one request.
#[test]
fn each_contact_of_one_third_party_register_is_reported_with_the_identity() {
    let mut r = registrar();
    let mut s = server();
    let clock = Clock::new();
    let now = clock.now();
    let instance = |n: u32| format!("<urn:uuid:00000000-0000-1000-8000-00000000000{n}>");
    let mut forward = |r: &mut Registrar, req| {
        assert_eq!(r.handle_register(now, PEER, &req).response.status(), 200);
        let t = only_transmit(r);
        assert_eq!(
            s.handle_third_party_register(now, CORE_PEER, &t.request)
                .status(),
            200
        );
        let events: Vec<_> = std::iter::from_fn(|| s.poll_event())
            .map(|ev| match ev {
                ServerEvent::UeRegistered { impu, ue } => ("registered", impu, ue.instance),
                ServerEvent::UeRefreshed { impu, ue } => ("refreshed", impu, ue.instance),
                ServerEvent::UeDeregistered { impu, ue, .. } => ("deregistered", impu, ue.instance),
                other => panic!("{other:?}"),
            })
            .collect();
        (s.ues(now, AOR).len(), events)
    };
    let both = register(
        AOR,
        "c1",
        1,
        &[ue_contact(1, ";expires=600"), ue_contact(2, ";expires=600")],
        None,
    );
    assert_eq!(
        forward(&mut r, both),
        (
            2,
            vec![
                ("registered", AOR.to_owned(), Some(instance(1))),
                ("registered", AOR.to_owned(), Some(instance(2))),
            ]
        )
    );
    let mixed = register(
        AOR,
        "c1",
        2,
        &[
            ue_contact(1, ";expires=900"),
            ue_contact(2, ";expires=0"),
            ue_contact(3, ";expires=600"),
        ],
        None,
    );
    assert_eq!(
        forward(&mut r, mixed),
        (
            2,
            vec![
                ("refreshed", AOR.to_owned(), Some(instance(1))),
                ("deregistered", AOR.to_owned(), Some(instance(2))),
                ("registered", AOR.to_owned(), Some(instance(3))),
            ]
        )
    );
}
