//! The semantic layer: RFC 3261 §8.2 request checks with the status code to answer.

use crate::error::{Error, Result};
use crate::message::Request;
use crate::method::Method;
use crate::names::Hid;
use crate::types::ContentType;
use crate::uri::Scheme;

/// What a UAS, registrar or proxy supports, for [`Request::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Option tags this element supports; `Require` tags outside this list give 420.
    pub supported: Vec<String>,
    /// Whether this element is a proxy: `Proxy-Require` is checked as well, and
    /// `Max-Forwards: 0` gives 483.
    pub proxy: bool,
    /// Request-URI schemes accepted (416 otherwise). Default: `sip`, `sips`, `tel`.
    pub schemes: Vec<Scheme>,
    /// Content types accepted in request bodies (`type/subtype`, case-insensitive); empty
    /// accepts any (415 otherwise).
    pub content_types: Vec<String>,
    /// Methods this element handles; empty handles any (405 otherwise, RFC 3261 §8.2.1).
    pub methods: Vec<Method>,
    /// Media types this element can put in response bodies (`type/subtype`); when non-empty and
    /// the request has an Accept header that matches none of them (wildcards included), 406
    /// (RFC 3261 §8.2.3, RFC 4475 `sdp01`).
    pub produces: Vec<String>,
    /// Whether Max-Forwards is mandatory. Default `false`: RFC 3261 §8.1.1 obliges the UAC to
    /// send it, but neither the UAS checks of §8.2 nor a proxy (§16.6 adds one) reject a
    /// request without it (RFC 4475 `inv2543`).
    pub require_max_forwards: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            supported: Vec::new(),
            proxy: false,
            schemes: vec![Scheme::Sip, Scheme::Sips, Scheme::Tel],
            content_types: Vec::new(),
            methods: Vec::new(),
            produces: Vec::new(),
            require_max_forwards: false,
        }
    }
}

/// Headers that may appear at most once with a single value (RFC 3261 §7.3, §20).
const SINGLE: [Hid; 8] = [
    Hid::CallId,
    Hid::From,
    Hid::To,
    Hid::CSeq,
    Hid::MaxForwards,
    Hid::ContentType,
    Hid::Expires,
    Hid::MinExpires,
];

impl Request {
    /// Check the request as a UAS/registrar/proxy would before processing it (RFC 3261 §8.2,
    /// §16.3), in this order:
    /// typed validation ([`Request::validate`], 400/505), mandatory headers To, From, CSeq,
    /// Call-ID, Via (and Max-Forwards unless [`Policy::require_max_forwards`] is off) (400),
    /// single-value headers present more than once (400), disagreeing Content-Length
    /// headers (400), the method (405), the Request-URI scheme (416), `Require` (and for proxies
    /// `Proxy-Require`) option tags (420), the body's Content-Type (415), the Accept header
    /// against [`Policy::produces`] (406), and for proxies
    /// `Max-Forwards: 0` (483). [`Error::status_code`] gives the response to send.
    ///
    /// # Errors
    /// The first failed check.
    pub fn check(&self, policy: &Policy) -> Result<()> {
        let h = self.headers();
        // single values before the typed pass: RFC 4475 multi01 must give 400 for duplicates
        for id in SINGLE {
            if h.by_id(id).nth(1).is_some() {
                return Err(Error::DuplicateHeader(id.name()));
            }
        }
        let mut cls = h.by_id(Hid::ContentLength).map(|e| h.entry_value(e));
        if let Some(first) = cls.next()
            && cls.any(|v| v != first)
        {
            return Err(Error::ContentLengthMismatch);
        }
        let mut mandatory = vec![Hid::To, Hid::From, Hid::CSeq, Hid::CallId, Hid::Via];
        if policy.require_max_forwards {
            mandatory.push(Hid::MaxForwards);
        }
        for id in mandatory {
            if h.first_id(id).is_none() {
                return Err(Error::MissingHeader(id.name()));
            }
        }
        self.validate()?;
        if !policy.methods.is_empty() && !policy.methods.contains(self.method()) {
            return Err(Error::MethodNotAllowed(self.method().to_string()));
        }
        if !policy.schemes.contains(&self.uri().scheme()) {
            return Err(Error::UnsupportedUriScheme(
                self.uri().scheme_str().to_owned(),
            ));
        }
        let mut unsupported: Vec<&str> = Vec::new();
        let mut tags = h.require()?;
        if policy.proxy {
            tags.extend(h.proxy_require()?);
        }
        for t in tags {
            if !policy.supported.iter().any(|s| s.eq_ignore_ascii_case(t))
                && !unsupported.contains(&t)
            {
                unsupported.push(t);
            }
        }
        if !unsupported.is_empty() {
            return Err(Error::BadExtension(unsupported.join(", ")));
        }
        if !policy.content_types.is_empty()
            && self.body_len() > 0
            && let Some(ct) = h.content_type()?
        {
            let ok = policy
                .content_types
                .iter()
                .any(|c| c.eq_ignore_ascii_case(ct.mime_type()));
            if !ok {
                return Err(Error::UnsupportedMediaType(ct.mime_type().to_owned()));
            }
        }
        if !policy.produces.is_empty() && h.contains("Accept") {
            let accepted: Vec<ContentType> = h
                .values("Accept")
                .map(ContentType::parse)
                .collect::<Result<_>>()?;
            let ok = accepted.iter().any(|a| {
                policy.produces.iter().any(|p| {
                    let (pt, ps) = p.split_once('/').unwrap_or((p, ""));
                    (a.main_type() == "*" || a.main_type().eq_ignore_ascii_case(pt))
                        && (a.subtype() == "*" || a.subtype().eq_ignore_ascii_case(ps))
                })
            });
            if !ok {
                return Err(Error::NotAcceptable(
                    h.get("Accept").unwrap_or_default().to_owned(),
                ));
            }
        }
        if policy.proxy && h.max_forwards()? == Some(0) {
            return Err(Error::TooManyHops);
        }
        Ok(())
    }
}
