//! Configuration of the actors, shared by `flow` and the separate binaries.

use std::net::SocketAddr;
use std::time::Duration;

use crate::cli::TlsMaterial;
use mcptt_service_state::UeKind;

/// Transport between SIP core and MCPTT server (UEs always use TLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Transport {
    /// SIP over mutual TLS.
    #[default]
    Tls,
    /// SIP over plain TCP (trusted network).
    Tcp,
}

/// The `--store` value of the in-memory registration store (the default: nothing to install).
pub const MEMORY_STORE: &str = "memory";

/// Whether a `--store` value names the in-memory store ([`MEMORY_STORE`], or empty).
#[must_use]
pub fn is_memory_store(store: &str) -> bool {
    let s = store.trim();
    s.is_empty() || s.eq_ignore_ascii_case(MEMORY_STORE)
}

/// Default of [`SipCoreConfig::mcptt_timeout`]: well under the registrar's 32 s third-party
/// REGISTER timeout, so a third-party REGISTER can still fail over to a second server.
pub const DEFAULT_MCPTT_TIMEOUT: Duration = Duration::from_secs(4);
/// Default of [`SipCoreConfig::mcptt_hold_down`].
pub const DEFAULT_MCPTT_HOLD_DOWN: Duration = Duration::from_secs(30);
/// Default of [`McpttServerConfig::dialog_lease`] (the service-state server's default).
pub const DEFAULT_DIALOG_LEASE: Duration = Duration::from_secs(60);

/// SIP core: TLS listener for UEs, registrar, third-party registration, proxy.
#[derive(Debug, Clone)]
pub struct SipCoreConfig {
    /// Where UEs connect (mutual TLS).
    pub listen: SocketAddr,
    /// Own certificate and the CAs trusted for UEs and the MCPTT server.
    pub tls: TlsMaterial,
    /// The MCPTT server instances (at least one), in order of preference. Each request to
    /// the MCPTT server (third-party REGISTER, PUBLISH, SUBSCRIBE) goes to the first one not
    /// held down, and fails over to the next when the connection fails or no final answer
    /// comes within [`SipCoreConfig::mcptt_timeout`] (see the `sip_core` module docs for
    /// the whole policy). NOTIFYs from any of them are relayed to the UE.
    pub mcptt_servers: Vec<SocketAddr>,
    /// Transport towards the MCPTT servers.
    pub mcptt_transport: Transport,
    /// How long a request forwarded to an MCPTT server may wait for a final answer before
    /// it is sent to the next server ([`DEFAULT_MCPTT_TIMEOUT`]).
    pub mcptt_timeout: Duration,
    /// How long an MCPTT server that failed (connection refused or closed, request timed
    /// out) is tried only after the others ([`DEFAULT_MCPTT_HOLD_DOWN`]).
    pub mcptt_hold_down: Duration,
    /// The SIP core's own URI (From/Contact of third-party REGISTERs, Via host).
    pub node_uri: String,
    /// The MCPTT server's SIP URI (Request-URI of third-party REGISTERs).
    pub application_server: String,
    /// The MCPTT server's public service identity: requests to it are routed to the server.
    pub psi: String,
    /// Extra certificate identity → public user identities grants (beyond the certificate's
    /// own `sip:` URI SANs).
    pub identities: Vec<(String, Vec<String>)>,
    /// Largest registration expiry granted.
    pub max_expires: u32,
    /// Most simultaneous UE connections from one IP address (all demo UEs share 127.0.0.1).
    pub max_connections_per_ip: usize,
    /// Where the registrar keeps its bindings: `memory` (this process only, the default),
    /// `redis://host:port` (one Redis node shared by several SIP core instances), or
    /// comma-separated `redis://` seed nodes of a Redis Cluster (see
    /// `mcptt_store_redis::StoreChoice::open`).
    pub store: String,
}

/// MCPTT server: third-party REGISTER, PUBLISH, SUBSCRIBE, NOTIFY; token validation.
#[derive(Debug, Clone)]
pub struct McpttServerConfig {
    /// Where the SIP core connects.
    pub listen: SocketAddr,
    /// Transport it accepts.
    pub transport: Transport,
    /// Own certificate and the CAs trusted for the SIP core.
    pub tls: TlsMaterial,
    /// Own SIP URI.
    pub node_uri: String,
    /// Public service identity (PUBLISH and SUBSCRIBE Request-URI).
    pub psi: String,
    /// The IdMS keys and issuer access tokens are checked against (fetched from the IdMS by
    /// the caller). `None`: no IdMS is known, every token is refused (and the reason logged).
    pub keys: Option<TokenKeys>,
    /// Clock leeway for token `exp`/`nbf`/`iat`, seconds (at most 300).
    pub leeway: u64,
    /// Expected token audience (`aud`).
    pub audience: String,
    /// Accepted MCPTT scopes (any one suffices).
    pub scopes: Vec<String>,
    /// UE directory: public user identity → kind (default `personal`).
    pub ue_directory: Vec<(String, UeKind)>,
    /// Subscription expiry granted.
    pub subscription_expires: u32,
    /// Identities of the SIP cores allowed to send third-party REGISTERs: a TLS certificate
    /// label (its first `sip:` URI SAN, e.g. `sip:scscf.example.com`) or `tcp:IP` for TCP.
    pub trusted_cores: Vec<String>,
    /// Where publications, subscriptions and service state live: `memory` (this process
    /// only, the default), `redis://host:port` (one Redis node shared by several MCPTT
    /// server instances), or comma-separated `redis://` seed nodes of a Redis Cluster (see
    /// `mcptt_store_redis::ServiceStateChoice::open`).
    pub store: String,
    /// How long this instance's lease on its subscription dialogs lasts in a shared store:
    /// when it dies, another instance takes its dialogs over (and NOTIFYs from then on)
    /// within this time plus that instance's next timer run
    /// (`mcptt_service_state::server::ServerConfig::dialog_lease`).
    pub dialog_lease: Duration,
}

/// The IdMS's issuer name and JWKS, as the MCPTT server trusts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenKeys {
    /// Expected `iss` (the IdMS discovery document's `issuer`).
    pub issuer: String,
    /// The IdMS JWKS document.
    pub jwks_json: String,
}

/// How the user authenticates at the IdMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LoginMethod {
    /// Password (`3gpp:acr:password`).
    #[default]
    Password,
    /// Password and a one-time code.
    TwoFactor,
    /// SIM-based challenge (AKA).
    Sim,
}

/// One UE and the user signing in on it.
#[derive(Debug, Clone)]
pub struct UeConfig {
    /// Label in the trace, e.g. `ue1/alice`.
    pub label: String,
    /// Label of the UE's own records (TLS, registration), e.g. `ue1`.
    pub ue_label: String,
    /// The IdMS base URL (`https://…`).
    pub idms: String,
    /// CAs trusted for the IdMS's HTTPS certificate.
    pub idms_roots: Vec<rustls_pki_types::CertificateDer<'static>>,
    /// OAuth client id of the MCPTT client.
    pub client_id: String,
    /// The user's login name.
    pub user: String,
    /// The user's password.
    pub password: String,
    /// Authentication method.
    pub method: LoginMethod,
    /// The SIP core.
    pub sip_core: SocketAddr,
    /// Client certificate (URI SAN = public user identity) and the CAs trusted for the core.
    pub tls: TlsMaterial,
    /// Public user identity registered.
    pub public_user_identity: String,
    /// The MCPTT server's public service identity.
    pub psi: String,
    /// Registration expiry asked for.
    pub register_expires: u32,
    /// Publication expiry asked for.
    pub publish_expires: u32,
    /// Subscription expiry asked for.
    pub subscribe_expires: u32,
    /// Bound on each wait for an answer.
    pub timeout: Duration,
}
