//! Mutual TLS on loopback: success, and clear errors on both sides for each failure.

use std::sync::Arc;

use mcptt_tls::rustls::{self, AlertDescription, CertificateError};
use mcptt_tls::{
    ConnectionHandle, Destination, Error, Event, Events, IdentityPolicy, Transport,
    TransportConfig, TransportKind, UriSanPolicy,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::pki::Pki;
use crate::{WAIT, call_id, cseq, loopback, next, next_non_connect, ok, register, register_bytes};

async fn tls_server(pki: &Pki) -> (Transport, Events, std::net::SocketAddr) {
    let (t, e) = Transport::new(TransportConfig::default());
    let addr = t.listen_tls(loopback(), pki.server_config()).await.unwrap();
    (t, e, addr)
}

fn client(config: Arc<rustls::ClientConfig>) -> (Transport, Events) {
    Transport::new(TransportConfig::default().with_client_tls(config))
}

fn dest(addr: std::net::SocketAddr) -> Destination {
    Destination::addr(addr, TransportKind::Tls).with_server_name("sip.example.org")
}

#[tokio::test]
async fn mutual_tls_succeeds_and_exposes_identities() {
    let pki = Pki::new("mtls CA");
    let (server, mut sev, addr) = tls_server(&pki).await;
    let (ue, mut uev) = client(pki.client_config(Some(pki.ue())));
    let conn = ue.connect(&dest(addr)).await.unwrap();

    let server_id = conn.identity().unwrap();
    assert_eq!(server_id.dns_names(), ["sip.example.org"]);
    assert_eq!(
        conn.info().tls_version,
        Some(rustls::ProtocolVersion::TLSv1_3)
    );

    let Event::Connected(inbound) = next(&mut sev).await else {
        panic!("expected Connected")
    };
    let ue_id = inbound.identity().unwrap().clone();
    assert_eq!(
        ue_id.sip_uris().collect::<Vec<_>>(),
        ["sip:alice@example.org"]
    );
    assert_eq!(
        inbound.info().server_name.as_deref(),
        Some("sip.example.org"),
        "SNI"
    );
    assert!(UriSanPolicy.may_register(&ue_id, "sip:alice@example.org"));
    assert!(!UriSanPolicy.may_register(&ue_id, "sip:bob@example.org"));

    conn.send(&register("mtls", 1)).await.unwrap();
    let Event::Message(rx) = next(&mut sev).await else {
        panic!("expected Message")
    };
    assert_eq!(call_id(&rx.message), "mtls");
    assert_eq!(rx.connection.id(), inbound.id());
    rx.connection.send(&ok("mtls", 1)).await.unwrap();
    let Event::Message(answer) = next(&mut uev).await else {
        panic!("expected answer")
    };
    assert!(!answer.message.is_request());
    assert_eq!(server.connection_count(), 1);
}

#[tokio::test]
async fn mutual_tls_over_tls12() {
    let pki = Pki::new("tls12 CA");
    let (_server, mut sev, addr) = tls_server(&pki).await;
    let ue = pki.ue();
    let config = rustls::ClientConfig::builder_with_provider(mcptt_tls::crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(pki.anchors().root_store().clone())
        .with_client_auth_cert(ue.chain().to_vec(), ue.private_key().clone_key())
        .unwrap();
    let (t, _uev) = client(Arc::new(config));
    let conn = t.connect(&dest(addr)).await.unwrap();
    assert_eq!(
        conn.info().tls_version,
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    let Event::Connected(inbound) = next(&mut sev).await else {
        panic!("expected Connected")
    };
    assert!(inbound.identity().is_some());
}

/// The client-side failure: either `connect` fails, or (TLS 1.3, where the server judges
/// the client certificate after the client's last flight) the connection closes with the
/// server's alert.
async fn client_failure(t: &Transport, events: &mut Events, addr: std::net::SocketAddr) -> Error {
    match t.connect(&dest(addr)).await {
        Err(e) => e,
        Ok(_) => match next(events).await {
            Event::Closed { error: Some(e), .. } => e,
            other => panic!("expected Closed with error, got {other:?}"),
        },
    }
}

async fn server_failure(events: &mut Events) -> Error {
    match next(events).await {
        Event::Rejected { error, .. } => error,
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn no_client_certificate() {
    let pki = Pki::new("nocert CA");
    let (_server, mut sev, addr) = tls_server(&pki).await;
    let (t, mut uev) = client(pki.client_config(None));
    let c = client_failure(&t, &mut uev, addr).await;
    assert!(
        matches!(
            c,
            Error::Tls(rustls::Error::AlertReceived(
                AlertDescription::CertificateRequired
            ))
        ),
        "client: {c}"
    );
    assert!(c.is_authentication_failure());
    let s = server_failure(&mut sev).await;
    assert!(
        matches!(s, Error::Handshake(rustls::Error::NoCertificatesPresented)),
        "server: {s}"
    );
    assert!(s.to_string().contains("TLS handshake failed"), "{s}");
}

#[tokio::test]
async fn client_certificate_from_untrusted_ca() {
    let pki = Pki::new("trusted CA");
    let rogue = Pki::new("rogue CA");
    let (_server, mut sev, addr) = tls_server(&pki).await;
    let (t, mut uev) = client(pki.client_config(Some(rogue.ue())));
    let c = client_failure(&t, &mut uev, addr).await;
    assert!(
        matches!(
            c,
            Error::Tls(rustls::Error::AlertReceived(AlertDescription::UnknownCA))
        ),
        "client: {c}"
    );
    let s = server_failure(&mut sev).await;
    assert!(
        matches!(
            s,
            Error::Handshake(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        ),
        "server: {s}"
    );
    assert!(s.is_authentication_failure());
}

#[tokio::test]
async fn server_certificate_from_untrusted_ca() {
    let pki = Pki::new("server CA");
    let other = Pki::new("client-trusted CA");
    let (_server, mut sev, addr) = tls_server(&pki).await;
    let (t, _uev) = client(other.client_config(Some(pki.ue())));
    let c = t.connect(&dest(addr)).await.unwrap_err();
    assert!(
        matches!(
            c,
            Error::Handshake(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        ),
        "client: {c}"
    );
    let s = server_failure(&mut sev).await;
    assert!(
        matches!(
            s,
            Error::Handshake(rustls::Error::AlertReceived(AlertDescription::UnknownCA))
        ),
        "server: {s}"
    );
}

#[tokio::test]
async fn expired_client_certificate() {
    let pki = Pki::new("expiry CA");
    let (_server, mut sev, addr) = tls_server(&pki).await;
    let expired = pki
        .leaf_full(&["ue1.example.org"], &["sip:alice@example.org"], true)
        .credentials;
    let (t, mut uev) = client(pki.client_config(Some(expired)));
    let c = client_failure(&t, &mut uev, addr).await;
    assert!(
        matches!(
            c,
            Error::Tls(rustls::Error::AlertReceived(
                AlertDescription::CertificateExpired
            ))
        ),
        "client: {c}"
    );
    let s = server_failure(&mut sev).await;
    assert!(
        matches!(
            s,
            Error::Handshake(rustls::Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. }
            ))
        ),
        "server: {s}"
    );
}

#[tokio::test]
async fn wrong_server_name() {
    let pki = Pki::new("name CA");
    let (_server, mut sev, addr) = tls_server(&pki).await;
    let (t, _uev) = client(pki.client_config(Some(pki.ue())));
    let wrong = Destination::addr(addr, TransportKind::Tls).with_server_name("other.example.org");
    let c = t.connect(&wrong).await.unwrap_err();
    assert!(
        matches!(
            c,
            Error::Handshake(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            ))
        ),
        "client: {c}"
    );
    let s = server_failure(&mut sev).await;
    assert!(
        matches!(
            s,
            Error::Handshake(rustls::Error::AlertReceived(
                AlertDescription::BadCertificate
            ))
        ),
        "server: {s}"
    );
}

#[tokio::test]
async fn plain_tcp_client_on_tls_port() {
    let pki = Pki::new("plain CA");
    let (_server, mut sev, addr) = tls_server(&pki).await;
    // Our transport as a plain-TCP client.
    let (t, mut uev) = Transport::new(TransportConfig::default());
    let conn = t
        .connect(&Destination::addr(addr, TransportKind::Tcp))
        .await
        .unwrap();
    conn.send(&register("plain", 1)).await.unwrap();
    let s = server_failure(&mut sev).await;
    assert!(matches!(s, Error::PlaintextOnTlsPort(b'R')), "server: {s}");
    assert!(s.to_string().contains("plain text to a TLS port"), "{s}");
    match next_non_connect(&mut uev).await {
        Event::Closed {
            error: Some(Error::TlsOnPlainConnection),
            ..
        } => {}
        other => panic!("client: expected TlsOnPlainConnection, got {other:?}"),
    }
    // A raw socket sees the TLS alert record the server answered with.
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    raw.write_all(&register_bytes("raw", 1)).await.unwrap();
    let mut answer = Vec::new();
    let _ = raw.read_to_end(&mut answer).await;
    assert_eq!(answer.first(), Some(&0x15), "TLS alert record: {answer:?}");
}

#[tokio::test]
async fn key_log_file_records_session_secrets() {
    let pki = Pki::new("keylog CA");
    let path = std::env::temp_dir().join(format!("mcptt-tls-keylog-{}.txt", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let server_cfg =
        mcptt_tls::ServerTlsConfig::new(pki.leaf(&["sip.example.org"], &[]), pki.anchors())
            .key_log_file(&path)
            .build()
            .unwrap();
    let (server, mut sev) = Transport::new(TransportConfig::default());
    let addr = server.listen_tls(loopback(), server_cfg).await.unwrap();
    let (t, _uev) = client(pki.client_config(Some(pki.ue())));
    t.connect(&dest(addr)).await.unwrap();
    let Event::Connected(_) = next(&mut sev).await else {
        panic!()
    };
    let log = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    for label in [
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_TRAFFIC_SECRET_0",
        "CLIENT_TRAFFIC_SECRET_0",
    ] {
        let line = log
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("{label} in {log}"));
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 3);
        assert_eq!(fields[1].len(), 64, "32-byte client random in hex");
    }
}

/// Captured log output.
#[derive(Clone, Default)]
struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Self;
    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn connection_span_names_peer_and_identity() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(capture.clone())
        .finish();
    // Thread-local: this test's runtime runs every task on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);
    let pki = Pki::new("span CA");
    let (_server, mut sev, addr) = tls_server(&pki).await;
    let (ue, _uev) = client(pki.client_config(Some(pki.ue())));
    let conn = ue.connect(&dest(addr)).await.unwrap();
    let Event::Connected(_) = next(&mut sev).await else {
        panic!()
    };
    conn.close().await;
    let Event::Closed { .. } = next(&mut sev).await else {
        panic!()
    };
    let log = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let inbound = log
        .lines()
        .find(|l| l.contains("sip_conn{") && l.contains("dir=\"in\"") && l.contains("connected"))
        .unwrap_or_else(|| panic!("no inbound connection span in:\n{log}"));
    assert!(inbound.contains("peer=127.0.0.1:"), "{inbound}");
    assert!(
        inbound.contains("identity=\"sip:alice@example.org\""),
        "{inbound}"
    );
    assert!(inbound.contains("transport=\"TLS\""), "{inbound}");
    assert!(
        log.lines()
            .any(|l| l.contains("dir=\"in\"") && l.contains("closed")),
        "close logged in the span:\n{log}"
    );
}

/// Bursts both ways over mutual TLS with the batch API: the client queues 300 requests
/// (more than the write buffer's message bound, so it also waits for room) and flushes;
/// the server takes them with `recv_many` and answers each on its connection, queued, with
/// `send` for the last of each batch. Everything arrives whole and in order.
#[tokio::test]
async fn queued_bursts_and_recv_many_over_tls() {
    let pki = Pki::new("batch CA");
    let (_server, mut sev, addr) = tls_server(&pki).await;
    let (client, mut cev) = client(pki.client_config(Some(pki.ue())));
    let conn = client.connect(&dest(addr)).await.unwrap();
    const N: u32 = 300;
    let answering = tokio::spawn(async move {
        let mut batch = Vec::new();
        let mut answered = 0;
        let mut batches = 0;
        while answered < N {
            let n = tokio::time::timeout(WAIT, sev.recv_many(&mut batch, 64))
                .await
                .expect("events in time");
            assert!(n > 0 && n <= 64 && n == batch.len(), "{n}");
            batches += 1;
            let last = batch.len() - 1;
            for (i, ev) in batch.drain(..).enumerate() {
                let Event::Message(rx) = ev else { continue };
                answered += 1;
                assert_eq!(cseq(&rx.message), format!("{answered} REGISTER"));
                let answer = ok("batch", answered);
                if i == last {
                    rx.connection.send(&answer).await.unwrap();
                } else {
                    rx.connection.queue(&answer).await.unwrap();
                }
            }
        }
        batches
    });
    for n in 1..=N {
        conn.queue(&register("batch", n)).await.unwrap();
    }
    conn.flush();
    for n in 1..=N {
        let Event::Message(rx) = next_non_connect(&mut cev).await else {
            panic!("expected answer {n}")
        };
        assert!(!rx.message.is_request());
        assert_eq!(cseq(&rx.message), format!("{n} REGISTER"));
    }
    let batches = answering.await.unwrap();
    assert!(batches < N, "{batches} batches for {N} requests");
}

/// MESSAGE number `n` with a 4,000-byte body (CSeq `n`).
fn message_4000(n: u32) -> mcptt_sip::Message {
    let body = "z".repeat(4000);
    mcptt_sip::Message::parse(mcptt_sip::Bytes::from(format!(
        "MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TLS a;branch=z9hG4bK{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: big\r\n\
         CSeq: {n} MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )))
    .unwrap()
}

/// The next `count` messages on `events` are [`message_4000`] 1 to `count`, whole and in order.
async fn expect_messages_4000(events: &mut Events, count: u32) {
    for n in 1..=count {
        let Event::Message(rx) = next_non_connect(events).await else {
            panic!("expected message {n}")
        };
        assert_eq!(cseq(&rx.message), format!("{n} MESSAGE"));
        assert_eq!(rx.message.body_len(), 4000);
    }
}

/// One flush bigger than rustls' own default buffer (64 KiB): 40 queued messages of 4 KiB
/// go out in one write and arrive whole.
#[tokio::test]
async fn flush_of_a_large_queued_batch_over_tls() {
    let pki = Pki::new("bigbatch CA");
    let (_server, mut sev, addr) = tls_server(&pki).await;
    let (client, _cev) = client(pki.client_config(Some(pki.ue())));
    let conn = client.connect(&dest(addr)).await.unwrap();
    for n in 1..=40 {
        let m = message_4000(n);
        conn.queue(&m).await.unwrap();
    }
    conn.flush();
    expect_messages_4000(&mut sev, 40).await;
}

/// `client` connected to a raw tokio-rustls server (accepting with `pki`'s server config), which
/// sees exactly the bytes the client writes.
async fn connect_to_raw_peer(
    client: &Transport,
    pki: &Pki,
) -> (
    ConnectionHandle,
    tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
) {
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config());
    let server_dest = dest(listener.local_addr().unwrap());
    let (conn, peer) = tokio::join!(client.connect(&server_dest), async {
        let (tcp, _) = listener.accept().await.unwrap();
        acceptor.accept(tcp).await.unwrap()
    });
    (conn.unwrap(), peer)
}

/// Closes `conn` and checks that its raw peer received nothing more.
async fn assert_nothing_more_after_close(
    conn: ConnectionHandle,
    mut peer: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
) {
    conn.close().await;
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(WAIT, peer.read_to_end(&mut rest)).await;
    assert!(rest.is_empty(), "{} extra bytes", rest.len());
}

/// `queue_bytes` takes pre-encoded bytes like `queue` takes a message: they leave, in the
/// order queued and mixed with queued messages, with the next `send` (here toward a raw
/// tokio-rustls peer, which sees exactly those bytes), and a later batch with `flush`.
#[tokio::test]
async fn queue_bytes_leave_in_order_with_the_next_send_or_flush() {
    let pki = Pki::new("queue_bytes CA");
    let (client, _cev) = client(pki.client_config(Some(pki.ue())));
    let (conn, mut peer) = connect_to_raw_peer(&client, &pki).await;

    let two = [register_bytes("qb", 1), register_bytes("qb", 2)].concat();
    conn.queue_bytes(mcptt_sip::Bytes::from(two)).await.unwrap();
    conn.queue(&register("qb", 3)).await.unwrap();
    conn.queue_bytes(mcptt_sip::Bytes::from(register_bytes("qb", 4)))
        .await
        .unwrap();
    conn.send(&register("qb", 5)).await.unwrap();
    let first: Vec<u8> = (1..=5).flat_map(|n| register_bytes("qb", n)).collect();
    let mut got = vec![0u8; first.len()];
    tokio::time::timeout(WAIT, peer.read_exact(&mut got))
        .await
        .expect("queued bytes in time")
        .unwrap();
    assert_eq!(got, first);

    for n in 6..=7 {
        conn.queue_bytes(mcptt_sip::Bytes::from(register_bytes("qb", n)))
            .await
            .unwrap();
    }
    conn.flush();
    let second: Vec<u8> = (6..=7).flat_map(|n| register_bytes("qb", n)).collect();
    let mut got = vec![0u8; second.len()];
    tokio::time::timeout(WAIT, peer.read_exact(&mut got))
        .await
        .expect("flushed bytes in time")
        .unwrap();
    assert_eq!(got, second);

    assert_nothing_more_after_close(conn, peer).await;
}

/// `queue_for_flush` / `queue_bytes_for_flush` / `queue_slice_for_flush` leave with the
/// caller's `flush`, in order and
/// exactly. A batch longer than the write buffer's message bound (`send_queue` 4 here)
/// does not wait for a flush nobody else would make: the full buffer is written at once
/// (otherwise the fifth message would wait for room until the write timeout).
#[tokio::test]
async fn queued_for_flush_leave_with_the_flush_and_a_full_buffer_makes_room() {
    let pki = Pki::new("for_flush CA");
    let mut config = crate::quick_config().with_client_tls(pki.client_config(Some(pki.ue())));
    config.send_queue = 4;
    let (client, _cev) = Transport::new(config);
    let (conn, mut peer) = connect_to_raw_peer(&client, &pki).await;

    const N: u32 = 11;
    for n in 1..=N {
        match n % 3 {
            0 => conn.queue_for_flush(&register("ff", n)).await.unwrap(),
            1 => conn
                .queue_bytes_for_flush(mcptt_sip::Bytes::from(register_bytes("ff", n)))
                .await
                .unwrap(),
            _ => conn
                .queue_slice_for_flush(&register_bytes("ff", n))
                .await
                .unwrap(),
        }
    }
    conn.flush();
    let all: Vec<u8> = (1..=N).flat_map(|n| register_bytes("ff", n)).collect();
    let mut got = vec![0u8; all.len()];
    tokio::time::timeout(WAIT, peer.read_exact(&mut got))
        .await
        .expect("flushed batch in time")
        .unwrap();
    assert_eq!(got, all);

    assert_nothing_more_after_close(conn, peer).await;
}

/// A server reading at most 512 plaintext bytes per turn (`read_chunk`) takes a burst of
/// 40 records of 4 KiB: each socket read brings up to 16 KiB of TLS records, and what one
/// turn does not decrypt is kept for the next. Everything arrives whole and in order.
#[tokio::test]
async fn small_read_chunks_keep_the_records_read_ahead() {
    let pki = Pki::new("readahead CA");
    let mut config = TransportConfig::default();
    config.read_chunk = 512;
    let (_server, mut sev) = Transport::new(config);
    let addr = _server
        .listen_tls(loopback(), pki.server_config())
        .await
        .unwrap();
    let (client, _cev) = client(pki.client_config(Some(pki.ue())));
    let conn = client.connect(&dest(addr)).await.unwrap();
    for n in 1..=40 {
        let m = message_4000(n);
        conn.queue_for_flush(&m).await.unwrap();
    }
    conn.flush();
    expect_messages_4000(&mut sev, 40).await;
}
