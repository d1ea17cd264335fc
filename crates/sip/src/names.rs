//! Known header names, their compact forms (RFC 3261 §7.3.3 and the IANA registry), and a fast
//! case-insensitive lookup.

macro_rules! known {
    ($( $id:ident = $name:literal $(, $compact:literal)? ; )*) => {
        /// Identifier of a known header (`Other` for the rest).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u8)]
        pub(crate) enum Hid { Other = 0, $( $id, )* }

        impl Hid {
            /// Canonical name.
            pub(crate) fn name(self) -> &'static str {
                match self { Self::Other => "", $( Self::$id => $name, )* }
            }
            /// Compact form, if any.
            pub(crate) fn compact(self) -> Option<u8> {
                match self { $( $( Self::$id => Some($compact), )? )* _ => None }
            }
        }

        /// How many header identifiers there are (`Other` included).
        pub(crate) const HID_COUNT: usize = 1 + [$( stringify!($id) ),*].len();

        /// Every known header (tests check the lookup against it).
        #[cfg(test)]
        static ALL: &[Hid] = &[ $( Hid::$id, )* ];

        /// A header this crate knows by name (its long form and, where it has one, its compact
        /// form): [`Headers::get_known`](crate::Headers::get_known) and the other `*_known`
        /// accessors find its lines by this identifier, without looking the name up.
        ///
        /// New known headers may be added in any release.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        #[repr(u8)]
        pub enum KnownHeader {
            $(
                #[doc = concat!("`", $name, "`.")]
                $id = Hid::$id as u8,
            )*
        }

        impl KnownHeader {
            /// The internal identifier (the same discriminant).
            #[inline]
            pub(crate) const fn hid(self) -> Hid {
                match self { $( Self::$id => Hid::$id, )* }
            }

            /// The known header of an internal identifier (`None` for `Other`).
            pub(crate) const fn from_hid(h: Hid) -> Option<Self> {
                match h { Hid::Other => None, $( Hid::$id => Some(Self::$id), )* }
            }
        }
    };
}

known! {
    Accept = "Accept";
    AcceptContact = "Accept-Contact", b'a';
    AcceptEncoding = "Accept-Encoding";
    AcceptLanguage = "Accept-Language";
    AlertInfo = "Alert-Info";
    Allow = "Allow";
    AllowEvents = "Allow-Events", b'u';
    AuthenticationInfo = "Authentication-Info";
    Authorization = "Authorization";
    CallId = "Call-ID", b'i';
    CallInfo = "Call-Info";
    Contact = "Contact", b'm';
    ContentDisposition = "Content-Disposition";
    ContentEncoding = "Content-Encoding", b'e';
    ContentLanguage = "Content-Language";
    ContentLength = "Content-Length", b'l';
    ContentType = "Content-Type", b'c';
    CSeq = "CSeq";
    Date = "Date";
    ErrorInfo = "Error-Info";
    Event = "Event", b'o';
    Expires = "Expires";
    From = "From", b'f';
    Identity = "Identity", b'y';
    IdentityInfo = "Identity-Info", b'n';
    InReplyTo = "In-Reply-To";
    MaxForwards = "Max-Forwards";
    MimeVersion = "MIME-Version";
    MinExpires = "Min-Expires";
    MinSe = "Min-SE";
    Organization = "Organization";
    PAccessNetworkInfo = "P-Access-Network-Info";
    PAssertedIdentity = "P-Asserted-Identity";
    PAssertedService = "P-Asserted-Service";
    PAssociatedUri = "P-Associated-URI";
    PChargingVector = "P-Charging-Vector";
    PPreferredIdentity = "P-Preferred-Identity";
    PPreferredService = "P-Preferred-Service";
    PVisitedNetworkId = "P-Visited-Network-ID";
    Path = "Path";
    Priority = "Priority";
    ProxyAuthenticate = "Proxy-Authenticate";
    ProxyAuthorization = "Proxy-Authorization";
    ProxyRequire = "Proxy-Require";
    RAck = "RAck";
    RSeq = "RSeq";
    Reason = "Reason";
    RecordRoute = "Record-Route";
    ReferTo = "Refer-To", b'r';
    ReferredBy = "Referred-By", b'b';
    RejectContact = "Reject-Contact", b'j';
    ReplyTo = "Reply-To";
    RequestDisposition = "Request-Disposition", b'd';
    Require = "Require";
    RetryAfter = "Retry-After";
    Route = "Route";
    Server = "Server";
    ServiceRoute = "Service-Route";
    SessionExpires = "Session-Expires", b'x';
    SipETag = "SIP-ETag";
    SipIfMatch = "SIP-If-Match";
    Subject = "Subject", b's';
    SubscriptionState = "Subscription-State";
    Supported = "Supported", b'k';
    Timestamp = "Timestamp";
    To = "To", b't';
    Unsupported = "Unsupported";
    UserAgent = "User-Agent";
    Via = "Via", b'v';
    Warning = "Warning";
    WwwAuthenticate = "WWW-Authenticate";
}

/// Multiplier of the perfect hash over (length, first, third and last byte) of the known
/// names (found by search; `every_known_name_is_found` checks it).
const HASH_K: u32 = 2056846563;

/// Slot → 1-based index into [`BY_INDEX`] (0: no known name hashes there).
static SLOTS: [u8; 256] = [
    0, 0, 0, 63, 0, 0, 0, 0, 0, 0, 56, 0, 2, 49, 0, 0, 10, 71, 0, 31, 7, 0, 53, 0, 0, 0, 0, 0, 14,
    38, 43, 0, 0, 64, 15, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 25, 0, 0, 0, 0, 28, 0, 0, 0, 1, 17, 0,
    46, 0, 0, 0, 0, 0, 0, 0, 0, 18, 0, 0, 0, 0, 0, 0, 0, 0, 57, 70, 19, 0, 0, 0, 30, 0, 35, 34, 0,
    0, 0, 37, 44, 0, 0, 0, 50, 0, 0, 0, 0, 0, 0, 41, 0, 0, 0, 51, 0, 0, 0, 0, 48, 0, 0, 40, 0, 54,
    0, 0, 13, 0, 36, 0, 0, 59, 0, 0, 0, 0, 0, 0, 0, 0, 61, 0, 45, 0, 0, 0, 0, 0, 29, 0, 0, 0, 62,
    26, 33, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 60, 0, 22, 0, 0, 0, 0, 12, 0, 32, 0, 0, 0, 24, 0, 47, 0,
    6, 3, 0, 0, 0, 0, 0, 4, 0, 9, 0, 0, 0, 0, 0, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 69, 0, 0, 0,
    0, 58, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 68, 0, 0, 55, 0, 0, 0, 20, 11, 27, 0, 21, 0, 0, 0,
    0, 52, 65, 39, 66, 0, 0, 67, 0, 0, 0, 0, 0, 5, 23, 0, 0, 0, 0, 0, 0, 0,
];

/// Known headers in declaration order, and their lowercase names.
static BY_INDEX: [(Hid, &[u8]); 71] = [
    (Hid::Accept, b"accept"),
    (Hid::AcceptContact, b"accept-contact"),
    (Hid::AcceptEncoding, b"accept-encoding"),
    (Hid::AcceptLanguage, b"accept-language"),
    (Hid::AlertInfo, b"alert-info"),
    (Hid::Allow, b"allow"),
    (Hid::AllowEvents, b"allow-events"),
    (Hid::AuthenticationInfo, b"authentication-info"),
    (Hid::Authorization, b"authorization"),
    (Hid::CallId, b"call-id"),
    (Hid::CallInfo, b"call-info"),
    (Hid::Contact, b"contact"),
    (Hid::ContentDisposition, b"content-disposition"),
    (Hid::ContentEncoding, b"content-encoding"),
    (Hid::ContentLanguage, b"content-language"),
    (Hid::ContentLength, b"content-length"),
    (Hid::ContentType, b"content-type"),
    (Hid::CSeq, b"cseq"),
    (Hid::Date, b"date"),
    (Hid::ErrorInfo, b"error-info"),
    (Hid::Event, b"event"),
    (Hid::Expires, b"expires"),
    (Hid::From, b"from"),
    (Hid::Identity, b"identity"),
    (Hid::IdentityInfo, b"identity-info"),
    (Hid::InReplyTo, b"in-reply-to"),
    (Hid::MaxForwards, b"max-forwards"),
    (Hid::MimeVersion, b"mime-version"),
    (Hid::MinExpires, b"min-expires"),
    (Hid::MinSe, b"min-se"),
    (Hid::Organization, b"organization"),
    (Hid::PAccessNetworkInfo, b"p-access-network-info"),
    (Hid::PAssertedIdentity, b"p-asserted-identity"),
    (Hid::PAssertedService, b"p-asserted-service"),
    (Hid::PAssociatedUri, b"p-associated-uri"),
    (Hid::PChargingVector, b"p-charging-vector"),
    (Hid::PPreferredIdentity, b"p-preferred-identity"),
    (Hid::PPreferredService, b"p-preferred-service"),
    (Hid::PVisitedNetworkId, b"p-visited-network-id"),
    (Hid::Path, b"path"),
    (Hid::Priority, b"priority"),
    (Hid::ProxyAuthenticate, b"proxy-authenticate"),
    (Hid::ProxyAuthorization, b"proxy-authorization"),
    (Hid::ProxyRequire, b"proxy-require"),
    (Hid::RAck, b"rack"),
    (Hid::RSeq, b"rseq"),
    (Hid::Reason, b"reason"),
    (Hid::RecordRoute, b"record-route"),
    (Hid::ReferTo, b"refer-to"),
    (Hid::ReferredBy, b"referred-by"),
    (Hid::RejectContact, b"reject-contact"),
    (Hid::ReplyTo, b"reply-to"),
    (Hid::RequestDisposition, b"request-disposition"),
    (Hid::Require, b"require"),
    (Hid::RetryAfter, b"retry-after"),
    (Hid::Route, b"route"),
    (Hid::Server, b"server"),
    (Hid::ServiceRoute, b"service-route"),
    (Hid::SessionExpires, b"session-expires"),
    (Hid::SipETag, b"sip-etag"),
    (Hid::SipIfMatch, b"sip-if-match"),
    (Hid::Subject, b"subject"),
    (Hid::SubscriptionState, b"subscription-state"),
    (Hid::Supported, b"supported"),
    (Hid::Timestamp, b"timestamp"),
    (Hid::To, b"to"),
    (Hid::Unsupported, b"unsupported"),
    (Hid::UserAgent, b"user-agent"),
    (Hid::Via, b"via"),
    (Hid::Warning, b"warning"),
    (Hid::WwwAuthenticate, b"www-authenticate"),
];

/// Look a header name up (case-insensitive, compact forms included). `name` must be a token
/// (RFC 3261 §25.1): the comparison folds case by setting bit 0x20, which is exact on tokens.
#[inline]
pub(crate) fn lookup(name: &[u8]) -> Hid {
    lookup_inline(name)
}

/// [`lookup`], always inlined: the header scan calls it once per line, and the call
/// (spilling the scan's registers around it) costs about as much as the lookup.
#[inline(always)]
pub(crate) fn lookup_inline(name: &[u8]) -> Hid {
    let (Some(&first), Some(&last)) = (name.first(), name.last()) else {
        return Hid::Other;
    };
    if name.len() == 1 {
        return compact(first.to_ascii_lowercase());
    }
    let third = name.get(2).map_or(0, |&b| b | 0x20);
    let key = (name.len() as u32 & 0xff)
        | u32::from(first | 0x20) << 8
        | u32::from(last | 0x20) << 16
        | u32::from(third) << 24;
    let slot = usize::from(SLOTS[(key.wrapping_mul(HASH_K) >> 24) as usize]);
    match slot.checked_sub(1).and_then(|i| BY_INDEX.get(i)) {
        Some(&(h, lower)) if eq_folded(name, lower) => h,
        _ => Hid::Other,
    }
}

/// A known name as three little-endian words of its lowercase bytes (zero after its end), for
/// [`lookup_words`].
#[derive(Clone, Copy)]
struct NameWords {
    words: [u64; 3],
    len: u8,
    hid: Hid,
}

const NO_NAME: NameWords = NameWords {
    words: [0; 3],
    len: 0,
    hid: Hid::Other,
};

/// Multiplier of the perfect hash of [`word_hash`] over the known names (found by search; a
/// collision fails the build of [`BY_WORDS`]).
const WORD_HASH_K: u64 = 0x0b24_6990_583a_0c93;

/// The slot of a name held (case-folded) in three words.
#[inline(always)]
const fn word_hash(w: [u64; 3]) -> usize {
    ((w[0] ^ w[1].rotate_left(21) ^ w[2].rotate_left(42)).wrapping_mul(WORD_HASH_K) >> 56) as usize
}

/// The known names by [`word_hash`] slot ([`NO_NAME`] where none hashes).
static BY_WORDS: [NameWords; 256] = {
    let mut t = [NO_NAME; 256];
    let mut i = 0;
    while i < BY_INDEX.len() {
        let (hid, lower) = BY_INDEX[i];
        let mut words = [0u64; 3];
        let mut j = 0;
        while j < lower.len() {
            words[j / 8] |= (lower[j] as u64) << (8 * (j % 8));
            j += 1;
        }
        let slot = word_hash(words);
        assert!(t[slot].len == 0, "two known names in one slot");
        t[slot] = NameWords {
            words,
            len: lower.len() as u8,
            hid,
        };
        i += 1;
    }
    t
};

/// ASCII letters of each byte of `w` lower-cased (bit 0x20 set where bit 0x40 is): exact
/// case folding for letters, and no other byte (`-` included) becomes a letter or `-`.
#[inline(always)]
const fn fold_word(w: u64) -> u64 {
    w | ((w & 0x4040_4040_4040_4040) >> 1)
}

/// The known header whose name is, case-insensitively, the `len` bytes held little-endian in
/// `words` (zero after the end; `len <= 8 * N`, `N <= 3`, words past `N` taken as zero): what
/// [`lookup`] gives for a token of length `len >= 2`, and `Hid::Other` for any name that is
/// not exactly a known one (whatever its bytes: the comparison is exact, not only on tokens).
#[inline(always)]
pub(crate) fn lookup_words<const N: usize>(len: usize, words: [u64; N]) -> Hid {
    let mut f = [0u64; 3];
    for (f, &w) in f.iter_mut().zip(&words) {
        *f = fold_word(w);
    }
    let k = &BY_WORDS[word_hash(f)];
    // equal lengths: the known name's words past `N` are zero, as `f`'s are
    let mut diff = 0;
    for (f, w) in f.iter().zip(&k.words).take(N) {
        diff |= f ^ w;
    }
    if usize::from(k.len) == len && diff == 0 {
        k.hid
    } else {
        Hid::Other
    }
}

/// `name` with bit 0x20 set in every byte equals `lower` (word-wise, overlapping windows).
#[inline]
fn eq_folded(name: &[u8], lower: &[u8]) -> bool {
    fn w8(s: &[u8], at: usize) -> u64 {
        s.get(at..at + 8)
            .and_then(|x| x.try_into().ok())
            .map_or(u64::MAX, u64::from_le_bytes)
    }
    fn w4(s: &[u8], at: usize) -> u32 {
        s.get(at..at + 4)
            .and_then(|x| x.try_into().ok())
            .map_or(u32::MAX, u32::from_le_bytes)
    }
    const F8: u64 = 0x2020_2020_2020_2020;
    const F4: u32 = 0x2020_2020;
    let n = name.len();
    if n != lower.len() {
        return false;
    }
    if n >= 8 {
        let mut diff = 0;
        let mut i = 0;
        while i + 8 < n {
            diff |= (w8(name, i) | F8) ^ w8(lower, i);
            i += 8;
        }
        diff |= (w8(name, n - 8) | F8) ^ w8(lower, n - 8);
        diff == 0
    } else if n >= 4 {
        ((w4(name, 0) | F4) ^ w4(lower, 0)) | ((w4(name, n - 4) | F4) ^ w4(lower, n - 4)) == 0
    } else {
        name.iter().zip(lower).all(|(&a, &b)| a | 0x20 == b)
    }
}

pub(crate) fn compact(c: u8) -> Hid {
    match c {
        b'a' => Hid::AcceptContact,
        b'b' => Hid::ReferredBy,
        b'c' => Hid::ContentType,
        b'd' => Hid::RequestDisposition,
        b'e' => Hid::ContentEncoding,
        b'f' => Hid::From,
        b'i' => Hid::CallId,
        b'j' => Hid::RejectContact,
        b'k' => Hid::Supported,
        b'l' => Hid::ContentLength,
        b'm' => Hid::Contact,
        b'n' => Hid::IdentityInfo,
        b'o' => Hid::Event,
        b'r' => Hid::ReferTo,
        b's' => Hid::Subject,
        b't' => Hid::To,
        b'u' => Hid::AllowEvents,
        b'v' => Hid::Via,
        b'x' => Hid::SessionExpires,
        b'y' => Hid::Identity,
        _ => Hid::Other,
    }
}

impl KnownHeader {
    /// The known header called `name` (case-insensitive, compact forms included), or `None`
    /// for a name this crate does not know (or that is not a token).
    #[must_use]
    pub fn lookup(name: &str) -> Option<Self> {
        if !crate::chars::is_token_str(name.as_bytes()) {
            return None;
        }
        Self::from_hid(lookup(name.as_bytes()))
    }

    /// The canonical spelling of its name (`Call-ID`, `CSeq`, `WWW-Authenticate`, ...).
    #[must_use]
    pub fn name(self) -> &'static str {
        self.hid().name()
    }

    /// Its compact form (`Via` → `v`), if it has one.
    #[must_use]
    pub fn compact(self) -> Option<char> {
        self.hid().compact().map(char::from)
    }
}

/// The canonical spelling of a header name: known names (and compact forms) in their RFC
/// spelling, other names unchanged.
#[must_use]
pub fn canonical_name(name: &str) -> &str {
    match lookup(name.as_bytes()) {
        Hid::Other => name,
        h => h.name(),
    }
}

/// The compact form of a known header name (`Via` → `v`), if it has one.
#[must_use]
pub fn compact_name(name: &str) -> Option<char> {
    lookup(name.as_bytes()).compact().map(char::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_name_is_found_in_its_bucket() {
        for &h in ALL {
            assert_eq!(lookup(h.name().as_bytes()), h, "{}", h.name());
            assert_eq!(lookup(h.name().to_ascii_uppercase().as_bytes()), h);
            if let Some(c) = h.compact() {
                assert_eq!(lookup(&[c]), h);
                assert_eq!(lookup(&[c.to_ascii_uppercase()]), h);
            }
        }
        for &h in ALL {
            let k = KnownHeader::lookup(h.name()).unwrap();
            assert_eq!(k.hid(), h);
            assert_eq!(k as u8, h as u8);
            assert_eq!(k.name(), h.name());
            assert_eq!(KnownHeader::from_hid(h), Some(k));
            if let Some(c) = k.compact() {
                assert_eq!(KnownHeader::lookup(&c.to_string()), Some(k));
            }
        }
        assert_eq!(KnownHeader::lookup("X-Foo"), None);
        assert_eq!(KnownHeader::lookup("Via "), None);
        assert_eq!(KnownHeader::from_hid(Hid::Other), None);
        assert_eq!(lookup(b"X-Foo"), Hid::Other);
        assert_eq!(lookup(b"q"), Hid::Other);
        assert_eq!(lookup(b""), Hid::Other);
    }

    fn words_of(name: &[u8]) -> [u64; 3] {
        let mut b = [0u8; 24];
        b[..name.len()].copy_from_slice(name);
        [0, 8, 16].map(|i| u64::from_le_bytes(b[i..i + 8].try_into().unwrap()))
    }

    #[test]
    fn word_lookup_finds_every_known_name_and_nothing_else() {
        for &h in ALL {
            for name in [
                h.name().to_owned(),
                h.name().to_ascii_uppercase(),
                h.name().to_ascii_lowercase(),
            ] {
                let b = name.as_bytes();
                assert_eq!(lookup_words(b.len(), words_of(b)), h, "{name}");
                if b.len() <= 8 {
                    assert_eq!(lookup_words(b.len(), [words_of(b)[0]]), h, "{name}");
                }
                if b.len() <= 16 {
                    let [w0, w1, _] = words_of(b);
                    assert_eq!(lookup_words(b.len(), [w0, w1]), h, "{name}");
                }
                // one byte off (length, a letter's neighbour, CR for '-', a NUL after it)
                assert_eq!(lookup_words(b.len() + 1, words_of(b)), Hid::Other);
                for i in 0..b.len() {
                    for c in [b[i] ^ 0x01, b[i] ^ 0x40, b[i] & 0x1f, b'\r'] {
                        let mut v = b.to_vec();
                        v[i] = c;
                        if v.eq_ignore_ascii_case(b) {
                            continue;
                        }
                        assert_eq!(lookup_words(v.len(), words_of(&v)), Hid::Other, "{v:?}");
                    }
                }
                if b.len() < 24 {
                    let mut v = b.to_vec();
                    v.push(0);
                    assert_eq!(lookup_words(v.len(), words_of(&v)), Hid::Other);
                }
            }
        }
        assert_eq!(lookup_words(5, words_of(b"X-Foo")), Hid::Other);
        assert_eq!(lookup_words(0, [0; 3]), Hid::Other);
    }
}
