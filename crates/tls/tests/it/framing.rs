//! Framing across arbitrary TCP segmentation, keep-alives, responses on the request's
//! connection, and connection reuse (RFC 5923 alias).

use std::sync::Arc;

use mcptt_sip::{Bytes, Message};
use mcptt_tls::{Destination, Event, Transport, TransportConfig, TransportKind};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::pki::Pki;
use crate::{
    call_id, cseq, loopback, next, next_non_connect, ok, register, register_bytes, tcp_server,
};

#[tokio::test]
async fn one_byte_writes_over_tcp() {
    let (_t, mut ev, addr) = tcp_server(TransportConfig::default()).await;
    let mut raw = TcpStream::connect(addr).await.unwrap();
    raw.set_nodelay(true).unwrap();
    let mut wire = Vec::new();
    for n in 1..=3 {
        wire.extend_from_slice(&register_bytes("onebyte", n));
    }
    for b in &wire {
        raw.write_all(std::slice::from_ref(b)).await.unwrap();
    }
    for n in 1..=3 {
        let Event::Message(rx) = next_non_connect(&mut ev).await else {
            panic!("expected message {n}")
        };
        assert_eq!(cseq(&rx.message), format!("{n} REGISTER"));
        assert_eq!(
            rx.message.encode(),
            Bytes::from(register_bytes("onebyte", n))
        );
    }
}

#[tokio::test]
async fn one_byte_tls_records() {
    let pki = Pki::new("frag CA");
    let (server, mut ev) = Transport::new(TransportConfig::default());
    let addr = server
        .listen_tls(loopback(), pki.server_config())
        .await
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(pki.client_config(Some(pki.ue())));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("sip.example.org").unwrap(), tcp)
        .await
        .unwrap();
    let wire = [register_bytes("rec", 1), register_bytes("rec", 2)].concat();
    for b in &wire {
        // Each byte in its own TLS record.
        tls.write_all(std::slice::from_ref(b)).await.unwrap();
        tls.flush().await.unwrap();
    }
    for n in 1..=2 {
        let Event::Message(rx) = next_non_connect(&mut ev).await else {
            panic!("expected message {n}")
        };
        assert_eq!(cseq(&rx.message), format!("{n} REGISTER"));
    }
}

#[tokio::test]
async fn many_messages_per_write() {
    let (_t, mut ev, addr) = tcp_server(TransportConfig::default()).await;
    let mut raw = TcpStream::connect(addr).await.unwrap();
    let wire: Vec<u8> = (1..=200).flat_map(|n| register_bytes("burst", n)).collect();
    // Also split a message across two writes after the burst.
    let tail = register_bytes("burst", 201);
    raw.write_all(&[wire.as_slice(), &tail[..10]].concat())
        .await
        .unwrap();
    raw.write_all(&tail[10..]).await.unwrap();
    for n in 1..=201 {
        let Event::Message(rx) = next_non_connect(&mut ev).await else {
            panic!("expected message {n}")
        };
        assert_eq!(cseq(&rx.message), format!("{n} REGISTER"));
    }
}

#[tokio::test]
async fn crlf_keepalive_ping_gets_pong() {
    let (_t, mut ev, addr) = tcp_server(TransportConfig::default()).await;
    let mut raw = TcpStream::connect(addr).await.unwrap();
    // A ping split across writes, then a message right behind a ping.
    raw.write_all(b"\r\n").await.unwrap();
    raw.write_all(b"\r\n").await.unwrap();
    let mut pong = [0u8; 2];
    raw.read_exact(&mut pong).await.unwrap();
    assert_eq!(&pong, b"\r\n");
    raw.write_all(&[b"\r\n\r\n".as_slice(), &register_bytes("ka", 1)].concat())
        .await
        .unwrap();
    raw.read_exact(&mut pong).await.unwrap();
    assert_eq!(&pong, b"\r\n");
    let Event::Message(rx) = next_non_connect(&mut ev).await else {
        panic!("expected message")
    };
    assert_eq!(call_id(&rx.message), "ka");

    // Our transport as the client: ping, and the pong shows up as an event.
    let (client, mut cev) = Transport::new(TransportConfig::default());
    let conn = client
        .connect(&Destination::addr(addr, TransportKind::Tcp))
        .await
        .unwrap();
    conn.send_keepalive().await.unwrap();
    match next(&mut cev).await {
        Event::Pong(h) => assert_eq!(h.id(), conn.id()),
        other => panic!("expected Pong, got {other:?}"),
    }
}

#[tokio::test]
async fn responses_go_back_on_the_request_connection() {
    let (server, mut sev, addr) = tcp_server(TransportConfig::default()).await;
    let (c1, mut e1) = Transport::new(TransportConfig::default());
    let (c2, mut e2) = Transport::new(TransportConfig::default());
    let d = Destination::addr(addr, TransportKind::Tcp);
    let k1 = c1.connect(&d).await.unwrap();
    let k2 = c2.connect(&d).await.unwrap();
    k1.send(&register("one", 1)).await.unwrap();
    k2.send(&register("two", 1)).await.unwrap();
    for _ in 0..2 {
        let Event::Message(rx) = next_non_connect(&mut sev).await else {
            panic!("expected message")
        };
        let call = call_id(&rx.message);
        // Reply by id through the transport, as a SIP core would.
        server
            .send(rx.connection.id(), &ok(&call, 1))
            .await
            .unwrap();
    }
    let Event::Message(a1) = next(&mut e1).await else {
        panic!()
    };
    let Event::Message(a2) = next(&mut e2).await else {
        panic!()
    };
    assert_eq!(call_id(&a1.message), "one");
    assert_eq!(call_id(&a2.message), "two");
}

#[tokio::test]
async fn outbound_connections_are_reused() {
    let (_server, mut sev, addr) = tcp_server(TransportConfig::default()).await;
    let (client, _cev) = Transport::new(TransportConfig::default());
    let d = Destination::addr(addr, TransportKind::Tcp);
    let a = client.send_to(&d, &register("reuse", 1)).await.unwrap();
    let b = client.send_to(&d, &register("reuse", 2)).await.unwrap();
    assert_eq!(a.id(), b.id());
    assert_eq!(client.connection_count(), 1);
    for n in 1..=2 {
        let Event::Message(rx) = next_non_connect(&mut sev).await else {
            panic!()
        };
        assert_eq!(cseq(&rx.message), format!("{n} REGISTER"));
    }
    // Once closed, a new connection is opened.
    a.close().await;
    let Event::Closed { .. } = next_non_connect(&mut sev).await else {
        panic!("expected Closed")
    };
    while !a.is_closed() {
        tokio::task::yield_now().await;
    }
    let c = client.connect_or_reuse(&d).await.unwrap();
    assert_ne!(c.id(), a.id());
}

fn with_via(via: &str) -> Message {
    let text = String::from_utf8(register_bytes("alias", 1)).unwrap();
    let text = text.replace(
        "Via: SIP/2.0/TLS ue1.example.org:5062;branch=z9hG4bKalias1",
        via,
    );
    Message::parse(Bytes::from(text)).unwrap()
}

#[tokio::test]
async fn via_alias_reuses_inbound_tls_connection() {
    let pki = Pki::new("alias CA");
    let (server, mut sev) = Transport::new(TransportConfig::default());
    let addr = server
        .listen_tls(loopback(), pki.server_config())
        .await
        .unwrap();
    let (ue, _uev) = Transport::new(
        TransportConfig::default().with_client_tls(pki.client_config(Some(pki.ue()))),
    );
    let conn = ue
        .connect(&Destination::addr(addr, TransportKind::Tls).with_server_name("sip.example.org"))
        .await
        .unwrap();
    let toward_ue = Destination::tls("ue1.example.org", 5062);
    let spoofed = Destination::tls("ue2.example.org", 5062);

    // A sent-by the certificate does not name is ignored.
    conn.send(&with_via(
        "Via: SIP/2.0/TLS ue2.example.org:5062;branch=z9hG4bK9;alias",
    ))
    .await
    .unwrap();
    let Event::Message(_) = next_non_connect(&mut sev).await else {
        panic!()
    };
    assert!(server.connection_to(&spoofed).is_none());

    // Without `alias`, nothing is registered.
    conn.send(&with_via(
        "Via: SIP/2.0/TLS ue1.example.org:5062;branch=z9hG4bK8",
    ))
    .await
    .unwrap();
    let Event::Message(_) = next(&mut sev).await else {
        panic!()
    };
    assert!(server.connection_to(&toward_ue).is_none());

    conn.send(&with_via(
        "Via: SIP/2.0/TLS ue1.example.org:5062;branch=z9hG4bK7;alias",
    ))
    .await
    .unwrap();
    let Event::Message(rx) = next(&mut sev).await else {
        panic!()
    };
    let reused = server.connection_to(&toward_ue).expect("alias registered");
    assert_eq!(reused.id(), rx.connection.id());
    let h = server.connect_or_reuse(&toward_ue).await.unwrap();
    assert_eq!(
        h.id(),
        rx.connection.id(),
        "no new connection toward the UE"
    );
    let _ = Arc::clone(reused.info());
}
