//! SIP core: TLS listener for UEs, registrar (`mcptt-registration`: certificate → identity
//! check, bindings, third-party REGISTER to the MCPTT server), and a small proxy moving
//! PUBLISH / SUBSCRIBE / NOTIFY between UEs and the MCPTT server. The proxy asserts
//! `P-Asserted-Identity` (the identity the registrar registered on that connection) and strips
//! any the UE sent.
//!
//! The proxy is deliberately minimal glue (RFC 3261 §16 reduced to one next hop, chosen from
//! the MCPTT server list as described below): it pushes its own `Via` on requests it forwards
//! and pops it from responses, records itself in `Record-Route` on SUBSCRIBE so in-dialog
//! NOTIFYs come back through it, and routes NOTIFYs to the UE connection that registered (or
//! subscribed with) the Contact in the Request-URI.
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
//!
//! # Several MCPTT server instances
//!
//! [`SipCoreConfig::mcptt_servers`] lists the MCPTT server instances in order of
//! preference (they share their service state through Redis, `mcptt-server --store`).
//! The policy:
//! - **Choice**: every request for the MCPTT server (third-party REGISTER, PUBLISH,
//!   SUBSCRIBE, in-dialog or not) goes to the first listed server that is not *held down*;
//!   servers held down come after the others (in list order), so a request is never refused
//!   without trying every server.
//! - **Failure**: a server is held down for [`SipCoreConfig::mcptt_hold_down`] when
//!   connecting or sending to it fails, when its connection closes, or when a request to it
//!   got no final answer within [`SipCoreConfig::mcptt_timeout`]. The request is then sent
//!   to the next server it has not been tried on (a UE request with a fresh `Via` branch; a
//!   third-party REGISTER unchanged, so the registrar matches whichever answer comes). An
//!   error *response* (even `503`) is relayed, not failed over: the instances share one
//!   store, so another would answer the same.
//! - **Exhausted**: a UE request tried on every server is answered `503` with
//!   `Retry-After`; a third-party REGISTER is left to the registrar's own timeout (its
//!   failure policy applies and is logged).
//! - **NOTIFYs** from any server are relayed to the UE, and the UE's answer goes back on
//!   the connection the NOTIFY came on. An answer to a NOTIFY this core did not relay (the
//!   UE answered on its connection to another SIP core instance) goes to every connected
//!   server: only the one that sent the NOTIFY matches it.
//! - **Routing back**: each SIP core instance has a random tag (OS CSPRNG) that it puts in
//!   its `Record-Route` (`;core=TAG`) and in the `Via` of what it sends to a server, and it
//!   announces it with an `OPTIONS` on every new server connection; a server that takes a
//!   dialog over from a dead instance sends its NOTIFYs to the SIP core named in the route
//!   set (the one holding the UE's connection). These `OPTIONS` are not part of the flow
//!   and are not recorded in the trace.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::trace::FastState;
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mcptt_registration::{
    Error as RegistrarError, Event as RegistrarEvent, FilterCriteria, IdentityMap, Registrar,
    RegistrarConfig,
};
use mcptt_sip::{HeaderEdit, KnownHeader, Message, Request, Response, split_commas};
use mcptt_store_redis::{StoreChoice, TimeBase};
use mcptt_tls::{
    ConnectionHandle, ConnectionId, Destination, Direction, Event, Transport, TransportConfig,
    TransportKind,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::clock::Clock;
use super::config::{SipCoreConfig, Transport as Kind};
use super::store_io::{Remote, blocking_io, next_remote, os_random, start_feed};
use super::wire::{uri_of, user_of, user_part};
use super::{ActorError, net};
use crate::steps::TLS;
use crate::trace::{Actor, Observation, Trace};

/// Most proxied client transactions remembered (for routing their responses).
const MAX_PENDING: usize = 100_000;
/// Most relayed NOTIFYs whose server connection is remembered (for the UE's answer).
const MAX_NOTIFY_ROUTES: usize = 100_000;

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
        if super::config::is_memory_store(&self.restart.0.store) {
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
    /// The identity registered on this connection: asserted on its requests.
    asserted: Option<String>,
}

impl UeConn {
    /// The certificate identity the registrar checks (borrowed from the connection).
    fn peer(&self) -> &str {
        peer_label(&self.handle)
    }
}

/// The certificate identity of a connection: its label, or `<no certificate>`.
fn peer_label(handle: &ConnectionHandle) -> &str {
    handle.identity().map_or("<no certificate>", |i| i.label())
}

/// One MCPTT server instance of [`SipCoreConfig::mcptt_servers`].
struct ServerSlot {
    dest: Destination,
    /// The connection to it, once opened (an `OPTIONS` announced this core on it).
    conn: Option<ConnectionHandle>,
    /// Tried only after the others until then (it failed).
    down_until: Option<Instant>,
}

/// Who a request forwarded to an MCPTT server came from.
#[derive(Clone, Copy)]
enum Origin {
    /// A UE connection (PUBLISH, SUBSCRIBE, ...).
    Ue(ConnectionId),
    /// The registrar (third-party REGISTER).
    Registrar,
}

/// A request sent to an MCPTT server and not answered yet (keyed by its top `Via` branch).
struct Forward {
    origin: Origin,
    /// The request, kept once sent (until then it is in [`State::out`], which hands it
    /// back here when it is written: no copy).
    request: Option<Request>,
    /// The server it was last sent to.
    server: usize,
    /// The connection it was sent on (none until sent).
    conn: Option<ConnectionId>,
    /// The servers it has been sent to.
    tried: Tried,
    /// When it fails over if still unanswered.
    deadline: Instant,
}

/// The servers a forwarded request has been sent to: a bit per server (no allocation), or
/// a list beyond 64 servers. A server outside the list counts as tried.
enum Tried {
    /// Bit `i` is server `i`; `n` servers.
    Bits { bits: u64, n: usize },
    /// Entry `i` is server `i`.
    List(Vec<bool>),
}

impl Tried {
    /// None of `n` servers tried yet.
    fn new(n: usize) -> Self {
        if n <= 64 {
            Self::Bits { bits: 0, n }
        } else {
            Self::List(vec![false; n])
        }
    }

    /// Whether server `i` was tried (or does not exist).
    fn has(&self, i: usize) -> bool {
        match self {
            Self::Bits { bits, n } => i >= *n || bits & (1 << i) != 0,
            Self::List(l) => l.get(i).copied().unwrap_or(true),
        }
    }

    /// Server `i` is tried now.
    fn mark(&mut self, i: usize) {
        match self {
            Self::Bits { bits, n } if i < *n => *bits |= 1 << i,
            Self::Bits { .. } => {}
            Self::List(l) => {
                if let Some(t) = l.get_mut(i) {
                    *t = true;
                }
            }
        }
    }
}

struct State {
    config: SipCoreConfig,
    host: String,
    /// This instance's tag (`;core=` in its `Record-Route` and `Via`).
    tag: String,
    /// `SIP/2.0/TLS host;branch=z9hG4bK` (or TCP): the start of [`State::push_server_via`].
    via_prefix: String,
    /// `<sip:host;lr;core=TAG>`: the `Record-Route` this core puts on SUBSCRIBEs.
    record_route: String,
    registrar: Registrar<StoreChoice>,
    /// The store does blocking network I/O (Redis): registrar calls go through
    /// [`tokio::task::block_in_place`].
    blocking_store: bool,
    /// The registrar owes its reg event subscribers a resync (the change feed reconnected,
    /// or the store failed while applying a remote change).
    resync_pending: bool,
    transport: Transport,
    servers: Vec<ServerSlot>,
    ues: HashMap<ConnectionId, UeConn, FastState>,
    /// Contact (`user@host:port`) → UE connection, for NOTIFY routing.
    contacts: HashMap<String, ConnectionId, FastState>,
    /// Top Via branch of a request forwarded to an MCPTT server → what to do with its answer.
    /// (The key is shared with `deadlines` and the queued message: allocated once.)
    forwards: HashMap<Arc<str>, Forward, FastState>,
    /// Failover deadlines of `forwards`.
    deadlines: BTreeSet<(Instant, Arc<str>)>,
    /// Via branch this core put on a relayed NOTIFY → the server connection it came on.
    notify_routes: HashMap<String, ConnectionHandle, FastState>,
    trace: Trace,
    clock: Clock,
    rand: RandomState,
    counter: u64,
    /// Messages to send, in order, once the current input is handled.
    out: Vec<(Target, Message)>,
    /// `flush`'s lists kept for their room between turns (emptied, not dropped): the
    /// batch it sends while `out` takes what failing over queues, and the connections it
    /// wrote to.
    sending: Vec<(Target, Message)>,
    written: Vec<ConnectionHandle>,
    /// Room for the header values a forwarded request or NOTIFY gets (`Via`,
    /// `P-Asserted-Identity`) and the contact key a NOTIFY is routed by, reused: they live
    /// only until the edit batch copied them into the message.
    scratch: String,
    /// The last TLS version seen and its name (`TLSv1_3`), formatted once.
    tls_version_name: Option<(rustls::ProtocolVersion, String)>,
}

enum Target {
    /// A UE connection.
    Ue(ConnectionHandle),
    /// A given server connection (the answer to its NOTIFY).
    Conn(ConnectionHandle),
    /// MCPTT server number `.0` (connected on demand); `.1` is the key of the request's
    /// entry in `forwards`, if it is tracked for failover.
    Server(usize, Option<Arc<str>>),
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
        os_random()?,
    );
    let remote = start_feed(
        || registrar.store().subscribe_changes(),
        "registration",
        "sip-core-change-feed",
        |change| change.aor,
    )?;
    let kind = match config.mcptt_transport {
        Kind::Tls => TransportKind::Tls,
        Kind::Tcp => TransportKind::Tcp,
    };
    if config.mcptt_servers.is_empty() {
        return Err(ActorError::Config("no MCPTT server address given".into()));
    }
    let servers = config
        .mcptt_servers
        .iter()
        .map(|a| ServerSlot {
            dest: Destination::addr(*a, kind),
            conn: None,
            down_until: None,
        })
        .collect();
    let tag = format!("{:016x}", os_random()?);
    let via_transport = match config.mcptt_transport {
        Kind::Tls => "TLS",
        Kind::Tcp => "TCP",
    };
    let host = user_of(&config.node_uri);
    let (stop, stopped) = oneshot::channel();
    let restart = (config.clone(), trace.clone(), clock.clone());
    let state = State {
        config,
        via_prefix: format!("SIP/2.0/{via_transport} {host};branch=z9hG4bK"),
        record_route: format!("<sip:{host};lr;core={tag}>"),
        host,
        tag,
        registrar,
        blocking_store,
        resync_pending: false,
        transport: transport.clone(),
        servers,
        ues: HashMap::default(),
        contacts: HashMap::default(),
        forwards: HashMap::default(),
        deadlines: BTreeSet::new(),
        notify_routes: HashMap::default(),
        trace,
        clock,
        rand: RandomState::new(),
        counter: 0,
        out: Vec::new(),
        sending: Vec::new(),
        written: Vec::new(),
        scratch: String::new(),
        tls_version_name: None,
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

/// Most transport events handled per loop turn before the answers are written.
const EVENT_BATCH: usize = 64;

async fn run(
    mut st: State,
    mut events: mcptt_tls::Events,
    mut stopped: oneshot::Receiver<()>,
    mut remote: Option<mpsc::Receiver<Remote<String>>>,
) {
    // Announce this core to every server now, so any of them can route NOTIFYs back here.
    for i in 0..st.servers.len() {
        let hello = st.hello(i);
        st.out.push((Target::Server(i, None), hello));
    }
    st.flush().await;
    let mut batch = Vec::with_capacity(EVENT_BATCH);
    // One timer for the whole loop, re-armed only when a deadline comes before the armed
    // one (or it fired). A fresh timer every turn was registered anew with tokio's timer
    // wheel, and whenever it landed on an earlier tick than the one the driver last armed,
    // tokio woke its own driver (an eventfd write, then one more epoll_wait). A deadline
    // that moved later leaves the earlier timer armed: it fires early, the timeout
    // handlers find nothing due, and the next turn arms the real deadline.
    let clock = st.clock.clone();
    let mut timer = Box::pin(clock.sleep_until(None));
    let mut armed: Option<Option<Instant>> = None;
    loop {
        let deadline = [
            st.store_io(|r| r.poll_timeout()),
            st.deadlines.first().map(|(at, _)| *at),
        ]
        .into_iter()
        .flatten()
        .min();
        let rearm = match (armed, deadline) {
            (None, _) => true,
            (Some(None), Some(_)) => true,
            (Some(Some(at)), Some(d)) => d < at,
            (Some(_), None) => false,
        };
        if rearm {
            timer.set(clock.sleep_until(deadline));
            armed = Some(deadline);
        }
        let mut feed_ended = false;
        tokio::select! {
            _ = &mut stopped => break,
            // Every event queued is handled before anything is written, so the messages
            // of one batch for one connection leave in one TLS write.
            n = events.recv_many(&mut batch, EVENT_BATCH) => {
                if n == 0 {
                    break;
                }
                for ev in batch.drain(..) {
                    st.on_event(ev);
                }
            }
            () = &mut timer => {
                armed = None;
                let now = st.clock.now();
                st.store_io(|r| r.handle_timeout(now));
                st.forward_timeouts(now);
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
            .get_known(KnownHeader::Event)
            .and_then(|e| e.split(';').next())
            .is_some_and(|e| e.trim().eq_ignore_ascii_case("reg"))
}

/// `user@host:port` of a SIP URI (scheme, parameters and headers dropped), lower-cased host.
fn contact_key(uri: &str) -> String {
    let mut key = String::new();
    push_contact_key(&mut key, uri);
    key
}

/// Appends [`contact_key`]`(uri)` to `key` (a lookup's reused buffer).
fn push_contact_key(key: &mut String, uri: &str) {
    // (Byte scans: the separators are ASCII, so every cut is on a character boundary.)
    let rest = match uri.bytes().position(|b| b == b':') {
        Some(colon) => uri.get(colon + 1..).unwrap_or(uri),
        None => uri,
    };
    let end = rest
        .bytes()
        .position(|b| matches!(b, b';' | b'?' | b'>'))
        .unwrap_or(rest.len());
    let rest = rest.get(..end).unwrap_or(rest);
    // The key as written, then its host lower-cased in place.
    let host_start = key.len() + rest.bytes().rposition(|b| b == b'@').map_or(0, |at| at + 1);
    key.push_str(rest);
    if let Some(host) = key.get_mut(host_start..) {
        host.make_ascii_lowercase();
    }
}

/// [`contact_key`] of the URI in a Contact header value (as [`uri_of`] finds it), without
/// a copy of the URI.
#[cfg(test)]
fn contact_key_of_value(value: &str) -> String {
    contact_key(uri_in(value))
}

/// Maps the contact key of Contact header value `value` to `id` in `contacts`, as
/// `contacts.insert(contact_key_of_value(value), id)` does; the key is written in `buf` (a
/// reused buffer, cleared first) and copied only when `contacts` does not map it to `id`
/// yet (a SUBSCRIBE's Contact is the one its UE registered: no copy).
fn map_contact<V: PartialEq, S: BuildHasher>(
    contacts: &mut HashMap<String, V, S>,
    buf: &mut String,
    value: &str,
    id: V,
) {
    buf.clear();
    push_contact_key(buf, uri_in(value));
    if contacts.get(buf.as_str()) != Some(&id) {
        contacts.insert(buf.as_str().to_owned(), id);
    }
}

/// Appends `hash` as 16 hex digits and `counter` in hex (as `format!("{hash:016x}{counter:x}")`).
fn push_branch_id(s: &mut String, hash: u64, counter: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digit = |n: u64, k: u32| char::from(HEX[((n >> (k * 4)) & 0xf) as usize]);
    for k in (0..16).rev() {
        s.push(digit(hash, k));
    }
    let digits = (64 - counter.leading_zeros()).div_ceil(4).max(1);
    for k in (0..digits).rev() {
        s.push(digit(counter, k));
    }
}

/// The URI in a name-addr or addr-spec header value, as [`uri_of`] finds it, borrowed.
fn uri_in(value: &str) -> &str {
    let v = value.trim();
    let uri = match v.find('<') {
        Some(start) => v
            .get(start + 1..)
            .unwrap_or("")
            .split('>')
            .next()
            .unwrap_or(""),
        None => v.split(';').next().unwrap_or(""),
    };
    uri.trim()
}

/// `addr` as its `Display` writes it, an IPv4 address without the formatting machinery.
fn socket_addr_text(addr: SocketAddr) -> String {
    let SocketAddr::V4(v4) = addr else {
        return addr.to_string();
    };
    let mut text = String::with_capacity(21);
    let [a, b, c, d] = v4.ip().octets();
    push_decimal(&mut text, a.into());
    for o in [b, c, d] {
        text.push('.');
        push_decimal(&mut text, o.into());
    }
    text.push(':');
    push_decimal(&mut text, v4.port());
    text
}

/// Appends `n` in decimal.
fn push_decimal(text: &mut String, n: u16) {
    text.push_str(itoa::Buffer::new().format(n));
}

/// The `branch` parameter of a Via value: the value (trimmed) of the first `;`-separated
/// parameter after the first `;` whose name (before its first `=`, trimmed) is `branch` in
/// any case.
fn branch_of(via: &str) -> Option<&str> {
    // (A byte scan: `;` and `=` are ASCII, so every cut is on a character boundary.)
    let b = via.as_bytes();
    let mut start = b.iter().position(|&c| c == b';')? + 1;
    // The usual Via (ours, the UEs'): `branch=` is the first parameter, its name exactly
    // `branch`, so it is the one.
    if let Some(param) = b.get(start..)
        && let Some(rest) = param.strip_prefix(b"branch=")
    {
        let end = rest.iter().position(|&c| c == b';').unwrap_or(rest.len());
        let from = start + 7;
        return via.get(from..from + end).map(str::trim);
    }
    loop {
        let param = b.get(start..).unwrap_or_default();
        let len = param.iter().position(|&c| c == b';');
        let param = param.get(..len.unwrap_or(param.len())).unwrap_or_default();
        if let Some(eq) = param.iter().position(|&c| c == b'=')
            && let (Some(k), Some(v)) = (
                via.get(start..start + eq),
                via.get(start + eq + 1..start + param.len()),
            )
            && k.trim().eq_ignore_ascii_case("branch")
        {
            return Some(v.trim());
        }
        start += len? + 1;
    }
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
    fn on_remote(&mut self, remote: Remote<String>) {
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
            .get_known(KnownHeader::To)
            .map(|t| user_of(&uri_of(t)))
            .unwrap_or_default()
    }

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Connected(handle) => self.on_connected(handle),
            Event::Message(rx) => {
                let conn = rx.connection;
                if conn.info().direction == Direction::Outbound {
                    self.on_as_message(rx.message, conn);
                } else {
                    self.on_ue_message(rx.message, conn);
                }
            }
            Event::Closed { connection, error } => {
                if let Some(ue) = self.ues.remove(&connection.id) {
                    tracing::info!(peer = %ue.peer(), ?error, "UE connection closed");
                    self.contacts.retain(|_, c| *c != connection.id);
                    let gone: Vec<Arc<str>> = self
                        .forwards
                        .iter()
                        .filter(|(_, f)| matches!(f.origin, Origin::Ue(c) if c == connection.id))
                        .map(|(k, _)| k.clone())
                        .collect();
                    for key in gone {
                        self.untrack(&key);
                    }
                } else if let Some(i) = self
                    .servers
                    .iter()
                    .position(|s| s.conn.as_ref().is_some_and(|c| c.id() == connection.id))
                {
                    tracing::warn!(server = %connection.peer_addr, ?error, "MCPTT server connection closed");
                    self.server_failed(i, "connection closed");
                    self.notify_routes.retain(|_, c| c.id() != connection.id);
                    let stranded: Vec<Arc<str>> = self
                        .forwards
                        .iter()
                        .filter(|(_, f)| f.conn == Some(connection.id))
                        .map(|(k, _)| k.clone())
                        .collect();
                    for key in stranded {
                        self.fail_over(&key);
                    }
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
        // (Borrowed, not cloned: what the trace needs is copied out below.)
        let info = handle.info();
        let id = info.id;
        // (Borrowed: the connection keeps it, `UeConn::peer` reads it again.)
        let peer = peer_label(&handle);
        let version = match info.tls_version {
            None => "TLS",
            Some(v) => match &self.tls_version_name {
                Some((seen, name)) if *seen == v => name.as_str(),
                _ => self
                    .tls_version_name
                    .insert((v, format!("{v:?}")))
                    .1
                    .as_str(),
            },
        };
        const VERIFIED: &str = " handshake, client certificate verified: ";
        // Key headers only where the trace keeps them (a load run's does not, and records
        // the line's pieces without an observation).
        if self.trace.keeps_text() {
            let uris = info
                .identity
                .as_ref()
                .map(|i| i.uris().join(", "))
                .unwrap_or_default();
            let headers = vec![
                ("Client-Certificate-URI-SAN".into(), uris),
                ("Server-Certificate".into(), self.config.node_uri.clone()),
                ("Peer".into(), socket_addr_text(info.peer_addr)),
            ];
            self.trace.record(
                Actor::SipCore,
                Observation {
                    from: Some(Actor::Ue),
                    ue: user_of(peer),
                    method: TLS.into(),
                    first_line: [version, VERIFIED, peer].concat(),
                    headers,
                    ..Observation::default()
                },
            );
        } else {
            self.trace.record_event(
                Actor::SipCore,
                Actor::Ue,
                user_part(peer),
                TLS,
                &[version, VERIFIED, peer],
            );
        }
        self.ues.insert(
            id,
            UeConn {
                handle,
                asserted: None,
            },
        );
    }

    /// The `Via` this core puts on a request it sends to an MCPTT server:
    /// `SIP/2.0/TLS host;branch=…;core=TAG`, with a fresh branch (as [`next_branch`]
    /// makes it), appended to `via` (the caller's reused buffer).
    ///
    /// [`next_branch`]: Self::next_branch
    fn push_server_via(&mut self, via: &mut String) {
        self.counter += 1;
        via.reserve(self.via_prefix.len() + 48 + self.tag.len());
        via.push_str(&self.via_prefix);
        push_branch_id(via, self.rand.hash_one(self.counter), self.counter);
        via.push_str(";core=");
        via.push_str(&self.tag);
    }

    /// A fresh branch: `z9hG4bK`, 16 hex digits of a keyed hash of a counter, the counter
    /// in hex.
    fn next_branch(&mut self) -> String {
        self.counter += 1;
        let mut branch = String::with_capacity(7 + 32);
        branch.push_str("z9hG4bK");
        push_branch_id(&mut branch, self.rand.hash_one(self.counter), self.counter);
        branch
    }

    fn on_ue_message(&mut self, msg: Message, conn: ConnectionHandle) {
        self.trace
            .observe(Actor::SipCore, &msg, Actor::Ue, || Self::label_for(&msg));
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
                        .get_known(KnownHeader::CSeq)
                        .is_some_and(|c| c.trim_end().ends_with("NOTIFY"))
                    && self
                        .registrar
                        .handle_notify_response(self.clock.now(), &resp) =>
            {
                // The answer to one of our reg event NOTIFYs.
                self.drain_registrar(None);
            }
            Message::Response(resp) => {
                // An answer to a NOTIFY we relayed: drop our Via, send it on to the server
                // connection the NOTIFY came on.
                let mut resp = resp;
                let route = resp
                    .headers()
                    .get_known(KnownHeader::Via)
                    .and_then(branch_of)
                    .and_then(|b| self.notify_routes.remove(b));
                resp.headers_mut().remove_first("Via");
                if let Some(conn) = route {
                    self.out.push((Target::Conn(conn), Message::Response(resp)));
                    return;
                }
                // Not a NOTIFY this core relayed: the UE answered on another connection
                // than the NOTIFY came on (through another SIP core instance). Every
                // connected server gets it; only the one that sent the NOTIFY matches it.
                let live: Vec<ConnectionHandle> = self
                    .servers
                    .iter()
                    .filter_map(|s| s.conn.clone())
                    .filter(|c| !c.is_closed())
                    .collect();
                if live.is_empty() {
                    self.out.push((
                        Target::Server(self.preferred_server(), None),
                        Message::Response(resp),
                    ));
                    return;
                }
                for conn in live {
                    self.out
                        .push((Target::Conn(conn), Message::Response(resp.clone())));
                }
            }
        }
    }

    /// The certificate identity of a UE connection (empty for one not known here).
    fn peer_of(&self, id: ConnectionId) -> String {
        self.ues
            .get(&id)
            .map(|u| u.peer().to_owned())
            .unwrap_or_default()
    }

    /// Maps the contact key of Contact header value `value` to UE connection `id`
    /// ([`map_contact`] with the reused buffer).
    fn map_contact(&mut self, value: &str, id: ConnectionId) {
        map_contact(&mut self.contacts, &mut self.scratch, value, id);
    }

    /// Steps 3–5: the registrar answers and queues the third-party REGISTER.
    fn on_register(&mut self, req: Request, conn: ConnectionHandle) {
        let id = conn.id();
        let now = self.clock.now();
        // (The peer is borrowed from its connection, not copied: the registrar and the
        // connection table are separate fields.)
        let peer = self.ues.get(&id).map_or("", UeConn::peer);
        let registrar = &mut self.registrar;
        let handle = |r: &mut Registrar<StoreChoice>| r.handle_register(now, peer, &req);
        let mut outcome = if self.blocking_store {
            blocking_io(|| handle(registrar))
        } else {
            handle(registrar)
        };
        let registered = outcome.registered_identity.is_some();
        if let Some(ue) = self.ues.get_mut(&id) {
            ue.asserted = outcome.registered_identity.take();
        }
        if registered {
            for c in req
                .headers()
                .get_all_known(KnownHeader::Contact)
                .flat_map(split_commas)
            {
                self.map_contact(c, id);
            }
        }
        match &outcome.result {
            Err(e @ RegistrarError::StoreUnavailable(_)) => {
                let peer = self.peer_of(id);
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
            Err(e) => tracing::warn!(peer = %self.peer_of(id), error = %e, "REGISTER refused"),
            Ok(()) => {}
        }
        self.out
            .push((Target::Ue(conn), Message::Response(outcome.response)));
        self.drain_registrar(req.headers().get_known(KnownHeader::CallId));
    }

    /// A reg event SUBSCRIBE (RFC 3680) from a UE for its own registration state: the
    /// registrar answers and NOTIFYs; the subscriber's Contact is reached on this connection.
    fn on_reg_subscribe(&mut self, req: Request, conn: ConnectionHandle) {
        let id = conn.id();
        let peer = self.peer_of(id);
        let now = self.clock.now();
        let resp = self.store_io(|r| r.handle_subscribe(now, &peer, &req));
        if (200..300).contains(&resp.status())
            && let Some(c) = req.headers().get_known(KnownHeader::Contact)
        {
            self.map_contact(c, id);
        }
        self.out.push((Target::Ue(conn), Message::Response(resp)));
        self.drain_registrar(None);
    }

    /// Sends what the registrar queued (third-party REGISTERs) and logs its events.
    fn drain_registrar(&mut self, ue_call_id: Option<&str>) {
        while let Some(t) = self.registrar.poll_transmit() {
            let msg = Message::Request(t.request);
            // (`wire::call_id` without its copy.)
            if let (Some(ue), Some(tp)) = (ue_call_id, msg.headers().get_known(KnownHeader::CallId))
            {
                self.trace.alias(tp.trim(), ue);
            }
            // Third-party REGISTERs go to the application server; reg event NOTIFYs to the
            // subscriber's connection when it is one of ours.
            let ue = if t.destination == self.config.application_server {
                None
            } else {
                self.contacts
                    .get(&contact_key(&t.destination))
                    .and_then(|c| self.ues.get(c))
                    .map(|u| u.handle.clone())
            };
            match (ue, msg) {
                (Some(h), msg) => self.out.push((Target::Ue(h), msg)),
                (None, Message::Request(req)) => self.send_to_server(Origin::Registrar, req),
                (None, msg) => self
                    .out
                    .push((Target::Server(self.preferred_server(), None), msg)),
            }
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
        let Some(peer) = self.ues.get(&id).map(|u| u.peer().to_owned()) else {
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
        // The P-Asserted-Identity value, then the Via, written into the reused buffer (from
        // the identity borrowed where it is kept). (A refused request leaves the buffer
        // taken: the next one starts a new one.)
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        let push_pai = |buf: &mut String, asserted: &str| {
            buf.push('<');
            buf.push_str(asserted);
            buf.push('>');
        };
        let asserted = match self.ues.get(&id).and_then(|u| u.asserted.as_deref()) {
            Some(a) => {
                push_pai(&mut buf, a);
                true
            }
            None => match self.registered_elsewhere(id) {
                Ok(a) => a.is_some_and(|a| {
                    push_pai(&mut buf, &a);
                    true
                }),
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
        if !asserted {
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
        }
        let pai_end = buf.len();
        self.push_server_via(&mut buf);
        let (pai, via) = buf.split_at(pai_end);
        let headers = req.headers_mut();
        let max_forwards = headers
            .get_known(KnownHeader::MaxForwards)
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(70);
        // (The UEs send 70: its successor without formatting.)
        let max_forwards = match max_forwards {
            70 => std::borrow::Cow::Borrowed("69"),
            n => std::borrow::Cow::Owned(n.saturating_sub(1).to_string()),
        };
        let subscribe = req.method().as_str() == "SUBSCRIBE";
        // The UE may not assert itself (TS 24.229 §5.2.6.3.3): strip, then assert. (One
        // batch: the message buffer is copied once for the lines it adds.)
        let edits = [
            HeaderEdit::Remove("P-Asserted-Identity"),
            HeaderEdit::PushFront("Via", via),
            HeaderEdit::Push("P-Asserted-Identity", pai),
            HeaderEdit::Replace("Max-Forwards", &max_forwards),
            HeaderEdit::PushFront("Record-Route", &self.record_route),
        ];
        let edits = if subscribe { &edits[..] } else { &edits[..4] };
        let applied = req.headers_mut().apply(edits);
        self.scratch = buf;
        if applied.is_err() {
            tracing::warn!("could not rewrite a request for forwarding");
            return;
        }
        if subscribe
            && let Some(c) = req.headers().get_known(KnownHeader::Contact)
            && (self.contacts.len() < MAX_PENDING)
        {
            // NOTIFYs of this dialog reach the UE on this connection, even when it
            // registered through another SIP core instance.
            self.map_contact(c, id);
        }
        self.send_to_server(Origin::Ue(id), req);
    }

    /// An `OPTIONS` announcing this core (its tag in the `Via`) to server `i`.
    fn hello(&mut self, i: usize) -> Message {
        let branch = self.next_branch();
        let transport = match self.config.mcptt_transport {
            Kind::Tls => "TLS",
            Kind::Tcp => "TCP",
        };
        let peer = self
            .servers
            .get(i)
            .map(|s| format!("{}:{}", s.dest.host, s.dest.port))
            .unwrap_or_default();
        let text = format!(
            "OPTIONS sip:{peer};transport={t} SIP/2.0\r\n\
             Via: SIP/2.0/{transport} {host};branch={branch};core={tag}\r\n\
             Max-Forwards: 70\r\n\
             From: <{uri}>;tag={tag}\r\n\
             To: <sip:{peer}>\r\n\
             Call-ID: {branch}@{host}\r\n\
             CSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n",
            t = transport.to_ascii_lowercase(),
            host = self.host,
            tag = self.tag,
            uri = self.config.node_uri,
        );
        Message::parse(bytes::Bytes::from(text))
            .unwrap_or_else(|_| unreachable!("the OPTIONS hello is well-formed"))
    }

    /// The server requests go to now: the first not held down (else the first listed).
    fn preferred_server(&self) -> usize {
        // The first of `server_order` without building it: the first server up, else the
        // first listed.
        let now = self.clock.now();
        self.servers
            .iter()
            .position(|s| s.down_until.is_none_or(|t| t <= now))
            .unwrap_or(0)
    }

    /// The servers in the order requests try them: those not held down, then those held
    /// down, each in list order.
    fn server_order(&self, now: Instant) -> Vec<usize> {
        let up = |s: &ServerSlot| s.down_until.is_none_or(|t| t <= now);
        let mut order: Vec<usize> = (0..self.servers.len())
            .filter(|&i| self.servers.get(i).is_some_and(up))
            .collect();
        order.extend(
            (0..self.servers.len()).filter(|&i| self.servers.get(i).is_some_and(|s| !up(s))),
        );
        order
    }

    /// Server `i` failed: held down for the configured time.
    fn server_failed(&mut self, i: usize, why: &str) {
        let until = self.clock.now() + self.config.mcptt_hold_down;
        if let Some(s) = self.servers.get_mut(i) {
            tracing::warn!(
                server = %format_args!("{}:{}", s.dest.host, s.dest.port),
                why,
                hold_down = ?self.config.mcptt_hold_down,
                "MCPTT server held down"
            );
            s.down_until = Some(until);
            s.conn = None;
        }
    }

    /// Sends `req` (its top Via branch is its key) to the preferred server, tracked for
    /// failover.
    fn send_to_server(&mut self, origin: Origin, req: Request) {
        let Some(key) = req
            .headers()
            .get_known(KnownHeader::Via)
            .and_then(branch_of)
            .map(Arc::<str>::from)
        else {
            self.out.push((
                Target::Server(self.preferred_server(), None),
                Message::Request(req),
            ));
            return;
        };
        let server = self.preferred_server();
        if self.forwards.len() >= MAX_PENDING {
            tracing::warn!("too many requests in flight: this one is sent without failover");
            self.out
                .push((Target::Server(server, None), Message::Request(req)));
            return;
        }
        let deadline = self.clock.now() + self.config.mcptt_timeout;
        let mut tried = Tried::new(self.servers.len());
        tried.mark(server);
        self.out.push((
            Target::Server(server, Some(key.clone())),
            Message::Request(req),
        ));
        self.deadlines.insert((deadline, key.clone()));
        self.forwards.insert(
            key,
            Forward {
                origin,
                request: None,
                server,
                conn: None,
                tried,
                deadline,
            },
        );
    }

    /// Forgets the forwarded request `key`.
    fn untrack(&mut self, key: &str) -> Option<Forward> {
        let (key, f) = self.forwards.remove_entry(key)?;
        self.deadlines.remove(&(f.deadline, key));
        Some(f)
    }

    /// Requests whose server did not answer in time: that server is held down, the request
    /// tried on the next.
    fn forward_timeouts(&mut self, now: Instant) {
        while let Some((at, key)) = self.deadlines.first().cloned() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(server) = self.forwards.get(&key).map(|f| f.server) {
                self.server_failed(server, "request timed out");
                self.fail_over(&key);
            }
        }
    }

    /// The request `key` failed on its server: send it to the next untried one, or give up.
    fn fail_over(&mut self, key: &str) {
        if self.forwards.get(key).is_some_and(|f| f.request.is_none()) {
            // Not written yet (still queued): there is nothing to fail over.
            return;
        }
        let Some(mut f) = self.untrack(key) else {
            return;
        };
        let Some(mut request) = f.request.take() else {
            return;
        };
        let now = self.clock.now();
        let next = self
            .server_order(now)
            .into_iter()
            .find(|&i| !f.tried.has(i));
        let Some(next) = next else {
            match f.origin {
                Origin::Ue(id) => {
                    tracing::error!(
                        method = request.method().as_str(),
                        "no MCPTT server answered: request refused with 503"
                    );
                    let handle = self.ues.get(&id).map(|u| u.handle.clone());
                    let mut req = request;
                    req.headers_mut().remove_first("Via");
                    if let Some(h) = handle
                        && let Ok(resp) = Response::builder_for(&req, 503)
                            .header("Retry-After", RegistrarError::RETRY_AFTER_SECS)
                            .build()
                    {
                        self.out.push((Target::Ue(h), Message::Response(resp)));
                    }
                }
                Origin::Registrar => tracing::error!(
                    "no MCPTT server answered a third-party REGISTER: the registrar's timeout applies"
                ),
            }
            return;
        };
        tracing::warn!(
            method = request.method().as_str(),
            server = next,
            "request failed over to the next MCPTT server"
        );
        let mut key = Arc::<str>::from(key);
        if matches!(f.origin, Origin::Ue(_)) {
            // A new client transaction: a fresh branch (a late answer to the old one is
            // dropped).
            let branch = self.next_branch();
            let transport = match self.config.mcptt_transport {
                Kind::Tls => "TLS",
                Kind::Tcp => "TCP",
            };
            let via = format!(
                "SIP/2.0/{transport} {};branch={branch};core={}",
                self.host, self.tag
            );
            let edits = [
                HeaderEdit::RemoveFirst("Via"),
                HeaderEdit::PushFront("Via", &via),
            ];
            if request.headers_mut().apply(&edits).is_err() {
                return;
            }
            key = Arc::from(branch);
        }
        f.tried.mark(next);
        f.server = next;
        f.conn = None;
        f.deadline = now + self.config.mcptt_timeout;
        self.out.push((
            Target::Server(next, Some(key.clone())),
            Message::Request(request),
        ));
        self.deadlines.insert((f.deadline, key.clone()));
        self.forwards.insert(key, f);
    }

    fn on_as_message(&mut self, msg: Message, conn: ConnectionHandle) {
        let cseq_method = super::wire::method_str(&msg);
        // (Read before the message moves into the match below.)
        let is_register = cseq_method.eq_ignore_ascii_case("REGISTER");
        if cseq_method.eq_ignore_ascii_case("OPTIONS") {
            // The answer to our hello: not part of the flow.
            return;
        }
        self.trace
            .observe(Actor::SipCore, &msg, Actor::McpttServer, || {
                Self::label_for(&msg)
            });
        match msg {
            Message::Response(resp) => {
                let branch = resp
                    .headers()
                    .get_known(KnownHeader::Via)
                    .and_then(branch_of);
                let final_response = resp.status() >= 200;
                // The answer to a tracked request, on the connection it was last sent on
                // (a late answer from a server it failed over from is dropped).
                let tracked = branch.and_then(|b| {
                    self.forwards
                        .get(b)
                        .map(|f| (f.origin, f.conn == Some(conn.id())))
                });
                if let (Some(b), Some((_, true)), true) = (branch, tracked, final_response) {
                    self.untrack(b);
                }
                if is_register {
                    // Step 6: the answer to our third-party REGISTER.
                    let now = self.clock.now();
                    let _ = self.store_io(|r| r.handle_third_party_response(now, &resp));
                    self.drain_registrar(None);
                    return;
                }
                // Steps 9 and 13: relay to the UE the request came from.
                let Some((Origin::Ue(ue), true)) = tracked else {
                    tracing::info!(?branch, "response for no pending request dropped");
                    return;
                };
                let Some(handle) = self.ues.get(&ue).map(|u| u.handle.clone()) else {
                    tracing::info!(?branch, "response for a gone UE connection dropped");
                    return;
                };
                let mut resp = resp;
                resp.headers_mut().remove_first("Via");
                self.out.push((Target::Ue(handle), Message::Response(resp)));
            }
            Message::Request(req) => self.forward_to_ue(req, conn),
        }
    }

    /// Step 15: route a NOTIFY (from server connection `from`) to the UE connection that
    /// registered or subscribed with its Request-URI.
    fn forward_to_ue(&mut self, mut req: Request, from: ConnectionHandle) {
        // The contact key, then the Via, in the reused buffer (a NOTIFY for no connection
        // leaves it taken: the next one starts a new one).
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        push_contact_key(&mut buf, req.uri().as_str());
        let target = self
            .contacts
            .get(buf.as_str())
            .and_then(|c| self.ues.get(c))
            .map(|u| u.handle.clone());
        let Some(handle) = target else {
            let key = buf;
            tracing::warn!(%key, "no connection for the Request-URI");
            if let Ok(resp) = Response::builder_for(&req, 480).build() {
                self.out.push((Target::Conn(from), Message::Response(resp)));
            }
            return;
        };
        let branch = self.next_branch();
        let host = self.host.as_str();
        let headers = req.headers_mut();
        let ours = headers
            .get_known(KnownHeader::Route)
            .is_some_and(|r| uri_in(r).contains(host));
        buf.clear();
        buf.push_str("SIP/2.0/TLS ");
        buf.push_str(host);
        buf.push_str(";branch=");
        buf.push_str(&branch);
        let edits = [
            HeaderEdit::RemoveFirst("Route"),
            HeaderEdit::PushFront("Via", &buf),
        ];
        let edits = if ours { &edits[..] } else { &edits[1..] };
        let applied = headers.apply(edits);
        self.scratch = buf;
        if applied.is_err() {
            return;
        }
        if self.notify_routes.len() < MAX_NOTIFY_ROUTES {
            self.notify_routes.insert(branch, from);
        }
        self.out.push((Target::Ue(handle), Message::Request(req)));
    }

    /// The connection to server `i`, opened (and announced with an `OPTIONS`) if needed.
    async fn server_conn(&mut self, i: usize) -> Result<ConnectionHandle, mcptt_tls::Error> {
        if let Some(c) = self.servers.get(i).and_then(|s| s.conn.clone())
            && !c.is_closed()
        {
            return Ok(c);
        }
        let Some(dest) = self.servers.get(i).map(|s| s.dest.clone()) else {
            return Err(mcptt_tls::Error::ShuttingDown);
        };
        let conn = self.transport.connect(&dest).await?;
        let hello = self.hello(i);
        conn.send(&hello).await?;
        if let Some(s) = self.servers.get_mut(i) {
            s.conn = Some(conn.clone());
            s.down_until = None;
        }
        Ok(conn)
    }

    async fn flush(&mut self) {
        // Each message is queued on its connection; every connection written to is flushed
        // once at the end (one TLS record and one write for all its messages of this turn).
        // Queued for this flush, so no connection task is woken to write them meanwhile.
        let mut written = std::mem::take(&mut self.written);
        let mut wrote = |h: &ConnectionHandle| {
            if !written.iter().any(|w| w.id() == h.id()) {
                written.push(h.clone());
            }
        };
        // Failing over queues more: loop until nothing is left (each request tries each
        // server at most once).
        let mut sending = std::mem::take(&mut self.sending);
        while !self.out.is_empty() {
            std::mem::swap(&mut sending, &mut self.out);
            for (target, msg) in sending.drain(..) {
                match target {
                    Target::Ue(h) | Target::Conn(h) => {
                        if let Err(e) = h.queue_for_flush(&msg).await {
                            tracing::warn!(error = %e, "send failed");
                        }
                        wrote(&h);
                    }
                    Target::Server(i, key) => {
                        let is_hello = key.is_none() && super::wire::method_str(&msg) == "OPTIONS";
                        let sent = match self.server_conn(i).await {
                            Ok(h) if is_hello => Ok(h),
                            Ok(h) => {
                                wrote(&h);
                                h.queue_for_flush(&msg).await.map(|()| h)
                            }
                            Err(e) => Err(e),
                        };
                        // A tracked request is kept with its entry from now on (for failover).
                        let keep = |f: &mut Forward, msg: Message| {
                            if let Message::Request(r) = msg {
                                f.request = Some(r);
                            }
                        };
                        match sent {
                            Ok(h) => {
                                if let Some(f) = key.as_ref().and_then(|k| self.forwards.get_mut(k))
                                {
                                    f.conn = Some(h.id());
                                    keep(f, msg);
                                }
                            }
                            Err(e) => {
                                let server = self
                                    .servers
                                    .get(i)
                                    .map(|s| format!("{}:{}", s.dest.host, s.dest.port))
                                    .unwrap_or_default();
                                tracing::warn!(error = %e, %server, "send to the MCPTT server failed");
                                self.server_failed(i, "connection failed");
                                if let Some(k) = key {
                                    if let Some(f) = self.forwards.get_mut(&k) {
                                        keep(f, msg);
                                    }
                                    self.fail_over(&k);
                                }
                            }
                        }
                    }
                }
            }
        }
        for h in written.drain(..) {
            h.flush();
        }
        self.sending = sending;
        self.written = written;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
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
            branch_of("SIP/2.0/TLS h;rport;branch=z9hG4bKabc"),
            Some("z9hG4bKabc")
        );
        assert_eq!(branch_of("SIP/2.0/TLS h"), None);
        assert_eq!(
            branch_of("SIP/2.0/TLS h ; BRANCH = z9hG4bKx ;core=t"),
            Some("z9hG4bKx")
        );
    }

    /// `branch_of` as first written (split on `;`, then on the first `=`).
    fn branch_of_split(via: &str) -> Option<&str> {
        via.split(';')
            .skip(1)
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("branch"))
            .map(|(_, v)| v.trim())
    }

    #[test]
    fn branch_of_agrees_with_the_split_definition() {
        // every string of up to 5 pieces from these (separators, white space, case, UTF-8)
        const PIECES: &[&str] = &[
            ";",
            "=",
            " ",
            "branch",
            "BrAnch",
            "z9hG4bKx",
            "\u{a0}",
            "é",
            "x=y",
            "branch=",
            "SIP/2.0/TLS h",
        ];
        let mut n = 0;
        for_each_of_five(PIECES, |s| {
            assert_eq!(branch_of(s), branch_of_split(s), "{s:?}");
            n += usize::from(branch_of(s).is_some());
        });
        assert!(n > 1000, "{n}");
        for via in [
            "SIP/2.0/TLS core:5061;branch=z9hG4bK0123456789abcdef1;core=t",
            "SIP/2.0/TLS h;rport=5;received=1.2.3.4;branch = z9hG4bKy ",
            "SIP/2.0/TLS h;branch",
            "SIP/2.0/TLS h;branch=a;branch=b",
            "",
            ";",
            "a;b;c=d",
        ] {
            assert_eq!(branch_of(via), branch_of_split(via), "{via:?}");
        }
    }

    /// Calls `check` with every string of five `pieces` (repeats allowed).
    fn for_each_of_five(pieces: &[&str], mut check: impl FnMut(&str)) {
        let mut s = String::new();
        for i in 0..pieces.len().pow(5) {
            s.clear();
            let mut k = i;
            for _ in 0..5 {
                s.push_str(pieces[k % pieces.len()]);
                k /= pieces.len();
            }
            check(&s);
        }
    }

    /// `contact_key` as first written (with `str` searches).
    fn contact_key_str(uri: &str) -> String {
        let rest = uri.split_once(':').map_or(uri, |(_, r)| r);
        let end = rest.find([';', '?', '>']).unwrap_or(rest.len());
        let rest = &rest[..end];
        let host_start = rest.rfind('@').map_or(0, |at| at + 1);
        let mut key = rest.to_owned();
        key[host_start..].make_ascii_lowercase();
        key
    }

    #[test]
    fn contact_key_agrees_with_the_str_definition() {
        const PIECES: &[&str] = &[
            "sip:",
            ":",
            "@",
            "UE1",
            "Host.EXAMPLE",
            ";",
            "?",
            ">",
            "é",
            "1:5061",
        ];
        for_each_of_five(PIECES, |s| {
            assert_eq!(contact_key(s), contact_key_str(s), "{s:?}");
            // Into a reused buffer: appended after what it held, which stays as it was.
            let mut key = String::from("Kept@HOST");
            push_contact_key(&mut key, s);
            assert_eq!(key, format!("Kept@HOST{}", contact_key_str(s)), "{s:?}");
        });
    }

    #[test]
    fn branch_ids_and_uris_match_format() {
        for (hash, counter) in [
            (0, 0),
            (1, 1),
            (u64::MAX, u64::MAX),
            (0xabc, 0x10),
            (7, 255),
        ] {
            let mut s = String::new();
            push_branch_id(&mut s, hash, counter);
            assert_eq!(s, format!("{hash:016x}{counter:x}"));
        }
        for v in [
            "<sip:core.example.com;lr;core=abc>",
            " sip:core.example.com;lr ",
            "\"x\" < sip:a@b >;tag=1",
            "<",
            "",
        ] {
            assert_eq!(uri_in(v), uri_of(v), "for {v:?}");
        }
    }

    #[test]
    fn socket_addr_text_is_display() {
        for a in [
            "0.0.0.0:0",
            "127.0.0.1:5061",
            "255.255.255.255:65535",
            "10.20.3.40:9",
            "[::1]:5061",
            "[fe80::1%2]:80",
        ] {
            let addr: SocketAddr = a.parse().unwrap();
            assert_eq!(socket_addr_text(addr), addr.to_string());
        }
    }

    #[test]
    fn tried_servers() {
        for n in [0, 1, 3, 64, 65, 100] {
            let mut t = Tried::new(n);
            assert!(t.has(n), "a server outside the list counts as tried");
            for i in 0..n {
                assert!(!t.has(i));
            }
            if n > 0 {
                t.mark(n - 1);
                t.mark(0);
                assert!(t.has(0) && t.has(n - 1));
                assert_eq!(
                    (0..n).filter(|&i| t.has(i)).count(),
                    if n == 1 { 1 } else { 2 }
                );
            }
            t.mark(n + 5);
            assert!(t.has(n + 5));
        }
    }

    /// The key of a Contact value is the key of the URI `uri_of` finds in it (the copy it
    /// made is gone, the key is not).
    #[test]
    fn contact_key_of_value_is_contact_key_of_uri_of() {
        for v in [
            "<sip:ue1@127.0.0.1:5000;transport=tls>;expires=600;+sip.instance=\"<urn:uuid:1>\"",
            "  \"UE 1\" <sips:UE1@Example.COM:5061>  ",
            "sip:ue1@EXAMPLE.com;expires=0",
            "sip:EXAMPLE.com",
            "<sip:ue1@host?subject=x>",
            "<sip:a@b@C.d>",
            "< sip:ue1@HOST >",
            "<",
            "",
            "*",
            "<sip:ü@HÖST.example>",
        ] {
            assert_eq!(
                contact_key_of_value(v),
                contact_key(&uri_of(v)),
                "for {v:?}"
            );
        }
        assert_eq!(
            contact_key_of_value("<sip:ue1@EXAMPLE.com:5061;transport=tls>;expires=60"),
            "ue1@example.com:5061"
        );
    }

    /// `map_contact` leaves the map as `insert(contact_key_of_value(..))` does, on every
    /// sequence of three mappings from a few values (same key in other spellings, other
    /// keys) and ids, starting from a buffer holding stale text.
    #[test]
    fn map_contact_is_insert_of_the_key() {
        let values = [
            "<sip:ue1@127.0.0.1:5000;transport=tls>;expires=600",
            "sip:ue1@127.0.0.1:5000",
            "<sips:ue1@127.0.0.1:5000>;+sip.instance=\"<urn:uuid:1>\"",
            "<sip:ue2@HOST>",
            "",
        ];
        let ops: Vec<(&str, u8)> = values.iter().flat_map(|v| [(*v, 1), (*v, 2)]).collect();
        for a in &ops {
            for b in &ops {
                for c in &ops {
                    let mut old: HashMap<String, u8> = HashMap::new();
                    let mut new: HashMap<String, u8> = HashMap::new();
                    let mut buf = "stale".to_owned();
                    for &(value, id) in [a, b, c] {
                        old.insert(contact_key_of_value(value), id);
                        map_contact(&mut new, &mut buf, value, id);
                        assert_eq!(new, old, "after {value:?} -> {id}");
                    }
                }
            }
        }
    }
}
