//! Command-line access-token validator.
//!
//! ```text
//! cargo run -q --release -p mcptt-token --example validate -- \
//!     --jwks FILE --issuer ISS --audience AUD [--scope SCOPE] \
//!     [--now UNIX_SECONDS] [--leeway SECONDS] [--max-bytes N]
//! ```
//!
//! Reads one token per line on stdin and prints one line per token:
//! `accept sub=<sub> mcptt_id=<id>` or `reject <kind>: <message>`.
//! Defaults: scope `3gpp:mcptt:ptt_server`, now = the system clock,
//! leeway 60, max-bytes 8192. Exit status 0 when every token was read,
//! 2 on a usage or key-file error.

use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mcptt_token::{Error, JwkSet, KeyStore, SCOPE_PTT_SERVER, Validator, ValidatorConfig};

/// Validates MCPTT access tokens read from stdin, one per line.
#[derive(Debug, Parser)]
#[command(name = "validate")]
struct Args {
    /// JWKS file with the issuer's public keys.
    #[arg(long)]
    jwks: PathBuf,
    /// Expected issuer (`iss`).
    #[arg(long)]
    issuer: String,
    /// Expected audience (in `aud`).
    #[arg(long)]
    audience: String,
    /// Required scope.
    #[arg(long, default_value = SCOPE_PTT_SERVER)]
    scope: String,
    /// Validation time, Unix seconds (default: the system clock).
    #[arg(long)]
    now: Option<u64>,
    /// Clock leeway in seconds (at most 300).
    #[arg(long, default_value_t = 60)]
    leeway: u64,
    /// Longest token accepted, in bytes.
    #[arg(long, default_value_t = 8192)]
    max_bytes: usize,
}

/// The validator described by the arguments and the JWKS document.
fn build(args: &Args, jwks_json: &str) -> Result<Validator, Error> {
    let keys = JwkSet::from_json(jwks_json)?;
    let config = ValidatorConfig::new(&args.issuer, &args.audience)
        .scope(&args.scope)
        .leeway(args.leeway)
        .max_token_bytes(args.max_bytes);
    Validator::new(config, KeyStore::new(keys))
}

/// The output line for one token.
fn verdict(validator: &Validator, token: &str, now: u64) -> String {
    match validator.validate_access_token(token, now) {
        Ok(at) => format!(
            "accept sub={} mcptt_id={}",
            at.subject.escape_debug(),
            at.mcptt_id
        ),
        Err(e) => format!("reject {}: {e}", e.kind()),
    }
}

/// Reads lines (each at most `max_bytes` plus a line ending kept in
/// memory; longer lines are drained and refused by length) and writes one
/// verdict per line.
fn run(
    validator: &Validator,
    now: u64,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> io::Result<()> {
    let max = validator.config().limits().max_bytes;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = io::Read::take(&mut *input, max as u64 + 2).read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(());
        }
        let complete = line.last() == Some(&b'\n');
        if !complete && line.len() > max {
            // Too long: count and drop the rest of the line.
            let mut total = line.len();
            loop {
                let buf = input.fill_buf()?;
                if buf.is_empty() {
                    break;
                }
                match buf.iter().position(|b| *b == b'\n') {
                    Some(i) => {
                        total += i;
                        input.consume(i + 1);
                        break;
                    }
                    None => {
                        let len = buf.len();
                        total += len;
                        input.consume(len);
                    }
                }
            }
            let e = Error::TooLarge {
                limit: max,
                actual: total,
            };
            writeln!(out, "reject {}: {e}", e.kind())?;
            continue;
        }
        if complete {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        let token = String::from_utf8_lossy(&line);
        writeln!(out, "{}", verdict(validator, &token, now))?;
    }
}

// Examples may read the clock (STYLE.md §2); the library never does.
#[allow(clippy::disallowed_methods)]
fn system_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let jwks = match std::fs::read_to_string(&args.jwks) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("validate: cannot read {}: {e}", args.jwks.display());
            return ExitCode::from(2);
        }
    };
    let validator = match build(&args, &jwks) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("validate: {e}");
            return ExitCode::from(2);
        }
    };
    let now = args.now.unwrap_or_else(system_now);
    let stdin = io::stdin();
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    match run(&validator, now, &mut stdin.lock(), &mut out).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("validate: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use mcptt_token::{AccessTokenClaims, Algorithm, Signer, SigningKey};

    const NOW: u64 = 1_800_000_000;

    fn setup(extra: &[&str]) -> (Validator, Signer) {
        let der = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/p256_rfc7515_a3.pk8.der"
        ))
        .unwrap();
        let key = SigningKey::from_pkcs8(Algorithm::Es256, "k1", &der).unwrap();
        let jwks = JwkSet::from_keys([key.public_jwk()]).unwrap().to_json();
        let mut argv = vec![
            "validate",
            "--jwks",
            "unused",
            "--issuer",
            "https://idms.example",
            "--audience",
            "sip:srv@mcptt.example",
        ];
        argv.extend_from_slice(extra);
        let args = Args::try_parse_from(argv).unwrap();
        (build(&args, &jwks).unwrap(), Signer::new(key))
    }

    fn claims() -> AccessTokenClaims {
        AccessTokenClaims {
            iss: "https://idms.example".into(),
            sub: "alice".into(),
            aud: vec!["sip:srv@mcptt.example".into()],
            exp: NOW + 600,
            iat: NOW,
            jti: "j1".into(),
            client_id: "c".into(),
            scope: "3gpp:mcptt:ptt_server".into(),
            mcptt_id: "sip:alice@mcptt.example".into(),
            ..Default::default()
        }
    }

    fn lines(v: &Validator, input: &str) -> Vec<String> {
        let mut out = Vec::new();
        run(v, NOW, &mut input.as_bytes(), &mut out).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn one_verdict_per_line() {
        let (v, signer) = setup(&[]);
        let good = signer.sign_access_token(&claims()).unwrap();
        let other_aud = signer
            .sign_access_token(&AccessTokenClaims {
                aud: vec!["x".into()],
                ..claims()
            })
            .unwrap();
        let input = format!("{good}\n{other_aud}\r\nnot-a-token\n\n{good}");
        let out = lines(&v, &input);
        assert_eq!(out.len(), 5, "{out:?}");
        assert_eq!(out[0], "accept sub=alice mcptt_id=sip:alice@mcptt.example");
        assert!(
            out[1].starts_with(
                "reject bad_audience: wrong audience: expected \"sip:srv@mcptt.example\""
            ),
            "{}",
            out[1]
        );
        assert!(
            out[2].starts_with("reject malformed_segments: "),
            "{}",
            out[2]
        );
        assert!(
            out[3].starts_with("reject malformed_segments: "),
            "{}",
            out[3]
        );
        assert_eq!(out[4], out[0]);
    }

    #[test]
    fn flags_change_the_checks() {
        let (v, signer) = setup(&[
            "--scope",
            "3gpp:mc:ptt_service",
            "--leeway",
            "0",
            "--max-bytes",
            "4000",
        ]);
        let good = signer.sign_access_token(&claims()).unwrap();
        assert!(lines(&v, &good)[0].starts_with("reject insufficient_scope: "));
        let later = signer
            .sign_access_token(&AccessTokenClaims {
                scope: "3gpp:mc:ptt_service".into(),
                ..claims()
            })
            .unwrap();
        assert!(lines(&v, &later)[0].starts_with("accept "));
        // A line longer than --max-bytes is drained and refused; the next line still counts.
        let out = lines(&v, &format!("{}\n{later}\n", "x".repeat(10_000)));
        assert_eq!(
            out[0],
            "reject too_large: token too large: 10000 bytes, limit 4000"
        );
        assert!(out[1].starts_with("accept "));
        // Leeway above 5 minutes is a configuration error.
        let args = Args::try_parse_from([
            "validate",
            "--jwks",
            "f",
            "--issuer",
            "i",
            "--audience",
            "a",
            "--leeway",
            "301",
        ])
        .unwrap();
        assert_eq!(
            build(&args, "{\"keys\":[]}").unwrap_err().kind(),
            "api_misuse"
        );
        // Subjects are escaped so a token cannot forge output lines.
        let sneaky = signer
            .sign_access_token(&AccessTokenClaims {
                sub: "eve\naccept sub=root".into(),
                scope: "3gpp:mc:ptt_service".into(),
                ..claims()
            })
            .unwrap();
        let out = lines(&v, &sneaky);
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0],
            "accept sub=eve\\naccept sub=root mcptt_id=sip:alice@mcptt.example"
        );
    }
}
