//! The crate's error type.

use crate::ConnectionId;

/// Everything that can go wrong in `mcptt-tls`, grouped by cause.
///
/// Peer-caused failures (handshake, framing, limits) are reported per connection in
/// [`Event::Closed`](crate::Event::Closed) / [`Event::Rejected`](crate::Event::Rejected) and never
/// affect other connections.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- local configuration (files, keys, certificates) ----
    /// A PEM file or buffer could not be read or decoded.
    #[error("cannot read {what} from {source_name}: {source}")]
    Pem {
        /// What was being read ("certificate chain", "private key", "trust anchors").
        what: &'static str,
        /// The file name, or `<memory>`.
        source_name: String,
        /// The underlying PEM error.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// A certificate chain is empty.
    #[error("no certificate found in {0}")]
    NoCertificate(String),
    /// The private key does not belong to the first certificate of the chain.
    #[error("the private key does not match the certificate {0}")]
    KeyMismatch(String),
    /// The private key is not usable (unsupported algorithm or corrupt encoding).
    #[error("unusable private key in {source_name}: {source}")]
    InvalidKey {
        /// The file name, or `<memory>`.
        source_name: String,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
    /// A trust anchor (CA certificate) could not be used.
    #[error("invalid trust anchor in {source_name}: {source}")]
    InvalidTrustAnchor {
        /// The file name, or `<memory>`.
        source_name: String,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
    /// The TLS configuration could not be built.
    #[error("invalid TLS configuration: {0}")]
    Config(#[source] rustls::Error),
    /// A server name is neither a DNS name nor an IP address.
    #[error("invalid server name {0:?}")]
    InvalidServerName(String),
    /// A certificate could not be parsed as X.509.
    #[error("cannot parse the peer certificate: {0}")]
    Certificate(String),

    // ---- network ----
    /// A socket operation failed (bind, connect, read, write).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The host name of a destination did not resolve to any address.
    #[error("cannot resolve {0}")]
    Resolve(String),

    // ---- TLS handshake and peer authentication ----
    /// The TLS handshake failed: untrusted or expired certificate, no client certificate, wrong
    /// server name, or an alert sent by the peer (which names what it did not accept).
    #[error("TLS handshake failed: {0}")]
    Handshake(#[source] rustls::Error),
    /// The peer spoke plain text (for example SIP over TCP) to a TLS port.
    #[error("the peer sent plain text to a TLS port (first byte {0:#04x}); use TLS on this port")]
    PlaintextOnTlsPort(u8),
    /// The peer answered a plain-TCP connection with TLS records: the port expects TLS.
    #[error("the peer answered with TLS records: this port expects TLS, not plain TCP")]
    TlsOnPlainConnection,
    /// A TLS error after the handshake (corrupt record, alert from the peer).
    #[error("TLS error: {0}")]
    Tls(#[source] rustls::Error),

    // ---- limits ----
    /// The TLS handshake did not finish within the configured time.
    #[error("TLS handshake not finished after {0:?}")]
    HandshakeTimeout(std::time::Duration),
    /// No complete message or keep-alive arrived within the idle timeout.
    #[error("connection idle for {0:?}")]
    IdleTimeout(std::time::Duration),
    /// A started message was not complete within the message timeout (slowloris).
    #[error("message not complete after {0:?}")]
    MessageTimeout(std::time::Duration),
    /// The peer did not accept our bytes within the write timeout (it stopped reading).
    #[error("peer did not read for {0:?}")]
    WriteTimeout(std::time::Duration),
    /// The transport holds its maximum number of connections.
    #[error("too many connections (limit {0})")]
    TooManyConnections(usize),
    /// The source address holds its maximum number of connections.
    #[error("too many connections from {addr} (limit {limit})")]
    TooManyConnectionsFromAddress {
        /// The source IP address.
        addr: std::net::IpAddr,
        /// The configured limit.
        limit: usize,
    },
    /// The connection's write buffer is full: the peer reads slower than we write.
    #[error("send queue of connection {0} is full")]
    SendQueueFull(ConnectionId),

    // ---- peer broke the stream protocol ----
    /// The byte stream is not valid SIP framing (RFC 3261 §18.3) or a message exceeded a
    /// [`mcptt_sip::Limits`] limit.
    #[error("SIP framing error: {0}")]
    Sip(#[from] mcptt_sip::Error),
    /// The peer closed the connection in the middle of a message.
    #[error("connection closed by the peer in the middle of a message ({0} bytes buffered)")]
    TruncatedMessage(usize),

    // ---- caller misuse / lifecycle ----
    /// The connection is closed (or never existed).
    #[error("connection {0} is closed")]
    ConnectionClosed(ConnectionId),
    /// The transport is shutting down and accepts no new work.
    #[error("the transport is shutting down")]
    ShuttingDown,
    /// No TLS client configuration was given, so TLS destinations cannot be reached.
    #[error("no TLS client configuration: set TransportConfig::client_tls")]
    NoClientTlsConfig,
    /// The application's [`Handler`](crate::Handler) panicked on a message of this
    /// connection: the connection was closed (other connections go on).
    #[error("the message handler panicked; connection closed")]
    HandlerPanicked,
}

impl Error {
    /// The SIP status code a server should answer with, when the failure maps to one
    /// (framing and limit errors of [`mcptt_sip`], for example 400 or 513).
    #[must_use]
    pub fn status_code(&self) -> Option<u16> {
        match self {
            Self::Sip(e) => e.status_code(),
            _ => None,
        }
    }

    /// True when the failure comes from the peer's certificate or its verdict on ours
    /// (untrusted CA, expired, missing, wrong name, or a certificate alert from the peer).
    #[must_use]
    pub fn is_authentication_failure(&self) -> bool {
        use rustls::AlertDescription as A;
        match self {
            Self::Handshake(e) | Self::Tls(e) => matches!(
                e,
                rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
                    | rustls::Error::AlertReceived(
                        A::BadCertificate
                            | A::CertificateExpired
                            | A::CertificateRequired
                            | A::UnknownCA
                            | A::CertificateUnknown
                            | A::CertificateRevoked
                            | A::UnsupportedCertificate
                            | A::AccessDenied
                    )
            ),
            _ => false,
        }
    }
}
