//! MCPTT server: accepts third-party REGISTER (`mcptt-registration`'s registration view),
//! PUBLISH and SUBSCRIBE (`mcptt-service-state`'s server), validates access tokens against the
//! IdMS JWKS (`mcptt-token`), and sends NOTIFYs. All protocol rules live in those crates; this
//! task only moves messages between them and the `mcptt-tls` transport.
//!
//! With several SIP core instances connected, a NOTIFY goes to the SIP core named by the
//! `;core=` tag of its route set's first entry (the core that recorded the route holds the
//! UE's connection; each core announces its tag with an `OPTIONS` on connecting, answered
//! here and not recorded in the trace), else through the SIP core connection its SUBSCRIBE
//! came on; a response goes back to the core tagged in its top `Via`; with one SIP core
//! connected, everything goes to it.
//!
//! Publications, subscriptions and service state live in the store named by
//! [`McpttServerConfig::store`]: this process's memory (the default), or Redis
//! (`mcptt-store-redis`), shared by several MCPTT server instances. With Redis:
//! - every instance has a random [`ServerConfig::instance_id`] (OS CSPRNG), shown by
//!   [`McpttServerHandle::instance_id`];
//! - the server's calls that touch the store do blocking network I/O, so they run in
//!   [`tokio::task::block_in_place`];
//! - the store's change feed (other instances' writes) is read on a thread of its own and
//!   handed to [`Server::handle_remote_change`] (and [`Server::resync`] after the feed
//!   reconnected), so a subscription held here is NOTIFYed of a PUBLISH, token expiry or
//!   deregistration another instance handled;
//! - each instance holds a lease on the subscription dialogs it serves, renewed at half of
//!   [`McpttServerConfig::dialog_lease`]; when an instance dies, another takes its dialogs
//!   over once the lease ran out (within the lease plus at most
//!   [`STORE_POLL`] of this task's store polling), and NOTIFYs them from then on;
//! - the task also wakes every [`STORE_POLL`] to run due store work (expiries and leases
//!   of other instances' records), since the store's earliest deadline is cached;
//! - while Redis is unreachable, requests are answered 503 with Retry-After and the reason
//!   is logged.
//!
//! The third-party registration view (`mcptt_registration::RegistrationView`) stays per
//! instance. With a shared store it reports a third-party REGISTER with `Expires: 0` even
//! for a UE whose earlier REGISTERs went to another (perhaps dead) instance
//! (`report_unknown_deregistrations`), so the de-registration reaches the shared service
//! state wherever it lands. Known gap: a view entry of an instance the SIP cores moved away
//! from (fail-over, then back) still expires on its own timer and writes a de-registration
//! until the next third-party REGISTER refresh writes it back.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

use mcptt_registration::{RegistrationView, ServerConfig as ViewConfig, ServerEvent as ViewEvent};
use mcptt_service_state::server::{Server, ServerConfig, ServerEvent};
use mcptt_service_state::store::StoreKey;
use mcptt_service_state::{RegistrationChange, SplitMix64, UeDirectory};
use mcptt_sip::{KnownHeader, Message};
use mcptt_store_redis::{ServiceStateChoice, TimeBase};
use mcptt_tls::{ConnectionHandle, ConnectionId, Event, Transport, TransportConfig};
use mcptt_token::{JwkSet, KeyStore, Validator, ValidatorConfig};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::clock::Clock;
use super::config::{McpttServerConfig, Transport as Kind};
use super::store_io::{Remote, blocking_io, next_remote, os_random, start_feed};
use super::wire::{call_id, uri_of, user_of};
use super::{ActorError, net};
use crate::trace::{Actor, FastState, Observation, Trace};

/// Most subscription dialogs whose SIP core connection is remembered.
const MAX_DIALOG_ROUTES: usize = 100_000;
/// Most SIP core tags remembered.
const MAX_CORE_TAGS: usize = 1024;
/// With a shared store, the longest the task sleeps before running due store work (other
/// instances' expiries, dialogs whose holder's lease ran out).
pub const STORE_POLL: Duration = Duration::from_secs(1);

/// A running MCPTT server task.
#[derive(Debug)]
pub struct McpttServerHandle {
    local_addr: SocketAddr,
    counts: watch::Receiver<ServerCounts>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    transport: Transport,
    instance_id: u64,
    store: &'static str,
}

/// What the server holds, as of its last event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerCounts {
    /// Live publications (users signed in on a UE).
    pub publications: usize,
    /// Live `mcptt-service-state` subscriptions.
    pub subscriptions: usize,
    /// Public user identities with a registered UE (third-party registration view).
    pub registered_identities: usize,
    /// Requests received from SIP cores so far (`OPTIONS` not counted).
    pub requests: u64,
    /// NOTIFYs sent so far.
    pub notifies: u64,
}

impl McpttServerHandle {
    /// Publication, subscription and registration counts after the last handled input.
    #[must_use]
    pub fn counts(&self) -> ServerCounts {
        *self.counts.borrow()
    }

    /// Waits until the counts satisfy `done`, or `timeout` passes; returns the last counts
    /// and whether `done` held.
    pub async fn wait_counts(
        &self,
        timeout: Duration,
        done: impl FnMut(&ServerCounts) -> bool,
    ) -> (ServerCounts, bool) {
        let mut rx = self.counts.clone();
        let ok = matches!(
            tokio::time::timeout(timeout, rx.wait_for(done)).await,
            Ok(Ok(_))
        );
        (self.counts(), ok)
    }

    /// The address it listens on.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// This instance's id among the instances sharing the store
    /// ([`ServerConfig::instance_id`], from the OS CSPRNG).
    #[must_use]
    pub fn instance_id(&self) -> u64 {
        self.instance_id
    }

    /// The kind of store this server runs with (`memory` or `redis`; no address, so no
    /// credential of a URL is printed).
    #[must_use]
    pub fn store(&self) -> &'static str {
        self.store
    }

    /// Simulates the death of this instance: the task is aborted at once (nothing is
    /// handed over or released: its dialog leases run out in the store) and every
    /// connection is dropped.
    pub async fn kill(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        self.transport.shutdown(Duration::ZERO).await;
    }

    /// Stops the task and waits for it to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.transport.shutdown(Duration::from_millis(200)).await;
    }
}

/// The token validator over the configured IdMS keys (none: an empty key set, so every token
/// is refused with the reason logged).
fn validator(config: &McpttServerConfig) -> Result<Validator, ActorError> {
    let (issuer, set) = match &config.keys {
        Some(k) => (
            k.issuer.clone(),
            JwkSet::from_json(&k.jwks_json)
                .map_err(|e| ActorError::Config(format!("IdMS JWKS: {e}")))?,
        ),
        None => {
            tracing::warn!("no IdMS keys configured: every access token will be refused");
            ("urn:mcptt-examples:no-idms".to_owned(), JwkSet::new())
        }
    };
    let mut scopes = config.scopes.iter();
    let first = scopes
        .next()
        .cloned()
        .unwrap_or_else(|| mcptt_token::SCOPE_PTT_SERVER.to_owned());
    let mut vc = ValidatorConfig::new(issuer, config.audience.clone())
        .scope(first)
        .leeway(config.leeway);
    for s in scopes {
        vc = vc.accept_scope(s.clone());
    }
    Validator::new(vc, KeyStore::new(set))
        .map_err(|e| ActorError::Config(format!("token validator: {e}")))
}

/// Binds the listener and starts the task, recording what it receives.
pub async fn spawn(
    config: McpttServerConfig,
    trace: Trace,
    clock: Clock,
) -> Result<McpttServerHandle, ActorError> {
    let validator = validator(&config)?;
    let (transport, events) = Transport::new(TransportConfig::default());
    let bind =
        |e: mcptt_tls::Error| ActorError::Config(format!("listen on {}: {e}", config.listen));
    let local_addr = match config.transport {
        Kind::Tls => transport
            .listen_tls(config.listen, net::server_config(&config.tls)?)
            .await
            .map_err(bind)?,
        Kind::Tcp => transport.listen_tcp(config.listen).await.map_err(bind)?,
    };
    let host = user_of(&config.node_uri);
    let mut sc = ServerConfig::new(host, config.psi.clone());
    sc.transport = match config.transport {
        Kind::Tls => "TLS".into(),
        Kind::Tcp => "TCP".into(),
    };
    sc.max_subscribe_expires = config.subscription_expires;
    sc.instance_id = os_random()?;
    sc.dialog_lease = config.dialog_lease;
    let instance_id = sc.instance_id;
    let mut dir = UeDirectory::new();
    for (impu, k) in &config.ue_directory {
        dir.insert(impu.clone(), *k);
    }
    sc.directory = dir;
    let seed = os_random()?;
    let store = blocking_io(|| ServiceStateChoice::open(&config.store, TimeBase::system()))
        .map_err(|e| ActorError::Config(format!("service-state store: {e}")))?;
    let blocking_store = matches!(store, ServiceStateChoice::Redis(_));
    let remote = start_feed(
        || store.subscribe_changes(),
        "service-state",
        "mcptt-server-change-feed",
        |key| key,
    )?;
    let server = Server::with_store(sc, validator, SplitMix64(seed), store);
    let view = RegistrationView::new(
        ViewConfig {
            trusted_cores: config.trusted_cores.iter().cloned().collect(),
            server_uri: config.node_uri.clone(),
            // Sharing state: the UE's REGISTERs may have reached another instance.
            report_unknown_deregistrations: blocking_store,
            ..ViewConfig::default()
        },
        seed.rotate_left(17),
    );
    let (stop, stopped) = oneshot::channel();
    let (counts_tx, counts) = watch::channel(ServerCounts::default());
    let task = tokio::spawn(run(
        State {
            server,
            blocking_store,
            resync_pending: false,
            view,
            core: None,
            cores: HashSet::default(),
            dialog_cores: HashMap::default(),
            core_tags: HashMap::default(),
            requests: 0,
            notifies: 0,
            replies: Vec::new(),
            out: Vec::new(),
            tx: Vec::new(),
            written: Vec::new(),
            counts: counts_tx,
            trace,
            clock,
        },
        events,
        stopped,
        remote,
    ));
    Ok(McpttServerHandle {
        local_addr,
        counts,
        stop: Some(stop),
        task: Some(task),
        transport,
        instance_id,
        store: if blocking_store { "redis" } else { "memory" },
    })
}

struct State {
    server: Server<Validator, SplitMix64, ServiceStateChoice>,
    /// The store does blocking network I/O (Redis): server calls go through
    /// [`blocking_io`].
    blocking_store: bool,
    /// The server owes a resync (the change feed reconnected, or a remote change could not
    /// be applied).
    resync_pending: bool,
    view: RegistrationView,
    /// The SIP core connection NOTIFYs go to (the last one a message came on).
    core: Option<ConnectionHandle>,
    /// Live SIP core connections. (These maps, touched on every message, hash with
    /// foldhash seeded per process, as the SIP core's and the trace's do, not SipHash.)
    cores: HashSet<ConnectionId, FastState>,
    /// Subscription Call-ID → the SIP core connection its SUBSCRIBE came on.
    dialog_cores: HashMap<String, ConnectionHandle, FastState>,
    /// SIP core tag (`;core=` of its `Via` and `Record-Route`) → its latest connection.
    core_tags: HashMap<String, ConnectionHandle, FastState>,
    /// Requests received (counts).
    requests: u64,
    /// NOTIFYs sent (counts).
    notifies: u64,
    /// Responses built here (third-party REGISTER), sent in order by `drain`.
    replies: Vec<(ConnectionHandle, Message)>,
    /// What this loop turn sends, in order (queued on its connection, each connection
    /// flushed once per turn). Emptied, not dropped, by `drain`: its room is reused.
    out: Vec<(ConnectionHandle, Out)>,
    /// The service-state server's messages of this turn, end to end (taken with
    /// `poll_transmit_into`: no buffer per message); [`Out::Bytes`] ranges point into it.
    tx: Vec<u8>,
    /// The connections `drain` wrote to (kept for its room).
    written: Vec<ConnectionHandle>,
    counts: watch::Sender<ServerCounts>,
    trace: Trace,
    clock: Clock,
}

/// Most transport events handled per loop turn before the answers are written.
const EVENT_BATCH: usize = 64;

/// Largest [`State::tx`] kept between turns (a larger one, after a burst of NOTIFYs, is
/// let go).
const TX_KEEP: usize = 64 * 1024;

/// One message to send.
// Messages are moved once, into a reused `Vec`: boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
enum Out {
    /// Built here (answers to third-party REGISTERs and `OPTIONS`).
    Message(Message),
    /// Encoded by the service-state server: where it is in [`State::tx`].
    Bytes(std::ops::Range<usize>),
}

async fn run(
    mut st: State,
    mut events: mcptt_tls::Events,
    mut stopped: oneshot::Receiver<()>,
    mut remote: Option<mpsc::Receiver<Remote<StoreKey>>>,
) {
    let mut batch = Vec::with_capacity(EVENT_BATCH);
    loop {
        let mut deadline = [st.store_io(|s| s.poll_timeout()), st.view.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        if st.blocking_store {
            let poll = st.clock.now() + STORE_POLL;
            deadline = Some(deadline.map_or(poll, |d| d.min(poll)));
        }
        let clock = st.clock.clone();
        let mut feed_ended = false;
        tokio::select! {
            _ = &mut stopped => break,
            // Every event queued is handled before anything is written, so the answers of
            // one batch for one SIP core connection leave in one TLS write.
            n = events.recv_many(&mut batch, EVENT_BATCH) => {
                if n == 0 {
                    break;
                }
                for ev in batch.drain(..) {
                    st.on_event(ev);
                    // The state machines' consequences are taken in order after each event
                    // (a REGISTER's view events reach the service state before the next
                    // PUBLISH is handled); only the writes wait for the end of the batch.
                    st.process();
                }
            }
            () = clock.sleep_until(deadline) => {
                let now = st.clock.now();
                st.store_io(|s| s.handle_timeout(now));
                st.view.handle_timeout(now);
                st.resync_if_pending();
            }
            r = next_remote(&mut remote) => match r {
                Some(r) => st.on_remote(r),
                None => feed_ended = true,
            },
        }
        if feed_ended {
            tracing::error!(
                "the service-state change feed stopped: changes other MCPTT server instances make are no longer NOTIFYed here"
            );
            remote = None;
        }
        st.drain().await;
    }
}

/// The `core` parameter of a header value (`<sip:h;lr;core=T>` or `SIP/2.0/TLS h;core=T`):
/// the first piece after a `;` or `>` that reads `core=T` (name case-insensitive, both sides
/// trimmed). One pass over the bytes: the separators are ASCII, so every piece is a `str`.
fn core_tag(value: &str) -> Option<&str> {
    let piece = |from: usize, to: usize| {
        let (name, tag) = value.get(from..to)?.split_once('=')?;
        name.trim().eq_ignore_ascii_case("core").then(|| tag.trim())
    };
    let mut from = None;
    for (i, b) in value.bytes().enumerate() {
        if b == b';' || b == b'>' {
            if let Some(tag) = from.and_then(|f| piece(f, i)) {
                return Some(tag);
            }
            from = Some(i + 1);
        }
    }
    from.and_then(|f| piece(f, value.len()))
}

impl State {
    /// Runs a server call, through [`blocking_io`] when the store does network I/O.
    fn store_io<R>(
        &mut self,
        f: impl FnOnce(&mut Server<Validator, SplitMix64, ServiceStateChoice>) -> R,
    ) -> R {
        if self.blocking_store {
            blocking_io(|| f(&mut self.server))
        } else {
            f(&mut self.server)
        }
    }

    /// A change another instance wrote (from the change feed).
    fn on_remote(&mut self, remote: Remote<StoreKey>) {
        match remote {
            Remote::Change(key) => {
                tracing::debug!(?key, "service-state change from another instance");
                let now = self.clock.now();
                if let Err(e) = self.store_io(|s| s.handle_remote_change(now, &key)) {
                    tracing::error!(?key, error = %e, "remote service-state change not applied; resyncing later");
                    self.resync_pending = true;
                }
            }
            Remote::Resync => self.resync_pending = true,
        }
        self.resync_if_pending();
    }

    /// Catches up with what the change feed may have missed, if owed.
    fn resync_if_pending(&mut self) {
        if !self.resync_pending {
            return;
        }
        let now = self.clock.now();
        match self.store_io(|s| s.resync(now)) {
            Ok(()) => self.resync_pending = false,
            Err(e) => tracing::error!(error = %e, "service-state resync failed; retried later"),
        }
    }

    /// The SIP core connection an outgoing message goes to: with several SIP cores, the one
    /// tagged in a request's first `Route` or a response's top `Via`, else the one its
    /// dialog's SUBSCRIBE came on (dropped once the NOTIFY ends the subscription);
    /// otherwise the last one heard from.
    fn core_for(&mut self, bytes: std::ops::Range<usize>) -> Option<ConnectionHandle> {
        if self.cores.len() <= 1 {
            return self.core.clone();
        }
        let bytes = Bytes::copy_from_slice(self.tx.get(bytes).unwrap_or_default());
        let Ok(msg) = Message::parse(bytes) else {
            return self.core.clone();
        };
        let tagged = match &msg {
            Message::Request(r) => r.headers().get_known(KnownHeader::Route).and_then(core_tag),
            Message::Response(r) => r.headers().get_known(KnownHeader::Via).and_then(core_tag),
        }
        .and_then(|t| self.core_tags.get(t))
        .filter(|c| !c.is_closed())
        .cloned();
        let routed = call_id(&msg).and_then(|cid| {
            let ended = msg
                .headers()
                .get("Subscription-State")
                .is_some_and(|s| s.trim_start().starts_with("terminated"));
            if ended {
                self.dialog_cores.remove(&cid)
            } else {
                self.dialog_cores.get(&cid).cloned()
            }
        });
        tagged.or(routed).or_else(|| self.core.clone())
    }

    fn on_message(&mut self, msg: Message, conn: ConnectionHandle) {
        if let Message::Request(req) = &msg {
            if let Some(tag) = req.headers().get_known(KnownHeader::Via).and_then(core_tag)
                && (self.core_tags.len() < MAX_CORE_TAGS || self.core_tags.contains_key(tag))
                && self.core_tags.get(tag).is_none_or(|c| c.id() != conn.id())
            {
                self.core_tags.insert(tag.to_owned(), conn.clone());
            }
            if req.method().as_str() == "OPTIONS" {
                // A SIP core announcing itself (not part of the flow, not recorded).
                self.cores.insert(conn.id());
                if self.core.is_none() {
                    self.core = Some(conn.clone());
                }
                if let Ok(resp) = mcptt_sip::Response::builder_for(req, 200).build() {
                    self.replies.push((conn, Message::Response(resp)));
                }
                return;
            }
            self.requests += 1;
        }
        self.trace
            .observe(Actor::McpttServer, &msg, Actor::SipCore, || {
                msg.headers()
                    .get("To")
                    .map(|t| user_of(&uri_of(t)))
                    .unwrap_or_default()
            });
        self.core = Some(conn.clone());
        self.cores.insert(conn.id());
        if let Message::Request(req) = &msg
            && req.method().as_str() == "SUBSCRIBE"
            && let Some(cid) = call_id(&msg)
            && (self.dialog_cores.len() < MAX_DIALOG_ROUTES || self.dialog_cores.contains_key(&cid))
        {
            self.dialog_cores.insert(cid, conn.clone());
        }
        let now = self.clock.now();
        match msg {
            Message::Request(req) if req.method().as_str() == "REGISTER" => {
                // (Named only here: the other requests do not need it. Borrowed from the
                // connection's identity when it has one.)
                let peer = conn.identity().map_or_else(
                    || std::borrow::Cow::Owned(format!("tcp:{}", conn.peer_addr().ip())),
                    |i| std::borrow::Cow::Borrowed(i.label()),
                );
                let resp = self.view.handle_third_party_register(now, &peer, &req);
                self.replies.push((conn, Message::Response(resp)));
            }
            Message::Request(req) => {
                let unix = self.clock.unix();
                self.store_io(|s| s.handle_request(now, unix, &req));
            }
            Message::Response(resp) => self.store_io(|s| s.handle_response(now, &resp)),
        }
    }

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Message(rx) => self.on_message(rx.message, rx.connection),
            Event::Closed { connection, error } => {
                tracing::info!(peer = %connection.peer_addr, ?error, "SIP core connection closed");
                self.cores.remove(&connection.id);
                self.dialog_cores.retain(|_, c| c.id() != connection.id);
                self.core_tags.retain(|_, c| c.id() != connection.id);
                if self.core.as_ref().is_some_and(|c| c.id() == connection.id) {
                    self.core = None;
                }
            }
            _ => {}
        }
    }

    /// Sends what this turn produced: each message is queued on its connection (encoded
    /// into, or its bytes appended to, the connection's write buffer: no copy gathers them
    /// here), then each connection is flushed once (one TLS write per connection). They are
    /// queued for that flush: no connection task is woken to write them meanwhile.
    async fn drain(&mut self) {
        self.process();
        let mut out = std::mem::take(&mut self.out);
        let mut written = std::mem::take(&mut self.written);
        for (conn, item) in out.drain(..) {
            let queued = match item {
                Out::Message(msg) => conn.queue_for_flush(&msg).await,
                Out::Bytes(range) => {
                    conn.queue_slice_for_flush(self.tx.get(range).unwrap_or_default())
                        .await
                }
            };
            match queued {
                Ok(()) if !written.iter().any(|w| w.id() == conn.id()) => written.push(conn),
                Ok(()) => {}
                Err(e) => tracing::warn!(error = %e, "send to SIP core failed"),
            }
        }
        for conn in written.drain(..) {
            conn.flush();
        }
        self.out = out;
        self.written = written;
        if self.tx.capacity() > TX_KEEP {
            self.tx = Vec::new();
        } else {
            self.tx.clear();
        }
        let c = ServerCounts {
            publications: self.server.publication_count(),
            subscriptions: self.server.subscription_count(),
            registered_identities: self.view.identity_count(),
            requests: self.requests,
            notifies: self.notifies,
        };
        self.counts.send_if_modified(|old| {
            let changed = *old != c;
            *old = c;
            changed
        });
    }

    /// Takes the replies and the state machines' events and messages; the messages are
    /// kept in order for [`drain`](Self::drain) to write.
    fn process(&mut self) {
        for (conn, msg) in self.replies.drain(..) {
            self.out.push((conn, Out::Message(msg)));
        }
        let now = self.clock.now();
        while let Some(ev) = self.view.poll_event() {
            let change = match ev {
                ViewEvent::UeRegistered { impu, ue } | ViewEvent::UeRefreshed { impu, ue } => {
                    RegistrationChange {
                        impu,
                        instance: ue.instance,
                        registered: true,
                    }
                }
                ViewEvent::UeDeregistered { impu, ue, reason } => {
                    tracing::info!(%impu, ?reason, "UE deregistered");
                    RegistrationChange {
                        impu,
                        instance: ue.instance,
                        registered: false,
                    }
                }
                other => {
                    tracing::info!(?other, "registration view event");
                    continue;
                }
            };
            self.store_io(|s| s.handle_registration(now, change));
        }
        while self.view.poll_transmit().is_some() {
            // reg event SUBSCRIBEs are not used in this flow (third-party REGISTER is).
        }
        while let Some(ev) = self.server.poll_event() {
            match ev {
                ServerEvent::AuthorisationFailed { impu, reason } => {
                    tracing::warn!(%impu, %reason, "service authorisation failed");
                }
                ServerEvent::StoreUnavailable { what, reason } => {
                    tracing::error!(
                        what,
                        %reason,
                        "service-state store unavailable: requests answered 503 with Retry-After, work retried later"
                    );
                    self.trace.record(
                        Actor::McpttServer,
                        Observation {
                            from: Some(Actor::McpttServer),
                            method: "EVENT".into(),
                            first_line: format!(
                                "(service-state store unavailable during {what}: {reason})"
                            ),
                            ..Observation::default()
                        },
                    );
                }
                other => tracing::info!(?other, "service-state event"),
            }
        }
        loop {
            let start = self.tx.len();
            let Some(len) = self.server.poll_transmit_into(&mut self.tx) else {
                break;
            };
            let range = start..start + len;
            if self
                .tx
                .get(range.clone())
                .unwrap_or_default()
                .starts_with(b"NOTIFY ")
            {
                self.notifies += 1;
            }
            let Some(core) = self.core_for(range.clone()) else {
                tracing::warn!("no SIP core connection for an outgoing message");
                self.tx.truncate(start);
                continue;
            };
            self.out.push((core, Out::Bytes(range)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::core_tag;
    use proptest::prelude::*;

    /// The first version: split at `;` and `>`, skip the first piece.
    fn reference(value: &str) -> Option<&str> {
        value
            .split([';', '>'])
            .skip(1)
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("core"))
            .map(|(_, v)| v.trim())
    }

    #[test]
    fn core_tags_of_vias_and_routes() {
        let cases = [
            (
                "SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bK1;core=sc1",
                Some("sc1"),
            ),
            ("<sip:127.0.0.1:5061;lr;core=sc2>", Some("sc2")),
            ("<sip:h;lr>;CORE = x ;core=y", Some("x")),
            ("SIP/2.0/TLS h;branch=z9hG4bK1", None),
            ("core=first-piece-is-skipped", None),
            ("<sip:h;lr;core=>", Some("")),
            ("SIP/2.0/TLS h;core=é;x", Some("é")),
            ("", None),
            (";", None),
        ];
        for (value, want) in cases {
            assert_eq!(core_tag(value), want, "{value}");
            assert_eq!(core_tag(value), reference(value), "{value}");
        }
    }

    proptest! {
        #[test]
        fn core_tag_reads_as_the_first_version(
            pieces in proptest::collection::vec(
                (
                    prop_oneof![Just(";"), Just(">"), Just(""), Just("<")],
                    prop_oneof![
                        Just("core=a".to_owned()),
                        Just(" CoRe = b ".to_owned()),
                        Just("core".to_owned()),
                        Just("lr".to_owned()),
                        Just("branch=z9hG4bK1".to_owned()),
                        "[ a-zA-Z0-9=:.é]{0,8}",
                    ],
                ),
                0..6,
            )
        ) {
            let value: String = pieces.iter().map(|(sep, p)| format!("{sep}{p}")).collect();
            prop_assert_eq!(core_tag(&value), reference(&value));
        }
    }
}
