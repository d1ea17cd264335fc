//! The stream framer over arbitrary chunkings of arbitrary bytes gives exactly what it gives
//! for the whole buffer at once: the same messages, then the same stop (error or more bytes).
//!
//! The whole input is the stream (so SIP messages work as seeds); the chunk sizes come from a
//! small PRNG seeded with a hash of the input, so each input has its own chunking and a crash
//! reproduces from the input alone.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcptt_sip::{Framer, Limits, Message};

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
    fn new(data: &[u8]) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
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

fuzz_target!(|data: &[u8]| {
    let mut whole = Framer::new(limits());
    whole.push(data);
    let mut want = Vec::new();
    let want_end = drain(&mut whole, &mut want);

    let mut chunked = Framer::new(limits());
    let mut got = Vec::new();
    let mut got_end = Ok(());
    let mut sizes = Chunks::new(data);
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
