//! `Transport::with_handler`: messages answered on the connection's own task, over mutual
//! TLS on loopback. Back-pressure, a panicking handler and a slow handler stay confined to
//! their connection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcptt_sip::{Bytes, Message, Response};
use mcptt_tls::{
    ConnectionHandle, Destination, Error, Event, Events, Transport, TransportConfig, TransportKind,
};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::pki::Pki;
use crate::{WAIT, call_id, cseq, loopback, next, quick_config, register, register_bytes};

/// A 200 OK to `message` (a request).
fn ok_to(message: &Message) -> Message {
    let Message::Request(req) = message else {
        panic!("request expected")
    };
    Message::Response(Response::from_request(req, 200))
}

fn dest(addr: std::net::SocketAddr) -> Destination {
    Destination::addr(addr, TransportKind::Tls).with_server_name("sip.example.org")
}

/// A mutual-TLS client transport trusting `pki`.
fn client(pki: &Pki) -> (Transport, Events) {
    Transport::new(TransportConfig::default().with_client_tls(pki.client_config(Some(pki.ue()))))
}

/// The next message event of `events` (skipping connection events).
async fn next_message(events: &mut Events) -> Message {
    loop {
        match next(events).await {
            Event::Message(rx) => return rx.message,
            Event::Connected(_) | Event::Pong(_) => {}
            other => panic!("unexpected event {other:?}"),
        }
    }
}

/// The error the next closed connection of `events` ended with.
async fn closed_error(events: &mut Events) -> Option<Error> {
    loop {
        if let Event::Closed { error, .. } = next(events).await {
            return error;
        }
    }
}

/// One REGISTER → 200 OK exchange on a fresh client connection to `addr`.
async fn exchange(pki: &Pki, addr: std::net::SocketAddr, call: &str) {
    let (ue, mut uev) = client(pki);
    let conn = ue.connect(&dest(addr)).await.unwrap();
    conn.send(&register(call, 7)).await.unwrap();
    let answer = next_message(&mut uev).await;
    assert!(!answer.is_request());
    assert_eq!(call_id(&answer), call);
    assert_eq!(cseq(&answer), "7 REGISTER");
}

#[tokio::test]
async fn handler_answers_on_the_connection_task() {
    let pki = Pki::new("handler CA");
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    let (server, mut sev) = Transport::with_handler(
        TransportConfig::default(),
        move |conn: &ConnectionHandle, message: Message| {
            s.fetch_add(1, Ordering::SeqCst);
            // The peer's verified identity is at hand on the handler's connection.
            assert!(conn.identity().is_some());
            conn.try_queue(&ok_to(&message)).unwrap();
        },
    );
    let addr = server
        .listen_tls(loopback(), pki.server_config())
        .await
        .unwrap();
    let (ue, mut uev) = client(&pki);
    let conn = ue.connect(&dest(addr)).await.unwrap();

    // Connection events still reach the event queue.
    let Event::Connected(inbound) = next(&mut sev).await else {
        panic!("expected Connected")
    };
    assert_eq!(
        inbound.identity().unwrap().sip_uris().collect::<Vec<_>>(),
        ["sip:alice@example.org"]
    );

    // A pipelined burst: every answer comes back, in order, on the same connection.
    let n = 200;
    for i in 1..=n {
        if i == n {
            conn.send(&register("burst", i)).await.unwrap();
        } else {
            conn.queue(&register("burst", i)).await.unwrap();
        }
    }
    for i in 1..=n {
        let answer = next_message(&mut uev).await;
        assert!(!answer.is_request());
        assert_eq!(cseq(&answer), format!("{i} REGISTER"));
    }
    assert_eq!(seen.load(Ordering::SeqCst), n as usize);

    // Messages do not go to the event queue; a malformed one does, and the connection
    // stays up.
    let mut raw = tokio_rustls::TlsConnector::from(pki.client_config(Some(pki.ue())))
        .connect(
            "sip.example.org".try_into().unwrap(),
            tokio::net::TcpStream::connect(addr).await.unwrap(),
        )
        .await
        .unwrap();
    raw.write_all(b"NOT-SIP\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    raw.write_all(&register_bytes("after-bad", 1))
        .await
        .unwrap();
    raw.flush().await.unwrap();
    loop {
        match next(&mut sev).await {
            Event::Connected(_) => {}
            Event::Malformed { bytes, error, .. } => {
                assert!(bytes.starts_with(b"NOT-SIP"));
                assert_eq!(error.status_code(), Some(400));
                break;
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    let start = tokio::time::Instant::now();
    while seen.load(Ordering::SeqCst) < n as usize + 1 {
        assert!(
            start.elapsed() < WAIT,
            "the request after the bad one was not handled"
        );
        tokio::task::yield_now().await;
    }
    assert!(sev.try_recv().is_none(), "no Message event in handler mode");
}

/// `try_queue` from outside the handler wakes the connection task, which writes.
#[tokio::test]
async fn try_queue_from_the_application_is_written() {
    let pki = Pki::new("try_queue CA");
    let (server, mut sev) = Transport::new(TransportConfig::default());
    let addr = server
        .listen_tls(loopback(), pki.server_config())
        .await
        .unwrap();
    let (ue, mut uev) = client(&pki);
    let conn = ue.connect(&dest(addr)).await.unwrap();
    conn.try_queue(&register("tq", 1)).unwrap();
    let Event::Message(rx) = crate::next_non_connect(&mut sev).await else {
        panic!("expected Message")
    };
    assert_eq!(call_id(&rx.message), "tq");
    rx.connection.try_queue(&ok_to(&rx.message)).unwrap();
    assert_eq!(call_id(&next_message(&mut uev).await), "tq");
}

/// A big 200 OK (20 000-byte body) to `message`.
fn big_ok(message: &Message) -> Message {
    let body = "z".repeat(20_000);
    Message::parse(Bytes::from(format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS ue1.example.org:5062;branch=z9hG4bK1\r\n\
         From: <sip:alice@example.org>;tag=a1\r\nTo: <sip:alice@example.org>;tag=b\r\n\
         Call-ID: {}\r\nCSeq: {}\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\n\r\n{body}",
        call_id(message),
        cseq(message),
        body.len()
    )))
    .unwrap()
}

/// A peer that sends requests but never reads the answers: once the write buffer is full
/// and the socket refuses bytes, the connection hands the handler nothing more and stops
/// reading (the peer's writes stall), the handler never sees a full buffer, and the
/// connection dies of the write timeout. Others are not affected.
#[tokio::test]
async fn handler_back_pressure_stops_reading_a_peer_that_does_not_read() {
    let pki = Pki::new("handler bp CA");
    let mut config = quick_config();
    config.write_timeout = Duration::from_secs(2);
    config.send_buffer = 64 * 1024;
    let calls = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let (c, r) = (calls.clone(), refused.clone());
    let (server, mut sev) =
        Transport::with_handler(config, move |conn: &ConnectionHandle, message: Message| {
            c.fetch_add(1, Ordering::SeqCst);
            if conn.try_queue(&big_ok(&message)).is_err() {
                r.fetch_add(1, Ordering::SeqCst);
            }
        });
    let addr = server
        .listen_tls(loopback(), pki.server_config())
        .await
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut lazy = tokio_rustls::TlsConnector::from(pki.client_config(Some(pki.ue())))
        .connect("sip.example.org".try_into().unwrap(), tcp)
        .await
        .unwrap();
    // Write requests (never reading) until a write stalls.
    // Larger than what rustls buffers on its own (64 KiB), so a write needs the socket.
    let chunk = register_bytes("lazy", 1).repeat(640);
    let mut written = 0usize;
    loop {
        let write = tokio::time::timeout(Duration::from_millis(300), lazy.write_all(&chunk));
        match write.await {
            Ok(Ok(())) => written += chunk.len(),
            Ok(Err(e)) => panic!("write failed before stalling: {e}"),
            Err(_) => break,
        }
        assert!(
            written < 256 * 1024 * 1024,
            "the server never stopped reading"
        );
    }
    // Stalled: the server reads no more while the peer does not read (its answers take
    // only the room the kernel gives back).
    let write = tokio::time::timeout(Duration::from_millis(300), lazy.write_all(&chunk));
    assert!(write.await.is_err(), "the server read again");
    // Requests wait unread in the socket, and the handler never had to drop an answer.
    let handled = calls.load(Ordering::SeqCst);
    assert!(
        handled * register_bytes("lazy", 1).len() < written,
        "{handled} handled of {written} bytes"
    );
    assert_eq!(refused.load(Ordering::SeqCst), 0);
    let closed = closed_error(&mut sev).await;
    assert!(matches!(closed, Some(Error::WriteTimeout(_))), "{closed:?}");
    exchange(&pki, addr, "after-lazy").await;
}

/// A handler that panics closes its own connection (with `HandlerPanicked`); another
/// connection is served before and after.
#[tokio::test]
async fn panicking_handler_closes_only_its_connection() {
    let pki = Pki::new("handler panic CA");
    let (server, mut sev) = Transport::with_handler(
        TransportConfig::default(),
        |conn: &ConnectionHandle, message: Message| {
            assert_ne!(
                call_id(&message),
                "boom",
                "handler bug (expected by the test)"
            );
            conn.try_queue(&ok_to(&message)).unwrap();
        },
    );
    let addr = server
        .listen_tls(loopback(), pki.server_config())
        .await
        .unwrap();
    let (ue, mut uev) = client(&pki);
    let good = ue.connect(&dest(addr)).await.unwrap();
    let bad = ue.connect(&dest(addr)).await.unwrap();
    good.send(&register("good", 1)).await.unwrap();
    assert_eq!(call_id(&next_message(&mut uev).await), "good");

    bad.send(&register("boom", 1)).await.unwrap();
    let closed = closed_error(&mut sev).await;
    assert!(matches!(closed, Some(Error::HandlerPanicked)), "{closed:?}");
    // The client sees its connection end; the other one still works.
    let Event::Closed { connection, .. } = next(&mut uev).await else {
        panic!("expected the client to see the connection close")
    };
    assert_eq!(connection.id, bad.id());
    assert!(!good.is_closed());
    good.send(&register("good", 2)).await.unwrap();
    let answer = next_message(&mut uev).await;
    assert_eq!(cseq(&answer), "2 REGISTER");
    assert_eq!(server.connection_count(), 1);
}

/// A handler that blocks its worker thread on one connection (against the `Handler`
/// contract) delays others at most while it blocks (tokio polls sockets from idle workers
/// only) and breaks nothing: every exchange on another connection completes, nothing is
/// closed, and the slow answer arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_handler_breaks_no_other_connection() {
    let pki = Pki::new("handler blocking CA");
    let (entered_tx, mut entered) = mpsc::unbounded_channel::<()>();
    let (release, release_rx) = std::sync::mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let (server, mut sev) = Transport::with_handler(
        TransportConfig::default(),
        move |conn: &ConnectionHandle, message: Message| {
            if call_id(&message) == "slow" {
                entered_tx.send(()).unwrap();
                // Blocks until released, at most one second.
                let _ = release_rx
                    .lock()
                    .unwrap()
                    .recv_timeout(Duration::from_secs(1));
            }
            conn.try_queue(&ok_to(&message)).unwrap();
        },
    );
    let addr = server
        .listen_tls(loopback(), pki.server_config())
        .await
        .unwrap();
    let (slow_ue, mut slow_ev) = client(&pki);
    let (fast_ue, mut fast_ev) = client(&pki);
    let slow = slow_ue.connect(&dest(addr)).await.unwrap();
    let fast = fast_ue.connect(&dest(addr)).await.unwrap();

    slow.send(&register("slow", 1)).await.unwrap();
    tokio::time::timeout(WAIT, entered.recv())
        .await
        .unwrap()
        .unwrap();
    for i in 1..=20 {
        fast.send(&register("fast", i)).await.unwrap();
        assert_eq!(
            cseq(&next_message(&mut fast_ev).await),
            format!("{i} REGISTER")
        );
    }
    let _ = release.send(());
    assert_eq!(call_id(&next_message(&mut slow_ev).await), "slow");
    assert!(!slow.is_closed() && !fast.is_closed());
    while let Some(event) = sev.try_recv() {
        assert!(matches!(event, Event::Connected(_)), "{event:?}");
    }
}

/// The handler's way to take its time: hand the request to a task and answer from there.
/// Meanwhile its own connection and the others are served at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_work_deferred_by_the_handler_holds_up_nobody() {
    let pki = Pki::new("handler slow CA");
    let (release, release_rx) = tokio::sync::watch::channel(false);
    let (server, _sev) = Transport::with_handler(
        TransportConfig::default(),
        move |conn: &ConnectionHandle, message: Message| {
            let ok = ok_to(&message);
            if call_id(&message) == "slow" {
                let conn = conn.clone();
                let mut release = release_rx.clone();
                tokio::spawn(async move {
                    let _ = release.wait_for(|go| *go).await;
                    conn.send(&ok).await.unwrap();
                });
            } else {
                conn.try_queue(&ok).unwrap();
            }
        },
    );
    let addr = server
        .listen_tls(loopback(), pki.server_config())
        .await
        .unwrap();
    let (slow_ue, mut slow_ev) = client(&pki);
    let (fast_ue, mut fast_ev) = client(&pki);
    let slow = slow_ue.connect(&dest(addr)).await.unwrap();
    let fast = fast_ue.connect(&dest(addr)).await.unwrap();

    slow.send(&register("slow", 1)).await.unwrap();
    // The slow request's connection goes on with the next request.
    slow.send(&register("next", 2)).await.unwrap();
    assert_eq!(call_id(&next_message(&mut slow_ev).await), "next");
    let start = std::time::Instant::now();
    for i in 1..=20 {
        fast.send(&register("fast", i)).await.unwrap();
        assert_eq!(
            cseq(&next_message(&mut fast_ev).await),
            format!("{i} REGISTER")
        );
    }
    assert!(start.elapsed() < WAIT);
    assert!(slow_ev.try_recv().is_none(), "the slow answer came early");
    release.send(true).unwrap();
    assert_eq!(call_id(&next_message(&mut slow_ev).await), "slow");
}

/// Handlers on both sides, windows of pipelined requests over and over (the bench's
/// handler echo): every answer arrives, no connection closes, also when the server drops
/// its event queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_on_both_sides_echo_windows() {
    let pki = Pki::new("handler echo CA");
    // Reads of a whole window at once, as in the bench.
    let mut config = TransportConfig::default();
    config.read_chunk = 64 * 1024;
    // The server application does not keep the event queue: with a handler, its
    // connections go on without it.
    let (server, _) = Transport::with_handler(
        config.clone(),
        |conn: &ConnectionHandle, message: Message| {
            conn.try_queue(&ok_to(&message)).unwrap();
        },
    );
    let addr = server
        .listen_tls(loopback(), pki.server_config())
        .await
        .unwrap();
    let answers = Arc::new(AtomicUsize::new(0));
    let (tx, mut all) = mpsc::unbounded_channel::<()>();
    let window = 32;
    let a = answers.clone();
    let (ue, mut uev) = Transport::with_handler(
        config.with_client_tls(pki.client_config(Some(pki.ue()))),
        move |_: &ConnectionHandle, message: Message| {
            assert!(!message.is_request());
            if a.fetch_add(1, Ordering::SeqCst) + 1 == window {
                tx.send(()).unwrap();
            }
        },
    );
    let conn = ue.connect(&dest(addr)).await.unwrap();
    let request = register("win", 1);
    for round in 0..2000 {
        answers.store(0, Ordering::SeqCst);
        for i in 0..window {
            if i + 1 == window {
                conn.send(&request).await.unwrap();
            } else {
                conn.queue(&request).await.unwrap();
            }
        }
        let got = tokio::time::timeout(WAIT, all.recv()).await;
        assert!(
            got.is_ok(),
            "round {round}: {} answers; client {:?}",
            answers.load(Ordering::SeqCst),
            uev.try_recv()
        );
    }
}
