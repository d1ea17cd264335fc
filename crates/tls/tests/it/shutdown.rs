//! Graceful shutdown lets in-flight messages finish.

use std::time::{Duration, Instant};

use mcptt_tls::{Error, Event, TransportConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{call_id, next, next_non_connect, ok, register_bytes, tcp_server};

#[tokio::test]
async fn shutdown_finishes_in_flight_messages() {
    let (server, mut ev, addr) = tcp_server(TransportConfig::default()).await;
    let mut raw = TcpStream::connect(addr).await.unwrap();
    let Event::Connected(_) = next(&mut ev).await else {
        panic!()
    };
    let wire = register_bytes("inflight", 1);
    raw.write_all(&wire[..50]).await.unwrap();
    let start = Instant::now();
    let s = server.clone();
    let shutdown = tokio::spawn(async move { s.shutdown(Duration::from_millis(800)).await });

    // The rest of the in-flight message still arrives, and the response still goes out.
    raw.write_all(&wire[50..]).await.unwrap();
    let rx = match next_non_connect(&mut ev).await {
        Event::Message(rx) => rx,
        other => panic!("expected the in-flight message, got {other:?}"),
    };
    assert_eq!(call_id(&rx.message), "inflight");
    rx.connection.send(&ok("inflight", 1)).await.unwrap();
    let mut answer = Vec::new();
    raw.read_to_end(&mut answer).await.unwrap();
    assert!(
        answer.starts_with(b"SIP/2.0 200 OK"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    shutdown.await.unwrap();
    assert!(start.elapsed() < Duration::from_secs(3));
    // The listener is gone.
    assert!(TcpStream::connect(addr).await.is_err());
    assert_eq!(server.connection_count(), 0);
    assert!(matches!(
        server.listen_tcp(crate::loopback()).await,
        Err(Error::ShuttingDown)
    ));
}
