//! [`RedisServiceStateStore`]: the [`ServiceStateStore`] of `mcptt-service-state` over Redis.

use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use mcptt_service_state::store::{DialogRecord, ServiceStateStore, StoreError, StoreKey, UeRecord};
use redis::{Cmd, Value};

use crate::conn::{self, Client, Conn, ExpiryCache};
use crate::error::Error;
use crate::ss_codec;
use crate::ss_feed::ServiceStateFeed;
use crate::store::{RedisStoreConfig, fnv1a64, split_value};
use crate::time::TimeBase;

/// Versioned compare-and-set of one record and its deadline index entry.
///
/// KEYS: record (a string `<version> <data>`), the bucket's deadline index. ARGV: expected version, index member
/// (`u<impu>` or `d<tag, 16 hex digits>`), data (empty = delete), deadline (Unix ms, empty
/// = none), key expiry (Unix ms, empty = none), change channel, writer instance id (hex).
/// Each successful write publishes `<new version> <instance> <member>` on the channel.
/// New versions are `max(old + 1, Redis TIME in µs)`: unique across a deleted and
/// re-created key without a global counter key (which Redis Cluster could not reach from
/// the same script).
const WRITE_SCRIPT: &str = r"
local val = redis.call('GET', KEYS[1])
local cur = '0'
if val then cur = string.sub(val, 1, string.find(val, ' ', 1, true) - 1) end
if cur ~= ARGV[1] then return {0, cur} end
local t = redis.call('TIME')
local nv = math.max(tonumber(cur) + 1, tonumber(t[1]) * 1000000 + tonumber(t[2]))
local ver = string.format('%.0f', nv)
if ARGV[3] == '' then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
else
  redis.call('SET', KEYS[1], ver .. ' ' .. ARGV[3])
  if ARGV[5] ~= '' then redis.call('PEXPIREAT', KEYS[1], ARGV[5]) end
  if ARGV[4] == '' then
    redis.call('ZREM', KEYS[2], ARGV[2])
  else
    redis.call('ZADD', KEYS[2], ARGV[4], ARGV[2])
  end
end
redis.call('PUBLISH', ARGV[6], ver .. ' ' .. ARGV[7] .. ' ' .. ARGV[2])
return {1, ver}
";

/// A record's version and data unless the version is the one the caller knows.
///
/// KEYS: record. ARGV: known version. Returns `{}` when absent, `{v}` when unchanged,
/// `{v, d}` otherwise: an unchanged record costs one round trip and no data.
const READ_IF_CHANGED_SCRIPT: &str = r"
local val = redis.call('GET', KEYS[1])
if not val then return {} end
local sp = string.find(val, ' ', 1, true)
local v = string.sub(val, 1, sp - 1)
if v == ARGV[1] then return {v} end
return {v, string.sub(val, sp + 1)}
";

/// Removes the due index entries whose record does not exist (records Redis deleted at
/// their `PEXPIREAT` while no instance ran), if it still does not.
///
/// KEYS: the bucket's deadline index, then the record keys. ARGV: the index members, in
/// the order of the record keys. Returns the members kept.
const PRUNE_SCRIPT: &str = r"
local live = {}
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    live[#live + 1] = ARGV[i - 1]
  else
    redis.call('ZREM', KEYS[1], ARGV[i - 1])
  end
end
return live
";

struct Inner {
    conn: Option<Conn>,
    round_trips: u64,
    conflicts: u64,
    last_error: Option<String>,
    expiry_cache: ExpiryCache,
}

/// A [`ServiceStateStore`] kept in Redis and shared by several MCPTT server instances.
///
/// # Data layout
/// For a key `K` (a UE's public user identity, or a dialog tag as 16 lower-case hex
/// digits), bucket `B = fnv1a64(K) % buckets` and hash tag `{P:ss:B}` (`P` = key prefix):
///
/// | key | type | content |
/// |---|---|---|
/// | `{P:ss:B}:ue:<impu>` | string | `<version> <encoded UeRecord>` |
/// | `{P:ss:B}:dlg:<tag>` | string | `<version> <encoded DialogRecord>` |
/// | `{P:ss:B}:due` | sorted set | member `u<impu>` / `d<tag>`, score = deadline (Unix ms) |
///
/// Values are plain strings (version in decimal, a space, the encoded record): a Redis
/// hash would cost about 120 bytes more per record once the data passes
/// `hash-max-listpack-value`. The encodings are compact binary (variable-length integers, times as Unix milliseconds
/// rounded up); see the `ss_codec` module source. A UE's deadline is its record's
/// [`UeRecord::next_deadline`] (publication or token expiry); a dialog's is the end of its
/// holder's lease ([`DialogRecord::lease_expires`]), as in `MemoryStore`.
///
/// # Expiry
/// Deadlines are stored rounded **up** to the millisecond and `due(now)` selects scores up
/// to `now` rounded **down**: nothing is due early, and at most 1 ms late. The instances
/// apply expiries themselves (versioned writes, with NOTIFYs). As a safety net for when
/// no instance runs, Redis deletes a key by itself (`PEXPIREAT`) at
/// [`RedisStoreConfig::ttl_grace`] after:
/// - a dialog record's later of subscription expiry and lease end;
/// - a UE record's latest publication or token deadline, when the UE has no registered
///   instance. A record of a registered UE, or one with no deadline (only signed-off,
///   replaced or unauthorised users) is kept until an instance deletes it: its
///   registration state has no expiry of its own in this store (the registrar's
///   deregistration change removes it).
///
/// Index entries whose record Redis deleted that way are dropped by the next
/// [`due`](ServiceStateStore::due) that meets them.
///
/// # Round trips
/// [`load_ue`](ServiceStateStore::load_ue) and [`load_dialog`](ServiceStateStore::load_dialog)
/// are one `GET`; [`load_ue_if_changed`](ServiceStateStore::load_ue_if_changed) is one
/// `EVALSHA` that returns no data when the version is unchanged;
/// [`write_ue`](ServiceStateStore::write_ue) and
/// [`write_dialog`](ServiceStateStore::write_dialog) are one `EVALSHA` each (the first call
/// per connection and node adds one `EVAL` after Redis answers `NOSCRIPT`);
/// [`due`](ServiceStateStore::due) is one pipelined scan over all buckets, plus, when
/// something is due, one pipelined existence check of the due records (and one script per
/// entry whose record Redis deleted, to drop it from the index);
/// [`next_expiry`](ServiceStateStore::next_expiry) answers from a cache of the earliest
/// deadline ([`RedisStoreConfig::expiry_cache`]) that this instance's writes keep exact,
/// else one pipelined scan.
///
/// # Failures
/// Any Redis failure (unreachable, timeout, error reply, unreadable record) makes the
/// trait methods return [`StoreError::Unavailable`] with the cause — never "no state" —
/// logged at `error` level and kept for [`RedisServiceStateStore::take_error`]. The server
/// then changes nothing and answers `503` with `Retry-After`.
/// [`next_expiry`](ServiceStateStore::next_expiry) asks to be called again a second later.
/// A broken connection (Redis restarted) is reopened and the call tried once more.
///
/// # Change feed
/// Every successful write publishes `<version> <instance id, hex> <member>` on
/// [`RedisServiceStateStore::change_channel`] from the write script itself;
/// [`RedisServiceStateStore::subscribe_changes`] returns a [`ServiceStateFeed`].
pub struct RedisServiceStateStore {
    client: Client,
    origin: u64,
    config: RedisStoreConfig,
    time: TimeBase,
    write_script: redis::Script,
    read_script: redis::Script,
    prune_script: redis::Script,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for RedisServiceStateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisServiceStateStore")
            .field("config", &self.config)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// The index member (and change message key) of `key`.
fn member(key: &StoreKey) -> String {
    match key {
        StoreKey::Dialog(tag) => format!("d{tag:016x}"),
        StoreKey::Ue(impu) => format!("u{impu}"),
        // `StoreKey` may grow variants: this version stores none of them.
        _ => String::new(),
    }
}

/// The key a member names (`u<impu>` / `d<tag hex>`).
pub(crate) fn parse_member(m: &str) -> Option<StoreKey> {
    if let Some(impu) = m.strip_prefix('u') {
        return Some(StoreKey::Ue(impu.to_owned()));
    }
    let hex = m.strip_prefix('d')?;
    u64::from_str_radix(hex, 16).ok().map(StoreKey::Dialog)
}

fn reply_u64(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Int(i) => u64::try_from(*i).ok(),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

impl RedisServiceStateStore {
    /// A store over the Redis of `config` (one node at `url`, or the cluster of
    /// `cluster_nodes`), translating times through `time` (normally
    /// [`TimeBase::system`]). Connects lazily: call [`RedisServiceStateStore::ping`] to
    /// check reachability at start-up. Every instance sharing the store must use the same
    /// `key_prefix` and `buckets`.
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] for out-of-range settings, [`Error::Redis`] for a bad URL.
    pub fn new(config: RedisStoreConfig, time: TimeBase) -> Result<Self, Error> {
        let (client, origin) = conn::open(&config, b"s")?;
        Ok(Self {
            client,
            origin,
            config,
            time,
            write_script: redis::Script::new(WRITE_SCRIPT),
            read_script: redis::Script::new(READ_IF_CHANGED_SCRIPT),
            prune_script: redis::Script::new(PRUNE_SCRIPT),
            inner: Mutex::new(Inner {
                conn: None,
                round_trips: 0,
                conflicts: 0,
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

    /// Round trips to Redis made so far (each command, script or pipeline counts one).
    #[must_use]
    pub fn round_trips(&self) -> u64 {
        self.lock().round_trips
    }

    /// Writes refused so far because another writer's version was newer (each one made
    /// the server reload and re-apply its request).
    #[must_use]
    pub fn conflicts(&self) -> u64 {
        self.lock().conflicts
    }

    /// This instance's id in the change feed (random per store value).
    #[must_use]
    pub fn instance_id(&self) -> u64 {
        self.origin
    }

    /// The last failure seen by a [`ServiceStateStore`] method, cleared by this call.
    pub fn take_error(&self) -> Option<String> {
        self.lock().last_error.take()
    }

    /// The pub/sub channel every successful write publishes
    /// `<version> <instance id, hex> <u<impu> | d<tag hex>>` on.
    #[must_use]
    pub fn change_channel(&self) -> String {
        format!("{}:ss:changes", self.config.key_prefix)
    }

    /// Subscribes to the changes every instance writes (see [`ServiceStateFeed`]) on a
    /// connection of its own; the changes this store writes are skipped.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis is unavailable.
    pub fn subscribe_changes(&self) -> Result<ServiceStateFeed, Error> {
        ServiceStateFeed::start(
            self.client.pubsub_clients(),
            self.change_channel(),
            self.origin,
            self.config.connect_timeout,
        )
    }

    fn bucket(&self, name: &str) -> u64 {
        fnv1a64(name) % u64::from(self.config.buckets)
    }

    fn tag(&self, bucket: u64) -> String {
        format!("{{{}:ss:{bucket}}}", self.config.key_prefix)
    }

    fn due_key(&self, bucket: u64) -> String {
        format!("{}:due", self.tag(bucket))
    }

    /// The Redis keys of `key`: its record and its bucket's deadline index.
    fn keys(&self, key: &StoreKey) -> (String, String) {
        let (kind, name) = match key {
            StoreKey::Dialog(tag) => ("dlg", format!("{tag:016x}")),
            StoreKey::Ue(impu) => ("ue", impu.clone()),
            // `StoreKey` may grow variants: this version stores none of them.
            _ => ("other", String::new()),
        };
        let b = self.bucket(&name);
        (format!("{}:{kind}:{name}", self.tag(b)), self.due_key(b))
    }

    /// The Redis key holding `key`'s record (for inspection, e.g. `MEMORY USAGE`).
    #[must_use]
    pub fn record_key(&self, key: &StoreKey) -> String {
        self.keys(key).0
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        conn::lock(&self.inner)
    }

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
            |_| {},
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

    /// Runs `script` with `keys` and `args` (by hash, its text after `NOSCRIPT`).
    fn run(
        &self,
        script: &redis::Script,
        text: &str,
        keys: &[&str],
        args: &[&[u8]],
    ) -> Result<Value, Error> {
        let build = |name: &str, body: &str| {
            let mut cmd = redis::cmd(name);
            cmd.arg(body).arg(keys.len()).arg(keys);
            for a in args {
                cmd.arg(*a);
            }
            cmd
        };
        let evalsha = build("EVALSHA", script.get_hash());
        let eval = build("EVAL", text);
        let mut inner = self.lock();
        self.with_conn(&mut inner, |c, inner| {
            conn::eval_with_fallback(c, &mut inner.round_trips, &evalsha, &eval)
        })
    }

    /// The stored value of `key` (`<version> <data>`), if any.
    fn load(&self, key: &StoreKey) -> Result<Option<Vec<u8>>, Error> {
        let (record, _) = self.keys(key);
        let mut inner = self.lock();
        self.with_conn(&mut inner, |c, inner| {
            inner.round_trips += 1;
            let mut get = redis::cmd("GET");
            get.arg(&record);
            Ok(get.query::<Option<Vec<u8>>>(c.like())?)
        })
    }

    /// Reads `key` and decodes its data with `decode`.
    fn load_with<T>(
        &self,
        key: &StoreKey,
        decode: fn(&[u8], &TimeBase) -> Result<T, &'static str>,
    ) -> Result<Option<(u64, T)>, Error> {
        let Some(value) = self.load(key)? else {
            return Ok(None);
        };
        let (version, data) =
            split_value(&value).ok_or_else(|| Self::corrupt(key, "invalid version"))?;
        let record = decode(data, &self.time).map_err(|r| Self::corrupt(key, r))?;
        Ok(Some((version, record)))
    }

    fn corrupt(key: &StoreKey, reason: &'static str) -> Error {
        Error::Corrupt {
            aor: member(key),
            reason,
        }
    }

    /// [`ServiceStateStore::load_ue`] with errors.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis is unavailable, [`Error::Corrupt`] for an unreadable record.
    pub fn try_load_ue(&self, impu: &str) -> Result<Option<(u64, UeRecord)>, Error> {
        self.load_with(&StoreKey::Ue(impu.to_owned()), ss_codec::decode_ue)
    }

    /// [`ServiceStateStore::load_ue_if_changed`] with errors: compared server-side, so an
    /// unchanged record costs one round trip and no data.
    ///
    /// # Errors
    /// As [`RedisServiceStateStore::try_load_ue`].
    pub fn try_load_ue_if_changed(
        &self,
        impu: &str,
        known: u64,
    ) -> Result<Option<(u64, UeRecord)>, Error> {
        let key = StoreKey::Ue(impu.to_owned());
        let (record, _) = self.keys(&key);
        let reply = self.run(
            &self.read_script,
            READ_IF_CHANGED_SCRIPT,
            &[&record],
            &[known.to_string().as_bytes()],
        )?;
        let Value::Array(parts) = reply else {
            return Err(Error::UnexpectedReply("read script reply"));
        };
        match parts.as_slice() {
            [] if known == 0 => Ok(None),
            [] => Ok(Some((0, UeRecord::default()))),
            [v] => {
                let v = reply_u64(Some(v)).ok_or_else(|| Self::corrupt(&key, "invalid version"))?;
                // Unchanged (the script compared it); a differing single reply cannot occur.
                if v == known {
                    Ok(None)
                } else {
                    Err(Error::UnexpectedReply("read script reply"))
                }
            }
            [v, Value::BulkString(d)] => {
                let v = reply_u64(Some(v)).ok_or_else(|| Self::corrupt(&key, "invalid version"))?;
                let record =
                    ss_codec::decode_ue(d, &self.time).map_err(|r| Self::corrupt(&key, r))?;
                Ok(Some((v, record)))
            }
            _ => Err(Error::UnexpectedReply("read script reply")),
        }
    }

    /// [`ServiceStateStore::load_dialog`] with errors.
    ///
    /// # Errors
    /// As [`RedisServiceStateStore::try_load_ue`].
    pub fn try_load_dialog(&self, tag: u64) -> Result<Option<(u64, DialogRecord)>, Error> {
        self.load_with(&StoreKey::Dialog(tag), ss_codec::decode_dialog)
    }

    /// Unix ms of `t` plus the TTL grace.
    fn key_expiry(&self, t: Instant) -> i64 {
        let grace = i64::try_from(self.config.ttl_grace.as_millis()).unwrap_or(i64::MAX);
        self.time.to_unix_ms_ceil(t).saturating_add(grace)
    }

    /// The versioned write of `key`: `data` empty = delete. `Ok(Err(current))` is a
    /// version conflict.
    fn write(
        &self,
        key: &StoreKey,
        expected: u64,
        data: &[u8],
        deadline: Option<Instant>,
        key_expiry: Option<i64>,
    ) -> Result<Result<u64, u64>, Error> {
        let (record, due) = self.keys(key);
        let m = member(key);
        let deadline_ms = deadline.map(|t| self.time.to_unix_ms_ceil(t).to_string());
        let expiry_ms = key_expiry.map(|t| t.to_string());
        let reply = self.run(
            &self.write_script,
            WRITE_SCRIPT,
            &[&record, &due],
            &[
                expected.to_string().as_bytes(),
                m.as_bytes(),
                data,
                deadline_ms.as_deref().unwrap_or("").as_bytes(),
                expiry_ms.as_deref().unwrap_or("").as_bytes(),
                self.change_channel().as_bytes(),
                format!("{:x}", self.origin).as_bytes(),
            ],
        )?;
        let Value::Array(parts) = reply else {
            return Err(Error::UnexpectedReply("write script reply"));
        };
        let bad = Error::UnexpectedReply("write script reply");
        match reply_u64(parts.first()) {
            Some(1) => {
                let version = reply_u64(parts.get(1)).ok_or(bad)?;
                self.lock().expiry_cache.lower(deadline);
                Ok(Ok(version))
            }
            Some(0) => {
                self.lock().conflicts += 1;
                Ok(Err(reply_u64(parts.get(1)).ok_or(bad)?))
            }
            _ => Err(bad),
        }
    }

    /// [`ServiceStateStore::write_ue`] with errors: `Ok(Err(current))` is a version
    /// conflict.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis is unavailable (nothing written).
    pub fn try_write_ue(
        &self,
        impu: &str,
        expected: u64,
        record: &UeRecord,
    ) -> Result<Result<u64, u64>, Error> {
        let key = StoreKey::Ue(impu.to_owned());
        if record.is_empty() {
            return self.write(&key, expected, &[], None, None);
        }
        let data = ss_codec::encode_ue(record, &self.time).map_err(Error::ApiMisuse)?;
        let latest = record
            .users
            .iter()
            .filter_map(|u| match u.auth.publication() {
                Some(p) => Some(
                    u.auth
                        .next_deadline()
                        .map_or(p.expires_at, |d| d.max(p.expires_at)),
                ),
                None => u.auth.next_deadline(),
            })
            .max();
        let key_expiry = if record.instances.is_empty() {
            latest.map(|t| self.key_expiry(t))
        } else {
            None
        };
        self.write(&key, expected, &data, record.next_deadline(), key_expiry)
    }

    /// [`ServiceStateStore::write_dialog`] with errors: `Ok(Err(current))` is a version
    /// conflict.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis is unavailable (nothing written).
    pub fn try_write_dialog(
        &self,
        tag: u64,
        expected: u64,
        record: Option<&DialogRecord>,
    ) -> Result<Result<u64, u64>, Error> {
        let key = StoreKey::Dialog(tag);
        match record {
            None => self.write(&key, expected, &[], None, None),
            Some(d) => {
                let data = ss_codec::encode_dialog(d, &self.time);
                let key_expiry = self.key_expiry(d.expires_at.max(d.lease_expires));
                self.write(
                    &key,
                    expected,
                    &data,
                    Some(d.lease_expires),
                    Some(key_expiry),
                )
            }
        }
    }

    /// [`ServiceStateStore::due`] with errors.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis is unavailable.
    pub fn try_due(&self, now: Instant, max: usize) -> Result<Vec<StoreKey>, Error> {
        let now_ms = self.time.to_unix_ms_floor(now);
        let buckets = u64::from(self.config.buckets);
        let cmds: Vec<Cmd> = (0..buckets)
            .map(|b| conn::due_range(self.due_key(b), now_ms, max))
            .collect();
        let per_bucket: Vec<Vec<(String, f64)>> = self.query_each(&cmds)?;
        // Earliest first, at most `max`: (score, bucket, member, key).
        let mut all: Vec<(f64, u64, String, StoreKey)> = (0..buckets)
            .zip(per_bucket)
            .flat_map(|(b, due)| {
                due.into_iter()
                    .filter_map(move |(m, score)| Some((score, b, parse_member(&m)?, m)))
            })
            .map(|(score, b, key, m)| (score, b, m, key))
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.3.cmp(&b.3)));
        all.truncate(max);
        if all.is_empty() {
            return Ok(Vec::new());
        }
        // Keep the entries whose record exists (one pipelined round trip); drop the others
        // from the index (records Redis deleted at their key expiry: rare).
        let exists: Vec<Cmd> = all
            .iter()
            .map(|(_, _, _, key)| {
                let mut e = redis::cmd("EXISTS");
                e.arg(self.keys(key).0);
                e
            })
            .collect();
        let found: Vec<bool> = self.query_each(&exists)?;
        let mut live = Vec::with_capacity(all.len());
        for ((_, b, m, key), found) in all.into_iter().zip(found) {
            if found {
                live.push(key);
                continue;
            }
            // Removed only if still missing (a writer may have re-created it meanwhile).
            let (record, due) = self.keys(&key);
            debug_assert_eq!(due, self.due_key(b));
            self.run(
                &self.prune_script,
                PRUNE_SCRIPT,
                &[&due, &record],
                &[m.as_bytes()],
            )?;
        }
        Ok(live)
    }

    /// [`ServiceStateStore::next_expiry`] with errors (no cache).
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis is unavailable.
    pub fn try_next_expiry(&self) -> Result<Option<Instant>, Error> {
        let keys = (0..u64::from(self.config.buckets)).map(|b| self.due_key(b));
        conn::earliest_score(keys, &self.time, |cmds| self.query_each(cmds))
    }

    /// Sends `cmds` pipelined (one round trip) and reads each reply as a `T`.
    fn query_each<T: redis::FromRedisValue>(&self, cmds: &[Cmd]) -> Result<Vec<T>, Error> {
        let mut inner = self.lock();
        self.with_conn(&mut inner, |c, inner| {
            conn::query_each(c, &mut inner.round_trips, cmds)
        })
    }

    /// Logs a failure, keeps it for [`RedisServiceStateStore::take_error`] and converts it.
    fn note<T>(&self, what: &str, key: &str, r: Result<T, Error>) -> Result<T, StoreError> {
        r.map_err(|e| {
            tracing::error!(operation = what, key, error = %e, "service-state store failure");
            StoreError::Unavailable(conn::keep_failure(
                &self.inner,
                |i| &mut i.last_error,
                what,
                key,
                &e,
            ))
        })
    }
}

impl ServiceStateStore for RedisServiceStateStore {
    fn load_ue(&self, impu: &str) -> Result<Option<(u64, UeRecord)>, StoreError> {
        self.note("load_ue", impu, self.try_load_ue(impu))
    }

    fn load_ue_if_changed(
        &self,
        impu: &str,
        known: u64,
    ) -> Result<Option<(u64, UeRecord)>, StoreError> {
        self.note(
            "load_ue_if_changed",
            impu,
            self.try_load_ue_if_changed(impu, known),
        )
    }

    fn write_ue(&mut self, impu: &str, expected: u64, record: UeRecord) -> Result<u64, StoreError> {
        self.note("write_ue", impu, self.try_write_ue(impu, expected, &record))?
            .map_err(|current| StoreError::Conflict { current })
    }

    fn load_dialog(&self, tag: u64) -> Result<Option<(u64, DialogRecord)>, StoreError> {
        self.note(
            "load_dialog",
            &format!("{tag:016x}"),
            self.try_load_dialog(tag),
        )
    }

    fn write_dialog(
        &mut self,
        tag: u64,
        expected: u64,
        record: Option<DialogRecord>,
    ) -> Result<u64, StoreError> {
        let r = self.try_write_dialog(tag, expected, record.as_ref());
        self.note("write_dialog", &format!("{tag:016x}"), r)?
            .map_err(|current| StoreError::Conflict { current })
    }

    fn due(&self, now: Instant, max: usize) -> Result<Vec<StoreKey>, StoreError> {
        self.lock().expiry_cache.clear();
        self.note("due", "", self.try_due(now, max))
    }

    fn next_expiry(&self) -> Option<Instant> {
        conn::cached_next_expiry(
            &self.inner,
            |i| &mut i.expiry_cache,
            self.config.expiry_cache,
            || self.note("next_expiry", "", self.try_next_expiry()),
        )
    }
}
