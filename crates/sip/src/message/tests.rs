use super::*;
use crate::Policy;

fn read(dir: &str, name: &str) -> Bytes {
    let p = format!(
        "{}/../../testdata/sip/{dir}/{name}.dat",
        env!("CARGO_MANIFEST_DIR")
    );
    Bytes::from(std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}")))
}

/// parse, then validate, then check: the first error.
fn verdict(buf: Bytes) -> std::result::Result<Message, Error> {
    let m = Message::parse(buf)?;
    m.validate()?;
    if let Message::Request(r) = &m {
        r.check(&Policy::default())?;
    }
    Ok(m)
}

#[test]
fn parses_request_line_and_headers() {
    let m = Message::parse(Bytes::from_static(
        b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n\r\n",
    ))
    .unwrap();
    assert!(m.is_request());
    assert_eq!(m.headers().get("Content-Length"), Some("0"));
}

#[test]
fn rfc4475_valid_messages_parse_validate_and_roundtrip() {
    for name in [
        "wsinv",
        "intmeth",
        "esc01",
        "escnull",
        "esc02",
        "lwsdisp",
        "longreq",
        "dblreq",
        "semiuri",
        "transports",
        "mpart01",
        "unreason",
        "noreason",
    ] {
        let buf = read("rfc4475", name);
        let m = Message::parse(buf.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        m.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        if name != "dblreq" {
            assert_eq!(m.encode(), buf, "{name}");
        }
        assert_eq!(Message::parse(m.encode()).unwrap(), m, "{name}");
    }
}

#[test]
fn rfc4475_invalid_messages_fail_parse_or_validate() {
    for (name, code) in [
        ("badinv01", 400),
        ("clerr", 400),
        ("ncl", 400),
        ("scalar02", 400),
        ("scalarlg", 400),
        ("quotbal", 400),
        ("ltgtruri", 400),
        ("lwsruri", 400),
        ("lwsstart", 400),
        ("trws", 400),
        ("escruri", 400),
        ("baddate", 400),
        ("regbadct", 400),
        ("badaspec", 400),
        ("baddn", 400),
        ("badvers", 505),
        ("mismatch01", 400),
        ("mismatch02", 400),
        ("bigcode", 400),
    ] {
        let r = Message::parse(read("rfc4475", name)).and_then(|m| m.validate());
        let e = r.err().unwrap_or_else(|| panic!("{name} accepted"));
        assert_eq!(e.status_code(), Some(code), "{name}: {e}");
    }
}

#[test]
fn rfc4475_semantic_messages() {
    for (name, code) in [
        ("badbranch", None),
        ("insuf", Some(400)),
        ("unkscm", Some(416)),
        ("novelsc", Some(416)),
        ("unksm2", None),
        ("bext01", Some(420)),
        ("invut", None),
        ("regaut01", None),
        ("multi01", Some(400)),
        ("mcl01", Some(400)),
        ("bcast", None),
        ("zeromf", None),
        ("cparam01", None),
        ("cparam02", None),
        ("regescrt", None),
        ("sdp01", None),
        ("inv2543", None),
    ] {
        let buf = read("rfc4475", name);
        Message::parse(buf.clone()).unwrap_or_else(|e| panic!("{name} must parse: {e}"));
        let got = verdict(buf).err().and_then(|e| e.status_code());
        assert_eq!(got, code, "{name}");
    }
}

#[test]
fn rfc5118_accepts_and_rejects() {
    for name in [
        "ipv6-good",
        "port-ambiguous",
        "port-unambiguous",
        "via-received-param-with-delim",
        "via-received-param-no-delim",
        "ipv6-in-sdp",
        "mult-ip-in-header",
        "mult-ip-in-sdp",
        "ipv4-mapped-ipv6",
        "ipv6-correct-abnf-2-colons",
    ] {
        let m = Message::parse(read("rfc5118", name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        crate::validate::validate_headers(m.headers(), None)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for name in ["ipv6-bad", "ipv6-bug-abnf-3-colons"] {
        assert!(Message::parse(read("rfc5118", name)).is_err(), "{name}");
    }
}

#[test]
fn responses_copy_folded_values_unfolded_and_any_code() {
    let req = Message::parse(Bytes::from_static(
        "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: \"d\u{e9}j\u{e0}\"\r\n <sip:a@b>;tag=1\r\nTo: <sip:b@c>\r\n\t\r\n ;x=2\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nSubject: s\r\n\r\n"
            .as_bytes(),
    ))
    .unwrap()
    .into_request()
    .unwrap();
    for code in [100, 200, 699, 0, 9, 65535] {
        let r = Response::from_request(&req, code);
        assert_eq!(r.status(), code);
        assert!(r.start_line().starts_with(&format!("SIP/2.0 {code} ")));
        if !(100..=699).contains(&code) {
            continue;
        }
        let back = Message::parse(r.encode()).unwrap().into_response().unwrap();
        assert_eq!(back.status(), code);
        assert_eq!(
            r.headers().get("from"),
            Some("\"d\u{e9}j\u{e0}\" <sip:a@b>;tag=1")
        );
        assert_eq!(r.headers().get("to"), Some("<sip:b@c> ;x=2"));
        assert_eq!(r.headers().get("subject"), None);
        assert_eq!(back.from_tag().unwrap(), Some("1"));
        let b = Response::builder_for(&req, 200).build().unwrap();
        assert_eq!(b.headers().get("to"), Some("<sip:b@c> ;x=2"));
    }
}

#[test]
fn builders_write_lines_in_order_and_own_length_and_type() {
    let uri = Uri::parse("sip:a@b").unwrap();
    let r = Request::builder(Method::Message, uri.clone())
        .header("Via", "SIP/2.0/TCP h;branch=z9hG4bK1")
        .header("Content-Length", 99)
        .header("X-Pad", format_args!(" \t{}\t ", 7))
        .header("Content-Type", "text/old")
        .header("t", "<sip:b@c>")
        .header("Empty", "")
        .body("text/plain", Bytes::from_static(b"hi"))
        .build()
        .unwrap();
    assert_eq!(
        &r.encode()[..],
        &b"MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nX-Pad: 7\r\nt: <sip:b@c>\r\nEmpty: \r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"[..]
    );
    let e = Request::builder(Method::Message, uri.clone())
        .header("Bad Name", 1)
        .build();
    assert!(matches!(e, Err(Error::ApiMisuse(_))));
    let e = Request::builder(Method::Message, uri)
        .header("X", "a\r\nInjected: 1")
        .build();
    assert!(matches!(e, Err(Error::ApiMisuse(_))));

    let r = Response::builder(200)
        .header("To", "<sip:b@c>")
        .header("X", 1)
        .header("t", "<sip:second@c>")
        .to_tag("abc")
        .build()
        .unwrap();
    assert_eq!(
        &r.encode()[..],
        &b"SIP/2.0 200 OK\r\nTo: <sip:b@c>;tag=abc\r\nX: 1\r\nContent-Length: 0\r\n\r\n"[..]
    );
    let r = Response::builder(180)
        .header("To", "<sip:b@c>;tag=old")
        .to_tag("new")
        .build()
        .unwrap();
    assert_eq!(r.to_tag().unwrap(), Some("old"));
    assert!(Response::builder(200).to_tag("a b").build().is_err());
}
