//! A scripted network on a virtual clock: one MCPTT server, UEs with a publisher and
//! subscribers, a SIP core that asserts identities, real tokens from `mcptt-token`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use mcptt_service_state::body::McpttInfo;
use mcptt_service_state::client::{
    Publisher, PublisherEvent, Subscriber, SubscriberEvent, UeConfig,
};
use mcptt_service_state::server::{Server, ServerConfig, ServerEvent};
use mcptt_service_state::{RegistrationChange, SplitMix64, UeDirectory};
use mcptt_token::{
    AccessTokenClaims, Algorithm, JwkSet, KeyStore, Signer, SigningKey, Validator, ValidatorConfig,
};
use ring::rand::SystemRandom;

pub const HOST: &str = "mcptt.example.org";
pub const PSI: &str = "sip:mcptt-server@mcptt.example.org";
pub const ISSUER: &str = "https://idms.example.org";
pub const SCOPE: &str = "openid 3gpp:mcptt:ptt_server";
/// Wall clock at the virtual epoch.
pub const T0_UNIX: u64 = 1_800_000_000;

/// The virtual epoch: the only clock read in the tests, and only once per test.
#[allow(clippy::disallowed_methods)]
pub fn epoch() -> Instant {
    Instant::now()
}

pub struct Idms {
    pub signer: Signer,
    pub jwks: String,
    pub forger: Signer,
    next_jti: u64,
}

impl Idms {
    pub fn new() -> Self {
        let rng = SystemRandom::new();
        let key = SigningKey::generate(Algorithm::Es256, "k1", &rng).unwrap();
        let jwks = JwkSet::from_keys([key.public_jwk()]).unwrap().to_json();
        // Same kid, different key: a forged token.
        let forged = SigningKey::generate(Algorithm::Es256, "k1", &rng).unwrap();
        Self {
            signer: Signer::new(key),
            jwks,
            forger: Signer::new(forged),
            next_jti: 0,
        }
    }

    pub fn validator(&self) -> Validator {
        let keys = KeyStore::new(JwkSet::from_json(&self.jwks).unwrap());
        Validator::new(ValidatorConfig::new(ISSUER, PSI), keys).unwrap()
    }

    pub fn claims(&mut self, mcptt_id: &str, iat: u64, lifetime: u64) -> AccessTokenClaims {
        self.next_jti += 1;
        AccessTokenClaims {
            iss: ISSUER.into(),
            sub: mcptt_id.trim_start_matches("sip:").into(),
            aud: vec![PSI.into()],
            exp: iat + lifetime,
            iat,
            jti: format!("jti-{}", self.next_jti),
            client_id: "mcptt-client".into(),
            scope: SCOPE.into(),
            mcptt_id: mcptt_id.into(),
            ..Default::default()
        }
    }

    pub fn token(&mut self, mcptt_id: &str, iat: u64, lifetime: u64) -> String {
        let c = self.claims(mcptt_id, iat, lifetime);
        self.signer.sign_access_token(&c).unwrap()
    }
}

/// Who owns a Call-ID on the UE side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    Publisher(usize),
    Subscriber(usize),
}

pub struct Ue {
    pub impu: String,
    pub publisher: Publisher<SplitMix64>,
    pub pub_events: Vec<PublisherEvent>,
}

pub struct Sub {
    pub ue: usize,
    pub sub: Subscriber<SplitMix64>,
    pub events: Vec<SubscriberEvent>,
    /// Raw NOTIFYs seen (for header checks).
    pub notifies: Vec<String>,
    /// When set, the subscriber does not answer NOTIFYs (they time out) ...
    pub mute: bool,
    /// ... or answers them with this status instead of passing them to the Subscriber.
    pub answer_with: Option<u16>,
}

pub struct Net {
    pub t0: Instant,
    pub now: Instant,
    pub idms: Idms,
    pub server: Server<Validator, SplitMix64>,
    pub server_events: Vec<ServerEvent>,
    pub ues: Vec<Ue>,
    pub subs: Vec<Sub>,
    owners: HashMap<String, Owner>,
    seed: u64,
    /// Every message the server sent, in order.
    pub server_out: Vec<String>,
}

/// Parses with `mcptt-sip`, as the transport would.
pub fn parse(bytes: &[u8]) -> mcptt_sip::Message {
    mcptt_sip::Message::parse(mcptt_sip::Bytes::copy_from_slice(bytes)).unwrap_or_else(|e| {
        panic!(
            "mcptt-sip cannot parse {}: {e}",
            String::from_utf8_lossy(bytes)
        )
    })
}

pub fn req(bytes: &[u8]) -> mcptt_sip::Request {
    parse(bytes).into_request().expect("a request")
}

pub fn resp(bytes: &[u8]) -> mcptt_sip::Response {
    parse(bytes).into_response().expect("a response")
}

pub fn call_id(msg: &str) -> String {
    header(msg, "Call-ID").unwrap_or_default()
}

pub fn header(msg: &str, name: &str) -> Option<String> {
    let head = msg.split("\r\n\r\n").next()?;
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_owned())
}

pub fn status(msg: &str) -> Option<u16> {
    msg.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

impl Net {
    pub fn new(directory: UeDirectory) -> Self {
        let idms = Idms::new();
        let mut config = ServerConfig::new(HOST, PSI);
        config.directory = directory;
        let server = Server::new(config, idms.validator(), SplitMix64(7));
        let t0 = epoch();
        Self {
            t0,
            now: t0,
            idms,
            server,
            server_events: Vec::new(),
            ues: Vec::new(),
            subs: Vec::new(),
            owners: HashMap::new(),
            seed: 100,
            server_out: Vec::new(),
        }
    }

    pub fn unix(&self) -> u64 {
        T0_UNIX + self.now.duration_since(self.t0).as_secs()
    }

    fn rng(&mut self) -> SplitMix64 {
        self.seed += 1;
        SplitMix64(self.seed)
    }

    /// Adds a UE (not yet registered); returns its index.
    pub fn add_ue(&mut self, impu: &str) -> usize {
        let cfg = UeConfig::new(impu, format!("ue{}.example.org", self.ues.len()), PSI);
        let rng = self.rng();
        let publisher = Publisher::new(cfg, rng, 3600);
        self.ues.push(Ue {
            impu: impu.into(),
            publisher,
            pub_events: Vec::new(),
        });
        self.ues.len() - 1
    }

    pub fn register(&mut self, ue: usize, registered: bool) {
        let change = RegistrationChange {
            impu: self.ues[ue].impu.clone(),
            instance: Some(format!("<urn:uuid:00000000-0000-0000-0000-{ue:012}>")),
            registered,
        };
        self.server.handle_registration(self.now, change);
        self.pump();
    }

    /// Adds a subscriber on UE `ue`; returns its index.
    pub fn add_sub(&mut self, ue: usize, expires: u32) -> usize {
        let cfg = UeConfig::new(
            self.ues[ue].impu.clone(),
            format!("ue{ue}.example.org"),
            PSI,
        );
        let rng = self.rng();
        let sub = Subscriber::new(cfg, rng, expires);
        self.subs.push(Sub {
            ue,
            sub,
            events: Vec::new(),
            notifies: Vec::new(),
            mute: false,
            answer_with: None,
        });
        self.subs.len() - 1
    }

    pub fn publish(&mut self, ue: usize, token: &str) {
        let now = self.now;
        self.ues[ue]
            .publisher
            .publish(now, token, Some("mcptt-client"), None);
        self.pump();
    }

    pub fn subscribe(&mut self, sub: usize, info: Option<McpttInfo>) {
        let now = self.now;
        self.subs[sub].sub.subscribe(now, info).unwrap();
        self.pump();
    }

    /// The SIP core: replaces any P-Asserted-Identity with the registered identity.
    pub fn assert_identity(msg: &[u8], impu: &str) -> Vec<u8> {
        let text = String::from_utf8(msg.to_vec()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let mut lines: Vec<&str> = head
            .split("\r\n")
            .filter(|l| !l.to_ascii_lowercase().starts_with("p-asserted-identity:"))
            .collect();
        let pai = format!("P-Asserted-Identity: <{impu}>");
        lines.insert(1, &pai);
        format!("{}\r\n\r\n{body}", lines.join("\r\n")).into_bytes()
    }

    /// Sends a hand-made request from UE `ue` to the server (through the SIP core).
    pub fn raw_to_server(&mut self, ue: usize, msg: &str) -> Vec<String> {
        let bytes = Self::assert_identity(msg.as_bytes(), &self.ues[ue].impu.clone());
        let unix = self.unix();
        let before = self.server_out.len();
        self.server.handle_request(self.now, unix, &req(&bytes));
        self.pump();
        self.server_out[before..].to_vec()
    }

    /// Delivers every queued message until the network is quiet.
    pub fn pump(&mut self) {
        let now = self.now;
        for _ in 0..10_000 {
            let mut moved = false;
            for i in 0..self.ues.len() {
                while let Some(t) = self.ues[i].publisher.poll_transmit() {
                    moved = true;
                    let cid = call_id(std::str::from_utf8(&t.bytes).unwrap());
                    self.owners.insert(cid, Owner::Publisher(i));
                    let bytes = Self::assert_identity(&t.bytes, &self.ues[i].impu);
                    let unix = self.unix();
                    self.server.handle_request(now, unix, &req(&bytes));
                }
                while let Some(e) = self.ues[i].publisher.poll_event() {
                    self.ues[i].pub_events.push(e);
                }
            }
            for i in 0..self.subs.len() {
                while let Some(t) = self.subs[i].sub.poll_transmit() {
                    moved = true;
                    let text = String::from_utf8(t.bytes.clone()).unwrap();
                    if status(&text).is_some() {
                        self.server.handle_response(now, &resp(&t.bytes));
                    } else {
                        self.owners.insert(call_id(&text), Owner::Subscriber(i));
                        let impu = self.ues[self.subs[i].ue].impu.clone();
                        let bytes = Self::assert_identity(&t.bytes, &impu);
                        let unix = self.unix();
                        self.server.handle_request(now, unix, &req(&bytes));
                    }
                }
                while let Some(e) = self.subs[i].sub.poll_event() {
                    self.subs[i].events.push(e);
                }
            }
            while let Some(t) = self.server.poll_transmit() {
                moved = true;
                let text = String::from_utf8(t.bytes.clone()).unwrap();
                self.server_out.push(text.clone());
                match self.owners.get(&call_id(&text)).copied() {
                    Some(Owner::Publisher(i)) => {
                        let _ = self.ues[i].publisher.handle_response(now, &resp(&t.bytes));
                    }
                    Some(Owner::Subscriber(i)) => {
                        if status(&text).is_some() {
                            let _ = self.subs[i].sub.handle_response(now, &resp(&t.bytes));
                        } else {
                            self.subs[i].notifies.push(text.clone());
                            if self.subs[i].mute {
                                continue;
                            }
                            if let Some(code) = self.subs[i].answer_with {
                                let resp = text_response(&text, code);
                                self.server
                                    .handle_response(now, &self::resp(resp.as_bytes()));
                                continue;
                            }
                            let _ = self.subs[i].sub.handle_request(now, &req(&t.bytes));
                        }
                    }
                    None => {}
                }
            }
            while let Some(e) = self.server.poll_event() {
                self.server_events.push(e);
            }
            if !moved {
                return;
            }
        }
        panic!("network did not settle");
    }

    /// Steps the virtual clock to `until`, running every timer on the way in order.
    pub fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        loop {
            let mut next: Option<Instant> = self.server.poll_timeout();
            for u in &self.ues {
                next = min(next, u.publisher.poll_timeout());
            }
            for s in &self.subs {
                next = min(next, s.sub.poll_timeout());
            }
            match next {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    let now = self.now;
                    self.server.handle_timeout(now);
                    for u in &mut self.ues {
                        u.publisher.handle_timeout(now);
                    }
                    for s in &mut self.subs {
                        s.sub.handle_timeout(now);
                    }
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = until;
        self.pump();
    }

    /// Service states the subscriber `sub` was told, in order.
    pub fn states(&self, sub: usize) -> Vec<mcptt_service_state::body::ServiceState> {
        self.subs[sub]
            .events
            .iter()
            .filter_map(|e| match e {
                SubscriberEvent::State(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn last_state(&self, sub: usize) -> mcptt_service_state::body::ServiceState {
        self.states(sub)
            .last()
            .cloned()
            .expect("a NOTIFY with a state")
    }
}

fn min(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// A response to `request` (text) with `code`, built by hand.
pub fn text_response(request: &str, code: u16) -> String {
    let mut out = format!("SIP/2.0 {code} Whatever\r\n");
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        if let Some(v) = header(request, name) {
            out.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}
