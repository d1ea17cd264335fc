//! Whatever parses encodes to the bytes it came from, and parses back to an equal message;
//! after header edits too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcptt_sip::{Bytes, Limits, Message};

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Message::parse(Bytes::copy_from_slice(data)) else {
        return;
    };
    let enc = m.encode();
    assert!(
        data.starts_with(&enc),
        "an unmodified message encodes as received"
    );
    let again = Message::parse(enc.clone()).expect("encode() output parses");
    assert!(again == m, "parse(encode(m)) == m");
    assert_eq!(again.encode(), enc);

    let mut edited = m.clone();
    if edited.headers_mut().push("X-Fuzz", "edited;value").is_ok() {
        let _ = edited.headers_mut().remove("Via");
        let enc = edited.encode();
        // The edit adds a header line: the original may have sat exactly at a default limit.
        let roomy = Limits {
            max_message_size: 1 << 20,
            max_head_size: 1 << 20,
            max_headers: 4096,
            ..Limits::default()
        };
        let again = Message::parse_with(enc, &roomy).expect("edited message parses");
        assert!(again == edited, "parse(encode(edited)) == edited");
    }
});
