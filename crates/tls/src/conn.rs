//! One task per connection: reads through rustls into the SIP framer, delivers whole
//! messages, answers keep-alives, enforces the timeouts, and writes what senders could not
//! (a full socket, [`ConnectionHandle::queue`]d batches, the close).
//!
//! Senders do not hop through this task: they encode into the connection's shared write
//! buffer and write it to the socket (through rustls) from their own task; see [`Shared`].
//!
//! ```text
//!            handshake ok
//!  (accept) ─────────────► Open ──EOF/error/timeout──► Closed (Event::Closed)
//!                           │ ▲
//!            shutdown       │ │ message in flight finishes
//!                           ▼ │
//!                         Draining (no new reads at a message boundary; writes go on)
//!                           │ grace over / close()
//!                           ▼
//!                         Closing (flush the write buffer, close_notify, FIN)
//! ```

use std::io::{self, BufRead, IoSlice, Write};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Buf, Bytes, BytesMut};
use mcptt_sip::{FrameScan, Framed, Message};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::transport::{
    AliasKey, ConnectionHandle, ConnectionInfo, Direction, Event, Handler, Inner, Phase, Received,
    Slot, TransportKind, alias_key, new_handle,
};
use crate::{ConnectionId, Error, PeerIdentity};

/// How long a draining connection waits for bytes already sent before the shutdown.
const DRAIN_PROBE: std::time::Duration = std::time::Duration::from_millis(20);

/// Capacity of a fresh write buffer for request/response traffic (one message at a time).
const KEEP_WRITE_BUFFER: usize = 4 * 1024;

/// Capacity of a fresh write buffer after a burst (several answers without regrowing).
/// A write buffer up to this size is kept once written: a connection carrying bursts (a
/// SIP core's connection to its application server) reuses it instead of allocating and
/// freeing 16 KiB or more per flush, which also made the allocator grow and shrink its
/// heap (`mprotect`, page faults). A larger one (a rare big burst) is released.
const FIRST_WRITE_BUFFER: usize = 16 * 1024;

/// The socket and TLS state of an established connection, before the task starts.
// Moved once or twice, from the handshake into `Connection::new`, which takes it apart (it
// is not kept across an await): boxing the TLS streams cost an allocation per connection.
pub(crate) enum Stream {
    Tcp(TcpStream),
    /// An outbound TLS connection.
    TlsOut(tokio_rustls::client::TlsStream<TcpStream>),
    /// An inbound TLS connection (the socket under it remembers the peer's first byte).
    TlsIn(tokio_rustls::server::TlsStream<FirstByte>),
}

/// The accepted socket under the server handshake: remembers the first byte the peer sent,
/// so plain SIP on a TLS port gets a clear error without a `MSG_PEEK` read of its own (one
/// `recvfrom` less per inbound connection, and no peek that finds the ClientHello not
/// there yet).
pub(crate) struct FirstByte {
    tcp: TcpStream,
    first: Option<u8>,
}

impl AsyncRead for FirstByte {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if self.first.is_none() {
            self.first = buf.filled().get(before).copied();
        }
        polled
    }
}

impl AsyncWrite for FirstByte {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> std::task::Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// The verified identity of a TLS peer that presented a certificate chain.
fn peer_identity(
    chain: Option<&[rustls::pki_types::CertificateDer<'static>]>,
) -> Result<Option<Arc<PeerIdentity>>, Error> {
    match chain {
        Some(chain) if !chain.is_empty() => Ok(Some(Arc::new(PeerIdentity::from_verified_chain(
            chain.to_vec(),
        )?))),
        _ => Ok(None),
    }
}

/// Map a tokio-rustls I/O error to ours, keeping the rustls error (alert, certificate
/// verdict) when there is one.
pub(crate) fn handshake_error(e: io::Error) -> Error {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(tls) => Error::Handshake(tls.clone()),
        None => Error::Io(e),
    }
}

/// Server side of the TLS handshake, bounded by the handshake timeout.
pub(crate) async fn accept_tls(
    inner: &Inner,
    tcp: TcpStream,
    config: Arc<ServerConfig>,
) -> Result<Stream, Error> {
    let timeout = inner.config.handshake_timeout;
    let handshake = async {
        let io = FirstByte { tcp, first: None };
        match tokio_rustls::TlsAcceptor::from(config)
            .accept(io)
            .into_fallible()
            .await
        {
            Ok(s) => Ok(Stream::TlsIn(s)),
            // A TLS connection starts with a handshake record (content type 22). Anything
            // else is most likely SIP in plain text: say so instead of "corrupt message".
            Err((_, io)) if io.first.is_some_and(|b| b != 0x16) => {
                Err(Error::PlaintextOnTlsPort(io.first.unwrap_or_default()))
            }
            Err((e, _)) => Err(handshake_error(e)),
        }
    };
    tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| Error::HandshakeTimeout(timeout))?
}

/// `io::Write` over a shared tokio socket without waiting (rustls drives it; `WouldBlock`
/// clears the readiness the connection task then waits for).
struct Nonblocking<'a>(&'a TcpStream);

impl Write for Nonblocking<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// When an append to the write buffer reaches the socket.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteMode {
    /// Written now, from the caller's task ([`ConnectionHandle::send`]).
    Now,
    /// Written soon by the connection's task, woken for it ([`ConnectionHandle::queue`]).
    Soon,
    /// Written by the caller's own [`ConnectionHandle::flush`] after it queued its batch
    /// ([`ConnectionHandle::queue_for_flush`]): the connection's task is not woken for it
    /// (it would find nothing left to write). A full buffer is written at once to make
    /// room, as the flush would.
    ByFlush,
}

/// What an append to the write buffer did.
pub(crate) enum Queued {
    /// Appended (and written, or handed to the connection task).
    Done,
    /// No room: the buffer holds the configured bytes / messages already.
    Full,
}

/// The write side of a connection, shared by its task and every [`ConnectionHandle`].
///
/// Senders encode straight into `out` and, for [`ConnectionHandle::send`], write it to
/// the socket (through rustls) from their own task: no channel hop and no task wake-up
/// per message. Only when the socket is full does the connection task take over, waiting
/// for writability under the write timeout; senders then wait for room (bounded bytes and
/// messages).
pub(crate) struct Shared {
    state: Mutex<WriteState>,
    /// Wakes the connection task: bytes wait for it, a sender's write failed, or a
    /// drain / close was asked for.
    task: Notify,
    /// Wakes senders waiting for room in `out`.
    room: Notify,
    closed: AtomicBool,
    send_buffer: usize,
    send_queue: usize,
}

struct WriteState {
    /// `None` once the connection task has ended.
    tcp: Option<Arc<OwnedWriteHalf>>,
    tls: Option<rustls::Connection>,
    /// Encoded messages not yet handed to rustls / the socket.
    out: BytesMut,
    /// Messages in `out`.
    queued: usize,
    /// The socket refused bytes: the connection task writes the rest once it is writable.
    blocked: bool,
    /// Bytes were written since the connection task last looked (idle timeout).
    wrote: bool,
    /// Bytes the last flush carried. Above [`KEEP_WRITE_BUFFER`] (a burst), a fresh buffer
    /// starts with room for a burst that size (at least [`FIRST_WRITE_BUFFER`]), so the next
    /// one is encoded without regrowth copies; otherwise at [`KEEP_WRITE_BUFFER`]. Either
    /// is kept once written (up to [`FIRST_WRITE_BUFFER`]), so traffic reuses one buffer
    /// instead of allocating per message or per burst.
    last_flush: usize,
    /// A sender's write failed: the connection closes with this error.
    error: Option<io::Error>,
    drain: bool,
    close: bool,
    /// The connection task is handing messages to the [`Handler`](crate::Handler): it
    /// writes what is queued meanwhile once done, so queueing need not wake it.
    dispatching: bool,
}

fn lock(m: &Mutex<WriteState>) -> MutexGuard<'_, WriteState> {
    // The state stays consistent between statements that could panic; keep using it.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl WriteState {
    /// Write what is buffered (rustls records first, then `out`) without waiting.
    /// `Ok(true)`: all written; `Ok(false)`: the socket is full (`blocked` is set).
    fn flush(&mut self) -> io::Result<bool> {
        let Some(tcp) = self.tcp.as_deref().map(sock) else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        if !self.out.is_empty() {
            self.last_flush = self.out.len();
        }
        let mut wr = Nonblocking(tcp);
        match &mut self.tls {
            None => {
                while !self.out.is_empty() {
                    match tcp.try_write(&self.out) {
                        Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                        Ok(n) => self.out.advance(n),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            self.blocked = true;
                            return Ok(false);
                        }
                        Err(e) => return Err(e),
                    }
                    self.wrote = true;
                }
            }
            Some(tls) => loop {
                if tls.wants_write() {
                    match tls.write_tls(&mut wr) {
                        Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                        Ok(_) => self.wrote = true,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            self.blocked = true;
                            return Ok(false);
                        }
                        Err(e) => return Err(e),
                    }
                } else if !self.out.is_empty() {
                    // rustls holds at most one buffer's worth: `out` moves in only once the
                    // previous records are on the socket (rustls' buffer limit is lifted).
                    tls.writer().write_all(&self.out)?;
                    self.out.clear();
                } else {
                    break;
                }
            },
        }
        self.queued = 0;
        self.blocked = false;
        if self.out.capacity() > FIRST_WRITE_BUFFER {
            self.out = BytesMut::new();
        }
        Ok(true)
    }
}

impl Shared {
    fn new(
        tcp: Arc<OwnedWriteHalf>,
        tls: Option<rustls::Connection>,
        config: &crate::TransportConfig,
    ) -> Self {
        Self {
            state: Mutex::new(WriteState {
                tcp: Some(tcp),
                tls,
                out: BytesMut::new(),
                queued: 0,
                blocked: false,
                wrote: false,
                last_flush: 0,
                error: None,
                drain: false,
                close: false,
                dispatching: false,
            }),
            task: Notify::new(),
            room: Notify::new(),
            closed: AtomicBool::new(false),
            send_buffer: config.send_buffer.max(1),
            send_queue: config.send_queue.max(1),
        }
    }

    /// True once the connection task has ended (or a close was asked for).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Append the bytes `encode` writes (one or more whole messages) if there is room;
    /// [`WriteMode::Now`] writes them (and anything queued before) to the socket at once,
    /// [`WriteMode::Soon`] leaves them for the connection task (woken once per batch),
    /// [`WriteMode::ByFlush`] for the caller's flush. `Err` once closed.
    pub(crate) fn append(
        &self,
        encode: &mut (dyn FnMut(&mut BytesMut) + Send),
        mode: WriteMode,
    ) -> Result<Queued, ()> {
        let mut st = lock(&self.state);
        if st.tcp.is_none() || st.close || st.error.is_some() {
            return Err(());
        }
        // A message is taken while fewer than the configured bytes and messages wait (so
        // one message may go beyond the byte bound; one always fits in an empty buffer).
        let full = |st: &WriteState| {
            !st.out.is_empty() && (st.out.len() >= self.send_buffer || st.queued >= self.send_queue)
        };
        if full(&st) {
            if mode != WriteMode::ByFlush || st.blocked {
                return Ok(Queued::Full);
            }
            // Nobody else writes a batch queued for the caller's flush: make room now.
            match st.flush() {
                Ok(true) => {}
                Ok(false) => {
                    drop(st);
                    self.task.notify_one();
                    return Ok(Queued::Full);
                }
                Err(e) => {
                    st.error = Some(e);
                    drop(st);
                    self.task.notify_one();
                    return Ok(Queued::Full);
                }
            }
        }
        let before = st.out.len();
        if st.out.capacity() == 0 {
            // A fresh buffer: after a burst, room for one as large at once (released when
            // written); otherwise the size that is kept between messages.
            let size = if st.last_flush > KEEP_WRITE_BUFFER {
                // (Rounded up: a burst a little larger than the last still fits.)
                st.last_flush.max(FIRST_WRITE_BUFFER).next_power_of_two()
            } else {
                KEEP_WRITE_BUFFER
            };
            st.out.reserve(size.min(self.send_buffer));
        }
        encode(&mut st.out);
        let was_empty = before == 0;
        st.queued += 1;
        if st.blocked {
            // The connection task writes once the socket drains.
            return Ok(Queued::Done);
        }
        match mode {
            WriteMode::Now => self.flush_locked(st),
            WriteMode::Soon if was_empty && !st.dispatching => {
                drop(st);
                self.task.notify_one();
            }
            WriteMode::Soon | WriteMode::ByFlush => {}
        }
        Ok(Queued::Done)
    }

    /// Mark the connection task as handing messages to the handler (or done with it).
    fn set_dispatching(&self, on: bool) {
        lock(&self.state).dispatching = on;
    }

    /// Whether the write buffer takes another message (the handler's answer); when not,
    /// writes it now. False: it is full and the socket refuses bytes (stop handing out
    /// messages).
    fn make_room(&self) -> io::Result<bool> {
        let mut st = lock(&self.state);
        if st.out.is_empty() || (st.out.len() < self.send_buffer && st.queued < self.send_queue) {
            return Ok(true);
        }
        if st.blocked {
            return Ok(false);
        }
        st.flush()
    }

    /// Write what is queued now (see [`ConnectionHandle::flush`]).
    pub(crate) fn flush(&self) {
        let st = lock(&self.state);
        if st.blocked || st.tcp.is_none() || st.out.is_empty() {
            return;
        }
        self.flush_locked(st);
    }

    /// Writes the buffer from the caller's task; wakes the connection task when the socket
    /// could not take everything or the write failed (it then owns the rest or the error).
    fn flush_locked(&self, mut st: MutexGuard<'_, WriteState>) {
        match st.flush() {
            Ok(true) => {}
            Ok(false) => {
                drop(st);
                self.task.notify_one();
            }
            Err(e) => {
                st.error = Some(e);
                drop(st);
                self.task.notify_one();
            }
        }
    }

    /// A future resolving when room may have opened (create before checking).
    pub(crate) fn room(&self) -> tokio::sync::futures::Notified<'_> {
        self.room.notified()
    }

    pub(crate) fn request_drain(&self) {
        lock(&self.state).drain = true;
        self.task.notify_one();
    }

    pub(crate) fn request_close(&self) {
        lock(&self.state).close = true;
        self.task.notify_one();
    }
}

/// What the connection task must do about the write side.
enum Control {
    None,
    Close,
}

pub(crate) struct Connection {
    inner: Arc<Inner>,
    /// Its handle, which holds the write side ([`Shared`]).
    handle: ConnectionHandle,
    /// The socket's read half, read only by this task (through tokio's `poll_read`, which
    /// knows a short read drained the socket: no extra read that would only say
    /// `WouldBlock`).
    rd: OwnedReadHalf,
    /// The write half, shared with the senders (see [`Shared`]).
    tcp: Arc<OwnedWriteHalf>,
    tls: bool,
    /// Bytes received and not yet framed. Released when empty and the socket is drained.
    rbuf: BytesMut,
    /// TLS bytes read from the socket and not yet taken by rustls (rare: a read ahead of
    /// more than `read_chunk` plaintext, see [`READ_AHEAD`]). Empty almost always.
    tls_pending: BytesMut,
    /// The last read returned data: the socket or rustls may hold more, read again
    /// without waiting for readiness.
    read_more: bool,
    eof: bool,
    /// Shutdown started: stop reading at the next message boundary.
    draining: bool,
    drain_checked: bool,
    /// Fires at or before the idle / message / write deadline (re-armed lazily, see
    /// `deadline`).
    timer: Pin<Box<tokio::time::Sleep>>,
    pong_due: bool,
    partial_since: Option<Instant>,
    /// Length of `rbuf` when framing last said "partial" (0: not partial): a turn with no
    /// new bytes (a write or timer wake-up) does not scan the head again.
    partial_len: usize,
    /// Progress of the framing of the message at the start of `rbuf` (one per connection:
    /// a head arriving over many reads is scanned once, see [`mcptt_sip::frame_resume`]).
    /// `frame_parse` resets it after each message; a framing error closes the connection.
    scan: FrameScan,
    /// Since when the socket refuses our bytes (write timeout).
    blocked_since: Option<Instant>,
    last_activity: Instant,
    /// A parsed event waiting for room in the application's queue (back-pressure).
    pending: Option<Event>,
    /// The last Via `alias` sent-by seen and the alias it gave (none: certificate mismatch).
    alias_cache: Option<(Box<str>, Option<AliasKey>)>,
    /// Takes messages inline instead of the event queue (see [`Handler`]).
    handler: Option<Arc<dyn Handler>>,
    _slot: Slot,
}

/// What framing found at the start of the read buffer.
// Messages are the common case, moved once: boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
enum Item {
    Message(Message),
    Malformed(Bytes, mcptt_sip::Error),
    Pong,
}

/// Which timeout a deadline enforces.
#[derive(Clone, Copy)]
enum Due {
    Idle,
    Message,
    Write,
}

impl Connection {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        inner: &Arc<Inner>,
        stream: Stream,
        id: ConnectionId,
        direction: Direction,
        local_addr: std::net::SocketAddr,
        peer_addr: std::net::SocketAddr,
        server_name: Option<String>,
        slot: Slot,
    ) -> Result<(ConnectionHandle, Self), Error> {
        let (kind, identity, tls_version, server_name) = match &stream {
            Stream::Tcp(_) => (TransportKind::Tcp, None, None, None),
            Stream::TlsOut(tls) => {
                let (_, client) = tls.get_ref();
                let identity = peer_identity(client.peer_certificates())?;
                (
                    TransportKind::Tls,
                    identity,
                    client.protocol_version(),
                    server_name,
                )
            }
            Stream::TlsIn(tls) => {
                let (_, server) = tls.get_ref();
                let identity = peer_identity(server.peer_certificates())?;
                let sni = server.server_name().map(str::to_owned);
                (TransportKind::Tls, identity, server.protocol_version(), sni)
            }
        };
        let info = Arc::new(ConnectionInfo {
            id,
            kind,
            direction,
            local_addr,
            peer_addr,
            identity,
            tls_version,
            server_name,
        });
        let (tcp, tls) = match stream {
            Stream::Tcp(tcp) => (tcp, None),
            Stream::TlsOut(tls) => {
                let (tcp, conn) = tls.into_inner();
                (tcp, Some(rustls::Connection::Client(conn)))
            }
            Stream::TlsIn(tls) => {
                let (io, conn) = tls.into_inner();
                (io.tcp, Some(rustls::Connection::Server(conn)))
            }
        };
        let mut tls = tls;
        if let Some(tls) = &mut tls {
            // Our write buffer bounds what waits (send_buffer / send_queue) and moves into
            // rustls only once its records are on the socket; rustls' own 64 KiB limit
            // would cut a larger flush short.
            tls.set_buffer_limit(None);
        }
        let (rd, tcp) = tcp.into_split();
        let tcp = Arc::new(tcp);
        let is_tls = tls.is_some();
        let shared = Shared::new(tcp.clone(), tls, &inner.config);
        let handle = new_handle(info, shared, inner.config.write_timeout);
        let conn = Self {
            inner: inner.clone(),
            handle: handle.clone(),
            rd,
            tcp,
            tls: is_tls,
            rbuf: BytesMut::new(),
            tls_pending: BytesMut::new(),
            read_more: true,
            eof: false,
            draining: false,
            drain_checked: false,
            timer: Box::pin(tokio::time::sleep(inner.config.idle_timeout)),
            pong_due: false,
            partial_since: None,
            partial_len: 0,
            scan: FrameScan::default(),
            blocked_since: None,
            last_activity: Instant::now(),
            pending: None,
            alias_cache: None,
            handler: inner.handler.clone(),
            _slot: slot,
        };
        Ok((handle, conn))
    }

    pub(crate) async fn run_inbound(mut self, handle: ConnectionHandle) {
        self.pending = Some(Event::Connected(handle));
        self.run().await;
    }

    pub(crate) async fn run(mut self) {
        let result = self.drive().await;
        let info = self.handle.info().clone();
        self.inner.unregister(info.id);
        let error = match result {
            Ok(()) => {
                debug!("closed");
                None
            }
            Err(e) => {
                debug!(error = %e, "closed with error");
                Some(e)
            }
        };
        // Drop the socket (and the slot) before telling the application; senders see the
        // connection closed from now on.
        {
            let mut st = lock(&self.handle.shared().state);
            st.tcp = None;
            st.tls = None;
            st.out = BytesMut::new();
        }
        self.handle.shared().closed.store(true, Ordering::Release);
        self.handle.shared().room.notify_waiters();
        // Closing the socket sends the FIN (after anything still queued): no separate
        // `shutdown(2)` from the write half's drop (`finish` did one already when the
        // close was ours).
        match Arc::try_unwrap(self.tcp) {
            Ok(tcp) => tcp.forget(),
            Err(tcp) => drop(tcp),
        }
        drop(self.rd);
        drop(self._slot);
        self.inner.emit_reliable(Event::Closed {
            connection: info,
            error,
        });
    }

    /// With a handler, a peer that does not read its answers is not read either.
    fn write_bound(&self) -> bool {
        self.handler.is_some() && self.blocked_since.is_some()
    }

    fn touch(&mut self) {
        self.last_activity = Instant::now();
    }

    /// The deadline the peer must meet now and which timeout it is. Idle and message
    /// deadlines pause while an event waits for the application, or the handler's answers
    /// wait for the peer to read (back-pressure: the reading side is not the peer's fault);
    /// the write deadline does not.
    fn deadline(&self) -> Option<(Instant, Due)> {
        let config = &self.inner.config;
        let write = self
            .blocked_since
            .map(|since| (since + config.write_timeout, Due::Write));
        let read = if self.pending.is_some() || self.write_bound() {
            None
        } else {
            let idle = self.last_activity + config.idle_timeout;
            Some(match self.partial_since {
                Some(since) => {
                    let m = since + config.message_timeout;
                    if m <= idle {
                        (m, Due::Message)
                    } else {
                        (idle, Due::Idle)
                    }
                }
                None => (idle, Due::Idle),
            })
        };
        match (write, read) {
            (Some(w), Some(r)) => Some(if w.0 <= r.0 { w } else { r }),
            (w, r) => w.or(r),
        }
    }

    /// Look at the write side: a sender's failed write, bytes queued for this task
    /// (written now), a blocked socket (write timeout starts), drain / close requests.
    fn check_writes(&mut self) -> Result<Control, Error> {
        let mut st = lock(&self.handle.shared().state);
        if let Some(e) = st.error.take() {
            return Err(Error::Io(e));
        }
        if st.wrote {
            st.wrote = false;
            self.last_activity = Instant::now();
        }
        if self.pong_due {
            self.pong_due = false;
            st.out.extend_from_slice(b"\r\n");
            st.queued += 1;
        }
        if !st.blocked && !st.out.is_empty() {
            let done = st.flush()?;
            if done {
                drop(st);
                self.handle.shared().room.notify_waiters();
                st = lock(&self.handle.shared().state);
            }
        }
        if st.drain {
            self.draining = true;
        }
        let close = st.close;
        if st.blocked {
            if self.blocked_since.is_none() {
                let now = Instant::now();
                self.blocked_since = Some(now);
                let due = now + self.inner.config.write_timeout;
                if due < self.timer.deadline() {
                    self.timer.as_mut().reset(due);
                }
            }
        } else {
            self.blocked_since = None;
        }
        Ok(if close { Control::Close } else { Control::None })
    }

    async fn drive(&mut self) -> Result<(), Error> {
        let inner = self.inner.clone();
        // TLS 1.3 session tickets and the like may wait in rustls after the handshake.
        {
            let mut st = lock(&self.handle.shared().state);
            if st.tls.as_ref().is_some_and(|tls| tls.wants_write()) {
                st.flush()?;
            }
        }
        loop {
            if self.pending.is_none() {
                // (Nothing to hand out in an empty buffer: no need to tell the write side.)
                let delivered = if self.handler.is_some() && !self.rbuf.is_empty() {
                    self.handle.shared().set_dispatching(true);
                    let delivered = self.deliver();
                    self.handle.shared().set_dispatching(false);
                    delivered
                } else {
                    self.deliver()
                };
                if !delivered? {
                    // Nobody listens any more.
                    return Ok(());
                }
            }
            if let Control::Close = self.check_writes()? {
                return self.finish().await;
            }
            if self.eof && self.pending.is_none() {
                let leftover = self
                    .rbuf
                    .iter()
                    .filter(|b| !matches!(b, b'\r' | b'\n'))
                    .count();
                if leftover > 0 {
                    return Err(Error::TruncatedMessage(self.rbuf.len()));
                }
                // Best effort for what the application queued before the peer left.
                let _ = lock(&self.handle.shared().state).flush();
                return Ok(());
            }
            match inner.phase() {
                Phase::Running => {}
                Phase::Draining => self.draining = true,
                Phase::Closing => return self.finish().await,
            }
            let stop_reading = self.draining && self.rbuf.is_empty();
            if stop_reading && !self.drain_checked {
                // Bytes that reached us before the shutdown are in flight: pick them up and
                // finish that message. (The reactor may not have seen their readiness yet:
                // give it a moment.)
                self.drain_checked = true;
                let probe = self.rd.readable();
                if tokio::time::timeout(DRAIN_PROBE, probe).await.is_ok() {
                    self.read_once()?;
                }
                if !self.rbuf.is_empty() || self.eof {
                    continue;
                }
            }
            let reading = self.pending.is_none() && !stop_reading && !self.write_bound();
            let read_now = self.read_more;
            let blocked = self.blocked_since.is_some();
            let tcp = self.tcp.clone();
            let rd = &self.rd;
            tokio::select! {
                biased;
                permit = inner.events.reserve(), if self.pending.is_some() => match permit {
                    Ok(permit) => {
                        if let Some(event) = self.pending.take() {
                            permit.send(event);
                        }
                    }
                    // With a handler, the other events are optional: drop them.
                    Err(_) if self.handler.is_some() => self.pending = None,
                    Err(_) => return Ok(()),
                },
                () = self.handle.shared().task.notified() => {}
                ready = sock(&tcp).writable(), if blocked => {
                    ready?;
                    let mut st = lock(&self.handle.shared().state);
                    st.blocked = false;
                    if st.flush()? {
                        drop(st);
                        self.handle.shared().room.notify_waiters();
                    }
                }
                ready = readable(rd, read_now), if reading => {
                    ready?;
                    self.read_once()?;
                }
                () = &mut self.timer => {
                    // The timer is set lazily: it may fire before the real deadline, which
                    // moves with activity; re-arm until the real one passes.
                    {
                        let mut st = lock(&self.handle.shared().state);
                        if std::mem::take(&mut st.wrote) {
                            self.last_activity = Instant::now();
                        }
                    }
                    let now = Instant::now();
                    match self.deadline() {
                        Some((deadline, due)) if deadline <= now => {
                            let config = &inner.config;
                            return Err(match due {
                                Due::Message => Error::MessageTimeout(config.message_timeout),
                                Due::Idle => Error::IdleTimeout(config.idle_timeout),
                                Due::Write => Error::WriteTimeout(config.write_timeout),
                            });
                        }
                        Some((deadline, _)) => self.timer.as_mut().reset(deadline),
                        None => self.timer.as_mut().reset(now + inner.config.idle_timeout),
                    }
                }
            }
        }
    }

    /// One non-blocking read into `rbuf` (through rustls for TLS). Sets `read_more` (data
    /// came: try again before waiting) and `eof`.
    fn read_once(&mut self) -> Result<(), Error> {
        let chunk = self.inner.config.read_chunk.max(512);
        let before = self.rbuf.len();
        if !self.tls {
            self.rbuf.reserve(chunk);
            let room = self.rbuf.capacity() - self.rbuf.len();
            let read = std::pin::pin!(self.rd.read_buf(&mut self.rbuf));
            match poll_now(read) {
                Some(Ok(0)) => self.eof = true,
                // A short read drained the socket (tokio then waits for readiness again).
                Some(Ok(n)) => self.read_more = n >= room,
                None => self.read_more = false,
                Some(Err(e)) => return Err(e.into()),
            }
        } else {
            let mut st = lock(&self.handle.shared().state);
            let st = &mut *st;
            let Some(tls) = st.tls.as_mut() else {
                return Err(Error::Io(io::ErrorKind::NotConnected.into()));
            };
            let result = read_tls(
                tls,
                &mut self.rd,
                &mut self.tls_pending,
                &mut self.rbuf,
                chunk,
            );
            // Answers rustls owes the peer (alerts, key updates, tickets).
            if tls.wants_write() && !st.blocked {
                match st.flush() {
                    Ok(_) => {}
                    Err(e) if result.is_ok() => return Err(e.into()),
                    Err(_) => {}
                }
                if st.blocked {
                    self.handle.shared().task.notify_one();
                }
            }
            match result? {
                TlsRead::More => self.read_more = true,
                TlsRead::Drained => self.read_more = false,
                TlsRead::Eof => self.eof = true,
            }
        }
        if self.rbuf.len() > before {
            self.touch();
        }
        Ok(())
    }

    /// Hand every whole message of `rbuf` to the handler, or queue it as an event, until
    /// the buffer holds no whole message, the event queue is full (the event waits in
    /// `pending`) or, with a handler, the write buffer is full and the socket refuses bytes.
    /// `Ok(false)`: the application's event queue is gone (and there is no handler).
    fn deliver(&mut self) -> Result<bool, Error> {
        loop {
            if self.handler.is_some() && !self.handle.shared().make_room()? {
                return Ok(true);
            }
            let Some(item) = self.parse_next()? else {
                return Ok(true);
            };
            let event = match item {
                Item::Message(message) => {
                    if let Some(handler) = &self.handler {
                        let handle = &self.handle;
                        let call = AssertUnwindSafe(|| handler.message(handle, message));
                        if std::panic::catch_unwind(call).is_err() {
                            warn!("message handler panicked: closing the connection");
                            return Err(Error::HandlerPanicked);
                        }
                        continue;
                    }
                    Event::Message(Received {
                        message,
                        connection: self.handle.clone(),
                    })
                }
                Item::Malformed(bytes, error) => Event::Malformed {
                    connection: self.handle.clone(),
                    bytes,
                    error: error.into(),
                },
                Item::Pong => Event::Pong(self.handle.clone()),
            };
            match self.inner.events.try_send(event) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(event)) => {
                    self.pending = Some(event);
                    return Ok(true);
                }
                // With a handler, the other events are optional: drop them.
                Err(mpsc::error::TrySendError::Closed(_)) if self.handler.is_some() => {}
                Err(mpsc::error::TrySendError::Closed(_)) => return Ok(false),
            }
        }
    }

    /// Frame and parse the next item of `rbuf`: a message, a keep-alive (handled here), or
    /// nothing yet.
    fn parse_next(&mut self) -> Result<Option<Item>, Error> {
        let limits = &self.inner.config.sip_limits;
        let info = self.handle.info();
        loop {
            let buf = &self.rbuf[..];
            // RFC 5626 §4.4.1: CRLFCRLF is a ping (answer CRLF), a lone CRLF the pong.
            if buf.starts_with(b"\r\n\r\n") {
                self.rbuf.advance(4);
                self.pong_due = true;
                self.last_activity = Instant::now();
                continue;
            }
            if buf.starts_with(b"\r\n") {
                let may_be_ping = buf.len() == 2 || buf == b"\r\n\r";
                if may_be_ping && info.direction == Direction::Inbound && !self.eof {
                    return Ok(None);
                }
                self.rbuf.advance(2);
                self.last_activity = Instant::now();
                if info.direction == Direction::Outbound {
                    return Ok(Some(Item::Pong));
                }
                // RFC 3261 §7.5: CRLF before a start line is ignored.
                continue;
            }
            if buf.is_empty() {
                self.partial_since = None;
                if !self.read_more && self.rbuf.capacity() > 0 {
                    self.rbuf = BytesMut::new();
                }
                return Ok(None);
            }
            if info.kind == TransportKind::Tcp
                && matches!(buf.first(), Some(0x14..=0x17))
                && buf.get(1) == Some(&3)
            {
                return Err(Error::TlsOnPlainConnection);
            }
            if buf.len() == self.partial_len {
                return Ok(None);
            }
            match mcptt_sip::frame_parse(&mut self.rbuf, limits, &mut self.scan)? {
                Framed::Partial => {
                    self.partial_len = self.rbuf.len();
                    if self.partial_since.is_none() {
                        let now = Instant::now();
                        self.partial_since = Some(now);
                        let due = now + self.inner.config.message_timeout;
                        if due < self.timer.deadline() {
                            self.timer.as_mut().reset(due);
                        }
                    }
                    return Ok(None);
                }
                Framed::Message(message) => {
                    self.partial_since = None;
                    self.partial_len = 0;
                    self.check_via_alias(&message);
                    return Ok(Some(Item::Message(message)));
                }
                Framed::Malformed(bytes, e) => {
                    self.partial_since = None;
                    self.partial_len = 0;
                    warn!(error = %e, "malformed message skipped");
                    return Ok(Some(Item::Malformed(bytes, e)));
                }
            }
        }
    }

    /// RFC 5923: a request over an inbound TLS connection whose top Via carries `alias`
    /// makes this connection the one toward the Via sent-by, if the peer's certificate
    /// names that host (RFC 5923 §5.2 / RFC 5922).
    ///
    /// The verdict for a sent-by is cached: the peer's identity does not change on a
    /// connection, and a peer sends the same sent-by on every request. A cached alias is
    /// claimed again only when another connection took it meanwhile (last request wins, as
    /// without the cache).
    fn check_via_alias(&mut self, message: &Message) {
        let info = self.handle.info();
        if !self.inner.config.via_alias
            || info.direction != Direction::Inbound
            || info.kind != TransportKind::Tls
        {
            return;
        }
        let Message::Request(_) = message else {
            return;
        };
        let Some(via) = message.headers().get("Via") else {
            return;
        };
        let Some(sent_by) = via_alias_param(via) else {
            return;
        };
        if let Some((cached, key)) = &self.alias_cache
            && **cached == *sent_by
        {
            if let Some(key) = key
                && !self.inner.has_alias(info.id, key)
            {
                self.inner.add_alias(info.id, key.clone());
            }
            return;
        }
        let key = self.alias_for(sent_by);
        if let Some(key) = &key {
            self.inner.add_alias(info.id, key.clone());
        }
        self.alias_cache = Some((sent_by.into(), key));
    }

    /// The alias key for a Via sent-by, if the peer's certificate names its host.
    fn alias_for(&self, sent_by: &str) -> Option<AliasKey> {
        let info = self.handle.info();
        let (host, port) = split_sent_by(sent_by)?;
        let identity = info.identity.as_ref()?;
        if identity.matches_host(host) {
            let key = alias_key(host, port.unwrap_or(5061), TransportKind::Tls);
            debug!(alias = %format!("{}:{}", key.0, key.1), "via alias registered");
            Some(key)
        } else {
            debug!(host = %host, "via alias ignored: certificate does not name the sent-by host");
            None
        }
    }

    /// Flush what is queued, then close_notify and FIN, within the write timeout.
    async fn finish(&mut self) -> Result<(), Error> {
        let timeout = self.inner.config.write_timeout;
        lock(&self.handle.shared().state).close = true;
        // Senders waiting for room see the close.
        self.handle.shared().room.notify_waiters();
        let tcp = self.tcp.clone();
        let handle = self.handle.clone();
        let flushed = tokio::time::timeout(timeout, async move {
            let mut close_notify_sent = false;
            loop {
                {
                    let mut st = lock(&handle.shared().state);
                    st.blocked = false;
                    if st.flush()? {
                        match st.tls.as_mut() {
                            Some(tls) if !close_notify_sent => {
                                tls.send_close_notify();
                                close_notify_sent = true;
                                continue;
                            }
                            _ => break,
                        }
                    }
                }
                sock(&tcp).writable().await?;
            }
            Ok::<(), io::Error>(())
        })
        .await;
        lock(&self.handle.shared().state).tcp = None;
        match flushed {
            Err(_) => return Err(Error::WriteTimeout(timeout)),
            Ok(Err(e)) => return Err(e.into()),
            Ok(Ok(())) => {}
        }
        if let Some(tcp) = Arc::get_mut(&mut self.tcp) {
            let _ = tokio::time::timeout(timeout, tcp.shutdown()).await;
        }
        Ok(())
    }
}

/// What one TLS read produced.
enum TlsRead {
    /// Data came and more may be buffered: read again before waiting.
    More,
    /// The socket has nothing more for now.
    Drained,
    /// The peer closed (close_notify, or FIN without it: common among SIP peers).
    Eof,
}

/// Size of the socket reads under rustls: rustls asks for at most 4 KiB at a time, so a
/// burst of records (the SIP core's batch toward the MCPTT server) took one `recvfrom`
/// per 4 KiB; it is read in one and handed to rustls from memory.
const READ_AHEAD_SIZE: usize = 16 * 1024;

thread_local! {
    /// The read-ahead buffer of the connections read on this thread. [`read_tls`] runs
    /// without awaiting, so one buffer per thread serves every connection: it is empty
    /// whenever `read_tls` returns (what rustls did not take moves to the connection's own
    /// `tls_pending`).
    static READ_AHEAD: std::cell::RefCell<ReadAhead> = std::cell::RefCell::new(ReadAhead {
        buf: vec![0; READ_AHEAD_SIZE].into_boxed_slice(),
        start: 0,
        end: 0,
    });
}

/// Socket bytes read ahead for rustls: `buf[start..end]` is not yet taken.
struct ReadAhead {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

/// Move decrypted bytes from rustls into `rbuf` (at most `chunk`), reading the socket
/// without waiting as rustls needs more. TLS bytes left over from an earlier call
/// (`pending`) are taken first; bytes read ahead and not taken now are left there.
fn read_tls(
    tls: &mut rustls::Connection,
    rd: &mut OwnedReadHalf,
    pending: &mut BytesMut,
    rbuf: &mut BytesMut,
    chunk: usize,
) -> Result<TlsRead, Error> {
    READ_AHEAD.with(|ahead| match ahead.try_borrow_mut() {
        Ok(mut ahead) => {
            let result = read_tls_with(tls, rd, pending, &mut ahead, rbuf, chunk);
            // Keep what rustls did not take for this connection's next read.
            if let Some(rest) = ahead.buf.get(ahead.start..ahead.end)
                && !rest.is_empty()
            {
                pending.extend_from_slice(rest);
            }
            ahead.start = 0;
            ahead.end = 0;
            result
        }
        // (Not reentrant; were it ever, read without the shared buffer.)
        Err(_) => {
            let mut own = ReadAhead {
                buf: Box::default(),
                start: 0,
                end: 0,
            };
            read_tls_with(tls, rd, pending, &mut own, rbuf, chunk)
        }
    })
}

fn read_tls_with(
    tls: &mut rustls::Connection,
    rd: &mut OwnedReadHalf,
    pending: &mut BytesMut,
    ahead: &mut ReadAhead,
    rbuf: &mut BytesMut,
    chunk: usize,
) -> Result<TlsRead, Error> {
    let mut copied = 0;
    let mut socket = Reader {
        rd,
        pending,
        ahead,
        drained: false,
    };
    loop {
        loop {
            match tls.reader().fill_buf() {
                Ok([]) => {
                    return Ok(if copied > 0 {
                        TlsRead::More
                    } else {
                        TlsRead::Eof
                    });
                }
                Ok(data) => {
                    let n = data.len().min(chunk - copied);
                    rbuf.extend_from_slice(data.get(..n).unwrap_or_default());
                    tls.reader().consume(n);
                    copied += n;
                    if copied >= chunk {
                        return Ok(TlsRead::More);
                    }
                }
                // No more plaintext; a short socket read before, with nothing read ahead
                // left, means the socket is empty too: wait for readiness instead of
                // reading it again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && socket.drained() => {
                    return Ok(TlsRead::Drained);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Ok(if copied > 0 {
                        TlsRead::More
                    } else {
                        TlsRead::Eof
                    });
                }
                Err(e) => return Err(Error::Io(e)),
            }
        }
        match tls.read_tls(&mut socket) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(TlsRead::Drained),
            Err(e) => return Err(Error::Io(e)),
        }
        let state = tls.process_new_packets().map_err(Error::Tls)?;
        // Room for what was decrypted, at once (no regrowth copies while moving it in).
        rbuf.reserve(state.plaintext_bytes_to_read().min(chunk - copied));
    }
}

async fn readable(rd: &OwnedReadHalf, now: bool) -> io::Result<()> {
    if now { Ok(()) } else { rd.readable().await }
}

/// The socket under a write half.
fn sock(w: &OwnedWriteHalf) -> &TcpStream {
    w.as_ref()
}

/// Poll a future once, without a task to wake (`None`: not ready). Used for tokio's reads,
/// whose readiness bookkeeping a `try_read` lacks; the connection task waits for
/// readability itself.
fn poll_now<F: Future>(fut: Pin<&mut F>) -> Option<F::Output> {
    match fut.poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
        std::task::Poll::Ready(out) => Some(out),
        std::task::Poll::Pending => None,
    }
}

/// `io::Read` over the connection's read half for rustls, without waiting: bytes left
/// from an earlier call first, then the read-ahead buffer, refilled by one socket read of
/// up to [`READ_AHEAD_SIZE`] through tokio's `poll_read`, which clears the socket's
/// readiness after a short read (the socket is drained then, on Linux' epoll), so the next
/// read waits for new bytes instead of trying the socket once more for a `WouldBlock`.
struct Reader<'a> {
    rd: &'a mut OwnedReadHalf,
    pending: &'a mut BytesMut,
    ahead: &'a mut ReadAhead,
    /// The last socket read returned fewer bytes than asked for: the socket is empty.
    drained: bool,
}

impl Reader<'_> {
    /// Nothing left in memory and the socket is empty.
    fn drained(&self) -> bool {
        self.drained && self.pending.is_empty() && self.ahead.start >= self.ahead.end
    }
}

impl io::Read for Reader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.pending.is_empty() {
            let n = buf.len().min(self.pending.len());
            if let (Some(to), Some(from)) = (buf.get_mut(..n), self.pending.get(..n)) {
                to.copy_from_slice(from);
            }
            self.pending.advance(n);
            if self.pending.is_empty() {
                *self.pending = BytesMut::new();
            }
            return Ok(n);
        }
        if self.ahead.start >= self.ahead.end {
            // Read ahead into the shared buffer when it is larger than rustls' request.
            let into_ahead = self.ahead.buf.len() > buf.len();
            let target: &mut [u8] = if into_ahead {
                &mut self.ahead.buf
            } else {
                &mut *buf
            };
            let len = target.len();
            let mut rb = ReadBuf::new(target);
            let read = Pin::new(&mut *self.rd).poll_read(
                &mut std::task::Context::from_waker(std::task::Waker::noop()),
                &mut rb,
            );
            let n = match read {
                std::task::Poll::Ready(Ok(())) => rb.filled().len(),
                std::task::Poll::Ready(Err(e)) => return Err(e),
                std::task::Poll::Pending => return Err(io::ErrorKind::WouldBlock.into()),
            };
            self.drained = n > 0 && n < len;
            if !into_ahead {
                return Ok(n);
            }
            self.ahead.start = 0;
            self.ahead.end = n;
        }
        let available = self.ahead.end - self.ahead.start;
        let n = buf.len().min(available);
        let from = self.ahead.start;
        if let (Some(to), Some(src)) = (buf.get_mut(..n), self.ahead.buf.get(from..from + n)) {
            to.copy_from_slice(src);
        }
        self.ahead.start += n;
        Ok(n)
    }
}
/// The sent-by of a Via header value (first entry) when it carries the `alias` parameter.
/// Runs on every request of an inbound TLS connection: SIMD byte searches for the
/// separators (those and the LWS of a Via are ASCII, so every cut is on a char boundary).
fn via_alias_param(via: &str) -> Option<&str> {
    let b = via.as_bytes();
    let first = match memchr::memchr(b',', b) {
        Some(comma) => b.get(..comma)?,
        None => b,
    };
    // "SIP/2.0/TLS host:port;params": the sent-by starts after the protocol and LWS.
    let start = memchr::memchr2(b' ', b'\t', first)?;
    let mut semicolons = memchr::memchr_iter(b';', first).skip_while(|&i| i < start);
    let sent_by_end = semicolons.next()?;
    let mut param_start = sent_by_end + 1;
    loop {
        let end = semicolons.next();
        let param = first.get(param_start..end.unwrap_or(first.len()))?;
        let name = match memchr::memchr(b'=', param) {
            Some(eq) => param.get(..eq)?,
            None => param,
        };
        if name.trim_ascii().eq_ignore_ascii_case(b"alias") {
            return via.get(start..sent_by_end).map(str::trim_ascii);
        }
        param_start = end? + 1;
    }
}

/// Host and port of a Via sent-by (`host`, `host:port`, `[v6]`, `[v6]:port`).
fn split_sent_by(sent_by: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(v6) = sent_by.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        (h, after.strip_prefix(':'))
    } else {
        match sent_by.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (sent_by, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.trim().parse().ok()?),
        None => None,
    };
    Some((host, port))
}

/// The sent-by of a Via header value (first entry) when it carries the `alias` parameter,
/// split into host and port.
#[cfg(test)]
fn via_alias_sent_by(via: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = split_sent_by(via_alias_param(via)?)?;
    Some((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::via_alias_sent_by;

    #[test]
    fn via_alias_parsing() {
        assert_eq!(
            via_alias_sent_by("SIP/2.0/TLS ue.example.org:5062;branch=z9hG4bK1;alias"),
            Some(("ue.example.org".into(), Some(5062)))
        );
        assert_eq!(
            via_alias_sent_by("SIP/2.0/TLS [::1];alias;branch=z9hG4bK1, SIP/2.0/TLS x"),
            Some(("::1".into(), None))
        );
        assert_eq!(
            via_alias_sent_by("SIP/2.0/TLS a.example:5061;branch=z9hG4bK1"),
            None
        );
        assert_eq!(via_alias_sent_by("SIP/2.0/TLS a.example:x;alias"), None);
        assert_eq!(
            via_alias_sent_by("SIP/2.0/TLS\t a.example:5063 ; branch=z9hG4bK2 ; ALIAS = 1"),
            Some(("a.example".into(), Some(5063)))
        );
        assert_eq!(via_alias_sent_by("SIP/2.0/TLS a.example;aliased"), None);
        assert_eq!(via_alias_sent_by("SIP/2.0/TLS a.example"), None);
        assert_eq!(via_alias_sent_by("SIP/2.0/TLS"), None);
        assert_eq!(
            via_alias_sent_by("SIP/2.0/TLS b.example:5064;alias"),
            Some(("b.example".into(), Some(5064)))
        );
        assert_eq!(
            via_alias_sent_by("SIP/2.0/TLS b.example;branch=z9hG4bK;x=a;b;alias=;c"),
            Some(("b.example".into(), None))
        );
        assert_eq!(via_alias_sent_by("SIP/2.0/TLS a.example, x;alias"), None);
    }
}
