//! Two `mcptt-registration` registrars (two SIP core instances) sharing one Redis, and the
//! measured cost per registration (round trips, memory in Redis).

use std::time::{Duration, Instant};

use bytes::Bytes;
use std::collections::HashSet;

use mcptt_registration::{
    Error, Event, FilterCriteria, IdentityMap, RegEventConfig, Registrar, RegistrarConfig,
    RegistrationStore, RegistrationView, ServerConfig, ServerEvent, Transmit,
};
use mcptt_sip::{Message, Request};
use mcptt_store_redis::{RedisStore, TimeBase};

use crate::support::Server;

const PEER: &str = "ue1.example.com";

fn config(ues: u32, filter: bool) -> RegistrarConfig {
    let mut identities = IdentityMap::new();
    for n in 0..ues {
        identities = identities.allow(PEER, &format!("sip:ue{n}@example.com"));
    }
    RegistrarConfig {
        identities,
        filters: if filter {
            vec![FilterCriteria::mcptt("sip:mcptt-as.example.com")]
        } else {
            Vec::new()
        },
        core_uri: "sip:scscf.example.com".into(),
        min_expires: 60,
        max_expires: 3600,
        default_expires: 1800,
        max_bindings: 1_000_000,
        reg_event: RegEventConfig {
            trusted_subscribers: HashSet::from([SERVER_PEER.to_owned()]),
            ..RegEventConfig::default()
        },
        ..RegistrarConfig::default()
    }
}

const SERVER_PEER: &str = "mcptt-as.example.com";
const CORE_PEER: &str = "scscf.example.com";

fn on_wire(t: &Transmit) -> Request {
    Message::parse(t.request.encode())
        .unwrap()
        .into_request()
        .unwrap()
}

pub(crate) fn transmits<S: RegistrationStore>(r: &mut Registrar<S>) -> Vec<Transmit> {
    std::iter::from_fn(|| r.poll_transmit()).collect()
}

/// An MCPTT server's registration view subscribed (reg event) to `ue0` through `reg`.
fn subscribed_view<S: RegistrationStore>(reg: &mut Registrar<S>, now: Instant) -> RegistrationView {
    let mut view = RegistrationView::new(
        ServerConfig {
            trusted_cores: HashSet::from([CORE_PEER.to_owned()]),
            server_uri: "sip:mcptt-as.example.com".into(),
            ..ServerConfig::default()
        },
        3,
    );
    view.subscribe(now, "sip:ue0@example.com", "sip:scscf.example.com")
        .unwrap();
    let sub = view.poll_transmit().unwrap();
    let resp = reg.handle_subscribe(now, SERVER_PEER, &on_wire(&sub));
    assert_eq!(resp.status(), 200);
    let resp = Message::parse(resp.encode())
        .unwrap()
        .into_response()
        .unwrap();
    assert!(view.handle_subscribe_response(now, &resp));
    let n = transmits(reg);
    assert_eq!(n.len(), 1, "initial NOTIFY");
    assert_eq!(
        view.handle_notify(now, CORE_PEER, &on_wire(&n[0])).status(),
        200
    );
    view
}

/// A MCPTT UE's REGISTER (DESIGN.md §3) for `ue{n}`.
/// The status a registrar answers `req` with (from the test's peer).
fn status<S: RegistrationStore>(r: &mut Registrar<S>, now: Instant, req: &Request) -> u16 {
    r.handle_register(now, PEER, req).response.status()
}

pub(crate) fn register(n: u32, cseq: u32, expires: u32) -> Request {
    register_dev(n, 0, cseq, expires)
}

/// A REGISTER for `ue{n}` from device `dev` (its own Call-ID and `+sip.instance`).
fn register_dev(n: u32, dev: u32, cseq: u32, expires: u32) -> Request {
    let text = format!(
        "REGISTER sip:example.com SIP/2.0\r\n\
         Via: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bK-{n}-{dev}-{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:ue{n}@example.com>;tag=f{n}\r\n\
         To: <sip:ue{n}@example.com>\r\n\
         Call-ID: reg-{n}-{dev}@192.0.2.1\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:ue{n}@192.0.2.{dev}:5061;transport=tls>;+sip.instance=\"<urn:uuid:00000000-0000-1000-{dev:04}-{n:012}>\";+g.3gpp.mcptt;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.mcptt\"\r\n\
         Expires: {expires}\r\n\
         Supported: path, gruu\r\n\
         User-Agent: mcptt-ue/0.1\r\n\
         Content-Length: 0\r\n\r\n"
    );
    Message::parse(Bytes::from(text))
        .unwrap()
        .into_request()
        .unwrap()
}

fn registrar(
    server: &Server,
    tb: TimeBase,
    ues: u32,
    filter: bool,
    seed: u64,
) -> Registrar<RedisStore> {
    Registrar::with_store(config(ues, filter), server.store_with(16, tb), seed)
}

pub(crate) fn registrar_on(
    store: RedisStore,
    ues: u32,
    filter: bool,
    seed: u64,
) -> Registrar<RedisStore> {
    Registrar::with_store(config(ues, filter), store, seed)
}

pub(crate) fn events<S: RegistrationStore>(r: &mut Registrar<S>) -> Vec<String> {
    std::iter::from_fn(|| r.poll_event())
        .filter_map(|e| match e {
            Event::BindingAdded { .. } => Some("added".to_owned()),
            Event::BindingRefreshed { .. } => Some("refreshed".to_owned()),
            Event::BindingRemoved { reason, .. } => Some(format!("removed:{reason:?}")),
            _ => None,
        })
        .collect()
}

#[test]
fn two_sip_cores_share_bindings_and_expire_each_once() {
    let server = Server::start(false);
    let tb = TimeBase::system();
    let t = Instant::now();
    let mut a = registrar(&server, tb, 2, false, 1);
    let mut b = registrar(&server, tb, 2, false, 2);
    // Register via A, refresh via B: B sees A's binding (a refresh, not a new one).
    assert_eq!(status(&mut a, t, &register(0, 1, 600)), 200);
    assert_eq!(events(&mut a), ["added"]);
    assert_eq!(status(&mut b, t, &register(0, 2, 600)), 200);
    assert_eq!(events(&mut b), ["refreshed"]);
    assert_eq!(a.bindings(t, "sip:ue0@example.com").unwrap()[0].cseq, 2);
    // The UE retransmits the same REGISTER to A (B's 200 was lost in a failover): A finds
    // it already applied, answers 200 and changes nothing.
    assert_eq!(status(&mut a, t, &register(0, 2, 600)), 200);
    assert!(events(&mut a).is_empty());
    // An older CSeq via A is refused against B's newer state (RFC 3261 §10.3 step 7).
    assert_eq!(status(&mut a, t, &register(0, 1, 600)), 500);
    // Expiry: handled once, by whichever instance runs its timer first.
    assert_eq!(status(&mut a, t, &register(1, 1, 60)), 200);
    assert_eq!(events(&mut a), ["added"]);
    let later = t + Duration::from_secs(61);
    assert!(b.poll_timeout().is_some_and(|d| d <= later));
    b.handle_timeout(later);
    assert_eq!(events(&mut b), ["removed:Expired"]);
    a.handle_timeout(later);
    assert!(
        events(&mut a).is_empty(),
        "A must not expire it a second time"
    );
    assert!(a.bindings(later, "sip:ue1@example.com").unwrap().is_empty());
    // De-register via A what was refreshed via B.
    assert_eq!(status(&mut a, later, &register(0, 3, 0)), 200);
    assert_eq!(events(&mut a), ["removed:Unregistered"]);
    assert!(b.bindings(later, "sip:ue0@example.com").unwrap().is_empty());
}

#[test]
fn redis_down_gives_503_and_a_clear_cause_then_recovers_with_state_kept_by_aof() {
    let mut server = Server::start(true);
    let tb = TimeBase::system();
    let t = Instant::now();
    let mut a = registrar(&server, tb, 1, false, 1);
    assert_eq!(status(&mut a, t, &register(0, 1, 600)), 200);
    assert_eq!(events(&mut a), ["added"]);
    server.kill();
    let rt = a.store().round_trips();
    let out = a.handle_register(t, PEER, &register(0, 2, 600));
    assert_eq!(out.response.status(), 503);
    assert_eq!(out.response.headers().get("Retry-After"), Some("5"));
    let Err(Error::StoreUnavailable(cause)) = &out.result else {
        panic!("{:?}", out.result);
    };
    assert!(cause.contains("redis load sip:ue0@example.com"), "{cause}");
    assert!(cause.contains("redis unavailable"), "{cause}");
    assert_eq!(a.store().round_trips(), rt + 1, "not retried");
    assert!(
        a.bindings(t, "sip:ue0@example.com").is_err(),
        "never \"no binding\""
    );
    assert!(
        events(&mut a).is_empty(),
        "no change reported while Redis is down"
    );
    // SIGKILL while down; AOF brings the state back.
    server.restart();
    // The binding written before the outage is intact and refreshable.
    assert_eq!(status(&mut a, t, &register(0, 2, 600)), 200);
    assert_eq!(events(&mut a), ["refreshed"]);
}

/// Prints the measured round trips per registration and Redis memory per registered UE
/// (run with `--nocapture` to see the figures); asserts the goals.
#[test]
fn measured_round_trips_and_memory_per_registration() {
    const N: u32 = 1000;
    let server = Server::start(false);
    let tb = TimeBase::system();
    let t = Instant::now();
    let mut c = server.conn();
    let used = |c: &mut redis::Connection| -> i64 {
        let info: String = redis::cmd("INFO").arg("memory").query(c).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    for filter in [false, true] {
        redis::cmd("FLUSHALL").query::<()>(&mut c).unwrap();
        let before = used(&mut c);
        let mut r = registrar(&server, tb, N, filter, 1);
        r.store().ping().unwrap();
        let rt0 = r.store().round_trips();
        for n in 0..N {
            assert_eq!(status(&mut r, t, &register(n, 1, 600)), 200);
        }
        let rt1 = r.store().round_trips();
        for n in 0..N {
            assert_eq!(status(&mut r, t, &register(n, 2, 600)), 200);
        }
        let rt2 = r.store().round_trips();
        let after = used(&mut c);
        let key = r.store().record_key("sip:ue0@example.com");
        let one: i64 = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(&key)
            .query(&mut c)
            .unwrap();
        let per_ue = (after - before) / i64::from(N);
        let new_rt = f64::from(u32::try_from(rt1 - rt0).unwrap()) / f64::from(N);
        let refresh_rt = f64::from(u32::try_from(rt2 - rt1).unwrap()) / f64::from(N);
        eprintln!(
            "third-party filter {filter}: round trips per new registration {new_rt:.3}, per refresh {refresh_rt:.3}; \
             Redis used_memory per registered UE {per_ue} B (N = {N}), MEMORY USAGE of one record {one} B"
        );
        assert_eq!(r.store().aor_count(), usize::try_from(N).unwrap());
        assert!(per_ue > 0 && per_ue <= 2048, "{per_ue} B per UE");
        // The write script was loaded once (one extra round trip for the whole run).
        let expected = 2.0;
        assert!(
            (new_rt - expected).abs() < 0.01 && (refresh_rt - expected).abs() < 0.01,
            "{new_rt} {refresh_rt}"
        );
    }
}

#[test]
fn many_ues_refreshing_through_both_instances_lose_no_update() {
    // Model: instance `dev` keeps device `dev` of every UE registered; after the run each
    // UE holds both devices, each with the CSeq of the last REGISTER that got a 200.
    const UES: u32 = 40;
    const ROUNDS: u32 = 15;
    let server = Server::start(false);
    let tb = TimeBase::system();
    let t = Instant::now();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let handles: Vec<_> = (0..2u32)
        .map(|dev| {
            let mut r = registrar(&server, tb, UES, false, u64::from(dev));
            let barrier = std::sync::Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut last_ok = vec![0u32; UES as usize];
                let mut refused = 0u32;
                barrier.wait();
                for round in 1..=ROUNDS {
                    for n in 0..UES {
                        let out = r.handle_register(t, PEER, &register_dev(n, dev, round, 600));
                        match out.response.status() {
                            200 => last_ok[n as usize] = round,
                            // Conflicts beyond the registrar's retries: the UE would retry.
                            500 => refused += 1,
                            s => panic!("unexpected status {s}"),
                        }
                    }
                }
                // Round trips beyond 2 per REGISTER (+1 script load) are conflict retries.
                let retries = r
                    .store()
                    .round_trips()
                    .saturating_sub(u64::from(2 * UES * ROUNDS + 1));
                (last_ok, refused, retries)
            })
        })
        .collect();
    let results: Vec<(Vec<u32>, u32, u64)> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();
    let check = registrar(&server, tb, UES, false, 9);
    for n in 0..UES {
        let bindings = check
            .bindings(t, &format!("sip:ue{n}@example.com"))
            .unwrap();
        for (dev, (last_ok, _, _)) in results.iter().enumerate() {
            let b = bindings
                .iter()
                .find(|b| b.call_id == format!("reg-{n}-{dev}@192.0.2.1"))
                .unwrap_or_else(|| panic!("device {dev} of ue{n} lost"));
            assert_eq!(
                b.cseq, last_ok[n as usize],
                "lost update on ue{n} device {dev}"
            );
        }
        assert_eq!(bindings.len(), 2);
    }
    let retries: u64 = results.iter().map(|r| r.2).sum();
    eprintln!(
        "REGISTERs refused after the registrar's conflict retries: {}; retry round trips: {retries}",
        results.iter().map(|r| r.1).sum::<u32>()
    );
    // The test only means something if the instances really raced.
    assert!(retries > 0, "no write conflict happened");
}

#[test]
fn reg_event_subscriber_on_b_is_notified_once_of_changes_handled_by_a() {
    let server = Server::start(false);
    let tb = TimeBase::system();
    let t = Instant::now();
    let mut a = registrar(&server, tb, 1, false, 1);
    let mut b = registrar(&server, tb, 1, false, 2);
    let mut feed_a = a.store().subscribe_changes().unwrap();
    let mut feed_b = b.store().subscribe_changes().unwrap();
    // The MCPTT server's reg event dialog is held by B.
    let mut view = subscribed_view(&mut b, t);
    let wait = Duration::from_secs(5);
    let quick = Duration::from_millis(100);

    // The UE registers through A: A holds no subscription and sends no NOTIFY.
    assert_eq!(status(&mut a, t, &register(0, 1, 120)), 200);
    assert_eq!(events(&mut a), ["added"]);
    assert!(transmits(&mut a).is_empty());
    // A's feed skips A's own write; B's feed brings it and B NOTIFYs, once.
    assert_eq!(feed_a.deliver(&mut a, t, quick, 64).unwrap(), 0);
    assert!(transmits(&mut a).is_empty());
    assert_eq!(feed_b.deliver(&mut b, t, wait, 64).unwrap(), 1);
    let sent = transmits(&mut b);
    assert_eq!(sent.len(), 1, "one NOTIFY, by the holder");
    assert_eq!(
        view.handle_notify(t, CORE_PEER, &on_wire(&sent[0]))
            .status(),
        200
    );
    assert!(matches!(
        view.poll_event(),
        Some(ServerEvent::UeRegistered { .. })
    ));
    assert_eq!(feed_b.deliver(&mut b, t, quick, 64).unwrap(), 0);
    assert!(transmits(&mut b).is_empty());

    // The binding expires; A runs the expiry (B's timer has not fired): B NOTIFYs.
    let later = t + Duration::from_secs(121);
    a.handle_timeout(later);
    assert_eq!(events(&mut a), ["removed:Expired"]);
    assert!(transmits(&mut a).is_empty());
    assert_eq!(feed_b.deliver(&mut b, later, wait, 64).unwrap(), 1);
    let sent = transmits(&mut b);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        view.handle_notify(later, CORE_PEER, &on_wire(&sent[0]))
            .status(),
        200
    );
    assert!(matches!(
        view.poll_event(),
        Some(ServerEvent::UeDeregistered { .. })
    ));
    // B's own timer finds nothing left to expire: no second removal, no NOTIFY.
    b.handle_timeout(later);
    assert!(events(&mut b).is_empty());
    assert!(transmits(&mut b).is_empty());
}

#[test]
fn expiry_survives_an_instance_restart_and_is_never_early() {
    let server = Server::start(false);
    let t = Instant::now();
    {
        let mut a = registrar(&server, TimeBase::system(), 1, false, 1);
        assert_eq!(status(&mut a, t, &register(0, 1, 60)), 200);
        // Instance A stops here (dropped without any shutdown work).
    }
    // A new instance (its own time base) takes over the expiry.
    let mut c = registrar(&server, TimeBase::system(), 1, false, 3);
    let due = c.poll_timeout().unwrap();
    assert!(due >= t + Duration::from_secs(60) && due < t + Duration::from_millis(60_002));
    c.handle_timeout(t + Duration::from_secs(59));
    assert!(events(&mut c).is_empty(), "not a second early");
    assert_eq!(
        c.bindings(t + Duration::from_secs(59), "sip:ue0@example.com")
            .unwrap()
            .len(),
        1
    );
    c.handle_timeout(t + Duration::from_millis(60_002));
    assert_eq!(events(&mut c), ["removed:Expired"]);
    assert!(c.store().load("sip:ue0@example.com").unwrap().is_none());
}

#[test]
fn feed_reconnects_after_a_redis_restart_and_resyncs_the_subscribers() {
    let mut server = Server::start(true);
    let tb = TimeBase::system();
    let t = Instant::now();
    let mut a = registrar(&server, tb, 1, false, 1);
    let mut b = registrar(&server, tb, 1, false, 2);
    let mut feed_b = b.store().subscribe_changes().unwrap();
    let mut view = subscribed_view(&mut b, t);
    server.kill();
    // The listener sees the connection drop at once (bounded wait for that report).
    assert!(
        feed_b
            .deliver(&mut b, t, Duration::from_secs(5), 64)
            .is_err()
    );
    assert!(!feed_b.is_connected());
    server.restart();
    // A change made while B's feed was away is lost by pub/sub...
    assert_eq!(status(&mut a, t, &register(0, 1, 600)), 200);
    // ...but once the feed is back B re-reads the subscribed AoR and NOTIFYs it (or the
    // feed reconnected in time to carry the change): one NOTIFY either way.
    for _ in 0..20 {
        if feed_b.is_connected() {
            break;
        }
        let _ = feed_b.deliver(&mut b, t, Duration::from_secs(5), 64);
    }
    assert!(feed_b.is_connected(), "the feed reconnected");
    let _ = feed_b.deliver(&mut b, t, Duration::from_millis(200), 64);
    let sent = transmits(&mut b);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        view.handle_notify(t, CORE_PEER, &on_wire(&sent[0]))
            .status(),
        200
    );
    assert!(matches!(
        view.poll_event(),
        Some(ServerEvent::UeRegistered { .. })
    ));
}

#[test]
fn poll_timeout_after_a_register_costs_no_round_trip() {
    let server = Server::start(false);
    let t = Instant::now();
    let store = RedisStore::new(
        mcptt_store_redis::RedisStoreConfig {
            url: server.url(),
            // Long enough that a loaded test machine cannot age it out mid-test.
            expiry_cache: Duration::from_secs(600),
            ..mcptt_store_redis::RedisStoreConfig::default()
        },
        TimeBase::system(),
    )
    .unwrap();
    let mut r = Registrar::with_store(config(2, false), store, 1);
    assert_eq!(r.poll_timeout(), None);
    let rt = r.store().round_trips();
    assert_eq!(r.poll_timeout(), None);
    assert_eq!(r.store().round_trips(), rt, "answered from the cache");
    let out = r.handle_register(t, PEER, &register(0, 1, 60));
    assert_eq!(out.response.status(), 200);
    let rt = r.store().round_trips();
    // This instance's own write lowers the cached expiry at once, without a scan.
    let due = r.poll_timeout().unwrap();
    assert_eq!(r.store().round_trips(), rt);
    assert!(due >= t + Duration::from_secs(60) && due < t + Duration::from_millis(60_002));
    // A refresh to a later expiry leaves the cache early (never late): the timer fires,
    // finds nothing due, and the next poll scans the truth.
    let out = r.handle_register(t, PEER, &register(0, 2, 600));
    assert_eq!(out.response.status(), 200);
    let _ = events(&mut r);
    let early = r.poll_timeout().unwrap();
    r.handle_timeout(early);
    assert!(events(&mut r).is_empty());
    let rt = r.store().round_trips();
    let due = r.poll_timeout().unwrap();
    assert_eq!(
        r.store().round_trips(),
        rt + 1,
        "one scan after the timer ran"
    );
    assert!(due >= t + Duration::from_secs(600));
}

#[test]
fn store_choice_from_a_store_option() {
    use mcptt_store_redis::StoreChoice;
    let server = Server::start(false);
    let t = Instant::now();
    let tb = TimeBase::system();
    assert!(matches!(
        StoreChoice::open("memory", tb).unwrap(),
        StoreChoice::Memory(_)
    ));
    assert!(
        StoreChoice::open("memory", tb)
            .unwrap()
            .subscribe_changes()
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        StoreChoice::open("postgres://x", tb),
        Err(mcptt_store_redis::Error::ApiMisuse(_))
    ));
    // Nothing listens there: fails at start-up.
    let dead = format!("redis://127.0.0.1:{}", server.port + 1);
    assert!(StoreChoice::open(&dead, tb).is_err());
    let store = StoreChoice::open(&server.url(), tb).unwrap();
    assert!(matches!(store, StoreChoice::Redis(_)));
    let mut feed = store.subscribe_changes().unwrap().unwrap();
    let mut a = Registrar::with_store(config(1, false), store, 1);
    let mut b = Registrar::with_store(
        config(1, false),
        StoreChoice::open(&server.url(), tb).unwrap(),
        2,
    );
    assert_eq!(status(&mut b, t, &register(0, 1, 600)), 200);
    assert_eq!(a.bindings(t, "sip:ue0@example.com").unwrap().len(), 1);
    assert_eq!(
        feed.deliver(&mut a, t, Duration::from_secs(5), 8).unwrap(),
        1
    );
}
