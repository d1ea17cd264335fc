//! Server-side CPU accounting for `flow --ues N`: the CPU time of the server threads (SIP
//! core, MCPTT server and IdMS run on their own runtime, whose threads carry
//! [`SERVER_THREAD_NAME`]), read from `/proc/self/task/*/schedstat`, and the floor it is
//! compared with: the CPU cost of the TLS handshakes and ES256 token verifications a
//! registration cannot do without, timed on the same machine in the same run.
//!
//! The floor per UE ([`Floor::per_ue`]) is exactly:
//! - the server side of one mutual-TLS handshake (the SIP core accepting the UE): the flow's
//!   own configurations ([`crate::actors::net`]: `mcptt-tls`, rustls with the ring provider,
//!   TLS 1.3, X25519, no session tickets), certificates from the same demo CA kind (ECDSA
//!   P-256 CA and leaves), so the server signs once (P-256) and verifies twice (the client
//!   certificate's chain and its CertificateVerify);
//! - the server side of one server-authenticated TLS handshake (the UE's one HTTPS
//!   connection to the IdMS, the IdMS's own TLS configuration);
//! - [`FLOOR_VERIFICATIONS`] ES256 verifications (ring, P-256 SHA-256) of a token-sized
//!   input: the access token the MCPTT server checks in the PUBLISH and in the SUBSCRIBE.
//!
//! Every counted handshake is a full one (checked; the floor's clients never resume), as
//! every UE's is. The handshakes run in memory (no sockets, no runtime), one after the
//! other on one thread;
//! the server's share of each is split off by the wall-clock ratio of the server's calls.
//! The SIP core – MCPTT server connection is one for the whole run, so it is not counted.
//! [`SocketFloor`] times the same handshakes as a plain tokio-rustls server pays them over
//! loopback TCP (accept, handshake, close; kernel time included), which `flow` prints next
//! to the in-memory floor, and [`IoBound`] the same servers doing the flow's message
//! exchanges as well ([`FlowMessages`]) with no application work: what any implementation
//! on this stack pays for the flow's socket traffic.
//! Left out (the login's own work, printed apart as [`LoginCrypto`]): the password, TOTP or
//! MILENAGE check and the two ES256 signatures of the token response. `flow` prints what
//! the run did of the counted work ([`crate::demo::FloorWork`]) next to the floor.
//!
//! ```
//! let floor = mcptt_examples::cpu::measure_floor(2).unwrap();
//! assert!(floor.mutual_tls_server > std::time::Duration::ZERO);
//! assert!(floor.per_ue() > floor.es256_verify);
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcptt_tls::ClientTlsConfig;
use ring::signature::{ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, KeyPair as _};

use crate::actors::ActorError;
use crate::cli::TlsMaterial;
use crate::pki::DemoPki;

/// Name of the threads of the servers' runtime in `flow --ues N` (`comm` is cut at 15 bytes).
pub const SERVER_THREAD_NAME: &str = "mcptt-servers";

/// Name of the IdMS's threads in `flow --ues N` (its own runtime, so its share is known).
pub const IDMS_THREAD_NAME: &str = "mcptt-idms";

/// Server-side TLS handshakes a registration needs: one mutual-TLS connection UE → SIP core,
/// one server-authenticated HTTPS connection UE → IdMS.
pub const FLOOR_HANDSHAKES: &str = "1 mutual-TLS (SIP core) + 1 server-auth TLS (IdMS)";
/// ES256 access-token verifications a registration needs: the MCPTT server checks the token
/// carried by the PUBLISH (step 8) and by the SUBSCRIBE (step 12).
pub const FLOOR_VERIFICATIONS: u32 = 2;

/// Total CPU time (user + system, as scheduled) of this process's threads whose name is
/// `name`, from `/proc/self/task/*/schedstat`; `None` where that is not readable (non-Linux).
#[must_use]
pub fn threads_cpu(name: &str) -> Option<Duration> {
    let total = named_threads(name, "schedstat", |stat| {
        stat.split_whitespace().next()?.parse::<u64>().ok()
    })?
    .into_iter()
    .fold(0u64, u64::saturating_add);
    Some(Duration::from_nanos(total))
}

/// For each of this process's threads named `name`, `parse` applied to its
/// `/proc/self/task/*/<file>` (threads whose file cannot be read or parsed are skipped);
/// `None` where `/proc/self/task` is not readable (non-Linux) or no such thread was read.
fn named_threads<T>(name: &str, file: &str, parse: impl Fn(&str) -> Option<T>) -> Option<Vec<T>> {
    let mut found = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let path = task.path();
        let Ok(comm) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        if comm.trim_end() != name {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(path.join(file)) else {
            continue;
        };
        if let Some(value) = parse(&text) {
            found.push(value);
        }
    }
    (!found.is_empty()).then_some(found)
}

/// User-space and kernel CPU time of some threads (see [`threads_user_system`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserSystem {
    /// Time spent in user space.
    pub user: Duration,
    /// Time spent in the kernel (system calls, and the network stack work they do: on
    /// loopback the sender's thread also runs the receiving side's TCP processing).
    pub system: Duration,
}

impl UserSystem {
    /// `self - earlier`, field by field (zero where a field went down).
    #[must_use]
    pub fn since(self, earlier: Self) -> Self {
        Self {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }

    /// The kernel's share of the total (0 when nothing was counted).
    #[must_use]
    pub fn system_share(&self) -> f64 {
        let total = (self.user + self.system).as_secs_f64();
        if total > 0.0 {
            self.system.as_secs_f64() / total
        } else {
            0.0
        }
    }
}

/// User and system CPU time of this process's threads named `name`, from the `utime` and
/// `stime` fields of `/proc/self/task/*/stat`. The kernel counts these in clock ticks
/// (`USER_HZ`, 100 per second on Linux) by sampling, so they give the split of a long
/// run's CPU time, not exact figures; [`threads_cpu`] is the precise total. `None` where
/// that is not readable.
#[must_use]
pub fn threads_user_system(name: &str) -> Option<UserSystem> {
    const TICK: Duration = Duration::from_millis(10);
    let total = named_threads(name, "stat", stat_ticks)?.into_iter().fold(
        UserSystem::default(),
        |mut total, (user, system)| {
            total.user += TICK * user;
            total.system += TICK * system;
            total
        },
    );
    Some(total)
}

/// The `utime` and `stime` ticks of a `/proc/*/stat` line.
fn stat_ticks(stat: &str) -> Option<(u32, u32)> {
    // After the parenthesised command name (which may hold spaces and parentheses): state,
    // ppid, pgrp, session, tty_nr, tpgid, flags, minflt, cminflt, majflt, cmajflt, utime,
    // stime.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let user = fields.next()?.parse().ok()?;
    let system = fields.next()?.parse().ok()?;
    Some((user, system))
}

/// CPU time the calling thread has used, from `/proc/thread-self/schedstat` (updated by the
/// scheduler at ticks and switches, so only batches of many operations are timed with it).
#[must_use]
pub fn thread_cpu() -> Option<Duration> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse::<u64>()
        .ok()
        .map(Duration::from_nanos)
}

/// The floor's parts, each the mean CPU cost of one operation on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Floor {
    /// Server side of a mutual-TLS handshake (SIP core accepting a UE).
    pub mutual_tls_server: Duration,
    /// Both sides of a mutual-TLS handshake (the "pair").
    pub mutual_tls_pair: Duration,
    /// Server side of a server-authenticated TLS handshake (IdMS accepting a UE).
    pub server_auth_tls_server: Duration,
    /// One ES256 (ECDSA P-256 SHA-256) signature verification over a token-sized input.
    pub es256_verify: Duration,
    /// What the mutual-TLS handshakes negotiated.
    pub mutual_tls: Negotiated,
}

impl Floor {
    /// Server-side floor per UE: [`FLOOR_HANDSHAKES`] plus [`FLOOR_VERIFICATIONS`] verifies.
    #[must_use]
    pub fn per_ue(&self) -> Duration {
        self.mutual_tls_server
            + self.server_auth_tls_server
            + self.es256_verify * FLOOR_VERIFICATIONS
    }
}

fn err(what: &str, e: impl std::fmt::Display) -> ActorError {
    ActorError::Config(format!("floor measurement, {what}: {e}"))
}

/// What a floor handshake negotiated: the flow's handshakes use the same configurations
/// (the same `mcptt-tls` builders and demo CA), so they negotiate the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The cipher suite (`TLS13_AES_256_GCM_SHA384`: the transcript hash and key schedule
    /// run on SHA-384).
    pub suite: &'static str,
    /// The key-exchange group (`X25519`).
    pub group: &'static str,
}

/// Runs one in-memory handshake; returns (server-side time, total time, what it negotiated).
fn handshake(
    server: &Arc<rustls::ServerConfig>,
    client: &Arc<rustls::ClientConfig>,
) -> Result<(Duration, Duration, Negotiated), ActorError> {
    let name =
        rustls_pki_types::ServerName::try_from("localhost").map_err(|e| err("server name", e))?;
    let start = Instant::now();
    let mut c = rustls::ClientConnection::new(client.clone(), name.to_owned())
        .map_err(|e| err("client", e))?;
    let mut server_time = Duration::ZERO;
    let t = Instant::now();
    let mut s = rustls::ServerConnection::new(server.clone()).map_err(|e| err("server", e))?;
    server_time += t.elapsed();
    let mut buf = Vec::with_capacity(16 * 1024);
    for _ in 0..16 {
        if !c.is_handshaking() && !s.is_handshaking() {
            let total = start.elapsed();
            // Full handshakes only, as every UE of the flow does: a resumed one skips the
            // certificate signatures and checks.
            let negotiated = Negotiated {
                suite: s
                    .negotiated_cipher_suite()
                    .and_then(|c| c.suite().as_str())
                    .unwrap_or("unknown"),
                group: s
                    .negotiated_key_exchange_group()
                    .and_then(|g| g.name().as_str())
                    .unwrap_or("none"),
            };
            return match s.handshake_kind() {
                Some(rustls::HandshakeKind::Full) => Ok((server_time, total, negotiated)),
                other => Err(err("handshake", format!("not a full handshake: {other:?}"))),
            };
        }
        buf.clear();
        while c.wants_write() {
            c.write_tls(&mut buf).map_err(|e| err("client write", e))?;
        }
        let t = Instant::now();
        let mut rd = buf.as_slice();
        while !rd.is_empty() {
            s.read_tls(&mut rd).map_err(|e| err("server read", e))?;
            s.process_new_packets().map_err(|e| err("server", e))?;
        }
        buf.clear();
        while s.wants_write() {
            s.write_tls(&mut buf).map_err(|e| err("server write", e))?;
        }
        server_time += t.elapsed();
        let mut rd = buf.as_slice();
        while !rd.is_empty() {
            c.read_tls(&mut rd).map_err(|e| err("client read", e))?;
            c.process_new_packets().map_err(|e| err("client", e))?;
        }
    }
    Err(err("handshake", "did not complete"))
}

/// Measures the floor's parts, `rounds` times each (after one warm-up), with the same demo
/// PKI, TLS configurations (`mcptt-tls`, ring provider) and key type the flow uses.
///
/// # Errors
/// When the demo PKI or a TLS configuration cannot be built, or a handshake fails.
pub fn measure_floor(rounds: u32) -> Result<Floor, ActorError> {
    let rounds = rounds.max(1);
    let (mutual_server, mutual_client, idms_server, plain_client) = floor_configs()?;
    // Each batch is timed in CPU time of this thread (other processes may share the cores);
    // the server's share of a handshake is split off by the wall-clock ratio of its calls.
    let batch = |server: &Arc<rustls::ServerConfig>,
                 client: &Arc<rustls::ClientConfig>|
     -> Result<(Duration, Duration, Negotiated), ActorError> {
        let (_, _, negotiated) = handshake(server, client)?;
        let (mut server_wall, mut total_wall) = (Duration::ZERO, Duration::ZERO);
        let cpu0 = thread_cpu();
        let wall0 = Instant::now();
        for _ in 0..rounds {
            let (s, t, _) = handshake(server, client)?;
            server_wall += s;
            total_wall += t;
        }
        let cpu = match (cpu0, thread_cpu()) {
            (Some(a), Some(b)) if b > a => b - a,
            _ => wall0.elapsed(),
        };
        let pair = cpu / rounds;
        let share = server_wall.as_secs_f64() / total_wall.as_secs_f64().max(f64::MIN_POSITIVE);
        Ok((pair.mul_f64(share.clamp(0.0, 1.0)), pair, negotiated))
    };
    let mutual = batch(&mutual_server, &mutual_client)?;
    let plain = batch(&idms_server, &plain_client)?.0;
    // ES256 over a token-sized signing input (header.payload of a ~700-byte access token).
    let check = Es256Check::new()?;
    let verify_rounds = rounds.saturating_mul(4);
    let cpu0 = thread_cpu();
    let start = Instant::now();
    for _ in 0..verify_rounds {
        check.verify().map_err(|e| err("ES256 verify", e))?;
    }
    let spent = match (cpu0, thread_cpu()) {
        (Some(a), Some(b)) if b > a => b - a,
        _ => start.elapsed(),
    };
    Ok(Floor {
        mutual_tls_server: mutual.0,
        mutual_tls_pair: mutual.1,
        server_auth_tls_server: plain,
        es256_verify: spent / verify_rounds,
        mutual_tls: mutual.2,
    })
}

/// The floor's TLS configurations: the SIP core's (mutual) and the IdMS's server sides, and
/// clients that never resume, with the flow's own builders and a demo CA of the same kind.
#[allow(clippy::type_complexity)]
fn floor_configs() -> Result<
    (
        Arc<rustls::ServerConfig>,
        Arc<rustls::ClientConfig>,
        Arc<rustls::ServerConfig>,
        Arc<rustls::ClientConfig>,
    ),
    ActorError,
> {
    let pki = DemoPki::generate()?;
    let server_tls = TlsMaterial {
        identity: pki.issue_server(crate::actors::SIP_CORE_URI)?,
        roots: vec![pki.ca_cert()],
    };
    let ue_tls = TlsMaterial {
        identity: pki.issue_ue("sip:ue1@example.com")?,
        roots: vec![pki.ca_cert()],
    };
    // The clients never resume: each UE of the flow is a new client with a new
    // configuration, so every one of its handshakes is a full one. (Until the servers
    // stopped sending session tickets, this loop's one client resumed from the second round
    // on, and the floor counted resumed handshakes, about half the CPU of full ones.)
    let fresh = |c: Arc<rustls::ClientConfig>| {
        let mut c = Arc::unwrap_or_clone(c);
        c.resumption = rustls::client::Resumption::disabled();
        Arc::new(c)
    };
    let mutual_server = crate::actors::net::server_config(&server_tls)?;
    let mutual_client = fresh(crate::actors::net::client_config(&ue_tls)?);
    let idms_server =
        crate::idm::server::tls_config(server_tls.identity.chain(), server_tls.identity.key())
            .map_err(|e| err("IdMS TLS configuration", e))?;
    let plain_client = fresh(
        ClientTlsConfig::new(crate::actors::net::anchors(&ue_tls)?)
            .alpn(vec![b"http/1.1".to_vec()])
            .build()
            .map_err(|e| err("client TLS configuration", e))?,
    );
    Ok((mutual_server, mutual_client, idms_server, plain_client))
}

/// CPU time of `n` runs of `f` on this thread (wall time where per-thread accounting is not
/// readable), divided by `n`.
fn per_run<E>(n: u32, mut f: impl FnMut() -> Result<(), E>) -> Result<Duration, E> {
    let n = n.max(1);
    f()?;
    let cpu0 = thread_cpu();
    let start = Instant::now();
    for _ in 0..n {
        f()?;
    }
    let spent = match (cpu0, thread_cpu()) {
        (Some(a), Some(b)) if b > a => b - a,
        _ => start.elapsed(),
    };
    Ok(spent / n)
}

/// The login's own crypto, which the floor leaves out: what the IdMS must compute for one
/// login with each method, and the two ES256 signatures of the token response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginCrypto {
    /// One PBKDF2-HMAC-SHA256 password check at [`crate::actors::login::FLOW_ITERATIONS`].
    pub pbkdf2_verify: Duration,
    /// One TOTP check (HMAC-SHA1 over the window of three steps).
    pub totp_verify: Duration,
    /// One MILENAGE authentication vector (f1–f5, AES-128) for a SIM challenge.
    pub milenage_vector: Duration,
    /// One ES256 signature (the IdMS signs an access token and an ID token per login).
    pub es256_sign: Duration,
}

impl LoginCrypto {
    /// Signatures per token response (access token and ID token).
    pub const SIGNATURES: u32 = 2;

    /// The login crypto of one login with `method`, token signatures included.
    #[must_use]
    pub fn per_login(&self, method: crate::actors::config::LoginMethod) -> Duration {
        use crate::actors::config::LoginMethod;
        let check = match method {
            LoginMethod::Password => self.pbkdf2_verify,
            LoginMethod::TwoFactor => self.pbkdf2_verify + self.totp_verify,
            LoginMethod::Sim => self.milenage_vector,
        };
        check + self.es256_sign * Self::SIGNATURES
    }

    /// What [`LoginCrypto::per_login`] counts for `method`, for people.
    #[must_use]
    pub fn describe(method: crate::actors::config::LoginMethod) -> &'static str {
        use crate::actors::config::LoginMethod;
        match method {
            LoginMethod::Password => "1 PBKDF2-HMAC-SHA256 check (1,000 iterations)",
            LoginMethod::TwoFactor => {
                "1 PBKDF2-HMAC-SHA256 check (1,000 iterations) + 1 TOTP check"
            }
            LoginMethod::Sim => "1 MILENAGE authentication vector",
        }
    }
}

/// Measures [`LoginCrypto`] with the same code the IdMS runs (`mcptt-idm`, `mcptt-token`).
///
/// # Errors
/// When a key or hash cannot be made.
pub fn measure_login_crypto(rounds: u32) -> Result<LoginCrypto, ActorError> {
    use mcptt_idm::milenage::{AuthVector, Milenage};
    let rounds = rounds.max(1);
    let hash = mcptt_idm::password::PasswordHash::derive(
        "user1-password",
        b"sixteen byte salt",
        crate::actors::login::FLOW_ITERATIONS,
    )
    .map_err(|e| err("PBKDF2", e))?;
    let pbkdf2_verify = per_run(rounds, || {
        hash.verify(std::hint::black_box("user1-password"))
            .then_some(())
            .ok_or_else(|| err("PBKDF2", "check failed"))
    })?;
    let totp = crate::idm::demo::demo_totp();
    let now = 1_800_000_000u64;
    let code = totp.code_at(now).map_err(|e| err("TOTP", e))?;
    let totp_verify = per_run(rounds.saturating_mul(4), || {
        totp.verify(std::hint::black_box(&code), now, None)
            .map(|_| ())
            .map_err(|e| err("TOTP", e))
    })?;
    let milenage = Milenage::new(
        crate::idm::demo::demo_sim_key("user1"),
        crate::idm::demo::DEMO_OPC,
    );
    let milenage_vector = per_run(rounds.saturating_mul(4), || {
        std::hint::black_box(AuthVector::generate(
            &milenage,
            std::hint::black_box([7; 16]),
            32,
            [0x80, 0],
        ));
        Ok::<(), ActorError>(())
    })?;
    let rng = ring::rand::SystemRandom::new();
    let key = mcptt_token::SigningKey::generate(mcptt_token::Algorithm::Es256, "cpu", &rng)
        .map_err(|e| err("ES256 key", e))?;
    let input = vec![b'a'; 700];
    let es256_sign = per_run(rounds.saturating_mul(4), || {
        key.sign(std::hint::black_box(&input), &rng)
            .map(|_| ())
            .map_err(|e| err("ES256 sign", e))
    })?;
    Ok(LoginCrypto {
        pbkdf2_verify,
        totp_verify,
        milenage_vector,
        es256_sign,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn this_thread_is_counted_under_its_name() {
        // Busy until this thread has used 10 ms of CPU by its own account (however loaded the
        // machine is), then read the per-name total, which must include all of it.
        let t = std::thread::Builder::new()
            .name("cpu-test-busy".into())
            .spawn(|| {
                let want = Duration::from_millis(10);
                let deadline = Instant::now() + Duration::from_secs(30);
                let mut x = 0u64;
                while thread_cpu().unwrap() < want && Instant::now() < deadline {
                    for _ in 0..10_000 {
                        x = x.wrapping_add(std::hint::black_box(1));
                    }
                }
                let own = thread_cpu().unwrap();
                let cpu = threads_cpu("cpu-test-busy");
                (x, own, cpu)
            })
            .unwrap();
        let (_, own, cpu) = t.join().unwrap();
        assert!(own >= Duration::from_millis(10), "{own:?}");
        assert!(cpu.unwrap() >= own, "{cpu:?} < {own:?}");
        assert_eq!(threads_cpu("no-such-thread-name"), None);
    }

    #[test]
    fn user_and_system_ticks_are_read_per_thread_name() {
        assert_eq!(
            stat_ticks("42 (a (b) c) R 1 2 3 4 5 6 7 8 9 10 250 17 0 0 20 0 1 0"),
            Some((250, 17))
        );
        assert_eq!(stat_ticks("42 (x) R 1 2"), None);
        // A thread busy in user space for 100 ms of its own CPU time is charged mostly user
        // ticks (the kernel samples at 100 Hz, so a few ticks either way).
        let t = std::thread::Builder::new()
            .name("cpu-test-user".into())
            .spawn(|| {
                let deadline = Instant::now() + Duration::from_secs(30);
                let mut x = 0u64;
                while thread_cpu().unwrap() < Duration::from_millis(100)
                    && Instant::now() < deadline
                {
                    for _ in 0..10_000 {
                        x = x.wrapping_add(std::hint::black_box(1));
                    }
                }
                (x, threads_user_system("cpu-test-user"))
            })
            .unwrap();
        let (_, split) = t.join().unwrap();
        let split = split.unwrap();
        assert!(split.user >= Duration::from_millis(30), "{split:?}");
        assert!(split.user > split.system, "{split:?}");
        assert!(split.system_share() < 0.5, "{split:?}");
        assert_eq!(threads_user_system("no-such-thread-name"), None);
    }

    #[test]
    fn the_floor_counts_full_handshakes_only() {
        let pki = DemoPki::generate().unwrap();
        let tls = |identity| TlsMaterial {
            identity,
            roots: vec![pki.ca_cert()],
        };
        let server = tls(pki.issue_server(crate::actors::SIP_CORE_URI).unwrap());
        let ue = tls(pki.issue_ue("sip:ue1@example.com").unwrap());
        // A server that sends session tickets and a client that keeps them: the second
        // handshake resumes, and the floor refuses to count it.
        let mut with_tickets = (*crate::actors::net::server_config(&server).unwrap()).clone();
        with_tickets.send_tls13_tickets = 2;
        let with_tickets = Arc::new(with_tickets);
        let resuming = crate::actors::net::client_config(&ue).unwrap();
        assert!(handshake(&with_tickets, &resuming).is_ok());
        let resumed = handshake(&with_tickets, &resuming).unwrap_err();
        assert!(
            resumed.to_string().contains("not a full handshake"),
            "{resumed}"
        );
        // The floor's own measurement: full handshakes throughout.
        let f = measure_floor(3).unwrap();
        assert!(f.mutual_tls_pair > f.mutual_tls_server);
        // The flow's configurations negotiate TLS 1.3 with X25519 (ring's first group).
        assert!(
            f.mutual_tls.suite.starts_with("TLS13_"),
            "{:?}",
            f.mutual_tls
        );
        assert_eq!(f.mutual_tls.group, "X25519");
    }

    #[test]
    fn the_io_bound_runs_the_flows_messages_on_the_floors_servers() {
        use crate::actors::config::LoginMethod;
        // The same servers, configurations and rounds as the socket floor; the bound adds
        // the flow's messages. (That it costs more CPU than the floor is a measurement, made
        // by every `flow --ues` run, not asserted here: on a loaded machine the two timings
        // of 40 rounds can come out in either order.)
        let rounds = 40;
        let messages = FlowMessages::of(LoginMethod::Sim);
        let bound = measure_io_bound(rounds, 16, &messages, LinkWrites::Batched).unwrap();
        assert_eq!(bound.rounds, rounds);
        assert!(
            bound.sip_side > Duration::ZERO && bound.idms > Duration::ZERO,
            "{bound:?}"
        );
        // Batched or not, the link carries the protocol's 7 messages per UE; one write each
        // without batching.
        let (writes, _) = bound.link_calls_per_ue();
        assert!(writes > 0.0 && writes <= 7.0, "{bound:?}");
        let unbatched = measure_io_bound(8, 16, &messages, LinkWrites::PerMessage).unwrap();
        assert_eq!(unbatched.link_writes, 7 * 8, "{unbatched:?}");
        // A SIM login has one exchange more at the IdMS than a password login.
        let password = FlowMessages::of(LoginMethod::Password);
        assert_eq!(messages.idms_exchanges.len(), 4);
        assert_eq!(password.idms_exchanges.len(), 3);
        assert_eq!(messages.bytes_per_ue().0, password.bytes_per_ue().0);
    }

    #[test]
    fn the_clients_keep_the_asked_number_in_flight() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        // Each client holds its slot across a few yields, so the slots fill up: the most at
        // once is exactly `in_flight` (the warm-up clients run one by one first).
        for in_flight in [1, 3, 20] {
            let now = Arc::new(AtomicUsize::new(0));
            let most = Arc::new(AtomicUsize::new(0));
            let runs = Arc::new(AtomicUsize::new(0));
            let (n, m, r) = (now.clone(), most.clone(), runs.clone());
            run_clients(40, in_flight, move || {
                let (now, most, runs) = (n.clone(), m.clone(), r.clone());
                async move {
                    most.fetch_max(now.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                    for _ in 0..4 {
                        tokio::task::yield_now().await;
                    }
                    now.fetch_sub(1, Ordering::SeqCst);
                    runs.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }
            })
            .unwrap();
            assert_eq!(most.load(Ordering::SeqCst), in_flight);
            assert_eq!(runs.load(Ordering::SeqCst), 40 + IO_BOUND_WARM_UP as usize);
        }
    }

    #[test]
    fn the_floor_server_sends_its_close_notify() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let (server, client, _, _) = floor_configs().unwrap();
        let rt = server_runtime().unwrap();
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let acceptor = tokio_rustls::TlsAcceptor::from(server);
            let served = tokio::spawn(async move {
                let (tcp, _) = listener.accept().await.unwrap();
                floor_connection(&acceptor, tcp).await
            });
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
            let mut tls = tokio_rustls::TlsConnector::from(client)
                .connect(name, tcp)
                .await
                .unwrap();
            tls.shutdown().await.unwrap();
            // A clean end: the server's close_notify. Without it rustls reports an
            // unexpected end of file.
            let mut rest = Vec::new();
            assert_eq!(tls.read_to_end(&mut rest).await.unwrap(), 0);
            assert_eq!(served.await.unwrap(), Ok(()));
        });
    }

    #[test]
    fn login_crypto_orders_the_methods() {
        use crate::actors::config::LoginMethod;
        let c = measure_login_crypto(3).unwrap();
        assert!(c.es256_sign > Duration::ZERO && c.milenage_vector > Duration::ZERO);
        assert!(c.per_login(LoginMethod::TwoFactor) > c.per_login(LoginMethod::Password));
        assert_eq!(
            c.per_login(LoginMethod::Sim),
            c.milenage_vector + c.es256_sign * 2
        );
    }
}

/// The handshakes of the floor as a TLS server really pays them: over loopback TCP, with
/// a plain `tokio-rustls` server (no SIP, no HTTP) on a current-thread runtime of its own
/// thread. Each is the server thread's CPU time (user and kernel, from its schedstat) per
/// connection: accept, the full handshake, reading the client's close_notify, sending its own
/// (RFC 8446 §6.1 asks it of each side, and the flow's servers send it), close.
///
/// The in-memory [`Floor`] leaves that socket work out; no server can. Both are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketFloor {
    /// Server side of a mutual-TLS handshake over loopback TCP (SIP core accepting a UE).
    pub mutual_tls_server: Duration,
    /// Server side of a server-authenticated TLS handshake over loopback TCP (IdMS).
    pub server_auth_tls_server: Duration,
}

impl SocketFloor {
    /// Server-side floor per UE with these handshakes: [`FLOOR_HANDSHAKES`] over sockets
    /// plus the in-memory floor's [`FLOOR_VERIFICATIONS`] ES256 verifications.
    #[must_use]
    pub fn per_ue(&self, floor: &Floor) -> Duration {
        self.mutual_tls_server
            + self.server_auth_tls_server
            + floor.es256_verify * FLOOR_VERIFICATIONS
    }
}

/// Measure [`SocketFloor`]: `rounds` connections for each kind of handshake (after a few
/// unmeasured ones), `in_flight` at a time (`flow` passes its `--concurrency`, so the floor
/// sees the load the flow's servers saw), with the flow's configurations.
///
/// ```
/// let floor = mcptt_examples::cpu::measure_socket_floor(4, 2).unwrap();
/// assert!(floor.mutual_tls_server > std::time::Duration::ZERO);
/// assert!(floor.server_auth_tls_server > std::time::Duration::ZERO);
/// ```
///
/// # Errors
/// A configuration, socket or handshake failure, or a handshake that was not a full one.
pub fn measure_socket_floor(rounds: u32, in_flight: usize) -> Result<SocketFloor, ActorError> {
    let rounds = rounds.max(1);
    let (mutual_server, mutual_client, idms_server, plain_client) = floor_configs()?;
    Ok(SocketFloor {
        mutual_tls_server: socket_handshakes(&mutual_server, &mutual_client, rounds, in_flight)?,
        server_auth_tls_server: socket_handshakes(&idms_server, &plain_client, rounds, in_flight)?,
    })
}

/// Server-thread CPU per connection of a plain tokio-rustls server on loopback.
fn socket_handshakes(
    server: &Arc<rustls::ServerConfig>,
    client: &Arc<rustls::ClientConfig>,
    rounds: u32,
    in_flight: usize,
) -> Result<Duration, ActorError> {
    use tokio::io::AsyncWriteExt as _;
    let server_rt = server_runtime()?;
    let listener = bind_loopback(&server_rt)?;
    let addr = listener.local_addr().map_err(|e| err("listen", e))?;
    let acceptor = tokio_rustls::TlsAcceptor::from(server.clone());
    let server_thread = measured_server("mcptt-floor", server_rt, listener, rounds, move |tcp| {
        let acceptor = acceptor.clone();
        async move { floor_connection(&acceptor, tcp).await }
    })?;
    let connector = tokio_rustls::TlsConnector::from(client.clone());
    let name = rustls_pki_types::ServerName::try_from("localhost")
        .map_err(|e| err("server name", e))?
        .to_owned();
    let connect = move || {
        let connector = connector.clone();
        let name = name.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| err("connect", e))?;
            tcp.set_nodelay(true).map_err(|e| err("connect", e))?;
            let mut tls = connector
                .connect(name, tcp)
                .await
                .map_err(|e| err("client handshake", e))?;
            tls.shutdown().await.map_err(|e| err("client close", e))
        }
    };
    let clients = run_clients(rounds, in_flight, connect);
    let served = server_thread
        .join()
        .map_err(|_| err("server thread", "panicked"))?;
    clients?;
    served.map_err(|e| err("loopback handshakes", e))
}

/// One connection of the loopback floor's server: the full handshake, the client's data up to
/// its close_notify, the server's own close_notify (as the flow's SIP core and IdMS send
/// theirs), close.
async fn floor_connection(
    acceptor: &tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
) -> Result<(), String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tls = accept_full(acceptor, tcp).await?;
    let mut b = [0u8; 64];
    while tls.read(&mut b).await.map_err(|e| e.to_string())? > 0 {}
    // The client may have closed its socket by then (the floor's clients, like the flow's
    // UEs, do not wait for it): a reset ends the connection as well.
    let _ = tls.shutdown().await;
    Ok(())
}

/// Plaintext sizes, in bytes, of the messages one UE's registration puts on the servers'
/// connections in `flow --ues N`, in the order they go, for [`measure_io_bound`].
///
/// Taken from the flow itself: the servers' socket calls of `flow --ues 20 --concurrency 4`
/// for each `--login` (`strace -f -Y -yy -e trace=recvfrom,writev,sendto ...`), less the
/// 22 bytes TLS 1.3 adds to each record (5 header, 1 content type, 16 AES-GCM tag; the
/// flow writes each of these messages, or pair of messages, as one record in one call).
/// They vary by a few bytes with the length of the user's name (`ue1` ... `ue1000`), so the
/// figures are those of the first UEs; a change to the messages needs them measured again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowMessages {
    /// UE → SIP core, one read each at the SIP core: REGISTER, PUBLISH, SUBSCRIBE, the 200
    /// to the NOTIFY.
    pub ue_requests: [usize; 4],
    /// SIP core → UE, one write each: 200 (REGISTER), 200 (PUBLISH), 200 (SUBSCRIBE) and the
    /// NOTIFY (the MCPTT server writes those two at once, the SIP core relays them at once).
    pub ue_answers: [usize; 3],
    /// SIP core → MCPTT server on the one connection of the run: third-party REGISTER,
    /// PUBLISH, SUBSCRIBE, the 200 to the NOTIFY.
    pub link_requests: [usize; 4],
    /// MCPTT server → SIP core: 200 (REGISTER), 200 (PUBLISH), 200 (SUBSCRIBE) + NOTIFY.
    pub link_answers: [usize; 3],
    /// The UE's one HTTPS connection to the IdMS: (request, answer) in order; the last
    /// answer (JWKS, `Connection: close`) goes out with the IdMS's close_notify in one write
    /// and the IdMS then closes the socket (the flow's IdMS does not wait for the client's).
    pub idms_exchanges: Vec<(usize, usize)>,
}

impl FlowMessages {
    /// The flow's messages with `login` (the SIP side is the same for every method).
    #[must_use]
    pub fn of(login: crate::actors::config::LoginMethod) -> Self {
        use crate::actors::config::LoginMethod;
        // After `GET /jwks`, the answer: 360 bytes on the wire before the 24-byte
        // close_notify record.
        let jwks = (90, 338);
        let idms_exchanges = match login {
            // POST /authorize (password) -> 303; POST /token -> 200; GET /jwks -> 200.
            LoginMethod::Password => vec![(498, 222), (349, 1372), jwks],
            // The same with the TOTP code in the form.
            LoginMethod::TwoFactor => vec![(524, 222), (349, 1406), jwks],
            // POST /authorize -> the challenge (RAND, AUTN); POST with RES -> 303; token;
            // JWKS.
            LoginMethod::Sim => vec![(488, 332), (539, 222), (349, 1404), jwks],
        };
        Self {
            ue_requests: [518, 1452, 1468, 338],
            ue_answers: [462, 281, 1230],
            link_requests: [876, 1666, 1586, 270],
            link_answers: [239, 371, 1309],
            idms_exchanges,
        }
    }

    /// Plaintext bytes per UE through the SIP side's thread (each link byte counted once,
    /// though both of its ends are on that thread) and the IdMS's.
    #[must_use]
    pub fn bytes_per_ue(&self) -> (usize, usize) {
        let sip = self.ue_requests.iter().sum::<usize>()
            + self.ue_answers.iter().sum::<usize>()
            + self.link_requests.iter().sum::<usize>()
            + self.link_answers.iter().sum::<usize>();
        let idms = self.idms_exchanges.iter().map(|(q, a)| q + a).sum();
        (sip, idms)
    }
}

/// The I/O bound: what the servers' threads must spend per UE on the flow's sockets alone.
///
/// The plain tokio-rustls servers of [`SocketFloor`] (same TLS configurations, the same
/// current-thread runtime on a thread of their own, as many UEs in flight as the flow had)
/// do every handshake and every message exchange of a registration
/// ([`FlowMessages`]), with no parsing and no application work: each side reads the
/// expected number of bytes and writes a canned answer of the real size. Both ends of the
/// SIP core – MCPTT server connection run on the SIP side's thread, as in the flow, and the
/// MCPTT server's end does the [`FLOOR_VERIFICATIONS`] ES256 verifications (ring, the same
/// token-sized input as [`Floor::es256_verify`]). It is what these messages cost on these
/// sockets with this stack (a tokio current-thread runtime, tokio-rustls over rustls and
/// ring, the flow's TLS configurations) and no application work at all: the flow's servers
/// run the same stack, so whatever they spend above it is their own work.
///
/// Socket work, chosen to be neither less nor more than the flow's protocol needs:
/// - one read and one write per message where the protocol waits for the peer (the UE sends
///   its next request only once it has the answer): no batching the flow could not do;
/// - what the protocol lets any implementation write at once is written at once, as the
///   flow does: the MCPTT server's 200 (SUBSCRIBE) and its NOTIFY (one write, relayed by
///   the SIP core in one write), the JWKS answer and the IdMS's close_notify (one write);
///   on the shared SIP core – MCPTT server connection, what the UEs' tasks queued while the
///   thread was busy goes out in one write per side (a writer task drains a queue; the
///   flow's servers batch so too, [`crate::runtime`]), and each end reads whatever has
///   arrived and answers every complete request in it with one write
///   ([`LinkWrites::PerMessage`] measures the same without batching across UEs);
/// - the UE's connection ends as the flow's does (the UE's close_notify, read by the SIP
///   core, which sends its own, as RFC 8446 §6.1 requires, and closes), the IdMS's as the
///   flow's IdMS ends it; answers from the MCPTT server reach the UE's task through an
///   in-thread channel (a local wake-up, no system call).
///
/// The SIP core – MCPTT server connection is TLS (mutual, the flow's configurations), as
/// the flow's is; its one handshake is made before the measurement.
///
/// What the bound cannot fix, because the timing sets it (for the flow too): how many of
/// the link's messages share a write or a read ([`IoBound::link_calls_per_ue`]; the more
/// UEs' messages queue while the thread is busy, the fewer calls), and how often the
/// thread runs out of work and waits in `epoll_wait` (its clients, on one thread of their
/// own, are a different load than the flow's UEs). Counted with `perf trace -s` on
/// `flow --ues 1000 --concurrency 16 --login sim` (session 13), the bound's SIP side made
/// per UE 8.9 `recvfrom`, 7.7 `writev` and 2.0 `epoll_wait` calls against the flow's
/// servers' 8.4, 6.6 and 3.3 (both slowed by the tracing); its IdMS side 5.5–5.7
/// `recvfrom`, 5.0 writes and 1.5–2.0 `epoll_wait` against the flow's IdMS's 5.7, 5.0 and
/// 2.4. So the bound idles less than the flow, while the flow's servers, which write what a
/// whole turn of the thread queued (see [`crate::runtime`]), now batch the link's messages
/// more than the bound's writer task does (about one write per UE fewer): the bound is a
/// lower bound of the CPU time (the flow's servers take more), not of every call count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoBound {
    /// The SIP side's thread per UE: the UE's mutual-TLS handshake and messages, both ends
    /// of the SIP core – MCPTT server messages, the ES256 verifications.
    pub sip_side: Duration,
    /// The IdMS's thread per UE: the server-authenticated handshake and the login's HTTP
    /// exchanges.
    pub idms: Duration,
    /// UEs measured on each side.
    pub rounds: u32,
    /// Writes on the SIP core – MCPTT server connection (both ends) while they ran: the
    /// protocol's 7 messages per UE there, as batched (the flow's batching is timing-bound
    /// too; count its `writev` calls to compare).
    pub link_writes: u64,
    /// Reads on that connection (both ends, each returning data) while they ran.
    pub link_reads: u64,
}

impl IoBound {
    /// Both threads per UE.
    #[must_use]
    pub fn per_ue(&self) -> Duration {
        self.sip_side + self.idms
    }

    /// Link writes and reads per UE ([`IoBound::link_writes`], [`IoBound::link_reads`]).
    #[must_use]
    pub fn link_calls_per_ue(&self) -> (f64, f64) {
        let n = f64::from(self.rounds.max(1));
        (self.link_writes as f64 / n, self.link_reads as f64 / n)
    }
}

/// Measures [`IoBound`] for `messages`: `rounds` UEs on each side (after a few unmeasured
/// ones), `in_flight` at a time (as [`measure_socket_floor`]), with the flow's TLS
/// configurations.
///
/// ```
/// use mcptt_examples::actors::config::LoginMethod;
/// use mcptt_examples::cpu::{FlowMessages, LinkWrites, measure_io_bound};
/// let sim = FlowMessages::of(LoginMethod::Sim);
/// let bound = measure_io_bound(4, 2, &sim, LinkWrites::Batched).unwrap();
/// assert!(bound.sip_side > std::time::Duration::ZERO);
/// assert!(bound.per_ue() > bound.idms);
/// ```
///
/// # Errors
/// A configuration, socket or handshake failure, a handshake that was not a full one, or
/// per-thread CPU time that is not readable here.
pub fn measure_io_bound(
    rounds: u32,
    in_flight: usize,
    messages: &FlowMessages,
    link: LinkWrites,
) -> Result<IoBound, ActorError> {
    let rounds = rounds.max(1);
    let (mutual_server, mutual_client, idms_server, plain_client) = floor_configs()?;
    let verifier = Es256Check::new()?;
    let (sip_side, link_writes, link_reads) = io_bound_sip(
        &mutual_server,
        &mutual_client,
        rounds,
        in_flight,
        messages,
        verifier,
        link,
    )?;
    let idms = io_bound_idms(&idms_server, &plain_client, rounds, in_flight, messages)?;
    Ok(IoBound {
        sip_side,
        idms,
        rounds,
        link_writes,
        link_reads,
    })
}

/// How [`measure_io_bound`] writes on the SIP core – MCPTT server connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkWrites {
    /// Each end writes at once what was queued for it while the thread was busy (several
    /// UEs' messages in one write, as the flow does as far as its timing lets it): the
    /// bound.
    Batched,
    /// One write per message (the MCPTT server's 200 to a SUBSCRIBE and its NOTIFY still
    /// together): no batching across UEs, for comparison.
    PerMessage,
}

/// An ES256 verification over a token-sized input, as [`measure_floor`] times it.
#[derive(Clone)]
struct Es256Check {
    input: Arc<Vec<u8>>,
    signature: Arc<Vec<u8>>,
    public: Arc<Vec<u8>>,
}

impl Es256Check {
    fn new() -> Result<Self, ActorError> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 =
            ring::signature::EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|e| err("ES256 key", e))?;
        let key = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
            &rng,
        )
        .map_err(|e| err("ES256 key", e))?;
        let input = vec![b'a'; 700];
        let signature = key.sign(&rng, &input).map_err(|e| err("ES256 sign", e))?;
        Ok(Self {
            input: Arc::new(input),
            signature: Arc::new(signature.as_ref().to_vec()),
            public: Arc::new(key.public_key().as_ref().to_vec()),
        })
    }

    fn verify(&self) -> Result<(), String> {
        ring::signature::UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.public.as_slice())
            .verify(std::hint::black_box(self.input.as_slice()), &self.signature)
            .map_err(|_| "ES256 verification failed".to_owned())
    }
}

/// Unmeasured UEs before the measured ones (the link's handshake, first allocations), in the
/// I/O bound and the socket floor alike.
const IO_BOUND_WARM_UP: u32 = 8;

/// A request on the SIP core – MCPTT server connection, as the MCPTT server's end expects
/// it (it knows the sizes and the answers; it does not parse).
#[derive(Debug, Clone, Copy)]
struct LinkRequest {
    size: usize,
    /// The answer (index into [`FlowMessages::link_answers`]), if any.
    answer: Option<usize>,
    /// Whether the request carries an access token (one ES256 verification).
    token: bool,
}

/// The SIP core's end of the link, shared by the UEs' tasks on the SIP side's thread.
#[derive(Default)]
struct LinkQueue {
    /// Plaintext queued for the next write to the MCPTT server.
    out: Vec<u8>,
    /// Where each message queued in `out` ends.
    ends: Vec<usize>,
    /// What the MCPTT server's end is to read, in order.
    expected: std::collections::VecDeque<LinkRequest>,
    /// Answers the SIP core's end is to read, in order, with the UE task waiting for each
    /// (none for the 200 to the third-party REGISTER, which nobody waits for).
    answers: std::collections::VecDeque<(usize, Option<tokio::sync::oneshot::Sender<()>>)>,
    /// Writes and reads made on the link, both ends together.
    writes: u64,
    reads: u64,
}

struct Link {
    queue: std::sync::Mutex<LinkQueue>,
    /// Wakes the SIP core's writer task.
    queued: tokio::sync::Notify,
    /// Woken when the MCPTT server's end has read everything queued so far.
    idle: tokio::sync::Notify,
    zeros: Vec<u8>,
}

impl Link {
    fn lock(&self) -> std::sync::MutexGuard<'_, LinkQueue> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues a request for the MCPTT server; returns the wait for its answer, if any.
    fn send(
        &self,
        request: LinkRequest,
        answer_size: Option<usize>,
        wait: bool,
    ) -> Option<tokio::sync::oneshot::Receiver<()>> {
        let mut q = self.lock();
        q.out
            .extend_from_slice(self.zeros.get(..request.size).unwrap_or(&self.zeros));
        let end = q.out.len();
        q.ends.push(end);
        q.expected.push_back(request);
        let rx = answer_size.map(|size| {
            let (tx, rx) = tokio::sync::oneshot::channel();
            q.answers.push_back((size, wait.then_some(tx)));
            rx
        });
        drop(q);
        self.queued.notify_one();
        rx.filter(|_| wait)
    }

    /// Waits (10 s at most) until the MCPTT server's end has read all that was queued and
    /// the SIP core's end all the answers.
    async fn until_idle(&self) -> Result<(), String> {
        let limit = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            {
                let q = self.lock();
                if q.out.is_empty() && q.expected.is_empty() && q.answers.is_empty() {
                    return Ok(());
                }
            }
            tokio::time::timeout_at(limit, idle)
                .await
                .map_err(|_| "the link did not go idle within 10 s".to_owned())?;
        }
    }
}

/// A listener on a free loopback port, registered with `rt` (the thread that will accept).
fn bind_loopback(rt: &tokio::runtime::Runtime) -> Result<tokio::net::TcpListener, ActorError> {
    rt.block_on(tokio::net::TcpListener::bind((
        std::net::Ipv4Addr::LOCALHOST,
        0,
    )))
    .map_err(|e| err("listen", e))
}

fn server_runtime() -> Result<tokio::runtime::Runtime, ActorError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| err("runtime", e))
}

/// Accepts one connection (10 s at most) and sets `TCP_NODELAY`, as the flow's servers do.
async fn accept_one(listener: &tokio::net::TcpListener) -> Result<tokio::net::TcpStream, String> {
    let (tcp, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .map_err(|_| "no connection to accept within 10 s".to_owned())?
        .map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(tcp)
}

/// The server side of a full TLS handshake.
async fn accept_full(
    acceptor: &tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
) -> Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>, String> {
    let tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
    match tls.get_ref().1.handshake_kind() {
        Some(rustls::HandshakeKind::Full) => Ok(tls),
        kind => Err(format!("not a full handshake: {kind:?}")),
    }
}

/// Serves [`IO_BOUND_WARM_UP`] + `rounds` connections of `listener`, each on a task of its
/// own (`serve`), with `rt` on a new thread named `name`, and gives that thread's CPU time
/// per measured connection (the warm-up connections end before the count starts). A client
/// that failed leaves no connection to accept: the thread gives up after 10 s then.
fn measured_server<F, Fut>(
    name: &str,
    rt: tokio::runtime::Runtime,
    listener: tokio::net::TcpListener,
    rounds: u32,
    serve: F,
) -> Result<std::thread::JoinHandle<Result<Duration, String>>, ActorError>
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            rt.block_on(async move {
                let mut tasks = tokio::task::JoinSet::new();
                let mut cpu0 = None;
                for i in 0..IO_BOUND_WARM_UP + rounds {
                    if i == IO_BOUND_WARM_UP {
                        while let Some(r) = tasks.join_next().await {
                            r.map_err(|e| e.to_string())??;
                        }
                        cpu0 = thread_cpu();
                    }
                    let tcp = accept_one(&listener).await?;
                    tasks.spawn(serve(tcp));
                }
                while let Some(r) = tasks.join_next().await {
                    r.map_err(|e| e.to_string())??;
                }
                match (cpu0, thread_cpu()) {
                    (Some(a), Some(b)) if b > a => Ok((b - a) / rounds),
                    _ => Err("per-thread CPU time is not readable here".to_owned()),
                }
            })
        })
        .map_err(|e| err("server thread", e))
}

/// A client of the bound's servers: connects over loopback TCP with `TCP_NODELAY`.
async fn connect_tls(
    connector: &tokio_rustls::TlsConnector,
    addr: std::net::SocketAddr,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, ActorError> {
    let name = rustls_pki_types::ServerName::try_from("localhost")
        .map_err(|e| err("server name", e))?
        .to_owned();
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| err("connect", e))?;
    tcp.set_nodelay(true).map_err(|e| err("connect", e))?;
    connector
        .connect(name, tcp)
        .await
        .map_err(|e| err("client handshake", e))
}

/// Runs `rounds` UEs on this thread, `in_flight` at a time, after
/// [`IO_BOUND_WARM_UP`] one by one.
fn run_clients<F, Fut>(rounds: u32, in_flight: usize, one: F) -> Result<(), ActorError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), ActorError>> + Send + 'static,
{
    server_runtime()?.block_on(async move {
        for _ in 0..IO_BOUND_WARM_UP {
            one().await?;
        }
        let permits = Arc::new(tokio::sync::Semaphore::new(in_flight.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..rounds {
            let permit = permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| err("clients", e))?;
            let ue = one();
            tasks.spawn(async move {
                let r = ue.await;
                drop(permit);
                r
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.map_err(|e| err("client task", e))??;
        }
        Ok(())
    })
}

/// The SIP side of [`IoBound`]: its thread's CPU per UE, the link's writes and reads.
fn io_bound_sip(
    server: &Arc<rustls::ServerConfig>,
    client: &Arc<rustls::ClientConfig>,
    rounds: u32,
    in_flight: usize,
    m: &FlowMessages,
    verifier: Es256Check,
    mode: LinkWrites,
) -> Result<(Duration, u64, u64), ActorError> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let server_rt = server_runtime()?;
    let listener = bind_loopback(&server_rt)?;
    let link_listener = bind_loopback(&server_rt)?;
    let addr = listener.local_addr().map_err(|e| err("listen", e))?;
    let acceptor = tokio_rustls::TlsAcceptor::from(server.clone());
    let link_connector = tokio_rustls::TlsConnector::from(client.clone());
    let largest = m
        .ue_requests
        .iter()
        .chain(&m.ue_answers)
        .chain(&m.link_requests)
        .chain(&m.link_answers)
        .copied()
        .max()
        .unwrap_or(0);
    let link = Arc::new(Link {
        queue: std::sync::Mutex::new(LinkQueue::default()),
        queued: tokio::sync::Notify::new(),
        idle: tokio::sync::Notify::new(),
        zeros: vec![0; largest],
    });
    let sm = m.clone();
    let server_thread = std::thread::Builder::new()
        .name("mcptt-iobound".into())
        .spawn(move || -> Result<(Duration, u64, u64), String> {
            server_rt.block_on(async move {
                // The SIP core – MCPTT server connection: both ends on this thread.
                let link_addr = link_listener.local_addr().map_err(|e| e.to_string())?;
                let link_acceptor = acceptor.clone();
                let as_end = tokio::spawn(async move {
                    let tcp = accept_one(&link_listener).await?;
                    link_acceptor.accept(tcp).await.map_err(|e| e.to_string())
                });
                let sc_end = connect_tls(&link_connector, link_addr)
                    .await
                    .map_err(|e| e.to_string())?;
                let as_end = as_end.await.map_err(|e| e.to_string())??;
                let (mut sc_read, mut sc_write) = tokio::io::split(sc_end);
                let mut background = tokio::task::JoinSet::new();
                // The SIP core's writer: one write of whatever the UEs' tasks queued.
                let l = link.clone();
                background.spawn(async move {
                    loop {
                        l.queued.notified().await;
                        let (out, ends) = {
                            let mut q = l.lock();
                            (std::mem::take(&mut q.out), std::mem::take(&mut q.ends))
                        };
                        let writes: Vec<&[u8]> = match mode {
                            LinkWrites::Batched => vec![out.as_slice()],
                            LinkWrites::PerMessage => {
                                let mut start = 0;
                                ends.iter()
                                    .map(|&end| {
                                        let m = out.get(start..end).unwrap_or(&[]);
                                        start = end;
                                        m
                                    })
                                    .collect()
                            }
                        };
                        for w in writes.into_iter().filter(|w| !w.is_empty()) {
                            if let Err(e) = sc_write.write_all(w).await {
                                return Err(e.to_string());
                            }
                            l.lock().writes += 1;
                        }
                    }
                });
                // The SIP core's reader: hands each answer to the UE task waiting for it.
                let l = link.clone();
                background.spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut have = 0usize;
                    loop {
                        let n = sc_read.read(&mut buf).await.map_err(|e| e.to_string())?;
                        if n == 0 {
                            return Ok(());
                        }
                        have += n;
                        let mut q = l.lock();
                        q.reads += 1;
                        while let Some((size, _)) = q.answers.front() {
                            if have < *size {
                                break;
                            }
                            have -= *size;
                            if let Some((_, Some(tx))) = q.answers.pop_front() {
                                let _ = tx.send(());
                            }
                        }
                        let idle = q.answers.is_empty() && q.expected.is_empty();
                        drop(q);
                        if idle {
                            l.idle.notify_one();
                        }
                    }
                });
                // The MCPTT server's end: reads what arrived, answers each complete request,
                // one write for all of them.
                let l = link.clone();
                let answers = sm.link_answers;
                let verifier = verifier.clone();
                background.spawn(async move {
                    let (mut rd, mut wr) = tokio::io::split(as_end);
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut out = Vec::new();
                    let mut have = 0usize;
                    loop {
                        let n = rd.read(&mut buf).await.map_err(|e| e.to_string())?;
                        if n == 0 {
                            return Ok(());
                        }
                        have += n;
                        l.lock().reads += 1;
                        loop {
                            let request = {
                                let mut q = l.lock();
                                match q.expected.front() {
                                    Some(r) if have >= r.size => q.expected.pop_front(),
                                    _ => None,
                                }
                            };
                            let Some(request) = request else { break };
                            have -= request.size;
                            if request.token {
                                verifier.verify()?;
                            }
                            if let Some(a) = request.answer.and_then(|i| answers.get(i)) {
                                out.extend_from_slice(l.zeros.get(..*a).unwrap_or(&l.zeros));
                                if mode == LinkWrites::PerMessage {
                                    wr.write_all(&out).await.map_err(|e| e.to_string())?;
                                    out.clear();
                                    l.lock().writes += 1;
                                }
                            }
                        }
                        if out.is_empty() {
                            // Only answer-less requests (the 200 to a NOTIFY): maybe idle.
                            let q = l.lock();
                            let idle = q.answers.is_empty() && q.expected.is_empty();
                            drop(q);
                            if idle {
                                l.idle.notify_one();
                            }
                        } else {
                            wr.write_all(&out).await.map_err(|e| e.to_string())?;
                            out.clear();
                            l.lock().writes += 1;
                        }
                    }
                });
                let mut tasks = tokio::task::JoinSet::new();
                let mut cpu0 = None;
                let mut calls0 = (0, 0);
                for i in 0..IO_BOUND_WARM_UP + rounds {
                    if i == IO_BOUND_WARM_UP {
                        while let Some(r) = tasks.join_next().await {
                            r.map_err(|e| e.to_string())??;
                        }
                        link.until_idle().await?;
                        cpu0 = thread_cpu();
                        let q = link.lock();
                        calls0 = (q.writes, q.reads);
                    }
                    let tcp = accept_one(&listener).await?;
                    let acceptor = acceptor.clone();
                    let link = link.clone();
                    let m = sm.clone();
                    tasks.spawn(async move { sip_core_ue(acceptor, tcp, &link, &m).await });
                }
                while let Some(r) = tasks.join_next().await {
                    r.map_err(|e| e.to_string())??;
                }
                link.until_idle().await?;
                let spent = match (cpu0, thread_cpu()) {
                    (Some(a), Some(b)) if b > a => {
                        let q = link.lock();
                        Ok(((b - a) / rounds, q.writes - calls0.0, q.reads - calls0.1))
                    }
                    _ => Err("per-thread CPU time is not readable here".to_owned()),
                };
                background.abort_all();
                spent
            })
        })
        .map_err(|e| err("server thread", e))?;
    let connector = tokio_rustls::TlsConnector::from(client.clone());
    let cm = m.clone();
    let zeros: Arc<Vec<u8>> = Arc::new(vec![0; largest]);
    let clients = run_clients(rounds, in_flight, move || {
        let (connector, m, zeros) = (connector.clone(), cm.clone(), zeros.clone());
        async move {
            let mut tls = connect_tls(&connector, addr).await?;
            let mut buf = vec![0u8; zeros.len()];
            let bytes = |n: usize| zeros.get(..n).unwrap_or(&zeros);
            for (i, &request) in m.ue_requests.iter().enumerate() {
                tls.write_all(bytes(request))
                    .await
                    .map_err(|e| err("UE write", e))?;
                if let Some(&answer) = m.ue_answers.get(i) {
                    tls.read_exact(buf.get_mut(..answer).unwrap_or(&mut []))
                        .await
                        .map_err(|e| err("UE read", e))?;
                }
            }
            tls.shutdown().await.map_err(|e| err("UE close", e))
        }
    });
    let served = server_thread
        .join()
        .map_err(|_| err("server thread", "panicked"))?;
    clients?;
    served.map_err(|e| err("I/O bound, SIP side", e))
}

/// One UE's connection at the SIP core: handshake, then per request read it, pass it on to
/// the MCPTT server and relay the answer (the REGISTER is answered at once, its third-party
/// REGISTER follows), then the UE's close_notify, the SIP core's own and close.
async fn sip_core_ue(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    link: &Link,
    m: &FlowMessages,
) -> Result<(), String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tls = accept_full(&acceptor, tcp).await?;
    let mut buf = vec![0u8; link.zeros.len()];
    let bytes = |n: usize| link.zeros.get(..n).unwrap_or(&link.zeros);
    let [register, publish, subscribe, notify_ok] = m.ue_requests;
    let [register_ok, publish_ok, subscribe_ok_notify] = m.ue_answers;
    let mut read = async |tls: &mut tokio_rustls::server::TlsStream<_>, n: usize| {
        tls.read_exact(buf.get_mut(..n).unwrap_or(&mut []))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let request = |i: usize, answer: Option<usize>, token: bool| LinkRequest {
        size: m.link_requests.get(i).copied().unwrap_or(0),
        answer,
        token,
    };
    let answer_size = |i: usize| m.link_answers.get(i).copied();
    // REGISTER: 200 to the UE, then the third-party REGISTER (its 200 awaited by nobody).
    read(&mut tls, register).await?;
    tls.write_all(bytes(register_ok))
        .await
        .map_err(|e| e.to_string())?;
    link.send(request(0, Some(0), false), answer_size(0), false);
    // PUBLISH and SUBSCRIBE: forwarded, the answer relayed (the SUBSCRIBE's with the NOTIFY).
    for (i, (size, answer)) in [(publish, publish_ok), (subscribe, subscribe_ok_notify)]
        .into_iter()
        .enumerate()
    {
        read(&mut tls, size).await?;
        let wait = link.send(request(i + 1, Some(i + 1), true), answer_size(i + 1), true);
        if let Some(wait) = wait {
            tokio::time::timeout(Duration::from_secs(10), wait)
                .await
                .map_err(|_| "no answer on the link within 10 s".to_owned())?
                .map_err(|_| "the link closed".to_owned())?;
        }
        tls.write_all(bytes(answer))
            .await
            .map_err(|e| e.to_string())?;
    }
    // The UE's 200 to the NOTIFY, forwarded.
    read(&mut tls, notify_ok).await?;
    link.send(request(3, None, false), None, false);
    // The UE's close_notify, then the SIP core's own (the flow's mcptt-tls sends one before
    // closing too) and close. The UE may have closed its socket by then: a reset ends the
    // connection as well, so the result is not an error of the bound.
    while tls.read(&mut buf).await.map_err(|e| e.to_string())? > 0 {}
    let _ = tls.shutdown().await;
    Ok(())
}

/// The IdMS side of [`IoBound`]: its thread's CPU per UE.
fn io_bound_idms(
    server: &Arc<rustls::ServerConfig>,
    client: &Arc<rustls::ClientConfig>,
    rounds: u32,
    in_flight: usize,
    m: &FlowMessages,
) -> Result<Duration, ActorError> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let server_rt = server_runtime()?;
    let listener = bind_loopback(&server_rt)?;
    let addr = listener.local_addr().map_err(|e| err("listen", e))?;
    let acceptor = tokio_rustls::TlsAcceptor::from(server.clone());
    let exchanges = Arc::new(m.idms_exchanges.clone());
    let largest = exchanges.iter().map(|&(q, a)| q.max(a)).max().unwrap_or(0);
    let zeros: Arc<Vec<u8>> = Arc::new(vec![0; largest]);
    let (sx, sz) = (exchanges.clone(), zeros.clone());
    let server_thread =
        measured_server("mcptt-iobound", server_rt, listener, rounds, move |tcp| {
            let (acceptor, exchanges, zeros) = (acceptor.clone(), sx.clone(), sz.clone());
            async move {
                let mut tls = accept_full(&acceptor, tcp).await?;
                let mut buf = vec![0u8; zeros.len()];
                let last = exchanges.len().saturating_sub(1);
                for (i, &(request, answer)) in exchanges.iter().enumerate() {
                    tls.read_exact(buf.get_mut(..request).unwrap_or(&mut []))
                        .await
                        .map_err(|e| e.to_string())?;
                    let answer = zeros.get(..answer).unwrap_or(&zeros);
                    if i == last {
                        // `Connection: close`: the answer and the close_notify in
                        // one write, then close, as the flow's IdMS does.
                        let (_, conn) = tls.get_mut();
                        std::io::Write::write_all(&mut conn.writer(), answer)
                            .map_err(|e| e.to_string())?;
                        conn.send_close_notify();
                        tls.flush().await.map_err(|e| e.to_string())?;
                    } else {
                        tls.write_all(answer).await.map_err(|e| e.to_string())?;
                    }
                }
                Ok(())
            }
        })?;
    let connector = tokio_rustls::TlsConnector::from(client.clone());
    let clients = run_clients(rounds, in_flight, move || {
        let (connector, exchanges, zeros) = (connector.clone(), exchanges.clone(), zeros.clone());
        async move {
            let mut tls = connect_tls(&connector, addr).await?;
            let mut buf = vec![0u8; zeros.len()];
            for &(request, answer) in exchanges.iter() {
                tls.write_all(zeros.get(..request).unwrap_or(&zeros))
                    .await
                    .map_err(|e| err("client write", e))?;
                tls.read_exact(buf.get_mut(..answer).unwrap_or(&mut []))
                    .await
                    .map_err(|e| err("client read", e))?;
            }
            // The IdMS's close_notify.
            while tls
                .read(&mut buf)
                .await
                .map_err(|e| err("client read", e))?
                > 0
            {}
            Ok(())
        }
    });
    let served = server_thread
        .join()
        .map_err(|_| err("server thread", "panicked"))?;
    clients?;
    served.map_err(|e| err("I/O bound, IdMS side", e))
}
