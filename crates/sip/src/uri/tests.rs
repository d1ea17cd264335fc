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

#[test]
fn rfc3261_equivalence_examples() {
    // RFC 3261 §19.1.4: equivalent pairs
    for (a, b) in [
        (
            "sip:%61lice@atlanta.com;transport=TCP",
            "sip:alice@AtLanTa.CoM;Transport=tcp",
        ),
        ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
        (
            "sip:carol@chicago.com;security=on",
            "sip:carol@chicago.com;newparam=5",
        ),
        (
            "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
            "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
        ),
        (
            "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
            "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
        ),
        ("tel:+1-201-555-0123", "tel:+1.201.555.0123"),
    ] {
        let (a, b) = (Uri::parse(a).unwrap(), Uri::parse(b).unwrap());
        assert!(a.matches(&b) && b.matches(&a), "{a} ~ {b}");
    }
    // and the non-equivalent ones
    for (a, b) in [
        (
            "SIP:ALICE@AtLanTa.CoM;Transport=udp",
            "sip:alice@AtLanTa.CoM;Transport=UDP",
        ),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
        (
            "sip:bob@biloxi.com",
            "sip:bob@biloxi.com:6000;transport=tcp",
        ),
        (
            "sip:carol@chicago.com",
            "sip:carol@chicago.com?Subject=next%20meeting",
        ),
        ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
        (
            "sip:carol@chicago.com;security=on",
            "sip:carol@chicago.com;security=off",
        ),
        ("sip:a@h", "sips:a@h"),
    ] {
        let (a, b) = (Uri::parse(a).unwrap(), Uri::parse(b).unwrap());
        assert!(!a.matches(&b), "{a} !~ {b}");
    }
}

#[test]
fn rejects_bad_uris() {
    for s in [
        "",
        "sip:",
        "sip:@h",
        "sip:a@",
        "sip:a@h:99999",
        "sip:a@h:",
        "sip:a@[::1",
        "sip:a@[2001:db8:::1]",
        "sip:a@h;",
        "sip:a@h;=x",
        "sip:a@h?",
        "sip:a@h?x",
        "sip:a b@h",
        "sip:a%4@h",
        "<sip:a@h>",
        "sip:a@h>",
        "tel:",
        "tel:abc;",
        "1sip:a@h",
        "x:",
        "x:a b",
    ] {
        assert!(Uri::parse(s).is_err(), "{s:?} accepted");
    }
    let u = Uri::parse("sip:user;par=u%40example.net@example.com").unwrap();
    assert_eq!(u.user(), Some("user;par=u%40example.net"));
    assert_eq!(
        u.user_unescaped().as_deref(),
        Some("user;par=u@example.net")
    );
    let u = Uri::parse("soap.beep://192.0.2.103:3002").unwrap();
    assert_eq!((u.scheme(), u.scheme_str()), (Scheme::Other, "soap.beep"));
    let u = Uri::parse("tel:+358-555-1234567;postd=pp22").unwrap();
    assert_eq!(
        (u.user(), u.param("postd")),
        (Some("+358-555-1234567"), Some("pp22"))
    );
}

proptest::proptest! {
    /// `param` (one byte loop) finds what a search over `params()` finds.
    #[test]
    fn param_lookup_agrees_with_params(
        list in proptest::collection::vec(("[a-cA-C]{1,3}", proptest::option::of("[a-c0-9]{0,3}")), 0..6),
        name in "[a-cA-C]{1,3}",
    ) {
        let mut text = String::from("sip:h.example.com");
        for (n, v) in &list {
            text.push(';');
            text.push_str(n);
            if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
                text.push('=');
                text.push_str(v);
            }
        }
        let u = Uri::parse(&text).unwrap();
        let want = u
            .params()
            .find(|(n, _)| n.eq_ignore_ascii_case(&name))
            .map(|(_, v)| v.unwrap_or_default());
        proptest::prop_assert_eq!(u.param(&name), want, "{} {}", text, name);
    }
}

/// The four-byte `sip:` fast path of `Uri::scan` answers as the general scheme scan does: the
/// same URI with its scheme in other cases (which take the general path) has the same parts
/// and the same result, error offsets included.
#[test]
fn sip_scheme_fast_path_agrees_with_general_scan() {
    for rest in [
        "alice@atlanta.com",
        "alice:pw@h:5060;lr?x=y",
        "h",
        "",
        "@h",
        "a@",
        "h:99999",
        "[::1]",
        "a%2@h",
        "h;=x",
    ] {
        let fast = Uri::parse(&format!("sip:{rest}"));
        for scheme in ["SIP", "Sip", "sIp"] {
            let general = Uri::parse(&format!("{scheme}:{rest}"));
            match (&fast, &general) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(b.scheme(), Scheme::Sip, "{rest}");
                    assert_eq!(
                        (
                            a.user(),
                            a.password(),
                            a.host(),
                            a.port(),
                            a.params().collect::<Vec<_>>()
                        ),
                        (
                            b.user(),
                            b.password(),
                            b.host(),
                            b.port(),
                            b.params().collect::<Vec<_>>()
                        ),
                        "{rest}"
                    );
                }
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{rest}"),
                _ => panic!("{rest}: {fast:?} vs {general:?}"),
            }
        }
    }
}
