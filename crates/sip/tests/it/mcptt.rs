//! Realistic MCPTT messages of `tests/data/mcptt/` (DESIGN.md §3): parse, typed values,
//! byte-for-byte round trip; and the same messages built with the builders.

use mcptt_sip::{Bytes, Message, Method, Request, Response, Scheme, Uri};

use crate::common::{data, read};
use crate::rfc4475::accept;

fn load(name: &str) -> (Bytes, Message) {
    let bytes = read(&data(&format!("mcptt/{name}")));
    let msg = accept(name, &bytes);
    // Whole files are one message each: the encoding is the file, not just a prefix of it.
    assert_eq!(msg.encode(), bytes, "{name}");
    (bytes, msg)
}

fn request(m: &Message) -> &Request {
    m.as_request().unwrap()
}

fn response(m: &Message) -> &Response {
    m.as_response().unwrap()
}

const CALL_ID: &str = "3c26700a-8f4e-4a4e-bb54-0f2d6ce1b7a9@ue1.alice.mcptt.example.com";
const INSTANCE: &str = "<urn:uuid:4f6e8d2a-91b3-4c57-a0e1-6d2f3b8c9a10>";
const ICSI: &str = "urn%3Aurn-7%3A3gpp-service.ims.icsi.mcptt";

#[test]
fn register_with_mcptt_contact() {
    let (bytes, m) = load("register.sip");
    assert_eq!(bytes.len(), 680, "the bench's REGISTER is 680 bytes");
    let r = request(&m);
    assert_eq!(*r.method(), Method::Register);
    assert_eq!(r.uri().scheme(), Scheme::Sip);
    assert_eq!(r.uri().host(), "mcptt.example.com");
    assert_eq!(r.uri().user(), None);

    let via = m.top_via().unwrap();
    assert_eq!(via.transport(), "TLS");
    assert_eq!(via.host(), "192.0.2.10");
    assert_eq!(via.port(), Some(50626));
    assert_eq!(via.branch(), Some("z9hG4bK.ue1-5a8b1cd3e4f-0001b2c3d4e5f6"));
    assert!(via.has_rport());
    assert_eq!(via.rport(), Some(None), "rport without a value");
    assert!(via.is_rfc3261_branch());
    assert_eq!(via.received(), None);
    assert_eq!(m.max_forwards().unwrap(), Some(70));

    let from = m.from().unwrap();
    assert_eq!(from.display_name().as_deref(), Some("Alice MCPTT"));
    assert_eq!(from.uri().to_string(), "sip:alice@mcptt.example.com");
    assert_eq!(from.tag(), Some("6b2f7c9ed1-a90e"));
    let to = m.to().unwrap();
    assert_eq!(to.uri().user(), Some("alice"));
    assert_eq!(to.tag(), None);
    assert_eq!(m.call_id(), Some(CALL_ID));
    let cseq = m.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (1, Method::Register));

    let contacts = m.contacts().unwrap();
    assert_eq!(contacts.len(), 1);
    let c = &contacts[0];
    assert!(!c.is_star());
    let uri = c.uri().unwrap();
    assert_eq!(uri.user(), Some("alice"));
    assert_eq!(uri.host(), "192.0.2.10");
    assert_eq!(uri.port(), Some(50626));
    assert_eq!(uri.transport(), Some("tls"));
    assert!(uri.has_param("ob"));
    assert_eq!(c.sip_instance().as_deref(), Some(INSTANCE));
    assert!(c.has_param("+g.3gpp.mcptt"));
    assert_eq!(c.feature_tag("+g.3gpp.mcptt").as_deref(), Some(""));
    assert_eq!(
        c.icsi_ref().as_deref(),
        Some("urn:urn-7:3gpp-service.ims.icsi.mcptt")
    );
    assert_eq!(c.feature_tag("+g.3gpp.icsi-ref").as_deref(), Some(ICSI));
    assert_eq!(
        c.name_addr().and_then(|a| a.icsi_ref()).as_deref(),
        Some("urn:urn-7:3gpp-service.ims.icsi.mcptt")
    );
    assert_eq!(c.reg_id(), Some(1));
    assert_eq!(c.expires(), Some(600_000));
    assert_eq!(c.q(), None);

    assert_eq!(m.expires().unwrap(), Some(600_000));
    let supported = m.supported().unwrap();
    assert_eq!(
        supported,
        ["path", "gruu", "outbound", "100rel", "sec-agree", "timer"]
    );
    assert_eq!(m.declared_content_length(), Some(0));
    assert!(m.body().is_empty());
}

#[test]
fn register_200_with_several_contacts() {
    let (_, m) = load("register-200.sip");
    let r = response(&m);
    assert_eq!(r.status(), 200);
    assert_eq!(r.reason(), "OK");
    let via = m.top_via().unwrap();
    assert_eq!(via.rport(), Some(Some(50626)));
    assert_eq!(via.received(), Some("192.0.2.10"));
    assert_eq!(m.to().unwrap().tag(), Some("reg-8d1e"));

    let contacts = m.contacts().unwrap();
    assert_eq!(
        contacts.len(),
        3,
        "two in the first Contact line, one in the second"
    );
    assert_eq!(
        contacts[0].feature_tag("+sip.instance").as_deref(),
        Some(INSTANCE)
    );
    assert_eq!(contacts[0].expires(), Some(600_000));
    let v6 = contacts[1].uri().unwrap();
    assert_eq!(v6.host(), "[2001:db8::20]");
    assert_eq!(v6.port(), Some(5061));
    assert_eq!(contacts[1].q(), Some(0.5));
    assert_eq!(contacts[1].q_millis(), Some(500));
    assert_eq!(contacts[1].expires(), Some(3600));
    assert_eq!(contacts[1].icsi_ref(), None);
    assert_eq!(
        contacts[1].feature_tag("+g.3gpp.mcptt").as_deref(),
        Some("")
    );
    assert_eq!(
        contacts[2]
            .name_addr()
            .and_then(|a| a.display_name())
            .as_deref(),
        Some("Alice, desk")
    );
    assert_eq!(contacts[2].uri().unwrap().scheme(), Scheme::Sips);
    assert_eq!(contacts[2].q_millis(), Some(1000));
    assert_eq!(contacts[2].expires(), Some(120));

    let sr = m.headers().service_route().unwrap();
    assert_eq!(sr.len(), 1);
    assert_eq!(sr[0].uri().host(), "scscf.mcptt.example.com");
    assert!(sr[0].uri().has_param("lr"));
    let path = m.headers().path().unwrap();
    assert_eq!(path[0].uri().user(), Some("term"));
    assert_eq!(m.headers().values("P-Associated-URI").count(), 2);
    assert_eq!(
        m.headers().get("Date"),
        Some("Sat, 28 Nov 2026 02:30:00 GMT")
    );
    let date = m.date().unwrap().unwrap();
    assert_eq!(date.unix_time(), 1_795_833_000);
}

#[test]
fn third_party_register_carries_the_ue_register() {
    let (_, m) = load("register-third-party.sip");
    let (ue_bytes, ue) = load("register.sip");
    let r = request(&m);
    assert_eq!(*r.method(), Method::Register);
    assert_eq!(r.uri().host(), "mcptt-server.mcptt.example.com");
    assert_eq!(
        m.to().unwrap().uri().to_string(),
        "sip:alice@mcptt.example.com"
    );
    assert_eq!(m.from().unwrap().uri().host(), "sip-core.mcptt.example.com");
    assert_eq!(m.expires().unwrap(), Some(600_000));
    let ct = m.content_type().unwrap().unwrap();
    assert_eq!((ct.main_type(), ct.subtype()), ("message", "sip"));
    assert!(ct.is("message", "sip"));
    // The body is the UE's REGISTER as received.
    assert_eq!(m.body(), ue_bytes);
    let inner = mcptt_sip::body::message_sip::parse(m.body()).unwrap();
    assert_eq!(inner, ue);
    assert_eq!(inner.call_id(), Some(CALL_ID));
    assert_eq!(
        inner.contacts().unwrap()[0]
            .feature_tag("+g.3gpp.icsi-ref")
            .as_deref(),
        Some(ICSI)
    );
    // And message_sip::build gives the same bytes back.
    assert_eq!(mcptt_sip::body::message_sip::build(&inner), ue_bytes);
}

#[test]
fn publish_with_multipart_mcptt_info_and_poc_settings() {
    let (_, m) = load("publish.sip");
    let r = request(&m);
    assert_eq!(*r.method(), Method::Publish);
    assert_eq!(r.uri().to_string(), "sip:mcptt-server.mcptt.example.com");
    let ev = m.event().unwrap().unwrap();
    assert_eq!(ev.package(), "poc-settings");
    assert_eq!(ev.id(), None);
    assert_eq!(m.expires().unwrap(), Some(3600));
    let ppi = m.p_preferred_identity().unwrap();
    assert_eq!(ppi.len(), 1);
    assert_eq!(ppi[0].uri().to_string(), "sip:alice@mcptt.example.com");
    assert_eq!(
        m.p_preferred_service().unwrap(),
        ["urn:urn-7:3gpp-service.ims.icsi.mcptt"]
    );
    let ac = m.accept_contact().unwrap();
    assert_eq!(ac.len(), 1);
    assert!(ac[0].require() && ac[0].explicit());
    assert_eq!(ac[0].feature_tag("+g.3gpp.mcptt").as_deref(), Some(""));
    assert_eq!(
        m.headers().get("a"),
        Some("*;+g.3gpp.mcptt;require;explicit"),
        "compact Accept-Contact"
    );

    let ct = m.content_type().unwrap().unwrap();
    assert_eq!(ct.mime_type(), "multipart/mixed");
    assert_eq!(ct.boundary().as_deref(), Some("mcptt-boundary-7f3a"));
    let mp = mcptt_sip::body::Multipart::parse(&ct, m.body()).unwrap();
    assert_eq!(mp.parts.len(), 2);
    let info = &mp.parts[0];
    let info_ct = info.content_type().unwrap().unwrap();
    assert_eq!(info_ct.mime_type(), "application/vnd.3gpp.mcptt-info+xml");
    let info_text = std::str::from_utf8(&info.body).unwrap();
    assert!(info_text.starts_with("<?xml"));
    assert!(info_text.contains("<mcptt-access-token type=\"Normal\"><mcpttString>eyJ"));
    assert!(info_text.ends_with("</mcpttinfo>\r\n"));
    let poc = &mp.parts[1];
    let poc_ct = poc.content_type().unwrap().unwrap();
    assert_eq!(poc_ct.mime_type(), "application/poc-settings+xml");
    assert!(
        std::str::from_utf8(&poc.body)
            .unwrap()
            .ends_with("</poc-settings>\r\n")
    );
    // Encoding the parts again with the same boundary gives the body back.
    assert_eq!(mp.encode(), m.body());
}

#[test]
fn subscribe_in_compact_form() {
    let (_, m) = load("subscribe.sip");
    assert_eq!(*request(&m).method(), Method::Subscribe);
    assert_eq!(m.call_id(), Some("sub-0c9d@192.0.2.10"));
    assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bK.sub-77"));
    assert_eq!(m.from().unwrap().tag(), Some("sub-a1"));
    assert_eq!(
        m.to().unwrap().uri().host(),
        "mcptt-server.mcptt.example.com"
    );
    let ev = m.event().unwrap().unwrap();
    assert_eq!(
        (ev.package(), ev.id()),
        ("mcptt-service-state", Some("ss1"))
    );
    assert_eq!(
        m.headers().get("Event"),
        Some("mcptt-service-state;id=ss1"),
        "long name finds `o:`"
    );
    assert_eq!(
        m.contacts().unwrap()[0].uri().unwrap().transport(),
        Some("tls")
    );
    assert_eq!(
        m.headers().get("Accept"),
        Some("application/vnd.mcptt-service-state+json")
    );
    let ct = m.content_type().unwrap().unwrap();
    assert_eq!(ct.subtype(), "vnd.3gpp.mcptt-info+xml");
    assert_eq!(m.body().len(), 566);
}

#[test]
fn notify_with_service_state() {
    let (_, m) = load("notify.sip");
    let r = request(&m);
    assert_eq!(*r.method(), Method::Notify);
    assert_eq!(r.uri().transport(), Some("tls"));
    let vias = m.via().unwrap();
    assert_eq!(vias.len(), 2);
    assert_eq!(vias[1].received(), Some("192.0.2.1"));
    let ev = m.event().unwrap().unwrap();
    assert_eq!(
        (ev.package(), ev.id()),
        ("mcptt-service-state", Some("ss1"))
    );
    let ss = m.headers().subscription_state().unwrap().unwrap();
    assert_eq!(ss.state(), "active");
    assert_eq!(ss.expires(), Some(3599));
    assert_eq!(ss.reason(), None);
    let events = m.allow_events().unwrap();
    assert_eq!(events, ["poc-settings", "mcptt-service-state", "reg"]);
    assert_eq!(m.max_forwards().unwrap(), Some(69));
    assert!(
        m.body()
            .starts_with(b"{\"mcptt_id\":\"sip:alice@mcptt.example.com\"")
    );
}

#[test]
fn publish_answers() {
    let (_, ok) = load("publish-200.sip");
    assert_eq!(ok.headers().sip_etag().unwrap(), Some("dx200xyz"));
    let via = ok.top_via().unwrap();
    assert_eq!(via.received(), Some("[2001:db8::10]"));
    assert_eq!(via.rport(), Some(Some(50626)));
    let (_, forbidden) = load("publish-403.sip");
    assert_eq!(response(&forbidden).status(), 403);
    let w = forbidden.headers().warning().unwrap();
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].code, 399);
    assert_eq!(w[0].agent, "mcptt-server.mcptt.example.com");
    assert_eq!(w[0].text, "101 service authorisation failed");
}

#[test]
fn response_from_request_copies_the_dialog_headers() {
    let (_, m) = load("register.sip");
    let req = request(&m);
    let resp = Response::builder_for(req, 200)
        .to_tag("reg-1")
        .build()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = Message::Response(resp);
    assert_eq!(resp.headers().get("Via"), m.headers().get("Via"));
    assert_eq!(resp.from().unwrap(), m.from().unwrap());
    assert_eq!(resp.to().unwrap().tag(), Some("reg-1"));
    assert_eq!(resp.to().unwrap().uri(), m.to().unwrap().uri());
    assert_eq!(resp.call_id(), Some(CALL_ID));
    assert_eq!(resp.cseq().unwrap(), m.cseq().unwrap());
    // RFC 3261 §8.2.6: not copied.
    assert!(resp.headers().get("Contact").is_none());
    assert!(resp.headers().get("Max-Forwards").is_none());
    let again = Message::parse(resp.encode()).unwrap();
    assert_eq!(again, resp);
    again.validate().unwrap();
}

#[test]
fn built_third_party_register_round_trips() {
    let (ue_bytes, _) = load("register.sip");
    let built = Request::builder(
        Method::Register,
        Uri::parse("sip:mcptt-server.mcptt.example.com").unwrap(),
    )
    .header("Via", "SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK3pr-0001")
    .header("Max-Forwards", 70)
    .header("From", "<sip:sip-core.mcptt.example.com>;tag=3pr-77ab")
    .header("To", "<sip:alice@mcptt.example.com>")
    .header("Call-ID", "3pr-9f1c2b7e@sip-core.mcptt.example.com")
    .header("CSeq", "1 REGISTER")
    .header(
        "Contact",
        "<sip:sip-core.mcptt.example.com:5060;transport=tcp>",
    )
    .header("Expires", 600_000)
    .body("message/sip", ue_bytes)
    .build()
    .unwrap();
    let built = Message::Request(built);
    // Same header order and values as the hand-written file: the same bytes.
    let (file_bytes, file) = load("register-third-party.sip");
    assert_eq!(built.encode(), file_bytes);
    assert_eq!(Message::parse(built.encode()).unwrap(), file);
}

#[test]
fn edited_message_round_trips() {
    let (_, mut m) = load("register.sip");
    m.headers_mut().replace("Expires", "0").unwrap();
    m.headers_mut()
        .push("P-Preferred-Identity", "<sip:alice@mcptt.example.com>")
        .unwrap();
    assert_eq!(m.headers_mut().remove("Supported"), 1);
    let enc = m.encode();
    let again = Message::parse(enc.clone()).unwrap();
    assert_eq!(again, m);
    assert_eq!(again.expires().unwrap(), Some(0));
    assert!(again.headers().get("Supported").is_none());
    assert_eq!(
        again.headers().get("P-Preferred-Identity"),
        Some("<sip:alice@mcptt.example.com>")
    );
    // Untouched headers keep their bytes.
    let text = std::str::from_utf8(&enc).unwrap();
    assert!(
        text.contains("\r\nContact: <sip:alice@192.0.2.10:50626;transport=tls;ob>;+sip.instance=")
    );
    again.validate().unwrap();
}

#[test]
fn built_publish_with_multipart_body_matches_the_file() {
    let (file_bytes, file) = load("publish.sip");
    let ct = file.content_type().unwrap().unwrap();
    let parsed = mcptt_sip::body::Multipart::parse(&ct, file.body()).unwrap();
    // Build the body again from the two XML documents.
    let mut mp = mcptt_sip::body::Multipart::new("mcptt-boundary-7f3a").unwrap();
    mp.push(
        mcptt_sip::body::Part::new(
            "application/vnd.3gpp.mcptt-info+xml",
            parsed.parts[0].body.clone(),
        )
        .unwrap(),
    );
    mp.push(
        mcptt_sip::body::Part::new("application/poc-settings+xml", parsed.parts[1].body.clone())
            .unwrap(),
    );
    assert_eq!(mp.encode(), file.body());
    assert_eq!(
        mp.content_type(),
        "multipart/mixed;boundary=\"mcptt-boundary-7f3a\""
    );
    let built = Request::builder(
        Method::Publish,
        Uri::parse("sip:mcptt-server.mcptt.example.com").unwrap(),
    )
    .header(
        "Via",
        "SIP/2.0/TLS 192.0.2.10:50626;branch=z9hG4bK.pub-1e2d3c;rport",
    )
    .header("Max-Forwards", 70)
    .header("From", "<sip:alice@mcptt.example.com>;tag=pub-41c2")
    .header("To", "<sip:alice@mcptt.example.com>")
    .header("Call-ID", "pub-5b1e8a3f@192.0.2.10")
    .header("CSeq", "1 PUBLISH")
    .header("P-Preferred-Identity", "<sip:alice@mcptt.example.com>")
    .header(
        "P-Preferred-Service",
        "urn:urn-7:3gpp-service.ims.icsi.mcptt",
    )
    .header("Accept-Contact", "*;+g.3gpp.mcptt;require;explicit")
    .header("Event", "poc-settings")
    .header("Expires", 3600)
    .body(&mp.content_type(), mp.encode())
    .build()
    .unwrap();
    let built = Message::Request(built);
    assert_eq!(built.encode(), file_bytes);
    assert_eq!(Message::parse(built.encode()).unwrap(), file);
}
