//! MCPTT server: accepts third-party REGISTER (`mcptt-registration`'s registration view),
//! PUBLISH and SUBSCRIBE (`mcptt-service-state`'s server), validates access tokens against the
//! IdMS JWKS (`mcptt-token`), and sends NOTIFYs. All protocol rules live in those crates; this
//! task only moves messages between them and the `mcptt-tls` transport.
//!
//! With several SIP core instances connected, an in-dialog NOTIFY goes back through the SIP
//! core connection its SUBSCRIBE came on (that core recorded the route and knows the UE's
//! connection); with one, every outgoing request goes to the last SIP core connection heard
//! from. The server's publications and subscriptions stay in this process's memory.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

use mcptt_registration::{RegistrationView, ServerConfig as ViewConfig, ServerEvent as ViewEvent};
use mcptt_service_state::server::{Server, ServerConfig, ServerEvent};
use mcptt_service_state::{RegistrationChange, SplitMix64, UeDirectory};
use mcptt_sip::Message;
use mcptt_tls::{ConnectionHandle, ConnectionId, Event, Transport, TransportConfig};
use mcptt_token::{JwkSet, KeyStore, Validator, ValidatorConfig};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::clock::Clock;
use super::config::{McpttServerConfig, Transport as Kind};
use super::wire::{call_id, observe, uri_of, user_of};
use super::{ActorError, net};
use crate::scenario::UeKind;
use crate::trace::{Actor, Trace};

/// Most subscription dialogs whose SIP core connection is remembered.
const MAX_DIALOG_ROUTES: usize = 100_000;

/// A running MCPTT server task.
#[derive(Debug)]
pub struct McpttServerHandle {
    local_addr: SocketAddr,
    counts: watch::Receiver<ServerCounts>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    transport: Transport,
}

/// What the server holds, as of its last event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerCounts {
    /// Live publications (users signed in on a UE).
    pub publications: usize,
    /// Live `mcptt-service-state` subscriptions.
    pub subscriptions: usize,
    /// Public user identities with a registered UE (third-party registration view).
    pub registered_identities: usize,
}

impl McpttServerHandle {
    /// Publication, subscription and registration counts after the last handled input.
    #[must_use]
    pub fn counts(&self) -> ServerCounts {
        *self.counts.borrow()
    }

    /// Waits until the counts satisfy `done`, or `timeout` passes; returns the last counts
    /// and whether `done` held.
    pub async fn wait_counts(
        &self,
        timeout: Duration,
        done: impl FnMut(&ServerCounts) -> bool,
    ) -> (ServerCounts, bool) {
        let mut rx = self.counts.clone();
        let ok = matches!(
            tokio::time::timeout(timeout, rx.wait_for(done)).await,
            Ok(Ok(_))
        );
        (self.counts(), ok)
    }

    /// The address it listens on.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops the task and waits for it to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.transport.shutdown(Duration::from_millis(200)).await;
    }
}

fn kind(k: UeKind) -> mcptt_service_state::UeKind {
    match k {
        UeKind::Personal => mcptt_service_state::UeKind::Personal,
        UeKind::Shareable => mcptt_service_state::UeKind::Shareable,
        UeKind::Gateway => mcptt_service_state::UeKind::Gateway,
    }
}

/// The token validator over the configured IdMS keys (none: an empty key set, so every token
/// is refused with the reason logged).
fn validator(config: &McpttServerConfig) -> Result<Validator, ActorError> {
    let (issuer, set) = match &config.keys {
        Some(k) => (
            k.issuer.clone(),
            JwkSet::from_json(&k.jwks_json)
                .map_err(|e| ActorError::Config(format!("IdMS JWKS: {e}")))?,
        ),
        None => {
            tracing::warn!("no IdMS keys configured: every access token will be refused");
            ("urn:mcptt-examples:no-idms".to_owned(), JwkSet::new())
        }
    };
    let mut scopes = config.scopes.iter();
    let first = scopes
        .next()
        .cloned()
        .unwrap_or_else(|| mcptt_token::SCOPE_PTT_SERVER.to_owned());
    let mut vc = ValidatorConfig::new(issuer, config.audience.clone())
        .scope(first)
        .leeway(config.leeway);
    for s in scopes {
        vc = vc.accept_scope(s.clone());
    }
    Validator::new(vc, KeyStore::new(set))
        .map_err(|e| ActorError::Config(format!("token validator: {e}")))
}

/// Binds the listener and starts the task, recording what it receives.
pub async fn spawn(
    config: McpttServerConfig,
    trace: Trace,
    clock: Clock,
) -> Result<McpttServerHandle, ActorError> {
    let validator = validator(&config)?;
    let (transport, events) = Transport::new(TransportConfig::default());
    let bind =
        |e: mcptt_tls::Error| ActorError::Config(format!("listen on {}: {e}", config.listen));
    let local_addr = match config.transport {
        Kind::Tls => transport
            .listen_tls(config.listen, net::server_config(&config.tls)?)
            .await
            .map_err(bind)?,
        Kind::Tcp => transport.listen_tcp(config.listen).await.map_err(bind)?,
    };
    let host = user_of(&config.node_uri);
    let mut sc = ServerConfig::new(host, config.psi.clone());
    sc.transport = match config.transport {
        Kind::Tls => "TLS".into(),
        Kind::Tcp => "TCP".into(),
    };
    sc.max_subscribe_expires = config.subscription_expires;
    let mut dir = UeDirectory::new();
    for (impu, k) in &config.ue_directory {
        dir.insert(impu.clone(), kind(*k));
    }
    sc.directory = dir;
    let seed = clock.unix() ^ u64::from(local_addr.port());
    let server = Server::new(sc, validator, SplitMix64(seed));
    let view = RegistrationView::new(
        ViewConfig {
            trusted_cores: config.trusted_cores.iter().cloned().collect(),
            server_uri: config.node_uri.clone(),
            ..ViewConfig::default()
        },
        seed.rotate_left(17),
    );
    let (stop, stopped) = oneshot::channel();
    let (counts_tx, counts) = watch::channel(ServerCounts::default());
    let task = tokio::spawn(run(
        State {
            server,
            view,
            core: None,
            cores: HashSet::new(),
            dialog_cores: HashMap::new(),
            replies: Vec::new(),
            counts: counts_tx,
            trace,
            clock,
        },
        events,
        stopped,
    ));
    Ok(McpttServerHandle {
        local_addr,
        counts,
        stop: Some(stop),
        task: Some(task),
        transport,
    })
}

struct State {
    server: Server<Validator, SplitMix64>,
    view: RegistrationView,
    /// The SIP core connection NOTIFYs go to (the last one a message came on).
    core: Option<ConnectionHandle>,
    /// Live SIP core connections.
    cores: HashSet<ConnectionId>,
    /// Subscription Call-ID → the SIP core connection its SUBSCRIBE came on.
    dialog_cores: HashMap<String, ConnectionHandle>,
    /// Responses built here (third-party REGISTER), sent in order by `drain`.
    replies: Vec<(ConnectionHandle, Message)>,
    counts: watch::Sender<ServerCounts>,
    trace: Trace,
    clock: Clock,
}

async fn run(mut st: State, mut events: mcptt_tls::Events, mut stopped: oneshot::Receiver<()>) {
    loop {
        let deadline = [st.server.poll_timeout(), st.view.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let clock = st.clock.clone();
        tokio::select! {
            _ = &mut stopped => break,
            ev = events.recv() => match ev {
                Some(Event::Message(rx)) => st.on_message(rx.message, rx.connection),
                Some(Event::Closed { connection, error }) => {
                    tracing::info!(peer = %connection.peer_addr, ?error, "SIP core connection closed");
                    st.cores.remove(&connection.id);
                    st.dialog_cores.retain(|_, c| c.id() != connection.id);
                }
                Some(_) => {}
                None => break,
            },
            () = clock.sleep_until(deadline) => {
                let now = st.clock.now();
                st.server.handle_timeout(now);
                st.view.handle_timeout(now);
            }
        }
        st.drain().await;
    }
}

impl State {
    /// The SIP core connection an outgoing message goes to: with several SIP cores, the one
    /// its dialog's SUBSCRIBE came on (dropped once the NOTIFY ends the subscription);
    /// otherwise the last one heard from.
    fn core_for(&mut self, bytes: &Bytes) -> Option<ConnectionHandle> {
        if self.cores.len() > 1
            && let Ok(msg) = Message::parse(bytes.clone())
            && let Some(cid) = call_id(&msg)
        {
            let ended = msg
                .headers()
                .get("Subscription-State")
                .is_some_and(|s| s.trim_start().starts_with("terminated"));
            let routed = if ended {
                self.dialog_cores.remove(&cid)
            } else {
                self.dialog_cores.get(&cid).cloned()
            };
            if routed.is_some() {
                return routed;
            }
        }
        self.core.clone()
    }

    fn on_message(&mut self, msg: Message, conn: ConnectionHandle) {
        let label = msg
            .headers()
            .get("To")
            .map(|t| user_of(&uri_of(t)))
            .unwrap_or_default();
        self.trace
            .record(Actor::McpttServer, observe(&msg, Actor::SipCore, &label));
        let peer = conn.identity().map_or_else(
            || format!("tcp:{}", conn.peer_addr().ip()),
            |i| i.label().to_owned(),
        );
        self.core = Some(conn.clone());
        self.cores.insert(conn.id());
        if let Message::Request(req) = &msg
            && req.method().as_str() == "SUBSCRIBE"
            && let Some(cid) = call_id(&msg)
            && (self.dialog_cores.len() < MAX_DIALOG_ROUTES || self.dialog_cores.contains_key(&cid))
        {
            self.dialog_cores.insert(cid, conn.clone());
        }
        let now = self.clock.now();
        match msg {
            Message::Request(req) if req.method().as_str() == "REGISTER" => {
                let resp = self.view.handle_third_party_register(now, &peer, &req);
                self.replies.push((conn, Message::Response(resp)));
            }
            Message::Request(req) => {
                self.server.handle_request(now, self.clock.unix(), &req);
            }
            Message::Response(resp) => self.server.handle_response(now, &resp),
        }
    }

    async fn drain(&mut self) {
        self.drain_inner().await;
        let c = ServerCounts {
            publications: self.server.publication_count(),
            subscriptions: self.server.subscription_count(),
            registered_identities: self.view.identity_count(),
        };
        self.counts.send_if_modified(|old| {
            let changed = *old != c;
            *old = c;
            changed
        });
    }

    async fn drain_inner(&mut self) {
        for (conn, msg) in std::mem::take(&mut self.replies) {
            if let Err(e) = conn.send(&msg).await {
                tracing::warn!(error = %e, "send to SIP core failed");
            }
        }
        let now = self.clock.now();
        while let Some(ev) = self.view.poll_event() {
            let change = match ev {
                ViewEvent::UeRegistered { impu, ue } | ViewEvent::UeRefreshed { impu, ue } => {
                    RegistrationChange {
                        impu,
                        instance: ue.instance,
                        registered: true,
                    }
                }
                ViewEvent::UeDeregistered { impu, ue, reason } => {
                    tracing::info!(%impu, ?reason, "UE deregistered");
                    RegistrationChange {
                        impu,
                        instance: ue.instance,
                        registered: false,
                    }
                }
                other => {
                    tracing::info!(?other, "registration view event");
                    continue;
                }
            };
            self.server.handle_registration(now, change);
        }
        while self.view.poll_transmit().is_some() {
            // reg event SUBSCRIBEs are not used in this flow (third-party REGISTER is).
        }
        while let Some(ev) = self.server.poll_event() {
            match ev {
                ServerEvent::AuthorisationFailed { impu, reason } => {
                    tracing::warn!(%impu, %reason, "service authorisation failed");
                }
                other => tracing::info!(?other, "service-state event"),
            }
        }
        while let Some(t) = self.server.poll_transmit() {
            let bytes = Bytes::from(t.bytes);
            let Some(core) = self.core_for(&bytes) else {
                tracing::warn!("no SIP core connection for an outgoing message");
                continue;
            };
            if let Err(e) = core.send_bytes(bytes).await {
                tracing::warn!(error = %e, "send to SIP core failed");
            }
        }
    }
}
