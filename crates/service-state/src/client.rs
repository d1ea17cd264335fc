//! The UE side: the PUBLISH client ([`Publisher`]) and the service-state subscriber
//! ([`Subscriber`]), sans-IO.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::body::{McpttInfo, PocSettings, PublishBody, SERVICE_STATE_CONTENT_TYPE, ServiceState};
use crate::error::Error;
use crate::model::{Random, random_token};
use crate::server::{POC_SETTINGS_EVENT, SERVICE_STATE_EVENT, Transmit};
use crate::sip::{Builder, View};

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

fn start_request(
    config: &UeConfig,
    rng: &mut dyn Random,
    method: &str,
    uri: &str,
    routes: &[String],
) -> Builder {
    let mut b = Builder::request(method, uri);
    let branch = random_token(rng);
    b.header_fmt(
        "Via",
        format_args!(
            "SIP/2.0/{} {};branch=z9hG4bK{branch}",
            config.transport, config.host
        ),
    );
    for r in routes {
        b.header("Route", r);
    }
    b.header("Max-Forwards", "70");
    b
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
        let uri = self.config.service_uri.clone();
        let mut b = start_request(
            &self.config,
            &mut self.rng,
            "PUBLISH",
            &uri,
            &self.config.route,
        );
        b.header_fmt(
            "From",
            format_args!("<{}>;tag={}", self.config.impu, self.from_tag),
        )
        .header_fmt("To", format_args!("<{}>", self.config.impu))
        .header("Call-ID", &self.call_id)
        .header_fmt("CSeq", format_args!("{} PUBLISH", self.cseq))
        .header("Event", POC_SETTINGS_EVENT)
        .header_fmt(
            "Expires",
            format_args!("{}", if op == PubOp::Remove { 0 } else { self.expires }),
        );
        if let Some(e) = &etag {
            b.header("SIP-If-Match", e);
        }
        let bytes = match op {
            PubOp::Initial | PubOp::Modify => {
                let boundary = random_token(&mut self.rng);
                let (ct, body) = self.body.encode(&boundary);
                b.finish(Some((&ct, &body)))
            }
            PubOp::Refresh | PubOp::Remove => b.finish(None),
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
    pub fn handle_response(
        &mut self,
        now: Instant,
        response: &mcptt_sip::Response,
    ) -> Result<(), Error> {
        let view = crate::sip::glue::view_response(response);
        self.on_response(now, view)
    }

    /// As [`Publisher::handle_response`], for one encoded message.
    ///
    /// # Errors
    /// As [`Publisher::handle_response`].
    pub fn handle_response_bytes(&mut self, now: Instant, response: &[u8]) -> Result<(), Error> {
        crate::sip::with_response_view(response, |view| self.on_response(now, view))
    }

    fn on_response(
        &mut self,
        now: Instant,
        view: Result<View<'_>, &'static str>,
    ) -> Result<(), Error> {
        let resp = view.map_err(|what| Error::MalformedMessage { what: what.into() })?;
        let PubState::Pending { op, cseq, etag } = self.state.clone() else {
            return Err(Error::NoMatch("no PUBLISH pending"));
        };
        if resp.call_id != self.call_id || resp.cseq != cseq || resp.status < 200 {
            return if resp.status < 200 {
                Ok(())
            } else {
                Err(Error::NoMatch("not the pending PUBLISH"))
            };
        }
        match resp.status {
            200..=299 if op == PubOp::Remove => {
                self.state = PubState::Idle;
                self.events.push_back(PublisherEvent::SignedOff);
            }
            200..=299 => {
                let new_etag = resp
                    .sip_etag
                    .map(str::to_owned)
                    .or(etag)
                    .unwrap_or_default();
                let expires = resp.expires.unwrap_or(self.expires);
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
            423 if resp.min_expires.is_some_and(|m| m > self.expires) => {
                self.expires = resp.min_expires.unwrap_or(self.expires);
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
                let warning = resp.warning.map(str::to_owned);
                self.events
                    .push_back(PublisherEvent::Rejected { status, warning });
            }
        }
        if let Some(next) = self.queued.take() {
            self.start(now, next);
        }
        Ok(())
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
        let target = self.remote_target.clone();
        let mut b = start_request(&self.config, &mut self.rng, "SUBSCRIBE", &target, &routes);
        b.header_fmt(
            "From",
            format_args!("<{}>;tag={}", self.config.impu, self.local_tag),
        );
        match &self.remote_tag {
            Some(t) => b.header_fmt("To", format_args!("<{}>;tag={t}", self.config.service_uri)),
            None => b.header_fmt("To", format_args!("<{}>", self.config.service_uri)),
        };
        b.header("Call-ID", &self.call_id)
            .header_fmt("CSeq", format_args!("{} SUBSCRIBE", self.local_cseq))
            .header_fmt("Contact", format_args!("<{}>", self.config.contact))
            .header("Event", SERVICE_STATE_EVENT)
            .header("Accept", SERVICE_STATE_CONTENT_TYPE)
            .header_fmt("Expires", format_args!("{expires}"));
        let bytes = match (&self.info, self.remote_tag.is_none()) {
            (Some(info), true) => {
                let xml = info.encode();
                b.finish(Some((crate::body::MCPTT_INFO_CONTENT_TYPE, xml.as_bytes())))
            }
            _ => b.finish(None),
        };
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
        contact: Option<&str>,
        record_route: &[&str],
        reverse: bool,
    ) {
        if self.remote_tag.is_none() {
            self.remote_tag = remote_tag.map(str::to_owned);
            // RFC 3261 §12.1.2: the UAC's route set is the Record-Route list reversed.
            self.route_set = record_route.iter().map(|r| (*r).to_owned()).collect();
            if reverse {
                self.route_set.reverse();
            }
        }
        if let Some(c) = contact {
            c.clone_into(&mut self.remote_target);
        }
    }

    /// Handles a response to a SUBSCRIBE.
    ///
    /// # Errors
    /// [`Error::MalformedMessage`] or [`Error::NoMatch`].
    pub fn handle_response(
        &mut self,
        now: Instant,
        response: &mcptt_sip::Response,
    ) -> Result<(), Error> {
        let view = crate::sip::glue::view_response(response);
        self.on_response(now, view)
    }

    /// As [`Subscriber::handle_response`], for one encoded message.
    ///
    /// # Errors
    /// As [`Subscriber::handle_response`].
    pub fn handle_response_bytes(&mut self, now: Instant, response: &[u8]) -> Result<(), Error> {
        crate::sip::with_response_view(response, |view| self.on_response(now, view))
    }

    fn on_response(
        &mut self,
        now: Instant,
        view: Result<View<'_>, &'static str>,
    ) -> Result<(), Error> {
        let resp = view.map_err(|what| Error::MalformedMessage { what: what.into() })?;
        if resp.call_id != self.call_id
            || Some(resp.cseq) != self.pending_cseq
            || resp.from_tag != Some(&self.local_tag)
        {
            return Err(Error::NoMatch("not the pending SUBSCRIBE"));
        }
        if resp.status < 200 {
            return Ok(());
        }
        self.pending_cseq = None;
        match resp.status {
            200..=299 => {
                self.learn_dialog(resp.to_tag, resp.contact, &resp.record_route, true);
                if self.state != SubState::Terminating && self.state != SubState::Terminated {
                    let expires = resp.expires.unwrap_or(self.expires);
                    self.schedule_refresh(now, expires);
                }
            }
            423 if resp.min_expires.is_some_and(|m| m > self.expires) => {
                self.expires = resp.min_expires.unwrap_or(self.expires);
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
    pub fn handle_request(
        &mut self,
        now: Instant,
        request: &mcptt_sip::Request,
    ) -> Result<(), Error> {
        let view = crate::sip::glue::view_request(request);
        self.on_request(now, view)
    }

    /// As [`Subscriber::handle_request`], for one encoded message.
    ///
    /// # Errors
    /// As [`Subscriber::handle_request`].
    pub fn handle_request_bytes(&mut self, now: Instant, request: &[u8]) -> Result<(), Error> {
        crate::sip::with_request_view(request, |view| self.on_request(now, view))
    }

    fn on_request(
        &mut self,
        now: Instant,
        view: Result<View<'_>, &'static str>,
    ) -> Result<(), Error> {
        let req = view.map_err(|what| Error::MalformedMessage { what: what.into() })?;
        let result = self.notify(now, &req);
        let code = match &result {
            Ok(()) => 200,
            Err(e) => e.status_code().unwrap_or(500),
        };
        let b = Builder::response(&req, code, None);
        self.transmit.push_back(Transmit {
            bytes: b.finish(None),
        });
        result
    }

    fn notify(&mut self, now: Instant, req: &View<'_>) -> Result<(), Error> {
        if req.method != "NOTIFY" {
            return Err(Error::NoMatch("only NOTIFY is accepted in the dialog"));
        }
        let ours = req.call_id == self.call_id
            && req.to_tag == Some(&self.local_tag)
            && (self.remote_tag.is_none() || req.from_tag == self.remote_tag.as_deref())
            && !matches!(self.state, SubState::Idle | SubState::Terminated);
        if !ours {
            return Err(Error::NoMatch(
                "NOTIFY for no subscription of this subscriber",
            ));
        }
        if !req
            .event
            .as_ref()
            .is_some_and(|(p, _)| p.eq_ignore_ascii_case(SERVICE_STATE_EVENT))
        {
            return Err(Error::BadEvent(
                req.event.map(|e| e.0.to_owned()).unwrap_or_default(),
            ));
        }
        if let Some(last) = self.remote_cseq
            && req.cseq <= last
        {
            return Err(Error::OutOfOrderCSeq {
                got: req.cseq,
                last,
            });
        }
        let (state, reason, expires) =
            req.subscription_state
                .ok_or_else(|| Error::MalformedMessage {
                    what: "Subscription-State header".into(),
                })?;
        let body = if req.body.is_empty() {
            None
        } else {
            let media = req
                .content_type
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if media != SERVICE_STATE_CONTENT_TYPE {
                return Err(Error::UnsupportedMediaType(media));
            }
            Some(ServiceState::parse(&req.body)?)
        };
        self.remote_cseq = Some(req.cseq);
        self.learn_dialog(req.from_tag, req.contact, &req.record_route, false);
        if let Some(s) = body {
            // Versions never go back; an older version (reordered delivery) is not surfaced.
            if self.last_version.is_none_or(|v| s.version >= v) {
                self.last_version = Some(s.version);
                self.events.push_back(SubscriberEvent::State(s));
            }
        }
        match state.to_ascii_lowercase().as_str() {
            "terminated" => self.end(reason.map(str::to_owned)),
            _ => {
                if let (Some(e), SubState::Pending | SubState::Active { .. }) =
                    (expires, self.state)
                {
                    self.schedule_refresh(now, e);
                }
            }
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
