//! What the Redis-backed tests (`store`, `instances`) share: a real `redis-server` per test,
//! loopback addresses, and SIP cores on a store.
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mcptt_examples::actors::clock::Clock;
use mcptt_examples::actors::config::{
    DEFAULT_MCPTT_HOLD_DOWN, DEFAULT_MCPTT_TIMEOUT, SipCoreConfig, Transport, UeConfig,
};
use mcptt_examples::actors::login::{self, Tokens};
use mcptt_examples::actors::sip_core::{self, SipCoreHandle};
use mcptt_examples::actors::ue::Ue;
use mcptt_examples::actors::{self, MCPTT_SERVER_URI, PSI, SIP_CORE_URI};
use mcptt_examples::cli::TlsMaterial;
use mcptt_examples::demo::FlowConfig;
use mcptt_examples::pki::DemoPki;
use mcptt_examples::trace::{Actor, Seen, Trace};
use mcptt_service_state::client::PublisherEvent;
use mcptt_store_redis::{RedisServiceStateStore, RedisStore, RedisStoreConfig, TimeBase};

/// The one identity the SIP cores of these tests serve.
pub(crate) const IMPU: &str = "sip:ue1@example.com";

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

pub(crate) fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A `redis-server` on a free loopback port, no persistence, killed (by pid) on drop.
pub(crate) struct Redis {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl Redis {
    pub(crate) fn start() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "mcptt-examples-redis-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = Self {
            child: None,
            port,
            dir,
        };
        r.spawn();
        r
    }

    pub(crate) fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start `redis-server` ({e}): install the Debian package `redis-server`"
                )
            });
        self.child = Some(child);
        // Ready once it answers PING (bounded).
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.store().ping().is_err() {
            assert!(Instant::now() < deadline, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL by pid, then reap.
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A store of our own on the same server, for inspecting what the SIP cores wrote.
    pub(crate) fn store(&self) -> RedisStore {
        RedisStore::new(
            RedisStoreConfig {
                url: self.url(),
                connect_timeout: Duration::from_millis(200),
                ..RedisStoreConfig::default()
            },
            TimeBase::system(),
        )
        .unwrap()
    }

    /// A service-state store of our own on the same server, for inspecting what the MCPTT
    /// servers wrote.
    pub(crate) fn service_state(&self) -> RedisServiceStateStore {
        RedisServiceStateStore::new(
            RedisStoreConfig {
                url: self.url(),
                ..RedisStoreConfig::default()
            },
            TimeBase::system(),
        )
        .unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a SIP core's trace holds of requests `method` (received from anyone).
pub(crate) fn requests(trace: &Trace, method: &str) -> Vec<Seen> {
    trace
        .seen_by(Actor::SipCore)
        .into_iter()
        .filter(|s| !s.is_response() && s.method == method)
        .collect()
}

/// A SIP core on `store` in front of the MCPTT servers `list` (in that order), with the
/// certificate `pki` issues, on `clock`, recording in a trace of its own.
pub(crate) async fn core(
    pki: &DemoPki,
    clock: &Clock,
    list: Vec<SocketAddr>,
    transport: Transport,
    store: &str,
) -> (SipCoreHandle, Trace) {
    let trace = Trace::new();
    let handle = sip_core::spawn(
        SipCoreConfig {
            listen: loopback(),
            tls: TlsMaterial {
                identity: pki.issue_server(SIP_CORE_URI).unwrap(),
                roots: vec![pki.ca_cert()],
            },
            mcptt_servers: list,
            mcptt_transport: transport,
            mcptt_timeout: DEFAULT_MCPTT_TIMEOUT,
            mcptt_hold_down: DEFAULT_MCPTT_HOLD_DOWN,
            node_uri: SIP_CORE_URI.into(),
            application_server: MCPTT_SERVER_URI.into(),
            psi: PSI.into(),
            identities: vec![(IMPU.into(), vec![IMPU.into()])],
            max_expires: 3600,
            max_connections_per_ip: 16,
            store: store.into(),
        },
        trace.clone(),
        clock.clone(),
    )
    .await
    .unwrap();
    (handle, trace)
}

/// The UE of the first sign-in of `config`, logged in at the IdMS of `servers`, connected
/// to the SIP core at `sip_core`, recording in `trace`.
pub(crate) async fn ue_at(
    config: &FlowConfig,
    servers: &actors::Servers,
    sip_core: SocketAddr,
    trace: &Trace,
) -> (Ue, Tokens, UeConfig) {
    let mut cfg = actors::ue_config(config, servers, &config.sign_ins()[0]).unwrap();
    cfg.sip_core = sip_core;
    let tokens = login::login(&cfg, trace, &servers.clock).await.unwrap();
    let ue = Ue::connect(cfg.clone(), trace.clone(), servers.clock.clone())
        .await
        .unwrap();
    (ue, tokens, cfg)
}

/// Asserts that the last PUBLISH of the UE's sign-in `idx` was accepted.
#[track_caller]
pub(crate) fn assert_published(ue: &Ue, idx: usize) {
    assert!(
        matches!(
            ue.users()[idx].last_publish,
            Some(PublisherEvent::Published { .. })
        ),
        "{:?}",
        ue.users()[idx].last_publish
    );
}
