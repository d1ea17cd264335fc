//! `Headers::apply` (a batch of edits, one buffer copy) against the same edits made one call
//! at a time: byte-identical encodings, equal header lists and lookups; a batch with a line
//! that cannot be written changes nothing.

use mcptt_sip::{Bytes, BytesMut, HeaderEdit, Headers, Message, Uri};
use proptest::prelude::*;

/// Messages the edits start from: UTF-8 and not (the body), compact and folded lines,
/// repeated headers, unknown headers.
const BASES: &[&[u8]] = &[
    b"MESSAGE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/TLS ue;branch=z9hG4bK1\r\n\
      Max-Forwards: 70\r\nP-Asserted-Identity: <sip:x@example.com>\r\nRoute: <sip:core;lr>\r\n\
      Call-ID: 1\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
    b"SUBSCRIBE sip:b@example.com SIP/2.0\r\nv: SIP/2.0/TLS a;branch=z9hG4bK1\r\n\
      VIA: SIP/2.0/TLS b;branch=z9hG4bK2\r\nX-Foo: 1\r\nx-foo: 2\r\nSubject: caf\xc3\xa9\r\n\
      X-Folded: a\r\n b\r\ni: 2\r\nl: 2\r\n\r\n\xff\xfe",
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS core;branch=z9hG4bK3\r\nVia: SIP/2.0/TLS ue;branch=z9hG4bK1\r\n\
      Record-Route: <sip:core;lr>\r\nCall-ID: 3\r\nCSeq: 2 SUBSCRIBE\r\nContent-Length: 0\r\n\r\n",
];

/// Names the edits use: known (long, compact, other case), unknown, and not tokens.
const NAMES: &[&str] = &[
    "Via",
    "v",
    "VIA",
    "Max-Forwards",
    "P-Asserted-Identity",
    "Route",
    "Record-Route",
    "X-Foo",
    "x-FOO",
    "X-New",
    "Content-Length",
    "Bad Name",
    "",
];

/// Values: plain, with surrounding white space, non-ASCII, empty, and with CR or LF.
const VALUES: &[&str] = &[
    "SIP/2.0/TLS core;branch=z9hG4bK9",
    "  69 ",
    "<sip:a@example.com>",
    "d\u{e9}j\u{e0}",
    "",
    "\t",
    "a\r\nInjected: 1",
    "b\n",
];

#[derive(Debug, Clone)]
enum Op {
    Push(usize, usize),
    Insert(usize, usize, usize),
    PushFront(usize, usize),
    Replace(usize, usize),
    Remove(usize),
    RemoveFirst(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let n = 0..NAMES.len();
    let v = 0..VALUES.len();
    prop_oneof![
        (n.clone(), v.clone()).prop_map(|(n, v)| Op::Push(n, v)),
        (0usize..20, n.clone(), v.clone()).prop_map(|(i, n, v)| Op::Insert(i, n, v)),
        (n.clone(), v.clone()).prop_map(|(n, v)| Op::PushFront(n, v)),
        (n.clone(), v).prop_map(|(n, v)| Op::Replace(n, v)),
        n.clone().prop_map(Op::Remove),
        n.prop_map(Op::RemoveFirst),
    ]
}

fn edit(op: &Op) -> HeaderEdit<'static> {
    let (n, v) = (|i: usize| NAMES[i], |i: usize| VALUES[i]);
    match *op {
        Op::Push(a, b) => HeaderEdit::Push(n(a), v(b)),
        Op::Insert(i, a, b) => HeaderEdit::Insert(i, n(a), v(b)),
        Op::PushFront(a, b) => HeaderEdit::PushFront(n(a), v(b)),
        Op::Replace(a, b) => HeaderEdit::Replace(n(a), v(b)),
        Op::Remove(a) => HeaderEdit::Remove(n(a)),
        Op::RemoveFirst(a) => HeaderEdit::RemoveFirst(n(a)),
    }
}

/// The edits made one call at a time with the single-edit methods; `false` if one failed.
fn one_by_one(h: &mut Headers, edits: &[HeaderEdit<'_>]) -> bool {
    let mut ok = true;
    for e in edits {
        ok &= match *e {
            HeaderEdit::Push(n, v) => h.push(n, v).is_ok(),
            HeaderEdit::Insert(i, n, v) => h.insert(i, n, v).is_ok(),
            HeaderEdit::PushFront(n, v) => h.push_front(n, v).is_ok(),
            HeaderEdit::Replace(n, v) => h.replace(n, v).is_ok(),
            HeaderEdit::Remove(n) => {
                h.remove(n);
                true
            }
            HeaderEdit::RemoveFirst(n) => {
                h.remove_first(n);
                true
            }
            _ => unreachable!("every edit is listed"),
        };
    }
    ok
}

/// The batch against one call at a time, on every base message and on empty headers.
fn check(edits: &[HeaderEdit<'_>]) -> Result<(), TestCaseError> {
    for base in BASES {
        let msg = Message::parse(Bytes::from_static(base)).unwrap();
        let mut batch = msg.clone();
        let mut single = msg.clone();
        let applied = batch.headers_mut().apply(edits);
        let all_ok = one_by_one(single.headers_mut(), edits);
        prop_assert_eq!(applied.is_ok(), all_ok);
        if applied.is_ok() {
            prop_assert_eq!(batch.encode(), single.encode());
            // `encode_into` writes an edited message in place: the same bytes, after what
            // the buffer held.
            let mut into = BytesMut::from(&b"queued"[..]);
            batch.encode_into(&mut into);
            prop_assert_eq!(&into[..6], b"queued");
            prop_assert_eq!(&into[6..], &batch.encode()[..]);
            prop_assert_eq!(batch.headers(), single.headers());
            for name in NAMES {
                let (b, s) = (batch.headers(), single.headers());
                prop_assert_eq!(b.get(name), s.get(name), "{}", name);
                prop_assert_eq!(b.count(name), s.count(name), "{}", name);
                prop_assert!(b.get_all(name).eq(s.get_all(name)), "{}", name);
            }
        } else {
            // nothing applied
            prop_assert_eq!(batch.encode(), msg.encode());
            prop_assert_eq!(batch.headers(), msg.headers());
        }
    }
    let (mut batch, mut single) = (Headers::new(), Headers::new());
    let applied = batch.apply(edits);
    prop_assert_eq!(applied.is_ok(), one_by_one(&mut single, edits));
    if applied.is_ok() {
        prop_assert_eq!(&batch, &single);
        for name in NAMES {
            prop_assert!(batch.get_all(name).eq(single.get_all(name)), "{}", name);
        }
    } else {
        prop_assert!(batch.is_empty());
    }
    Ok(())
}

#[test]
fn the_forwarding_edits_encode_as_one_by_one() {
    // what the SIP core does to a request it forwards
    let subscribe = [
        HeaderEdit::Remove("P-Asserted-Identity"),
        HeaderEdit::PushFront("Via", "SIP/2.0/TLS core;branch=z9hG4bK9;core=1"),
        HeaderEdit::Push("P-Asserted-Identity", "<sip:a@example.com>"),
        HeaderEdit::Replace("Max-Forwards", "69"),
        HeaderEdit::PushFront("Record-Route", "<sip:core;lr>"),
    ];
    let failover = [
        HeaderEdit::RemoveFirst("Via"),
        HeaderEdit::PushFront("Via", "SIP/2.0/TLS core;branch=z9hG4bK8"),
    ];
    let notify = [
        HeaderEdit::RemoveFirst("Route"),
        HeaderEdit::PushFront("Via", "SIP/2.0/TLS core;branch=z9hG4bK7"),
    ];
    for edits in [&subscribe[..], &failover, &notify, &[]] {
        check(edits).unwrap();
    }
    let mut m = Message::parse(Bytes::from_static(BASES[0])).unwrap();
    m.headers_mut().apply(&subscribe).unwrap();
    let h = m.headers();
    assert_eq!(
        h.iter().collect::<Vec<_>>(),
        [
            ("Via", "SIP/2.0/TLS core;branch=z9hG4bK9;core=1"),
            ("Via", "SIP/2.0/TLS ue;branch=z9hG4bK1"),
            ("Max-Forwards", "69"),
            ("Route", "<sip:core;lr>"),
            ("Call-ID", "1"),
            ("CSeq", "1 MESSAGE"),
            ("Content-Type", "text/plain"),
            ("Content-Length", "5"),
            ("P-Asserted-Identity", "<sip:a@example.com>"),
            ("Record-Route", "<sip:core;lr>"),
        ]
    );
    assert!(
        m.encode()
            .ends_with(b"Record-Route: <sip:core;lr>\r\n\r\nhello")
    );
    // the edited message parses back to the same headers
    assert_eq!(Message::parse(m.encode()).unwrap().headers(), h);
}

#[test]
fn an_empty_batch_or_one_that_finds_nothing_leaves_the_message_unedited() {
    let wire = Bytes::from_static(BASES[0]);
    let mut m = Message::parse(wire.clone()).unwrap();
    m.headers_mut().apply(&[]).unwrap();
    m.headers_mut()
        .apply(&[
            HeaderEdit::Remove("X-None"),
            HeaderEdit::RemoveFirst("Expires"),
        ])
        .unwrap();
    // still the received bytes (an unedited message encodes as received)
    assert_eq!(m.encode(), wire);
}

#[test]
fn encode_into_appends_what_encode_returns() {
    // Clean, header-edited, new body, new start line: `encode_into` (in place for an edited
    // message) appends the bytes `encode` returns, to an empty or a partly filled buffer.
    for base in BASES {
        let clean = Message::parse(Bytes::from_static(base)).unwrap();
        let mut edited = clean.clone();
        edited.headers_mut().push("X-Added", "1").unwrap();
        let mut body = clean.clone();
        body.set_body(Some("text/plain"), Bytes::from_static(b"a new body"))
            .unwrap();
        let mut messages = vec![clean, edited, body];
        if let Message::Request(r) = &messages[0] {
            let mut r = r.clone();
            r.set_uri(Uri::parse("sip:other@example.org").unwrap())
                .unwrap();
            messages.push(Message::Request(r));
        }
        for m in &messages {
            for prefix in [&b""[..], b"SIP/2.0 100 Trying\r\nContent-Length: 0\r\n\r\n"] {
                let mut out = BytesMut::from(prefix);
                m.encode_into(&mut out);
                assert_eq!(&out[..prefix.len()], prefix);
                assert_eq!(&out[prefix.len()..], &m.encode()[..]);
            }
        }
    }
}

proptest! {
    #[test]
    fn a_batch_equals_its_edits_one_by_one(ops in proptest::collection::vec(op(), 0..8)) {
        let edits: Vec<_> = ops.iter().map(edit).collect();
        check(&edits)?;
    }
}
