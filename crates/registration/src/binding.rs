//! The binding model: an address-of-record and the contacts bound to it (RFC 3261 §10.3).

use std::time::{Duration, Instant};

use bytes::Bytes;

/// One contact bound to an address-of-record.
///
/// A binding is identified inside its address-of-record by [`Binding::key`]: the
/// `+sip.instance` and `reg-id` pair when both are present (RFC 5626 §6), else the
/// `+sip.instance` alone (RFC 5627), else the contact URI (RFC 3261 §10.3 step 7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// Identifier unique within the registrar that created it (used as the reginfo contact id).
    pub id: u64,
    /// The contact URI.
    pub uri: String,
    /// The whole Contact header value as received, without its `expires` parameter
    /// (echoed in the 200 OK with the remaining expiry).
    pub contact: String,
    /// The `+sip.instance` value, without the surrounding quotes (e.g. `<urn:uuid:…>`).
    pub instance: Option<String>,
    /// The `reg-id` value (RFC 5626).
    pub reg_id: Option<u32>,
    /// Call-ID of the REGISTER that created or last refreshed the binding.
    pub call_id: String,
    /// CSeq number of that REGISTER.
    pub cseq: u32,
    /// When the binding was first created.
    pub registered_at: Instant,
    /// When the binding expires unless refreshed.
    pub expires_at: Instant,
    /// The REGISTER that created or last refreshed the binding, as received (used as the
    /// `message/sip` body of third-party REGISTERs).
    pub request: Bytes,
    /// Indexes (into the registrar's configured filter list) of the application servers
    /// this binding was reported to by third-party registration.
    pub third_party: Vec<u16>,
}

/// How a binding is identified within its address-of-record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BindingKey<'a> {
    /// `+sip.instance` and `reg-id` (RFC 5626 §6).
    InstanceRegId(&'a str, u32),
    /// `+sip.instance` alone (RFC 5627).
    Instance(&'a str),
    /// The contact URI (RFC 3261 §10.3 step 7).
    Uri(&'a str),
}

impl BindingKey<'_> {
    /// Builds the key from the parts of a Contact.
    #[must_use]
    pub fn from_parts<'a>(
        uri: &'a str,
        instance: Option<&'a str>,
        reg_id: Option<u32>,
    ) -> BindingKey<'a> {
        match (instance, reg_id) {
            (Some(i), Some(r)) => BindingKey::InstanceRegId(i, r),
            (Some(i), None) => BindingKey::Instance(i),
            (None, _) => BindingKey::Uri(uri),
        }
    }

    /// Whether two keys name the same binding (URIs compare ignoring ASCII case, which is a
    /// conservative subset of RFC 3261 §19.1.4 equality for the same textual form).
    #[must_use]
    pub fn same(&self, other: &BindingKey<'_>) -> bool {
        match (self, other) {
            (BindingKey::InstanceRegId(a, x), BindingKey::InstanceRegId(b, y)) => a == b && x == y,
            (BindingKey::Instance(a), BindingKey::Instance(b)) => a == b,
            (BindingKey::Uri(a), BindingKey::Uri(b)) => a.eq_ignore_ascii_case(b),
            _ => false,
        }
    }
}

impl Binding {
    /// This binding's key within its address-of-record.
    #[must_use]
    pub fn key(&self) -> BindingKey<'_> {
        BindingKey::from_parts(&self.uri, self.instance.as_deref(), self.reg_id)
    }

    /// Whole seconds left before expiry at `now` (rounded up, 0 once expired).
    #[must_use]
    pub fn remaining(&self, now: Instant) -> u32 {
        let left = self.expires_at.saturating_duration_since(now);
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        u32::try_from(secs).unwrap_or(u32::MAX)
    }

    /// Whether the binding has expired at `now`.
    #[must_use]
    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at <= now
    }

    /// Seconds since the binding was created.
    #[must_use]
    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.registered_at)
    }
}

/// All bindings of one address-of-record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AorRecord {
    /// The bindings, in creation order.
    pub bindings: Vec<Binding>,
}

impl AorRecord {
    /// The earliest expiry among the bindings.
    #[must_use]
    pub fn next_expiry(&self) -> Option<Instant> {
        self.bindings.iter().map(|b| b.expires_at).min()
    }

    /// Finds the binding with `key`.
    #[must_use]
    pub fn find(&self, key: &BindingKey<'_>) -> Option<usize> {
        self.bindings.iter().position(|b| b.key().same(key))
    }
}
