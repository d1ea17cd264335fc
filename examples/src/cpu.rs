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
//! to the in-memory floor.
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
    let sig = key.sign(&rng, &input).map_err(|e| err("ES256 sign", e))?;
    let public = ring::signature::UnparsedPublicKey::new(
        &ECDSA_P256_SHA256_FIXED,
        key.public_key().as_ref().to_vec(),
    );
    let verify_rounds = rounds.saturating_mul(4);
    let cpu0 = thread_cpu();
    let start = Instant::now();
    for _ in 0..verify_rounds {
        public
            .verify(std::hint::black_box(&input), sig.as_ref())
            .map_err(|e| err("ES256 verify", e))?;
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
/// connection: accept, the full handshake, reading the client's close_notify, close.
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

/// Connections the floor's clients keep in flight, as `flow --concurrency 16` does.
pub const SOCKET_FLOOR_IN_FLIGHT: usize = 16;

/// Measure [`SocketFloor`]: `rounds` connections for each kind of handshake (after a few
/// unmeasured ones), [`SOCKET_FLOOR_IN_FLIGHT`] at a time, with the flow's configurations.
///
/// ```
/// let floor = mcptt_examples::cpu::measure_socket_floor(4).unwrap();
/// assert!(floor.mutual_tls_server > std::time::Duration::ZERO);
/// assert!(floor.server_auth_tls_server > std::time::Duration::ZERO);
/// ```
///
/// # Errors
/// A configuration, socket or handshake failure, or a handshake that was not a full one.
pub fn measure_socket_floor(rounds: u32) -> Result<SocketFloor, ActorError> {
    let rounds = rounds.max(1);
    let (mutual_server, mutual_client, idms_server, plain_client) = floor_configs()?;
    Ok(SocketFloor {
        mutual_tls_server: socket_handshakes(&mutual_server, &mutual_client, rounds)?,
        server_auth_tls_server: socket_handshakes(&idms_server, &plain_client, rounds)?,
    })
}

/// Server-thread CPU per connection of a plain tokio-rustls server on loopback.
fn socket_handshakes(
    server: &Arc<rustls::ServerConfig>,
    client: &Arc<rustls::ClientConfig>,
    rounds: u32,
) -> Result<Duration, ActorError> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    const WARM_UP: u32 = 8;
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| err("runtime", e))
    };
    let server_rt = runtime()?;
    let listener = server_rt
        .block_on(tokio::net::TcpListener::bind((
            std::net::Ipv4Addr::LOCALHOST,
            0,
        )))
        .map_err(|e| err("listen", e))?;
    let addr = listener.local_addr().map_err(|e| err("listen", e))?;
    let acceptor = tokio_rustls::TlsAcceptor::from(server.clone());
    let server_thread = std::thread::Builder::new()
        .name("mcptt-floor".into())
        .spawn(move || -> Result<Duration, String> {
            server_rt.block_on(async move {
                let mut tasks = tokio::task::JoinSet::new();
                let mut cpu0 = None;
                for i in 0..WARM_UP + rounds {
                    if i == WARM_UP {
                        while let Some(r) = tasks.join_next().await {
                            r.map_err(|e| e.to_string())??;
                        }
                        cpu0 = thread_cpu();
                    }
                    // A client that failed leaves no connection to accept: give up then.
                    let (tcp, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
                        .await
                        .map_err(|_| "no connection to accept within 10 s".to_owned())?
                        .map_err(|e| e.to_string())?;
                    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
                    let acceptor = acceptor.clone();
                    tasks.spawn(async move {
                        let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
                        let kind = tls.get_ref().1.handshake_kind();
                        if kind != Some(rustls::HandshakeKind::Full) {
                            return Err(format!("not a full handshake: {kind:?}"));
                        }
                        let mut b = [0u8; 64];
                        while tls.read(&mut b).await.map_err(|e| e.to_string())? > 0 {}
                        Ok(())
                    });
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
        .map_err(|e| err("server thread", e))?;
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
    let clients = runtime()?.block_on(async move {
        for _ in 0..WARM_UP {
            connect().await?;
        }
        let permits = Arc::new(tokio::sync::Semaphore::new(SOCKET_FLOOR_IN_FLIGHT));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..rounds {
            let permit = permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| err("clients", e))?;
            let one = connect();
            tasks.spawn(async move {
                let r = one.await;
                drop(permit);
                r
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.map_err(|e| err("client task", e))??;
        }
        Ok::<(), ActorError>(())
    });
    let served = server_thread
        .join()
        .map_err(|_| err("server thread", "panicked"))?;
    clients?;
    served.map_err(|e| err("loopback handshakes", e))
}
