//! The transport: listeners, connectors and one task per connection moving whole SIP
//! messages between the socket (through rustls for TLS) and the application.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use mcptt_sip::{Limits, Message};
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, watch};
use tracing::{Instrument, debug, field, info_span, warn};

use crate::conn::{self, Queued, Shared, Stream, WriteMode};
use crate::{Error, PeerIdentity};

/// Identifies one connection for the lifetime of a [`Transport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(u64);

impl ConnectionId {
    /// The number behind the id.
    #[must_use]
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The transport protocol of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// SIP over plain TCP.
    Tcp,
    /// SIP over TLS.
    Tls,
}

impl TransportKind {
    /// The Via transport token (`TCP` or `TLS`, RFC 3261 §18.1.1 / §26.2).
    #[must_use]
    pub fn via_token(self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
        }
    }

    /// The default port: 5060 for TCP, 5061 for TLS (RFC 3261 §19.1.2).
    #[must_use]
    pub fn default_port(self) -> u16 {
        match self {
            Self::Tcp => 5060,
            Self::Tls => 5061,
        }
    }
}

/// Who opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The peer connected to one of our listeners.
    Inbound,
    /// We connected to the peer.
    Outbound,
}

/// Limits and options of a [`Transport`]. Every limit has a safe default.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TransportConfig {
    /// Time allowed for the TLS handshake of a new connection. Default 10 s.
    pub handshake_timeout: Duration,
    /// A connection with no bytes received or written for this long is closed.
    /// Default 300 s (RFC 5626 clients ping every 95–120 s).
    pub idle_timeout: Duration,
    /// Time allowed between the first and the last byte of one message (slowloris guard).
    /// Default 30 s.
    pub message_timeout: Duration,
    /// Time a write (or a wait for room in a full write buffer) may take. Default 10 s.
    pub write_timeout: Duration,
    /// Most connections at once (inbound, outbound and handshaking). Default 16 384.
    pub max_connections: usize,
    /// Most inbound connections from one source IP address. Default 256.
    pub max_connections_per_ip: usize,
    /// Message limits passed to the `mcptt-sip` framer and parser.
    pub sip_limits: Limits,
    /// Capacity of the event queue to the application: when full, connections stop reading
    /// (back-pressure reaches the peers through TCP). Default 1024.
    pub event_queue: usize,
    /// Most messages waiting in a connection's write buffer (not yet accepted by the
    /// socket) before senders wait. Default 64.
    pub send_queue: usize,
    /// Most bytes waiting in a connection's write buffer before senders wait (a message is
    /// accepted while fewer wait, so one message may go beyond). Default 256 KiB.
    pub send_buffer: usize,
    /// Largest single read from a socket, in bytes. Default 16 KiB.
    pub read_chunk: usize,
    /// Client configuration for outbound TLS connections (see [`ClientTlsConfig`](crate::ClientTlsConfig)).
    pub client_tls: Option<Arc<ClientConfig>>,
    /// Honour the Via `alias` parameter on inbound TLS connections whose certificate names the
    /// Via sent-by host (RFC 5923). Default true.
    pub via_alias: bool,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            message_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            max_connections: 16_384,
            max_connections_per_ip: 256,
            sip_limits: Limits::default(),
            event_queue: 1024,
            send_queue: 64,
            send_buffer: 256 * 1024,
            read_chunk: 16 * 1024,
            client_tls: None,
            via_alias: true,
        }
    }
}

impl TransportConfig {
    /// Set the client TLS configuration used by [`Transport::connect`].
    #[must_use]
    pub fn with_client_tls(mut self, config: Arc<ClientConfig>) -> Self {
        self.client_tls = Some(config);
        self
    }
}

/// What is known about a connection once it is established.
#[derive(Debug)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// The connection's id.
    pub id: ConnectionId,
    /// TCP or TLS.
    pub kind: TransportKind,
    /// Who opened it.
    pub direction: Direction,
    /// Our address.
    pub local_addr: SocketAddr,
    /// The peer's address.
    pub peer_addr: SocketAddr,
    /// The peer's verified certificate identity (TLS with a peer certificate only).
    pub identity: Option<Arc<PeerIdentity>>,
    /// The negotiated TLS version.
    pub tls_version: Option<rustls::ProtocolVersion>,
    /// The server name sent in SNI (outbound) or received (inbound), if any.
    pub server_name: Option<String>,
}

/// A cheap, cloneable handle to send on one connection. Every received message carries the
/// handle of its connection, so responses go back where the request came from
/// (RFC 3261 §18.2.2).
#[derive(Clone)]
pub struct ConnectionHandle(Arc<HandleInner>);

struct HandleInner {
    info: Arc<ConnectionInfo>,
    /// The write side, in the handle's own allocation (the connection task reaches it
    /// through its handle: one allocation per connection instead of two).
    shared: Shared,
    write_timeout: Duration,
}

impl fmt::Debug for ConnectionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionHandle")
            .field("id", &self.0.info.id)
            .field("peer", &self.0.info.peer_addr)
            .field("kind", &self.0.info.kind)
            .finish()
    }
}

impl ConnectionHandle {
    /// The connection's write side (shared by its senders and its task).
    pub(crate) fn shared(&self) -> &Shared {
        &self.0.shared
    }

    /// The connection id.
    #[must_use]
    pub fn id(&self) -> ConnectionId {
        self.0.info.id
    }

    /// Everything known about the connection.
    #[must_use]
    pub fn info(&self) -> &Arc<ConnectionInfo> {
        &self.0.info
    }

    /// The peer's address.
    #[must_use]
    pub fn peer_addr(&self) -> SocketAddr {
        self.0.info.peer_addr
    }

    /// The peer's verified certificate identity, if any.
    #[must_use]
    pub fn identity(&self) -> Option<&Arc<PeerIdentity>> {
        self.0.info.identity.as_ref()
    }

    /// Send a message now: it is encoded into the connection's write buffer and written
    /// to the socket (through TLS) from the calling task, together with anything
    /// [`queue`](Self::queue)d before. When the socket is full the connection's task
    /// writes the rest; then this waits for room in the buffer
    /// ([`TransportConfig::send_buffer`] bytes, [`TransportConfig::send_queue`] messages)
    /// at most the write timeout.
    ///
    /// # Errors
    /// [`Error::ConnectionClosed`], or [`Error::SendQueueFull`] when the peer stopped reading.
    pub async fn send(&self, message: &Message) -> Result<(), Error> {
        self.append(&mut |out| message.encode_into(out), WriteMode::Now)
            .await
    }

    /// Queue a message for the connection's task to write soon, in one TLS write with every
    /// other message queued meanwhile: the cheaper way to send a burst (say, the answers to
    /// a batch from [`Events::recv_many`]). [`send`](Self::send) or
    /// [`flush`](Self::flush) writes what is queued at once. Waits for room like `send`.
    ///
    /// # Errors
    /// As [`ConnectionHandle::send`].
    pub async fn queue(&self, message: &Message) -> Result<(), Error> {
        self.append(&mut |out| message.encode_into(out), WriteMode::Soon)
            .await
    }

    /// Write what is [`queue`](Self::queue)d now, from the calling task, without waiting
    /// (a full socket is left to the connection's task).
    pub fn flush(&self) {
        self.0.shared.flush();
    }

    /// Send pre-encoded bytes (one or more whole messages) now, as [`send`](Self::send).
    ///
    /// # Errors
    /// As [`ConnectionHandle::send`].
    pub async fn send_bytes(&self, bytes: Bytes) -> Result<(), Error> {
        self.append(&mut |out| out.extend_from_slice(&bytes), WriteMode::Now)
            .await
    }

    /// Queue pre-encoded bytes (one or more whole messages, e.g. from a sans-IO state
    /// machine's `poll_transmit`) as [`queue`](Self::queue) does for a message: they leave
    /// with the next [`send`](Self::send), [`send_bytes`](Self::send_bytes) or
    /// [`flush`](Self::flush) on this connection (or soon after from the connection's task),
    /// in one TLS write with everything else queued meanwhile, in the order queued. So the
    /// caller need not gather a batch into one buffer first. Counts as one message toward
    /// [`TransportConfig::send_queue`]; waits for room like `send`.
    ///
    /// # Errors
    /// As [`ConnectionHandle::send`].
    pub async fn queue_bytes(&self, bytes: Bytes) -> Result<(), Error> {
        self.append(&mut |out| out.extend_from_slice(&bytes), WriteMode::Soon)
            .await
    }

    /// Queue a message that the caller writes itself with [`flush`](Self::flush) once its
    /// batch is queued (say, every answer to one [`Events::recv_many`] batch, then one
    /// `flush` per connection): as [`queue`](Self::queue), but the connection's task is not
    /// woken to write it, which it would do for nothing after the flush. Until the flush
    /// (or the next [`send`](Self::send) on this connection) the message waits in the
    /// buffer; a full buffer is written at once to make room. Waits for room like `send`.
    ///
    /// # Errors
    /// As [`ConnectionHandle::send`].
    pub async fn queue_for_flush(&self, message: &Message) -> Result<(), Error> {
        self.append(&mut |out| message.encode_into(out), WriteMode::ByFlush)
            .await
    }

    /// Queue pre-encoded bytes (one or more whole messages) for the caller's
    /// [`flush`](Self::flush), as [`queue_for_flush`](Self::queue_for_flush) does for a
    /// message.
    ///
    /// # Errors
    /// As [`ConnectionHandle::send`].
    pub async fn queue_bytes_for_flush(&self, bytes: Bytes) -> Result<(), Error> {
        self.append(&mut |out| out.extend_from_slice(&bytes), WriteMode::ByFlush)
            .await
    }

    /// As [`queue_bytes_for_flush`](Self::queue_bytes_for_flush), from a borrowed slice (the
    /// bytes are copied into the write buffer, as `queue_bytes_for_flush` copies its `Bytes`):
    /// a caller that encodes its batch into a buffer it reuses needs no `Bytes` per message.
    ///
    /// # Errors
    /// As [`ConnectionHandle::send`].
    pub async fn queue_slice_for_flush(&self, bytes: &[u8]) -> Result<(), Error> {
        self.append(&mut |out| out.extend_from_slice(bytes), WriteMode::ByFlush)
            .await
    }

    async fn append(
        &self,
        encode: &mut (dyn FnMut(&mut BytesMut) + Send),
        mode: WriteMode,
    ) -> Result<(), Error> {
        let id = self.0.info.id;
        let shared = &self.0.shared;
        // Fast path without a timer: there is room.
        match shared.append(encode, mode) {
            Ok(Queued::Done) => return Ok(()),
            Ok(Queued::Full) => {}
            Err(()) => return Err(Error::ConnectionClosed(id)),
        }
        let wait = async {
            loop {
                let room = shared.room();
                tokio::pin!(room);
                room.as_mut().enable();
                match shared.append(encode, mode) {
                    Ok(Queued::Done) => return Ok(()),
                    Ok(Queued::Full) => room.await,
                    Err(()) => return Err(Error::ConnectionClosed(id)),
                }
            }
        };
        tokio::time::timeout(self.0.write_timeout, wait)
            .await
            .unwrap_or(Err(Error::SendQueueFull(id)))
    }

    /// Queue a message without waiting, if there is room: the connection's task writes it
    /// soon, together with everything else queued meanwhile. From a [`Handler`], the
    /// answers to all the messages of one read leave in one TLS write.
    ///
    /// # Errors
    /// [`Error::SendQueueFull`] or [`Error::ConnectionClosed`].
    pub fn try_queue(&self, message: &Message) -> Result<(), Error> {
        match self
            .0
            .shared
            .append(&mut |out| message.encode_into(out), WriteMode::Soon)
        {
            Ok(Queued::Done) => Ok(()),
            Ok(Queued::Full) => Err(Error::SendQueueFull(self.0.info.id)),
            Err(()) => Err(Error::ConnectionClosed(self.0.info.id)),
        }
    }

    /// Send a message now if there is room, without waiting.
    ///
    /// # Errors
    /// [`Error::SendQueueFull`] or [`Error::ConnectionClosed`].
    pub fn try_send(&self, message: &Message) -> Result<(), Error> {
        match self
            .0
            .shared
            .append(&mut |out| message.encode_into(out), WriteMode::Now)
        {
            Ok(Queued::Done) => Ok(()),
            Ok(Queued::Full) => Err(Error::SendQueueFull(self.0.info.id)),
            Err(()) => Err(Error::ConnectionClosed(self.0.info.id)),
        }
    }

    /// Send an RFC 5626 keep-alive ping (CRLF CRLF); the answer shows up as
    /// [`Event::Pong`].
    ///
    /// # Errors
    /// As [`ConnectionHandle::send`].
    pub async fn send_keepalive(&self) -> Result<(), Error> {
        self.send_bytes(Bytes::from_static(b"\r\n\r\n")).await
    }

    /// Close the connection after the messages already queued are written (TLS
    /// close_notify, then FIN).
    pub async fn close(&self) {
        self.0.shared.request_close();
    }

    /// True once the connection's task has ended.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.0.shared.is_closed()
    }
}

/// Answers messages on the connection's own task: set with [`Transport::with_handler`].
///
/// Each whole message a connection frames and parses is passed to
/// [`message`](Self::message) right there, on the task that read it, instead of being
/// queued as an [`Event::Message`] for the application's event loop: a request → response
/// needs no hop between tasks. Answers queued from the handler with
/// [`ConnectionHandle::try_queue`] are written together, in one TLS write, once the
/// messages of the current read are handled.
///
/// Every other event (connected, malformed, pong, closed, rejected) still goes to
/// [`Events`].
///
/// The handler runs on a runtime worker thread: it must not block. Long work (a database
/// look-up, say) belongs in a task it spawns, which answers later with
/// [`ConnectionHandle::send`]. A slow handler delays only its own connection (and holds its
/// worker thread meanwhile). A handler that panics closes its connection with
/// [`Error::HandlerPanicked`]; other connections go on.
///
/// Back-pressure: a connection hands the handler no more messages (and stops reading)
/// while its write buffer is full and the socket refuses bytes, so a peer that does not
/// read its answers is not read either, and ends with [`Error::WriteTimeout`].
///
/// Closures `Fn(&ConnectionHandle, Message)` are handlers.
pub trait Handler: Send + Sync + 'static {
    /// Handle one message received on `connection`.
    fn message(&self, connection: &ConnectionHandle, message: Message);
}

impl<F> Handler for F
where
    F: Fn(&ConnectionHandle, Message) + Send + Sync + 'static,
{
    fn message(&self, connection: &ConnectionHandle, message: Message) {
        self(connection, message);
    }
}

/// A message received on a connection.
#[derive(Debug)]
#[non_exhaustive]
pub struct Received {
    /// The message.
    pub message: Message,
    /// The connection it came on: send responses here.
    pub connection: ConnectionHandle,
}

/// What the transport reports to the application, in order per connection.
#[derive(Debug)]
#[non_exhaustive]
// Messages are the common case, moved once into the queue: boxing them would cost an
// allocation per message (mcptt-sip's `Message` grew past clippy's bound with its header
// index).
#[allow(clippy::large_enum_variant)]
pub enum Event {
    /// An inbound connection finished its handshake.
    Connected(ConnectionHandle),
    /// A whole message arrived.
    Message(Received),
    /// A framed message could not be parsed; it was skipped and the connection stays open.
    /// A server answers requests with the error's [`Error::status_code`].
    Malformed {
        /// The connection.
        connection: ConnectionHandle,
        /// The raw message.
        bytes: Bytes,
        /// Why it did not parse.
        error: Error,
    },
    /// An RFC 5626 pong (CRLF) answered our ping.
    Pong(ConnectionHandle),
    /// A connection ended; `error` is `None` for an orderly close.
    Closed {
        /// The connection.
        connection: Arc<ConnectionInfo>,
        /// Why it ended.
        error: Option<Error>,
    },
    /// An inbound connection was refused (limits) or failed its handshake.
    Rejected {
        /// The peer's address.
        peer_addr: SocketAddr,
        /// The listener's address.
        local_addr: SocketAddr,
        /// Why.
        error: Error,
    },
}

/// The application's end of the event queue.
#[derive(Debug)]
pub struct Events(mpsc::Receiver<Event>);

impl Events {
    /// The next event; `None` once the transport and all its connections are gone.
    pub async fn recv(&mut self) -> Option<Event> {
        self.0.recv().await
    }

    /// The next event if one is queued.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.0.try_recv().ok()
    }

    /// Wait for events and append up to `limit` of those queued to `buf` (one wake-up for
    /// a batch); returns how many were appended, 0 once the transport and all its
    /// connections are gone (or when `limit` is 0).
    pub async fn recv_many(&mut self, buf: &mut Vec<Event>, limit: usize) -> usize {
        self.0.recv_many(buf, limit).await
    }
}

/// Where to connect: host (name or IP literal), port, transport, and the TLS server name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    /// Host name or IP address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// TCP or TLS.
    pub kind: TransportKind,
    /// Server name to send in SNI and to verify; defaults to `host`.
    pub server_name: Option<String>,
}

impl Destination {
    /// A TLS destination.
    #[must_use]
    pub fn tls(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            kind: TransportKind::Tls,
            server_name: None,
        }
    }

    /// A plain-TCP destination.
    #[must_use]
    pub fn tcp(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            kind: TransportKind::Tcp,
            server_name: None,
        }
    }

    /// A destination given by socket address.
    #[must_use]
    pub fn addr(addr: SocketAddr, kind: TransportKind) -> Self {
        Self {
            host: addr.ip().to_string(),
            port: addr.port(),
            kind,
            server_name: None,
        }
    }

    /// Verify the server certificate against this name instead of `host`.
    #[must_use]
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    fn alias_key(&self) -> AliasKey {
        alias_key(&self.host, self.port, self.kind)
    }
}

pub(crate) type AliasKey = (String, u16, TransportKind);

pub(crate) fn alias_key(host: &str, port: u16, kind: TransportKind) -> AliasKey {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = match host.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => host.to_ascii_lowercase(),
    };
    (host, port, kind)
}

/// Lifecycle of the transport, broadcast to listeners and connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Running = 0,
    /// Stop accepting; connections finish the message they are receiving, then stop reading;
    /// sending still works.
    Draining = 1,
    /// Flush send queues and close.
    Closing = 2,
}

pub(crate) struct Inner {
    pub(crate) config: TransportConfig,
    pub(crate) events: mpsc::Sender<Event>,
    /// Takes messages on the connection tasks instead of [`Event::Message`].
    pub(crate) handler: Option<Arc<dyn Handler>>,
    next_id: AtomicU64,
    conns: Mutex<HashMap<ConnectionId, (ConnectionHandle, Vec<AliasKey>)>>,
    aliases: Mutex<HashMap<AliasKey, ConnectionId>>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    total: AtomicUsize,
    tasks: AtomicUsize,
    tasks_done: Notify,
    pub(crate) phase: watch::Sender<Phase>,
    /// Mirror of `phase` read on every connection loop turn (no lock).
    phase_now: std::sync::atomic::AtomicU8,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain maps behind; keep using them.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A connection slot: counts toward the limits until dropped. Also counts the task for
/// graceful shutdown.
pub(crate) struct Slot {
    inner: Arc<Inner>,
    ip: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.inner.total.fetch_sub(1, Ordering::AcqRel);
        if let Some(ip) = self.ip {
            let mut per_ip = lock(&self.inner.per_ip);
            if let Some(n) = per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    per_ip.remove(&ip);
                }
            }
        }
        if self.inner.tasks.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.tasks_done.notify_waiters();
        }
    }
}

impl Inner {
    fn admit(self: &Arc<Self>, inbound_ip: Option<IpAddr>) -> Result<Slot, Error> {
        let max = self.config.max_connections;
        if self
            .total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_err()
        {
            return Err(Error::TooManyConnections(max));
        }
        if let Some(ip) = inbound_ip {
            let limit = self.config.max_connections_per_ip;
            let mut per_ip = lock(&self.per_ip);
            let n = per_ip.entry(ip).or_insert(0);
            if *n >= limit {
                drop(per_ip);
                self.total.fetch_sub(1, Ordering::AcqRel);
                return Err(Error::TooManyConnectionsFromAddress { addr: ip, limit });
            }
            *n += 1;
        }
        self.tasks.fetch_add(1, Ordering::AcqRel);
        Ok(Slot {
            inner: self.clone(),
            ip: inbound_ip,
        })
    }

    fn next_id(&self) -> ConnectionId {
        ConnectionId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    pub(crate) fn phase(&self) -> Phase {
        match self.phase_now.load(Ordering::SeqCst) {
            0 => Phase::Running,
            1 => Phase::Draining,
            _ => Phase::Closing,
        }
    }

    /// Enter `phase` and tell every registered connection (connections registering later
    /// read the phase themselves).
    async fn set_phase(&self, phase: Phase) {
        self.phase_now.store(phase as u8, Ordering::SeqCst);
        self.phase.send_replace(phase);
        let handles: Vec<ConnectionHandle> =
            lock(&self.conns).values().map(|(h, _)| h.clone()).collect();
        for h in handles {
            match phase {
                Phase::Running => {}
                Phase::Draining => h.0.shared.request_drain(),
                Phase::Closing => h.0.shared.request_close(),
            }
        }
    }

    pub(crate) fn register(&self, handle: &ConnectionHandle, alias: Option<AliasKey>) {
        let id = handle.id();
        let mut keys = Vec::new();
        if let Some(k) = alias {
            lock(&self.aliases).insert(k.clone(), id);
            keys.push(k);
        }
        lock(&self.conns).insert(id, (handle.clone(), keys));
    }

    /// Whether `key` currently leads to connection `id`.
    pub(crate) fn has_alias(&self, id: ConnectionId, key: &AliasKey) -> bool {
        lock(&self.aliases).get(key) == Some(&id)
    }

    pub(crate) fn add_alias(&self, id: ConnectionId, key: AliasKey) -> bool {
        let mut conns = lock(&self.conns);
        let Some((_, keys)) = conns.get_mut(&id) else {
            return false;
        };
        if !keys.contains(&key) {
            keys.push(key.clone());
        }
        lock(&self.aliases).insert(key, id);
        true
    }

    pub(crate) fn unregister(&self, id: ConnectionId) {
        let removed = lock(&self.conns).remove(&id);
        if let Some((_, keys)) = removed {
            let mut aliases = lock(&self.aliases);
            for k in keys {
                if aliases.get(&k) == Some(&id) {
                    aliases.remove(&k);
                }
            }
        }
    }

    /// Report an event that must not be lost (connection closed): queue it, or hand it to a
    /// small task when the queue is full.
    pub(crate) fn emit_reliable(&self, event: Event) {
        match self.events.try_send(event) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(event)) => {
                let tx = self.events.clone();
                tokio::spawn(async move {
                    let _ = tx.send(event).await;
                });
            }
        }
    }

    /// Report an event that may be dropped under overload (rejections, pongs).
    pub(crate) fn emit_lossy(&self, event: Event) {
        if self.events.try_send(event).is_err() {
            debug!("event queue full: dropped a rejection/pong event");
        }
    }
}

/// SIP transport over TLS and TCP: listeners, connectors, connection reuse and limits.
///
/// Cloneable; all clones drive the same connections. See the crate docs for an example.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("connections", &self.connection_count())
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// A transport with the given limits, and the event queue the application reads.
    #[must_use]
    pub fn new(config: TransportConfig) -> (Self, Events) {
        Self::build(config, None)
    }

    /// A transport whose connections pass each received message to `handler` on their own
    /// task (see [`Handler`]) instead of queueing [`Event::Message`]; the other events go
    /// to the returned queue as with [`Transport::new`]. Unlike there, connections go on
    /// when the queue is dropped (its events are then discarded); while it is kept, read
    /// it: a full queue stops reading as with [`Transport::new`].
    ///
    /// ```
    /// use mcptt_tls::{ConnectionHandle, Transport, TransportConfig};
    /// use mcptt_sip::{Message, Response};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // Answer every request with 200 OK on the connection it came on.
    /// let (core, _events) = Transport::with_handler(
    ///     TransportConfig::default(),
    ///     |conn: &ConnectionHandle, message: Message| {
    ///         if let Message::Request(req) = &message {
    ///             let ok = Message::Response(Response::from_request(req, 200));
    ///             let _ = conn.try_queue(&ok);
    ///         }
    ///     },
    /// );
    /// let _addr = core.listen_tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();
    /// # }
    /// ```
    #[must_use]
    pub fn with_handler(config: TransportConfig, handler: impl Handler) -> (Self, Events) {
        Self::build(config, Some(Arc::new(handler)))
    }

    fn build(config: TransportConfig, handler: Option<Arc<dyn Handler>>) -> (Self, Events) {
        let (tx, rx) = mpsc::channel(config.event_queue.max(1));
        let (phase, _) = watch::channel(Phase::Running);
        let inner = Arc::new(Inner {
            config,
            events: tx,
            handler,
            next_id: AtomicU64::new(1),
            conns: Mutex::new(HashMap::new()),
            aliases: Mutex::new(HashMap::new()),
            per_ip: Mutex::new(HashMap::new()),
            total: AtomicUsize::new(0),
            tasks: AtomicUsize::new(0),
            tasks_done: Notify::new(),
            phase,
            phase_now: std::sync::atomic::AtomicU8::new(Phase::Running as u8),
        });
        (Self { inner }, Events(rx))
    }

    /// The transport's configuration.
    #[must_use]
    pub fn config(&self) -> &TransportConfig {
        &self.inner.config
    }

    /// Accept mutual-TLS (per `config`) SIP connections on `addr`; returns the bound address.
    ///
    /// # Errors
    /// [`Error::Io`] when the address cannot be bound.
    pub async fn listen_tls(
        &self,
        addr: SocketAddr,
        config: Arc<ServerConfig>,
    ) -> Result<SocketAddr, Error> {
        self.listen(addr, Some(config)).await
    }

    /// Accept plain-TCP SIP connections on `addr`; returns the bound address.
    ///
    /// # Errors
    /// [`Error::Io`] when the address cannot be bound.
    pub async fn listen_tcp(&self, addr: SocketAddr) -> Result<SocketAddr, Error> {
        self.listen(addr, None).await
    }

    async fn listen(
        &self,
        addr: SocketAddr,
        tls: Option<Arc<ServerConfig>>,
    ) -> Result<SocketAddr, Error> {
        if self.inner.phase() != Phase::Running {
            return Err(Error::ShuttingDown);
        }
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let inner = self.inner.clone();
        let mut phase = inner.phase.subscribe();
        let kind = if tls.is_some() {
            TransportKind::Tls
        } else {
            TransportKind::Tcp
        };
        let span = info_span!("sip_listener", local = %local, transport = kind.via_token());
        tokio::spawn(
            async move {
                loop {
                    tokio::select! {
                        accepted = listener.accept() => match accepted {
                            Ok((tcp, peer)) => accept_one(&inner, tcp, peer, local, tls.clone()),
                            Err(e) => {
                                // EMFILE and friends: back off briefly instead of spinning.
                                warn!(error = %e, "accept failed");
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        },
                        () = async { let _ = phase.wait_for(|p| *p != Phase::Running).await; } => break,
                    }
                }
                debug!("listener stopped");
            }
            .instrument(span),
        );
        Ok(local)
    }

    /// Open a new connection to `dest` (TLS handshake included) and register it as the
    /// connection toward `dest` for reuse.
    ///
    /// With TLS 1.3 the server checks our certificate after our side of the handshake is
    /// done: a rejection then shows up as [`Event::Closed`] with the server's alert.
    ///
    /// The connection stays open for reuse after the handle is dropped, until
    /// [`ConnectionHandle::close`], the idle timeout, the peer, or [`Transport::shutdown`]
    /// ends it.
    ///
    /// # Errors
    /// [`Error::Resolve`], [`Error::Io`], [`Error::Handshake`], [`Error::HandshakeTimeout`],
    /// [`Error::TooManyConnections`], [`Error::NoClientTlsConfig`], [`Error::ShuttingDown`].
    pub async fn connect(&self, dest: &Destination) -> Result<ConnectionHandle, Error> {
        if self.inner.phase() != Phase::Running {
            return Err(Error::ShuttingDown);
        }
        let tls = match dest.kind {
            TransportKind::Tls => Some(
                self.inner
                    .config
                    .client_tls
                    .clone()
                    .ok_or(Error::NoClientTlsConfig)?,
            ),
            TransportKind::Tcp => None,
        };
        let server_name = match &tls {
            Some(_) => {
                let name = dest.server_name.as_deref().unwrap_or(&dest.host);
                let name = name.trim_start_matches('[').trim_end_matches(']');
                Some(
                    ServerName::try_from(name.to_owned())
                        .map_err(|_| Error::InvalidServerName(name.to_owned()))?,
                )
            }
            None => None,
        };
        let slot = self.inner.admit(None)?;
        let tcp = connect_tcp(&dest.host, dest.port).await?;
        let _ = tcp.set_nodelay(true);
        let local = tcp.local_addr()?;
        let peer = tcp.peer_addr()?;
        let id = self.inner.next_id();
        let span = info_span!("sip_conn", conn = id.0, dir = "out", peer = %peer,
            transport = dest.kind.via_token(), identity = field::Empty);
        let stream = match (tls, server_name) {
            (Some(config), Some(name)) => {
                let connector = tokio_rustls::TlsConnector::from(config);
                let timeout = self.inner.config.handshake_timeout;
                let hs = tokio::time::timeout(timeout, connector.connect(name, tcp))
                    .instrument(span.clone())
                    .await
                    .map_err(|_| Error::HandshakeTimeout(timeout))?
                    .map_err(conn::handshake_error)?;
                Stream::TlsOut(hs)
            }
            _ => Stream::Tcp(tcp),
        };
        let (handle, conn) = conn::Connection::new(
            &self.inner,
            stream,
            id,
            Direction::Outbound,
            local,
            peer,
            dest.server_name.clone().or_else(|| Some(dest.host.clone())),
            slot,
        )?;
        if let Some(identity) = handle.identity() {
            span.record("identity", identity.label());
        }
        self.inner.register(&handle, Some(dest.alias_key()));
        tokio::spawn(conn.run().instrument(span));
        Ok(handle)
    }

    /// The live connection toward `dest` (one we opened, or an inbound one the peer offered
    /// for reuse with a Via `alias`, RFC 5923), if any.
    #[must_use]
    pub fn connection_to(&self, dest: &Destination) -> Option<ConnectionHandle> {
        let id = *lock(&self.inner.aliases).get(&dest.alias_key())?;
        self.connection(id)
    }

    /// Reuse the connection toward `dest` if one is alive, else open one.
    ///
    /// # Errors
    /// As [`Transport::connect`].
    pub async fn connect_or_reuse(&self, dest: &Destination) -> Result<ConnectionHandle, Error> {
        if let Some(h) = self.connection_to(dest) {
            return Ok(h);
        }
        self.connect(dest).await
    }

    /// Send `message` toward `dest`, reusing a live connection when there is one.
    ///
    /// # Errors
    /// As [`Transport::connect`] and [`ConnectionHandle::send`].
    pub async fn send_to(
        &self,
        dest: &Destination,
        message: &Message,
    ) -> Result<ConnectionHandle, Error> {
        let handle = self.connect_or_reuse(dest).await?;
        handle.send(message).await?;
        Ok(handle)
    }

    /// The handle of a live connection.
    #[must_use]
    pub fn connection(&self, id: ConnectionId) -> Option<ConnectionHandle> {
        lock(&self.inner.conns)
            .get(&id)
            .map(|(h, _)| h.clone())
            .filter(|h| !h.is_closed())
    }

    /// Send on a connection by id (RFC 3261 §18.2.2: the response goes back on the
    /// connection the request came on).
    ///
    /// # Errors
    /// [`Error::ConnectionClosed`] and as [`ConnectionHandle::send`].
    pub async fn send(&self, id: ConnectionId, message: &Message) -> Result<(), Error> {
        let handle = self.connection(id).ok_or(Error::ConnectionClosed(id))?;
        handle.send(message).await
    }

    /// Make `dest` an alias of connection `id`, so that requests toward `dest` reuse it
    /// (RFC 5923). Returns false if the connection is gone.
    pub fn add_alias(&self, id: ConnectionId, dest: &Destination) -> bool {
        self.inner.add_alias(id, dest.alias_key())
    }

    /// Number of connections (including those still handshaking).
    #[must_use]
    pub fn connection_count(&self) -> usize {
        self.inner.total.load(Ordering::Acquire)
    }

    /// Graceful shutdown: stop accepting and connecting; let every connection finish
    /// receiving the message it is in the middle of, then stop reading; keep sending for
    /// `grace` (responses to requests already delivered), then flush the send queues, send
    /// TLS close_notify and close. Returns when every connection is closed.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.set_phase(Phase::Draining).await;
        let _ = tokio::time::timeout(grace, self.wait_idle()).await;
        self.inner.set_phase(Phase::Closing).await;
        let flush = self.inner.config.write_timeout + Duration::from_millis(100);
        let _ = tokio::time::timeout(flush, self.wait_idle()).await;
    }

    async fn wait_idle(&self) {
        loop {
            let notified = self.inner.tasks_done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.inner.tasks.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

async fn connect_tcp(host: &str, port: u16) -> Result<TcpStream, Error> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(TcpStream::connect(SocketAddr::new(ip, port)).await?);
    }
    let mut last = None;
    for addr in tokio::net::lookup_host((bare, port))
        .await
        .map_err(|_| Error::Resolve(host.to_owned()))?
    {
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(|| Error::Resolve(host.to_owned()), Error::Io))
}

fn accept_one(
    inner: &Arc<Inner>,
    tcp: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    tls: Option<Arc<ServerConfig>>,
) {
    let slot = match inner.admit(Some(peer.ip())) {
        Ok(slot) => slot,
        Err(error) => {
            warn!(peer = %peer, error = %error, "connection refused");
            drop(tcp);
            inner.emit_lossy(Event::Rejected {
                peer_addr: peer,
                local_addr: local,
                error,
            });
            return;
        }
    };
    let id = inner.next_id();
    let kind = if tls.is_some() {
        TransportKind::Tls
    } else {
        TransportKind::Tcp
    };
    let span = info_span!("sip_conn", conn = id.0, dir = "in", peer = %peer,
        transport = kind.via_token(), identity = field::Empty);
    let inner = inner.clone();
    tokio::spawn(
        async move {
            let _ = tcp.set_nodelay(true);
            let stream = match tls {
                None => Stream::Tcp(tcp),
                Some(config) => match conn::accept_tls(&inner, tcp, config).await {
                    Ok(s) => s,
                    Err(error) => {
                        debug!(error = %error, "handshake failed");
                        inner.emit_lossy(Event::Rejected {
                            peer_addr: peer,
                            local_addr: local,
                            error,
                        });
                        drop(slot);
                        return;
                    }
                },
            };
            let (handle, conn) = match conn::Connection::new(
                &inner,
                stream,
                id,
                Direction::Inbound,
                local,
                peer,
                None,
                slot,
            ) {
                Ok(x) => x,
                Err(error) => {
                    inner.emit_lossy(Event::Rejected {
                        peer_addr: peer,
                        local_addr: local,
                        error,
                    });
                    return;
                }
            };
            if let Some(identity) = handle.identity() {
                tracing::Span::current().record("identity", identity.label());
            }
            debug!("connected");
            inner.register(&handle, None);
            conn.run_inbound(handle).await;
        }
        .instrument(span),
    );
}

pub(crate) fn new_handle(
    info: Arc<ConnectionInfo>,
    shared: Shared,
    write_timeout: Duration,
) -> ConnectionHandle {
    ConnectionHandle(Arc::new(HandleInner {
        info,
        shared,
        write_timeout,
    }))
}
