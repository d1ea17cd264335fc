//! UE: logs in at the IdMS, connects with its client certificate, REGISTER, PUBLISH,
//! SUBSCRIBE, and answers each NOTIFY.

use super::config::UeConfig;
use crate::steps::StepFailure;
use crate::trace::Trace;

/// What a UE run ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UeOutcome {
    /// Combined state of the last NOTIFY (`full-access`, `limited`, `none`).
    pub state: String,
    /// Authorisation state of the last NOTIFY.
    pub authorisation: String,
}

/// Runs one sign-in through steps 1–18 and returns the state the last NOTIFY showed.
pub async fn run(config: &UeConfig, trace: &Trace) -> Result<UeOutcome, StepFailure> {
    let _ = (config, trace);
    Err(StepFailure {
        step: 1,
        reason: "not wired yet: UE-side IdMS client (examples/src/idm) not available".into(),
    })
}
