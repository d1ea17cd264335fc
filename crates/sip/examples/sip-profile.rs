//! Repeat one parsing workload N times, for instruction counts on a busy machine:
//! `valgrind --tool=callgrind target/release/examples/sip-profile WORKLOAD N` at two values
//! of N (the difference divided by the difference of N is the per-iteration cost).
//!
//! Workloads (each over the 680-byte MCPTT REGISTER of `tests/data/mcptt/register.sip` or
//! the 200 OK built from it):
//! - `frame_parse_register`, `frame_parse_ok`: [`frame`] then [`Message::parse_with`] of 32
//!   pipelined copies (the `tls_frame_parse` bench rows);
//! - `parse`: [`Message::parse`] and the Call-ID (the `sip_parse/register` row);
//! - `frame_parse_one_pass_register`, `frame_parse_one_pass_ok`: the same with
//!   [`frame_parse`] (one pass over each head);
//! - `framer`: a [`Framer`] fed 32 pipelined copies in 1400-byte segments;
//! - `typed`: parse, then Via, From/To tags, Call-ID, CSeq, Contact and Content-Length.
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;

use mcptt_sip::{
    Bytes, BytesMut, FrameScan, Framed, Framer, Limits, Message, Response, Status, frame,
    frame_parse,
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
        "typed" => {
            for _ in 0..n {
                total += typed(black_box(&register));
            }
        }
        other => panic!("unknown workload {other}"),
    }
    println!("{workload} x{n}: {total}");
}
