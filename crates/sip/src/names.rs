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

        /// Every known header (tests check the lookup against it).
        #[cfg(test)]
        static ALL: &[Hid] = &[ $( Hid::$id, )* ];
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

/// Look a header name up (case-insensitive, compact forms included).
#[inline]
pub(crate) fn lookup(name: &[u8]) -> Hid {
    match name {
        [c] => compact(c.to_ascii_lowercase()),
        [first, ..] => {
            let f = first.to_ascii_lowercase();
            for &h in bucket(f) {
                let n = h.name().as_bytes();
                if n.len() == name.len() && n.eq_ignore_ascii_case(name) {
                    return h;
                }
            }
            Hid::Other
        }
        [] => Hid::Other,
    }
}

fn compact(c: u8) -> Hid {
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

/// Known headers whose canonical name starts with `f` (lowercase).
fn bucket(f: u8) -> &'static [Hid] {
    use Hid::*;
    match f {
        b'a' => &[
            Accept,
            AcceptContact,
            AcceptEncoding,
            AcceptLanguage,
            AlertInfo,
            Allow,
            AllowEvents,
            AuthenticationInfo,
            Authorization,
        ],
        b'c' => &[
            CallId,
            CSeq,
            Contact,
            ContentLength,
            ContentType,
            CallInfo,
            ContentDisposition,
            ContentEncoding,
            ContentLanguage,
        ],
        b'd' => &[Date],
        b'e' => &[Expires, Event, ErrorInfo],
        b'f' => &[From],
        b'i' => &[Identity, IdentityInfo, InReplyTo],
        b'm' => &[MaxForwards, MinExpires, MimeVersion, MinSe],
        b'o' => &[Organization],
        b'p' => &[
            PAssertedIdentity,
            PPreferredIdentity,
            PPreferredService,
            Path,
            PAccessNetworkInfo,
            PAssertedService,
            PAssociatedUri,
            PChargingVector,
            PVisitedNetworkId,
            Priority,
            ProxyAuthenticate,
            ProxyAuthorization,
            ProxyRequire,
        ],
        b'r' => &[
            Route,
            RecordRoute,
            Require,
            RAck,
            RSeq,
            Reason,
            ReferTo,
            ReferredBy,
            RejectContact,
            ReplyTo,
            RequestDisposition,
            RetryAfter,
        ],
        b's' => &[
            Supported,
            SipETag,
            SipIfMatch,
            SubscriptionState,
            Server,
            ServiceRoute,
            SessionExpires,
            Subject,
        ],
        b't' => &[To, Timestamp],
        b'u' => &[UserAgent, Unsupported],
        b'v' => &[Via],
        b'w' => &[Warning, WwwAuthenticate],
        _ => &[],
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
        assert_eq!(lookup(b"X-Foo"), Hid::Other);
        assert_eq!(lookup(b"q"), Hid::Other);
        assert_eq!(lookup(b""), Hid::Other);
    }
}
