//! [`RedisStore`]: the [`RegistrationStore`] over Redis.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mcptt_registration::{AorRecord, Binding, RegistrationStore, StoreError};
use redis::Value;

use crate::codec;
use crate::conn::{self, Client, Conn, ExpiryCache};
use crate::error::Error;
use crate::feed::ChangeFeed;
use crate::time::TimeBase;

/// Versioned compare-and-set of one AoR record, its bucket's expiry index and counters.
///
/// The count hash holds the bucket's binding total (`#b`) and the binding count of each AoR
/// with more than one binding; an AoR in the expiry index without a count field has one
/// binding (most UEs: no per-UE hash field), and the AoR count is the index's `ZCARD`.
///
/// KEYS: record (a string `<version> <data>`), expiry zset, count hash. ARGV: expected version, AoR, data,
/// binding count (0 = delete), earliest expiry (Unix ms), key expiry (Unix ms), change
/// channel, writer instance id. Each successful write publishes
/// `<new version> <instance> <AoR>` on the change channel.
/// New versions are `max(old + 1, Redis TIME in µs)`: unique across a deleted and
/// re-created AoR without a global counter key (which Redis Cluster could not reach
/// from the same script).
const WRITE_SCRIPT: &str = r"
local val = redis.call('GET', KEYS[1])
local cur = '0'
if val then cur = string.sub(val, 1, string.find(val, ' ', 1, true) - 1) end
if cur ~= ARGV[1] then return {0, cur} end
local t = redis.call('TIME')
local nv = math.max(tonumber(cur) + 1, tonumber(t[1]) * 1000000 + tonumber(t[2]))
local ver = string.format('%.0f', nv)
local old_n = tonumber(redis.call('HGET', KEYS[3], ARGV[2]) or '0')
if old_n == 0 and redis.call('ZSCORE', KEYS[2], ARGV[2]) then old_n = 1 end
local n = tonumber(ARGV[4])
if n == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
else
  redis.call('SET', KEYS[1], ver .. ' ' .. ARGV[3])
  redis.call('PEXPIREAT', KEYS[1], ARGV[6])
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[2])
end
if n > 1 then redis.call('HSET', KEYS[3], ARGV[2], n) else redis.call('HDEL', KEYS[3], ARGV[2]) end
local total = redis.call('HINCRBY', KEYS[3], '#b', n - old_n)
redis.call('PUBLISH', ARGV[7], ver .. ' ' .. ARGV[8] .. ' ' .. ARGV[2])
return {1, ver, total, redis.call('ZCARD', KEYS[2])}
";

/// Field of a bucket's count hash holding the bucket's binding total (AoRs never start
/// with `#`: they are `sip:`/`sips:`/`tel:` URIs).
const TOTAL_FIELD: &str = "#b";

/// Per bucket: due `(aor, score)` entries, binding total, expiry index length (AoRs).
type BucketScan = (Vec<(String, f64)>, Option<u64>, u64);

/// Settings of a [`RedisStore`].
#[derive(Debug, Clone)]
pub struct RedisStoreConfig {
    /// Redis URL, e.g. `redis://127.0.0.1:6379` (`redis://:password@host:port/db` works).
    /// Unused when [`RedisStoreConfig::cluster_nodes`] is set.
    pub url: String,
    /// Redis Cluster seed nodes (`redis://host:port` each); empty = a single node at
    /// [`RedisStoreConfig::url`]. Keys are hash-tagged per bucket, so every write script
    /// touches one slot; `MOVED`/`ASK` redirections are followed by the `redis` crate.
    pub cluster_nodes: Vec<String>,
    /// Prefix of every key, so several deployments can share one Redis.
    pub key_prefix: String,
    /// Number of buckets the expiry index and counters are split into (1..=16384). Each
    /// bucket's keys share one hash tag, so a bucket lives on one Redis Cluster shard.
    /// Every instance sharing the store must use the same value (changing it moves
    /// every key: start from an empty store).
    ///
    /// Sizing: Redis keeps a sorted set of up to 128 entries (default
    /// `zset-max-listpack-entries`) as a compact listpack and a larger one as a skiplist,
    /// about 60–80 bytes more per entry. Each UE has one entry in its registration bucket's
    /// expiry index and two (UE record, subscription dialog) in its service-state bucket's
    /// deadline index, so with `UEs / buckets` below about 60 every index stays compact.
    /// The default (256) keeps that up to about 15,000 UEs (the `store_redis` bench measured
    /// under 2 KiB per registered and authorised UE at 1,000, 10,000 and 30,000 UEs); by
    /// the same rule 100,000 UEs want about 2048 buckets, 1,000,000 the maximum. Each non-empty bucket
    /// costs a few hundred bytes of keys of its own, so much larger values cost memory
    /// at small populations. Every `due` and uncached `next_expiry` scans all buckets
    /// (one pipelined round trip; a few commands per bucket).
    pub buckets: u16,
    /// How long after its last binding's expiry Redis itself deletes an AoR record
    /// (`PEXPIREAT`), when no registrar instance removed it first (all instances down).
    /// Registrars normally remove expired bindings themselves, with events; this is
    /// the bound on how long stale state can outlive its expiry.
    pub ttl_grace: Duration,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Read and write timeout of each command.
    pub response_timeout: Duration,
    /// How long [`RegistrationStore::next_expiry`] (what the registrar's `poll_timeout`
    /// asks after every input) answers from this instance's cache instead of scanning
    /// Redis: the cache takes in this instance's own writes at once and other instances'
    /// writes after at most this long (their earlier expiries are also run by their own
    /// timers). `Duration::ZERO` scans on every call.
    pub expiry_cache: Duration,
}

impl Default for RedisStoreConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            cluster_nodes: Vec::new(),
            key_prefix: "mcptt".into(),
            buckets: 256,
            ttl_grace: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            expiry_cache: Duration::from_secs(1),
        }
    }
}

struct Inner {
    conn: Option<Conn>,
    script_loaded: bool,
    /// Last seen `(aors, bindings)` per bucket.
    counts: Vec<(u64, u64)>,
    round_trips: u64,
    last_error: Option<String>,
    expiry_cache: ExpiryCache,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("connected", &self.conn.is_some())
            .field("counts", &self.counts)
            .field("round_trips", &self.round_trips)
            .field("last_error", &self.last_error)
            .finish_non_exhaustive()
    }
}

/// A [`RegistrationStore`] kept in Redis and shared by several registrar instances.
///
/// # Data layout
/// For bucket `B = fnv1a64(aor) % buckets`, with hash tag `{P:reg:B}` (`P` = key prefix):
///
/// | key | type | content |
/// |---|---|---|
/// | `{P:reg:B}:aor:<aor>` | string | `<version> <encoded bindings>` (version in decimal, bindings below); `PEXPIREAT` = last expiry + `ttl_grace` |
/// | `{P:reg:B}:exp` | sorted set | member AoR, score = earliest binding expiry (Unix ms) |
/// | `{P:reg:B}:n` | hash | `#b` → bucket binding total; AoR → binding count, only for AoRs with more than one binding (the others have one) |
///
/// Record values are plain strings, not hashes: a hash costs about 120 bytes more per
/// record once its data passes `hash-max-listpack-value`.
///
/// Encoded bindings (big-endian; `str` = `u32` length + UTF-8, `opt x` = `0` | `1` x;
/// `sref` = `0` str | `1` offset:u32 length:u32, a slice of the binding's own request,
/// which the contact, URI, instance and Call-ID normally are):
///
/// ```text
/// 0x02 count:u32 { request:u32+bytes id:u64 uri:sref contact:sref instance:opt sref
///                  reg_id:opt u32 call_id:sref cseq:u32 registered_at:i64
///                  expires_at:i64 (Unix ms) n:u16 third_party:u16*n }*count
/// ```
///
/// (Format `0x01`, without references and with the request after the Call-ID's
/// fields, is still read.)
///
/// # Round trips
/// [`load`](RegistrationStore::load) is one pipelined round trip (record and the bucket's
/// counters); [`write`](RegistrationStore::write) is one `EVALSHA` (plus one `SCRIPT LOAD`
/// the first time on a single-node connection; on a cluster, or after Redis lost its
/// script cache, one `EVAL` after the `NOSCRIPT` answer, once per node);
/// [`due`](RegistrationStore::due) and [`next_expiry`](RegistrationStore::next_expiry) are
/// one pipelined round trip over all buckets (on a cluster: one per node, counted as one);
/// [`remove_expired`](RegistrationStore::remove_expired) is a load plus a versioned write.
///
/// # Counts
/// [`aor_count`](RegistrationStore::aor_count) and
/// [`binding_count`](RegistrationStore::binding_count) answer without a round trip from
/// the per-bucket counters this instance saw last (refreshed for one bucket by every
/// load and write, for all buckets by every `due`); they lag other instances' writes to
/// buckets this instance has not touched since.
///
/// # Failures
/// While Redis is unreachable the trait methods return
/// [`StoreError::Unavailable`] with the cause (the registrar then answers `503` with
/// `Retry-After` and changes nothing; expiry is delayed, never early), each failure is
/// logged at `error` level and kept for [`RedisStore::take_error`];
/// [`next_expiry`](RegistrationStore::next_expiry) asks to be called again a second later.
/// The `try_*` methods return the [`Error`]. When the kept connection turns out broken
/// (Redis restarted), the call reconnects and is tried once more.
pub struct RedisStore {
    client: Client,
    /// This instance's id in the change feed (random per store).
    origin: u64,
    config: RedisStoreConfig,
    time: TimeBase,
    script: redis::Script,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("config", &self.config)
            .field("origin", &self.origin)
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// Splits a stored value `<version> <data>`.
pub(crate) fn split_value(value: &[u8]) -> Option<(u64, &[u8])> {
    let sp = value.iter().position(|&b| b == b' ')?;
    let (v, rest) = value.split_at(sp);
    let version = std::str::from_utf8(v).ok()?.parse().ok()?;
    Some((version, rest.get(1..)?))
}

pub(crate) fn fnv1a64(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl RedisStore {
    /// A store over the Redis at `config.url`, translating times through `time`
    /// (normally [`TimeBase::system`]). Connects lazily: call [`RedisStore::ping`] to
    /// check reachability at start-up.
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] for out-of-range settings, [`Error::Redis`] for a bad URL.
    pub fn new(config: RedisStoreConfig, time: TimeBase) -> Result<Self, Error> {
        let (client, origin) = conn::open(&config, &[])?;
        let buckets = usize::from(config.buckets);
        Ok(Self {
            client,
            origin,
            config,
            time,
            script: redis::Script::new(WRITE_SCRIPT),
            inner: Mutex::new(Inner {
                conn: None,
                script_loaded: false,
                counts: vec![(0, 0); buckets],
                round_trips: 0,
                last_error: None,
                expiry_cache: ExpiryCache::default(),
            }),
        })
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &RedisStoreConfig {
        &self.config
    }

    /// The time base.
    #[must_use]
    pub fn time_base(&self) -> &TimeBase {
        &self.time
    }

    /// Round trips to Redis made so far (each command or pipeline counts one).
    #[must_use]
    pub fn round_trips(&self) -> u64 {
        self.lock().round_trips
    }

    /// This instance's id in the change feed (random per store value).
    #[must_use]
    pub fn instance_id(&self) -> u64 {
        self.origin
    }

    /// The last failure seen by a [`RegistrationStore`] method, cleared by this call.
    pub fn take_error(&self) -> Option<String> {
        self.lock().last_error.take()
    }

    /// The bucket of `aor`.
    #[must_use]
    pub fn bucket(&self, aor: &str) -> u16 {
        u16::try_from(fnv1a64(aor) % u64::from(self.config.buckets)).unwrap_or(0)
    }

    fn tag(&self, bucket: u16) -> String {
        format!("{{{}:reg:{bucket}}}", self.config.key_prefix)
    }

    /// The Redis key of the record of `aor`.
    #[must_use]
    pub fn record_key(&self, aor: &str) -> String {
        format!("{}:aor:{aor}", self.tag(self.bucket(aor)))
    }

    /// The pub/sub channel every successful write publishes `<version> <instance> <AoR>`
    /// on (version decimal, instance id hexadecimal).
    #[must_use]
    pub fn change_channel(&self) -> String {
        format!("{}:reg:changes", self.config.key_prefix)
    }

    /// Subscribes to the changes every instance writes (see [`ChangeFeed`]) on a
    /// connection of its own.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis is unavailable.
    pub fn subscribe_changes(&self) -> Result<ChangeFeed, Error> {
        ChangeFeed::start(
            self.client.pubsub_clients(),
            self.change_channel(),
            self.origin,
            self.config.connect_timeout,
        )
    }

    fn expiry_key(&self, bucket: u16) -> String {
        format!("{}:exp", self.tag(bucket))
    }

    fn count_key(&self, bucket: u16) -> String {
        format!("{}:n", self.tag(bucket))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        conn::lock(&self.inner)
    }

    /// Runs `f` on a connection (opened if needed); drops the connection on I/O errors
    /// so the next call reconnects.
    fn with_conn<T>(
        &self,
        inner: &mut Inner,
        f: impl FnMut(&mut Conn, &mut Inner) -> Result<T, Error>,
    ) -> Result<T, Error> {
        conn::with_conn(
            &self.client,
            &self.config,
            inner,
            |i| &mut i.conn,
            |i| i.script_loaded = false,
            f,
        )
    }

    /// Checks that Redis answers.
    ///
    /// # Errors
    /// [`Error::Redis`] when it does not.
    pub fn ping(&self) -> Result<(), Error> {
        let mut inner = self.lock();
        self.with_conn(&mut inner, |c, inner| conn::ping(c, &mut inner.round_trips))
    }

    /// [`RegistrationStore::load`] with errors.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis is unavailable, [`Error::Corrupt`] for an unreadable record.
    pub fn try_load(&self, aor: &str) -> Result<Option<(u64, AorRecord)>, Error> {
        let bucket = self.bucket(aor);
        let key = self.record_key(aor);
        let ckey = self.count_key(bucket);
        let ekey = self.expiry_key(bucket);
        let mut inner = self.lock();
        let (value, total, len): (Option<Vec<u8>>, Option<u64>, u64) =
            self.with_conn(&mut inner, |c, inner| {
                inner.round_trips += 1;
                let mut get = redis::cmd("GET");
                get.arg(&key);
                let mut hget = redis::cmd("HGET");
                hget.arg(&ckey).arg(TOTAL_FIELD);
                let mut zcard = redis::cmd("ZCARD");
                zcard.arg(&ekey);
                let replies = c.pipeline(vec![get, hget, zcard])?;
                let [v, t, l] = replies.as_slice() else {
                    return Err(Error::UnexpectedReply("load pipeline reply"));
                };
                Ok((
                    redis::from_redis_value_ref(v).map_err(redis::RedisError::from)?,
                    redis::from_redis_value_ref(t).map_err(redis::RedisError::from)?,
                    redis::from_redis_value_ref(l).map_err(redis::RedisError::from)?,
                ))
            })?;
        if let Some(slot) = inner.counts.get_mut(usize::from(bucket)) {
            *slot = (len, total.unwrap_or(0));
        }
        drop(inner);
        let Some(value) = value else {
            return Ok(None);
        };
        let corrupt = |reason| Error::Corrupt {
            aor: aor.to_owned(),
            reason,
        };
        let (version, d) = split_value(&value).ok_or_else(|| corrupt("invalid version"))?;
        let record = codec::decode(d, &self.time).map_err(corrupt)?;
        Ok(Some((version, record)))
    }

    /// [`RegistrationStore::write`] with errors: `Ok(Err(current))` is a version conflict.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis is unavailable.
    pub fn try_write(
        &self,
        aor: &str,
        expected: u64,
        record: &AorRecord,
    ) -> Result<Result<u64, u64>, Error> {
        let bucket = self.bucket(aor);
        let n = record.bindings.len();
        let (data, earliest, key_expiry) = if n == 0 {
            (Vec::new(), 0, 0)
        } else {
            let earliest = record
                .next_expiry()
                .map_or(0, |t| self.time.to_unix_ms_ceil(t));
            let latest = record
                .bindings
                .iter()
                .map(|b| self.time.to_unix_ms_ceil(b.expires_at))
                .max()
                .unwrap_or(earliest);
            let grace = i64::try_from(self.config.ttl_grace.as_millis()).unwrap_or(i64::MAX);
            (
                codec::encode(record, &self.time),
                earliest,
                latest.saturating_add(grace),
            )
        };
        // KEYS then ARGV of the write script.
        let keys = [
            self.record_key(aor),
            self.expiry_key(bucket),
            self.count_key(bucket),
        ];
        let eval = |name: &str, script: &str| {
            let mut cmd = redis::cmd(name);
            cmd.arg(script).arg(keys.len()).arg(&keys[..]);
            cmd.arg(expected.to_string())
                .arg(aor)
                .arg(&data)
                .arg(n)
                .arg(earliest)
                .arg(key_expiry)
                .arg(self.change_channel())
                .arg(format!("{:x}", self.origin));
            cmd
        };
        let evalsha = eval("EVALSHA", self.script.get_hash());
        let eval_full = eval("EVAL", WRITE_SCRIPT);
        let mut inner = self.lock();
        let reply: Vec<Value> = self.with_conn(&mut inner, |c, inner| {
            let cluster = matches!(c, Conn::Cluster(_));
            if !cluster && !inner.script_loaded {
                inner.round_trips += 1;
                self.script.load(c.like())?;
                inner.script_loaded = true;
            }
            inner.round_trips += 1;
            match evalsha.query::<Vec<Value>>(c.like()) {
                // Redis lost its script cache (restart, SCRIPT FLUSH), or this cluster
                // node has not seen the script yet: EVAL sends and caches it on the node
                // owning the key only (a `SCRIPT LOAD` would need every node up).
                Err(e)
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    inner.round_trips += 1;
                    Ok(eval_full.query::<Vec<Value>>(c.like())?)
                }
                r => Ok(r?),
            }
        })?;
        let num = |v: Option<&Value>| -> Option<u64> {
            match v? {
                Value::Int(i) => u64::try_from(*i).ok(),
                Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
                Value::SimpleString(s) => s.parse().ok(),
                _ => None,
            }
        };
        let bad = Error::UnexpectedReply("write script reply");
        match num(reply.first()) {
            Some(1) => {
                let version =
                    num(reply.get(1)).ok_or(Error::UnexpectedReply("write script reply"))?;
                if let (Some(total), Some(aors)) = (num(reply.get(2)), num(reply.get(3)))
                    && let Some(slot) = inner.counts.get_mut(usize::from(bucket))
                {
                    *slot = (aors, total);
                }
                inner.expiry_cache.lower(record.next_expiry());
                Ok(Ok(version))
            }
            Some(0) => Ok(Err(num(reply.get(1)).ok_or(bad)?)),
            _ => Err(bad),
        }
    }

    /// [`RegistrationStore::remove_expired`] with errors: a load and a versioned write,
    /// repeated while other instances change the record. Of several instances racing on
    /// the same AoR, exactly one gets each expired binding. An index entry whose record
    /// Redis already deleted (`ttl_grace` passed) is cleaned up.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis is unavailable.
    pub fn try_remove_expired(&self, aor: &str, now: Instant) -> Result<Vec<Binding>, Error> {
        for _ in 0..8 {
            let Some((version, mut record)) = self.try_load(aor)? else {
                // Drop a stale index entry (no-op when there is none).
                let _ = self.try_write(aor, 0, &AorRecord::default())?;
                return Ok(Vec::new());
            };
            let (expired, kept): (Vec<Binding>, Vec<Binding>) =
                record.bindings.drain(..).partition(|b| b.is_expired(now));
            if expired.is_empty() {
                return Ok(Vec::new());
            }
            record.bindings = kept;
            if self.try_write(aor, version, &record)?.is_ok() {
                return Ok(expired);
            }
        }
        // Another instance keeps changing this AoR: it will expire the bindings itself.
        Ok(Vec::new())
    }

    /// [`RegistrationStore::due`] with errors; also refreshes all bucket counters.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis is unavailable.
    pub fn try_due(&self, now: Instant, max: usize) -> Result<Vec<String>, Error> {
        let now_ms = self.time.to_unix_ms_floor(now);
        let mut cmds = Vec::with_capacity(3 * usize::from(self.config.buckets));
        for b in 0..self.config.buckets {
            let z = conn::due_range(self.expiry_key(b), now_ms, max);
            let mut t = redis::cmd("HGET");
            t.arg(self.count_key(b)).arg(TOTAL_FIELD);
            let mut l = redis::cmd("ZCARD");
            l.arg(self.expiry_key(b));
            cmds.extend([z, t, l]);
        }
        let mut inner = self.lock();
        let replies: Vec<BucketScan> = self.with_conn(&mut inner, |c, inner| {
            inner.round_trips += 1;
            let flat: Vec<Value> = c.pipeline(cmds.clone())?;
            flat.chunks(3)
                .map(|ch| match ch {
                    [z, t, l] => Ok((
                        redis::from_redis_value_ref(z).map_err(redis::RedisError::from)?,
                        redis::from_redis_value_ref(t).map_err(redis::RedisError::from)?,
                        redis::from_redis_value_ref(l).map_err(redis::RedisError::from)?,
                    )),
                    _ => Err(Error::UnexpectedReply("due pipeline reply")),
                })
                .collect::<Result<_, Error>>()
        })?;
        let mut all = Vec::new();
        for (b, (due, total, len)) in replies.into_iter().enumerate() {
            if let Some(slot) = inner.counts.get_mut(b) {
                *slot = (len, total.unwrap_or(0));
            }
            all.extend(due.into_iter().map(|(aor, score)| (score, aor)));
        }
        all.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        all.truncate(max);
        Ok(all.into_iter().map(|(_, aor)| aor).collect())
    }

    /// [`RegistrationStore::next_expiry`] with errors.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis is unavailable.
    pub fn try_next_expiry(&self) -> Result<Option<Instant>, Error> {
        let keys = (0..self.config.buckets).map(|b| self.expiry_key(b));
        conn::earliest_score(keys, &self.time, |cmds| {
            let mut inner = self.lock();
            self.with_conn(&mut inner, |c, inner| {
                conn::query_each(c, &mut inner.round_trips, cmds)
            })
        })
    }

    /// Logs a failure, keeps it for [`RedisStore::take_error`] and converts it.
    fn note<T>(&self, what: &str, aor: &str, r: Result<T, Error>) -> Result<T, StoreError> {
        r.map_err(|e| {
            tracing::error!(operation = what, aor, error = %e, "registration store failure");
            StoreError::Unavailable(conn::keep_failure(
                &self.inner,
                |i| &mut i.last_error,
                what,
                aor,
                &e,
            ))
        })
    }
}

impl RegistrationStore for RedisStore {
    fn load(&self, aor: &str) -> Result<Option<(u64, AorRecord)>, StoreError> {
        self.note("load", aor, self.try_load(aor))
    }

    fn write(&mut self, aor: &str, expected: u64, record: AorRecord) -> Result<u64, StoreError> {
        self.note("write", aor, self.try_write(aor, expected, &record))?
            .map_err(|current| StoreError::Conflict { current })
    }

    fn remove_expired(&mut self, aor: &str, now: Instant) -> Result<Vec<Binding>, StoreError> {
        // The earliest expiry moves later: scan again next time.
        self.lock().expiry_cache.clear();
        self.note("remove_expired", aor, self.try_remove_expired(aor, now))
    }

    fn next_expiry(&self) -> Option<Instant> {
        conn::cached_next_expiry(
            &self.inner,
            |i| &mut i.expiry_cache,
            self.config.expiry_cache,
            || self.note("next_expiry", "", self.try_next_expiry()),
        )
    }

    fn due(&self, now: Instant, max: usize) -> Result<Vec<String>, StoreError> {
        self.lock().expiry_cache.clear();
        self.note("due", "", self.try_due(now, max))
    }

    fn aor_count(&self) -> usize {
        let n: u64 = self.lock().counts.iter().map(|c| c.0).sum();
        usize::try_from(n).unwrap_or(usize::MAX)
    }

    fn binding_count(&self) -> usize {
        let n: u64 = self.lock().counts.iter().map(|c| c.1).sum();
        usize::try_from(n).unwrap_or(usize::MAX)
    }
}
