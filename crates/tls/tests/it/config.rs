//! Configuration loading: PEM files (PKCS#8, SEC1, PKCS#1/RSA), DER, and clear errors.

use std::path::PathBuf;

use mcptt_tls::{ClientTlsConfig, Credentials, Error, ServerTlsConfig, TrustAnchors};

use crate::pki::Pki;

fn data(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data")).join(name)
}

/// A scratch directory unique to this test process, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("mcptt-tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn pem_files_with_sec1_and_rsa_keys() {
    for (cert, key) in [
        ("ec.cert.pem", "ec.key.pem"),
        ("rsa.cert.pem", "rsa.key.pem"),
    ] {
        let creds = Credentials::from_pem_files(data(cert), data(key)).unwrap();
        assert_eq!(creds.chain().len(), 1, "{cert}");
        let anchors = TrustAnchors::from_pem_file(data("ca.pem")).unwrap();
        assert_eq!(anchors.root_store().len(), 1);
        let server = ServerTlsConfig::new(creds.clone(), anchors.clone())
            .build()
            .unwrap();
        assert!(server.alpn_protocols.is_empty());
        let client = ClientTlsConfig::new(anchors)
            .credentials(creds)
            .build()
            .unwrap();
        assert!(client.enable_sni);
        assert!(client.alpn_protocols.is_empty());
    }
    let chain = Credentials::from_pem_files(data("ec.chain.pem"), data("ec.key.pem")).unwrap();
    assert_eq!(chain.chain().len(), 2);
}

#[test]
fn pem_files_with_pkcs8_key_from_rcgen() {
    let pki = Pki::new("pem CA");
    let leaf = pki.leaf_full(&["sip.example.org"], &[], false);
    assert!(
        leaf.key_pem.contains("BEGIN PRIVATE KEY"),
        "PKCS#8 expected"
    );
    let scratch = Scratch::new();
    let cert_path = scratch.path("pkcs8.cert.pem");
    let key_path = scratch.path("pkcs8.key.pem");
    std::fs::write(&cert_path, &leaf.cert_pem).unwrap();
    std::fs::write(&key_path, &leaf.key_pem).unwrap();
    let creds = Credentials::from_pem_files(&cert_path, &key_path).unwrap();
    assert_eq!(creds.chain(), leaf.credentials.chain());
    let mem = Credentials::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap();
    assert_eq!(mem.chain(), creds.chain());
}

#[test]
fn mismatched_key_and_certificate() {
    let err = Credentials::from_pem_files(data("ec.cert.pem"), data("rsa.key.pem")).unwrap_err();
    assert!(matches!(err, Error::KeyMismatch(_)), "{err}");
    assert!(err.to_string().contains("ec.cert.pem"), "{err}");
    let pki = Pki::new("mismatch CA");
    let a = pki.leaf_full(&["a.example.org"], &[], false);
    let b = pki.leaf_full(&["b.example.org"], &[], false);
    let err = Credentials::from_pem(a.cert_pem.as_bytes(), b.key_pem.as_bytes()).unwrap_err();
    assert!(matches!(err, Error::KeyMismatch(_)), "{err}");
}

#[test]
fn unreadable_and_empty_files() {
    let err = Credentials::from_pem_files(data("missing.pem"), data("ec.key.pem")).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Pem {
                what: "certificate chain",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("missing.pem"), "{err}");
    // A key file holding only a certificate: no private key in it.
    let err = Credentials::from_pem_files(data("ec.cert.pem"), data("ec.cert.pem")).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Pem {
                what: "private key",
                ..
            }
        ),
        "{err}"
    );
    // A certificate file holding only a key: no certificate.
    let err = Credentials::from_pem_files(data("ec.key.pem"), data("ec.key.pem")).unwrap_err();
    assert!(matches!(err, Error::NoCertificate(_)), "{err}");
    let err = TrustAnchors::from_pem(b"not pem at all").unwrap_err();
    assert!(matches!(err, Error::NoCertificate(_)), "{err}");
    let err = TrustAnchors::from_pem_file(data("nope.pem")).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Pem {
                what: "trust anchors",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn der_credentials_and_client_auth_modes() {
    let pki = Pki::new("der CA");
    let creds = pki.leaf(&["sip.example.org"], &[]);
    let again =
        Credentials::from_der(creds.chain().to_vec(), creds.private_key().clone_key()).unwrap();
    assert_eq!(again.chain(), creds.chain());
    let err = Credentials::from_der(Vec::new(), creds.private_key().clone_key()).unwrap_err();
    assert!(matches!(err, Error::NoCertificate(_)));
    // Optional and no client auth build too; ALPN only when asked.
    let cfg = ServerTlsConfig::new(creds.clone(), pki.anchors())
        .client_auth(mcptt_tls::ClientAuth::Optional(pki.anchors()))
        .alpn(vec![b"sip".to_vec()])
        .build()
        .unwrap();
    assert_eq!(cfg.alpn_protocols, vec![b"sip".to_vec()]);
    assert_eq!(cfg.send_tls13_tickets, 2, "rustls' default unless set");
    let cfg = ServerTlsConfig::new(creds, pki.anchors())
        .client_auth(mcptt_tls::ClientAuth::None)
        .tls13_only(true)
        .session_tickets(0)
        .build()
        .unwrap();
    assert_eq!(cfg.send_tls13_tickets, 0);
}
