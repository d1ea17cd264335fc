//! The boundary with `mcptt-sip`: extracting what this crate needs from parsed messages and
//! building the messages it sends. Everything SIP-syntax related lives here.

use bytes::Bytes;
use mcptt_sip::{Contact, Method, NameAddr, Request, Response, Uri};

use crate::error::Error;
use crate::identity::canonical_aor;
use crate::request::{ContactSpec, Contacts, RegisterRequest};

fn cseq_of(headers: &mcptt_sip::Headers) -> Result<(u32, Method), Error> {
    let c = headers.cseq()?;
    // RFC 3261 §8.1.1.5: below 2^31.
    if c.seq >= 1 << 31 {
        return Err(Error::InvalidHeader {
            header: "CSeq",
            reason: "sequence number not below 2^31",
        });
    }
    Ok((c.seq, c.method))
}

fn call_id_of(headers: &mcptt_sip::Headers) -> Result<String, Error> {
    Ok(headers
        .call_id()
        .ok_or(Error::MissingHeader("Call-ID"))?
        .trim()
        .to_owned())
}

fn aor_of(headers: &mcptt_sip::Headers) -> Result<String, Error> {
    let to = headers.to()?;
    canonical_aor(to.uri().as_str()).ok_or(Error::InvalidAor)
}

// ---------------------------------------------------------------------------------------
// Extraction
// ---------------------------------------------------------------------------------------

/// Extracts a REGISTER (RFC 3261 §10.3 steps 5–6 syntax checks).
pub(crate) fn extract_register(req: &Request) -> Result<RegisterRequest, Error> {
    if *req.method() != Method::Register {
        return Err(Error::ApiMisuse("not a REGISTER request"));
    }
    let h = req.headers();
    let aor = aor_of(h)?;
    let call_id = call_id_of(h)?;
    let (cseq, method) = cseq_of(h)?;
    if method != Method::Register {
        return Err(Error::InvalidHeader {
            header: "CSeq",
            reason: "method differs from the request's",
        });
    }
    let expires = h.expires()?;
    let values = h.contacts()?;
    let contacts = if values.is_empty() {
        Contacts::Fetch
    } else if values.iter().any(Contact::is_star) {
        // RFC 3261 §10.3 step 6: `*` must be the only Contact.
        if values.len() != 1 {
            return Err(Error::InvalidHeader {
                header: "Contact",
                reason: "`*` mixed with other contacts",
            });
        }
        Contacts::Star
    } else {
        Contacts::List(
            values
                .iter()
                .filter_map(Contact::name_addr)
                .map(contact_spec)
                .collect(),
        )
    };
    Ok(RegisterRequest {
        aor,
        call_id,
        cseq,
        expires,
        contacts,
        raw: req.encode(),
    })
}

fn contact_spec(na: &NameAddr) -> ContactSpec {
    let uri = na.uri().as_str().to_owned();
    let mut value = String::with_capacity(na.as_str().len() + 2);
    value.push('<');
    value.push_str(&uri);
    value.push('>');
    let mut params = Vec::with_capacity(na.params().len());
    for (n, v) in na.params().iter() {
        if n.eq_ignore_ascii_case("expires") {
            continue;
        }
        value.push(';');
        value.push_str(n);
        if let Some(v) = v {
            value.push('=');
            value.push_str(v);
        }
        params.push((n.to_owned(), v.map(str::to_owned)));
    }
    ContactSpec {
        uri,
        value,
        expires: na.expires(),
        instance: na.sip_instance().map(std::borrow::Cow::into_owned),
        reg_id: na.reg_id(),
        params,
    }
}

/// RFC 3261 §10.3 step 2: every option tag in `Require` must be supported.
pub(crate) fn check_require(req: &Request, supported: &[String]) -> Result<(), Error> {
    for tag in req.headers().require()? {
        if !supported.iter().any(|s| s.eq_ignore_ascii_case(tag)) {
            return Err(Error::BadExtension(tag.to_owned()));
        }
    }
    Ok(())
}

/// `(Call-ID, CSeq number)` of a response.
pub(crate) fn response_call_id_cseq(resp: &Response) -> Option<(String, u32)> {
    let call_id = call_id_of(resp.headers()).ok()?;
    let (n, _) = cseq_of(resp.headers()).ok()?;
    Some((call_id, n))
}

/// `(Call-ID, From tag)` of a response (identifies the notifier's dialog).
pub(crate) fn response_dialog(resp: &Response) -> Option<(String, String)> {
    let call_id = call_id_of(resp.headers()).ok()?;
    let tag = resp.headers().from().ok()?.tag()?.to_owned();
    Some((call_id, tag))
}

/// Expires of a response.
pub(crate) fn expires_of(resp: &Response) -> Option<u32> {
    resp.headers().expires().ok().flatten()
}

/// To tag of a response.
pub(crate) fn to_tag_of(resp: &Response) -> Option<String> {
    resp.headers().to().ok()?.tag().map(str::to_owned)
}

/// What the notifier needs from a SUBSCRIBE.
pub(crate) struct SubscribeDialog {
    pub(crate) request_uri: String,
    pub(crate) event: String,
    pub(crate) expires: Option<u32>,
    pub(crate) call_id: String,
    pub(crate) to: String,
    pub(crate) to_tag: Option<String>,
    pub(crate) from: String,
    pub(crate) contact: Option<String>,
}

pub(crate) fn subscribe_dialog(req: &Request) -> Result<SubscribeDialog, Error> {
    if *req.method() != Method::Subscribe {
        return Err(Error::ApiMisuse("not a SUBSCRIBE request"));
    }
    let h = req.headers();
    let event = h.event()?.ok_or(Error::MissingHeader("Event"))?;
    let from = h.from()?;
    if from.tag().is_none() {
        return Err(Error::InvalidHeader {
            header: "From",
            reason: "missing tag",
        });
    }
    let to = h.to()?;
    let contact = h
        .contacts()?
        .first()
        .and_then(Contact::uri)
        .map(|u| u.as_str().to_owned());
    Ok(SubscribeDialog {
        request_uri: req.uri().as_str().to_owned(),
        event: event.package().to_owned(),
        expires: h.expires()?,
        call_id: call_id_of(h)?,
        to_tag: to.tag().map(str::to_owned),
        to: to.as_str().trim().to_owned(),
        from: from.as_str().trim().to_owned(),
        contact,
    })
}

/// What the subscriber needs from a NOTIFY.
pub(crate) struct NotifyParts {
    pub(crate) event: String,
    pub(crate) call_id: String,
    pub(crate) from_tag: Option<String>,
    pub(crate) terminated: bool,
    pub(crate) body: Option<Bytes>,
}

pub(crate) fn notify_parts(req: &Request) -> Result<NotifyParts, Error> {
    if *req.method() != Method::Notify {
        return Err(Error::ApiMisuse("not a NOTIFY request"));
    }
    let h = req.headers();
    let event = h.event()?.ok_or(Error::MissingHeader("Event"))?;
    let state = h
        .subscription_state()?
        .ok_or(Error::MissingHeader("Subscription-State"))?;
    let body = req.body();
    let body = if body.is_empty() {
        None
    } else {
        let ct = h
            .content_type()?
            .ok_or(Error::MissingHeader("Content-Type"))?;
        if !ct.is("application", "reginfo+xml") {
            return Err(Error::UnsupportedMediaType);
        }
        Some(body)
    };
    Ok(NotifyParts {
        event: event.package().to_owned(),
        call_id: call_id_of(h)?,
        from_tag: h.from()?.tag().map(str::to_owned),
        terminated: state.state().eq_ignore_ascii_case("terminated"),
        body,
    })
}

/// A third-party REGISTER as the MCPTT server sees it.
pub(crate) struct ThirdPartyIn {
    pub(crate) impu: String,
    pub(crate) expires: u32,
    pub(crate) embedded: RegisterRequest,
}

pub(crate) fn extract_third_party(
    req: &Request,
    limits: &mcptt_sip::Limits,
) -> Result<ThirdPartyIn, Error> {
    if *req.method() != Method::Register {
        return Err(Error::ApiMisuse("not a REGISTER request"));
    }
    let h = req.headers();
    let impu = aor_of(h)?;
    let ct = h
        .content_type()?
        .ok_or(Error::InvalidBody("no message/sip body"))?;
    if !ct.is("message", "sip") {
        return Err(Error::UnsupportedMediaType);
    }
    let embedded = mcptt_sip::Message::parse_with(req.body(), limits)?
        .into_request()
        .ok_or(Error::InvalidBody("message/sip body is not a request"))?;
    let embedded = extract_register(&embedded).map_err(|e| match e {
        Error::ApiMisuse(_) => Error::InvalidBody("message/sip body is not a REGISTER"),
        e => e,
    })?;
    let expires = match h.expires()? {
        Some(e) => e,
        None => embedded.expires.ok_or(Error::MissingHeader("Expires"))?,
    };
    Ok(ThirdPartyIn {
        impu,
        expires,
        embedded,
    })
}

// ---------------------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------------------

/// A response with no extra headers; falls back to a bare status line should the request's
/// own headers not re-encode.
pub(crate) fn plain_response(req: &Request, code: u16) -> Response {
    Response::from_request(req, code)
}

/// The error response for `e` (RFC 3261 §10.3: 423 carries Min-Expires).
pub(crate) fn error_response(req: &Request, e: &Error) -> Response {
    let code = e.status_code().unwrap_or(500);
    let b = Response::builder_for(req, code);
    let b = match e {
        Error::IntervalTooBrief { min_expires } => b.header("Min-Expires", min_expires),
        Error::BadEvent => b.header("Allow-Events", "reg"),
        Error::StoreUnavailable(_) => b.header("Retry-After", Error::RETRY_AFTER_SECS),
        Error::BadExtension(tag) => b.header("Unsupported", tag),
        Error::UnsupportedMediaType => b.header("Accept", "message/sip, application/reginfo+xml"),
        _ => b,
    };
    b.build()
        .unwrap_or_else(|_| Response::from_request(req, code))
}

/// 200 OK to a REGISTER listing the current bindings (RFC 3261 §10.3 step 8).
pub(crate) fn register_ok(req: &Request, contacts: &[String], to_tag: &str) -> Response {
    let mut b = Response::builder_for(req, 200).to_tag(to_tag);
    for c in contacts {
        b = b.header("Contact", c);
    }
    b.build()
        .unwrap_or_else(|_| Response::from_request(req, 200))
}

/// 200 OK to a SUBSCRIBE.
pub(crate) fn subscribe_ok(req: &Request, to_tag: &str, expires: u32, contact: &str) -> Response {
    Response::builder_for(req, 200)
        .to_tag(to_tag)
        .header("Expires", expires)
        .header("Contact", format_args!("<{contact}>"))
        .build()
        .unwrap_or_else(|_| Response::from_request(req, 200))
}

/// Parameters of a third-party REGISTER (DESIGN.md §3).
pub(crate) struct ThirdParty<'a> {
    pub(crate) application_server: &'a str,
    pub(crate) core_uri: &'a str,
    pub(crate) aor: &'a str,
    pub(crate) call_id: &'a str,
    pub(crate) cseq: u32,
    pub(crate) expires: u32,
    pub(crate) branch: &'a str,
    pub(crate) tag: &'a str,
    pub(crate) body: Bytes,
}

fn via(core_uri: &str, branch: &str) -> Result<String, Error> {
    let u = Uri::parse(core_uri)?;
    Ok(format!(
        "SIP/2.0/TLS {};branch=z9hG4bK{branch}",
        u.host_port()
    ))
}

/// To = the registered identity, From/Contact = the SIP core, Expires = the binding's,
/// `Content-Type: message/sip`, body = the UE's REGISTER as received.
pub(crate) fn third_party_register(p: &ThirdParty<'_>) -> Result<Request, Error> {
    let uri = Uri::parse(p.application_server)?;
    Ok(Request::builder(Method::Register, uri)
        .header("Via", via(p.core_uri, p.branch)?)
        .header("Max-Forwards", 70)
        .header("From", format_args!("<{}>;tag={}", p.core_uri, p.tag))
        .header("To", format_args!("<{}>", p.aor))
        .header("Call-ID", p.call_id)
        .header("CSeq", format_args!("{} REGISTER", p.cseq))
        .header("Contact", format_args!("<{}>", p.core_uri))
        .header("Expires", p.expires)
        .body("message/sip", p.body.clone())
        .build()?)
}

/// Parameters of an in-dialog NOTIFY.
pub(crate) struct Notify<'a> {
    pub(crate) target: &'a str,
    pub(crate) from: &'a str,
    pub(crate) to: &'a str,
    pub(crate) call_id: &'a str,
    pub(crate) cseq: u32,
    pub(crate) subscription_state: &'a str,
    pub(crate) contact: &'a str,
    pub(crate) branch: &'a str,
    pub(crate) body: String,
}

pub(crate) fn notify(p: &Notify<'_>) -> Result<Request, Error> {
    let uri = Uri::parse(p.target)?;
    Ok(Request::builder(Method::Notify, uri)
        .header("Via", via(p.contact, p.branch)?)
        .header("Max-Forwards", 70)
        .header("From", p.from)
        .header("To", p.to)
        .header("Call-ID", p.call_id)
        .header("CSeq", format_args!("{} NOTIFY", p.cseq))
        .header("Contact", format_args!("<{}>", p.contact))
        .header("Event", "reg")
        .header("Subscription-State", p.subscription_state)
        .body(crate::reginfo::CONTENT_TYPE, p.body.clone())
        .build()?)
}

/// Parameters of a reg event SUBSCRIBE.
pub(crate) struct Subscribe<'a> {
    pub(crate) impu: &'a str,
    pub(crate) target: &'a str,
    pub(crate) server_uri: &'a str,
    pub(crate) call_id: &'a str,
    pub(crate) local_tag: &'a str,
    pub(crate) remote_tag: Option<&'a str>,
    pub(crate) cseq: u32,
    pub(crate) expires: u32,
    pub(crate) branch: &'a str,
}

pub(crate) fn subscribe(p: &Subscribe<'_>) -> Result<Request, Error> {
    // RFC 3680 §4.1: the Request-URI is the AoR; the request is routed to the registrar.
    let uri = Uri::parse(p.impu)?;
    let to = match p.remote_tag {
        Some(t) => format!("<{}>;tag={t}", p.impu),
        None => format!("<{}>", p.impu),
    };
    Ok(Request::builder(Method::Subscribe, uri)
        .header("Via", via(p.server_uri, p.branch)?)
        .header("Max-Forwards", 70)
        .header("Route", format_args!("<{};lr>", p.target))
        .header(
            "From",
            format_args!("<{}>;tag={}", p.server_uri, p.local_tag),
        )
        .header("To", to)
        .header("Call-ID", p.call_id)
        .header("CSeq", format_args!("{} SUBSCRIBE", p.cseq))
        .header("Contact", format_args!("<{}>", p.server_uri))
        .header("Event", "reg")
        .header("Accept", crate::reginfo::CONTENT_TYPE)
        .header("Expires", p.expires)
        .build()?)
}
