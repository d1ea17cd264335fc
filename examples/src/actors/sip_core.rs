//! SIP core: TLS listener for UEs, registrar (`mcptt-registration`: certificate → identity
//! check, bindings, third-party REGISTER to the MCPTT server), and a small proxy moving
//! PUBLISH / SUBSCRIBE / NOTIFY between UEs and the MCPTT server. The proxy asserts
//! `P-Asserted-Identity` (the identity the registrar registered on that connection) and strips
//! any the UE sent.
//!
//! The proxy is deliberately minimal glue (RFC 3261 §16 reduced to one next hop): it pushes its
//! own `Via` on requests it forwards and pops it from responses, records itself in
//! `Record-Route` on SUBSCRIBE so in-dialog NOTIFYs come back through it, and routes NOTIFYs to
//! the UE connection that registered the Contact in the Request-URI.
//!
//! The registrar's bindings live in the store named by [`SipCoreConfig::store`]: in memory
//! (one instance), or in Redis (`mcptt-store-redis`), shared by several SIP core instances
//! behind one address. With Redis:
//! - the registrar's store calls do blocking network I/O, so they run in
//!   [`tokio::task::block_in_place`] (the in-memory store is called directly, as before);
//! - a request from a connection that did not REGISTER on this instance (the UE registered
//!   through another instance) is asserted with the identity its certificate may register
//!   *and* that has a live binding in the shared store;
//! - the store's change feed (other instances' writes) is read on a thread of its own and
//!   handed to [`Registrar::handle_remote_change`] / [`Registrar::handle_remote_resync`], so
//!   reg event subscriptions held here are NOTIFYed of changes made elsewhere;
//! - while Redis is unreachable, a REGISTER is answered `503` with `Retry-After`, and the
//!   reason is logged (`tracing` error) and recorded in the trace as an `EVENT`.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::time::Duration;

use mcptt_registration::{
    Error as RegistrarError, Event as RegistrarEvent, FilterCriteria, IdentityMap, Registrar,
    RegistrarConfig,
};
use mcptt_sip::{Message, Request, Response};
use mcptt_store_redis::{StoreChoice, TimeBase};
use mcptt_tls::{
    ConnectionHandle, ConnectionId, Destination, Direction, Event, Transport, TransportConfig,
    TransportKind,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::clock::Clock;
use super::config::{SipCoreConfig, Transport as Kind};
use super::wire::{observe, uri_of, user_of};
use super::{ActorError, net};
use crate::steps::TLS;
use crate::trace::{Actor, Observation, Trace};

/// Most proxied client transactions remembered (for routing their responses).
const MAX_PENDING: usize = 100_000;
/// Changes from the store's change feed waiting for the SIP core task.
const REMOTE_QUEUE: usize = 1024;
/// How long the change feed thread waits for a change before checking that the SIP core
/// task is still there.
const FEED_POLL: Duration = Duration::from_secs(1);

/// A running SIP core task.
#[derive(Debug)]
pub struct SipCoreHandle {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    transport: Transport,
    /// What [`SipCoreHandle::restart`] starts again.
    restart: (SipCoreConfig, Trace, Clock),
}

impl SipCoreHandle {
    /// The address UEs connect to.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The kind of registration store this SIP core runs with (`memory` or `redis`; no
    /// address, so no credential of a URL is printed).
    #[must_use]
    pub fn store(&self) -> &'static str {
        if is_memory(&self.restart.0.store) {
            "memory"
        } else {
            "redis"
        }
    }

    /// Stops the task, closes every connection and waits for the end.
    pub async fn shutdown(mut self) {
        self.stop().await;
    }

    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.transport.shutdown(Duration::from_millis(200)).await;
    }

    /// Simulates a SIP core restart: stops it (every UE connection closes, every binding
    /// and proxied transaction is forgotten), then starts a fresh one listening on the same
    /// address.
    ///
    /// # Errors
    /// When the address cannot be bound again.
    pub async fn restart(&mut self) -> Result<(), ActorError> {
        self.stop().await;
        let (mut config, trace, clock) = self.restart.clone();
        config.listen = self.local_addr;
        *self = spawn(config, trace, clock).await?;
        Ok(())
    }
}

struct UeConn {
    handle: ConnectionHandle,
    /// The certificate identity the registrar checks.
    peer: String,
    /// The identity registered on this connection: asserted on its requests.
    asserted: Option<String>,
}

struct State {
    config: SipCoreConfig,
    host: String,
    registrar: Registrar<StoreChoice>,
    /// The store does blocking network I/O (Redis): registrar calls go through
    /// [`tokio::task::block_in_place`].
    blocking_store: bool,
    /// The registrar owes its reg event subscribers a resync (the change feed reconnected,
    /// or the store failed while applying a remote change).
    resync_pending: bool,
    transport: Transport,
    as_dest: Destination,
    ues: HashMap<ConnectionId, UeConn>,
    /// Contact (`user@host:port`) → UE connection, for NOTIFY routing.
    contacts: HashMap<String, ConnectionId>,
    /// Via branch of a request forwarded to the MCPTT server → UE connection.
    pending: HashMap<String, ConnectionId>,
    trace: Trace,
    clock: Clock,
    rand: RandomState,
    counter: u64,
    /// Messages to send, in order, once the current input is handled.
    out: Vec<(Target, Message)>,
}

enum Target {
    Ue(ConnectionHandle),
    As,
}

/// The registrar's identity map: each demo/CLI grant `CERT-IDENTITY → IMPU...`.
fn identities(config: &SipCoreConfig) -> IdentityMap {
    let mut map = IdentityMap::new();
    for (cert, impus) in &config.identities {
        for impu in impus {
            map.insert(cert.clone(), impu);
        }
    }
    map
}

/// Whether a `--store` value names the in-memory store.
fn is_memory(store: &str) -> bool {
    let s = store.trim();
    s.is_empty() || s.eq_ignore_ascii_case(super::config::MEMORY_STORE)
}

/// Runs `f`, a registrar call that may do blocking store I/O, without stalling the other
/// tasks of a multi-thread runtime (a current-thread runtime has nowhere else to run them:
/// `f` simply blocks it).
fn blocking_io<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// A registrar seed from the operating system's CSPRNG: instances sharing a store must not
/// draw the same binding ids, Call-IDs or tags.
fn random_seed() -> Result<u64, ActorError> {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ActorError::Config("the system random generator failed".into()))?;
    Ok(u64::from_le_bytes(bytes))
}

/// What the change feed thread hands to the SIP core task.
#[derive(Debug)]
enum Remote {
    /// Another instance changed the record of this address-of-record.
    Change(String),
    /// Changes may have been missed (the feed reconnected): re-read every subscribed AoR.
    Resync,
}

/// Starts the thread reading the store's change feed (Redis only), forwarding what it reads
/// to the SIP core task until the task is gone.
fn start_feed(
    registrar: &Registrar<StoreChoice>,
) -> Result<Option<mpsc::Receiver<Remote>>, ActorError> {
    let feed = blocking_io(|| registrar.store().subscribe_changes())
        .map_err(|e| ActorError::Config(format!("registration change feed: {e}")))?;
    let Some(mut feed) = feed else {
        return Ok(None);
    };
    let (tx, rx) = mpsc::channel(REMOTE_QUEUE);
    std::thread::Builder::new()
        .name("sip-core-change-feed".into())
        .spawn(move || {
            while !tx.is_closed() {
                match feed.next(FEED_POLL) {
                    Ok(Some(change)) => {
                        if tx.blocking_send(Remote::Change(change.aor)).is_err() {
                            break;
                        }
                    }
                    Ok(None) => {}
                    Err(mcptt_store_redis::Error::Redis(e)) => {
                        tracing::error!(error = %e, "registration change feed lost its Redis connection; reconnecting");
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "registration change feed ended");
                        break;
                    }
                }
                if feed.is_connected()
                    && feed.take_resync()
                    && tx.blocking_send(Remote::Resync).is_err()
                {
                    break;
                }
            }
        })
        .map_err(|e| ActorError::Io {
            what: "starting the change feed thread".into(),
            source: e,
        })?;
    Ok(Some(rx))
}

/// Binds the UE listener and starts the task, recording what it receives in `trace`.
pub async fn spawn(
    config: SipCoreConfig,
    trace: Trace,
    clock: Clock,
) -> Result<SipCoreHandle, ActorError> {
    let mut tc = TransportConfig::default();
    tc.max_connections_per_ip = config.max_connections_per_ip;
    tc.max_connections = tc.max_connections.max(config.max_connections_per_ip + 16);
    if config.mcptt_transport == Kind::Tls {
        tc = tc.with_client_tls(net::client_config(&config.tls)?);
    }
    let (transport, events) = Transport::new(tc);
    let local_addr = transport
        .listen_tls(config.listen, net::server_config(&config.tls)?)
        .await
        .map_err(|e| ActorError::Config(format!("listen on {}: {e}", config.listen)))?;
    let store = blocking_io(|| StoreChoice::open(&config.store, TimeBase::system()))
        .map_err(|e| ActorError::Config(format!("registration store: {e}")))?;
    let blocking_store = matches!(store, StoreChoice::Redis(_));
    let registrar = Registrar::with_store(
        RegistrarConfig {
            max_expires: config.max_expires,
            identities: identities(&config),
            filters: vec![FilterCriteria::mcptt(config.application_server.clone())],
            core_uri: config.node_uri.clone(),
            ..RegistrarConfig::default()
        },
        store,
        random_seed()?,
    );
    let remote = start_feed(&registrar)?;
    let kind = match config.mcptt_transport {
        Kind::Tls => TransportKind::Tls,
        Kind::Tcp => TransportKind::Tcp,
    };
    let as_dest = Destination::addr(config.mcptt_server, kind);
    let host = user_of(&config.node_uri);
    let (stop, stopped) = oneshot::channel();
    let restart = (config.clone(), trace.clone(), clock.clone());
    let state = State {
        config,
        host,
        registrar,
        blocking_store,
        resync_pending: false,
        transport: transport.clone(),
        as_dest,
        ues: HashMap::new(),
        contacts: HashMap::new(),
        pending: HashMap::new(),
        trace,
        clock,
        rand: RandomState::new(),
        counter: 0,
        out: Vec::new(),
    };
    let task = tokio::spawn(run(state, events, stopped, remote));
    Ok(SipCoreHandle {
        local_addr,
        stop: Some(stop),
        task: Some(task),
        transport,
        restart,
    })
}

/// The next change from the feed; never, without a feed.
async fn next_remote(remote: &mut Option<mpsc::Receiver<Remote>>) -> Option<Remote> {
    match remote {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn run(
    mut st: State,
    mut events: mcptt_tls::Events,
    mut stopped: oneshot::Receiver<()>,
    mut remote: Option<mpsc::Receiver<Remote>>,
) {
    loop {
        let deadline = st.store_io(|r| r.poll_timeout());
        let clock = st.clock.clone();
        let mut feed_ended = false;
        tokio::select! {
            _ = &mut stopped => break,
            ev = events.recv() => match ev {
                Some(ev) => st.on_event(ev),
                None => break,
            },
            () = clock.sleep_until(deadline) => {
                let now = st.clock.now();
                st.store_io(|r| r.handle_timeout(now));
                st.resync_if_pending();
                st.drain_registrar(None);
            }
            r = next_remote(&mut remote) => match r {
                Some(r) => st.on_remote(r),
                None => feed_ended = true,
            },
        }
        if feed_ended {
            tracing::error!(
                "the registration change feed stopped: changes other SIP core instances make are no longer NOTIFYed here"
            );
            remote = None;
        }
        st.flush().await;
    }
}

/// Whether `req` subscribes to the reg event package (answered by the registrar, not
/// forwarded).
fn is_reg_subscribe(req: &Request) -> bool {
    req.method().as_str() == "SUBSCRIBE"
        && req
            .headers()
            .get("Event")
            .and_then(|e| e.split(';').next())
            .is_some_and(|e| e.trim().eq_ignore_ascii_case("reg"))
}

/// `user@host:port` of a SIP URI (scheme, parameters and headers dropped), lower-cased host.
fn contact_key(uri: &str) -> String {
    let rest = uri.split_once(':').map_or(uri, |(_, r)| r);
    let rest = rest.split([';', '?', '>']).next().unwrap_or(rest);
    match rest.rsplit_once('@') {
        Some((u, h)) => format!("{u}@{}", h.to_ascii_lowercase()),
        None => rest.to_ascii_lowercase(),
    }
}

/// The `branch` parameter of a Via value.
fn branch_of(via: &str) -> Option<String> {
    via.split(';')
        .skip(1)
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("branch"))
        .map(|(_, v)| v.trim().to_owned())
}

impl State {
    /// Runs a registrar call, through [`blocking_io`] when the store does network I/O.
    fn store_io<R>(&mut self, f: impl FnOnce(&mut Registrar<StoreChoice>) -> R) -> R {
        if self.blocking_store {
            blocking_io(|| f(&mut self.registrar))
        } else {
            f(&mut self.registrar)
        }
    }

    /// A change another instance wrote (from the change feed).
    fn on_remote(&mut self, remote: Remote) {
        match remote {
            Remote::Change(aor) => {
                let now = self.clock.now();
                if let Err(e) = self.store_io(|r| r.handle_remote_change(now, &aor)) {
                    tracing::error!(%aor, error = %e, "remote registration change not applied; resyncing later");
                    self.resync_pending = true;
                }
            }
            Remote::Resync => self.resync_pending = true,
        }
        self.resync_if_pending();
        self.drain_registrar(None);
    }

    /// Re-reads every AoR with reg event subscriptions here, if a resync is owed.
    fn resync_if_pending(&mut self) {
        if !self.resync_pending {
            return;
        }
        let now = self.clock.now();
        match self.store_io(|r| r.handle_remote_resync(now)) {
            Ok(()) => self.resync_pending = false,
            Err(e) => tracing::error!(error = %e, "registration resync failed; retried later"),
        }
    }

    /// Records a registrar note in the trace (the ladder shows it as an `EVENT`).
    fn note(&self, aor: &str, first_line: String) {
        self.trace.record(
            Actor::SipCore,
            Observation {
                from: Some(Actor::SipCore),
                ue: user_of(aor),
                method: "EVENT".into(),
                first_line,
                ..Observation::default()
            },
        );
    }

    fn label_for(msg: &Message) -> String {
        msg.headers()
            .get("To")
            .map(|t| user_of(&uri_of(t)))
            .unwrap_or_default()
    }

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Connected(handle) => self.on_connected(handle),
            Event::Message(rx) => {
                let conn = rx.connection;
                if conn.info().direction == Direction::Outbound {
                    self.on_as_message(rx.message);
                } else {
                    self.on_ue_message(rx.message, conn);
                }
            }
            Event::Closed { connection, error } => {
                if let Some(ue) = self.ues.remove(&connection.id) {
                    tracing::info!(peer = %ue.peer, ?error, "UE connection closed");
                    self.contacts.retain(|_, c| *c != connection.id);
                    self.pending.retain(|_, c| *c != connection.id);
                }
            }
            Event::Rejected {
                peer_addr, error, ..
            } => {
                tracing::warn!(%peer_addr, %error, "connection refused");
            }
            _ => {}
        }
    }

    /// Step 2: a UE completed the mutual TLS handshake.
    fn on_connected(&mut self, handle: ConnectionHandle) {
        let info = handle.info().clone();
        let peer = info
            .identity
            .as_ref()
            .map_or_else(|| "<no certificate>".to_owned(), |i| i.label().to_owned());
        let version = info
            .tls_version
            .map_or_else(|| "TLS".to_owned(), |v| format!("{v:?}"));
        let uris = info
            .identity
            .as_ref()
            .map(|i| i.uris().join(", "))
            .unwrap_or_default();
        self.trace.record(
            Actor::SipCore,
            Observation {
                from: Some(Actor::Ue),
                ue: user_of(&peer),
                method: TLS.into(),
                first_line: format!("{version} handshake, client certificate verified: {peer}"),
                headers: vec![
                    ("Client-Certificate-URI-SAN".into(), uris),
                    ("Server-Certificate".into(), self.config.node_uri.clone()),
                    ("Peer".into(), info.peer_addr.to_string()),
                ],
                ..Observation::default()
            },
        );
        self.ues.insert(
            info.id,
            UeConn {
                handle,
                peer,
                asserted: None,
            },
        );
    }

    fn next_branch(&mut self) -> String {
        self.counter += 1;
        format!(
            "z9hG4bK{:016x}{:x}",
            self.rand.hash_one(self.counter),
            self.counter
        )
    }

    fn on_ue_message(&mut self, msg: Message, conn: ConnectionHandle) {
        self.trace.record(
            Actor::SipCore,
            observe(&msg, Actor::Ue, &Self::label_for(&msg)),
        );
        match msg {
            Message::Request(req) if req.method().as_str() == "REGISTER" => {
                self.on_register(req, conn)
            }
            Message::Request(req) if is_reg_subscribe(&req) => self.on_reg_subscribe(req, conn),
            Message::Request(req) => self.forward_to_as(req, conn),
            Message::Response(resp)
                if self.registrar.subscription_count() > 0
                    && resp
                        .headers()
                        .get("CSeq")
                        .is_some_and(|c| c.trim_end().ends_with("NOTIFY"))
                    && self
                        .registrar
                        .handle_notify_response(self.clock.now(), &resp) =>
            {
                // The answer to one of our reg event NOTIFYs.
                self.drain_registrar(None);
            }
            Message::Response(resp) => {
                // An answer to a NOTIFY we relayed: drop our Via, send it on to the server.
                let mut resp = resp;
                resp.headers_mut().remove_first("Via");
                self.out.push((Target::As, Message::Response(resp)));
            }
        }
    }

    /// The certificate identity of a UE connection (empty for one not known here).
    fn peer_of(&self, id: ConnectionId) -> String {
        self.ues
            .get(&id)
            .map(|u| u.peer.clone())
            .unwrap_or_default()
    }

    /// Steps 3–5: the registrar answers and queues the third-party REGISTER.
    fn on_register(&mut self, req: Request, conn: ConnectionHandle) {
        let id = conn.id();
        let peer = self.peer_of(id);
        let now = self.clock.now();
        let outcome = self.store_io(|r| r.handle_register(now, &peer, &req));
        if let Some(ue) = self.ues.get_mut(&id) {
            ue.asserted.clone_from(&outcome.registered_identity);
        }
        if outcome.registered_identity.is_some() {
            for c in req.headers().values("Contact") {
                self.contacts.insert(contact_key(&uri_of(c)), id);
            }
        }
        match &outcome.result {
            Err(e @ RegistrarError::StoreUnavailable(_)) => {
                tracing::error!(
                    %peer,
                    error = %e,
                    retry_after = RegistrarError::RETRY_AFTER_SECS,
                    "REGISTER answered 503: the registration store is unreachable"
                );
                self.note(
                    &peer,
                    format!(
                        "(registrar: REGISTER answered 503, Retry-After {}: {e})",
                        RegistrarError::RETRY_AFTER_SECS
                    ),
                );
            }
            Err(e) => tracing::warn!(%peer, error = %e, "REGISTER refused"),
            Ok(()) => {}
        }
        self.out
            .push((Target::Ue(conn), Message::Response(outcome.response)));
        let ue_call_id = req.headers().get("Call-ID").map(str::to_owned);
        self.drain_registrar(ue_call_id.as_deref());
    }

    /// A reg event SUBSCRIBE (RFC 3680) from a UE for its own registration state: the
    /// registrar answers and NOTIFYs; the subscriber's Contact is reached on this connection.
    fn on_reg_subscribe(&mut self, req: Request, conn: ConnectionHandle) {
        let id = conn.id();
        let peer = self.peer_of(id);
        let now = self.clock.now();
        let resp = self.store_io(|r| r.handle_subscribe(now, &peer, &req));
        if (200..300).contains(&resp.status())
            && let Some(c) = req.headers().get("Contact")
        {
            self.contacts.insert(contact_key(&uri_of(c)), id);
        }
        self.out.push((Target::Ue(conn), Message::Response(resp)));
        self.drain_registrar(None);
    }

    /// Sends what the registrar queued (third-party REGISTERs) and logs its events.
    fn drain_registrar(&mut self, ue_call_id: Option<&str>) {
        while let Some(t) = self.registrar.poll_transmit() {
            let msg = Message::Request(t.request);
            if let (Some(ue), Some(tp)) = (ue_call_id, super::wire::call_id(&msg)) {
                self.trace.alias(&tp, ue);
            }
            // Third-party REGISTERs go to the application server; reg event NOTIFYs to the
            // subscriber's connection when it is one of ours.
            let target = if t.destination == self.config.application_server {
                Target::As
            } else {
                self.contacts
                    .get(&contact_key(&t.destination))
                    .and_then(|c| self.ues.get(c))
                    .map_or(Target::As, |u| Target::Ue(u.handle.clone()))
            };
            self.out.push((target, msg));
        }
        while let Some(ev) = self.registrar.poll_event() {
            tracing::info!(?ev, "registrar");
            let note = match &ev {
                RegistrarEvent::ThirdPartyFailed {
                    aor,
                    application_server,
                    failure,
                    action,
                } => Some((
                    aor.clone(),
                    format!(
                        "(registrar: third-party REGISTER to {application_server} failed: {failure:?}; policy {action:?})"
                    ),
                )),
                RegistrarEvent::BindingRemoved { aor, reason, .. } => Some((
                    aor.clone(),
                    format!("(registrar: binding of {aor} removed: {reason:?})"),
                )),
                RegistrarEvent::StoreUnavailable { operation, reason } => {
                    tracing::error!(%operation, %reason, "registration store unavailable; retried later");
                    Some((
                        String::new(),
                        format!("(registrar: store unavailable during {operation}: {reason})"),
                    ))
                }
                _ => None,
            };
            if let Some((aor, first_line)) = note {
                self.note(&aor, first_line);
            }
        }
    }

    /// The identity to assert on a connection that did not REGISTER here: the first public
    /// user identity its certificate may register that has a live binding in the (shared)
    /// store, i.e. the UE registered through another SIP core instance. Remembered for the
    /// connection.
    fn registered_elsewhere(&mut self, id: ConnectionId) -> Result<Option<String>, RegistrarError> {
        if !self.blocking_store {
            // One instance: only this one's REGISTERs count.
            return Ok(None);
        }
        let Some(peer) = self.ues.get(&id).map(|u| u.peer.clone()) else {
            return Ok(None);
        };
        let now = self.clock.now();
        let candidates: Vec<String> = self
            .registrar
            .config()
            .identities
            .identities(&peer)
            .map(str::to_owned)
            .collect();
        for impu in candidates {
            if self.store_io(|r| r.is_registered(now, &impu))? {
                if let Some(ue) = self.ues.get_mut(&id) {
                    ue.asserted = Some(impu.clone());
                }
                return Ok(Some(impu));
            }
        }
        Ok(None)
    }

    /// Steps 7–8 and 11–12: assert the registered identity and forward to the MCPTT server.
    fn forward_to_as(&mut self, mut req: Request, conn: ConnectionHandle) {
        let id = conn.id();
        let asserted = match self.ues.get(&id).and_then(|u| u.asserted.clone()) {
            Some(a) => Some(a),
            None => match self.registered_elsewhere(id) {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!(error = %e, "request refused: the registration store is unreachable");
                    if let Ok(resp) = Response::builder_for(&req, 503)
                        .header("Retry-After", RegistrarError::RETRY_AFTER_SECS)
                        .build()
                    {
                        self.out.push((Target::Ue(conn), Message::Response(resp)));
                    }
                    return;
                }
            },
        };
        let Some(asserted) = asserted else {
            tracing::warn!(
                method = req.method().as_str(),
                "request from an unregistered connection refused"
            );
            if let Ok(resp) = Response::builder_for(&req, 403)
                .reason("Forbidden (not registered)")
                .build()
            {
                self.out.push((Target::Ue(conn), Message::Response(resp)));
            }
            return;
        };
        let branch = self.next_branch();
        let transport = match self.config.mcptt_transport {
            Kind::Tls => "TLS",
            Kind::Tcp => "TCP",
        };
        let headers = req.headers_mut();
        // The UE may not assert itself (TS 24.229 §5.2.6.3.3): strip, then assert.
        headers.remove("P-Asserted-Identity");
        let via = format!("SIP/2.0/{transport} {};branch={branch}", self.host);
        let max_forwards = headers
            .get("Max-Forwards")
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(70);
        let ok = headers.push_front("Via", &via).is_ok()
            && headers
                .push("P-Asserted-Identity", &format!("<{asserted}>"))
                .is_ok()
            && headers
                .replace("Max-Forwards", &max_forwards.saturating_sub(1).to_string())
                .is_ok()
            && (req.method().as_str() != "SUBSCRIBE"
                || req
                    .headers_mut()
                    .push_front("Record-Route", &format!("<sip:{};lr>", self.host))
                    .is_ok());
        if !ok {
            tracing::warn!("could not rewrite a request for forwarding");
            return;
        }
        if self.pending.len() < MAX_PENDING {
            self.pending.insert(branch, id);
        }
        self.out.push((Target::As, Message::Request(req)));
    }

    fn on_as_message(&mut self, msg: Message) {
        self.trace.record(
            Actor::SipCore,
            observe(&msg, Actor::McpttServer, &Self::label_for(&msg)),
        );
        match msg {
            Message::Response(resp) => {
                let is_register = resp
                    .headers()
                    .get("CSeq")
                    .and_then(|c| c.split_whitespace().nth(1))
                    .is_some_and(|m| m.eq_ignore_ascii_case("REGISTER"));
                if is_register {
                    // Step 6: the answer to our third-party REGISTER.
                    let now = self.clock.now();
                    let _ = self.store_io(|r| r.handle_third_party_response(now, &resp));
                    self.drain_registrar(None);
                    return;
                }
                // Steps 9 and 13: relay to the UE the request came from.
                let Some(branch) = resp.headers().get("Via").and_then(branch_of) else {
                    return;
                };
                let final_response = resp.status() >= 200;
                let conn = if final_response {
                    self.pending.remove(&branch)
                } else {
                    self.pending.get(&branch).copied()
                };
                let Some(handle) = conn
                    .and_then(|c| self.ues.get(&c))
                    .map(|u| u.handle.clone())
                else {
                    tracing::info!(%branch, "response for a gone UE connection dropped");
                    return;
                };
                let mut resp = resp;
                resp.headers_mut().remove_first("Via");
                self.out.push((Target::Ue(handle), Message::Response(resp)));
            }
            Message::Request(req) => self.forward_to_ue(req),
        }
    }

    /// Step 15: route a NOTIFY to the UE connection that registered its Request-URI.
    fn forward_to_ue(&mut self, mut req: Request) {
        let key = contact_key(&req.uri().to_string());
        let target = self
            .contacts
            .get(&key)
            .and_then(|c| self.ues.get(c))
            .map(|u| u.handle.clone());
        let Some(handle) = target else {
            tracing::warn!(%key, "no connection for the Request-URI");
            if let Ok(resp) = Response::builder_for(&req, 480).build() {
                self.out.push((Target::As, Message::Response(resp)));
            }
            return;
        };
        let branch = self.next_branch();
        let host = self.host.clone();
        let headers = req.headers_mut();
        if headers
            .get("Route")
            .is_some_and(|r| uri_of(r).contains(&host))
        {
            headers.remove_first("Route");
        }
        if headers
            .push_front("Via", &format!("SIP/2.0/TLS {host};branch={branch}"))
            .is_err()
        {
            return;
        }
        self.out.push((Target::Ue(handle), Message::Request(req)));
    }

    async fn flush(&mut self) {
        for (target, msg) in std::mem::take(&mut self.out) {
            let result = match target {
                Target::Ue(h) => h.send(&msg).await,
                Target::As => match self.transport.connect_or_reuse(&self.as_dest).await {
                    Ok(h) => h.send(&msg).await,
                    Err(e) => Err(e),
                },
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "send failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_keys_and_branches() {
        assert_eq!(
            contact_key("sip:ue1@127.0.0.1:5000;transport=tls"),
            "ue1@127.0.0.1:5000"
        );
        assert_eq!(contact_key("sip:ue1@EXAMPLE.com"), "ue1@example.com");
        assert_eq!(
            branch_of("SIP/2.0/TLS h;rport;branch=z9hG4bKabc").as_deref(),
            Some("z9hG4bKabc")
        );
        assert_eq!(branch_of("SIP/2.0/TLS h"), None);
    }
}
