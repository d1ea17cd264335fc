//! Property test: random REGISTER / refresh / deregister / expiry sequences keep the
//! registrar equal to a reference model of RFC 3261 §10.3.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mcptt_registration::{Event, Registrar, RegistrationStore, RemovalReason};
use proptest::prelude::*;

use crate::support::*;

const AORS: [&str; 2] = [AOR, "sip:alice-2@example.com"];
const CALL_IDS: [&str; 2] = ["ca", "cb"];
const EXPIRES: [u32; 6] = [0, 30, 60, 90, 200, 5000];

#[derive(Debug, Clone)]
enum Op {
    Register {
        aor: usize,
        contact: u32,
        call_id: usize,
        cseq_delta: i64,
        expires: usize,
    },
    Star {
        aor: usize,
        call_id: usize,
        cseq_delta: i64,
    },
    Fetch {
        aor: usize,
    },
    Advance {
        secs: u64,
        timeout: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..2usize, 1..4u32, 0..2usize, -1..3i64, 0..6usize).prop_map(|(aor, contact, call_id, cseq_delta, expires)| Op::Register {
            aor,
            contact,
            call_id,
            cseq_delta,
            expires
        }),
        1 => (0..2usize, 0..2usize, -1..3i64).prop_map(|(aor, call_id, cseq_delta)| Op::Star { aor, call_id, cseq_delta }),
        1 => (0..2usize).prop_map(|aor| Op::Fetch { aor }),
        3 => (0..150u64, any::<bool>()).prop_map(|(secs, timeout)| Op::Advance { secs, timeout }),
    ]
}

/// The reference model's binding: (call_id, cseq, expires_at), keyed by contact number.
type ModelAor = BTreeMap<u32, (String, u32, Instant)>;

/// (kind, aor index, contact number)
type Ev = (&'static str, usize, u32);

fn contact_no(instance: &str) -> u32 {
    // <urn:uuid:00000000-0000-1000-8000-00000000000N>
    instance
        .trim_end_matches('>')
        .chars()
        .last()
        .and_then(|c| c.to_digit(10))
        .unwrap()
}

fn purge(now: Instant, m: &mut ModelAor, aor: usize, evs: &mut Vec<Ev>) {
    m.retain(|n, (_, _, exp)| {
        if *exp <= now {
            evs.push(("expired", aor, *n));
            false
        } else {
            true
        }
    });
}

fn observed(r: &mut Registrar) -> Vec<Ev> {
    let mut v: Vec<Ev> = std::iter::from_fn(|| r.poll_event())
        .map(|e| {
            let (kind, aor, b) = match e {
                Event::BindingAdded { aor, binding } => ("added", aor, binding),
                Event::BindingRefreshed { aor, binding } => ("refreshed", aor, binding),
                Event::BindingRemoved {
                    aor,
                    binding,
                    reason: RemovalReason::Expired,
                } => ("expired", aor, binding),
                Event::BindingRemoved { aor, binding, .. } => ("unregistered", aor, binding),
                other => panic!("unexpected event {other:?}"),
            };
            let a = AORS.iter().position(|x| *x == aor).unwrap();
            (kind, a, contact_no(b.instance.as_deref().unwrap()))
        })
        .collect();
    v.sort_unstable();
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    #[test]
    fn registrar_matches_reference_model(ops in proptest::collection::vec(op(), 1..40)) {
        let mut cfg = config();
        cfg.filters.clear();
        cfg.max_bindings_per_aor = 8;
        let mut r = Registrar::new(cfg, 1);
        let mut clock = Clock::new();
        let mut model: [ModelAor; 2] = [BTreeMap::new(), BTreeMap::new()];
        let mut last_cseq = [[0u32; 2]; 2];
        // Per (AoR, contact): (call id, CSeq, expires) of the request that last set the
        // binding; the same request again is a duplicate (200, no change).
        let mut last_req: BTreeMap<(usize, u32), (usize, u32, u32)> = BTreeMap::new();
        for op in ops {
            let now = clock.now();
            let mut expected: Vec<Ev> = Vec::new();
            match op {
                Op::Advance { secs, timeout } => {
                    let now = clock.advance(secs);
                    if timeout {
                        r.handle_timeout(now);
                        for (a, m) in model.iter_mut().enumerate() {
                            purge(now, m, a, &mut expected);
                        }
                        // After handle_timeout nothing expired remains in the store.
                        for aor in AORS {
                            if let Some((_, rec)) = r.store().load(aor).unwrap() {
                                prop_assert!(rec.bindings.iter().all(|b| b.expires_at > now));
                            }
                        }
                    }
                }
                Op::Register { aor, contact, call_id, cseq_delta, expires } => {
                    let cseq = u32::try_from((i64::from(last_cseq[aor][call_id]) + cseq_delta).max(1)).unwrap();
                    let e = EXPIRES[expires];
                    let req = register(AORS[aor], CALL_IDS[call_id], cseq, &[ue_contact(contact, &format!(";expires={e}"))], None);
                    let out = r.handle_register(now, PEER, &req);
                    // model
                    let mut m = model[aor].clone();
                    let mut evs = Vec::new();
                    purge(now, &mut m, aor, &mut evs);
                    let status = if e != 0 && e < 60 {
                        423
                    } else if m.contains_key(&contact)
                        && last_req.get(&(aor, contact)) == Some(&(call_id, cseq, e))
                    {
                        // Duplicate of the request that set the binding: nothing changes.
                        200
                    } else if m.get(&contact).is_some_and(|(c, s, _)| c == CALL_IDS[call_id] && cseq <= *s) {
                        500
                    } else {
                        let granted = e.min(3600);
                        if granted == 0 {
                            if m.remove(&contact).is_some() {
                                evs.push(("unregistered", aor, contact));
                            }
                        } else {
                            let kind = if m.contains_key(&contact) { "refreshed" } else { "added" };
                            m.insert(contact, (CALL_IDS[call_id].to_owned(), cseq, now + Duration::from_secs(u64::from(granted))));
                            evs.push((kind, aor, contact));
                            last_req.insert((aor, contact), (call_id, cseq, e));
                        }
                        200
                    };
                    prop_assert_eq!(out.response.status(), status, "{:?}", out.result);
                    if status == 200 {
                        model[aor] = m;
                        expected = evs;
                        last_cseq[aor][call_id] = last_cseq[aor][call_id].max(cseq);
                        prop_assert_eq!(listed_expiries(&out.response).len(), model[aor].len());
                    }
                }
                Op::Star { aor, call_id, cseq_delta } => {
                    let cseq = u32::try_from((i64::from(last_cseq[aor][call_id]) + cseq_delta).max(1)).unwrap();
                    let req = register(AORS[aor], CALL_IDS[call_id], cseq, &["*".to_owned()], Some(0));
                    let out = r.handle_register(now, PEER, &req);
                    let mut m = model[aor].clone();
                    let mut evs = Vec::new();
                    purge(now, &mut m, aor, &mut evs);
                    let refused = m.values().any(|(c, s, _)| c == CALL_IDS[call_id] && cseq <= *s);
                    prop_assert_eq!(out.response.status(), if refused { 500 } else { 200 });
                    if !refused {
                        for n in m.keys() {
                            evs.push(("unregistered", aor, *n));
                        }
                        model[aor].clear();
                        expected = evs;
                        last_cseq[aor][call_id] = last_cseq[aor][call_id].max(cseq);
                    }
                }
                Op::Fetch { aor } => {
                    let req = register(AORS[aor], "fetch", 1, &[], None);
                    let out = r.handle_register(now, PEER, &req);
                    prop_assert_eq!(out.response.status(), 200);
                    purge(now, &mut model[aor], aor, &mut expected);
                    // Every listed binding has time left, and the list equals the model.
                    let listed = listed_expiries(&out.response);
                    prop_assert!(listed.iter().all(|e| *e > 0));
                    prop_assert_eq!(listed.len(), model[aor].len());
                }
            }
            // An event for every change, and only for changes.
            expected.sort_unstable();
            prop_assert_eq!(observed(&mut r), expected);
            // The store equals the model (the store may still hold bindings that expired
            // since the last handle_timeout; the model keeps them too until purged).
            let now = clock.now();
            for (a, aor) in AORS.iter().enumerate() {
                let stored: BTreeMap<u32, (String, u32, Instant)> =
                    r.store().load(aor).unwrap()
                        .map(|(_, rec)| {
                            rec.bindings
                                .iter()
                                .map(|b| (contact_no(b.instance.as_deref().unwrap()), (b.call_id.clone(), b.cseq, b.expires_at)))
                                .collect()
                        })
                        .unwrap_or_default();
                prop_assert_eq!(&stored, &model[a]);
                // No binding outlives its expiry in any view.
                prop_assert!(r.bindings(now, aor).unwrap().iter().all(|b| b.expires_at > now));
            }
            prop_assert_eq!(
                r.store().binding_count(),
                model.iter().map(BTreeMap::len).sum::<usize>()
            );
            // poll_timeout never lies beyond the earliest model expiry.
            if let Some(first) = model.iter().flat_map(|m| m.values().map(|v| v.2)).min() {
                prop_assert!(r.poll_timeout().is_some_and(|t| t <= first));
            }
        }
    }
}

mod reginfo_roundtrip {
    use mcptt_registration::RegInfo;
    use mcptt_registration::reginfo::{
        ContactEvent, ContactInfo, ContactState, DocState, RegistrationInfo, RegistrationState,
    };
    use proptest::prelude::*;

    /// Values as a parser hands them back: no surrounding white space (layout is trimmed).
    fn text() -> impl Strategy<Value = String> {
        "[ -~éß€<>&\"']{0,24}".prop_map(|s| s.trim().to_owned())
    }

    fn contact() -> impl Strategy<Value = ContactInfo> {
        (
            (
                text(),
                any::<bool>(),
                0..9usize,
                proptest::option::of(any::<u32>()),
            ),
            (
                proptest::option::of(any::<u32>()),
                proptest::option::of(text()),
            ),
            (
                proptest::option::of(text()),
                proptest::option::of(any::<u32>()),
            ),
            ("[a-z:@.0-9]{1,30}", proptest::option::of(text())),
            proptest::collection::vec(("[+a-z.\\-]{1,12}", text()), 0..3),
        )
            .prop_map(
                |(
                    (id, active, ev, expires),
                    (dur, q),
                    (call_id, cseq),
                    (uri, display_name),
                    params,
                )| {
                    const EVENTS: [ContactEvent; 9] = [
                        ContactEvent::Registered,
                        ContactEvent::Created,
                        ContactEvent::Refreshed,
                        ContactEvent::Shortened,
                        ContactEvent::Expired,
                        ContactEvent::Deactivated,
                        ContactEvent::Probation,
                        ContactEvent::Unregistered,
                        ContactEvent::Rejected,
                    ];
                    ContactInfo {
                        id,
                        state: if active {
                            ContactState::Active
                        } else {
                            ContactState::Terminated
                        },
                        event: EVENTS[ev],
                        expires,
                        duration_registered: dur,
                        q,
                        call_id,
                        cseq,
                        uri: format!("sip:{uri}"),
                        display_name,
                        params,
                    }
                },
            )
    }

    fn doc() -> impl Strategy<Value = RegInfo> {
        (
            any::<u32>(),
            any::<bool>(),
            proptest::collection::vec(
                (
                    text(),
                    text(),
                    0..3usize,
                    proptest::collection::vec(contact(), 0..4),
                ),
                0..4,
            ),
        )
            .prop_map(|(version, full, regs)| RegInfo {
                version,
                state: if full {
                    DocState::Full
                } else {
                    DocState::Partial
                },
                registrations: regs
                    .into_iter()
                    .map(|(aor, id, st, contacts)| RegistrationInfo {
                        aor,
                        id,
                        state: [
                            RegistrationState::Init,
                            RegistrationState::Active,
                            RegistrationState::Terminated,
                        ][st],
                        contacts,
                    })
                    .collect(),
            })
    }

    proptest! {
        #[test]
        fn encode_then_parse_gives_the_same_document(d in doc()) {
            let xml = d.encode();
            prop_assert_eq!(RegInfo::parse(xml.as_bytes()).unwrap(), d);
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = RegInfo::parse(&b);
        }
    }
}
