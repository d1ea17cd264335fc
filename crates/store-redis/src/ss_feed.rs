//! [`ServiceStateFeed`]: the service-state changes other MCPTT server instances write, over
//! Redis pub/sub, delivered to a [`Server`].

use std::time::{Duration, Instant};

use mcptt_service_state::server::Server;
use mcptt_service_state::store::{ServiceStateStore, StoreKey};
use mcptt_service_state::{Random, TokenValidator};

use crate::error::Error;
use crate::feed::{Listener, split_payload};
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
}

impl std::fmt::Debug for ServiceStateFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceStateFeed")
            .field("connected", &self.listener.connected)
            .field("resync", &self.listener.resync)
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
        })
    }

    /// Whether the subscription is in place (last seen by [`ServiceStateFeed::next`]).
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.listener.connected
    }

    /// Whether changes may have been missed since the last call (the feed reconnected, or
    /// [`ServiceStateFeed::deliver`] could not apply one), clearing the flag. A driver
    /// that forwards [`ServiceStateFeed::next`]'s keys to its server elsewhere calls
    /// [`Server::resync`] when this says so.
    pub fn take_resync(&mut self) -> bool {
        std::mem::take(&mut self.listener.resync)
    }

    /// The next key changed by another instance, waiting at most `timeout`; `Ok(None)`
    /// when none came, or when the feed has just reconnected (then changes may have been
    /// missed: see [`ServiceStateFeed::take_resync`]).
    ///
    /// # Errors
    /// [`Error::Redis`] when the connection failed (the listener reconnects by itself).
    pub fn next(&mut self, timeout: Duration) -> Result<Option<StoreKey>, Error> {
        self.listener.next(timeout)
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
        self.listener.deliver(
            server,
            wait,
            max,
            |server| match server.resync(now) {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(error = %e, "service-state resync failed");
                    false
                }
            },
            |server, key| match server.handle_remote_change(now, key) {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(?key, error = %e, "remote service-state change not applied");
                    false
                }
            },
        )
    }
}
