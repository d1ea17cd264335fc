//! One task per connection: reads through rustls into the SIP framer, delivers whole
//! messages, answers keep-alives, writes queued messages, enforces the timeouts.
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
//!                         Closing (flush send queue, close_notify, FIN)
//! ```

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use mcptt_sip::{Message, Status};
use rustls::ServerConfig;
use tokio::io::{AsyncBufRead, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::transport::{
    AliasKey, ConnectionHandle, ConnectionInfo, Direction, Event, Inner, Phase, Received, Slot,
    TransportKind, alias_key, new_handle,
};
use crate::{ConnectionId, Error, PeerIdentity};

/// How long a draining connection waits for bytes already sent before the shutdown.
const DRAIN_PROBE: std::time::Duration = std::time::Duration::from_millis(20);

/// Largest batch of queued messages written with one TLS write.
const WRITE_BATCH: usize = 64 * 1024;
/// Most queued items written with one (vectored) write.
const WRITE_BATCH_PARTS: usize = 64;

pub(crate) enum Outgoing {
    Data(Bytes),
    /// Shutdown started: stop reading at the next message boundary.
    Drain,
    /// Flush and close.
    Close,
}

impl Outgoing {
    /// Copy of a control item (`Drain`, `Close`); data is never copied this way.
    pub(crate) fn clone_control(&self) -> Self {
        match self {
            Self::Drain => Self::Drain,
            Self::Close | Self::Data(_) => Self::Close,
        }
    }
}

pub(crate) enum Stream {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Self::Tcp(s) => s,
            Self::Tls(s) => s.get_ref().0,
        }
    }

    async fn write_all_flush(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.write_all(data).await,
            Self::Tls(s) => {
                s.write_all(data).await?;
                s.flush().await
            }
        }
    }

    /// Write `parts` in order as if concatenated, without copying them into one buffer
    /// (rustls encrypts straight from the slices; plain TCP uses `writev`).
    async fn write_parts_flush(&mut self, parts: &[Bytes]) -> io::Result<()> {
        let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        let mut bufs = &mut slices[..];
        while !bufs.is_empty() {
            let n = match self {
                Self::Tcp(s) => s.write_vectored(bufs).await?,
                Self::Tls(s) => s.write_vectored(bufs).await?,
            };
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut bufs, n);
        }
        match self {
            Self::Tcp(_) => Ok(()),
            Self::Tls(s) => s.flush().await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.shutdown().await,
            Self::Tls(s) => s.shutdown().await,
        }
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

fn tls_read_error(e: io::Error) -> Error {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(tls) => Error::Tls(tls.clone()),
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
        // A TLS connection starts with a handshake record (content type 22). Anything else
        // is most likely SIP in plain text: say so instead of "corrupt message".
        let mut first = [0u8; 1];
        let n = tcp.peek(&mut first).await?;
        let plaintext = n == 1 && first[0] != 0x16;
        match tokio_rustls::TlsAcceptor::from(config).accept(tcp).await {
            Ok(s) => Ok(Stream::Tls(Box::new(tokio_rustls::TlsStream::Server(s)))),
            Err(_) if plaintext => Err(Error::PlaintextOnTlsPort(first[0])),
            Err(e) => Err(handshake_error(e)),
        }
    };
    tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| Error::HandshakeTimeout(timeout))?
}

pub(crate) struct Connection {
    inner: Arc<Inner>,
    handle: ConnectionHandle,
    stream: Stream,
    rx: mpsc::Receiver<Outgoing>,
    /// Bytes received and not yet framed. Released when empty and the socket is drained.
    rbuf: BytesMut,
    /// The last read returned data: the socket or rustls may hold more, read again
    /// without waiting for readiness.
    read_more: bool,
    eof: bool,
    /// Shutdown started: stop reading at the next message boundary.
    draining: bool,
    drain_checked: bool,
    /// Fires at or before the idle / message deadline (re-armed lazily, see `deadline`).
    timer: Pin<Box<tokio::time::Sleep>>,
    pong_due: bool,
    partial_since: Option<Instant>,
    last_activity: Instant,
    /// A parsed event waiting for room in the application's queue (back-pressure).
    pending: Option<Event>,
    /// The last Via `alias` sent-by seen and the alias it gave (none: certificate mismatch).
    alias_cache: Option<(Box<str>, Option<AliasKey>)>,
    /// Reused list of queued messages written together (empty between writes).
    wbatch: Vec<Bytes>,
    _slot: Slot,
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
            Stream::Tls(tls) => {
                let (_, common) = tls.get_ref();
                let identity = match common.peer_certificates() {
                    Some(chain) if !chain.is_empty() => {
                        Some(Arc::new(PeerIdentity::from_chain(chain.to_vec())?))
                    }
                    _ => None,
                };
                let sni = match &**tls {
                    tokio_rustls::TlsStream::Server(s) => {
                        s.get_ref().1.server_name().map(str::to_owned)
                    }
                    tokio_rustls::TlsStream::Client(_) => server_name,
                };
                (TransportKind::Tls, identity, common.protocol_version(), sni)
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
        let (tx, rx) = mpsc::channel(inner.config.send_queue.max(1));
        let handle = new_handle(info, tx, inner.config.write_timeout);
        let conn = Self {
            inner: inner.clone(),
            handle: handle.clone(),
            stream,
            rx,
            rbuf: BytesMut::new(),
            read_more: true,
            eof: false,
            draining: false,
            drain_checked: false,
            timer: Box::pin(tokio::time::sleep(inner.config.idle_timeout)),
            pong_due: false,
            partial_since: None,
            last_activity: Instant::now(),
            pending: None,
            alias_cache: None,
            wbatch: Vec::new(),
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
        // Drop the socket (and the slot) before telling the application.
        drop(self.rx);
        drop(self.stream);
        drop(self._slot);
        self.inner.emit_reliable(Event::Closed {
            connection: info,
            error,
        });
    }

    fn touch(&mut self) {
        self.last_activity = Instant::now();
    }

    /// The deadline the peer must meet now, and whether it is the message timeout.
    /// `None` while an event waits for the application (back-pressure is not the peer's
    /// fault).
    fn deadline(&self) -> Option<(Instant, bool)> {
        if self.pending.is_some() {
            return None;
        }
        let config = &self.inner.config;
        let idle = self.last_activity + config.idle_timeout;
        Some(match self.partial_since {
            Some(since) => {
                let m = since + config.message_timeout;
                (m.min(idle), m <= idle)
            }
            None => (idle, false),
        })
    }

    async fn drive(&mut self) -> Result<(), Error> {
        let inner = self.inner.clone();
        loop {
            if self.pending.is_none() {
                while let Some(event) = self.parse_next()? {
                    match inner.events.try_send(event) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(event)) => {
                            self.pending = Some(event);
                            break;
                        }
                        // Nobody listens any more.
                        Err(mpsc::error::TrySendError::Closed(_)) => return Ok(()),
                    }
                }
            }
            if self.pong_due {
                self.pong_due = false;
                self.write(Bytes::from_static(b"\r\n")).await?;
            }
            if self.eof && self.pending.is_none() {
                let leftover = self
                    .rbuf
                    .iter()
                    .filter(|b| !matches!(b, b'\r' | b'\n'))
                    .count();
                return if leftover == 0 {
                    Ok(())
                } else {
                    Err(Error::TruncatedMessage(self.rbuf.len()))
                };
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
                let probe = self.stream.tcp().readable();
                if tokio::time::timeout(DRAIN_PROBE, probe).await.is_ok() {
                    self.read_once()?;
                }
                if !self.rbuf.is_empty() || self.eof {
                    continue;
                }
            }
            let reading = self.pending.is_none() && !stop_reading;
            let read_now = self.read_more;
            tokio::select! {
                biased;
                permit = inner.events.reserve(), if self.pending.is_some() => match permit {
                    Ok(permit) => {
                        if let Some(event) = self.pending.take() {
                            permit.send(event);
                        }
                    }
                    Err(_) => return Ok(()),
                },
                out = self.rx.recv() => match out {
                    Some(Outgoing::Data(bytes)) => {
                        if self.write_batch(bytes).await? {
                            return self.finish().await;
                        }
                    }
                    Some(Outgoing::Drain) => self.draining = true,
                    Some(Outgoing::Close) | None => return self.finish().await,
                },
                ready = readable(&self.stream, read_now), if reading => {
                    ready?;
                    self.read_once()?;
                }
                () = &mut self.timer => {
                    // The timer is set lazily: it may fire before the real deadline, which
                    // moves with activity; re-arm until the real one passes.
                    let now = Instant::now();
                    match self.deadline() {
                        Some((deadline, partial)) if deadline <= now => {
                            let config = &inner.config;
                            return Err(if partial {
                                Error::MessageTimeout(config.message_timeout)
                            } else {
                                Error::IdleTimeout(config.idle_timeout)
                            });
                        }
                        Some((deadline, _)) => self.timer.as_mut().reset(deadline),
                        None => self.timer.as_mut().reset(now + inner.config.idle_timeout),
                    }
                }
            }
        }
    }

    /// One non-blocking read into `rbuf`. Sets `read_more` (data came: try again before
    /// waiting) and `eof`.
    fn read_once(&mut self) -> Result<(), Error> {
        let chunk = self.inner.config.read_chunk.max(512);
        let before = self.rbuf.len();
        match &mut self.stream {
            Stream::Tcp(tcp) => {
                self.rbuf.reserve(chunk);
                match tcp.try_read_buf(&mut self.rbuf) {
                    Ok(0) => self.eof = true,
                    Ok(_) => self.read_more = true,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.read_more = false,
                    Err(e) => return Err(e.into()),
                }
            }
            Stream::Tls(tls) => {
                // Poll rustls once with a no-op waker: readiness is awaited separately
                // (`readable`), so no read buffer is held while the connection is idle.
                let mut cx = Context::from_waker(Waker::noop());
                let mut copied = 0;
                self.rbuf.reserve(chunk);
                while copied < chunk {
                    match Pin::new(&mut **tls).poll_fill_buf(&mut cx) {
                        Poll::Ready(Ok([])) => {
                            // close_notify received and nothing buffered.
                            if copied == 0 {
                                self.eof = true;
                            }
                            break;
                        }
                        Poll::Ready(Ok(data)) => {
                            let n = data.len().min(chunk - copied);
                            self.rbuf
                                .extend_from_slice(data.get(..n).unwrap_or_default());
                            Pin::new(&mut **tls).consume(n);
                            copied += n;
                            self.read_more = true;
                        }
                        Poll::Ready(Err(_)) if copied > 0 => break,
                        Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                            // TCP FIN without close_notify: common among SIP peers.
                            self.eof = true;
                            break;
                        }
                        Poll::Ready(Err(e)) => return Err(tls_read_error(e)),
                        Poll::Pending => {
                            self.read_more = false;
                            break;
                        }
                    }
                }
            }
        }
        if self.rbuf.len() > before {
            self.touch();
        }
        Ok(())
    }

    /// Frame and parse the next item of `rbuf`: a message event, a keep-alive (handled
    /// here), or nothing yet.
    fn parse_next(&mut self) -> Result<Option<Event>, Error> {
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
                    return Ok(Some(Event::Pong(self.handle.clone())));
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
            match mcptt_sip::frame(buf, limits)? {
                Status::Partial => {
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
                Status::Complete(n) => {
                    let bytes = self.rbuf.split_to(n).freeze();
                    self.partial_since = None;
                    return Ok(Some(match Message::parse_with(bytes.clone(), limits) {
                        Ok(message) => {
                            self.check_via_alias(&message);
                            Event::Message(Received {
                                message,
                                connection: self.handle.clone(),
                            })
                        }
                        Err(e) => {
                            warn!(error = %e, "malformed message skipped");
                            Event::Malformed {
                                connection: self.handle.clone(),
                                bytes,
                                error: e.into(),
                            }
                        }
                    }));
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
        if !via.contains("alias") {
            return;
        }
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

    async fn write(&mut self, data: Bytes) -> Result<(), Error> {
        let timeout = self.inner.config.write_timeout;
        tokio::time::timeout(timeout, self.stream.write_all_flush(&data))
            .await
            .map_err(|_| Error::WriteTimeout(timeout))??;
        self.touch();
        Ok(())
    }

    /// Write `first` and whatever else is queued (up to [`WRITE_BATCH`] bytes and
    /// [`WRITE_BATCH_PARTS`] items) in one go, without copying them together.
    /// Returns true when a close was requested behind the data.
    async fn write_batch(&mut self, first: Bytes) -> Result<bool, Error> {
        let mut batch = std::mem::take(&mut self.wbatch);
        let mut size = first.len();
        batch.push(first);
        let mut close = false;
        let mut yielded = false;
        while size < WRITE_BATCH && batch.len() < WRITE_BATCH_PARTS {
            match self.rx.try_recv() {
                Ok(Outgoing::Data(more)) => {
                    size += more.len();
                    batch.push(more);
                }
                Ok(Outgoing::Drain) => self.draining = true,
                Ok(Outgoing::Close) => {
                    close = true;
                    break;
                }
                Err(_) if !yielded => {
                    // Give producers (often mid-burst on another task) one turn to queue
                    // more, so a burst goes out in one TLS record / syscall.
                    yielded = true;
                    tokio::task::yield_now().await;
                }
                Err(_) => break,
            }
        }
        let timeout = self.inner.config.write_timeout;
        let written = tokio::time::timeout(timeout, self.stream.write_parts_flush(&batch)).await;
        batch.clear();
        // Keep a small list for the next burst; a big one is not held by an idle connection.
        if batch.capacity() <= 16 {
            self.wbatch = batch;
        }
        written.map_err(|_| Error::WriteTimeout(timeout))??;
        self.touch();
        Ok(close)
    }

    /// Flush what is queued, then close_notify / FIN.
    async fn finish(&mut self) -> Result<(), Error> {
        self.rx.close();
        while let Ok(out) = self.rx.try_recv() {
            if let Outgoing::Data(bytes) = out {
                self.write(bytes).await?;
            }
        }
        let timeout = self.inner.config.write_timeout;
        let _ = tokio::time::timeout(timeout, self.stream.shutdown()).await;
        Ok(())
    }
}

async fn readable(stream: &Stream, now: bool) -> io::Result<()> {
    if now {
        Ok(())
    } else {
        stream.tcp().readable().await
    }
}

/// The sent-by of a Via header value (first entry) when it carries the `alias` parameter.
/// Runs on every request of an inbound TLS connection: byte scans only (the separators
/// and LWS of a Via are ASCII).
fn via_alias_param(via: &str) -> Option<&str> {
    let first = via
        .find(',')
        .map_or(via, |i| via.get(..i).unwrap_or_default());
    // "SIP/2.0/TLS host:port;params"
    let first = first.trim_ascii();
    let space = first.find([' ', '\t'])?;
    let rest = first.get(space..)?;
    let (sent_by, mut params) = rest.split_once(';')?;
    loop {
        let (param, more) = params.split_once(';').unwrap_or((params, ""));
        let name = param.split_once('=').map_or(param, |(n, _)| n);
        if name.trim_ascii().eq_ignore_ascii_case("alias") {
            return Some(sent_by.trim_ascii());
        }
        if more.is_empty() {
            return None;
        }
        params = more;
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
        assert_eq!(via_alias_sent_by("SIP/2.0/TLS a.example, x;alias"), None);
    }
}
