//! Any bytes, parsed datagram style: never a panic; whatever parses can be read through every
//! typed accessor, validated, checked and encoded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcptt_sip::{Bytes, Limits, Message};

fuzz_target!(|data: &[u8]| {
    let small = Limits {
        max_headers: 32,
        max_line_length: 512,
        ..Limits::default()
    };
    let _ = Message::parse_with(Bytes::copy_from_slice(data), &small);
    let Ok(m) = Message::parse(Bytes::copy_from_slice(data)) else {
        return;
    };
    let _ = m.validate();
    let _ = m.call_id();
    let _ = m.cseq();
    let _ = m.via();
    let _ = m.top_via();
    let _ = m.from();
    let _ = m.to();
    let _ = m.contacts();
    let _ = m.expires();
    let _ = m.max_forwards();
    let _ = m.event();
    let _ = m.headers().subscription_state();
    let _ = m.content_type();
    let _ = m.headers().sip_etag();
    let _ = m.headers().warning();
    let _ = m.headers().route();
    let _ = m.headers().record_route();
    let _ = m.headers().path();
    let _ = m.headers().service_route();
    let _ = m.headers().p_asserted_identity();
    if let Message::Request(r) = &m {
        let _ = r.uri().to_string();
        let _ = r.check(&mcptt_sip::Policy::default());
    }
    if let Ok(Some(ct)) = m.content_type() {
        let _ = mcptt_sip::body::Multipart::parse(&ct, m.body());
        let _ = mcptt_sip::body::message_sip::parse(m.body());
    }
    for (name, _) in m.headers().iter() {
        let _ = m.headers().values(name).count();
    }
    let _ = m.encode();
});
