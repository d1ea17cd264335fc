//! `ue`: an MCPTT client running the UE side of the flow.
//!
//! Logs in at the IdMS with the chosen method (authorization code + PKCE), connects to the SIP
//! core with its client certificate, sends REGISTER, PUBLISH (with the access token) and
//! SUBSCRIBE, and prints each NOTIFY.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mcptt_examples::actors::clock::Clock;
use mcptt_examples::actors::config::{LoginMethod, UeConfig};
use mcptt_examples::actors::ue;
use mcptt_examples::cli::{LogArgs, TlsArgs};
use mcptt_examples::trace::Trace;

/// MCPTT UE of the flow. With no certificate files, a client certificate for --impu is issued
/// by the demo CA in --pki-dir, shared with the other demo binaries.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Base URL of the IdMS.
    #[arg(long, value_name = "URL", default_value = "https://127.0.0.1:8443")]
    idms: String,
    /// PEM file of the CA that signed the IdMS's HTTPS certificate (default: the CAs of --ca,
    /// or the demo CA).
    #[arg(long, value_name = "FILE")]
    idms_ca: Option<std::path::PathBuf>,
    /// OAuth client id of this MCPTT client.
    #[arg(long, default_value = "mcptt-client")]
    client_id: String,
    /// User name at the IdMS.
    #[arg(long, default_value = "alice")]
    user: String,
    /// Password at the IdMS.
    #[arg(long, default_value = "alice-password")]
    password: String,
    /// Authentication method.
    #[arg(long, value_enum, default_value_t = LoginMethod::Password)]
    method: LoginMethod,
    /// The SIP core.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:5061")]
    sip_core: SocketAddr,
    /// Public user identity of this UE (its certificate's URI SAN).
    #[arg(long, value_name = "URI", default_value = "sip:ue1@example.com")]
    impu: String,
    /// Public service identity of the MCPTT server.
    #[arg(
        long,
        value_name = "URI",
        default_value = "sip:mcptt-server@example.com"
    )]
    psi: String,
    /// Registration expiry asked for, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    register_expires: u32,
    /// Publication expiry asked for, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    publish_expires: u32,
    /// Subscription expiry asked for, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    subscribe_expires: u32,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    log: LogArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    args.log.init();
    let tls = match args.tls.material(&args.impu, true) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ue: {e}");
            return ExitCode::from(2);
        }
    };
    let ue_label = args
        .impu
        .trim_start_matches("sip:")
        .split('@')
        .next()
        .unwrap_or("ue")
        .to_owned();
    let idms_roots = match args
        .idms_ca
        .as_deref()
        .map(mcptt_examples::pki::load_ca_file)
    {
        None => tls.roots.clone(),
        Some(Ok(r)) => r,
        Some(Err(e)) => {
            eprintln!("ue: {e}");
            return ExitCode::from(2);
        }
    };
    let config = UeConfig {
        idms_roots,
        label: format!("{ue_label}/{}", args.user),
        ue_label,
        idms: args.idms,
        client_id: args.client_id,
        user: args.user,
        password: args.password,
        method: args.method,
        sip_core: args.sip_core,
        tls,
        public_user_identity: args.impu,
        psi: args.psi,
        register_expires: args.register_expires,
        publish_expires: args.publish_expires,
        subscribe_expires: args.subscribe_expires,
        timeout: Duration::from_secs(10),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ue: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let stop = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        eprintln!("ue: Ctrl-C, signing off");
    };
    match runtime.block_on(ue::run_until(
        &config,
        &Trace::echoing(),
        &Clock::new(),
        stop,
    )) {
        Ok(outcome) => {
            println!(
                "ue: signed off cleanly; last service state {} ({})",
                outcome.state, outcome.authorisation
            );
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("ue: FAILED: {failure}");
            ExitCode::FAILURE
        }
    }
}
