//! The typed validation layer: every known header against its grammar.

use crate::access::locate;
use crate::error::{Error, Result};
use crate::headers::{Headers, split_commas};
use crate::message::{Head, Message, Request, head_of_request};
use crate::method::Method;
use crate::name_addr::{self, NameAddr};
use crate::names::Hid;
use crate::params::perr;
use crate::types::{
    self, AcceptContact, CSeq, ContentType, Date, Event, SubscriptionState, Warning,
};
use crate::via;

pub(crate) fn validate(m: &Message) -> Result<()> {
    match m {
        Message::Request(r) => r.validate(),
        Message::Response(r) => r.validate(),
    }
}

pub(crate) fn validate_request(r: &Request) -> Result<()> {
    validate_headers(r.headers(), Some(r.method()))?;
    check_body_len(head_of_request(r))
}

pub(crate) fn check_body_len(h: &Head) -> Result<()> {
    if let Some(declared) = h.declared_len()
        && !h.has_override()
        && declared > h.parsed_body_len()
    {
        return Err(Error::BodyTruncated {
            declared,
            available: h.parsed_body_len(),
        });
    }
    Ok(())
}

fn retry_after(s: &str) -> Result<()> {
    // Retry-After = delta-seconds [ comment ] *( SEMI retry-param )
    let t = crate::chars::trim_lws(s);
    let d = t.bytes().take_while(u8::is_ascii_digit).count();
    types::parse_delta(t.get(..d).unwrap_or_default())?;
    Ok(())
}

fn call_id(s: &str) -> Result<()> {
    // callid = word [ "@" word ]
    let (a, b) = match s.split_once('@') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let word =
        |w: &str| !w.is_empty() && w.bytes().all(|c| crate::chars::is(c, crate::chars::WORD));
    if word(a) && b.is_none_or(word) {
        Ok(())
    } else {
        Err(perr(0, "a Call-ID (word [\"@\" word])"))
    }
}

/// Type-check every known header; `method` is the request method for the CSeq check.
pub(crate) fn validate_headers(h: &Headers, method: Option<&Method>) -> Result<()> {
    for e in h.entries() {
        // Header text is UTF-8 (RFC 3261 §7.3.1 TEXT-UTF8); parsed messages are checked already,
        // this covers edited headers built from other buffers.
        if let Err(u) = std::str::from_utf8(h.entry_line(e)) {
            return Err(Error::Header {
                name: h.entry_name(e).to_owned(),
                offset: e.name.start as usize + u.valid_up_to(),
                expected: "UTF-8 text",
            });
        }
        let v = h.entry_value(e);
        let at = e.value.start as usize;
        let b = || h.value_text(e);
        let r: Result<()> = match e.id {
            Hid::From | Hid::To | Hid::ReplyTo | Hid::ReferredBy | Hid::ReferTo => {
                b().and_then(NameAddr::from_text).map(|_| ())
            }
            Hid::Contact => b().and_then(|b| types::parse_contacts(&b)).map(|_| ()),
            Hid::Route | Hid::RecordRoute | Hid::Path | Hid::ServiceRoute => b()
                .and_then(|b| name_addr::parse_list(&b, true))
                .map(|_| ()),
            Hid::PAssertedIdentity | Hid::PPreferredIdentity => b()
                .and_then(|b| name_addr::parse_list(&b, false))
                .map(|_| ()),
            Hid::Via => b().and_then(|b| via::parse_list(&b)).map(|_| ()),
            Hid::CSeq => CSeq::parse(v).and_then(|c| match method {
                Some(m) if *m != c.method => Err(Error::CSeqMethodMismatch {
                    method: m.to_string(),
                    cseq: c.method.to_string(),
                }),
                _ => Ok(()),
            }),
            Hid::CallId => call_id(v),
            Hid::Expires | Hid::MinExpires => types::parse_delta(v).map(|_| ()),
            Hid::RetryAfter => retry_after(v),
            Hid::ContentType => b().and_then(|b| ContentType::from_text(&b)).map(|_| ()),
            Hid::Event => b().and_then(|b| Event::from_text(&b)).map(|_| ()),
            Hid::SubscriptionState => b()
                .and_then(|b| SubscriptionState::from_text(&b))
                .map(|_| ()),
            Hid::AllowEvents
            | Hid::Supported
            | Hid::Require
            | Hid::ProxyRequire
            | Hid::Unsupported
            | Hid::Allow => types::parse_tokens(v).map(|_| ()),
            Hid::SipETag | Hid::SipIfMatch => {
                if crate::chars::is_token_str(v.as_bytes()) {
                    Ok(())
                } else {
                    Err(perr(0, "an entity-tag token"))
                }
            }
            Hid::Warning => split_commas(v).try_for_each(|w| Warning::parse(w).map(|_| ())),
            Hid::Date => Date::parse(v).map(|_| ()),
            Hid::AcceptContact | Hid::RejectContact => b().and_then(|buf| {
                split_commas(&buf)
                    .try_for_each(|x| AcceptContact::from_text(&buf.slice_ref(x)).map(|_| ()))
            }),
            Hid::Accept => split_commas(v).try_for_each(|x| ContentType::parse(x).map(|_| ())),
            Hid::AcceptEncoding
            | Hid::AcceptLanguage
            | Hid::ContentEncoding
            | Hid::ContentLanguage => types::check_token_param_list(v.as_bytes(), true),
            Hid::ContentDisposition | Hid::Reason | Hid::Priority | Hid::RequestDisposition => {
                types::check_token_param_list(v.as_bytes(), false)
            }
            Hid::SessionExpires | Hid::MinSe => types::check_delta_params(v.as_bytes()),
            Hid::RSeq => types::parse_delta(v).map(|_| ()),
            Hid::RAck => types::check_rack(v.as_bytes()),
            Hid::Timestamp => types::check_timestamp(v.as_bytes()),
            Hid::MimeVersion => {
                let ok = v.split_once('.').is_some_and(|(a, b)| {
                    !a.is_empty()
                        && !b.is_empty()
                        && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
                });
                if ok {
                    Ok(())
                } else {
                    Err(perr(0, "MIME-Version 1*DIGIT \".\" 1*DIGIT"))
                }
            }
            Hid::Authorization
            | Hid::ProxyAuthorization
            | Hid::WwwAuthenticate
            | Hid::ProxyAuthenticate => types::check_auth(v.as_bytes()),
            Hid::PAssociatedUri | Hid::AlertInfo | Hid::CallInfo | Hid::ErrorInfo => b()
                .and_then(|b| name_addr::parse_list(&b, true))
                .map(|_| ()),
            Hid::PChargingVector
            | Hid::PVisitedNetworkId
            | Hid::PAccessNetworkInfo
            | Hid::AuthenticationInfo => types::check_param_list(v.as_bytes()),
            Hid::InReplyTo => split_commas(v).try_for_each(call_id),
            Hid::PAssertedService | Hid::PPreferredService => {
                let ok = split_commas(v).all(|x| {
                    x.len() > 4
                        && x.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
                        && !x.contains([' ', '\t', ';', '"', '<', '>'])
                });
                if ok {
                    Ok(())
                } else {
                    Err(perr(0, "a urn: service identifier"))
                }
            }
            _ => Ok(()),
        };
        r.map_err(|err| locate(err, e.id, at))?;
    }
    Ok(())
}
