//! The demo PKI: one CA and the certificates of the flow's actors, generated with `rcgen`.
//!
//! **Demo only.** Servers get a certificate for `localhost`, `127.0.0.1` and a `sip:` URI SAN
//! naming the node; each UE gets a client certificate whose URI SAN is its public user identity
//! (`sip:ue1@example.com`), which the SIP core's registrar maps to the identity it may register.
//!
//! The separate binaries share one CA through a directory ([`DemoPki::load_or_generate`]):
//! the first one to start creates it, the others load it, so the defaults work on loopback
//! with no files. `flow` keeps everything in memory ([`DemoPki::generate`]).
//!
//! ```
//! use mcptt_examples::pki::DemoPki;
//! let pki = DemoPki::generate().unwrap();
//! let ue = pki.issue_ue("sip:alice@example.com").unwrap();
//! assert!(ue.cert_pem.contains("BEGIN CERTIFICATE"));
//! assert_eq!(ue.chain().len(), 1);
//! ```

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why the demo PKI could not be built or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// rcgen refused the parameters or failed to sign.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// A name was not valid in a certificate (e.g. a URI SAN that is not IA5).
    #[error("invalid certificate name {0:?}")]
    BadName(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A PEM file held no usable certificate or key.
    #[error("{path}: no usable PEM {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// `certificate` or `private key`.
        what: &'static str,
    },
    /// Another process started creating the shared directory and did not finish in time.
    #[error("{0}: demo PKI directory is incomplete (remove it to regenerate)")]
    Incomplete(PathBuf),
}

/// A certificate (leaf first, then intermediates) and its private key, as PEM and DER.
#[derive(Debug, Clone)]
pub struct Identity {
    /// PEM of the leaf certificate.
    pub cert_pem: String,
    /// PEM of the private key (PKCS#8).
    pub key_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key_der: Vec<u8>,
}

impl Identity {
    /// The certificate chain (leaf first).
    #[must_use]
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.chain.clone()
    }

    /// The private key.
    #[must_use]
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key_der.clone().into())
    }

    /// Loads a certificate chain and key from PEM files.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, PkiError> {
        let cert_pem = read(cert)?;
        let key_pem = read(key)?;
        Self::from_pem(cert, &cert_pem, key, &key_pem)
    }

    fn from_pem(
        cert_path: &Path,
        cert_pem: &str,
        key_path: &Path,
        key_pem: &str,
    ) -> Result<Self, PkiError> {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|_| PkiError::Pem {
                    path: cert_path.to_owned(),
                    what: "certificate",
                })?;
        if chain.is_empty() {
            return Err(PkiError::Pem {
                path: cert_path.to_owned(),
                what: "certificate",
            });
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|_| PkiError::Pem {
            path: key_path.to_owned(),
            what: "private key",
        })?;
        Ok(Self {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            chain,
            key_der: key.secret_der().to_vec(),
        })
    }

    /// Writes `NAME.crt` and `NAME.key` into `dir`.
    pub fn write(&self, dir: &Path, name: &str) -> Result<(), PkiError> {
        write(&dir.join(format!("{name}.crt")), &self.cert_pem)?;
        write(&dir.join(format!("{name}.key")), &self.key_pem)
    }
}

fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })
}

fn write(path: &Path, text: &str) -> Result<(), PkiError> {
    fs::write(path, text).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })
}

/// A demo certificate authority able to issue server and UE certificates.
pub struct DemoPki {
    issuer: Issuer<'static, KeyPair>,
    ca_der: CertificateDer<'static>,
    ca_pem: String,
    ca_key_pem: String,
}

impl std::fmt::Debug for DemoPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoPki").finish_non_exhaustive()
    }
}

fn ca_params() -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "mcptt demo CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

fn uri_san(uri: &str) -> Result<SanType, PkiError> {
    Ok(SanType::URI(
        uri.try_into()
            .map_err(|_| PkiError::BadName(uri.to_owned()))?,
    ))
}

impl DemoPki {
    /// A fresh CA (ECDSA P-256), in memory.
    pub fn generate() -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let ca_key_pem = key.serialize_pem();
        let params = ca_params()?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            ca_der: cert.der().clone(),
            ca_pem: cert.pem(),
            issuer: Issuer::new(params, key),
            ca_key_pem,
        })
    }

    /// The CA certificate, to configure as the trust anchor of every actor.
    #[must_use]
    pub fn ca_cert(&self) -> CertificateDer<'static> {
        self.ca_der.clone()
    }

    /// The CA certificate as PEM.
    #[must_use]
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    fn issue(
        &self,
        common_name: &str,
        sans: Vec<SanType>,
        usages: &[ExtendedKeyUsagePurpose],
    ) -> Result<Identity, PkiError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.subject_alt_names = sans;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = usages.to_vec();
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Identity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            chain: vec![cert.der().clone()],
            key_der: key.serialize_der(),
        })
    }

    /// A server certificate for `localhost`, `127.0.0.1` and the node's SIP URI (e.g.
    /// `sip:scscf.example.com`), usable for both server and client authentication (the SIP core
    /// is the TLS client towards the MCPTT server).
    pub fn issue_server(&self, node_uri: &str) -> Result<Identity, PkiError> {
        let sans = vec![
            SanType::DnsName(
                "localhost"
                    .try_into()
                    .map_err(|_| PkiError::BadName("localhost".into()))?,
            ),
            SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])),
            uri_san(node_uri)?,
        ];
        self.issue(
            node_uri,
            sans,
            &[
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        )
    }

    /// A UE client certificate whose URI SAN is the public user identity.
    pub fn issue_ue(&self, public_user_identity: &str) -> Result<Identity, PkiError> {
        self.issue(
            public_user_identity,
            vec![uri_san(public_user_identity)?],
            &[ExtendedKeyUsagePurpose::ClientAuth],
        )
    }

    /// Loads the CA kept in `dir` (`ca.crt`, `ca.key`), or creates it there if the directory
    /// does not exist. Creation is atomic against other processes doing the same.
    pub fn load_or_generate(dir: &Path) -> Result<Self, PkiError> {
        let ready = dir.join("ready");
        if let Some(parent) = dir.parent() {
            fs::create_dir_all(parent).map_err(|source| PkiError::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        match fs::create_dir(dir) {
            Ok(()) => {
                let pki = Self::generate()?;
                write(&dir.join("ca.crt"), &pki.ca_pem())?;
                write(&dir.join("ca.key"), &pki.ca_key_pem)?;
                write(&ready, "")?;
                Ok(pki)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // Another process is writing it: wait a bounded time for the marker.
                for _ in 0..50 {
                    if ready.exists() {
                        return Self::load(dir);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(PkiError::Incomplete(dir.to_owned()))
            }
            Err(source) => Err(PkiError::Io {
                path: dir.to_owned(),
                source,
            }),
        }
    }

    /// Loads a CA from `dir/ca.crt` and `dir/ca.key`.
    pub fn load(dir: &Path) -> Result<Self, PkiError> {
        let cert_path = dir.join("ca.crt");
        let key_path = dir.join("ca.key");
        let cert_pem = read(&cert_path)?;
        let key_pem = read(&key_path)?;
        let key = KeyPair::from_pem(&key_pem).map_err(|_| PkiError::Pem {
            path: key_path.clone(),
            what: "private key",
        })?;
        let ca_der =
            CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|_| PkiError::Pem {
                path: cert_path.clone(),
                what: "certificate",
            })?;
        // The issuer is rebuilt from the same parameters (same subject) and the stored key, so
        // certificates issued now chain to the stored `ca.crt`.
        Ok(Self {
            issuer: Issuer::new(ca_params()?, key),
            ca_der,
            ca_pem: cert_pem,
            ca_key_pem: key_pem,
        })
    }

    /// The default shared directory of the separate binaries: `$TMPDIR/mcptt-demo-pki`.
    #[must_use]
    pub fn default_dir() -> PathBuf {
        std::env::temp_dir().join("mcptt-demo-pki")
    }
}

/// Loads the trust anchors of a PEM file.
pub fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let pem = read(path)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|_| PkiError::Pem {
            path: path.to_owned(),
            what: "certificate",
        })?;
    if certs.is_empty() {
        return Err(PkiError::Pem {
            path: path.to_owned(),
            what: "certificate",
        });
    }
    Ok(certs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ue_certificate_carries_the_public_user_identity() {
        let pki = DemoPki::generate().unwrap();
        let ue = pki.issue_ue("sip:ue1@example.com").unwrap();
        let chain = ue.chain();
        let (_, cert) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        let uris: Vec<String> = san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::URI(u) => Some((*u).to_owned()),
                _ => None,
            })
            .collect();
        assert_eq!(uris, ["sip:ue1@example.com"]);
        assert_ne!(cert.issuer(), cert.subject());
    }
}
