//! [`TokenValidator`] over `mcptt-token`'s [`Validator`](mcptt_token::Validator).
//!
//! The validator checks signature, issuer, audience, scope and time; the grant carries the
//! `mcptt_id`, `client_id` and `exp` claims. Its error (kind: expired, audience, scope,
//! signature, ...) becomes the log reason of
//! [`ServerEvent::AuthorisationFailed`](crate::server::ServerEvent::AuthorisationFailed).

use std::sync::Arc;

use crate::model::{GrantRef, TokenGrant, TokenValidator};

impl TokenValidator for mcptt_token::Validator {
    fn validate(
        &self,
        token: &str,
        now_unix: u64,
    ) -> Result<TokenGrant, Box<dyn std::error::Error + Send + Sync>> {
        // Copies only the three claims of the grant out of the checked token.
        Ok(
            self.validate_access_token_with(token, now_unix, |at| TokenGrant {
                mcptt_id: at.mcptt_id().to_owned(),
                client_id: Some(at.client_id().to_owned()),
                expires_at: at.expires_at(),
            })?,
        )
    }

    fn validate_with(
        &self,
        token: &str,
        now_unix: u64,
        f: &mut dyn FnMut(GrantRef<'_>),
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.validate_access_token_with(token, now_unix, |at| {
            f(GrantRef {
                mcptt_id: at.mcptt_id(),
                client_id: Some(at.client_id()),
                expires_at: at.expires_at(),
            });
        })?)
    }
}

impl<T: TokenValidator + ?Sized> TokenValidator for Arc<T> {
    fn validate(
        &self,
        token: &str,
        now_unix: u64,
    ) -> Result<TokenGrant, Box<dyn std::error::Error + Send + Sync>> {
        (**self).validate(token, now_unix)
    }

    fn validate_with(
        &self,
        token: &str,
        now_unix: u64,
        f: &mut dyn FnMut(GrantRef<'_>),
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        (**self).validate_with(token, now_unix, f)
    }
}

impl<T: TokenValidator + ?Sized> TokenValidator for &T {
    fn validate(
        &self,
        token: &str,
        now_unix: u64,
    ) -> Result<TokenGrant, Box<dyn std::error::Error + Send + Sync>> {
        (**self).validate(token, now_unix)
    }

    fn validate_with(
        &self,
        token: &str,
        now_unix: u64,
        f: &mut dyn FnMut(GrantRef<'_>),
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        (**self).validate_with(token, now_unix, f)
    }
}
