use std::time::Duration;

use mcptt_service_state::body::{McpttInfo, ServiceState};
use mcptt_service_state::client::{PublisherEvent, SubscriberEvent};
use mcptt_service_state::server::{ServerEvent, TerminationReason};
use mcptt_service_state::{
    AuthorisationState, CombinedState, RegistrationState, UeDirectory, UeKind,
};

use crate::harness::*;

const ALICE: &str = "sip:alice@mcptt.example.org";
const BOB: &str = "sip:bob@mcptt.example.org";
const CAROL: &str = "sip:carol@mcptt.example.org";
const WARNING: &str = "399 mcptt.example.org \"101 service authorisation failed\"";

fn published_etag(net: &Net, ue: usize) -> Option<String> {
    net.ues[ue].pub_events.iter().rev().find_map(|e| match e {
        PublisherEvent::Published { etag, .. } => Some(etag.clone()),
        _ => None,
    })
}

fn last_response(net: &Net) -> String {
    net.server_out
        .iter()
        .rev()
        .find(|m| status(m).is_some())
        .cloned()
        .unwrap()
}

fn auth_failures(net: &Net) -> Vec<String> {
    net.server_events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::AuthorisationFailed { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

fn signed_in(mcptt: &str) -> (Net, usize, usize) {
    let mut net = Net::new(UeDirectory::new());
    let ue = net.add_ue("sip:ue1@example.org");
    net.register(ue, true);
    let t = net.idms.token(mcptt, net.unix(), 3600);
    net.publish(ue, &t);
    let sub = net.add_sub(ue, 600);
    net.subscribe(sub, None);
    (net, ue, sub)
}

#[test]
fn happy_path_steps_7_to_18() {
    let mut net = Net::new(UeDirectory::new());
    let ue = net.add_ue("sip:ue1@example.org");
    net.register(ue, true);
    let token = net.idms.token(ALICE, net.unix(), 3600);
    net.publish(ue, &token);
    // Steps 7–10: 200 OK with SIP-ETag and Expires.
    let ok = &net.server_out[0];
    assert_eq!(status(ok), Some(200), "{ok}");
    let etag = header(ok, "SIP-ETag").expect("SIP-ETag");
    assert_eq!(header(ok, "Expires").as_deref(), Some("3600"));
    assert_eq!(published_etag(&net, ue), Some(etag));
    assert_eq!(net.server.publication_count(), 1);

    // Steps 11–18: SUBSCRIBE, 200, NOTIFY with the current state, 200.
    let sub = net.add_sub(ue, 600);
    net.subscribe(sub, None);
    let ok = &net.server_out[1];
    assert_eq!(status(ok), Some(200));
    assert!(header(ok, "To").unwrap().contains(";tag="), "{ok}");
    let notify = &net.subs[sub].notifies[0];
    assert!(
        notify.starts_with("NOTIFY sip:ue0.example.org;transport=tls SIP/2.0"),
        "{notify}"
    );
    assert_eq!(
        header(notify, "Event").as_deref(),
        Some("mcptt-service-state")
    );
    assert_eq!(
        header(notify, "Subscription-State").as_deref(),
        Some("active;expires=600")
    );
    assert_eq!(
        header(notify, "Content-Type").as_deref(),
        Some("application/vnd.mcptt-service-state+json")
    );
    let state = net.last_state(sub);
    assert_eq!(state.mcptt_id, ALICE);
    assert_eq!(state.impu, "sip:ue1@example.org");
    assert_eq!(
        state.instance.as_deref(),
        Some("<urn:uuid:00000000-0000-0000-0000-000000000000>")
    );
    assert_eq!(state.ue_kind, UeKind::Personal);
    assert_eq!(state.registration, RegistrationState::Registered);
    assert_eq!(state.authorisation, AuthorisationState::Authorised);
    assert_eq!(state.state, CombinedState::FullAccess);
    assert_eq!(state.token_expires, Some(T0_UNIX + 3600));
    assert_eq!(net.server.subscription_count(), 1);
    assert!(
        net.subs[sub]
            .events
            .contains(&SubscriberEvent::Active { expires: 600 })
    );
    // The NOTIFY was answered 200: nothing is outstanding, so no NOTIFY timeout ends it.
    net.advance(Duration::from_secs(100));
    assert_eq!(net.server.subscription_count(), 1);
    assert!(net.server_events.iter().any(
        |e| matches!(e, ServerEvent::SubscriptionCreated { mcptt_id, .. } if mcptt_id == ALICE)
    ));
}

#[test]
fn refresh_modify_and_sign_off() {
    let (mut net, ue, sub) = signed_in(ALICE);
    let first = published_etag(&net, ue).unwrap();
    let v1 = net.last_state(sub).version;
    // Publisher refreshes by itself before expiry, body-less with SIP-If-Match.
    net.advance(Duration::from_secs(2800));
    let refresh = net
        .server_out
        .iter()
        .rev()
        .find(|m| header(m, "SIP-ETag").is_some())
        .unwrap()
        .clone();
    let second = published_etag(&net, ue).unwrap();
    assert_ne!(first, second, "a refresh gets a new entity-tag");
    assert_eq!(header(&refresh, "SIP-ETag"), Some(second));
    assert_eq!(net.server.publication_count(), 1);
    // The subscription refreshed itself too, and the state did not change on the refresh.
    assert_eq!(net.server.subscription_count(), 1);
    assert_eq!(net.last_state(sub).version, v1);
    assert_eq!(
        net.last_state(sub).authorisation,
        AuthorisationState::Authorised
    );
    // Modify with a new token: token expiry moves on, a NOTIFY says so.
    let t2 = net.idms.token(ALICE, net.unix(), 7200);
    net.publish(ue, &t2);
    let s = net.last_state(sub);
    assert_eq!(s.token_expires, Some(net.unix() + 7200));
    assert!(s.version > v1);
    // Sign off: Expires 0 → signed-off, limited (still registered).
    let now = net.now;
    net.ues[ue].publisher.sign_off(now).unwrap();
    net.pump();
    assert!(net.ues[ue].pub_events.contains(&PublisherEvent::SignedOff));
    let s = net.last_state(sub);
    assert_eq!(s.authorisation, AuthorisationState::SignedOff);
    assert_eq!(s.state, CombinedState::Limited);
    assert_eq!(net.server.publication_count(), 0);
}

fn publish_msg(etag: Option<&str>, expires: u32, event: &str, body: Option<&str>) -> String {
    let mut m = format!(
        "PUBLISH {PSI} SIP/2.0\r\nVia: SIP/2.0/TLS ue1.example.org;branch=z9hG4bKraw\r\nMax-Forwards: 70\r\n\
From: <sip:ue1@example.org>;tag=raw1\r\nTo: <sip:ue1@example.org>\r\nCall-ID: raw-publish\r\nCSeq: 9 PUBLISH\r\n\
Event: {event}\r\nExpires: {expires}\r\n"
    );
    if let Some(e) = etag {
        m.push_str(&format!("SIP-If-Match: {e}\r\n"));
    }
    match body {
        Some(b) => m.push_str(&format!(
            "Content-Type: application/vnd.3gpp.mcptt-info+xml\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )),
        None => m.push_str("Content-Length: 0\r\n\r\n"),
    }
    m
}

#[test]
fn publish_protocol_errors_412_489_423() {
    let (mut net, ue, _) = signed_in(ALICE);
    let out = net.raw_to_server(
        ue,
        &publish_msg(Some("no-such-etag"), 3600, "poc-settings", None),
    );
    assert_eq!(status(&out[0]), Some(412), "{}", out[0]);
    let out = net.raw_to_server(ue, &publish_msg(None, 3600, "presence", None));
    assert_eq!(status(&out[0]), Some(489));
    assert_eq!(
        header(&out[0], "Allow-Events").as_deref(),
        Some("poc-settings")
    );
    let etag = published_etag(&net, ue).unwrap();
    let out = net.raw_to_server(ue, &publish_msg(Some(&etag), 10, "poc-settings", None));
    assert_eq!(status(&out[0]), Some(423));
    assert_eq!(header(&out[0], "Min-Expires").as_deref(), Some("60"));
    // Body-less refresh by hand with the right ETag works and returns a new one.
    let out = net.raw_to_server(ue, &publish_msg(Some(&etag), 120, "poc-settings", None));
    assert_eq!(status(&out[0]), Some(200));
    assert_eq!(header(&out[0], "Expires").as_deref(), Some("120"));
    assert_ne!(header(&out[0], "SIP-ETag").as_deref(), Some(etag.as_str()));
    // The old ETag is gone.
    let out = net.raw_to_server(ue, &publish_msg(Some(&etag), 120, "poc-settings", None));
    assert_eq!(status(&out[0]), Some(412));
    // Unsupported Encrypted token → 415, not a crash.
    let enc = r#"<mcpttinfo xmlns="urn:3gpp:ns:mcpttInfo:1.0"><mcptt-Params><mcptt-access-token type="Encrypted"><x/></mcptt-access-token></mcptt-Params></mcpttinfo>"#;
    let out = net.raw_to_server(ue, &publish_msg(None, 3600, "poc-settings", Some(enc)));
    assert_eq!(status(&out[0]), Some(415));
}

#[test]
fn bad_tokens_get_403_with_warning_101_and_a_logged_reason() {
    let mut net = Net::new(UeDirectory::new());
    let ue = net.add_ue("sip:ue1@example.org");
    net.register(ue, true);
    let now = net.unix();
    let expired = net.idms.token(ALICE, now - 7200, 3600);
    let mut c = net.idms.claims(ALICE, now, 3600);
    c.aud = vec!["sip:other-server@example.org".into()];
    let wrong_aud = net.idms.signer.sign_access_token(&c).unwrap();
    let mut c = net.idms.claims(ALICE, now, 3600);
    c.scope = "openid profile".into();
    let wrong_scope = net.idms.signer.sign_access_token(&c).unwrap();
    let c = net.idms.claims(ALICE, now, 3600);
    let forged = net.idms.forger.sign_access_token(&c).unwrap();
    for (i, token) in [
        expired,
        wrong_aud,
        wrong_scope,
        forged,
        "not-a-jwt".to_owned(),
    ]
    .iter()
    .enumerate()
    {
        net.publish(ue, token);
        let resp = net.server_out.last().unwrap().clone();
        assert_eq!(status(&resp), Some(403), "token {i}: {resp}");
        assert_eq!(
            header(&resp, "Warning").as_deref(),
            Some(WARNING),
            "token {i}"
        );
        // The reason stays in the log.
        assert!(
            !resp.contains("expired") && !resp.contains("audience"),
            "{resp}"
        );
        assert!(matches!(
            net.ues[ue].pub_events.last(),
            Some(PublisherEvent::Rejected { status: 403, warning: Some(w) }) if w == WARNING
        ));
    }
    let reasons = auth_failures(&net);
    assert_eq!(reasons.len(), 5, "{reasons:?}");
    assert!(
        reasons
            .iter()
            .all(|r| r.starts_with("access token rejected")),
        "{reasons:?}"
    );
    assert_eq!(net.server.publication_count(), 0);
}

#[test]
fn tokens_the_validator_accepts_are_still_checked_for_expiry_and_client_id() {
    let mut net = Net::new(UeDirectory::new());
    let ue = net.add_ue("sip:ue1@example.org");
    net.register(ue, true);
    let now = net.unix();
    // Expired 30 s ago: within the validator's leeway, not within the server's check.
    let just_expired = net.idms.token(ALICE, now - 3630, 3600);
    // The body names `mcptt-client`, the token another client.
    let mut c = net.idms.claims(ALICE, now, 3600);
    c.client_id = "other-client".into();
    let other_client = net.idms.signer.sign_access_token(&c).unwrap();
    for token in [&just_expired, &other_client] {
        net.publish(ue, token);
        let resp = net.server_out.last().unwrap().clone();
        assert_eq!(status(&resp), Some(403), "{resp}");
        assert_eq!(header(&resp, "Warning").as_deref(), Some(WARNING));
    }
    assert_eq!(
        auth_failures(&net),
        [
            "access token expired",
            "mcptt-client-id does not match the token's client_id"
        ]
    );
    assert_eq!(net.server.publication_count(), 0);
    // The same user with a good token signs in.
    let good = net.idms.token(ALICE, now, 3600);
    net.publish(ue, &good);
    assert_eq!(status(net.server_out.last().unwrap()), Some(200));
    assert_eq!(net.server.publication_count(), 1);
}

#[test]
fn publish_from_an_unregistered_identity_is_refused() {
    let mut net = Net::new(UeDirectory::new());
    let ue = net.add_ue("sip:ue1@example.org");
    let t = net.idms.token(ALICE, net.unix(), 3600);
    net.publish(ue, &t);
    let resp = net.server_out.last().unwrap();
    assert_eq!(status(resp), Some(403));
    assert_eq!(header(resp, "Warning").as_deref(), Some(WARNING));
    assert!(auth_failures(&net)[0].contains("not a registered UE"));
    // After registration and deregistration: refused again.
    net.register(ue, true);
    net.register(ue, false);
    net.publish(ue, &t);
    assert_eq!(status(&last_response(&net)), Some(403));
    assert_eq!(net.server.publication_count(), 0);
}

#[test]
fn two_ues_of_one_user_are_independent() {
    let mut net = Net::new(UeDirectory::new());
    let a = net.add_ue("sip:ue1@example.org");
    let b = net.add_ue("sip:ue2@example.org");
    net.register(a, true);
    net.register(b, true);
    let ta = net.idms.token(ALICE, net.unix(), 3600);
    let tb = net.idms.token(ALICE, net.unix(), 1800);
    net.publish(a, &ta);
    net.publish(b, &tb);
    let sa = net.add_sub(a, 600);
    let sb = net.add_sub(b, 600);
    net.subscribe(sa, None);
    net.subscribe(sb, None);
    assert_eq!(net.last_state(sa).impu, "sip:ue1@example.org");
    assert_eq!(net.last_state(sb).impu, "sip:ue2@example.org");
    assert_eq!(net.last_state(sb).token_expires, Some(T0_UNIX + 1800));
    let now = net.now;
    net.ues[b].publisher.sign_off(now).unwrap();
    net.pump();
    assert_eq!(
        net.last_state(sb).authorisation,
        AuthorisationState::SignedOff
    );
    assert_eq!(
        net.last_state(sa).authorisation,
        AuthorisationState::Authorised
    );
    assert_eq!(net.states(sa).len(), 1, "UE 1 saw no change");
}

#[test]
fn personal_refuses_and_shareable_replaces_a_second_user() {
    let dir = UeDirectory::new().with("sip:shared@example.org", UeKind::Shareable);
    let mut net = Net::new(dir);
    let personal = net.add_ue("sip:ue1@example.org");
    let shared = net.add_ue("sip:shared@example.org");
    net.register(personal, true);
    net.register(shared, true);
    let ta = net.idms.token(ALICE, net.unix(), 3600);
    let tb = net.idms.token(BOB, net.unix(), 3600);
    net.publish(personal, &ta);
    // Bob on Alice's personal UE: refused. (A second Publisher stands for the second user.)
    let bob_on_personal = net.add_ue("sip:ue1@example.org");
    net.publish(bob_on_personal, &tb);
    assert_eq!(status(&last_response(&net)), Some(403));
    assert!(auth_failures(&net).last().unwrap().contains("personal UE"));
    assert_eq!(
        net.server
            .state("sip:ue1@example.org", ALICE)
            .unwrap()
            .authorisation,
        AuthorisationState::Authorised
    );

    net.publish(shared, &ta);
    let sa = net.add_sub(shared, 600);
    net.subscribe(sa, None);
    assert_eq!(
        net.last_state(sa).authorisation,
        AuthorisationState::Authorised
    );
    let bob_on_shared = net.add_ue("sip:shared@example.org");
    net.publish(bob_on_shared, &tb);
    assert_eq!(status(&last_response(&net)), Some(200));
    let s = net.last_state(sa);
    assert_eq!(
        (s.mcptt_id.as_str(), s.authorisation),
        (ALICE, AuthorisationState::Replaced)
    );
    assert_eq!(s.state, CombinedState::Limited);
    assert_eq!(s.ue_kind, UeKind::Shareable);
    let bob = net.server.state("sip:shared@example.org", BOB).unwrap();
    assert_eq!(bob.state, CombinedState::FullAccess);
    // Alice's old entity-tag no longer refreshes anything.
    let now = net.now;
    net.ues[shared]
        .publisher
        .handle_timeout(now + Duration::from_secs(3000));
    net.pump();
    assert!(
        net.server_out
            .iter()
            .rev()
            .take(3)
            .any(|m| status(m) == Some(412))
    );
}

#[test]
fn gateway_with_three_users() {
    let dir = UeDirectory::new().with("sip:gw@example.org", UeKind::Gateway);
    let mut net = Net::new(dir);
    let users = [ALICE, BOB, CAROL];
    let mut pubs = Vec::new();
    for _ in users {
        pubs.push(net.add_ue("sip:gw@example.org"));
    }
    net.register(pubs[0], true);
    let mut subs = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let t = net.idms.token(user, net.unix(), 3600 + 600 * i as u64);
        net.publish(pubs[i], &t);
        assert_eq!(status(&last_response(&net)), Some(200));
        let s = net.add_sub(pubs[i], 600);
        let info = McpttInfo {
            access_token: Some(t),
            client_id: None,
            request_uri: None,
        };
        net.subscribe(s, Some(info));
        subs.push(s);
    }
    for (i, user) in users.iter().enumerate() {
        let s = net.last_state(subs[i]);
        assert_eq!(s.mcptt_id, *user);
        assert_eq!(s.ue_kind, UeKind::Gateway);
        assert_eq!(s.state, CombinedState::FullAccess);
    }
    // Bob signs off; Alice and Carol see nothing.
    let now = net.now;
    net.ues[pubs[1]].publisher.sign_off(now).unwrap();
    net.pump();
    assert_eq!(
        net.last_state(subs[1]).authorisation,
        AuthorisationState::SignedOff
    );
    assert_eq!(net.states(subs[0]).len(), 1);
    assert_eq!(net.states(subs[2]).len(), 1);
    // A gateway SUBSCRIBE that does not name the user is refused.
    let anon = net.add_sub(pubs[0], 600);
    net.subscribe(anon, None);
    assert!(net.subs[anon].sub.is_terminated());
    assert_eq!(status(&last_response(&net)), Some(403));
}

#[test]
fn subscribing_to_another_users_state_is_refused() {
    let (mut net, ue, _) = signed_in(ALICE);
    let msg = format!(
        "SUBSCRIBE {BOB} SIP/2.0\r\nVia: SIP/2.0/TLS ue1.example.org;branch=z9hG4bKs\r\nMax-Forwards: 70\r\n\
From: <sip:ue1@example.org>;tag=s1\r\nTo: <{BOB}>\r\nCall-ID: spy\r\nCSeq: 1 SUBSCRIBE\r\n\
Contact: <sip:ue1.example.org>\r\nEvent: mcptt-service-state\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n"
    );
    let out = net.raw_to_server(ue, &msg);
    assert_eq!(status(&out[0]), Some(403));
    assert_eq!(header(&out[0], "Warning").as_deref(), Some(WARNING));
    assert_eq!(out.len(), 1, "no NOTIFY");
    // Unknown package → 489 with Allow-Events.
    let out = net.raw_to_server(
        ue,
        &msg.replace("Event: mcptt-service-state", "Event: presence"),
    );
    assert_eq!(status(&out[0]), Some(489));
    assert_eq!(
        header(&out[0], "Allow-Events").as_deref(),
        Some("mcptt-service-state")
    );
}

#[test]
fn token_expiry_mid_subscription_then_new_token() {
    let mut net = Net::new(UeDirectory::new());
    let ue = net.add_ue("sip:ue1@example.org");
    net.register(ue, true);
    let t = net.idms.token(ALICE, net.unix(), 300);
    net.publish(ue, &t);
    let sub = net.add_sub(ue, 3600);
    net.subscribe(sub, None);
    net.advance(Duration::from_secs(299));
    assert_eq!(
        net.last_state(sub).authorisation,
        AuthorisationState::Authorised
    );
    net.advance(Duration::from_secs(1));
    let s = net.last_state(sub);
    assert_eq!(s.authorisation, AuthorisationState::Expired);
    assert_eq!(s.state, CombinedState::Limited);
    // The publication itself is still there: re-publish with a new token re-authorises.
    assert_eq!(net.server.publication_count(), 1);
    let t2 = net.idms.token(ALICE, net.unix(), 3600);
    net.publish(ue, &t2);
    let s = net.last_state(sub);
    assert_eq!(s.authorisation, AuthorisationState::Authorised);
    assert_eq!(s.token_expires, Some(net.unix() + 3600));
}

#[test]
fn deregistration_turns_full_access_into_limited() {
    let (mut net, ue, sub) = signed_in(ALICE);
    assert_eq!(net.last_state(sub).state, CombinedState::FullAccess);
    net.register(ue, false);
    let s = net.last_state(sub);
    assert_eq!(s.registration, RegistrationState::NotRegistered);
    assert_eq!(s.state, CombinedState::Limited);
    net.register(ue, true);
    assert_eq!(net.last_state(sub).state, CombinedState::FullAccess);
    let versions: Vec<u64> = net.states(sub).iter().map(|s| s.version).collect();
    assert_eq!(versions, vec![1, 2, 3]);
}

#[test]
fn unsubscribe_and_expiry_and_refresh_race() {
    let (mut net, ue, sub) = signed_in(ALICE);
    let now = net.now;
    net.subs[sub].sub.unsubscribe(now).unwrap();
    net.pump();
    let last = net.subs[sub].notifies.last().unwrap();
    assert_eq!(
        header(last, "Subscription-State").as_deref(),
        Some("terminated")
    );
    assert!(net.subs[sub].sub.is_terminated());
    assert_eq!(net.server.subscription_count(), 0);
    assert!(net.server_events.iter().any(|e| matches!(
        e,
        ServerEvent::SubscriptionTerminated {
            reason: TerminationReason::Unsubscribed,
            ..
        }
    )));

    // Expiry: a subscriber that never refreshes (its refresh is dropped).
    let s2 = net.add_sub(ue, 120);
    net.subscribe(s2, None);
    net.subs[s2].mute = false;
    // Refresh race: the subscriber's refresh arrives at the same instant as expiry, before the
    // server runs its timers: the refresh wins and the subscription lives on.
    let expiry = net.server.poll_timeout().unwrap();
    net.now = expiry;
    let now = net.now;
    net.subs[s2].sub.refresh(now).unwrap();
    net.pump();
    net.server.handle_timeout(now);
    net.pump();
    assert_eq!(net.server.subscription_count(), 1);
    // Now let it lapse: drop the subscriber's automatic refreshes by muting its transmissions.
    let refresh_due = net.subs[s2].sub.poll_timeout().unwrap();
    net.now = refresh_due;
    let now = net.now;
    net.subs[s2].sub.handle_timeout(now);
    let _dropped = net.subs[s2].sub.poll_transmit().expect("a refresh");
    net.now = now + Duration::from_secs(200);
    let now = net.now;
    net.server.handle_timeout(now);
    net.pump();
    let last = net.subs[s2].notifies.last().unwrap();
    assert_eq!(
        header(last, "Subscription-State").as_deref(),
        Some("terminated;reason=timeout")
    );
    assert!(net.subs[s2].sub.is_terminated());
    assert!(net.subs[s2].events.contains(&SubscriberEvent::Terminated {
        reason: Some("timeout".into())
    }));
    assert_eq!(net.server.subscription_count(), 0);
    // A refresh after the expiry meets 481 (the dialog is gone).
    let notify = net.subs[s2].notifies[0].clone();
    let server_tag = header(&notify, "From")
        .unwrap()
        .split("tag=")
        .nth(1)
        .unwrap()
        .to_owned();
    let our_tag = header(&notify, "To")
        .unwrap()
        .split("tag=")
        .nth(1)
        .unwrap()
        .to_owned();
    let late = format!(
        "SUBSCRIBE sip:mcptt.example.org SIP/2.0\r\nVia: SIP/2.0/TLS ue0.example.org;branch=z9hG4bKlate\r\n\
Max-Forwards: 70\r\nFrom: <sip:ue1@example.org>;tag={our_tag}\r\nTo: <{PSI}>;tag={server_tag}\r\n\
Call-ID: {}\r\nCSeq: 99 SUBSCRIBE\r\nContact: <sip:ue0.example.org>\r\nEvent: mcptt-service-state\r\n\
Expires: 600\r\nContent-Length: 0\r\n\r\n",
        call_id(&notify)
    );
    let out = net.raw_to_server(ue, &late);
    assert_eq!(status(&out[0]), Some(481), "{}", out[0]);
}

#[test]
fn notify_answered_481_or_unanswered_ends_the_subscription() {
    let (mut net, ue, sub) = signed_in(ALICE);
    net.subs[sub].answer_with = Some(481);
    net.register(ue, false);
    assert_eq!(net.server.subscription_count(), 0);
    assert!(net.server_events.iter().any(|e| matches!(
        e,
        ServerEvent::SubscriptionTerminated {
            reason: TerminationReason::NotifyRejected(481),
            ..
        }
    )));

    let s2 = net.add_sub(ue, 3600);
    // Alice is still signed in (publication alive), so a new subscription is accepted.
    net.subscribe(s2, None);
    assert_eq!(net.server.subscription_count(), 1);
    net.subs[s2].mute = true;
    net.register(ue, true);
    net.advance(Duration::from_secs(31));
    assert_eq!(net.server.subscription_count(), 1);
    net.advance(Duration::from_secs(2));
    assert_eq!(net.server.subscription_count(), 0);
    assert!(net.server_events.iter().any(|e| matches!(
        e,
        ServerEvent::SubscriptionTerminated {
            reason: TerminationReason::NotifyTimedOut,
            ..
        }
    )));
}

#[test]
fn subscriber_rejects_out_of_order_notify() {
    let (mut net, ue, sub) = signed_in(ALICE);
    let _ = ue;
    let first = net.subs[sub].notifies[0].clone();
    let now = net.now;
    let err = net.subs[sub]
        .sub
        .handle_request(now, &req(first.as_bytes()))
        .unwrap_err();
    assert!(
        matches!(
            err,
            mcptt_service_state::Error::OutOfOrderCSeq { got: 1, last: 1 }
        ),
        "{err}"
    );
    let resp = String::from_utf8(net.subs[sub].sub.poll_transmit().unwrap().bytes).unwrap();
    assert_eq!(status(&resp), Some(500));
    // The state events did not repeat.
    assert_eq!(net.states(sub).len(), 1);
    let parsed: ServiceState =
        ServiceState::parse(first.split("\r\n\r\n").nth(1).unwrap().as_bytes()).unwrap();
    assert_eq!(parsed.version, 1);
}

#[test]
fn fetch_subscription_gets_one_terminated_notify() {
    let (mut net, ue, _) = signed_in(ALICE);
    let before = net.server.subscription_count();
    let msg = format!(
        "SUBSCRIBE {PSI} SIP/2.0\r\nVia: SIP/2.0/TLS ue0.example.org;branch=z9hG4bKf\r\nMax-Forwards: 70\r\n\
From: <sip:ue1@example.org>;tag=f1\r\nTo: <{PSI}>\r\nCall-ID: fetch-1\r\nCSeq: 1 SUBSCRIBE\r\n\
Contact: <sip:ue0.example.org>\r\nEvent: mcptt-service-state\r\nExpires: 0\r\nContent-Length: 0\r\n\r\n"
    );
    let out = net.raw_to_server(ue, &msg);
    assert_eq!(status(&out[0]), Some(200));
    assert_eq!(header(&out[0], "Expires").as_deref(), Some("0"));
    let notify = &out[1];
    assert_eq!(
        header(notify, "Subscription-State").as_deref(),
        Some("terminated")
    );
    let body = ServiceState::parse(notify.split("\r\n\r\n").nth(1).unwrap().as_bytes()).unwrap();
    assert_eq!(body.state, CombinedState::FullAccess);
    assert_eq!(
        net.server.subscription_count(),
        before,
        "a fetch keeps no subscription"
    );
}

#[test]
fn subscriber_takes_a_notify_that_overtakes_the_200() {
    let mut net = Net::new(UeDirectory::new());
    let ue = net.add_ue("sip:ue1@example.org");
    net.register(ue, true);
    let t = net.idms.token(ALICE, net.unix(), 3600);
    net.publish(ue, &t);
    let sub = net.add_sub(ue, 600);
    let now = net.now;
    net.subs[sub].sub.subscribe(now, None).unwrap();
    let s = net.subs[sub].sub.poll_transmit().unwrap();
    let s = Net::assert_identity(&s.bytes, "sip:ue1@example.org");
    let unix = net.unix();
    net.server.handle_request(now, unix, &req(&s));
    let ok = net.server.poll_transmit().unwrap();
    let notify = net.server.poll_transmit().unwrap();
    // NOTIFY first (RFC 6665 §4.1.2.4 allows it), then the 200.
    net.subs[sub]
        .sub
        .handle_request(now, &req(&notify.bytes))
        .unwrap();
    net.subs[sub]
        .sub
        .handle_response(now, &resp(&ok.bytes))
        .unwrap();
    let events: Vec<SubscriberEvent> =
        std::iter::from_fn(|| net.subs[sub].sub.poll_event()).collect();
    assert!(
        events.iter().any(
            |e| matches!(e, SubscriberEvent::State(s) if s.state == CombinedState::FullAccess)
        ),
        "{events:?}"
    );
    assert!(
        events.contains(&SubscriberEvent::Active { expires: 600 }),
        "{events:?}"
    );
    // A refresh goes in the dialog (To tag of the server) and is accepted.
    net.subs[sub].sub.refresh(now).unwrap();
    net.pump();
    assert_eq!(
        status(
            &net.server_out
                .iter()
                .rev()
                .find(|m| status(m).is_some())
                .unwrap()
                .clone()
        ),
        Some(200)
    );
    assert_eq!(net.server.subscription_count(), 1);
}

#[test]
fn subscriber_retries_after_423() {
    let (mut net, ue, _) = signed_in(ALICE);
    let sub = net.add_sub(ue, 30);
    net.subscribe(sub, None);
    assert!(
        net.server_out
            .iter()
            .any(|m| status(m) == Some(423) && header(m, "Min-Expires").as_deref() == Some("60"))
    );
    assert!(
        net.subs[sub]
            .events
            .contains(&SubscriberEvent::Active { expires: 60 }),
        "{:?}",
        net.subs[sub].events
    );
    assert_eq!(net.last_state(sub).state, CombinedState::FullAccess);
}

#[test]
fn published_poc_settings_reach_the_application() {
    use mcptt_service_state::body::{AnswerMode, PocEntity, PocSettings};
    let mut net = Net::new(UeDirectory::new());
    let ue = net.add_ue("sip:ue1@example.org");
    net.register(ue, true);
    let t = net.idms.token(ALICE, net.unix(), 3600);
    let settings = PocSettings {
        entities: vec![PocEntity {
            id: "urn:uuid:00000000-0000-0000-0000-000000000000".into(),
            answer_mode: Some(AnswerMode::Manual),
            ..PocEntity::default()
        }],
    };
    let now = net.now;
    net.ues[ue]
        .publisher
        .publish(now, &t, Some("mcptt-client"), Some(settings.clone()));
    net.pump();
    assert_eq!(status(&last_response(&net)), Some(200));
    assert!(
        net.server_events.iter().any(|e| matches!(
            e,
            ServerEvent::SettingsPublished { mcptt_id, impu, settings: s }
                if mcptt_id == ALICE && impu == "sip:ue1@example.org" && *s == settings
        )),
        "{:?}",
        net.server_events
    );
}

#[test]
fn subscribe_2xx_copies_record_route_and_notify_follows_the_route_set() {
    let (mut net, ue, _) = signed_in(ALICE);
    let msg = format!(
        "SUBSCRIBE {PSI} SIP/2.0\r\nVia: SIP/2.0/TLS core.example.org;branch=z9hG4bKrr\r\n\
Via: SIP/2.0/TLS ue0.example.org;branch=z9hG4bKrr0\r\nMax-Forwards: 69\r\n\
Record-Route: <sip:core2.example.org;lr>, <sip:core1.example.org;lr>\r\n\
From: <sip:ue1@example.org>;tag=rr1\r\nTo: <{PSI}>\r\nCall-ID: rr-1\r\nCSeq: 1 SUBSCRIBE\r\n\
Contact: <sip:ue0.example.org;transport=tls>\r\nEvent: mcptt-service-state\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n"
    );
    let out = net.raw_to_server(ue, &msg);
    assert_eq!(status(&out[0]), Some(200));
    // Copied as received (RFC 3261 §12.1.1): the same entries in the same order.
    let rr: Vec<String> = resp(out[0].as_bytes())
        .record_route()
        .unwrap()
        .iter()
        .map(|r| r.as_str().to_owned())
        .collect();
    assert_eq!(
        rr,
        vec!["<sip:core2.example.org;lr>", "<sip:core1.example.org;lr>"]
    );
    // The NOTIFY uses the route set in Record-Route order (RFC 3261 §12.1.1) and the Contact.
    let notify = &out[1];
    assert!(
        notify.starts_with("NOTIFY sip:ue0.example.org;transport=tls SIP/2.0"),
        "{notify}"
    );
    let routes: Vec<&str> = notify.lines().filter(|l| l.starts_with("Route:")).collect();
    assert_eq!(
        routes,
        vec![
            "Route: <sip:core2.example.org;lr>",
            "Route: <sip:core1.example.org;lr>"
        ]
    );
}

#[test]
fn poll_timeout_names_the_next_real_deadline_after_moves_and_answers() {
    let (mut net, _ue, sub) = signed_in(ALICE);
    let t0 = net.now;
    let lease_round = t0 + net.server.config().dialog_lease / 2;
    // The first NOTIFY was answered: its timeout (32 s) no longer counts; the lease renewal
    // round comes first.
    assert_eq!(net.server.poll_timeout(), Some(lease_round));
    // Subscribe/unsubscribe churn at one instant, then the first subscription ends too:
    // their expiries and NOTIFY timeouts no longer count.
    for _ in 0..3 {
        let s = net.add_sub(0, 600);
        net.subscribe(s, None);
        let now = net.now;
        net.subs[s].sub.unsubscribe(now).unwrap();
        net.pump();
    }
    let now = net.now;
    net.subs[sub].sub.unsubscribe(now).unwrap();
    net.pump();
    assert_eq!(net.server.subscription_count(), 0);
    assert_eq!(net.server.poll_timeout(), Some(lease_round));
    // The round finds no dialog and is not armed again: the publication's (and token's)
    // expiry is next.
    net.server.handle_timeout(lease_round);
    assert!(net.server.poll_transmit().is_none());
    assert_eq!(
        net.server.poll_timeout(),
        Some(t0 + Duration::from_secs(3600))
    );
    net.server.handle_timeout(t0 + Duration::from_secs(3599));
    assert!(net.server.poll_transmit().is_none());
    assert_eq!(net.server.publication_count(), 1);
}
