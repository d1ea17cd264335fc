//! [`ServiceStateFeed`]: the service-state changes other MCPTT server instances write, over
//! Redis pub/sub, delivered to a [`Server`].

use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use mcptt_service_state::server::Server;
use mcptt_service_state::store::{ServiceStateStore, StoreKey};
use mcptt_service_state::{Random, TokenValidator};

use crate::error::Error;
use crate::feed::{Listener, Note, split_payload};
use crate::service_state::parse_member;

/// The stream of service-state keys ([`StoreKey`]) other instances change in a
/// [`RedisServiceStateStore`](crate::RedisServiceStateStore), over Redis pub/sub, and its
/// delivery to a [`Server`] ([`ServiceStateFeed::deliver`] →
/// [`Server::handle_remote_change`]).
///
/// A listener thread of its own holds the pub/sub connection (dropped with the feed) and
/// reconnects by itself while Redis is away (on a cluster, to the next seed node). Changes
/// the subscribing store itself wrote are skipped (its server NOTIFYed them already).
/// Pub/sub delivery is at most once: changes published while disconnected are lost, so
/// once reconnected [`ServiceStateFeed::deliver`] has the server re-read every UE whose
/// dialogs it holds ([`Server::resync`]); a change the server could not act on (the store
/// was unavailable) also triggers that resync on the next delivery. Each instance NOTIFYs
/// only the dialogs it holds, so every change is NOTIFYed once.
///
/// Message payload: `<version> <instance id, hex> <u<impu> | d<tag, 16 hex digits>>`.
pub struct ServiceStateFeed {
    listener: Listener<StoreKey>,
    connected: bool,
    resync: bool,
}

impl std::fmt::Debug for ServiceStateFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceStateFeed")
            .field("connected", &self.connected)
            .field("resync", &self.resync)
            .finish_non_exhaustive()
    }
}

impl Drop for ServiceStateFeed {
    fn drop(&mut self) {
        self.listener.shut_down();
    }
}

fn parse(payload: &[u8]) -> Option<(u64, StoreKey)> {
    let (_version, origin, m) = split_payload(payload)?;
    Some((origin, parse_member(m)?))
}

impl ServiceStateFeed {
    /// Starts the listener on `channel` and waits until it is subscribed.
    pub(crate) fn start(
        clients: Vec<redis::Client>,
        channel: String,
        own: u64,
        connect_timeout: Duration,
    ) -> Result<Self, Error> {
        Ok(Self {
            listener: Listener::start(clients, channel, own, connect_timeout, parse)?,
            connected: true,
            resync: false,
        })
    }

    /// Whether the subscription is in place (last seen by [`ServiceStateFeed::next`]).
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Whether changes may have been missed since the last call (the feed reconnected, or
    /// [`ServiceStateFeed::deliver`] could not apply one), clearing the flag. A driver
    /// that forwards [`ServiceStateFeed::next`]'s keys to its server elsewhere calls
    /// [`Server::resync`] when this says so.
    pub fn take_resync(&mut self) -> bool {
        std::mem::take(&mut self.resync)
    }

    /// The next key changed by another instance, waiting at most `timeout`; `Ok(None)`
    /// when none came, or when the feed has just reconnected (then changes may have been
    /// missed: see [`ServiceStateFeed::take_resync`]).
    ///
    /// # Errors
    /// [`Error::Redis`] when the connection failed (the listener reconnects by itself).
    pub fn next(&mut self, timeout: Duration) -> Result<Option<StoreKey>, Error> {
        let note = match self.listener.rx.recv_timeout(timeout) {
            Ok(n) => n,
            Err(RecvTimeoutError::Timeout) => return Ok(None),
            Err(RecvTimeoutError::Disconnected) => {
                self.connected = false;
                return Err(Error::UnexpectedReply("change feed listener ended"));
            }
        };
        match note {
            Note::Change(key) => Ok(Some(key)),
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

    /// Hands the keys other instances changed to `server` ([`Server::handle_remote_change`]):
    /// waits at most `wait` for the first one, then takes those already arrived (at most
    /// `max`). After a reconnect, or when the server could not read a changed record, it
    /// first resyncs the server ([`Server::resync`]). Returns the number of changes handed
    /// over; the server's NOTIFYs are then on its `poll_transmit`.
    ///
    /// # Errors
    /// [`Error::Redis`] when the feed's connection failed (call again later: the listener
    /// reconnects and the next delivery resyncs).
    pub fn deliver<V, R, S>(
        &mut self,
        server: &mut Server<V, R, S>,
        now: Instant,
        wait: Duration,
        max: usize,
    ) -> Result<usize, Error>
    where
        V: TokenValidator,
        R: Random,
        S: ServiceStateStore,
    {
        let mut n = 0;
        let mut timeout = wait;
        while n < max {
            let key = self.next(timeout);
            if self.resync && self.connected {
                match server.resync(now) {
                    Ok(()) => self.resync = false,
                    Err(e) => tracing::error!(error = %e, "service-state resync failed"),
                }
            }
            let Some(key) = key? else { break };
            n += 1;
            if let Err(e) = server.handle_remote_change(now, &key) {
                tracing::error!(?key, error = %e, "remote service-state change not applied");
                self.resync = true;
            }
            // Only the first read waits.
            timeout = Duration::ZERO;
        }
        Ok(n)
    }
}
