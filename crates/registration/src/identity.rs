//! Which public user identities an authenticated peer may register (RFC 3261 §10.3 step 4).

use std::collections::{HashMap, HashSet};

/// Canonical form of an address-of-record URI used as the store key and for identity
/// checks: scheme and host lower-cased, URI parameters and headers dropped, `sips` kept
/// as `sip` (RFC 3261 §10.3 step 5: the AoR is the To URI without parameters).
///
/// Returns `None` when the text has no scheme or no host.
#[must_use]
pub fn canonical_aor(uri: &str) -> Option<String> {
    Some(match aor_parts(uri)? {
        AorParts::Tel(num) => {
            let mut aor = String::with_capacity(4 + num.len());
            aor.push_str("tel:");
            aor.push_str(num);
            aor
        }
        AorParts::Sip { user, hostport } => sip_aor(user, hostport),
    })
}

/// Whether [`canonical_aor`] of `uri` is `canonical`, without writing it (`None` when `uri`
/// has none).
pub(crate) fn canonical_aor_is(uri: &str, canonical: &str) -> Option<bool> {
    Some(match aor_parts(uri)? {
        AorParts::Tel(num) => canonical.strip_prefix("tel:") == Some(num),
        AorParts::Sip { user, hostport } => {
            let rest = canonical.strip_prefix("sip:");
            let rest = match user {
                Some(u) => rest
                    .and_then(|r| r.strip_prefix(u))
                    .and_then(|r| r.strip_prefix('@')),
                None => rest,
            };
            // (The host part compares as `sip_aor` writes it: ASCII lower-cased.)
            rest.is_some_and(|h| {
                h.len() == hostport.len()
                    && h.bytes()
                        .zip(hostport.bytes())
                        .all(|(a, b)| a == b.to_ascii_lowercase())
            })
        }
    })
}

/// The pieces [`canonical_aor`] assembles, borrowed from the URI text.
enum AorParts<'a> {
    /// `tel:NUMBER`.
    Tel(&'a str),
    /// `sip:USER@HOSTPORT` (the host part to be lower-cased).
    Sip {
        user: Option<&'a str>,
        hostport: &'a str,
    },
}

fn aor_parts(uri: &str) -> Option<AorParts<'_>> {
    // (Byte scans with memchr, the separators being ASCII, so every cut is on a character
    // boundary; no temporary lower-cased copies: this runs on every REGISTER and
    // third-party REGISTER.)
    let uri = uri.trim();
    let uri = match uri.strip_prefix('<') {
        Some(inner) => before(inner, b'>'),
        None => uri,
    };
    let colon = memchr::memchr(b':', uri.as_bytes())?;
    let scheme = cut(uri, colon);
    let rest = uri.get(colon + 1..).unwrap_or_default();
    let tel = if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
        false
    } else if scheme.eq_ignore_ascii_case("tel") {
        true
    } else {
        return None;
    };
    let rest = before(rest, b'?');
    if tel {
        let num = before(rest, b';');
        if num.is_empty() {
            return None;
        }
        return Some(AorParts::Tel(num));
    }
    let (user, hostport) = match memchr::memrchr(b'@', rest.as_bytes()) {
        Some(at) => (Some(cut(rest, at)), rest.get(at + 1..).unwrap_or_default()),
        None => (None, rest),
    };
    let hostport = before(hostport, b';');
    if hostport.is_empty() || user.is_some_and(str::is_empty) {
        return None;
    }
    // `user` may itself carry `;user-params` in tel-style users: keep as written.
    Some(AorParts::Sip {
        user: user.map(|u| before(u, b';')),
        hostport,
    })
}

/// `sip:user@hostport` (or `sip:hostport`) in one String, the host part lower-cased.
fn sip_aor(user: Option<&str>, hostport: &str) -> String {
    let mut aor = String::with_capacity(5 + user.map_or(0, str::len) + hostport.len());
    aor.push_str("sip:");
    if let Some(u) = user {
        aor.push_str(u);
        aor.push('@');
    }
    let host_start = aor.len();
    aor.push_str(hostport);
    if let Some(host) = aor.get_mut(host_start..) {
        host.make_ascii_lowercase();
    }
    aor
}

/// `s` up to byte `i`, the position of an ASCII separator (so a character boundary).
fn cut(s: &str, i: usize) -> &str {
    s.get(..i).unwrap_or(s)
}

/// `s` up to the first ASCII `c` (all of it without one).
fn before(s: &str, c: u8) -> &str {
    memchr::memchr(c, s.as_bytes()).map_or(s, |i| cut(s, i))
}

/// A configurable mapping from authenticated peer identities (e.g. the identity of the TLS
/// client certificate, as `mcptt-tls` reports it) to the public user identities they may
/// register.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityMap {
    map: HashMap<String, HashSet<String>>,
}

impl IdentityMap {
    /// An empty mapping: nobody may register anything.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets `peer` register `aor` (builder style). An `aor` that is not a SIP/tel URI is
    /// kept as written and will never match.
    #[must_use]
    pub fn allow(mut self, peer: impl Into<String>, aor: &str) -> Self {
        self.insert(peer, aor);
        self
    }

    /// Lets `peer` register `aor`.
    pub fn insert(&mut self, peer: impl Into<String>, aor: &str) {
        let aor = canonical_aor(aor).unwrap_or_else(|| aor.to_owned());
        self.map.entry(peer.into()).or_default().insert(aor);
    }

    /// Whether `peer` may register the canonical address-of-record `aor`.
    #[must_use]
    pub fn may_register(&self, peer: &str, aor: &str) -> bool {
        self.map.get(peer).is_some_and(|s| s.contains(aor))
    }

    /// The identities `peer` may register.
    pub fn identities(&self, peer: &str) -> impl Iterator<Item = &str> {
        self.map.get(peer).into_iter().flatten().map(String::as_str)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn byte_scans_are_the_reference() {
        for u in [
            "<sips:Alice@EXAMPLE.com;transport=tls>",
            "sip:alice@example.com:5061?x=y",
            "tel:+123;phone-context=x",
            "  \"Bob\" <sip:bob@Example.COM>;tag=1 ",
            "<sip:a;b@c;d@HOST;e?f>",
            "<sip:alice@example.com",
            "sip:@example.com",
            "sip:alice@",
            "tel:",
            "tel:;x",
            "mailto:alice@example.com",
            "sip",
            "",
            "<>",
            "SIP:ÄLICE@ÉXAMPLE.com",
            "sip:alice@host?a@b",
        ] {
            assert_eq!(canonical_aor(u), reference_aor(u), "for {u:?}");
            same_comparison(u);
        }
    }

    /// `canonical_aor_is` against the written canonical form and some near misses.
    fn same_comparison(u: &str) {
        let written = reference_aor(u);
        let mut candidates = vec![
            String::new(),
            "sip:".to_owned(),
            "tel:".to_owned(),
            "sip:alice@example.com".to_owned(),
        ];
        if let Some(w) = &written {
            candidates.push(w.clone());
            candidates.push(w.to_uppercase());
            candidates.push(format!("{w}x"));
            candidates.push(w.chars().skip(1).collect());
            candidates.push(w.replace('@', ""));
        }
        for c in &candidates {
            assert_eq!(
                canonical_aor_is(u, c),
                written.as_ref().map(|w| w == c),
                "for {u:?} and {c:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn byte_scans_are_the_reference_on_any_text(u in "[<> \t\"a-zA-Z0-9:;@?=+.ÄÉ-]{0,40}") {
            prop_assert_eq!(canonical_aor(&u), reference_aor(&u));
            same_comparison(&u);
        }

        #[test]
        fn comparison_is_the_written_form_on_any_pair(
            u in "[<> \ta-zA-Z0-9:;@?=+.ÄÉ-]{0,30}",
            c in "(sip:|tel:|SIP:|)[a-zA-Z0-9:;@=+.ÄÉ-]{0,20}",
        ) {
            prop_assert_eq!(canonical_aor_is(&u, &c), reference_aor(&u).map(|w| w == c));
        }
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(
            canonical_aor("<sips:Alice@EXAMPLE.com;transport=tls>").as_deref(),
            Some("sip:Alice@example.com")
        );
        assert_eq!(
            canonical_aor("sip:alice@example.com:5061?x=y").as_deref(),
            Some("sip:alice@example.com:5061")
        );
        assert_eq!(
            canonical_aor("tel:+123;phone-context=x").as_deref(),
            Some("tel:+123")
        );
        assert_eq!(canonical_aor("http://x"), None);
        assert_eq!(canonical_aor("sip:@x"), None);
        assert_eq!(canonical_aor("sip:"), None);
        assert_eq!(
            canonical_aor(" SIPS:Bob;x=1@Host.EXAMPLE:5061;lr ").as_deref(),
            Some("sip:Bob@host.example:5061")
        );
        assert_eq!(canonical_aor("TEL:+49;x").as_deref(), Some("tel:+49"));
        assert_eq!(canonical_aor("tel:;x"), None);
    }

    /// The form before the single-buffer rewrite, kept as the reference.
    fn reference_aor(uri: &str) -> Option<String> {
        let uri = uri.trim();
        let uri = uri
            .strip_prefix('<')
            .and_then(|u| u.split('>').next())
            .unwrap_or(uri);
        let (scheme, rest) = uri.split_once(':')?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "sip" | "sips" => "sip",
            "tel" => "tel",
            _ => return None,
        };
        let rest = rest.split(['?']).next().unwrap_or(rest);
        if scheme == "tel" {
            let num = rest.split(';').next().unwrap_or(rest);
            return (!num.is_empty()).then(|| format!("tel:{num}"));
        }
        let (user, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let hostport = hostport.split(';').next().unwrap_or(hostport);
        if hostport.is_empty() || user.is_some_and(str::is_empty) {
            return None;
        }
        let user = user.map(|u| u.split(';').next().unwrap_or(u));
        let host = hostport.to_ascii_lowercase();
        Some(match user {
            Some(u) => format!("{scheme}:{u}@{host}"),
            None => format!("{scheme}:{host}"),
        })
    }

    proptest::proptest! {
        #[test]
        fn canonical_aor_matches_the_reference(
            uri in "[ <]{0,2}(sip|SIP|Sips|tel|TEL|http|)[:]?[a-zA-Z0-9+;=@.:?<>é-]{0,24}[ >]{0,2}"
        ) {
            proptest::prop_assert_eq!(canonical_aor(&uri), reference_aor(&uri));
        }
    }

    #[test]
    fn mapping() {
        let m = IdentityMap::new().allow("ue1.example", "sip:Alice@Example.com");
        assert!(m.may_register("ue1.example", "sip:Alice@example.com"));
        assert!(!m.may_register("ue1.example", "sip:bob@example.com"));
        assert!(!m.may_register("ue2.example", "sip:Alice@example.com"));
        assert_eq!(m.identities("ue1.example").count(), 1);
    }
}
