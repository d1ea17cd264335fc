//! Random event sequences: the NOTIFY stream a subscriber sees ends in the server's true state,
//! versions strictly increase, and no state change is missed.

use std::time::Duration;

use mcptt_service_state::server::ServerEvent;
use mcptt_service_state::{UeDirectory, UeKind};
use proptest::prelude::*;

use crate::harness::*;

const ALICE: &str = "sip:alice@mcptt.example.org";
const BOB: &str = "sip:bob@mcptt.example.org";
const UE: &str = "sip:shared@example.org";

#[derive(Debug, Clone)]
enum Op {
    /// Alice publishes a new token with this lifetime.
    PublishAlice(u64),
    /// Bob signs in on the shareable UE (takes it over).
    PublishBob(u64),
    SignOffAlice,
    Register(bool),
    Advance(u64),
    Refresh,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (60u64..4000).prop_map(Op::PublishAlice),
        (60u64..4000).prop_map(Op::PublishBob),
        Just(Op::SignOffAlice),
        any::<bool>().prop_map(Op::Register),
        (1u64..3000).prop_map(Op::Advance),
        Just(Op::Refresh),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn notify_stream_tracks_the_true_state(ops in proptest::collection::vec(op(), 1..25)) {
        let mut net = Net::new(UeDirectory::new().with(UE, UeKind::Shareable));
        let alice = net.add_ue(UE);
        let bob = net.add_ue(UE);
        net.register(alice, true);
        let t = net.idms.token(ALICE, net.unix(), 3600);
        net.publish(alice, &t);
        let sub = net.add_sub(alice, 600);
        net.subscribe(sub, None);
        prop_assert_eq!(net.server.subscription_count(), 1);
        for op in ops {
            match op {
                Op::PublishAlice(life) => {
                    let t = net.idms.token(ALICE, net.unix(), life);
                    net.publish(alice, &t);
                }
                Op::PublishBob(life) => {
                    let t = net.idms.token(BOB, net.unix(), life);
                    net.publish(bob, &t);
                }
                Op::SignOffAlice => {
                    let now = net.now;
                    let _ = net.ues[alice].publisher.sign_off(now);
                    net.pump();
                }
                Op::Register(r) => net.register(alice, r),
                Op::Advance(s) => net.advance(Duration::from_secs(s)),
                Op::Refresh => {
                    let now = net.now;
                    let _ = net.subs[sub].sub.refresh(now);
                    net.pump();
                }
            }
        }
        // Every state change of Alice on the UE, as the server reported it.
        let changes: Vec<u64> = net
            .server_events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::StateChanged(s) if s.mcptt_id == ALICE => Some(s.version),
                _ => None,
            })
            .collect();
        let seen = net.states(sub);
        let versions: Vec<u64> = seen.iter().map(|s| s.version).collect();
        // Versions never go back; equal versions are refresh NOTIFYs repeating the same state.
        for w in seen.windows(2) {
            prop_assert!(w[0].version <= w[1].version, "versions {:?}", versions);
            if w[0].version == w[1].version {
                prop_assert_eq!(&w[0], &w[1]);
            }
        }
        // No change missed: every version the server produced (after the first NOTIFY) was seen.
        let first = versions[0];
        for v in changes.iter().filter(|v| **v > first) {
            prop_assert!(versions.contains(v), "missed version {} of {:?}; saw {:?}", v, changes, versions);
        }
        // The subscriber refreshes on its own, so the subscription is still there, and the
        // last NOTIFY it saw is the server's true state.
        prop_assert!(!net.subs[sub].sub.is_terminated());
        prop_assert_eq!(net.server.subscription_count(), 1);
        let truth = net.server.state(UE, ALICE).expect("a subscribed user is tracked");
        prop_assert_eq!(seen.last().unwrap(), &truth);
        prop_assert_eq!(versions.last().copied(), changes.last().copied().max(Some(first)));
    }
}
