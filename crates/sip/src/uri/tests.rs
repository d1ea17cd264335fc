use super::*;

#[test]
fn sip_uri_parts() {
    let u = Uri::parse("sip:alice:pw@[2001:db8::1]:5061;transport=tls;lr?subject=x&h=").unwrap();
    assert_eq!(u.scheme(), Scheme::Sip);
    assert_eq!(u.user(), Some("alice"));
    assert_eq!(u.password(), Some("pw"));
    assert_eq!(u.host(), "[2001:db8::1]");
    assert_eq!(u.port(), Some(5061));
    assert_eq!(u.transport(), Some("tls"));
    assert_eq!(u.param("lr"), Some(""));
    assert_eq!(
        u.headers().collect::<Vec<_>>(),
        [("subject", "x"), ("h", "")]
    );
}
