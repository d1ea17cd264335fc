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
    /// Most UEs in flight at once in a `--ues N` run.
    pub concurrency: usize,
    /// How the users of a `--ues N` run log in at the IdMS (the scenarios use passwords).
    pub login: crate::actors::config::LoginMethod,
    /// Runtime to start the servers (IdMS, SIP core, MCPTT server) on, apart from the UEs;
    /// when its threads are named [`crate::cpu::SERVER_THREAD_NAME`], the report carries
    /// their CPU time ([`FlowReport::server_cpu`]). `None`: the caller's runtime.
    pub servers_runtime: Option<tokio::runtime::Handle>,
    /// Runtime of the IdMS alone (its threads named [`crate::cpu::IDMS_THREAD_NAME`] give
    /// [`FlowReport::idms_cpu`]). `None`: with the other servers.
    pub idms_runtime: Option<tokio::runtime::Handle>,
    /// Where the SIP core's registrations and the MCPTT server's service state live:
    /// `memory` (the default) or `redis://…` (`--store`).
    pub store: String,
    /// SIP core and MCPTT server instances started (sharing `store`; 1 by default).
    pub instances: usize,
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
            concurrency: 64,
            login: crate::actors::config::LoginMethod::Password,
            servers_runtime: None,
            idms_runtime: None,
            store: crate::actors::config::MEMORY_STORE.into(),
            instances: 1,
        }
    }
}

impl FlowConfig {
    /// The defaults for `scenario`: the `expiry` scenario issues 120 s tokens (the clock is
    /// then moved past their expiry, well before the 600 s registration would lapse).
    #[must_use]
    pub fn new(scenario: Scenario) -> Self {
        Self {
            scenario,
            token_lifetime: if scenario == Scenario::Expiry {
                Duration::from_secs(120)
            } else {
                Duration::from_secs(3600)
            },
            ..Self::default()
        }
    }

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
    /// What the UE last learnt, e.g. `full-access (authorised)`.
    pub final_state: Option<String>,
}

/// The result of a `flow` run.
#[derive(Debug, Clone)]
pub struct FlowReport {
    /// Everything the actors saw.
    pub trace: Trace,
    /// Per sign-in results, in the scenario's order.
    pub results: Vec<SignInResult>,
    /// Wall time of the UE part of the run (servers already started).
    pub elapsed: Duration,
    /// Wall time of the server start (IdMS with its users, SIP core, MCPTT server).
    pub setup_time: Duration,
    /// A failure before any UE ran (e.g. a server could not start), naming the step it blocks.
    pub setup: Result<(), StepFailure>,
    /// CPU time the servers' threads used while the UEs ran (only with
    /// [`FlowConfig::servers_runtime`] and readable per-thread accounting).
    pub server_cpu: Option<Duration>,
    /// The servers' threads' CPU time while the UEs ran, split into user space and kernel
    /// ([`crate::cpu::threads_user_system`]: tick-sampled, for the split only).
    pub server_user_system: Option<crate::cpu::UserSystem>,
    /// CPU time the IdMS's own threads used while the UEs ran (only with
    /// [`FlowConfig::idms_runtime`]); the servers' total is `server_cpu + idms_cpu`.
    pub idms_cpu: Option<Duration>,
    /// The work the floor ([`crate::cpu::Floor`]) counts, as this run did it.
    pub work: FloorWork,
}

/// What a run did of the work the CPU floor counts, so the floor's per-UE counts
/// ([`crate::cpu::FLOOR_HANDSHAKES`], [`crate::cpu::FLOOR_VERIFICATIONS`]) can be checked
/// against it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FloorWork {
    /// TLS connections the IdMS accepted while the UEs ran (each a full handshake).
    pub idms_handshakes: u64,
    /// Mutual-TLS connections the SIP core accepted from UEs (its step 2 records).
    pub sip_core_handshakes: u64,
    /// Requests carrying an access token the MCPTT server received (PUBLISH, step 8, and
    /// SUBSCRIBE, step 12): each one an ES256 verification.
    pub tokens_presented: u64,
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

/// The service state of the last NOTIFY the UE received for `label` (from the trace).
fn last_notified(records: &[crate::trace::Seen], label: &str) -> Option<String> {
    records
        .iter()
        .rev()
        .find(|r| r.ue == label && r.step == Some(16))
        .and_then(|r| r.header("Body"))
        .map(str::to_owned)
}

/// Runs the flow. Progress of load runs is reported through `on_done` (called once per
/// finished sign-in).
pub async fn run(config: &FlowConfig, trace: Trace, on_done: &(dyn Fn() + Sync)) -> FlowReport {
    let start = Instant::now();
    let sign_ins = config.sign_ins();
    let setup = match &config.servers_runtime {
        Some(rt) => {
            let (c, s, t) = (config.clone(), sign_ins.clone(), trace.clone());
            rt.spawn(async move { crate::actors::start_servers(&c, &s, &t).await })
                .await
                .unwrap_or_else(|e| {
                    Err(StepFailure {
                        step: 2,
                        reason: format!("server start task failed: {e}"),
                    })
                })
        }
        None => crate::actors::start_servers(config, &sign_ins, &trace).await,
    };
    let cpu = || {
        config
            .servers_runtime
            .as_ref()
            .and_then(|_| crate::cpu::threads_cpu(crate::cpu::SERVER_THREAD_NAME))
    };
    let setup_time = start.elapsed();
    let (servers, setup) = match setup {
        Ok(s) => (Some(s), Ok(())),
        Err(e) => (None, Err(e)),
    };
    let mut results = Vec::new();
    let ue_start = Instant::now();
    let idms_cpu = || {
        config
            .idms_runtime
            .as_ref()
            .and_then(|_| crate::cpu::threads_cpu(crate::cpu::IDMS_THREAD_NAME))
    };
    let idms_accepted = |servers: Option<&crate::actors::Servers>| {
        servers
            .and_then(|s| s.idms.as_ref().ok())
            .map_or(0, crate::actors::login::IdmsRunning::connections_accepted)
    };
    let accepted_before = idms_accepted(servers.as_ref());
    let mut work = FloorWork::default();
    let split = || {
        config
            .servers_runtime
            .as_ref()
            .and_then(|_| crate::cpu::threads_user_system(crate::cpu::SERVER_THREAD_NAME))
    };
    let split_before = split();
    let cpu_before = cpu();
    let idms_before = idms_cpu();
    let mut cpu_after = None;
    let mut split_after = None;
    let mut idms_after = None;
    if let Some(servers) = &servers {
        results = crate::actors::run_ues(config, servers, &sign_ins, &trace, on_done).await;
        cpu_after = cpu();
        split_after = split();
        idms_after = idms_cpu();
        let count = |n: u8| u64::try_from(trace.step_count(n)).unwrap_or(u64::MAX);
        work = FloorWork {
            idms_handshakes: idms_accepted(Some(servers)).saturating_sub(accepted_before),
            sip_core_handshakes: count(2),
            tokens_presented: count(8) + count(12),
        };
        // The order check reads the trace, so it covers what the actors saw, not what the UE
        // believes happened. One pass groups the records (one scan per sign-in made the
        // check quadratic in the number of UEs).
        let groups = trace.by_label();
        for (r, s) in results.iter_mut().zip(&sign_ins) {
            let mut records = groups.get(&s.label).cloned().unwrap_or_default();
            if s.ue != s.label {
                // The UE's own records (TLS, REGISTER), shared by the users signed in on it.
                records.extend(groups.get(&s.ue).into_iter().flatten().cloned());
                records.sort_by_key(|x| x.seq);
            }
            if r.outcome.is_ok() {
                r.outcome = check_order(&records, s.steps);
            }
            r.final_state = last_notified(&records, &s.label);
        }
    }
    let ue_elapsed = ue_start.elapsed();
    if let Some(servers) = servers {
        match &config.servers_runtime {
            Some(rt) => {
                let _ = rt.spawn(servers.shutdown()).await;
            }
            None => servers.shutdown().await,
        }
    }
    FlowReport {
        trace,
        results,
        elapsed: ue_elapsed,
        setup_time,
        setup,
        server_cpu: cpu_before.zip(cpu_after).map(|(b, a)| a.saturating_sub(b)),
        server_user_system: split_before.zip(split_after).map(|(b, a)| a.since(b)),
        idms_cpu: idms_before
            .zip(idms_after)
            .map(|(b, a)| a.saturating_sub(b)),
        work,
    }
}
