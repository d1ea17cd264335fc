//! The `flow` demo: starts IdMS, SIP core and MCPTT server in one process on loopback ports,
//! runs the scenario's UEs through steps 1–18 and checks what every actor saw.

use std::time::{Duration, Instant};

use crate::scenario::{Scenario, SignIn};
use crate::steps::{StepFailure, check_order};
use crate::trace::Trace;

/// What `flow` runs.
#[derive(Debug, Clone)]
pub struct FlowConfig {
    /// The scenario (ignored when `load` is set).
    pub scenario: Scenario,
    /// `--ues N`: run N personal UEs concurrently instead of the scenario.
    pub load: Option<usize>,
    /// Lifetime of access tokens issued by the IdMS.
    pub token_lifetime: Duration,
    /// Registration expiry the UEs ask for.
    pub register_expires: u32,
    /// Bound on each wait for an answer.
    pub step_timeout: Duration,
    /// Token clock leeway of the MCPTT server, seconds.
    pub leeway: u64,
}

impl Default for FlowConfig {
    fn default() -> Self {
        Self {
            scenario: Scenario::Basic,
            load: None,
            token_lifetime: Duration::from_secs(3600),
            register_expires: 600,
            step_timeout: Duration::from_secs(10),
            leeway: 60,
        }
    }
}

impl FlowConfig {
    /// The sign-ins to run.
    #[must_use]
    pub fn sign_ins(&self) -> Vec<SignIn> {
        match self.load {
            Some(n) => Scenario::load(n),
            None => self.scenario.sign_ins(),
        }
    }
}

/// The result of one sign-in.
#[derive(Debug, Clone)]
pub struct SignInResult {
    /// The sign-in's label.
    pub label: String,
    /// Time from the start of step 1 to the UE's answer to the first NOTIFY (step 17).
    pub latency: Option<Duration>,
    /// Whether its steps and final state were as the scenario requires.
    pub outcome: Result<(), StepFailure>,
}

/// The result of a `flow` run.
#[derive(Debug, Clone)]
pub struct FlowReport {
    /// Everything the actors saw.
    pub trace: Trace,
    /// Per sign-in results, in the scenario's order.
    pub results: Vec<SignInResult>,
    /// Wall time of the UE part of the run.
    pub elapsed: Duration,
    /// A failure before any UE ran (e.g. a server could not start), naming the step it blocks.
    pub setup: Result<(), StepFailure>,
}

impl FlowReport {
    /// The first failure, if any.
    #[must_use]
    pub fn failure(&self) -> Option<(&str, &StepFailure)> {
        if let Err(e) = &self.setup {
            return Some(("setup", e));
        }
        self.results
            .iter()
            .find_map(|r| r.outcome.as_ref().err().map(|e| (r.label.as_str(), e)))
    }

    /// Whether every sign-in went as the scenario requires.
    #[must_use]
    pub fn success(&self) -> bool {
        self.failure().is_none() && !self.results.is_empty()
    }
}

/// Runs the flow. Progress of load runs is reported through `on_done` (called once per
/// finished sign-in).
pub async fn run(config: &FlowConfig, trace: Trace, on_done: &(dyn Fn() + Sync)) -> FlowReport {
    let start = Instant::now();
    let sign_ins = config.sign_ins();
    let setup = crate::actors::start_servers(config, &sign_ins, &trace).await;
    let (servers, setup) = match setup {
        Ok(s) => (Some(s), Ok(())),
        Err(e) => (None, Err(e)),
    };
    let mut results = Vec::new();
    if let Some(servers) = &servers {
        results = crate::actors::run_ues(config, servers, &sign_ins, &trace, on_done).await;
        // The order check reads the trace, so it covers what the actors saw, not what the UE
        // believes happened.
        for (r, s) in results.iter_mut().zip(&sign_ins) {
            if r.outcome.is_ok() {
                r.outcome = check_order(&trace.for_labels(&[&s.label, &s.ue]), s.steps);
            }
        }
    }
    if let Some(servers) = servers {
        servers.shutdown().await;
    }
    FlowReport {
        trace,
        results,
        elapsed: start.elapsed(),
        setup,
    }
}
