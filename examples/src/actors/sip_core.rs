//! SIP core: TLS listener for UEs, registrar, third-party registration, proxy towards the MCPTT server.

use std::net::SocketAddr;

use super::ActorError;
use super::config::SipCoreConfig;
use crate::trace::Trace;

/// A running SipCore task.
#[derive(Debug)]
pub struct SipCoreHandle {
    local_addr: SocketAddr,
}

impl SipCoreHandle {
    /// The address it listens on.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops the task and waits for it to end.
    pub async fn shutdown(self) {}
}

/// Binds the listener and starts the task, recording what it receives in `trace`.
pub async fn spawn(config: SipCoreConfig, trace: Trace) -> Result<SipCoreHandle, ActorError> {
    let _ = (config, trace);
    Err(ActorError::NotWired {
        step: 2,
        what: "mcptt-tls transport (listener/connector) and mcptt-registration registrar".into(),
    })
}
