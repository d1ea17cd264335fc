//! Registrations per second through `mcptt-registration`'s registrar with the in-memory
//! store and with `mcptt-store-redis` against a real `redis-server` on loopback (started
//! here, killed at the end; the Debian package `redis-server` must be installed), side by
//! side in one group. Each iteration is one REGISTER refresh of one of 1,000 registered
//! MCPTT UEs (parsing, RFC 3261 §10.3 processing, store load and versioned write, response).
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use mcptt_registration::{IdentityMap, Registrar, RegistrarConfig, RegistrationStore};
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

fn config() -> RegistrarConfig {
    let mut identities = IdentityMap::new();
    for n in 0..UES {
        identities = identities.allow(PEER, &format!("sip:user{n:06}@mcptt.example.com"));
    }
    RegistrarConfig {
        identities,
        max_expires: 3600,
        ..RegistrarConfig::default()
    }
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
                while r.poll_event().is_some() {}
            },
            BatchSize::SmallInput,
        );
    });
}

fn bench(c: &mut Criterion) {
    let (_server, url) = start_redis();
    let mut g = c.benchmark_group("registrar_refresh");
    g.throughput(Throughput::Elements(1));
    run(&mut g, "memory", Registrar::new(config(), 1));
    let store = RedisStore::new(
        RedisStoreConfig {
            url,
            ..RedisStoreConfig::default()
        },
        TimeBase::system(),
    )
    .expect("store");
    store.ping().expect("redis answers");
    run(&mut g, "redis", Registrar::with_store(config(), store, 1));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
