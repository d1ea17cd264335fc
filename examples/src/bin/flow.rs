//! `flow`: the one-command demo of the MCPTT registration and user-authentication flow.
//!
//! Starts IdMS, SIP core and MCPTT server in one process on loopback ports, runs the UEs of a
//! scenario through the 18 steps of DESIGN.md §1 over real TLS and real SIP, prints the ladder
//! and exits 0 only if every step happened in order and the final states are as required.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use clap::Parser;
use mcptt_examples::actors::config::LoginMethod;
use mcptt_examples::cli::LogArgs;
use mcptt_examples::demo::{FlowConfig, run};
use mcptt_examples::ladder::{Detail, mermaid, render_all};
use mcptt_examples::runtime::ServerThread;
use mcptt_examples::scenario::Scenario;
use mcptt_examples::stats::{Spread, rate, summarize};
use mcptt_examples::trace::Trace;

/// Reproduce the MCPTT single-domain registration and user-authentication flow (steps 1–18)
/// with real TLS and real SIP on loopback, and print it as a ladder.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Which scenario to run.
    #[arg(long, value_enum, default_value_t = Scenario::Basic)]
    scenario: Scenario,
    /// Print whole messages instead of first lines and key headers.
    #[arg(long, short)]
    verbose: bool,
    /// Run N UEs concurrently (one user each) instead of the scenario, and report
    /// registrations per second and latency percentiles.
    #[arg(long, value_name = "N")]
    ues: Option<usize>,
    /// With --ues: most UEs in flight at once (each UE's latency is measured from when it
    /// starts; the rest wait for a slot).
    #[arg(long, value_name = "N", default_value_t = 64)]
    concurrency: usize,
    /// With --ues: run the load N times over (fresh servers each round, the floors measured
    /// again after each) and end with the median and range of the figures over the rounds;
    /// single rounds on a shared machine scatter too widely to say much alone.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        requires = "ues",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    rounds: u32,
    /// With --ues: how each user logs in at the IdMS (password: PBKDF2-HMAC-SHA256 at 1,000
    /// iterations; two-factor: password and TOTP; sim: MILENAGE challenge–response).
    #[arg(long, value_enum, default_value_t = LoginMethod::Password)]
    login: LoginMethod,
    /// Also write the run as a Mermaid sequence diagram to FILE.
    #[arg(long, value_name = "FILE")]
    mermaid: Option<PathBuf>,
    /// Access-token lifetime in seconds (the `expiry` scenario defaults to 120 and then moves
    /// the shared clock of the in-process actors past the expiry instead of waiting).
    #[arg(long, value_name = "SECS")]
    token_lifetime: Option<u64>,
    /// Give up waiting for any one answer after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    timeout: u64,
    /// Where the SIP core's registrations and the MCPTT server's service state live:
    /// `memory` (nothing to install) or `redis://HOST:PORT` (a running Redis, e.g. the
    /// Debian package `redis-server`; comma-separated seed nodes for a Redis Cluster).
    #[arg(
        long,
        value_name = "memory|redis://HOST:PORT[,...]",
        default_value = "memory"
    )]
    store: String,
    #[command(flatten)]
    log: LogArgs,
}

/// The goal: the servers' CPU per UE at most this many times the floor.
const GOAL: f64 = 1.5;

/// The headline figures of one load round, kept for the summary over `--rounds`.
#[derive(Debug, Default, Clone, Copy)]
struct RoundFigures {
    /// Registrations (all 18 steps) per second.
    rate: f64,
    /// Latency percentiles of the UEs that completed.
    p50: Duration,
    p99: Duration,
    /// What [`print_cpu`] found (`None` where not measurable).
    cpu: Option<CpuFigures>,
}

/// Server-side CPU per UE and its ratios to the floors, as [`print_cpu`] printed them (`None`
/// where a floor could not be measured).
#[derive(Debug, Default, Clone, Copy)]
struct CpuFigures {
    per_ue: Duration,
    in_memory_floor: Option<f64>,
    socket_floor: Option<f64>,
    socket_floor_and_login: Option<f64>,
    /// The run's CPU over the I/O bound's, and the bound's over the loopback-TCP floor.
    io_bound: Option<f64>,
    io_bound_over_floor: Option<f64>,
}

/// Server-side CPU per UE against the floor (TLS handshakes + ES256 verifications), both
/// measured in this run on this machine; the floor's and the I/O bound's clients keep
/// `in_flight` connections going at once, as the run's UEs did.
fn print_cpu(
    report: &mcptt_examples::demo::FlowReport,
    completed: usize,
    login: LoginMethod,
    in_flight: usize,
) -> Option<CpuFigures> {
    use mcptt_examples::cpu;
    let (Some(sip_side), Some(idms)) = (report.server_cpu, report.idms_cpu) else {
        println!("server-side CPU: not measurable here (no /proc/self/task/*/schedstat)");
        return None;
    };
    let n = u32::try_from(completed.max(1)).unwrap_or(u32::MAX);
    let server = sip_side + idms;
    let per_ue = server / n;
    println!(
        "server-side CPU (SIP core + MCPTT server + IdMS threads): {server:.2?} in total, {per_ue:.2?} per UE (SIP core + MCPTT server {:.2?}, IdMS {:.2?})",
        sip_side / n,
        idms / n
    );
    let mut figures = CpuFigures {
        per_ue,
        ..CpuFigures::default()
    };
    if let Some(split) = report.server_user_system {
        println!(
            "SIP core + MCPTT server thread: {:.0}% of its CPU in the kernel (user {:.2?}, system {:.2?} per UE; from /proc tick counts)",
            100.0 * split.system_share(),
            split.user / n,
            split.system / n
        );
    }
    match cpu::measure_floor(300) {
        Ok(f) => {
            let floor = f.per_ue();
            println!(
                "by part: SIP core + MCPTT server {:.2?} per UE against its floor {:.2?} (mutual-TLS server side + {} ES256 verifications) = {:.2}x; IdMS {:.2?} per UE against its floor {:.2?} (server-auth TLS server side) = {:.2}x",
                sip_side / n,
                f.mutual_tls_server + f.es256_verify * cpu::FLOOR_VERIFICATIONS,
                cpu::FLOOR_VERIFICATIONS,
                (sip_side / n).as_secs_f64()
                    / (f.mutual_tls_server + f.es256_verify * cpu::FLOOR_VERIFICATIONS)
                        .as_secs_f64()
                        .max(f64::MIN_POSITIVE),
                idms / n,
                f.server_auth_tls_server,
                (idms / n).as_secs_f64()
                    / f.server_auth_tls_server
                        .as_secs_f64()
                        .max(f64::MIN_POSITIVE)
            );
            println!(
                "floor per UE: {floor:.2?} = {} ({:.2?} + {:.2?}; a mutual-TLS handshake pair costs {:.2?}) + {} ES256 verifications ({:.2?} each)",
                cpu::FLOOR_HANDSHAKES,
                f.mutual_tls_server,
                f.server_auth_tls_server,
                f.mutual_tls_pair,
                cpu::FLOOR_VERIFICATIONS,
                f.es256_verify
            );
            println!(
                "floor handshakes: full ones (no tickets, no resumption), the flow's own TLS configurations and demo CA (ECDSA P-256 leaves and CA), negotiated {} with {}",
                f.mutual_tls.suite, f.mutual_tls.group
            );
            let w = report.work;
            let each = |x: u64| x as f64 / f64::from(n);
            println!(
                "that work as this run did it, per UE: {:.2} TLS handshakes at the IdMS, {:.2} mutual-TLS handshakes at the SIP core, {:.2} access tokens presented to the MCPTT server (PUBLISH + SUBSCRIBE, each verified); one SIP core - MCPTT server connection for the whole run",
                each(w.idms_handshakes),
                each(w.sip_core_handshakes),
                each(w.tokens_presented)
            );
            let ratio = |f: Duration| per_ue.as_secs_f64() / f.as_secs_f64().max(f64::MIN_POSITIVE);
            figures.in_memory_floor = Some(ratio(floor));
            println!(
                "server-side CPU per UE / floor = {:.2}x (goal <= 1.5x) [login: {}]",
                ratio(floor),
                login_name(login)
            );
            let login_crypto = cpu::measure_login_crypto(100);
            match &login_crypto {
                Ok(c) => {
                    let with_login = floor + c.per_login(login);
                    println!(
                        "floor + the login's own crypto: {with_login:.2?} = floor + {} ({:.2?}) + {} ES256 signatures of the token response ({:.2?} each)",
                        cpu::LoginCrypto::describe(login),
                        c.per_login(login) - c.es256_sign * cpu::LoginCrypto::SIGNATURES,
                        cpu::LoginCrypto::SIGNATURES,
                        c.es256_sign
                    );
                    println!(
                        "server-side CPU per UE / (floor + login crypto) = {:.2}x [login: {}]",
                        ratio(with_login),
                        login_name(login)
                    );
                }
                Err(e) => println!("login crypto: could not be measured: {e}"),
            }
            match cpu::measure_socket_floor(1000, in_flight) {
                Ok(s) => {
                    let socket_floor = s.per_ue(&f);
                    let verifications = f.es256_verify * cpu::FLOOR_VERIFICATIONS;
                    println!(
                        "floor over loopback TCP (a plain tokio-rustls server on its own thread: accept, full handshake, the client's close; that thread's CPU, kernel included, {} connections in flight): {socket_floor:.2?} per UE = {:.2?} mutual-TLS + {:.2?} server-auth TLS + {} ES256 verifications; SIP core + MCPTT server {:.2}x their part, IdMS {:.2}x its part",
                        in_flight,
                        s.mutual_tls_server,
                        s.server_auth_tls_server,
                        cpu::FLOOR_VERIFICATIONS,
                        (sip_side / n).as_secs_f64()
                            / (s.mutual_tls_server + verifications)
                                .as_secs_f64()
                                .max(f64::MIN_POSITIVE),
                        (idms / n).as_secs_f64()
                            / s.server_auth_tls_server
                                .as_secs_f64()
                                .max(f64::MIN_POSITIVE),
                    );
                    figures.socket_floor = Some(ratio(socket_floor));
                    println!(
                        "server-side CPU per UE / loopback-TCP floor = {:.2}x (goal <= 1.5x) [login: {}]",
                        ratio(socket_floor),
                        login_name(login)
                    );
                    if let Ok(c) = &login_crypto {
                        let with_login = ratio(socket_floor + c.per_login(login));
                        figures.socket_floor_and_login = Some(with_login);
                        println!(
                            "server-side CPU per UE / (loopback-TCP floor + login crypto) = {with_login:.2}x [login: {}]",
                            login_name(login)
                        );
                    }
                    let login_crypto = login_crypto.as_ref().ok().map(|c| c.per_login(login));
                    let bound = print_io_bound(
                        sip_side / n,
                        idms / n,
                        &s,
                        &f,
                        login,
                        login_crypto,
                        in_flight,
                    );
                    figures.io_bound = bound.map(|b| b.0);
                    figures.io_bound_over_floor = bound.map(|b| b.1);
                }
                Err(e) => println!("loopback-TCP floor: could not be measured: {e}"),
            }
        }
        Err(e) => println!("floor: could not be measured: {e}"),
    }
    Some(figures)
}

/// The I/O bound ([`mcptt_examples::cpu::IoBound`]: the loopback floor's servers doing the
/// flow's message exchanges too, with no application work) against the loopback floor and
/// the run's per-UE CPU (`sip_side`, `idms`: the run's two threads per UE), and with the
/// login's own crypto (`login_crypto`, at the IdMS) when it was measured; `in_flight` UEs at
/// a time, as the run's. Returns the run's per-UE CPU over the bound's and the bound over
/// the loopback-TCP floor.
fn print_io_bound(
    sip_side: Duration,
    idms: Duration,
    socket: &mcptt_examples::cpu::SocketFloor,
    floor: &mcptt_examples::cpu::Floor,
    login: LoginMethod,
    login_crypto: Option<Duration>,
    in_flight: usize,
) -> Option<(f64, f64)> {
    use mcptt_examples::cpu;
    let messages = cpu::FlowMessages::of(login);
    let bound = match cpu::measure_io_bound(1000, in_flight, &messages, cpu::LinkWrites::Batched) {
        Ok(b) => b,
        Err(e) => {
            println!("I/O bound: could not be measured: {e}");
            return None;
        }
    };
    let x = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(f64::MIN_POSITIVE);
    let socket_sip = socket.mutual_tls_server + floor.es256_verify * cpu::FLOOR_VERIFICATIONS;
    let (sip_bytes, idms_bytes) = messages.bytes_per_ue();
    println!(
        "I/O bound (the loopback floor's servers, same threads and configurations, {} UEs in flight, also doing the flow's messages with no parsing or application work: per UE {} SIP messages over the UE's TLS connection and {} over the SIP core - MCPTT server TLS connection, both ends on the SIP side's thread, {sip_bytes} B of plaintext, + {} ES256 verifications; {} HTTPS exchanges at the IdMS, {idms_bytes} B): {:.2?} per UE = SIP side {:.2?} + IdMS {:.2?}",
        in_flight,
        messages.ue_requests.len() + messages.ue_answers.len(),
        messages.link_requests.len() + messages.link_answers.len(),
        cpu::FLOOR_VERIFICATIONS,
        messages.idms_exchanges.len(),
        bound.per_ue(),
        bound.sip_side,
        bound.idms
    );
    let (link_writes, link_reads) = bound.link_calls_per_ue();
    println!(
        "I/O bound's SIP core - MCPTT server connection: {link_writes:.2} writes and {link_reads:.2} reads per UE, both ends (7 messages per UE, batched as the timing allows)"
    );
    println!(
        "I/O bound / loopback-TCP floor = {:.2}x (SIP side {:.2}x its part, IdMS {:.2}x its part) [login: {}]",
        x(bound.per_ue(), socket.per_ue(floor)),
        x(bound.sip_side, socket_sip),
        x(bound.idms, socket.server_auth_tls_server),
        login_name(login)
    );
    println!(
        "server-side CPU per UE / I/O bound = {:.2}x (SIP core + MCPTT server {:.2}x their part, IdMS {:.2}x its part) [login: {}]",
        x(sip_side + idms, bound.per_ue()),
        x(sip_side, bound.sip_side),
        x(idms, bound.idms),
        login_name(login)
    );
    if let Some(c) = login_crypto {
        println!(
            "server-side CPU per UE / (I/O bound + login crypto) = {:.2}x (IdMS {:.2}x its part) [login: {}]",
            x(sip_side + idms, bound.per_ue() + c),
            x(idms, bound.idms + c),
            login_name(login)
        );
    }
    // The same without batching on the link, to show what the batching is worth.
    match cpu::measure_io_bound(1000, in_flight, &messages, cpu::LinkWrites::PerMessage) {
        Ok(b) => println!(
            "I/O bound with one write per message on the SIP core - MCPTT server connection (no batching across UEs): {:.2?} per UE = SIP side {:.2?} + IdMS {:.2?}; {:.2}x the loopback-TCP floor (SIP side {:.2}x its part); server-side CPU per UE / this = {:.2}x [login: {}]",
            b.per_ue(),
            b.sip_side,
            b.idms,
            x(b.per_ue(), socket.per_ue(floor)),
            x(b.sip_side, socket_sip),
            x(sip_side + idms, b.per_ue()),
            login_name(login)
        ),
        Err(e) => println!("I/O bound with one write per message: could not be measured: {e}"),
    }
    Some((
        x(sip_side + idms, bound.per_ue()),
        x(bound.per_ue(), socket.per_ue(floor)),
    ))
}

/// Runs the flow once (one round of a load run) with a fresh trace, drawing the progress bar
/// of load runs.
fn run_once(
    runtime: &tokio::runtime::Runtime,
    config: &FlowConfig,
    load: bool,
    total: usize,
) -> mcptt_examples::demo::FlowReport {
    let trace = if load {
        Trace::with_limit(total.saturating_mul(40).max(Trace::DEFAULT_LIMIT)).without_text()
    } else {
        Trace::new()
    };
    let done = AtomicUsize::new(0);
    let progress = || {
        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
        if load && (n == total || n.is_multiple_of((total / 50).max(1))) {
            let width = 40;
            let filled = n * width / total.max(1);
            eprint!(
                "\r[{}{}] {n}/{total} UEs",
                "#".repeat(filled),
                " ".repeat(width - filled)
            );
            let _ = std::io::stderr().flush();
        }
    };
    let report = runtime.block_on(run(config, trace, &progress));
    if load {
        eprintln!();
    }
    report
}

/// Prints what one load round did (completions, failures, rate, latency, CPU against the
/// floors) and returns its headline figures.
fn print_load(
    report: &mcptt_examples::demo::FlowReport,
    records: &[mcptt_examples::trace::Seen],
    args: &Args,
    total: usize,
) -> RoundFigures {
    println!(
        "flow --ues {total} --login {}: {} of {total} UEs completed all 18 steps in {:.2?} (servers started in {:.2?})",
        login_name(args.login),
        report.results.iter().filter(|r| r.outcome.is_ok()).count(),
        report.elapsed,
        report.setup_time
    );
    let lat: Vec<Duration> = report
        .results
        .iter()
        .filter(|r| r.outcome.is_ok())
        .filter_map(|r| r.latency)
        .collect();
    let mut failures: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for r in &report.results {
        if let Err(e) = &r.outcome {
            *failures
                .entry(format!("step {}: {}", e.step, e.reason))
                .or_default() += 1;
        }
    }
    for (why, n) in &failures {
        println!("  {n} UE(s) failed at {why}");
    }
    // Where the time goes: median time (since the trace started) at which each step was
    // first seen, over all UEs.
    let mut first: std::collections::HashMap<(String, u8), Duration> =
        std::collections::HashMap::new();
    for r in records {
        if let Some(step) = r.step {
            first.entry((r.ue.clone(), step)).or_insert(r.at);
        }
    }
    let mut line = String::from("median time each step was first seen:");
    for step in 1..=18u8 {
        let times: Vec<Duration> = first
            .iter()
            .filter(|((_, s), _)| *s == step)
            .map(|(_, t)| *t)
            .collect();
        line.push_str(&format!(" {step}:{:.0?}", summarize(&times).p50));
    }
    println!("{line}");
    let s = summarize(&lat);
    let per_second = rate(s.count, report.elapsed);
    println!(
        "rate {per_second:.1} registrations/s (all 18 steps, {} UEs in flight); latency p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        args.concurrency, s.p50, s.p99, s.max
    );
    // As many UEs were in flight as --concurrency allows, or all of them when fewer.
    let in_flight = args.concurrency.min(total).max(1);
    RoundFigures {
        rate: per_second,
        p50: s.p50,
        p99: s.p99,
        cpu: print_cpu(report, s.count, args.login, in_flight),
    }
}

/// The median and range of each headline figure over the rounds of `--rounds N`, one line
/// each (a figure is left out when some round could not measure it).
fn format_rounds(figures: &[RoundFigures], login: LoginMethod) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let n = figures.len();
    let spread = |f: &dyn Fn(&RoundFigures) -> Option<f64>| {
        let values: Vec<f64> = figures.iter().filter_map(f).collect();
        Spread::of(&values).filter(|s| s.count == n)
    };
    let times = |s: Spread| {
        let d = |x: f64| Duration::from_secs_f64(x.max(0.0));
        format!("{:.2?} ({:.2?}-{:.2?})", d(s.median), d(s.min), d(s.max))
    };
    let ratio = |s: Spread| format!("{:.2}x ({:.2}x-{:.2}x)", s.median, s.min, s.max);
    let _ = writeln!(
        out,
        "over {n} rounds [login: {}], median (min-max):",
        login_name(login)
    );
    if let (Some(r), Some(p50), Some(p99)) = (
        spread(&|f| Some(f.rate)),
        spread(&|f| Some(f.p50.as_secs_f64())),
        spread(&|f| Some(f.p99.as_secs_f64())),
    ) {
        let _ = writeln!(
            out,
            "  rate {:.1} registrations/s ({:.1}-{:.1}); latency p50 {}, p99 {}",
            r.median,
            r.min,
            r.max,
            times(p50),
            times(p99)
        );
    }
    let cpu = |f: fn(&CpuFigures) -> Option<f64>| spread(&|r| r.cpu.as_ref().and_then(f));
    if let Some(s) = cpu(|c| Some(c.per_ue.as_secs_f64())) {
        let _ = writeln!(out, "  server-side CPU per UE {}", times(s));
    }
    if let Some(s) = cpu(|c| c.socket_floor) {
        let met = figures
            .iter()
            .filter_map(|f| f.cpu.and_then(|c| c.socket_floor))
            .filter(|&x| x <= GOAL)
            .count();
        let _ = writeln!(
            out,
            "  server-side CPU per UE / loopback-TCP floor = {} (goal <= 1.5x; {met} of {n} rounds at or under it)",
            ratio(s)
        );
    }
    if let Some(s) = cpu(|c| c.socket_floor_and_login) {
        let _ = writeln!(
            out,
            "  server-side CPU per UE / (loopback-TCP floor + login crypto) = {}",
            ratio(s)
        );
    }
    if let Some(s) = cpu(|c| c.io_bound) {
        let _ = writeln!(out, "  server-side CPU per UE / I/O bound = {}", ratio(s));
    }
    if let Some(s) = cpu(|c| c.io_bound_over_floor) {
        let _ = writeln!(out, "  I/O bound / loopback-TCP floor = {}", ratio(s));
    }
    if let Some(s) = cpu(|c| c.in_memory_floor) {
        let _ = writeln!(
            out,
            "  server-side CPU per UE / floor (in memory) = {}",
            ratio(s)
        );
    }
    out
}

/// Where SIP core and MCPTT server run in a load run.
enum ServersRuntime {
    /// A current-thread runtime on its own thread (in-memory stores).
    Thread(ServerThread),
    /// A one-worker multi-thread runtime (stores doing blocking network I/O).
    Pool(tokio::runtime::Runtime),
}

impl ServersRuntime {
    fn handle(&self) -> tokio::runtime::Handle {
        match self {
            Self::Thread(t) => t.handle().clone(),
            Self::Pool(r) => r.handle().clone(),
        }
    }
}

fn login_name(login: LoginMethod) -> &'static str {
    match login {
        LoginMethod::Password => "password",
        LoginMethod::TwoFactor => "two-factor",
        LoginMethod::Sim => "sim",
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    args.log.init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("flow: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let mut config = FlowConfig::new(args.scenario);
    config.load = args.ues;
    config.concurrency = args.concurrency;
    config.login = args.login;
    config.step_timeout = Duration::from_secs(args.timeout);
    config.store.clone_from(&args.store);
    if let Some(secs) = args.token_lifetime {
        config.token_lifetime = Duration::from_secs(secs);
    }
    let total = config.sign_ins().len();
    let load = args.ues.is_some();
    // Load runs: the servers get runtimes of their own, so their CPU time can be told from the
    // UEs': SIP core and MCPTT server on one named thread, the IdMS on another (two server
    // threads, the machine's cores; a second worker per runtime measured 10-20% more CPU per
    // UE in work stealing and parking, for little more throughput). With the in-memory
    // stores SIP core and MCPTT server run on a current-thread runtime, which batches the
    // messages of several connections per write (no LIFO slot; see `ServerThread`); a store
    // doing blocking network I/O (Redis) keeps the one-worker multi-thread runtime, where a
    // blocking call hands the other tasks to another thread.
    let servers_runtime = if !load {
        None
    } else if mcptt_examples::actors::config::is_memory_store(&args.store) {
        match ServerThread::start(mcptt_examples::cpu::SERVER_THREAD_NAME) {
            Ok(r) => Some(ServersRuntime::Thread(r)),
            Err(e) => {
                eprintln!("flow: cannot start the servers' thread: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(mcptt_examples::cpu::SERVER_THREAD_NAME)
            .thread_keep_alive(Duration::from_secs(3600))
            .enable_all()
            .build()
        {
            Ok(r) => Some(ServersRuntime::Pool(r)),
            Err(e) => {
                eprintln!("flow: cannot start the servers' runtime: {e}");
                return ExitCode::from(2);
            }
        }
    };
    // The IdMS on a current-thread runtime too (its PBKDF2 checks go to blocking threads of
    // the same name, counted with it): no wake-ups of a parked worker through the eventfd.
    let idms_runtime = if load {
        match ServerThread::start(mcptt_examples::cpu::IDMS_THREAD_NAME) {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("flow: cannot start the IdMS's runtime: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    config.servers_runtime = servers_runtime.as_ref().map(ServersRuntime::handle);
    config.idms_runtime = idms_runtime.as_ref().map(|r| r.handle().clone());
    let rounds = if load { args.rounds } else { 1 };
    let mut figures = Vec::new();
    let mut last = None;
    for round in 1..=rounds {
        if rounds > 1 {
            println!("round {round} of {rounds}");
        }
        let report = run_once(&runtime, &config, load, total);
        let records = report.trace.snapshot();
        if load {
            figures.push(print_load(&report, &records, &args, total));
        }
        let failed = !report.success();
        last = Some((report, records));
        if failed {
            break;
        }
    }
    if figures.len() > 1 {
        print!("{}", format_rounds(&figures, args.login));
    }
    let Some((report, records)) = last else {
        return ExitCode::FAILURE;
    };
    if !load {
        let detail = if args.verbose {
            Detail::Full
        } else {
            Detail::KeyHeaders
        };
        println!("scenario: {}", args.scenario);
        print!("{}", render_all(&records, detail));
    }

    if let Some(path) = &args.mermaid
        && let Err(e) = std::fs::write(path, mermaid(&records))
    {
        eprintln!("flow: cannot write {}: {e}", path.display());
        return ExitCode::from(2);
    }

    match report.failure() {
        None if report.success() => {
            if !load {
                for r in &report.results {
                    println!(
                        "{}: ok; last NOTIFY: {}",
                        r.label,
                        r.final_state
                            .as_deref()
                            .unwrap_or("none (no NOTIFY for this user)")
                    );
                }
                println!(
                    "every expected step happened, in causal order; final service states as the scenario requires"
                );
            }
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("flow: FAILED: nothing ran");
            ExitCode::FAILURE
        }
        Some((who, failure)) => {
            eprintln!("flow: FAILED at step {} ({who}): {failure}", failure.step);
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rounds_need_ues_and_at_least_one() {
        assert!(Args::try_parse_from(["flow", "--rounds", "2"]).is_err());
        assert!(Args::try_parse_from(["flow", "--ues", "5", "--rounds", "0"]).is_err());
        let one = Args::try_parse_from(["flow", "--ues", "5"]).unwrap();
        assert_eq!(one.rounds, 1);
        let three = Args::try_parse_from(["flow", "--ues", "5", "--rounds", "3"]).unwrap();
        assert_eq!(three.rounds, 3);
        // Without --ues the default of one round asks for nothing.
        assert!(Args::try_parse_from(["flow"]).is_ok());
    }

    fn round(per_ue_us: u64, socket_floor: f64, io_bound: Option<f64>) -> RoundFigures {
        RoundFigures {
            rate: 500.0 + socket_floor * 10.0,
            p50: Duration::from_millis(20),
            p99: Duration::from_millis(40),
            cpu: Some(CpuFigures {
                per_ue: Duration::from_micros(per_ue_us),
                in_memory_floor: Some(socket_floor + 1.0),
                socket_floor: Some(socket_floor),
                socket_floor_and_login: Some(socket_floor - 0.1),
                io_bound,
                io_bound_over_floor: io_bound.map(|b| socket_floor / b),
            }),
        }
    }

    #[test]
    fn the_summary_gives_medians_ranges_and_the_rounds_at_the_goal() {
        let rounds = [
            round(1_400, 1.4, Some(1.3)),
            round(1_600, 1.7, Some(1.4)),
            round(1_500, 1.5, Some(1.2)),
            round(1_550, 1.6, Some(1.5)),
        ];
        let text = format_rounds(&rounds, LoginMethod::Sim);
        assert!(
            text.starts_with("over 4 rounds [login: sim], median (min-max):\n"),
            "{text}"
        );
        assert!(
            text.contains("server-side CPU per UE 1.52ms (1.40ms-1.60ms)\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "loopback-TCP floor = 1.55x (1.40x-1.70x) (goal <= 1.5x; 2 of 4 rounds at or under it)"
            ),
            "{text}"
        );
        assert!(
            text.contains("(loopback-TCP floor + login crypto) = 1.45x (1.30x-1.60x)"),
            "{text}"
        );
        assert!(text.contains("I/O bound = 1.35x (1.20x-1.50x)"), "{text}");
        // 1.4/1.3, 1.7/1.4, 1.5/1.2, 1.6/1.5: median of 1.077, 1.214, 1.25 and 1.067.
        assert!(
            text.contains("I/O bound / loopback-TCP floor = 1.15x (1.07x-1.25x)"),
            "{text}"
        );
        assert!(
            text.contains("floor (in memory) = 2.55x (2.40x-2.70x)"),
            "{text}"
        );
        assert!(
            text.contains("latency p50 20.00ms (20.00ms-20.00ms)"),
            "{text}"
        );

        // A figure that some round could not measure is left out, not summarised over fewer
        // rounds.
        let mut partial = rounds;
        partial[1] = round(1_600, 1.7, None);
        let text = format_rounds(&partial, LoginMethod::Sim);
        assert!(!text.contains("I/O bound"), "{text}");
        assert!(text.contains("loopback-TCP floor = 1.55x"), "{text}");
        partial[2].cpu = None;
        let text = format_rounds(&partial, LoginMethod::Sim);
        assert!(!text.contains("server-side CPU"), "{text}");
        assert!(text.contains("rate "), "{text}");
    }
}
