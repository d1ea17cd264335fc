//! IdMS of the MCPTT flow (step 1): OpenID-Connect-style identity management server over HTTPS.
//!
//! Endpoints: `/.well-known/openid-configuration`, `/authorize` (HTML login form, or a form
//! POST from a program), `/token`, `/jwks`. With no `--users`, demo users are generated (see
//! `mcptt_examples::idm::demo`); with no `--cert`/`--key`, a self-signed certificate for
//! localhost / 127.0.0.1 is generated and written to `--write-cert`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mcptt_examples::idm::{demo, server};
use mcptt_idm::password::PasswordHash;
use mcptt_idm::{Directory, Idms, IdmsConfig, KeyRing, SystemRandom};
use mcptt_token::{Algorithm, SigningKey};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// MCPTT identity management server (HTTPS).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// TLS certificate chain (PEM). Generated (self-signed) when absent.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// TLS private key (PEM, PKCS#8/PKCS#1/SEC1).
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// Where to write the generated self-signed certificate (for clients to trust).
    #[arg(long, value_name = "FILE", default_value = "idms-cert.pem")]
    write_cert: PathBuf,
    /// User directory (TOML, format in the mcptt-idm `directory` module docs). Demo users when absent.
    #[arg(long, value_name = "FILE")]
    users: Option<PathBuf>,
    /// Issuer identifier (default: https://LISTEN-ADDRESS).
    #[arg(long, value_name = "URL")]
    issuer: Option<String>,
    /// Audience (`aud`) of access tokens: the MCPTT server.
    #[arg(long, default_value = "mcptt-server")]
    audience: String,
    /// Access token lifetime, seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    access_lifetime: u64,
    /// Extra redirect URI registered for the demo client (repeatable).
    #[arg(long = "demo-redirect", value_name = "URI")]
    demo_redirects: Vec<String>,
    /// Write the generated demo users file here (edit it and pass it back with --users).
    #[arg(long, value_name = "FILE", conflicts_with = "users")]
    write_users: Option<PathBuf>,
    /// Rotate the token signing key every SECS seconds (0: never). The JWKS keeps the
    /// previous key so tokens signed before a rotation still verify.
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    rotate_every: u64,
    /// PBKDF2 iterations for demo users.
    #[arg(long, default_value_t = 100_000)]
    demo_iterations: u32,
    /// Print a password hash for a users file (reads the password from this argument) and exit.
    #[arg(long, value_name = "PASSWORD")]
    hash_password: Option<String>,
    /// Most simultaneous connections.
    #[arg(long, default_value_t = 256)]
    max_connections: usize,
}

fn load_tls(args: &Args) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| format!("{}: {e}", cert.display()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{}: {e}", cert.display()))?;
            if chain.is_empty() {
                return Err(format!("{}: no certificate", cert.display()));
            }
            let key =
                PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
            Ok((chain, key))
        }
        _ => {
            let (der, key, pem) =
                demo::self_signed_cert().map_err(|e| format!("certificate generation: {e}"))?;
            std::fs::write(&args.write_cert, pem)
                .map_err(|e| format!("{}: {e}", args.write_cert.display()))?;
            tracing::info!(
                "self-signed certificate for localhost/127.0.0.1 written to {}",
                args.write_cert.display()
            );
            Ok((vec![der], key))
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let rng = SystemRandom::new();
    if let Some(pw) = &args.hash_password {
        let hash = PasswordHash::generate(pw, mcptt_idm::password::DEFAULT_ITERATIONS, &rng)
            .map_err(|e| e.to_string())?;
        println!("{}", hash.encode());
        return Ok(());
    }
    let directory = match &args.users {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Directory::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => {
            let text = demo::demo_users_toml(args.demo_iterations, &args.demo_redirects, &rng)
                .map_err(|e| e.to_string())?;
            if let Some(path) = &args.write_users {
                std::fs::write(path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
                tracing::info!("demo users file written to {}", path.display());
            }
            let dir = Directory::from_toml(&text).map_err(|e| e.to_string())?;
            tracing::info!(
                "demo users {:?} in {}: password NAME-password, TOTP secret {} (SHA-1, 6 digits, 30 s), SIM K = SHA-256(\"mcptt-demo-sim:NAME\")[..16]; client {} with redirect {}",
                demo::DEMO_USERS,
                demo::DEMO_DOMAIN,
                demo::demo_totp_base32(),
                demo::DEMO_CLIENT_ID,
                demo::DEMO_REDIRECT_URI
            );
            dir
        }
    };
    let (chain, key) = load_tls(&args)?;
    let tls = server::tls_config(chain, key).map_err(|e| e.to_string())?;
    // Two signing keys: the JWKS always lists the previous one, as after a rotation.
    let ring_rng = ring::rand::SystemRandom::new();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let previous = SigningKey::generate(
        Algorithm::Es256,
        format!("es256-{}", stamp.saturating_sub(1)),
        &ring_rng,
    )
    .map_err(|e| e.to_string())?;
    let current = SigningKey::generate(Algorithm::Es256, format!("es256-{stamp}"), &ring_rng)
        .map_err(|e| e.to_string())?;
    let mut keys = KeyRing::new(previous);
    keys.rotate(current);
    let mut config = IdmsConfig::new(
        args.issuer
            .clone()
            .unwrap_or_else(|| format!("https://{}", args.listen)),
    );
    config.audience = vec![args.audience.clone()];
    config.access_lifetime = Duration::from_secs(args.access_lifetime.max(1));
    let idms = Idms::new(config, directory, keys).map_err(|e| e.to_string())?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("{}: {e}", args.listen))?;
        let handle = server::spawn(
            listener,
            tls,
            idms,
            server::system_clock(),
            args.max_connections,
        )
        .map_err(|e| e.to_string())?;
        tracing::info!("IdMS listening on {}", handle.base_url());
        if args.rotate_every > 0 {
            spawn_rotation(handle.idms.clone(), Duration::from_secs(args.rotate_every));
        }
        tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
        handle.shutdown();
        Ok(())
    })
}

/// Rotates the signing key every `period`, keeping the new key and the one before it.
fn spawn_rotation(idms: std::sync::Arc<std::sync::Mutex<Idms>>, period: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tick.tick().await;
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let key = match SigningKey::generate(
                Algorithm::Es256,
                format!("es256-{stamp}"),
                &ring::rand::SystemRandom::new(),
            ) {
                Ok(k) => k,
                Err(e) => {
                    tracing::error!("key rotation: {e}");
                    continue;
                }
            };
            let mut idms = idms
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let keys = idms.keys_mut();
            keys.rotate(key);
            let old: Vec<String> = keys
                .kids()
                .iter()
                .rev()
                .skip(2)
                .map(|k| (*k).to_owned())
                .collect();
            for kid in old {
                keys.retire(&kid);
            }
            tracing::info!("signing key rotated; JWKS now {:?}", keys.kids());
        }
    });
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("idms: {e}");
            ExitCode::FAILURE
        }
    }
}
