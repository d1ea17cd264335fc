//! The verified identity of a peer, and the policy mapping a device certificate to the
//! public user identities it may register.

use std::collections::HashMap;
use std::net::IpAddr;

use rustls_pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::Error;

/// The identity of a peer whose certificate chain rustls has verified.
///
/// Plain data (cheap to clone behind the `Arc` the transport hands out), so the SIP core
/// (`mcptt-registration`) can take it as a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    chain: Vec<CertificateDer<'static>>,
    uris: Vec<String>,
    dns_names: Vec<String>,
    ip_addresses: Vec<IpAddr>,
    common_name: Option<String>,
    not_after: i64,
}

impl PeerIdentity {
    /// Extract the identities of a (verified) certificate chain, end-entity first.
    ///
    /// # Errors
    /// [`Error::NoCertificate`] for an empty chain, [`Error::Certificate`] when the
    /// end-entity certificate is not parseable X.509.
    pub fn from_chain(chain: Vec<CertificateDer<'static>>) -> Result<Self, Error> {
        let first = chain
            .first()
            .ok_or_else(|| Error::NoCertificate("the peer's chain".into()))?;
        let (_, cert) = X509Certificate::from_der(first.as_ref())
            .map_err(|e| Error::Certificate(e.to_string()))?;
        let mut uris = Vec::new();
        let mut dns_names = Vec::new();
        let mut ip_addresses = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::URI(u) => uris.push((*u).to_owned()),
                    GeneralName::DNSName(d) => dns_names.push(d.to_ascii_lowercase()),
                    GeneralName::IPAddress(b) => {
                        if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                            ip_addresses.push(IpAddr::from(v4));
                        } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                            ip_addresses.push(IpAddr::from(v6));
                        }
                    }
                    _ => {}
                }
            }
        }
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        let not_after = cert.validity().not_after.timestamp();
        Ok(Self {
            chain,
            uris,
            dns_names,
            ip_addresses,
            common_name,
            not_after,
        })
    }

    /// As [`from_chain`](Self::from_chain), for a chain rustls has verified (the transport's
    /// peers): the identity fields are read by a small DER walker that skips what they do
    /// not need (key, signature, other extensions), about a tenth of `x509-parser`'s work per
    /// connection; a certificate it does not read exactly as `x509-parser` would goes
    /// through [`from_chain`](Self::from_chain).
    pub(crate) fn from_verified_chain(chain: Vec<CertificateDer<'static>>) -> Result<Self, Error> {
        let fields = chain
            .first()
            .and_then(|first| crate::der::identity_fields(first.as_ref()))
            .map(|f| {
                (
                    f.uris.iter().map(|u| (*u).to_owned()).collect(),
                    f.dns_names.iter().map(|d| d.to_ascii_lowercase()).collect(),
                    f.ip_addresses,
                    f.common_name.map(str::to_owned),
                    f.not_after,
                )
            });
        match fields {
            Some((uris, dns_names, ip_addresses, common_name, not_after)) => Ok(Self {
                chain,
                uris,
                dns_names,
                ip_addresses,
                common_name,
                not_after,
            }),
            None => Self::from_chain(chain),
        }
    }

    /// The verified chain, end-entity first.
    #[must_use]
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The end-entity certificate (DER).
    #[must_use]
    pub fn certificate(&self) -> Option<&CertificateDer<'static>> {
        self.chain.first()
    }

    /// URI subject alternative names, as written (`sip:alice@example.org`, `urn:uuid:…`).
    #[must_use]
    pub fn uris(&self) -> &[String] {
        &self.uris
    }

    /// The `sip:` and `sips:` URI subject alternative names.
    pub fn sip_uris(&self) -> impl Iterator<Item = &str> {
        self.uris
            .iter()
            .map(String::as_str)
            .filter(|u| is_sip_uri(u))
    }

    /// DNS subject alternative names, lower-cased.
    #[must_use]
    pub fn dns_names(&self) -> &[String] {
        &self.dns_names
    }

    /// IP address subject alternative names.
    #[must_use]
    pub fn ip_addresses(&self) -> &[IpAddr] {
        &self.ip_addresses
    }

    /// The subject's common name, if any (informational: names are taken from SANs).
    #[must_use]
    pub fn common_name(&self) -> Option<&str> {
        self.common_name.as_deref()
    }

    /// The end of the certificate's validity, in seconds since the Unix epoch.
    #[must_use]
    pub fn not_after_unix(&self) -> i64 {
        self.not_after
    }

    /// True when `host` (a DNS name or IP literal, e.g. a Via sent-by) is one of the
    /// certificate's DNS or IP SANs, or the host part of a `sip:`/`sips:` URI SAN
    /// (RFC 5922 §7.1, RFC 5923 §5).
    #[must_use]
    pub fn matches_host(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.ip_addresses.contains(&ip);
        }
        let host = host.to_ascii_lowercase();
        self.dns_names.iter().any(|d| dns_match(d, &host))
            || self
                .sip_uris()
                .any(|u| uri_host(u).is_some_and(|h| h.eq_ignore_ascii_case(&host)))
    }

    /// A short label for logs: the first SIP URI SAN, else the first DNS SAN, else the CN.
    #[must_use]
    pub fn label(&self) -> &str {
        self.sip_uris()
            .next()
            .or_else(|| self.dns_names.first().map(String::as_str))
            .or(self.common_name.as_deref())
            .unwrap_or("<no name>")
    }
}

/// Whether a URI SAN counts as a `sip:` or `sips:` URI: its first five bytes are whole
/// characters and read `sip:` plus one more, or `sips:` (scheme case-insensitive). Compared
/// in place (it was a lower-cased copy: an allocation per URI, per [`PeerIdentity::label`]).
fn is_sip_uri(u: &str) -> bool {
    u.get(..5).is_some_and(|head| {
        let head = head.as_bytes();
        head.get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"sip:"))
            || head.eq_ignore_ascii_case(b"sips:")
    })
}

fn dns_match(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => pattern == host,
    }
}

/// The host of a `sip:`/`sips:` URI: after `@` (if any), before `:port`, `;params`, `?headers`.
fn uri_host(uri: &str) -> Option<&str> {
    let (_, rest) = uri.split_once(':')?;
    let rest = rest.split([';', '?']).next().unwrap_or(rest);
    let hostport = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    if let Some(v6) = hostport.strip_prefix('[') {
        return v6.split_once(']').map(|(h, _)| h);
    }
    Some(hostport.split(':').next().unwrap_or(hostport))
}

/// Normalise a SIP URI for comparison: scheme and host are case-insensitive, user is not;
/// `<…>` brackets and URI parameters are dropped (RFC 3261 §19.1.4, for identities only).
#[must_use]
pub fn normalize_sip_uri(uri: &str) -> String {
    let uri = uri.trim().trim_start_matches('<').trim_end_matches('>');
    let base = uri.split([';', '?']).next().unwrap_or(uri);
    let Some((scheme, rest)) = base.split_once(':') else {
        return base.to_ascii_lowercase();
    };
    match rest.rsplit_once('@') {
        Some((user, host)) => format!(
            "{}:{}@{}",
            scheme.to_ascii_lowercase(),
            user,
            host.to_ascii_lowercase()
        ),
        None => format!(
            "{}:{}",
            scheme.to_ascii_lowercase(),
            rest.to_ascii_lowercase()
        ),
    }
}

/// Maps a verified device certificate to the public user identities (IMPUs) it may
/// register. The SIP core consults it before accepting a REGISTER over mutual TLS.
pub trait IdentityPolicy: Send + Sync {
    /// The public user identities (normalised SIP URIs) the peer may register.
    fn public_identities(&self, peer: &PeerIdentity) -> Vec<String>;

    /// True when the peer may register `public_identity`.
    fn may_register(&self, peer: &PeerIdentity, public_identity: &str) -> bool {
        let wanted = normalize_sip_uri(public_identity);
        self.public_identities(peer)
            .iter()
            .any(|p| normalize_sip_uri(p) == wanted)
    }
}

/// Policy: each `sip:`/`sips:` URI SAN of the certificate is a public identity the device
/// may register (the certificate names its users).
#[derive(Debug, Clone, Copy, Default)]
pub struct UriSanPolicy;

impl IdentityPolicy for UriSanPolicy {
    fn public_identities(&self, peer: &PeerIdentity) -> Vec<String> {
        peer.sip_uris().map(normalize_sip_uri).collect()
    }
}

/// Policy: a configured table from certificate identities (any URI SAN, DNS SAN or the
/// common name) to the public user identities they may register.
#[derive(Debug, Clone, Default)]
pub struct IdentityMap {
    map: HashMap<String, Vec<String>>,
    uri_sans_too: bool,
}

impl IdentityMap {
    /// An empty table: no certificate may register anything.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Allow the certificate identity `cert_identity` (a URI SAN, DNS SAN or CN) to register
    /// `public_identities`. Adds to earlier entries.
    pub fn allow<I, S>(&mut self, cert_identity: &str, public_identities: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let entry = self.map.entry(key(cert_identity)).or_default();
        for p in public_identities {
            let p = normalize_sip_uri(p.as_ref());
            if !entry.contains(&p) {
                entry.push(p);
            }
        }
        self
    }

    /// Also grant the certificate's own `sip:` URI SANs (as [`UriSanPolicy`]).
    #[must_use]
    pub fn with_uri_sans(mut self, enabled: bool) -> Self {
        self.uri_sans_too = enabled;
        self
    }
}

fn key(identity: &str) -> String {
    let l = identity.to_ascii_lowercase();
    if l.starts_with("sip:") || l.starts_with("sips:") {
        normalize_sip_uri(identity)
    } else if identity.contains(':') {
        identity.to_owned()
    } else {
        l
    }
}

impl IdentityPolicy for IdentityMap {
    fn public_identities(&self, peer: &PeerIdentity) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let names = peer
            .uris
            .iter()
            .chain(&peer.dns_names)
            .chain(peer.common_name.iter());
        for name in names {
            if let Some(list) = self.map.get(&key(name)) {
                for p in list {
                    if !out.contains(p) {
                        out.push(p.clone());
                    }
                }
            }
        }
        if self.uri_sans_too {
            for u in peer.sip_uris().map(normalize_sip_uri) {
                if !out.contains(&u) {
                    out.push(u);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_normalisation() {
        assert_eq!(
            normalize_sip_uri("<SIP:Alice@Example.ORG;transport=tls>"),
            "sip:Alice@example.org"
        );
        assert_ne!(
            normalize_sip_uri("sip:alice@example.org"),
            normalize_sip_uri("sip:Alice@example.org")
        );
        assert_eq!(uri_host("sip:alice@[::1]:5061"), Some("::1"));
        assert_eq!(
            uri_host("sips:core.example.org:5061;lr"),
            Some("core.example.org")
        );
    }

    #[test]
    fn sip_uris_are_told_as_the_lower_cased_copy_told_them() {
        // The first version: a lower-cased copy of the first five bytes.
        let reference = |u: &str| {
            let l = u.get(..5).unwrap_or_default().to_ascii_lowercase();
            l.starts_with("sip:") || l == "sips:"
        };
        for u in [
            "sip:a@b",
            "SIPS:a",
            "Sip:",
            "sips:",
            "sip:é",
            "sipé:",
            "tel:+1",
            "",
            "urn:uuid:1",
        ] {
            assert_eq!(is_sip_uri(u), reference(u), "{u:?}");
        }
        // Every string of up to six pieces (ASCII of both cases, separators, a two-byte
        // character at each position).
        const PIECES: [&str; 9] = ["s", "S", "i", "P", "p", ":", "é", "x", "I"];
        let mut stack = vec![String::new()];
        while let Some(u) = stack.pop() {
            assert_eq!(is_sip_uri(&u), reference(&u), "{u:?}");
            if u.chars().count() < 6 {
                stack.extend(PIECES.iter().map(|p| format!("{u}{p}")));
            }
        }
        assert!(is_sip_uri("sIp:x") && is_sip_uri("SIPS:") && !is_sip_uri("sip:"));
    }

    /// A certificate signed by a fresh CA: `names` are its SANs, `dn` its subject.
    #[allow(clippy::unwrap_used)]
    fn certificate(
        names: Vec<rcgen::SanType>,
        dn: &[(rcgen::DnType, rcgen::DnValue)],
        extra: impl FnOnce(&mut rcgen::CertificateParams),
    ) -> CertificateDer<'static> {
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "der test CA");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = names;
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in dn {
            params.distinguished_name.push(t.clone(), v.clone());
        }
        extra(&mut params);
        let key = rcgen::KeyPair::generate().unwrap();
        params.signed_by(&key, &issuer).unwrap().der().clone()
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn the_der_reader_reads_what_x509_parser_reads() {
        use rcgen::{DnType, DnValue, SanType};
        let uri = |u: &str| SanType::URI(u.try_into().unwrap());
        let dns = |d: &str| SanType::DnsName(d.try_into().unwrap());
        let cases: Vec<(CertificateDer<'static>, bool)> = vec![
            // The flow's UEs and servers: URI and DNS SANs, a UTF8String CN.
            (
                certificate(
                    vec![uri("sip:ue1@example.org"), dns("UE1.Example.org")],
                    &[(DnType::CommonName, DnValue::Utf8String("ue1".into()))],
                    |_| {},
                ),
                true,
            ),
            // IPv4 and IPv6 SANs, several URIs, no CN but an organisation first.
            (
                certificate(
                    vec![
                        SanType::IpAddress("127.0.0.1".parse().unwrap()),
                        SanType::IpAddress("::1".parse().unwrap()),
                        uri("urn:uuid:00000000-0000-1000-8000-000000000001"),
                        uri("sips:bob@example.org"),
                    ],
                    &[(
                        DnType::OrganizationName,
                        DnValue::PrintableString("Org".try_into().unwrap()),
                    )],
                    |_| {},
                ),
                true,
            ),
            // No SAN at all, a PrintableString CN, dates in UTCTime and GeneralizedTime.
            (
                certificate(
                    vec![],
                    &[(
                        DnType::CommonName,
                        DnValue::PrintableString("gw 1".try_into().unwrap()),
                    )],
                    |p| {
                        p.not_before = rcgen::date_time_ymd(1999, 12, 31);
                        p.not_after = rcgen::date_time_ymd(2051, 2, 28);
                    },
                ),
                true,
            ),
            // Key usages, extended key usages, the key identifiers, two CNs (the first counts).
            (
                certificate(
                    vec![dns("a.example.org")],
                    &[
                        (DnType::CommonName, DnValue::Utf8String("first".into())),
                        (DnType::CommonName, DnValue::Utf8String("second".into())),
                    ],
                    |p| {
                        p.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
                        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
                        p.use_authority_key_identifier_extension = true;
                    },
                ),
                true,
            ),
            // A BMPString CN and an e-mail SAN: left to x509-parser.
            (
                certificate(
                    vec![SanType::Rfc822Name("a@example.org".try_into().unwrap())],
                    &[(
                        DnType::CommonName,
                        DnValue::BmpString("bmp".try_into().unwrap()),
                    )],
                    |_| {},
                ),
                false,
            ),
        ];
        for (cert, fast) in cases {
            assert_eq!(
                crate::der::identity_fields(cert.as_ref()).is_some(),
                fast,
                "which reader reads it"
            );
            let chain = vec![cert.clone()];
            assert_eq!(
                PeerIdentity::from_verified_chain(chain.clone()).unwrap(),
                PeerIdentity::from_chain(chain).unwrap()
            );
            // Every one-byte change: no panic, and where both read it, they read it alike.
            let bytes = cert.as_ref().to_vec();
            for i in 0..bytes.len() {
                for delta in [1u8, 0x80] {
                    let mut spoilt = bytes.clone();
                    if let Some(b) = spoilt.get_mut(i) {
                        *b = b.wrapping_add(delta);
                    }
                    let spoilt = vec![CertificateDer::from(spoilt)];
                    let fast = PeerIdentity::from_verified_chain(spoilt.clone());
                    if let (Ok(fast), Ok(full)) = (fast, PeerIdentity::from_chain(spoilt)) {
                        assert_eq!(fast, full, "byte {i} + {delta}");
                    }
                }
            }
        }
    }

    #[test]
    fn wildcard_dns() {
        assert!(dns_match("*.example.org", "a.example.org"));
        assert!(!dns_match("*.example.org", "a.b.example.org"));
        assert!(!dns_match("*.example.org", "example.org"));
    }
}
