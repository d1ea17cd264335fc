//! MCPTT server: accepts third-party REGISTER, PUBLISH and SUBSCRIBE, validates tokens against the IdMS JWKS, sends NOTIFYs.

use std::net::SocketAddr;

use super::ActorError;
use super::config::McpttServerConfig;
use crate::trace::Trace;

/// A running McpttServer task.
#[derive(Debug)]
pub struct McpttServerHandle {
    local_addr: SocketAddr,
}

impl McpttServerHandle {
    /// The address it listens on.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops the task and waits for it to end.
    pub async fn shutdown(self) {}
}

/// Binds the listener and starts the task, recording what it receives in `trace`.
pub async fn spawn(
    config: McpttServerConfig,
    trace: Trace,
) -> Result<McpttServerHandle, ActorError> {
    let _ = (config, trace);
    Err(ActorError::NotWired {
        step: 5,
        what: "mcptt-tls transport and mcptt-service-state server driver".into(),
    })
}
