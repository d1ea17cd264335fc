//! `sip-core`: the SIP core of the MCPTT flow (registrar and proxy of the user-service core).
//!
//! Accepts UEs over mutual TLS, registers them (certificate → identity check), tells the MCPTT
//! server by third-party REGISTER, and proxies PUBLISH / SUBSCRIBE / NOTIFY between UEs and the
//! MCPTT server, asserting `P-Asserted-Identity` and stripping any the UE sent.
//!
//! Several MCPTT server instances (sharing their state through `mcptt-server --store
//! redis://…`) may stand behind it: `--mcptt-server` takes a list, tried in order with
//! failover (see the `--help` text).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mcptt_examples::actors::clock::Clock;
use mcptt_examples::actors::config::{
    DEFAULT_MCPTT_HOLD_DOWN, DEFAULT_MCPTT_TIMEOUT, MEMORY_STORE, SipCoreConfig, Transport,
};
use mcptt_examples::actors::sip_core;
use mcptt_examples::cli::{LogArgs, TlsArgs, read_table};
use mcptt_examples::trace::Trace;

/// SIP core (registrar + proxy) of the MCPTT flow. With no certificate files, a certificate
/// is issued by the demo CA in --pki-dir, shared with the other demo binaries.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address UEs connect to (SIP over mutual TLS).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:5061")]
    listen: SocketAddr,
    /// Address of an MCPTT server instance; repeat the flag or separate addresses with
    /// commas for several instances (sharing their state through `mcptt-server --store
    /// redis://…`). Requests (third-party REGISTER, PUBLISH, SUBSCRIBE) go to the first
    /// listed server not held down; when connecting or sending fails, the connection closes,
    /// or no final answer comes within --mcptt-timeout, that server is held down for
    /// --mcptt-hold-down seconds (tried after the others) and the request goes to the next
    /// server not tried yet; a UE request no server answered gets 503 with Retry-After.
    /// NOTIFYs from any instance are relayed to the UE.
    #[arg(
        long = "mcptt-server",
        value_name = "ADDR:PORT[,ADDR:PORT...]",
        value_delimiter = ',',
        default_value = "127.0.0.1:5062"
    )]
    mcptt_servers: Vec<SocketAddr>,
    /// Transport towards the MCPTT servers.
    #[arg(long, value_enum, default_value_t = Transport::Tls)]
    mcptt_transport: Transport,
    /// Seconds a request forwarded to an MCPTT server waits for a final answer before it
    /// fails over to the next server.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_MCPTT_TIMEOUT.as_secs())]
    mcptt_timeout: u64,
    /// Seconds a failed MCPTT server is tried only after the others.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_MCPTT_HOLD_DOWN.as_secs())]
    mcptt_hold_down: u64,
    /// This node's SIP URI (Via, From/Contact of third-party REGISTERs, certificate URI SAN).
    #[arg(long, value_name = "URI", default_value = "sip:scscf.example.com")]
    node_uri: String,
    /// The MCPTT server's SIP URI (Request-URI of third-party REGISTERs).
    #[arg(long, value_name = "URI", default_value = "sip:mcptt.example.com")]
    application_server: String,
    /// The MCPTT server's public service identity (PUBLISH/SUBSCRIBE Request-URI).
    #[arg(
        long,
        value_name = "URI",
        default_value = "sip:mcptt-server@example.com"
    )]
    psi: String,
    /// Table of grants, one per line: `CERT-IDENTITY PUBLIC-USER-IDENTITY...`: the
    /// certificate identity (its first `sip:` URI SAN, else DNS SAN or CN) may register those
    /// public user identities. Default: the demo grants, `sip:ueN@example.com` (N = 1..1000)
    /// and `sip:gwN@example.com` (N = 1..10) each to the certificate carrying that URI.
    #[arg(long, value_name = "FILE")]
    identities: Option<PathBuf>,
    /// Most simultaneous UE connections from one IP address.
    #[arg(long, value_name = "N", default_value_t = 256)]
    max_connections_per_ip: usize,
    /// Largest registration expiry granted, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    max_expires: u32,
    /// Where the registrar keeps its bindings: `memory` (this process only), `redis://HOST:PORT`
    /// (one Redis node, shared by several SIP core instances behind one address), or
    /// comma-separated `redis://HOST:PORT` seed nodes of a Redis Cluster. A Redis store is
    /// checked with PING at start-up; while Redis is unreachable REGISTERs are answered
    /// 503 with Retry-After and the reason is logged.
    #[arg(long, value_name = "memory|redis://HOST:PORT[,...]", default_value = MEMORY_STORE)]
    store: String,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    log: LogArgs,
}

/// The demo grants: each demo UE identity to the certificate that carries it.
fn demo_grants() -> Vec<(String, Vec<String>)> {
    let ue = (1..=1000).map(|n| format!("sip:ue{n}@example.com"));
    let gw = (1..=10).map(|n| format!("sip:gw{n}@example.com"));
    ue.chain(gw).map(|u| (u.clone(), vec![u])).collect()
}

fn main() -> ExitCode {
    let args = Args::parse();
    args.log.init();
    let tls = match args.tls.material(&args.node_uri, false) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("sip-core: {e}");
            return ExitCode::from(2);
        }
    };
    let identities = match args.identities.as_deref().map(read_table).transpose() {
        Ok(Some(t)) => t,
        Ok(None) => demo_grants(),
        Err(e) => {
            eprintln!("sip-core: {e}");
            return ExitCode::from(2);
        }
    };
    let config = SipCoreConfig {
        listen: args.listen,
        tls,
        mcptt_servers: args.mcptt_servers,
        mcptt_transport: args.mcptt_transport,
        mcptt_timeout: Duration::from_secs(args.mcptt_timeout.max(1)),
        mcptt_hold_down: Duration::from_secs(args.mcptt_hold_down),
        node_uri: args.node_uri,
        application_server: args.application_server,
        psi: args.psi,
        identities,
        max_expires: args.max_expires,
        max_connections_per_ip: args.max_connections_per_ip,
        store: args.store,
    };
    mcptt_examples::actors::serve(
        "sip-core",
        async move {
            let handle = sip_core::spawn(config, Trace::echoing(), Clock::new()).await?;
            eprintln!(
                "sip-core: listening on {} (TLS), registration store {}",
                handle.local_addr(),
                handle.store()
            );
            Ok(handle)
        },
        |h| h.shutdown(),
    )
}
