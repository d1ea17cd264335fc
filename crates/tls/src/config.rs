//! TLS configurations built from PEM files or in-memory DER.
//!
//! Both sides use the `ring` crypto provider, TLS 1.3 and TLS 1.2 only, no ALPN unless asked.
//! The server requires a client certificate by default (mutual TLS, flow step 2).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::Error;

const MEMORY: &str = "<memory>";

/// The crypto provider used everywhere in this crate: `ring`.
#[must_use]
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// TLS protocol versions this crate enables.
static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// A certificate chain and its private key: what this side presents in the handshake.
///
/// Construction checks that the chain is not empty and that the key belongs to the first
/// certificate.
#[derive(Debug)]
pub struct Credentials {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for Credentials {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl Credentials {
    /// Read a PEM certificate chain (end-entity first) and a PEM private key (PKCS#8, SEC1 or
    /// PKCS#1/RSA) from two files (they may be the same file).
    ///
    /// # Errors
    /// [`Error::Pem`] for unreadable files or no PEM item of the right kind,
    /// [`Error::NoCertificate`], [`Error::InvalidKey`], [`Error::KeyMismatch`].
    pub fn from_pem_files(
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, Error> {
        let cert_name = cert_chain.as_ref().display().to_string();
        let key_name = key.as_ref().display().to_string();
        let chain = CertificateDer::pem_file_iter(cert_chain.as_ref())
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|source| Error::Pem {
                what: "certificate chain",
                source_name: cert_name.clone(),
                source,
            })?;
        let key = PrivateKeyDer::from_pem_file(key.as_ref()).map_err(|source| Error::Pem {
            what: "private key",
            source_name: key_name.clone(),
            source,
        })?;
        Self::checked(chain, key, &cert_name, &key_name)
    }

    /// Like [`Credentials::from_pem_files`], from PEM text in memory.
    ///
    /// # Errors
    /// As [`Credentials::from_pem_files`].
    pub fn from_pem(cert_chain: &[u8], key: &[u8]) -> Result<Self, Error> {
        let chain = CertificateDer::pem_slice_iter(cert_chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| Error::Pem {
                what: "certificate chain",
                source_name: MEMORY.into(),
                source,
            })?;
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|source| Error::Pem {
            what: "private key",
            source_name: MEMORY.into(),
            source,
        })?;
        Self::checked(chain, key, MEMORY, MEMORY)
    }

    /// From DER: the chain (end-entity first) and the private key.
    ///
    /// # Errors
    /// [`Error::NoCertificate`], [`Error::InvalidKey`], [`Error::KeyMismatch`].
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, Error> {
        Self::checked(chain, key, MEMORY, MEMORY)
    }

    fn checked(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        cert_name: &str,
        key_name: &str,
    ) -> Result<Self, Error> {
        if chain.is_empty() {
            return Err(Error::NoCertificate(cert_name.to_owned()));
        }
        let provider = crypto_provider();
        let signing = provider
            .key_provider
            .load_private_key(key.clone_key())
            .map_err(|source| Error::InvalidKey {
                source_name: key_name.to_owned(),
                source,
            })?;
        match CertifiedKey::new(chain.clone(), signing).keys_match() {
            Ok(()) => Ok(Self { chain, key }),
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => Err(
                Error::KeyMismatch(format!("in {cert_name} (key {key_name})")),
            ),
            // ring keys always expose their public key; anything else is a broken certificate.
            Err(source) => Err(Error::InvalidKey {
                source_name: cert_name.to_owned(),
                source,
            }),
        }
    }

    /// The certificate chain, end-entity first.
    #[must_use]
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The private key.
    #[must_use]
    pub fn private_key(&self) -> &PrivateKeyDer<'static> {
        &self.key
    }
}

/// Trusted certificate authorities (trust anchors) used to verify the peer.
#[derive(Debug, Clone)]
pub struct TrustAnchors(Arc<RootCertStore>);

impl TrustAnchors {
    /// Read every PEM certificate of a file as a trust anchor.
    ///
    /// # Errors
    /// [`Error::Pem`], [`Error::NoCertificate`], [`Error::InvalidTrustAnchor`].
    pub fn from_pem_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let name = path.as_ref().display().to_string();
        let certs = CertificateDer::pem_file_iter(path.as_ref())
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|source| Error::Pem {
                what: "trust anchors",
                source_name: name.clone(),
                source,
            })?;
        Self::build(certs, &name)
    }

    /// Every PEM certificate of a buffer as a trust anchor.
    ///
    /// # Errors
    /// As [`TrustAnchors::from_pem_file`].
    pub fn from_pem(pem: &[u8]) -> Result<Self, Error> {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| Error::Pem {
                what: "trust anchors",
                source_name: MEMORY.into(),
                source,
            })?;
        Self::build(certs, MEMORY)
    }

    /// DER certificates as trust anchors.
    ///
    /// # Errors
    /// [`Error::NoCertificate`], [`Error::InvalidTrustAnchor`].
    pub fn from_der(
        certs: impl IntoIterator<Item = CertificateDer<'static>>,
    ) -> Result<Self, Error> {
        Self::build(certs.into_iter().collect(), MEMORY)
    }

    fn build(certs: Vec<CertificateDer<'static>>, name: &str) -> Result<Self, Error> {
        if certs.is_empty() {
            return Err(Error::NoCertificate(name.to_owned()));
        }
        let mut store = RootCertStore::empty();
        for cert in certs {
            store
                .add(cert)
                .map_err(|source| Error::InvalidTrustAnchor {
                    source_name: name.to_owned(),
                    source,
                })?;
        }
        Ok(Self(Arc::new(store)))
    }

    /// The underlying rustls root store.
    #[must_use]
    pub fn root_store(&self) -> &Arc<RootCertStore> {
        &self.0
    }
}

/// How the server treats client certificates.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ClientAuth {
    /// A client certificate chaining to these anchors is required (the default).
    Required(TrustAnchors),
    /// A client certificate is verified if presented, but may be absent.
    Optional(TrustAnchors),
    /// No client certificate is requested (server-authenticated TLS only).
    None,
}

/// Builder of a server-side [`rustls::ServerConfig`].
///
/// ```
/// # fn demo(creds: mcptt_tls::Credentials, cas: mcptt_tls::TrustAnchors) -> Result<(), mcptt_tls::Error> {
/// let config = mcptt_tls::ServerTlsConfig::new(creds, cas).key_log(true).build()?;
/// # let _ = config; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ServerTlsConfig {
    credentials: Credentials,
    client_auth: ClientAuth,
    alpn: Vec<Vec<u8>>,
    key_log: KeyLog,
    tls13_only: bool,
    session_tickets: Option<usize>,
}

impl ServerTlsConfig {
    /// A server presenting `credentials` and **requiring** a client certificate issued by
    /// one of `client_cas`.
    #[must_use]
    pub fn new(credentials: Credentials, client_cas: TrustAnchors) -> Self {
        Self {
            credentials,
            client_auth: ClientAuth::Required(client_cas),
            alpn: Vec::new(),
            key_log: KeyLog::Off,
            tls13_only: false,
            session_tickets: None,
        }
    }

    /// Send `n` TLS 1.3 session tickets after each handshake (rustls' default, 2, unless
    /// set). `0` when clients never resume (each connects afresh, as UEs of the demo do):
    /// saves the ticket encryption and one write per connection.
    #[must_use]
    pub fn session_tickets(mut self, n: usize) -> Self {
        self.session_tickets = Some(n);
        self
    }

    /// Change the client-certificate policy.
    #[must_use]
    pub fn client_auth(mut self, client_auth: ClientAuth) -> Self {
        self.client_auth = client_auth;
        self
    }

    /// Offer these ALPN protocols (none by default).
    #[must_use]
    pub fn alpn(mut self, protocols: Vec<Vec<u8>>) -> Self {
        self.alpn = protocols;
        self
    }

    /// Write session secrets to the file named by `SSLKEYLOGFILE` (if that variable is set),
    /// so that captures can be decrypted in Wireshark. Off by default.
    #[must_use]
    pub fn key_log(mut self, enabled: bool) -> Self {
        self.key_log = if enabled { KeyLog::Env } else { KeyLog::Off };
        self
    }

    /// Append session secrets (NSS key log format) to `path`, whatever `SSLKEYLOGFILE` says.
    #[must_use]
    pub fn key_log_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.key_log = KeyLog::File(path.into());
        self
    }

    /// Allow TLS 1.3 only (TLS 1.2 and 1.3 by default).
    #[must_use]
    pub fn tls13_only(mut self, only: bool) -> Self {
        self.tls13_only = only;
        self
    }

    /// Build the rustls configuration.
    ///
    /// # Errors
    /// [`Error::Config`] when rustls rejects the combination.
    pub fn build(self) -> Result<Arc<ServerConfig>, Error> {
        let provider = crypto_provider();
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions(self.tls13_only))
            .map_err(Error::Config)?;
        let builder = match self.client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Required(cas) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(cas.0, provider)
                    .build()
                    .map_err(|e| Error::Config(rustls::Error::General(e.to_string())))?;
                builder.with_client_cert_verifier(verifier)
            }
            ClientAuth::Optional(cas) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(cas.0, provider)
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| Error::Config(rustls::Error::General(e.to_string())))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(self.credentials.chain, self.credentials.key)
            .map_err(Error::Config)?;
        config.alpn_protocols = self.alpn;
        if let Some(n) = self.session_tickets {
            config.send_tls13_tickets = n;
        }
        if let Some(k) = self.key_log.build()? {
            config.key_log = k;
        }
        Ok(Arc::new(config))
    }
}

/// Builder of a client-side [`rustls::ClientConfig`]. The client always sends SNI (the
/// server name it connects to) and verifies the server certificate against `server_cas`.
#[derive(Debug, Clone)]
pub struct ClientTlsConfig {
    credentials: Option<Credentials>,
    server_cas: TrustAnchors,
    alpn: Vec<Vec<u8>>,
    key_log: KeyLog,
    tls13_only: bool,
}

impl ClientTlsConfig {
    /// A client trusting servers whose certificates chain to `server_cas`, presenting no
    /// certificate (add one with [`ClientTlsConfig::credentials`]).
    #[must_use]
    pub fn new(server_cas: TrustAnchors) -> Self {
        Self {
            credentials: None,
            server_cas,
            alpn: Vec::new(),
            key_log: KeyLog::Off,
            tls13_only: false,
        }
    }

    /// Present this certificate chain when the server asks for one (mutual TLS).
    #[must_use]
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Offer these ALPN protocols (none by default).
    #[must_use]
    pub fn alpn(mut self, protocols: Vec<Vec<u8>>) -> Self {
        self.alpn = protocols;
        self
    }

    /// Write session secrets to `SSLKEYLOGFILE` (if set). Off by default.
    #[must_use]
    pub fn key_log(mut self, enabled: bool) -> Self {
        self.key_log = if enabled { KeyLog::Env } else { KeyLog::Off };
        self
    }

    /// Append session secrets (NSS key log format) to `path`, whatever `SSLKEYLOGFILE` says.
    #[must_use]
    pub fn key_log_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.key_log = KeyLog::File(path.into());
        self
    }

    /// Allow TLS 1.3 only (TLS 1.2 and 1.3 by default).
    #[must_use]
    pub fn tls13_only(mut self, only: bool) -> Self {
        self.tls13_only = only;
        self
    }

    /// Build the rustls configuration.
    ///
    /// # Errors
    /// [`Error::Config`] when rustls rejects the combination.
    pub fn build(self) -> Result<Arc<ClientConfig>, Error> {
        let builder = ClientConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(versions(self.tls13_only))
            .map_err(Error::Config)?
            .with_root_certificates(self.server_cas.0.clone());
        let mut config = match self.credentials {
            Some(c) => builder
                .with_client_auth_cert(c.chain, c.key)
                .map_err(Error::Config)?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn;
        config.enable_sni = true;
        if let Some(k) = self.key_log.build()? {
            config.key_log = k;
        }
        Ok(Arc::new(config))
    }
}

fn versions(tls13_only: bool) -> &'static [&'static rustls::SupportedProtocolVersion] {
    if tls13_only { &VERSIONS[..1] } else { VERSIONS }
}

/// Where session secrets go.
#[derive(Debug, Clone)]
enum KeyLog {
    Off,
    /// rustls' `KeyLogFile`: the file named by `SSLKEYLOGFILE`, if set.
    Env,
    File(PathBuf),
}

impl KeyLog {
    fn build(&self) -> Result<Option<Arc<dyn rustls::KeyLog>>, Error> {
        Ok(match self {
            Self::Off => None,
            Self::Env => Some(Arc::new(rustls::KeyLogFile::new())),
            Self::File(path) => {
                let file = File::options().append(true).create(true).open(path)?;
                Some(Arc::new(KeyLogTo(Mutex::new(file))))
            }
        })
    }
}

/// NSS key log lines (`LABEL client_random secret`, hex) appended to a file.
#[derive(Debug)]
struct KeyLogTo(Mutex<File>);

impl rustls::KeyLog for KeyLogTo {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let mut line =
            String::with_capacity(label.len() + 2 * (client_random.len() + secret.len()) + 3);
        line.push_str(label);
        line.push(' ');
        hex(&mut line, client_random);
        line.push(' ');
        hex(&mut line, secret);
        line.push('\n');
        let mut file = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Best effort: a failing key log must not break the connection.
        let _ = file.write_all(line.as_bytes());
    }
}

fn hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}
