//! The actor tasks. `flow` starts them in one process on loopback ports; the separate
//! binaries (`sip-core`, `mcptt-server`, `ue`) run the same code.

use crate::demo::{FlowConfig, SignInResult};
use crate::scenario::SignIn;
use crate::steps::StepFailure;
use crate::trace::Trace;

/// The servers of a `flow` run (IdMS, SIP core, MCPTT server).
#[derive(Debug)]
pub struct Servers {
    _private: (),
}

impl Servers {
    /// Stops every server task.
    pub async fn shutdown(self) {}
}

fn not_wired(step: u8, what: &str) -> StepFailure {
    StepFailure {
        step,
        reason: format!("not wired yet: {what}"),
    }
}

/// Starts IdMS, MCPTT server and SIP core on loopback ports.
pub async fn start_servers(
    _config: &FlowConfig,
    _sign_ins: &[SignIn],
    _trace: &Trace,
) -> Result<Servers, StepFailure> {
    Err(not_wired(
        1,
        "the IdMS and its UE client (examples/src/idm, mcptt-idm) are not available in this build",
    ))
}

/// Runs every sign-in of the scenario and reports each one.
pub async fn run_ues(
    _config: &FlowConfig,
    _servers: &Servers,
    sign_ins: &[SignIn],
    _trace: &Trace,
    _on_done: &(dyn Fn() + Sync),
) -> Vec<SignInResult> {
    sign_ins
        .iter()
        .map(|s| SignInResult {
            label: s.label.clone(),
            latency: None,
            outcome: Err(not_wired(1, "UE actor")),
        })
        .collect()
}
