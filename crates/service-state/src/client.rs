//! The UE side: the PUBLISH client ([`Publisher`]) and the service-state subscriber
//! ([`Subscriber`]), sans-IO.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::body::{McpttInfo, PocSettings, PublishBody, SERVICE_STATE_CONTENT_TYPE, ServiceState};
use crate::error::Error;
use crate::model::{Random, random_token};
use crate::server::{POC_SETTINGS_EVENT, SERVICE_STATE_EVENT, Transmit};
use crate::sip::{Answer, Ids};
use mcptt_sip::{KnownHeader, Method, Request, RequestBuilder, Response};

/// Identity and addressing of the UE for its PUBLISH and SUBSCRIBE requests.
#[derive(Debug, Clone)]
pub struct UeConfig {
    /// The UE's public user identity (From and To).
    pub impu: String,
    /// The UE's Contact URI (SUBSCRIBE; the NOTIFY target).
    pub contact: String,
    /// Via sent-by host (and port) of the UE.
    pub host: String,
    /// Via transport (`TLS`, `TCP`).
    pub transport: String,
    /// The MCPTT server's public service identity (Request-URI).
    pub service_uri: String,
    /// Outbound route (e.g. the SIP core's service route), added as `Route` headers.
    pub route: Vec<String>,
}

impl UeConfig {
    /// A configuration for `impu` talking to `service_uri`, with contact and host derived.
    #[must_use]
    pub fn new(
        impu: impl Into<String>,
        host: impl Into<String>,
        service_uri: impl Into<String>,
    ) -> Self {
        let host = host.into();
        Self {
            impu: impu.into(),
            contact: format!("sip:{host};transport=tls"),
            host,
            transport: "TLS".into(),
            service_uri: service_uri.into(),
            route: Vec::new(),
        }
    }
}

/// A request with Via, Route and Max-Forwards (`mcptt_sip::Request::builder`); `None` when the
/// configured URI does not parse.
fn start_request(
    config: &UeConfig,
    rng: &mut dyn Random,
    method: Method,
    uri: &str,
    routes: &[String],
) -> Option<RequestBuilder> {
    let uri = mcptt_sip::Uri::parse(uri).ok()?;
    let branch = random_token(rng);
    let mut b = Request::builder(method, uri).header(
        "Via",
        format_args!(
            "SIP/2.0/{} {};branch=z9hG4bK{branch}",
            config.transport, config.host
        ),
    );
    for r in routes {
        b = b.header("Route", r);
    }
    Some(b.header("Max-Forwards", 70))
}

/// A message that cannot be read as a `MalformedMessage` error.
fn malformed(what: &str) -> Error {
    Error::MalformedMessage { what: what.into() }
}

/// The wire bytes of a built request (empty when configured text made the build fail).
fn finish(b: RequestBuilder) -> Vec<u8> {
    b.build().map(|r| Vec::from(r.encode())).unwrap_or_default()
}

/// The first `Contact` URI of a message, if any.
fn first_contact(headers: &mcptt_sip::Headers) -> Option<String> {
    let contacts = headers.contacts().ok()?;
    contacts
        .first()
        .and_then(|c| c.uri())
        .map(|u| u.as_str().to_owned())
}

/// The `Record-Route` entries of a message, in order.
fn record_route(headers: &mcptt_sip::Headers) -> Vec<String> {
    headers
        .record_route()
        .map(|r| r.iter().map(|n| n.as_str().to_owned()).collect())
        .unwrap_or_default()
}

/// Events of a [`Publisher`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublisherEvent {
    /// The server accepted the publication (initial, refresh or modify).
    Published {
        /// The current entity-tag.
        etag: String,
        /// Granted expiry, seconds.
        expires: u32,
    },
    /// The sign-off (`Expires: 0`) was accepted.
    SignedOff,
    /// The server refused; with a 403 the `Warning` value (e.g. `399 host "101 service authorisation failed"`).
    Rejected {
        /// Final status code.
        status: u16,
        /// The `Warning` header, if any.
        warning: Option<String>,
    },
}

/// What the next PUBLISH does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PubOp {
    Initial,
    Refresh,
    Modify,
    Remove,
}

/// Publication state of a [`Publisher`] (RFC 3903 §4).
///
/// ```text
///  Idle ──publish()──▶ Pending(Initial) ──2xx──▶ Published{etag} ──refresh timer──▶ Pending(Refresh)
///                         │ 412 (refresh) ──▶ Pending(Initial)          │ publish(new token) ─▶ Pending(Modify)
///                         │ 423 ──▶ retry with Min-Expires              │ sign_off() ─▶ Pending(Remove) ─2xx─▶ Idle
///                         └ other failure ──▶ Idle (Rejected event)
/// ```
#[derive(Debug, Clone)]
enum PubState {
    Idle,
    Pending {
        op: PubOp,
        cseq: u32,
        etag: Option<String>,
    },
    Published {
        etag: String,
        refresh_at: Instant,
    },
}

/// The UE's PUBLISH client (`Event: poc-settings`) carrying the access token.
pub struct Publisher<R> {
    config: UeConfig,
    rng: R,
    call_id: String,
    from_tag: String,
    cseq: u32,
    expires: u32,
    body: PublishBody,
    state: PubState,
    queued: Option<PubOp>,
    transmit: VecDeque<Transmit>,
    events: VecDeque<PublisherEvent>,
}

impl<R: Random> Publisher<R> {
    /// A publisher asking for `expires` seconds per publication.
    pub fn new(config: UeConfig, mut rng: R, expires: u32) -> Self {
        let call_id = format!("{}@{}", random_token(&mut rng), config.host);
        let from_tag = random_token(&mut rng);
        Self {
            config,
            rng,
            call_id,
            from_tag,
            cseq: 0,
            expires,
            body: PublishBody::default(),
            state: PubState::Idle,
            queued: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Publishes `token` (and optional settings): the initial PUBLISH, or a modify with
    /// `SIP-If-Match` carrying the new token when a publication exists.
    pub fn publish(
        &mut self,
        now: Instant,
        token: &str,
        client_id: Option<&str>,
        settings: Option<PocSettings>,
    ) {
        self.body = PublishBody {
            info: Some(McpttInfo {
                access_token: Some(token.to_owned()),
                client_id: client_id.map(str::to_owned),
                request_uri: Some(self.config.service_uri.clone()),
            }),
            settings,
        };
        let op = if matches!(self.state, PubState::Published { .. }) {
            PubOp::Modify
        } else {
            PubOp::Initial
        };
        self.start(now, op);
    }

    /// Signs the user off on this UE (PUBLISH `Expires: 0`).
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] when nothing is published.
    pub fn sign_off(&mut self, now: Instant) -> Result<(), Error> {
        match self.state {
            PubState::Idle => Err(Error::ApiMisuse("sign_off without a publication")),
            _ => {
                self.start(now, PubOp::Remove);
                Ok(())
            }
        }
    }

    /// The current entity-tag, when published.
    #[must_use]
    pub fn etag(&self) -> Option<&str> {
        match &self.state {
            PubState::Published { etag, .. } => Some(etag),
            _ => None,
        }
    }

    fn start(&mut self, _now: Instant, op: PubOp) {
        let etag = match &self.state {
            PubState::Pending { .. } => {
                // RFC 3903 §4.1: one PUBLISH at a time; the latest wish goes after the pending one.
                self.queued = Some(op);
                return;
            }
            PubState::Published { etag, .. } => Some(etag.clone()),
            PubState::Idle => None,
        };
        let etag = if op == PubOp::Initial { None } else { etag };
        self.cseq += 1;
        let bytes = match start_request(
            &self.config,
            &mut self.rng,
            Method::Publish,
            &self.config.service_uri,
            &self.config.route,
        ) {
            Some(b) => {
                let mut b = b
                    .header(
                        "From",
                        format_args!("<{}>;tag={}", self.config.impu, self.from_tag),
                    )
                    .header("To", format_args!("<{}>", self.config.impu))
                    .header("Call-ID", &self.call_id)
                    .header("CSeq", format_args!("{} PUBLISH", self.cseq))
                    .header("Event", POC_SETTINGS_EVENT)
                    .header(
                        "Expires",
                        if op == PubOp::Remove { 0 } else { self.expires },
                    );
                if let Some(e) = &etag {
                    b = b.header("SIP-If-Match", e);
                }
                if matches!(op, PubOp::Initial | PubOp::Modify) {
                    let boundary = random_token(&mut self.rng);
                    let (ct, body) = self.body.encode(&boundary);
                    b = b.body(&ct, body);
                }
                finish(b)
            }
            None => Vec::new(),
        };
        self.state = PubState::Pending {
            op,
            cseq: self.cseq,
            etag,
        };
        self.transmit.push_back(Transmit { bytes });
    }

    /// Handles a response to a PUBLISH.
    ///
    /// # Errors
    /// [`Error::MalformedMessage`] for an unreadable response; [`Error::NoMatch`] when it does not
    /// answer the pending PUBLISH.
    pub fn handle_response(&mut self, now: Instant, response: &Response) -> Result<(), Error> {
        let ids = Ids::read(response.headers()).map_err(malformed)?;
        let status = response.status();
        let PubState::Pending { op, cseq, etag } = self.state.clone() else {
            return Err(Error::NoMatch("no PUBLISH pending"));
        };
        if ids.call_id != self.call_id || ids.cseq.seq != cseq || status < 200 {
            return if status < 200 {
                Ok(())
            } else {
                Err(Error::NoMatch("not the pending PUBLISH"))
            };
        }
        let expires_header = response
            .expires()
            .map_err(|_| malformed("Expires header"))?;
        let min_expires = response.min_expires().ok().flatten();
        match status {
            200..=299 if op == PubOp::Remove => {
                self.state = PubState::Idle;
                self.events.push_back(PublisherEvent::SignedOff);
            }
            200..=299 => {
                let new_etag = response
                    .sip_etag()
                    .ok()
                    .flatten()
                    .map(str::to_owned)
                    .or(etag)
                    .unwrap_or_default();
                let expires = expires_header.unwrap_or(self.expires);
                // Refresh ahead of expiry: at 3/4 of the interval, at least 5 s before it.
                let ahead = u64::from(expires / 4).max(5).min(u64::from(expires));
                let refresh_at = now + Duration::from_secs(u64::from(expires) - ahead);
                self.state = PubState::Published {
                    etag: new_etag.clone(),
                    refresh_at,
                };
                self.events.push_back(PublisherEvent::Published {
                    etag: new_etag,
                    expires,
                });
            }
            412 => {
                // RFC 3903 §4.4: the publication is gone; publish afresh.
                self.state = PubState::Idle;
                if op != PubOp::Remove && self.body.info.is_some() {
                    self.start(now, PubOp::Initial);
                } else {
                    self.events.push_back(PublisherEvent::SignedOff);
                }
            }
            423 if min_expires.is_some_and(|m| m > self.expires) => {
                self.expires = min_expires.unwrap_or(self.expires);
                self.state = match etag {
                    Some(etag) => PubState::Published {
                        etag,
                        refresh_at: now,
                    },
                    None => PubState::Idle,
                };
                self.start(now, op);
            }
            status => {
                self.state = PubState::Idle;
                let warning = response
                    .headers()
                    .get_known(KnownHeader::Warning)
                    .map(str::to_owned);
                self.events
                    .push_back(PublisherEvent::Rejected { status, warning });
            }
        }
        if let Some(next) = self.queued.take() {
            self.start(now, next);
        }
        Ok(())
    }

    /// As [`Publisher::handle_response`], for one encoded message.
    ///
    /// # Errors
    /// As [`Publisher::handle_response`].
    pub fn handle_response_bytes(&mut self, now: Instant, response: &[u8]) -> Result<(), Error> {
        let response = crate::sip::parse_response(response).map_err(malformed)?;
        self.handle_response(now, &response)
    }

    /// Sends the refresh when due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let PubState::Published { refresh_at, .. } = self.state
            && refresh_at <= now
        {
            self.start(now, PubOp::Refresh);
        }
    }

    /// The next PUBLISH to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmit.pop_front()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<PublisherEvent> {
        self.events.pop_front()
    }

    /// When the next refresh is due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            PubState::Published { refresh_at, .. } => Some(refresh_at),
            _ => None,
        }
    }
}

/// Events of a [`Subscriber`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscriberEvent {
    /// The subscription is active until `expires` seconds from the NOTIFY/2xx that said so.
    Active {
        /// Remaining seconds.
        expires: u32,
    },
    /// A NOTIFY carried a new service state.
    State(ServiceState),
    /// The subscription ended (final NOTIFY, refusal or unsubscribe), with the `reason` given.
    Terminated {
        /// `reason` of `Subscription-State: terminated`, or the refusal status as text.
        reason: Option<String>,
    },
}

/// Subscriber state (RFC 6665 §4.1).
///
/// ```text
///  Idle ──subscribe()──▶ Pending ──2xx/NOTIFY active──▶ Active ──refresh timer/refresh()──▶ Active
///                          │ non-2xx                       │ unsubscribe() ──▶ Terminating ──NOTIFY terminated──▶ Terminated
///                          ▼                               │ NOTIFY terminated ─────────────────────────────────▶ Terminated
///                      Terminated ◀────────────────────────┘
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubState {
    Idle,
    Pending,
    Active { refresh_at: Instant },
    Terminating,
    Terminated,
}

/// The UE's `mcptt-service-state` subscriber (subscriber side of RFC 6665, dialog included).
pub struct Subscriber<R> {
    config: UeConfig,
    rng: R,
    call_id: String,
    local_tag: String,
    remote_tag: Option<String>,
    local_cseq: u32,
    pending_cseq: Option<u32>,
    remote_cseq: Option<u32>,
    route_set: Vec<String>,
    remote_target: String,
    expires: u32,
    info: Option<McpttInfo>,
    state: SubState,
    last_version: Option<u64>,
    transmit: VecDeque<Transmit>,
    events: VecDeque<SubscriberEvent>,
}

impl<R: Random> Subscriber<R> {
    /// A subscriber asking for `expires` seconds.
    pub fn new(config: UeConfig, mut rng: R, expires: u32) -> Self {
        let call_id = format!("{}@{}", random_token(&mut rng), config.host);
        let local_tag = random_token(&mut rng);
        Self {
            remote_target: config.service_uri.clone(),
            config,
            rng,
            call_id,
            local_tag,
            remote_tag: None,
            local_cseq: 0,
            pending_cseq: None,
            remote_cseq: None,
            route_set: Vec::new(),
            expires,
            info: None,
            state: SubState::Idle,
            last_version: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The dialog's Call-ID.
    #[must_use]
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// Sends the initial SUBSCRIBE; `info` (with an access token) names the user on a gateway UE.
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] when already subscribed.
    pub fn subscribe(&mut self, _now: Instant, info: Option<McpttInfo>) -> Result<(), Error> {
        if self.state != SubState::Idle {
            return Err(Error::ApiMisuse("subscribe on a used Subscriber"));
        }
        self.info = info;
        self.state = SubState::Pending;
        self.send_subscribe(self.expires);
        Ok(())
    }

    /// Refreshes the subscription now (also done automatically before expiry).
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] unless active.
    pub fn refresh(&mut self, _now: Instant) -> Result<(), Error> {
        if !matches!(self.state, SubState::Active { .. }) {
            return Err(Error::ApiMisuse("refresh without an active subscription"));
        }
        self.send_subscribe(self.expires);
        Ok(())
    }

    /// Unsubscribes (`Expires: 0`); the final NOTIFY ends it.
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] unless active.
    pub fn unsubscribe(&mut self, _now: Instant) -> Result<(), Error> {
        if !matches!(self.state, SubState::Active { .. }) {
            return Err(Error::ApiMisuse(
                "unsubscribe without an active subscription",
            ));
        }
        self.state = SubState::Terminating;
        self.send_subscribe(0);
        Ok(())
    }

    fn send_subscribe(&mut self, expires: u32) {
        self.local_cseq += 1;
        self.pending_cseq = Some(self.local_cseq);
        let routes = if self.remote_tag.is_some() {
            self.route_set.clone()
        } else {
            self.config.route.clone()
        };
        let Some(b) = start_request(
            &self.config,
            &mut self.rng,
            Method::Subscribe,
            &self.remote_target,
            &routes,
        ) else {
            return;
        };
        let b = b.header(
            "From",
            format_args!("<{}>;tag={}", self.config.impu, self.local_tag),
        );
        let b = match &self.remote_tag {
            Some(t) => b.header("To", format_args!("<{}>;tag={t}", self.config.service_uri)),
            None => b.header("To", format_args!("<{}>", self.config.service_uri)),
        };
        let mut b = b
            .header("Call-ID", &self.call_id)
            .header("CSeq", format_args!("{} SUBSCRIBE", self.local_cseq))
            .header("Contact", format_args!("<{}>", self.config.contact))
            .header("Event", SERVICE_STATE_EVENT)
            .header("Accept", SERVICE_STATE_CONTENT_TYPE)
            .header("Expires", expires);
        if let (Some(info), true) = (&self.info, self.remote_tag.is_none()) {
            b = b.body(crate::body::MCPTT_INFO_CONTENT_TYPE, info.encode());
        }
        let bytes = finish(b);
        self.transmit.push_back(Transmit { bytes });
    }

    fn schedule_refresh(&mut self, now: Instant, expires: u32) {
        let ahead = u64::from(expires / 4).max(5).min(u64::from(expires));
        self.state = SubState::Active {
            refresh_at: now + Duration::from_secs(u64::from(expires) - ahead),
        };
        self.events.push_back(SubscriberEvent::Active { expires });
    }

    fn learn_dialog(
        &mut self,
        remote_tag: Option<&str>,
        contact: Option<String>,
        record_route: Vec<String>,
        reverse: bool,
    ) {
        if self.remote_tag.is_none() {
            self.remote_tag = remote_tag.map(str::to_owned);
            // RFC 3261 §12.1.2: the UAC's route set is the Record-Route list reversed.
            self.route_set = record_route;
            if reverse {
                self.route_set.reverse();
            }
        }
        if let Some(c) = contact {
            self.remote_target = c;
        }
    }

    /// Handles a response to a SUBSCRIBE.
    ///
    /// # Errors
    /// [`Error::MalformedMessage`] or [`Error::NoMatch`].
    pub fn handle_response(&mut self, now: Instant, response: &Response) -> Result<(), Error> {
        let ids = Ids::read(response.headers()).map_err(malformed)?;
        let status = response.status();
        if ids.call_id != self.call_id
            || Some(ids.cseq.seq) != self.pending_cseq
            || ids.from.tag() != Some(&self.local_tag)
        {
            return Err(Error::NoMatch("not the pending SUBSCRIBE"));
        }
        if status < 200 {
            return Ok(());
        }
        self.pending_cseq = None;
        let min_expires = response.min_expires().ok().flatten();
        match status {
            200..=299 => {
                let contact = first_contact(response.headers());
                let record_route = record_route(response.headers());
                self.learn_dialog(ids.to.tag(), contact, record_route, true);
                if self.state != SubState::Terminating && self.state != SubState::Terminated {
                    let expires = response.expires().ok().flatten().unwrap_or(self.expires);
                    self.schedule_refresh(now, expires);
                }
            }
            423 if min_expires.is_some_and(|m| m > self.expires) => {
                self.expires = min_expires.unwrap_or(self.expires);
                self.send_subscribe(self.expires);
            }
            481 if self.remote_tag.is_some() => self.end(Some("481".into())),
            status if self.state == SubState::Pending || self.remote_tag.is_none() => {
                self.end(Some(status.to_string()));
            }
            // A failed refresh leaves the subscription to its expiry (RFC 6665 §4.1.2.2).
            _ => {}
        }
        Ok(())
    }

    /// As [`Subscriber::handle_response`], for one encoded message.
    ///
    /// # Errors
    /// As [`Subscriber::handle_response`].
    pub fn handle_response_bytes(&mut self, now: Instant, response: &[u8]) -> Result<(), Error> {
        let response = crate::sip::parse_response(response).map_err(malformed)?;
        self.handle_response(now, &response)
    }

    fn end(&mut self, reason: Option<String>) {
        if self.state != SubState::Terminated {
            self.state = SubState::Terminated;
            self.events
                .push_back(SubscriberEvent::Terminated { reason });
        }
    }

    /// Handles an incoming NOTIFY, queueing the response (200, 481 for another dialog, 500 for
    /// an out-of-order CSeq, 400 for a bad body).
    ///
    /// # Errors
    /// [`Error::OutOfOrderCSeq`], [`Error::NoMatch`], or body/message errors; the matching
    /// response is queued either way.
    pub fn handle_request(&mut self, now: Instant, request: &Request) -> Result<(), Error> {
        Ids::read(request.headers()).map_err(malformed)?;
        let result = self.notify(now, request);
        let code = match &result {
            Ok(()) => 200,
            Err(e) => e.status_code().unwrap_or(500),
        };
        self.transmit.push_back(Transmit {
            bytes: Answer::new(request, code).finish(),
        });
        result
    }

    /// As [`Subscriber::handle_request`], for one encoded message.
    ///
    /// # Errors
    /// As [`Subscriber::handle_request`].
    pub fn handle_request_bytes(&mut self, now: Instant, request: &[u8]) -> Result<(), Error> {
        let request = crate::sip::parse_request(request).map_err(malformed)?;
        self.handle_request(now, &request)
    }

    fn notify(&mut self, now: Instant, req: &Request) -> Result<(), Error> {
        if *req.method() != Method::Notify {
            return Err(Error::NoMatch("only NOTIFY is accepted in the dialog"));
        }
        let ids = Ids::read(req.headers()).map_err(malformed)?;
        let ours = ids.call_id == self.call_id
            && ids.to.tag() == Some(&self.local_tag)
            && (self.remote_tag.is_none() || ids.from.tag() == self.remote_tag.as_deref())
            && !matches!(self.state, SubState::Idle | SubState::Terminated);
        if !ours {
            return Err(Error::NoMatch(
                "NOTIFY for no subscription of this subscriber",
            ));
        }
        let event = req.event().map_err(|_| malformed("Event header"))?;
        let package = event.as_ref().map(|e| e.package());
        if !package.is_some_and(|p| p.eq_ignore_ascii_case(SERVICE_STATE_EVENT)) {
            return Err(Error::BadEvent(package.unwrap_or_default().to_owned()));
        }
        let cseq = ids.cseq.seq;
        if let Some(last) = self.remote_cseq
            && cseq <= last
        {
            return Err(Error::OutOfOrderCSeq { got: cseq, last });
        }
        let subscription_state = req
            .subscription_state()
            .ok()
            .flatten()
            .ok_or_else(|| malformed("Subscription-State header"))?;
        let body = if req.body_len() == 0 {
            None
        } else {
            let content_type = req
                .content_type()
                .map_err(|_| malformed("Content-Type header"))?;
            let media = content_type
                .as_ref()
                .map(|c| c.mime_type().to_ascii_lowercase())
                .unwrap_or_default();
            if media != SERVICE_STATE_CONTENT_TYPE {
                return Err(Error::UnsupportedMediaType(media));
            }
            Some(ServiceState::parse(&req.body())?)
        };
        self.remote_cseq = Some(cseq);
        let contact = first_contact(req.headers());
        let record_route = record_route(req.headers());
        self.learn_dialog(ids.from.tag(), contact, record_route, false);
        if let Some(s) = body {
            // Versions never go back; an older version (reordered delivery) is not surfaced.
            if self.last_version.is_none_or(|v| s.version >= v) {
                self.last_version = Some(s.version);
                self.events.push_back(SubscriberEvent::State(s));
            }
        }
        if subscription_state
            .state()
            .eq_ignore_ascii_case("terminated")
        {
            self.end(subscription_state.reason().map(str::to_owned));
        } else if let (Some(e), SubState::Pending | SubState::Active { .. }) =
            (subscription_state.expires(), self.state)
        {
            self.schedule_refresh(now, e);
        }
        Ok(())
    }

    /// Sends the refresh when due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let SubState::Active { refresh_at } = self.state
            && refresh_at <= now
            && self.pending_cseq.is_none()
        {
            self.state = SubState::Active {
                refresh_at: now + Duration::from_secs(3600 * 24 * 365),
            };
            self.send_subscribe(self.expires);
        }
    }

    /// Whether the subscription has ended.
    #[must_use]
    pub fn is_terminated(&self) -> bool {
        self.state == SubState::Terminated
    }

    /// The next message to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmit.pop_front()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<SubscriberEvent> {
        self.events.pop_front()
    }

    /// When the next refresh is due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            SubState::Active { refresh_at } => Some(refresh_at),
            _ => None,
        }
    }
}
