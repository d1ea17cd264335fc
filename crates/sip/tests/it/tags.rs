//! The cheap accessors (`from_tag`, `to_tag`, `p_asserted_identity_first`) agree with the full
//! typed parse wherever that succeeds.

use mcptt_sip::{Bytes, Message};
use proptest::prelude::*;

use crate::common::{data, read, testdata};

fn check(what: &str, m: &Message) {
    for (name, full, cheap) in [
        (
            "From",
            m.from().map(|a| a.tag().map(str::to_owned)),
            m.from_tag(),
        ),
        ("To", m.to().map(|a| a.tag().map(str::to_owned)), m.to_tag()),
    ] {
        if let Ok(tag) = full {
            assert_eq!(cheap.unwrap().map(str::to_owned), tag, "{what}: {name} tag");
        } else {
            // the cheap path does not type the URI, so it may accept what the full parse
            // rejects, but it never invents a header
            if m.headers().get(name).is_none() {
                assert!(cheap.is_err(), "{what}: {name} missing");
            }
        }
    }
    if let Ok(all) = m.p_asserted_identity() {
        let first = m.p_asserted_identity_first().unwrap();
        assert_eq!(
            first.map(|a| a.to_string()),
            all.first().map(ToString::to_string),
            "{what}: first P-Asserted-Identity"
        );
    }
}

#[test]
fn cheap_accessors_agree_on_every_vector() {
    let mut seen = 0;
    for dir in [testdata("rfc4475"), testdata("rfc5118"), data("mcptt")] {
        for f in std::fs::read_dir(&dir).unwrap() {
            let path = f.unwrap().path();
            if path.is_dir() || path.extension().is_some_and(|e| e == "md") {
                continue;
            }
            if let Ok(m) = Message::parse(read(&path)) {
                check(&path.display().to_string(), &m);
                seen += 1;
            }
        }
    }
    assert!(seen > 40, "only {seen} vectors parsed");
}

#[test]
fn tags_behind_quotes_and_in_addr_specs() {
    let cases = [
        (r#""a;tag=no <x>" <sip:a@b;tag=uri>;tag=yes"#, Some("yes")),
        ("sip:a@b;tag=addr-spec", Some("addr-spec")),
        ("Bob <sip:b@c> ; TAG = 77 ;x", Some("77")),
        ("<sip:a@b>;x;y=1", None),
        ("<sip:a@b>;tag=1;tag=2", Some("1")),
    ];
    for (v, want) in cases {
        let m = Message::parse(Bytes::from(format!(
            "OPTIONS sip:x SIP/2.0\r\nFrom: {v}\r\nTo: {v}\r\n\r\n"
        )))
        .unwrap();
        assert_eq!(m.from_tag().unwrap(), want, "{v}");
        assert_eq!(m.to_tag().unwrap(), want, "{v}");
        assert_eq!(m.from().unwrap().tag(), want, "{v}");
    }
    for bad in [
        "<sip:a@b",
        "<sip:a@b>;tag=",
        "<sip:a@b> junk",
        "\"open <sip:a@b>",
        "<>",
    ] {
        let m = Message::parse(Bytes::from(format!(
            "OPTIONS sip:x SIP/2.0\r\nFrom: {bad}\r\n\r\n"
        )))
        .unwrap();
        assert!(m.from_tag().is_err(), "{bad}");
        assert!(m.from().is_err(), "{bad}");
    }
    let m = Message::parse(Bytes::from_static(
        b"MESSAGE sip:x SIP/2.0\r\nP-Asserted-Identity: <sip:a@b>, <tel:+1>\r\n\r\n",
    ))
    .unwrap();
    assert_eq!(
        m.p_asserted_identity_first().unwrap().unwrap().to_string(),
        "<sip:a@b>"
    );
    let none = Message::parse(Bytes::from_static(b"MESSAGE sip:x SIP/2.0\r\n\r\n")).unwrap();
    assert!(none.p_asserted_identity_first().unwrap().is_none());
    assert!(none.from_tag().is_err());
}

proptest! {
    #[test]
    fn tag_agrees_with_full_parse(v in proptest::collection::vec(proptest::sample::select(
        vec!["\"", "<", ">", ";", "tag", "=", "sip:", "a", "@", "b", " ", ",", "?", "\\", "x", "1"]
    ), 0..24)) {
        let v: String = v.concat();
        if let Ok(m) = Message::parse(Bytes::from(format!(
            "OPTIONS sip:x SIP/2.0\r\nFrom: {v}\r\nTo: {v}\r\nP-Asserted-Identity: {v}\r\n\r\n"
        ))) {
            check(&v, &m);
        }
    }
}
