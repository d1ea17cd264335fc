//! Reused header storage (`HeaderStorage`): parsing with storage that earlier messages (and
//! failed parses) used answers exactly what a fresh parse answers, and the storage stays
//! bounded.

use mcptt_sip::{
    Bytes, BytesMut, Error, FrameScan, Framed, Framer, HeaderStorage, KnownHeader, Limits, Message,
    frame_parse, frame_parse_with_storage, keepalive_len,
};
use proptest::prelude::*;

use crate::common::{data, read, table, testdata};
use crate::generate::{Generated, message};
use crate::props::{Mutation, apply, corpus, mutation};

const MAX: usize = HeaderStorage::MAX_RETAINED_LINES;

/// Names looked up on every message (besides those of the messages seen so far): the known
/// headers of the vectors and generators, long and compact forms, and two unknown ones.
const NAMES: &[&str] = &[
    "Via",
    "v",
    "From",
    "To",
    "t",
    "Call-ID",
    "i",
    "CSeq",
    "Contact",
    "m",
    "Content-Length",
    "l",
    "Content-Type",
    "Max-Forwards",
    "Expires",
    "Event",
    "o",
    "Record-Route",
    "Route",
    "P-Asserted-Identity",
    "Subscription-State",
    "SIP-ETag",
    "Accept",
    "Require",
    "X-Unknown",
    "NewFangledHeader",
];

/// Every observable part of two parse results is the same: the error, or the message with
/// its start line, headers (by name and by known identifier: the lookup index), typed
/// values, body, framing facts, validation and encoding.
fn same(
    fresh: &Result<Message, Error>,
    reused: &Result<Message, Error>,
    names: &[String],
) -> Result<(), TestCaseError> {
    let (Ok(a), Ok(b)) = (fresh, reused) else {
        prop_assert_eq!(fresh, reused);
        return Ok(());
    };
    prop_assert!(a == b, "messages differ");
    prop_assert_eq!(format!("{a:?}"), format!("{b:?}"));
    prop_assert_eq!(a.encode(), b.encode());
    prop_assert_eq!(a.start_line(), b.start_line());
    prop_assert_eq!(a.body(), b.body());
    prop_assert_eq!(a.body_len(), b.body_len());
    prop_assert_eq!(a.declared_content_length(), b.declared_content_length());
    prop_assert_eq!(a.head_terminated(), b.head_terminated());
    prop_assert_eq!(a.validate(), b.validate());
    prop_assert_eq!(a.call_id(), b.call_id());
    prop_assert_eq!(format!("{:?}", a.cseq()), format!("{:?}", b.cseq()));
    prop_assert_eq!(format!("{:?}", a.via()), format!("{:?}", b.via()));
    prop_assert_eq!(format!("{:?}", a.contacts()), format!("{:?}", b.contacts()));
    match (a, b) {
        (Message::Request(x), Message::Request(y)) => {
            prop_assert_eq!(x.method(), y.method());
            prop_assert_eq!(x.uri(), y.uri());
        }
        (Message::Response(x), Message::Response(y)) => {
            prop_assert_eq!(x.status(), y.status());
            prop_assert_eq!(x.reason(), y.reason());
        }
        _ => prop_assert!(false, "request/response mixed up"),
    }
    let (ha, hb) = (a.headers(), b.headers());
    prop_assert_eq!(ha.len(), hb.len());
    prop_assert!(ha.iter().eq(hb.iter()), "header lines differ");
    let all = NAMES
        .iter()
        .copied()
        .chain(names.iter().map(String::as_str))
        .chain(ha.iter().map(|(n, _)| n));
    for name in all {
        prop_assert_eq!(ha.get(name), hb.get(name), "get {}", name);
        prop_assert!(ha.get_all(name).eq(hb.get_all(name)), "get_all {}", name);
        prop_assert!(ha.values(name).eq(hb.values(name)), "values {}", name);
        prop_assert_eq!(ha.count(name), hb.count(name), "count {}", name);
        prop_assert_eq!(ha.contains(name), hb.contains(name), "contains {}", name);
        if let Some(k) = KnownHeader::lookup(name) {
            prop_assert_eq!(ha.get_known(k), hb.get_known(k), "get_known {}", name);
            // the known accessors agree with the name accessors on the reused message too
            prop_assert_eq!(hb.get_known(k), hb.get(name), "get_known/get {}", name);
            prop_assert!(
                ha.get_all_known(k).eq(hb.get_all_known(k)),
                "get_all_known {}",
                name
            );
            prop_assert_eq!(
                ha.get_single_known(k),
                hb.get_single_known(k),
                "get_single_known {}",
                name
            );
            prop_assert_eq!(ha.contains_known(k), hb.contains_known(k));
        }
    }
    Ok(())
}

/// What the caller does with a parsed message before the next parse.
#[derive(Debug, Clone, Copy)]
enum Recycle {
    /// `into_storage` on the message.
    Message,
    /// `into_storage` on a clone (the message itself is checked again afterwards).
    Clone,
    /// Headers edited (lines added and removed), then `into_storage` on the request or
    /// response.
    Edited,
    /// `Headers::into_storage`.
    Headers,
    /// The message is dropped: the next parse gets empty storage.
    Drop,
}

fn recycle() -> impl Strategy<Value = Recycle> {
    prop_oneof![
        3 => Just(Recycle::Message),
        1 => Just(Recycle::Clone),
        1 => Just(Recycle::Edited),
        1 => Just(Recycle::Headers),
        1 => Just(Recycle::Drop),
    ]
}

/// One input: a generated message, or a vector (RFC 4475, RFC 5118, MCPTT) with mutations.
#[derive(Debug, Clone)]
enum Input {
    Generated(Generated),
    Vector(prop::sample::Index, Vec<Mutation>),
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        message().prop_map(Input::Generated),
        (
            any::<prop::sample::Index>(),
            proptest::collection::vec(mutation(), 0..4)
        )
            .prop_map(|(i, m)| Input::Vector(i, m)),
    ]
}

fn bytes_of(input: &Input, corpus: &[Bytes]) -> Vec<u8> {
    match input {
        Input::Generated(g) => g.bytes.clone(),
        Input::Vector(i, muts) => {
            let mut b = corpus[i.index(corpus.len())].to_vec();
            for m in muts {
                apply(&mut b, m);
            }
            b
        }
    }
}

/// The default limits, or small ones that stop scans part way (after some lines were
/// indexed: the storage holds entries when the error comes).
fn limits(small: bool) -> Limits {
    if small {
        Limits {
            max_headers: 7,
            max_line_length: 80,
            max_head_size: 400,
            ..Limits::default()
        }
    } else {
        Limits::default()
    }
}

/// Hand the message's storage back the way `how` says; checks the bound.
fn give_back(m: Message, how: Recycle, storage: &mut HeaderStorage) -> Result<(), TestCaseError> {
    let lines = m.headers().len();
    match how {
        Recycle::Message => {
            *storage = m.into_storage();
            // the parse reserved the usual 16 lines; up to the bound they are kept
            if lines <= 16 {
                prop_assert!(storage.capacity() >= 16, "{:?}", storage);
            }
        }
        Recycle::Clone => {
            let (bytes, lines) = (m.encode(), format!("{:?}", m.headers()));
            *storage = m.clone().into_storage();
            // the message keeps its own index
            prop_assert_eq!(m.encode(), bytes);
            prop_assert_eq!(format!("{:?}", m.headers()), lines);
        }
        Recycle::Edited => {
            let mut m = m;
            let _ = m.headers_mut().push("X-Added", "1");
            m.headers_mut().remove("Via");
            *storage = match m {
                Message::Request(r) => r.into_storage(),
                Message::Response(r) => r.into_storage(),
            };
        }
        Recycle::Headers => {
            let h = m.headers().clone();
            *storage = h.into_storage();
        }
        Recycle::Drop => *storage = HeaderStorage::new(),
    }
    prop_assert!(storage.capacity() <= MAX, "kept {:?}", storage);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// A sequence of messages (valid, torture, mutated, some failing, some under small
    /// limits) parsed with one storage handed from message to message answers what
    /// `parse_with` answers on each.
    #[test]
    fn parse_with_reused_storage_equals_fresh_parse(
        steps in proptest::collection::vec((input(), any::<bool>(), recycle()), 1..8),
        initial in 0usize..100,
    ) {
        let corpus = corpus();
        let mut storage = HeaderStorage::with_capacity(initial);
        prop_assert!(storage.capacity() >= initial.min(MAX) && storage.capacity() <= MAX);
        let mut names: Vec<String> = Vec::new();
        for (input, small, how) in &steps {
            let wire = Bytes::from(bytes_of(input, &corpus));
            let limits = limits(*small);
            let fresh = Message::parse_with(wire.clone(), &limits);
            let reused = Message::parse_with_storage(wire, &limits, &mut storage);
            same(&fresh, &reused, &names)?;
            match reused {
                Ok(m) => {
                    // the storage moved into the message
                    prop_assert_eq!(storage.capacity(), 0);
                    names.extend(m.headers().iter().map(|(n, _)| n.to_owned()));
                    give_back(m, *how, &mut storage)?;
                }
                // a failed parse leaves the storage (bounded) with the caller
                Err(_) => prop_assert!(storage.capacity() <= MAX, "{:?}", storage),
            }
        }
    }

    /// `frame_parse_with_storage` over a stream of such messages, in chunks, with the storage
    /// handed back after each message, answers what `frame_parse` answers at every step.
    #[test]
    fn frame_parse_with_reused_storage_equals_frame_parse(
        steps in proptest::collection::vec((input(), recycle()), 1..6),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        small in any::<bool>(),
    ) {
        let corpus = corpus();
        let limits = limits(small);
        let mut wire = Vec::new();
        for (input, _) in &steps {
            wire.extend_from_slice(&bytes_of(input, &corpus));
        }
        let mut ends: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
        ends.push(wire.len());
        ends.sort_unstable();
        let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
        let (mut sa, mut sb) = (FrameScan::default(), FrameScan::default());
        let mut storage = HeaderStorage::new();
        let mut names: Vec<String> = Vec::new();
        let mut from = 0;
        let mut k = 0;
        'chunks: for &end in &ends {
            a.extend_from_slice(&wire[from..end]);
            b.extend_from_slice(&wire[from..end]);
            from = end;
            loop {
                let skip = keepalive_len(&a);
                let _ = a.split_to(skip);
                let _ = b.split_to(skip);
                let want = frame_parse(&mut a, &limits, &mut sa);
                let got = frame_parse_with_storage(&mut b, &limits, &mut sb, &mut storage);
                prop_assert_eq!(&a[..], &b[..]);
                prop_assert_eq!(sa, sb);
                match (want, got) {
                    (Ok(Framed::Message(x)), Ok(Framed::Message(y))) => {
                        same(&Ok(x), &Ok(y.clone()), &names)?;
                        prop_assert_eq!(storage.capacity(), 0);
                        names.extend(y.headers().iter().map(|(n, _)| n.to_owned()));
                        let how = steps.get(k).map_or(Recycle::Message, |s| s.1);
                        k += 1;
                        give_back(y, how, &mut storage)?;
                    }
                    (want, got) => {
                        prop_assert_eq!(&want, &got);
                        prop_assert!(storage.capacity() <= MAX, "{:?}", storage);
                        match got {
                            Ok(Framed::Malformed(..)) => {}
                            Ok(_) => break,
                            Err(_) => break 'chunks,
                        }
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A `Framer` handing messages out with `next_message_with_storage` (storage handed back
    /// after each) answers what `next_message` answers, chunk after chunk, keep-alives
    /// included.
    #[test]
    fn framer_with_reused_storage_equals_framer(
        steps in proptest::collection::vec((input(), recycle(), 0usize..3), 1..6),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        small in any::<bool>(),
    ) {
        let corpus = corpus();
        let limits = limits(small);
        let mut wire = Vec::new();
        for (input, _, pings) in &steps {
            for _ in 0..*pings {
                wire.extend_from_slice(b"\r\n\r\n");
            }
            wire.extend_from_slice(&bytes_of(input, &corpus));
        }
        let mut ends: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
        ends.push(wire.len());
        ends.sort_unstable();
        let (mut a, mut b) = (Framer::new(limits.clone()), Framer::new(limits));
        let mut storage = HeaderStorage::new();
        let mut names: Vec<String> = Vec::new();
        let (mut from, mut k) = (0, 0);
        'chunks: for &end in &ends {
            a.push(&wire[from..end]);
            b.push(&wire[from..end]);
            from = end;
            loop {
                let want = a.next_message();
                let got = b.next_message_with_storage(&mut storage);
                prop_assert_eq!(a.buffered(), b.buffered());
                prop_assert_eq!(a.take_pings(), b.take_pings());
                match (want, got) {
                    (Ok(Some(x)), Ok(Some(y))) => {
                        same(&Ok(x), &Ok(y.clone()), &names)?;
                        names.extend(y.headers().iter().map(|(n, _)| n.to_owned()));
                        let how = steps.get(k).map_or(Recycle::Message, |s| s.1);
                        k += 1;
                        give_back(y, how, &mut storage)?;
                    }
                    (want, got) => {
                        prop_assert_eq!(&want, &got);
                        prop_assert!(storage.capacity() <= MAX, "{:?}", storage);
                        if want.is_err() {
                            // sticky, on both
                            prop_assert_eq!(a.next_message(), b.next_message_with_storage(&mut storage));
                            break 'chunks;
                        }
                        break;
                    }
                }
            }
        }
    }
}

/// The RFC 4475 and RFC 5118 vectors and the MCPTT messages, in order and then in reverse,
/// all through one storage (each parse follows a different message, valid or not).
#[test]
fn torture_vectors_with_one_storage_parse_as_fresh() {
    let mut wires = Vec::new();
    for row in table(&data("rfc4475.expect"), 6) {
        wires.push(read(&testdata(&format!("rfc4475/{}.dat", row[0]))));
    }
    for row in table(&data("rfc5118.expect"), 3) {
        wires.push(read(&testdata(&format!(
            "rfc5118/wire-crlf/{}.dat",
            row[0]
        ))));
    }
    let mut paths: Vec<_> = std::fs::read_dir(data("mcptt"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    wires.extend(paths.iter().map(|p| read(p)));
    assert!(wires.len() > 50, "{} vectors", wires.len());
    let (mut ok, mut failed) = (0, 0);
    for order in [false, true] {
        let mut storage = HeaderStorage::new();
        let seq: Vec<&Bytes> = if order {
            wires.iter().rev().collect()
        } else {
            wires.iter().collect()
        };
        for wire in seq {
            for lim in [false, true] {
                let limits = limits(lim);
                let fresh = Message::parse_with(wire.clone(), &limits);
                let reused = Message::parse_with_storage(wire.clone(), &limits, &mut storage);
                same(&fresh, &reused, &[]).unwrap();
                match reused {
                    Ok(m) => {
                        ok += 1;
                        storage = m.into_storage();
                    }
                    Err(_) => failed += 1,
                }
                assert!(storage.capacity() <= MAX);
            }
        }
    }
    // both outcomes were exercised with storage left by the other
    assert!(ok > 50 && failed > 20, "ok {ok}, failed {failed}");
}

fn with_lines(n: usize, last: &str) -> Bytes {
    let mut s = String::from("OPTIONS sip:a@example.com SIP/2.0\r\n");
    for i in 0..n {
        s.push_str(&format!("X-H{i}: {i}\r\n"));
    }
    s.push_str(last);
    s.push_str("Content-Length: 0\r\n\r\n");
    Bytes::from(s)
}

#[test]
fn storage_that_grew_past_the_bound_is_freed() {
    let limits = Limits::default();
    let mut storage = HeaderStorage::new();
    // a usual message: its storage is kept whole
    let m = Message::parse_with_storage(with_lines(20, ""), &limits, &mut storage).unwrap();
    storage = m.into_storage();
    let kept = storage.capacity();
    assert!((21..=MAX).contains(&kept), "{kept}");
    // the same size again: no growth
    let m = Message::parse_with_storage(with_lines(20, ""), &limits, &mut storage).unwrap();
    storage = m.into_storage();
    assert_eq!(storage.capacity(), kept);
    // a message of 100 lines grows it past the bound: handed back, it is freed
    let m = Message::parse_with_storage(with_lines(100, ""), &limits, &mut storage).unwrap();
    assert_eq!(m.headers().len(), 101);
    storage = m.into_storage();
    assert_eq!(storage.capacity(), 0);
    // a failed parse that grew it past the bound frees it too
    let mut storage = HeaderStorage::with_capacity(MAX);
    let err = Message::parse_with_storage(with_lines(200, ""), &limits, &mut storage);
    assert!(
        matches!(err, Err(Error::TooManyHeaders { limit: 128 })),
        "{err:?}"
    );
    assert_eq!(storage.capacity(), 0);
    // one that failed within the bound keeps its storage
    let mut storage = HeaderStorage::with_capacity(16);
    let err = Message::parse_with_storage(with_lines(40, "CSeq: x\r\n"), &limits, &mut storage);
    assert!(matches!(err, Err(Error::Header { .. })), "{err:?}");
    assert!((40..=MAX).contains(&storage.capacity()), "{storage:?}");
    // a start-line error takes nothing from the storage
    let cap = storage.capacity();
    let err =
        Message::parse_with_storage(Bytes::from_static(b"bad\r\n\r\n"), &limits, &mut storage);
    assert!(err.is_err());
    assert_eq!(storage.capacity(), cap);
    // requested capacity is bounded as well
    assert_eq!(HeaderStorage::with_capacity(100_000).capacity(), MAX);
    assert_eq!(HeaderStorage::new().capacity(), 0);
}

#[test]
fn the_known_header_index_starts_afresh_on_reuse() {
    let limits = Limits::default();
    let first = Bytes::from_static(
        b"SUBSCRIBE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TLS a;branch=z9hG4bK1\r\nv: SIP/2.0/TLS b;branch=z9hG4bK2\r\n\
Event: x\r\nContact: <sip:c@d>\r\nRecord-Route: <sip:p>\r\nCall-ID: one\r\nContent-Length: 0\r\n\r\n",
    );
    // the same identifiers at other positions, and some missing
    let second = Bytes::from_static(
        b"SIP/2.0 200 OK\r\nCall-ID: two\r\nX-Pad: 1\r\nX-Pad: 2\r\nVia: SIP/2.0/TLS z;branch=z9hG4bK9\r\n\
Content-Length: 0\r\n\r\n",
    );
    let mut storage = HeaderStorage::new();
    let m = Message::parse_with_storage(first, &limits, &mut storage).unwrap();
    assert_eq!(m.headers().get_single_known(KnownHeader::Via), None);
    storage = m.into_storage();
    let m = Message::parse_with_storage(second, &limits, &mut storage).unwrap();
    let h = m.headers();
    assert_eq!(h.get_known(KnownHeader::CallId), Some("two"));
    assert_eq!(
        h.get_single_known(KnownHeader::Via),
        Some("SIP/2.0/TLS z;branch=z9hG4bK9")
    );
    assert_eq!(h.get_known(KnownHeader::Event), None);
    assert_eq!(h.get_known(KnownHeader::Contact), None);
    assert!(!h.contains_known(KnownHeader::RecordRoute));
    assert_eq!(h.get_all_known(KnownHeader::Via).count(), 1);
    assert_eq!(h.get_all("x-pad").collect::<Vec<_>>(), ["1", "2"]);
}

#[test]
fn frame_parse_keeps_the_storage_when_no_message_comes_out() {
    let limits = Limits::default();
    let mut scan = FrameScan::default();
    let mut storage = HeaderStorage::with_capacity(16);
    // the head is whole, the body is not: partial, and the one-pass head goes back
    let mut buf = BytesMut::from(
        &b"MESSAGE sip:a@b SIP/2.0\r\nCall-ID: c\r\nContent-Length: 4\r\n\r\nab"[..],
    );
    let got = frame_parse_with_storage(&mut buf, &limits, &mut scan, &mut storage).unwrap();
    assert_eq!(got, Framed::Partial);
    assert_eq!(storage.capacity(), 16);
    buf.extend_from_slice(b"cd");
    let Framed::Message(m) =
        frame_parse_with_storage(&mut buf, &limits, &mut scan, &mut storage).unwrap()
    else {
        panic!("a message")
    };
    assert_eq!(&m.body()[..], b"abcd");
    assert_eq!(storage.capacity(), 0);
    storage = m.into_storage();
    assert_eq!(storage.capacity(), 16);
    // framed but malformed (a head that is not UTF-8): the bytes come out, the storage stays
    // (and a Request-URI that does not parse, the other error found after the head parse)
    let bad_utf8 = &b"MESSAGE sip:a@b SIP/2.0\r\nSubject: \xff\r\nContent-Length: 0\r\n\r\n"[..];
    let bad_uri = &b"MESSAGE sip:[::1 SIP/2.0\r\nCall-ID: c\r\nContent-Length: 2\r\n\r\nhi"[..];
    for wire in [bad_utf8, bad_uri] {
        let mut buf = BytesMut::from(wire);
        buf.extend_from_slice(b"OPTIONS");
        let mut fresh = buf.clone();
        let got = frame_parse_with_storage(&mut buf, &limits, &mut scan, &mut storage).unwrap();
        let Framed::Malformed(bytes, e) = &got else {
            panic!("{got:?}")
        };
        assert!(
            matches!(e, Error::Header { .. } | Error::Uri { .. }),
            "{e:?}"
        );
        // the message's bytes, and nothing after them
        assert_eq!(&bytes[..], wire);
        assert_eq!(
            got,
            frame_parse(&mut fresh, &limits, &mut FrameScan::default()).unwrap()
        );
        assert_eq!(storage.capacity(), 16);
        assert_eq!(&buf[..], b"OPTIONS");
    }
}
