//! The boundary with `mcptt-sip`: extracting what this crate needs from parsed messages and
//! building the messages it sends. Everything SIP-syntax related lives here.

use bytes::Bytes;
use mcptt_sip::{Contact, Limits, Message, Method, NameAddr, Request, Response, Uri};

use crate::error::Error;
use crate::identity::{canonical_aor, canonical_aor_is};
use crate::request::{ContactRead, ContactsKind, RegisterRead};
#[cfg(test)]
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
    call_id_str(headers).map(str::to_owned)
}

/// The trimmed Call-ID, borrowed.
fn call_id_str(headers: &mcptt_sip::Headers) -> Result<&str, Error> {
    Ok(headers
        .call_id()
        .ok_or(Error::MissingHeader("Call-ID"))?
        .trim())
}

fn aor_of(headers: &mcptt_sip::Headers) -> Result<String, Error> {
    read_aor(headers, canonical_aor)
}

/// `read` of the To URI ([`Error::InvalidAor`] when it gives `None`).
fn read_aor<A>(
    headers: &mcptt_sip::Headers,
    read: impl FnOnce(&str) -> Option<A>,
) -> Result<A, Error> {
    let to = headers.to()?;
    read(to.uri().as_str()).ok_or(Error::InvalidAor)
}

// ---------------------------------------------------------------------------------------
// Extraction
// ---------------------------------------------------------------------------------------

/// The Contacts of a REGISTER as parsed (no copies).
pub(crate) enum ParsedContacts {
    /// No Contact.
    Fetch,
    /// `Contact: *` alone.
    Star,
    /// The parsed Contact values (`*` is not among them); those that are not a name-addr
    /// are skipped by [`ParsedContacts::name_addrs`], as [`extract_register`] skips them.
    List(Vec<Contact>),
}

impl ParsedContacts {
    /// The Contacts that are name-addrs, in order (none for `Fetch` and `Star`).
    pub(crate) fn name_addrs(&self) -> impl Iterator<Item = &NameAddr> {
        match self {
            Self::List(values) => values.as_slice(),
            Self::Fetch | Self::Star => &[],
        }
        .iter()
        .filter_map(Contact::name_addr)
    }
}

/// A REGISTER after the checks of [`extract_register`], its Call-ID borrowed and its
/// Contacts as parsed: what [`extract_register`] copies into a [`RegisterRequest`]. `A`
/// is what was read of the address-of-record: the canonical form, or whether it is one
/// expected.
pub(crate) struct RegisterParts<'a, A = String> {
    pub(crate) aor: A,
    pub(crate) call_id: &'a str,
    pub(crate) cseq: u32,
    pub(crate) expires: Option<u32>,
    pub(crate) contacts: ParsedContacts,
}

/// The checks and parts of a REGISTER (RFC 3261 §10.3 steps 5–6 syntax checks).
pub(crate) fn register_parts(req: &Request) -> Result<RegisterParts<'_>, Error> {
    register_parts_with(req, canonical_aor)
}

/// [`register_parts`] reading the address-of-record (the To URI) with `read_to`
/// ([`Error::InvalidAor`] when it gives `None`).
fn register_parts_with<A>(
    req: &Request,
    read_to: impl FnOnce(&str) -> Option<A>,
) -> Result<RegisterParts<'_, A>, Error> {
    if *req.method() != Method::Register {
        return Err(Error::ApiMisuse("not a REGISTER request"));
    }
    let h = req.headers();
    let aor = read_aor(h, read_to)?;
    let call_id = call_id_str(h)?;
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
        ParsedContacts::Fetch
    } else if values.iter().any(Contact::is_star) {
        // RFC 3261 §10.3 step 6: `*` must be the only Contact.
        if values.len() != 1 {
            return Err(Error::InvalidHeader {
                header: "Contact",
                reason: "`*` mixed with other contacts",
            });
        }
        ParsedContacts::Star
    } else {
        ParsedContacts::List(values)
    };
    Ok(RegisterParts {
        aor,
        call_id,
        cseq,
        expires,
        contacts,
    })
}

/// Extracts a REGISTER (RFC 3261 §10.3 steps 5–6 syntax checks) into the owned form: the
/// reference the registrar's path from a parsed message ([`parsed_register`]) is tested
/// against.
#[cfg(test)]
pub(crate) fn extract_register(req: &Request) -> Result<RegisterRequest, Error> {
    let parts = register_parts(req)?;
    let contacts = match &parts.contacts {
        ParsedContacts::Fetch => Contacts::Fetch,
        ParsedContacts::Star => Contacts::Star,
        ParsedContacts::List(_) => {
            Contacts::List(parts.contacts.name_addrs().map(contact_spec).collect())
        }
    };
    Ok(RegisterRequest {
        aor: parts.aor,
        call_id: parts.call_id.to_owned(),
        cseq: parts.cseq,
        expires: parts.expires,
        contacts,
        raw: req.encode(),
    })
}

/// The owned Contact, as the registrar read it before it read parsed Contacts in place
/// (kept as written then: the reference of [`ContactRead`] for [`NameAddr`]).
#[cfg(test)]
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

/// A parsed Contact read in place: what [`contact_spec`] copies.
impl ContactRead for NameAddr {
    fn uri(&self) -> &str {
        Self::uri(self).as_str()
    }

    fn expires(&self) -> Option<u32> {
        Self::expires(self)
    }

    fn instance(&self) -> Option<std::borrow::Cow<'_, str>> {
        self.sip_instance()
    }

    fn reg_id(&self) -> Option<u32> {
        Self::reg_id(self)
    }

    fn params(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        Self::params(self)
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("expires"))
    }

    fn write_value(&self, out: &mut String) {
        let uri = Self::uri(self).as_str();
        out.clear();
        out.reserve(self.as_str().len() + 2);
        out.push('<');
        out.push_str(uri);
        out.push('>');
        for (n, v) in ContactRead::params(self) {
            out.push(';');
            out.push_str(n);
            if let Some(v) = v {
                out.push('=');
                out.push_str(v);
            }
        }
    }
}

/// A REGISTER read from the parsed message: its [`RegisterParts`] and bytes (what
/// [`extract_register`] copies into a [`RegisterRequest`]).
pub(crate) struct ParsedRegister<'a> {
    pub(crate) parts: RegisterParts<'a>,
    pub(crate) raw: Bytes,
}

/// [`extract_register`] without the copies: the registrar's path from a parsed message.
pub(crate) fn parsed_register(req: &Request) -> Result<ParsedRegister<'_>, Error> {
    Ok(ParsedRegister {
        parts: register_parts(req)?,
        raw: req.encode(),
    })
}

impl RegisterRead for ParsedRegister<'_> {
    type Contact = NameAddr;

    fn aor(&self) -> &str {
        &self.parts.aor
    }

    fn call_id(&self) -> &str {
        self.parts.call_id
    }

    fn cseq(&self) -> u32 {
        self.parts.cseq
    }

    fn expires(&self) -> Option<u32> {
        self.parts.expires
    }

    fn raw(&self) -> &Bytes {
        &self.raw
    }

    fn kind(&self) -> ContactsKind {
        match self.parts.contacts {
            ParsedContacts::Fetch => ContactsKind::Fetch,
            ParsedContacts::Star => ContactsKind::Star,
            ParsedContacts::List(_) => ContactsKind::List,
        }
    }

    fn contacts(&self) -> impl Iterator<Item = &NameAddr> {
        self.parts.contacts.name_addrs()
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
pub(crate) fn response_call_id_cseq(resp: &Response) -> Option<(&str, u32)> {
    let call_id = call_id_str(resp.headers()).ok()?;
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
    /// Whether the embedded REGISTER's address-of-record is `impu`.
    pub(crate) same_aor: bool,
    /// The embedded REGISTER's Contacts.
    pub(crate) contacts: ParsedContacts,
}

pub(crate) fn extract_third_party(req: &Request, limits: &Limits) -> Result<ThirdPartyIn, Error> {
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
    let embedded = Message::parse_with(req.body(), limits)?
        .into_request()
        .ok_or(Error::InvalidBody("message/sip body is not a request"))?;
    // (The embedded REGISTER's checks, without copying its Contacts into ContactSpecs: the
    // view needs only their URI, instance and expiry.)
    let embedded =
        register_parts_with(&embedded, |to| canonical_aor_is(to, &impu)).map_err(|e| match e {
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
        same_aor: embedded.aor,
        contacts: embedded.contacts,
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

/// The limits a message this crate wrote itself is re-parsed with: none, as `mcptt-sip`'s
/// builders do (the fast paths below must accept exactly what the builders accept).
const OWN: Limits = Limits::NONE;

/// Whether a builder would write `v` as is: no CR or LF (it refuses those) and no leading
/// or trailing space or tab (it trims those).
fn written_as_is(v: &str) -> bool {
    let b = v.as_bytes();
    let edge = |c: Option<&u8>| matches!(c, Some(b' ' | b'\t'));
    memchr::memchr2(b'\r', b'\n', b).is_none() && !edge(b.first()) && !edge(b.last())
}

/// The Contact lines of a REGISTER's 200 OK (`Contact: VALUE;expires=N` CRLF each),
/// written once into one buffer as the registrar lists the bindings.
#[derive(Debug, Default)]
pub(crate) struct ContactLines {
    text: Vec<u8>,
    /// Where each contact value (with its `;expires=`) sits in `text`.
    values: Vec<(usize, usize)>,
    /// Some value is not [`written_as_is`]: the response goes through the builder.
    odd: bool,
}

impl ContactLines {
    /// Whether no contact is listed.
    pub(crate) fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The contact values, as [`register_ok`] takes them.
    fn values(&self) -> Vec<String> {
        self.values
            .iter()
            .map(|&(a, b)| {
                String::from_utf8_lossy(self.text.get(a..b).unwrap_or_default()).into_owned()
            })
            .collect()
    }
}

impl crate::registrar::Listing for ContactLines {
    fn clear(&mut self) {
        self.text.clear();
        self.values.clear();
        self.odd = false;
    }

    fn add(&mut self, contact: &str, expires: u32) {
        self.text.extend_from_slice(b"Contact: ");
        let start = self.text.len();
        self.text.extend_from_slice(contact.as_bytes());
        self.text.extend_from_slice(b";expires=");
        push_decimal(&mut self.text, u64::from(expires));
        self.values.push((start, self.text.len()));
        self.text.extend_from_slice(b"\r\n");
        self.odd |= !written_as_is(contact);
    }
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends `n` as 16 lower-case hex digits (as `format!("{n:016x}")`).
pub(crate) fn push_hex16(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(&hex16(n));
}

/// `n` as 16 lower-case hex digits (as `format!("{n:016x}")`).
pub(crate) fn hex16(n: u64) -> [u8; 16] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0; 16];
    for (k, d) in out.iter_mut().rev().enumerate() {
        *d = HEX[((n >> (k * 4)) & 0xf) as usize];
    }
    out
}

/// Whether [`Response::encode_head_for`] with a To tag writes the head of `req` exactly as
/// [`Response::builder_for`] and `to_tag` do: one `To` line, written `To`, without a `tag`
/// (the builder renames a `t`/`TO` line, drops a second one and adds no tag to a To that
/// has one; the other copied lines are the same in both).
fn to_as_builder(req: &Request) -> bool {
    let mut tos = req.headers().iter().filter(|(n, _)| {
        n.len() <= 2 && (n.eq_ignore_ascii_case("to") || n.eq_ignore_ascii_case("t"))
    });
    let Some((name, value)) = tos.next() else {
        return false;
    };
    let v = value.as_bytes();
    name == "To"
        && tos.next().is_none()
        && !memchr::memchr2_iter(b't', b'T', v).any(|i| {
            v.get(i..i + 3)
                .is_some_and(|w| w.eq_ignore_ascii_case(b"tag"))
        })
}

/// [`register_ok`] with the Contact lines written once: the head is copied from the request
/// ([`Response::encode_head_for`]) and the lines appended in one buffer, parsed once. The
/// bytes are those of [`register_ok`] (the builder): requests for which they might not be
/// (see `to_as_builder`, [`ContactLines`]) go through it.
pub(crate) fn register_ok_lines(req: &Request, contacts: &ContactLines, to_tag: &str) -> Response {
    let tag_is_token = !to_tag.is_empty() && to_tag.bytes().all(|b| b.is_ascii_alphanumeric());
    if !contacts.odd && tag_is_token && to_as_builder(req) {
        let mut out = Vec::new();
        Response::encode_head_for(req, 200, Some(to_tag), &mut out);
        out.extend_from_slice(&contacts.text);
        out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
        if let Some(resp) = Message::parse_with(Bytes::from(out), &OWN)
            .ok()
            .and_then(Message::into_response)
        {
            return resp;
        }
    }
    register_ok(req, &contacts.values(), to_tag)
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

/// What [`third_party_register_fast`] writes for a registrar, prepared once: the request
/// line for each filter's application server and the start of the `Via`.
#[derive(Debug, Default)]
pub(crate) struct ThirdPartyLines {
    /// `REGISTER uri SIP/2.0` CRLF per filter (`None`: the URI does not parse).
    request_lines: Vec<Option<Vec<u8>>>,
    /// `Via: SIP/2.0/TLS host:port;branch=z9hG4bK` (`None`: the core URI does not parse,
    /// or is not written as is).
    via: Option<Vec<u8>>,
    /// `From: <core_uri>;tag=` (`None` as `via`).
    from: Option<Vec<u8>>,
    /// `Contact: <core_uri>` CRLF.
    contact: Vec<u8>,
}

impl ThirdPartyLines {
    /// Prepares the lines of `application_servers` (one per filter) and `core_uri`.
    pub(crate) fn new<'a>(
        application_servers: impl Iterator<Item = &'a str>,
        core_uri: &str,
    ) -> Self {
        let request_lines = application_servers
            .map(|a| {
                let uri = Uri::parse(a).ok()?;
                Some(format!("REGISTER {uri} SIP/2.0\r\n").into_bytes())
            })
            .collect();
        let core_ok = written_as_is(core_uri);
        let via = Uri::parse(core_uri)
            .ok()
            .filter(|_| core_ok)
            .map(|u| format!("Via: SIP/2.0/TLS {};branch=z9hG4bK", u.host_port()).into_bytes());
        let from = via
            .as_ref()
            .map(|_| format!("Max-Forwards: 70\r\nFrom: <{core_uri}>;tag=").into_bytes());
        let contact = format!("Contact: <{core_uri}>\r\n").into_bytes();
        Self {
            request_lines,
            via,
            from,
            contact,
        }
    }
}

/// Parameters of [`third_party_register_fast`]: those of [`ThirdParty`] that change per
/// request, the branch and tag as numbers (written as 16 hex digits, as
/// `SplitMix64::token` does).
pub(crate) struct FastThirdParty<'a> {
    pub(crate) filter: u16,
    pub(crate) aor: &'a str,
    pub(crate) call_id: &'a str,
    pub(crate) cseq: u32,
    pub(crate) expires: u32,
    pub(crate) branch: u64,
    pub(crate) tag: u64,
    pub(crate) body: &'a Bytes,
}

/// [`third_party_register`] written straight into one buffer and parsed once. `None` when
/// the fast path does not apply (a URI that does not parse, a value the builder would trim
/// or refuse): the caller then uses [`third_party_register`], which gives the same bytes or
/// the error.
pub(crate) fn third_party_register_fast(
    lines: &ThirdPartyLines,
    p: &FastThirdParty<'_>,
) -> Option<Request> {
    let FastThirdParty {
        filter,
        aor,
        call_id,
        cseq,
        expires,
        branch,
        tag,
        body,
    } = *p;
    let request_line = lines.request_lines.get(usize::from(filter))?.as_ref()?;
    let (via, from) = (lines.via.as_ref()?, lines.from.as_ref()?);
    if !written_as_is(aor) || !written_as_is(call_id) {
        return None;
    }
    let mut out = Vec::with_capacity(
        request_line.len()
            + via.len()
            + from.len()
            + lines.contact.len()
            + aor.len()
            + call_id.len()
            + 160
            + body.len(),
    );
    out.extend_from_slice(request_line);
    out.extend_from_slice(via);
    push_hex16(&mut out, branch);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(from);
    push_hex16(&mut out, tag);
    out.extend_from_slice(b"\r\nTo: <");
    out.extend_from_slice(aor.as_bytes());
    out.extend_from_slice(b">\r\nCall-ID: ");
    out.extend_from_slice(call_id.as_bytes());
    out.extend_from_slice(b"\r\nCSeq: ");
    push_decimal(&mut out, u64::from(cseq));
    out.extend_from_slice(b" REGISTER\r\n");
    out.extend_from_slice(&lines.contact);
    out.extend_from_slice(b"Expires: ");
    push_decimal(&mut out, u64::from(expires));
    out.extend_from_slice(b"\r\nContent-Type: message/sip\r\nContent-Length: ");
    push_decimal(&mut out, body.len() as u64);
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
    Message::parse_with(Bytes::from(out), &OWN)
        .ok()?
        .into_request()
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::registrar::Listing;

    fn request(text: &str) -> Request {
        Request::parse(Bytes::copy_from_slice(text.as_bytes())).unwrap()
    }

    const PLAIN: &str = "REGISTER sip:example.com SIP/2.0\r\n\
        Via: SIP/2.0/TLS ue.example.com:5061;branch=z9hG4bK1\r\n\
        Via: SIP/2.0/TLS p.example.com;branch=z9hG4bK2;received=10.0.0.1\r\n\
        Max-Forwards: 70\r\n\
        From: <sip:alice@example.com>;tag=a1\r\n\
        To: <sip:alice@example.com>\r\n\
        Call-ID: c1@ue\r\n\
        CSeq: 7 REGISTER\r\n\
        Contact: <sip:alice@ue.example.com:5061;transport=tls>;expires=600\r\n\
        Content-Length: 0\r\n\r\n";

    fn lines(contacts: &[(&str, u32)]) -> ContactLines {
        let mut l = ContactLines::default();
        // a conflict's retry starts over
        l.add("<sip:stale@x>", 1);
        l.clear();
        for (c, e) in contacts {
            l.add(c, *e);
        }
        l
    }

    /// The fast 200 OK is the builder's, byte for byte, whichever path it takes.
    fn same_ok(text: &str, contacts: &[(&str, u32)]) -> Response {
        let req = request(text);
        let l = lines(contacts);
        let listed: Vec<String> = contacts
            .iter()
            .map(|(c, e)| format!("{c};expires={e}"))
            .collect();
        let fast = register_ok_lines(&req, &l, "0123abcd");
        let built = register_ok(&req, &listed, "0123abcd");
        assert_eq!(
            String::from_utf8_lossy(&fast.encode()),
            String::from_utf8_lossy(&built.encode()),
            "for {text:?}"
        );
        fast
    }

    #[test]
    fn register_ok_lines_is_the_builders_response() {
        let two = [
            ("<sip:alice@ue.example.com:5061;transport=tls>", 600),
            (
                "<sip:alice@ue2.example.com>;+sip.instance=\"<urn:uuid:1>\";reg-id=1",
                4_294_967_295,
            ),
        ];
        let resp = same_ok(PLAIN, &two);
        assert!(to_as_builder(&request(PLAIN)));
        assert_eq!(resp.headers().count("Contact"), 2);
        same_ok(PLAIN, &[]);
        same_ok(PLAIN, &[("<sip:a@b>", 0)]);
        // Unusual requests: compact and odd-case names, folding, spacing, a To with a tag,
        // two To lines, a To without angle brackets.
        let variants = [
            PLAIN.replace("To: ", "t: "),
            PLAIN.replace("To: ", "TO: "),
            PLAIN.replace("To: ", "to:   "),
            PLAIN
                .replace("Via: ", "v: ")
                .replace("From: ", "f: ")
                .replace("Call-ID: ", "i: "),
            PLAIN.replace(
                "To: <sip:alice@example.com>",
                "To: <sip:alice@example.com>;tag=x9",
            ),
            PLAIN.replace(
                "To: <sip:alice@example.com>",
                "To: <sip:alice@example.com>;TAG=x9",
            ),
            PLAIN.replace("To: <sip:alice@example.com>", "To: sip:alice@example.com"),
            PLAIN.replace(
                "To: <sip:alice@example.com>",
                "To: \"Tagger\" <sip:tagger@example.com>",
            ),
            PLAIN.replace(
                "To: <sip:alice@example.com>\r\n",
                "To: <sip:alice@example.com>\r\nTo: <sip:bob@example.com>\r\n",
            ),
            PLAIN.replace(";branch=z9hG4bK1\r\n", ";branch=z9hG4bK1\r\n ;rport\r\n"),
            PLAIN.replace(
                "From: <sip:alice@example.com>;tag=a1",
                "From:<sip:alice@example.com> ;tag=a1 ",
            ),
            PLAIN.replace("CSeq: 7 REGISTER", "CSeq:   7    REGISTER\t"),
            PLAIN.replace(
                "Call-ID: c1@ue\r\n",
                "Call-ID: c1@ue\r\nTimestamp: 5\r\nRecord-Route: <sip:p>\r\n",
            ),
        ];
        for v in &variants {
            same_ok(v, &two);
        }
        // Contact values the builder would trim go through it.
        same_ok(PLAIN, &[(" <sip:a@b>", 60), ("<sip:c@d>\t", 60)]);
    }

    const AOR: &str = "sip:alice@example.com";

    #[allow(clippy::too_many_arguments)]
    fn fast_params<'a>(
        filter: u16,
        aor: &'a str,
        call_id: &'a str,
        cseq: u32,
        expires: u32,
        branch: u64,
        tag: u64,
        body: &'a Bytes,
    ) -> FastThirdParty<'a> {
        FastThirdParty {
            filter,
            aor,
            call_id,
            cseq,
            expires,
            branch,
            tag,
            body,
        }
    }

    fn same_third_party(application_server: &str, core_uri: &str, aor: &str, call_id: &str) {
        let body = Bytes::from_static(PLAIN.as_bytes());
        let lines = ThirdPartyLines::new([application_server].into_iter(), core_uri);
        let fast = third_party_register_fast(
            &lines,
            &fast_params(
                0,
                aor,
                call_id,
                2_147_483_647,
                3600,
                0x0123_4567_89ab_cdef,
                7,
                &body,
            ),
        );
        let built = third_party_register(&ThirdParty {
            application_server,
            core_uri,
            aor,
            call_id,
            cseq: 2_147_483_647,
            expires: 3600,
            branch: &format!("{:016x}", 0x0123_4567_89ab_cdef_u64),
            tag: &format!("{:016x}", 7),
            body,
        });
        match (fast, built) {
            (Some(f), Ok(b)) => assert_eq!(f.encode(), b.encode()),
            // The fast path may decline; the builder then decides.
            (None, _) => {}
            (Some(f), Err(e)) => panic!("fast path built {f:?} where the builder failed: {e}"),
        }
    }

    #[test]
    fn third_party_register_fast_is_the_builders_request() {
        let body = Bytes::from_static(PLAIN.as_bytes());
        let lines = ThirdPartyLines::new(
            ["sip:mcptt.example.com:5061;transport=tls"].into_iter(),
            "sip:scscf.example.com:5061",
        );
        let fast =
            third_party_register_fast(&lines, &fast_params(0, AOR, "x-3pr", 1, 600, 1, 2, &body))
                .unwrap();
        assert_eq!(fast.body(), body);
        assert_eq!(fast.headers().get("CSeq"), Some("1 REGISTER"));
        // A filter that does not exist: no request.
        assert!(
            third_party_register_fast(&lines, &fast_params(1, AOR, "x-3pr", 1, 600, 1, 2, &body))
                .is_none()
        );
        for (application_server, core_uri) in [
            (
                "sip:mcptt.example.com:5061;transport=tls",
                "sip:scscf.example.com:5061",
            ),
            ("sips:MCPTT.example.com", "sip:scscf.example.com"),
            ("sip:as@[::1]:5070", "sip:[::1]:5060;lr"),
            ("sip:127.0.0.1:5070", "sip:user@127.0.0.1"),
            ("not a uri", "sip:scscf.example.com"),
            ("sip:mcptt.example.com", "not a uri"),
            ("sip:mcptt.example.com", " sip:scscf.example.com"),
        ] {
            for (aor, call_id) in [
                (AOR, "0123456789abcdef-12-3pr"),
                ("tel:+123", "c"),
                (" sip:padded@example.com ", "c "),
            ] {
                same_third_party(application_server, core_uri, aor, call_id);
            }
        }
        // The plain case takes the fast path.
        let lines =
            ThirdPartyLines::new(["sip:as.example.com"].into_iter(), "sip:core.example.com");
        assert!(
            third_party_register_fast(&lines, &fast_params(0, AOR, "c", 1, 0, 1, 2, &body))
                .is_some()
        );
        assert!(
            third_party_register_fast(
                &lines,
                &fast_params(0, "sip:a\r\nb", "c", 1, 0, 1, 2, &body)
            )
            .is_none()
        );
    }

    #[test]
    fn decimals_and_hex_match_format() {
        for n in [0, 1, 9, 10, 99, 100, 4_294_967_295, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
            out.clear();
            push_hex16(&mut out, n);
            assert_eq!(out, format!("{n:016x}").into_bytes());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod parts_tests {
    use super::*;
    use proptest::prelude::*;

    /// What the MCPTT server's view reads from each Contact of the parts: what it read from
    /// the copied [`ContactSpec`]s.
    fn same_parts(text: &str) {
        let Ok(req) = Request::parse(Bytes::copy_from_slice(text.as_bytes())) else {
            return;
        };
        match (register_parts(&req), extract_register(&req)) {
            (Ok(p), Ok(r)) => {
                assert_eq!(p.aor, r.aor);
                assert_eq!(p.call_id, r.call_id);
                assert_eq!((p.cseq, p.expires), (r.cseq, r.expires));
                let read: Vec<_> = p
                    .contacts
                    .name_addrs()
                    .map(|na| {
                        (
                            na.uri().as_str().to_owned(),
                            na.sip_instance().map(std::borrow::Cow::into_owned),
                            na.expires(),
                        )
                    })
                    .collect();
                match (&p.contacts, &r.contacts) {
                    (ParsedContacts::Fetch, Contacts::Fetch)
                    | (ParsedContacts::Star, Contacts::Star) => assert!(read.is_empty()),
                    (ParsedContacts::List(_), Contacts::List(list)) => {
                        let copied: Vec<_> = list
                            .iter()
                            .map(|c| (c.uri.clone(), c.instance.clone(), c.expires))
                            .collect();
                        assert_eq!(read, copied, "for {text:?}");
                    }
                    _ => panic!("different Contacts kinds for {text:?}"),
                }
            }
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            (a, b) => panic!(
                "parts {:?} vs extraction {:?} for {text:?}",
                a.map(|p| p.aor),
                b.map(|r| r.aor)
            ),
        }
    }

    fn register(contacts: &str, expires: &str) -> String {
        format!(
            "REGISTER sip:example.com SIP/2.0\r\n\
             Via: SIP/2.0/TLS ue.example.com;branch=z9hG4bK1\r\n\
             From: <sip:alice@example.com>;tag=1\r\n\
             To: <sip:Alice@EXAMPLE.com>\r\n\
             Call-ID:  c1@ue \r\n\
             CSeq: 3 REGISTER\r\n\
             {contacts}{expires}Content-Length: 0\r\n\r\n"
        )
    }

    #[test]
    fn parts_read_as_the_extraction() {
        for contacts in [
            "",
            "Contact: *\r\n",
            "Contact: *, <sip:a@b>\r\n",
            "Contact: <sip:a@b>\r\n",
            "Contact: <sip:a@b;transport=tls>;+sip.instance=\"<urn:uuid:1>\";reg-id=1;expires=0\r\n",
            "Contact: \"A\" <sip:a@b>;expires=60, <sip:c@d>;+sip.instance=<x>\r\nContact: sip:e@f;q=0.5\r\n",
            "Contact: <sip:a@b>;expires=junk;+g.3gpp.mcptt\r\n",
        ] {
            for expires in ["", "Expires: 0\r\n", "Expires: 3600\r\n"] {
                same_parts(&register(contacts, expires));
            }
        }
        same_parts(&register("", "").replace("CSeq: 3 REGISTER", "CSeq: 3 INVITE"));
        same_parts(&register("", "").replace("REGISTER sip:", "OPTIONS sip:"));
        same_parts(&register("", "").replace("CSeq: 3", "CSeq: 2147483648"));
        same_parts(&register("", "").replace("To: <sip:Alice@EXAMPLE.com>", "To: <http://x>"));
    }

    proptest! {
        #[test]
        fn parts_read_as_the_extraction_on_any_contact(
            contact in "[<>\"a-zA-Z0-9:;@=+.,* -]{0,60}",
            expires in proptest::option::of(0u32..100_000),
        ) {
            let expires = expires.map_or(String::new(), |e| format!("Expires: {e}\r\n"));
            same_parts(&register(&format!("Contact: {contact}\r\n"), &expires));
        }
    }
}
