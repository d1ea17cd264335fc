//! Helpers: a virtual clock and message builders.

use std::time::{Duration, Instant};

use bytes::Bytes;
use mcptt_registration::{FilterCriteria, IdentityMap, Registrar, RegistrarConfig};
use mcptt_sip::{Message, Request, Response};

pub(crate) const PEER: &str = "ue1.example.com";
pub(crate) const AOR: &str = "sip:alice@example.com";
pub(crate) const CORE: &str = "sip:scscf.example.com";
pub(crate) const AS_URI: &str = "sip:mcptt-as.example.com";
pub(crate) const SERVER_PEER: &str = "mcptt-as.example.com";
pub(crate) const CORE_PEER: &str = "scscf.example.com";

/// A virtual monotonic clock: one real `Instant` as origin, then only additions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    origin: Instant,
    pub(crate) offset: Duration,
}

impl Clock {
    #[allow(clippy::disallowed_methods)] // the single origin of the virtual clock
    pub(crate) fn new() -> Self {
        Self {
            origin: Instant::now(),
            offset: Duration::ZERO,
        }
    }
    pub(crate) fn now(&self) -> Instant {
        self.origin + self.offset
    }
    pub(crate) fn advance(&mut self, secs: u64) -> Instant {
        self.offset += Duration::from_secs(secs);
        self.now()
    }
}

pub(crate) fn config() -> RegistrarConfig {
    RegistrarConfig {
        identities: IdentityMap::new()
            .allow(PEER, AOR)
            .allow(PEER, "sip:alice-2@example.com")
            .allow("ue2.example.com", "sip:bob@example.com"),
        filters: vec![FilterCriteria::mcptt(AS_URI)],
        core_uri: CORE.into(),
        min_expires: 60,
        max_expires: 3600,
        default_expires: 1800,
        max_bindings_per_aor: 4,
        ..RegistrarConfig::default()
    }
}

pub(crate) fn registrar() -> Registrar {
    Registrar::new(config(), 7)
}

pub(crate) fn parse_request(text: &str) -> Request {
    Message::parse(Bytes::from(text.replace('\n', "\r\n")))
        .expect("test message parses")
        .into_request()
        .expect("a request")
}

pub(crate) fn parse_response(bytes: Bytes) -> Response {
    Message::parse(bytes).unwrap().into_response().unwrap()
}

/// A MCPTT UE contact (DESIGN.md §3) for instance `n`.
pub(crate) fn ue_contact(n: u32, extra: &str) -> String {
    format!(
        "<sip:alice@192.0.2.{n}:5061;transport=tls>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-00000000000{n}>\";+g.3gpp.mcptt;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.mcptt\"{extra}"
    )
}

/// A REGISTER for `to` with the given Call-ID, CSeq, Contact values and Expires header.
pub(crate) fn register(
    to: &str,
    call_id: &str,
    cseq: u32,
    contacts: &[String],
    expires: Option<u32>,
) -> Request {
    let mut t = format!(
        "REGISTER sip:example.com SIP/2.0\nVia: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bK{call_id}{cseq}\nMax-Forwards: 70\nFrom: <{to}>;tag=ft\nTo: <{to}>\nCall-ID: {call_id}\nCSeq: {cseq} REGISTER\n"
    );
    for c in contacts {
        t.push_str(&format!("Contact: {c}\n"));
    }
    if let Some(e) = expires {
        t.push_str(&format!("Expires: {e}\n"));
    }
    t.push_str("Content-Length: 0\n\n");
    parse_request(&t)
}

/// The Contact header values of a response.
pub(crate) fn contacts_of(r: &Response) -> Vec<String> {
    r.headers().values("Contact").map(str::to_owned).collect()
}

/// `expires=` of each listed contact.
pub(crate) fn listed_expiries(r: &Response) -> Vec<u32> {
    contacts_of(r)
        .iter()
        .filter_map(|c| c.rsplit_once("expires=").and_then(|(_, v)| v.parse().ok()))
        .collect()
}
