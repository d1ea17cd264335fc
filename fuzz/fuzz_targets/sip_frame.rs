//! The stream framer over arbitrary chunkings of arbitrary bytes gives exactly what it gives
//! for the whole buffer at once: the same messages, then the same stop (error or more bytes).
//!
//! The one-pass `frame_parse` (with one `FrameScan` resumed across reads, as a transport
//! uses it) agrees at every call with the two-pass path (`frame`, split, `parse_with`) on the
//! same buffer, under another chunking: same result or error, same bytes left. It goes on
//! past malformed messages (the stream stays in step), and what it yields over the chunks is
//! what the two-pass path yields over the whole input at once.
//!
//! The whole input is the stream (so SIP messages work as seeds); the chunk sizes come from a
//! small PRNG seeded with a hash of the input, so each input has its own chunking and a crash
//! reproduces from the input alone.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcptt_sip::{
    BytesMut, FrameScan, Framed, Framer, Limits, Message, Status, frame, frame_parse, keepalive_len,
};

/// Messages until the framer wants more bytes (`Ok`) or fails (`Err` with its status code).
fn drain(f: &mut Framer, out: &mut Vec<Message>) -> Result<(), Option<u16>> {
    loop {
        match f.next_message() {
            Ok(Some(m)) => out.push(m),
            Ok(None) => return Ok(()),
            Err(e) => return Err(e.status_code()),
        }
    }
}

fn limits() -> Limits {
    Limits {
        max_message_size: 8 * 1024,
        max_head_size: 4 * 1024,
        max_body_size: 4 * 1024,
        ..Limits::default()
    }
}

/// FNV-1a of the input, then xorshift64 for the chunk sizes.
struct Chunks(u64, usize);

impl Chunks {
    /// `salt` gives another chunking of the same input.
    fn new(data: &[u8], salt: u64) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ salt;
        for &b in data {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let h = h | 1;
        // Largest chunk: 1 to 1024 bytes, so byte-by-byte feeding happens too.
        let max = 1 + (h >> 54) as usize;
        Self(h, max)
    }

    fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        1 + (self.0 as usize) % self.1
    }
}

/// The two-pass path on `buf` (which starts with a start line): `frame`, then on a whole
/// message split it off and `parse_with` it. The result, and the bytes left.
fn two_pass(buf: &BytesMut, limits: &Limits) -> (mcptt_sip::Result<Framed>, BytesMut) {
    let mut rest = buf.clone();
    let framed = match frame(&rest, limits) {
        Err(e) => Err(e),
        Ok(Status::Partial) => Ok(Framed::Partial),
        Ok(Status::Complete(n)) => {
            let bytes = rest.split_to(n).freeze();
            Ok(match Message::parse_with(bytes.clone(), limits) {
                Ok(m) => Framed::Message(m),
                Err(e) => Framed::Malformed(bytes, e),
            })
        }
    };
    (framed, rest)
}

/// What a stream yields: every message or malformed message, then the stop (`Ok`: more
/// bytes wanted, `Err`: a framing error).
type Yield = (Vec<Framed>, mcptt_sip::Result<()>);

/// Take items off `buf` (keep-alives skipped) until it wants more bytes or fails, with
/// `frame_parse` when `scan` is given (checked against the two-pass path at each call),
/// else with the two-pass path.
fn take(
    buf: &mut BytesMut,
    limits: &Limits,
    scan: Option<&mut FrameScan>,
    out: &mut Vec<Framed>,
) -> mcptt_sip::Result<()> {
    let mut scan = scan;
    loop {
        let skip = keepalive_len(buf);
        let _ = buf.split_to(skip);
        if buf.is_empty() {
            return Ok(());
        }
        let (want, want_rest) = two_pass(buf, limits);
        let got = match scan.as_deref_mut() {
            Some(scan) => {
                let before = buf.clone();
                let got = frame_parse(buf, limits, scan);
                assert!(got == want, "frame_parse and the two-pass path disagree");
                if got.is_err() {
                    assert!(*buf == before, "a framing error changed the buffer");
                } else {
                    assert!(*buf == want_rest, "frame_parse took other bytes");
                }
                got
            }
            None => {
                *buf = want_rest;
                want
            }
        }?;
        match got {
            Framed::Partial => return Ok(()),
            item => out.push(item),
        }
    }
}

/// `frame_parse` over the input in chunks against the two-pass path over the whole input.
fn check_frame_parse(data: &[u8]) {
    let limits = limits();
    let mut whole = BytesMut::from(data);
    let mut want: Yield = (Vec::new(), Ok(()));
    want.1 = take(&mut whole, &limits, None, &mut want.0);

    let mut buf = BytesMut::new();
    let mut scan = FrameScan::default();
    let mut got: Yield = (Vec::new(), Ok(()));
    let mut sizes = Chunks::new(data, 0x5eed);
    let mut pos = 0;
    while pos < data.len() {
        let end = (pos + sizes.next()).min(data.len());
        buf.extend_from_slice(&data[pos..end]);
        pos = end;
        got.1 = take(&mut buf, &limits, Some(&mut scan), &mut got.0);
        if got.1.is_err() {
            break;
        }
    }
    assert!(
        got == want,
        "chunked frame_parse yields otherwise than the whole input"
    );
}

fuzz_target!(|data: &[u8]| {
    check_frame_parse(data);

    let mut whole = Framer::new(limits());
    whole.push(data);
    let mut want = Vec::new();
    let want_end = drain(&mut whole, &mut want);

    let mut chunked = Framer::new(limits());
    let mut got = Vec::new();
    let mut got_end = Ok(());
    let mut sizes = Chunks::new(data, 0);
    let mut pos = 0;
    while pos < data.len() {
        let end = (pos + sizes.next()).min(data.len());
        chunked.push(&data[pos..end]);
        pos = end;
        got_end = drain(&mut chunked, &mut got);
        if got_end.is_err() {
            break;
        }
    }
    assert!(got == want, "chunked framing yields other messages");
    assert_eq!(got_end, want_end, "chunked framing stops differently");
    // Each framed message is what a whole-buffer parse of its own bytes gives.
    for m in &got {
        let again = Message::parse(m.encode()).expect("a framed message re-parses");
        assert!(again == *m);
    }
});
