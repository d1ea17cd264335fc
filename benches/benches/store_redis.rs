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
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use mcptt_registration::{
    FilterCriteria, IdentityMap, Registrar, RegistrarConfig, RegistrationStore,
};
use mcptt_sip::{Message, Request};
use mcptt_store_redis::{RedisStore, RedisStoreConfig, TimeBase};

const UES: u32 = 1000;
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
    for n in 0..UES {
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
    let mut c = redis::Client::open(url)
        .expect("url")
        .get_connection()
        .expect("connect");
    let t = Instant::now();
    // Warm-up: Redis's first allocations (script cache, keyspace tables, client buffers)
    // are not per-UE memory.
    let mut warm = Registrar::with_store(config(true), redis_store(url, "warmup"), 1);
    for n in 0..UES {
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
        for n in 1..UES {
            assert_eq!(
                r.handle_register(t, PEER, &register(n, 1))
                    .response
                    .status(),
                200
            );
            answer_third_party(&mut r, t);
        }
        let rt1 = r.store().round_trips();
        for n in 0..UES {
            assert_eq!(
                r.handle_register(t, PEER, &register(n, 2))
                    .response
                    .status(),
                200
            );
            answer_third_party(&mut r, t);
        }
        let rt2 = r.store().round_trips();
        let per_ue = (used_memory(&mut c) - before) / i64::from(UES);
        let one: i64 = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(r.store().record_key("sip:user000001@mcptt.example.com"))
            .query(&mut c)
            .expect("MEMORY USAGE");
        #[allow(clippy::cast_precision_loss)] // small counts
        let (new_rt, refresh_rt) = (
            (rt1 - rt0) as f64 / f64::from(UES - 1),
            (rt2 - rt1) as f64 / f64::from(UES),
        );
        println!(
            "store_redis: third-party filter {}: Redis round trips per new registration {new_rt:.2}, \
             per refresh {refresh_rt:.2} (goal <= 2); Redis memory per registered UE {per_ue} B \
             (used_memory delta / {UES} UEs; MEMORY USAGE of one record {one} B; goal <= 2048 B)",
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
    for n in 0..UES {
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
                let n = u32::try_from(i % u64::from(UES)).unwrap_or(0);
                let cseq = u32::try_from(i / u64::from(UES) + 2).unwrap_or(u32::MAX);
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

criterion_group!(benches, bench);
criterion_main!(benches);
