//! The actor tasks. `flow` starts them in one process on loopback ports; the separate
//! binaries (`sip-core`, `mcptt-server`, `ue`) run the same code.

pub mod clock;
pub mod config;
pub mod login;
pub mod mcptt_server;
pub mod net;
pub mod sip_core;
pub mod ue;
pub mod wire;

use std::process::ExitCode;

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

/// Why an actor could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActorError {
    /// A workspace crate this actor needs does not offer what it needs yet: the step is not
    /// wired, and nothing is faked in its place.
    #[error("step {step} not wired: {what}")]
    NotWired {
        /// The first step that cannot happen.
        step: u8,
        /// What is missing.
        what: String,
    },
    /// Certificates or keys could not be loaded or issued.
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    /// A socket could not be bound or used.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// Invalid configuration.
    #[error("configuration: {0}")]
    Config(String),
}

impl ActorError {
    /// The step this error blocks (0 when it blocks everything).
    #[must_use]
    pub fn step(&self) -> u8 {
        match self {
            Self::NotWired { step, .. } => *step,
            _ => 0,
        }
    }
}

/// Runs a server binary: builds the runtime, starts the actor with `start`, waits for Ctrl-C,
/// then stops it with `stop`. Exit code 2 when it could not start.
pub fn serve<H, F, S, SF>(name: &str, start: F, stop: S) -> ExitCode
where
    F: Future<Output = Result<H, ActorError>>,
    S: FnOnce(H) -> SF,
    SF: Future<Output = ()>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async {
        let handle = match start.await {
            Ok(h) => h,
            Err(e) => {
                eprintln!("{name}: {e}");
                return ExitCode::from(2);
            }
        };
        if let Err(e) = tokio::signal::ctrl_c().await {
            eprintln!("{name}: cannot wait for Ctrl-C: {e}");
        }
        eprintln!("{name}: shutting down");
        stop(handle).await;
        ExitCode::SUCCESS
    })
}
