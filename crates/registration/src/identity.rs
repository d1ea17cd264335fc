//! Which public user identities an authenticated peer may register (RFC 3261 §10.3 step 4).

use std::collections::{HashMap, HashSet};

/// Canonical form of an address-of-record URI used as the store key and for identity
/// checks: scheme and host lower-cased, URI parameters and headers dropped, `sips` kept
/// as `sip` (RFC 3261 §10.3 step 5: the AoR is the To URI without parameters).
///
/// Returns `None` when the text has no scheme or no host.
#[must_use]
pub fn canonical_aor(uri: &str) -> Option<String> {
    let uri = uri.trim();
    let uri = uri
        .strip_prefix('<')
        .and_then(|u| u.split('>').next())
        .unwrap_or(uri);
    let (scheme, rest) = uri.split_once(':')?;
    let scheme = scheme.to_ascii_lowercase();
    let scheme = match scheme.as_str() {
        "sip" | "sips" => "sip",
        "tel" => "tel",
        _ => return None,
    };
    let rest = rest.split(['?']).next().unwrap_or(rest);
    if scheme == "tel" {
        let num = rest.split(';').next().unwrap_or(rest);
        if num.is_empty() {
            return None;
        }
        return Some(format!("tel:{num}"));
    }
    let (user, hostport) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let hostport = hostport.split(';').next().unwrap_or(hostport);
    if hostport.is_empty() || user.is_some_and(str::is_empty) {
        return None;
    }
    // `user` may itself carry `;user-params` in tel-style users: keep as written.
    let user = user.map(|u| u.split(';').next().unwrap_or(u));
    let host = hostport.to_ascii_lowercase();
    Some(match user {
        Some(u) => format!("{scheme}:{u}@{host}"),
        None => format!("{scheme}:{host}"),
    })
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
