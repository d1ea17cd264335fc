//! Certificates generated at test time with rcgen (ECDSA P-256).

use std::sync::Arc;

use mcptt_tls::{ClientTlsConfig, Credentials, ServerTlsConfig, TrustAnchors};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub struct Pki {
    issuer: Issuer<'static, KeyPair>,
    ca_cert: CertificateDer<'static>,
}

pub struct Leaf {
    pub credentials: Credentials,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Pki {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            issuer: Issuer::new(params, key),
            ca_cert: cert.der().clone(),
        }
    }

    pub fn anchors(&self) -> TrustAnchors {
        TrustAnchors::from_der([self.ca_cert.clone()]).unwrap()
    }

    /// A leaf with DNS and URI SANs; `expired` puts not_after in the past.
    pub fn leaf_full(&self, dns: &[&str], uris: &[&str], expired: bool) -> Leaf {
        let mut params =
            CertificateParams::new(dns.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .unwrap();
        for u in uris {
            params
                .subject_alt_names
                .push(SanType::URI((*u).try_into().unwrap()));
        }
        params
            .distinguished_name
            .push(DnType::CommonName, dns.first().copied().unwrap_or("leaf"));
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let credentials = Credentials::from_der(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
        Leaf {
            credentials,
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    pub fn leaf(&self, dns: &[&str], uris: &[&str]) -> Credentials {
        self.leaf_full(dns, uris, false).credentials
    }

    /// Server config for `sip.example.org`, requiring client certificates from `self`.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let creds = self.leaf(&["sip.example.org"], &["sip:core@example.org"]);
        ServerTlsConfig::new(creds, self.anchors()).build().unwrap()
    }

    /// Client config trusting `self`, presenting `creds`.
    pub fn client_config(&self, creds: Option<Credentials>) -> Arc<rustls::ClientConfig> {
        let mut c = ClientTlsConfig::new(self.anchors());
        if let Some(creds) = creds {
            c = c.credentials(creds);
        }
        c.build().unwrap()
    }

    /// A UE certificate: DNS ue1.example.org, URI sip:alice@example.org.
    pub fn ue(&self) -> Credentials {
        self.leaf(&["ue1.example.org"], &["sip:alice@example.org"])
    }
}
