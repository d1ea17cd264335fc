//! Store I/O shared by the SIP core and the MCPTT server actors: running blocking store
//! calls from the task, the thread that reads a store's change feed and forwards it to the
//! task, and the OS-random seeds instances sharing a store need.

use std::time::Duration;

use mcptt_service_state::store::StoreKey;
use mcptt_store_redis::{Change, ChangeFeed, Error as StoreError, ServiceStateFeed};
use tokio::sync::mpsc;

use super::ActorError;

/// Changes from the store's change feed waiting for the task.
const REMOTE_QUEUE: usize = 1024;
/// How long the change feed thread waits for a change before checking that the task is
/// still there.
const FEED_POLL: Duration = Duration::from_secs(1);

/// A random `u64` from the operating system's CSPRNG (instances sharing a store must not
/// draw the same ids, Call-IDs or tags).
pub(super) fn os_random() -> Result<u64, ActorError> {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ActorError::Config("the system random generator failed".into()))?;
    Ok(u64::from_le_bytes(bytes))
}

/// Runs `f`, a call that may do blocking store I/O, without stalling the other tasks of a
/// multi-thread runtime (a current-thread runtime has nowhere else to run them: `f` simply
/// blocks it).
pub(super) fn blocking_io<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// What the change feed thread hands to the task.
#[derive(Debug)]
pub(super) enum Remote<T> {
    /// Another instance changed this record.
    Change(T),
    /// Changes may have been missed (the feed reconnected): resync.
    Resync,
}

/// A store's change feed, as the feed thread reads it.
pub(super) trait Feed: Send + 'static {
    /// What one change names.
    type Item;
    /// The next change, waiting at most `timeout`.
    fn next(&mut self, timeout: Duration) -> Result<Option<Self::Item>, StoreError>;
    /// Whether the feed is connected to the store.
    fn is_connected(&self) -> bool;
    /// Whether changes may have been missed since the last call.
    fn take_resync(&mut self) -> bool;
}

impl Feed for ChangeFeed {
    type Item = Change;
    fn next(&mut self, timeout: Duration) -> Result<Option<Change>, StoreError> {
        Self::next(self, timeout)
    }
    fn is_connected(&self) -> bool {
        Self::is_connected(self)
    }
    fn take_resync(&mut self) -> bool {
        Self::take_resync(self)
    }
}

impl Feed for ServiceStateFeed {
    type Item = StoreKey;
    fn next(&mut self, timeout: Duration) -> Result<Option<StoreKey>, StoreError> {
        Self::next(self, timeout)
    }
    fn is_connected(&self) -> bool {
        Self::is_connected(self)
    }
    fn take_resync(&mut self) -> bool {
        Self::take_resync(self)
    }
}

/// Subscribes to a store's change feed (`subscribe`, run through [`blocking_io`]; `None`
/// where the store has no feed) and starts the thread named `thread` reading it, forwarding
/// each change, mapped by `map`, to the task until the task is gone. `what` names the store
/// in errors and logs.
pub(super) fn start_feed<F: Feed, T: Send + 'static>(
    subscribe: impl FnOnce() -> Result<Option<F>, StoreError>,
    what: &'static str,
    thread: &str,
    map: impl Fn(F::Item) -> T + Send + 'static,
) -> Result<Option<mpsc::Receiver<Remote<T>>>, ActorError> {
    let feed = blocking_io(subscribe)
        .map_err(|e| ActorError::Config(format!("{what} change feed: {e}")))?;
    let Some(mut feed) = feed else {
        return Ok(None);
    };
    let (tx, rx) = mpsc::channel(REMOTE_QUEUE);
    std::thread::Builder::new()
        .name(thread.into())
        .spawn(move || {
            while !tx.is_closed() {
                match feed.next(FEED_POLL) {
                    Ok(Some(item)) => {
                        if tx.blocking_send(Remote::Change(map(item))).is_err() {
                            break;
                        }
                    }
                    Ok(None) => {}
                    Err(StoreError::Redis(e)) => {
                        tracing::error!(error = %e, "{what} change feed lost its Redis connection; reconnecting");
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "{what} change feed ended");
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

/// The next change from the feed; never, without a feed.
pub(super) async fn next_remote<T>(
    remote: &mut Option<mpsc::Receiver<Remote<T>>>,
) -> Option<Remote<T>> {
    match remote {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
