//! The stream framer over arbitrary chunkings of arbitrary bytes gives exactly what it gives
//! for the whole buffer at once: the same messages, then the same stop (error or more bytes).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mcptt_sip::{Framer, Limits, Message};

#[derive(Debug, Arbitrary)]
struct Input {
    data: Vec<u8>,
    chunks: Vec<u16>,
}

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

fuzz_target!(|input: Input| {
    let mut whole = Framer::new(limits());
    whole.push(&input.data);
    let mut want = Vec::new();
    let want_end = drain(&mut whole, &mut want);

    let mut chunked = Framer::new(limits());
    let mut got = Vec::new();
    let mut got_end = Ok(());
    let mut pos = 0;
    let mut sizes = input
        .chunks
        .iter()
        .map(|&c| usize::from(c % 512) + 1)
        .cycle();
    while pos < input.data.len() {
        let n = if input.chunks.is_empty() {
            input.data.len()
        } else {
            sizes.next().unwrap_or(1)
        };
        let end = (pos + n).min(input.data.len());
        chunked.push(&input.data[pos..end]);
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
