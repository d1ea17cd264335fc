//! `mcptt-registration`: sans-IO SIP registrar, third-party registration and reg event for
//! MCPTT (flow steps 3–6 of the project's DESIGN.md).
//!
//! - [`Registrar`] (SIP core side): RFC 3261 §10.3 registrar with RFC 5626/5627 binding
//!   keys (`+sip.instance`, `reg-id`), min/max expiry (`423` + `Min-Expires`), replay and
//!   out-of-order protection (same Call-ID needs a higher CSeq), identity check of the
//!   authenticated peer against an [`IdentityMap`] (`403`), expiry through
//!   `handle_timeout`, one [`Event`] per binding change, third-party REGISTERs toward the
//!   application servers selected by [`FilterCriteria`] (with a configurable
//!   [`FailurePolicy`]), and the reg event package (RFC 3680) as notifier.
//! - [`RegistrationView`] (MCPTT server side): accepts third-party REGISTERs from trusted SIP
//!   cores only, extracts the UE's REGISTER from the `message/sip` body and keeps, per public
//!   user identity, the registered UEs; it also subscribes to reg events and applies full and
//!   partial `application/reginfo+xml` notifications ([`RegInfo`]).
//! - [`RegistrationStore`] with the default [`MemoryStore`]: bindings keyed by AoR, versioned
//!   writes (see [`store`] for the consistency a shared store must give). A shared store
//!   (e.g. `mcptt-store-redis`) lets several SIP core instances serve the same UEs: binding
//!   ids come from the injected randomness (unique across instances), a REGISTER costs at
//!   most two store round trips (one read, one versioned write), an unavailable store is
//!   answered `503` with `Retry-After` ([`Error::StoreUnavailable`]), and
//!   [`Registrar::handle_remote_change`] lets the instance holding a reg event
//!   subscription NOTIFY changes another instance made.
//!
//! The crate does no I/O and reads no clock: every input carries `now`, outputs are polled
//! (`poll_transmit`, `poll_event`, `poll_timeout`), randomness comes from a caller seed. The
//! peer identity is passed in by the caller (e.g. from the TLS client certificate as
//! `mcptt-tls` reports it).
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, Instant};
//! use bytes::Bytes;
//! use mcptt_registration::{Event, FilterCriteria, IdentityMap, Registrar, RegistrarConfig};
//! use mcptt_sip::Message;
//!
//! let config = RegistrarConfig {
//!     identities: IdentityMap::new().allow("ue1.example.com", "sip:alice@example.com"),
//!     filters: vec![FilterCriteria::mcptt("sip:mcptt-as.example.com")],
//!     core_uri: "sip:scscf.example.com".into(),
//!     ..RegistrarConfig::default()
//! };
//! let mut registrar = Registrar::new(config, 42);
//! let register = Message::parse(Bytes::from_static(
//!     b"REGISTER sip:example.com SIP/2.0\r\n\
//!       Via: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bK1\r\n\
//!       Max-Forwards: 70\r\n\
//!       From: <sip:alice@example.com>;tag=1\r\n\
//!       To: <sip:alice@example.com>\r\n\
//!       Call-ID: c1\r\n\
//!       CSeq: 1 REGISTER\r\n\
//!       Contact: <sip:alice@192.0.2.1;transport=tls>;+sip.instance=\"<urn:uuid:1>\";+g.3gpp.mcptt;expires=600\r\n\
//!       Content-Length: 0\r\n\r\n",
//! ))?
//! .into_request()
//! .expect("a request");
//!
//! let now = Instant::now();
//! let outcome = registrar.handle_register(now, "ue1.example.com", &register);
//! assert_eq!(outcome.response.status(), 200);
//! assert_eq!(outcome.registered_identity.as_deref(), Some("sip:alice@example.com"));
//! assert!(matches!(registrar.poll_event(), Some(Event::BindingAdded { .. })));
//!
//! // The MCPTT feature tag matched: a third-party REGISTER goes to the application server.
//! let third_party = registrar.poll_transmit().expect("third-party REGISTER");
//! assert_eq!(third_party.destination, "sip:mcptt-as.example.com");
//!
//! // Ten minutes later the binding expires.
//! registrar.handle_timeout(now + Duration::from_secs(600));
//! assert!(matches!(registrar.poll_event(), Some(Event::BindingRemoved { .. })));
//! # Ok::<(), mcptt_sip::Error>(())
//! ```

mod binding;
mod error;
mod filter;
mod identity;
mod regevent;
pub mod reginfo;
mod registrar;
mod request;
mod rng;
mod server;
pub mod store;
mod wire;

pub use binding::{AorRecord, Binding, BindingKey};
pub use error::{Error, XmlErrorKind};
pub use filter::{FailurePolicy, FilterCriteria, ICSI_FEATURE_TAG, MCPTT_FEATURE_TAG, MCPTT_ICSI};
pub use identity::{IdentityMap, canonical_aor};
pub use regevent::RegEventConfig;
pub use reginfo::RegInfo;
pub use registrar::{
    Event, RegisterOutcome, Registrar, RegistrarConfig, RemovalReason, ThirdPartyFailure, Transmit,
};
pub use request::{ContactSpec, Contacts, RegisterRequest};
pub use server::{RegisteredUe, RegistrationView, ServerConfig, ServerEvent, Source, UeRemoval};
pub use store::{MemoryStore, RegistrationStore, StoreError};
