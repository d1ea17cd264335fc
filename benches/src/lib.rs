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
