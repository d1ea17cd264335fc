//! Hold many idle mutual-TLS connections in one server process (`mcptt-tls` Transport) with
//! the clients in a second process, and report the server's memory per connection.
//!
//! Run (release; the fd limit here is 20,000 per process):
//! `ulimit -n 20000 && cargo run --release -p mcptt-benches --bin tls_idle -- 10000`
//!
//! The server process generates an ECDSA P-256 PKI, listens on 127.0.0.1, spawns itself as
//! `tls_idle client ADDR DIR N`, waits until N connections have completed the mutual TLS 1.3
//! handshake, lets them sit idle, samples its resident set size (`/proc/self/statm`), then
//! closes the client's stdin (the client exits) and stops. Everything is bounded by a
//! deadline; nothing leaves loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mcptt_tls::{
    ClientTlsConfig, Credentials, Destination, Event, ServerTlsConfig, Transport, TransportConfig,
    TransportKind, TrustAnchors,
};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};

const DEADLINE: Duration = Duration::from_secs(240);
const SETTLE: Duration = Duration::from_secs(3);
const CONCURRENT_HANDSHAKES: usize = 64;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("client") {
        let addr: SocketAddr = args[2].parse().unwrap();
        let dir = PathBuf::from(&args[3]);
        let n: usize = args[4].parse().unwrap();
        client(addr, &dir, n);
    } else {
        let n = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
        server(n);
    }
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn write_pki(dir: &Path) -> (Credentials, TrustAnchors) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf = |dns: &str, uri: &str| {
        let mut p = CertificateParams::new(vec![dns.to_owned()]).unwrap();
        p.subject_alt_names
            .push(SanType::URI(uri.try_into().unwrap()));
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = leaf("sip.example.org", "sip:core@example.org");
    let (client_cert, client_key) = leaf("ue.example.org", "sip:ue@example.org");
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("client.pem"), client_cert).unwrap();
    std::fs::write(dir.join("client.key.pem"), client_key).unwrap();
    (
        Credentials::from_pem(server_cert.as_bytes(), server_key.as_bytes()).unwrap(),
        TrustAnchors::from_pem_file(dir.join("ca.pem")).unwrap(),
    )
}

fn server(n: usize) {
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("mcptt-tls-idle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (creds, anchors) = write_pki(&dir);
    let rt = runtime();
    let config = ServerTlsConfig::new(creds, anchors)
        .tls13_only(true)
        .build()
        .unwrap();
    let mut tc = TransportConfig::default();
    tc.max_connections = n + 100;
    tc.max_connections_per_ip = n + 100;
    tc.handshake_timeout = Duration::from_secs(60);
    tc.idle_timeout = Duration::from_secs(600);
    let (transport, mut events) = Transport::new(tc);
    let addr = rt
        .block_on(transport.listen_tls("127.0.0.1:0".parse().unwrap(), config))
        .unwrap();
    let connected = Arc::new(AtomicUsize::new(0));
    let rejected = Arc::new(AtomicUsize::new(0));
    let (c2, r2) = (connected.clone(), rejected.clone());
    rt.spawn(async move {
        while let Some(ev) = events.recv().await {
            match ev {
                Event::Connected(h) => {
                    assert!(h.identity().is_some());
                    c2.fetch_add(1, Ordering::Relaxed);
                }
                Event::Rejected { error, .. } => {
                    eprintln!("rejected: {error}");
                    r2.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    let rss0 = rss_bytes();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "client",
            &addr.to_string(),
            dir.to_str().unwrap(),
            &n.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while connected.load(Ordering::Relaxed) < n && started.elapsed() < DEADLINE {
        if let Ok(Some(status)) = child.try_wait() {
            eprintln!("client exited early: {status}");
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let setup = t0.elapsed();
    let established = connected.load(Ordering::Relaxed);
    std::thread::sleep(SETTLE);
    let rss1 = rss_bytes();
    let open = transport.connection_count();

    let mut client_line = String::new();
    if let Some(out) = child.stdout.as_mut() {
        let mut r = std::io::BufReader::new(out);
        let _ = r.read_line(&mut client_line);
    }
    drop(child.stdin.take());
    let waited = Instant::now();
    while child.try_wait().ok().flatten().is_none() {
        if waited.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.wait();
    rt.block_on(transport.shutdown(Duration::ZERO));
    let _ = std::fs::remove_dir_all(&dir);

    let per_conn = (rss1.saturating_sub(rss0)) as f64 / established.max(1) as f64;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "tls_idle: mutual TLS 1.3, ECDSA P-256, loopback, 2 tokio workers per process"
    )
    .unwrap();
    writeln!(
        out,
        "  connections established (server saw Connected): {established} / {n} (rejected {})",
        rejected.load(Ordering::Relaxed)
    )
    .unwrap();
    writeln!(out, "  connections open at the sample: {open}").unwrap();
    writeln!(
        out,
        "  setup time: {:.2} s -> {:.0} handshakes/s (client: {} concurrent)",
        setup.as_secs_f64(),
        established as f64 / setup.as_secs_f64(),
        CONCURRENT_HANDSHAKES
    )
    .unwrap();
    writeln!(
        out,
        "  server RSS before: {:.1} MiB, with connections idle: {:.1} MiB, peak (VmHWM): {:.1} MiB",
        rss0 as f64 / 1048576.0,
        rss1 as f64 / 1048576.0,
        vm_hwm_kib() as f64 / 1024.0
    )
    .unwrap();
    writeln!(
        out,
        "  server memory per idle connection: {:.1} KiB",
        per_conn / 1024.0
    )
    .unwrap();
    writeln!(out, "  client: {}", client_line.trim()).unwrap();
}

fn client(addr: SocketAddr, dir: &Path, n: usize) {
    let started = Instant::now();
    let creds =
        Credentials::from_pem_files(dir.join("client.pem"), dir.join("client.key.pem")).unwrap();
    let anchors = TrustAnchors::from_pem_file(dir.join("ca.pem")).unwrap();
    let cfg = ClientTlsConfig::new(anchors)
        .credentials(creds)
        .tls13_only(true)
        .build()
        .unwrap();
    let rt = runtime();
    let mut tc = TransportConfig::default().with_client_tls(cfg);
    tc.max_connections = n + 100;
    tc.idle_timeout = Duration::from_secs(600);
    tc.handshake_timeout = Duration::from_secs(60);
    let (transport, _events) = Transport::new(tc);
    let dest = Destination::addr(addr, TransportKind::Tls).with_server_name("sip.example.org");
    let handles = rt.block_on(async {
        let sem = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_HANDSHAKES));
        let mut tasks = Vec::with_capacity(n);
        for _ in 0..n {
            let permit = sem.clone().acquire_owned().await.unwrap();
            let t = transport.clone();
            let d = dest.clone();
            tasks.push(tokio::spawn(async move {
                let r = t.connect(&d).await;
                drop(permit);
                r
            }));
        }
        let mut handles = Vec::with_capacity(n);
        let mut failed = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(h) => handles.push(h),
                Err(_) => failed += 1,
            }
        }
        (handles, failed)
    });
    println!(
        "{} connected, {} failed, in {:.2} s",
        handles.0.len(),
        handles.1,
        started.elapsed().as_secs_f64()
    );
    std::io::stdout().flush().unwrap();
    // Hold the connections until the server closes our stdin (or the deadline passes).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        let _ = tx.send(());
    });
    let _ = rx.recv_timeout(DEADLINE.saturating_sub(started.elapsed()));
    drop(handles);
}
