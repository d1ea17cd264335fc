//! Registrations per second through `mcptt-registration`'s registrar with the in-memory
//! store and with `mcptt-store-redis` against a real `redis-server` on loopback (started
//! here, killed at the end; the Debian package `redis-server` must be installed), side by
//! side in one group. Each iteration is one REGISTER refresh of one of 1,000 registered
//! MCPTT UEs (parsing, RFC 3261 §10.3 processing, store load and versioned write, response;
//! the `*_mcptt_filter` variants also build the third-party REGISTER toward the MCPTT
//! application server and handle its 200 OK).
//!
//! Before the timed group it prints, for 1,000 UEs, the Redis round trips per new
//! registration and per refresh (with and without the third-party filter; goal ≤ 2) and
//! the Redis memory per registered UE (`INFO memory` `used_memory` delta / UEs, and
//! `MEMORY USAGE` of one record; goal ≤ 2 KiB).
//!
//! Then PUBLISH+NOTIFY per second through `mcptt-service-state` with two MCPTT server
//! instances sharing one store: UE `i` refreshes its publication with a new token on
//! instance A, which answers 200; instance B, holding the UE's subscription dialog, learns
//! of it through the store's change feed and sends the NOTIFY, whose 200 it handles. The
//! same two-instance flow runs over a shared `MemoryStore` (changes handed over in memory)
//! and over `RedisServiceStateStore` (changes through Redis pub/sub and
//! `ServiceStateFeed::deliver`), in one group (`publish_notify_two_instances`). Token
//! signatures are not checked (the bench validator reads plain claims). Before it, the bench
//! prints the Redis round trips per PUBLISH (on A) and per remote NOTIFY (on B), and the
//! Redis memory per registered and authorised UE: registration record + service-state UE
//! record + subscription dialog record and their index entries (goal ≤ 2 KiB in total).
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use std::cell::RefCell;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use mcptt_benches::{PlainTokens, notify_ok};
use mcptt_registration::{
    FilterCriteria, IdentityMap, Registrar, RegistrarConfig, RegistrationStore,
};
use mcptt_service_state::body::McpttInfo;
use mcptt_service_state::server::{Server as SsServer, ServerConfig};
use mcptt_service_state::store::{
    DialogRecord, MemoryStore, ServiceStateStore, StoreError, StoreKey, UeRecord,
};
use mcptt_service_state::{RegistrationChange, SplitMix64};
use mcptt_sip::{Message, Request};
use mcptt_store_redis::{
    RedisServiceStateStore, RedisStore, RedisStoreConfig, ServiceStateFeed, TimeBase,
};

/// Buckets of both stores: `RedisStoreConfig::default()`'s, or `MCPTT_BENCH_BUCKETS`.
fn buckets() -> u16 {
    std::env::var("MCPTT_BENCH_BUCKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| RedisStoreConfig::default().buckets)
}

/// UEs in each population: 1,000, or `MCPTT_BENCH_UES` (e.g. 10000: past 128 entries per
/// bucket Redis stores the sorted-set indexes as skiplists, which cost more per UE than
/// the listpacks of a small population; see `RedisStoreConfig::buckets` for the sizing).
static UES: std::sync::LazyLock<u32> = std::sync::LazyLock::new(|| {
    std::env::var("MCPTT_BENCH_UES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &u32| n >= 2)
        .unwrap_or(1000)
});

fn ues() -> u32 {
    *UES
}
const PEER: &str = "ue-peer";

struct Server(Child, std::path::PathBuf);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn start_redis() -> (Server, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let dir = std::env::temp_dir().join(format!("mcptt-bench-redis-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no", "--dir"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start `redis-server` ({e}): install the Debian package `redis-server`")
        });
    let server = Server(child, dir);
    let url = format!("redis://127.0.0.1:{port}");
    let client = redis::Client::open(url.as_str()).expect("url");
    let deadline = Instant::now() + Duration::from_secs(10);
    while client
        .get_connection_with_timeout(Duration::from_millis(200))
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
        .is_err()
    {
        assert!(Instant::now() < deadline, "redis-server did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    (server, url)
}

fn register(n: u32, cseq: u32) -> Request {
    let text = format!(
        "REGISTER sip:mcptt.example.com SIP/2.0\r\n\
         Via: SIP/2.0/TLS 10.0.0.1:5061;branch=z9hG4bK-{n}-{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:user{n:06}@mcptt.example.com>;tag={n:x}\r\n\
         To: <sip:user{n:06}@mcptt.example.com>\r\n\
         Call-ID: {n:016x}@10.0.0.1\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:user{n:06}@10.0.0.1:5061;transport=tls>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-{n:012}>\";+g.3gpp.mcptt;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.mcptt\"\r\n\
         Expires: 3600\r\n\
         Supported: path, gruu, outbound\r\n\
         User-Agent: mcptt-bench\r\n\
         Content-Length: 0\r\n\r\n"
    );
    Message::parse(Bytes::from(text))
        .expect("bench REGISTER parses")
        .into_request()
        .expect("a request")
}

fn config(filter: bool) -> RegistrarConfig {
    let mut identities = IdentityMap::new();
    for n in 0..ues() {
        identities = identities.allow(PEER, &format!("sip:user{n:06}@mcptt.example.com"));
    }
    RegistrarConfig {
        identities,
        max_expires: 3600,
        filters: if filter {
            vec![FilterCriteria::mcptt("sip:mcptt-as.example.com")]
        } else {
            Vec::new()
        },
        core_uri: "sip:scscf.example.com".into(),
        ..RegistrarConfig::default()
    }
}

/// Answers every queued third-party REGISTER with 200 OK (what the MCPTT server does).
fn answer_third_party<S: RegistrationStore>(r: &mut Registrar<S>, t: Instant) {
    while let Some(tx) = r.poll_transmit() {
        let ok = mcptt_sip::Response::from_request(&tx.request, 200);
        let _ = r.handle_third_party_response(t, &ok);
    }
}

/// A store on `url` whose keys start with `prefix` (each run gets its own records).
fn redis_store(url: &str, prefix: &str) -> RedisStore {
    let store = RedisStore::new(
        RedisStoreConfig {
            url: url.to_owned(),
            key_prefix: prefix.to_owned(),
            buckets: buckets(),
            ..RedisStoreConfig::default()
        },
        TimeBase::system(),
    )
    .expect("store");
    store.ping().expect("redis answers");
    store
}

fn used_memory(c: &mut redis::Connection) -> i64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query(c)
        .expect("INFO memory");
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory in INFO")
}

/// Prints round trips per registration and Redis memory per registered UE.
fn measure(url: &str) {
    let n_ues = ues();
    let mut c = redis::Client::open(url)
        .expect("url")
        .get_connection()
        .expect("connect");
    let t = Instant::now();
    // Warm-up: Redis's first allocations (script cache, keyspace tables, client buffers)
    // are not per-UE memory.
    let mut warm = Registrar::with_store(config(true), redis_store(url, "warmup"), 1);
    for n in 0..ues() {
        let _ = warm.handle_register(t, PEER, &register(n, 1));
        answer_third_party(&mut warm, t);
    }
    drop(warm);
    for filter in [false, true] {
        redis::cmd("FLUSHALL")
            .query::<()>(&mut c)
            .expect("FLUSHALL");
        let before = used_memory(&mut c);
        let mut r = Registrar::with_store(config(filter), redis_store(url, "measure"), 1);
        // The write script is loaded once per connection: load it before counting.
        let warm = r.handle_register(t, PEER, &register(0, 1));
        assert_eq!(warm.response.status(), 200);
        answer_third_party(&mut r, t);
        let rt0 = r.store().round_trips();
        for n in 1..ues() {
            assert_eq!(
                r.handle_register(t, PEER, &register(n, 1))
                    .response
                    .status(),
                200
            );
            answer_third_party(&mut r, t);
        }
        let rt1 = r.store().round_trips();
        for n in 0..ues() {
            assert_eq!(
                r.handle_register(t, PEER, &register(n, 2))
                    .response
                    .status(),
                200
            );
            answer_third_party(&mut r, t);
        }
        let rt2 = r.store().round_trips();
        let per_ue = (used_memory(&mut c) - before) / i64::from(ues());
        let one: i64 = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(r.store().record_key("sip:user000001@mcptt.example.com"))
            .query(&mut c)
            .expect("MEMORY USAGE");
        #[allow(clippy::cast_precision_loss)] // small counts
        let (new_rt, refresh_rt) = (
            (rt1 - rt0) as f64 / f64::from(ues() - 1),
            (rt2 - rt1) as f64 / f64::from(ues()),
        );
        println!(
            "store_redis: third-party filter {}: Redis round trips per new registration {new_rt:.2}, \
             per refresh {refresh_rt:.2} (goal <= 2); Redis memory per registered UE {per_ue} B \
             (used_memory delta / {n_ues} UEs; MEMORY USAGE of one record {one} B; goal <= 2048 B)",
            if filter { "on (MCPTT AS)" } else { "off" }
        );
    }
    redis::cmd("FLUSHALL")
        .query::<()>(&mut c)
        .expect("FLUSHALL");
}

fn run<S: RegistrationStore>(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    mut r: Registrar<S>,
) {
    let t = Instant::now();
    for n in 0..ues() {
        assert_eq!(
            r.handle_register(t, PEER, &register(n, 1))
                .response
                .status(),
            200
        );
        answer_third_party(&mut r, t);
    }
    let mut i: u64 = 0;
    c.bench_function(name, |b| {
        b.iter_batched(
            || {
                i += 1;
                let n = u32::try_from(i % u64::from(ues())).unwrap_or(0);
                let cseq = u32::try_from(i / u64::from(ues()) + 2).unwrap_or(u32::MAX);
                register(n, cseq)
            },
            |req| {
                let out = r.handle_register(t, PEER, &req);
                assert_eq!(out.response.status(), 200);
                answer_third_party(&mut r, t);
                while r.poll_event().is_some() {}
            },
            BatchSize::SmallInput,
        );
    });
}

fn bench(c: &mut Criterion) {
    let (_server, url) = start_redis();
    measure(&url);
    measure_service_state(&url);
    let mut g = c.benchmark_group("registrar_refresh");
    g.throughput(Throughput::Elements(1));
    run(&mut g, "memory", Registrar::new(config(false), 1));
    run(
        &mut g,
        "redis",
        Registrar::with_store(config(false), redis_store(&url, "plain"), 1),
    );
    run(
        &mut g,
        "memory_mcptt_filter",
        Registrar::new(config(true), 1),
    );
    run(
        &mut g,
        "redis_mcptt_filter",
        Registrar::with_store(config(true), redis_store(&url, "filter"), 1),
    );
    g.finish();
}

// ---- service state: PUBLISH on A, NOTIFY from B ---------------------------------------

const PSI: &str = "sip:mcptt-server@mcptt.example.org";
const NOW_UNIX: u64 = 1_800_000_000;

/// The public user identity of UE `n` (the same UEs the registration part registers).
fn impu(n: u32) -> String {
    format!("sip:user{n:06}@mcptt.example.com")
}

/// A PUBLISH of UE `n` with a token expiring at `exp`: initial without `etag`, else a
/// modify naming it.
fn publish(n: u32, cseq: u32, exp: u64, etag: Option<&str>) -> Vec<u8> {
    let body = McpttInfo {
        access_token: Some(format!("tok|sip:u{n:06}@mcptt.example.org|{exp}")),
        client_id: Some("mcptt-client".into()),
        request_uri: Some(PSI.into()),
    }
    .encode();
    let if_match = etag.map_or(String::new(), |e| format!("SIP-If-Match: {e}\r\n"));
    format!(
        "PUBLISH {PSI} SIP/2.0\r\nVia: SIP/2.0/TLS core.example.org;branch=z9hG4bKp{n}.{cseq}\r\n\
Max-Forwards: 69\r\nFrom: <{u}>;tag=pf{n}\r\nTo: <{u}>\r\nCall-ID: pub-{n}@ue.example.org\r\n\
CSeq: {cseq} PUBLISH\r\nP-Asserted-Identity: <{u}>\r\nEvent: poc-settings\r\nExpires: 3600\r\n\
{if_match}Content-Type: application/vnd.3gpp.mcptt-info+xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len(),
        u = impu(n)
    )
    .into_bytes()
}

fn subscribe(n: u32) -> Vec<u8> {
    format!(
        "SUBSCRIBE {PSI} SIP/2.0\r\nVia: SIP/2.0/TLS core.example.org;branch=z9hG4bKs{n}\r\n\
Max-Forwards: 69\r\nRecord-Route: <sip:core.example.org;transport=tls;lr>\r\n\
From: <{u}>;tag=sf{n}\r\nTo: <{PSI}>\r\nCall-ID: sub-{n}@ue.example.org\r\nCSeq: 1 SUBSCRIBE\r\n\
P-Asserted-Identity: <{u}>\r\nContact: <sip:ue{n}.example.org;transport=tls>\r\n\
Event: mcptt-service-state\r\nAccept: application/vnd.mcptt-service-state+json\r\nExpires: 3600\r\n\
Content-Length: 0\r\n\r\n",
        u = impu(n)
    )
    .into_bytes()
}

fn etag_of(response: &[u8]) -> String {
    let text = String::from_utf8_lossy(response);
    assert!(text.starts_with("SIP/2.0 200"), "PUBLISH refused: {text}");
    text.split("\r\n")
        .find_map(|l| l.strip_prefix("SIP-ETag: "))
        .expect("SIP-ETag")
        .to_owned()
}

/// One `MemoryStore` shared by two instances, with an in-memory change feed: `(writer,
/// key)` in write order.
#[derive(Clone)]
struct SharedMemory {
    id: u8,
    inner: Rc<RefCell<MemoryStore>>,
    feed: Rc<RefCell<Vec<(u8, StoreKey)>>>,
}

impl ServiceStateStore for SharedMemory {
    fn load_ue(&self, impu: &str) -> Result<Option<(u64, UeRecord)>, StoreError> {
        self.inner.borrow().load_ue(impu)
    }
    fn load_ue_if_changed(
        &self,
        impu: &str,
        known: u64,
    ) -> Result<Option<(u64, UeRecord)>, StoreError> {
        self.inner.borrow().load_ue_if_changed(impu, known)
    }
    fn write_ue(&mut self, impu: &str, expected: u64, record: UeRecord) -> Result<u64, StoreError> {
        let v = self.inner.borrow_mut().write_ue(impu, expected, record)?;
        self.feed
            .borrow_mut()
            .push((self.id, StoreKey::Ue(impu.to_owned())));
        Ok(v)
    }
    fn load_dialog(&self, tag: u64) -> Result<Option<(u64, DialogRecord)>, StoreError> {
        self.inner.borrow().load_dialog(tag)
    }
    fn write_dialog(
        &mut self,
        tag: u64,
        expected: u64,
        record: Option<DialogRecord>,
    ) -> Result<u64, StoreError> {
        let v = self
            .inner
            .borrow_mut()
            .write_dialog(tag, expected, record)?;
        self.feed
            .borrow_mut()
            .push((self.id, StoreKey::Dialog(tag)));
        Ok(v)
    }
    fn due(&self, now: Instant, max: usize) -> Result<Vec<StoreKey>, StoreError> {
        self.inner.borrow().due(now, max)
    }
    fn next_expiry(&self) -> Option<Instant> {
        self.inner.borrow().next_expiry()
    }
}

type Ss<S> = SsServer<PlainTokens, SplitMix64, S>;

fn ss_server<S: ServiceStateStore>(id: u64, store: S) -> Ss<S> {
    let mut config = ServerConfig::new("mcptt.example.org", PSI);
    config.instance_id = id;
    config.max_ues = 4 * ues() as usize;
    SsServer::with_store(config, PlainTokens, SplitMix64(id), store)
}

/// Hands B the changes other instances wrote.
trait Link<S: ServiceStateStore> {
    /// Delivers to `b` until the change of UE `n` arrived (at least one change).
    fn deliver(&mut self, b: &mut Ss<S>, now: Instant);
    /// Delivers everything pending.
    fn drain(&mut self, b: &mut Ss<S>, now: Instant);
}

struct MemoryLink(Rc<RefCell<Vec<(u8, StoreKey)>>>);

impl Link<SharedMemory> for MemoryLink {
    fn deliver(&mut self, b: &mut Ss<SharedMemory>, now: Instant) {
        self.drain(b, now);
    }
    fn drain(&mut self, b: &mut Ss<SharedMemory>, now: Instant) {
        let pending = std::mem::take(&mut *self.0.borrow_mut());
        for (writer, key) in pending {
            if writer != 2 {
                b.handle_remote_change(now, &key).expect("memory store");
            }
        }
    }
}

struct RedisLink(ServiceStateFeed);

impl Link<RedisServiceStateStore> for RedisLink {
    fn deliver(&mut self, b: &mut Ss<RedisServiceStateStore>, now: Instant) {
        let n = self
            .0
            .deliver(b, now, Duration::from_secs(2), 1)
            .expect("feed");
        assert_eq!(n, 1, "A's change reached B");
    }
    fn drain(&mut self, b: &mut Ss<RedisServiceStateStore>, now: Instant) {
        while self
            .0
            .deliver(b, now, Duration::from_millis(100), 1024)
            .expect("feed")
            > 0
        {}
    }
}

/// Answers B's NOTIFYs; returns how many there were.
fn answer_notifies<S: ServiceStateStore>(b: &mut Ss<S>, now: Instant) -> usize {
    let mut n = 0;
    while let Some(t) = b.poll_transmit() {
        assert!(t.bytes.starts_with(b"NOTIFY "), "B sends NOTIFYs only");
        b.handle_response_bytes(now, &notify_ok(&t.bytes));
        n += 1;
    }
    while b.poll_event().is_some() {}
    n
}

/// Two instances with `ues()` UEs (`MCPTT_BENCH_UES`) registered and signed in on A, subscribed on B.
struct Flow<S: ServiceStateStore, L: Link<S>> {
    a: Ss<S>,
    b: Ss<S>,
    link: L,
    etags: Vec<String>,
    cseq: u32,
    exp: u64,
    now: Instant,
}

impl<S: ServiceStateStore, L: Link<S>> Flow<S, L> {
    fn new(a: Ss<S>, b: Ss<S>, link: L) -> Self {
        let mut f = Self {
            a,
            b,
            link,
            etags: Vec::new(),
            cseq: 1,
            exp: NOW_UNIX + 3600,
            now: Instant::now(),
        };
        let now = f.now;
        for n in 0..ues() {
            f.a.handle_registration(
                now,
                RegistrationChange {
                    impu: impu(n),
                    instance: Some(format!("<urn:uuid:00000000-0000-1000-8000-{n:012}>")),
                    registered: true,
                },
            );
            f.a.handle_request_bytes(now, NOW_UNIX, &publish(n, 1, f.exp, None));
            let ok = f.a.poll_transmit().expect("200 to PUBLISH");
            f.etags.push(etag_of(&ok.bytes));
            while f.a.poll_event().is_some() {}
            // B reads the signed-in user from the store when the SUBSCRIBE comes; the feed
            // is drained once at the end (a drain per UE would wait for a quiet feed each time).
            f.b.handle_request_bytes(now, NOW_UNIX, &subscribe(n));
            let ok = f.b.poll_transmit().expect("200 to SUBSCRIBE");
            assert!(ok.bytes.starts_with(b"SIP/2.0 200"));
            assert_eq!(answer_notifies(&mut f.b, now), 1, "the first NOTIFY");
        }
        f.link.drain(&mut f.b, now);
        answer_notifies(&mut f.b, now);
        f
    }

    /// UE `n` refreshes with a new token on A; B NOTIFYs it and handles the 200.
    fn step(&mut self, n: u32) {
        self.cseq += 1;
        self.exp += 1;
        let i = n as usize;
        let req = publish(n, self.cseq, self.exp, Some(&self.etags[i]));
        self.a.handle_request_bytes(self.now, NOW_UNIX, &req);
        let ok = self.a.poll_transmit().expect("200 to PUBLISH");
        self.etags[i] = etag_of(&ok.bytes);
        assert!(self.a.poll_transmit().is_none(), "A holds no dialog");
        while self.a.poll_event().is_some() {}
        self.link.deliver(&mut self.b, self.now);
        assert_eq!(
            answer_notifies(&mut self.b, self.now),
            1,
            "one NOTIFY, by B"
        );
    }
}

fn memory_flow() -> Flow<SharedMemory, MemoryLink> {
    let inner = Rc::new(RefCell::new(MemoryStore::new()));
    let feed = Rc::new(RefCell::new(Vec::new()));
    let store = |id| SharedMemory {
        id,
        inner: Rc::clone(&inner),
        feed: Rc::clone(&feed),
    };
    Flow::new(
        ss_server(1, store(1)),
        ss_server(2, store(2)),
        MemoryLink(Rc::clone(&feed)),
    )
}

fn ss_store(url: &str, prefix: &str) -> RedisServiceStateStore {
    let store = RedisServiceStateStore::new(
        RedisStoreConfig {
            url: url.to_owned(),
            key_prefix: prefix.to_owned(),
            buckets: buckets(),
            ..RedisStoreConfig::default()
        },
        TimeBase::system(),
    )
    .expect("store");
    store.ping().expect("redis answers");
    store
}

fn redis_flow(url: &str, prefix: &str) -> Flow<RedisServiceStateStore, RedisLink> {
    let a = ss_store(url, prefix);
    let b = ss_store(url, prefix);
    let feed = b.subscribe_changes().expect("feed");
    Flow::new(ss_server(1, a), ss_server(2, b), RedisLink(feed))
}

/// Prints Redis round trips per PUBLISH and per remote NOTIFY, and Redis memory per
/// registered and authorised UE.
fn measure_service_state(url: &str) {
    let n_ues = ues();
    let mut c = redis::Client::open(url)
        .expect("url")
        .get_connection()
        .expect("connect");
    redis::cmd("FLUSHALL")
        .query::<()>(&mut c)
        .expect("FLUSHALL");
    let base = used_memory(&mut c);
    // Registration: every UE registered through the registrar (MCPTT filter on).
    let t = Instant::now();
    let mut reg = Registrar::with_store(config(true), redis_store(url, "mcptt"), 1);
    for n in 0..ues() {
        let out = reg.handle_register(t, PEER, &register(n, 1));
        assert_eq!(out.response.status(), 200);
        answer_third_party(&mut reg, t);
    }
    let after_reg = used_memory(&mut c);
    let mut flow = redis_flow(url, "mcptt");
    let after_ss = used_memory(&mut c);
    let ue_key = flow.a.store().record_key(&StoreKey::Ue(impu(1)));
    let one_ue: i64 = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(&ue_key)
        .query(&mut c)
        .expect("MEMORY USAGE");
    let dialog_keys: Vec<String> = redis::cmd("KEYS")
        .arg("{mcptt:ss:*}:dlg:*")
        .query(&mut c)
        .expect("KEYS");
    let one_dialog: i64 = dialog_keys.first().map_or(0, |k| {
        redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(k)
            .query(&mut c)
            .expect("MEMORY USAGE")
    });
    let population = i64::from(n_ues);
    let reg_per_ue = (after_reg - base) / population;
    let ss_per_ue = (after_ss - after_reg) / population;
    println!(
        "store_redis service state: Redis memory per registered and authorised UE {} B \
         (registration {reg_per_ue} B + service state {ss_per_ue} B: UE record with publication, \
         subscription dialog, deadline index entries; used_memory delta / {n_ues} UEs; MEMORY \
         USAGE of one UE record {one_ue} B, of one dialog record {one_dialog} B; goal <= 2048 B)",
        reg_per_ue + ss_per_ue
    );
    // Round trips: refreshes of every UE (scripts already cached on both connections).
    let (a0, b0) = (flow.a.store().round_trips(), flow.b.store().round_trips());
    for n in 0..ues() {
        flow.step(n);
    }
    let (a1, b1) = (flow.a.store().round_trips(), flow.b.store().round_trips());
    #[allow(clippy::cast_precision_loss)] // small counts
    let (per_pub, per_notify) = (
        (a1 - a0) as f64 / f64::from(ues()),
        (b1 - b0) as f64 / f64::from(ues()),
    );
    println!(
        "store_redis service state: Redis round trips per PUBLISH refresh on A {per_pub:.2}, \
         per remote change NOTIFYed by B (read, NOTIFY, its 200) {per_notify:.2}, over {n_ues} UEs"
    );
    drop(flow);
    redis::cmd("FLUSHALL")
        .query::<()>(&mut c)
        .expect("FLUSHALL");
}

fn run_flow<S: ServiceStateStore, L: Link<S>>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    mut flow: Flow<S, L>,
) {
    let mut i: u32 = 0;
    g.bench_function(name, |b| {
        b.iter(|| {
            i = (i + 1) % ues();
            flow.step(i);
        });
    });
}

fn bench_service_state(c: &mut Criterion) {
    let (_server, url) = start_redis();
    let mut g = c.benchmark_group("publish_notify_two_instances");
    g.throughput(Throughput::Elements(1));
    run_flow(&mut g, "memory", memory_flow());
    run_flow(&mut g, "redis", redis_flow(&url, "flow"));
    g.finish();
}

criterion_group!(benches, bench, bench_service_state);
criterion_main!(benches);
