//! Integration tests of `mcptt-tls`: real sockets on loopback, certificates from rcgen.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod config;
mod faults;
mod framing;
mod handler;
mod identity;
mod pki;
mod shutdown;
mod tls;

use std::net::SocketAddr;
use std::time::Duration;

use mcptt_sip::{Bytes, Message};
use mcptt_tls::{Event, Events, Transport, TransportConfig};

/// A REGISTER with CSeq `n` and Call-ID `call`.
pub fn register_bytes(call: &str, n: u32) -> Vec<u8> {
    format!(
        "REGISTER sip:example.org SIP/2.0\r\n\
         Via: SIP/2.0/TLS ue1.example.org:5062;branch=z9hG4bK{call}{n}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.org>;tag=a{n}\r\n\
         To: <sip:alice@example.org>\r\n\
         Call-ID: {call}\r\n\
         CSeq: {n} REGISTER\r\n\
         Contact: <sip:alice@ue1.example.org;transport=tls>;expires=600\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

pub fn register(call: &str, n: u32) -> Message {
    Message::parse(Bytes::from(register_bytes(call, n))).unwrap()
}

/// A 200 OK for `call`/`n`.
pub fn ok(call: &str, n: u32) -> Message {
    Message::parse(Bytes::from(format!(
        "SIP/2.0 200 OK\r\n\
         Via: SIP/2.0/TLS ue1.example.org:5062;branch=z9hG4bK{call}{n}\r\n\
         From: <sip:alice@example.org>;tag=a{n}\r\n\
         To: <sip:alice@example.org>;tag=core\r\n\
         Call-ID: {call}\r\n\
         CSeq: {n} REGISTER\r\n\
         Content-Length: 0\r\n\r\n"
    )))
    .unwrap()
}

pub fn call_id(m: &Message) -> String {
    m.headers().get("Call-ID").unwrap().to_owned()
}

pub fn cseq(m: &Message) -> String {
    m.headers().get("CSeq").unwrap().to_owned()
}

/// Short timeouts so fault tests finish fast.
pub fn quick_config() -> TransportConfig {
    let mut c = TransportConfig::default();
    c.handshake_timeout = Duration::from_millis(300);
    c.message_timeout = Duration::from_millis(300);
    c.idle_timeout = Duration::from_secs(30);
    c.write_timeout = Duration::from_millis(300);
    c
}

pub const WAIT: Duration = Duration::from_secs(5);

/// The next event, failing the test after [`WAIT`].
pub async fn next(events: &mut Events) -> Event {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("no event in time")
        .expect("event queue closed")
}

/// The next event that is not `Connected`.
pub async fn next_non_connect(events: &mut Events) -> Event {
    loop {
        match next(events).await {
            Event::Connected(_) => {}
            e => return e,
        }
    }
}

pub fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

pub async fn tcp_server(config: TransportConfig) -> (Transport, Events, SocketAddr) {
    let (t, e) = Transport::new(config);
    let addr = t.listen_tcp(loopback()).await.unwrap();
    (t, e, addr)
}
