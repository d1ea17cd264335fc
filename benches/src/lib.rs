//! Criterion benchmarks of the mcptt crates live in `benches/`; this library holds the few
//! pieces several of them share.

use mcptt_service_state::{TokenGrant, TokenValidator};

/// A token validator for the service-state benches: claims from `tok|<mcptt_id>|<exp>`, no
/// signature to verify (signature checks are excluded from those figures).
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainTokens;

impl TokenValidator for PlainTokens {
    fn validate(
        &self,
        token: &str,
        _now_unix: u64,
    ) -> Result<TokenGrant, Box<dyn std::error::Error + Send + Sync>> {
        let mut it = token.splitn(3, '|');
        let (Some("tok"), Some(id), Some(exp)) = (it.next(), it.next(), it.next()) else {
            return Err("not a bench token".into());
        };
        Ok(TokenGrant {
            mcptt_id: id.to_owned(),
            client_id: Some("mcptt-client".into()),
            expires_at: exp.parse()?,
        })
    }
}

/// The UE's 200 OK to a NOTIFY as these benches write it (outside the timed part): the
/// request's Via, From, To, Call-ID and CSeq lines, copied as they are, and no body.
#[must_use]
pub fn notify_ok(notify: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(notify);
    let mut out = String::from("SIP/2.0 200 OK\r\n");
    for line in text.split("\r\n").skip(1) {
        let name = line.split(':').next().unwrap_or("");
        if ["Via", "From", "To", "Call-ID", "CSeq"].contains(&name) {
            out.push_str(line);
            out.push_str("\r\n");
        }
        if line.is_empty() {
            break;
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out.into_bytes()
}
