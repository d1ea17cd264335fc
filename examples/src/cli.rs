//! Command-line pieces shared by the binaries (`clap` derive).

use std::path::PathBuf;

use crate::pki::{DemoPki, Identity, PkiError, load_ca_file};
use rustls_pki_types::CertificateDer;

/// Logging options.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log filter (`error`, `warn`, `info`, `debug`, `trace`, or a `tracing` directive list
    /// such as `mcptt_tls=debug,info`). `RUST_LOG` overrides it when set.
    #[arg(long, default_value = "warn", value_name = "FILTER")]
    pub log_level: String,
}

impl LogArgs {
    /// Installs a `tracing` subscriber writing to stderr (once per process; later calls are
    /// ignored).
    pub fn init(&self) {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .or_else(|_| tracing_subscriber::EnvFilter::try_new(&self.log_level))
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    }
}

/// Certificate options. With none given, a certificate is issued by the demo CA kept in
/// `--pki-dir` (created on first use, shared by the binaries so they trust each other).
#[derive(Debug, Clone, clap::Args)]
pub struct TlsArgs {
    /// PEM certificate chain of this node (leaf first). Requires `--key`.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// PEM private key of this node (PKCS#8, SEC1 or PKCS#1).
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// PEM file of the CA certificates trusted to authenticate peers.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Directory of the demo CA used when no certificate or CA file is given.
    #[arg(long, value_name = "DIR", default_value_os_t = DemoPki::default_dir())]
    pub pki_dir: PathBuf,
}

/// A node's TLS material: its own identity and the trust anchors for peers.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    /// Own certificate chain and key.
    pub identity: Identity,
    /// Trusted CA certificates.
    pub roots: Vec<CertificateDer<'static>>,
}

impl TlsArgs {
    /// Loads the given files, or issues from the demo CA what is missing. `demo_subject`
    /// names the certificate to issue: a server node URI, or a UE's public user identity
    /// when `ue` is true.
    pub fn material(&self, demo_subject: &str, ue: bool) -> Result<TlsMaterial, PkiError> {
        let need_pki = self.cert.is_none() || self.ca.is_none();
        let pki = if need_pki {
            Some(DemoPki::load_or_generate(&self.pki_dir)?)
        } else {
            None
        };
        let identity = match (&self.cert, &self.key, &pki) {
            (Some(c), Some(k), _) => Identity::from_pem_files(c, k)?,
            (_, _, Some(pki)) if ue => pki.issue_ue(demo_subject)?,
            (_, _, Some(pki)) => pki.issue_server(demo_subject)?,
            _ => return Err(PkiError::BadName("--cert without --key".into())),
        };
        let roots = match (&self.ca, &pki) {
            (Some(path), _) => load_ca_file(path)?,
            (None, Some(pki)) => vec![pki.ca_cert()],
            (None, None) => return Err(PkiError::BadName("no CA".into())),
        };
        Ok(TlsMaterial { identity, roots })
    }
}

/// Reads a whitespace-separated table file: one entry per line, `KEY VALUE...`; blank lines
/// and lines starting with `#` are skipped. Used for `--identities` (certificate identity →
/// public user identities) and `--ue-directory` (public user identity → kind).
pub fn read_table(path: &std::path::Path) -> Result<Vec<(String, Vec<String>)>, PkiError> {
    let text = std::fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(parse_table(&text))
}

/// Parses the table format of [`read_table`].
#[must_use]
pub fn parse_table(text: &str) -> Vec<(String, Vec<String>)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let key = words.next()?.to_owned();
            Some((key, words.map(str::to_owned).collect()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_skips_comments_and_blank_lines() {
        let t = parse_table("# c\n\nsip:gw1@example.com gateway\n  sip:a@x  sip:b@x sip:c@x \n");
        assert_eq!(
            t,
            vec![
                ("sip:gw1@example.com".to_owned(), vec!["gateway".to_owned()]),
                (
                    "sip:a@x".to_owned(),
                    vec!["sip:b@x".to_owned(), "sip:c@x".to_owned()]
                ),
            ]
        );
    }
}
