//! Faulty peers cost bounded memory and time and never disturb other connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mcptt_tls::{Destination, Error, Event, Events, Transport, TransportConfig, TransportKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::pki::Pki;
use crate::{
    call_id, loopback, next, next_non_connect, quick_config, register, register_bytes, tcp_server,
};

/// A well-behaved client on `addr` still gets its message through.
async fn healthy_exchange(events: &mut Events, addr: std::net::SocketAddr, call: &str) {
    let (c, _ev) = Transport::new(TransportConfig::default());
    let conn = c
        .connect(&Destination::addr(addr, TransportKind::Tcp))
        .await
        .unwrap();
    conn.send(&register(call, 1)).await.unwrap();
    loop {
        match next(events).await {
            Event::Message(rx) if call_id(&rx.message) == call => return,
            _ => {}
        }
    }
}

/// The error a connection of `events` closed with (skipping other events).
async fn closed_error(events: &mut Events) -> Option<Error> {
    loop {
        if let Event::Closed { error, .. } = next(events).await {
            return error;
        }
    }
}

#[tokio::test]
async fn garbage_without_end_of_head_is_cut_at_the_head_limit() {
    let mut config = quick_config();
    config.sip_limits.max_head_size = 4096;
    config.sip_limits.max_message_size = 8192;
    let (_t, mut ev, addr) = tcp_server(config).await;
    let mut bad = TcpStream::connect(addr).await.unwrap();
    let garbage: Vec<u8> = (0..64 * 1024u32).map(|i| b'a' + (i % 26) as u8).collect();
    // The server closes after about 4 KiB; the rest of the write may fail: that's fine.
    let _ = bad.write_all(&garbage).await;
    let err = closed_error(&mut ev).await.expect("closed with an error");
    match &err {
        Error::Sip(e) => assert!(e.is_limit(), "{e}"),
        other => panic!("expected a SIP limit error, got {other}"),
    }
    assert!(err.status_code().is_some());
    healthy_exchange(&mut ev, addr, "after-garbage").await;
}

#[tokio::test]
async fn binary_garbage_on_the_tls_port_fails_the_handshake() {
    let pki = Pki::new("garbage CA");
    let (server, mut ev) = Transport::new(quick_config());
    let addr = server
        .listen_tls(loopback(), pki.server_config())
        .await
        .unwrap();
    let mut bad = TcpStream::connect(addr).await.unwrap();
    // Looks like a handshake record, then nonsense.
    bad.write_all(&[
        0x16, 0x03, 0x01, 0x00, 0x10, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ])
    .await
    .unwrap();
    match next(&mut ev).await {
        Event::Rejected {
            error: Error::Handshake(_),
            ..
        } => {}
        other => panic!("expected handshake failure, got {other:?}"),
    }
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), bad.read_to_end(&mut rest))
        .await
        .unwrap();
}

#[tokio::test]
async fn stall_mid_handshake_times_out_without_blocking_others() {
    let pki = Pki::new("stall CA");
    let (server, mut ev) = Transport::new(quick_config());
    let addr = server
        .listen_tls(loopback(), pki.server_config())
        .await
        .unwrap();
    let start = Instant::now();
    // Half a ClientHello record header, then silence.
    let mut staller = TcpStream::connect(addr).await.unwrap();
    staller.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    // Meanwhile a real client completes a handshake and a message.
    let (ue, _uev) = Transport::new(
        TransportConfig::default().with_client_tls(pki.client_config(Some(pki.ue()))),
    );
    let conn = ue
        .connect(&Destination::addr(addr, TransportKind::Tls).with_server_name("sip.example.org"))
        .await
        .unwrap();
    conn.send(&register("while-stalled", 1)).await.unwrap();
    let mut got_message = false;
    let mut timed_out = false;
    while !(got_message && timed_out) {
        match next(&mut ev).await {
            Event::Message(rx) => {
                assert_eq!(call_id(&rx.message), "while-stalled");
                assert!(!timed_out, "the good client must not wait for the staller");
                got_message = true;
            }
            Event::Rejected {
                error: Error::HandshakeTimeout(d),
                ..
            } => {
                assert_eq!(d, Duration::from_millis(300));
                timed_out = true;
            }
            _ => {}
        }
    }
    assert!(start.elapsed() < Duration::from_secs(3));
    let mut rest = Vec::new();
    staller.read_to_end(&mut rest).await.unwrap();
    assert!(
        server.connection_count() == 1,
        "only the good connection remains"
    );
}

#[tokio::test]
async fn slowloris_mid_message_is_cut_by_the_message_timeout() {
    let (_t, mut ev, addr) = tcp_server(quick_config()).await;
    let start = Instant::now();
    let wire = register_bytes("slow", 1);
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(&wire[..40]).await.unwrap();
    // Dribble one byte every 50 ms: each byte is activity, but the message never completes
    // within the 300 ms message timeout (the idle timeout is 30 s).
    let dribble = tokio::spawn(async move {
        for b in &wire[40..] {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if slow.write_all(std::slice::from_ref(b)).await.is_err() {
                return true;
            }
        }
        false
    });
    let err = closed_error(&mut ev).await;
    assert!(matches!(err, Some(Error::MessageTimeout(_))), "{err:?}");
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    assert!(
        dribble.await.unwrap(),
        "the server closed the dribbling connection"
    );
    healthy_exchange(&mut ev, addr, "after-slowloris").await;
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let mut config = quick_config();
    config.idle_timeout = Duration::from_millis(200);
    let (_t, mut ev, addr) = tcp_server(config).await;
    let _idle = TcpStream::connect(addr).await.unwrap();
    let err = closed_error(&mut ev).await;
    assert!(matches!(err, Some(Error::IdleTimeout(_))), "{err:?}");
}

#[tokio::test]
async fn disconnect_mid_message() {
    let (_t, mut ev, addr) = tcp_server(quick_config()).await;
    let wire = register_bytes("cut", 1);
    let mut cut = TcpStream::connect(addr).await.unwrap();
    cut.write_all(&register_bytes("whole", 1)).await.unwrap();
    cut.write_all(&wire[..100]).await.unwrap();
    drop(cut);
    let Event::Message(rx) = next_non_connect(&mut ev).await else {
        panic!("the whole message before the cut is delivered")
    };
    assert_eq!(call_id(&rx.message), "whole");
    let err = closed_error(&mut ev).await;
    assert!(matches!(err, Some(Error::TruncatedMessage(100))), "{err:?}");
    healthy_exchange(&mut ev, addr, "after-cut").await;
}

#[tokio::test]
async fn oversized_message_is_refused_before_buffering() {
    let mut config = quick_config();
    config.sip_limits.max_message_size = 2048;
    config.sip_limits.max_body_size = 1024;
    let (_t, mut ev, addr) = tcp_server(config).await;
    let head = String::from_utf8(register_bytes("big", 1)).unwrap();
    let head = head.replace("Content-Length: 0", "Content-Length: 100000");
    let mut big = TcpStream::connect(addr).await.unwrap();
    big.write_all(head.as_bytes()).await.unwrap();
    let err = closed_error(&mut ev).await.expect("error");
    match &err {
        Error::Sip(e) => assert!(e.is_limit(), "{e}"),
        other => panic!("expected limit error, got {other}"),
    }
}

#[tokio::test]
async fn connection_limits_total_and_per_address() {
    let mut config = quick_config();
    config.max_connections_per_ip = 2;
    let (t, mut ev, addr) = tcp_server(config).await;
    let _a = TcpStream::connect(addr).await.unwrap();
    let _b = TcpStream::connect(addr).await.unwrap();
    let mut c = TcpStream::connect(addr).await.unwrap();
    loop {
        match next(&mut ev).await {
            Event::Rejected {
                error: Error::TooManyConnectionsFromAddress { limit: 2, .. },
                ..
            } => break,
            Event::Connected(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let mut buf = [0u8; 1];
    assert_eq!(
        c.read(&mut buf).await.unwrap_or(0),
        0,
        "refused connection is closed"
    );
    assert_eq!(t.connection_count(), 2);

    let mut config = quick_config();
    config.max_connections = 1;
    let (t, mut ev, addr) = tcp_server(config).await;
    let _a = TcpStream::connect(addr).await.unwrap();
    let _b = TcpStream::connect(addr).await.unwrap();
    loop {
        match next(&mut ev).await {
            Event::Rejected {
                error: Error::TooManyConnections(1),
                ..
            } => break,
            Event::Connected(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(t.connection_count(), 1);
}

#[tokio::test]
async fn slow_application_back_pressures_the_peer() {
    let mut config = quick_config();
    config.event_queue = 2;
    let (_t, mut ev, addr) = tcp_server(config).await;
    let mut fast = TcpStream::connect(addr).await.unwrap();
    // 16 MiB of messages: far more than socket buffers plus the bounded queues hold.
    let one = register_bytes("bp", 1);
    let count = 16 * 1024 * 1024 / one.len();
    let wire: Vec<u8> = one
        .iter()
        .copied()
        .cycle()
        .take(one.len() * count)
        .collect();
    let total = wire.len();
    let written = Arc::new(AtomicUsize::new(0));
    let w = written.clone();
    let mut writer = tokio::spawn(async move {
        for chunk in wire.chunks(64 * 1024) {
            fast.write_all(chunk).await.unwrap();
            w.fetch_add(chunk.len(), Ordering::SeqCst);
        }
        fast
    });
    // The writer blocks once the kernel buffers are full, and makes no progress at all
    // while the application does not read: the server stopped reading the socket.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut writer)
            .await
            .is_err()
    );
    let w1 = written.load(Ordering::SeqCst);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut writer)
            .await
            .is_err()
    );
    let w2 = written.load(Ordering::SeqCst);
    assert_eq!(w1, w2, "no progress while the application does not read");
    assert!(w1 < total);
    // The application catches up: messages arrive, in order, none lost.
    for _ in 0..100 {
        let Event::Message(rx) = next_non_connect(&mut ev).await else {
            panic!()
        };
        assert_eq!(call_id(&rx.message), "bp");
    }
}

#[tokio::test]
async fn peer_that_does_not_read_is_bounded_by_queue_and_write_timeout() {
    let mut config = quick_config();
    config.send_queue = 4;
    let (server, mut ev, addr) = tcp_server(config).await;
    let _lazy = TcpStream::connect(addr).await.unwrap(); // never reads
    let Event::Connected(conn) = next(&mut ev).await else {
        panic!()
    };
    let body = "x".repeat(40_000);
    let big = mcptt_sip::Message::parse(mcptt_sip::Bytes::from(format!(
        "MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP a;branch=z9hG4bK1\r\nMax-Forwards: 70\r\n\
         From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: big\r\nCSeq: 1 MESSAGE\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )))
    .unwrap();
    let start = Instant::now();
    let mut sent = 0;
    let err = loop {
        match conn.send(&big).await {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 10_000, "sending never failed");
    };
    assert!(
        matches!(err, Error::SendQueueFull(_) | Error::ConnectionClosed(_)),
        "{err}"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    let closed = closed_error(&mut ev).await;
    assert!(matches!(closed, Some(Error::WriteTimeout(_))), "{closed:?}");
    // Others are unaffected.
    healthy_exchange(&mut ev, addr, "after-lazy").await;
    assert!(server.connection(conn.id()).is_none());
}

/// The byte bound of the write buffer holds on its own (message bound out of the way):
/// toward a peer that does not read, `queue` stops accepting within the write timeout and
/// the connection dies of the write timeout, holding about one buffer.
#[tokio::test]
async fn peer_that_does_not_read_is_bounded_by_the_write_buffer_bytes() {
    let mut config = quick_config();
    config.send_queue = 1_000_000;
    config.send_buffer = 64 * 1024;
    let (server, mut ev, addr) = tcp_server(config).await;
    let _lazy = TcpStream::connect(addr).await.unwrap(); // never reads
    let Event::Connected(conn) = next(&mut ev).await else {
        panic!()
    };
    let body = "y".repeat(20_000);
    let big = mcptt_sip::Message::parse(mcptt_sip::Bytes::from(format!(
        "MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP a;branch=z9hG4bK1\r\nMax-Forwards: 70\r\n\
         From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: big\r\nCSeq: 1 MESSAGE\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )))
    .unwrap();
    let start = Instant::now();
    let mut accepted = 0usize;
    let err = loop {
        match conn.queue(&big).await {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted < 10_000, "queueing never failed");
    };
    assert!(
        matches!(err, Error::SendQueueFull(_) | Error::ConnectionClosed(_)),
        "{err}"
    );
    // Kernel buffers plus at most the 64 KiB write buffer (and the records rustls or the
    // socket took): far below what unbounded queueing would accept in that time.
    assert!(accepted * 20_000 < 64 * 1024 * 1024, "{accepted} accepted");
    assert!(start.elapsed() < Duration::from_secs(5));
    let closed = closed_error(&mut ev).await;
    assert!(matches!(closed, Some(Error::WriteTimeout(_))), "{closed:?}");
    assert!(conn.is_closed());
    assert!(matches!(
        conn.try_send(&big),
        Err(Error::ConnectionClosed(_))
    ));
    assert!(server.connection(conn.id()).is_none());
}
