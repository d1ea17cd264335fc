//! Peer identity extraction and the identity policies.

use mcptt_tls::{IdentityMap, IdentityPolicy, PeerIdentity, UriSanPolicy};

use crate::pki::Pki;

#[test]
fn sans_are_extracted() {
    let pki = Pki::new("id CA");
    let creds = pki.leaf(
        &["UE1.example.org", "127.0.0.1"],
        &[
            "sip:alice@example.org",
            "urn:uuid:00000000-0000-1000-8000-000000000001",
        ],
    );
    let id = PeerIdentity::from_chain(creds.chain().to_vec()).unwrap();
    assert_eq!(id.dns_names(), ["ue1.example.org"]);
    assert_eq!(
        id.ip_addresses(),
        ["127.0.0.1".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(id.uris().len(), 2);
    assert_eq!(id.sip_uris().collect::<Vec<_>>(), ["sip:alice@example.org"]);
    assert_eq!(id.common_name(), Some("UE1.example.org"));
    assert_eq!(id.label(), "sip:alice@example.org");
    assert!(id.matches_host("ue1.EXAMPLE.org"));
    assert!(id.matches_host("example.org"), "host of the sip: URI SAN");
    assert!(id.matches_host("127.0.0.1"));
    assert!(!id.matches_host("ue2.example.org"));
    assert!(id.not_after_unix() > 1_700_000_000);
    assert!(PeerIdentity::from_chain(Vec::new()).is_err());
}

#[test]
fn policies_map_certificates_to_public_identities() {
    let pki = Pki::new("policy CA");
    let ue = PeerIdentity::from_chain(pki.ue().chain().to_vec()).unwrap();
    let gw = PeerIdentity::from_chain(pki.leaf(&["gw.example.org"], &[]).chain().to_vec()).unwrap();

    assert!(UriSanPolicy.may_register(&ue, "<SIP:alice@Example.org>"));
    assert!(
        !UriSanPolicy.may_register(&ue, "sip:Alice@example.org"),
        "user part is case-sensitive"
    );
    assert!(!UriSanPolicy.may_register(&gw, "sip:alice@example.org"));

    let mut map = IdentityMap::new();
    map.allow(
        "gw.example.org",
        ["sip:d1@example.org", "sip:d2@example.org"],
    )
    .allow("sip:alice@example.org", ["sip:alice.work@example.org"]);
    assert_eq!(
        map.public_identities(&gw),
        ["sip:d1@example.org", "sip:d2@example.org"]
    );
    assert!(map.may_register(&gw, "sip:d2@example.org;transport=tls"));
    assert!(!map.may_register(&gw, "sip:d3@example.org"));
    assert!(map.may_register(&ue, "sip:alice.work@example.org"));
    assert!(
        !map.may_register(&ue, "sip:alice@example.org"),
        "URI SANs not granted unless asked"
    );
    let map = map.with_uri_sans(true);
    assert!(map.may_register(&ue, "sip:alice@example.org"));
}
