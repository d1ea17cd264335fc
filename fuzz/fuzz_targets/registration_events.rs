//! Arbitrary sequences of REGISTERs (structured and raw), AS responses, SUBSCRIBEs, NOTIFYs
//! remote-change inputs and clock steps through the registrar and the MCPTT server's view:
//! nothing panics, and after `handle_timeout` no expired binding is left.
#![no_main]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mcptt_registration::{
    FailurePolicy, FilterCriteria, IdentityMap, RegEventConfig, RegInfo, Registrar,
    RegistrarConfig, RegistrationStore, RegistrationView, ServerConfig,
};
use mcptt_sip::{Message, Response};

#[derive(Debug, Arbitrary)]
enum Op {
    Register {
        aor: u8,
        call_id: u8,
        cseq: u16,
        contacts: Vec<(u8, Option<u16>, bool)>,
        expires: Option<u16>,
        star: bool,
    },
    Raw(Vec<u8>),
    RawToServer(Vec<u8>),
    Reginfo(Vec<u8>),
    AnswerThirdParty(u16),
    Subscribe(u8),
    RemoteChange(u8),
    Resync,
    Advance(u16),
    Timeout,
}

const AORS: [&str; 3] = [
    "sip:a@example.com",
    "sip:b@example.com",
    "sip:c@example.com",
];

fn register(op: &Op) -> Option<Bytes> {
    let Op::Register {
        aor,
        call_id,
        cseq,
        contacts,
        expires,
        star,
    } = op
    else {
        return None;
    };
    let to = AORS[usize::from(*aor) % AORS.len()];
    let mut t = format!(
        "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/TLS h;branch=z9hG4bK{cseq}\r\nFrom: <{to}>;tag=f\r\nTo: <{to}>\r\nCall-ID: c{call_id}\r\nCSeq: {cseq} REGISTER\r\n"
    );
    if *star {
        t.push_str("Contact: *\r\n");
    }
    for (n, e, mcptt) in contacts.iter().take(6) {
        t.push_str(&format!(
            "Contact: <sip:u@192.0.2.{n}>;+sip.instance=\"<urn:uuid:{n}>\"{}{}\r\n",
            if *mcptt { ";+g.3gpp.mcptt" } else { "" },
            e.map(|e| format!(";expires={e}")).unwrap_or_default()
        ));
    }
    if let Some(e) = expires {
        t.push_str(&format!("Expires: {e}\r\n"));
    }
    t.push_str("Content-Length: 0\r\n\r\n");
    Some(Bytes::from(t))
}

fuzz_target!(|ops: Vec<Op>| {
    let mut identities = IdentityMap::new();
    for a in AORS {
        identities.insert("peer", a);
    }
    let cfg = RegistrarConfig {
        identities,
        filters: vec![
            FilterCriteria::mcptt("sip:as.example.com")
                .with_default_handling(FailurePolicy::Deregister),
        ],
        core_uri: "sip:core.example.com".into(),
        max_bindings_per_aor: 4,
        max_bindings: 16,
        max_pending_third_party: 8,
        reg_event: RegEventConfig {
            trusted_subscribers: HashSet::from(["as".to_owned()]),
            max_subscriptions: 4,
            ..RegEventConfig::default()
        },
        ..RegistrarConfig::default()
    };
    let mut reg = Registrar::new(cfg, 1);
    let mut view = RegistrationView::new(
        ServerConfig {
            trusted_cores: HashSet::from(["core".to_owned()]),
            max_identities: 8,
            ..ServerConfig::default()
        },
        2,
    );
    #[allow(clippy::disallowed_methods)]
    let mut now = Instant::now();
    let mut sent = Vec::new();
    for op in ops.iter().take(64) {
        match op {
            Op::Register { .. } => {
                if let Some(b) = register(op)
                    && let Ok(Message::Request(r)) = Message::parse(b)
                {
                    let _ = reg.handle_register(now, "peer", &r);
                }
            }
            Op::Raw(b) => {
                if let Ok(Message::Request(r)) = Message::parse(Bytes::copy_from_slice(b)) {
                    match r.method().as_str() {
                        "REGISTER" => {
                            let _ = reg.handle_register(now, "peer", &r);
                        }
                        "SUBSCRIBE" => {
                            let _ = reg.handle_subscribe(now, "as", &r);
                        }
                        _ => {}
                    }
                } else if let Ok(Message::Response(r)) = Message::parse(Bytes::copy_from_slice(b)) {
                    let _ = reg.handle_third_party_response(now, &r);
                    let _ = reg.handle_notify_response(now, &r);
                    let _ = view.handle_subscribe_response(now, &r);
                }
            }
            Op::RawToServer(b) => {
                if let Ok(Message::Request(r)) = Message::parse(Bytes::copy_from_slice(b)) {
                    match r.method().as_str() {
                        "REGISTER" => {
                            let _ = view.handle_third_party_register(now, "core", &r);
                        }
                        "NOTIFY" => {
                            let _ = view.handle_notify(now, "core", &r);
                        }
                        _ => {}
                    }
                }
            }
            Op::Reginfo(b) => {
                if let Ok(doc) = RegInfo::parse(b) {
                    // encode → parse gives the same document
                    assert_eq!(
                        RegInfo::parse(doc.encode().as_bytes()).ok(),
                        Some(doc.clone())
                    );
                    let _ = view.apply_reginfo(now, AORS[0], &doc);
                }
            }
            Op::AnswerThirdParty(code) => {
                if let Some(t) = sent.pop() {
                    let code = 100 + code % 600;
                    let resp = Response::from_request(&t, code);
                    let _ = reg.handle_third_party_response(now, &resp);
                }
            }
            Op::Subscribe(i) => {
                let _ = view.subscribe(
                    now,
                    AORS[usize::from(*i) % AORS.len()],
                    "sip:core.example.com",
                );
                while let Some(t) = view.poll_transmit() {
                    let _ = reg.handle_subscribe(now, "as", &t.request);
                }
            }
            Op::RemoteChange(a) => {
                let _ = reg.handle_remote_change(now, AORS[usize::from(*a) % AORS.len()]);
            }
            Op::Resync => {
                let _ = reg.handle_remote_resync(now);
            }
            Op::Advance(s) => now += Duration::from_secs(u64::from(*s)),
            Op::Timeout => {
                reg.handle_timeout(now);
                view.handle_timeout(now);
                for a in AORS {
                    if let Ok(Some((_, rec))) = reg.store().load(a) {
                        assert!(rec.bindings.iter().all(|b| b.expires_at > now));
                    }
                }
            }
        }
        while let Some(t) = reg.poll_transmit() {
            if t.request.method().as_str() == "REGISTER" {
                let _ = view.handle_third_party_register(now, "core", &t.request);
                sent.push(t.request);
            } else {
                let _ = view.handle_notify(now, "core", &t.request);
            }
        }
        while reg.poll_event().is_some() {}
        while view.poll_event().is_some() {}
        while view.poll_transmit().is_some() {}
        assert!(reg.store().binding_count() <= 16);
        sent.truncate(16);
    }
});
