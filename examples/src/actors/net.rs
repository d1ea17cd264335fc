//! Building `mcptt-tls` configurations from the demo/CLI TLS material.

use std::sync::Arc;

use mcptt_tls::{ClientTlsConfig, Credentials, ServerTlsConfig, TrustAnchors};

use super::ActorError;
use crate::cli::TlsMaterial;

fn tls_err(what: &str, e: impl std::fmt::Display) -> ActorError {
    ActorError::Config(format!("{what}: {e}"))
}

/// Own credentials.
pub fn credentials(tls: &TlsMaterial) -> Result<Credentials, ActorError> {
    Credentials::from_der(tls.identity.chain(), tls.identity.key())
        .map_err(|e| tls_err("certificate/key", e))
}

/// Trust anchors.
pub fn anchors(tls: &TlsMaterial) -> Result<TrustAnchors, ActorError> {
    TrustAnchors::from_der(tls.roots.clone()).map_err(|e| tls_err("CA certificates", e))
}

/// A server configuration requiring a client certificate from the trusted CAs (mutual TLS).
/// It sends no TLS 1.3 session tickets: every UE connection is a fresh full handshake, so
/// tickets were computed, stored and sent for nothing (two per connection).
pub fn server_config(tls: &TlsMaterial) -> Result<Arc<rustls::ServerConfig>, ActorError> {
    ServerTlsConfig::new(credentials(tls)?, anchors(tls)?)
        .session_tickets(0)
        .build()
        .map_err(|e| tls_err("TLS server configuration", e))
}

/// A client configuration presenting our certificate and trusting the CAs.
pub fn client_config(tls: &TlsMaterial) -> Result<Arc<rustls::ClientConfig>, ActorError> {
    ClientTlsConfig::new(anchors(tls)?)
        .credentials(credentials(tls)?)
        .build()
        .map_err(|e| tls_err("TLS client configuration", e))
}
