//! Crate-level unit tests: framing, bodies, builders, edits, typed headers, and property tests.

use bytes::Bytes;
use proptest::prelude::*;

use crate::*;

const REGISTER: &str = "REGISTER sip:mcptt.example.com SIP/2.0\r\n\
Via: SIP/2.0/TLS [2001:db8::1]:5061;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
From: \"Alice\" <sip:alice@mcptt.example.com>;tag=1928301774\r\n\
To: \"Alice\" <sip:alice@mcptt.example.com>\r\n\
Call-ID: a84b4c76e66710@ue.example.com\r\n\
CSeq: 1 REGISTER\r\n\
Contact: <sip:alice@[2001:db8::1]:5061;transport=tls;ob>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000a95a0e128>\";+g.3gpp.mcptt;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.mcptt\";reg-id=1;expires=600000\r\n\
Expires: 600000\r\n\
Supported: path, outbound, gruu\r\n\
P-Preferred-Identity: <sip:alice@mcptt.example.com>\r\n\
Content-Length: 0\r\n\r\n";

fn register() -> Request {
    Request::parse(Bytes::from_static(REGISTER.as_bytes())).unwrap()
}

// ---- framing -------------------------------------------------------------------------------

#[test]
fn framer_any_chunking_gives_the_same_messages() {
    let mut stream = b"\r\n\r\n".to_vec();
    stream.extend_from_slice(REGISTER.as_bytes());
    stream.extend_from_slice(b"\r\n");
    let with_body = Request::builder(Method::Message, Uri::parse("sip:b@example.com").unwrap())
        .header("Call-ID", "x")
        .body("text/plain", "hello\r\n\r\nworld")
        .build()
        .unwrap();
    stream.extend_from_slice(&with_body.encode());
    stream.extend_from_slice(REGISTER.as_bytes());
    for size in [1, 2, 3, 7, 64, 500, 4096] {
        let mut f = Framer::new(Limits::default());
        let mut got = Vec::new();
        for c in stream.chunks(size) {
            f.push(c);
            while let Some(m) = f.next_message().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got.len(), 3, "chunk size {size}");
        assert_eq!(got[0].encode(), REGISTER.as_bytes());
        assert_eq!(got[1].body(), "hello\r\n\r\nworld");
        assert_eq!(got[2], got[0]);
        assert_eq!(f.buffered(), 0);
    }
}

/// What the Framer owes on `stream`: frame() then parse_with() message by message, up to the
/// first error (the two-pass definition the single-pass path must match).
fn two_pass(stream: &[u8], limits: &Limits) -> (Vec<Message>, Option<Error>) {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        pos += keepalive_len(&stream[pos..]);
        if pos >= stream.len() {
            return (out, None);
        }
        match frame(&stream[pos..], limits) {
            Ok(Status::Complete(n)) => {
                let bytes = Bytes::copy_from_slice(&stream[pos..pos + n]);
                match Message::parse_with(bytes, limits) {
                    Ok(m) => out.push(m),
                    Err(e) => return (out, Some(e)),
                }
                pos += n;
            }
            Ok(Status::Partial) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
}

#[test]
fn framer_single_pass_decides_as_frame_then_parse() {
    let ok = REGISTER.as_bytes();
    let faulty: [&[u8]; 8] = [
        // header error after a complete head, body still to come
        b"MESSAGE sip:a@b SIP/2.0\r\nBad Name: x\r\nContent-Length: 4\r\n\r\nabcd",
        // two different Content-Length values
        b"MESSAGE sip:a@b SIP/2.0\r\nl: 4\r\nContent-Length: 5\r\n\r\nabcde",
        // two equal ones
        b"MESSAGE sip:a@b SIP/2.0\r\nl: 4\r\nContent-Length: 4\r\n\r\nabcd",
        // no Content-Length
        b"MESSAGE sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n",
        // folded Content-Length
        b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 1\r\n 0\r\n\r\nx",
        // Request-URI error (found only when the message is built)
        b"MESSAGE sip:a@b?x=y SIP/2.0\r\nContent-Length: 0\r\n\r\n",
        // LF-only line ends
        b"MESSAGE sip:a@b SIP/2.0\nContent-Length: 2\n\nhi",
        // body above the limit
        b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 99999999\r\n\r\n",
    ];
    let limits = Limits {
        max_body_size: 1000,
        ..Limits::default()
    };
    for bad in faulty {
        let mut stream = ok.to_vec();
        stream.extend_from_slice(b"\r\n\r\n");
        stream.extend_from_slice(bad);
        stream.extend_from_slice(ok);
        let (want, want_err) = two_pass(&stream, &limits);
        for size in [1, 5, 64, 700, 1400, stream.len()] {
            let mut f = Framer::new(limits.clone());
            let mut got = Vec::new();
            let mut err = None;
            'feed: for c in stream.chunks(size) {
                f.push(c);
                loop {
                    match f.next_message() {
                        Ok(Some(m)) => got.push(m),
                        Ok(None) => break,
                        Err(e) => {
                            err = Some(e);
                            break 'feed;
                        }
                    }
                }
            }
            let what = String::from_utf8_lossy(bad);
            assert_eq!(got, want, "{what:?} in chunks of {size}");
            assert_eq!(err, want_err, "{what:?} in chunks of {size}");
        }
    }
}

#[test]
fn frame_requires_content_length_and_checks_limits_early() {
    let lim = Limits::default();
    assert_eq!(
        frame(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n", &lim).unwrap(),
        Status::Partial
    );
    assert_eq!(
        frame(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n", &lim).unwrap_err(),
        Error::MissingContentLength
    );
    assert_eq!(
        frame(b"OPTIONS sip:a@b SIP/2.0\r\nl: 3\r\n\r\nabcEXTRA", &lim).unwrap(),
        Status::Complete(36)
    );
    assert_eq!(
        frame(
            b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 3\r\nl: 4\r\n\r\n",
            &lim
        )
        .unwrap_err(),
        Error::ContentLengthMismatch
    );
    // The body limit fails as soon as the header section is complete, before the body arrives.
    let small = Limits {
        max_body_size: 10,
        ..Limits::default()
    };
    let e = frame(
        b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 11\r\n\r\n",
        &small,
    )
    .unwrap_err();
    assert_eq!(
        e,
        Error::BodyTooLarge {
            size: 11,
            limit: 10
        }
    );
    assert_eq!(e.status_code(), Some(413));
    // An unterminated header section fails once it passes the head limit.
    let small = Limits {
        max_head_size: 64,
        ..Limits::default()
    };
    let long = format!("OPTIONS sip:a@b SIP/2.0\r\n{}", "X-A: b\r\n".repeat(10));
    assert!(matches!(
        frame(long.as_bytes(), &small),
        Err(Error::HeadTooLarge { .. })
    ));
    let small = Limits {
        max_line_length: 30,
        ..Limits::default()
    };
    let long = format!("OPTIONS sip:a@b SIP/2.0\r\nX-A: {}", "b".repeat(40));
    assert!(matches!(
        frame(long.as_bytes(), &small),
        Err(Error::LineTooLong { .. })
    ));
}

#[test]
fn frame_resume_scans_each_line_once_and_equals_frame() {
    let lim = Limits::default();
    // Content-Length spellings the framing scan must see (case, compact form, spaces).
    for head in [
        "OPTIONS sip:a@b SIP/2.0\r\ncontent-LENGTH : 3\r\n\r\nabc",
        "OPTIONS sip:a@b SIP/2.0\r\nL\t: 3\r\nContent-Lengthy: 9\r\nLx: 9\r\n\r\nabc",
        "OPTIONS sip:a@b SIP/2.0\nl:3\n\nabc",
        "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 3\r\nl: 4\r\n\r\nabc",
        "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: x3\r\n\r\nabc",
        REGISTER,
    ] {
        let b = head.as_bytes();
        let mut scan = FrameScan::default();
        for end in 1..=b.len() {
            let got = frame_resume(&b[..end], &lim, &mut scan);
            assert_eq!(got, frame(&b[..end], &lim), "{head:?} at {end}");
            if got.is_err() {
                break;
            }
        }
    }
    assert_eq!(
        frame(
            b"OPTIONS sip:a@b SIP/2.0\r\ncontent-LENGTH : 3\r\n\r\nabc",
            &lim
        ),
        Ok(Status::Complete(50))
    );
    // A buffer shorter than what the scan saw (a caller bug) is framed from its start.
    let mut scan = FrameScan::default();
    let b = REGISTER.as_bytes();
    assert_eq!(
        frame_resume(b, &lim, &mut scan),
        Ok(Status::Complete(b.len()))
    );
    assert_eq!(frame_resume(&b[..20], &lim, &mut scan), Ok(Status::Partial));
    scan.reset();
    assert_eq!(scan, FrameScan::default());
}

#[test]
fn framer_refuses_to_buffer_past_the_message_limit() {
    let lim = Limits {
        max_message_size: 100,
        ..Limits::default()
    };
    let mut f = Framer::new(lim);
    f.push(b"OPTIONS sip:a@b SIP/2.0\r\nX-Long: ");
    f.push(&[b'a'; 200]);
    assert_eq!(f.buffered(), 0);
    assert!(matches!(
        f.next_message(),
        Err(Error::MessageTooLarge { .. })
    ));
    // sticky
    assert!(f.next_message().is_err());
}

// ---- limits --------------------------------------------------------------------------------

#[test]
fn each_limit_has_its_own_error() {
    let buf = Bytes::from_static(REGISTER.as_bytes());
    let d = Limits::default;
    type Case = (Limits, fn(&Error) -> bool);
    let cases: [Case; 5] = [
        (
            Limits {
                max_message_size: 100,
                ..d()
            },
            |e| matches!(e, Error::MessageTooLarge { .. }),
        ),
        (
            Limits {
                max_head_size: 100,
                ..d()
            },
            |e| matches!(e, Error::HeadTooLarge { .. }),
        ),
        (
            Limits {
                max_headers: 3,
                ..d()
            },
            |e| matches!(e, Error::TooManyHeaders { .. }),
        ),
        (
            Limits {
                max_line_length: 100,
                ..d()
            },
            |e| matches!(e, Error::LineTooLong { .. }),
        ),
        (
            Limits {
                max_uri_length: 5,
                ..d()
            },
            |e| matches!(e, Error::UriTooLong { .. }),
        ),
    ];
    for (lim, is) in cases {
        let e = Message::parse_with(buf.clone(), &lim).unwrap_err();
        assert!(is(&e), "{lim:?}: {e}");
        assert!(e.is_limit());
    }
    let body = Bytes::from_static(b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 5\r\n\r\nhello");
    let e = Message::parse_with(
        body,
        &Limits {
            max_body_size: 4,
            ..d()
        },
    )
    .unwrap_err();
    assert_eq!(e, Error::BodyTooLarge { size: 5, limit: 4 });
}

// ---- parse details -------------------------------------------------------------------------

#[test]
fn errors_carry_offset_expectation_and_status() {
    let e = Message::parse(Bytes::from_static(b"OPTIONS  sip:a@b SIP/2.0\r\n\r\n")).unwrap_err();
    assert_eq!(e.offset(), Some(8));
    assert_eq!(e.expected(), Some("a Request-URI"));
    assert_eq!(e.status_code(), Some(400));
    let e = Message::parse(Bytes::from_static(b"OPTIONS sip:a@b SIP/3.0\r\n\r\n")).unwrap_err();
    assert_eq!(e.status_code(), Some(505));
    let e = Message::parse(Bytes::from_static(b"SIP/2.0 2000 OK\r\n\r\n")).unwrap_err();
    assert!(matches!(e, Error::StartLine { offset: 11, .. }), "{e}");
    let e = Message::parse(Bytes::from_static(b"SIP/2.0 20 OK\r\n\r\n")).unwrap_err();
    assert!(matches!(e, Error::StartLine { offset: 8, .. }), "{e}");
    let e = Message::parse(Bytes::from_static(
        b"OPTIONS sip:a@b SIP/2.0\r\nVia x\r\n\r\n",
    ))
    .unwrap_err();
    assert!(
        matches!(&e, Error::Header { name, offset: 29, .. } if name == "Via"),
        "{e}"
    );
}

#[test]
fn compact_and_long_names_are_the_same_header() {
    let m = Message::parse(Bytes::from_static(
        b"OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/TCP a;branch=z9hG4bK1\r\nVIA: SIP/2.0/TCP b;branch=z9hG4bK2\r\ni: cid\r\nX-Unknown: 1\r\nx-unknown: 2\r\n\r\n",
    ))
    .unwrap();
    assert_eq!(m.headers().count("Via"), 2);
    assert_eq!(m.headers().count("v"), 2);
    assert_eq!(m.call_id(), Some("cid"));
    assert_eq!(
        m.headers().get_all("X-UNKNOWN").collect::<Vec<_>>(),
        ["1", "2"]
    );
    assert_eq!(m.via().unwrap().len(), 2);
    let names: Vec<_> = m.headers().iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["v", "VIA", "i", "X-Unknown", "x-unknown"]);
}

#[test]
fn folded_lines_read_as_white_space() {
    let m = Message::parse(Bytes::from_static(
        b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 7\r\n  OPTIONS\r\nVia: SIP/2.0/UDP h\r\n\t;branch=z9hG4bK1\r\n\r\n",
    ))
    .unwrap();
    assert_eq!(
        m.cseq().unwrap(),
        CSeq {
            seq: 7,
            method: Method::Options
        }
    );
    assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bK1"));
    m.validate().unwrap();
}

// ---- typed headers -------------------------------------------------------------------------

#[test]
fn mcptt_register_types() {
    let r = register();
    r.validate().unwrap();
    let via = r.top_via().unwrap();
    assert_eq!(via.host(), "[2001:db8::1]");
    assert!(via.has_rport());
    assert!(via.is_rfc3261_branch());
    assert_eq!(r.from().unwrap().display_name().as_deref(), Some("Alice"));
    assert_eq!(r.from().unwrap().tag(), Some("1928301774"));
    assert_eq!(r.to().unwrap().tag(), None);
    let c = &r.contacts().unwrap()[0];
    assert_eq!(c.uri().unwrap().transport(), Some("tls"));
    assert!(c.uri().unwrap().has_param("ob"));
    assert_eq!(
        c.sip_instance().as_deref(),
        Some("<urn:uuid:00000000-0000-1000-8000-000a95a0e128>")
    );
    assert_eq!(c.feature_tag("+g.3gpp.mcptt").as_deref(), Some(""));
    assert_eq!(
        c.icsi_ref().as_deref(),
        Some("urn:urn-7:3gpp-service.ims.icsi.mcptt")
    );
    assert_eq!((c.reg_id(), c.expires()), (Some(1), Some(600_000)));
    assert_eq!(r.expires().unwrap(), Some(600_000));
    assert_eq!(r.supported().unwrap(), ["path", "outbound", "gruu"]);
    assert_eq!(
        r.p_preferred_identity().unwrap()[0].uri().user(),
        Some("alice")
    );
    assert_eq!(r.max_forwards().unwrap(), Some(70));
}

#[test]
fn via_received_ipv6_with_and_without_brackets() {
    let a = Via::parse("SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bK1")
        .unwrap();
    let b = Via::parse(
        "SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;rport=5060;branch=z9hG4bK1",
    )
    .unwrap();
    assert_eq!(a.received_ip(), b.received_ip());
    assert_eq!(a.received(), Some("[2001:db8::9:255]"));
    assert_eq!(b.rport(), Some(Some(5060)));
    assert_eq!(a.rport(), None);
    assert!(Via::parse("SIP/2.0/UDP h;received=not-an-ip").is_err());
    assert!(Via::parse("SIP/2.0/UDP h;;branch=z9hG4bK1").is_err());
    assert!(Via::parse("SIP/2.0/UDP [2001:db8:::1]").is_err());
}

#[test]
fn contact_forms() {
    let m = Message::parse(Bytes::from_static(
        b"REGISTER sip:r SIP/2.0\r\nContact: *\r\nExpires: 0\r\n\r\n",
    ))
    .unwrap();
    assert_eq!(m.contacts().unwrap(), [Contact::Star]);
    let m = Message::parse(Bytes::from_static(
        b"REGISTER sip:r SIP/2.0\r\nm: \"A, B\" <sip:a@h;p=1>;q=0.7, sip:b@h;expires=30\r\n\r\n",
    ))
    .unwrap();
    let cs = m.contacts().unwrap();
    assert_eq!(cs.len(), 2);
    assert_eq!(cs[0].display_name().as_deref(), Some("A, B"));
    assert_eq!(cs[0].q_millis(), Some(700));
    assert_eq!(cs[0].uri().unwrap().param("p"), Some("1"));
    assert_eq!(cs[1].expires(), Some(30));
    // addr-spec form: the parameter belongs to the header, not to the URI (RFC 4475 cparam01)
    assert!(!cs[1].uri().unwrap().has_param("expires"));
    assert!(Contact::parse("<sip:a@h>;q=2").is_err());
    assert!(Contact::parse("<sip:a@h>;expires=4294967296").is_err());
}

#[test]
fn event_state_etag_warning_date_and_friends() {
    let m = Message::parse(Bytes::from_static(
        b"NOTIFY sip:ue@h SIP/2.0\r\n\
o: mcptt-service-state;id=7\r\n\
u: presence, reg\r\n\
Subscription-State: terminated;reason=timeout;retry-after=30\r\n\
SIP-ETag: dx200xyz\r\n\
SIP-If-Match: abc.1\r\n\
Min-Expires: 60\r\n\
Warning: 399 mcptt.example.com \"101 service authorisation failed\", 301 [2001:db8::1]:5061 \"x\"\r\n\
Date: Sat, 13 Nov 2010 23:29:00 GMT\r\n\
Require: pref\r\n\
P-Asserted-Identity: \"Alice\" <sip:alice@h>, <tel:+4930123>\r\n\
P-Preferred-Service: urn:urn-7:3gpp-service.ims.icsi.mcptt\r\n\
a: *;+g.3gpp.mcptt;require;explicit\r\n\
Route: <sip:p1;lr>, <sip:p2;lr>\r\n\
Record-Route: <sip:rr;lr>\r\n\
Path: <sip:path@p;lr>\r\n\
Service-Route: <sip:orig@scscf;lr>\r\n\
c: multipart/mixed;boundary=\"b 1\"\r\n\
Content-Length: 0\r\n\r\n",
    ))
    .unwrap();
    m.validate().unwrap();
    let h = m.headers();
    let ev = m.event().unwrap().unwrap();
    assert_eq!((ev.package(), ev.id()), ("mcptt-service-state", Some("7")));
    assert_eq!(h.allow_events().unwrap(), ["presence", "reg"]);
    let ss = h.subscription_state().unwrap().unwrap();
    assert_eq!(
        (ss.state(), ss.reason(), ss.retry_after()),
        ("terminated", Some("timeout"), Some(30))
    );
    assert_eq!(h.sip_etag().unwrap(), Some("dx200xyz"));
    assert_eq!(h.sip_if_match().unwrap(), Some("abc.1"));
    assert_eq!(h.min_expires().unwrap(), Some(60));
    let w = h.warning().unwrap();
    assert_eq!(
        (w[0].code, w[0].agent.as_str(), w[0].text.as_str()),
        (399, "mcptt.example.com", "101 service authorisation failed")
    );
    assert_eq!(w[1].agent, "[2001:db8::1]:5061");
    let d = h.date().unwrap().unwrap();
    assert_eq!(d.to_string(), "Sat, 13 Nov 2010 23:29:00 GMT");
    assert_eq!(Date::from_unix_time(d.unix_time()), d);
    assert_eq!(h.require().unwrap(), ["pref"]);
    let pai = h.p_asserted_identity().unwrap();
    assert_eq!(pai[1].uri().scheme(), Scheme::Tel);
    assert_eq!(pai[1].uri().user(), Some("+4930123"));
    assert_eq!(
        h.p_preferred_service().unwrap(),
        ["urn:urn-7:3gpp-service.ims.icsi.mcptt"]
    );
    let ac = &h.accept_contact().unwrap()[0];
    assert!(ac.require() && ac.explicit() && ac.feature_tag("+g.3gpp.mcptt").is_some());
    assert_eq!(h.route().unwrap().len(), 2);
    assert_eq!(h.record_route().unwrap()[0].uri().host(), "rr");
    assert_eq!(h.path().unwrap()[0].uri().user(), Some("path"));
    assert_eq!(h.service_route().unwrap()[0].uri().user(), Some("orig"));
    let ct = m.content_type().unwrap().unwrap();
    assert!(ct.is("Multipart", "MIXED"));
    assert_eq!(ct.boundary().as_deref(), Some("b 1"));
    assert!(Date::parse("Fri, 01 Jan 2010 16:00:00 EST").is_err());
    assert!(Warning::parse("1812 overture \"In Progress\"").is_err());
}

// ---- builders and edits --------------------------------------------------------------------

#[test]
fn response_from_request_copies_the_rfc3261_headers() {
    let req = register();
    let resp = Response::from_request(&req, 200);
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.reason(), "OK");
    let names: Vec<_> = resp.headers().iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["Via", "From", "To", "Call-ID", "CSeq", "Content-Length"]
    );
    assert_eq!(resp.top_via().unwrap(), req.top_via().unwrap());
    assert_eq!(resp.cseq().unwrap(), req.cseq().unwrap());
    assert_eq!(Response::parse(resp.encode()).unwrap(), resp);
    let ok = Response::builder_for(&req, 200)
        .to_tag("xyz")
        .header("Expires", 600)
        .build()
        .unwrap();
    assert_eq!(ok.to().unwrap().tag(), Some("xyz"));
    assert_eq!(ok.from().unwrap(), req.from().unwrap());
    assert_eq!(ok.expires().unwrap(), Some(600));
    assert_eq!(ok.headers().get("Content-Length"), Some("0"));
    assert!(Response::builder(99).build().is_err());
    assert!(Response::builder(200).reason("a\r\nb").build().is_err());
}

#[test]
fn a_value_with_cr_or_lf_anywhere_is_refused_by_builders_and_edits() {
    for at in [0, 1, 7, 15, 16, 31, 32, 33, 63, 64, 100] {
        for bad in ['\r', '\n'] {
            let mut v = "x".repeat(at);
            v.push(bad);
            v.push_str("Injected: 1");
            assert!(
                Response::builder(200).header("X-A", &v).build().is_err(),
                "{at} {bad:?}"
            );
            let mut h = Headers::new();
            assert!(h.push("X-A", &v).is_err(), "{at} {bad:?}");
            assert!(
                h.apply(&[HeaderEdit::Push("X-A", &v)]).is_err(),
                "{at} {bad:?}"
            );
            assert!(h.is_empty());
            // without it, the same value is written
            v.retain(|c| c != bad);
            let r = Response::builder(200).header("X-A", &v).build().unwrap();
            assert_eq!(r.headers().get("X-A"), Some(v.as_str()));
            h.apply(&[HeaderEdit::Push("X-A", &v)]).unwrap();
            assert_eq!(h.get("x-a"), Some(v.as_str()));
        }
    }
}

#[test]
fn request_builder_and_body() {
    let r = Request::builder(
        Method::Publish,
        Uri::parse("sip:mcptt-server@example.com").unwrap(),
    )
    .header("Via", "SIP/2.0/TLS ue;branch=z9hG4bK9")
    .header("Event", "poc-settings")
    .header("Content-Length", 999)
    .body("application/vnd.3gpp.mcptt-info+xml", "<mcpttinfo/>")
    .build()
    .unwrap();
    assert_eq!(r.method(), &Method::Publish);
    assert_eq!(r.body(), "<mcpttinfo/>");
    assert_eq!(
        r.headers().get_all("Content-Length").collect::<Vec<_>>(),
        ["12"]
    );
    assert_eq!(
        r.content_type().unwrap().unwrap().mime_type(),
        "application/vnd.3gpp.mcptt-info+xml"
    );
    assert_eq!(Request::parse(r.encode()).unwrap(), r);
    assert!(
        Request::builder(Method::Bye, Uri::parse("sip:a@b").unwrap())
            .header("Bad Name", 1)
            .build()
            .is_err()
    );
}

#[test]
fn edits_keep_untouched_lines_byte_for_byte() {
    let mut r = register();
    r.headers_mut()
        .push_front("Via", "SIP/2.0/TLS proxy.example.com;branch=z9hG4bKp1")
        .unwrap();
    r.headers_mut().replace("Max-Forwards", "69").unwrap();
    assert_eq!(r.headers_mut().remove("P-Preferred-Identity"), 1);
    r.headers_mut()
        .push("P-Asserted-Identity", "<sip:alice@mcptt.example.com>")
        .unwrap();
    let wire = r.encode();
    let text = std::str::from_utf8(&wire).unwrap();
    assert!(text.starts_with("REGISTER sip:mcptt.example.com SIP/2.0\r\nVia: SIP/2.0/TLS proxy.example.com;branch=z9hG4bKp1\r\nVia: SIP/2.0/TLS [2001:db8::1]:5061;branch=z9hG4bK776asdhds;rport\r\nMax-Forwards: 69\r\n"));
    assert!(!text.contains("P-Preferred-Identity"));
    assert!(text.ends_with("P-Asserted-Identity: <sip:alice@mcptt.example.com>\r\n\r\n"));
    let again = Request::parse(wire).unwrap();
    assert_eq!(again, r);
    assert_eq!(again.via().unwrap().len(), 2);
    r.set_body(Some("text/plain"), Bytes::from_static(b"hi"))
        .unwrap();
    let again = Request::parse(r.encode()).unwrap();
    assert_eq!(again.body(), "hi");
    assert_eq!(again.headers().content_length().unwrap(), Some(2));
    assert_eq!(again, r);
}

// ---- bodies --------------------------------------------------------------------------------

#[test]
fn multipart_split_and_build() {
    let mut mp = Multipart::new("boundary1").unwrap();
    mp.push(Part::new("application/vnd.3gpp.mcptt-info+xml", "<mcpttinfo/>").unwrap());
    mp.push(
        Part::new(
            "application/poc-settings+xml",
            Bytes::from_static(b"\x00\xff binary\r\n--not-a-boundary"),
        )
        .unwrap(),
    );
    let body = mp.encode();
    let ct = ContentType::parse(&mp.content_type()).unwrap();
    let back = Multipart::parse(&ct, body.clone()).unwrap();
    assert_eq!(back, mp);
    assert_eq!(
        back.parts[1].content_type().unwrap().unwrap().mime_type(),
        "application/poc-settings+xml"
    );
    // inside a PUBLISH
    let publish = Request::builder(Method::Publish, Uri::parse("sip:s@h").unwrap())
        .body(&mp.content_type(), body)
        .build()
        .unwrap();
    let publish = Request::parse(publish.encode()).unwrap();
    let ct = publish.content_type().unwrap().unwrap();
    assert_eq!(
        Multipart::parse(&ct, publish.body()).unwrap().parts.len(),
        2
    );
    assert!(
        Multipart::parse_with_boundary("zz", Bytes::from_static(b"--zz\r\n\r\nno close")).is_err()
    );
}

#[test]
fn multipart_delimiters_only_at_line_starts() {
    // "--zz" inside a line, a line starting "-" or "--z", a preamble and an epilogue
    let body = Bytes::from_static(
        b"pre --zz\r\n--zz \t\r\nA: 1\r\n\r\nx --zz y\r\n-\r\n--z\r\n\n--zz\nB: 2\n\nsecond\r\n--zz--\r\nepilogue --zz\r\n",
    );
    let mp = Multipart::parse_with_boundary("zz", body).unwrap();
    assert_eq!(mp.parts.len(), 2);
    assert_eq!(&mp.parts[0].body[..], b"x --zz y\r\n-\r\n--z\r\n");
    assert_eq!(mp.parts[0].headers.get("a"), Some("1"));
    assert_eq!(&mp.parts[1].body[..], b"second");
    assert_eq!(mp.parts[1].headers.get("b"), Some("2"));
    for bad in [
        &b"x--zz\r\n\r\n-- zz--"[..],
        b"--zzX\r\n\r\n--zz--",
        b"--zz\r\n\r\n--z",
    ] {
        assert!(
            Multipart::parse_with_boundary("zz", Bytes::copy_from_slice(bad)).is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn rfc4475_mpart01_splits() {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/sip/rfc4475/mpart01.dat"
    );
    let m = Message::parse(Bytes::from(std::fs::read(p).unwrap())).unwrap();
    let ct = m.content_type().unwrap().unwrap();
    let mp = Multipart::parse(&ct, m.body()).unwrap();
    assert_eq!(mp.parts.len(), 2);
    assert_eq!(mp.parts[0].body, "Hello");
    let ct1 = mp.parts[1].content_type().unwrap().unwrap();
    assert!(ct1.is("application", "octet-stream"));
    assert!(mp.parts[1].body.len() > 300);
}

#[test]
fn message_sip_body_round_trip() {
    let inner = Message::Request(register());
    let outer = Request::builder(
        Method::Register,
        Uri::parse("sip:mcptt-server.example.com").unwrap(),
    )
    .header("To", "<sip:alice@mcptt.example.com>")
    .header("Expires", 600_000)
    .body(
        body::message_sip::CONTENT_TYPE,
        body::message_sip::build(&inner),
    )
    .build()
    .unwrap();
    let outer = Request::parse(outer.encode()).unwrap();
    let carried = body::message_sip::parse(outer.body()).unwrap();
    assert_eq!(carried, inner);
    assert_eq!(carried.encode(), REGISTER.as_bytes());
}

// ---- semantic layer ------------------------------------------------------------------------

#[test]
fn policy_checks() {
    let r = register();
    r.check(&Policy::default()).unwrap();
    let mut bad = r.clone();
    bad.headers_mut().push("Require", "sec-agree, foo").unwrap();
    let e = bad.check(&Policy::default()).unwrap_err();
    assert_eq!(
        (e.status_code(), e.to_string().contains("sec-agree, foo")),
        (Some(420), true)
    );
    let policy = Policy {
        supported: vec!["sec-agree".into(), "foo".into()],
        ..Policy::default()
    };
    bad.check(&policy).unwrap();
    let mut mf = r.clone();
    mf.headers_mut().replace("Max-Forwards", "0").unwrap();
    mf.check(&Policy::default()).unwrap();
    assert_eq!(
        mf.check(&Policy {
            proxy: true,
            ..Policy::default()
        })
        .unwrap_err(),
        Error::TooManyHops
    );
    let mut dup = r.clone();
    dup.headers_mut().push("Call-ID", "other").unwrap();
    assert_eq!(
        dup.check(&Policy::default()).unwrap_err(),
        Error::DuplicateHeader("Call-ID")
    );
    let only_invite = Policy {
        methods: vec![Method::Invite],
        ..Policy::default()
    };
    assert_eq!(r.check(&only_invite).unwrap_err().status_code(), Some(405));
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/sip/rfc4475/sdp01.dat"
    );
    let sdp01 = Request::parse(Bytes::from(std::fs::read(p).unwrap())).unwrap();
    let sdp = Policy {
        produces: vec!["application/sdp".into()],
        ..Policy::default()
    };
    assert_eq!(sdp01.check(&sdp).unwrap_err().status_code(), Some(406));
    let mut any = sdp01;
    any.headers_mut().push("Accept", "application/*").unwrap();
    any.check(&sdp).unwrap();
    let mut miss = r;
    miss.headers_mut().remove("From");
    assert_eq!(
        miss.check(&Policy::default()).unwrap_err(),
        Error::MissingHeader("From")
    );
}

// ---- properties ----------------------------------------------------------------------------

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9.!%*_+`'~-]{0,12}"
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,10}){0,3}",
        (0u8..=255, 0u8..=255, 0u8..=255, 0u8..=255)
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        any::<[u16; 8]>().prop_map(|g| format!("[{}]", std::net::Ipv6Addr::from(g))),
    ]
}

type UriParts = (
    String,
    Option<String>,
    String,
    Option<u16>,
    Vec<(String, Option<String>)>,
);

fn sip_uri() -> impl Strategy<Value = UriParts> {
    (
        prop_oneof![
            Just("sip".to_string()),
            Just("sips".to_string()),
            Just("SIP".to_string())
        ],
        proptest::option::of("([a-zA-Z0-9._~!*'()&=+$,;?/-]|%[0-9A-F]{2}){1,12}"),
        host(),
        proptest::option::of(any::<u16>()),
        proptest::collection::vec(
            (
                "[a-z][a-z0-9-]{0,6}",
                proptest::option::of("[a-zA-Z0-9._~-]{1,8}"),
            ),
            0..4,
        ),
    )
}

proptest! {
    #[test]
    fn uri_round_trips((scheme, user, host, port, params) in sip_uri()) {
        let mut s = format!("{scheme}:");
        if let Some(u) = &user { s.push_str(u); s.push('@'); }
        s.push_str(&host);
        if let Some(p) = port { s.push_str(&format!(":{p}")); }
        for (n, v) in &params {
            s.push(';'); s.push_str(n);
            if let Some(v) = v { s.push('='); s.push_str(v); }
        }
        let u = Uri::parse(&s).unwrap();
        prop_assert_eq!(u.as_str(), s.as_str());
        prop_assert_eq!(u.user(), user.as_deref());
        prop_assert_eq!(u.host(), host.as_str());
        prop_assert_eq!(u.port(), port);
        let got: Vec<_> = u.params().map(|(n, v)| (n.to_string(), v.map(str::to_string))).collect();
        prop_assert_eq!(got, params);
        prop_assert_eq!(Uri::parse(&u.to_string()).unwrap(), u);
    }

    #[test]
    fn generated_messages_round_trip(
        method in token(),
        hdrs in proptest::collection::vec((token(), "[ -~]{0,30}"), 0..12),
        body in proptest::collection::vec(any::<u8>(), 0..64),
        display in "[ -~]{0,10}",
        tag in token(),
    ) {
        let uri = Uri::parse("sip:bob@example.com").unwrap();
        let method = Method::parse(&method).unwrap();
        let from = NameAddr::new(Some(&display), &uri).unwrap();
        let mut b = Request::builder(method, uri).header("From", format!("{from};tag={tag}"));
        for (n, v) in &hdrs {
            // Content-Length/Content-Type are the builder's; other values are free text.
            if n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("l") { continue; }
            b = b.header(n, v);
        }
        let r = b.body("application/octet-stream", body.clone()).build().unwrap();
        let again = Request::parse(r.encode()).unwrap();
        prop_assert_eq!(&again, &r);
        prop_assert_eq!(again.body(), Bytes::from(body));
        let f = again.from().unwrap();
        let dn = f.display_name();
        prop_assert_eq!(dn.as_deref(), Some(display.as_str()));
        prop_assert_eq!(f.tag(), Some(tag.as_str()));
        // byte for byte once parsed
        prop_assert_eq!(again.encode(), r.encode());
    }

    #[test]
    fn mutated_bytes_never_panic(
        idx in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut v = REGISTER.as_bytes().to_vec();
        for (i, b) in idx { let i = i.index(v.len()); v[i] = b; }
        let n = cut.index(v.len() + 1);
        let v = Bytes::from(v[..n].to_vec());
        let _ = frame(&v, &Limits::default());
        if let Ok(m) = Message::parse(v) {
            let _ = m.validate();
            let h = m.headers();
            let _ = (h.via(), h.contacts(), h.from(), h.to(), h.cseq(), h.expires(), h.event());
            let _ = (h.p_asserted_identity(), h.accept_contact(), h.warning(), h.date());
            if let Message::Request(r) = &m { let _ = r.check(&Policy::default()); }
            let _ = Message::parse(m.encode());
        }
    }
}

#[test]
fn validate_checks_the_other_known_headers() {
    let ok = [
        "Authorization: Digest username=\"alice\", realm=\"h\", nonce=\"n\", uri=\"sip:h\", response=\"0a\"",
        "Authorization: NoOneKnowsThisScheme opaque-data=here",
        "Authorization: Bearer eyJhbGciOi.eyJzdWIi.c2ln",
        "WWW-Authenticate: Digest realm=\"h\", nonce=\"x\", algorithm=MD5, qop=\"auth\"",
        "RAck: 776656 1 INVITE",
        "RSeq: 988789",
        "Timestamp: 54.1 0.5",
        "Session-Expires: 4000;refresher=uac",
        "MIME-Version: 1.0",
        "Content-Disposition: session;handling=required",
        "Accept-Encoding: gzip;q=0.5, identity",
        "Supported:",
        "Reason: SIP;cause=200;text=\"Call completed elsewhere\"",
        "P-Associated-URI: <sip:alice@h>, <tel:+1234>",
        "P-Charging-Vector: icid-value=1234bc9876e;icid-generated-at=192.0.6.8;orig-ioi=home1.net",
        "P-Access-Network-Info: 3GPP-UTRAN-TDD; utran-cell-id-3gpp=23456789ABCDE; network-provided",
        "P-Visited-Network-ID: other.net, \"Visited network number 1\"",
        "Call-Info: <http://wwww.example.com/alice/photo.jpg>;purpose=icon",
        "P-Asserted-Service: urn:urn-7:3gpp-service.ims.icsi.mcptt",
        "In-Reply-To: 70710@saturn.bell-tel.com, 17320@saturn.bell-tel.com",
    ];
    for h in ok {
        let m = Message::parse(Bytes::from(format!(
            "OPTIONS sip:a@b SIP/2.0\r\n{h}\r\n\r\n"
        )))
        .unwrap();
        m.validate().unwrap_or_else(|e| panic!("{h}: {e}"));
    }
    let bad = [
        "Authorization: Digest realm=\"x\", nonce=\"y",
        "RAck: 1 x INVITE",
        "RSeq: -1",
        "Timestamp: abc",
        "Session-Expires: soon",
        "MIME-Version: 1",
        "Content-Disposition: ;x",
        "Expires: 4294967296",
        "Call-ID: a b",
        "Event: ;id=1",
        "Subscription-State: active;expires=x",
        "SIP-ETag: \"q\"",
        "Content-Type: text",
        "Route: sip:p1",
        "Max-Forwards: 256",
        "Via: SIP/2.0/UDP",
        "To: <sip:a@b",
        "From: \"unterminated <sip:a@b>",
        "P-Charging-Vector: icid-value=",
        "Call-Info: http://example.com/x",
        "P-Asserted-Service: mcptt",
    ];
    for h in bad {
        let r = Message::parse(Bytes::from(format!(
            "OPTIONS sip:a@b SIP/2.0\r\n{h}\r\n\r\n"
        )))
        .and_then(|m| m.validate());
        let e = r.expect_err(h);
        assert_eq!(e.status_code(), Some(400), "{h}: {e}");
        assert!(
            matches!(e, Error::Header { .. } | Error::Uri { .. }),
            "{h}: {e:?}"
        );
    }
}

#[test]
fn header_text_must_be_utf8() {
    let e = Message::parse(Bytes::from_static(
        b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 9 OPTI\xc3ONS\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n",
    ))
    .unwrap_err();
    assert!(
        matches!(e, Error::Header { offset: 37, expected: "UTF-8 text", ref name } if name == "CSeq"),
        "{e:?}"
    );
    // UTF-8 text and binary bodies are fine
    let mut v = "MESSAGE sip:a@b SIP/2.0\r\nSubject: Grüße\r\nl: 2\r\n\r\n"
        .as_bytes()
        .to_vec();
    v.extend_from_slice(&[0xff, 0x00]);
    let m = Message::parse(Bytes::from(v)).unwrap();
    assert_eq!(m.headers().get("subject"), Some("Grüße"));
    assert_eq!(m.body(), &[0xff, 0x00][..]);
}

#[test]
fn retargeting_rewrites_only_the_request_line() {
    let mut r = register();
    let target = Uri::parse("sip:mcptt-server.example.com;transport=tls").unwrap();
    r.set_uri(target.clone()).unwrap();
    let wire = r.encode();
    assert!(
        wire.starts_with(b"REGISTER sip:mcptt-server.example.com;transport=tls SIP/2.0\r\nVia: ")
    );
    assert!(wire.ends_with(&REGISTER.as_bytes()[REGISTER.find("\r\nVia").unwrap() + 2..]));
    let again = Request::parse(wire).unwrap();
    assert_eq!(again.uri(), &target);
    assert_eq!(again, r);
    assert!(r.set_uri(Uri::parse("sip:a@b?x=y").unwrap()).is_err());
}

#[test]
fn framer_counts_double_crlf_pings_across_chunks() {
    let mut f = Framer::new(Limits::default());
    f.push(b"\r\n\r");
    assert_eq!(f.take_pings(), 0);
    f.push(b"\n");
    assert_eq!(f.take_pings(), 1);
    f.push(b"\r\n"); // a pong from the other side is not a ping
    assert!(f.next_message().unwrap().is_none());
    assert_eq!(f.take_pings(), 0);
    f.push(REGISTER.as_bytes());
    f.push(b"\r\n\r\n\r\n\r\n");
    assert!(f.next_message().unwrap().is_some());
    assert!(f.next_message().unwrap().is_none());
    assert_eq!(f.take_pings(), 2);
    assert_eq!(f.buffered(), 0);
}

#[test]
fn responses_copy_record_route_for_dialogs_and_timestamp_in_100() {
    let sub = Request::parse(Bytes::from_static(
        b"SUBSCRIBE sip:ms@h SIP/2.0\r\nVia: SIP/2.0/TLS p;branch=z9hG4bK1\r\nRecord-Route: <sip:p;lr>\r\nTimestamp: 54\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:ms@h>\r\nCall-ID: c\r\nCSeq: 1 SUBSCRIBE\r\nEvent: mcptt-service-state\r\nContent-Length: 0\r\n\r\n",
    ))
    .unwrap();
    let ok = Response::builder_for(&sub, 200)
        .to_tag("t")
        .build()
        .unwrap();
    assert_eq!(ok.record_route().unwrap().len(), 1);
    assert!(!ok.headers().contains("Timestamp"));
    let trying = Response::from_request(&sub, 100);
    assert!(trying.headers().contains("Timestamp"));
    assert!(!trying.headers().contains("Record-Route"));
    let err = Response::from_request(&sub, 489);
    assert!(!err.headers().contains("Record-Route"));
    let reg = register();
    assert!(
        !Response::from_request(&reg, 200)
            .headers()
            .contains("Record-Route")
    );
}

#[test]
fn framer_resumes_its_scan_on_byte_by_byte_input() {
    // a large head fed one byte at a time frames in linear time and equals the whole parse
    let mut head = String::from("OPTIONS sip:a@b SIP/2.0\r\n");
    for i in 0..300 {
        head.push_str(&format!("X-H{i}: {}\r\n", "v".repeat(30)));
    }
    head.push_str("Content-Length  : 4\r\n\r\nbody");
    let lim = Limits {
        max_head_size: 64 * 1024,
        max_headers: 1000,
        ..Limits::default()
    };
    let mut f = Framer::new(lim.clone());
    let mut got = None;
    for b in head.as_bytes() {
        f.push(std::slice::from_ref(b));
        if let Some(m) = f.next_message().unwrap() {
            got = Some(m);
        }
    }
    let whole = Message::parse_with(Bytes::from(head.clone()), &lim).unwrap();
    assert_eq!(got, Some(whole));
    assert_eq!(
        frame(head.as_bytes(), &lim).unwrap(),
        Status::Complete(head.len())
    );
}

#[test]
fn responses_copy_lines_with_any_spacing_as_name_colon_space_value() {
    // `Name: value` lines are copied as one run; other spacings are rewritten the same way.
    let req = Request::parse(Bytes::from_static(
        b"OPTIONS sip:b@h SIP/2.0\r\nVia:SIP/2.0/TLS p;branch=z9hG4bK1\r\nf :  <sip:a@h>;tag=1\r\nTo: <sip:b@h>  \r\nCall-ID:\t c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
    ))
    .unwrap();
    let mut out = Vec::new();
    Response::encode_head_for(&req, 200, Some("t"), &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS p;branch=z9hG4bK1\r\nf: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=t\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n"
    );
}

#[test]
fn responses_copy_adjacent_lines_as_runs_as_from_request_does() {
    // Copied lines next to each other (and apart), CRLF or bare LF endings, a To tag in the
    // middle of a run, and edited headers (a removed line between two copied ones, a Via
    // pushed in front whose bytes sit at the end of the buffer).
    for eol in ["\r\n", "\n"] {
        let wire = format!(
            "SUBSCRIBE sip:b@h SIP/2.0{eol}Via: SIP/2.0/TLS p;branch=z9hG4bK1{eol}Max-Forwards: 70{eol}\
             From: <sip:a@h>;tag=1{eol}To: <sip:b@h>{eol}Call-ID: c{eol}CSeq: 1 SUBSCRIBE{eol}\
             Record-Route: <sip:p;lr>{eol}X-A: 1{eol}v: SIP/2.0/TLS q;branch=z9hG4bK2{eol}\
             Content-Length: 0{eol}{eol}"
        );
        let mut msg = Message::parse(Bytes::from(wire)).unwrap();
        for edit in 0..3 {
            if edit == 1 {
                msg.headers_mut().remove("Call-ID");
                msg.headers_mut().push("Call-ID", "c2").unwrap();
            }
            if edit == 2 {
                msg.headers_mut()
                    .push_front("Via", "SIP/2.0/TLS r;branch=z9hG4bK0")
                    .unwrap();
                msg.headers_mut().remove("Max-Forwards");
            }
            let req = msg.as_request().unwrap();
            for code in [0, 99, 100, 200, 481, 699, 999, 1000, 65535] {
                let mut out = Vec::new();
                Response::encode_head_for(req, code, None, &mut out);
                out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
                let want = Response::from_request(req, code).encode();
                assert_eq!(
                    String::from_utf8_lossy(&out),
                    String::from_utf8_lossy(&want),
                    "{edit} {code}"
                );
                out.clear();
                Response::encode_head_for(req, code, Some("t9"), &mut out);
                let text = String::from_utf8(out).unwrap();
                assert!(text.contains("\r\nTo: <sip:b@h>;tag=t9\r\n"), "{text}");
                assert_eq!(
                    text.replace(";tag=t9", ""),
                    String::from_utf8_lossy(&want).trim_end_matches("Content-Length: 0\r\n\r\n"),
                    "{edit} {code}"
                );
            }
        }
    }
}

#[test]
fn responses_unfold_folded_values_and_lone_crs_only() {
    // A folded Via (CRLF SP), a lone CR inside From, a plain To: copies turn line breaks and
    // CRs into single spaces and copy plain values whole.
    let req = Request::parse(Bytes::from_static(
        b"OPTIONS sip:b@h SIP/2.0\r\nVia: SIP/2.0/TLS p\r\n ;branch=z9hG4bK1\r\nFrom: <sip:a@h>\r;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
    ))
    .unwrap();
    let resp = Response::from_request(&req, 200);
    assert_eq!(
        resp.headers().get("Via"),
        Some("SIP/2.0/TLS p ;branch=z9hG4bK1")
    );
    assert_eq!(resp.headers().get("From"), Some("<sip:a@h> ;tag=1"));
    assert_eq!(resp.headers().get("To"), Some("<sip:b@h>"));
    let mut out = Vec::new();
    Response::encode_head_for(&req, 200, Some("t"), &mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("\r\nVia: SIP/2.0/TLS p ;branch=z9hG4bK1\r\n"),
        "{text}"
    );
    assert!(text.contains("\r\nFrom: <sip:a@h> ;tag=1\r\n"), "{text}");
    assert!(text.contains("\r\nTo: <sip:b@h>;tag=t\r\n"), "{text}");
    assert_eq!(text.matches('\r').count(), text.matches("\r\n").count());
}

/// The implementations before the speed-ups of 2026-11-28, kept as oracles: the fast paths
/// must answer exactly what they answered (results, errors, offsets).
mod reference {
    use crate::{Error, Limits, Result, Status};

    #[derive(Default)]
    struct Scan {
        pos: usize,
        started: bool,
        cl: Option<usize>,
        head_end: Option<usize>,
    }

    fn is_content_length(name: &[u8]) -> bool {
        name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")
    }

    pub(super) fn frame(buf: &[u8], limits: &Limits) -> Result<Status> {
        let st = &mut Scan::default();
        if matches!(buf.first(), Some(b'\r' | b'\n')) {
            return Err(Error::StartLine {
                offset: 0,
                expected: "a start line (skip CRLF keep-alives first)",
            });
        }
        let window = buf.len().min(limits.max_head_size.saturating_add(1));
        let head_end = loop {
            if let Some(h) = st.head_end {
                break h;
            }
            let pos = st.pos;
            let Some(k) = crate::chars::find_byte(b'\n', buf.get(pos..window).unwrap_or_default())
            else {
                if window - pos > limits.max_line_length {
                    return Err(Error::LineTooLong {
                        offset: pos,
                        limit: limits.max_line_length,
                    });
                }
                if window > limits.max_head_size {
                    return Err(Error::HeadTooLarge {
                        size: window,
                        limit: limits.max_head_size,
                    });
                }
                return Ok(Status::Partial);
            };
            let nl = pos + k;
            if nl - pos > limits.max_line_length {
                return Err(Error::LineTooLong {
                    offset: pos,
                    limit: limits.max_line_length,
                });
            }
            let line = buf.get(pos..nl).unwrap_or_default();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() && st.started {
                st.head_end = Some(nl + 1);
                break nl + 1;
            }
            if st.started
                && matches!(line.first(), Some(b'c' | b'C' | b'l' | b'L'))
                && let Some(colon) = memchr::memchr(b':', line)
            {
                let name = line.get(..colon).unwrap_or_default().trim_ascii_end();
                if is_content_length(name) {
                    let v = line.get(colon + 1..).unwrap_or_default();
                    let v = v.trim_ascii();
                    let n = crate::chars::parse_u64(v)
                        .and_then(|n| usize::try_from(n).ok())
                        .ok_or_else(|| Error::Header {
                            name: "Content-Length".into(),
                            offset: pos + colon + 1,
                            expected: "a decimal Content-Length",
                        })?;
                    match st.cl {
                        Some(prev) if prev != n => return Err(Error::ContentLengthMismatch),
                        _ => st.cl = Some(n),
                    }
                }
            }
            st.started = true;
            st.pos = nl + 1;
        };
        let body = st.cl.ok_or(Error::MissingContentLength)?;
        if body > limits.max_body_size {
            return Err(Error::BodyTooLarge {
                size: body,
                limit: limits.max_body_size,
            });
        }
        let total = head_end.saturating_add(body);
        if total > limits.max_message_size {
            return Err(Error::MessageTooLarge {
                size: total,
                limit: limits.max_message_size,
            });
        }
        Ok(if buf.len() >= total {
            Status::Complete(total)
        } else {
            Status::Partial
        })
    }
}

/// Bytes that steer the framing and header scans.
fn steering_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        Just(b'\r'),
        Just(b'\n'),
        Just(b':'),
        Just(b' '),
        Just(b'\t'),
        Just(b'l'),
        Just(b'L'),
        Just(b'c'),
        Just(b'0'),
        Just(b'9'),
        Just(b'-'),
        any::<u8>(),
    ]
}

/// REGISTER and a few Content-Length spellings, mutated.
fn mutated_head() -> impl Strategy<Value = Vec<u8>> {
    let seeds = [
        REGISTER.to_owned(),
        "OPTIONS sip:a@b SIP/2.0\r\nl : 3\r\ncontent-length:3\r\nCall-ID: x\r\n\r\nabc".to_owned(),
        "SIP/2.0 200 OK\nContent-Length: 2\nCSeq: 1 X\nMax-Forwards: 7\n\nhi".to_owned(),
        "SIP/2.0 200 OK\r\nCONTENT-LENGTH:2\r\nL:2\r\nContent-Type: a/b\r\n\r\nhi".to_owned(),
        "INVITE sip:a@b SIP/2.0\r\nSubject :  x \r\n\t y\r\n  z\r\nCSeq\t: 12 INVITE \r\nX-A:\r\nX-B: \r\n\r\n".to_owned(),
    ];
    (
        0..seeds.len(),
        proptest::collection::vec((any::<prop::sample::Index>(), steering_byte()), 0..8),
        any::<prop::sample::Index>(),
    )
        .prop_map(move |(k, muts, cut)| {
            let mut v = seeds[k].as_bytes().to_vec();
            for (i, b) in muts {
                let i = i.index(v.len());
                v[i] = b;
            }
            let n = cut.index(v.len() + 1).max(v.len() / 2);
            v.truncate(n);
            v
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn frame_answers_as_the_reference(
        v in mutated_head(),
        (line, head, body) in (10usize..90, 40usize..700, 0usize..4),
    ) {
        let small = Limits { max_line_length: line, max_head_size: head, max_body_size: body, ..Limits::default() };
        for lim in [Limits::default(), small] {
            prop_assert_eq!(frame(&v, &lim), reference::frame(&v, &lim));
        }
    }
}

/// The header scan before the speed-ups of 2026-11-28 (oracle for `headers::scan`).
mod reference_scan {
    use crate::chars::{self, is_lws};
    use crate::headers::{Entry, HeadEnd};
    use crate::names::{Hid, lookup};
    use crate::span::Span;
    use crate::{Error, Limits, Result};

    fn header_err(id: Hid, name: &[u8], offset: usize, expected: &'static str) -> Error {
        let name = match id {
            Hid::Other => String::from_utf8_lossy(name).into_owned(),
            h => h.name().to_owned(),
        };
        Error::Header {
            name,
            offset,
            expected,
        }
    }

    pub(super) fn scan(
        buf: &[u8],
        mut pos: usize,
        limits: &Limits,
        entries: &mut Vec<Entry>,
    ) -> Result<HeadEnd> {
        let len = buf.len();
        let mut content_length = None;
        loop {
            if pos > limits.max_head_size {
                return Err(Error::HeadTooLarge {
                    size: pos,
                    limit: limits.max_head_size,
                });
            }
            let Some(&b0) = buf.get(pos) else {
                return Ok(HeadEnd {
                    body_start: len,
                    terminated: false,
                    content_length,
                });
            };
            if b0 == b'\n' {
                return Ok(HeadEnd {
                    body_start: pos + 1,
                    terminated: true,
                    content_length,
                });
            }
            if b0 == b'\r' && buf.get(pos + 1) == Some(&b'\n') {
                return Ok(HeadEnd {
                    body_start: pos + 2,
                    terminated: true,
                    content_length,
                });
            }
            // header name
            let ns = pos;
            pos += buf
                .get(pos..)
                .unwrap_or_default()
                .iter()
                .position(|&b| !chars::is_token(b))
                .unwrap_or(len - pos);
            if pos == ns {
                return Err(Error::Header {
                    name: String::new(),
                    offset: pos,
                    expected: "a header name",
                });
            }
            let ne = pos;
            while matches!(buf.get(pos), Some(b' ' | b'\t')) {
                pos += 1;
            }
            let name = buf.get(ns..ne).unwrap_or_default();
            if buf.get(pos) != Some(&b':') {
                return Err(header_err(
                    lookup(name),
                    name,
                    pos,
                    "':' after the header name",
                ));
            }
            pos += 1;
            let vs = pos;
            // the logical line, folded lines included
            let mut folded = false;
            let (content_end, line_end) = loop {
                match chars::find_nl(buf.get(pos..).unwrap_or_default()) {
                    None => break (len, len),
                    Some(k) => {
                        let nl = pos + k;
                        if matches!(buf.get(nl + 1), Some(b' ' | b'\t')) {
                            pos = nl + 1;
                            folded = true;
                            continue;
                        }
                        let ce = if nl > vs && buf.get(nl - 1) == Some(&b'\r') {
                            nl - 1
                        } else {
                            nl
                        };
                        break (ce, nl + 1);
                    }
                }
            };
            if line_end - ns > limits.max_line_length {
                return Err(Error::LineTooLong {
                    offset: ns,
                    limit: limits.max_line_length,
                });
            }
            if entries.len() >= limits.max_headers {
                return Err(Error::TooManyHeaders {
                    limit: limits.max_headers,
                });
            }
            let mut a = vs;
            let mut b = content_end;
            while a < b && buf.get(a).is_some_and(|&c| is_lws(c)) {
                a += 1;
            }
            while b > a && buf.get(b - 1).is_some_and(|&c| is_lws(c)) {
                b -= 1;
            }
            let id = lookup(name);
            let value = buf.get(a..b).unwrap_or_default();
            match id {
                Hid::ContentLength => {
                    let v = chars::parse_u64(value)
                        .and_then(|v| usize::try_from(v).ok())
                        .ok_or_else(|| header_err(id, name, a, "a decimal Content-Length"))?;
                    if content_length.is_none() {
                        content_length = Some(v);
                    }
                }
                Hid::CSeq => {
                    let d = value
                        .iter()
                        .position(|&c| !c.is_ascii_digit())
                        .unwrap_or(value.len());
                    if chars::parse_u32(value.get(..d).unwrap_or_default()).is_none() {
                        return Err(header_err(id, name, a, "a CSeq number below 2^32"));
                    }
                }
                Hid::MaxForwards if chars::parse_u64(value).is_none_or(|v| v > 255) => {
                    return Err(header_err(
                        id,
                        name,
                        a,
                        "a Max-Forwards number from 0 to 255",
                    ));
                }
                _ => {}
            }
            // plain: an unfolded line whose content has no (lone) CR
            let content = buf.get(vs..content_end).unwrap_or_default();
            let plain = !folded && !content.iter().any(|&c| c == b'\r' || c == b'\n');
            entries.push(Entry {
                name: Span::new(ns, ne),
                value: Span::new(a, b),
                line_end: line_end as u32,
                id,
                plain,
            });
            pos = line_end;
        }
    }
}

type ScanOutcome = Result<(
    usize,
    bool,
    Option<usize>,
    Vec<(u32, u32, u32, u32, u32, u8, bool)>,
)>;

fn scan_outcome(
    f: fn(&[u8], usize, &Limits, &mut Vec<headers::Entry>) -> Result<headers::HeadEnd>,
    v: &[u8],
    lim: &Limits,
) -> ScanOutcome {
    let start = v
        .iter()
        .position(|&b| b == b'\n')
        .map_or(v.len(), |k| k + 1);
    let mut entries = Vec::new();
    let he = f(v, start, lim, &mut entries)?;
    let list = entries
        .iter()
        .map(|e| {
            // what the encoder relies on: a plain value holds no CR or LF
            let value = v.get(e.value.range()).unwrap_or_default();
            assert!(!e.plain || !value.iter().any(|&c| c == b'\r' || c == b'\n'));
            (
                e.name.start,
                e.name.end,
                e.value.start,
                e.value.end,
                e.line_end,
                e.id as u8,
                e.plain,
            )
        })
        .collect();
    Ok((he.body_start, he.terminated, he.content_length, list))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    /// The one-pass CSeq read answers as the general one (value or error).
    #[test]
    fn cseq_fast_path_answers_as_the_general_parse(
        s in "[ \t]?[0-9]{0,11}[ \t]{0,2}(PUBLISH|SUBSCRIBE|NOTIFY|INVITE|X-y|a.b|[A-Za-z!~,;:\r\n -]{0,6})[ \t]?",
    ) {
        prop_assert_eq!(
            CSeq::parse(&s).map_err(|e| e.to_string()),
            CSeq::parse_general(&s).map_err(|e| e.to_string())
        );
    }

    #[test]
    fn header_scan_answers_as_the_reference(
        v in mutated_head(),
        (line, head, count) in (10usize..90, 40usize..700, 0usize..12),
    ) {
        let small = Limits { max_line_length: line, max_head_size: head, max_headers: count, ..Limits::default() };
        for lim in [Limits::default(), small] {
            prop_assert_eq!(
                scan_outcome(headers::scan, &v, &lim),
                scan_outcome(reference_scan::scan, &v, &lim)
            );
        }
    }
}

/// Header names that steer the word-at-a-time name path: known names in any case (compact
/// forms included), tokens with the colon at every offset around the 8-, 16- and 24-byte word
/// ends, and names with bytes a case fold could confuse (CR for '-', NUL, 0x80, '@' and '[',
/// white space before the colon).
fn odd_name() -> impl Strategy<Value = Vec<u8>> {
    const KNOWN: &[&str] = &[
        "Via",
        "v",
        "From",
        "f",
        "To",
        "t",
        "Call-ID",
        "i",
        "CSeq",
        "Content-Length",
        "l",
        "Content-Type",
        "c",
        "Max-Forwards",
        "P-Asserted-Identity",
        "P-Access-Network-Info",
        "Subscription-State",
        "Record-Route",
        "Event",
        "o",
        "Expires",
        "Contact",
        "m",
        "WWW-Authenticate",
        "Accept-Contact",
        "Content-Encoding",
        "Content-Language",
        "P-Preferred-Identity",
        "SIP-If-Match",
        "Min-SE",
        "RAck",
        "Session-Expires",
        "x",
    ];
    prop_oneof![
        (prop::sample::select(KNOWN), any::<u32>()).prop_map(|(n, case)| {
            n.bytes()
                .enumerate()
                .map(|(i, b)| {
                    if case >> (i % 32) & 1 == 1 {
                        b.to_ascii_uppercase()
                    } else {
                        b.to_ascii_lowercase()
                    }
                })
                .collect()
        }),
        "[A-Za-z0-9!%*_+`'~.-]{1,27}".prop_map(String::into_bytes),
        (
            prop::sample::select(KNOWN),
            any::<prop::sample::Index>(),
            prop::sample::select(
                &[
                    b'\r',
                    b'\n',
                    0,
                    0x80,
                    b'@',
                    b'[',
                    b' ',
                    b'\t',
                    0x0d | 0x40,
                    b'm',
                    b':',
                    0x7f
                ][..],
            )
        )
            .prop_map(|(n, i, b)| {
                let mut v = n.as_bytes().to_vec();
                let i = i.index(v.len());
                v[i] = b;
                v
            }),
        (
            prop::sample::select(KNOWN),
            prop::sample::select(&[0u8, b'-', b'x', 0x80][..])
        )
            .prop_map(|(n, b)| {
                let mut v = n.as_bytes().to_vec();
                v.push(b);
                v
            }),
    ]
}

/// Heads built line by line from odd names, separators, values and line ends (bare LF, lone
/// CR, folds, tabs, control and UTF-8 bytes, a missing end), then maybe cut short.
fn odd_head() -> impl Strategy<Value = Vec<u8>> {
    let sep = prop::sample::select(&[":", ":", ": ", ": ", " :", "\t: ", ":\t", "", ":  "][..]);
    let value = proptest::collection::vec(
        prop::sample::select(
            &[
                b'a', b'Z', b'0', b' ', b'\t', b';', b'=', b'<', b'>', b':', 0, 0x0b, 0x0e, 0x7f,
                0xc3, 0xa9, b'\r', b'\n',
            ][..],
        ),
        0..40,
    );
    let end = prop::sample::select(
        &[
            "\r\n",
            "\r\n",
            "\r\n",
            "\n",
            "\r",
            "\r\n ",
            "\n\t",
            "\r\n\t \r\n  ",
            "",
        ][..],
    );
    (
        proptest::collection::vec((odd_name(), sep, value, end), 0..14),
        prop::sample::select(&["\r\n", "\n", "", "\r"][..]),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(|(lines, last, cut, do_cut)| {
            let mut v = b"OPTIONS sip:a@b SIP/2.0\r\n".to_vec();
            for (name, sep, value, end) in lines {
                v.extend_from_slice(&name);
                v.extend_from_slice(sep.as_bytes());
                v.extend_from_slice(&value);
                v.extend_from_slice(end.as_bytes());
            }
            v.extend_from_slice(last.as_bytes());
            v.extend_from_slice(b"body");
            if do_cut {
                let n = cut.index(v.len() + 1).max(25);
                v.truncate(n);
            }
            v
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8192, ..ProptestConfig::default() })]

    /// The word-at-a-time name path answers as the reference scan on heads made to steer it.
    #[test]
    fn header_scan_answers_as_the_reference_on_odd_heads(
        v in odd_head(),
        (line, head, count) in (4usize..60, 20usize..400, 0usize..10),
    ) {
        let small = Limits { max_line_length: line, max_head_size: head, max_headers: count, ..Limits::default() };
        for lim in [Limits::default(), small] {
            prop_assert_eq!(
                scan_outcome(headers::scan, &v, &lim),
                scan_outcome(reference_scan::scan, &v, &lim)
            );
        }
    }
}

/// What the by-identifier lookups (served from the header index) must agree with: the
/// by-name lookups, and a walk over every line.
fn check_index_agrees(h: &Headers) -> std::result::Result<(), TestCaseError> {
    const NAMES: &[&str] = &[
        "Via",
        "v",
        "To",
        "From",
        "Call-ID",
        "CSeq",
        "Contact",
        "Event",
        "Expires",
        "Content-Length",
        "Route",
        "X-A",
    ];
    for &name in NAMES {
        let walked: Vec<&str> = h
            .iter()
            .filter(|(n, _)| canonical_name(n).eq_ignore_ascii_case(canonical_name(name)))
            .map(|(_, v)| v)
            .collect();
        prop_assert_eq!(
            h.get_all(name).collect::<Vec<_>>(),
            walked.clone(),
            "{}",
            name
        );
        prop_assert_eq!(h.get(name), walked.first().copied(), "{}", name);
        prop_assert_eq!(h.count(name), walked.len(), "{}", name);
        if let Some(k) = KnownHeader::lookup(name) {
            prop_assert_eq!(h.get_known(k), walked.first().copied(), "{}", name);
            prop_assert_eq!(
                h.get_all_known(k).collect::<Vec<_>>(),
                walked.clone(),
                "{}",
                name
            );
            prop_assert_eq!(
                h.get_single_known(k),
                (walked.len() == 1).then(|| walked[0]),
                "{}",
                name
            );
            prop_assert_eq!(h.contains_known(k), !walked.is_empty(), "{}", name);
        }
    }
    Ok(())
}

proptest! {
    /// The header index follows every edit, and reaches past 255 lines.
    #[test]
    fn header_index_follows_edits(
        lines in proptest::collection::vec((0usize..12, 0u8..50), 0..300),
        edits in proptest::collection::vec((0u8..6, 0usize..12, 0usize..400), 0..12),
    ) {
        const NAMES: &[&str] = &["Via", "v", "To", "From", "Call-ID", "CSeq", "Contact", "Event", "Expires", "X-A", "Route", "i"];
        let mut text = String::from("OPTIONS sip:a@b SIP/2.0\r\n");
        for (n, v) in &lines {
            text.push_str(&format!("{}: {v}\r\n", NAMES[*n]));
        }
        text.push_str("\r\n");
        let unlimited = Limits { max_headers: usize::MAX, ..Limits::default() };
        let mut m = Message::parse_with(Bytes::from(text), &unlimited).unwrap();
        check_index_agrees(m.headers())?;
        for (op, n, at) in edits {
            let h = m.headers_mut();
            let name = NAMES[n];
            match op {
                0 => h.push(name, "p").unwrap(),
                1 => h.insert(at, name, "i").unwrap(),
                2 => h.push_front(name, "f").unwrap(),
                3 => { h.remove(name); }
                4 => { h.remove_first(name); }
                _ => h.replace(name, "r").unwrap(),
            }
            check_index_agrees(m.headers())?;
        }
    }
}

/// Heads of mostly plain lines (`Name: value CRLF`, values of every length around the word
/// and 24-byte limits the one-pass line read uses), each maybe spoilt by one thing the
/// one-pass read leaves to the general one: white space around the value, a fold, a bare LF
/// or lone CR, a control byte, a Content-Length, CSeq or Max-Forwards value, a cut.
fn plain_head() -> impl Strategy<Value = Vec<u8>> {
    let spoil = prop::sample::select(
        &[
            "",
            "",
            "",
            "",
            "",
            "",
            " ",
            "  ",
            "\t",
            " \t",
            "\r",
            "\n",
            "\0",
            "\x0b",
            "\x0e",
            "\x7f",
            "\u{e9}",
            "\r\n ",
            "\r\n\t",
            ":",
            "0",
            "12",
            "4294967296",
            "256",
        ][..],
    );
    let line = (
        odd_name(),
        prop::sample::select(&[": ", ": ", ": ", ":", ":  ", " : "][..]),
        "[a-zA-Z0-9;=<>@.:/ -]{0,70}",
        (spoil.clone(), 0usize..4, any::<prop::sample::Index>()),
        prop::sample::select(&["\r\n", "\r\n", "\r\n", "\r\n", "\n", "\r", "\r\n "][..]),
    );
    (
        proptest::collection::vec(line, 0..12),
        prop::sample::select(&["\r\n", "\r\n", "\n", ""][..]),
        prop::sample::select(&["", "body", "0123456789abcdefghijklmnopqrstuvwxyz"][..]),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(|(lines, last, body, cut, do_cut)| {
            let mut v = b"OPTIONS sip:a@b SIP/2.0\r\n".to_vec();
            for (name, sep, value, (spoil, place, at), end) in lines {
                let mut value = value.into_bytes();
                // the spoiler at the start, at the end, or inside the value (or nowhere)
                let at = match place {
                    0 => 0,
                    1 => value.len(),
                    2 => at.index(value.len() + 1),
                    _ => usize::MAX,
                };
                if at != usize::MAX {
                    value.splice(at..at, spoil.bytes());
                }
                v.extend_from_slice(&name);
                v.extend_from_slice(sep.as_bytes());
                v.extend_from_slice(&value);
                v.extend_from_slice(end.as_bytes());
            }
            v.extend_from_slice(last.as_bytes());
            v.extend_from_slice(body.as_bytes());
            if do_cut {
                let n = cut.index(v.len() + 1).max(25);
                v.truncate(n);
            }
            v
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8192, ..ProptestConfig::default() })]

    /// The one-pass line read answers as the reference scan on heads of mostly plain lines.
    #[test]
    fn header_scan_answers_as_the_reference_on_plain_heads(
        v in plain_head(),
        (line, head, count) in (4usize..90, 20usize..900, 0usize..14),
    ) {
        let small = Limits { max_line_length: line, max_head_size: head, max_headers: count, ..Limits::default() };
        for lim in [Limits::default(), small] {
            prop_assert_eq!(
                scan_outcome(headers::scan, &v, &lim),
                scan_outcome(reference_scan::scan, &v, &lim)
            );
        }
    }
}
