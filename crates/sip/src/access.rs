//! Typed accessors on [`Headers`], forwarded by [`Message`], [`Request`] and [`Response`].

use bytestring::ByteString;

use crate::error::{Error, Result};
use crate::headers::{Entry, Headers, split_commas};
use crate::message::{Message, Request, Response};
use crate::name_addr::{self, NameAddr};
use crate::names::Hid;
use crate::types::{
    self, AcceptContact, CSeq, Contact, ContentType, Date, Event, SubscriptionState, Warning,
};
use crate::via::{self, Via};

/// Attach the header name and the value's position to an error from a value parser.
pub(crate) fn locate(e: Error, id: Hid, at: usize) -> Error {
    match e {
        Error::Header {
            offset, expected, ..
        } => Error::Header {
            name: id.name().to_owned(),
            offset: offset + at,
            expected,
        },
        other => other.shifted(at),
    }
}

impl Headers {
    fn typed<T>(&self, e: &Entry, f: impl FnOnce(&ByteString) -> Result<T>) -> Result<T> {
        self.value_text(e)
            .and_then(|t| f(&t))
            .map_err(|err| locate(err, e.id, e.value.start as usize))
    }

    fn typed_str<'a, T>(&'a self, e: &Entry, f: impl FnOnce(&'a str) -> Result<T>) -> Result<T> {
        f(self.entry_value(e)).map_err(|err| locate(err, e.id, e.value.start as usize))
    }

    fn single<T>(&self, id: Hid, f: impl FnOnce(&ByteString) -> Result<T>) -> Result<T> {
        let e = self
            .first_id(id)
            .ok_or_else(|| Error::MissingHeader(id.name()))?;
        self.typed(e, f)
    }

    fn optional<T>(&self, id: Hid, f: impl FnOnce(&ByteString) -> Result<T>) -> Result<Option<T>> {
        self.first_id(id).map(|e| self.typed(e, f)).transpose()
    }

    fn optional_str<'a, T>(
        &'a self,
        id: Hid,
        f: impl FnOnce(&'a str) -> Result<T>,
    ) -> Result<Option<T>> {
        self.first_id(id).map(|e| self.typed_str(e, f)).transpose()
    }

    fn all_lists<T>(&self, id: Hid, f: impl Fn(&ByteString) -> Result<Vec<T>>) -> Result<Vec<T>> {
        let mut out = Vec::new();
        for e in self.by_id(id) {
            out.extend(self.typed(e, &f)?);
        }
        Ok(out)
    }

    fn all_tokens(&self, id: Hid) -> Result<Vec<&str>> {
        let mut out = Vec::new();
        for e in self.by_id(id) {
            out.extend(self.typed_str(e, types::parse_tokens)?);
        }
        Ok(out)
    }

    /// The Call-ID (`i`), if present.
    #[must_use]
    #[inline]
    pub fn call_id(&self) -> Option<&str> {
        self.first_id(Hid::CallId).map(|e| self.entry_value(e))
    }

    /// The CSeq.
    ///
    /// # Errors
    /// [`Error::MissingHeader`] or [`Error::Header`].
    pub fn cseq(&self) -> Result<CSeq> {
        let e = self
            .first_id(Hid::CSeq)
            .ok_or(Error::MissingHeader("CSeq"))?;
        self.typed_str(e, CSeq::parse)
    }

    /// The From header (`f`).
    ///
    /// # Errors
    /// [`Error::MissingHeader`], [`Error::Header`] or [`Error::Uri`].
    pub fn from(&self) -> Result<NameAddr> {
        self.single(Hid::From, |b| NameAddr::from_text(b.clone()))
    }

    /// The To header (`t`).
    ///
    /// # Errors
    /// [`Error::MissingHeader`], [`Error::Header`] or [`Error::Uri`].
    pub fn to(&self) -> Result<NameAddr> {
        self.single(Hid::To, |b| NameAddr::from_text(b.clone()))
    }

    /// The `tag` parameter of the From header (`f`), without typing its URI: what dialog
    /// matching needs (RFC 3261 §12.2.2), at a fraction of the cost of [`Headers::from`].
    /// The display name and URI are only delimited; the parameters are checked against their
    /// grammar. `Ok(None)` when From has no tag.
    ///
    /// # Errors
    /// [`Error::MissingHeader`] or [`Error::Header`].
    pub fn from_tag(&self) -> Result<Option<&str>> {
        self.tag_of(Hid::From)
    }

    /// The `tag` parameter of the To header (`t`), without typing its URI (see
    /// [`Headers::from_tag`]). `Ok(None)` when To has no tag.
    ///
    /// # Errors
    /// [`Error::MissingHeader`] or [`Error::Header`].
    pub fn to_tag(&self) -> Result<Option<&str>> {
        self.tag_of(Hid::To)
    }

    fn tag_of(&self, id: Hid) -> Result<Option<&str>> {
        let e = self
            .first_id(id)
            .ok_or_else(|| Error::MissingHeader(id.name()))?;
        self.typed_str(e, |v| name_addr::header_param(v, "tag"))
    }

    /// Every Via value (`v`), top first, across all Via lines.
    ///
    /// # Errors
    /// [`Error::Header`] for a malformed value.
    pub fn via(&self) -> Result<Vec<Via>> {
        self.all_lists(Hid::Via, via::parse_list)
    }

    /// The topmost Via value (the rest of the list is not examined).
    ///
    /// # Errors
    /// [`Error::MissingHeader`] or [`Error::Header`].
    pub fn top_via(&self) -> Result<Via> {
        let e = self.first_id(Hid::Via).ok_or(Error::MissingHeader("Via"))?;
        // Only the first value is parsed; `via()` or `validate()` check the whole list.
        self.typed(e, via::parse_first)
    }

    /// Every Contact value (`m`), across all Contact lines.
    ///
    /// # Errors
    /// [`Error::Header`] or [`Error::Uri`] for a malformed value.
    pub fn contacts(&self) -> Result<Vec<Contact>> {
        // one list for every line's values (no list per line to append)
        let mut out = Vec::new();
        for e in self.by_id(Hid::Contact) {
            self.typed(e, |b| types::parse_contacts_into(b, &mut out))?;
        }
        Ok(out)
    }

    /// The Expires header.
    ///
    /// # Errors
    /// [`Error::Header`] if it is not delta-seconds below 2^32.
    pub fn expires(&self) -> Result<Option<u32>> {
        self.optional_str(Hid::Expires, types::parse_delta)
    }

    /// The Min-Expires header.
    ///
    /// # Errors
    /// [`Error::Header`] if it is not delta-seconds below 2^32.
    pub fn min_expires(&self) -> Result<Option<u32>> {
        self.optional_str(Hid::MinExpires, types::parse_delta)
    }

    /// The Max-Forwards header.
    ///
    /// # Errors
    /// [`Error::Header`] if it is not 0..=255.
    pub fn max_forwards(&self) -> Result<Option<u8>> {
        self.optional_str(Hid::MaxForwards, |s| {
            crate::chars::parse_u32(crate::chars::trim_lws(s).as_bytes())
                .and_then(|v| u8::try_from(v).ok())
                .ok_or_else(|| crate::params::perr(0, "0..=255"))
        })
    }

    /// The first Content-Length header (`l`).
    ///
    /// # Errors
    /// [`Error::Header`] if it is not a number.
    pub fn content_length(&self) -> Result<Option<usize>> {
        self.optional_str(Hid::ContentLength, |s| {
            crate::chars::parse_u64(s.as_bytes())
                .and_then(|v| usize::try_from(v).ok())
                .ok_or_else(|| crate::params::perr(0, "a decimal Content-Length"))
        })
    }

    /// The Content-Type header (`c`).
    ///
    /// # Errors
    /// [`Error::Header`] for a malformed media type.
    pub fn content_type(&self) -> Result<Option<ContentType>> {
        self.optional(Hid::ContentType, ContentType::from_text)
    }

    /// The Event header (`o`).
    ///
    /// # Errors
    /// [`Error::Header`] for a malformed value.
    pub fn event(&self) -> Result<Option<Event>> {
        self.optional(Hid::Event, Event::from_text)
    }

    /// The Allow-Events packages (`u`), across all lines.
    ///
    /// # Errors
    /// [`Error::Header`] for a malformed value.
    pub fn allow_events(&self) -> Result<Vec<&str>> {
        self.all_tokens(Hid::AllowEvents)
    }

    /// The Subscription-State header.
    ///
    /// # Errors
    /// [`Error::Header`] for a malformed value.
    pub fn subscription_state(&self) -> Result<Option<SubscriptionState>> {
        self.optional(Hid::SubscriptionState, SubscriptionState::from_text)
    }

    /// The SIP-ETag header (RFC 3903 §11.3.1).
    ///
    /// # Errors
    /// [`Error::Header`] if it is not a token.
    pub fn sip_etag(&self) -> Result<Option<&str>> {
        self.optional_str(Hid::SipETag, entity_tag)
    }

    /// The SIP-If-Match header (RFC 3903 §11.3.2).
    ///
    /// # Errors
    /// [`Error::Header`] if it is not a token.
    pub fn sip_if_match(&self) -> Result<Option<&str>> {
        self.optional_str(Hid::SipIfMatch, entity_tag)
    }

    /// The Warning values, across all lines.
    ///
    /// # Errors
    /// [`Error::Header`] for a malformed value.
    pub fn warning(&self) -> Result<Vec<Warning>> {
        let mut out = Vec::new();
        for e in self.by_id(Hid::Warning) {
            for v in split_commas(self.entry_value(e)) {
                out.push(
                    Warning::parse(v).map_err(|err| locate(err, e.id, e.value.start as usize))?,
                );
            }
        }
        Ok(out)
    }

    /// The Supported option tags (`k`), across all lines.
    ///
    /// # Errors
    /// [`Error::Header`] for a malformed value.
    pub fn supported(&self) -> Result<Vec<&str>> {
        self.all_tokens(Hid::Supported)
    }

    /// The Require option tags, across all lines.
    ///
    /// # Errors
    /// [`Error::Header`] for a malformed value.
    pub fn require(&self) -> Result<Vec<&str>> {
        self.all_tokens(Hid::Require)
    }

    /// The Proxy-Require option tags, across all lines.
    ///
    /// # Errors
    /// [`Error::Header`] for a malformed value.
    pub fn proxy_require(&self) -> Result<Vec<&str>> {
        self.all_tokens(Hid::ProxyRequire)
    }

    /// The Unsupported option tags, across all lines.
    ///
    /// # Errors
    /// [`Error::Header`] for a malformed value.
    pub fn unsupported(&self) -> Result<Vec<&str>> {
        self.all_tokens(Hid::Unsupported)
    }

    /// The Allow methods, across all lines.
    ///
    /// # Errors
    /// [`Error::Header`] for a malformed value.
    pub fn allow(&self) -> Result<Vec<&str>> {
        self.all_tokens(Hid::Allow)
    }

    /// The Date header (GMT only).
    ///
    /// # Errors
    /// [`Error::Header`] for a malformed date or a zone other than GMT.
    pub fn date(&self) -> Result<Option<Date>> {
        self.optional_str(Hid::Date, Date::parse)
    }

    /// The P-Asserted-Identity values (RFC 3325), across all lines.
    ///
    /// # Errors
    /// [`Error::Header`] or [`Error::Uri`] for a malformed value.
    pub fn p_asserted_identity(&self) -> Result<Vec<NameAddr>> {
        self.all_lists(Hid::PAssertedIdentity, |b| name_addr::parse_list(b, false))
    }

    /// The first P-Asserted-Identity value (RFC 3325), if any: the first name-addr of the
    /// first P-Asserted-Identity line, without building the list (the values after its `,`
    /// and later lines are not examined; [`Headers::p_asserted_identity`] checks them all).
    ///
    /// # Errors
    /// [`Error::Header`] or [`Error::Uri`] for a malformed first value.
    pub fn p_asserted_identity_first(&self) -> Result<Option<NameAddr>> {
        self.optional(Hid::PAssertedIdentity, name_addr::parse_first)
    }

    /// The P-Preferred-Identity values (RFC 3325), across all lines.
    ///
    /// # Errors
    /// [`Error::Header`] or [`Error::Uri`] for a malformed value.
    pub fn p_preferred_identity(&self) -> Result<Vec<NameAddr>> {
        self.all_lists(Hid::PPreferredIdentity, |b| name_addr::parse_list(b, false))
    }

    /// The P-Preferred-Service values (RFC 6050), e.g.
    /// `urn:urn-7:3gpp-service.ims.icsi.mcptt`, across all lines.
    ///
    /// # Errors
    /// [`Error::Header`] if a value is not a `urn:` service identifier.
    pub fn p_preferred_service(&self) -> Result<Vec<&str>> {
        let mut out = Vec::new();
        for e in self.by_id(Hid::PPreferredService) {
            for v in split_commas(self.entry_value(e)) {
                let ok = v.len() > 4
                    && v.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
                    && v.bytes().all(|b| {
                        b > b' ' && b < 0x7f && !matches!(b, b',' | b';' | b'"' | b'<' | b'>')
                    });
                if !ok {
                    return Err(locate(
                        crate::params::perr(0, "a urn: service identifier"),
                        e.id,
                        e.value.start as usize,
                    ));
                }
                out.push(v);
            }
        }
        Ok(out)
    }

    /// The Accept-Contact values (`a`, RFC 3841), across all lines.
    ///
    /// # Errors
    /// [`Error::Header`] for a malformed value.
    pub fn accept_contact(&self) -> Result<Vec<AcceptContact>> {
        self.all_lists(Hid::AcceptContact, |b| {
            split_commas(b)
                .map(|v| AcceptContact::from_text(&b.slice_ref(v)))
                .collect()
        })
    }

    /// The Route values (name-addr form), across all lines.
    ///
    /// # Errors
    /// [`Error::Header`] or [`Error::Uri`] for a malformed value.
    pub fn route(&self) -> Result<Vec<NameAddr>> {
        self.all_lists(Hid::Route, |b| name_addr::parse_list(b, true))
    }

    /// The Record-Route values, across all lines.
    ///
    /// # Errors
    /// [`Error::Header`] or [`Error::Uri`] for a malformed value.
    pub fn record_route(&self) -> Result<Vec<NameAddr>> {
        self.all_lists(Hid::RecordRoute, |b| name_addr::parse_list(b, true))
    }

    /// The Path values (RFC 3327), across all lines.
    ///
    /// # Errors
    /// [`Error::Header`] or [`Error::Uri`] for a malformed value.
    pub fn path(&self) -> Result<Vec<NameAddr>> {
        self.all_lists(Hid::Path, |b| name_addr::parse_list(b, true))
    }

    /// The Service-Route values (RFC 3608), across all lines.
    ///
    /// # Errors
    /// [`Error::Header`] or [`Error::Uri`] for a malformed value.
    pub fn service_route(&self) -> Result<Vec<NameAddr>> {
        self.all_lists(Hid::ServiceRoute, |b| name_addr::parse_list(b, true))
    }
}

fn entity_tag(s: &str) -> Result<&str> {
    if crate::chars::is_token_str(s.as_bytes()) {
        Ok(s)
    } else {
        Err(crate::params::perr(0, "an entity-tag token"))
    }
}

macro_rules! forward {
    ($t:ty) => {
        impl $t {
            /// The Call-ID (see [`Headers::call_id`]).
            #[must_use]
            pub fn call_id(&self) -> Option<&str> {
                self.headers().call_id()
            }
            /// The CSeq (see [`Headers::cseq`]).
            ///
            /// # Errors
            /// As [`Headers::cseq`].
            pub fn cseq(&self) -> Result<CSeq> {
                self.headers().cseq()
            }
            /// The From header (see [`Headers::from`]).
            ///
            /// # Errors
            /// As [`Headers::from`].
            pub fn from(&self) -> Result<NameAddr> {
                self.headers().from()
            }
            /// The To header (see [`Headers::to`]).
            ///
            /// # Errors
            /// As [`Headers::to`].
            pub fn to(&self) -> Result<NameAddr> {
                self.headers().to()
            }
            /// The From tag without typing the URI (see [`Headers::from_tag`]).
            ///
            /// # Errors
            /// As [`Headers::from_tag`].
            pub fn from_tag(&self) -> Result<Option<&str>> {
                self.headers().from_tag()
            }
            /// The To tag without typing the URI (see [`Headers::to_tag`]).
            ///
            /// # Errors
            /// As [`Headers::to_tag`].
            pub fn to_tag(&self) -> Result<Option<&str>> {
                self.headers().to_tag()
            }
            /// Every Via value (see [`Headers::via`]).
            ///
            /// # Errors
            /// As [`Headers::via`].
            pub fn via(&self) -> Result<Vec<Via>> {
                self.headers().via()
            }
            /// The topmost Via (see [`Headers::top_via`]).
            ///
            /// # Errors
            /// As [`Headers::top_via`].
            pub fn top_via(&self) -> Result<Via> {
                self.headers().top_via()
            }
            /// Every Contact value (see [`Headers::contacts`]).
            ///
            /// # Errors
            /// As [`Headers::contacts`].
            pub fn contacts(&self) -> Result<Vec<Contact>> {
                self.headers().contacts()
            }
            /// The Expires header (see [`Headers::expires`]).
            ///
            /// # Errors
            /// As [`Headers::expires`].
            pub fn expires(&self) -> Result<Option<u32>> {
                self.headers().expires()
            }
            /// The Max-Forwards header (see [`Headers::max_forwards`]).
            ///
            /// # Errors
            /// As [`Headers::max_forwards`].
            pub fn max_forwards(&self) -> Result<Option<u8>> {
                self.headers().max_forwards()
            }
            /// The Content-Type header (see [`Headers::content_type`]).
            ///
            /// # Errors
            /// As [`Headers::content_type`].
            pub fn content_type(&self) -> Result<Option<ContentType>> {
                self.headers().content_type()
            }
            /// The Min-Expires header (see [`Headers::min_expires`]).
            ///
            /// # Errors
            /// As [`Headers::min_expires`].
            pub fn min_expires(&self) -> Result<Option<u32>> {
                self.headers().min_expires()
            }
            /// The first Content-Length header (see [`Headers::content_length`]).
            ///
            /// # Errors
            /// As [`Headers::content_length`].
            pub fn content_length(&self) -> Result<Option<usize>> {
                self.headers().content_length()
            }
            /// The Allow-Events packages (see [`Headers::allow_events`]).
            ///
            /// # Errors
            /// As [`Headers::allow_events`].
            pub fn allow_events(&self) -> Result<Vec<&str>> {
                self.headers().allow_events()
            }
            /// The Subscription-State header (see [`Headers::subscription_state`]).
            ///
            /// # Errors
            /// As [`Headers::subscription_state`].
            pub fn subscription_state(&self) -> Result<Option<SubscriptionState>> {
                self.headers().subscription_state()
            }
            /// The SIP-ETag header (see [`Headers::sip_etag`]).
            ///
            /// # Errors
            /// As [`Headers::sip_etag`].
            pub fn sip_etag(&self) -> Result<Option<&str>> {
                self.headers().sip_etag()
            }
            /// The SIP-If-Match header (see [`Headers::sip_if_match`]).
            ///
            /// # Errors
            /// As [`Headers::sip_if_match`].
            pub fn sip_if_match(&self) -> Result<Option<&str>> {
                self.headers().sip_if_match()
            }
            /// The Warning values (see [`Headers::warning`]).
            ///
            /// # Errors
            /// As [`Headers::warning`].
            pub fn warning(&self) -> Result<Vec<Warning>> {
                self.headers().warning()
            }
            /// The Supported option tags (see [`Headers::supported`]).
            ///
            /// # Errors
            /// As [`Headers::supported`].
            pub fn supported(&self) -> Result<Vec<&str>> {
                self.headers().supported()
            }
            /// The Require option tags (see [`Headers::require`]).
            ///
            /// # Errors
            /// As [`Headers::require`].
            pub fn require(&self) -> Result<Vec<&str>> {
                self.headers().require()
            }
            /// The Proxy-Require option tags (see [`Headers::proxy_require`]).
            ///
            /// # Errors
            /// As [`Headers::proxy_require`].
            pub fn proxy_require(&self) -> Result<Vec<&str>> {
                self.headers().proxy_require()
            }
            /// The Unsupported option tags (see [`Headers::unsupported`]).
            ///
            /// # Errors
            /// As [`Headers::unsupported`].
            pub fn unsupported(&self) -> Result<Vec<&str>> {
                self.headers().unsupported()
            }
            /// The Allow methods (see [`Headers::allow`]).
            ///
            /// # Errors
            /// As [`Headers::allow`].
            pub fn allow(&self) -> Result<Vec<&str>> {
                self.headers().allow()
            }
            /// The Date header (see [`Headers::date`]).
            ///
            /// # Errors
            /// As [`Headers::date`].
            pub fn date(&self) -> Result<Option<Date>> {
                self.headers().date()
            }
            /// The P-Asserted-Identity values (see [`Headers::p_asserted_identity`]).
            ///
            /// # Errors
            /// As [`Headers::p_asserted_identity`].
            pub fn p_asserted_identity(&self) -> Result<Vec<NameAddr>> {
                self.headers().p_asserted_identity()
            }
            /// The first P-Asserted-Identity value (see
            /// [`Headers::p_asserted_identity_first`]).
            ///
            /// # Errors
            /// As [`Headers::p_asserted_identity_first`].
            pub fn p_asserted_identity_first(&self) -> Result<Option<NameAddr>> {
                self.headers().p_asserted_identity_first()
            }
            /// The P-Preferred-Identity values (see [`Headers::p_preferred_identity`]).
            ///
            /// # Errors
            /// As [`Headers::p_preferred_identity`].
            pub fn p_preferred_identity(&self) -> Result<Vec<NameAddr>> {
                self.headers().p_preferred_identity()
            }
            /// The P-Preferred-Service values (see [`Headers::p_preferred_service`]).
            ///
            /// # Errors
            /// As [`Headers::p_preferred_service`].
            pub fn p_preferred_service(&self) -> Result<Vec<&str>> {
                self.headers().p_preferred_service()
            }
            /// The Accept-Contact values (see [`Headers::accept_contact`]).
            ///
            /// # Errors
            /// As [`Headers::accept_contact`].
            pub fn accept_contact(&self) -> Result<Vec<AcceptContact>> {
                self.headers().accept_contact()
            }
            /// The Route values (see [`Headers::route`]).
            ///
            /// # Errors
            /// As [`Headers::route`].
            pub fn route(&self) -> Result<Vec<NameAddr>> {
                self.headers().route()
            }
            /// The Record-Route values (see [`Headers::record_route`]).
            ///
            /// # Errors
            /// As [`Headers::record_route`].
            pub fn record_route(&self) -> Result<Vec<NameAddr>> {
                self.headers().record_route()
            }
            /// The Path values (see [`Headers::path`]).
            ///
            /// # Errors
            /// As [`Headers::path`].
            pub fn path(&self) -> Result<Vec<NameAddr>> {
                self.headers().path()
            }
            /// The Service-Route values (see [`Headers::service_route`]).
            ///
            /// # Errors
            /// As [`Headers::service_route`].
            pub fn service_route(&self) -> Result<Vec<NameAddr>> {
                self.headers().service_route()
            }
            /// The Event header (see [`Headers::event`]).
            ///
            /// # Errors
            /// As [`Headers::event`].
            pub fn event(&self) -> Result<Option<Event>> {
                self.headers().event()
            }
        }
    };
}

forward!(Message);
forward!(Request);
forward!(Response);
