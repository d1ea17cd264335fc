//! Repeat one parsing workload N times, for instruction counts on a busy machine:
//! `valgrind --tool=callgrind target/release/examples/sip-profile WORKLOAD N` at two values
//! of N (the difference divided by the difference of N is the per-iteration cost).
//!
//! Workloads (each over the 680-byte MCPTT REGISTER of `tests/data/mcptt/register.sip` or
//! the 200 OK built from it):
//! - `frame_parse_register`, `frame_parse_ok`: [`frame`] then [`Message::parse_with`] of 32
//!   pipelined copies (the `tls_frame_parse` bench rows);
//! - `parse`: [`Message::parse`] and the Call-ID (the `sip_parse/register` row);
//! - `parse_reused`: the same with [`Message::parse_with_storage`], the header storage handed
//!   back after each message (the `sip_parse/register/mcptt_sip_reused_storage` row);
//! - `frame_parse_one_pass_register`, `frame_parse_one_pass_ok`: the same with
//!   [`frame_parse`] (one pass over each head);
//! - `frame_parse_one_pass_register_reused`, `frame_parse_one_pass_ok_reused`: the same with
//!   [`frame_parse_with_storage`], the header storage handed back after each message;
//! - `framer`: a [`Framer`] fed 32 pipelined copies in 1400-byte segments; `framer_reused`:
//!   the same with [`Framer::next_message_with_storage`], the storage handed back;
//! - `frame_parse_segments`, `frame_parse_segments_reused`: [`frame_parse`] (and
//!   [`frame_parse_with_storage`]) over a read buffer fed the same 1400-byte segments, as a
//!   transport does (messages cut by a segment end take the two-pass path);
//! - `typed`: parse, then Via, From/To tags, Call-ID, CSeq, Contact and Content-Length;
//! - `sign_in`: the SIP side of one `mcptt-service-state` sign-in (its `profile_sign_in`
//!   messages): parse a PUBLISH (12 headers), a SUBSCRIBE (15) and a 200 OK (6), read the
//!   headers the server reads, and write two answers with [`Response::encode_head_for`];
//! - `sign_in_reused`: the same with one [`HeaderStorage`] handed from message to message.
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;

use mcptt_sip::{
    Bytes, BytesMut, FrameScan, Framed, Framer, HeaderStorage, KnownHeader, Limits, Message,
    Response, Status, frame, frame_parse, frame_parse_with_storage,
};

const REGISTER: &[u8] = include_bytes!("../tests/data/mcptt/register.sip");

fn frame_then_parse(wire: &[u8]) -> usize {
    let limits = Limits::default();
    let mut rbuf = BytesMut::from(wire);
    let mut n = 0;
    while let Status::Complete(len) = frame(&rbuf, &limits).unwrap() {
        let m = Message::parse_with(rbuf.split_to(len).freeze(), &limits).unwrap();
        black_box(&m);
        n += 1;
    }
    n
}

fn typed(buf: &Bytes) -> usize {
    let m = Message::parse(buf.clone()).unwrap();
    let via = m.top_via().unwrap();
    let from = m.from().unwrap();
    let to = m.to().unwrap();
    let cseq = m.cseq().unwrap();
    let contacts = m.contacts().unwrap();
    via.branch().unwrap().len()
        + from.tag().unwrap().len()
        + to.tag().map_or(0, str::len)
        + m.call_id().unwrap().len()
        + cseq.seq as usize
        + contacts[0].expires().unwrap() as usize
        + m.declared_content_length().unwrap()
}

const PSI: &str = "sip:mcptt-server@mcptt.example.org";
const UE: &str = "sip:ue000001@example.org";

/// The service-state profile's PUBLISH (its body stands in for the multipart one: same size).
fn publish() -> Bytes {
    let body = "x".repeat(420);
    Bytes::from(format!(
        "PUBLISH {PSI} SIP/2.0\r\nVia: SIP/2.0/TLS core.example.org;branch=z9hG4bKp1\r\n\
Via: SIP/2.0/TLS ue1.example.org;branch=z9hG4bKu1\r\nMax-Forwards: 69\r\n\
From: <{UE}>;tag=pf1\r\nTo: <{UE}>\r\nCall-ID: pub-1@ue.example.org\r\nCSeq: 1 PUBLISH\r\n\
P-Asserted-Identity: <{UE}>\r\nEvent: poc-settings\r\nExpires: 3600\r\n\
Content-Type: multipart/mixed;boundary=boundary1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ))
}

/// The service-state profile's SUBSCRIBE.
fn subscribe() -> Bytes {
    Bytes::from(format!(
        "SUBSCRIBE {PSI} SIP/2.0\r\nVia: SIP/2.0/TLS core.example.org;branch=z9hG4bKs1\r\n\
Via: SIP/2.0/TLS ue1.example.org;branch=z9hG4bKv1\r\nMax-Forwards: 69\r\n\
Record-Route: <sip:core.example.org;transport=tls;lr>\r\n\
From: <{UE}>;tag=sf1\r\nTo: <{PSI}>\r\nCall-ID: sub-1@ue.example.org\r\nCSeq: 1 SUBSCRIBE\r\n\
P-Asserted-Identity: <{UE}>\r\nContact: <sip:ue1.example.org;transport=tls>\r\n\
Event: mcptt-service-state\r\nAccept: application/vnd.mcptt-service-state+json\r\n\
Expires: 3600\r\nContent-Length: 0\r\n\r\n"
    ))
}

/// The UE's 200 to the server's NOTIFY.
fn notify_ok() -> Bytes {
    Bytes::from(format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS mcptt.example.org;branch=z9hG4bK0123456789abcdef\r\n\
From: <{UE}>;tag=00000000000000ab\r\nTo: <{UE}>;tag=sf1\r\nCall-ID: sub-1@ue.example.org\r\n\
CSeq: 1 NOTIFY\r\nContent-Length: 0\r\n\r\n"
    ))
}

/// What the service-state server reads of a request, then its 200 (with a To tag); with
/// `storage`, the parse reuses it and hands it back.
fn answer(buf: &Bytes, out: &mut Vec<u8>, storage: Option<&mut HeaderStorage>) -> usize {
    let (msg, storage) = match storage {
        Some(s) => (
            Message::parse_with_storage(buf.clone(), &Limits::default(), s),
            Some(s),
        ),
        None => (Message::parse(buf.clone()), None),
    };
    let Message::Request(req) = msg.unwrap() else {
        panic!("a request")
    };
    let h = req.headers();
    let mut n = h.get_known(KnownHeader::From).unwrap().len()
        + h.get_known(KnownHeader::To).unwrap().len()
        + h.get_known(KnownHeader::Event).unwrap().len()
        + h.get_single_known(KnownHeader::PAssertedIdentity)
            .unwrap()
            .len()
        + h.get_known(KnownHeader::ContentType).map_or(0, str::len)
        + h.call_id().unwrap().len()
        + h.cseq().unwrap().seq as usize
        + h.expires().unwrap().unwrap_or(0) as usize
        + req.uri().host().len();
    out.clear();
    Response::encode_head_for(&req, 200, Some("00000000000000ab"), out);
    n += out.len();
    if let Some(s) = storage {
        *s = req.into_storage();
    }
    n
}

fn sign_in(
    publish: &Bytes,
    subscribe: &Bytes,
    ok: &Bytes,
    out: &mut Vec<u8>,
    mut storage: Option<&mut HeaderStorage>,
) -> usize {
    let mut n = answer(publish, out, storage.as_deref_mut())
        + answer(subscribe, out, storage.as_deref_mut());
    let m = match storage.as_deref_mut() {
        Some(s) => Message::parse_with_storage(ok.clone(), &Limits::default(), s),
        None => Message::parse(ok.clone()),
    }
    .unwrap();
    let h = m.headers();
    n += h.call_id().unwrap().len() + h.cseq().unwrap().seq as usize;
    n += h.get_known(KnownHeader::To).unwrap().len();
    if let Some(s) = storage {
        *s = m.into_storage();
    }
    n
}

fn main() {
    let mut args = std::env::args().skip(1);
    let workload = args.next().unwrap_or_else(|| "parse".into());
    let n: usize = args.next().map_or(10_000, |s| s.parse().unwrap());
    let register = Bytes::from_static(REGISTER);
    let Message::Request(req) = Message::parse(register.clone()).unwrap() else {
        panic!("a request")
    };
    let ok = Response::from_request(&req, 200).encode();
    let mut total = 0;
    match workload.as_str() {
        "frame_parse_register" | "frame_parse_ok" => {
            let one = if workload == "frame_parse_ok" {
                &ok
            } else {
                &register
            };
            let wire = one.repeat(32);
            for _ in 0..n {
                total += frame_then_parse(black_box(&wire));
            }
        }
        "frame_parse_one_pass_register" | "frame_parse_one_pass_ok" => {
            let one = if workload.ends_with("_ok") {
                &ok
            } else {
                &register
            };
            let wire = one.repeat(32);
            let limits = Limits::default();
            for _ in 0..n {
                let mut rbuf = BytesMut::from(black_box(&wire[..]));
                let mut scan = FrameScan::default();
                while let Framed::Message(m) = frame_parse(&mut rbuf, &limits, &mut scan).unwrap() {
                    black_box(&m);
                    total += 1;
                }
            }
        }
        "frame_parse_one_pass_register_reused" | "frame_parse_one_pass_ok_reused" => {
            let one = if workload.ends_with("_ok_reused") {
                &ok
            } else {
                &register
            };
            let wire = one.repeat(32);
            let limits = Limits::default();
            let mut storage = HeaderStorage::new();
            for _ in 0..n {
                let mut rbuf = BytesMut::from(black_box(&wire[..]));
                let mut scan = FrameScan::default();
                while let Framed::Message(m) =
                    frame_parse_with_storage(&mut rbuf, &limits, &mut scan, &mut storage).unwrap()
                {
                    black_box(&m);
                    storage = m.into_storage();
                    total += 1;
                }
            }
        }
        "frame_parse_segments" | "frame_parse_segments_reused" => {
            let wire = register.repeat(32);
            let limits = Limits::default();
            let reuse = workload.ends_with("_reused");
            let mut storage = HeaderStorage::new();
            for _ in 0..n {
                let mut rbuf = BytesMut::new();
                let mut scan = FrameScan::default();
                for chunk in black_box(&wire[..]).chunks(1400) {
                    rbuf.extend_from_slice(chunk);
                    loop {
                        let got = if reuse {
                            frame_parse_with_storage(&mut rbuf, &limits, &mut scan, &mut storage)
                        } else {
                            frame_parse(&mut rbuf, &limits, &mut scan)
                        };
                        match got.unwrap() {
                            Framed::Message(m) => {
                                black_box(&m);
                                total += 1;
                                if reuse {
                                    storage = m.into_storage();
                                }
                            }
                            Framed::Partial => break,
                            Framed::Malformed(_, e) => panic!("{e}"),
                        }
                    }
                }
            }
        }
        "parse_reused" => {
            let limits = Limits::default();
            let mut storage = HeaderStorage::new();
            for _ in 0..n {
                let m = Message::parse_with_storage(
                    black_box(&register).clone(),
                    &limits,
                    &mut storage,
                )
                .unwrap();
                total += m.call_id().unwrap().len();
                storage = m.into_storage();
            }
        }
        "parse" => {
            for _ in 0..n {
                let m = Message::parse(black_box(&register).clone()).unwrap();
                total += m.call_id().unwrap().len();
            }
        }
        "framer" => {
            let wire = register.repeat(32);
            for _ in 0..n {
                let mut f = Framer::new(Limits::default());
                for chunk in black_box(&wire[..]).chunks(1400) {
                    f.push(chunk);
                    while let Some(m) = f.next_message().unwrap() {
                        black_box(&m);
                        total += 1;
                    }
                }
            }
        }
        "framer_reused" => {
            let wire = register.repeat(32);
            let mut storage = HeaderStorage::new();
            for _ in 0..n {
                let mut f = Framer::new(Limits::default());
                for chunk in black_box(&wire[..]).chunks(1400) {
                    f.push(chunk);
                    while let Some(m) = f.next_message_with_storage(&mut storage).unwrap() {
                        black_box(&m);
                        total += 1;
                        storage = m.into_storage();
                    }
                }
            }
        }
        "typed" => {
            for _ in 0..n {
                total += typed(black_box(&register));
            }
        }
        "sign_in" => {
            let (p, s, o) = (publish(), subscribe(), notify_ok());
            let mut out = Vec::new();
            for _ in 0..n {
                total += sign_in(black_box(&p), black_box(&s), black_box(&o), &mut out, None);
            }
        }
        "sign_in_reused" => {
            let (p, s, o) = (publish(), subscribe(), notify_ok());
            let mut out = Vec::new();
            let mut storage = HeaderStorage::new();
            for _ in 0..n {
                total += sign_in(
                    black_box(&p),
                    black_box(&s),
                    black_box(&o),
                    &mut out,
                    Some(&mut storage),
                );
            }
        }
        other => panic!("unknown workload {other}"),
    }
    println!("{workload} x{n}: {total}");
}
