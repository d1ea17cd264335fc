//! Connections shared by the stores: one Redis node or a Redis Cluster, reconnecting after
//! a broken connection, and script invocation with the `NOSCRIPT` fallback.

use redis::cluster::{ClusterClient, ClusterConnection};
use redis::{Cmd, Connection, ConnectionLike, Value};

use crate::error::Error;
use crate::store::RedisStoreConfig;

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
