//! Interop with software nobody here wrote: Kamailio as the SIP core between our `ue` and
//! `mcptt-server` binaries, and SIPp as a client of `mcptt-server` and of Kamailio.
//!
//! Real processes on loopback ports only: `idms`, `mcptt-server`, `sip-core`, `ue` from this
//! package, `kamailio` (foreground, its own run directory under a temporary directory, stopped
//! by its process group id when the test ends) and `sipp`. Every wait is bounded; the only
//! waiting is polling for a port to open or a process to end.
//!
//! Kamailio and SIPp come from Debian (`interop/setup.sh`: `kamailio kamailio-tls-modules
//! sip-tester`). A test that needs one of them and cannot find it FAILS, naming the package:
//! nothing is skipped silently.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::Read as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mcptt_examples::actors::clock::Clock;
use mcptt_examples::actors::config::{LoginMethod, UeConfig};
use mcptt_examples::actors::login;
use mcptt_examples::cli::TlsMaterial;
use mcptt_examples::pki::{DemoPki, load_ca_file};
use mcptt_examples::trace::Trace;

/// Bound on a process start (port open) and on each client run.
const START: Duration = Duration::from_secs(20);
const RUN: Duration = Duration::from_secs(150);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn kamailio_cfg() -> PathBuf {
    repo().join("interop/kamailio/kamailio.cfg")
}

fn sipp_scenario(name: &str) -> PathBuf {
    repo().join("interop/sipp").join(name)
}

/// The path of a peer binary, or a failure that says how to install it.
fn need(binary: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(
        [
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/usr/local/sbin",
            "/usr/local/bin",
        ]
        .map(PathBuf::from),
    );
    for dir in dirs {
        let p = dir.join(binary);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "`{binary}` not found: the interop tests need the Debian package `{package}`. \
         Install it with `sudo interop/setup.sh` (apt-get install kamailio kamailio-tls-modules sip-tester socat)."
    );
}

/// A temporary directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "mcptt-interop-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// A free loopback TCP port (bound then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn signal_group(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{pid}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A server process in its own process group, its output in a log file. Dropping it stops the
/// group (SIGTERM, then SIGKILL after a bounded wait) by the child's id.
struct Server {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Server {
    fn spawn(name: &str, cmd: &mut Command, dir: &Path) -> Self {
        let log = dir.join(format!("{name}.log"));
        let out = fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self {
            name: name.to_owned(),
            child,
            log,
        }
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls until `addr` accepts TCP connections; fails (with the log) if the process ends
    /// or `START` passes.
    fn wait_port(&mut self, addr: SocketAddr) {
        let limit = Instant::now() + START;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited ({status}) before listening on {addr}:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < limit,
                "{} did not listen on {addr} within {START:?}:\n{}",
                self.name,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        signal_group(self.child.id(), "TERM");
        let limit = Instant::now() + Duration::from_secs(5);
        while Instant::now() < limit {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                signal_group(self.child.id(), "KILL");
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        signal_group(self.child.id(), "KILL");
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What a client process ended with.
#[derive(Debug)]
struct Run {
    status: ExitStatus,
    output: String,
}

/// Runs a client to completion (bounded by `RUN`; killed past it), output captured in a file.
fn run_client(name: &str, cmd: &mut Command, dir: &Path) -> Run {
    run_client_until(name, cmd, dir, None)
}

/// When a client that would run on is stopped: once `.1` holds for the text of file `.0`, it
/// gets signal `.2`.
type Interrupt<'a> = (PathBuf, &'a dyn Fn(&str) -> bool, &'a str);

/// As [`run_client`], stopping the client as `interrupt_at` says (the `ue` binary stays signed
/// in until Ctrl-C, then signs off and exits).
fn run_client_until(
    name: &str,
    cmd: &mut Command,
    dir: &Path,
    interrupt_at: Option<Interrupt<'_>>,
) -> Run {
    let log = dir.join(format!("{name}.out"));
    let out = fs::File::create(&log).unwrap();
    let err = out.try_clone().unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let limit = Instant::now() + RUN;
    let mut interrupted = false;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if let Some((watched, done, signal)) = &interrupt_at
            && !interrupted
            && fs::read_to_string(watched).is_ok_and(|t| done(&t))
        {
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(child.id().to_string())
                .status();
            interrupted = true;
        }
        if Instant::now() > limit {
            signal_group(child.id(), "KILL");
            let _ = child.wait();
            panic!(
                "{name} did not finish within {RUN:?}:\n{}",
                fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut output = String::new();
    fs::File::open(&log)
        .unwrap()
        .read_to_string(&mut output)
        .unwrap();
    Run { status, output }
}

/// Which SIP core the UEs go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Core {
    /// `kamailio` with `interop/kamailio/kamailio.cfg`.
    Kamailio,
    /// Our own `sip-core` binary.
    Ours,
}

/// IdMS, MCPTT server (TCP towards the core) and a SIP core, all on loopback.
struct Stack {
    dir: TempDir,
    idms_url: String,
    idms_cert: PathBuf,
    pki_dir: PathBuf,
    /// Where UEs connect (mutual TLS).
    core_tls: SocketAddr,
    /// Kamailio's TCP listener (MCPTT server side; loopback SIPp UEs with `test_tcp`).
    core_tcp: Option<SocketAddr>,
    /// Where the MCPTT server listens (TCP).
    mcptt: SocketAddr,
    ctl_socket: Option<String>,
    // Dropped in reverse order of start (fields drop in declaration order).
    core: Option<Server>,
    mcptt_server: Option<Server>,
    idms: Option<Server>,
    second_idms: Option<Server>,
}

struct StackOptions {
    core: Core,
    /// The MCPTT server trusts the keys of a second IdMS, not those the UEs log in at: every
    /// UE token is then refused (bad-token scenario).
    foreign_keys: bool,
    /// Kamailio accepts loopback TCP UEs (`-A WITH_TEST_TCP`), for SIPp.
    test_tcp: bool,
    /// How many `sip:relayN@example.com` identities our sip-core grants to the certificate of
    /// the `socat` relay (SIPp load against our sip-core).
    relay_identities: u64,
}

impl Stack {
    fn start(opts: &StackOptions) -> Self {
        let kamailio = (opts.core == Core::Kamailio).then(|| need("kamailio", "kamailio"));
        let dir = TempDir::new(match opts.core {
            Core::Kamailio => "kam",
            Core::Ours => "ours",
        });
        let pki_dir = dir.0.join("pki");
        let pki = DemoPki::load_or_generate(&pki_dir).unwrap();

        let start_idms = |name: &str| {
            let port = free_port();
            let cert = dir.0.join(format!("{name}.pem"));
            let mut s = Server::spawn(
                name,
                Command::new(env!("CARGO_BIN_EXE_idms"))
                    .arg("--listen")
                    .arg(format!("127.0.0.1:{port}"))
                    .arg("--write-cert")
                    .arg(&cert)
                    .arg("--demo-iterations")
                    .arg("1000"),
                &dir.0,
            );
            s.wait_port(SocketAddr::from(([127, 0, 0, 1], port)));
            (s, format!("https://127.0.0.1:{port}"), cert)
        };
        let (idms, idms_url, idms_cert) = start_idms("idms");
        let (second_idms, keys_url, keys_cert) = if opts.foreign_keys {
            let (s, u, c) = start_idms("idms-foreign");
            (Some(s), u, c)
        } else {
            (None, idms_url.clone(), idms_cert.clone())
        };

        let mcptt = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut mcptt_server = Server::spawn(
            "mcptt-server",
            Command::new(env!("CARGO_BIN_EXE_mcptt-server"))
                .arg("--listen")
                .arg(mcptt.to_string())
                .arg("--transport")
                .arg("tcp")
                .arg("--idms")
                .arg(&keys_url)
                .arg("--idms-ca")
                .arg(&keys_cert)
                .arg("--pki-dir")
                .arg(&pki_dir)
                .arg("--trusted-core")
                .arg("tcp:127.0.0.1")
                .arg("--log-level")
                .arg("info"),
            &dir.0,
        );
        mcptt_server.wait_port(mcptt);

        let core_tls = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let (core, core_tcp, ctl_socket) = match kamailio {
            Some(bin) => {
                let run = dir.0.join("kamailio-run");
                fs::create_dir_all(&run).unwrap();
                let cert = pki.issue_server("sip:scscf.example.com").unwrap();
                cert.write(&dir.0, "core").unwrap();
                let tcp = SocketAddr::from(([127, 0, 0, 1], free_port()));
                let ctl = format!("unix:{}", run.join("kamailio_ctl").display());
                let mut cmd = Command::new(bin);
                cmd.arg("-DD")
                    .arg("-E")
                    .arg("-f")
                    .arg(kamailio_cfg())
                    .arg("-w")
                    .arg(&run)
                    .arg("-Y")
                    .arg(&run)
                    .arg("-m")
                    .arg("128")
                    .arg("-M")
                    .arg("16")
                    .arg("-l")
                    .arg(format!("tls:{core_tls}"))
                    .arg("-l")
                    .arg(format!("tcp:{tcp}"))
                    .arg("-A")
                    .arg(format!("TLS_CERT=\"{}\"", dir.0.join("core.crt").display()))
                    .arg("-A")
                    .arg(format!("TLS_KEY=\"{}\"", dir.0.join("core.key").display()))
                    .arg("-A")
                    .arg(format!("TLS_CA=\"{}\"", pki_dir.join("ca.crt").display()))
                    .arg("-A")
                    .arg(format!("MCPTT_AS=\"sip:{mcptt};transport=tcp\""))
                    .arg("-A")
                    .arg(format!("AS_PORT={}", mcptt.port()))
                    .arg("-A")
                    .arg(format!("CTL_SOCKET=\"{ctl}\""));
                if opts.test_tcp {
                    cmd.arg("-A").arg("WITH_TEST_TCP");
                }
                let mut k = Server::spawn("kamailio", &mut cmd, &dir.0);
                k.wait_port(core_tls);
                k.wait_port(tcp);
                (k, Some(tcp), Some(ctl))
            }
            None => {
                // The certificate → identity grants of the UEs these tests run.
                let grants = dir.0.join("identities");
                let load: String = (1..=opts.relay_identities)
                    .map(|i| format!(" sip:relay{i}@example.com"))
                    .collect();
                fs::write(
                    &grants,
                    format!("sip:ue1@example.com sip:ue1@example.com\nsip:ue2@example.com sip:ue2@example.com\n\
                     sip:sippue1@example.com sip:sippue1@example.com{load}\n"),
                )
                .unwrap();
                let mut s = Server::spawn(
                    "sip-core",
                    Command::new(env!("CARGO_BIN_EXE_sip-core"))
                        .arg("--listen")
                        .arg(core_tls.to_string())
                        .arg("--mcptt-server")
                        .arg(mcptt.to_string())
                        .arg("--mcptt-transport")
                        .arg("tcp")
                        .arg("--pki-dir")
                        .arg(&pki_dir)
                        .arg("--identities")
                        .arg(&grants)
                        .arg("--log-level")
                        .arg("info"),
                    &dir.0,
                );
                s.wait_port(core_tls);
                (s, None, None)
            }
        };
        Self {
            dir,
            idms_url,
            idms_cert,
            pki_dir,
            core_tls,
            core_tcp,
            mcptt,
            ctl_socket,
            core: Some(core),
            mcptt_server: Some(mcptt_server),
            idms: Some(idms),
            second_idms,
        }
    }

    /// Runs the `ue` binary through the SIP core: steps 1–18 for `user` on UE `impu`. Once the
    /// first NOTIFY arrived it is stopped: with `sign_off`, by Ctrl-C (it then signs off:
    /// PUBLISH and SUBSCRIBE `Expires: 0`, REGISTER `expires=0`, and exits), otherwise killed.
    fn ue(
        &self,
        name: &str,
        impu: &str,
        user: &str,
        pki_dir: Option<&Path>,
        sign_off: bool,
    ) -> Run {
        // Step 18 for this UE: the MCPTT server got the UE's 200 OK to the first NOTIFY.
        let label = format!("{}: SIP/2.0 200", name);
        let done = move |log: &str| {
            log.lines()
                .any(|l| l.starts_with("[step 18]") && l.contains(&label))
        };
        run_client_until(
            name,
            Command::new(env!("CARGO_BIN_EXE_ue"))
                .arg("--idms")
                .arg(&self.idms_url)
                .arg("--idms-ca")
                .arg(&self.idms_cert)
                .arg("--sip-core")
                .arg(self.core_tls.to_string())
                .arg("--impu")
                .arg(impu)
                .arg("--user")
                .arg(user)
                .arg("--password")
                .arg(format!("{user}-password"))
                .arg("--pki-dir")
                .arg(pki_dir.unwrap_or(&self.pki_dir)),
            &self.dir.0,
            Some((
                self.mcptt_server.as_ref().unwrap().log.clone(),
                &done,
                if sign_off { "INT" } else { "KILL" },
            )),
        )
    }

    fn core_log(&self) -> String {
        self.core.as_ref().map(Server::log_text).unwrap_or_default()
    }

    fn mcptt_log(&self) -> String {
        self.mcptt_server
            .as_ref()
            .map(Server::log_text)
            .unwrap_or_default()
    }

    /// The end of what the servers logged and whether they still run, for failure messages.
    fn logs(&self) -> String {
        let state =
            |s: &Option<Server>| s.as_ref().map_or_else(String::new, |s| probe(s.child.id()));
        format!(
            "--- core ({}) ---\n{}\n--- mcptt-server ({}) ---\n{}",
            state(&self.core),
            tail(&self.core_log(), 120),
            state(&self.mcptt_server),
            tail(&self.mcptt_log(), 80)
        )
    }

    /// An access token for `user` from the UEs' IdMS (the IdM client, as the `ue` binary logs in).
    fn token(&self, user: &str) -> String {
        let roots = load_ca_file(&self.idms_cert).unwrap();
        let pki = DemoPki::load(&self.pki_dir).unwrap();
        let config = UeConfig {
            label: format!("sipp/{user}"),
            ue_label: "sipp".into(),
            idms: self.idms_url.clone(),
            idms_roots: roots,
            client_id: "mcptt-client".into(),
            user: user.into(),
            password: format!("{user}-password"),
            method: LoginMethod::Password,
            sip_core: self.core_tls,
            tls: TlsMaterial {
                identity: pki.issue_ue("sip:sipp@example.com").unwrap(),
                roots: vec![pki.ca_cert()],
            },
            public_user_identity: "sip:sipp@example.com".into(),
            psi: "sip:mcptt-server@example.com".into(),
            register_expires: 600,
            publish_expires: 600,
            subscribe_expires: 600,
            timeout: Duration::from_secs(10),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(login::login(&config, &Trace::new(), &Clock::new()))
            .unwrap()
            .access_token
    }

    /// Kamailio's registered contacts (usrloc statistics over the ctl socket).
    fn kamailio_contacts(&self) -> u64 {
        let kamcmd = need("kamcmd", "kamailio");
        let ctl = self.ctl_socket.as_ref().expect("Kamailio stack");
        let out = Command::new(kamcmd)
            .arg("-s")
            .arg(ctl)
            .arg("stats.get_statistics")
            .arg("location_contacts")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        text.split(|c: char| !c.is_ascii_digit())
            .rfind(|w| !w.is_empty())
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "no contact count from kamcmd -s {ctl} ({}): {text}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                )
            })
    }

    /// A `socat` relay: loopback TCP in, mutual TLS to the core's UE listener out, with a
    /// client certificate for `sip:sippue1@example.com` (our sip-core grants it the
    /// `relayN` identities too).
    fn tls_relay(&self, socat: &Path) -> (SocketAddr, Server) {
        let pki = DemoPki::load(&self.pki_dir).unwrap();
        let d = &self.dir.0;
        pki.issue_ue("sip:sippue1@example.com")
            .unwrap()
            .write(d, "sippue")
            .unwrap();
        let relay = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut server = Server::spawn(
            "socat",
            Command::new(socat)
                .arg(format!(
                    "TCP-LISTEN:{},bind=127.0.0.1,reuseaddr,fork",
                    relay.port()
                ))
                .arg(format!(
                    "OPENSSL:{},cert={},key={},cafile={},verify=1",
                    self.core_tls,
                    d.join("sippue.crt").display(),
                    d.join("sippue.key").display(),
                    self.pki_dir.join("ca.crt").display()
                )),
            d,
        );
        server.wait_port(relay);
        (relay, server)
    }

    /// Runs SIPp with `scenario` over TCP against `target`; `keys` become `-key NAME VALUE`.
    fn sipp(
        &self,
        name: &str,
        scenario: &str,
        target: SocketAddr,
        keys: &[(&str, &str)],
        extra: &[&str],
    ) -> Run {
        let sipp = need("sipp", "sip-tester");
        let mut cmd = Command::new(sipp);
        cmd.arg("-sf")
            .arg(sipp_scenario(scenario))
            .arg("-t")
            .arg("t1")
            .arg("-i")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(free_port().to_string())
            .arg("-nostdin")
            .arg("-recv_timeout")
            .arg("10s")
            .arg("-timeout")
            .arg("140s")
            .arg("-timeout_error")
            .arg("-trace_err")
            .arg("-error_file")
            .arg(self.dir.0.join(format!("{name}.errors")))
            .arg("-trace_stat")
            .arg("-stf")
            .arg(self.dir.0.join(format!("{name}.csv")));
        for (k, v) in keys {
            cmd.arg("-key").arg(k).arg(v);
        }
        cmd.args(extra).arg(target.to_string());
        let mut run = run_client(name, &mut cmd, &self.dir.0);
        if let Ok(errors) = fs::read_to_string(self.dir.0.join(format!("{name}.errors"))) {
            run.output.push_str("\n--- sipp errors ---\n");
            run.output.push_str(&tail(&errors, 60));
        }
        run
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Core first, then the MCPTT server, then the IdMSes.
        drop(self.core.take());
        drop(self.mcptt_server.take());
        drop(self.idms.take());
        drop(self.second_idms.take());
    }
}

/// Whether process `pid` is still alive (not reaped, not a zombie).
fn probe(pid: u32) -> String {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat)
            if stat
                .rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z')) =>
        {
            "EXITED (zombie)".to_owned()
        }
        Ok(_) => "running".to_owned(),
        Err(_) => "EXITED".to_owned(),
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The steps a process echoed (`[step N]` labels of its trace).
fn steps_in(output: &str) -> std::collections::BTreeSet<u8> {
    output
        .match_indices("[step ")
        .filter_map(|(i, _)| {
            let rest = &output[i + 6..];
            let end = rest.find(']')?;
            rest[..end].trim().parse().ok()
        })
        .collect()
}

/// The `mcptt-step N` lines Kamailio logged.
fn kamailio_steps(log: &str) -> std::collections::BTreeSet<u8> {
    log.match_indices("mcptt-step ")
        .filter_map(|(i, _)| {
            let rest = &log[i + 11..];
            let end = rest.find(':')?;
            rest[..end].trim().parse().ok()
        })
        .collect()
}

/// The state the last NOTIFY a `ue` run printed showed: `STATE (AUTHORISATION)`.
fn notified_state(run: &Run) -> Option<String> {
    let body = run
        .output
        .lines()
        .rev()
        .find_map(|l| l.split_once("Body: state=").map(|(_, b)| b))?;
    let mut words = body.split_whitespace();
    let state = words.next()?;
    let auth = words.find_map(|w| w.strip_prefix("authorisation="))?;
    Some(format!("{state} ({auth})"))
}

/// The final line of a `ue` run after Ctrl-C:
/// `ue: signed off cleanly; last service state STATE (AUTHORISATION)`.
fn final_state(run: &Run) -> Option<String> {
    run.output
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("ue: signed off cleanly; last service state "))
        .map(str::to_owned)
}

/// The step a failed `ue` run names (`ue: FAILED: step N failed ...`).
fn failed_step(run: &Run) -> Option<u8> {
    let line = run
        .output
        .lines()
        .rev()
        .find(|l| l.starts_with("ue: FAILED"))?;
    let rest = &line[line.find("step ")? + 5..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn expect_success(stack: &Stack, run: &Run, what: &str) {
    assert!(
        run.status.success(),
        "{what} failed ({}):\n{}\n{}",
        run.status,
        tail(&run.output, 80),
        stack.logs()
    );
}

const KAMAILIO: StackOptions = StackOptions {
    core: Core::Kamailio,
    foreign_keys: false,
    test_tcp: false,
    relay_identities: 0,
};

// ---------------------------------------------------------------------------------------------
// Kamailio as the SIP core: our ue and mcptt-server
// ---------------------------------------------------------------------------------------------

#[test]
fn kamailio_ue_and_mcptt_server_complete_all_18_steps() {
    let stack = Stack::start(&KAMAILIO);
    let run = stack.ue("ue1", "sip:ue1@example.com", "alice", None, false);
    assert_eq!(
        notified_state(&run).as_deref(),
        Some("full-access (authorised)"),
        "{}",
        run.output
    );
    // Every step of DESIGN.md §1 was seen by the actor receiving it: the UE (1, 4, 10, 14,
    // 16), the MCPTT server (5, 8, 12, 18) and Kamailio (2, 3, 6, 7, 9, 11, 13, 15, 17).
    let ue = steps_in(&run.output);
    let server = steps_in(&stack.mcptt_log());
    let core = kamailio_steps(&stack.core_log());
    for (who, seen, want) in [
        ("ue", &ue, &[1u8, 4, 10, 14, 16][..]),
        ("mcptt-server", &server, &[5, 8, 12, 18][..]),
        ("kamailio", &core, &[2, 3, 6, 7, 9, 11, 13, 15, 17][..]),
    ] {
        for s in want {
            assert!(
                seen.contains(s),
                "step {s} not seen by {who} (saw {seen:?})\n{}\n{}",
                run.output,
                stack.logs()
            );
        }
    }
    let all: std::collections::BTreeSet<u8> =
        ue.iter().chain(&server).chain(&core).copied().collect();
    assert_eq!(all, (1..=18).collect(), "steps seen");

    let log = stack.core_log();
    assert!(
        log.contains("mcptt-step 2: mutual TLS, client certificate URI sip:ue1@example.com"),
        "{log}"
    );
    assert!(
        log.contains("mcptt-step 6: third-party REGISTER answered 200"),
        "{log}"
    );
    // The MCPTT server got the UE's REGISTER as message/sip, from Kamailio, and the identity
    // Kamailio asserted.
    let server_log = stack.mcptt_log();
    assert!(
        server_log.contains("REGISTER sip:mcptt.example.com SIP/2.0"),
        "{server_log}"
    );
    assert!(server_log.contains("message/sip"), "{server_log}");
    assert!(server_log.contains("<sip:ue1@example.com>"), "{server_log}");
}

/// Ctrl-C on the `ue` binary: it signs off (PUBLISH `Expires: 0`), ends its subscription
/// (in-dialog SUBSCRIBE `Expires: 0`, routed by the Record-Route set) and de-registers; the
/// de-registration reaches the MCPTT server as a third-party REGISTER with `Expires: 0`.
#[test]
fn kamailio_ue_signs_off_and_deregisters() {
    let stack = Stack::start(&KAMAILIO);
    let run = stack.ue("ue1", "sip:ue1@example.com", "alice", None, true);
    expect_success(&stack, &run, "ue sign-off through Kamailio");
    assert_eq!(
        final_state(&run).as_deref(),
        Some("full-access (authorised)"),
        "{}",
        run.output
    );
    let log = stack.core_log();
    for line in [
        "mcptt-step 5: third-party REGISTER for sip:ue1@example.com sent, Expires 600",
        "mcptt-step 5: third-party REGISTER for sip:ue1@example.com sent, Expires 0",
    ] {
        assert!(log.contains(line), "{line} missing:\n{}", stack.logs());
    }
    assert!(
        !log.contains("without a Route to this core"),
        "{}",
        stack.logs()
    );
}

/// Runs the multi-device scenario (one user on two UEs at once) through `core` and returns
/// each UE's final state, and what the UEs and servers printed (for failure messages).
fn multi_device(core: Core) -> (Vec<Option<String>>, String) {
    let stack = Stack::start(&StackOptions { core, ..KAMAILIO });
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| stack.ue("ue1", "sip:ue1@example.com", "alice", None, false));
        let b = s.spawn(|| stack.ue("ue2", "sip:ue2@example.com", "alice", None, false));
        (a.join().unwrap(), b.join().unwrap())
    });
    let printed = format!(
        "--- ue1 ({}) ---\n{}\n--- ue2 ({}) ---\n{}\n{}",
        a.status,
        tail(&a.output, 60),
        b.status,
        tail(&b.output, 60),
        stack.logs()
    );
    (vec![notified_state(&a), notified_state(&b)], printed)
}

#[test]
fn kamailio_multi_device_behaves_as_our_sip_core() {
    let (through_kamailio, printed) = multi_device(Core::Kamailio);
    assert_eq!(
        through_kamailio,
        vec![Some("full-access (authorised)".to_owned()); 2],
        "{printed}"
    );
    let (through_ours, printed) = multi_device(Core::Ours);
    assert_eq!(through_kamailio, through_ours, "{printed}");
}

/// The bad-token scenario: the MCPTT server trusts another IdMS than the one the UE logs in
/// at, so the access token's signature does not verify. Returns the failed step and whether
/// the 403 carried Warning 101.
fn bad_token(core: Core) -> (Option<u8>, bool, String) {
    let stack = Stack::start(&StackOptions {
        core,
        foreign_keys: true,
        ..KAMAILIO
    });
    let run = stack.ue("ue1", "sip:ue1@example.com", "alice", None, false);
    assert!(
        !run.status.success(),
        "a foreign token was accepted:\n{}",
        run.output
    );
    let warned = run
        .output
        .lines()
        .any(|l| l.contains("Warning") && l.contains("101"));
    let server = stack.mcptt_log();
    assert!(server.contains("service authorisation failed"), "{server}");
    (failed_step(&run), warned, run.output)
}

#[test]
fn kamailio_bad_token_behaves_as_our_sip_core() {
    let (step, warned, output) = bad_token(Core::Kamailio);
    assert!(warned, "no 403 with Warning 101 reached the UE:\n{output}");
    assert_eq!(step, Some(14), "{output}");
    let (ours_step, ours_warned, _) = bad_token(Core::Ours);
    assert_eq!((step, warned), (ours_step, ours_warned));
}

#[test]
fn kamailio_refuses_a_client_certificate_from_another_ca() {
    let stack = Stack::start(&KAMAILIO);
    let other = stack.dir.0.join("other-pki");
    let run = stack.ue(
        "ue-other-ca",
        "sip:ue1@example.com",
        "alice",
        Some(&other),
        false,
    );
    assert!(!run.status.success(), "{}", run.output);
    assert_eq!(failed_step(&run), Some(2), "{}", run.output);
    assert!(
        !kamailio_steps(&stack.core_log()).contains(&3),
        "a REGISTER got through: {}",
        stack.core_log()
    );
}

// ---------------------------------------------------------------------------------------------
// SIPp
// ---------------------------------------------------------------------------------------------

fn expect_sipp(stack: &Stack, run: &Run, what: &str) {
    assert!(
        run.status.success(),
        "SIPp {what} failed ({}):\n{}\n{}",
        run.status,
        tail(&run.output, 60),
        stack.logs()
    );
}

/// A token with its last signature character changed (still base64url).
fn tamper(token: &str) -> String {
    let mut t = token.to_owned();
    let last = t.pop().unwrap();
    t.push(if last == 'A' { 'B' } else { 'A' });
    t
}

#[test]
fn sipp_as_sip_core_against_mcptt_server() {
    need("sipp", "sip-tester");
    let stack = Stack::start(&StackOptions {
        core: Core::Ours,
        ..KAMAILIO
    });
    let token = stack.token("alice");
    let reg = stack.sipp(
        "sipp-as-register",
        "as_register.xml",
        stack.mcptt,
        &[("user", "sippreg"), ("expires", "600")],
        &["-m", "20", "-r", "20"],
    );
    expect_sipp(&stack, &reg, "third-party REGISTER");

    let flow = stack.sipp(
        "sipp-as-flow",
        "as_publish_subscribe.xml",
        stack.mcptt,
        &[("user", "sippue"), ("token", &token)],
        &["-m", "1"],
    );
    expect_sipp(&stack, &flow, "PUBLISH/SUBSCRIBE/NOTIFY");

    let bad = tamper(&token);
    let malformed = stack.sipp(
        "sipp-as-malformed",
        "as_malformed.xml",
        stack.mcptt,
        &[("user", "sippbad"), ("token", &token), ("badtoken", &bad)],
        &["-m", "1"],
    );
    expect_sipp(&stack, &malformed, "malformed variants");
}

#[test]
fn sipp_ue_through_kamailio_to_mcptt_server() {
    need("sipp", "sip-tester");
    let stack = Stack::start(&StackOptions {
        test_tcp: true,
        ..KAMAILIO
    });
    let token = stack.token("alice");
    let tcp = stack.core_tcp.unwrap();
    let flow = stack.sipp(
        "sipp-ue-flow",
        "ue_flow.xml",
        tcp,
        &[("user", "sippue"), ("token", &token)],
        &["-m", "1"],
    );
    expect_sipp(&stack, &flow, "UE flow through Kamailio");
    let steps = kamailio_steps(&stack.core_log());
    for s in [3, 4, 5, 6, 7, 9, 11, 13, 15, 17] {
        assert!(
            steps.contains(&s),
            "Kamailio did not log step {s}:\n{}",
            stack.logs()
        );
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
        })
        .unwrap_or(default)
}

/// Polls `count` until it reaches `want` or `limit` passes; returns the last count.
fn poll_count(want: usize, limit: Duration, count: impl Fn() -> usize) -> usize {
    let end = Instant::now() + limit;
    loop {
        let n = count();
        if n >= want || Instant::now() > end {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIPp as a UE against our own `sip-core`: SIPp has no TLS, so `socat` carries its TCP
/// connection over mutual TLS with a client certificate for `sip:sippue1@example.com`.
#[test]
fn sipp_ue_through_tls_relay_to_our_sip_core() {
    need("sipp", "sip-tester");
    let socat = need("socat", "socat");
    let stack = Stack::start(&StackOptions {
        core: Core::Ours,
        ..KAMAILIO
    });
    let (relay, socat) = stack.tls_relay(&socat);
    let token = stack.token("alice");
    let flow = stack.sipp(
        "sipp-ue-ours",
        "ue_flow.xml",
        relay,
        &[("user", "sippue"), ("token", &token)],
        &["-m", "1"],
    );
    expect_sipp(
        &stack,
        &flow,
        &format!(
            "UE flow through socat to sip-core\n--- socat ---\n{}",
            socat.log_text()
        ),
    );
    // The MCPTT server saw the SIPp UE's PUBLISH with the identity our core asserted.
    let server = stack.mcptt_log();
    assert!(
        server
            .lines()
            .any(|l| l.starts_with("[step  8]") && l.contains("sippue1")),
        "{server}"
    );
}

/// REGISTERs from SIPp at a fixed rate through Kamailio (each one also a third-party REGISTER
/// to mcptt-server), then every binding is counted: Kamailio's usrloc statistics, one
/// binding query per UE, and the third-party REGISTERs the MCPTT server accepted.
///
/// The suite runs a short form (200/s for 3 s). The measured run of the README is the same
/// test with `MCPTT_INTEROP_LOAD_RATE=300 MCPTT_INTEROP_LOAD_SECS=30` and `--nocapture`,
/// which prints the achieved rates.
#[test]
fn sipp_register_load_through_kamailio_loses_no_binding() {
    need("sipp", "sip-tester");
    let rate = env_u64("MCPTT_INTEROP_LOAD_RATE", 200);
    let secs = env_u64("MCPTT_INTEROP_LOAD_SECS", 3);
    let n = rate * secs;
    assert!(
        n > 0,
        "MCPTT_INTEROP_LOAD_RATE and MCPTT_INTEROP_LOAD_SECS must be positive"
    );
    let stack = Stack::start(&StackOptions {
        test_tcp: true,
        ..KAMAILIO
    });
    let tcp = stack.core_tcp.unwrap();
    let started = Instant::now();
    let load = stack.sipp(
        "sipp-load",
        "ue_register.xml",
        tcp,
        &[("user", "load")],
        &["-r", &rate.to_string(), "-m", &n.to_string(), "-l", "2000"],
    );
    let load_time = started.elapsed();
    expect_sipp(&stack, &load, "REGISTER load");
    let contacts = stack.kamailio_contacts();
    assert_eq!(contacts, n, "bindings in Kamailio\n{}", stack.logs());
    let started = Instant::now();
    let query = stack.sipp(
        "sipp-query",
        "ue_query.xml",
        tcp,
        &[("user", "load")],
        &[
            "-r",
            &(rate * 2).to_string(),
            "-m",
            &n.to_string(),
            "-l",
            "2000",
        ],
    );
    let query_time = started.elapsed();
    expect_sipp(&stack, &query, "binding query");
    // Every REGISTER carried +g.3gpp.mcptt: the MCPTT server must have accepted each UE.
    let want = usize::try_from(n).unwrap();
    let told = poll_count(want, Duration::from_secs(20), || {
        stack
            .core_log()
            .matches("mcptt-step 6: third-party REGISTER answered 200")
            .count()
    });
    assert_eq!(
        told,
        want,
        "third-party REGISTERs accepted\n{}",
        stack.logs()
    );
    #[allow(clippy::cast_precision_loss)]
    let per_sec = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "interop load: {n} REGISTERs offered at {rate}/s through Kamailio in {:.1} s ({:.0}/s achieved), \
         {contacts} bindings in Kamailio, {n} binding queries answered with the binding in {:.1} s ({:.0}/s), \
         {told} third-party REGISTERs accepted by mcptt-server",
        load_time.as_secs_f64(),
        per_sec(load_time),
        query_time.as_secs_f64(),
        per_sec(query_time),
    );
}

/// REGISTER load against our own `sip-core` through the `socat` TLS relay (one connection, the
/// relay certificate granted one identity per UE), then one binding query per UE. Rate and
/// duration as in the Kamailio load test (`MCPTT_INTEROP_LOAD_RATE`, `MCPTT_INTEROP_LOAD_SECS`).
#[test]
fn sipp_register_load_through_tls_relay_to_our_sip_core() {
    need("sipp", "sip-tester");
    let socat = need("socat", "socat");
    let rate = env_u64("MCPTT_INTEROP_LOAD_RATE", 200);
    let secs = env_u64("MCPTT_INTEROP_LOAD_SECS", 2);
    let n = rate * secs;
    assert!(
        n > 0,
        "MCPTT_INTEROP_LOAD_RATE and MCPTT_INTEROP_LOAD_SECS must be positive"
    );
    let stack = Stack::start(&StackOptions {
        core: Core::Ours,
        relay_identities: n,
        ..KAMAILIO
    });
    let (relay, _socat) = stack.tls_relay(&socat);
    let started = Instant::now();
    let load = stack.sipp(
        "sipp-load-ours",
        "ue_register.xml",
        relay,
        &[("user", "relay")],
        &["-r", &rate.to_string(), "-m", &n.to_string(), "-l", "2000"],
    );
    let load_time = started.elapsed();
    expect_sipp(&stack, &load, "REGISTER load through socat to sip-core");
    let started = Instant::now();
    let query = stack.sipp(
        "sipp-query-ours",
        "ue_query.xml",
        relay,
        &[("user", "relay")],
        &[
            "-r",
            &(rate * 2).to_string(),
            "-m",
            &n.to_string(),
            "-l",
            "2000",
        ],
    );
    let query_time = started.elapsed();
    expect_sipp(&stack, &query, "binding query through socat to sip-core");
    #[allow(clippy::cast_precision_loss)]
    let per_sec = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "interop load (our sip-core via socat TLS): {n} REGISTERs offered at {rate}/s in {:.1} s \
         ({:.0}/s achieved), {n} binding queries answered with the binding in {:.1} s ({:.0}/s)",
        load_time.as_secs_f64(),
        per_sec(load_time),
        query_time.as_secs_f64(),
        per_sec(query_time),
    );
}
