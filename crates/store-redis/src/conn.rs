//! Connections shared by the stores: one Redis node or a Redis Cluster, reconnecting after
//! a broken connection, script invocation with the `NOSCRIPT` fallback, and the plumbing
//! both stores share (pipelined reads, the earliest-deadline scan and its cache, failure
//! notes).

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redis::cluster::{ClusterClient, ClusterConnection};
use redis::{Cmd, Connection, ConnectionLike, Value};

use crate::error::Error;
use crate::store::RedisStoreConfig;
use crate::time::TimeBase;

/// A connection to one Redis node or to a Redis Cluster.
pub(crate) enum Conn {
    Single(Connection),
    Cluster(Box<ClusterConnection>),
}

impl Conn {
    pub(crate) fn like(&mut self) -> &mut dyn ConnectionLike {
        match self {
            Self::Single(c) => c,
            Self::Cluster(c) => &mut **c,
        }
    }

    /// Sends `cmds` pipelined (split per node on a cluster) and returns one reply each.
    pub(crate) fn pipeline(&mut self, cmds: Vec<Cmd>) -> redis::RedisResult<Vec<Value>> {
        match self {
            Self::Single(c) => {
                let mut p = redis::pipe();
                for cmd in cmds {
                    p.add_command(cmd);
                }
                p.query(c)
            }
            Self::Cluster(c) => {
                let mut p = redis::cluster::cluster_pipe();
                for cmd in cmds {
                    p.add_command(cmd);
                }
                p.query(c)
            }
        }
    }
}

/// How to reach Redis: one node, or a cluster through its seed nodes.
#[derive(Clone)]
pub(crate) enum Client {
    Single(redis::Client),
    /// The cluster client and a plain client per seed node (for pub/sub).
    Cluster(Box<(ClusterClient, Vec<redis::Client>)>),
}

impl Client {
    pub(crate) fn open(config: &RedisStoreConfig) -> Result<Self, Error> {
        if config.cluster_nodes.is_empty() {
            return Ok(Self::Single(redis::Client::open(config.url.as_str())?));
        }
        let cluster = ClusterClient::builder(config.cluster_nodes.iter().map(String::as_str))
            .connection_timeout(config.connect_timeout)
            .response_timeout(config.response_timeout)
            .retries(2)
            .build()?;
        // Pub/sub messages reach every node of a cluster: the change feed listens on one
        // seed node and moves to the next when it fails.
        let nodes = config
            .cluster_nodes
            .iter()
            .map(|n| redis::Client::open(n.as_str()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::Cluster(Box::new((cluster, nodes))))
    }

    pub(crate) fn connect(&self, config: &RedisStoreConfig) -> Result<Conn, Error> {
        match self {
            Self::Single(c) => {
                let conn = c.get_connection_with_timeout(config.connect_timeout)?;
                conn.set_read_timeout(Some(config.response_timeout))?;
                conn.set_write_timeout(Some(config.response_timeout))?;
                Ok(Conn::Single(conn))
            }
            Self::Cluster(c) => Ok(Conn::Cluster(Box::new(c.0.get_connection()?))),
        }
    }

    /// Plain clients for pub/sub (one per seed node on a cluster).
    pub(crate) fn pubsub_clients(&self) -> Vec<redis::Client> {
        match self {
            Self::Single(c) => vec![c.clone()],
            Self::Cluster(c) => c.1.clone(),
        }
    }
}

/// Whether `r` failed because the connection is broken (the next call reconnects).
pub(crate) fn is_broken<T>(r: &Result<T, Error>) -> bool {
    matches!(r, Err(Error::Redis(e)) if e.is_io_error() || e.is_timeout()
        || e.is_connection_dropped() || e.is_unrecoverable_error())
}

/// Runs `f` on the connection in `slot` (opened if needed); on an I/O failure of a kept
/// connection (Redis restarted) reconnects and tries once more. A broken connection is
/// dropped so the next call reconnects. `fresh` is called on every new connection.
pub(crate) fn with_conn<T, I>(
    client: &Client,
    config: &RedisStoreConfig,
    inner: &mut I,
    slot: fn(&mut I) -> &mut Option<Conn>,
    fresh: fn(&mut I),
    mut f: impl FnMut(&mut Conn, &mut I) -> Result<T, Error>,
) -> Result<T, Error> {
    // Writes stay safe when the first attempt did land: the retry then fails the version
    // check and the caller reloads.
    if let Some(mut conn) = slot(inner).take() {
        let r = f(&mut conn, inner);
        if !is_broken(&r) {
            *slot(inner) = Some(conn);
            return r;
        }
    }
    let mut conn = client.connect(config)?;
    fresh(inner);
    let r = f(&mut conn, inner);
    if !is_broken(&r) {
        *slot(inner) = Some(conn);
    }
    r
}

/// Runs a script by hash (`evalsha`), falling back to the full text (`eval`) when Redis
/// does not know it (restart, `SCRIPT FLUSH`, a cluster node that has not seen it):
/// `EVAL` sends and caches it on the node owning the key only. Adds the round trips made
/// to `round_trips`.
pub(crate) fn eval_with_fallback(
    c: &mut Conn,
    round_trips: &mut u64,
    evalsha: &Cmd,
    eval: &Cmd,
) -> Result<Value, Error> {
    *round_trips += 1;
    match evalsha.query::<Value>(c.like()) {
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
            *round_trips += 1;
            Ok(eval.query::<Value>(c.like())?)
        }
        r => Ok(r?),
    }
}

/// Locks a store's state; a panic while holding the lock leaves plain data behind, which
/// stays usable.
pub(crate) fn lock<I>(m: &Mutex<I>) -> MutexGuard<'_, I> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sends `cmds` pipelined on `c` (one round trip, added to `round_trips`) and reads each
/// reply as a `T`.
pub(crate) fn query_each<T: redis::FromRedisValue>(
    c: &mut Conn,
    round_trips: &mut u64,
    cmds: &[Cmd],
) -> Result<Vec<T>, Error> {
    *round_trips += 1;
    c.pipeline(cmds.to_vec())?
        .iter()
        .map(|v| {
            redis::from_redis_value_ref(v).map_err(|e| Error::Redis(redis::RedisError::from(e)))
        })
        .collect()
}

/// The earliest score (integral Unix ms) of the sorted sets `keys`, as an instant of
/// `time`: one `ZRANGE key 0 0 WITHSCORES` each, sent together by `query` (e.g.
/// [`query_each`] on the store's connection).
pub(crate) fn earliest_score(
    keys: impl IntoIterator<Item = String>,
    time: &TimeBase,
    query: impl FnOnce(&[Cmd]) -> Result<Vec<Vec<(String, f64)>>, Error>,
) -> Result<Option<Instant>, Error> {
    let cmds: Vec<Cmd> = keys
        .into_iter()
        .map(|key| {
            let mut z = redis::cmd("ZRANGE");
            z.arg(key).arg(0).arg(0).arg("WITHSCORES");
            z
        })
        .collect();
    let firsts = query(&cmds)?;
    let min = firsts
        .iter()
        .flatten()
        .map(|(_, s)| *s)
        .min_by(f64::total_cmp);
    // Scores are integral Unix milliseconds written by this crate (exact in an f64).
    #[allow(clippy::cast_possible_truncation)]
    Ok(min.map(|ms| time.from_unix_ms(ms as i64)))
}

/// Describes a failure of a store's `what` on `key`, keeps the description as the last
/// error in `inner` (for the store's `take_error`) and returns it.
pub(crate) fn keep_failure<I>(
    inner: &Mutex<I>,
    last_error: fn(&mut I) -> &mut Option<String>,
    what: &str,
    key: &str,
    e: &Error,
) -> String {
    let reason = format!("redis {what} {key}: {e}");
    *last_error(&mut lock(inner)) = Some(reason.clone());
    reason
}

/// A store's `next_expiry` as scanned at an instant, lowered by this instance's writes
/// since; empty = scan on the next call.
#[derive(Default)]
pub(crate) struct ExpiryCache(Option<(Instant, Option<Instant>)>);

impl ExpiryCache {
    /// Forgets the cached value (the earliest deadline may have moved later).
    pub(crate) fn clear(&mut self) {
        self.0 = None;
    }

    /// Takes in a deadline this instance wrote: the cached earliest one may only move
    /// earlier (never late).
    pub(crate) fn lower(&mut self, deadline: Option<Instant>) {
        if let (Some((_, cached)), Some(t)) = (self.0.as_mut(), deadline) {
            *cached = Some(cached.map_or(t, |c| c.min(t)));
        }
    }
}

/// How long a store's `next_expiry` asks to be called again after a failure.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// A store's `next_expiry`: from the cache in `inner` while younger than `max_age`, else
/// from `scan` (cached); a second from now when `scan` fails.
pub(crate) fn cached_next_expiry<I, E>(
    inner: &Mutex<I>,
    cache: fn(&mut I) -> &mut ExpiryCache,
    max_age: Duration,
    scan: impl FnOnce() -> Result<Option<Instant>, E>,
) -> Option<Instant> {
    // The I/O edge may read the clock (only to age the cache).
    let now = Instant::now();
    if let Some((at, cached)) = cache(&mut lock(inner)).0
        && now.saturating_duration_since(at) < max_age
    {
        return cached;
    }
    match scan() {
        Ok(v) => {
            cache(&mut lock(inner)).0 = Some((now, v));
            v
        }
        // Unavailable: ask again shortly.
        Err(_) => Some(now + RETRY_AFTER_FAILURE),
    }
}

/// Checks `config` and opens its client; returns the client and a random instance id for
/// the change feed (std's hasher keys are seeded randomly; `salt` tells the stores of one
/// process apart).
pub(crate) fn open(config: &RedisStoreConfig, salt: &[u8]) -> Result<(Client, u64), Error> {
    use std::hash::{BuildHasher, Hasher};
    if !(1..=16384).contains(&config.buckets) {
        return Err(Error::ApiMisuse("buckets must be within 1..=16384"));
    }
    if config.connect_timeout.is_zero() || config.response_timeout.is_zero() {
        return Err(Error::ApiMisuse("timeouts must be non-zero"));
    }
    let client = Client::open(config)?;
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write(salt);
    Ok((client, h.finish()))
}

/// `PING` on `c` (one round trip, added to `round_trips`).
pub(crate) fn ping(c: &mut Conn, round_trips: &mut u64) -> Result<(), Error> {
    *round_trips += 1;
    redis::cmd("PING").query::<String>(c.like())?;
    Ok(())
}

/// The command reading the first `max` entries of the sorted set `key` scored up to
/// `now_ms`, with their scores.
pub(crate) fn due_range(key: String, now_ms: i64, max: usize) -> Cmd {
    let mut z = redis::cmd("ZRANGEBYSCORE");
    z.arg(key)
        .arg("-inf")
        .arg(now_ms)
        .arg("WITHSCORES")
        .arg("LIMIT")
        .arg(0)
        .arg(max);
    z
}
