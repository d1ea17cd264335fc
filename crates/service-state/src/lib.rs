//! `mcptt-service-state`: sans-IO MCPTT service authorisation and service-state events
//! (flow steps 7–18 of the project's DESIGN.md).
//!
//! The MCPTT server decides, per user and per UE, whether the user has **full access**:
//! SIP-registered (fed in from `mcptt-registration` as [`RegistrationChange`]s) **and**
//! authorised (a valid access token delivered by PUBLISH). The UE learns that decision by
//! subscribing to its own service state.
//!
//! - [`server::Server`]: the MCPTT server side.
//!   - PUBLISH `Event: poc-settings` (RFC 3903): token validation through a [`TokenValidator`]
//!     (implemented for `mcptt_token::Validator`), the `P-Asserted-Identity` must be a
//!     registered UE, fresh `SIP-ETag` (injected randomness) and expiry; refresh with
//!     `SIP-If-Match` (body-less allowed), modify (new token), remove with `Expires: 0`
//!     (sign-off). 412 for an unknown entity-tag, 489 + `Allow-Events` for another event
//!     package, 423 + `Min-Expires` below the minimum, 403 +
//!     `Warning: 399 <host> "101 service authorisation failed"` when authorisation fails (the
//!     reason goes to [`server::ServerEvent::AuthorisationFailed`], never to the peer).
//!   - User and UE models: several UEs per MCPTT ID; UE kinds from the [`UeDirectory`]:
//!     `personal` (a second user is refused), `shareable` (a new user's sign-in marks the
//!     previous one `replaced`), `gateway` (many independent users). Token expiry ends
//!     authorisation at `exp` (state `expired`, NOTIFY) even while the publication lives.
//!   - SUBSCRIBE `Event: mcptt-service-state` (RFC 6665): dialog-bound subscriptions (Call-ID,
//!     tags, CSeq both ways, route set), first NOTIFY at once with the current state, refresh,
//!     unsubscribe (final NOTIFY `terminated`), expiry (`terminated;reason=timeout`), NOTIFY
//!     answered non-2xx (481 ...) or unanswered within the NOTIFY timeout ends it. Only the
//!     user's own state: a SUBSCRIBE naming another MCPTT ID gets 403. On a gateway UE an
//!     mcptt-info body with the user's access token names the user.
//! - [`client::Publisher`] and [`client::Subscriber`]: the UE side (initial PUBLISH with the
//!   token, refresh before expiry with `SIP-If-Match`, re-publish of a new token, sign-off;
//!   SUBSCRIBE / refresh / unsubscribe, NOTIFY acceptance with out-of-order CSeq rejected,
//!   states surfaced as events).
//! - [`body`]: the bodies, parsed and encoded; the service-state JSON schema is documented on
//!   [`body::ServiceState`].
//!
//! - [`store`]: where the server keeps its state. [`store::ServiceStateStore`] holds
//!   versioned plain-data records per UE (registered instances; per user: publication
//!   entity-tag and expiry, token expiry, state version) and per subscription dialog (dialog
//!   state, holder instance and lease, NOTIFY CSeq, last version NOTIFYed). `Server::new`
//!   uses the default [`store::MemoryStore`]; [`server::Server::with_store`] takes a store
//!   shared by several instances (each with its own [`server::ServerConfig::instance_id`]).
//!   Every request, registration change and expiry is a compare-and-set on the UE's record
//!   (re-run on a version conflict, answered `503` + `Retry-After` when the store is
//!   unavailable, NOTIFYs only after the write); changes made by other instances come in
//!   through [`server::Server::handle_remote_change`], and the instance holding a dialog
//!   NOTIFYs it once. A dead holder's dialogs are taken over when its lease
//!   ([`server::ServerConfig::dialog_lease`], 60 s by default) ends, or at once when the
//!   subscriber's refresh lands on another instance.
//!
//! Every driver follows the workspace's sans-IO shape: `handle_*(now, input)`,
//! `handle_timeout(now)`, `poll_transmit()`, `poll_event()`, `poll_timeout()`. This crate
//! does no I/O and reads no clock: monotonic time is an [`std::time::Instant`] argument, the
//! wall clock for token `exp` checks a Unix-seconds argument, randomness a [`Random`].
//! Messages come in as `mcptt_sip` requests/responses (or encoded bytes) and go out encoded
//! ([`server::Server::poll_transmit_into`] appends them to a buffer the caller reuses, without
//! an allocation per message). Identities in events and states are [`SharedStr`]s: shared with
//! the server's tables, not copied.
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, Instant};
//! use mcptt_service_state::client::{Publisher, PublisherEvent, Subscriber, SubscriberEvent, UeConfig};
//! use mcptt_service_state::server::{Server, ServerConfig};
//! use mcptt_service_state::{CombinedState, RegistrationChange, SplitMix64, TokenGrant, TokenValidator};
//!
//! /// Stands in for `mcptt_token::Validator` (which implements `TokenValidator`).
//! struct Tokens;
//! impl TokenValidator for Tokens {
//!     fn validate(&self, token: &str, _now: u64)
//!         -> Result<TokenGrant, Box<dyn std::error::Error + Send + Sync>> {
//!         match token {
//!             "alice-token" => Ok(TokenGrant {
//!                 mcptt_id: "sip:alice@mcptt.example.org".into(),
//!                 client_id: None,
//!                 expires_at: 1_800_000_300,
//!             }),
//!             _ => Err("unknown token".into()),
//!         }
//!     }
//! }
//!
//! # #[allow(clippy::disallowed_methods)]
//! let now = Instant::now(); // the caller's clock; any Instant works
//! let unix = 1_800_000_000;
//! let psi = "sip:mcptt-server@mcptt.example.org";
//! let mut server = Server::new(ServerConfig::new("mcptt.example.org", psi), Tokens, SplitMix64(1));
//! server.handle_registration(now, RegistrationChange {
//!     impu: "sip:ue1@example.org".into(), instance: None, registered: true,
//! });
//!
//! // The SIP core would insert P-Asserted-Identity; here we add it by hand.
//! let assert = |bytes: Vec<u8>| {
//!     let text = String::from_utf8(bytes).unwrap();
//!     text.replacen("\r\n", "\r\nP-Asserted-Identity: <sip:ue1@example.org>\r\n", 1).into_bytes()
//! };
//! let ue = UeConfig::new("sip:ue1@example.org", "ue1.example.org", psi);
//! let mut publisher = Publisher::new(ue.clone(), SplitMix64(2), 3600);
//! publisher.publish(now, "alice-token", None, None);
//! server.handle_request_bytes(now, unix, &assert(publisher.poll_transmit().unwrap().bytes));
//! publisher.handle_response_bytes(now, &server.poll_transmit().unwrap().bytes)?;
//! assert!(matches!(publisher.poll_event(), Some(PublisherEvent::Published { expires: 3600, .. })));
//!
//! let mut subscriber = Subscriber::new(ue, SplitMix64(3), 600);
//! subscriber.subscribe(now, None)?;
//! server.handle_request_bytes(now, unix, &assert(subscriber.poll_transmit().unwrap().bytes));
//! subscriber.handle_response_bytes(now, &server.poll_transmit().unwrap().bytes)?; // 200 OK
//! subscriber.handle_request_bytes(now, &server.poll_transmit().unwrap().bytes)?;  // NOTIFY
//! server.handle_response_bytes(now, &subscriber.poll_transmit().unwrap().bytes);  // its 200
//! let state = std::iter::from_fn(|| subscriber.poll_event())
//!     .find_map(|e| match e { SubscriberEvent::State(s) => Some(s), _ => None })
//!     .unwrap();
//! assert_eq!(state.state, CombinedState::FullAccess);
//!
//! // At the token's exp the server says so by itself.
//! server.handle_timeout(now + Duration::from_secs(300));
//! subscriber.handle_request_bytes(now, &server.poll_transmit().unwrap().bytes)?;
//! let state = std::iter::from_fn(|| subscriber.poll_event())
//!     .find_map(|e| match e { SubscriberEvent::State(s) => Some(s), _ => None })
//!     .unwrap();
//! assert_eq!(state.state, CombinedState::Limited);
//! # Ok::<(), mcptt_service_state::Error>(())
//! ```

pub mod body;
pub mod client;
mod error;
mod hash;
mod model;
pub mod server;
mod shared;
mod sip;
pub mod store;
mod token;
mod xml;

pub use error::{BodyKind, Error};
pub use model::{
    AuthorisationState, CombinedState, GrantRef, Random, RegistrationChange, RegistrationState,
    SplitMix64, TokenGrant, TokenValidator, UeDirectory, UeKind, UnknownUeKind,
};
pub use shared::SharedStr;
