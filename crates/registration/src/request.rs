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

/// A Contact as the registrar reads it: a [`ContactSpec`] or, on the path from a parsed
/// message, the parsed Contact itself (no copies; see `wire`).
pub(crate) trait ContactRead {
    /// The contact URI.
    fn uri(&self) -> &str;
    /// The `expires` Contact parameter.
    fn expires(&self) -> Option<u32>;
    /// `+sip.instance`, without surrounding quotes.
    fn instance(&self) -> Option<std::borrow::Cow<'_, str>>;
    /// `reg-id`.
    fn reg_id(&self) -> Option<u32>;
    /// The Contact parameters but `expires` (name, raw value).
    fn params(&self) -> impl Iterator<Item = (&str, Option<&str>)>;
    /// Replaces `out` with the whole Contact value without its `expires` parameter
    /// ([`ContactSpec::value`]).
    fn write_value(&self, out: &mut String);
}

impl ContactRead for ContactSpec {
    fn uri(&self) -> &str {
        &self.uri
    }

    fn expires(&self) -> Option<u32> {
        self.expires
    }

    fn instance(&self) -> Option<std::borrow::Cow<'_, str>> {
        self.instance.as_deref().map(std::borrow::Cow::Borrowed)
    }

    fn reg_id(&self) -> Option<u32> {
        self.reg_id
    }

    fn params(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.params.iter().map(|(n, v)| (n.as_str(), v.as_deref()))
    }

    fn write_value(&self, out: &mut String) {
        out.clone_from(&self.value);
    }
}

/// What kind of Contact list a REGISTER carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContactsKind {
    /// No Contact.
    Fetch,
    /// `Contact: *`.
    Star,
    /// Contacts to add, refresh or remove.
    List,
}

/// A REGISTER as the registrar reads it: a [`RegisterRequest`] or, on the path from a
/// parsed message, its checked parts (no copies; see `wire`).
pub(crate) trait RegisterRead {
    /// How a Contact reads.
    type Contact: ContactRead;
    /// Canonical address-of-record.
    fn aor(&self) -> &str;
    /// Call-ID.
    fn call_id(&self) -> &str;
    /// CSeq number.
    fn cseq(&self) -> u32;
    /// The `Expires` header.
    fn expires(&self) -> Option<u32>;
    /// The request as received.
    fn raw(&self) -> &Bytes;
    /// The kind of Contact list.
    fn kind(&self) -> ContactsKind;
    /// The Contacts of a [`ContactsKind::List`], in order (none otherwise).
    fn contacts(&self) -> impl Iterator<Item = &Self::Contact>;
}

impl RegisterRead for RegisterRequest {
    type Contact = ContactSpec;

    fn aor(&self) -> &str {
        &self.aor
    }

    fn call_id(&self) -> &str {
        &self.call_id
    }

    fn cseq(&self) -> u32 {
        self.cseq
    }

    fn expires(&self) -> Option<u32> {
        self.expires
    }

    fn raw(&self) -> &Bytes {
        &self.raw
    }

    fn kind(&self) -> ContactsKind {
        match self.contacts {
            Contacts::Fetch => ContactsKind::Fetch,
            Contacts::Star => ContactsKind::Star,
            Contacts::List(_) => ContactsKind::List,
        }
    }

    fn contacts(&self) -> impl Iterator<Item = &ContactSpec> {
        match &self.contacts {
            Contacts::List(list) => list.as_slice(),
            Contacts::Fetch | Contacts::Star => &[],
        }
        .iter()
    }
}
