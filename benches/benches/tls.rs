//! `mcptt-tls` over loopback: mutual TLS 1.3 handshakes (ECDSA P-256 certificates on both
//! sides) and SIP REGISTER → 200 OK echo over an established connection, each next to raw
//! `tokio-rustls` doing the same work on the same bytes (the floor: no framing, no parsing,
//! no queues).
//!
//! - `tls_handshake`: one full mutual handshake per iteration; the iteration ends when the
//!   server has verified the client certificate. Elements/s = handshakes/s.
//! - `tls_echo/pipelined32`: the client queues 32 REGISTERs (the 680-byte MCPTT REGISTER of
//!   `crates/sip/tests/data/mcptt/register.sip`), the server answers each with a 200 OK, the
//!   client waits for the 32 answers. Elements/s = messages/s. `mcptt_tls` frames and parses
//!   every message on both sides; `raw_tokio_rustls` echoes 200 OK bytes for every 680 bytes
//!   it reads. `raw_tokio_rustls_framed` is the same raw echo where both ends also frame and
//!   parse every message with `mcptt-sip` inside the connection's task (no queues, no
//!   application hop): the floor for any SIP transport, next to the unframed physical floor.
//! - `mcptt_tls_handler`: the same echo with `Transport::with_handler` on both sides: the
//!   server answers each request on the connection's own task (`try_queue`; the task writes
//!   the answers to one read in one TLS write), the client counts answers there and reports
//!   the last one to the task that sent the window, which ends the iteration (as in every
//!   row, the task that ends an iteration is the one that starts the next: a row whose `go`
//!   had to wake a parked task paid one more cross-thread wake-up per round trip, 79 µs
//!   instead of 28 µs on ping-pong). No event queue; the only hop is that end-of-iteration
//!   signal.
//! - `tls_echo/ping_pong`: one request in flight at a time (latency-bound).
//! - `tls_echo_cpu/*`: the same, timed in CPU time of this process (robust to load).
//! - `tls_frame_parse`: framing and parsing 32 pipelined messages alone, no I/O: the
//!   per-message cost any SIP transport adds to the raw floor.
//!
//! After each echo group the bench prints, for the mcptt-tls rows, the message-rate ratio to
//! the raw floor and to the framed floor (from criterion's estimates of this run), and the
//! **parse bound**: the best message rate any SIP transport that frames and parses every
//! message can reach over this TLS stack, as a measurement of this run:
//!
//! ```text
//! t_bound = t_raw + t_frame_parse_pair / p        (per echoed message)
//! rate_bound = 1 / t_bound  =  1 / (1/rate_raw + t_frame_parse_pair / p)
//! ```
//!
//! `t_raw`: the raw floor's time per echoed message in that group; `t_frame_parse_pair`:
//! framing and parsing one REGISTER plus one 200 OK (each end parses one of them), from this
//! run's `tls_frame_parse` estimates (run before the echo groups; measured in place, best of
//! 30 rounds, when a filter skipped that group); `p`: cores the parse work can spread over
//! (1 for one connection, whose server and client parse one after the other, and for the
//! CPU-time groups, which add all threads' time; 2 for 16 connections on the 2 workers).
//! The line `<group>: parse bound N msg/s = R x the raw floor's message rate` gives it, and
//! each row's line its ratio to it. A row at the bound adds nothing to the raw floor but the
//! parsing itself; the goal 0.9x the raw floor is out of reach where R < 0.9.
//!
//! Every side reads up to 64 KiB at a time (the raw loops' buffer; `read_chunk` for
//! mcptt-tls), so both do the same I/O: one window per read, one write of its answers.
//!
//! The mcptt-tls applications use the batch API: the server takes the events of a read
//! with `Events::recv_many` and answers each on its connection (`queue`, the last one
//! `send`); the client queues its window and sends the last request, like the raw
//! client's single write.
//!
//! Both sides run in one 2-worker tokio runtime in this process.
//!
//! Run: `cargo bench -p mcptt-benches --bench tls -- --warm-up-time 1 --measurement-time 3`
//!
//! Steady comparison on a busy machine (instructions per iteration, see `count_mode`):
//! `TLS_ECHO_GROUP=1conn_pipelined32 TLS_ECHO_COUNT=mcptt_tls_handler:2000 perf stat -e
//! instructions:u target/release/deps/tls-<hash>`, then with 4000 iterations.
#![allow(missing_docs, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group};
use mcptt_sip::{Limits, Message, Response, Status};
use mcptt_tls::rustls::{ClientConfig, ServerConfig};
use mcptt_tls::{
    ClientTlsConfig, ConnectionHandle, Credentials, Destination, Event, Events, ServerTlsConfig,
    Transport, TransportConfig, TransportKind, TrustAnchors,
};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

const REGISTER: &[u8] = include_bytes!("../../crates/sip/tests/data/mcptt/register.sip");
const PIPELINE: usize = 32;

fn leaf(issuer: &Issuer<'_, KeyPair>, dns: &str, uri: &str) -> Credentials {
    let mut params = CertificateParams::new(vec![dns.to_owned()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::URI(uri.try_into().unwrap()));
    let key = KeyPair::generate().unwrap(); // ECDSA P-256
    let cert = params.signed_by(&key, issuer).unwrap();
    Credentials::from_der(
        vec![cert.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .unwrap()
}

/// Server and client configs: TLS 1.3 only, client certificate required.
fn configs() -> (Arc<ServerConfig>, Arc<ClientConfig>) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let anchors = TrustAnchors::from_der([ca_cert.der().clone()]).unwrap();
    let server = ServerTlsConfig::new(
        leaf(&issuer, "sip.example.org", "sip:core@example.org"),
        anchors.clone(),
    )
    .tls13_only(true)
    .build()
    .unwrap();
    let client = ClientTlsConfig::new(anchors)
        .credentials(leaf(&issuer, "ue1.example.org", "sip:alice@example.org"))
        .tls13_only(true)
        .build()
        .unwrap();
    (server, client)
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .unwrap()
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn ok_for(register: &Message) -> Message {
    let Message::Request(req) = register else {
        panic!("REGISTER expected")
    };
    Message::Response(Response::from_request(req, 200))
}

fn server_name() -> ServerName<'static> {
    ServerName::try_from("sip.example.org").unwrap()
}

/// Raw tokio-rustls server: completes mutual handshakes, reports each, then (echo mode)
/// answers every `REGISTER.len()` bytes with `answer`. With `framed`, it instead frames
/// and parses every request with `mcptt-sip` in the connection's task (no queues, no
/// application hop) and answers each parsed request.
async fn raw_server(
    config: Arc<ServerConfig>,
    answer: Bytes,
    framed: bool,
) -> (SocketAddr, mpsc::UnboundedReceiver<()>) {
    let listener = TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            let answer = answer.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = tx.send(());
                let mut buf = vec![0u8; READ_CHUNK];
                let mut pending = 0usize;
                let mut rbuf = BytesMut::new();
                let mut out = Vec::with_capacity(64 * 1024);
                loop {
                    let n = match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    out.clear();
                    if framed {
                        rbuf.extend_from_slice(&buf[..n]);
                        for m in parse_all(&mut rbuf) {
                            assert!(m.is_request());
                            out.extend_from_slice(&answer);
                        }
                    } else {
                        pending += n;
                        while pending >= REGISTER.len() {
                            pending -= REGISTER.len();
                            out.extend_from_slice(&answer);
                        }
                    }
                    if !out.is_empty() && tls.write_all(&out).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, rx)
}

/// Frame and parse every whole message at the start of `rbuf` (the work a SIP transport
/// cannot skip).
fn parse_all(rbuf: &mut BytesMut) -> Vec<Message> {
    let limits = Limits::default();
    let mut v = Vec::new();
    while let Status::Complete(n) = mcptt_sip::frame(rbuf, &limits).unwrap() {
        v.push(Message::parse_with(rbuf.split_to(n).freeze(), &limits).unwrap());
    }
    v
}

/// The bench's transport limits: as the defaults, but reading up to 64 KiB at a time like
/// the raw loops (and no per-address limit for the handshake loop).
fn transport_config() -> TransportConfig {
    let mut c = TransportConfig::default();
    c.max_connections_per_ip = 100_000;
    c.read_chunk = READ_CHUNK;
    c
}

/// Read size of every side (raw buffers and mcptt-tls `read_chunk`).
const READ_CHUNK: usize = 64 * 1024;

async fn mcptt_server(config: Arc<ServerConfig>) -> (Transport, Events, SocketAddr) {
    let (t, e) = Transport::new(transport_config());
    let addr = t.listen_tls(loopback(), config).await.unwrap();
    (t, e, addr)
}

/// A mcptt-tls server answering every request with `ok` from the connection's task.
async fn mcptt_handler_server(config: Arc<ServerConfig>, ok: Message) -> (Transport, SocketAddr) {
    let (t, _events) = Transport::with_handler(
        transport_config(),
        move |conn: &ConnectionHandle, message: Message| {
            assert!(message.is_request());
            conn.try_queue(&ok).unwrap();
        },
    );
    let addr = t.listen_tls(loopback(), config).await.unwrap();
    (t, addr)
}

fn handshakes(c: &mut Criterion) {
    let rt = runtime();
    let (server_cfg, client_cfg) = configs();
    let mut group = c.benchmark_group("tls_handshake");
    group.throughput(Throughput::Elements(1));

    let (_server, mut sev, addr) = rt.block_on(mcptt_server(server_cfg.clone()));
    let (client, _cev) =
        Transport::new(TransportConfig::default().with_client_tls(client_cfg.clone()));
    let dest = Destination::addr(addr, TransportKind::Tls).with_server_name("sip.example.org");
    group.bench_function("mcptt_tls", |b| {
        b.iter(|| {
            rt.block_on(async {
                let conn = client.connect(&dest).await.unwrap();
                loop {
                    match sev.recv().await.unwrap() {
                        Event::Connected(_) => break,
                        Event::Rejected { error, .. } => panic!("{error}"),
                        _ => {}
                    }
                }
                conn.close().await;
            });
        });
    });

    let (raw_addr, mut done) = rt.block_on(raw_server(server_cfg, Bytes::new(), false));
    let connector = tokio_rustls::TlsConnector::from(client_cfg);
    group.bench_function("raw_tokio_rustls", |b| {
        b.iter(|| {
            rt.block_on(async {
                let tcp = TcpStream::connect(raw_addr).await.unwrap();
                tcp.set_nodelay(true).unwrap();
                let mut tls = connector.connect(server_name(), tcp).await.unwrap();
                done.recv().await.unwrap();
                let _ = tls.shutdown().await;
            });
        });
    });
    group.finish();
}

/// Runs `iteration` in a task on the runtime each time the driver says go, and reports
/// back: the client side lives on the worker threads like the server, not on the
/// criterion thread.
fn driver<F, Fut>(
    rt: &Runtime,
    mut iteration: F,
) -> (mpsc::UnboundedSender<()>, mpsc::UnboundedReceiver<()>)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let (go_tx, mut go_rx) = mpsc::unbounded_channel::<()>();
    let (done_tx, done_rx) = mpsc::unbounded_channel::<()>();
    rt.spawn(async move {
        while go_rx.recv().await.is_some() {
            iteration().await;
            done_tx.send(()).unwrap();
        }
    });
    (go_tx, done_rx)
}

fn run(rt: &Runtime, go: &mpsc::UnboundedSender<()>, done: &mut mpsc::UnboundedReceiver<()>) {
    go.send(()).unwrap();
    rt.block_on(done.recv()).unwrap();
}

/// REGISTER → 200 echo; `conns` connections with `window` requests in flight on each.
fn echo_group(c: &mut Criterion, name: &str, conns: usize, window: usize) {
    let rt = runtime();
    let (server_cfg, client_cfg) = configs();
    let register = Message::parse(Bytes::from_static(REGISTER)).unwrap();
    // The raw loops count REGISTER.len() bytes per request: mcptt-tls sends the same bytes.
    assert_eq!(register.encode(), REGISTER);
    let ok = ok_for(&register);
    let ok_bytes = ok.encode();
    let handler_ok = ok.clone();

    // mcptt-tls on both sides; the server application answers on the request's connection.
    let (_server, mut sev, addr) = rt.block_on(mcptt_server(server_cfg.clone()));
    rt.spawn(async move {
        // Take the events of one read at once; answer each on its connection. The last
        // answer of the batch is sent at once (it also writes what is queued on its
        // connection); the others are queued and written by their connection's task in one
        // TLS write per connection.
        let mut batch = Vec::with_capacity(256);
        while sev.recv_many(&mut batch, 256).await > 0 {
            let last = batch.len() - 1;
            for (i, ev) in batch.drain(..).enumerate() {
                if let Event::Message(rx) = ev {
                    if i == last {
                        rx.connection.send(&ok).await.unwrap();
                    } else {
                        rx.connection.queue(&ok).await.unwrap();
                    }
                }
            }
        }
    });
    let (client, cev) = Transport::new(transport_config().with_client_tls(client_cfg.clone()));
    let dest = Destination::addr(addr, TransportKind::Tls).with_server_name("sip.example.org");
    let handles: Vec<_> = (0..conns)
        .map(|_| rt.block_on(client.connect(&dest)).unwrap())
        .collect();
    let hregister = register.clone();
    let cev = Arc::new(tokio::sync::Mutex::new(cev));
    let (mgo, mut mdone) = driver(&rt, move || {
        let handles = handles.clone();
        let register = register.clone();
        let cev = cev.clone();
        async move {
            // Like the raw client's one write of the whole window: queue the window,
            // send its last request (which writes them all).
            for h in &handles {
                for i in 0..window {
                    if i + 1 == window {
                        h.send(&register).await.unwrap();
                    } else {
                        h.queue(&register).await.unwrap();
                    }
                }
            }
            let mut cev = cev.lock().await;
            let mut got = 0;
            let mut batch = Vec::with_capacity(256);
            while got < conns * window {
                assert!(cev.recv_many(&mut batch, 256).await > 0);
                for ev in batch.drain(..) {
                    if let Event::Message(rx) = ev {
                        assert!(!rx.message.is_request());
                        got += 1;
                    }
                }
            }
        }
    });

    // mcptt-tls with handlers on both sides: the server answers on the connection's task;
    // the client's handler counts the answers and reports the last one to the task that
    // sent the window, which reports the iteration (like the other rows, where the task
    // that reports is the one that takes the next `go`: it is still running when `go`
    // comes, so no row pays an extra wake-up of a parked worker per iteration).
    let (_hserver, haddr) = rt.block_on(mcptt_handler_server(server_cfg.clone(), handler_ok));
    let (hfin_tx, mut hfin) = mpsc::unbounded_channel::<()>();
    let (hdone_tx, mut hdone) = mpsc::unbounded_channel::<()>();
    let (hclient, _hcev) = {
        let answers = AtomicUsize::new(0);
        let target = conns * window;
        Transport::with_handler(
            transport_config().with_client_tls(client_cfg.clone()),
            move |_: &ConnectionHandle, message: Message| {
                assert!(!message.is_request());
                if answers.fetch_add(1, Ordering::Relaxed) + 1 == target {
                    answers.store(0, Ordering::Relaxed);
                    hfin_tx.send(()).unwrap();
                }
            },
        )
    };
    let hdest = Destination::addr(haddr, TransportKind::Tls).with_server_name("sip.example.org");
    let hhandles: Vec<_> = (0..conns)
        .map(|_| rt.block_on(hclient.connect(&hdest)).unwrap())
        .collect();
    let (hgo, mut hgo_rx) = mpsc::unbounded_channel::<()>();
    rt.spawn(async move {
        while hgo_rx.recv().await.is_some() {
            for h in &hhandles {
                for i in 0..window {
                    if i + 1 == window {
                        h.send(&hregister).await.unwrap();
                    } else {
                        h.queue(&hregister).await.unwrap();
                    }
                }
            }
            hfin.recv().await.unwrap();
            hdone_tx.send(()).unwrap();
        }
    });

    // Raw tokio-rustls on both sides, same bytes; one task per connection. `framed`: the
    // same, but both ends also frame and parse every message with mcptt-sip.
    let mut raw_iteration = raw_echo(
        &rt,
        &server_cfg,
        &client_cfg,
        &ok_bytes,
        conns,
        window,
        false,
    );
    let mut framed_iteration = raw_echo(
        &rt,
        &server_cfg,
        &client_cfg,
        &ok_bytes,
        conns,
        window,
        true,
    );
    if let Some((row, iterations)) = count_mode() {
        for _ in 0..iterations {
            match row.as_str() {
                "mcptt_tls" => run(&rt, &mgo, &mut mdone),
                "mcptt_tls_handler" => run(&rt, &hgo, &mut hdone),
                "raw_tokio_rustls" => raw_iteration(),
                "raw_tokio_rustls_framed" => framed_iteration(),
                _ => panic!("unknown row {row}"),
            }
        }
        println!("tls_echo/{name}/{row}: {iterations} iterations");
        return;
    }
    let wall = format!("tls_echo/{name}");
    let mut group = c.benchmark_group(&wall);
    group.throughput(Throughput::Elements((conns * window) as u64));
    group.bench_function("mcptt_tls", |b| b.iter(|| run(&rt, &mgo, &mut mdone)));
    group.bench_function("mcptt_tls_handler", |b| {
        b.iter(|| run(&rt, &hgo, &mut hdone));
    });
    group.bench_function("raw_tokio_rustls", |b| b.iter(&mut raw_iteration));
    group.bench_function("raw_tokio_rustls_framed", |b| b.iter(&mut framed_iteration));
    group.finish();
    print_ratios(&wall, conns * window, conns.min(WORKERS));

    // The same work measured in CPU time of this process (all threads) instead of wall
    // time: "time" is CPU per iteration, "thrpt" messages per CPU-second. Robust to other
    // processes competing for the two cores.
    let cpu = format!("tls_echo_cpu/{name}");
    let mut group = c.benchmark_group(&cpu);
    group.throughput(Throughput::Elements((conns * window) as u64));
    group.bench_function("mcptt_tls", |b| {
        b.iter_custom(|iters| {
            let start = process_cpu();
            for _ in 0..iters {
                run(&rt, &mgo, &mut mdone);
            }
            process_cpu() - start
        });
    });
    group.bench_function("mcptt_tls_handler", |b| {
        b.iter_custom(|iters| {
            let start = process_cpu();
            for _ in 0..iters {
                run(&rt, &hgo, &mut hdone);
            }
            process_cpu() - start
        });
    });
    group.bench_function("raw_tokio_rustls", |b| {
        b.iter_custom(|iters| {
            let start = process_cpu();
            for _ in 0..iters {
                raw_iteration();
            }
            process_cpu() - start
        });
    });
    group.bench_function("raw_tokio_rustls_framed", |b| {
        b.iter_custom(|iters| {
            let start = process_cpu();
            for _ in 0..iters {
                framed_iteration();
            }
            process_cpu() - start
        });
    });
    group.finish();
    print_ratios(&cpu, conns * window, 1);
}

/// Print, for each mcptt-tls row of `group`, its message rate over the raw floor's, over
/// the framed floor's and over the parse bound's, from criterion's mean estimates of this
/// run (nothing when they are missing, e.g. under `--test` or a filter).
///
/// The parse bound is the best message rate of any transport that frames and parses every
/// message, measured rather than argued: the raw floor's time per echoed message plus the
/// time to frame and parse one REGISTER and one 200 OK (`frame_parse_pair_ns`), that CPU
/// work spread over `parallel` cores (1 when one chain of messages cannot overlap: one
/// connection, or CPU time). `msgs` = messages per iteration.
fn print_ratios(group: &str, msgs: usize, parallel: usize) {
    let mean = |bench: &str| criterion_mean_ns(group, bench);
    let (Some(raw), Some(framed)) = (mean("raw_tokio_rustls"), mean("raw_tokio_rustls_framed"))
    else {
        return;
    };
    let (pair, source) = frame_parse_pair_ns();
    let raw_msg = raw / msgs as f64;
    let bound_msg = raw_msg + pair / parallel as f64;
    println!(
        "{group}: parse bound {:.0} msg/s = {:.2}x the raw floor's message rate (raw {raw_msg:.0} ns \
         per echoed message + frame+parse of REGISTER and 200 OK {pair:.0} ns{} [{source}])",
        1e9 / bound_msg,
        raw_msg / bound_msg,
        if parallel > 1 {
            format!(" / {parallel} cores")
        } else {
            String::new()
        },
    );
    for row in ["mcptt_tls", "mcptt_tls_handler"] {
        if let Some(t) = mean(row) {
            let t_msg = t / msgs as f64;
            println!(
                "{group}/{row}: {:.2}x the raw floor's message rate, {:.2}x the framed floor's, \
                 {:.2}x the parse bound's",
                raw / t,
                framed / t,
                bound_msg / t_msg
            );
        }
    }
    println!(
        "{group}/raw_tokio_rustls_framed: {:.2}x the raw floor's message rate, {:.2}x the parse \
         bound's",
        raw / framed,
        bound_msg * msgs as f64 / framed
    );
}

/// Worker threads of the bench runtime (see `runtime`).
const WORKERS: usize = 2;

/// When this process started: criterion estimates older than this are another run's.
static STARTED: std::sync::OnceLock<std::time::SystemTime> = std::sync::OnceLock::new();

/// Time to frame and parse one REGISTER plus one 200 OK (the two messages of one echo), in
/// ns: from this run's `tls_frame_parse` estimates (that group runs before the echo
/// groups), else (filtered out) measured here the same way, best of 30 rounds.
fn frame_parse_pair_ns() -> (f64, &'static str) {
    let fresh = |bench: &str| {
        let path = criterion_estimates("tls_frame_parse", bench)?;
        let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
        if modified < *STARTED.get()? {
            return None;
        }
        criterion_mean_ns("tls_frame_parse", bench)
    };
    if let (Some(register), Some(ok)) = (fresh("register"), fresh("ok200")) {
        return (
            (register + ok) / PIPELINE as f64,
            "tls_frame_parse of this run",
        );
    }
    let register = Message::parse(Bytes::from_static(REGISTER)).unwrap();
    let mut pair = 0.0;
    for one in [Bytes::from_static(REGISTER), ok_for(&register).encode()] {
        let wire = one.repeat(PIPELINE);
        let mut best = f64::MAX;
        for _ in 0..30 {
            let start = std::time::Instant::now();
            for _ in 0..20 {
                let mut rbuf = BytesMut::from(&wire[..]);
                assert_eq!(parse_all(&mut rbuf).len(), PIPELINE);
            }
            best = best.min(start.elapsed().as_nanos() as f64 / (20 * PIPELINE) as f64);
        }
        pair += best;
    }
    (pair, "measured here, best of 30 rounds")
}

/// Criterion's mean time per iteration (ns) of `group/bench` in this run's estimates.
fn criterion_mean_ns(group: &str, bench: &str) -> Option<f64> {
    let path = criterion_estimates(group, bench)?;
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    json["mean"]["point_estimate"].as_f64()
}

/// Where criterion keeps the latest estimates of `group/bench`.
fn criterion_estimates(group: &str, bench: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os("CRITERION_HOME") {
        Some(home) => PathBuf::from(home),
        None => {
            let target = match std::env::var_os("CARGO_TARGET_DIR") {
                Some(t) => PathBuf::from(t),
                // target/release/deps/tls-<hash>
                None => std::env::current_exe()
                    .ok()?
                    .ancestors()
                    .nth(3)?
                    .to_path_buf(),
            };
            target.join("criterion")
        }
    };
    Some(
        dir.join(group.replace('/', "_"))
            .join(bench)
            .join("new")
            .join("estimates.json"),
    )
}

/// Raw tokio-rustls echo with `conns` connections and `window` requests in flight on
/// each; returns one iteration (driven from the calling thread, like the mcptt side).
#[allow(clippy::too_many_arguments)]
fn raw_echo<'a>(
    rt: &'a Runtime,
    server_cfg: &Arc<ServerConfig>,
    client_cfg: &Arc<ClientConfig>,
    ok_bytes: &Bytes,
    conns: usize,
    window: usize,
    framed: bool,
) -> impl FnMut() + 'a {
    let (raw_addr, _hs) = rt.block_on(raw_server(server_cfg.clone(), ok_bytes.clone(), framed));
    let connector = tokio_rustls::TlsConnector::from(client_cfg.clone());
    let (done_tx, mut rdone) = mpsc::unbounded_channel::<()>();
    let mut rgo = Vec::new();
    for _ in 0..conns {
        let (go_tx, mut go_rx) = mpsc::unbounded_channel::<()>();
        rgo.push(go_tx);
        let done = done_tx.clone();
        let connector = connector.clone();
        let expect = ok_bytes.len() * window;
        rt.spawn(async move {
            let tcp = TcpStream::connect(raw_addr).await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let mut tls = connector.connect(server_name(), tcp).await.unwrap();
            let wire = REGISTER.repeat(window);
            let mut buf = vec![0u8; READ_CHUNK];
            let mut rbuf = BytesMut::new();
            while go_rx.recv().await.is_some() {
                tls.write_all(&wire).await.unwrap();
                let mut got = 0;
                if framed {
                    while got < window {
                        let n = tls.read(&mut buf).await.unwrap();
                        rbuf.extend_from_slice(&buf[..n]);
                        for m in parse_all(&mut rbuf) {
                            assert!(!m.is_request());
                            got += 1;
                        }
                    }
                } else {
                    while got < expect {
                        got += tls.read(&mut buf).await.unwrap();
                    }
                }
                done.send(()).unwrap();
            }
        });
    }
    move || {
        for g in &rgo {
            g.send(()).unwrap();
        }
        rt.block_on(async {
            for _ in 0..conns {
                rdone.recv().await.unwrap();
            }
        });
    }
}

/// CPU time used so far by all threads of this process (Linux schedstat, nanoseconds).
fn process_cpu() -> Duration {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let path = task.unwrap().path().join("schedstat");
        if let Ok(s) = std::fs::read_to_string(path) {
            ns += s.split_whitespace().next().unwrap().parse::<u64>().unwrap();
        }
    }
    Duration::from_nanos(ns)
}

/// Framing and parsing alone, no I/O: what any SIP transport pays per message on top of
/// the raw floor (read next to `tls_echo`). Each iteration frames and parses 32 pipelined
/// copies of one message out of one buffer, like a connection task does after a read.
fn frame_parse(c: &mut Criterion) {
    let register = Message::parse(Bytes::from_static(REGISTER)).unwrap();
    let ok = ok_for(&register).encode();
    let mut group = c.benchmark_group("tls_frame_parse");
    group.throughput(Throughput::Elements(PIPELINE as u64));
    for (name, one) in [("register", Bytes::from_static(REGISTER)), ("ok200", ok)] {
        let wire = one.repeat(PIPELINE);
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut rbuf = BytesMut::from(&wire[..]);
                assert_eq!(parse_all(&mut rbuf).len(), PIPELINE);
            });
        });
    }
    group.finish();
}

fn echo(c: &mut Criterion) {
    let only = std::env::var("TLS_ECHO_GROUP").ok();
    for (name, conns, window) in [
        ("1conn_pipelined32", 1, PIPELINE),
        ("16conns_pipelined32", 16, PIPELINE),
        ("1conn_ping_pong", 1, 1),
    ] {
        if only.as_deref().is_none_or(|g| g == name) {
            echo_group(c, name, conns, window);
        }
    }
}

/// Counting mode for steady comparisons on a busy machine: with
/// `TLS_ECHO_COUNT=<row>:<iterations>` (and optionally `TLS_ECHO_GROUP=<group>`), run that
/// echo row so many times without criterion, e.g. under `perf stat -e instructions:u` at two
/// iteration counts (the difference is the rows' cost, setup cancels out).
fn count_mode() -> Option<(String, u64)> {
    let spec = std::env::var("TLS_ECHO_COUNT").ok()?;
    let (row, n) = spec.split_once(':')?;
    Some((row.to_owned(), n.parse().ok()?))
}

// frame_parse first: the echo groups' parse bound reads its estimates.
criterion_group!(benches, handshakes, frame_parse, echo);

fn main() {
    STARTED.get_or_init(std::time::SystemTime::now);
    if count_mode().is_some() {
        echo(&mut Criterion::default());
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
