//! A real `redis-server` on a free loopback port with its own directory, killed on drop.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mcptt_store_redis::{RedisStore, RedisStoreConfig, TimeBase};

/// A running `redis-server`.
pub(crate) struct Server {
    child: Option<Child>,
    pub(crate) port: u16,
    pub(crate) dir: PathBuf,
    aof: bool,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

static NEXT_DIR: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Server {
    /// Starts a server; with `aof`, append-only persistence with fsync on every write.
    pub(crate) fn start(aof: bool) -> Self {
        let n = NEXT_DIR.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("mcptt-store-redis-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut s = Self {
            child: None,
            port: free_port(),
            dir,
            aof,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", if self.aof { "yes" } else { "no" }])
            .args(["--appendfsync", "always", "--dir"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start `redis-server` ({e}): these tests need a real Redis; \
                     install the Debian package `redis-server`"
                )
            });
        self.child = Some(child);
        // Readiness: poll until the server answers PING (bounded).
        wait_for_ping(&self.url());
    }

    /// Kills the server with SIGKILL (no clean shutdown) and waits for it to exit.
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port and directory.
    pub(crate) fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A direct client connection for inspection.
    pub(crate) fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .expect("url")
            .get_connection()
            .expect("connect")
    }

    /// A store on this server with `buckets` buckets and the given time base.
    pub(crate) fn store_with(&self, buckets: u16, tb: TimeBase) -> RedisStore {
        RedisStore::new(
            RedisStoreConfig {
                url: self.url(),
                buckets,
                response_timeout: Duration::from_secs(2),
                connect_timeout: Duration::from_millis(300),
                ..RedisStoreConfig::default()
            },
            tb,
        )
        .expect("store")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A local 3-node Redis Cluster (no replicas) on free loopback ports, as documented in
/// the crate docs: three `redis-server --cluster-enabled yes` then
/// `redis-cli --cluster create … --cluster-yes`. Nodes are killed by pid on drop.
pub(crate) struct Cluster {
    nodes: Vec<Child>,
    pub(crate) ports: Vec<u16>,
    dir: PathBuf,
}

impl Cluster {
    pub(crate) fn start() -> Self {
        let n = NEXT_DIR.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "mcptt-store-redis-cluster-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let mut c = Self {
            nodes: Vec::new(),
            ports: Vec::new(),
            dir,
        };
        for _ in 0..3 {
            let port = free_port();
            let d = c.dir.join(port.to_string());
            std::fs::create_dir_all(&d).expect("node dir");
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                ])
                // Live nodes keep serving their slots while one node is down.
                .args(["--cluster-require-full-coverage", "no"])
                .args(["--save", "", "--appendonly", "no", "--dir"])
                .arg(&d)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server (Debian package `redis-server`)");
            c.nodes.push(child);
            c.ports.push(port);
        }
        for url in c.urls() {
            wait_for_ping(&url);
        }
        let addrs: Vec<String> = c.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        // Every node must agree the cluster is up before it serves every slot.
        let deadline = Instant::now() + Duration::from_secs(20);
        for url in c.urls() {
            let client = redis::Client::open(url).expect("url");
            loop {
                let ok = client
                    .get_connection_with_timeout(Duration::from_millis(200))
                    .and_then(|mut conn| {
                        redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut conn)
                    })
                    .is_ok_and(|info| info.contains("cluster_state:ok"));
                if ok {
                    break;
                }
                assert!(Instant::now() < deadline, "cluster did not become ready");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        c
    }

    pub(crate) fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// A store on the cluster.
    pub(crate) fn store(&self, tb: TimeBase) -> RedisStore {
        RedisStore::new(
            RedisStoreConfig {
                cluster_nodes: self.urls(),
                buckets: 16,
                response_timeout: Duration::from_secs(2),
                connect_timeout: Duration::from_millis(500),
                ..RedisStoreConfig::default()
            },
            tb,
        )
        .expect("store")
    }

    /// Kills node `i` (SIGKILL, by its pid).
    pub(crate) fn kill(&mut self, i: usize) {
        if let Some(c) = self.nodes.get_mut(i) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Number of keys on each node.
    pub(crate) fn key_counts(&self) -> Vec<u64> {
        self.urls()
            .iter()
            .map(|u| {
                let mut c = redis::Client::open(u.as_str())
                    .expect("url")
                    .get_connection()
                    .expect("connect");
                redis::cmd("DBSIZE").query(&mut c).expect("DBSIZE")
            })
            .collect()
    }
}

/// Polls until the Redis at `url` answers PING; panics after 10 s.
fn wait_for_ping(url: &str) {
    let client = redis::Client::open(url).expect("url");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut c) = client.get_connection_with_timeout(Duration::from_millis(200))
            && redis::cmd("PING").query::<String>(&mut c).is_ok()
        {
            return;
        }
        assert!(Instant::now() < deadline, "redis-server did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.nodes {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
