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

/// Look a header name up (case-insensitive, compact forms included). `name` must be a token
/// (RFC 3261 §25.1): the comparison folds case by setting bit 0x20, which is exact on tokens.
#[inline]
pub(crate) fn lookup(name: &[u8]) -> Hid {
    let (Some(&first), Some(&last)) = (name.first(), name.last()) else {
        return Hid::Other;
    };
    if name.len() == 1 {
        return compact(first.to_ascii_lowercase());
    }
    let candidates: &[(Hid, &[u8])] = match (name.len(), first | 0x20, last | 0x20) {
        (2, b't', b'o') => &[(Hid::To, b"to")],
        (3, b'v', b'a') => &[(Hid::Via, b"via")],
        (4, b'c', b'q') => &[(Hid::CSeq, b"cseq")],
        (4, b'd', b'e') => &[(Hid::Date, b"date")],
        (4, b'f', b'm') => &[(Hid::From, b"from")],
        (4, b'p', b'h') => &[(Hid::Path, b"path")],
        (4, b'r', b'k') => &[(Hid::RAck, b"rack")],
        (4, b'r', b'q') => &[(Hid::RSeq, b"rseq")],
        (5, b'a', b'w') => &[(Hid::Allow, b"allow")],
        (5, b'e', b't') => &[(Hid::Event, b"event")],
        (5, b'r', b'e') => &[(Hid::Route, b"route")],
        (6, b'a', b't') => &[(Hid::Accept, b"accept")],
        (6, b'm', b'e') => &[(Hid::MinSe, b"min-se")],
        (6, b'r', b'n') => &[(Hid::Reason, b"reason")],
        (6, b's', b'r') => &[(Hid::Server, b"server")],
        (7, b'c', b'd') => &[(Hid::CallId, b"call-id")],
        (7, b'c', b't') => &[(Hid::Contact, b"contact")],
        (7, b'e', b's') => &[(Hid::Expires, b"expires")],
        (7, b'r', b'e') => &[(Hid::Require, b"require")],
        (7, b's', b't') => &[(Hid::Subject, b"subject")],
        (7, b'w', b'g') => &[(Hid::Warning, b"warning")],
        (8, b'i', b'y') => &[(Hid::Identity, b"identity")],
        (8, b'p', b'y') => &[(Hid::Priority, b"priority")],
        (8, b'r', b'o') => &[(Hid::ReferTo, b"refer-to"), (Hid::ReplyTo, b"reply-to")],
        (8, b's', b'g') => &[(Hid::SipETag, b"sip-etag")],
        (9, b'c', b'o') => &[(Hid::CallInfo, b"call-info")],
        (9, b's', b'd') => &[(Hid::Supported, b"supported")],
        (9, b't', b'p') => &[(Hid::Timestamp, b"timestamp")],
        (10, b'a', b'o') => &[(Hid::AlertInfo, b"alert-info")],
        (10, b'e', b'o') => &[(Hid::ErrorInfo, b"error-info")],
        (10, b'u', b't') => &[(Hid::UserAgent, b"user-agent")],
        (11, b'i', b'o') => &[(Hid::InReplyTo, b"in-reply-to")],
        (11, b'm', b's') => &[(Hid::MinExpires, b"min-expires")],
        (11, b'r', b'r') => &[(Hid::RetryAfter, b"retry-after")],
        (11, b'r', b'y') => &[(Hid::ReferredBy, b"referred-by")],
        (11, b'u', b'd') => &[(Hid::Unsupported, b"unsupported")],
        (12, b'a', b's') => &[(Hid::AllowEvents, b"allow-events")],
        (12, b'c', b'e') => &[(Hid::ContentType, b"content-type")],
        (12, b'm', b'n') => &[(Hid::MimeVersion, b"mime-version")],
        (12, b'm', b's') => &[(Hid::MaxForwards, b"max-forwards")],
        (12, b'o', b'n') => &[(Hid::Organization, b"organization")],
        (12, b'r', b'e') => &[(Hid::RecordRoute, b"record-route")],
        (12, b's', b'h') => &[(Hid::SipIfMatch, b"sip-if-match")],
        (13, b'a', b'n') => &[(Hid::Authorization, b"authorization")],
        (13, b'i', b'o') => &[(Hid::IdentityInfo, b"identity-info")],
        (13, b'p', b'e') => &[(Hid::ProxyRequire, b"proxy-require")],
        (13, b's', b'e') => &[(Hid::ServiceRoute, b"service-route")],
        (14, b'a', b't') => &[(Hid::AcceptContact, b"accept-contact")],
        (14, b'c', b'h') => &[(Hid::ContentLength, b"content-length")],
        (14, b'r', b't') => &[(Hid::RejectContact, b"reject-contact")],
        (15, b'a', b'e') => &[(Hid::AcceptLanguage, b"accept-language")],
        (15, b'a', b'g') => &[(Hid::AcceptEncoding, b"accept-encoding")],
        (15, b's', b's') => &[(Hid::SessionExpires, b"session-expires")],
        (16, b'c', b'e') => &[(Hid::ContentLanguage, b"content-language")],
        (16, b'c', b'g') => &[(Hid::ContentEncoding, b"content-encoding")],
        (16, b'p', b'i') => &[(Hid::PAssociatedUri, b"p-associated-uri")],
        (16, b'w', b'e') => &[(Hid::WwwAuthenticate, b"www-authenticate")],
        (17, b'p', b'r') => &[(Hid::PChargingVector, b"p-charging-vector")],
        (18, b'p', b'e') => &[
            (Hid::PAssertedService, b"p-asserted-service"),
            (Hid::ProxyAuthenticate, b"proxy-authenticate"),
        ],
        (18, b's', b'e') => &[(Hid::SubscriptionState, b"subscription-state")],
        (19, b'a', b'o') => &[(Hid::AuthenticationInfo, b"authentication-info")],
        (19, b'c', b'n') => &[(Hid::ContentDisposition, b"content-disposition")],
        (19, b'p', b'e') => &[(Hid::PPreferredService, b"p-preferred-service")],
        (19, b'p', b'n') => &[(Hid::ProxyAuthorization, b"proxy-authorization")],
        (19, b'p', b'y') => &[(Hid::PAssertedIdentity, b"p-asserted-identity")],
        (19, b'r', b'n') => &[(Hid::RequestDisposition, b"request-disposition")],
        (20, b'p', b'd') => &[(Hid::PVisitedNetworkId, b"p-visited-network-id")],
        (20, b'p', b'y') => &[(Hid::PPreferredIdentity, b"p-preferred-identity")],
        (21, b'p', b'o') => &[(Hid::PAccessNetworkInfo, b"p-access-network-info")],
        _ => return Hid::Other,
    };
    for &(h, lower) in candidates {
        let diff = name
            .iter()
            .zip(lower)
            .fold(0u8, |acc, (&a, &b)| acc | ((a | 0x20) ^ b));
        if diff == 0 && lower.len() == name.len() {
            return h;
        }
    }
    Hid::Other
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
