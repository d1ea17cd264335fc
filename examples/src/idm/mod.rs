//! The IdMS of the flow (step 1) and its UE-side client, on a real HTTP stack.
//!
//! - [`server`]: HTTPS (rustls, ring provider) + hyper serving the `mcptt-idm` core:
//!   discovery, `authorize` (HTML login form for people, form POST for programs), `token`, `jwks`.
//! - [`client`]: the UE side: authorization code + PKCE S256 without a browser, returning the
//!   tokens; also fetches discovery and JWKS over HTTPS.
//! - [`demo`]: demo users, client and keys for a local run.
//! - [`html`]: the login page.

pub mod client;
pub mod demo;
pub mod html;
pub mod server;
