//! A REGISTER reduced to what the registrar needs (extracted once from the parsed message,
//! so the registrar rules run without re-parsing).

use bytes::Bytes;

/// One Contact of a REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactSpec {
    /// The contact URI.
    pub uri: String,
    /// The whole Contact value without its `expires` parameter.
    pub value: String,
    /// The `expires` Contact parameter.
    pub expires: Option<u32>,
    /// `+sip.instance`, without surrounding quotes.
    pub instance: Option<String>,
    /// `reg-id`.
    pub reg_id: Option<u32>,
    /// All Contact parameters (name, raw value) — feature tags for the filter criteria.
    pub params: Vec<(String, Option<String>)>,
}

/// The Contact header fields of a REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contacts {
    /// No Contact: a query of the current bindings (RFC 3261 §10.2.3).
    Fetch,
    /// `Contact: *`: remove all bindings (RFC 3261 §10.2.2).
    Star,
    /// Contacts to add, refresh or remove.
    List(Vec<ContactSpec>),
}

/// A REGISTER request as the registrar sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterRequest {
    /// Canonical address-of-record from the To header (see [`crate::canonical_aor`]).
    pub aor: String,
    /// Call-ID.
    pub call_id: String,
    /// CSeq number.
    pub cseq: u32,
    /// The `Expires` header.
    pub expires: Option<u32>,
    /// The Contacts.
    pub contacts: Contacts,
    /// The request as received (kept with the bindings it creates; body of third-party
    /// REGISTERs).
    pub raw: Bytes,
}
