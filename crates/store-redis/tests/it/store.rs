//! The store on its own: versioned writes, key layout and TTLs, time mapping between
//! instances, expiry races, persistence, unavailability, and a concurrency model check.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mcptt_registration::{AorRecord, Binding, RegistrationStore, StoreError};
use mcptt_store_redis::TimeBase;
use redis::Commands;

use crate::support::Server;

fn binding(id: u64, at: Instant, secs: u64, cseq: u32) -> Binding {
    Binding {
        id,
        uri: format!("sip:alice@192.0.2.{id}:5061;transport=tls"),
        contact: format!("<sip:alice@192.0.2.{id}:5061;transport=tls>;+g.3gpp.mcptt"),
        instance: Some(format!(
            "<urn:uuid:00000000-0000-1000-8000-00000000000{id}>"
        )),
        reg_id: None,
        call_id: format!("call-{id}"),
        cseq,
        registered_at: at,
        expires_at: at + Duration::from_secs(secs),
        request: Bytes::from_static(
            b"REGISTER sip:example.com SIP/2.0\r\nContent-Length: 0\r\n\r\n",
        ),
        third_party: vec![0],
    }
}

fn record(bs: Vec<Binding>) -> AorRecord {
    AorRecord { bindings: bs }
}

/// Same binding up to the store's millisecond resolution (expiry never earlier).
fn assert_same(got: &Binding, want: &Binding) {
    assert_eq!(
        (
            &got.uri,
            &got.contact,
            &got.instance,
            got.reg_id,
            &got.call_id,
            got.cseq
        ),
        (
            &want.uri,
            &want.contact,
            &want.instance,
            want.reg_id,
            &want.call_id,
            want.cseq
        )
    );
    assert_eq!(
        (&got.request, &got.third_party, got.id),
        (&want.request, &want.third_party, want.id)
    );
    assert!(got.expires_at >= want.expires_at, "expiry moved earlier");
    assert!(got.expires_at - want.expires_at < Duration::from_millis(1));
    let reg = got.registered_at.max(want.registered_at) - got.registered_at.min(want.registered_at);
    assert!(reg < Duration::from_millis(1));
}

#[test]
fn versioned_writes_layout_ttl_and_counts() {
    let server = Server::start(false);
    let tb = TimeBase::system();
    let t = Instant::now();
    let mut s = server.store_with(4, tb);
    assert_eq!(s.load("sip:alice@example.com"), Ok(None));
    let rec = record(vec![binding(1, t, 600, 1), binding(2, t, 1200, 1)]);
    let v1 = s.write("sip:alice@example.com", 0, rec.clone()).unwrap();
    // A stale writer (expected "absent") is refused and told the current version.
    assert_eq!(
        s.write("sip:alice@example.com", 0, AorRecord::default()),
        Err(StoreError::Conflict { current: v1 })
    );
    let (v, got) = s.load("sip:alice@example.com").unwrap().unwrap();
    assert_eq!(v, v1);
    assert_eq!(got.bindings.len(), 2);
    assert_same(&got.bindings[0], &rec.bindings[0]);
    assert_same(&got.bindings[1], &rec.bindings[1]);
    s.write(
        "sip:bob@example.com",
        0,
        record(vec![binding(3, t, 300, 1)]),
    )
    .unwrap();
    assert_eq!((s.aor_count(), s.binding_count()), (2, 3));
    // The key expires at the last binding's expiry plus the grace (60 s).
    let mut c = server.conn();
    let key = s.record_key("sip:alice@example.com");
    let pexpire: i64 = redis::cmd("PEXPIRETIME").arg(&key).query(&mut c).unwrap();
    let last = tb.to_unix_ms_ceil(t + Duration::from_secs(1200));
    assert_eq!(pexpire, last + 60_000);
    // A version moves on every write and old versions are refused.
    let v2 = s
        .write(
            "sip:alice@example.com",
            v1,
            record(vec![binding(1, t, 900, 2)]),
        )
        .unwrap();
    assert!(v2 > v1);
    assert_eq!(
        s.write("sip:alice@example.com", v1, AorRecord::default()),
        Err(StoreError::Conflict { current: v2 })
    );
    assert_eq!((s.aor_count(), s.binding_count()), (2, 2));
    // Deleting removes the key and the index entry; a re-created AoR gets a fresh,
    // higher version, so a writer still holding v2 cannot slip in (no ABA).
    s.write("sip:alice@example.com", v2, AorRecord::default())
        .unwrap();
    assert!(!c.exists::<_, bool>(&key).unwrap());
    assert_eq!(
        s.due(t + Duration::from_secs(10_000), 10).unwrap(),
        vec!["sip:bob@example.com".to_owned()]
    );
    let v3 = s
        .write(
            "sip:alice@example.com",
            0,
            record(vec![binding(1, t, 60, 3)]),
        )
        .unwrap();
    assert!(v3 > v2);
    assert!(
        s.write("sip:alice@example.com", v2, AorRecord::default())
            .is_err()
    );
    assert_eq!((s.aor_count(), s.binding_count()), (2, 2));
}

#[test]
fn count_hash_holds_only_aors_with_several_bindings() {
    let server = Server::start(false);
    let t = Instant::now();
    // One bucket: one count hash `{mcptt:reg:0}:n`.
    let mut s = server.store_with(1, TimeBase::system());
    let mut c = server.conn();
    let fields = |c: &mut redis::Connection| -> Vec<String> {
        let mut f: Vec<String> = c.hkeys("{mcptt:reg:0}:n").unwrap();
        f.sort();
        f
    };
    let one = record(vec![binding(1, t, 600, 1)]);
    let two = record(vec![binding(1, t, 600, 2), binding(2, t, 600, 1)]);
    let va = s.write("sip:alice@example.com", 0, one.clone()).unwrap();
    let vb = s.write("sip:bob@example.com", 0, two.clone()).unwrap();
    assert_eq!(fields(&mut c), vec!["#b", "sip:bob@example.com"]);
    assert_eq!((s.aor_count(), s.binding_count()), (2, 3));
    // 1 -> 2 -> 1 -> 0 bindings: the field comes and goes, the totals follow.
    let va = s.write("sip:alice@example.com", va, two).unwrap();
    assert_eq!((s.aor_count(), s.binding_count()), (2, 4));
    let vb = s.write("sip:bob@example.com", vb, one.clone()).unwrap();
    assert_eq!(fields(&mut c), vec!["#b", "sip:alice@example.com"]);
    assert_eq!((s.aor_count(), s.binding_count()), (2, 3));
    s.write("sip:alice@example.com", va, one).unwrap();
    assert_eq!(fields(&mut c), vec!["#b"]);
    assert_eq!((s.aor_count(), s.binding_count()), (2, 2));
    s.write("sip:bob@example.com", vb, AorRecord::default())
        .unwrap();
    assert_eq!((s.aor_count(), s.binding_count()), (1, 1));
    let total: u64 = c.hget("{mcptt:reg:0}:n", "#b").unwrap();
    assert_eq!(total, 1);
}

#[test]
fn instances_with_different_monotonic_clocks_agree_on_expiry() {
    let server = Server::start(false);
    let a_tb = TimeBase::system();
    let t = Instant::now();
    // Instance B's monotonic clock reads 1000 s more than A's at the same wall-clock time.
    let b_tb = TimeBase::new(
        t + Duration::from_secs(1000),
        Duration::from_millis(u64::try_from(a_tb.to_unix_ms_floor(t)).unwrap()),
    );
    let mut a = server.store_with(4, a_tb);
    let b = server.store_with(4, b_tb);
    a.write(
        "sip:alice@example.com",
        0,
        record(vec![binding(1, t, 600, 1)]),
    )
    .unwrap();
    let (_, rec) = b.load("sip:alice@example.com").unwrap().unwrap();
    let b_now = t + Duration::from_secs(1000);
    let left = rec.bindings[0].expires_at - b_now;
    assert!(
        left >= Duration::from_secs(600) && left < Duration::from_millis(600_002),
        "{left:?}"
    );
    // B sees it due exactly when A does, and not a millisecond before.
    assert!(
        b.due(b_now + Duration::from_secs(599), 10)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        b.due(b_now + Duration::from_millis(600_001), 10)
            .unwrap()
            .len(),
        1
    );
    let nb = b.next_expiry().unwrap();
    assert!(nb >= b_now + Duration::from_secs(600) && nb < b_now + Duration::from_millis(600_002));
}

#[test]
fn racing_expiry_removes_each_binding_once() {
    let server = Server::start(false);
    let tb = TimeBase::system();
    let t = Instant::now();
    let mut a = server.store_with(8, tb);
    for i in 0..20u64 {
        a.write(
            &format!("sip:u{i}@example.com"),
            0,
            record(vec![binding(1, t, 100 + i, 1), binding(2, t, 5000, 1)]),
        )
        .unwrap();
    }
    // Expiries are stored rounded up to the millisecond: due 1 ms after, never before.
    let later = t + Duration::from_millis(110_001);
    assert_eq!(
        a.next_expiry().map(|n| n >= t + Duration::from_secs(100)),
        Some(true)
    );
    let due = a.due(later, 100).unwrap();
    assert_eq!(due.len(), 11, "u0..=u10 expire by +110 s");
    assert_eq!(a.due(later, 3).unwrap().len(), 3);
    let barrier = Arc::new(Barrier::new(2));
    let run = |mut s: mcptt_store_redis::RedisStore, due: Vec<String>, barrier: Arc<Barrier>| {
        std::thread::spawn(move || {
            barrier.wait();
            due.iter()
                .map(|aor| s.remove_expired(aor, later).unwrap().len())
                .sum::<usize>()
        })
    };
    let h1 = run(a, due.clone(), Arc::clone(&barrier));
    let h2 = run(server.store_with(8, tb), due, barrier);
    let removed = h1.join().unwrap() + h2.join().unwrap();
    assert_eq!(
        removed, 11,
        "each expired binding removed by exactly one instance"
    );
    let check = server.store_with(8, tb);
    assert!(check.due(later, 100).unwrap().is_empty());
    assert_eq!(
        check
            .load("sip:u0@example.com")
            .unwrap()
            .unwrap()
            .1
            .bindings
            .len(),
        1
    );
}

#[test]
fn record_deleted_by_redis_ttl_leaves_no_stale_index() {
    let server = Server::start(false);
    let tb = TimeBase::system();
    let t = Instant::now();
    let mut s = mcptt_store_redis::RedisStore::new(
        mcptt_store_redis::RedisStoreConfig {
            url: server.url(),
            ttl_grace: Duration::ZERO,
            buckets: 2,
            ..Default::default()
        },
        tb,
    )
    .unwrap();
    // A binding that expired a second ago (all registrars were down): Redis drops the key.
    let mut b = binding(1, t, 0, 1);
    b.expires_at = t.checked_sub(Duration::from_secs(1)).unwrap();
    s.write("sip:alice@example.com", 0, record(vec![b]))
        .unwrap();
    assert!(
        s.load("sip:alice@example.com").unwrap().is_none(),
        "Redis expired the record"
    );
    assert_eq!(
        s.due(t, 10).unwrap(),
        vec!["sip:alice@example.com".to_owned()]
    );
    assert!(
        s.remove_expired("sip:alice@example.com", t)
            .unwrap()
            .is_empty()
    );
    assert!(
        s.due(t, 10).unwrap().is_empty(),
        "stale index entry cleaned"
    );
    assert_eq!((s.aor_count(), s.binding_count()), (0, 0));
}

#[test]
fn aof_keeps_state_across_a_redis_crash() {
    let mut server = Server::start(true);
    let tb = TimeBase::system();
    let t = Instant::now();
    let mut s = server.store_with(4, tb);
    let v = s
        .write(
            "sip:alice@example.com",
            0,
            record(vec![binding(1, t, 600, 1)]),
        )
        .unwrap();
    server.kill(); // SIGKILL: only what the AOF fsynced survives
    server.restart();
    // The store reconnects by itself.
    let (v2, rec) = s
        .load("sip:alice@example.com")
        .unwrap()
        .expect("state survives the restart");
    assert_eq!(v2, v);
    assert_eq!(rec.bindings[0].cseq, 1);
    assert_eq!(
        s.due(t + Duration::from_secs(601), 10).unwrap().len(),
        1,
        "expiry index survived"
    );
    // Writes work after the restart (the script is loaded again).
    s.write("sip:alice@example.com", v, AorRecord::default())
        .unwrap();
}

#[test]
fn unreachable_redis_is_an_error_never_silent_and_recovers() {
    let mut server = Server::start(true);
    let tb = TimeBase::system();
    let t = Instant::now();
    let mut s = server.store_with(4, tb);
    let v = s
        .write(
            "sip:alice@example.com",
            0,
            record(vec![binding(1, t, 600, 1)]),
        )
        .unwrap();
    server.kill();
    let e = s.try_load("sip:alice@example.com").unwrap_err();
    assert_eq!(e.status_code(), 503, "{e}");
    assert!(e.to_string().contains("redis unavailable"), "{e}");
    let Err(StoreError::Unavailable(why)) =
        s.write("sip:alice@example.com", v, AorRecord::default())
    else {
        panic!("a write to an unreachable Redis must fail as unavailable");
    };
    assert!(why.contains("write sip:alice@example.com"), "{why}");
    assert!(s.take_error().unwrap().contains("redis unavailable"));
    assert!(matches!(
        s.remove_expired("sip:alice@example.com", t + Duration::from_secs(700)),
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(s.due(t, 10), Err(StoreError::Unavailable(_))));
    assert!(matches!(
        s.load("sip:alice@example.com"),
        Err(StoreError::Unavailable(_))
    ));
    // Asked again shortly, never "no binding".
    assert!(s.next_expiry().is_some());
    assert!(s.take_error().is_some());
    server.restart();
    // Nothing was dropped while Redis was away; the store reconnects.
    let (v2, rec) = s.load("sip:alice@example.com").unwrap().unwrap();
    assert_eq!((v2, rec.bindings.len()), (v, 1));
    assert!(s.take_error().is_none());
}

#[test]
fn concurrent_refreshes_from_two_instances_lose_no_update() {
    // Model: every successful versioned write bumps the CSeq of the AoR's binding by one,
    // so after the run each AoR's CSeq must equal the number of writes that succeeded on it.
    const AORS: usize = 8;
    const OPS: usize = 300;
    let server = Server::start(false);
    let tb = TimeBase::system();
    let t = Instant::now();
    let barrier = Arc::new(Barrier::new(4));
    let handles: Vec<_> = (0..4u64)
        .map(|w| {
            let mut s = server.store_with(4, tb);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut ok = [0u32; AORS];
                let mut conflicts = 0u32;
                barrier.wait();
                for i in 0..OPS {
                    let a = (i * 7 + usize::try_from(w).unwrap()) % AORS;
                    let aor = format!("sip:ue{a}@example.com");
                    loop {
                        let (v, mut rec) = s.load(&aor).unwrap().unwrap_or_default();
                        if rec.bindings.is_empty() {
                            rec.bindings.push(binding(1, t, 600, 0));
                        }
                        rec.bindings[0].cseq += 1;
                        rec.bindings[0].call_id = format!("w{w}");
                        match s.write(&aor, v, rec) {
                            Ok(_) => break,
                            Err(StoreError::Conflict { .. }) => conflicts += 1,
                            Err(e) => panic!("unexpected store error {e}"),
                        }
                    }
                    ok[a] += 1;
                }
                (ok, conflicts)
            })
        })
        .collect();
    let mut model = [0u32; AORS];
    let mut conflicts = 0;
    for h in handles {
        let (ok, c) = h.join().unwrap();
        conflicts += c;
        for (m, o) in model.iter_mut().zip(ok) {
            *m += o;
        }
    }
    let s = server.store_with(4, tb);
    for (a, want) in model.iter().enumerate() {
        let (_, rec) = s.load(&format!("sip:ue{a}@example.com")).unwrap().unwrap();
        assert_eq!(rec.bindings[0].cseq, *want, "lost update on ue{a}");
    }
    assert_eq!(model.iter().sum::<u32>(), 4 * u32::try_from(OPS).unwrap());
    // The test only means something if the writers really raced.
    assert!(conflicts > 0, "no conflicting writes happened");
}

#[test]
fn every_write_is_published_to_other_instances() {
    let server = Server::start(false);
    let tb = TimeBase::system();
    let t = Instant::now();
    let mut a = server.store_with(4, tb);
    let b = server.store_with(4, tb);
    let mut feed = b.subscribe_changes().unwrap();
    let mut own = a.subscribe_changes().unwrap();
    let v1 = a
        .write(
            "sip:alice@example.com",
            0,
            record(vec![binding(1, t, 600, 1)]),
        )
        .unwrap();
    // A refused write publishes nothing; the deletion does.
    assert!(
        a.write("sip:alice@example.com", 0, AorRecord::default())
            .is_err()
    );
    let v2 = a
        .write("sip:alice@example.com", v1, AorRecord::default())
        .unwrap();
    let wait = Duration::from_secs(5);
    let got = [feed.next(wait).unwrap(), feed.next(wait).unwrap()];
    let want = [v1, v2].map(|version| {
        Some(mcptt_store_redis::Change {
            aor: "sip:alice@example.com".into(),
            version,
            origin: a.instance_id(),
        })
    });
    assert_eq!(got, want);
    assert_eq!(feed.next(Duration::from_millis(50)).unwrap(), None);
    // The writer's own feed skips its own changes.
    assert_ne!(a.instance_id(), b.instance_id());
    assert_eq!(own.next(Duration::from_millis(50)).unwrap(), None);
}

#[test]
fn feed_reports_a_reconnect_as_a_resync_once() {
    let mut server = Server::start(false);
    let tb = TimeBase::system();
    let s = server.store_with(4, tb);
    let mut feed = s.subscribe_changes().unwrap();
    assert!(!feed.take_resync());
    server.kill();
    // Bounded waits for the listener's reports (it notices the drop at once).
    assert!(feed.next(Duration::from_secs(5)).is_err());
    assert!(!feed.is_connected());
    server.restart();
    for _ in 0..20 {
        if feed.is_connected() {
            break;
        }
        let _ = feed.next(Duration::from_secs(5));
    }
    assert!(feed.is_connected());
    assert!(feed.take_resync(), "changes may have been missed");
    assert!(!feed.take_resync(), "reported once");
}
