//! Step 1: the user authenticates at the IdMS and the UE obtains its tokens, through the
//! UE-side IdM client (authorization code + PKCE S256) of `examples/src/idm`.

use super::config::UeConfig;
use crate::steps::StepFailure;
use crate::trace::Trace;

/// What the UE holds after step 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    /// The access token (JWS compact JWT, `typ` `at+jwt`).
    pub access_token: String,
    /// The ID token.
    pub id_token: Option<String>,
    /// The refresh token.
    pub refresh_token: Option<String>,
    /// Lifetime of the access token, seconds.
    pub expires_in: Option<u64>,
}

/// Step 1: logs the user in at the IdMS.
pub async fn login(config: &UeConfig, trace: &Trace) -> Result<Tokens, StepFailure> {
    let _ = (config, trace);
    Err(StepFailure {
        step: 1,
        reason: "not wired yet: the UE-side IdM client (examples/src/idm) is not available in this build".into(),
    })
}
