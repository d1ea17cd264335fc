//! `mcptt-tls`: SIP over mutual TLS and TCP, on rustls (ring provider) and tokio.
//!
//! Flow step 2 of the MCPTT registration flow: the UE and the SIP core authenticate each
//! other with certificates before any SIP is exchanged, and every later message rides these
//! connections. This is the only library crate of the workspace that does I/O; it moves
//! bytes between sockets, rustls and the [`mcptt_sip`] stream framer, and nothing else.
//!
//! - [`Credentials`], [`TrustAnchors`], [`ServerTlsConfig`], [`ClientTlsConfig`]: rustls
//!   configurations from PEM files or DER; the server **requires** a client certificate by
//!   default; TLS 1.3 and 1.2 only; no ALPN unless asked; SNI always sent; optional
//!   `SSLKEYLOGFILE`.
//! - [`PeerIdentity`]: the peer's verified certificate with its URI, DNS and IP SANs;
//!   [`IdentityPolicy`] ([`UriSanPolicy`], [`IdentityMap`]) maps a device certificate to the
//!   public user identities it may register.
//! - [`Transport`]: TLS and TCP listeners and connectors exchanging whole
//!   [`mcptt_sip::Message`]s. Each [`Received`] message carries the [`ConnectionHandle`] it
//!   came on, for responses (RFC 3261 §18.2.2); connections toward a destination are reused,
//!   including inbound ones offered with a Via `alias` (RFC 5923); CRLF keep-alives are
//!   answered (RFC 5626). Limits: handshake, idle, message and write timeouts; connections
//!   total and per source address; message size ([`mcptt_sip::Limits`]); bounded queues
//!   for back-pressure. Each connection runs in a `tracing` span with its peer address and
//!   identity. [`Transport::shutdown`] lets in-flight messages finish.
//! - [`Handler`] ([`Transport::with_handler`]): answer messages on the connection's own
//!   task, without the hop through [`Events`] (the fast path for request → response).
//!
//! Left out: UDP, DNS NAPTR/SRV (RFC 3263), certificate revocation.
//!
//! # Example
//!
//! ```
//! use mcptt_tls::{Destination, Event, Transport, TransportConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), mcptt_tls::Error> {
//! // A SIP core listening on plain TCP, echoing 200 OK on the connection of each request.
//! let (core, mut core_events) = Transport::new(TransportConfig::default());
//! let addr = core.listen_tcp("127.0.0.1:0".parse().unwrap()).await?;
//! tokio::spawn(async move {
//!     while let Some(event) = core_events.recv().await {
//!         if let Event::Message(rx) = event {
//!             let ok = mcptt_sip::Message::parse(mcptt_sip::Bytes::from_static(
//!                 b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP ue;branch=z9hG4bK1\r\nCall-ID: a\r\n\
//!                   CSeq: 1 REGISTER\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nContent-Length: 0\r\n\r\n",
//!             ))?;
//!             rx.connection.send(&ok).await?;
//!         }
//!     }
//!     Ok::<_, mcptt_tls::Error>(())
//! });
//!
//! // A UE connecting and registering.
//! let (ue, mut ue_events) = Transport::new(TransportConfig::default());
//! let conn = ue.connect(&Destination::addr(addr, mcptt_tls::TransportKind::Tcp)).await?;
//! let register = mcptt_sip::Message::parse(mcptt_sip::Bytes::from_static(
//!     b"REGISTER sip:example.org SIP/2.0\r\nVia: SIP/2.0/TCP ue;branch=z9hG4bK1\r\n\
//!       Max-Forwards: 70\r\nCall-ID: a\r\nCSeq: 1 REGISTER\r\nFrom: <sip:a@b>;tag=1\r\n\
//!       To: <sip:a@b>\r\nContent-Length: 0\r\n\r\n",
//! ))?;
//! conn.send(&register).await?;
//! let Some(Event::Message(answer)) = ue_events.recv().await else { panic!("no answer") };
//! assert!(matches!(answer.message, mcptt_sip::Message::Response(_)));
//! ue.shutdown(std::time::Duration::ZERO).await;
//! # Ok(()) }
//! ```

mod config;
mod conn;
mod der;
mod error;
mod identity;
mod transport;

pub use config::{
    ClientAuth, ClientTlsConfig, Credentials, ServerTlsConfig, TrustAnchors, crypto_provider,
};
pub use error::Error;
pub use identity::{IdentityMap, IdentityPolicy, PeerIdentity, UriSanPolicy, normalize_sip_uri};
pub use transport::{
    ConnectionHandle, ConnectionId, ConnectionInfo, Destination, Direction, Event, Events, Handler,
    Received, Transport, TransportConfig, TransportKind,
};

pub use rustls;
