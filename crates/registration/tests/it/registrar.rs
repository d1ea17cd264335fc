//! Table-driven RFC 3261 §10.3 registrar rules on a virtual clock.

use mcptt_registration::{Event, RegistrationStore, RemovalReason};

use crate::support::*;

/// One REGISTER of a scenario, sent `advance` seconds after the previous step.
struct Step {
    advance: u64,
    peer: &'static str,
    to: &'static str,
    call_id: &'static str,
    cseq: u32,
    contacts: Vec<String>,
    expires: Option<u32>,
    /// Expected response status.
    status: u16,
    /// Expected `expires` of each Contact listed in the 200 OK (in order).
    listed: Vec<u32>,
    /// Expected events, in order: "added", "refreshed", "unregistered", "expired".
    events: Vec<&'static str>,
}

fn step(call_id: &'static str, cseq: u32, contacts: Vec<String>, expires: Option<u32>) -> Step {
    Step {
        advance: 0,
        peer: PEER,
        to: AOR,
        call_id,
        cseq,
        contacts,
        expires,
        status: 200,
        listed: vec![],
        events: vec![],
    }
}

impl Step {
    fn after(mut self, s: u64) -> Self {
        self.advance = s;
        self
    }
    fn status(mut self, s: u16) -> Self {
        self.status = s;
        self
    }
    fn listed(mut self, l: &[u32]) -> Self {
        self.listed = l.to_vec();
        self
    }
    fn events(mut self, e: &[&'static str]) -> Self {
        self.events = e.to_vec();
        self
    }
    fn peer(mut self, p: &'static str) -> Self {
        self.peer = p;
        self
    }
    fn to(mut self, t: &'static str) -> Self {
        self.to = t;
        self
    }
}

fn c(n: u32) -> String {
    ue_contact(n, "")
}
fn ce(n: u32, e: u32) -> String {
    ue_contact(n, &format!(";expires={e}"))
}
fn plain(uri: &str, extra: &str) -> String {
    format!("<{uri}>{extra}")
}

fn event_name(e: &Event) -> &'static str {
    match e {
        Event::BindingAdded { .. } => "added",
        Event::BindingRefreshed { .. } => "refreshed",
        Event::BindingRemoved {
            reason: RemovalReason::Unregistered,
            ..
        } => "unregistered",
        Event::BindingRemoved {
            reason: RemovalReason::Expired,
            ..
        } => "expired",
        Event::BindingRemoved { .. } => "removed-other",
        Event::ThirdPartyFailed { .. } => "third-party-failed",
        _ => "other",
    }
}

fn cases() -> Vec<(&'static str, Vec<Step>)> {
    vec![
        (
            "step 7: add a binding; 200 lists it with its expiry",
            vec![step("a", 1, vec![ce(1, 600)], None).listed(&[600]).events(&["added"])],
        ),
        (
            "step 7: refresh with the same Call-ID and a higher CSeq",
            vec![
                step("a", 1, vec![ce(1, 600)], None).listed(&[600]).events(&["added"]),
                step("a", 2, vec![ce(1, 900)], None).after(100).listed(&[900]).events(&["refreshed"]),
            ],
        ),
        (
            "step 7: replayed REGISTER (same Call-ID, same CSeq) refused, nothing changes",
            vec![
                step("a", 5, vec![ce(1, 600)], None).listed(&[600]).events(&["added"]),
                step("a", 5, vec![ce(1, 900)], None).after(10).status(500),
                step("a", 6, vec![], None).listed(&[590]),
            ],
        ),
        (
            "step 7: out-of-order REGISTER (same Call-ID, lower CSeq) refused",
            vec![
                step("a", 5, vec![ce(1, 600)], None).events(&["added"]).listed(&[600]),
                step("a", 4, vec![ce(1, 0)], None).status(500),
                step("a", 6, vec![], None).listed(&[600]),
            ],
        ),
        (
            "step 7: another Call-ID updates the binding whatever its CSeq",
            vec![
                step("a", 5, vec![ce(1, 600)], None).events(&["added"]).listed(&[600]),
                step("b", 1, vec![ce(1, 300)], None).events(&["refreshed"]).listed(&[300]),
            ],
        ),
        (
            "step 7: expires=0 removes one binding, the other stays",
            vec![
                step("a", 1, vec![ce(1, 600), ce(2, 700)], None)
                    .listed(&[600, 700])
                    .events(&["added", "added"]),
                step("a", 2, vec![ce(1, 0)], None).listed(&[700]).events(&["unregistered"]),
            ],
        ),
        (
            "step 7: Expires: 0 header removes a contact without expires param",
            vec![
                step("a", 1, vec![c(1)], Some(600)).listed(&[600]).events(&["added"]),
                step("a", 2, vec![c(1)], Some(0)).listed(&[]).events(&["unregistered"]),
            ],
        ),
        (
            "step 7: expires=0 for an unknown contact is accepted and changes nothing",
            vec![step("a", 1, vec![ce(3, 0)], None).listed(&[])],
        ),
        (
            "step 6: Contact: * with Expires: 0 removes all bindings",
            vec![
                step("a", 1, vec![ce(1, 600), ce(2, 700)], None)
                    .listed(&[600, 700])
                    .events(&["added", "added"]),
                step("a", 2, vec!["*".into()], Some(0))
                    .listed(&[])
                    .events(&["unregistered", "unregistered"]),
            ],
        ),
        (
            "step 6: Contact: * without Expires: 0 is a 400",
            vec![
                step("a", 1, vec![ce(1, 600)], None).listed(&[600]).events(&["added"]),
                step("a", 2, vec!["*".into()], Some(60)).status(400),
                step("a", 3, vec!["*".into()], None).status(400),
            ],
        ),
        (
            "step 6: Contact: * mixed with another contact is a 400",
            vec![step("a", 1, vec!["*".into(), c(1)], Some(0)).status(400)],
        ),
        (
            "step 7: Contact: * also obeys the Call-ID/CSeq ordering",
            vec![
                step("a", 5, vec![ce(1, 600)], None).listed(&[600]).events(&["added"]),
                step("a", 5, vec!["*".into()], Some(0)).status(500),
                step("b", 1, vec!["*".into()], Some(0)).listed(&[]).events(&["unregistered"]),
            ],
        ),
        (
            "step 8: fetch (no Contact) lists bindings with remaining expiry",
            vec![
                step("a", 1, vec![ce(1, 600)], None).listed(&[600]).events(&["added"]),
                step("a", 2, vec![], None).after(100).listed(&[500]),
                step("z", 1, vec![], None).after(450).listed(&[50]),
            ],
        ),
        (
            "step 7: expiry below min-expires is a 423 (Min-Expires), nothing stored",
            vec![
                step("a", 1, vec![ce(1, 59)], None).status(423),
                step("a", 2, vec![c(1)], Some(30)).status(423),
                step("a", 3, vec![], None).listed(&[]),
            ],
        ),
        (
            "step 7: one too-brief contact fails the whole request (atomic)",
            vec![step("a", 1, vec![ce(1, 600), ce(2, 10)], None).status(423), step("a", 2, vec![], None)],
        ),
        (
            "step 7: expiry above max-expires is shortened to it",
            vec![step("a", 1, vec![ce(1, 100_000)], None).listed(&[3600]).events(&["added"])],
        ),
        (
            "step 7: contact expires param overrides Expires header; default when neither",
            vec![
                step("a", 1, vec![ce(1, 120), c(2)], Some(240))
                    .listed(&[120, 240])
                    .events(&["added", "added"]),
                step("b", 1, vec![plain("sip:alice@198.51.100.1", "")], None)
                    .to("sip:alice-2@example.com")
                    .listed(&[1800])
                    .events(&["added"]),
            ],
        ),
        (
            "step 4: an identity the peer may not register is a 403",
            vec![
                step("a", 1, vec![ce(1, 600)], None).to("sip:bob@example.com").status(403),
                step("a", 1, vec![ce(1, 600)], None).peer("intruder.example.com").status(403),
            ],
        ),
        (
            "step 5: a To URI that is not a SIP/tel AoR is a 404",
            vec![step("a", 1, vec![ce(1, 600)], None).to("mailto:alice@example.com").status(404)],
        ),
        (
            "RFC 5627: same +sip.instance, new contact URI refreshes the one binding",
            vec![
                step("a", 1, vec![ce(1, 600)], None).listed(&[600]).events(&["added"]),
                step(
                    "b",
                    1,
                    vec![
                        "<sip:alice@203.0.113.9:5061;transport=tls>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000000000001>\";expires=600"
                            .into(),
                    ],
                    None,
                )
                .listed(&[600])
                .events(&["refreshed"]),
            ],
        ),
        (
            "RFC 5626: same instance, two reg-ids are two bindings",
            vec![step(
                "a",
                1,
                vec![ue_contact(1, ";reg-id=1;expires=600"), ue_contact(1, ";reg-id=2;expires=600")],
                None,
            )
            .listed(&[600, 600])
            .events(&["added", "added"])],
        ),
        (
            "RFC 3261: contacts without instance are matched by URI",
            vec![
                step("a", 1, vec![plain("sip:alice@198.51.100.1", ";expires=600")], None)
                    .listed(&[600])
                    .events(&["added"]),
                step("a", 2, vec![plain("sip:alice@198.51.100.2", ";expires=600")], None)
                    .listed(&[600, 600])
                    .events(&["added"]),
                step("a", 3, vec![plain("sip:alice@198.51.100.1", ";expires=0")], None)
                    .listed(&[600])
                    .events(&["unregistered"]),
            ],
        ),
        (
            "limit: more bindings than max_bindings_per_aor is a 503",
            vec![
                step("a", 1, vec![ce(1, 600), ce(2, 600), ce(3, 600), ce(4, 600)], None)
                    .listed(&[600, 600, 600, 600])
                    .events(&["added", "added", "added", "added"]),
                step("a", 2, vec![ce(5, 600)], None).status(503),
            ],
        ),
        (
            "an expired binding is never listed, and its expiry is an event",
            vec![
                step("a", 1, vec![ce(1, 60), ce(2, 600)], None)
                    .listed(&[60, 600])
                    .events(&["added", "added"]),
                step("a", 2, vec![], None).after(60).listed(&[540]).events(&["expired"]),
            ],
        ),
    ]
}

#[test]
fn rfc3261_10_3_rules() {
    for (name, steps) in cases() {
        let mut r = registrar();
        let mut clock = Clock::new();
        for (i, s) in steps.iter().enumerate() {
            let now = clock.advance(s.advance);
            let req = register(s.to, s.call_id, s.cseq, &s.contacts, s.expires);
            let out = r.handle_register(now, s.peer, &req);
            let ctx = format!("case `{name}`, step {i}");
            assert_eq!(out.response.status(), s.status, "{ctx}: {:?}", out.result);
            assert_eq!(out.result.is_ok(), s.status == 200, "{ctx}");
            // The response is a well-formed SIP response.
            let reparsed = parse_response(out.response.encode());
            assert_eq!(reparsed.status(), s.status, "{ctx}");
            if s.status == 200 {
                assert_eq!(listed_expiries(&out.response), s.listed, "{ctx}");
                assert_eq!(
                    out.registered_identity.as_deref(),
                    (!s.listed.is_empty()).then_some(canonical(s.to).as_str()),
                    "{ctx}"
                );
            } else {
                assert_eq!(out.registered_identity, None, "{ctx}");
            }
            if s.status == 423 {
                assert_eq!(
                    out.response.headers().get("Min-Expires"),
                    Some("60"),
                    "{ctx}"
                );
            }
            let evs: Vec<&str> = std::iter::from_fn(|| r.poll_event())
                .map(|e| event_name(&e))
                .collect();
            assert_eq!(evs, s.events, "{ctx}");
        }
    }
}

fn canonical(aor: &str) -> String {
    mcptt_registration::canonical_aor(aor).unwrap()
}

#[test]
fn expiry_runs_on_handle_timeout_with_poll_timeout() {
    let mut r = registrar();
    let mut clock = Clock::new();
    let t0 = clock.now();
    let req = register(AOR, "a", 1, &[ce(1, 120), ce(2, 600)], None);
    assert_eq!(r.handle_register(t0, PEER, &req).response.status(), 200);
    while r.poll_event().is_some() {}
    while r.poll_transmit().is_some() {}
    // Next deadline is the first binding's expiry (third-party timeouts come earlier, so
    // answer them first).
    let deadline = r.poll_timeout().unwrap();
    assert!(deadline <= t0 + std::time::Duration::from_secs(120));
    // One second before: nothing expires.
    let now = clock.advance(119);
    r.handle_timeout(now);
    assert!(
        std::iter::from_fn(|| r.poll_event()).all(|e| !matches!(e, Event::BindingRemoved { .. }))
    );
    assert_eq!(r.bindings(now, AOR).unwrap().len(), 2);
    let now = clock.advance(1);
    r.handle_timeout(now);
    let evs: Vec<Event> = std::iter::from_fn(|| r.poll_event()).collect();
    assert_eq!(
        evs.iter().filter(|e| event_name(e) == "expired").count(),
        1,
        "{evs:?}"
    );
    assert_eq!(r.store().binding_count(), 1);
    let now = clock.advance(480);
    r.handle_timeout(now);
    assert_eq!(r.store().binding_count(), 0);
    assert_eq!(r.store().aor_count(), 0);
    assert!(!r.is_registered(now, AOR).unwrap());
}

#[test]
fn unsupported_require_is_420_with_unsupported() {
    let mut r = registrar();
    let now = Clock::new().now();
    let t = format!(
        "REGISTER sip:example.com SIP/2.0\nVia: SIP/2.0/TLS h;branch=z9hG4bK1\nFrom: <{AOR}>;tag=1\nTo: <{AOR}>\nCall-ID: x\nCSeq: 1 REGISTER\nRequire: foo\nContact: {}\nContent-Length: 0\n\n",
        ce(1, 600)
    );
    let out = r.handle_register(now, PEER, &parse_request(&t));
    assert_eq!(out.response.status(), 420);
    assert_eq!(out.response.headers().get("Unsupported"), Some("foo"));
    assert_eq!(r.store().binding_count(), 0);
    // Once configured as supported, the same request is accepted.
    let mut cfg = config();
    cfg.supported_extensions = vec!["foo".into()];
    let mut r = mcptt_registration::Registrar::new(cfg, 1);
    assert_eq!(
        r.handle_register(now, PEER, &parse_request(&t))
            .response
            .status(),
        200
    );
}

#[test]
fn malformed_registers_get_400_not_panic() {
    let mut r = registrar();
    let now = Clock::new().now();
    let bad = [
        // no Call-ID
        "REGISTER sip:example.com SIP/2.0\nVia: SIP/2.0/TLS h;branch=z9hG4bK1\nFrom: <sip:alice@example.com>;tag=1\nTo: <sip:alice@example.com>\nCSeq: 1 REGISTER\nContent-Length: 0\n\n",
        // CSeq method mismatch
        "REGISTER sip:example.com SIP/2.0\nVia: SIP/2.0/TLS h;branch=z9hG4bK1\nFrom: <sip:alice@example.com>;tag=1\nTo: <sip:alice@example.com>\nCall-ID: x\nCSeq: 1 INVITE\nContent-Length: 0\n\n",
        // bad Expires
        "REGISTER sip:example.com SIP/2.0\nVia: SIP/2.0/TLS h;branch=z9hG4bK1\nFrom: <sip:alice@example.com>;tag=1\nTo: <sip:alice@example.com>\nCall-ID: x\nCSeq: 1 REGISTER\nExpires: soon\nContent-Length: 0\n\n",
        // bad contact expires
        "REGISTER sip:example.com SIP/2.0\nVia: SIP/2.0/TLS h;branch=z9hG4bK1\nFrom: <sip:alice@example.com>;tag=1\nTo: <sip:alice@example.com>\nCall-ID: x\nCSeq: 1 REGISTER\nContact: <sip:a@h>;expires=-1\nContent-Length: 0\n\n",
    ];
    for (i, t) in bad.iter().enumerate() {
        let out = r.handle_register(now, PEER, &parse_request(t));
        assert_eq!(out.response.status(), 400, "message {i}: {:?}", out.result);
    }
    assert_eq!(r.store().binding_count(), 0);
}

/// A store shared with another (simulated) instance that writes to the same AoR between
/// our load and our write `conflicts` times.
struct Contended {
    inner: mcptt_registration::MemoryStore,
    conflicts: usize,
}

impl RegistrationStore for Contended {
    fn load(
        &self,
        aor: &str,
    ) -> Result<Option<(u64, mcptt_registration::AorRecord)>, mcptt_registration::StoreError> {
        self.inner.load(aor)
    }
    fn write(
        &mut self,
        aor: &str,
        expected: u64,
        record: mcptt_registration::AorRecord,
    ) -> Result<u64, mcptt_registration::StoreError> {
        if self.conflicts > 0 {
            self.conflicts -= 1;
            // The other instance rewrites the current record: the version moves on.
            let (v, rec) = self.inner.load(aor)?.unwrap_or_default();
            self.inner.write(aor, v, rec)?;
        }
        self.inner.write(aor, expected, record)
    }
    fn remove_expired(
        &mut self,
        aor: &str,
        now: std::time::Instant,
    ) -> Result<Vec<mcptt_registration::Binding>, mcptt_registration::StoreError> {
        self.inner.remove_expired(aor, now)
    }
    fn next_expiry(&self) -> Option<std::time::Instant> {
        self.inner.next_expiry()
    }
    fn due(
        &self,
        now: std::time::Instant,
        max: usize,
    ) -> Result<Vec<String>, mcptt_registration::StoreError> {
        self.inner.due(now, max)
    }
    fn aor_count(&self) -> usize {
        self.inner.aor_count()
    }
    fn binding_count(&self) -> usize {
        self.inner.binding_count()
    }
}

#[test]
fn versioned_writes_retry_on_conflict_then_give_up_with_500() {
    let now = Clock::new().now();
    let store = Contended {
        inner: mcptt_registration::MemoryStore::new(),
        conflicts: 2,
    };
    let mut r = mcptt_registration::Registrar::with_store(config(), store, 1);
    let out = r.handle_register(now, PEER, &register(AOR, "a", 1, &[ce(1, 600)], None));
    assert_eq!(out.response.status(), 200, "{:?}", out.result);
    assert_eq!(r.bindings(now, AOR).unwrap().len(), 1);
    let evs: Vec<Event> = std::iter::from_fn(|| r.poll_event()).collect();
    assert_eq!(evs.len(), 1, "one event despite the retries: {evs:?}");

    // Another instance keeps rewriting the AoR: after a bounded number of attempts, 500.
    r.store_mut().conflicts = 100;
    let out = r.handle_register(now, PEER, &register(AOR, "a", 2, &[ce(1, 900)], None));
    assert_eq!(out.response.status(), 500);
    assert!(r.poll_event().is_none());
    assert_eq!(r.bindings(now, AOR).unwrap()[0].cseq, 1, "nothing changed");
}

#[test]
fn request_uri_scheme_and_domain_rfc3261_10_3_steps_1_and_5() {
    let mut cfg = config();
    cfg.domains = vec!["Example.com".into()];
    let mut r = mcptt_registration::Registrar::new(cfg, 3);
    let now = Clock::new().now();
    let with_uri = |uri: &str, to: &str| {
        parse_request(&format!(
            "REGISTER {uri} SIP/2.0\nVia: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bKu\nMax-Forwards: 70\nFrom: <{to}>;tag=ft\nTo: <{to}>\nCall-ID: u1\nCSeq: 1 REGISTER\nContact: {}\nContent-Length: 0\n\n",
            ce(1, 600)
        ))
    };
    // Not a SIP Request-URI: 416 (RFC 3261 §21.4.16).
    let out = r.handle_register(now, PEER, &with_uri("tel:+4930123", AOR));
    assert_eq!(out.response.status(), 416, "{:?}", out.result);
    // A domain this registrar does not serve: 404, nothing bound.
    let out = r.handle_register(now, PEER, &with_uri("sip:other.example.net", AOR));
    assert_eq!(out.response.status(), 404, "{:?}", out.result);
    assert_eq!(
        out.result,
        Err(mcptt_registration::Error::UnknownDomain(
            "other.example.net".into()
        ))
    );
    // An AoR outside the Request-URI's domain: 404 (step 5).
    let out = r.handle_register(
        now,
        PEER,
        &with_uri("sip:example.com", "sip:alice@elsewhere.example.org"),
    );
    assert_eq!(out.response.status(), 404, "{:?}", out.result);
    assert_eq!(r.store().binding_count(), 0);
    // The served domain, compared case-insensitively.
    let out = r.handle_register(now, PEER, &with_uri("sip:EXAMPLE.com", AOR));
    assert_eq!(out.response.status(), 200, "{:?}", out.result);
    // Without configured domains any SIP domain is accepted (the default).
    let mut open = registrar();
    let out = open.handle_register(now, PEER, &with_uri("sip:other.example.net", AOR));
    assert_eq!(out.response.status(), 200, "{:?}", out.result);
}

#[test]
fn the_same_register_again_is_answered_200_without_change_an_older_one_500() {
    let mut r = registrar();
    let now = Clock::new().now();
    let first = register(AOR, "d1", 5, &[ce(1, 600)], None);
    assert_eq!(r.handle_register(now, PEER, &first).response.status(), 200);
    let _ = std::iter::from_fn(|| r.poll_event()).count();
    let _ = std::iter::from_fn(|| r.poll_transmit()).count();
    // The same request again (e.g. retransmitted to another instance after a failover,
    // whose transaction layer never saw it): 200 with the bindings, no change.
    let later = now + std::time::Duration::from_secs(10);
    let out = r.handle_register(later, PEER, &first);
    assert_eq!(out.response.status(), 200, "{:?}", out.result);
    assert_eq!(listed_expiries(&out.response), vec![590]);
    assert!(r.poll_event().is_none(), "no event for a duplicate");
    assert!(r.poll_transmit().is_none(), "no third-party REGISTER again");
    assert_eq!(
        r.bindings(later, AOR).unwrap()[0].expires_at,
        now + std::time::Duration::from_secs(600)
    );
    // Same Call-ID and CSeq but another request: out of order, 500.
    let other = register(AOR, "d1", 5, &[ce(1, 900)], None);
    assert_eq!(
        r.handle_register(later, PEER, &other).response.status(),
        500
    );
    // An older CSeq: 500 as well (RFC 3261 §10.3 step 7).
    let older = register(AOR, "d1", 4, &[ce(1, 600)], None);
    assert_eq!(
        r.handle_register(later, PEER, &older).response.status(),
        500
    );
    assert!(r.poll_event().is_none());
}
