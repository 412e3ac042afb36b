//! `accessToken`: a short-lived JWT for the caller's session, for the team's other services.
//! A thin resolver over [`crate::tokens`].

use async_graphql::{Context, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::guard::auth;
use crate::error::AppError;
use crate::tokens::AccessTokens;

/// A signed access token (ES256 JWT). Verify it with the JWKS at
/// `/.well-known/jwks.json`; it stays valid until `expiresAt` even after a logout.
#[derive(SimpleObject)]
pub struct AccessToken {
    /// The JWT: `Authorization: Bearer <token>` to a service that verifies it.
    pub token: String,
    /// Its `exp`.
    pub expires_at: DateTime<Utc>,
}

#[derive(Default)]
pub struct TokensMutation;

#[Object]
impl TokensMutation {
    /// Mints an access token for the current session: `sub` the user id, `sid` the session,
    /// `aud` the `audience` given (or `--jwt-default-audience`), valid for `--jwt-ttl`
    /// (default 5 minutes). A logout does not recall it. Limited per session
    /// (`--access-token-rate-limit`). Permission: signed in.
    async fn access_token(
        &self,
        ctx: &Context<'_>,
        audience: Option<String>,
    ) -> async_graphql::Result<AccessToken> {
        let caller = auth(ctx).require().await?;
        let tokens = ctx
            .data_opt::<AccessTokens>()
            .ok_or_else(|| AppError::internal("the schema has no AccessTokens"))?;
        let minted = tokens.mint(caller, audience.as_deref()).await?;
        Ok(AccessToken {
            token: minted.token,
            expires_at: minted.expires_at,
        })
    }
}
