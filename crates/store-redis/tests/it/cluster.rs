//! The store on a local 3-node Redis Cluster: writes land on every node (one slot per
//! bucket), versioned writes, expiry scans across nodes, and the change feed.

use std::time::{Duration, Instant};

use mcptt_registration::{RegistrationStore, StoreError};
use mcptt_store_redis::TimeBase;

use crate::registrar::{events, register, registrar_on, transmits};
use crate::support::Cluster;

const UES: u32 = 40;

#[test]
fn registrars_share_bindings_through_a_three_node_cluster() {
    let cluster = Cluster::start();
    let tb = TimeBase::system();
    let t = Instant::now();
    let mut a = registrar_on(cluster.store(tb), UES, true, 1);
    let mut b = registrar_on(cluster.store(tb), UES, true, 2);
    let mut feed_b = b.store().subscribe_changes().unwrap();
    for n in 0..UES {
        let out = a.handle_register(t, "ue1.example.com", &register(n, 1, 60 + n));
        assert_eq!(out.response.status(), 200, "{:?}", out.result);
    }
    assert_eq!(events(&mut a).len(), UES as usize);
    // The buckets' hash tags spread the records over all three nodes.
    let counts = cluster.key_counts();
    assert!(counts.iter().all(|&k| k > 0), "keys per node {counts:?}");
    // B refreshes what A registered (compare-and-set across nodes); a stale write fails.
    for n in 0..UES {
        let out = b.handle_register(t, "ue1.example.com", &register(n, 2, 600));
        assert_eq!(out.response.status(), 200, "{:?}", out.result);
    }
    assert!(events(&mut b).iter().all(|e| e == "refreshed"));
    let aor = "sip:ue3@example.com";
    let (v, rec) = b.store().load(aor).unwrap().unwrap();
    assert_eq!(rec.bindings[0].cseq, 2);
    let mut s = cluster.store(tb);
    s.write(aor, v, rec.clone()).unwrap();
    assert!(matches!(
        s.write(aor, v, rec),
        Err(StoreError::Conflict { .. })
    ));
    // The changes other stores wrote (A's registrations, `s`'s write) reach B's feed
    // whichever node owns the slot; B's own refreshes are skipped.
    let origins = [a.store().instance_id(), s.instance_id()];
    for seen in 0..=UES {
        let got = feed_b.next(Duration::from_secs(5)).unwrap();
        let change = got.unwrap_or_else(|| panic!("change {seen} not delivered"));
        assert!(origins.contains(&change.origin));
    }
    assert_eq!(feed_b.next(Duration::from_millis(100)).unwrap(), None);
    // Expiry scans every node: ue0 (60 s) is due at +61 s only if A's registration had
    // not been refreshed; all were refreshed to 600 s, so nothing is due yet.
    assert!(
        a.store()
            .due(t + Duration::from_secs(61), 100)
            .unwrap()
            .is_empty()
    );
    let later = t + Duration::from_secs(601);
    let due = a.store().due(later, 100).unwrap();
    assert_eq!(due.len(), UES as usize);
    a.handle_timeout(later);
    assert_eq!(events(&mut a).len(), UES as usize);
    assert!(
        transmits(&mut a).len() >= UES as usize,
        "third-party REGISTER Expires: 0"
    );
    assert_eq!(a.store().due(later, 100).unwrap().len(), 0);
    assert!(a.store().next_expiry().is_none());
}

#[test]
fn change_feed_moves_to_another_seed_node_when_its_node_dies() {
    let mut cluster = Cluster::start();
    let tb = TimeBase::system();
    let t = Instant::now();
    let store = cluster.store(tb);
    let mut feed = store.subscribe_changes().unwrap();
    let mut writer = cluster.store(tb);
    // The feed listens on the first seed node; kill it.
    cluster.kill(0);
    assert!(
        feed.next(Duration::from_secs(5)).is_err(),
        "the drop is reported"
    );
    for _ in 0..20 {
        if feed.is_connected() {
            break;
        }
        let _ = feed.next(Duration::from_secs(5));
    }
    assert!(feed.is_connected(), "reconnected to another seed node");
    // Write records until one lands on a live node; its change reaches the feed.
    let rec = mcptt_registration::AorRecord {
        bindings: vec![mcptt_registration::Binding {
            id: 1,
            uri: "sip:u@192.0.2.1".into(),
            contact: "<sip:u@192.0.2.1>".into(),
            instance: None,
            reg_id: None,
            call_id: "c".into(),
            cseq: 1,
            registered_at: t,
            expires_at: t + Duration::from_secs(600),
            request: bytes::Bytes::new(),
            third_party: Vec::new(),
        }],
    };
    let written = (0..16)
        .map(|n| format!("sip:u{n}@example.com"))
        .find(|aor| writer.write(aor, 0, rec.clone()).is_ok())
        .expect("some bucket lives on a live node");
    let change = feed
        .next(Duration::from_secs(5))
        .unwrap()
        .expect("a change");
    assert_eq!(change.aor, written);
}
