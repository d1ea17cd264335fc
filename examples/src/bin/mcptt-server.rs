//! `mcptt-server`: the MCPTT application server of the flow.
//!
//! Accepts third-party REGISTER, PUBLISH (`Event: poc-settings`) and SUBSCRIBE
//! (`Event: mcptt-service-state`) from the SIP core, validates access tokens against the IdMS
//! JWKS, and sends NOTIFYs with each user's service state.
//!
//! With `--store redis://…`, several instances share publications, subscriptions and service
//! state, and take over the subscription dialogs of a dead instance (see `--help`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mcptt_examples::actors::clock::Clock;
use mcptt_examples::actors::config::{
    DEFAULT_DIALOG_LEASE, MEMORY_STORE, McpttServerConfig, Transport,
};
use mcptt_examples::actors::{login, mcptt_server};
use mcptt_examples::cli::{LogArgs, TlsArgs, read_table};
use mcptt_examples::trace::Trace;
use mcptt_service_state::UeKind;

/// MCPTT server of the flow. With no certificate files, a certificate is issued by the demo
/// CA in --pki-dir, shared with the other demo binaries.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address the SIP core connects to.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:5062")]
    listen: SocketAddr,
    /// Transport accepted from the SIP core.
    #[arg(long, value_enum, default_value_t = Transport::Tls)]
    transport: Transport,
    /// This server's SIP URI.
    #[arg(long, value_name = "URI", default_value = "sip:mcptt.example.com")]
    node_uri: String,
    /// Public service identity (Request-URI of PUBLISH and SUBSCRIBE).
    #[arg(
        long,
        value_name = "URI",
        default_value = "sip:mcptt-server@example.com"
    )]
    psi: String,
    /// Base URL of the IdMS whose JWKS signs the access tokens.
    #[arg(long, value_name = "URL", default_value = "https://127.0.0.1:8443")]
    idms: String,
    /// Expected token issuer (default: the IdMS discovery document's `issuer`).
    #[arg(long, value_name = "URL")]
    issuer: Option<String>,
    /// PEM file of the CA that signed the IdMS's HTTPS certificate (default: the demo CA).
    #[arg(long, value_name = "FILE")]
    idms_ca: Option<PathBuf>,
    /// Expected token audience.
    #[arg(long, default_value = "mcptt-server")]
    audience: String,
    /// Clock leeway for token times, in seconds (at most 300).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    leeway: u64,
    /// Accepted MCPTT scope (repeat for several; any one suffices).
    #[arg(long = "scope", value_name = "SCOPE", default_values_t = [
        "3gpp:mcptt:ptt_server".to_owned(), "3gpp:mc:ptt_service".to_owned()])]
    scopes: Vec<String>,
    /// UE directory, one line per UE: `PUBLIC-USER-IDENTITY personal|shareable|gateway`
    /// (UEs not listed are personal).
    #[arg(long, value_name = "FILE")]
    ue_directory: Option<PathBuf>,
    /// Identity of a SIP core allowed to send third-party REGISTERs (repeat for several): its
    /// TLS certificate's first `sip:` URI SAN, or `tcp:IP` for a TCP peer.
    #[arg(long = "trusted-core", value_name = "ID", default_values_t = [
        "sip:scscf.example.com".to_owned(), "tcp:127.0.0.1".to_owned()])]
    trusted_cores: Vec<String>,
    /// Subscription expiry granted, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    subscription_expires: u32,
    /// Where publications, subscriptions and service state live: `memory` (this process
    /// only), `redis://HOST:PORT` (one Redis node, shared by several MCPTT server instances
    /// behind the SIP cores' `--mcptt-server` list), or comma-separated `redis://HOST:PORT`
    /// seed nodes of a Redis Cluster. A Redis store is checked with PING at start-up; while
    /// Redis is unreachable requests are answered 503 with Retry-After and the reason is
    /// logged. Each instance gets a random instance id (printed at start-up); a change one
    /// instance makes is NOTIFYed by the instance holding the subscriber's dialog.
    #[arg(long, value_name = "memory|redis://HOST:PORT[,...]", default_value = MEMORY_STORE)]
    store: String,
    /// Seconds this instance's lease on its subscription dialogs lasts in a shared store
    /// (renewed at half that): when it dies, another instance takes its dialogs over within
    /// this time (plus about a second) and NOTIFYs them from then on.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_DIALOG_LEASE.as_secs())]
    dialog_lease: u64,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    log: LogArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    args.log.init();
    let tls = match args.tls.material(&args.node_uri, false) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("mcptt-server: {e}");
            return ExitCode::from(2);
        }
    };
    let mut ue_directory = Vec::new();
    if let Some(path) = &args.ue_directory {
        let table = match read_table(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("mcptt-server: {e}");
                return ExitCode::from(2);
            }
        };
        for (impu, words) in table {
            match words
                .first()
                .map(String::as_str)
                .unwrap_or("")
                .parse::<UeKind>()
            {
                Ok(k) => ue_directory.push((impu, k)),
                Err(e) => {
                    eprintln!("mcptt-server: {}: {impu}: {e}", path.display());
                    return ExitCode::from(2);
                }
            }
        }
    }
    let config = McpttServerConfig {
        listen: args.listen,
        transport: args.transport,
        tls,
        node_uri: args.node_uri,
        psi: args.psi,
        keys: None,
        leeway: args.leeway,
        audience: args.audience,
        scopes: args.scopes,
        ue_directory,
        subscription_expires: args.subscription_expires,
        trusted_cores: args.trusted_cores,
        store: args.store,
        dialog_lease: Duration::from_secs(args.dialog_lease.max(2)),
    };
    let idms_roots = match args
        .idms_ca
        .as_deref()
        .map(mcptt_examples::pki::load_ca_file)
    {
        None => config.tls.roots.clone(),
        Some(Ok(r)) => r,
        Some(Err(e)) => {
            eprintln!("mcptt-server: {e}");
            return ExitCode::from(2);
        }
    };
    let (idms, issuer) = (args.idms, args.issuer);
    let mut config = config;
    mcptt_examples::actors::serve(
        "mcptt-server",
        async move {
            let keys =
                login::fetch_keys(&idms, issuer.as_deref(), &idms_roots, &Clock::new()).await?;
            config.keys = Some(keys);
            let handle = mcptt_server::spawn(config, Trace::echoing(), Clock::new()).await?;
            eprintln!(
                "mcptt-server: listening on {}, service-state store {}, instance id {:016x}",
                handle.local_addr(),
                handle.store(),
                handle.instance_id()
            );
            Ok(handle)
        },
        |h| h.shutdown(),
    )
}
