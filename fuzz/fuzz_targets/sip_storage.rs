//! Any bytes, cut at each 0xFF byte (never part of a SIP message) into messages parsed one
//! after the other through one reused `HeaderStorage`: each result, error or message (and its
//! encoding and header lookups), equals the fresh parse of the same bytes, and the storage
//! never holds more than `HeaderStorage::MAX_RETAINED_LINES` lines between messages.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcptt_sip::{Bytes, HeaderStorage, KnownHeader, Limits, Message};

fuzz_target!(|data: &[u8]| {
    let small = Limits {
        max_headers: 32,
        max_line_length: 512,
        ..Limits::default()
    };
    let mut storage = HeaderStorage::new();
    for (i, part) in data.split(|&b| b == 0xff).take(16).enumerate() {
        let limits = if i % 2 == 0 {
            Limits::default()
        } else {
            small.clone()
        };
        let fresh = Message::parse_with(Bytes::copy_from_slice(part), &limits);
        let reused =
            Message::parse_with_storage(Bytes::copy_from_slice(part), &limits, &mut storage);
        assert_eq!(fresh, reused);
        assert!(storage.capacity() <= HeaderStorage::MAX_RETAINED_LINES);
        let (Ok(a), Ok(b)) = (fresh, reused) else {
            continue;
        };
        assert_eq!(a.encode(), b.encode());
        for h in [
            KnownHeader::Via,
            KnownHeader::CallId,
            KnownHeader::CSeq,
            KnownHeader::Contact,
            KnownHeader::ContentLength,
        ] {
            assert_eq!(a.headers().get_known(h), b.headers().get_known(h));
        }
        assert!(a.headers().iter().eq(b.headers().iter()));
        storage = b.into_storage();
        assert!(storage.capacity() <= HeaderStorage::MAX_RETAINED_LINES);
    }
});
