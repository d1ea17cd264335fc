//! [`ChangeFeed`]: the changes other instances write, over Redis pub/sub, delivered to a
//! [`Registrar`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mcptt_registration::{Registrar, RegistrationStore};

use crate::error::Error;

/// How often the listener thread checks whether the feed was dropped.
const POLL: Duration = Duration::from_millis(250);
/// Pause between reconnection attempts while Redis is unreachable.
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);

/// A change written to the store by another instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The address-of-record whose record changed (or was deleted).
    pub aor: String,
    /// The version the write created.
    pub version: u64,
    /// The id of the writing instance ([`crate::RedisStore::instance_id`]).
    pub origin: u64,
}

/// What the listener thread reports.
pub(crate) enum Note<T> {
    Change(T),
    /// The subscription is (again) in place.
    Up,
    /// The connection failed; the thread reconnects.
    Down(redis::RedisError),
}

/// The stream of [`Change`]s other instances write to a store, over Redis pub/sub, and
/// its delivery to a [`Registrar`] ([`ChangeFeed::deliver`] →
/// [`Registrar::handle_remote_change`]).
///
/// A listener thread of its own holds the pub/sub connection (dropped with the feed) and
/// reconnects by itself while Redis is away (on a cluster, to the next seed node). Pub/sub delivery is at most once: changes
/// published while disconnected are lost, so once reconnected [`ChangeFeed::deliver`]
/// has the registrar re-read every AoR it holds reg event subscriptions for
/// ([`Registrar::handle_remote_resync`]); a change the registrar could not act on (the
/// store was unavailable) also triggers that resync on the next delivery. Changes the
/// subscribing store itself wrote are skipped (its registrar NOTIFYed them already).
/// Message payload: `<version> <instance id, hex> <AoR>`.
pub struct ChangeFeed {
    listener: Listener<Change>,
}

impl std::fmt::Debug for ChangeFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeFeed")
            .field("connected", &self.listener.connected)
            .field("resync", &self.listener.resync)
            .finish_non_exhaustive()
    }
}

impl Drop for ChangeFeed {
    fn drop(&mut self) {
        // The thread notices within `POLL` (or a connect timeout).
        self.listener.shut_down();
    }
}

fn parse(payload: &[u8]) -> Option<(u64, Change)> {
    let (version, origin, aor) = split_payload(payload)?;
    Some((
        origin,
        Change {
            aor: aor.to_owned(),
            version,
            origin,
        },
    ))
}

/// Splits a change message `<version> <instance id, hex> <key>`.
pub(crate) fn split_payload(payload: &[u8]) -> Option<(u64, u64, &str)> {
    let text = std::str::from_utf8(payload).ok()?;
    let (version, rest) = text.split_once(' ')?;
    let (origin, key) = rest.split_once(' ')?;
    Some((
        version.parse().ok()?,
        u64::from_str_radix(origin, 16).ok()?,
        key,
    ))
}

/// The listener thread of a feed, its stop flag and its reports, and the feed's state.
pub(crate) struct Listener<T> {
    rx: Receiver<Note<T>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Whether the subscription is in place (last seen by [`Listener::next`]).
    pub(crate) connected: bool,
    /// Whether changes may have been missed (reconnected, or one not applied).
    pub(crate) resync: bool,
}

impl<T: Send + 'static> Listener<T> {
    /// Starts a listener on `channel` forwarding the messages `parse` reads (as
    /// `(origin, change)`) whose origin is not `own`, and waits until it is subscribed.
    pub(crate) fn start(
        clients: Vec<redis::Client>,
        channel: String,
        own: u64,
        connect_timeout: Duration,
        parse: fn(&[u8]) -> Option<(u64, T)>,
    ) -> Result<Self, Error> {
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("mcptt-redis-feed".into())
            .spawn(move || {
                listen(&clients, &channel, own, connect_timeout, &flag, &tx, parse);
            })
            .map_err(|_| Error::ApiMisuse("cannot spawn the change feed thread"))?;
        let listener = Self {
            rx,
            stop,
            thread: Some(thread),
            connected: true,
            resync: false,
        };
        // The first report says whether the subscription is in place.
        match listener.rx.recv() {
            Ok(Note::Up) => Ok(listener),
            Ok(Note::Down(e)) => Err(Error::Redis(e)),
            Ok(Note::Change(_)) | Err(_) => Err(Error::UnexpectedReply("change feed start")),
        }
    }

    /// The next change from another instance, waiting at most `timeout`; `Ok(None)` when
    /// none came or the subscription has just been (re)established.
    pub(crate) fn next(&mut self, timeout: Duration) -> Result<Option<T>, Error> {
        let note = match self.rx.recv_timeout(timeout) {
            Ok(n) => n,
            Err(RecvTimeoutError::Timeout) => return Ok(None),
            Err(RecvTimeoutError::Disconnected) => {
                self.connected = false;
                return Err(Error::UnexpectedReply("change feed listener ended"));
            }
        };
        match note {
            Note::Change(c) => Ok(Some(c)),
            Note::Up => {
                self.connected = true;
                self.resync = true;
                Ok(None)
            }
            Note::Down(e) => {
                self.connected = false;
                self.resync = true;
                Err(Error::Redis(e))
            }
        }
    }

    /// Hands up to `max` changes to `apply` on `to` (which returns whether it could act
    /// on the change), waiting at most `wait` for the first one; before each, while
    /// changes may have been missed and the subscription is in place, calls `resync` on
    /// `to` (which returns whether it succeeded). Returns the number of changes handed over.
    pub(crate) fn deliver<C: ?Sized>(
        &mut self,
        to: &mut C,
        wait: Duration,
        max: usize,
        resync: impl Fn(&mut C) -> bool,
        apply: impl Fn(&mut C, &T) -> bool,
    ) -> Result<usize, Error> {
        let mut n = 0;
        let mut timeout = wait;
        while n < max {
            let change = self.next(timeout);
            if self.resync && self.connected && resync(to) {
                self.resync = false;
            }
            let Some(change) = change? else { break };
            n += 1;
            if !apply(to, &change) {
                self.resync = true;
            }
            // Only the first read waits.
            timeout = Duration::ZERO;
        }
        Ok(n)
    }

    /// Stops the thread and waits for it (within `POLL` or a connect timeout).
    pub(crate) fn shut_down(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The listener: (re)connects, subscribes, forwards changes until `stop` or the feed is
/// gone.
fn listen<T>(
    clients: &[redis::Client],
    channel: &str,
    own: u64,
    connect_timeout: Duration,
    stop: &AtomicBool,
    tx: &Sender<Note<T>>,
    parse: fn(&[u8]) -> Option<(u64, T)>,
) {
    let mut reported_down = false;
    // On a cluster, each failure moves on to the next seed node.
    let mut next = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let Some(client) = clients.get(next % clients.len().max(1)) else {
            return;
        };
        next = next.wrapping_add(1);
        let subscribed = client
            .get_connection_with_timeout(connect_timeout)
            .and_then(|conn| {
                conn.set_write_timeout(Some(connect_timeout))?;
                Ok(conn)
            });
        let mut conn = match subscribed {
            Ok(c) => c,
            Err(e) => {
                if !reported_down && tx.send(Note::Down(e)).is_err() {
                    return;
                }
                reported_down = true;
                std::thread::sleep(RECONNECT_PAUSE);
                continue;
            }
        };
        let mut ps = conn.as_pubsub();
        if let Err(e) = ps
            .set_read_timeout(Some(POLL))
            .and_then(|()| ps.subscribe(channel))
        {
            if !reported_down && tx.send(Note::Down(e)).is_err() {
                return;
            }
            reported_down = true;
            std::thread::sleep(RECONNECT_PAUSE);
            continue;
        }
        if tx.send(Note::Up).is_err() {
            return;
        }
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            match ps.get_message() {
                Ok(msg) => {
                    let Some((origin, change)) = parse(msg.get_payload_bytes()) else {
                        tracing::warn!(channel, "unreadable change message ignored");
                        continue;
                    };
                    if origin != own && tx.send(Note::Change(change)).is_err() {
                        return;
                    }
                }
                Err(e) if e.is_timeout() => {}
                Err(e) => {
                    reported_down = true;
                    if tx.send(Note::Down(e)).is_err() {
                        return;
                    }
                    break;
                }
            }
        }
    }
}

impl ChangeFeed {
    /// Starts the listener on `channel` and waits until it is subscribed.
    pub(crate) fn start(
        clients: Vec<redis::Client>,
        channel: String,
        own: u64,
        connect_timeout: Duration,
    ) -> Result<Self, Error> {
        Ok(Self {
            listener: Listener::start(clients, channel, own, connect_timeout, parse)?,
        })
    }

    /// Whether the subscription is in place (last seen by [`ChangeFeed::next`]).
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.listener.connected
    }

    /// Whether changes may have been missed since the last call (the feed reconnected, or
    /// [`ChangeFeed::deliver`] could not apply one), clearing the flag. A driver that
    /// forwards [`ChangeFeed::next`]'s changes to its registrar elsewhere (e.g. from a
    /// blocking thread to an async task) calls
    /// [`Registrar::handle_remote_resync`] when this says so.
    pub fn take_resync(&mut self) -> bool {
        std::mem::take(&mut self.listener.resync)
    }

    /// The next change written by another instance, waiting at most `timeout`;
    /// `Ok(None)` when none came, or when the feed has just reconnected (then changes may
    /// have been missed: [`ChangeFeed::deliver`] resyncs).
    ///
    /// # Errors
    /// [`Error::Redis`] when the connection failed (the listener reconnects by itself).
    pub fn next(&mut self, timeout: Duration) -> Result<Option<Change>, Error> {
        self.listener.next(timeout)
    }

    /// Hands the changes other instances wrote to `registrar`
    /// ([`Registrar::handle_remote_change`]): waits at most `wait` for the first one,
    /// then takes those already arrived (at most `max`). After a reconnect, or when the
    /// registrar could not read a changed record, it first resyncs the registrar
    /// ([`Registrar::handle_remote_resync`]). Returns the number of changes handed over;
    /// the registrar's NOTIFYs are then on its `poll_transmit`.
    ///
    /// # Errors
    /// [`Error::Redis`] when the feed's connection failed (call again later: the
    /// listener reconnects and the next delivery resyncs).
    pub fn deliver<S: RegistrationStore>(
        &mut self,
        registrar: &mut Registrar<S>,
        now: Instant,
        wait: Duration,
        max: usize,
    ) -> Result<usize, Error> {
        self.listener.deliver(
            registrar,
            wait,
            max,
            |r| match r.handle_remote_resync(now) {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(error = %e, "registration resync failed");
                    false
                }
            },
            |r, change| match r.handle_remote_change(now, &change.aor) {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(aor = change.aor, error = %e, "remote registration change not applied");
                    false
                }
            },
        )
    }
}
