//! Property tests: generated messages round-trip, mutated bytes never panic, stream framing
//! over any chunking equals whole-buffer parsing, limits are enforced.

use mcptt_sip::{Bytes, BytesMut, Error, FrameScan, Framed, Framer, Limits, Message};
use proptest::prelude::*;

use crate::common::{data, read, table, testdata};
use crate::generate::{Generated, message};

/// Header values keep the CRLF of folded lines; the generator folded single spaces into
/// CRLF SP or CRLF HTAB.
fn unfold(v: &str) -> String {
    v.replace("\r\n ", " ").replace("\r\n\t", " ")
}

fn check_generated(g: &Generated) -> Result<(), TestCaseError> {
    let bytes = Bytes::from(g.bytes.clone());
    let m = Message::parse(bytes).map_err(|e| {
        TestCaseError::fail(format!("parse: {e}\n{}", String::from_utf8_lossy(&g.bytes)))
    })?;
    // Typed values are the generated ones.
    prop_assert_eq!(m.call_id(), Some(g.call_id.as_str()));
    let cseq = m
        .cseq()
        .map_err(|e| TestCaseError::fail(format!("cseq: {e}")))?;
    prop_assert_eq!(cseq.seq, g.cseq);
    prop_assert_eq!(cseq.method.to_string(), g.method.clone());
    match (&m, g.status) {
        (Message::Request(r), None) => prop_assert_eq!(r.method().to_string(), g.method.clone()),
        (Message::Response(r), Some(code)) => prop_assert_eq!(r.status(), code),
        _ => prop_assert!(false, "request/response mixed up"),
    }
    for (name, value) in &g.extra {
        // First occurrence of this name (names may repeat).
        let first = g
            .extra
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v);
        if first == Some(value) {
            let got = m.headers().get(name).map(unfold);
            prop_assert_eq!(got.as_deref(), Some(value.as_str()), "header {}", name);
        }
    }
    prop_assert_eq!(&m.body()[..], &g.body[..]);
    prop_assert!(m.via().is_ok() && m.from().is_ok() && m.to().is_ok());
    // Byte for byte, and parse(encode(m)) == m.
    let enc = m.encode();
    prop_assert_eq!(&enc[..], &g.bytes[..]);
    let again = Message::parse(enc).map_err(|e| TestCaseError::fail(format!("re-parse: {e}")))?;
    prop_assert!(again == m, "parse(encode(m)) != m");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn generated_messages_round_trip(g in message()) {
        check_generated(&g)?;
    }

    /// Editing headers (replace, push, remove) then encoding gives a message that parses back
    /// equal, with the edits visible.
    #[test]
    fn edited_messages_round_trip(
        g in message(),
        value in "[A-Za-z0-9.;=@-]{1,20}",
        n in 0usize..4,
    ) {
        let mut m = Message::parse(Bytes::from(g.bytes)).unwrap();
        for i in 0..n {
            m.headers_mut().push(&format!("X-Added-{i}"), &value).unwrap();
        }
        m.headers_mut().replace("Call-ID", &value).unwrap();
        let removed = m.headers_mut().remove("CSeq");
        prop_assert_eq!(removed, 1);
        let enc = m.encode();
        let again = Message::parse(enc.clone()).unwrap();
        prop_assert!(again == m);
        prop_assert_eq!(again.call_id(), Some(value.as_str()));
        prop_assert!(again.headers().get("CSeq").is_none());
        prop_assert_eq!(again.headers().count("X-Added-0"), usize::from(n > 0));
        prop_assert_eq!(again.encode(), enc);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// `Response::encode_head_for` writes what `Response::from_request` encodes (before its
    /// Content-Length line), and with a To tag what the builder's `to_tag` gives.
    #[test]
    fn encode_head_for_equals_from_request(
        g in message(),
        code in prop::sample::select(vec![100u16, 180, 200, 202, 403, 481, 489, 500, 603]),
    ) {
        let Ok(Message::Request(req)) = Message::parse(Bytes::from(g.bytes)) else {
            return Ok(());
        };
        let mut out = Vec::new();
        mcptt_sip::Response::encode_head_for(&req, code, None, &mut out);
        out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
        let want = mcptt_sip::Response::from_request(&req, code).encode();
        prop_assert_eq!(&out[..], &want[..]);
        out.clear();
        // As documented: a tag only for a To without one.
        let tag = req.to().is_ok_and(|t| t.tag().is_none()).then_some("t4g");
        mcptt_sip::Response::encode_head_for(&req, code, tag, &mut out);
        out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
        let tagged = mcptt_sip::Response::parse(Bytes::from(out)).unwrap();
        let built = mcptt_sip::Response::builder_for(&req, code).to_tag("t4g").build().unwrap();
        prop_assert_eq!(tagged.to().unwrap(), built.to().unwrap());
        let names = |r: &mcptt_sip::Response| {
            r.headers().iter().map(|(n, v)| (n.to_owned(), v.to_owned())).collect::<Vec<_>>()
        };
        prop_assert_eq!(names(&tagged).len(), names(&built).len());
    }
}

/// Every vector we have: the seeds of the mutation test.
pub(crate) fn corpus() -> Vec<Bytes> {
    let mut out = Vec::new();
    for row in table(&data("rfc4475.expect"), 6) {
        out.push(read(&testdata(&format!("rfc4475/{}.dat", row[0]))));
    }
    for row in table(&data("rfc5118.expect"), 3) {
        out.push(read(&testdata(&format!(
            "rfc5118/wire-crlf/{}.dat",
            row[0]
        ))));
    }
    for e in std::fs::read_dir(data("mcptt")).unwrap() {
        out.push(read(&e.unwrap().path()));
    }
    out
}

#[derive(Debug, Clone)]
pub(crate) enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    Duplicate(usize, usize),
}

pub(crate) fn mutation() -> impl Strategy<Value = Mutation> {
    let special = prop_oneof![
        Just(b"\r\n".to_vec()),
        Just(b"\r\n ".to_vec()),
        Just(b":".to_vec()),
        Just(b";".to_vec()),
        Just(b",".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"<".to_vec()),
        Just(b">".to_vec()),
        Just(b"%".to_vec()),
        Just(b"[".to_vec()),
        Just(b"\0".to_vec()),
        Just(b"99999999999999999999".to_vec()),
        Just(b"Content-Length: 5\r\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 1..8),
    ];
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(p, bit)| Mutation::Flip(p, bit)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), special).prop_map(|(p, b)| Mutation::Insert(p, b)),
        (any::<usize>(), 1usize..16).prop_map(|(p, n)| Mutation::Remove(p, n)),
        (any::<usize>(), 1usize..32).prop_map(|(p, n)| Mutation::Duplicate(p, n)),
    ]
}

pub(crate) fn apply(buf: &mut Vec<u8>, m: &Mutation) {
    if buf.is_empty() {
        return;
    }
    let len = buf.len();
    match m {
        Mutation::Flip(p, bit) => buf[p % len] ^= 1 << bit,
        Mutation::Truncate(p) => buf.truncate(p % len),
        Mutation::Insert(p, b) => {
            let p = p % (len + 1);
            buf.splice(p..p, b.iter().copied());
        }
        Mutation::Remove(p, n) => {
            let p = p % len;
            let end = (p + n).min(len);
            buf.drain(p..end);
        }
        Mutation::Duplicate(p, n) => {
            let p = p % len;
            let end = (p + n).min(len);
            let piece = buf[p..end].to_vec();
            buf.splice(p..p, piece);
        }
    }
}

/// Everything a user may call on a parsed message; none of it may panic.
fn exercise(m: &Message) {
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
    if let Message::Request(r) = m {
        let _ = r.uri().to_string();
        let _ = r.check(&mcptt_sip::Policy::default());
    }
    if let Ok(Some(ct)) = m.content_type() {
        if ct.mime_type().eq_ignore_ascii_case("multipart") {
            let _ = mcptt_sip::body::Multipart::parse(&ct, m.body());
        }
        if ct.subtype().eq_ignore_ascii_case("sip") {
            let _ = mcptt_sip::body::message_sip::parse(m.body());
        }
    }
    for (name, _) in m.headers().iter() {
        let _ = m.headers().values(name).count();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn mutated_bytes_never_panic(
        seed in any::<prop::sample::Index>(),
        muts in proptest::collection::vec(mutation(), 1..6),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let corpus = corpus();
        let mut buf = corpus[seed.index(corpus.len())].to_vec();
        for m in &muts {
            apply(&mut buf, m);
        }
        let bytes = Bytes::from(buf.clone());
        if let Ok(m) = Message::parse(bytes) {
            exercise(&m);
            // What parses, encodes and parses again to the same message.
            let enc = m.encode();
            let again = Message::parse(enc.clone());
            prop_assert!(again.as_ref().is_ok_and(|a| *a == m), "re-parse of {:?}", String::from_utf8_lossy(&enc));
        }
        // The framer on the same bytes, in one go and byte by byte.
        let mut f = Framer::new(Limits::default());
        f.push(&buf);
        for _ in 0..8 {
            match f.next_message() {
                Ok(Some(m)) => exercise(&m),
                Ok(None) | Err(_) => break,
            }
        }
        let _ = mcptt_sip::frame(&buf, &Limits::default());
        // frame_parse over the bytes in chunks answers what frame_resume + parse_with answer
        let mut ends: Vec<usize> = cuts.iter().map(|c| c.index(body_len(&buf) + 1)).collect();
        ends.push(body_len(&buf));
        ends.sort_unstable();
        for limits in [Limits::default(), Limits { max_line_length: 64, max_head_size: 256, ..Limits::default() }] {
            let body = &buf[mcptt_sip::keepalive_len(&buf)..];
            let (mut fast, mut slow) = (BytesMut::new(), BytesMut::new());
            let (mut fs, mut ss) = (FrameScan::default(), FrameScan::default());
            let mut from = 0;
            'chunks: for &end in &ends {
                fast.extend_from_slice(&body[from..end]);
                slow.extend_from_slice(&body[from..end]);
                from = end;
                for _ in 0..8 {
                    let got = mcptt_sip::frame_parse(&mut fast, &limits, &mut fs);
                    let want = two_pass(&mut slow, &limits, &mut ss);
                    prop_assert_eq!(&got, &want);
                    prop_assert_eq!(&fast[..], &slow[..]);
                    match got {
                        Ok(Framed::Partial) | Err(_) => break,
                        Ok(_) if fast.first().is_some_and(|&b| b == b'\r' || b == b'\n') => break 'chunks,
                        Ok(_) => {}
                    }
                }
            }
        }
        // frame_resume over growing prefixes answers what frame() answers on each prefix
        // (keep-alives skipped first, as the contract asks).
        let body = &buf[mcptt_sip::keepalive_len(&buf)..];
        let small = Limits { max_line_length: 64, max_head_size: 256, ..Limits::default() };
        for limits in [Limits::default(), small] {
            let mut scan = FrameScan::default();
            let mut ends: Vec<usize> = cuts.iter().map(|c| c.index(body.len() + 1)).collect();
            ends.push(body.len());
            ends.sort_unstable();
            for &end in &ends {
                let prefix = &body[..end];
                let resumed = mcptt_sip::frame_resume(prefix, &limits, &mut scan);
                prop_assert_eq!(&resumed, &mcptt_sip::frame(prefix, &limits), "prefix {}", end);
                if resumed.is_err() {
                    break;
                }
            }
        }
    }
}

/// Bytes after the leading keep-alives.
fn body_len(buf: &[u8]) -> usize {
    buf.len() - mcptt_sip::keepalive_len(buf)
}

/// What `frame_parse` owes: `frame_resume`, then on a whole message split it off and
/// `parse_with` it.
fn two_pass(buf: &mut BytesMut, limits: &Limits, scan: &mut FrameScan) -> Result<Framed, Error> {
    match mcptt_sip::frame_resume(buf, limits, scan)? {
        mcptt_sip::Status::Partial => Ok(Framed::Partial),
        mcptt_sip::Status::Complete(n) => {
            scan.reset();
            let bytes = buf.split_to(n).freeze();
            Ok(match Message::parse_with(bytes.clone(), limits) {
                Ok(m) => Framed::Message(m),
                Err(e) => Framed::Malformed(bytes, e),
            })
        }
    }
}

/// Drain a framer: the messages it yields, then `Ok(())` when it wants more bytes or the error.
fn drain(f: &mut Framer, out: &mut Vec<Message>) -> Result<(), Error> {
    while let Some(m) = f.next_message()? {
        out.push(m);
    }
    Ok(())
}

/// Generated messages back to back, with CRLF keep-alives (RFC 5626) between some.
fn stream() -> impl Strategy<Value = (Vec<Generated>, Vec<usize>)> {
    (
        proptest::collection::vec(message(), 1..6),
        proptest::collection::vec(0usize..3, 6),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn stream_framing_over_any_chunking_equals_whole_parse(
        (msgs, keepalives) in stream(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut wire = Vec::new();
        for (i, g) in msgs.iter().enumerate() {
            // Double-CRLF pings and single-CRLF pongs (RFC 5626 §3.5.1).
            for k in 0..keepalives[i] {
                wire.extend_from_slice(if k % 2 == 0 { b"\r\n\r\n" } else { b"\r\n" });
            }
            wire.extend_from_slice(&g.bytes);
        }
        let want: Vec<Message> =
            msgs.iter().map(|g| Message::parse(Bytes::from(g.bytes.clone())).unwrap()).collect();

        // Whole buffer at once.
        let mut f = Framer::new(Limits::default());
        f.push(&wire);
        let mut whole = Vec::new();
        drain(&mut f, &mut whole).unwrap();
        prop_assert!(whole == want, "whole-buffer framing differs");

        // The same bytes in arbitrary chunks, draining after each.
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
        points.push(0);
        points.push(wire.len());
        points.sort_unstable();
        let mut f = Framer::new(Limits::default());
        let mut chunked = Vec::new();
        for w in points.windows(2) {
            f.push(&wire[w[0]..w[1]]);
            drain(&mut f, &mut chunked).unwrap();
        }
        prop_assert!(chunked == want, "chunked framing differs");
        for (got, g) in chunked.iter().zip(&msgs) {
            prop_assert_eq!(&got.encode()[..], &g.bytes[..]);
        }

        // frame_parse over the same chunks (keep-alives skipped by the caller).
        let mut buf = BytesMut::new();
        let mut scan = FrameScan::default();
        let mut got = Vec::new();
        for w in points.windows(2) {
            buf.extend_from_slice(&wire[w[0]..w[1]]);
            loop {
                let k = mcptt_sip::keepalive_len(&buf);
                let _ = buf.split_to(k);
                match mcptt_sip::frame_parse(&mut buf, &Limits::default(), &mut scan).unwrap() {
                    Framed::Partial => break,
                    Framed::Message(m) => got.push(m),
                    Framed::Malformed(_, e) => prop_assert!(false, "malformed: {e}"),
                }
            }
        }
        prop_assert!(got == want, "frame_parse differs");

        // frame() on the whole buffer finds the same boundaries.
        let mut pos = 0;
        for g in &msgs {
            while wire[pos..].starts_with(b"\r\n") {
                pos += 2;
            }
            match mcptt_sip::frame(&wire[pos..], &Limits::default()).unwrap() {
                mcptt_sip::Status::Complete(n) => prop_assert_eq!(n, g.bytes.len()),
                mcptt_sip::Status::Partial => prop_assert!(false, "partial on a whole message"),
            }
            pos += g.bytes.len();
        }
    }

    /// Any strict prefix of a message is `Partial`, never an error or a message.
    #[test]
    fn every_prefix_is_partial(g in message(), cut in any::<prop::sample::Index>()) {
        let cut = cut.index(g.bytes.len());
        let prefix = &g.bytes[..cut];
        prop_assert!(matches!(mcptt_sip::frame(prefix, &Limits::default()), Ok(mcptt_sip::Status::Partial)));
        let mut f = Framer::new(Limits::default());
        f.push(prefix);
        prop_assert!(matches!(f.next_message(), Ok(None)));
    }
}

fn register() -> Vec<u8> {
    read(&data("mcptt/register.sip")).to_vec()
}

fn publish() -> Vec<u8> {
    read(&data("mcptt/publish.sip")).to_vec()
}

/// Both parse entry points and the framer report `want` for `bytes` under `limits`
/// (`frame()` only finds message ends: it enforces the size limits, not the header count).
fn rejected(bytes: &[u8], limits: &Limits, want: fn(&Error) -> bool) {
    let parse = Message::parse_with(Bytes::copy_from_slice(bytes), limits);
    assert!(parse.as_ref().is_err_and(want), "parse_with: {parse:?}");
    if limits.max_headers == Limits::default().max_headers {
        let frame = mcptt_sip::frame(bytes, limits);
        assert!(frame.as_ref().is_err_and(want), "frame: {frame:?}");
    }
    let mut f = Framer::new(limits.clone());
    f.push(bytes);
    let framed = f.next_message();
    assert!(framed.as_ref().is_err_and(want), "framer: {framed:?}");
}

fn accepted(bytes: &[u8], limits: &Limits) {
    Message::parse_with(Bytes::copy_from_slice(bytes), limits).unwrap();
    let mut f = Framer::new(limits.clone());
    f.push(bytes);
    assert!(f.next_message().unwrap().is_some());
}

#[test]
fn limits_have_safe_defaults() {
    let l = Limits::default();
    assert!(l.max_message_size >= 8 * 1024 && l.max_message_size <= 1024 * 1024);
    assert!(l.max_headers >= 64 && l.max_headers <= 1024);
    assert!(l.max_body_size <= l.max_message_size);
    assert!(l.max_head_size <= l.max_message_size);
}

#[test]
fn limit_message_size() {
    let msg = publish();
    let tight = Limits {
        max_message_size: msg.len() - 1,
        ..Limits::default()
    };
    rejected(&msg, &tight, |e| matches!(e, Error::MessageTooLarge { .. }));
    accepted(
        &msg,
        &Limits {
            max_message_size: msg.len(),
            ..Limits::default()
        },
    );
}

#[test]
fn limit_body_size() {
    let msg = publish();
    let body = Message::parse(Bytes::from(msg.clone()))
        .unwrap()
        .body()
        .len();
    let tight = Limits {
        max_body_size: body - 1,
        ..Limits::default()
    };
    rejected(&msg, &tight, |e| matches!(e, Error::BodyTooLarge { .. }));
    assert_eq!(
        Error::BodyTooLarge { size: 2, limit: 1 }.status_code(),
        Some(413)
    );
    accepted(
        &msg,
        &Limits {
            max_body_size: body,
            ..Limits::default()
        },
    );
}

#[test]
fn limit_header_count() {
    let msg = register();
    let count = Message::parse(Bytes::from(msg.clone()))
        .unwrap()
        .headers()
        .len();
    let tight = Limits {
        max_headers: count - 1,
        ..Limits::default()
    };
    rejected(&msg, &tight, |e| matches!(e, Error::TooManyHeaders { .. }));
    accepted(
        &msg,
        &Limits {
            max_headers: count,
            ..Limits::default()
        },
    );
}

#[test]
fn limit_line_length() {
    let msg = register();
    let longest = msg
        .split(|&b| b == b'\n')
        .map(|l| l.len() + 1)
        .max()
        .unwrap();
    let tight = Limits {
        max_line_length: longest - 3,
        ..Limits::default()
    };
    rejected(&msg, &tight, |e| matches!(e, Error::LineTooLong { .. }));
    accepted(
        &msg,
        &Limits {
            max_line_length: longest,
            ..Limits::default()
        },
    );
}

#[test]
fn limit_head_size() {
    let msg = publish();
    let head = msg.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let tight = Limits {
        max_head_size: head - 10,
        ..Limits::default()
    };
    rejected(&msg, &tight, |e| matches!(e, Error::HeadTooLarge { .. }));
    accepted(
        &msg,
        &Limits {
            max_head_size: head,
            ..Limits::default()
        },
    );
}

#[test]
fn limit_uri_length() {
    let user = "u".repeat(300);
    let msg = format!(
        "OPTIONS sip:{user}@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    let uri_len = "sip:".len() + user.len() + "@example.com".len();
    let tight = Limits {
        max_uri_length: uri_len - 1,
        ..Limits::default()
    };
    let e = Message::parse_with(Bytes::from(msg.clone()), &tight).unwrap_err();
    assert!(matches!(e, Error::UriTooLong { .. }), "{e:?}");
    assert_eq!(e.status_code(), Some(414));
    Message::parse_with(
        Bytes::from(msg),
        &Limits {
            max_uri_length: uri_len,
            ..Limits::default()
        },
    )
    .unwrap();
}

/// A stream announcing a huge body is refused as soon as the head is in, before buffering it.
#[test]
fn framer_refuses_oversized_announcements_before_buffering() {
    let head = b"MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 MESSAGE\r\nContent-Length: 1000000000\r\n\r\n";
    let mut f = Framer::new(Limits::default());
    f.push(head);
    let e = f.next_message().unwrap_err();
    assert!(
        matches!(
            e,
            Error::BodyTooLarge { .. } | Error::MessageTooLarge { .. }
        ),
        "{e:?}"
    );
    assert!(matches!(
        mcptt_sip::frame(head, &Limits::default()),
        Err(Error::BodyTooLarge { .. } | Error::MessageTooLarge { .. })
    ));
    // An endless header section is refused once it passes the head limit.
    let mut f = Framer::new(Limits::default());
    f.push(b"OPTIONS sip:a@b SIP/2.0\r\n");
    let line = b"X-Filler: 0123456789012345678901234567890123456789\r\n";
    let mut refused = None;
    for i in 0..2000 {
        f.push(line);
        if let Err(e) = f.next_message() {
            refused = Some((i, e));
            break;
        }
    }
    let (i, e) = refused.expect("never refused");
    assert!(
        i * line.len() <= Limits::default().max_head_size + line.len(),
        "refused late: {i}"
    );
    assert!(e.is_limit(), "{e:?}");
}

#[test]
fn stream_without_content_length_is_an_error() {
    let msg = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n";
    let mut f = Framer::new(Limits::default());
    f.push(msg);
    let e = f.next_message().unwrap_err();
    assert_eq!(e, Error::MissingContentLength);
    assert_eq!(e.status_code(), Some(400));
    // Datagram style it is fine (the body is the rest: empty).
    assert!(
        Message::parse(Bytes::from_static(msg))
            .unwrap()
            .body()
            .is_empty()
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Typed values: parse(text) displays as the same text, and parses back equal.
    #[test]
    fn typed_values_round_trip(
        uri in crate::generate::sip_uri(),
        display in proptest::option::of("[A-Za-z0-9 .,]{1,16}"),
        tag in crate::generate::token(),
        host in crate::generate::host(),
        port in crate::generate::port(),
        branch in "[A-Za-z0-9.-]{1,16}",
        seq in any::<u32>(),
        expires in any::<u32>(),
        q in 0u16..=1000,
    ) {
        let u = mcptt_sip::Uri::parse(&uri).unwrap();
        prop_assert_eq!(u.to_string(), uri.as_str());
        prop_assert_eq!(mcptt_sip::Uri::parse(&u.to_string()).unwrap(), u);

        let na_text = match &display {
            Some(d) => format!("\"{d}\" <{uri}>;tag={tag}"),
            None => format!("<{uri}>;tag={tag}"),
        };
        let na = mcptt_sip::NameAddr::parse(&na_text).unwrap();
        prop_assert_eq!(na.to_string(), na_text.as_str());
        prop_assert_eq!(na.tag(), Some(tag.as_str()));
        let shown = na.display_name().map(|d| d.into_owned());
        prop_assert_eq!(shown, display);
        prop_assert_eq!(mcptt_sip::NameAddr::parse(&na.to_string()).unwrap(), na);

        let via_text = format!("SIP/2.0/TLS {host}{port};branch=z9hG4bK{branch};rport");
        let via = mcptt_sip::Via::parse(&via_text).unwrap();
        prop_assert_eq!(via.to_string(), via_text.as_str());
        prop_assert_eq!(via.host(), host.as_str());
        prop_assert_eq!(via.port(), port.strip_prefix(':').map(|p| p.parse::<u16>().unwrap()));
        let want_branch = format!("z9hG4bK{branch}");
        prop_assert_eq!(via.branch(), Some(want_branch.as_str()));
        prop_assert_eq!(mcptt_sip::Via::parse(&via.to_string()).unwrap(), via);

        let cseq = mcptt_sip::CSeq::parse(&format!("{seq} REGISTER")).unwrap();
        prop_assert_eq!(cseq.seq, seq);
        prop_assert_eq!(mcptt_sip::CSeq::parse(&cseq.to_string()).unwrap(), cseq);

        let q_text = format!("{}.{:03}", q / 1000, q % 1000);
        let contact_text = format!(
            "<{uri}>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000a95a0e128>\";+g.3gpp.mcptt;\
             +g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.mcptt\";q={q_text};expires={expires}"
        );
        let c = mcptt_sip::Contact::parse(&contact_text).unwrap();
        prop_assert_eq!(c.to_string(), contact_text.as_str());
        prop_assert_eq!(c.expires(), Some(expires));
        prop_assert_eq!(c.q_millis(), Some(q));
        prop_assert_eq!(
            c.icsi_ref(),
            Some("urn:urn-7:3gpp-service.ims.icsi.mcptt".to_owned())
        );
        prop_assert_eq!(mcptt_sip::Contact::parse(&c.to_string()).unwrap(), c);
    }
}

/// A folded Content-Length (`Content-Length:` CRLF SP `0`): the framing scan reads the
/// physical line, finds no number and fails; frame_parse must fail the same way rather than
/// take the header scan's unfolded value (found by `mutated_bytes_never_panic` on dblreq).
#[test]
fn folded_content_length_frames_as_in_two_passes() {
    for tail in [
        "",
        "\r\nINVITE sip:b@c SIP/2.0\r\nContent-Length: 0\r\n\r\n",
    ] {
        let wire = format!(
            "REGISTER sip:example.com SIP/2.0\r\nCall-ID: a\r\nContent-Length:\r\n 0\r\n\r\n{tail}"
        );
        for limits in [
            Limits::default(),
            Limits {
                max_line_length: 64,
                ..Limits::default()
            },
        ] {
            let (mut fast, mut slow) =
                (BytesMut::from(wire.as_str()), BytesMut::from(wire.as_str()));
            let (mut fs, mut ss) = (FrameScan::default(), FrameScan::default());
            let got = mcptt_sip::frame_parse(&mut fast, &limits, &mut fs);
            let want = two_pass(&mut slow, &limits, &mut ss);
            assert!(matches!(want, Err(Error::Header { .. })), "{want:?}");
            assert_eq!(got, want);
            assert_eq!(fast, slow);
        }
    }
}
