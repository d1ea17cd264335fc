//! `mcptt-service-state`: sans-IO MCPTT service authorisation (flow steps 7–18).
//!
//! (Crate documentation is completed with the server and client drivers.)

pub mod body;
pub mod client;
mod error;
mod model;
pub mod server;
mod sip;
mod token;
mod xml;

pub use error::{BodyKind, Error};
pub use model::{
    AuthorisationState, CombinedState, Random, RegistrationChange, RegistrationState, SplitMix64,
    TokenGrant, TokenValidator, UeDirectory, UeKind,
};
