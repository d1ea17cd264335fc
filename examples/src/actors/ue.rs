//! UE: logs in at the IdMS (step 1, through the IdM client), connects to the SIP core with its
//! client certificate (step 2, `mcptt-tls`), registers (steps 3–4), and for each user signed in
//! on it publishes the access token (`mcptt-service-state`'s [`Publisher`], steps 7–10) and
//! subscribes to its service state ([`Subscriber`], steps 11–18), answering every NOTIFY.
//!
//! One [`Ue`] owns one connection; several users may be signed in on it (gateway and shareable
//! UEs). [`Ue::pump_until`] drives the connection and every driver until a condition holds.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mcptt_service_state::SplitMix64;
use mcptt_service_state::body::{McpttInfo, ServiceState};
use mcptt_service_state::client::{
    Publisher, PublisherEvent, Subscriber, SubscriberEvent, UeConfig as DriverConfig,
};
use mcptt_sip::{Message, Method, Request, Response, Uri};
use mcptt_tls::{
    ConnectionHandle, Destination, Event, Events, Transport, TransportConfig, TransportKind,
};

use super::clock::Clock;
use super::config::UeConfig;
use super::login::Tokens;
use super::net;
use super::wire::{call_id, method};
use crate::steps::StepFailure;
use crate::trace::{Actor, Trace};

/// What a UE run ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UeOutcome {
    /// Combined state of the last NOTIFY (`full-access`, `limited`, `none`).
    pub state: String,
    /// Authorisation state of the last NOTIFY.
    pub authorisation: String,
}

fn fail(step: u8, reason: impl Into<String>) -> StepFailure {
    StepFailure {
        step,
        reason: reason.into(),
    }
}

/// One user signed in on the UE.
pub struct UserSession {
    /// Trace label, e.g. `gw1/bob`.
    pub label: String,
    /// The user's tokens.
    pub tokens: Tokens,
    publisher: Publisher<SplitMix64>,
    subscriber: Subscriber<SplitMix64>,
    publish_call_id: Option<String>,
    /// Last publication outcome (`Published`, `Rejected`, …).
    pub last_publish: Option<PublisherEvent>,
    /// Whether the subscription was accepted (2xx or active NOTIFY).
    pub subscribed: bool,
    /// Every service state NOTIFYed, in order.
    pub states: Vec<ServiceState>,
    /// Set when the subscription ended, with the reason.
    pub terminated: Option<Option<String>>,
}

impl std::fmt::Debug for UserSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserSession")
            .field("label", &self.label)
            .field("states", &self.states.len())
            .finish_non_exhaustive()
    }
}

impl UserSession {
    /// The last NOTIFYed state, if any.
    #[must_use]
    pub fn last_state(&self) -> Option<&ServiceState> {
        self.states.last()
    }
}

/// Registration of the UE (REGISTER dialog-less transaction state).
#[derive(Debug)]
struct Registration {
    call_id: String,
    from_tag: String,
    cseq: u32,
    instance: String,
    contact: String,
    expires: u32,
    /// Set on a 2xx; the bindings' answer.
    registered: bool,
    /// Last final status received.
    last_status: Option<u16>,
    /// Last final response received.
    last_response: Option<Response>,
}

/// The UE's reg event subscription (RFC 3680) to its own registration state.
#[derive(Debug)]
struct RegWatch {
    call_id: String,
    /// Final status of the SUBSCRIBE.
    status: Option<u16>,
    /// The `application/reginfo+xml` bodies NOTIFYed, in order.
    notifies: Vec<String>,
}

/// A connected UE.
pub struct Ue {
    config: UeConfig,
    trace: Trace,
    clock: Clock,
    transport: Transport,
    events: Events,
    conn: ConnectionHandle,
    /// Connections to other SIP cores opened by [`Ue::use_core`], kept open for the dialogs
    /// routed through them.
    other_conns: Vec<ConnectionHandle>,
    local: SocketAddr,
    rng: SplitMix64,
    reg: Registration,
    users: Vec<UserSession>,
    /// Call-ID → index into `users` (publisher and subscriber dialogs).
    by_call_id: HashMap<String, usize>,
    /// Reg event subscription, once [`Ue::subscribe_reg`] ran.
    reg_watch: Option<RegWatch>,
    /// Responses to send on the connection their request came on.
    replies: Vec<(ConnectionHandle, Message)>,
    closed: bool,
}

impl std::fmt::Debug for Ue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ue")
            .field("impu", &self.config.public_user_identity)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

fn hex(rng: &mut SplitMix64) -> String {
    use mcptt_service_state::Random as _;
    format!("{:016x}", rng.next_u64())
}

/// The UE's Contact URI on the connection bound to `local`.
fn contact_uri(impu: &str, local: SocketAddr) -> String {
    format!("sip:{}@{local};transport=tls", super::wire::user_of(impu))
}

/// Connection attempts [`Ue::recover`] makes before giving up.
const RECONNECT_ATTEMPTS: u32 = 6;
/// First wait between reconnection attempts (doubled each time, at most 8 s).
const RECONNECT_BACKOFF: Duration = Duration::from_millis(250);

impl Ue {
    /// Step 2: connects to the SIP core over mutual TLS with the UE's certificate.
    pub async fn connect(
        config: UeConfig,
        trace: Trace,
        clock: Clock,
    ) -> Result<Self, StepFailure> {
        let client = net::client_config(&config.tls).map_err(|e| fail(2, e.to_string()))?;
        let (transport, events) =
            Transport::new(TransportConfig::default().with_client_tls(client));
        let dest = Destination::addr(config.sip_core, TransportKind::Tls);
        let conn = tokio::time::timeout(config.timeout, transport.connect(&dest))
            .await
            .map_err(|_| fail(2, "TLS connection to the SIP core timed out"))?
            .map_err(|e| fail(2, format!("TLS connection to the SIP core failed: {e}")))?;
        let local = conn.info().local_addr;
        let mut rng = SplitMix64(clock.unix() ^ (u64::from(local.port()) << 32) ^ 0x5eed);
        let reg = Registration {
            call_id: format!("{}@{}", hex(&mut rng), local.ip()),
            from_tag: hex(&mut rng),
            cseq: 0,
            instance: {
                let a = hex(&mut rng);
                let b = hex(&mut rng);
                format!(
                    "<urn:uuid:{}-{}-4{}-8{}-{}>",
                    a.get(..8).unwrap_or("0"),
                    a.get(8..12).unwrap_or("0"),
                    a.get(13..16).unwrap_or("0"),
                    b.get(..3).unwrap_or("0"),
                    b.get(4..16).unwrap_or("0"),
                )
            },
            contact: contact_uri(&config.public_user_identity, local),
            expires: config.register_expires,
            registered: false,
            last_status: None,
            last_response: None,
        };
        trace.bind(&reg.call_id, &config.ue_label);
        Ok(Self {
            config,
            trace,
            clock,
            transport,
            events,
            conn,
            other_conns: Vec::new(),
            local,
            rng,
            reg,
            users: Vec::new(),
            by_call_id: HashMap::new(),
            reg_watch: None,
            replies: Vec::new(),
            closed: false,
        })
    }

    /// The UE's Contact URI (registered; NOTIFY target).
    #[must_use]
    pub fn contact(&self) -> &str {
        &self.reg.contact
    }

    /// The users signed in on this UE, in sign-in order.
    #[must_use]
    pub fn users(&self) -> &[UserSession] {
        &self.users
    }

    /// Whether the connection to the SIP core has ended (see [`Ue::recover`]).
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Sends the following requests through the SIP core at `addr` (another instance of the
    /// same service, sharing the registration store): connects to it with the same client
    /// certificate unless a connection to it is open already. The other connections stay
    /// open (NOTIFYs of dialogs set up through them still arrive there). The registered
    /// Contact is unchanged until the next [`Ue::register`], which registers this
    /// connection's Contact (same `+sip.instance`, same Call-ID, next CSeq).
    pub async fn use_core(&mut self, addr: SocketAddr) -> Result<(), StepFailure> {
        if self.conn.info().peer_addr == addr {
            return Ok(());
        }
        let conn = match self
            .other_conns
            .iter()
            .position(|c| c.info().peer_addr == addr)
        {
            Some(i) => self.other_conns.swap_remove(i),
            None => {
                let dest = Destination::addr(addr, TransportKind::Tls);
                tokio::time::timeout(self.config.timeout, self.transport.connect(&dest))
                    .await
                    .map_err(|_| {
                        fail(
                            2,
                            format!("TLS connection to the SIP core {addr} timed out"),
                        )
                    })?
                    .map_err(|e| {
                        fail(
                            2,
                            format!("TLS connection to the SIP core {addr} failed: {e}"),
                        )
                    })?
            }
        };
        self.local = conn.info().local_addr;
        let previous = std::mem::replace(&mut self.conn, conn);
        self.other_conns.push(previous);
        self.closed = false;
        Ok(())
    }

    /// The SIP core the current connection goes to.
    #[must_use]
    pub fn sip_core(&self) -> SocketAddr {
        self.conn.info().peer_addr
    }

    /// The last final response to a REGISTER (e.g. a `503` with `Retry-After`).
    #[must_use]
    pub fn last_register_response(&self) -> Option<&Response> {
        self.reg.last_response.as_ref()
    }

    /// The local address of the current connection to the SIP core.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Drives the connection (answering NOTIFYs, refreshing) until the SIP core closes it;
    /// fails only on the configured step timeout.
    pub async fn wait_closed(&mut self) -> Result<(), StepFailure> {
        self.pump_until(2, |ue| ue.closed).await
    }

    /// After the connection to the SIP core was lost (e.g. the SIP core restarted and forgot
    /// every binding and dialog): connects again with the client certificate (`mcptt-tls`,
    /// retried with a doubling back-off on the actors' clock), REGISTERs the new Contact
    /// (same `+sip.instance`, same Call-ID, next CSeq), then for every user whose publication
    /// was in force starts a new publication with the user's current access token, and for
    /// every user whose subscription was in force starts a new subscription (new
    /// `mcptt-service-state` drivers: the old dialogs were routed through the lost
    /// connection). Returns once each re-subscribed user has been NOTIFYed again.
    pub async fn recover(&mut self) -> Result<(), StepFailure> {
        let dest = Destination::addr(self.config.sip_core, TransportKind::Tls);
        let mut backoff = RECONNECT_BACKOFF;
        let mut attempt = 0;
        let conn = loop {
            attempt += 1;
            let err = match tokio::time::timeout(self.config.timeout, self.transport.connect(&dest))
                .await
            {
                Ok(Ok(conn)) => break conn,
                Ok(Err(e)) => e.to_string(),
                Err(_) => "timed out".to_owned(),
            };
            if attempt >= RECONNECT_ATTEMPTS {
                return Err(fail(
                    2,
                    format!("reconnecting to the SIP core failed {attempt} times: {err}"),
                ));
            }
            tracing::warn!(attempt, error = %err, ?backoff, "reconnecting to the SIP core");
            let until = self.clock.now() + backoff;
            while self.clock.now() < until {
                self.clock.sleep_until(Some(until)).await;
            }
            backoff = (backoff * 2).min(Duration::from_secs(8));
        };
        self.conn.close().await;
        self.local = conn.info().local_addr;
        self.conn = conn;
        self.closed = false;
        self.reg.contact = contact_uri(&self.config.public_user_identity, self.local);
        self.reg.registered = false;
        self.register().await?;
        for idx in 0..self.users.len() {
            self.restart_session(idx).await?;
        }
        Ok(())
    }

    /// Replaces session `idx`'s drivers by fresh ones on the current connection and, as far
    /// as the old ones were in force, publishes and subscribes again.
    async fn restart_session(&mut self, idx: usize) -> Result<(), StepFailure> {
        let seed = {
            use mcptt_service_state::Random as _;
            self.rng.next_u64()
        };
        let driver = self.driver_config();
        let (publish_expires, subscribe_expires) =
            (self.config.publish_expires, self.config.subscribe_expires);
        let Some(u) = self.users.get_mut(idx) else {
            return Ok(());
        };
        let published = matches!(u.last_publish, Some(PublisherEvent::Published { .. }));
        let subscribed = (u.subscribed || !u.states.is_empty()) && u.terminated.is_none();
        let old = [
            Some(u.subscriber.call_id().to_owned()),
            u.publish_call_id.take(),
        ];
        u.publisher = Publisher::new(driver.clone(), SplitMix64(seed), publish_expires);
        u.subscriber = Subscriber::new(driver, SplitMix64(seed.rotate_left(32)), subscribe_expires);
        u.subscribed = false;
        for c in old.into_iter().flatten() {
            self.by_call_id.remove(&c);
        }
        if published {
            let tokens = self
                .users
                .get(idx)
                .map(|u| u.tokens.clone())
                .ok_or_else(|| fail(7, "no such session"))?;
            self.republish(idx, tokens).await?;
        }
        if subscribed {
            self.subscribe(idx).await?;
        }
        Ok(())
    }

    /// Subscribes to the reg event package (RFC 3680) for its own public user identity
    /// through the current SIP core, as IMS UEs do (TS 24.229 §5.1.1.3), answering each
    /// NOTIFY with 200 OK on the connection it came on; waits for the answer and the first
    /// NOTIFY. The reginfo bodies are in [`Ue::reg_notifications`].
    pub async fn subscribe_reg(&mut self, expires: u32) -> Result<(), StepFailure> {
        let impu = self.config.public_user_identity.clone();
        let call_id = format!("{}@{}", hex(&mut self.rng), self.local.ip());
        let method = Method::parse("SUBSCRIBE").map_err(|e| fail(11, e.to_string()))?;
        let uri = Uri::parse(&impu).map_err(|e| fail(11, e.to_string()))?;
        let req = Request::builder(method, uri)
            .header(
                "Via",
                format!(
                    "SIP/2.0/TLS {};branch=z9hG4bK{};rport",
                    self.local,
                    hex(&mut self.rng)
                ),
            )
            .header("Max-Forwards", 70)
            .header("From", format!("<{impu}>;tag={}", hex(&mut self.rng)))
            .header("To", format!("<{impu}>"))
            .header("Call-ID", &call_id)
            .header("CSeq", "1 SUBSCRIBE")
            .header("Contact", format!("<{}>", self.reg.contact))
            .header("Event", "reg")
            .header("Accept", "application/reginfo+xml")
            .header("Expires", expires)
            .build()
            .map_err(|e| fail(11, format!("building SUBSCRIBE: {e}")))?;
        self.trace.bind(&call_id, &self.config.ue_label);
        self.reg_watch = Some(RegWatch {
            call_id,
            status: None,
            notifies: Vec::new(),
        });
        self.send(Message::Request(req), 11).await?;
        self.pump_until(16, |ue| {
            ue.reg_watch.as_ref().is_some_and(|w| match w.status {
                Some(s) if (200..300).contains(&s) => !w.notifies.is_empty(),
                Some(_) => true,
                None => false,
            })
        })
        .await?;
        match self.reg_watch.as_ref().and_then(|w| w.status) {
            Some(s) if (200..300).contains(&s) => Ok(()),
            other => Err(fail(14, format!("reg event SUBSCRIBE answered {other:?}"))),
        }
    }

    /// The reginfo documents NOTIFYed to the reg event subscription, in order.
    #[must_use]
    pub fn reg_notifications(&self) -> &[String] {
        self.reg_watch.as_ref().map_or(&[], |w| &w.notifies)
    }

    /// Waits until the reg event subscription has seen `n` NOTIFYs in total.
    pub async fn wait_reg_notifications(&mut self, n: usize) -> Result<(), StepFailure> {
        self.pump_until(16, |ue| ue.reg_notifications().len() >= n)
            .await
    }

    /// Whether the last REGISTER was accepted.
    #[must_use]
    pub fn is_registered(&self) -> bool {
        self.reg.registered
    }

    fn register_request(&mut self, expires: u32) -> Result<Request, StepFailure> {
        self.reg.cseq += 1;
        let impu = &self.config.public_user_identity;
        let domain = impu.rsplit_once('@').map_or("example.com", |(_, d)| d);
        let uri = Uri::parse(&format!("sip:{domain}")).map_err(|e| fail(3, e.to_string()))?;
        let method = Method::parse("REGISTER").map_err(|e| fail(3, e.to_string()))?;
        let contact = format!(
            "<{}>;+sip.instance=\"{}\";+g.3gpp.mcptt;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.mcptt\";expires={expires}",
            self.reg.contact, self.reg.instance
        );
        Request::builder(method, uri)
            .header(
                "Via",
                format!(
                    "SIP/2.0/TLS {};branch=z9hG4bK{};rport",
                    self.local,
                    hex(&mut self.rng)
                ),
            )
            .header("Max-Forwards", 70)
            .header("From", format!("<{impu}>;tag={}", self.reg.from_tag))
            .header("To", format!("<{impu}>"))
            .header("Call-ID", &self.reg.call_id)
            .header("CSeq", format!("{} REGISTER", self.reg.cseq))
            .header("Contact", contact)
            .header("Expires", expires)
            .header("Supported", "path, outbound")
            .build()
            .map_err(|e| fail(3, format!("building REGISTER: {e}")))
    }

    /// Steps 3–4: REGISTER the current connection's Contact and wait for the final answer.
    pub async fn register(&mut self) -> Result<(), StepFailure> {
        self.reg.contact = contact_uri(&self.config.public_user_identity, self.local);
        let req = self.register_request(self.reg.expires)?;
        self.reg.last_status = None;
        self.send(Message::Request(req), 3).await?;
        self.pump_until(4, |ue| ue.reg.last_status.is_some())
            .await?;
        match self.reg.last_status {
            Some(s) if (200..300).contains(&s) => Ok(()),
            Some(s) => Err(fail(4, format!("REGISTER answered {s}"))),
            None => Err(fail(4, "no answer to REGISTER")),
        }
    }

    /// De-registers (REGISTER `expires=0`) and waits for the answer.
    pub async fn deregister(&mut self) -> Result<(), StepFailure> {
        let req = self.register_request(0)?;
        self.reg.last_status = None;
        self.send(Message::Request(req), 3).await?;
        self.pump_until(4, |ue| ue.reg.last_status.is_some()).await
    }

    fn driver_config(&self) -> DriverConfig {
        let mut c = DriverConfig::new(
            self.config.public_user_identity.clone(),
            self.local.to_string(),
            self.config.psi.clone(),
        );
        c.contact.clone_from(&self.reg.contact);
        c
    }

    /// Steps 7–10: signs `label` in with `tokens` (PUBLISH carrying the access token) and
    /// waits for the answer. Returns the index of the session.
    pub async fn publish(&mut self, label: &str, tokens: Tokens) -> Result<usize, StepFailure> {
        let seed = {
            use mcptt_service_state::Random as _;
            self.rng.next_u64()
        };
        let mut publisher = Publisher::new(
            self.driver_config(),
            SplitMix64(seed),
            self.config.publish_expires,
        );
        let subscriber = Subscriber::new(
            self.driver_config(),
            SplitMix64(seed.rotate_left(32)),
            self.config.subscribe_expires,
        );
        let now = self.clock.now();
        publisher.publish(
            now,
            &tokens.access_token,
            Some(&self.config.client_id),
            None,
        );
        let idx = self.users.len();
        self.users.push(UserSession {
            label: label.to_owned(),
            tokens,
            publisher,
            subscriber,
            publish_call_id: None,
            last_publish: None,
            subscribed: false,
            states: Vec::new(),
            terminated: None,
        });
        self.flush_drivers(7).await?;
        self.pump_until(10, |ue| {
            ue.users.get(idx).is_some_and(|u| u.last_publish.is_some())
        })
        .await?;
        Ok(idx)
    }

    /// Re-publishes a fresh token for session `idx` (after a token refresh) and waits for the
    /// answer.
    pub async fn republish(&mut self, idx: usize, tokens: Tokens) -> Result<(), StepFailure> {
        let now = self.clock.now();
        let client_id = self.config.client_id.clone();
        let Some(u) = self.users.get_mut(idx) else {
            return Err(fail(7, "no such session"));
        };
        u.publisher
            .publish(now, &tokens.access_token, Some(&client_id), None);
        u.tokens = tokens;
        u.last_publish = None;
        self.flush_drivers(7).await?;
        self.pump_until(10, |ue| {
            ue.users.get(idx).is_some_and(|u| u.last_publish.is_some())
        })
        .await
    }

    /// Steps 11–18: subscribes session `idx` to its service state (with the access token in an
    /// mcptt-info body, naming the user) and waits for the first NOTIFY to be answered.
    pub async fn subscribe(&mut self, idx: usize) -> Result<(), StepFailure> {
        let now = self.clock.now();
        let client_id = self.config.client_id.clone();
        let psi = self.config.psi.clone();
        let Some(u) = self.users.get_mut(idx) else {
            return Err(fail(11, "no such session"));
        };
        let info = McpttInfo {
            access_token: Some(u.tokens.access_token.clone()),
            client_id: Some(client_id),
            request_uri: Some(psi),
        };
        u.subscriber
            .subscribe(now, Some(info))
            .map_err(|e| fail(11, format!("SUBSCRIBE: {e}")))?;
        let sub_call_id = u.subscriber.call_id().to_owned();
        let label = u.label.clone();
        self.trace.bind(&sub_call_id, &label);
        self.by_call_id.insert(sub_call_id, idx);
        self.flush_drivers(11).await?;
        let before = self.users.get(idx).map_or(0, |u| u.states.len());
        self.pump_until(16, |ue| {
            ue.users
                .get(idx)
                .is_some_and(|u| u.states.len() > before || u.terminated.is_some())
        })
        .await?;
        if let Some(Some(reason)) = self.users.get(idx).and_then(|u| u.terminated.clone()) {
            return Err(fail(14, format!("subscription refused or ended: {reason}")));
        }
        Ok(())
    }

    /// Waits until session `idx` has seen `n` NOTIFYed states in total.
    pub async fn wait_states(&mut self, idx: usize, n: usize) -> Result<(), StepFailure> {
        self.pump_until(16, |ue| {
            ue.users
                .get(idx)
                .is_some_and(|u| u.states.len() >= n || u.terminated.is_some())
        })
        .await
    }

    /// Ends session `idx`'s subscription (SUBSCRIBE `Expires: 0`) and waits for it to end.
    pub async fn unsubscribe(&mut self, idx: usize) -> Result<(), StepFailure> {
        let now = self.clock.now();
        let Some(u) = self.users.get_mut(idx) else {
            return Err(fail(11, "no such session"));
        };
        u.subscriber
            .unsubscribe(now)
            .map_err(|e| fail(11, e.to_string()))?;
        self.flush_drivers(11).await?;
        self.pump_until(16, |ue| {
            ue.users.get(idx).is_some_and(|u| u.terminated.is_some())
        })
        .await
    }

    /// Signs session `idx` off (PUBLISH `Expires: 0`).
    pub async fn sign_off(&mut self, idx: usize) -> Result<(), StepFailure> {
        let now = self.clock.now();
        let Some(u) = self.users.get_mut(idx) else {
            return Err(fail(7, "no such session"));
        };
        u.publisher
            .sign_off(now)
            .map_err(|e| fail(7, e.to_string()))?;
        u.last_publish = None;
        self.flush_drivers(7).await?;
        self.pump_until(10, |ue| {
            ue.users.get(idx).is_some_and(|u| u.last_publish.is_some())
        })
        .await
    }

    /// Closes the connection(s).
    pub async fn close(self) {
        for c in &self.other_conns {
            c.close().await;
        }
        self.conn.close().await;
        self.transport.shutdown(Duration::from_millis(100)).await;
    }

    async fn send(&mut self, msg: Message, step: u8) -> Result<(), StepFailure> {
        self.conn
            .send(&msg)
            .await
            .map_err(|e| fail(step, format!("send to the SIP core failed: {e}")))
    }

    /// Sends what the drivers queued, binding their Call-IDs to the sessions' labels first.
    async fn flush_drivers(&mut self, step: u8) -> Result<(), StepFailure> {
        for (conn, msg) in std::mem::take(&mut self.replies) {
            if let Err(e) = conn.send(&msg).await {
                tracing::warn!(error = %e, "answer to the SIP core not sent");
            }
        }
        let mut out: Vec<Bytes> = Vec::new();
        for (idx, u) in self.users.iter_mut().enumerate() {
            while let Some(t) = u.publisher.poll_transmit() {
                let bytes = Bytes::from(t.bytes);
                if u.publish_call_id.is_none()
                    && let Ok(m) = Message::parse(bytes.clone())
                    && let Some(c) = call_id(&m)
                {
                    self.trace.bind(&c, &u.label);
                    self.by_call_id.insert(c.clone(), idx);
                    u.publish_call_id = Some(c);
                }
                out.push(bytes);
            }
            while let Some(t) = u.subscriber.poll_transmit() {
                out.push(Bytes::from(t.bytes));
            }
        }
        for bytes in out {
            self.conn
                .send_bytes(bytes)
                .await
                .map_err(|e| fail(step, format!("send to the SIP core failed: {e}")))?;
        }
        Ok(())
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.users
            .iter()
            .flat_map(|u| [u.publisher.poll_timeout(), u.subscriber.poll_timeout()])
            .flatten()
            .min()
    }

    /// Drives the connection and the drivers until `done` holds; `step` names the step that
    /// failed if the connection ends or the wait exceeds the configured timeout.
    pub async fn pump_until(
        &mut self,
        step: u8,
        done: impl Fn(&Self) -> bool,
    ) -> Result<(), StepFailure> {
        let limit = tokio::time::Instant::now() + self.config.timeout;
        self.pump(step, done, limit, true).await
    }

    /// Drives the connection and the drivers (their refresh timers included) for `d`; fails
    /// only if the connection ends.
    pub async fn pump_for(&mut self, d: Duration) -> Result<(), StepFailure> {
        self.pump(0, |_| false, tokio::time::Instant::now() + d, false)
            .await
    }

    async fn pump(
        &mut self,
        step: u8,
        done: impl Fn(&Self) -> bool,
        limit: tokio::time::Instant,
        limit_is_error: bool,
    ) -> Result<(), StepFailure> {
        while !done(self) {
            if self.closed {
                return Err(fail(step, "connection to the SIP core closed"));
            }
            let deadline = self.next_deadline();
            let clock = self.clock.clone();
            tokio::select! {
                ev = self.events.recv() => match ev {
                    Some(Event::Message(rx)) => self.on_message(rx.message, rx.connection),
                    Some(Event::Closed { connection, .. }) => {
                        // A stale close of a connection already replaced is not ours.
                        if connection.id == self.conn.id() {
                            self.closed = true;
                        }
                    }
                    None => self.closed = true,
                    Some(_) => {}
                },
                () = clock.sleep_until(deadline) => {
                    let now = self.clock.now();
                    for u in &mut self.users {
                        u.publisher.handle_timeout(now);
                        u.subscriber.handle_timeout(now);
                    }
                }
                () = tokio::time::sleep_until(limit) => {
                    if !limit_is_error {
                        return Ok(());
                    }
                    return Err(fail(step, format!("timed out after {:?}", self.config.timeout)));
                }
            }
            self.drain_events();
            self.flush_drivers(step).await?;
        }
        Ok(())
    }

    fn on_message(&mut self, msg: Message, conn: ConnectionHandle) {
        self.trace.observe(Actor::Ue, &msg, Actor::SipCore, || {
            self.config.ue_label.clone()
        });
        let now = self.clock.now();
        let cid = call_id(&msg).unwrap_or_default();
        if let Some(w) = self.reg_watch.as_mut()
            && w.call_id == cid
        {
            match &msg {
                Message::Response(r) if r.status() >= 200 => w.status = Some(r.status()),
                Message::Response(_) => {}
                Message::Request(r) => {
                    if r.method().as_str() == "NOTIFY" {
                        w.notifies
                            .push(String::from_utf8_lossy(&r.body()).into_owned());
                    }
                    if let Ok(ok) = Response::builder_for(r, 200).build() {
                        self.replies.push((conn, Message::Response(ok)));
                    }
                }
            }
            return;
        }
        match &msg {
            Message::Response(r) if method(&msg) == "REGISTER" && cid == self.reg.call_id => {
                if r.status() >= 200 {
                    self.reg.last_status = Some(r.status());
                    self.reg.registered = (200..300).contains(&r.status());
                    self.reg.last_response = Some(r.clone());
                }
            }
            Message::Response(r) => {
                if let Some(u) = self
                    .by_call_id
                    .get(&cid)
                    .and_then(|&i| self.users.get_mut(i))
                {
                    let res = if method(&msg) == "PUBLISH" {
                        u.publisher.handle_response(now, r)
                    } else {
                        u.subscriber.handle_response(now, r)
                    };
                    if let Err(e) = res {
                        tracing::warn!(error = %e, "response refused by the driver");
                    }
                }
            }
            Message::Request(r) => {
                if let Some(u) = self
                    .by_call_id
                    .get(&cid)
                    .and_then(|&i| self.users.get_mut(i))
                {
                    if let Err(e) = u.subscriber.handle_request(now, r) {
                        tracing::warn!(error = %e, "NOTIFY refused by the subscriber");
                    }
                } else {
                    tracing::warn!(call_id = %cid, "request for no known dialog");
                }
            }
        }
    }

    fn drain_events(&mut self) {
        for u in &mut self.users {
            while let Some(ev) = u.publisher.poll_event() {
                u.last_publish = Some(ev);
            }
            while let Some(ev) = u.subscriber.poll_event() {
                match ev {
                    SubscriberEvent::Active { .. } => u.subscribed = true,
                    SubscriberEvent::State(s) => u.states.push(s),
                    SubscriberEvent::Terminated { reason } => u.terminated = Some(reason),
                    _ => {}
                }
            }
        }
    }
}

/// Runs one sign-in through steps 1–18 on a fresh UE and returns the state the first NOTIFY
/// showed (the `ue` binary and simple callers).
pub async fn run(
    config: &UeConfig,
    trace: &Trace,
    clock: &Clock,
) -> Result<UeOutcome, StepFailure> {
    let tokens = super::login::login(config, trace, clock).await?;
    let mut ue = Ue::connect(config.clone(), trace.clone(), clock.clone()).await?;
    ue.register().await?;
    let idx = ue.publish(&config.label, tokens).await?;
    ue.subscribe(idx).await?;
    let outcome = ue
        .users()
        .get(idx)
        .and_then(UserSession::last_state)
        .map(|s| UeOutcome {
            state: combined(s.state).to_owned(),
            authorisation: s.authorisation.as_str().to_owned(),
        })
        .ok_or_else(|| fail(16, "no service state NOTIFYed"))?;
    ue.close().await;
    Ok(outcome)
}

/// The wire name of a combined state.
#[must_use]
pub fn combined(state: mcptt_service_state::CombinedState) -> &'static str {
    match state {
        mcptt_service_state::CombinedState::FullAccess => "full-access",
        mcptt_service_state::CombinedState::Limited => "limited",
        mcptt_service_state::CombinedState::None => "none",
    }
}

/// The `ue` binary: steps 1–18, then stays signed in — re-REGISTERs, refreshes its token
/// (refresh_token grant + PUBLISH with the new token) before they lapse, lets the drivers
/// refresh publication and subscription, prints every message it receives — until `stop`
/// completes (Ctrl-C), then signs off cleanly: PUBLISH `Expires: 0`, SUBSCRIBE `Expires: 0`,
/// REGISTER `expires=0`.
pub async fn run_until(
    config: &UeConfig,
    trace: &Trace,
    clock: &Clock,
    stop: impl Future<Output = ()>,
) -> Result<UeOutcome, StepFailure> {
    let mut tokens = super::login::login(config, trace, clock).await?;
    let mut ue = Ue::connect(config.clone(), trace.clone(), clock.clone()).await?;
    ue.register().await?;
    let idx = ue.publish(&config.label, tokens.clone()).await?;
    ue.subscribe(idx).await?;
    let renew = |secs: u64| clock.now() + Duration::from_secs(secs.saturating_mul(3) / 4);
    let mut reregister_at = renew(u64::from(config.register_expires));
    let mut token_at = renew(tokens.expires_in.unwrap_or(3600));
    tokio::pin!(stop);
    loop {
        let next = reregister_at.min(token_at);
        let wait = next.saturating_duration_since(clock.now());
        let pumped = tokio::select! {
            () = &mut stop => break,
            r = ue.pump_for(wait) => r,
        };
        if let Err(e) = pumped {
            if !ue.is_closed() {
                return Err(e);
            }
            // The SIP core went away (restart, network): connect, register, publish and
            // subscribe again.
            tracing::warn!("connection to the SIP core lost; recovering");
            ue.recover().await?;
            reregister_at = renew(u64::from(config.register_expires));
        }
        if clock.now() >= reregister_at {
            ue.register().await?;
            reregister_at = renew(u64::from(config.register_expires));
        }
        if clock.now() >= token_at {
            tokens = super::login::refresh(config, &tokens, trace, clock).await?;
            ue.republish(idx, tokens.clone()).await?;
            token_at = renew(tokens.expires_in.unwrap_or(3600));
        }
    }
    let outcome = ue
        .users()
        .get(idx)
        .and_then(UserSession::last_state)
        .map(|s| UeOutcome {
            state: combined(s.state).to_owned(),
            authorisation: s.authorisation.as_str().to_owned(),
        })
        .ok_or_else(|| fail(16, "no service state NOTIFYed"))?;
    ue.sign_off(idx).await?;
    ue.unsubscribe(idx).await?;
    ue.deregister().await?;
    ue.close().await;
    Ok(outcome)
}
